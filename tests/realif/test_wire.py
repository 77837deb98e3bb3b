"""What travels on the veth: only ESP, which tshark decrypts with the SAs' keys; frames
tampered with or replayed on the link are dropped and counted by the receiving NIC."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from xfrm_offload.server import ifaces

from .topology import (
    WIRE,
    Pair,
    capture,
    counters_reach,
    in_ns,
    install_tunnel,
    stat,
    two_hosts,
    wait_for,
)

PINGS = 5


def _uat(pair: Pair) -> list[str]:
    options = ["-o", "esp.enable_encryption_decode:TRUE"]
    for sa in pair.sas:
        fields = ["IPv4", sa.src, sa.dst, f"0x{sa.spi:08x}", "AES-GCM with 16 octet ICV [RFC4106]"]
        fields += [f"0x{sa.key.hex()}", "NULL", ""]
        options += ["-o", "uat:esp_sa:" + ",".join(f'"{f}"' for f in fields)]
    return options


async def test_tshark_sees_only_esp_and_decrypts_it(sock_dir: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "wire.pcap"
    async with two_hosts(sock_dir) as pair:
        await install_tunnel(pair)
        async with capture(pair.b.ns, WIRE, pcap, 2 * PINGS):
            status, out = await in_ns(
                pair.a.ns, "ping", "-q", "-c", str(PINGS), "-i", "0.01", "-W", "10", pair.b.inner4
            )
            assert status == 0, out
    result = subprocess.run(
        ["tshark", "-r", str(pcap), *_uat(pair), "-T", "fields", "-E", "separator=|",
         "-e", "frame.protocols", "-e", "esp.spi", "-e", "ip.src", "-e", "ip.dst",
         "-e", "icmp.type", "-e", "icmp.seq"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == 2 * PINGS, result.stdout
    spi_ab, spi_ba = (f"0x{sa.spi:08x}" for sa in pair.sas)
    seen: dict[str, list[str]] = {"8": [], "0": []}
    for protocols, spi, src, dst, icmp_type, seq in rows:
        # every frame is ESP on the outside, and decrypted it is the ping inside
        assert protocols == "eth:ethertype:ip:esp:ip:icmp:data", rows
        request = icmp_type == "8"
        assert spi == (spi_ab if request else spi_ba)
        assert src == ("192.0.2.1,198.51.100.1" if request else "192.0.2.2,203.0.113.1")
        assert dst == ("192.0.2.2,203.0.113.1" if request else "192.0.2.1,198.51.100.1")
        seen[icmp_type].append(seq)
    every = [str(n) for n in range(1, PINGS + 1)]
    assert sorted(seen["8"], key=int) == every and sorted(seen["0"], key=int) == every


def _sniff_esp(sock: socket.socket, count: int) -> list[bytes]:
    """ESP packets arriving on the link (bounded: at most 200 frames read, 5 s each)."""
    sock.settimeout(5)
    found: list[bytes] = []
    for _ in range(200):
        data, address = sock.recvfrom(65536)
        if address[2] != ifaces.PACKET_OUTGOING and data[0] == 0x45 and data[9] == 50:
            found.append(data)
            if len(found) == count:
                break
    return found


async def test_tampered_and_replayed_frames_are_dropped_and_counted(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        await install_tunnel(pair)
        a, b = pair.a, pair.b
        sniffer = ifaces.open_packet_socket(ifaces.IfRef(WIRE, b.ns), 1 << 20)
        sniffer.setblocking(True)
        try:
            status, out = await in_ns(
                a.ns, "ping", "-q", "-c", "2", "-i", "0.01", "-W", "10", b.inner4
            )
            assert status == 0, out
            first, second = _sniff_esp(sniffer, 2)
        finally:
            sniffer.close()
        replay_before = await stat(b, "XfrmInStateSeqError")
        icv_before = await stat(b, "XfrmInStateProtoError")
        # A sequence number B has not seen yet (else the replay check drops it before the
        # ICV is looked at), under the ICV like the rest: the ICV check must fail.
        tampered = bytearray(second)
        tampered[24:28] = (1000).to_bytes(4, "big")
        # Injected from A's end of the veth, so they arrive at B as A's frames do (scapy
        # builds them; its sendp cannot resolve interfaces of another namespace).
        injector = ifaces.open_packet_socket(ifaces.IfRef(WIRE, a.ns), 1 << 16)
        try:
            for packet in (IP(first), IP(bytes(tampered))):
                frame = raw(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0800) / packet)
                injector.sendto(frame[14:], (WIRE, 0x0800, 0, 0, frame[:6]))
        finally:
            injector.close()

        async def counted() -> bool:
            return (
                await stat(b, "XfrmInStateSeqError") == replay_before + 1
                and await stat(b, "XfrmInStateProtoError") == icv_before + 1
            )

        await wait_for(counted, "one replay and one ICV failure counted")
        await counters_reach(b, host_tx_packets=2)  # only the two real echo requests
        status, out = await in_ns(a.ns, "ping", "-q", "-c", "2", "-i", "0.01", "-W", "10", b.inner4)
        assert status == 0, out  # the SA still works

"""xfrmctl packet tx|rx in-process against a real server: pcap -> device A TX -> device B RX."""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client, cli
from xfrm_offload.client.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_RAW,
    PcapReader,
    PcapWriter,
)
from xfrm_offload.engine.esp import host_rx_finish, host_tx_frame
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Family, Mode, SAConfig
from xfrm_offload.server.app import OffloadServer

from ..conftest import running_server
from ..datapath.builders import KEY, Tunnel, install, packets, sa, udp4, udp6

ETH = bytes.fromhex("0a00000000020a0000000001")  # MACs; the ethertype follows
STAMP = 1_700_000_000_000_000_000
V4_IN_V6 = Tunnel(outer_src="2001:db8::1", outer_dst="2001:db8::2")


@pytest.fixture
async def two_devices(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    # no cable: the wire between TX and RX is the pcap file
    async with running_server(sock_dir, "--device", "eth0", "--device", "eth1") as pair:
        yield pair


def write_pcap(path: Path, linktype: int, frames: list[bytes]) -> None:
    with path.open("wb") as f:
        writer = PcapWriter(f, linktype)
        for i, frame in enumerate(frames):
            writer.write(frame, timestamp_ns=STAMP + i * 1000)


def read_pcap(path: Path) -> tuple[int, list[bytes], list[int]]:
    with path.open("rb") as f:
        reader = PcapReader(f)
        records = list(reader)
        return reader.linktype, [r.data for r in records], [r.timestamp_ns for r in records]


async def xfrmctl(client: Client, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await cli.run(["--server", client.address, *argv], out, err)
    return status, out.getvalue(), err.getvalue()


def inner(count: int) -> list[bytes]:
    return packets(udp4, "198.51.100.10", "203.0.113.20", count, size=120)


@pytest.mark.parametrize(
    "linktype,tunnel,frames",
    [
        (LINKTYPE_ETHERNET, Tunnel(), [ETH + b"\x08\x00" + p for p in inner(300)]),
        (LINKTYPE_RAW, Tunnel(), inner(300)),
        (LINKTYPE_IPV4, Tunnel(), inner(300)),
        # IPv4 inside IPv6: the Ethernet header in between says 86dd, then 0800 again
        (LINKTYPE_ETHERNET, V4_IN_V6, [ETH + b"\x08\x00" + p for p in inner(50)]),
    ],
    ids=["ethernet", "raw-ip", "raw-ipv4", "ethernet-v4-in-v6"],
)
async def test_tx_on_a_then_rx_on_b_gives_back_the_capture(
    two_devices: tuple[OffloadServer, Client],
    tmp_path: Path,
    linktype: int,
    tunnel: Tunnel,
    frames: list[bytes],
) -> None:
    _, client = two_devices
    await install(client, tunnel, "eth0", "eth1")
    plain, esp, back = tmp_path / "plain.pcap", tmp_path / "esp.pcap", tmp_path / "back.pcap"
    write_pcap(plain, linktype, frames)
    n = len(frames)
    status, out, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp),
        "--batch", "32",
    )  # fmt: skip
    assert (status, out, err) == (0, f"sent {n}, out {n}, dropped 0\n", "")
    esp_type, wire, stamps = read_pcap(esp)
    assert esp_type == linktype and len(wire) == n
    assert stamps == [STAMP + i * 1000 for i in range(n)]  # each packet keeps its time
    ip_offset = 14 if linktype == LINKTYPE_ETHERNET else 0
    next_header = 6 if tunnel.outer_dst.count(":") else 9
    assert {w[ip_offset + next_header] for w in wire} == {50}  # ESP, all of them
    if linktype == LINKTYPE_ETHERNET:
        ethertype = b"\x86\xdd" if next_header == 6 else b"\x08\x00"
        assert {w[:14] for w in wire} == {ETH + ethertype}
    status, out, err = await xfrmctl(
        client, "packet", "rx", "--dev", "eth1", "--in", str(esp), "--out", str(back)
    )
    assert (status, out, err) == (0, f"sent {n}, out {n}, dropped 0\n", "")
    assert read_pcap(back) == (linktype, frames, stamps)  # byte-exact, headers included


async def test_drops_are_reported_by_reason(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = two_devices
    await install(client, Tunnel(), "eth0", "eth1")
    plain, esp = tmp_path / "plain.pcap", tmp_path / "esp.pcap"
    write_pcap(plain, LINKTYPE_RAW, inner(20))
    assert (await xfrmctl(client, "packet", "tx", "--dev", "eth0", "--in", str(plain),
                          "--out", str(esp)))[0] == 0  # fmt: skip
    _, wire, _ = read_pcap(esp)
    unknown_spi = wire[0][:20] + (0xBAD).to_bytes(4, "big") + wire[0][24:]
    tampered = wire[1][:-1] + bytes([wire[1][-1] ^ 1])
    clear_protected = inner(1)[0]  # cleartext that the inbound policy wants protected
    unrelated = udp6("2001:db8::1", "2001:db8::2", b"no policy")
    mixed = [tampered, *wire, *wire[:3], unknown_spi, clear_protected, unrelated]
    arp = ETH + b"\x08\x06" + bytes(28)
    eth_mixed = tmp_path / "mixed.pcap"
    write_pcap(eth_mixed, LINKTYPE_ETHERNET, [ETH + b"\x08\x00" + m for m in mixed[:-1]]
               + [ETH + b"\x86\xdd" + unrelated, arp])  # fmt: skip
    status, out, err = await xfrmctl(
        client, "packet", "rx", "--dev", "eth1", "--in", str(eth_mixed),
        "--out", str(tmp_path / "out.pcap"),
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == (
        "sent 27, out 21, dropped 6, skipped 1\n"
        "  XfrmInNoStates 1\n"
        "  XfrmInStateProtoError 1\n"
        "  XfrmInStateSeqError 3\n"
        "  XfrmInTmplMismatch 1\n"
        "  skipped: not an IP packet 1\n"
    )
    _, delivered, _ = read_pcap(tmp_path / "out.pcap")
    assert [d[14:] for d in delivered] == [*inner(20), unrelated]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["packet", "tx", "--dev", "eth0", "--out", "x.pcap"], "the following arguments are "
         "required: --in"),
        (["packet", "sideways", "--dev", "eth0", "--in", "a", "--out", "b"], "invalid choice"),
        (["packet", "tx", "--in", "a", "--out", "b"], "--dev DEV is required"),
        (["packet", "tx", "--dev", "eth0", "--in", "a", "--out", "b", "--batch", "0"],
         "must be at least 1"),
        (["packet", "rx", "--dev", "eth0", "--in", "a", "--out", "b", "--handle", "3"],
         "--handle is for crypto offload TX only"),
        (["packet", "tx", "--dev", "eth0", "--in", "a", "--out", "b", "--seq-start", "5"],
         "--seq-start needs --handle"),
        (["packet", "tx", "--dev", "eth0", "--in", "/nonexistent.pcap", "--out", "b"],
         "--in /nonexistent.pcap: No such file or directory"),
    ],
)  # fmt: skip
async def test_usage_errors_exit_2(
    two_devices: tuple[OffloadServer, Client], argv: list[str], message: str
) -> None:
    _, client = two_devices
    status, out, err = await xfrmctl(client, *argv)
    assert status == cli.ExitStatus.USAGE and out == ""
    assert message in err


async def test_pcapng_and_unknown_device(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = two_devices
    ng = tmp_path / "in.pcapng"
    ng.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(60))
    status, _, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(ng), "--out", str(tmp_path / "o")
    )
    assert status == 2 and "pcapng file; convert it to pcap first: editcap -F pcap" in err
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, LINKTYPE_RAW, inner(3))
    status, out, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth9", "--in", str(plain), "--out", str(tmp_path / "o")
    )
    assert (status, out) == (cli.ExitStatus.SERVER_ERROR, "")
    assert "no device 'eth9'" in err


def host_sa(t: Tunnel) -> SecurityAssociation:
    """The host stack's own SA (same key): it frames TX packets and finishes RX ones."""
    return SecurityAssociation(
        SAConfig(
            daddr=ipaddress.ip_address(t.outer_dst),
            saddr=ipaddress.ip_address(t.outer_src),
            spi=t.spi,
            family=Family.INET,
            mode=Mode.TUNNEL,
            replay_window=64,
            aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
        ),
        0.0,
    )


async def test_crypto_offload_tx_with_handle_and_seq_then_rx_status(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = two_devices
    t = Tunnel()
    out = await client.state_add(sa(t, "eth0", inbound=False, packet=False))
    inn = await client.state_add(sa(t, "eth1", inbound=True, packet=False))
    assert out.offloaded and inn.offloaded
    host = host_sa(t)
    sent = inner(30)
    seq_start = 1000
    frames = [host_tx_frame(host.esp, p, seq_start + i) for i, p in enumerate(sent)]
    framed, esp, back = tmp_path / "framed.pcap", tmp_path / "esp.pcap", tmp_path / "back.pcap"
    write_pcap(framed, LINKTYPE_RAW, frames)
    status, text, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(framed), "--out", str(esp),
        "--handle", str(out.offload_handle), "--seq-start", str(seq_start),
    )  # fmt: skip
    assert (status, text, err) == (0, "sent 30, out 30, dropped 0\n", "")
    _, wire, _ = read_pcap(esp)
    assert [int.from_bytes(w[24:28], "big") for w in wire] == list(range(1000, 1030))
    tampered = wire[0][:-1] + bytes([wire[0][-1] ^ 1])
    write_pcap(esp, LINKTYPE_RAW, [*wire, tampered])
    status, text, err = await xfrmctl(
        client, "packet", "rx", "--dev", "eth1", "--in", str(esp), "--out", str(back)
    )
    assert (status, err) == (0, "")
    assert text == (
        "sent 31, out 31, dropped 0\ncrypto status: success 30, tunnel-esp-auth-failed 1\n"
    )
    _, decrypted, _ = read_pcap(back)
    assert [host_rx_finish(host.esp, d) for d in decrypted[:30]] == sent


async def test_sequence_numbers_past_2_64_are_a_usage_error_and_no_output(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """--seq-start near 2^64 with a capture longer than the numbers left: the batch that
    would pass 2^64-1 is not sent, the run fails (exit 2, the count in the message) and
    --out keeps what it held, however many batches went before."""
    _, client = two_devices
    t = Tunnel()
    out = await client.state_add(sa(t, "eth0", inbound=False, packet=False))
    host = host_sa(t)
    start = (1 << 64) - 66  # numbers for 66 packets: the first batch of 64 fits
    frames = [host_tx_frame(host.esp, p, start + i) for i, p in enumerate(inner(70))]
    framed, esp = tmp_path / "framed.pcap", tmp_path / "esp.pcap"
    write_pcap(framed, LINKTYPE_RAW, frames)
    esp.write_bytes(b"before")
    for seq_start, sent in ((start, "66"), ((1 << 64) - 1, "1")):
        status, text, err = await xfrmctl(
            client, "packet", "tx", "--dev", "eth0", "--in", str(framed), "--out", str(esp),
            "--handle", str(out.offload_handle), "--seq-start", str(seq_start),
        )  # fmt: skip
        assert (status, text) == (cli.ExitStatus.USAGE, "")
        assert err == (
            f"xfrmctl: --seq-start {seq_start} leaves 64-bit sequence numbers for {sent}"
            " packets; the capture has more\n"
        )
        assert esp.read_bytes() == b"before"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_progress_only_on_a_terminal(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = two_devices
    await install(client, Tunnel(), "eth0", "eth1")
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, LINKTYPE_RAW, inner(10))
    argv = ["--server", client.address, "packet", "tx", "--dev", "eth0", "--in", str(plain)]
    out, err = io.StringIO(), Terminal()
    assert await cli.run([*argv, "--out", str(tmp_path / "o.pcap")], out, err) == 0
    # tqdm's bar: the capture's size as total, percentage, rate, the counts; then erased.
    # The summary goes to stdout.
    size = plain.stat().st_size
    assert size == 24 + 10 * (16 + 28 + 120) == 1664  # 1.62 KiB
    lines = err.getvalue().split("\r")
    assert lines[0] == "" and lines[-1] == ""
    assert lines[1].startswith("tx eth0:   0%|          | 0.00/1.62k [00:00<?, ?B/s]")
    last = [line for line in lines if "100%" in line]
    assert len(last) == 1 and re.fullmatch(
        r"tx eth0: 100%\|##########\| 1\.62k/1\.62k \[00:00<00:00, [\d.]+[kM]?B/s,"
        r" sent 10, out 10, dropped 0\]",
        last[0].rstrip(),
    ), last
    assert lines[-2].strip() == ""  # the bar's line erased at the end
    assert out.getvalue() == "sent 10, out 10, dropped 0\n"


async def test_raw_frames_the_batch_check_refuses_are_skipped_one_by_one(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """A raw IPv4 capture is checked a batch at a time; a batch holding a frame cut by
    snaplen, an empty one or an IPv6 one goes packet by packet: those are skipped and
    counted, the others go through in order with their own times."""
    _, client = two_devices
    await install(client, Tunnel(), "eth0", "eth1")
    plain, esp = tmp_path / "plain.pcap", tmp_path / "esp.pcap"
    good = inner(10)
    with plain.open("wb") as f:
        writer = PcapWriter(f, LINKTYPE_IPV4)
        for i, frame in enumerate(good):
            writer.write(frame, timestamp_ns=STAMP + i * 1000)
            if i == 3:
                writer.write(good[0][:40], timestamp_ns=STAMP, orig_len=len(good[0]))
            if i == 5:
                writer.write(b"", timestamp_ns=STAMP)
                writer.write(udp6("2001:db8::1", "2001:db8::2", b"v6"), timestamp_ns=STAMP)
    argv = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
    assert await xfrmctl(client, *argv, "--batch", "4") == (
        0,
        "sent 10, out 10, dropped 0, skipped 3\n"
        "  skipped: not an IP packet 2\n"
        "  skipped: truncated by snaplen 1\n",
        "",
    )
    back = tmp_path / "back.pcap"
    rx = ["packet", "rx", "--dev", "eth1", "--in", str(esp), "--out", str(back)]
    assert (await xfrmctl(client, *rx))[0] == 0
    assert read_pcap(back) == (LINKTYPE_IPV4, good, [STAMP + i * 1000 for i in range(10)])


async def test_tagged_ethernet_frames_keep_their_tags_and_arp_is_skipped(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """An Ethernet capture with 802.1Q-tagged frames and an ARP frame goes frame by frame
    (the batch check takes untagged IP frames only): ARP is skipped and counted, each IP
    frame comes back through TX and RX with its own header, tags included."""
    _, client = two_devices
    await install(client, Tunnel(), "eth0", "eth1")
    tag = b"\x81\x00\x00\x05"  # 802.1Q, VLAN 5
    good = inner(9)
    frames = [ETH + (tag if i % 2 else b"") + b"\x08\x00" + p for i, p in enumerate(good)]
    arp = ETH + b"\x08\x06" + bytes(28)
    plain, esp, back = tmp_path / "plain.pcap", tmp_path / "esp.pcap", tmp_path / "back.pcap"
    write_pcap(plain, LINKTYPE_ETHERNET, [*frames[:4], arp, *frames[4:]])
    argv = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
    assert await xfrmctl(client, *argv, "--batch", "4") == (
        0,
        "sent 9, out 9, dropped 0, skipped 1\n  skipped: not an IP packet 1\n",
        "",
    )
    rx = ["packet", "rx", "--dev", "eth1", "--in", str(esp), "--out", str(back)]
    assert await xfrmctl(client, *rx) == (0, "sent 9, out 9, dropped 0\n", "")
    stamps = [STAMP + i * 1000 for i in [0, 1, 2, 3, 5, 6, 7, 8, 9]]  # ARP was record 4
    assert read_pcap(back) == (LINKTYPE_ETHERNET, frames, stamps)


async def test_an_output_the_link_type_cannot_hold_is_a_usage_error(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """IPv4 in an IPv6 tunnel from a raw IPv4 capture: the ESP packets are IPv6, which a
    raw IPv4 file cannot hold; the run says so and writes nothing."""
    _, client = two_devices
    await install(client, V4_IN_V6, "eth0", "eth1")
    plain, esp = tmp_path / "plain.pcap", tmp_path / "esp.pcap"
    write_pcap(plain, LINKTYPE_IPV4, inner(5))
    argv = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
    assert await xfrmctl(client, *argv) == (
        2,
        "",
        "xfrmctl: an IPv6 packet cannot be written as raw IPv4"
        " (use a raw IP (101) or Ethernet capture)\n",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pcap"]


async def test_a_nanosecond_capture_keeps_its_nanoseconds(
    two_devices: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = two_devices
    await install(client, Tunnel(), "eth0", "eth1")
    plain, esp = tmp_path / "plain.pcap", tmp_path / "esp.pcap"
    stamps = [STAMP + i * 1001 for i in range(100)]  # not whole microseconds
    with plain.open("wb") as f:
        PcapWriter(f, LINKTYPE_RAW, nanosecond=True).write_many(inner(100), stamps)
    argv = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
    assert (await xfrmctl(client, *argv, "--batch", "7"))[0] == 0
    with esp.open("rb") as f:
        reader = PcapReader(f)
        assert reader.nanosecond
        assert [r.timestamp_ns for r in reader] == stamps

"""Crypto offload through the real server: the host half from the engine's own framing
helpers, the NIC half over gRPC, scapy as the peer on the wire.

TX: the host frames the packet (``host_tx_frame``: ESP header, zero IV slot, cleartext
with trailer, zero ICV room) and names the state and the 64-bit sequence number; the NIC
seals it, and scapy must decrypt the result to the original packet. RX: scapy encrypts,
the NIC decrypts in place and reports the kernel's per-packet status, and the host half
(``host_rx_finish``) must turn the frame back into the original packet.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, IPSecIntegrityError
from scapy.layers.ipsec import SecurityAssociation as ScapySA
from scapy.packet import Packet

from xfrm_offload.client import Client
from xfrm_offload.engine.esp import host_rx_finish, host_tx_frame
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Family, Mode, ReplayState, SAConfig, SAFlag
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .builders import (
    KEY,
    V4_TRANSPORT,
    V4_TUNNEL,
    V6_TRANSPORT,
    V6_TUNNEL,
    Tunnel,
    packets,
    sa,
    send,
    udp4,
    udp6,
)

TX, RX = pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX
XFRM_STATE_ESN = 128
ESN_HI = 7
COUNT = 40


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    tunnel: Tunnel
    esn: bool = False

    @property
    def v6(self) -> bool:
        return ":" in self.tunnel.outer_dst

    @property
    def transport(self) -> bool:
        return self.tunnel.mode == xpb.XFRM_MODE_TRANSPORT

    @property
    def hi(self) -> int:
        return ESN_HI if self.esn else 0


CASES = [
    Case("v4-tunnel", V4_TUNNEL),
    Case("v6-tunnel", V6_TUNNEL),
    Case("v4-transport", V4_TRANSPORT),
    Case("v6-transport", V6_TRANSPORT),
    Case("v4-tunnel-esn", V4_TUNNEL, esn=True),
    Case("v6-transport-esn", V6_TRANSPORT, esn=True),
]


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    async with running_server(sock_dir, "--device", "eth0", "--device", "nsim0:netdevsim") as p:
        yield p


def crypto_sa(case: Case, dev: str, inbound: bool, seq: int = 0) -> xpb.XfrmUsersaInfo:
    """The crypto-offload state of the case; ESN states start at ESN_HI:seq."""
    info = sa(case.tunnel, dev, inbound, packet=False)
    if case.esn:
        info.flags |= XFRM_STATE_ESN
        info.replay_esn.CopyFrom(
            xpb.XfrmReplayStateEsn(
                bmp_len=2,
                replay_window=64 if inbound else 0,
                seq=seq if inbound else 0,
                seq_hi=ESN_HI if inbound else 0,
                oseq_hi=0 if inbound else ESN_HI,
            )
        )
        info.replay_window = 0
    return info


def with_spi(case: Case, spi: int) -> Case:
    return dataclasses.replace(case, tunnel=dataclasses.replace(case.tunnel, spi=spi))


def host_sa(case: Case) -> SecurityAssociation:
    """The host stack's own SA (same key): its framing helpers build and finish frames."""
    t = case.tunnel
    return SecurityAssociation(
        SAConfig(
            daddr=ipaddress.ip_address(t.outer_dst),
            saddr=ipaddress.ip_address(t.outer_src),
            spi=t.spi,
            family=Family.INET6 if case.v6 else Family.INET,
            mode=Mode.TRANSPORT if case.transport else Mode.TUNNEL,
            flags=SAFlag.ESN if case.esn else SAFlag.NONE,
            replay_window=64,
            replay=ReplayState(seq_hi=case.hi, oseq_hi=case.hi),
            aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
        ),
        0.0,
    )


def peer(case: Case, esn_hi: int | None = None) -> ScapySA:
    t = case.tunnel
    header: Packet | None = None
    if not case.transport:
        header = (IPv6 if case.v6 else IP)(src=t.outer_src, dst=t.outer_dst)
    return ScapySA(
        ESP,
        spi=t.spi,
        crypt_algo="AES-GCM",
        crypt_key=KEY,
        tunnel_header=header,
        esn_en=case.esn,
        esn=case.hi if esn_hi is None else esn_hi,
    )


def originals(case: Case, count: int = COUNT) -> list[bytes]:
    t = case.tunnel
    if case.transport:
        src, dst = t.outer_src, t.outer_dst
    elif case.v6:
        src, dst = "2001:db8:1::10", "2001:db8:2::20"
    else:
        src, dst = "198.51.100.10", "203.0.113.20"
    return packets(udp6 if case.v6 else udp4, src, dst, count, size=120)


def parse(packet: bytes) -> Packet:
    return IP(packet) if packet[0] >> 4 == 4 else IPv6(packet)


def esp_offset(case: Case) -> int:
    return 40 if case.v6 else 20


async def drops(client: Client, dev: str) -> dict[str, int]:
    stats = await client.get_stats(dev)
    return {c.name: c.value for c in stats.total if c.value}


# -- TX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_tx_host_frames_sealed_by_the_nic_decrypt_in_scapy(
    nic: tuple[OffloadServer, Client], case: Case
) -> None:
    _, client = nic
    added = await client.state_add(crypto_sa(case, "eth0", inbound=False))
    assert added.offloaded and added.type == xpb.OFFLOAD_TYPE_CRYPTO
    host = host_sa(case)
    sent = originals(case)
    seqs = [(case.hi << 32) | (i + 1) for i in range(COUNT)]
    frames = [host_tx_frame(host.esp, p, s) for p, s in zip(sent, seqs, strict=True)]
    results = await send(
        client, "eth0", TX, frames, batch=16, handles=[added.offload_handle] * COUNT, seqs=seqs
    )
    assert [(r.verdict, r.drop_reason, r.offload_handle) for r in results] == [
        (pb.VERDICT_PASS, "", added.offload_handle)
    ] * COUNT
    off = esp_offset(case)
    scapy = peer(case)
    for frame, seq, result, original in zip(frames, seqs, results, sent, strict=True):
        wire = result.data
        assert len(wire) == len(frame)
        assert wire[: off + 8] == frame[: off + 8]  # headers, SPI and seq_lo untouched
        assert int.from_bytes(wire[off + 4 : off + 8], "big") == seq & 0xFFFFFFFF
        assert wire[-16:] != bytes(16)  # the ICV was written
        assert bytes(scapy.decrypt(parse(wire))) == original
    if case.esn:  # seq_hi is in the AAD: without it the ICV does not verify
        with pytest.raises(IPSecIntegrityError):
            peer(case, esn_hi=0).decrypt(parse(results[0].data))
    assert await drops(client, "eth0") == {}


async def test_tx_with_a_handle_that_cannot_seal_is_dropped_and_counted(
    nic: tuple[OffloadServer, Client],
) -> None:
    _, client = nic
    case = CASES[0]
    out = await client.state_add(crypto_sa(case, "eth0", inbound=False))
    gone = await client.state_add(crypto_sa(with_spi(case, 0x4004), "eth0", inbound=False))
    inbound = await client.state_add(crypto_sa(with_spi(case, 0x5005), "eth0", inbound=True))
    packet_mode = await client.state_add(sa(Tunnel(spi=0x2002), "eth0", inbound=False))
    assert out.offloaded and gone.offloaded and inbound.offloaded and packet_mode.offloaded
    await client.state_delete("eth0", gone.offload_handle)
    freed = await client.state_add(sa(Tunnel(spi=0x3003), "eth0", False, packet=False))
    await client.state_delete("eth0", freed.offload_handle)
    await client.state_free("eth0", freed.offload_handle)
    frame = host_tx_frame(host_sa(case).esp, originals(case, 1)[0], 1)
    handles = [
        gone.offload_handle,  # deleted, not yet freed
        inbound.offload_handle,  # an inbound state cannot transmit
        0xDEAD,  # never existed
        freed.offload_handle,  # freed
        packet_mode.offload_handle,  # packet offload: not for host-framed packets
        out.offload_handle,  # the good one, last: the others did not disturb it
    ]
    results = await send(client, "eth0", TX, [frame] * len(handles), handles=handles, seqs=[1] * 6)
    assert [(r.verdict, r.drop_reason) for r in results] == [
        (pb.VERDICT_DROP, "XfrmOutStateInvalid"),
        (pb.VERDICT_DROP, "XfrmOutStateDirError"),
        (pb.VERDICT_DROP, "XfrmOutNoStates"),
        (pb.VERDICT_DROP, "XfrmOutNoStates"),
        (pb.VERDICT_DROP, "XfrmOutStateInvalid"),
        (pb.VERDICT_PASS, ""),
    ]
    assert bytes(peer(case).decrypt(parse(results[-1].data))) == originals(case, 1)[0]
    assert await drops(client, "eth0") == {
        "XfrmOutStateInvalid": 2,
        "XfrmOutStateDirError": 1,
        "XfrmOutNoStates": 2,
    }


async def test_netdevsim_counts_three_tx_packets(nic: tuple[OffloadServer, Client]) -> None:
    """The netdevsim selftest's traffic part: 3 packets out through the out SA -> tx=3,
    read as the selftest reads it, from the device's debugfs ``ipsec`` file."""
    _, client = nic
    case = CASES[0]
    out = await client.state_add(crypto_sa(case, "nsim0", inbound=False))
    inn = await client.state_add(crypto_sa(with_spi(case, 0x5005), "nsim0", inbound=True))
    assert out.offloaded and inn.offloaded
    host = host_sa(case)
    sent = originals(case, 3)
    frames = [host_tx_frame(host.esp, p, i + 1) for i, p in enumerate(sent)]
    results = await send(
        client, "nsim0", TX, frames, handles=[out.offload_handle] * 3, seqs=[1, 2, 3]
    )
    assert [bytes(peer(case).decrypt(parse(r.data))) for r in results] == sent
    device = await client.get_device("nsim0")
    assert device.crypto_tx_packets == 3
    debugfs = device.debugfs
    assert debugfs.splitlines()[0] == "SA count=2 tx=3"
    assert "sa[0] tx ipaddr=192.0.2.2" in debugfs and "sa[1] rx ipaddr=192.0.2.2" in debugfs
    assert "key=" not in debugfs


# -- RX -----------------------------------------------------------------------------------


def _auth_failed(case: Case) -> int:
    if case.transport:
        return pb.CRYPTO_STATUS_TRANSPORT_ESP_AUTH_FAILED
    return pb.CRYPTO_STATUS_TUNNEL_ESP_AUTH_FAILED


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_rx_nic_decrypts_and_the_host_half_finishes(
    nic: tuple[OffloadServer, Client], case: Case
) -> None:
    _, client = nic
    inn = await client.state_add(crypto_sa(case, "eth0", inbound=True, seq=100))
    assert inn.offloaded
    sent = originals(case)
    scapy = peer(case)
    wire = [bytes(scapy.encrypt(parse(p), seq_num=101 + i)) for i, p in enumerate(sent)]
    tampered = []
    for w in wire[:3]:
        t = bytearray(w)
        t[-5] ^= 0x10  # one bit of the ICV
        tampered.append(bytes(t))
    # good packets, the 3 tampered ones, then the first 2 again: replay is the host's job
    results = await send(client, "eth0", RX, wire + tampered + wire[:2], batch=16)
    good = results[:COUNT] + results[COUNT + 3 :]
    assert {(r.verdict, r.crypto_status, r.offload_handle) for r in good} == {
        (pb.VERDICT_PASS, pb.CRYPTO_STATUS_SUCCESS, inn.offload_handle)
    }
    host = host_sa(case)
    for r, w in zip(good, wire + wire[:2], strict=True):
        assert len(r.data) == len(w)
    assert [host_rx_finish(host.esp, r.data) for r in good] == sent + sent[:2]
    bad = results[COUNT : COUNT + 3]
    assert [(r.verdict, r.crypto_status) for r in bad] == [
        (pb.VERDICT_PASS, _auth_failed(case))
    ] * 3
    assert [r.data for r in bad] == tampered  # handed back unchanged
    cur = await client.update_curlft("eth0", inn.offload_handle)
    assert (cur.stats.integrity_failed, cur.stats.replay, cur.stats.replay_window) == (3, 0, 0)
    assert {d.name: d.value for d in cur.drops} == {"XfrmInStateProtoError": 3}
    assert await drops(client, "eth0") == {"XfrmInStateProtoError": 3}


async def test_rx_malformed_esp_reports_invalid_syntax(nic: tuple[OffloadServer, Client]) -> None:
    _, client = nic
    case = CASES[0]
    inn = await client.state_add(crypto_sa(case, "eth0", inbound=True))
    wire = bytes(peer(case).encrypt(parse(originals(case, 1)[0]), seq_num=1))
    truncated = wire[: esp_offset(case) + 12]
    short = truncated[:2] + len(truncated).to_bytes(2, "big") + truncated[4:]
    results = await send(client, "eth0", RX, [short])
    assert [(r.verdict, r.crypto_status, r.offload_handle) for r in results] == [
        (pb.VERDICT_PASS, pb.CRYPTO_STATUS_INVALID_PACKET_SYNTAX, inn.offload_handle)
    ]
    cur = await client.update_curlft("eth0", inn.offload_handle)
    assert cur.stats.integrity_failed == 0
    assert await drops(client, "eth0") == {"XfrmInHdrError": 1}

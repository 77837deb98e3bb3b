"""OffloadOk over gRPC: xfrm_dev_offload_ok + xdo_dev_offload_ok, answer and reason per packet.

The MTU figures are xfrm_state_mtu's for AES-GCM (ESP header 8 + IV 8, ICV 16, 4-byte
alignment) on the full profile's 1500-byte wire: tunnel IPv4 outer
((1500 - 36 - 16) & ~3) - 2 = 1446; transport IPv4 ((1500 - 16 - 16 - 20) & ~3) + 20 - 2 = 1466.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client
from xfrm_offload.client.errors import XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .builders import Tunnel, checksum, sa, udp4, udp6

TUNNEL_MTU = 1446
TRANSPORT_MTU = 1466
V4_TRANSPORT = Tunnel(
    inner_src="192.0.2.1/32", inner_dst="192.0.2.2/32", mode=xpb.XFRM_MODE_TRANSPORT, spi=0x2002
)


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    async with running_server(sock_dir, "--device", "eth0") as pair:
        yield pair


def udp4_sized(size: int) -> bytes:
    return udp4("198.51.100.10", "203.0.113.20", bytes(size - 28))


def udp4_with_options() -> bytes:
    """IPv4 with a 4-byte option (NOP NOP NOP EOL): IHL 6."""
    plain = udp4("198.51.100.10", "203.0.113.20", b"opt")
    head = bytearray(plain[:20] + b"\x01\x01\x01\x00")
    head[0] = 0x46
    head[2:4] = struct.pack("!H", len(plain) + 4)
    head[10:12] = b"\0\0"
    head[10:12] = struct.pack("!H", checksum(bytes(head)))
    return bytes(head) + plain[20:]


def udp6_with_hop_by_hop() -> bytes:
    plain = udp6("2001:db8:1::10", "2001:db8:2::20", b"ext")
    hbh = bytes([17, 0]) + bytes([1, 4, 0, 0, 0, 0])  # next header UDP, PadN
    head = bytearray(plain[:40])
    head[6] = 0  # hop-by-hop options
    head[4:6] = struct.pack("!H", len(plain) - 40 + len(hbh))
    return bytes(head) + hbh + plain[40:]


async def test_offload_ok_answers_and_reasons(nic: tuple[OffloadServer, Client]) -> None:
    _, client = nic
    out = await client.state_add(sa(Tunnel(), "eth0", inbound=False, packet=False))
    transport = await client.state_add(sa(V4_TRANSPORT, "eth0", inbound=False, packet=False))
    inbound = await client.state_add(sa(Tunnel(spi=0x3003), "eth0", inbound=True, packet=False))
    assert out.offloaded and transport.offloaded and inbound.offloaded
    v6 = udp6("2001:db8::1", "2001:db8::2", b"v6")
    cases = [
        (out, udp4_sized(100), True, ""),
        (out, v6, True, ""),  # tunnel mode carries either family
        (out, udp4_with_options(), False, "IPv4 options"),
        (out, udp6_with_hop_by_hop(), False, "IPv6 extension headers"),
        (out, udp4_sized(TUNNEL_MTU), True, ""),
        (out, udp4_sized(TUNNEL_MTU + 1), False, f"exceeds MTU (1447 > {TUNNEL_MTU})"),
        (transport, udp4("192.0.2.1", "192.0.2.2", b"t"), True, ""),
        (transport, v6, False, "family mismatch"),
        (transport, udp4_sized(TRANSPORT_MTU), True, ""),
        (transport, udp4_sized(TRANSPORT_MTU + 1), False, "exceeds MTU (1467 > 1466)"),
        (inbound, udp4_sized(100), False, "inbound state"),
        (out, b"", False, "malformed packet"),
        (out, b"\x45" + bytes(10), False, "malformed packet"),
    ]
    answers = [
        (r.ok, r.reason)
        for r in [await client.offload_ok("eth0", s.offload_handle, p) for s, p, _, _ in cases]
    ]
    assert answers == [(ok, reason) for _, _, ok, reason in cases]


async def test_deleted_freed_and_link_down(nic: tuple[OffloadServer, Client]) -> None:
    _, client = nic
    out = await client.state_add(sa(Tunnel(), "eth0", inbound=False, packet=False))
    packet = udp4_sized(100)
    await client.state_delete("eth0", out.offload_handle)
    deleted = await client.offload_ok("eth0", out.offload_handle, packet)
    assert (deleted.ok, deleted.reason) == (False, "state deleted")
    await client.state_free("eth0", out.offload_handle)
    with pytest.raises(XfrmOffloadError) as freed:
        await client.offload_ok("eth0", out.offload_handle, packet)
    assert freed.value.code == grpc.StatusCode.NOT_FOUND
    # Link down flushes (deletes and frees) every state, so the kernel's "link down"
    # answer is unreachable over gRPC: the handle is gone before the question is asked.
    live = await client.state_add(sa(Tunnel(), "eth0", inbound=False, packet=False))
    await client.set_link("eth0", up=False)
    with pytest.raises(XfrmOffloadError) as down:
        await client.offload_ok("eth0", live.offload_handle, packet)
    assert down.value.code == grpc.StatusCode.NOT_FOUND

"""Policy expiry and NAT-T mapping events through the real gRPC server, and how
``xfrmctl monitor`` / ``ip -s xfrm policy`` print them (iproute2's formats)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.client.render import format_event, format_policy
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from ..datapath.builders import checksum, udp4
from .sa_builders import LOCAL, PEER, gcm_sa, packet_policy
from .test_events import kinds_of, watching

Pair = tuple[OffloadServer, Client]
NATTED = "198.51.100.77"


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[Pair]:
    args = ("--device", "eth0:full", "--device", "eth1:full", "--virtual-clock")
    async with running_server(sock_dir, *args) as pair:
        yield pair


async def test_policy_hard_expiry_is_polexpire_then_deletion(nic: Pair) -> None:
    server, client = nic
    policy = packet_policy("eth0")
    policy.lft.hard_add_expires_seconds = 3
    policy.lft.soft_add_expires_seconds = 2
    async with watching(nic) as w:
        added = await client.policy_add(policy)
        start = server.clock.now()
        listed = await client.list_policies("eth0")
        assert listed[0].curlft == xpb.XfrmLifetimeCur(add_time=int(start))
        await client.advance_clock(2)
        await client.advance_clock(1)
        events = await w.wait_for(4)
        assert kinds_of(events) == [
            pb.EVENT_KIND_POLICY_ADDED,
            pb.EVENT_KIND_POLICY_EXPIRE,
            pb.EVENT_KIND_POLICY_EXPIRE,
            pb.EVENT_KIND_POLICY_DELETED,
        ]
        soft, hard, deleted = events[1:]
        ref = pb.PolicyRef(dev="eth0", offload_handle=added.offload_handle)
        assert (soft.policy_expire.ref, soft.policy_expire.hard) == (ref, False)
        assert (hard.policy_expire.ref, hard.policy_expire.hard) == (ref, True)
        assert hard.policy_expire.policy.policy.lft.hard_add_expires_seconds == 3
        assert (deleted.object.policy, deleted.object.reason) == (ref, "expired")
        assert await client.list_policies("eth0") == []
        text = format_event(hard)
        assert text.startswith(f"Expired src {LOCAL}/32 dst {PEER}/32 \n\tdir out priority 0")
        assert text.endswith("\thard 1\n")
        assert format_event(soft).endswith("\thard 0\n")
        assert format_event(deleted) == ""  # no XFRM_MSG_DELPOLICY for it in the kernel


async def test_policy_use_time_and_ip_s_listing(nic: Pair) -> None:
    server, client = nic
    await client.state_add(gcm_sa("eth0", 0x100, packet=True))
    await client.policy_add(packet_policy("eth0"))
    added = int(server.clock.now())
    await client.advance_clock(7)
    inner = udp4(LOCAL, PEER, b"z" * 32)
    packets = [pb.Packet(id=i, data=inner) for i in range(3)]
    replies = [r async for r in client.packet_stream("eth0", pb.PACKET_DIRECTION_TX, [packets])]
    assert [r.verdict for r in replies[0].results] == [pb.VERDICT_PASS] * 3
    (listed,) = await client.list_policies("eth0")
    assert listed.curlft == xpb.XfrmLifetimeCur(add_time=added, use_time=added + 7)
    text = format_policy(listed, stats=True)
    assert "\tlifetime current:\n\t  0(bytes), 0(packets)\n" in text  # as the kernel: never counted


def natted(packet: bytes, saddr: str, sport: int) -> bytes:
    p = bytearray(packet)
    p[12:16] = bytes(int(x) for x in saddr.split("."))
    p[20:22] = sport.to_bytes(2, "big")
    p[26:28] = b"\0\0"  # RFC 3948: a NAT may zero the UDP checksum
    p[10:12] = b"\0\0"
    p[10:12] = checksum(bytes(p[:20])).to_bytes(2, "big")
    return bytes(p)


async def test_mapping_event_and_its_monitor_line(nic: Pair) -> None:
    _, client = nic
    encap = xpb.XfrmEncapTmpl(
        encap_type=xpb.ENCAP_TYPE_ESPINUDP, encap_sport=4500, encap_dport=4500
    )
    # eth1 is the peer sending LOCAL -> PEER; eth0 the receiver behind it, via a NAT.
    out_sa = gcm_sa("eth1", 0x200, packet=True)
    out_sa.encap.CopyFrom(encap)
    in_sa = gcm_sa("eth0", 0x200, direction="in", packet=True)
    in_sa.encap.CopyFrom(encap)
    in_sa.mapping_maxage = 30
    await client.state_add(out_sa)
    in_handle = (await client.state_add(in_sa)).offload_handle
    await client.policy_add(packet_policy("eth1"))
    await client.policy_add(packet_policy("eth0", xpb.POLICY_DIR_IN))
    (state,) = await client.list_states("eth0")
    assert state.sa.mapping_maxage == 30
    inner = udp4(LOCAL, PEER, b"m" * 32)
    sent = [r async for r in client.packet_stream(
        "eth1", pb.PACKET_DIRECTION_TX, [[pb.Packet(id=i, data=inner) for i in range(3)]]
    )]  # fmt: skip
    wire = [natted(r.data, NATTED, 40000) for r in sent[0].results]
    async with watching(nic, kinds=[pb.EVENT_KIND_MAPPING]) as w:
        got = [r async for r in client.packet_stream(
            "eth0", pb.PACKET_DIRECTION_RX, [[pb.Packet(id=i, data=d) for i, d in enumerate(wire)]]
        )]  # fmt: skip
        # (transport mode: the packet goes up with the outer, NATed source address)
        assert [r.verdict for r in got[0].results] == [pb.VERDICT_PASS] * 3
        (event,) = await w.wait_for(1)  # the max age holds back the second and third
        assert len(await w.settle()) == 1
    m = event.mapping
    assert m.ref == pb.StateRef(dev="eth0", offload_handle=in_handle)
    assert (m.id.daddr, m.id.spi, m.id.proto, m.reqid) == (PEER, 0x200, 50, 42)
    assert (m.old_saddr, m.old_sport, m.new_saddr, m.new_sport) == (LOCAL, 4500, NATTED, 40000)
    assert format_event(event) == (
        f"Mapping change {LOCAL}:4500 -> {NATTED}:40000\n"
        f"\tdst {PEER}  reqid 0x2a protocol esp  SPI 0x200\n"
    )
    (state,) = await client.list_states("eth0")
    assert state.sa.encap == encap  # the keymanager moves the SA, not the NIC

"""Packet offload end to end: two cabled devices with mirrored SAs and policies, real gRPC."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .builders import (
    V4_TRANSPORT,
    V4_TUNNEL,
    V6_TRANSPORT,
    V6_TUNNEL,
    Events,
    Tap,
    Tunnel,
    install,
    packets,
    policy,
    send,
    udp4,
    udp6,
)

TX, RX = pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX
V4_IN_V6 = Tunnel(outer_src="2001:db8::1", outer_dst="2001:db8::2")
V6_IN_V4 = Tunnel(inner_src="2001:db8:1::/64", inner_dst="2001:db8:2::/64")


@pytest.fixture
async def cabled(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    args = ["--device", "eth0", "--device", "eth1", "--cable", "eth0:eth1"]
    async with running_server(sock_dir, *args) as pair:
        yield pair


def inner_packets(t: Tunnel, count: int, size: int = 200) -> list[bytes]:
    src = t.inner_src.split("/")[0].replace("::", "::10") if ":" in t.inner_src else None
    if src is None:
        base_s, base_d = t.inner_src.split("/")[0], t.inner_dst.split("/")[0]
        src = base_s[: base_s.rfind(".")] + ".10" if t.mode == xpb.XFRM_MODE_TUNNEL else base_s
        dst = base_d[: base_d.rfind(".")] + ".20" if t.mode == xpb.XFRM_MODE_TUNNEL else base_d
        return packets(udp4, src, dst, count, size)
    if t.mode == xpb.XFRM_MODE_TUNNEL:
        dst = t.inner_dst.split("/")[0].replace("::", "::20")
    else:
        src, dst = t.inner_src.split("/")[0], t.inner_dst.split("/")[0]
    return packets(udp6, src, dst, count, size)


def verdicts(results: list[pb.PacketResult]) -> dict[tuple[int, str], int]:
    return dict(collections.Counter((r.verdict, r.drop_reason) for r in results))


async def counters(client: Client, dev: str) -> dict[str, int]:
    stats = await client.get_stats(dev)
    return {c.name: c.value for c in stats.total if c.value}


@pytest.mark.parametrize(
    "tunnel",
    [V4_TUNNEL, V6_TUNNEL, V4_IN_V6, V6_IN_V4, V4_TRANSPORT, V6_TRANSPORT],
    ids=["v4-tunnel", "v6-tunnel", "v4-in-v6", "v6-in-v4", "v4-transport", "v6-transport"],
)
async def test_thousands_of_packets_arrive_byte_exact(
    cabled: tuple[OffloadServer, Client], tunnel: Tunnel
) -> None:
    _, client = cabled
    out_handle, in_handle = await install(client, tunnel, "eth0", "eth1")
    tap = Tap(client, "eth1", pb.PORT_HOST)
    await tap.ready()
    sent = inner_packets(tunnel, 2000)
    results = await send(client, "eth0", TX, sent)
    assert verdicts(results) == {(pb.VERDICT_PASS, ""): 2000}
    assert [r.id for r in results] == list(range(2000))
    assert {r.offload_handle for r in results} == {out_handle}
    assert all(r.data[9 if r.data[0] >> 4 == 4 else 6] == 50 for r in results)  # ESP on the wire
    assert await tap.wait_for(2000) == sent
    tap.close()
    for dev, handle in (("eth0", out_handle), ("eth1", in_handle)):
        cur = await client.update_curlft(dev, handle)
        assert (cur.curlft.packets, cur.curlft.bytes) == (2000, sum(map(len, sent)))
    assert await counters(client, "eth0") == {}
    assert await counters(client, "eth1") == {}


async def test_replayed_and_tampered_packets_are_dropped_and_counted(
    cabled: tuple[OffloadServer, Client],
) -> None:
    _, client = cabled
    await client.set_cable("eth0")  # unplug: the wire side is driven by hand here
    _, in_handle = await install(client, V4_TUNNEL, "eth0", "eth1")
    sent = inner_packets(V4_TUNNEL, 100)
    wire = [r.data for r in await send(client, "eth0", TX, sent)]
    tampered = [w[:-1] + bytes([w[-1] ^ 1]) for w in wire[:7]]
    # the tampered copies first (they must not move the window), then the real ones, then
    # replays: 5 left of the 64-packet window, 5 duplicates inside it
    results = await send(client, "eth1", RX, tampered + wire + wire[:5] + wire[95:])
    assert [r.data for r in results[7:107]] == sent
    assert verdicts(results) == {
        (pb.VERDICT_DROP, "XfrmInStateProtoError"): 7,
        (pb.VERDICT_PASS, ""): 100,
        (pb.VERDICT_DROP, "XfrmInStateSeqError"): 10,
    }
    assert await counters(client, "eth1") == {
        "XfrmInStateProtoError": 7,
        "XfrmInStateSeqError": 10,
    }
    cur = await client.update_curlft("eth1", in_handle)
    assert (cur.stats.integrity_failed, cur.stats.replay_window, cur.stats.replay) == (7, 5, 5)
    assert cur.curlft.packets == 100


async def test_unknown_spi_and_non_esp_packets(cabled: tuple[OffloadServer, Client]) -> None:
    _, client = cabled
    await install(client, V4_TUNNEL, "eth0", "eth1")
    wire = [r.data for r in await send(client, "eth0", TX, inner_packets(V4_TUNNEL, 1))]
    esp = bytearray(wire[0])
    esp[20:24] = (0xBAD).to_bytes(4, "big")  # an SPI nobody has
    plain_protected = inner_packets(V4_TUNNEL, 1)[0]  # cleartext that the policy wants protected
    plain_other = udp4("192.0.2.99", "192.0.2.2", b"hello")  # no policy covers it
    results = await send(client, "eth1", RX, [bytes(esp), plain_protected, plain_other, b"\x45"])
    assert [(r.verdict, r.drop_reason) for r in results] == [
        (pb.VERDICT_DROP, "XfrmInNoStates"),
        (pb.VERDICT_DROP, "XfrmInTmplMismatch"),
        (pb.VERDICT_PASS, ""),
        (pb.VERDICT_DROP, "XfrmInHdrError"),
    ]
    assert results[2].data == plain_other


async def test_bypass_block_and_acquire_on_tx(cabled: tuple[OffloadServer, Client]) -> None:
    server, client = cabled
    # out policy without any state: acquire; a block policy for another net
    await client.policy_add(policy(V4_TUNNEL, "eth0", inbound=False))
    block = policy(Tunnel(inner_src="198.51.100.0/24", inner_dst="192.0.2.128/25"), "eth0", False)
    block.action = xpb.POLICY_ACTION_BLOCK
    del block.tmpl[:]
    await client.policy_add(block)
    protected = inner_packets(V4_TUNNEL, 5)
    blocked = udp4("198.51.100.1", "192.0.2.200", b"x")
    free = udp4("198.51.100.1", "192.0.2.5", b"y")
    async with Events(server, client, devs=["eth0"], kinds=[pb.EVENT_KIND_ACQUIRE]) as events:
        results = await send(client, "eth0", TX, [*protected, blocked, free])
        event = await events.next()
        assert events.published() == 1  # one acquire covers the 5 packets
    assert [(r.verdict, r.drop_reason) for r in results] == [
        *[(pb.VERDICT_DROP, "XfrmOutNoStates")] * 5,
        (pb.VERDICT_DROP, "XfrmOutPolBlock"),
        (pb.VERDICT_PASS, ""),
    ]
    assert results[6].data == free
    assert event.kind == pb.EVENT_KIND_ACQUIRE and event.dev == "eth0"
    assert event.acquire.tmpl.reqid == V4_TUNNEL.reqid
    assert event.acquire.tmpl.id.daddr == V4_TUNNEL.outer_dst
    assert event.acquire.sel.saddr == "198.51.100.10" and event.acquire.sel.prefixlen_s == 32
    assert await counters(client, "eth0") == {"XfrmOutNoStates": 5, "XfrmOutPolBlock": 1}


async def test_packet_limits_expire_in_the_middle_of_a_stream(
    cabled: tuple[OffloadServer, Client],
) -> None:
    server, client = cabled
    limited = Tunnel(lft=xpb.XfrmLifetimeCfg(soft_packet_limit=10, hard_packet_limit=20))
    out_handle, _ = await install(client, limited, "eth0", "eth1")
    async with Events(server, client, devs=["eth0"], kinds=[pb.EVENT_KIND_EXPIRE]) as events:
        results = await send(client, "eth0", TX, inner_packets(limited, 30), batch=8)
        soft, hard = await events.next(), await events.next()
    assert [r.verdict for r in results] == [pb.VERDICT_PASS] * 20 + [pb.VERDICT_DROP] * 10
    # The rest of the batch that reached the limit meets the expired state; after it the
    # state is no longer a lookup result (the kernel deletes it): no state, an acquire.
    assert {r.drop_reason for r in results[20:24]} == {"XfrmOutStateExpired"}
    assert {r.drop_reason for r in results[24:]} == {"XfrmOutNoStates"}
    assert (soft.expire.hard, soft.expire.limit, soft.expire.ref.offload_handle) == (
        False,
        "packets",
        out_handle,
    )
    assert (hard.expire.hard, hard.expire.limit) == (True, "packets")
    assert soft.seq < hard.seq


async def test_state_deleted_mid_stream_is_never_used_again(
    cabled: tuple[OffloadServer, Client],
) -> None:
    _, client = cabled
    out_handle, _ = await install(client, V4_TUNNEL, "eth0", "eth1")
    sent = inner_packets(V4_TUNNEL, 40)
    done: list[pb.PacketResult] = []
    answered = asyncio.Event()

    async def batches() -> AsyncIterator[list[pb.Packet]]:
        # Separate RPCs are not ordered with each other on the wire: the delete goes out
        # once the first batch is answered, and the second batch once the delete is.
        yield [pb.Packet(id=i, data=sent[i]) for i in range(20)]
        await answered.wait()
        await client.state_delete("eth0", out_handle)
        yield [pb.Packet(id=i, data=sent[i]) for i in range(20, 40)]

    async for reply in client.packet_stream("eth0", TX, batches()):
        done.extend(reply.results)
        answered.set()
    assert [r.verdict for r in done] == [pb.VERDICT_PASS] * 20 + [pb.VERDICT_DROP] * 20
    assert {r.drop_reason for r in done[20:]} == {"XfrmOutNoStates"}
    assert {r.offload_handle for r in done[20:]} == {0}
    await client.state_free("eth0", out_handle)
    assert await counters(client, "eth0") == {"XfrmOutNoStates": 20}
    assert (await client.get_device("eth0")).state_count == 0


async def test_a_cancelled_stream_leaves_nothing_behind(
    cabled: tuple[OffloadServer, Client],
) -> None:
    _, client = cabled
    await install(client, V4_TUNNEL, "eth0", "eth1")
    sent = inner_packets(V4_TUNNEL, 64)
    baseline = len(asyncio.all_tasks())
    release = asyncio.Event()

    async def batches() -> AsyncIterator[list[pb.Packet]]:
        yield [pb.Packet(id=i, data=sent[i]) for i in range(32)]
        await release.wait()  # the client goes away with the stream open
        yield [pb.Packet(id=i, data=sent[i]) for i in range(32, 64)]

    stream = client.packet_stream("eth0", TX, batches())
    first = await anext(stream)
    assert len(first.results) == 32
    await stream.aclose()  # type: ignore[attr-defined]
    async with asyncio.timeout(5):  # the server's side of the stream is gone too
        while len(asyncio.all_tasks()) > baseline:
            await asyncio.sleep(0.01)
    # the device carries on: the next stream continues the sequence numbers
    results = await send(client, "eth0", TX, sent[32:])
    assert [r.verdict for r in results] == [pb.VERDICT_PASS] * 32
    assert [int.from_bytes(r.data[24:28], "big") for r in results] == list(range(33, 65))

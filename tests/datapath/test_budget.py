"""One packet budget for the whole server: streams that send large batches and never read
are held back by it (they wait, the bytes held never pass it), and control calls are
still answered; when the streams go, the budget is whole again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from xfrm_offload.server.datapath import PacketBudget
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc
from xfrm_offload.v1.transport import CHANNEL_OPTIONS

from ..conftest import running_server, until
from .builders import Tunnel, packets, policy, sa, udp4

TX = pb.PACKET_DIRECTION_TX
STREAMS = 4
#: Batches each stream offers at most (it is held back long before).
OFFERED = 200


@pytest.mark.parametrize("workers", [(), ("--workers", "1")], ids=["inline", "workers"])
async def test_streams_that_do_not_read_wait_inside_the_budget_and_control_calls_answer(
    sock_dir: Path, workers: tuple[str, ...]
) -> None:
    async with running_server(sock_dir, "--packet-budget", "1", *workers) as (server, client):
        t = Tunnel()
        assert (await client.state_add(sa(t, "eth0", False))).offloaded
        await client.policy_add(policy(t, "eth0", False))
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 128, 1400)
        request = pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data))
        size = request.ByteSize()
        budget = server.datapath.budget
        assert budget.limit == 1 << 20
        # Observe every charge: the bytes held never pass the budget, at no moment.
        seen: list[int] = []
        acquire = budget.acquire

        async def watched(amount: int) -> None:
            await acquire(amount)
            seen.append(budget.held)

        budget.acquire = watched  # type: ignore[method-assign]
        sent = [0] * STREAMS

        def flood(k: int) -> AsyncIterator[pb.PacketStreamRequest]:
            async def gen() -> AsyncIterator[pb.PacketStreamRequest]:
                while sent[k] < OFFERED:
                    yield request
                    sent[k] += 1

            return gen()

        # The streams on a channel of their own whose HTTP/2 windows stay at gRPC's 64 kB
        # (no BDP probe): a window the control calls' traffic grew later would let the
        # server write answers nobody reads, and the budget would move.
        flood_channel = aio.insecure_channel(
            client.address, options=[*CHANNEL_OPTIONS, ("grpc.http2.bdp_probe", 0)]
        )
        datapath = offload_pb2_grpc.DatapathServiceStub(flood_channel)
        calls = [datapath.PacketStream(flood(k)) for k in range(STREAMS)]  # never read
        # Every stream is held: the budget is taken and charges are waiting for it.
        await until(lambda: budget.waits >= STREAMS, "streams waiting on the budget")
        assert budget.held + budget.charge(size) > budget.limit  # no room for one more batch
        assert max(seen) <= budget.limit and budget.peak <= budget.limit
        held = budget.held
        # Control calls are answered while the streams are stalled, with and without workers.
        for _ in range(5):
            devices = await client.list_devices()
            assert [d.name for d in devices] == ["eth0"]
            stats = await client.get_stats()
            assert stats.total is not None
        assert budget.held == held  # nothing moved: the streams stayed held
        assert all(n < OFFERED for n in sent)
        # The streams go away: everything they held comes back.
        for call in calls:
            call.cancel()
        await until(lambda: server.datapath.open_streams == 0, "streams ended")
        await flood_channel.close(None)
        assert budget.held == 0
        assert budget.peak <= budget.limit


async def test_budget_serves_waiters_in_order_and_a_batch_larger_than_it_runs_alone() -> None:
    budget = PacketBudget(100)
    await budget.acquire(60)
    order: list[str] = []

    async def take(name: str, amount: int) -> None:
        await budget.acquire(amount)
        order.append(name)

    assert budget.charge(10) == 40 and budget.charge(500) == 100  # 4x, at most the budget
    big = asyncio.create_task(take("big", budget.charge(500)))  # the whole budget
    small = asyncio.create_task(take("small", 10))  # would fit now, but waits its turn
    await asyncio.sleep(0)
    assert order == [] and budget.waits == 2
    budget.release(60)
    await asyncio.sleep(0)
    assert order == ["big"] and budget.held == 100
    budget.release(100)
    await small
    assert order == ["big", "small"] and budget.held == 10 and budget.peak == 100
    # A waiter that is cancelled leaves no charge behind.
    await budget.acquire(90)
    gone = asyncio.create_task(take("gone", 50))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    budget.release(100)
    assert budget.held == 0
    await big


async def test_the_budget_flag_is_checked() -> None:
    from xfrm_offload.server.config import parse_args

    assert parse_args([]).packet_budget == 256 << 20
    assert parse_args(["--packet-budget", "64"]).packet_budget == 64 << 20
    for bad in ("0", "-1", "x"):
        with pytest.raises(SystemExit):
            parse_args(["--packet-budget", bad])


async def test_room_waits_while_the_budget_is_full_or_others_wait() -> None:
    budget = PacketBudget(10)
    await budget.room()  # empty: room at once
    await budget.acquire(10)
    gate = asyncio.create_task(budget.room())
    await asyncio.sleep(0)
    assert not gate.done()
    budget.release(10)
    await gate
    assert budget.held == 0 and budget.waits == 1


async def test_shutdown_ends_a_stream_that_waits_for_room_in_the_budget(sock_dir: Path) -> None:
    """Stream A never reads, and its first batch is charged the whole budget; stream B
    sends one batch and waits, its request side open, for room to read it. Shutdown
    (twice, as a second signal would) ends B at once with OK; A, whose answer nobody
    reads, stays until its client goes (or the server's grace ends it)."""
    async with running_server(sock_dir, "--packet-budget", "1") as (server, client):
        t = Tunnel()
        assert (await client.state_add(sa(t, "eth0", False))).offloaded
        await client.policy_add(policy(t, "eth0", False))
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 256, 1400)
        request = pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data))
        budget = server.datapath.budget
        assert budget.charge(request.ByteSize()) == budget.limit  # one batch takes it all
        held_open = asyncio.Event()

        async def once() -> AsyncIterator[pb.PacketStreamRequest]:
            yield request
            await held_open.wait()  # the request side stays open: nothing more to write

        flood_channel = aio.insecure_channel(
            client.address, options=[*CHANNEL_OPTIONS, ("grpc.http2.bdp_probe", 0)]
        )
        datapath = offload_pb2_grpc.DatapathServiceStub(flood_channel)
        a = datapath.PacketStream(once())  # never read
        await until(lambda: budget.held == budget.limit, "A holding the whole budget")
        b = datapath.PacketStream(once())
        await until(lambda: server.datapath.open_streams == 2, "B open")
        await until(lambda: len(server.datapath._reading) == 2, "A and B waiting for room")
        server.datapath.shutdown()
        server.datapath.shutdown()
        assert await asyncio.wait_for(b.code(), 5) == grpc.StatusCode.OK
        assert [r async for r in b] == []  # it never had room to read its batch
        assert server.datapath.open_streams == 1 and not a.done()
        a.cancel()
        held_open.set()
        await until(lambda: server.datapath.open_streams == 0, "A ended")
        await flood_channel.close(None)
        assert budget.held == 0

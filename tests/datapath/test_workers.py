"""Devices in worker processes (--workers): the same NIC, sharded over processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.workers import WorkerPool
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from .builders import Events, Tap, Tunnel, install, packets, sa, send, udp4

TX = pb.PACKET_DIRECTION_TX
LINK = pb.EVENT_KIND_LINK
FOUR_DEVICES = [
    "--workers", "2",
    "--device", "eth0", "--device", "eth1", "--device", "eth2", "--device", "eth3",
    "--cable", "eth0:eth1", "--cable", "eth2:eth3",
]  # fmt: skip


async def test_cables_across_workers_carry_traffic_both_pairs_at_once(sock_dir: Path) -> None:
    async with running_server(sock_dir, *FOUR_DEVICES) as (server, client):
        pool = server.nic.host
        assert isinstance(pool, WorkerPool) and len(pool.workers) == 2
        # round-robin: eth0, eth2 on the first worker; eth1, eth3 on the second
        assert pool.of_device["eth0"] is pool.of_device["eth2"] is not pool.of_device["eth1"]
        pairs = [("eth0", "eth1", Tunnel(spi=0x100)), ("eth2", "eth3", Tunnel(spi=0x200))]
        taps = []
        for tx, rx, tunnel in pairs:
            await install(client, tunnel, tx, rx)
            tap = Tap(client, rx, pb.PORT_HOST)
            await tap.ready()
            taps.append(tap)
        sent = packets(udp4, "198.51.100.7", "203.0.113.9", 1500, 300)
        results = await asyncio.gather(*(send(client, tx, TX, sent) for tx, _, _ in pairs))
        for result, tap in zip(results, taps, strict=True):
            assert [r.verdict for r in result] == [pb.VERDICT_PASS] * 1500
            assert await tap.wait_for(1500) == sent
            tap.close()
        stats = await client.get_stats()
        assert [c.value for c in stats.total if c.value] == []
        assert [d.state_count for d in await client.list_devices()] == [1, 1, 1, 1]


async def health_statuses(client: Client, seen: list[int]) -> None:
    """Every status the server's overall health reports, as Watch streams them."""
    stub = health_pb2_grpc.HealthStub(client.channel)
    async for reply in stub.Watch(health_pb2.HealthCheckRequest(service="")):
        seen.append(reply.status)


async def test_a_dead_worker_is_a_nic_reset_and_comes_back_empty(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(sock_dir, *FOUR_DEVICES) as (server, client):
        pool = server.nic.host
        assert isinstance(pool, WorkerPool)
        before = {d.name: (d.ifindex, d.profile) for d in await client.list_devices()}
        (out0, in2) = await install(client, Tunnel(), "eth0", "eth2")  # both on worker 0
        await install(client, Tunnel(spi=0x300), "eth1", "eth3")  # worker 1
        # The replacement is held when it reports ready, so the outage can be looked at.
        held: list[Any] = []
        monkeypatch.setattr(pool, "_ready", held.append)
        seen: list[int] = []
        watch = asyncio.create_task(health_statuses(client, seen))
        async with Events(server, client, devs=["eth0", "eth2"]) as events:
            dead = pool.of_device["eth0"].process
            os.kill(dead.pid, signal.SIGKILL)  # type: ignore[arg-type]
            got = [await events.next() for _ in range(2 + 4)]  # 2 LINKs, 2 SAs and 2 SPs
            both = ("eth0", "eth2")
            assert sorted((e.dev, e.kind, e.link.link, e.object.reason) for e in got) == sorted(
                [(dev, LINK, pb.LINK_STATE_DOWN, "") for dev in both]
                + [(dev, pb.EVENT_KIND_STATE_DELETED, 0, "link-down") for dev in both]
                + [(dev, pb.EVENT_KIND_POLICY_DELETED, 0, "link-down") for dev in both]
            )
            assert got[0].kind == pb.EVENT_KIND_LINK  # the link goes down first
            deleted = {e.object.state.offload_handle for e in got if e.object.HasField("state")}
            assert deleted == {out0, in2}
            # The outage: calls on its devices fail UNAVAILABLE, health says NOT_SERVING,
            # the other worker's devices keep working.
            with pytest.raises(XfrmOffloadError) as info:
                await client.get_device("eth0")
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
            assert "eth0, eth2: worker process" in info.value.message
            assert (await client.get_device("eth3")).state_count == 1
            async with asyncio.timeout(10):
                while not held:
                    await asyncio.sleep(0.01)
                while health_pb2.HealthCheckResponse.NOT_SERVING not in seen:
                    await asyncio.sleep(0.01)
            monkeypatch.undo()
            pool._ready(held[0])  # the replacement takes over
            back = [await events.next() for _ in range(2)]
            assert sorted((e.dev, e.kind, e.link.link) for e in back) == [
                ("eth0", LINK, pb.LINK_STATE_UP),
                ("eth2", LINK, pb.LINK_STATE_UP),
            ]
        async with asyncio.timeout(10):
            while seen[-1] != health_pb2.HealthCheckResponse.SERVING:
                await asyncio.sleep(0.01)
        watch.cancel()
        assert seen == [
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
            health_pb2.HealthCheckResponse.SERVING,
        ]
        # Back empty, with the same names, ifindexes and profiles; and it serves again.
        after = await client.list_devices()
        assert {d.name: (d.ifindex, d.profile) for d in after} == before
        assert {d.name: d.state_count for d in after} == {
            "eth0": 0,
            "eth1": 1,
            "eth2": 0,
            "eth3": 1,
        }
        assert pool.of_device["eth0"].process.pid != dead.pid
        await install(client, Tunnel(), "eth0", "eth2")  # a keymanager re-adds
        assert pool.restarts == 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert [r for r in caplog.records if r.exc_info] == [], text  # no traceback
    assert text.count("worker died") == 1, text
    assert "never retrieved" not in text and "BrokenPipe" not in text


async def test_a_worker_that_cannot_start_is_retried_with_backoff(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server(sock_dir, "--workers", "1", "--device", "eth0") as (server, client):
        pool = server.nic.host
        assert isinstance(pool, WorkerPool)
        ready = pool._ready
        held: list[Any] = []
        monkeypatch.setattr(pool, "_ready", held.append)  # no replacement gets ready
        for deaths in range(1, 4):
            worker = pool.starting.get(0) or pool.workers[0]
            os.kill(worker.process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            async with asyncio.timeout(10):
                while pool.failures.get(0, 0) < deaths:
                    await asyncio.sleep(0.01)
                while 0 not in pool.starting:  # the next one starts, after its backoff
                    await asyncio.sleep(0.01)
        assert pool.restarts == 0
        last = pool.starting[0]
        async with asyncio.timeout(30):
            while last not in held:
                await asyncio.sleep(0.01)
        monkeypatch.undo()
        ready(last)
        assert (pool.restarts, pool.failures, pool.workers[0]) == (1, {}, last)
        assert (await client.get_device("eth0")).state_count == 0


def test_workers_argument_is_checked() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xfrm_offload.server", "--workers", "many"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "expected a number of workers from 0 to 64" in proc.stderr


async def test_events_reach_watchers_when_the_caller_gave_up(sock_dir: Path) -> None:
    """A link-down flush whose caller stops waiting still tells every watcher about every
    deleted state (the events travel with the worker's answer, not with the caller)."""
    async with running_server(sock_dir, "--workers", "1", "--device", "eth0") as (server, client):
        await client.state_add_bulk(
            [[sa(Tunnel(spi=0x100 + i), "eth0", False) for i in range(300)]]
        )
        pool = server.nic.host
        assert isinstance(pool, WorkerPool)
        worker = pool.of_device["eth0"]
        async with Events(server, client, devs=["eth0"]) as events:
            # The worker is stopped while the call is sent, so the caller is certain to
            # give up (cancel) before the answer exists; then the worker goes on.
            os.kill(worker.process.pid, signal.SIGSTOP)  # type: ignore[arg-type]
            try:
                call = asyncio.create_task(client.set_link("eth0", up=False))
                async with asyncio.timeout(10):
                    while not worker.pending:  # the server handler waits on the worker
                        await asyncio.sleep(0.001)
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await call
                async with asyncio.timeout(10):
                    while not worker.pending[0].cancelled():  # the handler saw it go
                        await asyncio.sleep(0.001)
            finally:
                os.kill(worker.process.pid, signal.SIGCONT)  # type: ignore[arg-type]
            kinds = [(await events.next()).kind for _ in range(301)]
        assert kinds.count(pb.EVENT_KIND_STATE_DELETED) == 300
        assert pb.EVENT_KIND_LINK in kinds

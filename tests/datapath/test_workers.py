"""Devices in worker processes (--workers): the same NIC, sharded over processes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.workers import WorkerPool
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from .builders import Events, Tap, Tunnel, install, packets, sa, send, udp4

TX = pb.PACKET_DIRECTION_TX
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


async def test_a_dead_worker_is_unavailable_and_the_other_keeps_working(sock_dir: Path) -> None:
    async with running_server(sock_dir, *FOUR_DEVICES) as (server, client):
        pool = server.nic.host
        assert isinstance(pool, WorkerPool)
        await install(client, Tunnel(), "eth2", "eth3")
        pool.of_device["eth0"].process.kill()
        await asyncio.to_thread(pool.of_device["eth0"].process.join, 10)
        with pytest.raises(XfrmOffloadError) as info:
            await client.get_device("eth0")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert "eth0, eth2: worker process" in info.value.message
        assert (await client.get_device("eth3")).state_count == 1  # the other worker is fine


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
        async with Events(server, client, devs=["eth0"]) as events:
            impatient = Client(client.address, timeout=0.001)
            with contextlib.suppress(XfrmOffloadError):  # DEADLINE_EXCEEDED, most likely
                await impatient.set_link("eth0", up=False)
            await impatient.close()
            kinds = [(await events.next()).kind for _ in range(301)]
        assert kinds.count(pb.EVENT_KIND_STATE_DELETED) == 300
        assert pb.EVENT_KIND_LINK in kinds

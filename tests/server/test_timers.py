"""Time limits fire at their instant from one event-loop timer (Device.get_timer), not a
poll: on the real clock, in-process and with workers; an idle server arms nothing; the
virtual clock fires the same path exactly at the deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .sa_builders import gcm_sa, tweak
from .test_events import EXPIRE, until, watching

#: How late an expiry may be, measured from its deadline to the event's own time. The
#: timer fires within a millisecond or two on an idle machine; this leaves room for a
#: loaded one (the old 0.5 s poll was late by up to half a second).
LATENESS_BOUND = 0.25


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]], ids=["in-process", "workers"])
async def test_add_time_limit_fires_at_its_deadline_on_the_real_clock(
    sock_dir: Path, workers: list[str]
) -> None:
    async with running_server(sock_dir, *workers) as (server, client):
        await client.list_devices()  # a worker is up: the add below is not queued behind it
        sa = tweak(gcm_sa("eth0", 0x51), lft=xpb.XfrmLifetimeCfg(hard_add_expires_seconds=1))
        async with watching((server, client), kinds=[EXPIRE]) as w:
            # The state's add time is the server's clock when it takes the call: after
            # this, so the deadline is no earlier than ``before + 1``, and the figure
            # below is the lateness plus the call's own latency.
            before = server.clock.now()
            handle = (await client.state_add(sa)).offload_handle
            (event,) = await w.wait_for(1)
        assert (event.expire.ref.offload_handle, event.expire.hard) == (handle, True)
        lateness = event.time - (before + 1)
        assert 0 <= lateness < LATENESS_BOUND, lateness
        await until(lambda: server.nic.timer.armed is None)  # nothing else pending


async def test_an_idle_server_arms_no_timer(sock_dir: Path) -> None:
    async with running_server(sock_dir) as (server, client):
        assert server.nic.timer.armed is None
        assert server.nic.timer.deadlines == {}
        await client.state_add(gcm_sa("eth0", 0x52))  # no time limit
        assert server.nic.timer.armed is None
        sa = tweak(gcm_sa("eth0", 0x53), lft=xpb.XfrmLifetimeCfg(soft_add_expires_seconds=3600))
        handle = (await client.state_add(sa)).offload_handle
        assert server.nic.timer.armed is not None
        await client.state_delete("eth0", handle)
        assert server.nic.timer.armed is None  # the delete's reply disarmed it
        assert server.nic.timer.deadlines == {}


async def test_the_virtual_clock_fires_exactly_at_the_deadline(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--virtual-clock") as (server, client):
        sa = tweak(gcm_sa("eth0", 0x54), lft=xpb.XfrmLifetimeCfg(soft_add_expires_seconds=10))
        async with watching((server, client), kinds=[EXPIRE]) as w:
            added = server.clock.now()
            await client.state_add(sa)
            assert server.nic.timer.armed is None  # the virtual clock arms no loop timer
            assert server.nic.timer.deadlines == {"eth0": added + 10}
            await client.advance_clock(9.999)
            assert w.events == []
            assert server.nic.timer.deadlines == {"eth0": added + 10}
            now = await client.advance_clock(0.001)
            (event,) = await w.wait_for(1)
        assert now >= added + 10
        assert (event.kind, event.expire.hard, event.time) == (pb.EVENT_KIND_EXPIRE, False, now)
        assert server.nic.timer.deadlines == {}

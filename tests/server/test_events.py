"""WatchEvents through the real gRPC server: what `ip xfrm monitor` would show.

Order and numbering, filters, time-based expiry on the virtual clock, a slow
subscriber's LOST marker, and the link-down flush (NETDEV_DOWN). Byte/packet
expiry, use-time expiry (needs a first use) and acquire need the packet path and
are not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import cast

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.events import Subscription
from xfrm_offload.server.workers import LocalDevices
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .sa_builders import DEVICE_ARGS, LOCAL, PEER, gcm_sa, packet_policy, tweak

Pair = tuple[OffloadServer, Client]
Event = pb.WatchEventsResponse

ADDED = pb.EVENT_KIND_STATE_ADDED
DELETED = pb.EVENT_KIND_STATE_DELETED
P_ADDED = pb.EVENT_KIND_POLICY_ADDED
P_DELETED = pb.EVENT_KIND_POLICY_DELETED
LINK = pb.EVENT_KIND_LINK
EXPIRE = pb.EVENT_KIND_EXPIRE
LOST = pb.EVENT_KIND_LOST

# These count on a bulk message's events all being published before the stream sends
# one: true when devices run in the server's process, not across a worker pipe.
LOCAL_ONLY = pytest.mark.skipif(
    bool(os.environ.get("XO_TEST_WORKERS")), reason="needs devices in the server process"
)


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[Pair]:
    async with running_server(sock_dir, *DEVICE_ARGS, "--virtual-clock") as pair:
        yield pair


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


class Watcher:
    """One WatchEvents stream read in the background into ``events``."""

    def __init__(
        self, server: OffloadServer, client: Client, devs: Iterable[str], kinds: Iterable[int]
    ) -> None:
        self.server = server
        self.events: list[Event] = []
        self.error: XfrmOffloadError | None = None
        # the client's watch_events is an async generator: aclose() ends the call
        self._stream = cast(
            AsyncGenerator[Event, None],
            client.watch_events(devs, [cast(pb.EventKind, k) for k in kinds]),
        )
        self._task: asyncio.Task[None] | None = None
        #: The server's end of this stream.
        self.sub: Subscription | None = None

    async def _run(self) -> None:
        try:
            async for event in self._stream:
                self.events.append(event)
        except XfrmOffloadError as exc:
            self.error = exc

    async def start(self) -> Watcher:
        """Start reading; return once the server has subscribed this stream."""
        hub = self.server.nic.hub
        before = hub.subscriptions
        self._task = asyncio.create_task(self._run())
        await until(lambda: bool(hub.subscriptions - before))
        (self.sub,) = hub.subscriptions - before
        return self

    async def wait_for(self, count: int) -> list[Event]:
        await until(lambda: len(self.events) >= count)
        return self.events

    async def settle(self) -> list[Event]:
        """Wait until everything the server sent this stream has arrived (to check that
        nothing more comes: what a call raised is queued before the call returns)."""
        sub = self.sub
        assert sub is not None
        await until(lambda: not sub.queue and not sub.lost and len(self.events) == sub.sent)
        return self.events

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stream.aclose()


@contextlib.asynccontextmanager
async def watching(
    pair: Pair, devs: Iterable[str] = (), kinds: Iterable[int] = ()
) -> AsyncIterator[Watcher]:
    server, client = pair
    watcher = await Watcher(server, client, devs, kinds).start()
    try:
        yield watcher
    finally:
        await watcher.stop()


def kinds_of(events: Iterable[Event]) -> list[int]:
    return [e.kind for e in events]


async def test_lifecycle_events_in_order_with_increasing_seq(nic: Pair) -> None:
    server, client = nic
    async with watching(nic) as w:
        sa = await client.state_add(gcm_sa("eth0", 0x100))
        pol = await client.policy_add(packet_policy("eth0"))
        await client.state_delete("eth0", sa.offload_handle)
        await client.state_free("eth0", sa.offload_handle)  # free is silent, as in the kernel
        await client.policy_delete("eth0", pol.offload_handle)
        await client.set_link("mlx0", up=False)
        await client.set_link("mlx0", up=True)
        events = await w.wait_for(6)
        assert kinds_of(events) == [ADDED, P_ADDED, DELETED, P_DELETED, LINK, LINK]
        seqs = [e.seq for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + 6))
        assert [e.dev for e in events] == ["eth0"] * 4 + ["mlx0"] * 2
        now = server.clock.now()
        assert all(e.time == pytest.approx(now) for e in events)
        added, p_added, deleted, p_deleted, down, up = events
        ref = pb.StateRef(dev="eth0", offload_handle=sa.offload_handle)
        assert added.object.state == ref and deleted.object.state == ref
        assert (added.object.id.daddr, added.object.id.spi, added.object.id.proto) == (
            PEER,
            0x100,
            50,
        )
        assert (added.object.reason, deleted.object.reason) == ("", "user")
        pref = pb.PolicyRef(dev="eth0", offload_handle=pol.offload_handle)
        assert p_added.object.policy == pref and p_deleted.object.policy == pref
        assert p_deleted.object.reason == "user"
        assert (down.link.link, up.link.link) == (pb.LINK_STATE_DOWN, pb.LINK_STATE_UP)
        assert len(await w.settle()) == 6


async def test_what_happens_unwatched_is_never_shown_later(nic: Pair) -> None:
    """Events of calls made while nobody watches are dropped: a watcher that subscribes
    afterwards sees its own first event first, and nothing piles up on the devices."""
    server, client = nic
    unwatched = await client.state_add(gcm_sa("eth0", 0x300))
    await client.state_delete("eth0", unwatched.offload_handle)
    await client.set_link("mlx0", up=False)
    await client.set_link("mlx0", up=True)
    async with watching(nic) as w:
        sa = await client.state_add(gcm_sa("eth0", 0x301))
        events = await w.wait_for(1)
        assert kinds_of(events) == [ADDED]
        assert events[0].object.state.offload_handle == sa.offload_handle
        assert len(await w.settle()) == 1
    host = server.nic.host
    if isinstance(host, LocalDevices):  # the devices live in this process: nothing queued
        assert all(not device.pop_events() for device in host.devices.values())


async def test_refusals_and_declines_publish_nothing(nic: Pair) -> None:
    _, client = nic
    async with watching(nic) as w:
        with pytest.raises(XfrmOffloadError):
            await client.state_add(gcm_sa("sim0", icv_bits=96))
        reply = await client.state_add(gcm_sa("sw0"))  # declined: stays in software
        assert not reply.offloaded
        await client.set_link("eth0", up=True)  # already up: no change, no event
        await client.state_add(gcm_sa("eth0"))
        events = await w.wait_for(1)
        assert kinds_of(await w.settle()) == [ADDED]
        assert events[0].dev == "eth0"


FILTERS: list[tuple[str, list[str], list[int], list[tuple[str, int]]]] = [
    ("all", [], [], [("eth0", ADDED), ("mlx0", ADDED), ("mlx0", P_ADDED), ("eth0", DELETED)]),
    ("dev-mlx0", ["mlx0"], [], [("mlx0", ADDED), ("mlx0", P_ADDED)]),
    (
        "dev-eth0-and-mlx0",
        ["eth0", "mlx0"],
        [],
        [("eth0", ADDED), ("mlx0", ADDED), ("mlx0", P_ADDED), ("eth0", DELETED)],
    ),
    ("kind-state-added", [], [ADDED], [("eth0", ADDED), ("mlx0", ADDED)]),
    ("kind-deleted-or-policy", [], [DELETED, P_ADDED], [("mlx0", P_ADDED), ("eth0", DELETED)]),
    ("dev-and-kind", ["eth0"], [ADDED], [("eth0", ADDED)]),
    ("dev-without-events", ["sim0"], [], []),
]


@pytest.mark.parametrize(
    ("devs", "kinds", "expected"),
    [pytest.param(d, k, e, id=name) for name, d, k, e in FILTERS],
)
async def test_filters(
    nic: Pair, devs: list[str], kinds: list[int], expected: list[tuple[str, int]]
) -> None:
    _, client = nic
    async with watching(nic, devs, kinds) as w, watching(nic) as everything:
        h = (await client.state_add(gcm_sa("eth0"))).offload_handle
        await client.state_add(gcm_sa("mlx0"))
        await client.policy_add(packet_policy("mlx0"))
        await client.state_delete("eth0", h)
        await everything.wait_for(4)  # the unfiltered stream saw all: the filtered one is done
        got = await w.settle()
        assert [(e.dev, e.kind) for e in got] == expected
        # filtered events keep their server-wide numbers: gaps, never renumbering
        numbers = {(e.dev, e.kind): e.seq for e in everything.events}
        assert [e.seq for e in got] == [numbers[(e.dev, e.kind)] for e in got]


async def test_watch_unknown_device_is_not_found(nic: Pair) -> None:
    _, client = nic
    with pytest.raises(XfrmOffloadError) as info:
        async for _ in client.watch_events(["eth0", "nope"]):
            pass
    err = info.value
    assert (err.code, err.field, err.errno) == (grpc.StatusCode.NOT_FOUND, "devs", errno.ENODEV)
    assert "'nope'" in err.message


# -- time-based expiry on the virtual clock --------------------------------------------


async def test_add_time_soft_then_hard_exactly_once(nic: Pair) -> None:
    server, client = nic
    sa = tweak(
        gcm_sa("eth0", 0x77),
        lft=xpb.XfrmLifetimeCfg(soft_add_expires_seconds=10, hard_add_expires_seconds=20),
    )
    async with watching(nic, kinds=[EXPIRE]) as w:
        handle = (await client.state_add(sa)).offload_handle
        added_at = server.clock.now()
        await client.advance_clock(9.5)
        assert await w.settle() == []
        await client.advance_clock(0.5)
        (soft,) = await w.wait_for(1)
        ref = pb.StateRef(dev="eth0", offload_handle=handle)
        assert (soft.dev, soft.expire.ref, soft.expire.hard, soft.expire.limit) == (
            "eth0",
            ref,
            False,
            "add_time",
        )
        assert (soft.expire.id.daddr, soft.expire.id.spi, soft.expire.saddr) == (PEER, 0x77, LOCAL)
        state = await client.get_state("eth0", handle=handle)
        assert (state.expired, state.lifecycle) == (False, pb.LIFECYCLE_ACTIVE)
        await client.advance_clock(5)
        assert len(await w.settle()) == 1  # soft fires once
        await client.advance_clock(5)
        soft, hard = await w.wait_for(2)
        assert (hard.expire.ref, hard.expire.hard, hard.expire.limit) == (ref, True, "add_time")
        assert hard.seq > soft.seq
        assert hard.time == pytest.approx(server.clock.now())
        await client.advance_clock(100)
        assert len(await w.settle()) == 2  # hard fires once
    state = await client.get_state("eth0", handle=handle)
    assert state.expired
    (listed,) = await client.list_states("eth0")
    assert listed.expired
    cur = await client.update_curlft("eth0", handle)
    assert cur.curlft.add_time == int(added_at)


async def test_one_jump_past_both_limits(nic: Pair) -> None:
    """A clock jump over soft and hard at once: only hard, as xfrm_timer_handler checks
    hard first and never warns soft after it."""
    _, client = nic
    sa = tweak(
        gcm_sa("mlx0", packet=True),
        lft=xpb.XfrmLifetimeCfg(soft_add_expires_seconds=10, hard_add_expires_seconds=20),
    )
    async with watching(nic, kinds=[EXPIRE]) as w:
        await client.state_add(sa)
        await client.advance_clock(60)
        await w.wait_for(1)
        assert [(e.expire.hard, e.expire.limit) for e in await w.settle()] == [(True, "add_time")]


async def test_hard_only_limit(nic: Pair) -> None:
    _, client = nic
    sa = tweak(gcm_sa("eth0"), lft=xpb.XfrmLifetimeCfg(hard_add_expires_seconds=5))
    async with watching(nic, kinds=[EXPIRE]) as w:
        await client.state_add(sa)
        await client.advance_clock(5)
        await w.wait_for(1)
        assert [(e.expire.hard, e.expire.limit) for e in await w.settle()] == [(True, "add_time")]


async def test_use_time_needs_a_first_use(nic: Pair) -> None:
    """Use-time limits count from the first packet: with no traffic they never fire."""
    _, client = nic
    sa = tweak(
        gcm_sa("eth0"),
        lft=xpb.XfrmLifetimeCfg(soft_use_expires_seconds=5, hard_use_expires_seconds=10),
    )
    async with watching(nic, kinds=[EXPIRE]) as w:
        handle = (await client.state_add(sa)).offload_handle
        await client.advance_clock(1000)
        assert await w.settle() == []
    assert not (await client.get_state("eth0", handle=handle)).expired
    assert (await client.update_curlft("eth0", handle)).curlft.use_time == 0


async def test_deleted_state_never_expires(nic: Pair) -> None:
    _, client = nic
    sa = tweak(gcm_sa("eth0"), lft=xpb.XfrmLifetimeCfg(soft_add_expires_seconds=5))
    async with watching(nic, kinds=[EXPIRE]) as w:
        handle = (await client.state_add(sa)).offload_handle
        await client.state_delete("eth0", handle)
        await client.advance_clock(10)
        assert await w.settle() == []


# -- a slow subscriber -----------------------------------------------------------------


@LOCAL_ONLY
async def test_slow_subscriber_gets_one_lost_marker_then_resumes(nic: Pair) -> None:
    server, client = nic
    server.nic.hub.queue_limit = 5
    async with watching(nic, devs=["eth0"]) as slow:
        server.nic.hub.queue_limit = 4096
        # one bulk message: 20 events published before the stream can send any
        reply = await client.state_add_bulk([[gcm_sa("eth0", spi) for spi in range(1, 21)]])
        assert reply.added == 20
        events = await slow.wait_for(6)
        assert kinds_of(events[:5]) == [ADDED] * 5
        assert [e.object.id.spi for e in events[:5]] == [1, 2, 3, 4, 5]
        marker = events[5]
        assert (marker.kind, marker.lost.count, marker.dev) == (LOST, 15, "")
        # events resume, with their server-wide numbers showing the gap
        h = (await client.state_add(gcm_sa("eth0", 99))).offload_handle
        await client.state_delete("eth0", h)
        events = await slow.wait_for(8)
        assert kinds_of(events[6:]) == [ADDED, DELETED]
        assert events[6].seq == events[4].seq + 16
        assert len(await slow.settle()) == 8


@LOCAL_ONLY
async def test_lost_marker_ignores_kind_filter(nic: Pair) -> None:
    """LOST always comes, whatever the filter (the subscriber must know it missed some)."""
    server, client = nic
    server.nic.hub.queue_limit = 2
    async with watching(nic, kinds=[ADDED]) as slow:
        await client.state_add_bulk([[gcm_sa("eth0", spi) for spi in range(1, 6)]])
        events = await slow.wait_for(3)
        assert [(e.kind, e.lost.count) for e in await slow.settle()] == [
            (ADDED, 0),
            (ADDED, 0),
            (LOST, 3),
        ]
        assert len(events) == 3


# -- link down (NETDEV_DOWN) -----------------------------------------------------------


async def test_link_down_flushes_states_and_policies(nic: Pair) -> None:
    """Scenario 17: 2 SAs + 2 policies, link down: all 4 deleted and freed, with events."""
    _, client = nic
    out_sa = await client.state_add(gcm_sa("mlx0", 0x10, packet=True))
    in_sa = await client.state_add(
        gcm_sa("mlx0", 0x11, PEER, LOCAL, "in", packet=True, esn=True, replay_window=64)
    )
    out_p = await client.policy_add(packet_policy("mlx0", xpb.POLICY_DIR_OUT))
    in_p = await client.policy_add(packet_policy("mlx0", xpb.POLICY_DIR_IN, src=PEER, dst=LOCAL))
    other = await client.state_add(gcm_sa("eth0", 0x10))  # another device keeps its state
    async with watching(nic) as w:
        reply = await client.set_link("mlx0", up=False)
        assert (reply.flushed_states, reply.flushed_policies) == (2, 2)
        assert (reply.device.link, reply.device.state_count, reply.device.policy_count) == (
            pb.LINK_STATE_DOWN,
            0,
            0,
        )
        events = await w.wait_for(5)
        assert [(e.dev, e.kind, e.object.reason) for e in await w.settle()] == [
            ("mlx0", LINK, ""),
            ("mlx0", DELETED, "link-down"),
            ("mlx0", DELETED, "link-down"),
            ("mlx0", P_DELETED, "link-down"),
            ("mlx0", P_DELETED, "link-down"),
        ]
        assert events[0].link.link == pb.LINK_STATE_DOWN
        assert [e.object.state.offload_handle for e in events[1:3]] == [
            out_sa.offload_handle,
            in_sa.offload_handle,
        ]
        assert [e.object.policy.offload_handle for e in events[3:]] == [
            out_p.offload_handle,
            in_p.offload_handle,
        ]
    assert await client.list_states("mlx0") == []
    assert await client.list_policies("mlx0") == []
    # deleted *and* freed: the handles are gone
    with pytest.raises(XfrmOffloadError) as info:
        await client.state_free("mlx0", out_sa.offload_handle)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(XfrmOffloadError) as info:
        await client.policy_delete("mlx0", in_p.offload_handle)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert [s.offload_handle for s in await client.list_states()] == [other.offload_handle]
    # down again: nothing to flush, no event
    again = await client.set_link("mlx0", up=False)
    assert (again.flushed_states, again.flushed_policies) == (0, 0)
    # up, then a new add is needed (and works: same SPI, new handle)
    up = await client.set_link("mlx0", up=True)
    assert (up.device.link, up.flushed_states) == (pb.LINK_STATE_UP, 0)
    readded = await client.state_add(gcm_sa("mlx0", 0x10, packet=True))
    assert readded.offload_handle not in (out_sa.offload_handle, in_sa.offload_handle)
    await client.policy_add(packet_policy("mlx0", xpb.POLICY_DIR_OUT))
    device = await client.get_device("mlx0")
    assert (device.state_count, device.policy_count) == (1, 1)


async def test_link_down_on_netdevsim_frees_every_slot(nic: Pair) -> None:
    _, client = nic
    for spi in range(1, 34):
        await client.state_add(gcm_sa("sim0", spi))
    reply = await client.set_link("sim0", up=False)
    assert (reply.flushed_states, reply.flushed_policies) == (33, 0)
    await client.set_link("sim0", up=True)
    assert (await client.state_add(gcm_sa("sim0", 1))).offload_handle == 1 << 31


async def test_set_link_refusals(nic: Pair) -> None:
    _, client = nic
    with pytest.raises(XfrmOffloadError) as info:
        await client.set_link("nope", up=False)
    assert (info.value.code, info.value.field) == (grpc.StatusCode.NOT_FOUND, "name")
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await client.device.SetLinkState(pb.SetLinkStateRequest(name="eth0"))
    err = XfrmOffloadError.from_rpc_error(raw.value)
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, "link")


async def test_streams_end_cleanly_at_shutdown(nic: Pair) -> None:
    server, client = nic
    watcher = await Watcher(server, client, [], []).start()
    await client.state_add(gcm_sa("eth0"))
    await watcher.wait_for(1)
    await server.nic.close()  # what OffloadServer.stop does first
    assert watcher._task is not None
    await asyncio.wait_for(watcher._task, 5)
    assert watcher.error is None  # the stream ended with OK, not an error
    assert kinds_of(watcher.events) == [ADDED]

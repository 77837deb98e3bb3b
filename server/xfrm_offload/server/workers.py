"""Where devices live: in the server's own process, or sharded over worker processes.

``LocalDevices`` runs every device call inline on the event loop. ``WorkerPool``
(``xfrm-offloadd --workers N``) gives each of N worker processes a shard of the
devices (round-robin in --device order); the gRPC process forwards every call on a
device, control and packets alike, to that device's worker over a pipe. One worker
handles its calls strictly in the order they reach the pipe. Calls wait for the pipe
in two lanes: control calls go before packet chunks still waiting (a control call never
queues behind a packet flood); within a lane the order is kept. So a state deleted by a
call made before a chunk is not used by that chunk; a chunk already on the pipe is
processed in full before a later control call (a batch is handed over in chunks of
packetwire.CHUNK_PACKETS, so a control call waits for at most about one chunk).

A call returns ``(ok, result)``: whether the device accepted it, and its result or its
refusal (a LocalError). After every call the device's next time-limit deadline
(``Device.get_timer``) goes to the ``schedule`` callback, with workers in the call's
reply: the server's one timer (timers.py) is armed from it without asking the workers.
The events a call raised on the device, already converted to
WatchEvents messages, go to the ``publish`` callback the moment the device answers,
in the order of the calls, whether or not the caller is still waiting for the answer
(a client that gives up must not make other clients miss events). A call made while
nobody watches (``watched()`` false when it is made) drops its events unconverted:
building the messages was a tenth of a StateAdd.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from xfrm_offload.engine.bond import Bond, BondMode
from xfrm_offload.engine.datapath import DevicePath
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import LocalError
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.v1 import offload_pb2 as pb

from . import convert, ops
from .resets import Change, Ledger, table_changes

log = logging.getLogger("xfrm_offload.server")

Call = tuple[bool, Any]


class Report(NamedTuple):
    """What a call's reply tells the server besides its answer."""

    dev: str
    #: The device's next time-limit deadline after the call (None: none pending).
    deadline: float | None
    #: The call's changes to the device's tables (from workers only, see resets.py).
    changes: list[Change]


Reply = tuple[bool, Any, list[pb.WatchEventsResponse], Report | None]
Publish = Callable[[list[pb.WatchEventsResponse]], None]
#: Takes a device's next deadline.
Schedule = Callable[[str, float | None], None]
#: Whether anyone watches events now (a call made when not drops its events).
Watched = Callable[[], bool]
#: One device to host: (name, ifindex, profile name).
DeviceSpec = tuple[str, int, str]
#: One bond to host: (name, ifindex, member names, bonding mode).
BondHostSpec = tuple[str, int, tuple[str, ...], str]
#: The calls that carry packets: they take the pipe after every waiting control call.
PACKET_CALLS = frozenset({ops.packets, ops.receive})


class WorkerDied(RuntimeError):
    """A worker process ended while calls were waiting for it."""


def build_devices(specs: Sequence[DeviceSpec]) -> dict[str, tuple[Device, DevicePath]]:
    hosted = {}
    for name, ifindex, profile in specs:
        device = Device(name, ifindex, PROFILES[profile])
        hosted[name] = (device, DevicePath(device))
    return hosted


class HeapKeeper:
    """Keeps Python's cyclic garbage collector off the long-lived state tables.

    An SA is a few dozen objects, some in reference cycles (bound methods, closures).
    With 100,000 SAs every full collection walks millions of objects, and CPython runs
    one each time the heap grows by a quarter: installing SAs in bulk spent more time
    in the collector than in the SAs. So every 64th add ends with a young-generation
    collection (only live objects get frozen) and ``gc.freeze()`` (moves what exists
    now out of the collector's sight), and the frozen heap is collected once for every
    ``max(1024, live / 4)`` objects freed since the last time, which bounds the garbage
    freed SAs can leave behind to a fraction of the live tables, as CPython's own rule
    does for growth.
    """

    ADDS = ("state_add", "policy_add")
    FREES = ("state_free", "policy_free")

    #: Adds between two freezes (a young-generation collection runs before each).
    FREEZE_EVERY = 64

    def __init__(self) -> None:
        self.live = 0
        self.freed = 0
        self.unfrozen_adds = 0

    def after(self, fn: Callable[..., Any], result: Any) -> None:
        name = fn.__name__
        added = 1 if name in self.ADDS else len(result) if name == "state_add_many" else 0
        if added:
            self.live += added
            self.unfrozen_adds += added
            if self.unfrozen_adds >= self.FREEZE_EVERY:
                self.unfrozen_adds = 0
                gc.collect(1)  # young garbage first: only live objects get frozen
                gc.freeze()
        elif name in self.FREES:
            self._freed(1)
        elif name == "set_link":
            self._freed(result.flushed_states + result.flushed_policies)

    def _freed(self, count: int) -> None:
        self.live = max(self.live - count, 0)
        self.freed += count
        if self.freed >= max(1024, self.live // 4):
            self.freed = 0
            gc.unfreeze()
            gc.collect()
            gc.freeze()


def run_call(
    hosted: dict[str, tuple[Any, Any]],
    heap: HeapKeeper,
    dev: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    watched: bool,
    track: bool = False,
) -> Reply:
    """Run one call on a hosted device: (ok, result or LocalError, events, report).

    ``track`` (in a worker): the report carries the call's table changes (resets.py).
    """
    device, path = hosted[dev]
    ok = True
    try:
        result = fn(device, path, *args)
    except LocalError as exc:
        ok, result = False, exc
    else:
        heap.after(fn, result)
    events = device.pop_events()
    report = Report(dev, device.get_timer(), table_changes(events) if track else [])
    messages = [m for m in map(convert.event_to_pb, events) if m is not None] if watched else []
    return ok, result, messages, report


#: Calls on a bond member that its bond answers instead.
_THROUGH_BOND: dict[Callable[..., Any], Callable[..., Any]] = {
    ops.set_link: ops.set_member_link,
    ops.list_states: ops.list_member_states,
    ops.list_policies: ops.list_member_policies,
}


class LocalDevices:
    """Every device in the server's own process, and the bonds over them.

    A bond is hosted as its own device and path (``engine.bond.Bond``); SetLinkState on
    one of its members goes through the bond, which fails over when it must.
    """

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        publish: Publish,
        watched: Watched,
        schedule: Schedule,
        bonds: Sequence[BondHostSpec] = (),
    ) -> None:
        self.hosted: dict[str, tuple[Any, Any]] = dict(build_devices(specs))
        #: Member name -> its bond's name.
        self.bond_of: dict[str, str] = {}
        for name, ifindex, members, mode in bonds:
            bond = Bond(name, ifindex, [self.hosted[m][1] for m in members], BondMode(mode))
            self.hosted[name] = (bond, bond)
            self.bond_of.update(dict.fromkeys(members, name))
        self.heap = HeapKeeper()
        self.publish = publish
        self.watched = watched
        self.schedule = schedule

    @property
    def devices(self) -> dict[str, Device]:
        """The Device objects (only this in-process host has them); bonds are not."""
        return {n: d for n, (d, _) in self.hosted.items() if isinstance(d, Device)}

    def bond_active(self, dev: str) -> str:
        """The active member of the bond ``dev``; empty if ``dev`` is no bond or has none."""
        hosted = self.hosted.get(dev)
        if hosted is None or not isinstance(hosted[0], Bond) or hosted[0].active is None:
            return ""
        return hosted[0].active.name

    async def call(self, dev: str, fn: Callable[..., Any], *args: Any) -> Call:
        if dev in self.bond_of:
            # A member's link goes through its bond (failover); its listings leave out
            # the bond's objects (listed once, on the bond).
            through = _THROUGH_BOND.get(fn)
            if through is not None:
                dev, fn, args = self.bond_of[dev], through, (dev, *args)
        ok, result, events, report = run_call(self.hosted, self.heap, dev, fn, args, self.watched())
        self.publish(events)
        if report is not None:
            self.schedule(report.dev, report.deadline)
        return ok, result

    async def close(self) -> None:
        pass


#: A worker's first message: its devices are built, it takes calls.
READY = "ready"


def _worker_main(conn: Connection, specs: Sequence[DeviceSpec]) -> None:
    """A worker process: serve calls on its devices until told to stop (None)."""
    # The gRPC process decides when to stop; a Ctrl-C meant for it must not kill us first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hosted = build_devices(specs)
    heap = HeapKeeper()
    conn.send(READY)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            conn.send(None)
            return
        dev, fn, args, watched = message
        try:
            conn.send(run_call(hosted, heap, dev, fn, args, watched, track=True))
        except Exception as exc:  # a bug, not a refusal: report it, keep serving
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}"), [], None))


#: Takes what a reply carries besides its answer: events for watchers, and the report.
TakeReply = Callable[[list[pb.WatchEventsResponse], "Report | None"], None]


class _Worker:
    """One worker process and the two threads that feed it and read its answers."""

    def __init__(
        self,
        index: int,
        specs: Sequence[DeviceSpec],
        loop: asyncio.AbstractEventLoop,
        take: TakeReply,
        on_ready: Callable[[_Worker], None],
        on_exit: Callable[[_Worker], None],
    ):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with gRPC threads
        self.index = index
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, list(specs)), name=f"xfrm-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.loop = loop
        self.take = take
        self.on_ready = on_ready
        self.on_exit = on_exit
        #: The devices this worker hosts.
        self.names = [name for name, _, _ in specs]
        self.devices = ", ".join(self.names)
        #: Futures of the calls on the pipe, in the order they were sent.
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        #: Waiting for the pipe, (message, future): control calls, then packet calls.
        self.outbox: collections.deque[tuple[Any, asyncio.Future[Any] | None]]
        self.outbox = collections.deque()
        self.bulk: collections.deque[tuple[Any, asyncio.Future[Any] | None]]
        self.bulk = collections.deque()
        self.wakeup = threading.Condition()
        self.closed = False
        #: Set by ``stop``: the end that follows is not a death.
        self.stopping = False
        #: What a call to a worker that ended is told.
        self.gone = (
            f"{self.devices}: worker process {self.process.name} exited; it is restarted "
            "and the device comes back empty (watch for LINK up)"
        )
        self.sender = threading.Thread(target=self._send_loop, daemon=True)
        self.receiver = threading.Thread(target=self._recv_loop, daemon=True)
        self.sender.start()
        self.receiver.start()

    def submit(self, message: Any, bulk: bool = False) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        with self.wakeup:
            if self.closed:
                future.set_exception(WorkerDied(self.gone))
                return future
            (self.bulk if bulk else self.outbox).append((message, future))
            self.wakeup.notify()
        return future

    def _send_loop(self) -> None:
        while True:
            with self.wakeup:
                while not self.outbox and not self.bulk and not self.closed:
                    self.wakeup.wait()
                if self.closed:
                    return
                message, future = (self.outbox or self.bulk).popleft()
                if future is not None:
                    # Joins the answers' queue as its message takes the pipe: in order.
                    self.pending.append(future)
            try:
                self.conn.send(message)
            except (BrokenPipeError, ConnectionResetError, EOFError):
                return  # the process is gone: the receiver sees the end and reports it
            except Exception:  # a message that cannot be pickled: a bug
                log.exception("cannot send to %s", self.process.name)
                self.process.kill()  # the receiver sees the end and fails what is pending
                return
            if message is None:
                return

    def _recv_loop(self) -> None:
        while True:
            try:
                reply = self.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:  # an answer that cannot be unpickled: the pipe is out of step
                log.exception("bad answer from %s", self.process.name)
                self.process.kill()
                break
            if reply is None:
                break
            if isinstance(reply, str):  # READY
                self._to_loop(self.on_ready, self)
                continue
            future = self.pending.popleft()
            self._to_loop(_resolve, future, reply, self.take)
        with self.wakeup:
            self.closed = True
            self.wakeup.notify()  # the sender stops too
            waiting = [f for _, f in (*self.outbox, *self.bulk) if f is not None]
            failing = [*self.pending, *waiting]
            self.pending.clear()
            self.outbox.clear()
            self.bulk.clear()
        for future in failing:
            self._to_loop(_fail, future, WorkerDied(self.gone))
        self.process.join()  # reap it (its exit code, for the log)
        self._to_loop(self.on_exit, self)

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        with self.wakeup:
            self.stopping = True
            self.bulk.append((None, None))  # after every call already waiting
            self.wakeup.notify()


def _resolve(future: asyncio.Future[Any], reply: Reply, take: TakeReply) -> None:
    ok, result, events, report = reply
    take(events, report)  # even when the caller gave up waiting
    if not future.done():
        future.set_result((ok, result))


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


#: Told True when a worker died (its devices are out), False when all are back.
Outage = Callable[[bool], None]
#: Seconds before a worker that died before it was ready is started again: doubled on
#: each such death, up to the last (a worker that cannot start must not spin).
RESTART_BACKOFF = (0.0, 0.1, 0.5, 2.0, 5.0)


class WorkerPool:
    """Devices sharded over ``count`` worker processes, round-robin in --device order.

    A worker that dies is a NIC reset (see resets.py): calls on its devices get
    UNAVAILABLE (WorkerDied) at once, watchers get LINK down and the deletion of every
    state and policy its devices held, ``outage(True)`` is told, and a replacement is
    started with the same devices (names, ifindexes, profiles), empty. Once it is ready
    it takes the calls, watchers get LINK up, and ``outage(False)`` once no worker is out.
    """

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        count: int,
        publish: Publish,
        watched: Watched,
        schedule: Schedule,
        outage: Outage = lambda _down: None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.publish = publish
        self.watched = watched
        self.schedule = schedule
        self.outage = outage
        shards: list[list[DeviceSpec]] = [[] for _ in range(count)]
        for i, spec in enumerate(specs):
            shards[i % count].append(spec)
        self.shards = [shard for shard in shards if shard]
        self.ledger = Ledger()
        self.workers = [self._spawn(i) for i in range(len(self.shards))]
        #: Device -> the index of its shard (and worker).
        self.shard_of = {name: i for i, shard in enumerate(self.shards) for name, _, _ in shard}
        #: Replacements started and not yet ready, by shard.
        self.starting: dict[int, _Worker] = {}
        #: Shards whose devices are out now.
        self.out: set[int] = set()
        #: Deaths of a shard's worker since it was last ready (the restart backoff).
        self.failures: dict[int, int] = {}
        self.closing = False
        self.restarts = 0
        log.info("workers started", extra={"fields": {"workers": len(self.workers)}})

    def _spawn(self, index: int) -> _Worker:
        return _Worker(index, self.shards[index], self.loop, self._take, self._ready, self._exited)

    def _take(self, events: list[pb.WatchEventsResponse], report: Report | None) -> None:
        self.publish(events)
        if report is not None:
            self.ledger.apply(report.changes)
            self.schedule(report.dev, report.deadline)

    def _publish_engine(self, events: list[Any]) -> None:
        if self.watched():
            self.publish([m for m in map(convert.event_to_pb, events) if m is not None])

    def _exited(self, worker: _Worker) -> None:
        i = worker.index
        if self.closing or worker.stopping:
            return
        if self.starting.get(i) is worker:  # a replacement that died before it was ready
            del self.starting[i]
        elif self.workers[i] is worker:
            self.out.add(i)
            if len(self.out) == 1:
                self.outage(True)
            for dev in worker.names:
                self._publish_engine(self.ledger.reset(dev))
                self.schedule(dev, None)
        else:
            return
        failures = self.failures.get(i, 0)
        self.failures[i] = failures + 1
        delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)]
        log.warning(
            "worker died, restarting it: its devices come back empty",
            extra={
                "fields": {
                    "worker": worker.process.name,
                    "exitcode": worker.process.exitcode,
                    "devices": worker.devices,
                    "restart_in": delay,
                }
            },
        )
        self.loop.call_later(delay, self._restart, i)

    def _restart(self, index: int) -> None:
        if not self.closing and index not in self.starting:
            self.starting[index] = self._spawn(index)

    def _ready(self, worker: _Worker) -> None:
        i = worker.index
        if self.closing or self.starting.get(i) is not worker:
            return  # the first start (calls were queued already), or a stale one
        del self.starting[i]
        self.workers[i] = worker
        self.failures.pop(i, None)
        self.restarts += 1
        for dev in worker.names:
            self._publish_engine(self.ledger.back(dev))
        self.out.discard(i)
        if not self.out:
            self.outage(False)
        log.info(
            "worker restarted",
            extra={"fields": {"worker": worker.process.name, "devices": worker.devices}},
        )

    @property
    def of_device(self) -> dict[str, _Worker]:
        """The worker serving each device now."""
        return {name: self.workers[i] for name, i in self.shard_of.items()}

    async def call(self, dev: str, fn: Callable[..., Any], *args: Any) -> Call:
        worker = self.workers[self.shard_of[dev]]
        message = (dev, fn, args, self.watched())
        reply: Call = await worker.submit(message, fn in PACKET_CALLS)
        return reply

    async def close(self, timeout: float = 5.0) -> None:
        """Let every queued call finish, then stop the workers."""
        self.closing = True
        workers = [*self.workers, *self.starting.values()]
        for worker in workers:
            worker.stop()
        for worker in workers:
            await asyncio.to_thread(worker.process.join, timeout)
            if worker.process.is_alive():
                worker.process.kill()

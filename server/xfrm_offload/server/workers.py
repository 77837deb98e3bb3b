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
refusal (a LocalError). The events a call raised on the device, already converted to
WatchEvents messages, go to the ``publish`` callback the moment the device answers,
in the order of the calls, whether or not the caller is still waiting for the answer
(a client that gives up must not make other clients miss events). A call made while
nobody watches (``watched()`` false when it is made) drops its events unconverted:
building the messages was a tenth of a StateAdd.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from xfrm_offload.engine.datapath import DevicePath
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import LocalError
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.v1 import offload_pb2 as pb

from . import ops
from .ops import drain_events

log = logging.getLogger("xfrm_offload.server")

Call = tuple[bool, Any]
Reply = tuple[bool, Any, list[pb.WatchEventsResponse]]
Publish = Callable[[list[pb.WatchEventsResponse]], None]
#: Whether anyone watches events now (a call made when not drops its events).
Watched = Callable[[], bool]
#: One device to host: (name, ifindex, profile name).
DeviceSpec = tuple[str, int, str]
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
    hosted: dict[str, tuple[Device, DevicePath]],
    heap: HeapKeeper,
    dev: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    watched: bool,
) -> Reply:
    """Run one call on a hosted device: (ok, result or LocalError, events)."""
    device, path = hosted[dev]
    try:
        result = fn(device, path, *args)
    except LocalError as exc:
        return False, exc, drain_events(device, watched)
    heap.after(fn, result)
    return True, result, drain_events(device, watched)


class LocalDevices:
    """Every device in the server's own process."""

    def __init__(self, specs: Sequence[DeviceSpec], publish: Publish, watched: Watched) -> None:
        self.hosted = build_devices(specs)
        self.heap = HeapKeeper()
        self.publish = publish
        self.watched = watched

    @property
    def devices(self) -> dict[str, Device]:
        """The Device objects (only this in-process host has them)."""
        return {name: device for name, (device, _) in self.hosted.items()}

    async def call(self, dev: str, fn: Callable[..., Any], *args: Any) -> Call:
        ok, result, events = run_call(self.hosted, self.heap, dev, fn, args, self.watched())
        self.publish(events)
        return ok, result

    async def close(self) -> None:
        pass


def _worker_main(conn: Connection, specs: Sequence[DeviceSpec]) -> None:
    """A worker process: serve calls on its devices until told to stop (None)."""
    # The gRPC process decides when to stop; a Ctrl-C meant for it must not kill us first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hosted = build_devices(specs)
    heap = HeapKeeper()
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
            conn.send(run_call(hosted, heap, dev, fn, args, watched))
        except Exception as exc:  # a bug, not a refusal: report it, keep serving
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}"), []))


class _Worker:
    """One worker process and the two threads that feed it and read its answers."""

    def __init__(
        self,
        index: int,
        specs: Sequence[DeviceSpec],
        loop: asyncio.AbstractEventLoop,
        publish: Publish,
    ):
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with gRPC threads
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, list(specs)), name=f"xfrm-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.loop = loop
        self.publish = publish
        #: The devices this worker hosts, for messages.
        self.devices = ", ".join(name for name, _, _ in specs)
        #: Futures of the calls on the pipe, in the order they were sent.
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        #: Waiting for the pipe, (message, future): control calls, then packet calls.
        self.outbox: collections.deque[tuple[Any, asyncio.Future[Any] | None]]
        self.outbox = collections.deque()
        self.bulk: collections.deque[tuple[Any, asyncio.Future[Any] | None]]
        self.bulk = collections.deque()
        self.wakeup = threading.Condition()
        self.closed = False
        #: What a call to a worker that ended is told.
        self.gone = f"{self.devices}: worker process {self.process.name} exited"
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
                while not self.outbox and not self.bulk:
                    self.wakeup.wait()
                message, future = (self.outbox or self.bulk).popleft()
                if future is not None:
                    # Joins the answers' queue as its message takes the pipe: in order.
                    self.pending.append(future)
            try:
                self.conn.send(message)
            except Exception:  # the pipe is gone, or a message that cannot be pickled
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
            future = self.pending.popleft()
            self.loop.call_soon_threadsafe(_resolve, future, reply, self.publish)
        with self.wakeup:
            self.closed = True
            waiting = [f for _, f in (*self.outbox, *self.bulk) if f is not None]
            failing = [*self.pending, *waiting]
            self.pending.clear()
            self.outbox.clear()
            self.bulk.clear()
        for future in failing:
            self.loop.call_soon_threadsafe(_fail, future, WorkerDied(self.gone))

    def stop(self) -> None:
        with self.wakeup:
            self.bulk.append((None, None))  # after every call already waiting
            self.wakeup.notify()


def _resolve(future: asyncio.Future[Any], reply: Reply, publish: Publish) -> None:
    ok, result, events = reply
    publish(events)  # even when the caller gave up waiting
    if not future.done():
        future.set_result((ok, result))


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class WorkerPool:
    """Devices sharded over ``count`` worker processes, round-robin in --device order."""

    def __init__(
        self, specs: Sequence[DeviceSpec], count: int, publish: Publish, watched: Watched
    ) -> None:
        loop = asyncio.get_running_loop()
        self.watched = watched
        shards: list[list[DeviceSpec]] = [[] for _ in range(count)]
        for i, spec in enumerate(specs):
            shards[i % count].append(spec)
        self.workers = [_Worker(i, shard, loop, publish) for i, shard in enumerate(shards) if shard]
        self.of_device = {spec[0]: self.workers[i % count] for i, spec in enumerate(specs)}
        log.info("workers started", extra={"fields": {"workers": len(self.workers)}})

    async def call(self, dev: str, fn: Callable[..., Any], *args: Any) -> Call:
        message = (dev, fn, args, self.watched())
        reply: Call = await self.of_device[dev].submit(message, fn in PACKET_CALLS)
        return reply

    async def close(self, timeout: float = 5.0) -> None:
        """Let every queued call finish, then stop the workers."""
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            await asyncio.to_thread(worker.process.join, timeout)
            if worker.process.is_alive():
                worker.process.kill()

"""The packet path over gRPC: PacketStream batches in, results out; taps and cables.

A PacketStream carries one device and one direction, fixed by its first message.
Each request is decoded once, here (``packetwire.decode``), into engine values; the
device (in this process, or its worker) gets them in chunks of at most
``packetwire.CHUNK_PACKETS`` packets and answers with the engine's ``Results``, which
``packetwire.encode`` turns into the response. One response per request, in order.

Each stream has two tasks: one reads, decodes and hands each batch to the device, the
other writes the answers, in order. Up to ``PIPELINE_DEPTH`` batches wait between them,
so reading the next batch overlaps with waiting for gRPC to take the last answer, and a
worker's work with both. A device in this process is run by the reading task itself,
between two reads: the device and gRPC share the thread, so a task per device call (as
a worker's calls have) would only add to each batch's cost.

Every batch is also charged to one server-wide ``PacketBudget`` (``--packet-budget``):
``CHARGE_FACTOR`` times its request's size (the request, its packets, their outputs and
the answer) from the moment it is read until its answer has been written. A stream waits
for room in the budget before it reads, and for its charge after: meanwhile gRPC's flow
control (HTTP/2 windows) holds its client back; so does a client that does not read its
results (its answers are not written). So the packet bytes all streams together can pin
are bounded by the budget, plus, per stream, its HTTP/2 window and the one request it
read when there was room.

Between two chunks other work gets its turn (control calls, other streams): in this
process the loop runs other tasks between chunks; with --workers control calls take
the worker's pipe before the chunks still waiting (workers.py). At shutdown a stream's
wait for its next request is cancelled and ends as the stream's end.

A stream its client cancels ends quietly: its tasks stop, its budget is given back,
nothing is logged.

Taps (WatchPackets) see copies: PORT_WIRE everything a device transmits, PORT_HOST
what a device receives through a cable from another device and hands to its host.
A cable feeds what device A transmits into device B's receive path. A device attached
to a real link (realif.py) registers its link here: what leaves its impairment, if it
has one, goes out on that link (its unimpaired frames go straight there, not here).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from xfrm_offload.engine.datapath import Results
from xfrm_offload.engine.errors import InvalidArgument, LocalError
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from . import ops, packetwire
from .convert import impairment_from_pb, impairment_to_pb
from .events import Feed
from .impair import WireImpairments
from .nic import Nic
from .packetwire import Batch
from .servicers import refusals
from .status import (
    Context,
    abort_invalid,
    abort_not_found,
    build_status,
    end_with,
    status_from_error,
)
from .workers import LocalDevices, WorkerDied

#: Batches a watcher may have waiting before new ones are counted as lost.
TAP_QUEUE_LIMIT = 1024
#: Batches of one stream in the server's hands at once.
PIPELINE_DEPTH = 4
#: Packet bytes in flight across all streams, by default (--packet-budget).
DEFAULT_PACKET_BUDGET = 256 << 20
#: A batch in the server's hands holds about this many times its request's size: the
#: request, its decoded packets, their outputs and the serialized answer.
CHARGE_FACTOR = 4


class PacketBudget:
    """Bytes of packet batches in the server's hands, across every stream, at most ``limit``.

    ``acquire`` waits, first come first served, until the bytes fit (a batch larger than
    the whole budget waits for all of it: it runs alone). ``held`` never exceeds
    ``limit``; ``peak`` is the most it ever was, ``waits`` how often a stream had to wait.
    ``room`` waits until there is room at all: a stream waits there before it reads its
    next request, so a full budget leaves requests in gRPC's flow control, not in memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self.waits = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._room: list[asyncio.Future[None]] = []

    def charge(self, size: int) -> int:
        """What a request of ``size`` bytes is charged: CHARGE_FACTOR times its size (never
        more than the whole budget)."""
        return min(CHARGE_FACTOR * size, self.limit)

    async def room(self) -> None:
        """Return when the budget has room and nobody waits for it."""
        while self.held >= self.limit or self._waiters:
            self.waits += 1
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await waiter

    async def acquire(self, amount: int) -> None:
        if not self._waiters and self.held + amount <= self.limit:
            self._take(amount)
            return
        self.waits += 1
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((amount, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():  # still queued (_wake skips it) or never granted
                with contextlib.suppress(ValueError):
                    self._waiters.remove((amount, waiter))
                self._wake()
            else:
                self.release(amount)  # granted as we were cancelled: give it back
            raise

    def release(self, amount: int) -> None:
        self.held -= amount
        self._wake()

    def _take(self, amount: int) -> None:
        self.held += amount
        self.peak = max(self.peak, self.held)

    def _wake(self) -> None:
        while self._waiters:
            amount, waiter = self._waiters[0]
            if waiter.cancelled():  # its task was cancelled and has not run yet
                self._waiters.popleft()
                continue
            if self.held + amount > self.limit:
                return
            self._waiters.popleft()
            self._take(amount)
            waiter.set_result(None)
        if self.held < self.limit and self._room:
            for waiter in self._room:
                if not waiter.done():
                    waiter.set_result(None)
            self._room.clear()


#: Sends frames on a device's real link (an Attachment's, realif.py).
OnLink = Callable[[list[bytes]], Awaitable[None]]


def _lost_packets(count: int) -> pb.WatchPacketsResponse:
    return pb.WatchPacketsResponse(lost=count)


def new_tap() -> Feed[pb.WatchPacketsResponse]:
    """One WatchPackets stream's queue of delivered batches (lost counts packets)."""
    return Feed(TAP_QUEUE_LIMIT, _lost_packets)


class Wires:
    """Taps and cables of every device of a Nic."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        #: Device name -> the device its wire is cabled to (both directions listed).
        self.cables = nic.cables
        self.taps: dict[tuple[str, int], set[Feed[pb.WatchPacketsResponse]]] = (
            collections.defaultdict(set)
        )
        #: Impaired wires: what such a device transmits leaves through its impairment.
        self.impairments = WireImpairments(nic.clock, self._left_impairment)
        #: Devices attached to a real link (realif.py) -> what sends frames on it.
        self.links: dict[str, OnLink] = {}

    def connect(self, a: str, b: str) -> None:
        for end in (a, b):
            self.unplug(end)
        self.cables[a] = b
        self.cables[b] = a

    def unplug(self, a: str) -> None:
        peer = self.cables.pop(a, None)
        if peer is not None:
            self.cables.pop(peer, None)

    def wanted(self, dev: str, direction: int) -> bool:
        """Does anything take copies of what this stream's device delivers?"""
        if direction == pb.PACKET_DIRECTION_TX:
            dev = self.nic.wire_of(dev)
            return (
                dev in self.cables
                or bool(self.taps.get((dev, pb.PORT_WIRE)))
                or self.impairments.impaired(dev)
            )
        return False

    def _deliver(self, dev: str, port: int, items: list[tuple[int, bytes]]) -> None:
        taps = self.taps.get((dev, port))
        if taps and items:
            batch = pb.WatchPacketsResponse(
                packets=[pb.PacketResult(id=i, verdict=pb.VERDICT_PASS, data=d) for i, d in items]
            )
            for tap in taps:
                tap.offer(batch, len(items))

    async def transmitted(self, dev: str, items: list[tuple[int, bytes]]) -> None:
        """What ``dev`` put on its wire: to its wire taps, and through its cable (a bond's
        traffic leaves on its active member's wire)."""
        if not items:
            return
        dev = self.nic.wire_of(dev)
        if self.impairments.impaired(dev):
            self.impairments.push(dev, items)  # its delivery task calls _on_wire
            return
        await self._on_wire(dev, items)

    async def _left_impairment(self, dev: str, items: list[tuple[int, bytes]]) -> None:
        """What left ``dev``'s impairment: to its wire taps, then to its real link if it
        is attached to one, else through its cable."""
        link = self.links.get(dev)
        if link is None:
            await self._on_wire(dev, items)
            return
        self._deliver(dev, pb.PORT_WIRE, items)
        await link([data for _, data in items])

    async def _on_wire(self, dev: str, items: list[tuple[int, bytes]]) -> None:
        self._deliver(dev, pb.PORT_WIRE, items)
        peer = self.cables.get(dev)
        if peer is not None:
            delivered = await self.nic.call(peer, ops.receive, items, self.nic.clock.now())
            self._deliver(peer, pb.PORT_HOST, delivered)

    def close(self) -> None:
        self.impairments.close()
        for taps in self.taps.values():
            for tap in taps:
                tap.close()


def _passthrough(message: bytes | pb.PacketStreamResponse) -> bytes:
    """Responses are built serialized (packetwire.encode)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class _Job:
    """One batch between reading and writing: its decoded packets, its budget charge and
    its chunks' results (``calls``: futures of the device calls, when a worker runs them;
    ``results``: the results themselves, when the device ran in this process)."""

    __slots__ = ("batch", "calls", "charge", "results")

    def __init__(self, charge: int) -> None:
        self.batch = Batch("", 0, [])
        self.charge = charge
        self.calls: list[asyncio.Future[Results]] = []
        self.results: list[Results] = []


async def _decode(raw: bytes) -> Batch:
    """``packetwire.decode``; a large request is read a chunk per turn of the loop."""
    if len(raw) < packetwire.LARGE_REQUEST:
        return packetwire.decode(raw)
    scanner = packetwire.Scanner(raw)
    while not scanner.step(packetwire.CHUNK_PACKETS):
        await asyncio.sleep(0)
    return scanner.batch()


async def _encode(batch: Batch, results: list[Results]) -> bytes:
    """``packetwire.encode``, off the event loop for an answer of many chunks, so that a
    64 MiB answer does not hold the loop (and every control call): the C encoder builds
    it in a thread (it copies without the GIL: 33 ms for 64 MiB, which the loop spends
    serving others); the Python one a chunk of pieces per turn of the loop, joined in a
    thread (bytes.join lets go of the GIL), where the protobuf runtime would take ~130 ms
    in one call."""
    if batch.ids is not None or len(results) <= 1:
        return packetwire.encode(batch, results)
    if packetwire.native is not None:
        return await asyncio.to_thread(packetwire.encode, batch, results)
    pieces = []
    for r in results:
        pieces.append(packetwire.data_pieces(r))
        await asyncio.sleep(0)
    return await asyncio.to_thread(b"".join, packetwire.packed_pieces(results, pieces))


def _drop(future: asyncio.Future[Any]) -> None:
    """Cancel a future nobody will await; if it already failed, its error is taken here
    (a stream that ended has no use for it, and asyncio would log it as never retrieved)."""
    if future.done():
        if not future.cancelled():
            future.exception()
    else:
        future.cancel()
        future.add_done_callback(_quiet)


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _write(context: Context, response: bytes) -> bool:
    """Send one response; False if the client is gone (it cancelled, or its connection
    ended): the stream then ends without a word, as the client no longer listens."""
    try:
        await context.write(response)
    except asyncio.CancelledError:
        raise
    except Exception:  # bytes cannot fail to serialize: the call is over in gRPC core
        return False
    return True


class DatapathServicer(offload_pb2_grpc.DatapathServiceServicer):
    """The packet path."""

    def __init__(
        self,
        nic: Nic,
        packet_budget: int = DEFAULT_PACKET_BUDGET,
    ) -> None:
        self.nic = nic
        self.wires = Wires(nic)
        self.budget = PacketBudget(packet_budget)
        #: Set at shutdown: streams stop reading, answer what they have, and end OK.
        self.stopping = asyncio.Event()
        #: PacketStreams open now, and how many of them wait for an answer to be taken.
        self.open_streams = 0
        self.writing = 0
        #: The streams' reading tasks waiting for their next request (or for budget room).
        self._reading: set[asyncio.Task[Any]] = set()

    def shutdown(self) -> None:
        """End every packet stream and tap cleanly (graceful server stop): streams stop
        reading (a wait for the next request ends as the stream's end) and answer what
        they have."""
        self.stopping.set()
        while self._reading:  # each once: a second shutdown must not cancel it again
            self._reading.pop().cancel()
        self.wires.close()

    async def _next_request(self, iterator: AsyncIterator[bytes]) -> bytes | None:
        """The stream's next request, read once the budget has room; None at the stream's
        end or once the server is shutting down (``shutdown`` cancels the wait, which
        ends here as the stream's end)."""
        if self.stopping.is_set():
            return None
        task = asyncio.current_task()
        assert task is not None
        self._reading.add(task)
        try:
            await self.budget.room()
            return await anext(iterator, None)
        except asyncio.CancelledError:
            # Cancelled by shutdown alone (not also by gRPC, as the client went away).
            if self.stopping.is_set() and task.uncancel() == 0:
                return None
            raise
        finally:
            self._reading.discard(task)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the service with PacketStream working on serialized messages (see module doc)."""
        handlers = {
            "PacketStream": grpc.stream_stream_rpc_method_handler(
                self.PacketStream,
                request_deserializer=None,  # raw bytes: the device parses them
                response_serializer=_passthrough,
            ),
            "WatchPackets": grpc.unary_stream_rpc_method_handler(
                self.WatchPackets,
                request_deserializer=pb.WatchPacketsRequest.FromString,
                response_serializer=pb.WatchPacketsResponse.SerializeToString,
            ),
            "SetCable": grpc.unary_unary_rpc_method_handler(
                self.SetCable,
                request_deserializer=pb.SetCableRequest.FromString,
                response_serializer=pb.SetCableResponse.SerializeToString,
            ),
            "SetImpairment": grpc.unary_unary_rpc_method_handler(
                self.SetImpairment,
                request_deserializer=pb.SetImpairmentRequest.FromString,
                response_serializer=pb.SetImpairmentResponse.SerializeToString,
            ),
            "GetImpairment": grpc.unary_unary_rpc_method_handler(
                self.GetImpairment,
                request_deserializer=pb.GetImpairmentRequest.FromString,
                response_serializer=pb.GetImpairmentResponse.SerializeToString,
            ),
        }
        name = pb.DESCRIPTOR.services_by_name["DatapathService"].full_name
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))

    async def _run_inline(self, head: tuple[str, int], job: _Job) -> None:
        """Run a batch's chunks on the device in this process, one loop turn between two
        chunks: a large batch does not hold the loop (control calls, other streams)."""
        nic = self.nic
        dev, direction = head
        now = nic.clock.now()
        for i, (data, handles, seqs) in enumerate(job.batch.chunks()):
            if i:
                await asyncio.sleep(0)
            job.results.append(
                await nic.call(dev, ops.packets, direction, data, handles, seqs, now)
            )

    def _submit(self, head: tuple[str, int], job: _Job) -> None:
        """Send a batch's chunks to the device's worker, all at once (the worker's pipe
        keeps their order and lets control calls pass)."""
        nic = self.nic
        dev, direction = head
        now = nic.clock.now()
        for data, handles, seqs in job.batch.chunks():
            call = nic.call(dev, ops.packets, direction, data, handles, seqs, now)
            job.calls.append(asyncio.ensure_future(call))

    async def PacketStream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> None:
        """Two tasks: this one writes the answers, in order; ``feed`` reads, decodes and
        runs (in this process) or submits (to a worker) each batch. Up to PIPELINE_DEPTH
        batches wait between them. In this process the feeder runs the device itself:
        the device and gRPC share this thread, so a task per device call would only add
        to each batch's cost; a worker's calls are futures the writer awaits."""
        in_flight: asyncio.Queue[_Job | None] = asyncio.Queue(PIPELINE_DEPTH)
        held: set[_Job] = set()  # charged to the budget and not yet released
        budget = self.budget
        inline = isinstance(self.nic.host, LocalDevices)
        #: (dev, direction) from the first message: they hold for the whole stream.
        first: list[tuple[str, int]] = []

        async def feed() -> None:
            """Read, charge, decode and run or submit requests; end the pipeline with
            None, also after a refusal."""
            iterator = aiter(request_iterator)
            try:
                while (raw := await self._next_request(iterator)) is not None:
                    job = _Job(budget.charge(len(raw)))
                    await budget.acquire(job.charge)
                    held.add(job)
                    job.batch = batch = await _decode(raw)
                    del raw
                    self._check_head(first, batch)
                    if inline:
                        await self._run_inline(first[0], job)
                    else:
                        # Submitted before it joins the pipeline: the writer never sees
                        # a job whose calls are not all made.
                        self._submit(first[0], job)
                    await in_flight.put(job)
            except asyncio.CancelledError:
                raise  # the stream is gone: nobody will read an end marker
            except BaseException:
                await in_flight.put(None)
                raise
            await in_flight.put(None)

        feeder = asyncio.ensure_future(feed())
        self.open_streams += 1
        refusal = None
        try:
            while (job := await in_flight.get()) is not None:
                results = job.results if inline else [await call for call in job.calls]
                batch = job.batch
                dev, direction = first[0]
                if self.wires.wanted(dev, direction):
                    delivered = packetwire.delivered(batch, results)
                    if delivered:
                        await self.wires.transmitted(dev, delivered)
                response = await _encode(batch, results)
                del results
                job.results = []
                self.writing += 1
                try:
                    written = await _write(context, response)
                finally:
                    self.writing -= 1
                if not written:
                    return  # the client is gone
                held.discard(job)
                budget.release(job.charge)
            await feeder  # surfaces a refusal of the stream's framing
        except LocalError as exc:
            refusal = status_from_error(exc)
        except WorkerDied as exc:
            refusal = build_status(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            self.open_streams -= 1
            _drop(feeder)
            for job in held:
                for call in job.calls:
                    _drop(call)
                budget.release(job.charge)
            held.clear()
        if refusal is not None:
            # Ended without raising (and outside the except clause): gRPC keeps an abort's
            # exception with the call, and its traceback would keep what the stream read
            # (a refused request of up to 64 MiB) alive with it.
            end_with(context, refusal)

    def _check_head(self, first: list[tuple[str, int]], batch: Batch) -> None:
        """The first batch names a device and a direction (kept in ``first``, not the
        batch: its packets must not live as long as the stream); later ones keep them."""
        if not first:
            self.nic.device(batch.dev, "dev")
            if batch.direction not in (pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX):
                raise InvalidArgument("direction must be TX or RX", field="direction")
            first.append((batch.dev, batch.direction))
        elif (batch.dev and batch.dev != first[0][0]) or (
            batch.direction and batch.direction != first[0][1]
        ):
            raise InvalidArgument("a stream carries one device and one direction", field="dev")

    async def WatchPackets(
        self, request: pb.WatchPacketsRequest, context: Context
    ) -> AsyncIterator[pb.WatchPacketsResponse]:
        if request.dev not in self.nic.names:
            await abort_not_found(context, "dev", f"no device {request.dev!r}")
        if request.port not in (pb.PORT_HOST, pb.PORT_WIRE):
            await abort_invalid(context, "port", "port must be PORT_HOST or PORT_WIRE")
        tap = new_tap()
        key = (request.dev, int(request.port))
        self.wires.taps[key].add(tap)
        try:
            yield pb.WatchPacketsResponse()  # the watch is in place
            async for batch in tap:
                yield batch
        finally:
            self.wires.taps[key].discard(tap)

    @refusals()
    async def SetCable(self, request: pb.SetCableRequest, context: Context) -> pb.SetCableResponse:
        self.nic.device(request.dev_a, "dev_a")
        if not request.dev_b:
            self.wires.unplug(request.dev_a)
            return pb.SetCableResponse()
        self.nic.device(request.dev_b, "dev_b")
        if request.dev_b == request.dev_a:
            raise InvalidArgument("a cable joins two different devices", field="dev_b")
        self.wires.connect(request.dev_a, request.dev_b)
        return pb.SetCableResponse()

    @refusals()
    async def SetImpairment(
        self, request: pb.SetImpairmentRequest, context: Context
    ) -> pb.SetImpairmentResponse:
        self.nic.device(request.dev, "dev")
        config = impairment_from_pb(request.impairment)
        await self.wires.impairments.set(request.dev, config)
        return pb.SetImpairmentResponse()

    @refusals()
    async def GetImpairment(
        self, request: pb.GetImpairmentRequest, context: Context
    ) -> pb.GetImpairmentResponse:
        self.nic.device(request.dev, "dev")
        impairment = self.wires.impairments.get(request.dev)
        if impairment is None:
            return pb.GetImpairmentResponse()
        return impairment_to_pb(impairment)

"""The packet path over gRPC: PacketStream batches in, results out; taps and cables.

A PacketStream carries one device and one direction, fixed by its first message.
Each request's batch goes through the device's engine path in one call and its
results come back in one response, in order, before the next request is read: a
client that sends faster than the NIC works is held back by gRPC's flow control
(HTTP/2 windows), and a client that does not read its results stops the server from
reading more, so the memory a stream can pin is bounded by those windows.

Taps (WatchPackets) see copies: PORT_WIRE everything a device transmits, PORT_HOST
what a device receives through a cable from another device and hands to its host.
A cable feeds what device A transmits into device B's receive path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable, Sequence

from xfrm_offload.engine.datapath import Outcome, Verdict
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from .nic import Nic
from .servicers import refusals
from .status import Context, abort_invalid

#: Batches a watcher may have waiting before new ones are counted as lost.
TAP_QUEUE_LIMIT = 1024

_VERDICT_TO_PB = {
    Verdict.PASS: pb.VERDICT_PASS,
    Verdict.DROP: pb.VERDICT_DROP,
    Verdict.CONSUMED: pb.VERDICT_CONSUMED,
}


def results_to_pb(ids: Sequence[int], outcomes: Sequence[Outcome]) -> list[pb.PacketResult]:
    """Engine outcomes -> PacketResult messages (the drop reason by its xfrm_stat name)."""
    results: list[pb.PacketResult] = []
    append = results.append
    result = pb.PacketResult
    for packet_id, (verdict, data, handle, crypto) in zip(ids, outcomes, strict=True):
        if verdict is Verdict.DROP:
            append(
                result(
                    id=packet_id,
                    verdict=pb.VERDICT_DROP,
                    drop_reason=str(data),
                    offload_handle=handle,
                )
            )
        else:
            append(
                result(
                    id=packet_id,
                    verdict=_VERDICT_TO_PB[verdict],
                    data=data,  # type: ignore[arg-type]
                    offload_handle=handle,
                    crypto_status=crypto,  # type: ignore[arg-type]
                )
            )
    return results


class Tap:
    """One WatchPackets stream's bounded queue of delivered batches."""

    def __init__(self) -> None:
        self.queue: collections.deque[list[pb.PacketResult]] = collections.deque()
        self.lost = 0
        self.closed = False
        self._wakeup = asyncio.Event()

    def offer(self, batch: list[pb.PacketResult]) -> None:
        if len(self.queue) >= TAP_QUEUE_LIMIT:
            self.lost += len(batch)
        else:
            self.queue.append(batch)
        self._wakeup.set()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def __aiter__(self) -> AsyncIterator[pb.WatchPacketsResponse]:
        while True:
            if self.queue or self.lost:
                batch = self.queue.popleft() if self.queue else []
                lost, self.lost = self.lost, 0
                yield pb.WatchPacketsResponse(packets=batch, lost=lost)
                continue
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()


class Wires:
    """Taps and cables of every device of a Nic."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        #: Device name -> the device its wire is cabled to (both directions listed).
        self.cables = nic.cables
        self.taps: dict[tuple[str, int], set[Tap]] = collections.defaultdict(set)

    def connect(self, a: str, b: str) -> None:
        for end in (a, b):
            old = self.cables.pop(end, None)
            if old is not None:
                self.cables.pop(old, None)
        self.cables[a] = b
        self.cables[b] = a

    def unplug(self, a: str) -> None:
        peer = self.cables.pop(a, None)
        if peer is not None:
            self.cables.pop(peer, None)

    def deliver(self, dev: str, port: int, results: Iterable[pb.PacketResult]) -> None:
        taps = self.taps.get((dev, port))
        if taps:
            batch = list(results)
            if batch:
                for tap in taps:
                    tap.offer(batch)

    def transmitted(self, dev: str, results: list[pb.PacketResult]) -> None:
        """What ``dev`` put on its wire: to its wire taps, and through its cable."""
        on_wire = [r for r in results if r.verdict == pb.VERDICT_PASS]
        if not on_wire:
            return
        self.deliver(dev, pb.PORT_WIRE, on_wire)
        peer = self.cables.get(dev)
        if peer is None:
            return
        path = self.nic.paths[peer]
        outcomes = path.rx([r.data for r in on_wire], self.nic.clock.now())
        self.nic.publish(path.device)
        delivered = results_to_pb([r.id for r in on_wire], outcomes)
        self.deliver(peer, pb.PORT_HOST, (r for r in delivered if r.verdict == pb.VERDICT_PASS))

    def close(self) -> None:
        for taps in self.taps.values():
            for tap in taps:
                tap.close()


class DatapathServicer(offload_pb2_grpc.DatapathServiceServicer):
    """The packet path."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        self.wires = Wires(nic)

    async def PacketStream(
        self, request_iterator: AsyncIterator[pb.PacketStreamRequest], context: Context
    ) -> AsyncIterator[pb.PacketStreamResponse]:
        nic = self.nic
        dev = ""
        direction = pb.PACKET_DIRECTION_UNSPECIFIED
        async for request in request_iterator:
            if not dev:
                dev, direction = request.dev, request.direction
                if dev not in nic.devices:
                    await abort_invalid(context, "dev", f"no device {dev!r}")
                if direction not in (pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX):
                    await abort_invalid(context, "direction", "direction must be TX or RX")
                path = nic.paths[dev]
            elif (request.dev and request.dev != dev) or (
                request.direction and request.direction != direction
            ):
                await abort_invalid(context, "dev", "a stream carries one device and one direction")
            packets = request.packets
            ids = [p.id for p in packets]
            now = nic.clock.now()
            if direction == pb.PACKET_DIRECTION_TX:
                outcomes = path.tx([(p.data, p.offload_handle, p.seq) for p in packets], now)
                results = results_to_pb(ids, outcomes)
                nic.publish(path.device)
                self.wires.transmitted(dev, results)
            else:
                outcomes = path.rx([p.data for p in packets], now)
                results = results_to_pb(ids, outcomes)
                nic.publish(path.device)
            yield pb.PacketStreamResponse(results=results)

    async def WatchPackets(
        self, request: pb.WatchPacketsRequest, context: Context
    ) -> AsyncIterator[pb.WatchPacketsResponse]:
        if request.dev not in self.nic.devices:
            await abort_invalid(context, "dev", f"no device {request.dev!r}")
        if request.port not in (pb.PORT_HOST, pb.PORT_WIRE):
            await abort_invalid(context, "port", "port must be PORT_HOST or PORT_WIRE")
        tap = Tap()
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

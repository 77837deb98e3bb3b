"""The packet path over gRPC: PacketStream batches in, results out; taps and cables.

A PacketStream carries one device and one direction, fixed by its first message.
Batches go to the device (in this process, or its worker) in the order they arrive
and their results come back in that order, one response per request. Up to
``PIPELINE_DEPTH`` batches of a stream are in the device's hands at once, so the gRPC
work on the next batch overlaps with the device's work on this one; beyond that the
stream stops reading, and gRPC's flow control (HTTP/2 windows) holds the client
back: a fast sender is slowed to the NIC's pace, and a client that does not read its
results stops the server from reading more. The memory one stream can pin is
bounded by those windows and the pipeline depth.

Requests reach the device still serialized (``ops.packets``) and responses leave it
serialized: the per-packet messages are parsed and built where the packets are
processed (a worker's core, with --workers). The gRPC side parses each request only
to check its device and direction (cheap next to the packets: ~8 us per 90 kB batch).

Taps (WatchPackets) see copies: PORT_WIRE everything a device transmits, PORT_HOST
what a device receives through a cable from another device and hands to its host.
A cable feeds what device A transmits into device B's receive path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import grpc
from google.protobuf.message import DecodeError

from xfrm_offload.engine.errors import InvalidArgument, LocalError
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from . import ops
from .convert import impairment_from_pb, impairment_to_pb
from .events import Feed
from .impair import WireImpairments
from .nic import Nic
from .servicers import refusals
from .status import Context, abort, abort_invalid, abort_not_found, build_status, status_from_error
from .workers import WorkerDied

#: Batches a watcher may have waiting before new ones are counted as lost.
TAP_QUEUE_LIMIT = 1024
#: Batches of one stream in the device's hands at once.
PIPELINE_DEPTH = 4


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
        self.impairments = WireImpairments(nic.clock, self._on_wire)

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
    """Responses built by the device are already serialized."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class DatapathServicer(offload_pb2_grpc.DatapathServiceServicer):
    """The packet path."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        self.wires = Wires(nic)
        #: Set at shutdown: streams stop reading, answer what they have, and end OK.
        self.stopping = asyncio.Event()
        #: PacketStreams open now.
        self.open_streams = 0

    def shutdown(self) -> None:
        """End every packet stream and tap cleanly (graceful server stop)."""
        self.stopping.set()
        self.wires.close()

    async def _until_shutdown(self, requests: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The stream's requests, until it ends or the server starts shutting down."""
        iterator = aiter(requests)
        stop = asyncio.ensure_future(self.stopping.wait())
        following: asyncio.Future[bytes | None] | None = None
        try:
            while True:
                following = asyncio.ensure_future(anext(iterator, None))
                await asyncio.wait((following, stop), return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    return
                raw = following.result()
                if raw is None:
                    return
                yield raw
        finally:
            stop.cancel()
            if following is not None and not following.done():
                following.cancel()

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

    async def PacketStream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        nic = self.nic
        in_flight: asyncio.Queue[asyncio.Task[tuple[bytes, list[tuple[int, bytes]]]] | None]
        in_flight = asyncio.Queue(PIPELINE_DEPTH)
        dev = ""
        direction = 0

        async def feed() -> None:
            """Read requests into the pipeline; end it with None, also after a refusal."""
            nonlocal dev, direction
            try:
                async for raw in self._until_shutdown(request_iterator):
                    try:
                        head = pb.PacketStreamRequest.FromString(raw)
                    except DecodeError:
                        raise InvalidArgument(
                            "not a PacketStreamRequest", field="packets"
                        ) from None
                    if not dev:
                        dev, direction = head.dev, head.direction
                        nic.device(dev, "dev")
                        if direction not in (pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX):
                            raise InvalidArgument("direction must be TX or RX", field="direction")
                    elif (head.dev and head.dev != dev) or (
                        head.direction and head.direction != direction
                    ):
                        raise InvalidArgument(
                            "a stream carries one device and one direction", field="dev"
                        )
                    wire = self.wires.wanted(dev, direction)
                    call = nic.call(dev, ops.packets, direction, raw, nic.clock.now(), wire)
                    await in_flight.put(asyncio.ensure_future(call))
            except asyncio.CancelledError:
                raise  # the stream is gone: nobody will read an end marker
            except BaseException:
                await in_flight.put(None)
                raise
            await in_flight.put(None)

        feeder = asyncio.ensure_future(feed())
        self.open_streams += 1
        try:
            while (task := await in_flight.get()) is not None:
                response, delivered = await task
                if delivered:
                    await self.wires.transmitted(dev, delivered)
                yield response
            await feeder  # surfaces a refusal of the stream's framing
        except LocalError as exc:
            await abort(context, status_from_error(exc))
        except WorkerDied as exc:
            await abort(context, build_status(grpc.StatusCode.UNAVAILABLE, str(exc)))
        finally:
            self.open_streams -= 1
            feeder.cancel()

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

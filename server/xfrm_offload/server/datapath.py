"""The packet path over gRPC: PacketStream batches in, results out; cables between devices."""

from __future__ import annotations

from collections.abc import AsyncIterator

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from .nic import Nic
from .status import Context, abort_unimplemented

_PACKETS = "the packet path (issue 5: the async packet pipeline)"


class DatapathServicer(offload_pb2_grpc.DatapathServiceServicer):
    """The packet path."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    async def PacketStream(
        self, request_iterator: AsyncIterator[pb.PacketStreamRequest], context: Context
    ) -> AsyncIterator[pb.PacketStreamResponse]:
        await abort_unimplemented(context, _PACKETS)
        yield pb.PacketStreamResponse()  # pragma: no cover - makes this an async generator

    async def WatchPackets(
        self, request: pb.WatchPacketsRequest, context: Context
    ) -> AsyncIterator[pb.WatchPacketsResponse]:
        await abort_unimplemented(context, _PACKETS)
        yield pb.WatchPacketsResponse()  # pragma: no cover

    async def SetCable(self, request: pb.SetCableRequest, context: Context) -> pb.SetCableResponse:
        await abort_unimplemented(context, _PACKETS)

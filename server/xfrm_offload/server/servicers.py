"""The gRPC servicers: thin adapters from requests to the NIC model and back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from . import convert
from .clock import Clock, VirtualClock
from .nic import Nic
from .status import Context, abort_invalid, abort_not_found, abort_unimplemented

_STATES = "state offload (issue 4: the emulated NIC's xfrmdev_ops semantics)"
_POLICIES = "policy offload (issue 4: the emulated NIC's xfrmdev_ops semantics)"
_PACKETS = "the packet path (issue 5: the async packet pipeline)"


class XfrmDevServicer(offload_pb2_grpc.XfrmDevServiceServicer):
    """The xfrmdev_ops callbacks."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    async def StateAdd(self, request: pb.StateAddRequest, context: Context) -> pb.StateAddResponse:
        await abort_unimplemented(context, _STATES)

    async def StateAddBulk(
        self, request_iterator: AsyncIterator[pb.StateAddBulkRequest], context: Context
    ) -> pb.StateAddBulkResponse:
        await abort_unimplemented(context, _STATES)

    async def StateDelete(
        self, request: pb.StateDeleteRequest, context: Context
    ) -> pb.StateDeleteResponse:
        await abort_unimplemented(context, _STATES)

    async def StateFree(
        self, request: pb.StateFreeRequest, context: Context
    ) -> pb.StateFreeResponse:
        await abort_unimplemented(context, _STATES)

    async def OffloadOk(
        self, request: pb.OffloadOkRequest, context: Context
    ) -> pb.OffloadOkResponse:
        await abort_unimplemented(context, _STATES)

    async def AdvanceEsn(
        self, request: pb.AdvanceEsnRequest, context: Context
    ) -> pb.AdvanceEsnResponse:
        await abort_unimplemented(context, _STATES)

    async def UpdateCurlft(
        self, request: pb.UpdateCurlftRequest, context: Context
    ) -> pb.UpdateCurlftResponse:
        await abort_unimplemented(context, _STATES)

    async def PolicyAdd(
        self, request: pb.PolicyAddRequest, context: Context
    ) -> pb.PolicyAddResponse:
        await abort_unimplemented(context, _POLICIES)

    async def PolicyDelete(
        self, request: pb.PolicyDeleteRequest, context: Context
    ) -> pb.PolicyDeleteResponse:
        await abort_unimplemented(context, _POLICIES)

    async def PolicyFree(
        self, request: pb.PolicyFreeRequest, context: Context
    ) -> pb.PolicyFreeResponse:
        await abort_unimplemented(context, _POLICIES)


class DeviceServicer(offload_pb2_grpc.DeviceServiceServicer):
    """Devices, listings, counters, events."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: Context
    ) -> pb.ListDevicesResponse:
        return pb.ListDevicesResponse(
            devices=[convert.device_to_pb(d) for d in self.nic.devices.values()]
        )

    async def GetDevice(
        self, request: pb.GetDeviceRequest, context: Context
    ) -> pb.GetDeviceResponse:
        device = self.nic.devices.get(request.name)
        if device is None:
            await abort_not_found(context, "name", f"no device {request.name!r}")
        return pb.GetDeviceResponse(device=convert.device_to_pb(device))

    async def SetLinkState(
        self, request: pb.SetLinkStateRequest, context: Context
    ) -> pb.SetLinkStateResponse:
        await abort_unimplemented(context, _STATES)

    async def ListStates(
        self, request: pb.ListStatesRequest, context: Context
    ) -> pb.ListStatesResponse:
        await abort_unimplemented(context, _STATES)

    async def GetState(self, request: pb.GetStateRequest, context: Context) -> pb.GetStateResponse:
        await abort_unimplemented(context, _STATES)

    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: Context
    ) -> pb.ListPoliciesResponse:
        await abort_unimplemented(context, _POLICIES)

    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        await abort_unimplemented(context, _STATES)

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        devs = set(request.devs)
        kinds = set(request.kinds)
        unknown = devs - set(self.nic.devices)
        if unknown:
            await abort_not_found(context, "devs", f"no device {sorted(unknown)[0]!r}")

        def accept(event: pb.WatchEventsResponse) -> bool:
            return (not devs or event.dev in devs) and (not kinds or event.kind in kinds)

        sub = self.nic.hub.subscribe(accept)
        try:
            async for event in sub:
                yield event
        finally:
            self.nic.hub.unsubscribe(sub)


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


class DiagServicer(offload_pb2_grpc.DiagServiceServicer):
    """The test clock and the transport echo."""

    def __init__(self, nic: Nic, clock: Clock) -> None:
        self.nic = nic
        self.clock = clock

    async def AdvanceClock(
        self, request: pb.AdvanceClockRequest, context: Context
    ) -> pb.AdvanceClockResponse:
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the server runs on the system clock; start it with --virtual-clock",
            )
        if not request.seconds > 0:
            await abort_invalid(context, "seconds", "seconds must be > 0")
        return pb.AdvanceClockResponse(now=clock.advance(request.seconds))

    async def Echo(self, request: pb.EchoRequest, context: Context) -> pb.EchoResponse:
        return pb.EchoResponse(payload=request.payload)

    async def EchoStream(
        self, request_iterator: AsyncIterator[pb.EchoStreamRequest], context: Context
    ) -> AsyncIterator[pb.EchoStreamResponse]:
        async for request in request_iterator:
            yield pb.EchoStreamResponse(packets=request.packets)

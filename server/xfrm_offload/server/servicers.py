"""The gRPC servicers: thin adapters from requests to the NIC model and back."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc

from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument, LocalError, NotFound
from xfrm_offload.engine.stats import XfrmStats
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc
from xfrm_offload.v1 import xfrm_pb2 as xpb

from . import convert, logs
from .clock import Clock, VirtualClock
from .nic import Nic
from .status import (
    Context,
    abort,
    abort_invalid,
    abort_not_found,
    status_from_error,
)

log = logging.getLogger("xfrm_offload.server")


Method = TypeVar("Method", bound=Callable[..., Awaitable[Any]])


def refusals(field_prefix: str = "") -> Callable[[Method], Method]:
    """Turn the engine's LocalError into the RPC's status, fields prefixed to request paths."""

    def wrap(method: Method) -> Method:
        @functools.wraps(method)
        async def call(self: Any, request: Any, context: Context) -> Any:
            try:
                return await method(self, request, context)
            except LocalError as exc:
                await abort(context, status_from_error(exc, field_prefix=field_prefix))

        return cast(Method, call)

    return wrap


class XfrmDevServicer(offload_pb2_grpc.XfrmDevServiceServicer):
    """The xfrmdev_ops callbacks."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    def _state_add(self, sa: xpb.XfrmUsersaInfo) -> pb.StateAddResponse:
        """One xdo_dev_state_add; raises LocalError with fields relative to ``sa``."""
        config = convert.sa_config_from_pb(sa)
        if not sa.HasField("offload"):
            raise InvalidArgument(
                "this NIC holds offloaded states only: set offload.dev and offload.flags",
                field="offload",
            )
        device = self.nic.offload_device(sa.offload, "offload")
        try:
            result = device.state_add(config, sa.offload.flags, self.nic.clock.now())
        finally:
            self.nic.publish(device)
        if result.offloaded:
            log.debug(
                "state added",
                extra=logs.fields(
                    dev=device.name,
                    handle=hex(result.handle),
                    spi=hex(config.spi),
                    daddr=str(config.daddr),
                    type=result.type.name.lower(),
                    dir=result.dir.name.lower(),
                ),
            )
        if not result.offloaded:
            return pb.StateAddResponse(offloaded=False, not_offloaded_reason=result.reason)
        return pb.StateAddResponse(
            offloaded=True,
            offload_handle=result.handle,
            type=convert.OFFLOAD_TYPE_TO_PB[result.type],
            dir=convert.OFFLOAD_DIR_TO_PB[result.dir],
        )

    @refusals("sa.")
    async def StateAdd(self, request: pb.StateAddRequest, context: Context) -> pb.StateAddResponse:
        if not request.HasField("sa"):
            await abort_invalid(context, "sa", "sa is required")
        return self._state_add(request.sa)

    async def StateAddBulk(
        self, request_iterator: AsyncIterator[pb.StateAddBulkRequest], context: Context
    ) -> pb.StateAddBulkResponse:
        reply = pb.StateAddBulkResponse()
        position = 0
        async for request in request_iterator:
            for sa in request.sas:
                try:
                    added = self._state_add(sa)
                except LocalError as exc:
                    status = status_from_error(exc)
                    reply.failed += 1
                    reply.results.append(
                        pb.StateAddResult(
                            position=position,
                            error=pb.ItemError(
                                code=status.code,
                                message=status.message,
                                field=exc.field or "",
                                errno=exc.errno,
                            ),
                        )
                    )
                else:
                    if added.offloaded:
                        reply.added += 1
                    else:
                        reply.failed += 1
                        reply.results.append(pb.StateAddResult(position=position, added=added))
                position += 1
        return reply

    @refusals()
    async def StateDelete(
        self, request: pb.StateDeleteRequest, context: Context
    ) -> pb.StateDeleteResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        try:
            device.state_delete(request.ref.offload_handle)
        finally:
            self.nic.publish(device)
        return pb.StateDeleteResponse()

    @refusals()
    async def StateFree(
        self, request: pb.StateFreeRequest, context: Context
    ) -> pb.StateFreeResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        device.state_free(request.ref.offload_handle)
        return pb.StateFreeResponse()

    @refusals()
    async def OffloadOk(
        self, request: pb.OffloadOkRequest, context: Context
    ) -> pb.OffloadOkResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        ok, reason = device.offload_ok(request.ref.offload_handle, request.packet)
        return pb.OffloadOkResponse(ok=ok, reason=reason)

    @refusals()
    async def AdvanceEsn(
        self, request: pb.AdvanceEsnRequest, context: Context
    ) -> pb.AdvanceEsnResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        replay = device.advance_esn(request.ref.offload_handle, request.seq_hi, request.seq)
        return pb.AdvanceEsnResponse(replay=convert.replay_to_pb(replay))

    @refusals()
    async def UpdateCurlft(
        self, request: pb.UpdateCurlftRequest, context: Context
    ) -> pb.UpdateCurlftResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        return convert.update_curlft_to_pb(device.update_curlft(request.ref.offload_handle))

    @refusals("policy.")
    async def PolicyAdd(
        self, request: pb.PolicyAddRequest, context: Context
    ) -> pb.PolicyAddResponse:
        if not request.HasField("policy"):
            await abort_invalid(context, "policy", "policy is required")
        info = request.policy
        policy = convert.policy_from_pb(info)
        if not info.HasField("offload"):
            raise InvalidArgument(
                "this NIC holds offloaded policies only: set offload.dev and "
                "offload.flags = XFRM_OFFLOAD_PACKET (4)",
                field="offload",
            )
        device = self.nic.offload_device(info.offload, "offload")
        try:
            result = device.policy_add(policy, info.offload.flags)
        finally:
            self.nic.publish(device)
        return pb.PolicyAddResponse(offload_handle=result.handle, index=result.index)

    @refusals()
    async def PolicyDelete(
        self, request: pb.PolicyDeleteRequest, context: Context
    ) -> pb.PolicyDeleteResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        try:
            device.policy_delete(request.ref.offload_handle)
        finally:
            self.nic.publish(device)
        return pb.PolicyDeleteResponse()

    @refusals()
    async def PolicyFree(
        self, request: pb.PolicyFreeRequest, context: Context
    ) -> pb.PolicyFreeResponse:
        device = self.nic.device(request.ref.dev, "ref.dev")
        device.policy_free(request.ref.offload_handle)
        return pb.PolicyFreeResponse()


class DeviceServicer(offload_pb2_grpc.DeviceServiceServicer):
    """Devices, listings, counters, events."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: Context
    ) -> pb.ListDevicesResponse:
        return pb.ListDevicesResponse(
            devices=[
                convert.device_to_pb(d, self.nic.cables.get(d.name, ""))
                for d in self.nic.devices.values()
            ]
        )

    @refusals()
    async def GetDevice(
        self, request: pb.GetDeviceRequest, context: Context
    ) -> pb.GetDeviceResponse:
        device = self.nic.device(request.name, "name")
        return pb.GetDeviceResponse(
            device=convert.device_to_pb(device, self.nic.cables.get(device.name, ""))
        )

    @refusals()
    async def SetLinkState(
        self, request: pb.SetLinkStateRequest, context: Context
    ) -> pb.SetLinkStateResponse:
        if request.link not in (pb.LINK_STATE_UP, pb.LINK_STATE_DOWN):
            await abort_invalid(context, "link", "link must be LINK_STATE_UP or LINK_STATE_DOWN")
        device = self.nic.device(request.name, "name")
        try:
            states, policies = device.set_link(
                request.link == pb.LINK_STATE_UP, self.nic.clock.now()
            )
        finally:
            self.nic.publish(device)
        log.info(
            "link changed",
            extra=logs.fields(
                dev=device.name,
                up=device.up,
                flushed_states=states,
                flushed_policies=policies,
            ),
        )
        return pb.SetLinkStateResponse(
            device=convert.device_to_pb(device),
            flushed_states=states,
            flushed_policies=policies,
        )

    def _devices(self, name: str, field: str) -> list[Device]:
        return [self.nic.device(name, field)] if name else list(self.nic.devices.values())

    @refusals()
    async def ListStates(
        self, request: pb.ListStatesRequest, context: Context
    ) -> pb.ListStatesResponse:
        return pb.ListStatesResponse(
            states=[
                convert.state_to_pb(device, entry, include_keys=request.include_keys)
                for device in self._devices(request.dev, "dev")
                for entry in device.states()
            ]
        )

    @refusals()
    async def GetState(self, request: pb.GetStateRequest, context: Context) -> pb.GetStateResponse:
        device = self.nic.device(request.dev, "dev")
        if request.WhichOneof("key") == "id":
            daddr = convert.parse_address(request.id.daddr, "id.daddr")
            assert daddr is not None
            entry = device.lookup_inbound(daddr, request.id.spi, request.id.proto or 50)
            if entry is None:
                raise NotFound(
                    f"no state with dst {daddr} spi {request.id.spi:#010x} on {device.name}",
                    field="id",
                )
        else:
            entry = device.get_state(request.offload_handle)
        return pb.GetStateResponse(
            state=convert.state_to_pb(device, entry, include_keys=request.include_keys)
        )

    @refusals()
    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: Context
    ) -> pb.ListPoliciesResponse:
        return pb.ListPoliciesResponse(
            policies=[
                convert.policy_to_pb(device, entry)
                for device in self._devices(request.dev, "dev")
                for entry in device.policies()
            ]
        )

    @refusals()
    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        devices = self._devices(request.dev, "dev")
        total = XfrmStats()
        reply = pb.GetStatsResponse()
        for device in devices:
            total.add(device.stats)
            reply.devices.append(
                pb.DeviceStats(
                    dev=device.name, counters=convert.stats_to_pb(device.stats.as_dict())
                )
            )
        reply.total.extend(convert.stats_to_pb(total.as_dict()))
        return reply

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        devs = set(request.devs)
        kinds = set(request.kinds)
        unknown = devs - set(self.nic.devices)
        if unknown:
            await abort_not_found(context, "devs", f"no device {sorted(unknown)[0]!r}")

        def accept(event: pb.WatchEventsResponse) -> bool:
            if event.kind == pb.EVENT_KIND_LOST:
                return True
            return (not devs or event.dev in devs) and (not kinds or event.kind in kinds)

        sub = self.nic.hub.subscribe(accept)
        try:
            async for event in sub:
                yield event
        finally:
            self.nic.hub.unsubscribe(sub)


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
        now = clock.advance(request.seconds)
        self.nic.poll()  # time limits reached by the jump fire now, with their events
        return pb.AdvanceClockResponse(now=now)

    async def Echo(self, request: pb.EchoRequest, context: Context) -> pb.EchoResponse:
        return pb.EchoResponse(payload=request.payload)

    async def EchoStream(
        self, request_iterator: AsyncIterator[pb.EchoStreamRequest], context: Context
    ) -> AsyncIterator[pb.EchoStreamResponse]:
        async for request in request_iterator:
            yield pb.EchoStreamResponse(packets=request.packets)

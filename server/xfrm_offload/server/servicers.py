"""The gRPC servicers: thin adapters from requests to the NIC model and back."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc

from xfrm_offload.engine.errors import InvalidArgument, LocalError
from xfrm_offload.engine.sa import check_config
from xfrm_offload.engine.selector import check_selector
from xfrm_offload.engine.spd import check_templates
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc
from xfrm_offload.v1 import xfrm_pb2 as xpb

from . import convert, logs, ops
from .clock import Clock, VirtualClock
from .nic import Nic
from .status import (
    Context,
    FieldPath,
    abort,
    abort_invalid,
    abort_not_found,
    build_status,
    esn_field,
    policy_field,
    sa_field,
    status_from_error,
)
from .workers import WorkerDied

log = logging.getLogger("xfrm_offload.server")

#: The largest AdvanceClock step: ten years (lifetimes are u64 seconds, times must stay
#: representable as whole seconds since the epoch).
MAX_CLOCK_STEP = 10 * 365 * 86400.0


Method = TypeVar("Method", bound=Callable[..., Awaitable[Any]])


def refusals(
    field_prefix: str = "", field_path: FieldPath | None = None
) -> Callable[[Method], Method]:
    """Turn the engine's LocalError into the RPC's status, fields mapped to request paths
    (``field_path``, then ``field_prefix``: see ``status.status_from_error``)."""

    def wrap(method: Method) -> Method:
        @functools.wraps(method)
        async def call(self: Any, request: Any, context: Context) -> Any:
            try:
                return await method(self, request, context)
            except LocalError as exc:
                await abort(
                    context,
                    status_from_error(exc, field_prefix=field_prefix, field_path=field_path),
                )
            except WorkerDied as exc:
                await abort(context, build_status(grpc.StatusCode.UNAVAILABLE, str(exc)))

        return cast(Method, call)

    return wrap


class XfrmDevServicer(offload_pb2_grpc.XfrmDevServiceServicer):
    """The xfrmdev_ops callbacks."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    def _state_device(self, sa: xpb.XfrmUsersaInfo) -> str:
        """The device a state is for; LocalError (fields relative to ``sa``) if none."""
        if not sa.HasField("offload"):
            # The state's own errors first, as netlink parses it (all the kernel's
            # generic checks: family, selector, algorithms, replay, encapsulation).
            check_config(convert.sa_config_from_pb(sa))
            raise InvalidArgument(
                "this NIC holds offloaded states only: set offload.dev and offload.flags",
                field="offload",
            )
        return self.nic.offload_device(sa.offload, "offload")

    async def _state_add(self, sa: xpb.XfrmUsersaInfo) -> pb.StateAddResponse:
        """One xdo_dev_state_add; raises LocalError with fields relative to ``sa``."""
        dev = self._state_device(sa)
        reply: pb.StateAddResponse = await self.nic.call(
            dev, ops.state_add, sa, self.nic.clock.now()
        )
        if reply.offloaded and log.isEnabledFor(logging.DEBUG):  # no formatting unless wanted
            log.debug(
                "state added",
                extra=logs.fields(dev=dev, handle=hex(reply.offload_handle), spi=hex(sa.id.spi)),
            )
        return reply

    @refusals("sa.", sa_field)
    async def StateAdd(self, request: pb.StateAddRequest, context: Context) -> pb.StateAddResponse:
        if not request.HasField("sa"):
            await abort_invalid(context, "sa", "sa is required")
        return await self._state_add(request.sa)

    @refusals()  # a dead worker ends the stream UNAVAILABLE; refusals are per item
    async def StateAddBulk(
        self, request_iterator: AsyncIterator[pb.StateAddBulkRequest], context: Context
    ) -> pb.StateAddBulkResponse:
        reply = pb.StateAddBulkResponse()
        position = 0
        async for request in request_iterator:
            # One device call per device and message (a worker: one pipe round trip):
            # the states of each device go in together, in their order.
            by_device: dict[str, list[tuple[int, xpb.XfrmUsersaInfo]]] = {}
            outcomes: dict[int, pb.StateAddResponse | LocalError] = {}
            for sa in request.sas:
                try:
                    by_device.setdefault(self._state_device(sa), []).append((position, sa))
                except LocalError as exc:
                    outcomes[position] = exc
                position += 1
            now = self.nic.clock.now()
            for dev, items in by_device.items():
                answers = await self.nic.call(dev, ops.state_add_many, [sa for _, sa in items], now)
                outcomes.update(zip((pos for pos, _ in items), answers, strict=True))
            for pos in sorted(outcomes):
                _bulk_result(reply, pos, outcomes[pos])
        return reply

    @refusals()
    async def StateDelete(
        self, request: pb.StateDeleteRequest, context: Context
    ) -> pb.StateDeleteResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        await self.nic.call(dev, ops.state_delete, request.ref.offload_handle)
        return pb.StateDeleteResponse()

    @refusals()
    async def StateFree(
        self, request: pb.StateFreeRequest, context: Context
    ) -> pb.StateFreeResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        await self.nic.call(dev, ops.state_free, request.ref.offload_handle)
        return pb.StateFreeResponse()

    @refusals()
    async def OffloadOk(
        self, request: pb.OffloadOkRequest, context: Context
    ) -> pb.OffloadOkResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        reply: pb.OffloadOkResponse = await self.nic.call(
            dev, ops.offload_ok, request.ref.offload_handle, request.packet
        )
        return reply

    @refusals(field_path=esn_field)
    async def AdvanceEsn(
        self, request: pb.AdvanceEsnRequest, context: Context
    ) -> pb.AdvanceEsnResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        reply: pb.AdvanceEsnResponse = await self.nic.call(
            dev, ops.advance_esn, request.ref.offload_handle, request.seq_hi, request.seq
        )
        return reply

    @refusals()
    async def UpdateCurlft(
        self, request: pb.UpdateCurlftRequest, context: Context
    ) -> pb.UpdateCurlftResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        reply: pb.UpdateCurlftResponse = await self.nic.call(
            dev, ops.update_curlft, request.ref.offload_handle
        )
        return reply

    @refusals("policy.", policy_field)
    async def PolicyAdd(
        self, request: pb.PolicyAddRequest, context: Context
    ) -> pb.PolicyAddResponse:
        if not request.HasField("policy"):
            await abort_invalid(context, "policy", "policy is required")
        info = request.policy
        if not info.HasField("offload"):
            # The policy's own errors first, as netlink parses it (its selector and
            # templates included).
            policy = convert.policy_from_pb(info)
            check_selector(policy.sel)
            check_templates(policy)
            raise InvalidArgument(
                "this NIC holds offloaded policies only: set offload.dev and "
                "offload.flags = XFRM_OFFLOAD_PACKET (4)",
                field="offload",
            )
        dev = self.nic.offload_device(info.offload, "offload")
        reply: pb.PolicyAddResponse = await self.nic.call(
            dev, ops.policy_add, info, self.nic.clock.now()
        )
        return reply

    @refusals()
    async def PolicyDelete(
        self, request: pb.PolicyDeleteRequest, context: Context
    ) -> pb.PolicyDeleteResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        await self.nic.call(dev, ops.policy_delete, request.ref.offload_handle)
        return pb.PolicyDeleteResponse()

    @refusals()
    async def PolicyFree(
        self, request: pb.PolicyFreeRequest, context: Context
    ) -> pb.PolicyFreeResponse:
        dev = self.nic.device(request.ref.dev, "ref.dev")
        await self.nic.call(dev, ops.policy_free, request.ref.offload_handle)
        return pb.PolicyFreeResponse()


def _bulk_result(
    reply: pb.StateAddBulkResponse, position: int, outcome: pb.StateAddResponse | LocalError
) -> None:
    """Count one state of a bulk add; refusals and declines are reported by position."""
    if isinstance(outcome, LocalError):
        status = status_from_error(outcome)
        reply.failed += 1
        reply.results.append(
            pb.StateAddResult(
                position=position,
                error=pb.ItemError(
                    code=status.code,
                    message=status.message,
                    field=sa_field(outcome.field) if outcome.field else "",
                    errno=outcome.errno,
                ),
            )
        )
    elif outcome.offloaded:
        reply.added += 1
    else:
        reply.failed += 1
        reply.results.append(pb.StateAddResult(position=position, added=outcome))


class DeviceServicer(offload_pb2_grpc.DeviceServiceServicer):
    """Devices, listings, counters, events."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic

    async def _describe(self, dev: str) -> pb.Device:
        device: pb.Device = await self.nic.call(dev, ops.describe)
        device.cable_peer = self.nic.cables.get(dev, "")
        interfaces = self.nic.describe_interfaces(dev)
        if interfaces is not None:
            device.interfaces.CopyFrom(interfaces)
        return device

    @refusals()
    async def ListDevices(
        self, request: pb.ListDevicesRequest, context: Context
    ) -> pb.ListDevicesResponse:
        return pb.ListDevicesResponse(
            devices=[await self._describe(name) for name in self.nic.names]
        )

    @refusals()
    async def GetDevice(
        self, request: pb.GetDeviceRequest, context: Context
    ) -> pb.GetDeviceResponse:
        return pb.GetDeviceResponse(
            device=await self._describe(self.nic.device(request.name, "name"))
        )

    @refusals()
    async def SetLinkState(
        self, request: pb.SetLinkStateRequest, context: Context
    ) -> pb.SetLinkStateResponse:
        if request.link not in (pb.LINK_STATE_UP, pb.LINK_STATE_DOWN):
            await abort_invalid(context, "link", "link must be LINK_STATE_UP or LINK_STATE_DOWN")
        dev = self.nic.device(request.name, "name")
        reply: pb.SetLinkStateResponse = await self.nic.call(
            dev, ops.set_link, request.link == pb.LINK_STATE_UP, self.nic.clock.now()
        )
        reply.device.cable_peer = self.nic.cables.get(dev, "")
        log.info(
            "link changed",
            extra=logs.fields(
                dev=dev,
                up=request.link == pb.LINK_STATE_UP,
                flushed_states=reply.flushed_states,
                flushed_policies=reply.flushed_policies,
            ),
        )
        return reply

    def _devices(self, name: str, field: str) -> list[str]:
        return [self.nic.device(name, field)] if name else list(self.nic.names)

    @refusals()
    async def ListStates(
        self, request: pb.ListStatesRequest, context: Context
    ) -> pb.ListStatesResponse:
        reply = pb.ListStatesResponse()
        for dev in self._devices(request.dev, "dev"):
            reply.states.extend(await self.nic.call(dev, ops.list_states, request.include_keys))
        return reply

    @refusals()
    async def GetState(self, request: pb.GetStateRequest, context: Context) -> pb.GetStateResponse:
        dev = self.nic.device(request.dev, "dev")
        return pb.GetStateResponse(state=await self.nic.call(dev, ops.get_state, request))

    @refusals()
    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: Context
    ) -> pb.ListPoliciesResponse:
        reply = pb.ListPoliciesResponse()
        for dev in self._devices(request.dev, "dev"):
            reply.policies.extend(await self.nic.call(dev, ops.list_policies))
        return reply

    @refusals()
    async def GetStats(self, request: pb.GetStatsRequest, context: Context) -> pb.GetStatsResponse:
        total: dict[str, int] = {}
        reply = pb.GetStatsResponse()
        for dev in self._devices(request.dev, "dev"):
            counters: dict[str, int] = await self.nic.call(dev, ops.stats)
            for name, value in counters.items():
                total[name] = total.get(name, 0) + value
            reply.devices.append(pb.DeviceStats(dev=dev, counters=convert.stats_to_pb(counters)))
        reply.total.extend(convert.stats_to_pb(total))
        return reply

    async def WatchEvents(
        self, request: pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        devs = set(request.devs)
        kinds = set(request.kinds)
        unknown = devs - set(self.nic.names)
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

    @refusals()
    async def AdvanceClock(
        self, request: pb.AdvanceClockRequest, context: Context
    ) -> pb.AdvanceClockResponse:
        clock = self.clock
        if not isinstance(clock, VirtualClock):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the server runs on the system clock; start it with --virtual-clock",
            )
        if not 0 < request.seconds <= MAX_CLOCK_STEP:
            await abort_invalid(
                context, "seconds", f"seconds must be > 0 and at most {MAX_CLOCK_STEP:.0f}"
            )
        now = clock.advance(request.seconds)
        await self.nic.fire_timers()  # time limits reached by the jump fire now, with events
        return pb.AdvanceClockResponse(now=now)

    async def Echo(self, request: pb.EchoRequest, context: Context) -> pb.EchoResponse:
        return pb.EchoResponse(payload=request.payload)

    async def EchoStream(
        self, request_iterator: AsyncIterator[pb.EchoStreamRequest], context: Context
    ) -> AsyncIterator[pb.EchoStreamResponse]:
        async for request in request_iterator:
            yield pb.EchoStreamResponse(packets=request.packets)

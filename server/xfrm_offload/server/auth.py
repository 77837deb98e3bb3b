"""Authentication and authorization of every RPC, in one place: a server interceptor.

:data:`RPC_RULES` maps each RPC to the role it needs, how to read the devices its
request names (for grants limited to devices), and whether it is audited. The
interceptor wraps each RPC's handler once; the wrapper finds the caller's identity
(:class:`Identifier`), asks the policy, and either refuses (UNAUTHENTICATED without
an identity, PERMISSION_DENIED naming the missing role) or calls the servicer, then
writes the audit line. Health and reflection are open to anyone who can connect.
An RPC missing from the table needs admin (fail closed).

Requests that name no device (ListDevices, a listing without a device filter) span
every device: a grant limited to devices does not cover them. In a client stream
(StateAddBulk) every message is checked as it arrives; the first that names a device
outside the caller's grant ends the call PERMISSION_DENIED (earlier messages were
processed). A PacketStream's device is fixed by its first message, checked before
the stream starts; only its ``dev`` field is read for that (:func:`_wire_dev`), the
servicer decodes the packets.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from xfrm_offload.engine.errors import LocalError
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from .audit import Audit
from .packetwire import read_varint
from .peers import UnixGate, loopback_owner
from .policy import ADMIN, KEYMANAGER, TRAFFIC, VIEWER, Grant, Identity, Policy
from .status import Context, abort, build_status

if TYPE_CHECKING:
    from .nic import Nic

#: Services anyone who can connect may use.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

#: Devices a request names: a list, or None when it spans every device.
Devices = Callable[[Any, "Nic"], "list[str] | None"]


@dataclass(frozen=True)
class RpcRule:
    """What one RPC needs."""

    role: str
    devices: Devices
    #: A control-plane change: one audit line per call.
    audited: bool = False
    #: Requests with include_keys need admin and are audited as key disclosures.
    keys: bool = False


def _none(_request: Any, _nic: Nic) -> list[str] | None:
    return None


def _offload_dev(offload: xpb.XfrmUserOffload, nic: Nic) -> str:
    try:
        return nic.offload_device(offload, "offload")
    except LocalError:
        return offload.dev  # the servicer will refuse it, naming the field


def _sa(request: pb.StateAddRequest, nic: Nic) -> list[str]:
    return [_offload_dev(request.sa.offload, nic)]


def _bulk(request: pb.StateAddBulkRequest, nic: Nic) -> list[str]:
    return sorted({_offload_dev(sa.offload, nic) for sa in request.sas})


def _policy(request: pb.PolicyAddRequest, nic: Nic) -> list[str]:
    return [_offload_dev(request.policy.offload, nic)]


def _ref(request: Any, _nic: Nic) -> list[str]:
    return [request.ref.dev]


def _name(request: Any, _nic: Nic) -> list[str]:
    return [request.name]


def _dev(request: Any, _nic: Nic) -> list[str]:
    return [request.dev]


def _dev_filter(request: Any, _nic: Nic) -> list[str] | None:
    return [request.dev] if request.dev else None


def _devs(request: pb.WatchEventsRequest, _nic: Nic) -> list[str] | None:
    return list(request.devs) or None


#: Past this many top-level fields (the form has four) the scan leaves the request to
#: protobuf.
_SCAN_FIELDS = 8
#: ``repeated Packet packets = 3``: one top-level field per packet, which the protobuf
#: runtime reads faster than a scan in Python steps over them.
_PACKETS_FIELD = 3


def _wire_dev(raw: bytes) -> str | None:
    """PacketStreamRequest.dev (field 1) read from the wire format alone: every other
    field is stepped over by its length, so the packets of a 64 MiB ``batch`` are never
    decoded here (the servicer decodes them once). The last ``dev`` wins, as in any
    protobuf parser. None unless the request is a few plain fields of the ``batch`` form:
    then the caller decodes it whole, so that whatever protobuf accepts names the device
    it will use."""
    pos, end, dev, fields = 0, len(raw), b"", 0
    try:
        while pos < end:
            fields += 1
            key, pos = read_varint(raw, pos)
            number, wire = key >> 3, key & 7
            if fields > _SCAN_FIELDS or number in (0, _PACKETS_FIELD):
                return None
            if wire == 2:  # length-delimited: dev, packets, batch, or unknown
                size, pos = read_varint(raw, pos)
                if number == 1:
                    dev = raw[pos : pos + size]
                pos += size
            elif number == 1:  # dev with another wire type: protobuf's call
                return None
            elif wire == 0:
                _, pos = read_varint(raw, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            else:  # groups
                return None
        return dev.decode() if pos == end else None  # else: a length past the end
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def _packet_stream(raw: bytes, _nic: Nic) -> list[str] | None:
    dev = _wire_dev(raw)
    if dev is None:
        try:
            dev = pb.PacketStreamRequest.FromString(raw).dev
        except Exception:  # the servicer refuses the framing, naming the field
            return []
    return [dev] if dev else None


def _cable(request: pb.SetCableRequest, _nic: Nic) -> list[str]:
    return [d for d in (request.dev_a, request.dev_b) if d]


_X = "/xfrm_offload.v1.XfrmDevService/"
_D = "/xfrm_offload.v1.DeviceService/"
_P = "/xfrm_offload.v1.DatapathService/"
_G = "/xfrm_offload.v1.DiagService/"
_I = "/xfrm_offload.v1.InterfaceService/"

#: Every RPC of the API, the role it needs and the devices it names.
RPC_RULES: dict[str, RpcRule] = {
    _X + "StateAdd": RpcRule(KEYMANAGER, _sa, audited=True),
    _X + "StateAddBulk": RpcRule(KEYMANAGER, _bulk, audited=True),
    _X + "StateDelete": RpcRule(KEYMANAGER, _ref, audited=True),
    _X + "StateFree": RpcRule(KEYMANAGER, _ref, audited=True),
    _X + "OffloadOk": RpcRule(TRAFFIC, _ref),
    _X + "AdvanceEsn": RpcRule(KEYMANAGER, _ref, audited=True),
    _X + "UpdateCurlft": RpcRule(KEYMANAGER, _ref),
    _X + "PolicyAdd": RpcRule(KEYMANAGER, _policy, audited=True),
    _X + "PolicyDelete": RpcRule(KEYMANAGER, _ref, audited=True),
    _X + "PolicyFree": RpcRule(KEYMANAGER, _ref, audited=True),
    _D + "ListDevices": RpcRule(VIEWER, _none),
    _D + "GetDevice": RpcRule(VIEWER, _name),
    _D + "SetLinkState": RpcRule(KEYMANAGER, _name, audited=True),
    _D + "ListStates": RpcRule(VIEWER, _dev_filter, keys=True),
    _D + "GetState": RpcRule(VIEWER, _dev, keys=True),
    _D + "ListPolicies": RpcRule(VIEWER, _dev_filter),
    _D + "GetStats": RpcRule(VIEWER, _dev_filter),
    _D + "WatchEvents": RpcRule(VIEWER, _devs),
    _P + "PacketStream": RpcRule(TRAFFIC, _packet_stream),
    _P + "WatchPackets": RpcRule(TRAFFIC, _dev),
    _P + "SetCable": RpcRule(ADMIN, _cable, audited=True),
    _P + "SetImpairment": RpcRule(ADMIN, _dev, audited=True),
    _P + "GetImpairment": RpcRule(VIEWER, _dev),
    _I + "AttachInterfaces": RpcRule(ADMIN, _dev, audited=True),
    _I + "DetachInterfaces": RpcRule(ADMIN, _dev, audited=True),
    _G + "AdvanceClock": RpcRule(ADMIN, _none, audited=True),
    _G + "Echo": RpcRule(ADMIN, _none),
    _G + "EchoStream": RpcRule(ADMIN, _none),
}
#: An RPC added to the API without a line above.
UNLISTED = RpcRule(ADMIN, _none, audited=True)


class Identifier:
    """The caller's identity from the call's transport."""

    def __init__(self, gates: list[UnixGate], loopback: list[tuple[str, int]]) -> None:
        self.gates = gates  # shared with Security, which adds the listeners as it binds
        #: Plaintext loopback listeners (host, port): peers there are known by socket owner.
        self.loopback = loopback

    def __call__(self, context: Context) -> Identity | None:
        auth = context.auth_context()
        if auth.get("transport_security_type") == [b"ssl"]:
            names = [
                v.decode(errors="replace") for v in auth.get("x509_subject_alternative_name", [])
            ]
            names += [v.decode(errors="replace") for v in auth.get("x509_common_name", [])]
            unique = tuple(dict.fromkeys(names))
            return Identity(f"cert:{unique[0]}", cert_names=unique) if unique else None
        peer = context.peer()
        for gate in self.gates:
            cred = gate.lookup(peer)
            if cred is not None:
                return Identity(f"uid:{cred.uid}", uid=cred.uid, gid=cred.gid)
        if self.loopback:
            uid = loopback_owner(peer, self.loopback)
            if uid is not None:
                return Identity(f"uid:{uid}", uid=uid)
        return None


def _refusal(
    rpc: str, role: str, devices: list[str] | None, who: Identity, grants: list[Grant]
) -> str:
    """The PERMISSION_DENIED message: the role missing, where, and what the caller has."""
    if devices is None:
        where = " on every device (a request without a device filter)"
    elif devices:
        where = f" on {', '.join(devices)}"
    else:
        where = ""
    have = "; ".join(str(g) for g in grants) or "no role"
    return f"{rpc} needs the {role} role{where}; {who.name} has {have}"


def _outcome(context: Context, ok: bool) -> str:
    """OK, or the name of the status code the call ended with."""
    if ok:
        return "OK"
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "CANCELLED"


def _handle(request: Any, response: Any) -> int | None:
    """The state or policy a call is about, for the audit line."""
    for message in (response, request):
        if message is None:
            continue
        for name in ("offload_handle", "ref", "state"):  # state: GetState by SA id
            if name in message.DESCRIPTOR.fields_by_name:
                value = getattr(message, name)
                value = value if name == "offload_handle" else value.offload_handle
                if value:
                    return int(value)
    return None


def _disclosed(response: Any) -> int:
    if isinstance(response, pb.ListStatesResponse):
        return len(response.states)
    return 1 if response is not None else 0


class Authorizer(aio.ServerInterceptor):  # type: ignore[type-arg]
    """The one place where calls are let in or refused, and audited."""

    def __init__(self, nic: Nic, policy: Policy, identify: Identifier, audit: Audit) -> None:
        self.nic = nic
        self.policy = policy  # replaced on SIGHUP
        self.identify = identify
        self.audit = audit
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = handler_call_details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED; nothing kept
            return handler
        service = method.lstrip("/").split("/", 1)[0]
        if service not in OPEN_SERVICES:
            handler = self._wrap(method, RPC_RULES.get(method, UNLISTED), handler)
        self._wrapped[method] = handler  # one entry per registered method
        return handler

    # -- the decision -------------------------------------------------------------------

    async def _admit(
        self,
        context: Context,
        rpc: str,
        rule: RpcRule,
        role: str,
        devices: list[str] | None,
        identity: Identity | None = None,
    ) -> Identity:
        """The caller's identity if it may go on; else abort the call (and audit that)."""
        who = identity or self.identify(context)
        if who is None:
            if rule.audited or role == ADMIN:
                self.audit.record("unknown", rpc, "UNAUTHENTICATED", dev=_devs_text(devices))
            await abort(
                context,
                build_status(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"{rpc}: no identity: use a client certificate (mTLS) or the Unix socket",
                    reason="NO_IDENTITY",
                ),
            )
        grants = self.policy.grants(who)
        if not any(g.covers(role, devices) for g in grants):
            message = _refusal(rpc, role, devices, who, grants)
            if rule.audited or role == ADMIN:
                self.audit.record(
                    who.name, rpc, "PERMISSION_DENIED", dev=_devs_text(devices), detail=message
                )
            await abort(
                context,
                build_status(grpc.StatusCode.PERMISSION_DENIED, message, reason="ROLE_MISSING"),
            )
        return who

    def _wrap(self, method: str, rule: RpcRule, handler: grpc.RpcMethodHandler[Any, Any]) -> Any:
        rpc = method.rsplit("/", 1)[-1]
        nic = self.nic
        serdes = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }

        def role_of(request: Any) -> tuple[str, bool]:
            keys = rule.keys and bool(request.include_keys)
            return (ADMIN if keys else rule.role), keys

        if not handler.request_streaming and not handler.response_streaming:
            inner: Any = handler.unary_unary

            @functools.wraps(inner)
            async def unary_unary(request: Any, context: Context) -> Any:
                role, keys = role_of(request)
                devices = rule.devices(request, nic)
                who = await self._admit(context, rpc, rule, role, devices)
                if not (rule.audited or keys):
                    return await inner(request, context)
                response = None
                try:
                    response = await inner(request, context)
                finally:
                    ok = response is not None
                    extra: dict[str, Any] = {}
                    if keys:
                        extra = {
                            "keys": "disclosed" if ok else "refused",
                            "states": _disclosed(response),
                        }
                    self.audit.record(
                        who.name,
                        rpc,
                        _outcome(context, ok),
                        dev=_devs_text(devices),
                        handle=_hex(_handle(request, response)),
                        detail=None if ok else (context.details() or None),
                        **extra,
                    )
                return response

            return grpc.unary_unary_rpc_method_handler(unary_unary, **serdes)

        if not handler.request_streaming:
            inner_us: Any = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                await self._admit(context, rpc, rule, rule.role, rule.devices(request, nic))
                async for response in inner_us(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream, **serdes)

        async def guarded(
            requests: AsyncIterator[Any], context: Context, who: Identity, counts: list[int]
        ) -> AsyncIterator[Any]:
            """Each message of a client stream, checked for the devices it names."""
            async for request in requests:
                devices = rule.devices(request, nic)
                if devices:
                    await self._admit(context, rpc, rule, rule.role, devices, who)
                if isinstance(request, pb.StateAddBulkRequest):
                    counts[0] += len(request.sas)
                yield request

        if not handler.response_streaming:
            inner_su: Any = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: Context) -> Any:
                who = await self._admit(context, rpc, rule, rule.role, [], None)
                counts = [0]
                response = None
                try:
                    response = await inner_su(guarded(requests, context, who, counts), context)
                finally:
                    if rule.audited:
                        self.audit.record(
                            who.name,
                            rpc,
                            _outcome(context, response is not None),
                            sas=counts[0],
                            added=getattr(response, "added", None),
                            failed=getattr(response, "failed", None),
                            detail=None if response is not None else (context.details() or None),
                        )
                return response

            return grpc.stream_unary_rpc_method_handler(stream_unary, **serdes)

        inner_ss: Any = handler.stream_stream

        async def admitted(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            """The requests, once the first one's devices are admitted (it is read again)."""
            iterator = aiter(requests)
            first = await anext(iterator, None)
            devices = rule.devices(first, nic) if first is not None else None
            await self._admit(context, rpc, rule, rule.role, devices)

            async def replay() -> AsyncIterator[Any]:
                if first is not None:
                    yield first
                async for request in iterator:
                    yield request

            return replay()

        if not inspect.isasyncgenfunction(inner_ss):
            # A method that writes with context.write (PacketStream) stays a coroutine.

            async def stream_stream_writes(requests: AsyncIterator[Any], context: Context) -> None:
                await inner_ss(await admitted(requests, context), context)

            return grpc.stream_stream_rpc_method_handler(stream_stream_writes, **serdes)

        async def stream_stream(
            requests: AsyncIterator[Any], context: Context
        ) -> AsyncIterator[Any]:
            async for response in inner_ss(await admitted(requests, context), context):
                yield response

        return grpc.stream_stream_rpc_method_handler(stream_stream, **serdes)


def _devs_text(devices: list[str] | None) -> str | None:
    return ",".join(devices) if devices else None


def _hex(handle: int | None) -> str | None:
    return None if handle is None else f"{handle:#x}"

"""Engine errors -> gRPC status with rich details, in one place.

Every refusal carries a ``google.rpc.ErrorInfo`` (reason = the errno's name,
metadata ``errno`` = its number) and, when one field is to blame, a
``google.rpc.BadRequest`` field violation naming it with its full path in the
request (``sa.aead.alg_icv_len``).

The engine names fields by its own config names (``aead.icv_bits``, ``lifetime.*``,
``sa_dir``; a policy's ``templates[0].daddr``); the ``*_field`` functions below are
the one place they become the request's paths. They leave a name that already is a
request path as it is (the server's own parsing in ``convert`` names request fields
directly).
"""

from __future__ import annotations

import errno as errno_mod
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from xfrm_offload.engine.errors import LocalError

DOMAIN = "xfrm-offload"

#: A grpc.aio servicer context (the stubs make it generic over request/response).
Context: TypeAlias = "aio.ServicerContext[Any, Any]"

#: How the kernel's answers map onto gRPC codes.
ERRNO_TO_CODE: dict[int, grpc.StatusCode] = {
    errno_mod.EINVAL: grpc.StatusCode.INVALID_ARGUMENT,
    errno_mod.ENOSPC: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno_mod.EMSGSIZE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno_mod.EEXIST: grpc.StatusCode.ALREADY_EXISTS,
    errno_mod.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno_mod.ESRCH: grpc.StatusCode.NOT_FOUND,
    errno_mod.ENODEV: grpc.StatusCode.NOT_FOUND,
    errno_mod.EBUSY: grpc.StatusCode.FAILED_PRECONDITION,
    errno_mod.ENETDOWN: grpc.StatusCode.FAILED_PRECONDITION,
    errno_mod.EOPNOTSUPP: grpc.StatusCode.FAILED_PRECONDITION,
}


def build_status(
    code: grpc.StatusCode,
    message: str,
    *,
    field: str | None = None,
    reason: str | None = None,
    errno: int | None = None,
    allowed: tuple[str, ...] = (),
) -> status_pb2.Status:
    """A google.rpc.Status with ErrorInfo and, when a field is named, BadRequest."""
    details: list[any_pb2.Any] = []
    metadata: dict[str, str] = {}
    if errno is not None:
        metadata["errno"] = str(errno)
    if allowed:
        metadata["allowed"] = ",".join(allowed)
    info = error_details_pb2.ErrorInfo(reason=reason or code.name, domain=DOMAIN, metadata=metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if field:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)


#: Maps an engine field name to its path in one request message.
FieldPath: TypeAlias = Callable[[str], str]

#: SAConfig's top-level names -> XfrmUsersaInfo's (xfrm.proto).
_SA_HEADS = {
    "proto": "id.proto",
    "daddr": "id.daddr",
    "spi": "id.spi",
    "sa_dir": "dir",
    "selector": "sel",
    "lifetime": "lft",
    "replay": "replay_esn",
}
#: Algorithm's names -> XfrmAlgo's (XfrmAlgoAead / XfrmAlgoAuth name the ICV length).
_ALG_LEAVES = {"key": "alg_key", "name": "alg_name"}
_ICV_LEAVES = {"aead": "alg_icv_len", "auth": "alg_trunc_len"}
#: EncapTemplate's names -> XfrmEncapTmpl's.
_ENCAP_LEAVES = {"sport": "encap_sport", "dport": "encap_dport", "oa": "encap_oa"}


def sa_field(name: str) -> str:
    """An SAConfig field's path in XfrmUsersaInfo (``aead.icv_bits`` -> ``aead.alg_icv_len``)."""
    head, _, rest = name.partition(".")
    if head in ("aead", "enc", "auth") and rest:
        leaf = _ICV_LEAVES.get(head, rest) if rest == "icv_bits" else _ALG_LEAVES.get(rest, rest)
        return f"{head}.{leaf}"
    if head == "encap" and rest:
        return f"encap.{_ENCAP_LEAVES.get(rest, rest)}"
    head = _SA_HEADS.get(head, head)
    return f"{head}.{rest}" if rest else head


#: Policy's names -> XfrmUserpolicyInfo's, and Template's -> XfrmUserTmpl's.
_POLICY_HEADS = {"lifetime": "lft", "mark": "mark.v", "mark_mask": "mark.m"}
_TEMPLATE_LEAVES = {"daddr": "id.daddr", "spi": "id.spi", "proto": "id.proto", "level": "optional"}
_TEMPLATES = re.compile(r"templates(\[\d+\])?(?:\.(.+))?")


def policy_field(name: str) -> str:
    """A Policy field's path in XfrmUserpolicyInfo (``templates[0].daddr`` ->
    ``tmpl[0].id.daddr``, ``lifetime.hard_add_expires_seconds`` -> ``lft.*``)."""
    templates = _TEMPLATES.fullmatch(name)
    if templates is not None:
        index, leaf = templates.group(1) or "", templates.group(2)
        return f"tmpl{index}" + (f".{_TEMPLATE_LEAVES.get(leaf, leaf)}" if leaf else "")
    head, _, rest = name.partition(".")
    head = _POLICY_HEADS.get(head, head)
    return f"{head}.{rest}" if rest else head


#: AdvanceEsnRequest carries the replay state's seq_hi and seq at its top level.
_ESN_FIELDS = {"replay.seq_hi": "seq_hi", "replay.seq": "seq"}


def esn_field(name: str) -> str:
    """A replay-state field's path in AdvanceEsnRequest."""
    return _ESN_FIELDS.get(name, name)


def status_from_error(
    exc: LocalError, *, field_prefix: str = "", field_path: FieldPath | None = None
) -> status_pb2.Status:
    """Map an engine LocalError: ``field_path`` spells the engine's field the request's
    way, ``field_prefix`` locates that message in the request (``sa.``)."""
    code = ERRNO_TO_CODE.get(exc.errno, grpc.StatusCode.INVALID_ARGUMENT)
    field = None
    if exc.field:
        field = f"{field_prefix}{field_path(exc.field) if field_path else exc.field}"
    return build_status(
        code,
        str(exc),
        field=field,
        reason=errno_mod.errorcode.get(exc.errno, "EINVAL"),
        errno=exc.errno,
        allowed=exc.allowed,
    )


async def abort(context: Context, status: status_pb2.Status) -> NoReturn:
    """End the RPC with ``status`` (its rich details travel in the trailers)."""
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, rich.trailing_metadata)
    raise AssertionError("abort returned")  # pragma: no cover


def end_with(context: Context, status: status_pb2.Status) -> None:
    """Set ``status`` as the RPC's end, for a handler that then returns: unlike
    ``abort``, no exception is raised, so nothing the handler's frames hold (a stream's
    last request) lives on in a traceback that gRPC keeps with the call."""
    rich = rpc_status.to_status(status)
    context.set_trailing_metadata(rich.trailing_metadata)
    context.set_code(rich.code)
    context.set_details(rich.details)


async def abort_invalid(context: Context, field: str, message: str) -> NoReturn:
    """INVALID_ARGUMENT naming ``field`` (for malformed requests caught in the adapter)."""
    await abort(
        context,
        build_status(
            grpc.StatusCode.INVALID_ARGUMENT,
            message,
            field=field,
            reason="EINVAL",
            errno=errno_mod.EINVAL,
        ),
    )


async def abort_not_found(context: Context, field: str, message: str) -> NoReturn:
    """NOT_FOUND naming the field that named the missing thing."""
    await abort(
        context,
        build_status(
            grpc.StatusCode.NOT_FOUND, message, field=field, reason="ENODEV", errno=errno_mod.ENODEV
        ),
    )


async def abort_unimplemented(context: Context, what: str) -> NoReturn:
    """UNIMPLEMENTED, saying which part of the product is still missing."""
    await abort(
        context,
        build_status(grpc.StatusCode.UNIMPLEMENTED, f"not implemented yet: {what}"),
    )

"""Undecodable request bytes: INVALID_ARGUMENT naming the message type, one log line per cause.

Left to itself, grpc.aio raises the parser's DecodeError inside its own call machinery:
the client gets UNKNOWN ("Unexpected <class DecodeError>") and the log a traceback per
bad request. ``MalformedRequests`` is a server interceptor that wraps every method's
request deserializer so that undecodable bytes become a ``Malformed`` marker instead of
an exception, and wraps the method so that a marker ends the call with INVALID_ARGUMENT
(ErrorInfo reason ``MALFORMED_REQUEST`` and a BadRequest violation naming the message
type). For streamed requests the check is per message: a stream whose third message is
garbage ends at the third. Methods that take raw bytes (PacketStream parses its own)
are left as they are.

The log gets one warning line per method and interval (``LOG_INTERVAL_SECONDS``); the
next line says how many more came in between. A flood of bad requests costs a line a
second, not a traceback each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from .logs import RateLimitedLog
from .status import Context, abort, build_status

log = logging.getLogger("xfrm_offload.server")

#: At most one "malformed request" line per method in this many seconds.
LOG_INTERVAL_SECONDS = 1.0
REASON = "MALFORMED_REQUEST"

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class Malformed:
    """What a request deserializer returns for bytes that are not its message."""

    __slots__ = ("detail", "type_name")

    def __init__(self, type_name: str, detail: str) -> None:
        self.type_name = type_name
        self.detail = detail


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    """The message type a generated ``Message.FromString`` deserializer parses."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    name = getattr(descriptor, "full_name", None)
    return name if isinstance(name, str) else "request"


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    type_name = _type_name(deserializer)

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as exc:
            return Malformed(type_name, str(exc))

    return deserialize


class MalformedRequests(aio.ServerInterceptor):  # type: ignore[type-arg]  # generic in the stubs only
    """Answers undecodable requests INVALID_ARGUMENT on every method (see module doc)."""

    def __init__(self) -> None:
        self.log = RateLimitedLog(LOG_INTERVAL_SECONDS)
        #: method -> (the handler seen, its wrapped form): wrapped once, not per call.
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    async def _refuse(self, context: Context, method: str, bad: Malformed) -> None:
        message = f"malformed request: the bytes are not a valid {bad.type_name}"
        self.log.warn(method, "malformed request", method=method, type=bad.type_name)
        await abort(
            context,
            build_status(
                grpc.StatusCode.INVALID_ARGUMENT, message, field=bad.type_name, reason=REASON
            ),
        )

    def _wrap(self, method: str, handler: Any) -> Handler:
        refuse = self._refuse
        changes: dict[str, Any] = {"request_deserializer": _safe(handler.request_deserializer)}
        if not handler.request_streaming:
            inner = handler.unary_stream if handler.response_streaming else handler.unary_unary

            if handler.response_streaming:

                async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                    if isinstance(request, Malformed):
                        await refuse(context, method, request)
                    result = inner(request, context)
                    if hasattr(result, "__aiter__"):
                        async for response in result:
                            yield response
                    else:  # a method that writes with context.write
                        await result

                changes["unary_stream"] = unary_stream
            else:

                async def unary_unary(request: Any, context: Context) -> Any:
                    if isinstance(request, Malformed):
                        await refuse(context, method, request)
                    return await inner(request, context)

                changes["unary_unary"] = unary_unary
        else:

            async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Malformed):
                        await refuse(context, method, request)
                    yield request

            if handler.response_streaming:
                inner_ss = handler.stream_stream

                async def stream_stream(requests: Any, context: Context) -> AsyncIterator[Any]:
                    result = inner_ss(checked(requests, context), context)
                    if hasattr(result, "__aiter__"):
                        async for response in result:
                            yield response
                    else:
                        await result

                changes["stream_stream"] = stream_stream
            else:
                inner_su = handler.stream_unary

                async def stream_unary(requests: Any, context: Context) -> Any:
                    return await inner_su(checked(requests, context), context)

                changes["stream_unary"] = stream_unary
        wrapped: Handler = handler._replace(**changes)
        return wrapped

"""How many calls the server takes at once, and what a call past that bound is told.

gRPC core keeps calls that arrived before the application asked for them in a pending
list and CANCELS them past its own limits (1,000 soft, 3,000 hard by default): a burst of
5,000 calls on one channel lost about 2,000 that way. The server raises those limits
above its own bound (``grpc_options``) and enforces the bound itself (``CallLimit``):
past ``--max-calls`` calls in the servicers' hands (being answered, or streams held
open), a new call is answered RESOURCE_EXHAUSTED with a
``google.rpc.RetryInfo`` saying when to try again, which a client can act on; CANCELLED
says nothing of the kind. Streams count as one call each for as long as they are open.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2
from grpc import aio

from .handlers import Behaviour, Handler, with_behaviour
from .status import Context, abort, build_status

#: Calls in flight the server takes before it answers RESOURCE_EXHAUSTED (--max-calls).
DEFAULT_MAX_CALLS = 10_000
#: What RetryInfo tells a refused caller to wait before trying again.
RETRY_AFTER_SECONDS = 0.1


def grpc_options(max_calls: int) -> list[tuple[str, int]]:
    """gRPC core's limits, set so that it never cancels a call itself.

    Calls wait in core's pending list only until the event loop picks them up (a unary
    call that needs no device is done before the next one starts), so that list is
    allowed a few times the bound.
    """
    room = 4 * max_calls + 1000
    return [
        ("grpc.server.max_pending_requests", room),
        ("grpc.server.max_pending_requests_hard_limit", room),
    ]


class CallLimit(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts calls in flight; refuses one past ``limit`` with RESOURCE_EXHAUSTED."""

    def __init__(self, limit: int, retry_after: float = RETRY_AFTER_SECONDS) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self.in_flight = 0
        #: Most calls in flight at once, and calls refused, since start.
        self.peak = 0
        self.refused = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._wrap(handler)

    def _enter(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return True

    def _leave(self) -> None:
        self.in_flight -= 1

    async def _refuse(self, context: Context) -> None:
        status = build_status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"more than {self.limit} calls in flight; retry in {self.retry_after} s",
            reason="ENOBUFS",
        )
        seconds = int(self.retry_after)
        delay = duration_pb2.Duration(
            seconds=seconds, nanos=int((self.retry_after - seconds) * 1e9)
        )
        hint = any_pb2.Any()
        hint.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        status.details.append(hint)
        await abort(context, status)

    def _wrap(self, handler: Handler) -> Handler:
        """The same handler, its behaviour inside the count (each of the four kinds)."""
        return with_behaviour(handler, lambda _kind, behaviour: self._counted(behaviour))

    def _counted(self, behaviour: Behaviour) -> Behaviour:
        limit = self

        if inspect.isasyncgenfunction(behaviour):

            async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
                if not limit._enter():
                    await limit._refuse(context)
                try:
                    async for reply in behaviour(request, context):
                        yield reply
                finally:
                    limit._leave()

            wrapped: Callable[..., Any] = streaming
        else:

            async def once(request: Any, context: Context) -> Any:
                if not limit._enter():
                    await limit._refuse(context)
                try:
                    result = behaviour(request, context)
                    return await result if inspect.isawaitable(result) else result
                finally:
                    limit._leave()

            wrapped = once
        return wrapped

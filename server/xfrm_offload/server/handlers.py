"""What server interceptors share: the behaviour of a gRPC method handler, replaced.

A handler is one of four kinds (unary or streaming request, unary or streaming response);
an interceptor that only runs code around the call wraps the kind's behaviour and
rebuilds a handler of the same kind with the same (de)serializers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Behaviour = Callable[..., Any]


def kind_of(handler: Handler) -> str:
    """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
    request = "stream" if handler.request_streaming else "unary"
    response = "stream" if handler.response_streaming else "unary"
    return f"{request}_{response}"


def with_behaviour(handler: Handler, wrap: Callable[[str, Behaviour], Behaviour]) -> Handler:
    """The same kind of handler, its behaviour replaced by ``wrap(kind, behaviour)``."""
    kind = kind_of(handler)
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    rebuilt: Handler = make(
        wrap(kind, getattr(handler, kind)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
    return rebuilt

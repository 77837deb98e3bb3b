"""Every method the server serves, from the service descriptors, and a way to call any of
them with raw request bytes (a generic channel call: no stub, no client-side encoding)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from xfrm_offload.v1 import offload_pb2


@dataclass(frozen=True)
class Method:
    path: str
    descriptor: MethodDescriptor

    @property
    def request_type(self) -> str:
        return self.descriptor.input_type.full_name

    def __str__(self) -> str:
        return self.path


def all_methods() -> list[Method]:
    """Every method: 24 of xfrm_offload.v1, health's 3 (Check, Watch, List), reflection's 1."""
    methods = []
    for file in (offload_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        for service in file.services_by_name.values():
            for method in service.methods:
                methods.append(Method(f"/{service.full_name}/{method.name}", method))
    return methods


async def call_raw(
    channel: grpc.aio.Channel, method: Method, payloads: Sequence[bytes], timeout: float = 10
) -> tuple[grpc.StatusCode, str]:
    """Send ``payloads`` (one for unary requests) as they are; the call's final code and
    details. Streamed responses are read to the end."""
    d = method.descriptor
    try:
        if d.client_streaming:

            async def requests() -> AsyncIterator[bytes]:
                for payload in payloads:
                    yield payload

            if d.server_streaming:
                async for _ in channel.stream_stream(method.path, None, None)(
                    requests(), timeout=timeout
                ):
                    pass
            else:
                await channel.stream_unary(method.path, None, None)(requests(), timeout=timeout)
        elif d.server_streaming:
            stream = channel.unary_stream(method.path, None, None)(payloads[0], timeout=timeout)
            async for _ in stream:
                if method.path.endswith(("/WatchEvents", "/WatchPackets", "/Watch")):
                    stream.cancel()  # a watch that was accepted: it would run forever
                    return grpc.StatusCode.OK, ""
        else:
            await channel.unary_unary(method.path, None, None)(payloads[0], timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""

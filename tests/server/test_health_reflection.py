"""Standard server pieces: gRPC health checking and server reflection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer


async def test_health_serving_overall_and_per_service(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "xfrm_offload.v1.XfrmDevService", "xfrm_offload.v1.DeviceService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    try:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.Such"))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("unknown service must be NOT_FOUND")


async def test_reflection_lists_every_service(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: list[str] = []
    async for reply in stub.ServerReflectionInfo(requests()):
        names = [s.name for s in reply.list_services_response.service]
    assert sorted(names) == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "xfrm_offload.v1.DatapathService",
        "xfrm_offload.v1.DeviceService",
        "xfrm_offload.v1.DiagService",
        "xfrm_offload.v1.InterfaceService",
        "xfrm_offload.v1.XfrmDevService",
    ]


async def test_health_list_answers_every_service(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    stub = health_pb2_grpc.HealthStub(client.channel)
    reply = await stub.List(health_pb2.HealthListRequest())
    assert sorted(reply.statuses) == [
        "",
        "xfrm_offload.v1.DatapathService",
        "xfrm_offload.v1.DeviceService",
        "xfrm_offload.v1.DiagService",
        "xfrm_offload.v1.InterfaceService",
        "xfrm_offload.v1.XfrmDevService",
    ]
    assert {s.status for s in reply.statuses.values()} == {health_pb2.HealthCheckResponse.SERVING}

"""gRPC health checking, with the List method grpc's asyncio servicer leaves out.

grpc_health's asyncio HealthServicer implements Check and Watch; List (added to
grpc.health.v1 later) falls through to the generated base and raises
NotImplementedError: UNKNOWN and a traceback. Here List answers every service's status.
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import _async as health_aio  # what grpc_health.v1.health.aio names
from grpc_health.v1 import health_pb2


class HealthServicer(health_aio.HealthServicer):  # type: ignore[misc]  # untyped base
    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._server_status.items()
            }
        )

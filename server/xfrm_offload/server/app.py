"""Build, start and stop the grpc.aio server: servicers, health, reflection, listeners."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from xfrm_offload.v1 import offload_pb2, offload_pb2_grpc
from xfrm_offload.v1.endpoint import default_socket_path
from xfrm_offload.v1.transport import server_options

from . import logs
from .clock import SystemClock, VirtualClock
from .config import ServerConfig
from .datapath import DatapathServicer
from .health import HealthServicer
from .limits import CallLimit, grpc_options
from .malformed import MalformedRequests
from .metrics import Metrics
from .nic import Nic
from .realif import InterfaceServicer, RealInterfaces
from .security import Security
from .servicers import DeviceServicer, DiagServicer, XfrmDevServicer

log = logging.getLogger("xfrm_offload.server")

SERVICE_NAMES = tuple(
    offload_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in (
        "XfrmDevService",
        "DeviceService",
        "DatapathService",
        "DiagService",
        "InterfaceService",
    )
)
#: At a graceful stop with packet streams open: time for their clients to take the end.
STREAM_LINGER_SECONDS = 0.2


def _remove_stale_socket(path: Path) -> None:
    """Unlink a socket file left by a server that is gone; refuse one that is alive."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()  # nobody listens: an earlier run's leftover
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: another server is listening there")


class OffloadServer:
    """One running xfrm-offloadd: the NIC model behind a grpc.aio server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.clock = VirtualClock() if config.virtual_clock else SystemClock()
        self.nic = Nic(config, self.clock)
        self.health = HealthServicer()
        #: --max-calls: calls past it are refused RESOURCE_EXHAUSTED before any other work.
        self.calls = CallLimit(config.max_calls)
        #: Undecodable request bytes get INVALID_ARGUMENT, not UNKNOWN and a traceback.
        self.malformed = MalformedRequests()
        self.security = Security(config.security, self.nic, config.log_format)
        # --metrics: its interceptor counts every RPC, so it exists before the server.
        self.metrics = Metrics(self.nic) if config.metrics is not None else None
        interceptors = [self.calls, self.malformed, *self.security.interceptors()]
        if self.metrics is not None:
            interceptors.insert(0, self.metrics.interceptor)
        self.server = aio.server(
            # Outermost first: metrics count every call, refused ones included; a call past
            # --max-calls is refused before it is decoded or authorized (it costs nothing);
            # a request that does not decode is refused before the authorizer (which reads
            # the request's fields) sees it.
            interceptors=interceptors,
            options=[
                *server_options(config.max_request),
                *grpc_options(config.max_calls),
            ],
        )
        offload_pb2_grpc.add_XfrmDevServiceServicer_to_server(
            XfrmDevServicer(self.nic), self.server
        )
        offload_pb2_grpc.add_DeviceServiceServicer_to_server(DeviceServicer(self.nic), self.server)
        self.datapath = DatapathServicer(self.nic, config.packet_budget)
        self.datapath.register(self.server)
        offload_pb2_grpc.add_DiagServiceServicer_to_server(
            DiagServicer(self.nic, self.clock), self.server
        )
        self.interfaces = RealInterfaces(self.nic, self.datapath.wires, config.tun_offload)
        offload_pb2_grpc.add_InterfaceServiceServicer_to_server(
            InterfaceServicer(self.interfaces), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.addresses: list[str] = []
        self._sockets: list[Path] = []
        self.nic.on_outage = self._worker_outage
        self._health_update: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind every listener (Unix sockets mode 0600 unless configured) and start serving."""
        for endpoint in self.config.listen:
            if endpoint.unix_path is not None:
                path = endpoint.unix_path
                if path == default_socket_path():  # its runtime directory, private
                    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if path.is_socket():
                    _remove_stale_socket(path)
                self._sockets.append(path)
            self.addresses.append(self.security.bind(self.server, endpoint))
        await self.nic.start()  # workers first: no RPC may reach a device before it exists
        try:
            for spec in self.config.interfaces:
                await self.interfaces.attach(
                    spec.dev,
                    str(spec.host_tun),
                    str(spec.wire_if or ""),
                    wire_udp=str(spec.wire_udp or ""),
                )
        except BaseException:  # not started: leave no interface or socket file behind
            await self.interfaces.close()
            await self.nic.stop_workers()
            await self.security.wait_closed()  # its private socket directory
            for path in self._sockets:
                path.unlink(missing_ok=True)
            raise
        if self.metrics is not None and self.config.metrics is not None:
            self.metrics.start(self.config.metrics, asyncio.get_running_loop())
        await self.server.start()
        await self.security.start()  # the Unix sockets: SO_PEERCRED in front of gRPC
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "serving",
            extra=logs.fields(
                listen=",".join(self.addresses),
                devices=",".join(f"{d.name}:{d.profile}" for d in self.config.devices),
                clock="virtual" if self.config.virtual_clock else "system",
                **({"metrics": self.metrics.address} if self.metrics is not None else {}),
            ),
        )

    def _worker_outage(self, down: bool) -> None:
        """A worker died (its devices are out until it is restarted) or all are back:
        health says NOT_SERVING for the server and its services meanwhile."""
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING
            if down
            else health_pb2.HealthCheckResponse.SERVING
        )
        previous = self._health_update

        async def update() -> None:
            if previous is not None:
                await previous  # in the order the outages began and ended
            for name in ("", *SERVICE_NAMES):
                await self.health.set(name, status)

        self._health_update = asyncio.get_running_loop().create_task(update())

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, end event streams, let in-flight RPCs finish, clean up."""
        await self.health.enter_graceful_shutdown()
        await self.nic.close()
        streams = self.datapath.open_streams
        self.datapath.shutdown()
        if streams:
            # The streams end OK now, but a client still sending (its half of the stream
            # is open) answers the end with a frame of its own; were the connection
            # closed by then, it would report UNAVAILABLE instead of the OK it was sent.
            await asyncio.sleep(STREAM_LINGER_SECONDS)
        await self.security.close()
        await self.server.stop(self.config.grace if grace is None else grace)
        await self.interfaces.close()
        await self.security.wait_closed()
        await self.nic.stop_workers()
        if self.metrics is not None:
            self.metrics.stop()
        for path in self._sockets:
            path.unlink(missing_ok=True)
        log.info("stopped")

    async def wait(self) -> None:
        await self.server.wait_for_termination()

"""``--metrics HOST:PORT``: Prometheus text exposition of the NIC and its RPCs.

    xfrm_offload_xfrm_stat_total{dev,counter}          /proc/net/xfrm_stat, per device
    xfrm_offload_state_bytes_total{dev,handle,dir,daddr,spi}    curlft.bytes of each SA
    xfrm_offload_state_packets_total{dev,handle,dir,daddr,spi}  curlft.packets of each SA
    xfrm_offload_rpc_total{method,code}                 finished RPCs by gRPC status
    xfrm_offload_rpc_duration_seconds{method}           RPC latency (streams: their lifetime)
    xfrm_offload_open_streams{method}                   streaming RPCs open now

prometheus_client formats the text and serves it (its HTTP server runs in a thread of its
own). The NIC's numbers are read at scrape time: the scrape thread hands a coroutine to the
server's event loop and waits for it, so the devices are read in their usual order, among the
RPCs, never from two threads at once. RPCs are counted by a grpc.aio server interceptor.
No key material is read: states are listed without keys.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb
from xfrm_offload.v1.endpoint import Endpoint

from . import ops
from .handlers import Behaviour, Handler, with_behaviour
from .nic import Nic

#: How long a scrape waits for the event loop to read the devices.
SCRAPE_TIMEOUT = 10.0
_DIRS = {xpb.SA_DIR_IN: "in", xpb.SA_DIR_OUT: "out"}


@dataclass
class _Snapshot:
    stats: dict[str, dict[str, int]]
    states: list[pb.State]


class _NicCollector:
    """Reads the devices when Prometheus scrapes (in the scrape thread, through the loop)."""

    def __init__(self, nic: Nic, loop: asyncio.AbstractEventLoop) -> None:
        self.nic = nic
        self.loop = loop

    async def _snapshot(self) -> _Snapshot:
        stats: dict[str, dict[str, int]] = {}
        states: list[pb.State] = []
        for dev in self.nic.names:
            stats[dev] = await self.nic.call(dev, ops.stats)
            states.extend(await self.nic.call(dev, ops.list_states, False))
        return _Snapshot(stats, states)

    def collect(self) -> Iterator[Metric]:
        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self.loop)
        snapshot = future.result(SCRAPE_TIMEOUT)
        xfrm_stat = CounterMetricFamily(
            "xfrm_offload_xfrm_stat",
            "The /proc/net/xfrm_stat counters of each device (kernel names)",
            labels=["dev", "counter"],
        )
        for dev, counters in snapshot.stats.items():
            for name, value in counters.items():
                xfrm_stat.add_metric([dev, name], value)
        yield xfrm_stat
        labels = ["dev", "handle", "dir", "daddr", "spi"]
        sa_bytes = CounterMetricFamily(
            "xfrm_offload_state_bytes", "Bytes through each SA (curlft.bytes)", labels=labels
        )
        sa_packets = CounterMetricFamily(
            "xfrm_offload_state_packets", "Packets through each SA (curlft.packets)", labels=labels
        )
        for state in snapshot.states:
            if state.lifecycle == pb.LIFECYCLE_DELETED:
                continue
            values = [
                state.dev,
                str(state.offload_handle),
                _DIRS.get(state.sa.dir, "none"),
                state.sa.id.daddr,
                f"{state.sa.id.spi:#010x}",
            ]
            sa_bytes.add_metric(values, state.curlft.bytes)
            sa_packets.add_metric(values, state.curlft.packets)
        yield sa_bytes
        yield sa_packets


# grpc's classes are generic in its stubs only, not at run time.
if TYPE_CHECKING:
    Context = aio.ServicerContext[Any, Any]
    _InterceptorBase = aio.ServerInterceptor[Any, Any]
else:
    Context = aio.ServicerContext
    _InterceptorBase = aio.ServerInterceptor


class Metrics:
    """The registry, the RPC interceptor and the HTTP endpoint of one server."""

    def __init__(self, nic: Nic) -> None:
        self.nic = nic
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "xfrm_offload_rpc",
            "Finished RPCs by method and gRPC status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "xfrm_offload_rpc_duration_seconds",
            "RPC latency; for streams, how long they were open",
            ["method"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "xfrm_offload_open_streams",
            "Streaming RPCs open now",
            ["method"],
            registry=self.registry,
        )
        self.interceptor = _Interceptor(self)
        self.address = ""
        self._httpd: WSGIServer | None = None

    def start(self, endpoint: Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        """Serve /metrics on HOST:PORT (port 0: any free one; ``address`` says which)."""
        self.registry.register(_NicCollector(self.nic, loop))
        httpd, _thread = start_http_server(endpoint.port, endpoint.host, registry=self.registry)
        self._httpd = httpd
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        self.address = f"{host}:{httpd.server_port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def finished(self, method: str, code: grpc.StatusCode, started: float) -> None:
        self.rpcs.labels(method, code.name).inc()
        self.latency.labels(method).observe(time.perf_counter() - started)


def _code(context: Context, exc: BaseException | None) -> grpc.StatusCode:
    """The status an RPC ended with: what the handler set (abort sets it too), else OK, or
    UNKNOWN for an exception that set nothing (CANCELLED when the client went away)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # some grpc versions keep the numeric value
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN


class _Interceptor(_InterceptorBase):
    """Counts, times and (for streams) gauges every RPC the server runs."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = str(handler_call_details.method).rsplit("/", 1)[-1]
        return with_behaviour(
            handler,
            lambda kind, behavior: self._wrapped(method, behavior, kind != "unary_unary"),
        )

    def _wrapped(self, method: str, behavior: Behaviour, streaming: bool) -> Behaviour:
        metrics = self.metrics
        gauge = metrics.open_streams.labels(method) if streaming else None

        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                started = time.perf_counter()
                assert gauge is not None
                gauge.inc()
                exc: BaseException | None = None
                try:
                    async for item in behavior(request, context):
                        yield item
                except BaseException as error:
                    exc = error
                    raise
                finally:
                    gauge.dec()
                    metrics.finished(method, _code(context, exc), started)

            return stream

        async def call(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            if gauge is not None:
                gauge.inc()
            exc: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as error:
                exc = error
                raise
            finally:
                if gauge is not None:
                    gauge.dec()
                metrics.finished(method, _code(context, exc), started)

        return call

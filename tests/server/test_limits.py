"""Calls in flight: thousands at once all answered; past --max-calls, RESOURCE_EXHAUSTED
with a retry hint, never CANCELLED."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc
from xfrm_offload.v1.endpoint import parse_endpoint

from ..conftest import running_server
from .raw_calls import all_methods, call_raw
from .test_metrics import samples, scrape, value


async def _outcome(call: aio.UnaryUnaryCall[pb.ListDevicesRequest, pb.ListDevicesResponse]) -> str:
    try:
        reply = await call
    except aio.AioRpcError as exc:
        return exc.code().name
    return "OK" if [d.name for d in reply.devices] == ["eth0"] else "WRONG"


async def test_5000_calls_on_one_channel_and_50_channels_of_200_all_succeed(
    sock_dir: Path,
) -> None:
    async with running_server(sock_dir) as (server, client):
        stub = client.device
        one_channel = await asyncio.gather(
            *(_outcome(stub.ListDevices(pb.ListDevicesRequest(), timeout=60)) for _ in range(5000))
        )
        assert collections.Counter(one_channel) == {"OK": 5000}
        target = parse_endpoint(client.address).grpc_target
        channels = [aio.insecure_channel(target) for _ in range(50)]
        try:
            stubs = [offload_pb2_grpc.DeviceServiceStub(c) for c in channels]
            many = await asyncio.gather(
                *(
                    _outcome(s.ListDevices(pb.ListDevicesRequest(), timeout=60))
                    for s in stubs
                    for _ in range(200)
                )
            )
        finally:
            await asyncio.gather(*(c.close(None) for c in channels))
        assert collections.Counter(many) == {"OK": 10_000}
        assert server.calls.refused == 0


async def test_past_max_calls_the_answer_is_resource_exhausted_with_retry_info(
    sock_dir: Path,
) -> None:
    async with running_server(sock_dir, "--max-calls", "8") as (server, client):
        # Eight watches hold eight calls open; each says it is in place with a first message.
        watches = [
            client.datapath.WatchPackets(pb.WatchPacketsRequest(dev="eth0", port=pb.PORT_WIRE))
            for _ in range(8)
        ]
        for watch in watches:
            assert await watch.read() == pb.WatchPacketsResponse()
        assert server.calls.in_flight == 8
        refused = await asyncio.gather(
            *(_outcome(client.device.ListDevices(pb.ListDevicesRequest())) for _ in range(20))
        )
        assert collections.Counter(refused) == {"RESOURCE_EXHAUSTED": 20}
        assert server.calls.refused == 20
        try:
            await client.device.ListDevices(pb.ListDevicesRequest())
        except aio.AioRpcError as exc:
            status = rpc_status.from_call(exc)  # type: ignore[arg-type]  # an aio call
        assert status is not None and status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        hints = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(hints) == 1
        retry = error_details_pb2.RetryInfo()
        hints[0].Unpack(retry)
        assert retry.retry_delay.ToMilliseconds() == 100
        # One watch ends: its slot is free again, and the held ones were never cancelled.
        watches[0].cancel()
        for _ in range(100):
            if server.calls.in_flight == 7:
                break
            await asyncio.sleep(0.01)
        assert await _outcome(client.device.ListDevices(pb.ListDevicesRequest())) == "OK"
        for watch in watches[1:]:
            assert not watch.done()
            watch.cancel()


async def test_a_call_past_max_calls_is_refused_before_decoding_and_metrics_count_it(
    sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The interceptors' order: metrics outermost, then the call limit, then the malformed
    request check and the authorizer; a refused call is neither decoded nor authorized."""
    args = ("--max-calls", "1", "--metrics", "127.0.0.1:0")
    async with running_server(sock_dir, *args) as (server, client):
        assert server.metrics is not None
        watch = client.datapath.WatchPackets(pb.WatchPacketsRequest(dev="eth0", port=pb.PORT_WIRE))
        assert await watch.read() == pb.WatchPacketsResponse()
        methods = {str(m): m for m in all_methods()}
        state_add = methods["/xfrm_offload.v1.XfrmDevService/StateAdd"]
        packet_stream = methods["/xfrm_offload.v1.DatapathService/PacketStream"]
        # Garbage that would be INVALID_ARGUMENT (MALFORMED_REQUEST) with room to spare.
        code, _ = await call_raw(client.channel, state_add, [b"\xff\xff\xff"])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        code, _ = await call_raw(client.channel, packet_stream, [b"\xff\xff\xff"])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert server.calls.refused == 2
        assert not [r for r in caplog.records if r.getMessage() == "malformed request"]
        found = samples((await scrape(server.metrics.address))[1])
        rpc = "xfrm_offload_rpc_total"
        assert value(found, rpc, method="StateAdd", code="RESOURCE_EXHAUSTED") == 1
        assert value(found, rpc, method="PacketStream", code="RESOURCE_EXHAUSTED") == 1
        watch.cancel()
        for _ in range(100):
            if server.calls.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        # With room again the same garbage reaches the malformed request check.
        code, _ = await call_raw(client.channel, state_add, [b"\xff\xff\xff"])
        assert code == grpc.StatusCode.INVALID_ARGUMENT

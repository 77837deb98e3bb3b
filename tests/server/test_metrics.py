"""--metrics HOST:PORT: Prometheus text scraped over loopback from a real server."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from xfrm_offload.client import XfrmOffloadError
from xfrm_offload.engine.stats import XFRM_STAT_NAMES
from xfrm_offload.server.config import parse_args
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from ..datapath.builders import KEY, Tunnel, install, packets, sa, send, udp4

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(address: str, path: str = "/metrics") -> tuple[str, str]:
    """(Content-Type, body), fetched in a thread: the server's loop must stay free, since
    the scrape reads the devices through it."""

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as reply:
            return reply.headers["Content-Type"], reply.read().decode()

    return await asyncio.to_thread(get)


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def test_the_nic_and_its_rpcs_in_prometheus_text(sock_dir: Path) -> None:
    args = ("--device", "eth0", "--device", "eth1", "--metrics", "127.0.0.1:0")
    async with running_server(sock_dir, *args) as (server, client):
        assert server.metrics is not None
        address = server.metrics.address
        assert address.startswith("127.0.0.1:") and not address.endswith(":0")
        out_handle, _ = await install(client, Tunnel(), "eth0", "eth1")
        with pytest.raises(XfrmOffloadError):
            await client.state_add(sa(Tunnel(), "eth0", inbound=False))  # ALREADY_EXISTS
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 5, size=100)
        results = await send(client, "eth0", pb.PACKET_DIRECTION_TX, data)
        wire = [r.data for r in results]
        # One packet with an SPI eth1 does not know: XfrmInNoStates on eth1 only.
        unknown = wire[0][:20] + (0xBAD).to_bytes(4, "big") + wire[0][24:]
        [dropped] = await send(client, "eth1", pb.PACKET_DIRECTION_RX, [unknown])
        assert dropped.drop_reason == "XfrmInNoStates"
        watch = client.device.WatchEvents(pb.WatchEventsRequest())
        try:
            for _ in range(200):  # the stream's handler runs once the server has read it
                content_type, text = await scrape(address)
                found = samples(text)
                if value(found, "xfrm_offload_open_streams", method="WatchEvents") == 1:
                    break
                await asyncio.sleep(0.01)
            assert content_type.startswith("text/plain; version=0.0.4")

            stat = "xfrm_offload_xfrm_stat_total"
            assert value(found, stat, dev="eth1", counter="XfrmInNoStates") == 1
            assert value(found, stat, dev="eth0", counter="XfrmInNoStates") == 0
            assert value(found, stat, dev="eth0", counter="XfrmOutNoStates") == 0
            names = {labels for (name, labels) in found if name == stat}
            assert len(names) == 2 * len(XFRM_STAT_NAMES)  # every counter of both devices

            sa_labels = {
                "dev": "eth0",
                "handle": str(out_handle),
                "dir": "out",
                "daddr": "192.0.2.2",
                "spi": "0x00001001",
            }
            assert value(found, "xfrm_offload_state_packets_total", **sa_labels) == 5
            assert value(found, "xfrm_offload_state_bytes_total", **sa_labels) == sum(
                map(len, data)
            )

            rpc = "xfrm_offload_rpc_total"
            assert value(found, rpc, method="StateAdd", code="OK") == 2
            assert value(found, rpc, method="StateAdd", code="ALREADY_EXISTS") == 1
            assert value(found, rpc, method="PolicyAdd", code="OK") == 2
            assert value(found, rpc, method="PacketStream", code="OK") == 2
            latency = "xfrm_offload_rpc_duration_seconds_count"
            assert value(found, latency, method="StateAdd") == 3
            assert value(found, "xfrm_offload_open_streams", method="PacketStream") == 0
            assert KEY.hex() not in text and "alg_key" not in text  # no key material

            watch.cancel()
            for _ in range(200):
                found = samples((await scrape(address))[1])
                if value(found, "xfrm_offload_open_streams", method="WatchEvents") == 0:
                    break
                await asyncio.sleep(0.01)
            assert value(found, "xfrm_offload_open_streams", method="WatchEvents") == 0
            assert value(found, rpc, method="WatchEvents", code="CANCELLED") == 1
        finally:
            watch.cancel()  # also when an assertion failed: no stream left open
    with pytest.raises(urllib.error.URLError):  # stopped with the server
        await scrape(address)


def test_metrics_takes_host_port_only() -> None:
    assert parse_args(["--metrics", "[::1]:9400"]).metrics is not None
    assert parse_args([]).metrics is None
    with pytest.raises(SystemExit):
        parse_args(["--metrics", "unix:/tmp/m.sock"])


async def test_without_metrics_no_interceptor(sock_dir: Path) -> None:
    async with running_server(sock_dir) as (server, client):
        assert server.metrics is None
        assert [d.name for d in await client.list_devices()] == ["eth0"]
        with pytest.raises(XfrmOffloadError) as info:
            await client.get_device("eth9")
        assert info.value.code == grpc.StatusCode.NOT_FOUND

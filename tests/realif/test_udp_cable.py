"""The wire as a UDP cable between two servers (each ESP frame one datagram)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import XfrmOffloadError

from .test_tcp import _transfer
from .topology import DEV, TUN, free_udp_ports, in_ns, install_tunnel, two_hosts

COUNT = 300


async def test_ping_and_tcp_through_a_udp_cable(sock_dir: Path) -> None:
    ports = free_udp_ports()
    async with two_hosts(sock_dir, udp_ports=ports) as pair:
        await install_tunnel(pair)
        for src, dst in ((pair.a, pair.b), (pair.b, pair.a)):
            status, out = await in_ns(
                src.ns, "ping", "-q", "-c", str(COUNT), "-i", "0.002", "-W", "10", dst.inner4
            )
            assert status == 0, out
            assert f"{COUNT} packets transmitted, {COUNT} received, 0% packet loss" in out
        sent, received = await _transfer(pair, 20)
        assert sent == received
        shown = (await pair.a.client.get_device(DEV)).interfaces
        assert shown.wire_udp == f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
        assert (shown.wire_if, shown.wire_mtu, shown.host_mtu, shown.wire_running) == (
            "",
            1500,
            1420,
            True,
        )


@pytest.mark.parametrize(
    ("wire_udp", "message"),
    [
        ("127.0.0.1:9,127.0.0.1", "peer"),
        ("127.0.0.1:0,127.0.0.1:9", "port 1-65535"),
        ("127.0.0.1:9,[::1]:9", "both ends"),
        ("localhost:9,127.0.0.1:9", "ADDRESS:PORT"),
    ],
)
async def test_bad_udp_cable_refused_naming_wire_udp(
    sock_dir: Path, wire_udp: str, message: str
) -> None:
    async with two_hosts(sock_dir, udp_ports=free_udp_ports()) as pair:
        await pair.a.client.detach_interfaces(DEV)
        with pytest.raises(XfrmOffloadError) as caught:
            await pair.a.client.attach_interfaces(DEV, f"{TUN}@{pair.a.ns}", wire_udp=wire_udp)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.field == "wire_udp" and message in str(caught.value)

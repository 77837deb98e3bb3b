"""Link state follows the interfaces both ways; attach and detach over gRPC."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import XfrmOffloadError
from xfrm_offload.client.cli import ExitStatus
from xfrm_offload.v1 import offload_pb2 as pb

from ..client.test_cli_device import xfrmctl
from .topology import (
    DEV,
    TUN,
    WIRE,
    Host,
    counters_reach,
    in_ns,
    install_tunnel,
    sh,
    two_hosts,
    wait_for,
)


async def _ping(src: Host, dst: Host, count: int = 3, linger: int = 10) -> int:
    """Exactly ``count`` pings; replies awaited up to ``linger`` s after the last."""
    status, _ = await in_ns(
        src.ns, "ping", "-q", "-c", str(count), "-i", "0.01", "-W", str(linger), dst.inner4
    )
    return status


def _tun_flags(host: Host) -> str:
    return sh("ip", "-n", host.ns, "link", "show", TUN).stdout


async def _link(host: Host) -> int:
    return (await host.client.get_device(DEV)).link


async def test_wire_down_flushes_with_events_and_stops_traffic(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair)
        assert await _ping(a, b) == 0
        events: list[pb.WatchEventsResponse] = []
        subscribed = asyncio.Event()

        async def watch() -> None:
            async for event in b.client.watch_events(devs=[DEV]):
                if event.kind == pb.EVENT_KIND_UNSPECIFIED:
                    subscribed.set()
                    continue
                events.append(event)

        watcher = asyncio.ensure_future(watch())
        try:
            await wait_for(
                lambda: asyncio.sleep(0, b.server.nic.hub.subscriber_count >= 2), "watch"
            )
            sh("ip", "-n", b.ns, "link", "set", WIRE, "down")

            async def both_down() -> bool:
                return await _link(a) == pb.LINK_STATE_DOWN and await _link(b) == pb.LINK_STATE_DOWN

            await wait_for(both_down, "both devices' links down")  # B's wire, and A's peer
            device = await b.client.get_device(DEV)
            assert (device.state_count, device.policy_count) == (0, 0)
            assert not device.interfaces.wire_running
            await wait_for(lambda: asyncio.sleep(0, len(events) >= 5), "events")
            kinds = [e.kind for e in events]
            assert kinds[0] == pb.EVENT_KIND_LINK and events[0].link.link == pb.LINK_STATE_DOWN
            deleted = [e for e in events if e.kind == pb.EVENT_KIND_STATE_DELETED]
            assert len(deleted) == 2 and {e.object.reason for e in deleted} == {"link-down"}
            assert kinds.count(pb.EVENT_KIND_POLICY_DELETED) == 2
            # the host sees it: the TUN has lost its carrier
            await wait_for(lambda: asyncio.sleep(0, "NO-CARRIER" in _tun_flags(b)), "carrier")
            assert await _ping(a, b, 2, linger=1) != 0

            sh("ip", "-n", b.ns, "link", "set", WIRE, "up")

            async def both_up() -> bool:
                return await _link(a) == pb.LINK_STATE_UP and await _link(b) == pb.LINK_STATE_UP

            await wait_for(both_up, "both devices' links up")
            await wait_for(lambda: asyncio.sleep(0, "NO-CARRIER" not in _tun_flags(b)), "carrier")
            assert (await b.client.get_device(DEV)).state_count == 0
            await install_tunnel(pair)  # the keymanager adds them again
            assert await _ping(a, b) == 0
        finally:
            watcher.cancel()


async def test_set_link_down_takes_the_tun_carrier(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a = pair.a
        await a.client.set_link(DEV, False)
        await wait_for(lambda: asyncio.sleep(0, "NO-CARRIER" in _tun_flags(a)), "carrier off")
        await a.client.set_link(DEV, True)
        await wait_for(lambda: asyncio.sleep(0, "NO-CARRIER" not in _tun_flags(a)), "carrier on")


async def test_detach_and_attach_over_grpc(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair)
        detached = await a.client.detach_interfaces(DEV)
        assert detached.host_tun == f"{TUN}@{a.ns}" and detached.wire_if == f"{WIRE}@{a.ns}"
        assert not (await a.client.get_device(DEV)).HasField("interfaces")
        # the TUN was the server's: it is gone with it
        assert sh("ip", "-n", a.ns, "link", "show", TUN, check=False).returncode != 0
        attached = await a.client.attach_interfaces(DEV, f"{TUN}@{a.ns}", f"{WIRE}@{a.ns}")
        assert (attached.host_mtu, attached.wire_mtu, attached.wire_running) == (1420, 1500, True)
        sh("ip", "-n", a.ns, "addr", "add", f"{a.inner4}/24", "dev", TUN)
        sh("ip", "-n", a.ns, "route", "add", "203.0.113.0/24", "dev", TUN)
        assert await _ping(a, b) == 0  # states and policies stayed on the device
        await counters_reach(a, host_rx_packets=3, wire_tx_packets=3)


@pytest.mark.parametrize(
    ("dev", "tun", "wire", "code", "field"),
    [
        ("eth9", "t0", WIRE, grpc.StatusCode.NOT_FOUND, "dev"),
        (DEV, "bad/name", WIRE, grpc.StatusCode.INVALID_ARGUMENT, "host_tun"),
        (DEV, "t0", "a-name-that-is-too-long", grpc.StatusCode.INVALID_ARGUMENT, "wire_if"),
        (DEV, "t0", "nosuch0@{ns}", grpc.StatusCode.NOT_FOUND, "wire_if"),
        (DEV, "t0@xo-t-no-such-ns", "{wire}", grpc.StatusCode.NOT_FOUND, "host_tun"),
        (DEV, "t0", "{wire}", grpc.StatusCode.ALREADY_EXISTS, "dev"),
    ],
)
async def test_attach_refusals_name_the_field(
    sock_dir: Path, dev: str, tun: str, wire: str, code: grpc.StatusCode, field: str
) -> None:
    async with two_hosts(sock_dir) as pair:
        a = pair.a
        if code != grpc.StatusCode.ALREADY_EXISTS:
            await a.client.detach_interfaces(DEV)
        wire = wire.format(ns=a.ns, wire=f"{WIRE}@{a.ns}")
        with pytest.raises(XfrmOffloadError) as caught:
            await a.client.attach_interfaces(dev, tun, wire)
        assert caught.value.code == code and caught.value.field == field, caught.value
        if code != grpc.StatusCode.ALREADY_EXISTS:
            with pytest.raises(XfrmOffloadError) as again:
                await a.client.detach_interfaces(DEV)
            assert again.value.code == grpc.StatusCode.NOT_FOUND


async def test_xfrmctl_device_detach_attach_and_show(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a = pair.a
        server = ("--server", a.client.address)
        code, out, err = await xfrmctl(*server, "device", "detach", DEV)
        assert (code, err) == (ExitStatus.OK, "")
        assert out.startswith(f"{DEV}: detached\n    host tun {TUN}@{a.ns} mtu 1420 wire ")
        code, out, err = await xfrmctl(
            *server, "device", "attach", DEV, "--tun", f"{TUN}@{a.ns}", "--wire",
            f"{WIRE}@{a.ns}", "--mtu", "1400",
        )  # fmt: skip
        assert (code, err) == (ExitStatus.OK, "")
        code, out, _ = await xfrmctl(*server, "device", "show", DEV)
        assert code == ExitStatus.OK
        assert (
            f"    host tun {TUN}@{a.ns} mtu 1400 wire {WIRE}@{a.ns} mtu 1500 running\n"
            "    host rx 0 tx 0 rx-dropped 0 tx-dropped 0  wire rx 0 tx 0 rx-dropped 0 tx-dropped 0"
            "  too-big 0 fragmented 0\n"
        ) in out
        assert "mtu 1400" in sh("ip", "-n", a.ns, "link", "show", TUN).stdout
        code, _, err = await xfrmctl(*server, "device", "attach", DEV, "--tun", "x", "--wire", "y")
        assert code == ExitStatus.SERVER_ERROR and "already has interfaces" in err, err


async def test_interfaces_deleted_under_the_server_stop_being_read(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair)
        attachment = a.server.interfaces.attached[DEV]
        sh("ip", "-n", a.ns, "link", "del", TUN)  # a TUN fd then fails (and stays ready)
        await wait_for(lambda: asyncio.sleep(0, "host_tun" in attachment.lost), "tun lost")
        sh("ip", "-n", b.ns, "link", "del", WIRE)  # both ends of the veth go

        async def both_down() -> bool:
            return await _link(a) == pb.LINK_STATE_DOWN and await _link(b) == pb.LINK_STATE_DOWN

        await wait_for(both_down, "both devices' links down")
        detached = await a.client.detach_interfaces(DEV)
        assert not detached.wire_running
        # a new link and a new TUN: attached again, the device is up again
        sh("ip", "-n", a.ns, "link", "add", WIRE, "type", "veth", "peer", "name", "w1")
        sh("ip", "-n", a.ns, "link", "set", WIRE, "up")
        sh("ip", "-n", a.ns, "link", "set", "w1", "up")
        attached = await a.client.attach_interfaces(DEV, f"{TUN}@{a.ns}", f"{WIRE}@{a.ns}")
        assert attached.wire_running and await _link(a) == pb.LINK_STATE_UP

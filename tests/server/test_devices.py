"""Device listing over real gRPC, and the not-yet-built RPCs' UNIMPLEMENTED answers."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server


async def test_default_server_has_eth0_full(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    devices = await client.list_devices()
    assert [(d.name, d.profile, d.ifindex, d.link) for d in devices] == [
        ("eth0", "full", 2, pb.LINK_STATE_UP)
    ]
    assert list(devices[0].features) == [
        "NETIF_F_HW_ESP",
        "NETIF_F_HW_ESP_TX_CSUM",
        "NETIF_F_GSO_ESP",
    ]
    assert devices[0].state_count == 0 and devices[0].policy_count == 0


async def test_devices_in_order_with_their_profiles(sock_dir: Path) -> None:
    args = ["--device", "eth4:mlx5", "--device", "sim0:netdevsim", "--device", "eth9"]
    async with running_server(sock_dir, *args) as (_, client):
        devices = await client.list_devices()
        assert [(d.name, d.profile, d.ifindex) for d in devices] == [
            ("eth4", "mlx5", 2),
            ("sim0", "netdevsim", 3),
            ("eth9", "full", 4),
        ]
        sim = await client.get_device("sim0")
        caps = sim.capabilities
        assert caps.max_states == 33
        assert list(caps.offload_types) == [xpb.OFFLOAD_TYPE_CRYPTO]
        assert [(a.name, list(a.key_bits), list(a.icv_bits)) for a in caps.algorithms] == [
            ("rfc4106(gcm(aes))", [160], [128])
        ]
        assert not caps.esn and not caps.policy_offload
        mlx5 = await client.get_device("eth4")
        assert list(mlx5.capabilities.packet_in_replay_windows) == [32, 64, 128, 256]
        assert mlx5.capabilities.reqid_required and mlx5.capabilities.soft_below_hard


async def test_unknown_device_is_not_found_naming_the_field(
    server: tuple[OffloadServer, Client],
) -> None:
    _, client = server
    with pytest.raises(XfrmOffloadError) as info:
        await client.get_device("eth7")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.field == "name"
    assert "eth7" in info.value.message


async def test_echo_and_clock_without_virtual_clock(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    assert await client.echo(b"\x00\x01abc") == b"\x00\x01abc"
    with pytest.raises(XfrmOffloadError) as info:
        await client.advance_clock(1.0)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "--virtual-clock" in info.value.message


async def test_virtual_clock_moves_only_when_told(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--virtual-clock") as (server, client):
        start = server.clock.now()
        assert await client.advance_clock(30.5) == pytest.approx(start + 30.5)
        assert server.clock.now() == pytest.approx(start + 30.5)
        for bad in (-1.0, 0.0, float("inf"), float("nan"), 1e300):
            with pytest.raises(XfrmOffloadError) as info:
                await client.advance_clock(bad)
            assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.field == "seconds"
        assert server.clock.now() == pytest.approx(start + 30.5)

"""A bond over gRPC, as the kernel's bond_ipsec_offload.sh runs it: xfrm-offloadd --bond
bond0:nsim0,nsim1; states offloaded "dev bond0" land on the active member (SA count=2
tx=3 after a ping), SetLinkState on it fails over (a BOND_FAILOVER event, the states on
nsim1, tx continues there), a flush empties both; -ENODEV without an active member."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.client.render import format_event
from xfrm_offload.engine.esp import host_tx_frame
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, SAConfig
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from ..datapath.builders import Tap, send, udp4
from .sa_builders import LOCAL, PEER, SELFTEST_KEY, selftest_pair
from .test_events import kinds_of, watching

Pair = tuple[OffloadServer, Client]

# A bond needs its members in the server process: --bond refuses --workers.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("XO_TEST_WORKERS")), reason="bonds need the devices in the server process"
)
TX = pb.PACKET_DIRECTION_TX


@pytest.fixture
async def bonded(sock_dir: Path) -> AsyncIterator[Pair]:
    args = (
        "--device",
        "nsim0:netdevsim",
        "--device",
        "nsim1:netdevsim",
        "--bond",
        "bond0:nsim0,nsim1",
    )
    async with running_server(sock_dir, *args) as pair:
        yield pair


def host() -> SecurityAssociation:
    """The host stack's outbound SA (same key): it frames what the NIC seals."""
    config = SAConfig(
        daddr=ipaddress.ip_address(PEER),
        saddr=ipaddress.ip_address(LOCAL),
        spi=9,
        reqid=42,
        aead=Algorithm("rfc4106(gcm(aes))", SELFTEST_KEY, 128),
    )
    return SecurityAssociation(config, 0.0)


async def ping(client: Client, handle: int, sa: SecurityAssociation, first: int) -> None:
    seqs = [first, first + 1, first + 2]
    frames = [host_tx_frame(sa.esp, udp4(LOCAL, PEER, b"ping"), s) for s in seqs]
    results = await send(client, "bond0", TX, frames, handles=[handle] * 3, seqs=seqs)
    assert [(r.verdict, r.offload_handle) for r in results] == [(pb.VERDICT_PASS, handle)] * 3


async def debugfs(client: Client, dev: str) -> str:
    return (await client.get_device(dev)).debugfs.splitlines()[0]


async def test_bond_ipsec_offload_selftest_over_grpc(bonded: Pair) -> None:
    _, client = bonded
    bond = await client.get_device("bond0")
    assert (bond.profile, bond.bond.mode, list(bond.bond.members), bond.bond.active) == (
        "bond",
        "active-backup",
        ["nsim0", "nsim1"],
        "nsim0",
    )
    assert "NETIF_F_HW_ESP" in bond.features and bond.ifindex == 4
    out_sa, in_sa = selftest_pair("bond0")
    out = await client.state_add(out_sa)
    inn = await client.state_add(in_sa)
    assert out.offloaded and inn.offloaded
    listed = await client.list_states()  # every device: each state once, as dev bond0
    assert [(s.dev, s.offload_handle, s.sa.offload.dev) for s in listed] == [
        ("bond0", out.offload_handle, "bond0"),
        ("bond0", inn.offload_handle, "bond0"),
    ]
    assert await client.list_states("nsim0") == []  # the member's own: none
    assert (await client.get_device("nsim0")).state_count == 2  # but its table holds them
    sa = host()
    taps = {dev: Tap(client, dev, pb.PORT_WIRE) for dev in ("nsim0", "nsim1", "bond0")}
    for tap in taps.values():
        await tap.ready()
    await ping(client, out.offload_handle, sa, 1)
    await taps["nsim0"].wait_for(3)  # the bond's traffic leaves on its active member's wire
    assert (await debugfs(client, "nsim0"), await debugfs(client, "nsim1")) == (
        "SA count=2 tx=3",
        "SA count=0 tx=0",
    )
    async with watching(
        bonded, kinds=[pb.EVENT_KIND_BOND_FAILOVER, pb.EVENT_KIND_STATE_ADDED]
    ) as w:
        reply = await client.set_link("nsim0", up=False)
        assert (reply.flushed_states, reply.device.name) == (2, "nsim0")
        events = await w.wait_for(3)
    assert kinds_of(events) == [
        pb.EVENT_KIND_BOND_FAILOVER,
        pb.EVENT_KIND_STATE_ADDED,
        pb.EVENT_KIND_STATE_ADDED,
    ]
    failover = events[0]
    assert failover.dev == "bond0"
    assert failover.bond_failover == pb.BondFailoverEvent(
        old_active="nsim0", new_active="nsim1", states=2
    )
    assert [e.dev for e in events[1:]] == ["nsim1", "nsim1"]
    assert format_event(failover) == (
        "dev bond0 failover nsim0 -> nsim1: 2 states and 0 policies added again, 0 refused\n"
    )
    assert (await client.get_device("bond0")).bond.active == "nsim1"
    await ping(client, out.offload_handle, sa, 4)
    await taps["nsim1"].wait_for(3)
    seqs = {d: [int.from_bytes(p[24:28], "big") for p in t.packets] for d, t in taps.items()}
    assert seqs == {"nsim0": [1, 2, 3], "nsim1": [4, 5, 6], "bond0": []}
    for tap in taps.values():
        tap.close()
    assert (await debugfs(client, "nsim0"), await debugfs(client, "nsim1")) == (
        "SA count=0 tx=3",
        "SA count=2 tx=3",
    )
    for handle in (out.offload_handle, inn.offload_handle):
        await client.state_delete("bond0", handle)
        await client.state_free("bond0", handle)
    assert (await debugfs(client, "nsim0"), await debugfs(client, "nsim1")) == (
        "SA count=0 tx=3",
        "SA count=0 tx=3",
    )


async def test_no_active_member_is_enodev(bonded: Pair) -> None:
    _, client = bonded
    await client.set_link("nsim0", up=False)
    await client.set_link("nsim1", up=False)
    assert (await client.get_device("bond0")).link == pb.LINK_STATE_DOWN
    with pytest.raises(XfrmOffloadError) as info:
        await client.state_add(selftest_pair("bond0")[0])
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.errno == 19  # ENODEV
    assert "bond0 has no active slave" in info.value.message


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bond", "bond0:nope0"], "no device 'nope0'"),
        (["--bond", "eth0:eth0"], "eth0 is already a device name"),
        (["--bond", "bond0:eth0", "--bond", "bond1:eth0"], "eth0 is in two bonds"),
        (["--bond", "bond0:eth0", "--workers", "2"], "no --workers"),
        (["--bond", "bond0:eth0:round"], "unknown bonding mode 'round'"),
    ],
)
def test_bad_bond_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(["--device", "eth0", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err

"""xdo_dev_policy_* through the real gRPC server: validation, lifecycle, listings.

Policy offload exists only in packet mode (kernel-anchors §2.2); mlx5's own rules
are §4.5 (scenario 18). Devices: eth0 full, sim0 netdevsim, mlx0 mlx5, sw0 nooffload.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .sa_builders import (
    DEVICE_ARGS,
    LOCAL,
    PEER,
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_IPV6,
    XFRM_OFFLOAD_PACKET,
    gcm_sa,
    packet_policy,
    tweak,
)

Pair = tuple[OffloadServer, Client]
PolicyFactory = Callable[[], xpb.XfrmUserpolicyInfo]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
U32_MAX = 0xFFFFFFFF


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[Pair]:
    async with running_server(sock_dir, *DEVICE_ARGS) as pair:
        yield pair


async def refused(call: Awaitable[Any]) -> XfrmOffloadError:
    with pytest.raises(XfrmOffloadError) as info:
        await call
    return info.value


def _tunnel_without_daddr() -> xpb.XfrmUserpolicyInfo:
    """A tunnel-mode template must name the tunnel's far end (it would be unresolvable)."""
    policy = packet_policy("eth0")
    policy.tmpl[0].mode = xpb.XFRM_MODE_TUNNEL
    policy.tmpl[0].id.daddr = ""
    return policy


def _wildcard(dev: str, reqid: int) -> xpb.XfrmUserpolicyInfo:
    """A policy whose selector names neither addresses nor a protocol."""
    policy = packet_policy(dev, reqid=reqid)
    policy.sel.CopyFrom(xpb.XfrmSelector(family=xpb.ADDRESS_FAMILY_INET))
    return policy


REFUSALS: list[tuple[str, PolicyFactory, grpc.StatusCode, str]] = [
    # kernel core (xfrm_dev_policy_add): flags must be exactly XFRM_OFFLOAD_PACKET
    ("flags-0", lambda: packet_policy("eth0", flags=0), INVALID, "policy.offload.flags"),
    (
        "flags-packet-inbound",
        lambda: packet_policy("eth0", flags=XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND),
        INVALID,
        "policy.offload.flags",
    ),
    (
        "flags-packet-ipv6",
        lambda: packet_policy("eth0", flags=XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_IPV6),
        INVALID,
        "policy.offload.flags",
    ),
    ("flags-unknown-bit", lambda: packet_policy("eth0", flags=8), INVALID, "policy.offload.flags"),
    (
        "dir-unspecified",
        lambda: packet_policy("eth0", xpb.POLICY_DIR_UNSPECIFIED),
        INVALID,
        "policy.dir",
    ),
    ("dir-unknown", lambda: tweak(packet_policy("eth0"), dir=7), INVALID, "policy.dir"),
    (
        "index-encodes-another-dir",
        lambda: tweak(packet_policy("eth0", xpb.POLICY_DIR_OUT), index=16),
        INVALID,
        "policy.index",
    ),
    ("no-policy-offload-netdevsim", lambda: packet_policy("sim0"), INVALID, "policy.offload.dev"),
    ("no-policy-offload-nooffload", lambda: packet_policy("sw0"), INVALID, "policy.offload.dev"),
    ("unknown-device", lambda: packet_policy("eth7"), NOT_FOUND, "policy.offload.dev"),
    (
        "tunnel-template-without-daddr",
        lambda: _tunnel_without_daddr(),
        INVALID,
        "policy.tmpl[0].id.daddr",
    ),
    (
        "no-offload",
        lambda: tweak(packet_policy("eth0"), offload=xpb.XfrmUserOffload(flags=4)),
        INVALID,  # a required field left empty
        "policy.offload.dev",
    ),
    (
        "bad-selector-address",
        lambda: tweak(packet_policy("eth0"), sel__daddr="10.0.0.300"),
        INVALID,
        "policy.sel.daddr",
    ),
    (
        "template-family-mismatch",
        lambda: tweak(
            packet_policy("eth0"),
            tmpl=[xpb.XfrmUserTmpl(saddr="2001:db8::1", family=xpb.ADDRESS_FAMILY_INET)],
        ),
        INVALID,
        "policy.tmpl[0].saddr",
    ),
    # mlx5 (scenario 18 and mlx5e_xfrm_validate_policy)
    ("mlx5-dir-fwd", lambda: packet_policy("mlx0", xpb.POLICY_DIR_FWD), INVALID, "policy.dir"),
    ("mlx5-two-templates", lambda: packet_policy("mlx0", templates=2), INVALID, "policy.tmpl"),
    ("mlx5-reqid-0-wildcard", lambda: _wildcard("mlx0", 0), INVALID, "policy.tmpl[0].reqid"),
    ("mlx5-selector-icmp", lambda: packet_policy("mlx0", sel_proto=1), INVALID, "policy.sel.proto"),
    (
        "mlx5-priority-max",
        lambda: packet_policy("mlx0", priority=U32_MAX),
        INVALID,
        "policy.priority",
    ),
]


@pytest.mark.parametrize(
    ("factory", "code", "field"),
    [pytest.param(f, c, fld, id=name) for name, f, c, fld in REFUSALS],
)
async def test_policy_add_refusals(
    nic: Pair, factory: PolicyFactory, code: grpc.StatusCode, field: str
) -> None:
    _, client = nic
    err = await refused(client.policy_add(factory()))
    assert (err.code, err.field) == (code, field), err.message
    if code == INVALID:
        assert (err.errno, err.reason) == (errno.EINVAL, "EINVAL")
    assert await client.list_policies() == []


ACCEPTED: list[tuple[str, PolicyFactory]] = [
    ("full-out", lambda: packet_policy("eth0", xpb.POLICY_DIR_OUT)),
    ("full-in", lambda: packet_policy("eth0", xpb.POLICY_DIR_IN)),
    ("full-fwd", lambda: packet_policy("eth0", xpb.POLICY_DIR_FWD)),
    ("full-two-templates", lambda: packet_policy("eth0", templates=2)),
    ("full-reqid-0-wildcard", lambda: _wildcard("eth0", 0)),
    ("full-priority-max", lambda: packet_policy("eth0", priority=U32_MAX)),
    ("mlx5-out", lambda: packet_policy("mlx0", xpb.POLICY_DIR_OUT)),
    ("mlx5-in", lambda: packet_policy("mlx0", xpb.POLICY_DIR_IN)),
    ("mlx5-reqid-0-with-addresses", lambda: packet_policy("mlx0", reqid=0)),
    ("mlx5-reqid-0-with-proto", lambda: tweak(_wildcard("mlx0", 0), sel__proto=6)),
    ("mlx5-wildcard-with-reqid", lambda: _wildcard("mlx0", 42)),
    ("mlx5-udp", lambda: packet_policy("mlx0", sel_proto=17)),
    ("by-ifindex", lambda: tweak(packet_policy(""), offload__ifindex=4)),
]


@pytest.mark.parametrize("factory", [pytest.param(f, id=name) for name, f in ACCEPTED])
async def test_policy_add_accepted(nic: Pair, factory: PolicyFactory) -> None:
    _, client = nic
    policy = factory()
    reply = await client.policy_add(policy)
    assert reply.offload_handle != 0
    (listed,) = await client.list_policies()
    assert (listed.offload_handle, listed.lifecycle) == (reply.offload_handle, pb.LIFECYCLE_ACTIVE)
    assert listed.policy.dir == policy.dir
    assert listed.policy.index == reply.index
    assert (
        reply.index & 7
        == {xpb.POLICY_DIR_IN: 0, xpb.POLICY_DIR_OUT: 1, xpb.POLICY_DIR_FWD: 2}[policy.dir]
    )
    assert listed.policy.offload.flags == XFRM_OFFLOAD_PACKET
    assert len(listed.policy.tmpl) == len(policy.tmpl)


async def test_missing_policy_is_invalid(nic: Pair) -> None:
    _, client = nic
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.xfrmdev.PolicyAdd(pb.PolicyAddRequest())
    err = XfrmOffloadError.from_rpc_error(info.value)
    assert (err.code, err.field, err.errno) == (INVALID, "policy", errno.EINVAL)


async def test_missing_offload_is_invalid(nic: Pair) -> None:
    _, client = nic
    policy = packet_policy("eth0")
    policy.ClearField("offload")
    err = await refused(client.policy_add(policy))
    assert (err.code, err.field) == (INVALID, "policy.offload")


async def test_selftest_policies_listing_and_indexes(nic: Pair) -> None:
    """kci_test_ipsec_offload's policies, offloaded in packet mode on mlx5: dir out and in."""
    _, client = nic
    out = await client.policy_add(packet_policy("mlx0", xpb.POLICY_DIR_OUT))
    inb = await client.policy_add(
        packet_policy("mlx0", xpb.POLICY_DIR_IN, src=PEER, dst=LOCAL, priority=5)
    )
    # xfrm_gen_index: generator in steps of 8, dir in the low 3 bits, never 0
    assert (out.index, inb.index) == (1, 8)
    assert (out.offload_handle, inb.offload_handle) == ((4 << 32) | 1, (4 << 32) | 2)
    policies = await client.list_policies("mlx0")
    assert [
        (p.dev, p.offload_handle, p.policy.index, p.policy.dir, p.policy.priority) for p in policies
    ] == [
        ("mlx0", out.offload_handle, 1, xpb.POLICY_DIR_OUT, 0),
        ("mlx0", inb.offload_handle, 8, xpb.POLICY_DIR_IN, 5),
    ]
    got = policies[1].policy
    assert (got.sel.saddr, got.sel.daddr, got.sel.prefixlen_s, got.sel.prefixlen_d) == (
        PEER,
        LOCAL,
        32,
        32,
    )
    (tmpl,) = got.tmpl
    assert (tmpl.id.daddr, tmpl.id.proto, tmpl.saddr, tmpl.reqid, tmpl.mode) == (
        LOCAL,
        50,
        PEER,
        42,
        xpb.XFRM_MODE_TRANSPORT,
    )
    assert (got.offload.dev, got.offload.ifindex) == ("mlx0", 4)
    assert (await client.get_device("mlx0")).policy_count == 2
    assert await client.list_policies("eth0") == []
    assert len(await client.list_policies()) == 2
    err = await refused(client.list_policies("nope"))
    assert (err.code, err.field) == (NOT_FOUND, "dev")


async def test_explicit_index_is_kept(nic: Pair) -> None:
    _, client = nic
    reply = await client.policy_add(tweak(packet_policy("eth0", xpb.POLICY_DIR_OUT), index=0x41))
    assert reply.index == 0x41


async def test_duplicate_policy_already_exists(nic: Pair) -> None:
    _, client = nic
    first = await client.policy_add(packet_policy("eth0"))
    err = await refused(client.policy_add(packet_policy("eth0", priority=9)))
    assert (err.code, err.field, err.errno) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "policy.sel",
        errno.EEXIST,
    )
    # another direction, or another device, is another policy
    await client.policy_add(packet_policy("eth0", xpb.POLICY_DIR_IN))
    await client.policy_add(packet_policy("mlx0"))
    # after delete the selector is free again, the old handle waits for free
    await client.policy_delete("eth0", first.offload_handle)
    again = await client.policy_add(packet_policy("eth0"))
    assert again.offload_handle != first.offload_handle


async def test_policy_lifecycle_errors(nic: Pair) -> None:
    _, client = nic
    handle = (await client.policy_add(packet_policy("eth0"))).offload_handle
    cases: list[tuple[Callable[[], Awaitable[None]], grpc.StatusCode, str, int]] = [
        (
            lambda: client.policy_free("eth0", handle),
            PRECONDITION,
            "ref.offload_handle",
            errno.EBUSY,
        ),
        (lambda: client.policy_delete("eth0", 77), NOT_FOUND, "ref.offload_handle", errno.ENOENT),
        (lambda: client.policy_delete("eth7", handle), NOT_FOUND, "ref.dev", errno.ENOENT),
        (lambda: client.policy_free("eth7", handle), NOT_FOUND, "ref.dev", errno.ENOENT),
        (
            lambda: client.policy_delete("mlx0", handle),
            NOT_FOUND,
            "ref.offload_handle",
            errno.ENOENT,
        ),
    ]
    for call, code, field, eno in cases:
        err = await refused(call())
        assert (err.code, err.field, err.errno) == (code, field, eno), err.message
    await client.policy_delete("eth0", handle)
    (listed,) = await client.list_policies()
    assert listed.lifecycle == pb.LIFECYCLE_DELETED
    err = await refused(client.policy_delete("eth0", handle))
    assert (err.code, err.field, err.errno) == (PRECONDITION, "ref.offload_handle", errno.EBUSY)
    await client.policy_free("eth0", handle)
    assert await client.list_policies() == []
    assert (await client.get_device("eth0")).policy_count == 0
    err = await refused(client.policy_free("eth0", handle))
    assert (err.code, err.field, err.errno) == (NOT_FOUND, "ref.offload_handle", errno.ENOENT)


async def test_state_and_policy_handles_share_one_counter(nic: Pair) -> None:
    """A device's handles never collide across states and policies."""
    _, client = nic
    p = await client.policy_add(packet_policy("eth0"))
    s = await client.state_add(gcm_sa("eth0", packet=True))
    assert (p.offload_handle, s.offload_handle) == ((2 << 32) | 1, (2 << 32) | 2)
    err = await refused(client.policy_delete("eth0", s.offload_handle))
    assert err.code == NOT_FOUND
    err = await refused(client.state_delete("eth0", p.offload_handle))
    assert err.code == NOT_FOUND


#: Selector values the engine refuses (selector.check_selector), for states and
#: policies alike: (selector field, value, message).
SELECTOR_REFUSALS = [
    ("prefixlen_d", 33, "sel.prefixlen_d 33 is longer than an IPv4 address"),
    ("prefixlen_s", 129, "sel.prefixlen_s 129 is longer than an IPv4 address"),
    ("proto", 256, "sel.proto must be 0-255"),
    ("dport", 65536, "sel.dport must be at most 65535"),
    ("dport_mask", 65536, "sel.dport_mask must be at most 65535"),
    ("sport", 70000, "sel.sport must be at most 65535"),
    ("sport_mask", 65536, "sel.sport_mask must be at most 65535"),
]


@pytest.mark.parametrize("offloaded", [True, False], ids=["offload", "no-offload"])
@pytest.mark.parametrize(("name", "value", "message"), SELECTOR_REFUSALS)
async def test_selector_refusals_name_the_selector_field(
    nic: Pair, name: str, value: int, message: str, offloaded: bool
) -> None:
    """One check, one answer: a state's and a policy's selector are refused alike, with
    or without an offload (the message's own errors come first, as netlink parses it)."""
    _, client = nic
    sa = tweak(gcm_sa("eth0"), **{f"sel__{name}": value})
    policy = tweak(packet_policy("eth0"), **{f"sel__{name}": value})
    if not offloaded:
        sa.ClearField("offload")
        policy.ClearField("offload")
    for call, prefix in ((client.state_add(sa), "sa"), (client.policy_add(policy), "policy")):
        err = await refused(call)
        assert (err.code, err.field, err.message) == (INVALID, f"{prefix}.sel.{name}", message)
        assert (err.errno, err.reason) == (errno.EINVAL, "EINVAL")
    assert await client.list_states() == []
    assert await client.list_policies() == []


async def test_selector_values_come_before_the_profile_rules(nic: Pair) -> None:
    """mlx5 refuses a policy protocol other than TCP/UDP, but a protocol that is no
    protocol at all is the selector's own error first (verify_newpolicy_info)."""
    _, client = nic
    err = await refused(client.policy_add(tweak(packet_policy("mlx0"), sel__proto=256)))
    assert (err.code, err.field, err.message) == (
        INVALID,
        "policy.sel.proto",
        "sel.proto must be 0-255",
    )

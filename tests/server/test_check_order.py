"""Which error a request with several faults gets: the kernel's order, with or without
offload.

The engine holds every check (sa._validate, selector.check_selector,
spd.check_templates); convert only maps values it cannot carry (an unknown family or
mode number). The order is the kernel's: for a state, xfrm_user.c's verify_newsa_info
checks the family, then the selector, then the protocol and the algorithms, and the
encapsulation is looked at only in esp_init_state, after the algorithms; for a policy,
verify_newpolicy_info (its selector) comes before validate_tmpl (its templates). The
offload request comes last (xfrm_dev_state_add / xfrm_dev_policy_add), so a request
without offload still gets its own errors first, not "offload required".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..conftest import running_server
from .sa_builders import DEVICE_ARGS, gcm_sa, packet_policy

INVALID = grpc.StatusCode.INVALID_ARGUMENT
V6 = "2001:db8::1"


@dataclass(frozen=True)
class Case:
    build: Callable[[], xpb.XfrmUsersaInfo | xpb.XfrmUserpolicyInfo]
    field: str
    message: str


def _sa(
    *,
    offload: bool = True,
    family_v6_daddr: bool = False,
    long_prefix: bool = False,
    unknown_alg: bool = False,
    encap_sport: int | None = None,
) -> xpb.XfrmUsersaInfo:
    sa = gcm_sa("eth0")
    if not offload:
        sa.ClearField("offload")
    if family_v6_daddr:  # family INET, destination IPv6
        sa.id.daddr = V6
    if long_prefix:
        sa.sel.prefixlen_d = 33
    if unknown_alg:
        sa.aead.alg_name = "rfc4106(gcm(nope))"
    if encap_sport is not None:
        sa.encap.CopyFrom(
            xpb.XfrmEncapTmpl(
                encap_type=xpb.ENCAP_TYPE_ESPINUDP, encap_sport=encap_sport, encap_dport=4500
            )
        )
    return sa


def _policy(
    *, offload: bool = True, tunnel_without_daddr: bool = False, long_prefix: bool = False
) -> xpb.XfrmUserpolicyInfo:
    policy = packet_policy("mlx0", templates=2)  # mlx5 takes one template: a device rule
    if not offload:
        policy.ClearField("offload")
    if tunnel_without_daddr:
        policy.tmpl[0].mode = xpb.XFRM_MODE_TUNNEL
        policy.tmpl[0].id.daddr = ""
    if long_prefix:
        policy.sel.prefixlen_s = 40
    return policy


FAMILY = ("sa.id.daddr", "daddr is not an address of family INET")
PREFIX = ("sa.sel.prefixlen_d", "sel.prefixlen_d 33 is longer than an IPv4 address")
ENCAP_0 = ("sa.encap.encap_sport", "encap sport must be 1-65535")
TUNNEL = ("policy.tmpl[0].id.daddr", "template 0: a tunnel-mode template needs")

STATE_CASES = {
    # verify_newsa_info: the family comes first, before the selector.
    "family before selector": Case(lambda: _sa(family_v6_daddr=True, long_prefix=True), *FAMILY),
    "family before selector, no offload": Case(
        lambda: _sa(offload=False, family_v6_daddr=True, long_prefix=True), *FAMILY
    ),
    "selector before encap": Case(lambda: _sa(long_prefix=True, encap_sport=0), *PREFIX),
    # The algorithms (verify_newsa_info, their attach) before the encap (esp_init_state).
    "algorithm before encap": Case(
        lambda: _sa(unknown_alg=True, encap_sport=0), "sa.aead.alg_name", "rfc4106(gcm(nope))"
    ),
    # The state's own errors before the missing offload.
    "encap before no offload": Case(lambda: _sa(offload=False, encap_sport=0), *ENCAP_0),
    "encap port too large": Case(
        lambda: _sa(encap_sport=70000), "sa.encap.encap_sport", "encap sport must be 1-65535"
    ),
    "family alone, no offload": Case(lambda: _sa(offload=False, family_v6_daddr=True), *FAMILY),
}

POLICY_CASES = {
    # verify_newpolicy_info (the selector) before validate_tmpl (the templates).
    "selector before templates": Case(
        lambda: _policy(tunnel_without_daddr=True, long_prefix=True),
        "policy.sel.prefixlen_s",
        "sel.prefixlen_s 40 is longer than an IPv4 address",
    ),
    # validate_tmpl before xfrm_dev_policy_add (mlx5's one-template rule).
    "templates before device rules": Case(lambda: _policy(tunnel_without_daddr=True), *TUNNEL),
    "templates before no offload": Case(
        lambda: _policy(offload=False, tunnel_without_daddr=True), *TUNNEL
    ),
}


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    async with running_server(sock_dir, *DEVICE_ARGS) as pair:
        yield pair


@pytest.mark.parametrize("case", STATE_CASES.values(), ids=STATE_CASES.keys())
async def test_state_add_reports_the_kernels_first_fault(
    nic: tuple[OffloadServer, Client], case: Case
) -> None:
    _, client = nic
    sa = case.build()
    assert isinstance(sa, xpb.XfrmUsersaInfo)
    with pytest.raises(XfrmOffloadError) as raised:
        await client.state_add(sa)
    error = raised.value
    assert (error.code, error.field) == (INVALID, case.field), error.message
    assert case.message in error.message


@pytest.mark.parametrize("case", POLICY_CASES.values(), ids=POLICY_CASES.keys())
async def test_policy_add_reports_the_kernels_first_fault(
    nic: tuple[OffloadServer, Client], case: Case
) -> None:
    _, client = nic
    policy = case.build()
    assert isinstance(policy, xpb.XfrmUserpolicyInfo)
    with pytest.raises(XfrmOffloadError) as raised:
        await client.policy_add(policy)
    error = raised.value
    assert (error.code, error.field) == (INVALID, case.field), error.message
    assert case.message in error.message


async def test_each_fault_alone_is_what_the_table_says(nic: tuple[OffloadServer, Client]) -> None:
    """The second fault of each pair above is a refusal of its own (the order is tested,
    not a fault that is never checked)."""
    _, client = nic
    for build, field in (
        (lambda: _sa(long_prefix=True), PREFIX[0]),
        (lambda: _sa(encap_sport=0), ENCAP_0[0]),
        (lambda: _sa(offload=False), "sa.offload"),
        (lambda: _policy(), "policy.tmpl"),
        (lambda: _policy(offload=False), "policy.offload"),
    ):
        message = build()
        call = (
            client.state_add(message)
            if isinstance(message, xpb.XfrmUsersaInfo)
            else client.policy_add(message)
        )
        with pytest.raises(XfrmOffloadError) as raised:
            await call
        assert raised.value.field == field, raised.value.message

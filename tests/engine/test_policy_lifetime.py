"""Policy lifetimes as net/xfrm/xfrm_policy.c keeps them (xfrm_policy_timer, curlft).

add_time is the insert time; use_time is stamped by every lookup that selects the
policy (output and input, block policies too); bytes and packets stay 0 (the kernel
never counts them for a policy). The timer first runs a second after the insert; a
hard limit deletes the policy with one hard POLEXPIRE, a soft one warns on each run
that finds it reached, re-armed every XFRM_KM_TIMEOUT (30 s); a use limit counts from
the add time while the policy was never used.
"""

from __future__ import annotations

import ipaddress

import pytest

from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import NotFound
from xfrm_offload.engine.events import (
    DeleteReason,
    PolicyDeleted,
    PolicyExpired,
)
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import (
    Policy,
    PolicyAction,
    PolicyLifetime,
    PolicyTimerResult,
    Template,
)
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    Algorithm,
    Direction,
    Family,
    LifetimeConfig,
    Mode,
    SAConfig,
    Selector,
)

from ..datapath.builders import udp4

A, B = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
SEL = Selector(
    saddr=ipaddress.ip_address("198.51.100.0"), prefixlen_s=24,
    daddr=ipaddress.ip_address("203.0.113.0"), prefixlen_d=24, family=Family.INET,
)  # fmt: skip
INNER = udp4("198.51.100.7", "203.0.113.9", b"x" * 40)
TMPL = Template(daddr=B, saddr=A, reqid=1, mode=Mode.TUNNEL)


def sa_config() -> SAConfig:
    return SAConfig(
        daddr=B, saddr=A, spi=0x100, mode=Mode.TUNNEL, reqid=1, replay_window=64,
        aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128), selector=SEL,
    )  # fmt: skip


def policy(direction: Direction = Direction.OUT, **lft: int) -> Policy:
    return Policy(sel=SEL, dir=direction, templates=(TMPL,), lifetime=LifetimeConfig(**lft))


def expiries(device: Device) -> list[tuple[bool, int]]:
    return [(e.hard, e.handle) for e in device.pop_events() if isinstance(e, PolicyExpired)]


# -- the timer alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lft", "used_at", "runs"),
    [
        # hard add 5: first run at +1 finds 4 s left, the next at +5 deletes
        ({"hard_add_expires_seconds": 5}, None, [(1, "nothing", 5), (5, "hard", None)]),
        # soft add 3: warn at +3, then every 30 s
        (
            {"soft_add_expires_seconds": 3},
            None,
            [(1, "nothing", 3), (3, "soft", 33), (33, "soft", 63)],
        ),
        # hard use 10, never used: counts from the add time
        ({"hard_use_expires_seconds": 10}, None, [(1, "nothing", 10), (10, "hard", None)]),
        # hard use 10, used at +6 (before the first run): deleted at +16
        ({"hard_use_expires_seconds": 10}, 6, [(1, "nothing", 16), (16, "hard", None)]),
        # soft 3 then hard 8: warn at +3 (next run at the hard deadline), hard at +8
        (
            {"soft_add_expires_seconds": 3, "hard_add_expires_seconds": 8},
            None,
            [(1, "nothing", 3), (3, "soft", 8), (8, "hard", None)],
        ),
    ],
)
def test_policy_timer_runs_as_the_kernels(
    lft: dict[str, int], used_at: float | None, runs: list[tuple[float, str, float | None]]
) -> None:
    t0 = 1000.0
    life = PolicyLifetime(LifetimeConfig(**lft), t0)
    if used_at is not None:
        life.used(t0 + used_at)
    for at, result, following in runs:
        assert life.timer_at == t0 + at
        assert life.run_timer(t0 + at) is PolicyTimerResult(result)
        assert life.timer_at == (float("inf") if following is None else t0 + following)


def test_no_time_limit_means_no_timer() -> None:
    device = Device("eth0", 2, PROFILES["full"])
    device.policy_add(policy(), XFRM_OFFLOAD_PACKET, 5.0)
    assert device.next_policy_deadline() is None
    life = PolicyLifetime(LifetimeConfig(), 5.0)
    assert (life.bytes, life.packets, life.timer_at) == (0, 0, float("inf"))


# -- on the device ---------------------------------------------------------------------


def test_hard_expiry_deletes_and_frees_the_policy_with_events() -> None:
    device = Device("eth0", 2, PROFILES["full"])
    handle = device.policy_add(
        policy(hard_add_expires_seconds=5), XFRM_OFFLOAD_PACKET, 100.0
    ).handle
    device.pop_events()
    assert device.next_policy_deadline() == 101.0
    device.poll(104.9)
    assert device.pop_events() == []
    assert device.next_policy_deadline() == 105.0
    device.poll(105.0)
    events = device.pop_events()
    assert [type(e) for e in events] == [PolicyExpired, PolicyDeleted]
    expired, deleted = events
    assert isinstance(expired, PolicyExpired) and isinstance(deleted, PolicyDeleted)
    assert (expired.hard, expired.handle, expired.add_time, expired.use_time) == (
        True,
        handle,
        100.0,
        None,
    )
    assert expired.policy.lifetime.hard_add_expires_seconds == 5
    assert deleted.reason is DeleteReason.EXPIRED
    with pytest.raises(NotFound):
        device.get_policy(handle)
    assert len(device.spd) == 0 and device.next_policy_deadline() is None


def test_soft_expiry_repeats_every_km_timeout_until_deleted() -> None:
    device = Device("eth0", 2, PROFILES["full"])
    handle = device.policy_add(policy(soft_add_expires_seconds=2), XFRM_OFFLOAD_PACKET, 0.0).handle
    device.poll(100.0)  # a late poll still sees every run the kernel's timer made
    assert expiries(device) == [(False, handle)] * 4  # at 2, 32, 62, 92
    assert device.next_policy_deadline() == 122.0
    device.policy_delete(handle)
    device.poll(500.0)
    assert expiries(device) == []


def test_lookups_stamp_use_time_on_output_and_input_and_count_no_bytes() -> None:
    a = DevicePath(Device("eth0", 2, PROFILES["full"]))
    b = DevicePath(Device("eth1", 3, PROFILES["full"]))
    out_handle = a.device.policy_add(policy(), XFRM_OFFLOAD_PACKET, 10.0).handle
    in_handle = b.device.policy_add(policy(Direction.IN), XFRM_OFFLOAD_PACKET, 10.0).handle
    a.device.state_add(sa_config(), XFRM_OFFLOAD_PACKET, 10.0)
    b.device.state_add(sa_config(), XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND, 10.0)
    assert a.device.get_policy(out_handle).lifetime.use_time is None
    for now in (20.0, 30.0):  # the second batch goes through the flow caches
        wire = [o[1] for o in a.tx([INNER] * 3, now).outcomes()]
        assert [o[1] for o in b.rx(wire, now + 1).outcomes()] == [INNER] * 3  # type: ignore[arg-type]
        assert a.device.get_policy(out_handle).lifetime.use_time == now
        assert b.device.get_policy(in_handle).lifetime.use_time == now + 1
    life = a.device.get_policy(out_handle).lifetime
    assert (life.add_time, life.bytes, life.packets) == (10.0, 0, 0)


def test_a_block_policy_is_used_too() -> None:
    a = DevicePath(Device("eth0", 2, PROFILES["full"]))
    block = Policy(sel=SEL, dir=Direction.OUT, action=PolicyAction.BLOCK)
    handle = a.device.policy_add(block, XFRM_OFFLOAD_PACKET, 0.0).handle
    for now in (5.0, 6.0):
        out = a.tx([INNER], now).outcomes()
        assert out[0][:2] == (Verdict.DROP, XfrmStat.OUT_POL_BLOCK)
        assert a.device.get_policy(handle).lifetime.use_time == now


def test_use_expiry_counts_from_the_last_use() -> None:
    a = DevicePath(Device("eth0", 2, PROFILES["full"]))
    handle = a.device.policy_add(
        policy(hard_use_expires_seconds=10), XFRM_OFFLOAD_PACKET, 0.0
    ).handle
    a.device.state_add(sa_config(), XFRM_OFFLOAD_PACKET, 0.0)
    a.tx([INNER], 8.0)
    a.device.poll(17.9)
    assert expiries(a.device) == []
    a.device.poll(18.0)
    assert expiries(a.device) == [(True, handle)]
    # deleted: the next packet finds no policy and leaves in clear
    assert a.tx([INNER], 19.0).outcomes()[0][:2] == (Verdict.PASS, INNER)

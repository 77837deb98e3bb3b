"""SA lifetimes driven by ``now`` (kernel-anchors §4.3, scenario 15)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.events import LimitKind
from xfrm_offload.engine.lifetime import Lifetime
from xfrm_offload.engine.types import XFRM_INF, LifetimeConfig

SOFT, HARD = False, True
B, P, ADD, USE = LimitKind.BYTES, LimitKind.PACKETS, LimitKind.ADD_TIME, LimitKind.USE_TIME


@dataclass(frozen=True)
class Send:
    """Offer ``count`` packets of ``nbytes`` at ``now``; each one ``allow`` passes is counted."""

    count: int
    nbytes: int
    now: float
    passed: int  # how many of them allow() let through


@dataclass(frozen=True)
class Poll:
    now: float
    fired: tuple[tuple[bool, LimitKind], ...] = ()


@dataclass(frozen=True)
class Allow:
    now: float
    expected: bool


Step = Send | Poll | Allow


@dataclass(frozen=True)
class Case:
    name: str
    cfg: LifetimeConfig
    steps: tuple[Step, ...]


CASES = [
    # Scenario 15: soft after 10 packets, hard after 20, then nothing passes.
    Case(
        "packets soft then hard",
        LifetimeConfig(soft_packet_limit=10, hard_packet_limit=20),
        (
            Send(9, 100, 1.0, passed=9),
            Poll(1.0),
            Send(1, 100, 1.0, passed=1),
            Poll(1.0, ((SOFT, P),)),
            Send(9, 100, 2.0, passed=9),
            Poll(2.0),
            Send(5, 100, 2.0, passed=1),
            Poll(2.0, ((HARD, P),)),
            Allow(3.0, False),
            Poll(1e9),
        ),
    ),
    Case(
        "bytes soft then hard",
        LifetimeConfig(soft_byte_limit=1000, hard_byte_limit=2000),
        (
            Send(3, 300, 0.0, passed=3),
            Poll(0.0),
            Send(1, 300, 0.0, passed=1),  # 1200 >= 1000
            Poll(0.0, ((SOFT, B),)),
            Send(5, 300, 0.0, passed=3),  # 2100 >= 2000 after the 7th
            Poll(0.0, ((HARD, B),)),
        ),
    ),
    Case(
        "exact byte limit",
        LifetimeConfig(hard_byte_limit=1000),
        (Send(10, 100, 0.0, passed=10), Poll(0.0, ((HARD, B),))),
    ),
    Case(
        "hard without soft",
        LifetimeConfig(hard_packet_limit=5),
        (Send(4, 1, 0.0, passed=4), Poll(0.0), Send(3, 1, 0.0, passed=1), Poll(0.0, ((HARD, P),))),
    ),
    Case(
        "soft and hard reached by one packet: hard only",
        LifetimeConfig(soft_byte_limit=100, hard_byte_limit=150),
        (Send(1, 200, 0.0, passed=1), Poll(0.0, ((HARD, B),)), Allow(0.0, False)),
    ),
    Case(
        "soft not below hard: hard only",
        LifetimeConfig(soft_packet_limit=30, hard_packet_limit=20),
        (Send(40, 1, 0.0, passed=20), Poll(0.0, ((HARD, P),))),
    ),
    Case(
        "bytes and packets: bytes reported first",
        LifetimeConfig(hard_byte_limit=10, hard_packet_limit=1),
        (Send(2, 10, 0.0, passed=1), Poll(0.0, ((HARD, B),))),
    ),
    Case(
        "soft packets then hard bytes",
        LifetimeConfig(soft_packet_limit=2, hard_byte_limit=500),
        (Send(10, 100, 0.0, passed=5), Poll(0.0, ((SOFT, P), (HARD, B)))),
    ),
    Case(
        "INF is no limit",
        LifetimeConfig(),
        (Send(3, 2**62, 0.0, passed=3), Poll(1e12), Allow(1e12, True)),
    ),
    Case(
        "hard packet limit 0: nothing passes",
        LifetimeConfig(hard_packet_limit=0),
        (Allow(0.0, False), Send(1, 1, 0.0, passed=0), Poll(0.0, ((HARD, P),))),
    ),
    Case(
        "soft packet limit 0 fires at once",
        LifetimeConfig(soft_packet_limit=0),
        (Poll(0.0, ((SOFT, P),)), Send(3, 1, 0.0, passed=3), Poll(0.0)),
    ),
    Case(
        "add time soft then hard",
        LifetimeConfig(soft_add_expires_seconds=10, hard_add_expires_seconds=20),
        (
            Poll(109.999),
            Poll(110.0, ((SOFT, ADD),)),
            Allow(119.9, True),
            Send(1, 50, 119.9, passed=1),
            Allow(120.0, False),
            Poll(120.0, ((HARD, ADD),)),
            Poll(500.0),
        ),
    ),
    Case(
        "add time jump past both: hard only",
        LifetimeConfig(soft_add_expires_seconds=10, hard_add_expires_seconds=20),
        (Poll(1000.0, ((HARD, ADD),)),),
    ),
    Case(
        "add time hard seen first by allow",
        LifetimeConfig(hard_add_expires_seconds=5),
        (Send(3, 10, 104.0, passed=3), Send(3, 10, 105.0, passed=0), Poll(105.0, ((HARD, ADD),))),
    ),
    Case(
        "use time counts from the first packet",
        LifetimeConfig(soft_use_expires_seconds=5, hard_use_expires_seconds=10),
        (
            Poll(10_000.0),  # never used: never expires
            Send(1, 10, 10_050.0, passed=1),
            Send(1, 10, 10_053.0, passed=1),  # later packets do not restart the clock
            Poll(10_054.9),
            Poll(10_055.0, ((SOFT, USE),)),
            Allow(10_059.9, True),
            Poll(10_060.0, ((HARD, USE),)),
            Allow(10_060.0, False),
        ),
    ),
    Case(
        "add time earlier than use time",
        LifetimeConfig(hard_add_expires_seconds=30, hard_use_expires_seconds=100),
        (Send(1, 1, 101.0, passed=1), Poll(129.0), Poll(130.0, ((HARD, ADD),))),
    ),
    Case(
        "use time earlier than add time",
        LifetimeConfig(hard_add_expires_seconds=100, hard_use_expires_seconds=10),
        (Send(1, 1, 101.0, passed=1), Poll(110.0), Poll(111.0, ((HARD, USE),))),
    ),
    Case(
        "soft time then hard packets",
        LifetimeConfig(soft_add_expires_seconds=1, hard_packet_limit=3),
        (
            Send(1, 1, 100.5, passed=1),
            Poll(101.0, ((SOFT, ADD),)),
            Send(3, 1, 102.0, passed=2),
            Poll(102.0, ((HARD, P),)),
        ),
    ),
    Case(
        "zero times are no limit",
        LifetimeConfig(
            soft_add_expires_seconds=0,
            hard_add_expires_seconds=0,
            soft_use_expires_seconds=0,
            hard_use_expires_seconds=0,
        ),
        (Send(2, 1, 100.0, passed=2), Poll(1e15), Allow(1e15, True)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_lifetime(case: Case) -> None:
    lt = Lifetime(case.cfg, now=100.0)
    sent = 0
    total_bytes = 0
    for step in case.steps:
        if isinstance(step, Send):
            passed = 0
            for _ in range(step.count):
                if lt.allow(step.now):
                    lt.account(step.nbytes, step.now)
                    passed += 1
                    total_bytes += step.nbytes
            assert passed == step.passed, step
            sent += passed
        elif isinstance(step, Poll):
            assert lt.poll(step.now) == list(step.fired), step
        else:
            assert lt.allow(step.now) is step.expected, step
    assert (lt.packets, lt.bytes) == (sent, total_bytes)
    if lt.hard_expired:
        assert lt.soft_expired


def test_current_lifetime_fields() -> None:
    lt = Lifetime(LifetimeConfig(), now=42.5)
    assert (lt.add_time, lt.use_time, lt.bytes, lt.packets) == (42.5, None, 0, 0)
    assert not lt.soft_expired and not lt.hard_expired
    lt.account(1400, 50.0)
    lt.account(60, 51.0)
    assert (lt.use_time, lt.bytes, lt.packets) == (50.0, 1460, 2)


def test_each_limit_fires_once_in_total() -> None:
    lt = Lifetime(
        LifetimeConfig(
            soft_packet_limit=1,
            hard_packet_limit=2,
            soft_add_expires_seconds=1,
            hard_add_expires_seconds=2,
        ),
        now=0.0,
    )
    fired: list[tuple[bool, LimitKind]] = []
    for t in range(10):
        if lt.allow(float(t)):
            lt.account(10, float(t))
        fired += lt.poll(float(t))
    assert fired == [(SOFT, P), (HARD, P)]


@pytest.mark.parametrize(
    "name",
    [
        "soft_byte_limit",
        "hard_packet_limit",
        "hard_add_expires_seconds",
        "soft_use_expires_seconds",
    ],
)
def test_validation(name: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        Lifetime(LifetimeConfig(**{name: -1}), now=0.0)
    assert exc.value.field == f"lifetime.{name}"
    with pytest.raises(InvalidArgument):
        Lifetime(LifetimeConfig(**{name: XFRM_INF + 1}), now=0.0)

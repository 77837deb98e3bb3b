"""Byte and packet limits inside one batch call, on each engine (see conftest).

A batch is counted packet by packet inside the batch call (``lifetime.BatchCount``, and
its restatement in _esp.c): the same counters, the same fired limits, the same verdicts
as feeding the packets one at a time, a hard limit reached at packet k drops packets
k+1.. with the expired reason (without using a sequence number or touching the replay
window), and ``batch_fired`` says at which packet of the batch soft and hard fired.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from xfrm_offload.engine.events import Expired, LimitKind
from xfrm_offload.engine.lifetime import Lifetime
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import XFRM_INF, LifetimeConfig

from .test_esp_batch import BASE, SALT, v4, v6

B, P = LimitKind.BYTES, LimitKind.PACKETS
BAD = b"\x00" * 10  # not IP: XfrmOutStateModeError, passes no limit
OUT_EXPIRED, IN_EXPIRED = XfrmStat.OUT_STATE_EXPIRED, XfrmStat.IN_STATE_EXPIRED


def limits(**kw: int) -> LifetimeConfig:
    return LifetimeConfig(**kw)


def sa(lifetime: LifetimeConfig, engine: str | None = None) -> SecurityAssociation:
    cfg = dataclasses.replace(BASE, lifetime=lifetime)
    return SecurityAssociation(cfg, 0.0, iv_salt=SALT, engine=engine)


def expired(s: SecurityAssociation) -> list[tuple[bool, LimitKind]]:
    return [(e.hard, e.kind) for e in s.pop_events() if isinstance(e, Expired)]


# (name, limits, batches of packets, expected batch_fired per batch, expected events,
#  how many packets end up expired)
ENCAP_CASES: list[tuple[str, LifetimeConfig, list[list[bytes]], list[tuple[int, int]]]] = [
    (
        "soft-then-hard-packets",
        limits(soft_packet_limit=5, hard_packet_limit=10),
        [[v4(100)] * 16],
        [(4, 9)],
    ),
    (
        "bytes",
        limits(soft_byte_limit=250, hard_byte_limit=500),
        [[v4(100), v4(60), v4(100), v4(200), v4(100), v4(100)]],
        [(2, 4)],
    ),
    (
        "same-packet-reaches-both",  # only the hard one fires
        limits(soft_packet_limit=3, hard_packet_limit=3),
        [[v4(100)] * 5],
        [(-1, 2)],
    ),
    (
        "drops-do-not-count",
        limits(soft_packet_limit=2, hard_packet_limit=3),
        [[BAD, v4(100), BAD, v4(100), BAD, v6(80), v4(100), BAD]],
        [(3, 5)],
    ),
    (
        "across-batches",
        limits(soft_packet_limit=4, hard_packet_limit=7),
        [[v4(64)] * 3, [v4(64)] * 3, [v4(64)] * 3, [v4(64)] * 2],
        [(-1, -1), (0, -1), (-1, 0), (-1, -1)],
    ),
    (
        "hard-bytes-before-soft-packets",
        limits(soft_packet_limit=100, hard_byte_limit=300),
        [[v4(100)] * 6],
        [(-1, 2)],
    ),
    ("no-limits", LifetimeConfig(), [[v4(100)] * 40], [(-1, -1)]),
]


@pytest.mark.parametrize(
    ("lifetime", "batches", "fired"),
    [case[1:] for case in ENCAP_CASES],
    ids=[case[0] for case in ENCAP_CASES],
)
def test_encap_limits_inside_a_batch(
    lifetime: LifetimeConfig, batches: list[list[bytes]], fired: list[tuple[int, int]]
) -> None:
    batched, single = sa(lifetime), sa(lifetime)
    now = 1.0
    for batch, where in zip(batches, fired, strict=True):
        out = batched.encap_batch(batch, now)
        one_by_one = [single.encap_batch([p], now)[0] for p in batch]
        assert out == one_by_one
        assert batched.batch_fired == where
        hard_at = where[1]
        if hard_at >= 0:
            assert out[hard_at + 1 :] == [OUT_EXPIRED] * (len(batch) - hard_at - 1)
        assert batched.curlft == single.curlft
        assert batched.oseq.batch_state() == single.oseq.batch_state()
        assert batched.drops == single.drops
        assert expired(batched) == expired(single)
        now += 1.0
    assert batched.lifetime.hard_expired == single.lifetime.hard_expired


def test_expired_packets_use_no_sequence_number() -> None:
    s = sa(limits(hard_packet_limit=3))
    out = s.encap_batch([v4(100)] * 8, 1.0)
    assert s.oseq.last == 3
    assert out[3:] == [OUT_EXPIRED] * 5
    assert s.drops == {OUT_EXPIRED: 5}
    assert s.stats.as_dict()["XfrmOutStateExpired"] == 5
    assert expired(s) == [(True, P)]
    # the next batch is refused whole, and says nothing fired in it
    assert s.encap_batch([v4(100)] * 2, 2.0) == [OUT_EXPIRED] * 2
    assert s.batch_fired == (-1, -1)
    assert s.curlft.packets == 3


def test_first_batch_starts_the_use_clock() -> None:
    s = sa(limits(hard_use_expires_seconds=10, soft_packet_limit=2))
    s.encap_batch([v4(100)] * 3, 5.0)
    assert s.curlft.use_time == 5.0
    assert s.lifetime.next_deadline == 15.0
    assert expired(s) == [(False, P)]


def traffic(n: int) -> list[bytes]:
    sender = sa(LifetimeConfig(), engine="python")
    out = sender.encap_batch([v4(60 + 10 * (i % 5)) for i in range(n)], 1.0)
    return [p for p in out if isinstance(p, bytes)]


DECAP_CASES: list[tuple[str, LifetimeConfig, tuple[int, int]]] = [
    ("packets", limits(soft_packet_limit=3, hard_packet_limit=6), (2, 7)),
    ("bytes", limits(soft_byte_limit=200, hard_byte_limit=420), (2, 7)),
    ("hard-only", limits(hard_packet_limit=1), (-1, 0)),
]


@pytest.mark.parametrize(
    ("lifetime", "fired"),
    [case[1:] for case in DECAP_CASES],
    ids=[case[0] for case in DECAP_CASES],
)
def test_decap_limits_inside_a_batch(lifetime: LifetimeConfig, fired: tuple[int, int]) -> None:
    good = traffic(10)
    corrupt = bytearray(good[5])
    corrupt[-1] ^= 1
    # a replay and an ICV failure in the middle: neither counts
    batch = [*good[:4], good[1], bytes(corrupt), *good[4:]]
    batched, single = sa(lifetime), sa(lifetime)
    out = batched.decap_batch(batch, 2.0)
    assert out == [single.decap_batch([p], 2.0)[0] for p in batch]
    assert batched.batch_fired == fired
    hard_at = fired[1]
    assert out[hard_at + 1 :] == [IN_EXPIRED] * (len(batch) - hard_at - 1)
    assert batched.curlft == single.curlft
    assert batched.replay.run_state() == single.replay.run_state()
    assert batched.drops == single.drops
    assert expired(batched) == expired(single)


# -- the counting itself: BatchCount against Lifetime.account, one packet at a time ----


def _started(cfg: LifetimeConfig) -> Lifetime:
    lt = Lifetime(cfg, 0.0)
    lt.account(1, 0.0)  # the use clock started: only byte/packet limits are in play
    lt.poll(0.0)
    return lt


def _account_one_by_one(cfg: LifetimeConfig, sizes: list[int]) -> tuple[Any, ...]:
    lt = _started(cfg)
    fired: list[tuple[int, bool, LimitKind]] = []
    for i, n in enumerate(sizes):
        if not lt.allow(0.0):
            break
        lt.account(n, 0.0)
        fired += [(i, hard, kind) for hard, kind in lt.poll(0.0)]
    return lt.bytes, lt.packets, fired


def _batch(cfg: LifetimeConfig, sizes: list[int]) -> tuple[Any, ...]:
    lt = _started(cfg)
    if lt.allow(0.0):
        run = lt.batch()
        for i, n in enumerate(sizes):
            if run.hard_at >= 0:
                break
            run.count(i, n)
        lt.end_batch(run, 0.0)
        fired = [(run.soft_at, False, run.soft_kind)] if run.soft_at >= 0 else []
        fired += [(run.hard_at, True, run.hard_kind)] if run.hard_at >= 0 else []
        assert [(hard, kind) for _, hard, kind in fired] == lt.poll(0.0)
    else:
        fired = []
    return lt.bytes, lt.packets, fired


@pytest.mark.parametrize("seed", range(200))
def test_batch_count_matches_account(seed: int) -> None:
    rng = random.Random(seed)

    def limit(top: int) -> int:
        return XFRM_INF if rng.random() < 0.3 else rng.randrange(1, top)

    cfg = LifetimeConfig(
        soft_byte_limit=limit(20_000),
        hard_byte_limit=limit(40_000),
        soft_packet_limit=limit(100),
        hard_packet_limit=limit(200),
    )
    sizes = [rng.choice([0, 1, 64, 1400, rng.randrange(2000)]) for _ in range(rng.randrange(300))]
    assert _batch(cfg, sizes) == _account_one_by_one(cfg, sizes)

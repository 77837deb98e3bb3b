"""Wire impairments (tc-netem's vocabulary) between two devices, seeded and counted.

The receiving device's counters account for every packet the impairment let through:
each duplicate is a replay (XfrmInStateSeqError), each corruption the drop its position
causes (the ICV: XfrmInStateProtoError; the SPI or the outer destination: no state),
a packet reordered inside the replay window passes and one left of it is a replay
drop; the same seed gives the same wire twice.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import replace

import pytest

from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.impair import GilbertElliott, Impairment, ImpairmentConfig
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import Policy
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Direction

from ..datapath.builders import udp4
from .test_datapath import SEL, sa, tmpl

N = 100


def link(window: int = 64) -> tuple[list[tuple[int, bytes]], DevicePath]:
    """N ESP packets (id = sequence number) from a sending device, and the receiver."""
    a = DevicePath(Device("eth0", 2, PROFILES["full"]))
    b = DevicePath(Device("eth1", 3, PROFILES["full"]))
    config = replace(sa(0x100), replay_window=window)
    a.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    b.device.policy_add(Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET)
    a.device.state_add(config, XFRM_OFFLOAD_PACKET, 0.0)
    b.device.state_add(config, XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND, 0.0)
    inner = [udp4("198.51.100.7", "203.0.113.9", i.to_bytes(2, "big") * 20) for i in range(N)]
    out = a.tx(inner, 0.0).outcomes()
    assert [o[0] for o in out] == [Verdict.PASS] * N
    return [(i + 1, o[1]) for i, o in enumerate(out)], b  # type: ignore[misc]


def through(
    config: ImpairmentConfig, items: Sequence[tuple[int, bytes]], now: float = 0.0
) -> tuple[Impairment[int], list[tuple[int, bytes]]]:
    imp: Impairment[int] = Impairment(config)
    imp.push(items, now)
    return imp, imp.pop_due(float("inf"))


def received(b: DevicePath, wire: list[tuple[int, bytes]]) -> list[object]:
    return [
        o[1] if o[0] is Verdict.DROP else o[0] for o in b.rx([p for _, p in wire], 1.0).outcomes()
    ]


def drops(b: DevicePath) -> dict[str, int]:
    return {k: v for k, v in b.device.stats.as_dict().items() if v}


# -- repeatable ------------------------------------------------------------------------

EVERYTHING = ImpairmentConfig(
    loss_burst=GilbertElliott(p=5, r=40), duplicate=10, corrupt=10, reorder=20, gap=3,
    delay=0.05, jitter=0.02, rate=10_000_000, seed=1234,
)  # fmt: skip


def test_the_same_seed_gives_the_same_wire_packet_for_packet() -> None:
    items, _ = link()
    first_imp, first = through(EVERYTHING, items)
    second_imp, second = through(EVERYTHING, items)
    assert first == second and first_imp.counters == second_imp.counters
    _, other = through(replace(EVERYTHING, seed=1235), items)
    assert other != first
    c = first_imp.counters
    assert c.packets == N and c.sent == len(first) == N + c.duplicated - c.dropped
    assert min(c.dropped, c.duplicated, c.corrupted, c.reordered) > 0


def test_an_inactive_config_changes_nothing() -> None:
    items, _ = link()
    _, out = through(ImpairmentConfig(seed=9), items)
    assert out == items and not ImpairmentConfig(seed=9).active


# -- what the receiver counts ----------------------------------------------------------


def test_each_duplicate_is_one_replay_drop() -> None:
    items, b = link()
    imp, wire = through(ImpairmentConfig(duplicate=25, seed=7), items)
    c = imp.counters
    assert c.duplicated > 0 and len(wire) == N + c.duplicated
    got = received(b, wire)
    assert got.count(Verdict.PASS) == N
    assert drops(b) == {"XfrmInStateSeqError": c.duplicated}
    # the copy follows its original
    ids = [i for i, _ in wire]
    assert ids == sorted(ids)


def test_random_loss_leaves_exactly_the_rest() -> None:
    items, b = link()
    imp, wire = through(ImpairmentConfig(loss=30, seed=3), items)
    assert len(wire) == N - imp.counters.dropped and imp.counters.dropped > 0
    assert received(b, wire) == [Verdict.PASS] * len(wire)
    assert drops(b) == {}


def test_gilbert_elliott_losses_come_in_bursts() -> None:
    items = [(i, b"x") for i in range(20000)]
    burst = ImpairmentConfig(loss_burst=GilbertElliott(p=2, r=20), seed=11, limit=100_000)
    imp, wire = through(burst, items)
    kept = {i for i, _ in wire}
    runs, run = [], 0
    for i, _ in items:
        if i in kept:
            if run:
                runs.append(run)
            run = 0
        else:
            run += 1
    mean = sum(runs) / len(runs)
    # stationary loss p / (p + r) = 1/11; mean burst 1 / r = 5 packets
    assert imp.counters.dropped / len(items) == pytest.approx(2 / 22, rel=0.15)
    assert mean == pytest.approx(5, rel=0.15)
    # random loss of the same rate has bursts of about 1.1
    _, flat = through(ImpairmentConfig(loss=100 * 2 / 22, seed=11, limit=100_000), items)
    assert len(flat) == pytest.approx(len(wire), rel=0.05)


def test_reordering_inside_the_window_passes_and_outside_is_a_replay_drop() -> None:
    """reorder 100% gap 5: every 5th packet leaves at once, the rest after the delay. The
    receiver (window 32) sees 5, 10, ... 100 first; then of the others those above
    100 - 32 pass and the older ones are left of the window."""
    items, b = link(window=32)
    imp, wire = through(ImpairmentConfig(reorder=100, gap=5, delay=0.01, seed=1), items)
    assert [i for i, _ in wire[:20]] == list(range(5, 101, 5))
    assert imp.counters.reordered == 20
    got = dict(zip([i for i, _ in wire], received(b, wire), strict=True))
    for seq, verdict in got.items():
        expected = Verdict.PASS if seq % 5 == 0 or seq >= 69 else XfrmStat.IN_STATE_SEQ_ERROR
        assert verdict == expected, seq
    assert drops(b) == {"XfrmInStateSeqError": 55}


#: What a bit flipped at an offset of an IPv4 tunnel ESP packet becomes at the receiver.
def corruption_outcome(offset: int) -> set[object]:
    if 16 <= offset < 24:  # outer destination, SPI: no such state
        return {XfrmStat.IN_NO_STATES}
    if offset >= 24:  # sequence number, IV, payload, ICV: the ICV check fails
        return {XfrmStat.IN_STATE_PROTO_ERROR}
    # the rest of the outer IPv4 header: the device does not check the header checksum
    # (see the README): version/length errors are header errors, other bytes pass
    return {XfrmStat.IN_HDR_ERROR, XfrmStat.IN_NO_STATES, Verdict.PASS}


def test_each_corruption_is_the_drop_its_position_causes() -> None:
    items, b = link()
    imp, wire = through(ImpairmentConfig(corrupt=50, seed=5), items)
    originals = dict(items)
    got = received(b, wire)
    corrupted = 0
    counted: collections.Counter[object] = collections.Counter()
    for (key, packet), verdict in zip(wire, got, strict=True):
        diff = [i for i, (x, y) in enumerate(zip(packet, originals[key], strict=True)) if x != y]
        if not diff:
            assert verdict is Verdict.PASS
            continue
        corrupted += 1
        (offset,) = diff  # exactly one bit of one byte
        assert bin(packet[offset] ^ originals[key][offset]).count("1") == 1
        assert verdict in corruption_outcome(offset), offset
        counted[verdict] += 1
    assert corrupted == imp.counters.corrupted > 0
    assert drops(b) == {str(k): v for k, v in counted.items() if k is not Verdict.PASS}
    assert counted[XfrmStat.IN_STATE_PROTO_ERROR] > 0


# -- when packets leave ----------------------------------------------------------------


def test_a_full_queue_drops_what_does_not_fit() -> None:
    imp: Impairment[int] = Impairment(ImpairmentConfig(delay=1.0, limit=3))
    imp.push([(i, b"x") for i in range(5)], 0.0)
    assert (len(imp), imp.counters.dropped) == (3, 2)
    assert [k for k, _ in imp.pop_due(1.0)] == [0, 1, 2]


def test_delay_jitter_and_rate_decide_departure_times() -> None:
    imp: Impairment[int] = Impairment(ImpairmentConfig(delay=0.5))
    imp.push([(1, b"a"), (2, b"b")], 10.0)
    assert imp.next_due() == 10.5 and imp.pop_due(10.49) == []
    assert imp.pop_due(10.5) == [(1, b"a"), (2, b"b")] and imp.next_due() is None
    # 1000 bytes at 8000 bit/s: one second each, queued behind each other
    rated: Impairment[int] = Impairment(ImpairmentConfig(rate=8000))
    rated.push([(1, bytes(1000)), (2, bytes(1000)), (3, bytes(500))], 0.0)
    times = []
    while (due := rated.next_due()) is not None:
        times.append(due)
        rated.pop_due(due)
    assert times == [1.0, 2.0, 2.5]
    jittered: Impairment[int] = Impairment(ImpairmentConfig(delay=1.0, jitter=0.25, seed=2))
    jittered.push([(i, b"x") for i in range(200)], 0.0)
    departures = sorted(t for t, *_ in jittered._queue)
    assert 0.75 <= departures[0] < 0.8 and 1.2 < departures[-1] <= 1.25


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        (
            ImpairmentConfig(reorder=10),
            "reorder",
            "reordering not possible without specifying some delay",
        ),
        (ImpairmentConfig(loss=101), "loss", "loss must be a percentage 0-100"),
        (ImpairmentConfig(corrupt=-1), "corrupt", "corrupt must be a percentage 0-100"),
        (ImpairmentConfig(gap=2), "gap", "gap needs reorder"),
        (
            ImpairmentConfig(loss=1, loss_burst=GilbertElliott(p=1)),
            "loss_burst",
            "loss and loss_burst are two loss models: give one",
        ),
        (
            ImpairmentConfig(loss_burst=GilbertElliott(p=1, r=200)),
            "loss_burst.r",
            "loss_burst.r must be a percentage 0-100",
        ),
        (ImpairmentConfig(rate=-5), "rate", "rate must not be negative"),
        (ImpairmentConfig(delay=-0.1), "delay", "delay must be 0 to 3600 seconds"),
        (ImpairmentConfig(limit=100_001), "limit", "limit must be 1 to 100000 packets"),
    ],
)
def test_refusals_name_the_field(config: ImpairmentConfig, field: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        Impairment(config)
    assert (info.value.field, info.value.message) == (field, message)

"""Anti-replay window and outbound sequence numbers (kernel-anchors §6.3, scenarios 12-14)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from xfrm_offload.engine.errors import InvalidArgument, PacketDrop
from xfrm_offload.engine.replay import MAX_REPLAY_WINDOW, OutboundSequence, ReplayWindow
from xfrm_offload.engine.stats import XfrmStat

U32 = 0xFFFFFFFF

# Outcomes of receiving one packet.
OK = "ok"  # accepted and marked
REPLAY = "replay"  # duplicate: replay += 1
OLD = "old"  # left of the window: replay_window += 1
ZERO = "zero"  # rejected without touching the replay counters


def receive(w: ReplayWindow, seq_lo: int) -> str:
    """Check, then (as if the ICV verified) advance; return the outcome."""
    before = (w.replay, w.replay_window)
    try:
        hi = w.check(seq_lo)
        w.advance(seq_lo, hi)
    except PacketDrop as drop:
        assert drop.reason is XfrmStat.IN_STATE_SEQ_ERROR
        if (w.replay, w.replay_window) == (before[0] + 1, before[1]):
            return REPLAY
        if (w.replay, w.replay_window) == (before[0], before[1] + 1):
            return OLD
        assert (w.replay, w.replay_window) == before
        return ZERO
    return OK


@dataclass(frozen=True)
class Case:
    name: str
    size: int
    steps: tuple[tuple[int, str], ...]
    top: int  # expected low 32 bits of top afterwards
    esn: bool = False
    seq: int = 0
    seq_hi: int = 0
    top_hi: int = 0


CASES = [
    Case("in order", 32, ((1, OK), (2, OK), (3, OK)), top=3),
    Case(
        "out of order within window",
        32,
        ((10, OK), (5, OK), (7, OK), (9, OK), (5, REPLAY), (11, OK), (7, REPLAY)),
        top=11,
    ),
    # Scenario 12.
    Case("scenario 12", 32, ((100, OK), (100, REPLAY), (60, OLD), (90, OK)), top=100),
    Case("window edges", 32, ((100, OK), (69, OK), (68, OLD), (69, REPLAY)), top=100),
    Case(
        "jump further than the window",
        64,
        ((10, OK), (1000, OK), (10, OLD), (999, OK), (1000, REPLAY), (937, OK), (936, OLD)),
        top=1000,
    ),
    Case("jump exactly the window", 32, ((5, OK), (37, OK), (6, OK), (5, OLD)), top=37),
    Case("window 0 checks nothing", 0, ((0, OK), (5, OK), (5, OK), (1, OK)), top=0),
    Case("seq 0 rejected", 32, ((0, ZERO), (1, OK), (0, ZERO)), top=1),
    Case("start from replay-seq", 32, ((1000, OK), (1000, REPLAY)), seq=1000, top=1000),
    Case("below a configured start", 32, ((900, OLD), (999, OK)), seq=1000, top=1000),
    Case("top 0xFFFFFFFF non-esn", 32, ((U32, OK), (U32 - 1, OK), (U32, REPLAY)), top=U32),
    Case("esn in order", 64, ((1, OK), (2, OK), (2, REPLAY)), esn=True, top=2),
    # Scenario 13: the window sits at the end of subspace 0; a low number is the next one.
    Case(
        "esn wrap forward",
        64,
        ((5, OK), (U32 - 8, OK), (5, REPLAY), (U32 - 8, REPLAY), (U32 - 57, OK)),
        esn=True,
        seq=0xFFFFFFF0,
        top=5,
        top_hi=1,
    ),
    # Window straddles the wrap: a high number belongs to the previous subspace.
    Case(
        "esn straddling window looks back",
        64,
        # ... and below the bottom it is taken as far ahead (the ICV would tell).
        ((0xFFFFFFF0, OK), (0xFFFFFFF0, REPLAY), (3, OK), (0xFFFFFFCB, OK), (0xFFFFFFCA, OK)),
        esn=True,
        seq=10,
        seq_hi=7,
        top=0xFFFFFFCA,
        top_hi=7,
    ),
    Case("esn seq 0 at start", 64, ((0, ZERO), (1, OK)), esn=True, top=1),
    Case(
        "esn seq 0 later is 2^32",
        64,
        ((0, OK), (0, REPLAY)),
        esn=True,
        seq=100,
        top=0,
        top_hi=1,
    ),
    # At the start of the space there is no previous subspace: drop as too old.
    Case("esn nothing before 0", 64, ((0xFFFFFFF0, OLD), (6, OK)), esn=True, seq=5, top=6),
    Case(
        "esn 64-bit space exhausted",
        64,
        ((5, ZERO),),
        esn=True,
        seq=U32 - 4,
        seq_hi=U32,
        top=U32 - 4,
        top_hi=U32,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_window(case: Case) -> None:
    w = ReplayWindow(case.size, esn=case.esn, seq=case.seq, seq_hi=case.seq_hi)
    got = [(seq, receive(w, seq)) for seq, _ in case.steps]
    assert got == list(case.steps)
    assert (w.seq_hi, w.seq) == (case.top_hi, case.top)
    assert w.replay == sum(outcome == REPLAY for _, outcome in case.steps)
    assert w.replay_window == sum(outcome == OLD for _, outcome in case.steps)


def test_scenario_13_inference_and_advance() -> None:
    w = ReplayWindow(64, esn=True, seq=0xFFFFFFF0, seq_hi=0)
    assert w.check(5) == 1
    assert w.advance(5, 1) is True
    assert (w.seq_hi, w.seq) == (1, 5)
    # A late packet of the previous subspace is still inferred as such.
    assert w.check(0xFFFFFFF8) == 0
    assert w.advance(0xFFFFFFF8, 0) is False
    assert w.seq_hi == 1


@pytest.mark.parametrize(
    ("seq_hi", "top", "seq_lo", "expected_hi"),
    [
        (3, 1000, 999, 3),  # inside the window
        (3, 1000, 2000, 3),  # ahead, same subspace
        (3, 1000, 937, 3),  # bottom of the window
        (3, 1000, 936, 4),  # below the bottom: next subspace
        (3, 10, 0xFFFFFFCB, 2),  # straddling: at the (wrapped) bottom, previous subspace
        (3, 10, 0xFFFFFFCA, 3),  # straddling: below the bottom, taken as far ahead
        (3, 62, 0xFFFFFFFF, 2),  # the window reaches one number into subspace 2
        (3, 63, 0, 3),  # top == size - 1: the window is exactly [0, 63]
        (3, 64, 0, 4),
    ],
)
def test_esn_inference(seq_hi: int, top: int, seq_lo: int, expected_hi: int) -> None:
    w = ReplayWindow(64, esn=True, seq=top, seq_hi=seq_hi)
    assert w.check(seq_lo) == expected_hi


def test_recheck_fails_when_window_moved_across_wrap() -> None:
    w = ReplayWindow(64, esn=True, seq=0xFFFFFFF0)
    hi = w.check(0xFFFFFFE0)
    assert hi == 0
    assert receive(w, 0x30) == OK  # meanwhile the window moved into subspace 1
    with pytest.raises(PacketDrop):
        w.advance(0xFFFFFFE0, hi)
    assert (w.replay_window, w.replay) == (1, 0)


def test_recheck_catches_duplicate_decrypted_twice() -> None:
    w = ReplayWindow(32, esn=False)
    assert w.check(7) == 0
    assert w.check(7) == 0  # both copies pass the pre-check...
    assert w.advance(7, 0) is False
    with pytest.raises(PacketDrop):
        w.advance(7, 0)  # ...only one passes the recheck
    assert w.replay == 1


def test_check_does_not_mark() -> None:
    w = ReplayWindow(32, esn=False)
    for _ in range(3):
        assert w.check(9) == 0
    assert (w.seq, w.bitmap) == (0, 0)


@pytest.mark.parametrize("size", [32, 64, 1024, 4096, MAX_REPLAY_WINDOW])
def test_window_sizes(size: int) -> None:
    w = ReplayWindow(size, esn=False)
    top = 3 * size
    assert receive(w, top) == OK
    assert receive(w, top - size + 1) == OK
    assert receive(w, top - size) == OLD
    assert receive(w, top - size + 1) == REPLAY
    assert receive(w, top + size - 1) == OK  # shift by size - 1 keeps the old top
    assert receive(w, top) == REPLAY
    assert receive(w, top - 1) == OLD


@pytest.mark.parametrize("size", [32, 64, 1024, 4096])
def test_every_number_in_window_once(size: int) -> None:
    w = ReplayWindow(size, esn=False)
    top = size + 10
    assert receive(w, top) == OK
    for seq in range(top - 1, top - size, -1):
        assert receive(w, seq) == OK
    assert w.bitmap == (1 << size) - 1
    assert all(receive(w, seq) == REPLAY for seq in range(top - size + 1, top + 1))
    assert w.replay == size


def reference_words(received: set[int], top: int, size: int) -> list[int]:
    """The kernel's ring: number s at bit (s - 1) % size, for s in the window."""
    words = [0] * ((size + 31) // 32)
    for s in received:
        if top - size < s <= top:
            idx = ((s - 1) & U32) % size
            words[idx >> 5] |= 1 << (idx & 31)
    return words


@pytest.mark.parametrize("size", [32, 64, 96, 128, 1024])
def test_against_reference_model(size: int) -> None:
    rng = random.Random(size)
    w = ReplayWindow(size, esn=False)
    received: set[int] = set()
    top = 0
    counts = {REPLAY: 0, OLD: 0}
    for _ in range(3000):
        seq = max(1, top + rng.randint(-size - 8, 12))
        if seq > top:
            expected = OK
        elif top - seq >= size:
            expected = OLD
        elif seq in received:
            expected = REPLAY
        else:
            expected = OK
        assert receive(w, seq) == expected
        if expected == OK:
            received.add(seq)
            top = max(top, seq)
        else:
            counts[expected] += 1
        assert w.seq == top
    assert (w.replay, w.replay_window) == (counts[REPLAY], counts[OLD])
    assert w.bitmap_words() == reference_words(received, top, size)


def test_bitmap_layouts() -> None:
    w = ReplayWindow(32, esn=False)
    for seq in (100, 98):
        receive(w, seq)
    assert w.bitmap == 0b101  # legacy xfrm_replay_state.bitmap: bit (top - seq)
    assert w.bitmap_words() == [(1 << 99 % 32) | (1 << 97 % 32)]
    w64 = ReplayWindow(64, esn=True, seq=0xFFFFFFFE)
    for seq in (0xFFFFFFFF, 1):
        receive(w64, seq)
    # 0xFFFFFFFF sits at (0xFFFFFFFE % 64) = 62, 2^32 + 1 at (0 % 64) = 0.
    assert w64.bitmap_words() == [1, 1 << 30]
    assert ReplayWindow(0, esn=False).bitmap_words() == []
    assert ReplayWindow(48, esn=False).bitmap_words() == [0, 0]


def test_set_seq_hi() -> None:
    w = ReplayWindow(64, esn=True, seq=100)
    receive(w, 100)
    receive(w, 99)
    w.set_seq_hi(0, seq=101)  # host moved top by one: old bits shift along
    assert w.bitmap == 0b110
    assert receive(w, 100) == REPLAY
    w.set_seq_hi(1)
    assert (w.seq_hi, w.seq, w.bitmap) == (1, 101, 0)
    assert w.check(50) == 1
    with pytest.raises(InvalidArgument) as exc:
        w.set_seq_hi(0)
    assert exc.value.field == "replay.seq_hi"
    with pytest.raises(InvalidArgument) as exc:
        w.set_seq_hi(1, seq=100)
    assert exc.value.field == "replay.seq"
    with pytest.raises(InvalidArgument) as exc:
        w.set_seq_hi(2**32)
    assert exc.value.field == "replay.seq_hi"
    with pytest.raises(InvalidArgument) as exc:
        ReplayWindow(64, esn=False).set_seq_hi(1)
    assert exc.value.field == "replay.seq_hi"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"size": -1, "esn": False}, "replay_window"),
        ({"size": MAX_REPLAY_WINDOW + 1, "esn": False}, "replay_window"),
        ({"size": 32, "esn": False, "seq_hi": 1}, "replay.seq_hi"),
        ({"size": 32, "esn": True, "seq": 2**32}, "replay.seq"),
        ({"size": 32, "esn": True, "seq_hi": -1}, "replay.seq_hi"),
    ],
)
def test_window_validation(kwargs: dict[str, int | bool], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        ReplayWindow(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


# -- outbound --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("esn", "may_wrap", "oseq", "oseq_hi", "expected"),
    [
        (False, False, 0, 0, [1, 2, 3]),
        # Scenario 14: one more packet, then -EOVERFLOW.
        (False, False, 0xFFFFFFFE, 0, [0xFFFFFFFF, None, None]),
        # oseq-may-wrap: as in the kernel, the packet after 0xFFFFFFFF carries 0 (then 1);
        # the high half counts the wraps, for the IV only (never on the wire).
        (False, True, 0xFFFFFFFE, 0, [0xFFFFFFFF, 1 << 32, (1 << 32) + 1]),
        (True, False, 0xFFFFFFFE, 0, [0xFFFFFFFF, 1 << 32, (1 << 32) + 1]),
        (True, False, 0xFFFFFFFF, 6, [7 << 32, (7 << 32) + 1]),
        (True, False, 0xFFFFFFFE, U32, [2**64 - 1, None]),
        (True, True, 0xFFFFFFFE, U32, [2**64 - 1, None]),  # may-wrap does not apply to ESN
    ],
)
def test_outbound_sequence(
    esn: bool, may_wrap: bool, oseq: int, oseq_hi: int, expected: list[int | None]
) -> None:
    out = OutboundSequence(esn=esn, may_wrap=may_wrap, oseq=oseq, oseq_hi=oseq_hi)
    got: list[int | None] = []
    for _ in expected:
        try:
            got.append(out.next())
        except PacketDrop as drop:
            assert drop.reason is XfrmStat.OUT_STATE_SEQ_ERROR
            got.append(None)
    assert got == expected
    assert out.overflowed == (None in expected)
    last = next(s for s in reversed(got) if s is not None)
    assert (out.oseq_hi, out.oseq) == (last >> 32 if esn else 0, last & U32)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"esn": False, "may_wrap": False, "oseq_hi": 1}, "replay.oseq_hi"),
        ({"esn": True, "may_wrap": False, "oseq": 2**32}, "replay.oseq"),
        ({"esn": True, "may_wrap": False, "oseq_hi": 2**32}, "replay.oseq_hi"),
    ],
)
def test_outbound_validation(kwargs: dict[str, int | bool], field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        OutboundSequence(**kwargs)  # type: ignore[arg-type]
    assert exc.value.field == field


# -- block reservation (the batch encap loop) -----------------------------------------


def test_run_state_round_trip() -> None:
    w = ReplayWindow(32, esn=False)
    for s in (1, 2, 5):
        receive(w, s)
    top, bitmap = w.run_state()
    assert (top, bitmap) == (5, 0b11001)
    w.set_run_state(7, (bitmap << 2 | 1) & 0xFFFFFFFF)  # 7 received, as advance would
    assert receive(w, 6) == OK and receive(w, 7) == REPLAY and receive(w, 5) == REPLAY

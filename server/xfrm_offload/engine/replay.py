"""Inbound anti-replay window and outbound sequence numbers (RFC 4303 §3.3.3, §3.4.3, App. A).

Semantics follow net/xfrm/xfrm_replay.c (described in the research notes, not copied):

* The inbound window remembers the highest sequence number accepted (``top``) and
  which of the ``size`` numbers ending at ``top`` were seen. A packet is checked
  *before* decryption (``check``) and the window is moved only *after* its ICV
  verified (``advance``, which checks again: another packet may have moved the
  window in between).
* Window 0 means no replay protection at all: the kernel returns early before any
  test, so even sequence number 0 passes, and the state never moves.
* Otherwise sequence number 0 is always rejected (it is never sent: the first
  packet carries 1), without touching the replay counters.
* Too old (left of the window) counts ``replay_window``; already seen counts
  ``replay``; both drop as ``XfrmInStateSeqError``.
* With ESN only the low 32 bits travel on the wire. The high half is guessed from
  where the window sits (RFC 4303 Appendix A2, the kernel's xfrm_replay_seqhi):
  if the window lies inside one 2^32 subspace, a number below its bottom belongs
  to the next subspace; if the window straddles a wrap, a number at or above its
  bottom belongs to the previous one. A wrong guess shows up as an ICV failure.

The window is a Python int used as a bit set: bit ``k`` set means ``top - k`` was
received. Moving the window is one shift and one mask, whatever its size, so
windows of 4096 or 65536 cost no scan. Internally ``top`` is kept as one 64-bit
number (``seq_hi << 32 | seq``), which turns every ESN comparison into plain
integer arithmetic.

Two deliberate differences from the kernel, both on impossible packets:

* With ESN at the very start of the space (seq_hi 0, window straddling 0) a
  number inferred to belong to the "previous" subspace would be negative as a
  64-bit value; the kernel lets it reach decryption (where the ICV fails), we
  drop it as too old (``replay_window``).
* The kernel accepts the 64-bit sequence number 0 in one corner case (ESN,
  seq_hi 0, top exactly ``size - 1``); we reject 64-bit 0 always.
"""

from __future__ import annotations

from .errors import InvalidArgument, PacketDrop
from .stats import XfrmStat

_U32 = 0xFFFFFFFF
_U64 = 2**64 - 1

#: The kernel stops at 4096 (XFRMA_REPLAY_ESN_MAX: a 128-word bitmap). The emulator
#: goes further; device profiles narrow it.
MAX_REPLAY_WINDOW = 1 << 16

_DROP_IN_SEQ = XfrmStat.IN_STATE_SEQ_ERROR
_DROP_OUT_SEQ = XfrmStat.OUT_STATE_SEQ_ERROR


def check_u32(value: int, field: str) -> None:
    """InvalidArgument naming ``field`` unless ``value`` fits 32 unsigned bits."""
    if not 0 <= value <= _U32:
        raise InvalidArgument(f"{field} must be a 32-bit unsigned value", field=field)


def check_window_size(size: int) -> None:
    """InvalidArgument naming ``replay_window`` unless 0 <= size <= MAX_REPLAY_WINDOW."""
    if not 0 <= size <= MAX_REPLAY_WINDOW:
        raise InvalidArgument(
            f"replay window must be between 0 and {MAX_REPLAY_WINDOW}", field="replay_window"
        )


class ReplayWindow:
    """The inbound anti-replay state of one SA (xfrm_replay_state_esn + its stats).

    ``check(seq_lo)`` before decryption returns the high 32 bits to decrypt with
    (0 without ESN); ``advance(seq_lo, seq_hi)`` after the ICV verified marks the
    number and moves the window. Both raise ``PacketDrop(XfrmInStateSeqError)``.
    """

    __slots__ = ("_bitmap", "_mask", "_top", "esn", "replay", "replay_window", "size")

    def __init__(self, size: int, *, esn: bool, seq: int = 0, seq_hi: int = 0) -> None:
        check_window_size(size)
        check_u32(seq, "replay.seq")
        check_u32(seq_hi, "replay.seq_hi")
        if seq_hi and not esn:
            raise InvalidArgument("replay.seq_hi needs the esn flag", field="replay.seq_hi")
        self.size = size
        self.esn = esn
        #: Highest accepted sequence number, as a 64-bit value.
        self._top = (seq_hi << 32) | seq
        #: Bit k set: sequence number ``_top - k`` was received.
        self._bitmap = 0
        self._mask = (1 << size) - 1
        #: Packets dropped because they were left of the window (x->stats.replay_window).
        self.replay_window = 0
        #: Packets dropped because they were already received (x->stats.replay).
        self.replay = 0

    # -- state as the uAPI shows it ------------------------------------------------

    @property
    def seq(self) -> int:
        """The low 32 bits of the highest accepted sequence number (replay_esn.seq)."""
        return self._top & _U32

    @property
    def seq_hi(self) -> int:
        """The high 32 bits (replay_esn.seq_hi); always 0 without ESN."""
        return self._top >> 32

    @property
    def bitmap(self) -> int:
        """The window as an int: bit k set means ``top - k`` was received.

        For windows of at most 32 without ESN this is exactly the kernel's legacy
        ``xfrm_replay_state.bitmap``.
        """
        return self._bitmap

    def bitmap_words(self) -> list[int]:
        """The window in the kernel's xfrm_replay_state_esn.bmp layout (ceil(size/32) words).

        The kernel keeps a ring: sequence number s lives at bit ``(s - 1) % size``
        (32-bit arithmetic), so the words read back by a keymanager match what the
        kernel would show for the same history.
        """
        size = self.size
        words = [0] * ((size + 31) // 32)
        if not size:
            return words
        pos = ((self._top - 1) & _U32) % size
        bits = self._bitmap
        k = 0
        while bits:
            if bits & 1:
                idx = (pos - k) % size
                words[idx >> 5] |= 1 << (idx & 31)
            bits >>= 1
            k += 1
        return words

    # -- the per-packet path -------------------------------------------------------

    def _infer_hi(self, seq_lo: int) -> int:
        """RFC 4303 A2: the high half for ``seq_lo`` given the window (may be -1 or 2^32)."""
        top = self._top
        hi = top >> 32
        lo = top & _U32
        size = self.size
        if lo >= size - 1:
            # The whole window is inside one subspace: below its bottom means "wrapped".
            return hi + 1 if seq_lo < lo - size + 1 else hi
        # The window straddles a wrap: at or above its (wrapped) bottom is the old subspace.
        return hi - 1 if seq_lo >= ((lo - size + 1) & _U32) else hi

    def infer_seq_hi(self, seq_lo: int) -> int:
        """The high half a packet with ``seq_lo`` belongs to, without checking or moving
        anything: what a crypto-offload NIC needs to decrypt while the host keeps the
        window (mlx5 derives it from the window's bottom the same way). 0 without ESN."""
        if not self.esn:
            return 0
        return min(max(self._infer_hi(seq_lo), 0), _U32)

    def _check64(self, seq: int) -> None:
        """Test a full 64-bit sequence number against the window, counting failures."""
        if seq <= 0:
            # 0 is never sent; negative is "before the start of the ESN space".
            if seq < 0:
                self.replay_window += 1
            raise PacketDrop(_DROP_IN_SEQ)
        top = self._top
        if seq > top:
            return
        diff = top - seq
        if diff >= self.size:
            self.replay_window += 1
            raise PacketDrop(_DROP_IN_SEQ)
        if (self._bitmap >> diff) & 1:
            self.replay += 1
            raise PacketDrop(_DROP_IN_SEQ)

    def check(self, seq_lo: int) -> int:
        """Before decryption: drop replays, return the seq_hi to decrypt with."""
        if not self.size:
            return self._top >> 32
        if not self.esn:
            if seq_lo <= self._top:  # the common in-order case skips the call
                self._check64(seq_lo)
            return 0
        hi = self._infer_hi(seq_lo)
        if hi > _U32:
            # The 64-bit space is exhausted: there is no next subspace.
            raise PacketDrop(_DROP_IN_SEQ)
        seq = (hi << 32) | seq_lo
        if seq <= self._top:
            self._check64(seq)
        return hi

    def advance(self, seq_lo: int, seq_hi: int) -> bool:
        """After the ICV verified: recheck, mark, move. True if seq_hi moved forward."""
        size = self.size
        if not size:
            return False
        if self.esn:
            if self._infer_hi(seq_lo) != seq_hi:
                # The window moved between check and advance: the guess no longer holds.
                self.replay_window += 1
                raise PacketDrop(_DROP_IN_SEQ)
            seq = (seq_hi << 32) | seq_lo
        else:
            seq = seq_lo
        top = self._top
        if seq > top:  # top >= 0, so seq > 0 here: nothing else to recheck
            diff = seq - top
            if diff >= size:
                self._bitmap = 1
            else:
                self._bitmap = ((self._bitmap << diff) | 1) & self._mask
            self._top = seq
            return (seq >> 32) != (top >> 32)
        self._check64(seq)
        self._bitmap |= 1 << (top - seq)
        return False

    # -- batch loops -----------------------------------------------------------------

    def run_state(self) -> tuple[int, int]:
        """``(top, bitmap)`` for a batch loop that checks and advances in-order packets itself.

        A packet whose 64-bit number is above ``top`` and in top's 2^32 subspace passes
        ``check`` without touching any counter, and ``advance`` then only shifts the
        bitmap; a loop can do that on local copies (``top = seq``, ``bitmap = ((bitmap <<
        (seq - old_top)) | 1) & mask`` or 1 when it moved a whole window) and hand them
        back with ``set_run_state`` before it calls ``check``/``advance`` for anything else.
        """
        return self._top, self._bitmap

    def set_run_state(self, top: int, bitmap: int) -> None:
        """Store what a batch loop computed from ``run_state`` (same invariants)."""
        self._top = top
        self._bitmap = bitmap

    # -- the host moves the state (crypto offload) ---------------------------------

    def set_seq_hi(self, seq_hi: int, seq: int | None = None) -> None:
        """xdo_dev_state_advance_esn: the host's replay state moved to (seq_hi, seq).

        In crypto offload the host runs the replay window and tells the device
        where it is, so the device infers seq_hi for decryption the same way.
        ``seq`` (the low half of top) defaults to the current one. Only ESN SAs,
        and never backwards. Bits already in the window shift with it; the new top
        is not marked received (only the host knows).
        """
        if not self.esn:
            raise InvalidArgument(
                "advance_esn on an SA without the esn flag", field="replay.seq_hi"
            )
        check_u32(seq_hi, "replay.seq_hi")
        if seq is None:
            seq = self._top & _U32
        else:
            check_u32(seq, "replay.seq")
        new_top = (seq_hi << 32) | seq
        if new_top < self._top:
            field = "replay.seq_hi" if seq_hi < self._top >> 32 else "replay.seq"
            raise InvalidArgument("the replay state cannot move backwards", field=field)
        diff = new_top - self._top
        if diff >= self.size:
            self._bitmap = 0
        else:
            self._bitmap = (self._bitmap << diff) & self._mask
        self._top = new_top

    def __repr__(self) -> str:
        return (
            f"ReplayWindow(size={self.size}, esn={self.esn}, seq_hi={self.seq_hi:#x}, "
            f"seq={self.seq:#x}, replay_window={self.replay_window}, replay={self.replay})"
        )


class OutboundSequence:
    """The outbound sequence counter of one SA (replay_esn.oseq / oseq_hi).

    ``next()`` pre-increments, so the first packet carries 1 (RFC 4303 §3.3.3).

    * Without ESN the counter is 32 bits. After 0xFFFFFFFF the SA is exhausted
      (-EOVERFLOW, ``XfrmOutStateSeqError``) unless the extra flag
      ``oseq-may-wrap`` is set; then, as in the kernel, the counter wraps and the
      next packet carries 0, the one after 1. Unlike the kernel, the number
      ``next()`` returns keeps counting the wraps in its high half (never on the
      wire: the ESP header takes the low 32 bits), so the IV, which is built from
      the whole number, still never repeats under the key.
    * With ESN a wrap of the low half bumps ``oseq_hi`` (that packet carries low
      half 0); the space is exhausted after 2^64 - 1. ``oseq-may-wrap`` does not
      apply to ESN (the kernel ignores it there too).

    On exhaustion the counter stays at its last value and ``overflowed`` becomes
    (and stays) True; every further ``next()`` drops again.
    """

    __slots__ = ("_epoch", "_limit", "_oseq", "_wraps", "esn", "may_wrap", "overflowed")

    def __init__(self, *, esn: bool, may_wrap: bool, oseq: int = 0, oseq_hi: int = 0) -> None:
        check_u32(oseq, "replay.oseq")
        check_u32(oseq_hi, "replay.oseq_hi")
        if oseq_hi and not esn:
            raise InvalidArgument("replay.oseq_hi needs the esn flag", field="replay.oseq_hi")
        self.esn = esn
        self.may_wrap = may_wrap
        self._wraps = may_wrap and not esn
        self._oseq = (oseq_hi << 32) | oseq
        self._limit = _U64 if esn else _U32
        #: Wraps so far (oseq-may-wrap without ESN): the high half of what next() returns.
        self._epoch = 0
        self.overflowed = False

    @property
    def oseq(self) -> int:
        """Low 32 bits of the last sequence number used."""
        return self._oseq & _U32

    @property
    def oseq_hi(self) -> int:
        """High 32 bits of the last sequence number used (0 without ESN)."""
        return self._oseq >> 32

    def next(self) -> int:
        """The 64-bit sequence number of the next packet; drops when exhausted."""
        seq = self._oseq + 1
        if seq > self._limit:
            if not self._wraps:
                self.overflowed = True
                raise PacketDrop(_DROP_OUT_SEQ)
            seq = 0
            self._epoch += 1
        self._oseq = seq
        return (self._epoch << 32) | seq

    @property
    def last(self) -> int:
        """The 64-bit sequence number used last (0 before the first packet)."""
        return self._oseq

    def batch_state(self) -> tuple[int, int, int, bool]:
        """``(last, wraps so far, limit, may wrap)``: what a native batch loop runs
        ``next()`` on (the same rules); it hands the result back with ``set_batch_state``."""
        return self._oseq, self._epoch, self._limit, self._wraps

    def set_batch_state(self, last: int, epoch: int, overflowed: bool) -> None:
        """Store what a batch loop computed from ``batch_state``."""
        self._oseq = last
        self._epoch = epoch
        if overflowed:
            self.overflowed = True

    def __repr__(self) -> str:
        return (
            f"OutboundSequence(esn={self.esn}, may_wrap={self.may_wrap}, "
            f"oseq_hi={self.oseq_hi:#x}, oseq={self.oseq:#x}, overflowed={self.overflowed})"
        )

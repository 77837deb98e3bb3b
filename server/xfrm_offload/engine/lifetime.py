"""SA lifetimes: xfrm_lifetime_cfg limits against xfrm_lifetime_cur counters.

Semantics (the kernel's xfrm_state_check_expire and the state timer, restated):

* Byte and packet limits: a packet is first counted, then the counters are
  compared. Reaching ``>= soft`` fires the soft limit once (rekey now); reaching
  ``>= hard`` fires the hard limit once and the SA passes nothing afterwards. So a
  hard packet limit of 20 lets exactly 20 packets through, and a limit of 0 lets
  none (it fires at creation). ``XFRM_INF`` means no limit.
* Time limits: ``*_add_expires_seconds`` count from when the SA was added,
  ``*_use_expires_seconds`` from its first packet (an unused SA never
  use-expires). 0 means none. A deadline is reached when ``now >= deadline``.
* A hard expiry also marks the soft limit done: there is never a soft event
  after (or together with) a hard one. When several limits are reached at once,
  one event is reported per severity, for the first kind in the order bytes,
  packets, add time, use time.

The engine never reads a clock: every call takes ``now`` (seconds). Fired limits
queue up until ``poll`` collects them; the owner turns them into ``Expired``
events. ``account`` and ``allow`` are per-packet: each compares against one
precomputed threshold and allocates nothing in the common case.

A batch of packets is counted by ``BatchCount`` (``Lifetime.batch`` hands one out,
``Lifetime.end_batch`` takes its result back): the batch loops of both ESP engines
(esp.py, and _esp.c, which restates ``BatchCount.count`` in C) count each packet that
passes and stop at a hard limit, so a batch gives the same counters, the same fired
limits and the same verdicts as feeding ``account`` one packet at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import InvalidArgument
from .events import LimitKind
from .types import NO_LIMITS, XFRM_INF, LifetimeConfig

#: Larger than any counter can become: a threshold that is never reached.
_NEVER_COUNT = 1 << 80
_NEVER_TIME = float("inf")

_COUNT_FIELDS = ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit")
_TIME_FIELDS = (
    "soft_add_expires_seconds",
    "hard_add_expires_seconds",
    "soft_use_expires_seconds",
    "hard_use_expires_seconds",
)


def _count_limit(value: int) -> int:
    return _NEVER_COUNT if value == XFRM_INF else value


@dataclass(slots=True)
class BatchCount:
    """The byte/packet counting of one batch call, packet by packet.

    Starts from the lifetime's counters and the limits still to fire (``XFRM_INF``: none,
    or fired already). ``count`` is called for each packet that passes, in order; once
    the hard limit fired (``hard_at`` >= 0) the batch loops drop every later packet with
    the expired reason without looking at it. ``soft_at`` / ``hard_at`` are the batch
    indexes of the packets at which the limits fired (-1: not in this batch), with the
    limit kind that fired (bytes before packets; a hard limit reached by the same packet
    as the soft one leaves no soft event, as in ``Lifetime._check_counters``).
    """

    bytes: int
    packets: int
    soft_bytes: int
    soft_packets: int
    hard_bytes: int
    hard_packets: int
    soft_at: int = -1
    soft_kind: LimitKind = LimitKind.BYTES
    hard_at: int = -1
    hard_kind: LimitKind = LimitKind.BYTES

    def count(self, index: int, nbytes: int) -> None:
        """Packet ``index`` of the batch passed with ``nbytes`` of cleartext."""
        self.bytes += nbytes
        self.packets += 1
        if _reached(self.bytes, self.hard_bytes):
            self.hard_at, self.hard_kind = index, LimitKind.BYTES
        elif _reached(self.packets, self.hard_packets):
            self.hard_at, self.hard_kind = index, LimitKind.PACKETS
        elif self.soft_at < 0:
            if _reached(self.bytes, self.soft_bytes):
                self.soft_at, self.soft_kind = index, LimitKind.BYTES
            elif _reached(self.packets, self.soft_packets):
                self.soft_at, self.soft_kind = index, LimitKind.PACKETS


def _reached(count: int, limit: int) -> bool:
    return limit != XFRM_INF and count >= limit


class Lifetime:
    """The current lifetime (bytes, packets, add/use time) of one SA and its limits."""

    __slots__ = (
        "_byte_mark",
        "_fired",
        "_hard_deadline",
        "_packet_mark",
        "_soft_deadline",
        "add_time",
        "bytes",
        "cfg",
        "hard_expired",
        "on_first_use",
        "packets",
        "soft_expired",
        "use_time",
    )

    def __init__(self, cfg: LifetimeConfig, now: float) -> None:
        no_limits = cfg is NO_LIMITS  # most SAs: nothing to check, nothing ever fires
        if not no_limits:
            for name in (*_COUNT_FIELDS, *_TIME_FIELDS):
                value = getattr(cfg, name)
                if not 0 <= value <= XFRM_INF:
                    raise InvalidArgument(
                        f"lifetime.{name} must be between 0 and 2^64-1", field=f"lifetime.{name}"
                    )
        self.cfg = cfg
        self.bytes = 0
        self.packets = 0
        self.add_time = now
        self.use_time: float | None = None
        #: Called when the first packet starts the use-time clock (a timer queue that
        #: must move this lifetime's deadline forward; see timers.py).
        self.on_first_use: Callable[[], None] | None = None
        self.hard_expired = False
        self.soft_expired = False
        self._fired: list[tuple[bool, LimitKind]] = []
        self._byte_mark = self._packet_mark = _NEVER_COUNT
        self._hard_deadline = self._soft_deadline = _NEVER_TIME
        if not no_limits:
            self._update_deadlines()
            # A limit of 0 is already reached before the first packet.
            self._check_counters()

    # -- per packet ----------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """May a packet pass at ``now``? False once hard-expired (by any limit)."""
        if now >= self._hard_deadline:
            self._check_time(now)
        return not self.hard_expired

    def account(self, nbytes: int, now: float) -> None:
        """Count one packet of ``nbytes``; the first one starts the use-time clock."""
        if self.use_time is None:
            self._start_use(now)
        self.bytes += nbytes
        self.packets += 1
        if self.bytes >= self._byte_mark or self.packets >= self._packet_mark:
            self._check_counters()

    def batch(self) -> BatchCount:
        """The counting of a batch that starts now (call ``allow`` first)."""
        cfg = self.cfg
        soft_bytes, soft_packets = (
            (XFRM_INF, XFRM_INF)
            if self.soft_expired
            else (cfg.soft_byte_limit, cfg.soft_packet_limit)
        )
        return BatchCount(
            self.bytes,
            self.packets,
            soft_bytes,
            soft_packets,
            cfg.hard_byte_limit,
            cfg.hard_packet_limit,
        )

    def end_batch(self, run: BatchCount, now: float) -> None:
        """Take over what a batch counted at ``now``: counters, use time, fired limits."""
        if run.packets != self.packets and self.use_time is None:
            self._start_use(now)
        self.bytes = run.bytes
        self.packets = run.packets
        if run.soft_at >= 0:
            self._fire(False, run.soft_kind)
        if run.hard_at >= 0:
            self._fire(True, run.hard_kind)

    # -- housekeeping --------------------------------------------------------------

    @property
    def next_deadline(self) -> float | None:
        """When a time limit fires next, or None (none left, or only a use-time limit
        whose clock has not started: the first packet starts it, and moves this)."""
        deadline = min(self._hard_deadline, self._soft_deadline)
        return None if deadline == _NEVER_TIME else deadline

    @property
    def waits_for_use(self) -> bool:
        """Has a use-time limit whose clock the first packet has yet to start?"""
        cfg = self.cfg
        return self.use_time is None and bool(
            cfg.soft_use_expires_seconds or cfg.hard_use_expires_seconds
        )

    def poll(self, now: float) -> list[tuple[bool, LimitKind]]:
        """Limits fired since the last poll, as (hard, kind); also checks time limits at ``now``."""
        self._check_time(now)
        if not self._fired:
            return []
        fired = self._fired
        self._fired = []
        return fired

    def _start_use(self, now: float) -> None:
        self.use_time = now
        self._update_deadlines()
        if self.on_first_use is not None:
            self.on_first_use()

    def _fire(self, hard: bool, kind: LimitKind) -> None:
        if hard:
            self.hard_expired = True
            # No soft event after a hard one.
            self.soft_expired = True
        else:
            self.soft_expired = True
        self._fired.append((hard, kind))
        self._update_marks()
        self._update_deadlines()

    def _update_marks(self) -> None:
        """The next byte/packet counts at which something fires."""
        cfg = self.cfg
        if self.hard_expired:
            self._byte_mark = self._packet_mark = _NEVER_COUNT
        elif self.soft_expired:
            self._byte_mark = _count_limit(cfg.hard_byte_limit)
            self._packet_mark = _count_limit(cfg.hard_packet_limit)
        else:
            self._byte_mark = min(
                _count_limit(cfg.soft_byte_limit), _count_limit(cfg.hard_byte_limit)
            )
            self._packet_mark = min(
                _count_limit(cfg.soft_packet_limit), _count_limit(cfg.hard_packet_limit)
            )

    def _deadline(self, add_seconds: int, use_seconds: int) -> tuple[float, LimitKind]:
        add = self.add_time + add_seconds if add_seconds else _NEVER_TIME
        use = (
            self.use_time + use_seconds
            if use_seconds and self.use_time is not None
            else _NEVER_TIME
        )
        return (add, LimitKind.ADD_TIME) if add <= use else (use, LimitKind.USE_TIME)

    def _update_deadlines(self) -> None:
        cfg = self.cfg
        if self.hard_expired:
            self._hard_deadline = self._soft_deadline = _NEVER_TIME
            return
        self._hard_deadline = self._deadline(
            cfg.hard_add_expires_seconds, cfg.hard_use_expires_seconds
        )[0]
        self._soft_deadline = (
            _NEVER_TIME
            if self.soft_expired
            else self._deadline(cfg.soft_add_expires_seconds, cfg.soft_use_expires_seconds)[0]
        )

    def _check_counters(self) -> None:
        cfg = self.cfg
        if not self.hard_expired:
            if self.bytes >= _count_limit(cfg.hard_byte_limit):
                self._fire(True, LimitKind.BYTES)
            elif self.packets >= _count_limit(cfg.hard_packet_limit):
                self._fire(True, LimitKind.PACKETS)
        if not self.soft_expired:
            if self.bytes >= _count_limit(cfg.soft_byte_limit):
                self._fire(False, LimitKind.BYTES)
            elif self.packets >= _count_limit(cfg.soft_packet_limit):
                self._fire(False, LimitKind.PACKETS)
        self._update_marks()

    def _check_time(self, now: float) -> None:
        cfg = self.cfg
        if not self.hard_expired and now >= self._hard_deadline:
            _, kind = self._deadline(cfg.hard_add_expires_seconds, cfg.hard_use_expires_seconds)
            self._fire(True, kind)
        if not self.soft_expired and now >= self._soft_deadline:
            _, kind = self._deadline(cfg.soft_add_expires_seconds, cfg.soft_use_expires_seconds)
            self._fire(False, kind)

    def __repr__(self) -> str:
        return (
            f"Lifetime(bytes={self.bytes}, packets={self.packets}, add_time={self.add_time}, "
            f"use_time={self.use_time}, soft_expired={self.soft_expired}, "
            f"hard_expired={self.hard_expired})"
        )

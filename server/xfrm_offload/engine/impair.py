"""Wire impairments in tc-netem's vocabulary, sans-I/O and seeded.

An ``Impairment`` sits on one direction of a wire (what one device transmits). Batches
go in with ``push(items, now)``; ``pop_due(now)`` returns what leaves the wire by
``now``, in the order it leaves; ``next_due()`` says when the next packet is due. The
random choices come from one ``random.Random(seed)``, drawn in a fixed order per packet,
so the same seed and the same input give the same output packet for packet.

Per packet, in the order netem_enqueue takes its decisions (net/sched/sch_netem.c):

1. **duplicate** PERCENT: the packet will be sent twice. The copy then goes through
   loss, corruption and scheduling on its own, without being duplicated again (netem
   re-enqueues its clone with duplication off).
2. **loss**: ``loss`` PERCENT drops independently (netem ``loss random``); bursts use
   netem's Gilbert-Elliott model (``loss gemodel p r 1-h 1-k``): in the Good state a
   packet is lost with probability 1-k, in the Bad state with 1-h; before each
   decision the state moves Good->Bad with probability p and Bad->Good with r, and the
   loss is drawn with the probability of the state the packet found (netem's
   loss_gilb_ell). Omitted: r = 100 - p (a memoryless chain), 1-h = 100, 1-k = 0.
3. **corrupt** PERCENT: one bit flipped at a random position of the packet (netem
   flips one bit of one random byte of the linear data).
4. **scheduling**: with **reorder** PERCENT (and **gap** N, default 1) one packet in N
   may skip the delay and leave at once, ahead of the delayed ones; the others wait
   **delay** +- **jitter** (uniform, as netem without a distribution table) and, with a
   **rate** (bits per second), queue behind the previous packet for their own
   transmission time (length x 8 / rate). Jitter alone may reorder too (netem sorts
   its queue by departure time); only the reorder decisions are counted as reordered.

A packet that finds ``limit`` packets waiting is dropped (netem's queue limit).
Reordering needs a delay, as tc says ("reordering not possible without specifying
some delay"). Counters: packets offered, dropped, duplicated, corrupted, reordered,
sent (what left the wire so far).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import InvalidArgument

K = TypeVar("K")

#: The most packets a wire may hold waiting: bounds what a long delay can pin in memory
#: (about 150 MB of 1500-byte packets).
MAX_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """netem's ``loss gemodel p [r [1-h [1-k]]]``, percentages."""

    p: float
    r: float | None = None
    bad_loss: float = 100.0  # 1-h
    good_loss: float = 0.0  # 1-k


@dataclass(frozen=True, slots=True)
class ImpairmentConfig:
    """One direction's impairments. Percentages 0-100; times in seconds."""

    loss: float = 0.0
    loss_burst: GilbertElliott | None = None
    duplicate: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    gap: int = 0
    delay: float = 0.0
    jitter: float = 0.0
    rate: int = 0
    seed: int = 0
    #: Packets that may wait on the wire (netem's limit, 1000 by default); more are dropped.
    limit: int = 1000

    @property
    def active(self) -> bool:
        """Does this change anything on the wire?"""
        return bool(
            self.loss
            or self.loss_burst is not None
            or self.duplicate
            or self.corrupt
            or self.reorder
            or self.delay
            or self.jitter
            or self.rate
        )

    def validate(self) -> None:
        """The refusals tc makes (and the ranges it takes), naming the field."""
        percents = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
            ("reorder", self.reorder),
        ]
        if self.loss_burst is not None:
            ge = self.loss_burst
            percents += [
                ("loss_burst.p", ge.p),
                ("loss_burst.r", 0.0 if ge.r is None else ge.r),
                ("loss_burst.bad_loss", ge.bad_loss),
                ("loss_burst.good_loss", ge.good_loss),
            ]
            if self.loss:
                raise InvalidArgument(
                    "loss and loss_burst are two loss models: give one", field="loss_burst"
                )
        for name, value in percents:
            if not 0.0 <= value <= 100.0:
                raise InvalidArgument(f"{name} must be a percentage 0-100", field=name)
        for name, seconds in (("delay", self.delay), ("jitter", self.jitter)):
            if not 0.0 <= seconds <= 3600.0:
                raise InvalidArgument(f"{name} must be 0 to 3600 seconds", field=name)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be 1 to {MAX_LIMIT} packets", field="limit")
        if self.rate < 0:
            raise InvalidArgument("rate must not be negative", field="rate")
        if self.gap < 0:
            raise InvalidArgument("gap must not be negative", field="gap")
        if self.gap and not self.reorder:
            raise InvalidArgument("gap needs reorder", field="gap")
        if self.reorder and not self.delay:
            raise InvalidArgument(
                "reordering not possible without specifying some delay", field="reorder"
            )


@dataclass(slots=True)
class ImpairmentCounters:
    """What one direction's impairment did so far."""

    packets: int = 0
    dropped: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    sent: int = 0


class Impairment(Generic[K]):
    """One direction of a wire with impairments: items (key, packet) in, out when due."""

    def __init__(self, config: ImpairmentConfig) -> None:
        config.validate()
        self.config = config
        self.counters = ImpairmentCounters()
        self._rng = random.Random(config.seed)
        self._bad = False  # Gilbert-Elliott state
        self._counter = 0  # packets since the last reordered one (netem q->counter)
        self._gap = config.gap or (1 if config.reorder else 0)
        #: (departure, sequence, key, packet): a heap, earliest first, FIFO on ties.
        self._queue: list[tuple[float, int, K, bytes]] = []
        self._seq = 0
        #: Departure of the last delayed packet (the rate queue's tail).
        self._tail = float("-inf")

    # -- in ----------------------------------------------------------------------------

    def push(self, items: Sequence[tuple[K, bytes]], now: float) -> None:
        """Put a batch on the wire at ``now``."""
        for key, packet in items:
            self.counters.packets += 1
            copies = 1
            if self.config.duplicate and self._chance(self.config.duplicate):
                copies = 2
                self.counters.duplicated += 1
            self._one(key, packet, now)
            if copies == 2:
                self._one(key, packet, now)

    def _chance(self, percent: float) -> bool:
        return self._rng.random() * 100.0 < percent

    def _lost(self) -> bool:
        ge = self.config.loss_burst
        if ge is None:
            return bool(self.config.loss) and self._chance(self.config.loss)
        r = 100.0 - ge.p if ge.r is None else ge.r
        if self._bad:
            if self._chance(r):
                self._bad = False
            return self._chance(ge.bad_loss)
        if self._chance(ge.p):
            self._bad = True
        return self._chance(ge.good_loss)

    def _one(self, key: K, packet: bytes, now: float) -> None:
        cfg = self.config
        if self._lost():
            self.counters.dropped += 1
            return
        if cfg.corrupt and packet and self._chance(cfg.corrupt):
            flipped = bytearray(packet)
            flipped[self._rng.randrange(len(packet))] ^= 1 << self._rng.randrange(8)
            packet = bytes(flipped)
            self.counters.corrupted += 1
        if self._gap and self._counter >= self._gap - 1 and self._chance(cfg.reorder):
            self._counter = 0
            self.counters.reordered += 1
            # netem puts it at the head of the queue: before anything delayed
            self._enqueue(now, key, packet)
            return
        delay = cfg.delay
        if cfg.jitter:
            delay += (self._rng.random() * 2.0 - 1.0) * cfg.jitter
        delay = max(delay, 0.0)
        if self._gap:
            self._counter += 1
        departure = now + delay
        if cfg.rate:
            if self._queue and self._tail > now:
                departure = max(departure, self._tail)
            departure += len(packet) * 8 / cfg.rate
        if cfg.rate or cfg.delay or cfg.jitter:
            self._tail = max(self._tail, departure)
        self._enqueue(departure, key, packet)

    def _enqueue(self, departure: float, key: K, packet: bytes) -> None:
        if len(self._queue) >= self.config.limit:  # netem's qdisc_drop on a full queue
            self.counters.dropped += 1
            return
        self._seq += 1
        heapq.heappush(self._queue, (departure, self._seq, key, packet))

    # -- out ---------------------------------------------------------------------------

    def pop_due(self, now: float) -> list[tuple[K, bytes]]:
        """What has left the wire by ``now``, in departure order."""
        out: list[tuple[K, bytes]] = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, key, packet = heapq.heappop(queue)
            out.append((key, packet))
        self.counters.sent += len(out)
        return out

    def next_due(self) -> float | None:
        """When the next packet leaves; None when nothing waits."""
        return self._queue[0][0] if self._queue else None

    def __len__(self) -> int:
        """Packets waiting."""
        return len(self._queue)

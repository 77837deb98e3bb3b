"""The time limits of many SAs, earliest first: what a device's ``get_timer`` answers.

A lazy heap of (deadline, handle). A lifetime's deadline only moves later (a soft limit
fired, the SA was deleted) except in one case: the first packet starts a use-time clock,
which can bring the deadline forward; such a lifetime tells the queue so (its
``on_first_use``), and is rescheduled at the next query. Every entry is checked against
its lifetime only when it reaches the top, so a query costs O(log n) however many SAs
have limits.
Entries of SAs that are gone are dropped when they surface, and the heap is rebuilt
when they outnumber the scheduled ones (add/delete churn with long lifetimes must not grow it).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable

from .lifetime import Lifetime

#: The lifetime of a handle that still has limits to fire, or None if it is gone.
Live = Callable[[int], Lifetime | None]


class TimerQueue:
    """Next deadlines of the lifetimes ``add``-ed to it (see module doc)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        #: handle -> the deadline it has in the heap (other heap entries for it are stale).
        self._at: dict[int, float] = {}
        #: Handles whose use-time clock started since the last query.
        self._started_now: list[int] = []

    def add(self, handle: int, lifetime: Lifetime) -> None:
        """(Re)schedule ``handle`` at its lifetime's next deadline."""
        if lifetime.waits_for_use and lifetime.on_first_use is None:
            lifetime.on_first_use = functools.partial(self._started_now.append, handle)
        deadline = lifetime.next_deadline
        if deadline is None or self._at.get(handle) == deadline:
            return
        self._at[handle] = deadline
        heapq.heappush(self._heap, (deadline, handle))
        if len(self._heap) > 64 + 2 * len(self._at):
            self._heap = [(at, h) for h, at in self._at.items()]
            heapq.heapify(self._heap)

    def discard(self, handle: int) -> None:
        """Forget ``handle`` (its SA is freed); its heap entry goes stale."""
        self._at.pop(handle, None)

    def _started(self, live: Live) -> None:
        started = list(self._started_now)
        self._started_now.clear()  # the same list: the lifetimes hold its append
        for handle in started:
            lifetime = live(handle)
            if lifetime is not None:
                self.add(handle, lifetime)

    def next(self, live: Live) -> float | None:
        """The earliest deadline of a live lifetime, or None."""
        self._started(live)
        heap = self._heap
        while heap:
            deadline, handle = heap[0]
            if self._at.get(handle) == deadline:
                lifetime = live(handle)
                if lifetime is not None and lifetime.next_deadline == deadline:
                    return deadline
                del self._at[handle]
                heapq.heappop(heap)
                if lifetime is not None:
                    self.add(handle, lifetime)  # moved later
                continue
            heapq.heappop(heap)  # stale: the handle was rescheduled
        return None

    def due(self, now: float, live: Live) -> list[int]:
        """Take the handles whose deadline is reached at ``now`` (``add`` them back after)."""
        self._started(live)
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            deadline, handle = heapq.heappop(heap)
            if self._at.get(handle) == deadline:
                del self._at[handle]
                if live(handle) is not None:
                    due.append(handle)
        return due

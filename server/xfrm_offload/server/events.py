"""Fan-out of NIC events to WatchEvents subscribers: ordered, bounded, never silently lossy.

Each subscriber has its own bounded queue. A subscriber that falls behind does
not slow the NIC down or grow memory: events that do not fit are counted, and
the subscriber receives one LOST marker with that count before the next event
it does get.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from xfrm_offload.v1 import offload_pb2 as pb

#: Events a subscriber may have waiting before new ones are counted as lost.
DEFAULT_QUEUE_LIMIT = 4096

EventFilter = Callable[[pb.WatchEventsResponse], bool]
T = TypeVar("T")


class Feed(Generic[T]):
    """A bounded, ordered queue behind one server stream, never silently lossy.

    What does not fit (``limit`` items waiting) is counted, not queued, and the
    stream later receives one marker with that count exactly where the gap is:
    after what was queued before it, before the first item queued after it (or at
    once, when nothing follows). The producer never waits and memory stays bounded.
    """

    def __init__(self, limit: int, lost_marker: Callable[[int], T]) -> None:
        self.limit = limit
        self.lost_marker = lost_marker
        self.queue: collections.deque[T] = collections.deque()
        self.lost = 0
        self.closed = False
        #: Items (and LOST markers) handed to the stream so far.
        self.sent = 0
        self._wakeup = asyncio.Event()

    def offer(self, item: T, weight: int = 1) -> None:
        """Queue ``item``; if the stream is too far behind, count ``weight`` as lost."""
        if len(self.queue) >= self.limit:
            self.lost += weight
        else:
            if self.lost:
                self.queue.append(self._take_lost())
            self.queue.append(item)
        self._wakeup.set()

    def _take_lost(self) -> T:
        lost, self.lost = self.lost, 0
        return self.lost_marker(lost)

    def close(self) -> None:
        """End the stream once what is queued has been sent."""
        self.closed = True
        self._wakeup.set()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            if self.queue:
                self.sent += 1
                yield self.queue.popleft()
                continue
            if self.lost:
                self.sent += 1
                yield self._take_lost()
                continue
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()


def _lost_event(count: int) -> pb.WatchEventsResponse:
    return pb.WatchEventsResponse(kind=pb.EVENT_KIND_LOST, lost=pb.LostEvent(count=count))


class Subscription(Feed[pb.WatchEventsResponse]):
    """One WatchEvents stream: the events its filter accepts, with LOST markers."""

    def __init__(self, accept: EventFilter, limit: int) -> None:
        super().__init__(limit, _lost_event)
        self.accept = accept

    def offer(self, item: pb.WatchEventsResponse, weight: int = 1) -> None:
        if self.accept(item):
            super().offer(item, weight)


class EventHub:
    """Numbers events, stamps them and hands them to every subscriber."""

    def __init__(self, clock: Callable[[], float], limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self._clock = clock
        self._limit = limit
        self._seq = 0
        self._subs: set[Subscription] = set()

    @property
    def queue_limit(self) -> int:
        """Events a new subscriber may have waiting before further ones count as lost."""
        return self._limit

    @queue_limit.setter
    def queue_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("queue_limit must be at least 1")
        self._limit = limit

    @property
    def subscriptions(self) -> frozenset[Subscription]:
        """The open WatchEvents streams' queues."""
        return frozenset(self._subs)

    @property
    def subscriber_count(self) -> int:
        """Open WatchEvents streams (tests wait on it before producing events)."""
        return len(self._subs)

    def subscribe(self, accept: EventFilter = lambda _e: True) -> Subscription:
        sub = Subscription(accept, self._limit)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def publish(self, event: pb.WatchEventsResponse) -> None:
        self._seq += 1
        event.seq = self._seq
        if not event.time:
            event.time = self._clock()
        for sub in self._subs:
            sub.offer(event)

    def close(self) -> None:
        """End every subscription cleanly (server shutdown)."""
        for sub in self._subs:
            sub.close()
        self._subs.clear()

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

from xfrm_offload.v1 import offload_pb2 as pb

#: Events a subscriber may have waiting before new ones are counted as lost.
DEFAULT_QUEUE_LIMIT = 4096

EventFilter = Callable[[pb.WatchEventsResponse], bool]


class Subscription:
    """One WatchEvents stream's queue."""

    def __init__(self, accept: EventFilter, limit: int) -> None:
        self.accept = accept
        self.limit = limit
        self.queue: collections.deque[pb.WatchEventsResponse] = collections.deque()
        self.lost = 0
        self.closed = False
        self._wakeup = asyncio.Event()

    def offer(self, event: pb.WatchEventsResponse) -> None:
        if not self.accept(event):
            return
        if len(self.queue) >= self.limit:
            self.lost += 1
        else:
            if self.lost:
                # The marker goes where the gap is: after the events queued before it,
                # before the first one after it.
                self.queue.append(self._lost_marker())
            self.queue.append(event)
        self._wakeup.set()

    def _lost_marker(self) -> pb.WatchEventsResponse:
        lost, self.lost = self.lost, 0
        return pb.WatchEventsResponse(kind=pb.EVENT_KIND_LOST, lost=pb.LostEvent(count=lost))

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def __aiter__(self) -> AsyncIterator[pb.WatchEventsResponse]:
        while True:
            if self.queue:
                yield self.queue.popleft()
                continue
            if self.lost:
                # Lost events and nothing since: say so now rather than at the next event.
                yield self._lost_marker()
                continue
            if self.closed:
                return
            self._wakeup.clear()
            await self._wakeup.wait()


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

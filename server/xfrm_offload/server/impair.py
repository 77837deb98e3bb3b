"""Wire impairments in the server: one engine ``Impairment`` per impaired device's wire,
and the task that puts its packets on the wire when they are due.

What an impaired device transmits goes into its impairment instead of straight to its
wire; one delivery task per impaired device takes out what is due, in departure order,
and hands it on (to the PORT_WIRE taps, then through the cable or, for a device attached
to a real link, onto that link: realif.py), so the taps and the peer see the impaired
stream: losses missing, duplicates twice, corruptions flipped, reordered and delayed
packets when they leave. The sending stream does not wait for
delayed packets (a wire with a delay does not hold its sender back); the queue is
bounded by the impairment's limit.

On a virtual clock, delayed packets leave once the clock has been advanced past their
departure (the task looks every few milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from xfrm_offload.engine.impair import Impairment, ImpairmentConfig

from .clock import Clock

log = logging.getLogger(__name__)

#: How often a delivery task looks at a virtual clock while packets wait.
VIRTUAL_CLOCK_POLL = 0.005

Items = list[tuple[int, bytes]]
OnWire = Callable[[str, Items], Awaitable[None]]


class _Wire:
    """One impaired device: its impairment and its delivery task."""

    def __init__(self, config: ImpairmentConfig) -> None:
        self.impairment: Impairment[int] = Impairment(config)
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class WireImpairments:
    """The impairments of every device's wire, keyed by the transmitting device."""

    def __init__(self, clock: Clock, on_wire: OnWire) -> None:
        self.clock = clock
        self.on_wire = on_wire
        self._wires: dict[str, _Wire] = {}

    def get(self, dev: str) -> Impairment[int] | None:
        wire = self._wires.get(dev)
        return None if wire is None else wire.impairment

    def impaired(self, dev: str) -> bool:
        return dev in self._wires

    async def set(self, dev: str, config: ImpairmentConfig) -> None:
        """Replace ``dev``'s impairment (validated first); an inactive config removes it.
        Packets still waiting in the old one leave at once."""
        wire = None
        if config.active:
            wire = _Wire(config)  # raises on a bad config, before anything changes
        old = self._wires.pop(dev, None)
        if old is not None:
            await self._stop(dev, old)
        if wire is not None:
            self._wires[dev] = wire
            wire.task = asyncio.get_running_loop().create_task(self._deliver(dev, wire))

    def push(self, dev: str, items: Items) -> None:
        """What ``dev`` transmitted, into its impairment."""
        wire = self._wires[dev]
        wire.impairment.push(items, self.clock.now())
        wire.wakeup.set()

    async def _deliver(self, dev: str, wire: _Wire) -> None:
        impairment = wire.impairment
        while True:
            due = impairment.next_due()
            if due is None:
                wire.wakeup.clear()
                await wire.wakeup.wait()
                continue
            wait = due - self.clock.now()
            if wait > 0:
                if self.clock.virtual:
                    wait = VIRTUAL_CLOCK_POLL
                wire.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wire.wakeup.wait(), wait)
                continue
            items = impairment.pop_due(self.clock.now())
            try:
                await self.on_wire(dev, items)
            except Exception:  # a peer that refuses must not end the wire for good
                log.exception("delivering impaired packets of %s failed", dev)

    async def _stop(self, dev: str, wire: _Wire) -> None:
        """End a replaced impairment: its task stops, what waits leaves now."""
        if wire.task is not None:
            wire.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wire.task
        rest = wire.impairment.pop_due(float("inf"))
        if rest:
            await self.on_wire(dev, rest)

    def close(self) -> None:
        """Stop every delivery task (server shutdown); waiting packets are dropped."""
        wires, self._wires = self._wires, {}
        for wire in wires.values():
            if wire.task is not None:
                wire.task.cancel()

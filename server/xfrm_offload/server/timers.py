"""One event-loop timer for the time limits of every device.

Each device answers ``get_timer()`` (its next deadline, or None) and the host reports
that answer after every call it runs on the device (with workers: in the call's
reply), so this module always knows each device's next deadline without asking.
``DeadlineTimer`` keeps one ``loop.call_later`` armed at the earliest of them, moved
whenever a report changes it; at that instant it runs ``handle_timer(now)`` on the
devices that are due, whose replies report their following deadlines. An idle server
(no time limit pending) has no timer at all.

On the virtual clock nothing is armed: AdvanceClock moves the clock and then calls
``fire_due`` itself, which runs the same device calls at the new ``now``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from xfrm_offload.engine.datapath import DevicePath
from xfrm_offload.engine.device import Device

from .clock import Clock

log = logging.getLogger("xfrm_offload.server")

#: Rounds of handle_timer one fire_due runs at most (a bound, should a device keep
#: reporting a deadline that has passed).
MAX_PASSES = 4
#: Runs ``handle_timer`` at ``now`` on one device, where it lives.
Fire = Callable[[str, float], Awaitable[None]]


def handle_timer(device: Device, path: DevicePath, now: float) -> None:
    """The device call (see ``ops``): fire the time limits reached at ``now``."""
    device.handle_timer(now)


class DeadlineTimer:
    """The earliest deadline of all devices, armed as one loop timer (see module doc)."""

    def __init__(self, clock: Clock, fire: Fire) -> None:
        self.clock = clock
        self.fire = fire
        #: Device -> its next deadline (devices without one are absent).
        self.deadlines: dict[str, float] = {}
        #: Devices whose handle_timer is running: their old deadline must not re-arm.
        self.firing: set[str] = set()
        #: The deadline the loop timer is armed for; None: no timer.
        self.armed: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    def start(self) -> None:
        self._running = True
        self._rearm()

    def stop(self) -> None:
        self._running = False
        self._rearm()
        for task in self._tasks:
            task.cancel()

    def update(self, dev: str, deadline: float | None) -> None:
        """``dev``'s next deadline, as its latest reply reported it."""
        if deadline is None:
            self.deadlines.pop(dev, None)
        else:
            self.deadlines[dev] = deadline
        self._rearm()

    def _rearm(self) -> None:
        pending = [at for dev, at in self.deadlines.items() if dev not in self.firing]
        earliest = min(pending) if pending and self._running and not self.clock.virtual else None
        if earliest == self.armed:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed = earliest
        if earliest is not None:
            delay = max(0.0, earliest - self.clock.now())
            self._handle = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._handle = None
        self.armed = None
        task = asyncio.get_running_loop().create_task(self.fire_due())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def fire_due(self) -> None:
        """Run ``handle_timer`` at the clock's now on every device that is due, again while
        some are (the clock moved on meanwhile), then arm the timer for what is next."""
        for _ in range(MAX_PASSES):
            now = self.clock.now()
            due = [
                dev for dev, at in self.deadlines.items() if at <= now and dev not in self.firing
            ]
            if not due:
                break
            self.firing.update(due)
            try:
                results = await asyncio.gather(
                    *(self.fire(dev, now) for dev in due), return_exceptions=True
                )
            finally:
                self.firing.difference_update(due)
            for dev, result in zip(due, results, strict=True):
                if isinstance(result, BaseException):
                    # Not retried at once (that would spin): the device's next reply
                    # reports its deadline again.
                    self.deadlines.pop(dev, None)
                    log.warning(
                        "time limits not handled",
                        extra={
                            "fields": {"dev": dev, "error": f"{type(result).__name__}: {result}"}
                        },
                    )
        # Woken a little early (the loop's clock is not the wall clock): still due, so
        # armed again; otherwise at the following deadline.
        self._rearm()

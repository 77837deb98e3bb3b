"""The server's clock: wall time, or a virtual clock a test moves with AdvanceClock.

The engine never reads a clock; the server reads one of these and passes ``now``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch."""

    virtual: bool

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time."""

    virtual = False

    def now(self) -> float:
        return time.time()


class VirtualClock:
    """Starts at the wall time of its creation and moves only when told to."""

    virtual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if not seconds > 0:
            raise ValueError("seconds must be > 0")
        self._now += seconds
        return self._now

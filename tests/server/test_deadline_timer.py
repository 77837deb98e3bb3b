"""DeadlineTimer, the server's one loop timer for every device's next deadline."""

from __future__ import annotations

import asyncio
import logging

import pytest

from xfrm_offload.server.clock import SystemClock, VirtualClock
from xfrm_offload.server.timers import DeadlineTimer


async def test_armed_at_the_earliest_deadline_and_fired_there() -> None:
    clock = SystemClock()
    fired: list[tuple[str, float]] = []
    done = asyncio.Event()

    async def fire(dev: str, now: float) -> None:
        fired.append((dev, now))
        timer.update(dev, None)  # the device's reply: nothing more pending
        done.set()

    timer = DeadlineTimer(clock, fire)
    timer.start()
    soon = clock.now() + 0.05
    timer.update("b", soon + 3600)
    timer.update("a", soon)
    assert timer.armed == soon
    await asyncio.wait_for(done.wait(), 10)
    assert [dev for dev, _ in fired] == ["a"]
    assert fired[0][1] >= soon
    assert timer.armed == soon + 3600  # the next one
    timer.update("b", None)
    assert timer.armed is None
    timer.stop()


async def test_a_failing_device_is_dropped_not_retried_in_a_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock(1000.0)
    calls: list[str] = []

    async def fire(dev: str, now: float) -> None:
        calls.append(dev)
        raise RuntimeError("worker gone")

    timer = DeadlineTimer(clock, fire)
    timer.start()
    timer.update("a", 1010.0)
    timer.update("b", 1020.0)
    assert timer.armed is None  # a virtual clock arms no loop timer
    clock.advance(10)
    with caplog.at_level(logging.WARNING):
        await timer.fire_due()
    assert calls == ["a"]
    assert timer.deadlines == {"b": 1020.0}  # "a" waits for its next reply
    (record,) = caplog.records
    assert (record.getMessage(), record.exc_info) == ("time limits not handled", None)
    timer.stop()


async def test_stopped_arms_nothing() -> None:
    async def fire(dev: str, now: float) -> None:
        raise AssertionError("fired after stop")

    timer = DeadlineTimer(SystemClock(), fire)
    timer.update("a", 0.0)  # not started yet
    assert timer.armed is None
    timer.start()
    timer.stop()
    assert timer.armed is None
    await asyncio.sleep(0)

"""The device's sans-I/O timer (get_timer / handle_timer): the next time-limit deadline,
exactly, and the limits fired at it."""

from __future__ import annotations

from xfrm_offload.engine.events import (
    Expired,
    LimitKind,
    SAId,
    StateEvent,
)
from xfrm_offload.engine.timers import TimerQueue
from xfrm_offload.engine.types import LifetimeConfig

from .test_device import LOCAL, PEER, _fill, device, sa

SA_ID = SAId(PEER, 9, 50, LOCAL)
F_PKT = 4


def test_no_time_limit_no_timer() -> None:
    dev = device("full")
    assert dev.get_timer() is None
    dev.state_add(sa(lifetime=LifetimeConfig(hard_packet_limit=10)), 0, 100.0)
    assert dev.get_timer() is None


def test_soft_then_hard_add_limit_each_at_its_instant() -> None:
    dev = device("full")
    lft = LifetimeConfig(soft_add_expires_seconds=30, hard_add_expires_seconds=60)
    handle = dev.state_add(sa(lifetime=lft), 0, 100.0).handle
    dev.pop_events()
    assert dev.get_timer() == 130.0
    dev.handle_timer(129.999)
    assert dev.pop_events() == []
    assert dev.get_timer() == 130.0
    dev.handle_timer(130.0)
    assert dev.pop_events() == [
        StateEvent("eth0", handle, Expired(SA_ID, hard=False, kind=LimitKind.ADD_TIME))
    ]
    assert dev.get_timer() == 160.0
    dev.handle_timer(160.0)
    assert dev.pop_events() == [
        StateEvent("eth0", handle, Expired(SA_ID, hard=True, kind=LimitKind.ADD_TIME))
    ]
    assert dev.get_timer() is None


def test_a_late_timer_fires_both_limits_once() -> None:
    dev = device("full")
    lft = LifetimeConfig(soft_add_expires_seconds=30, hard_add_expires_seconds=60)
    handle = dev.state_add(sa(lifetime=lft), 0, 100.0).handle
    dev.pop_events()
    dev.handle_timer(500.0)
    assert dev.pop_events() == [
        StateEvent("eth0", handle, Expired(SA_ID, hard=True, kind=LimitKind.ADD_TIME))
    ]
    dev.handle_timer(600.0)
    assert dev.pop_events() == []
    assert dev.get_timer() is None


def test_deleted_and_freed_states_leave_the_timer() -> None:
    dev = device("full")
    lft = LifetimeConfig(hard_add_expires_seconds=10)
    a = dev.state_add(sa(lifetime=lft), 0, 100.0).handle
    b = dev.state_add(sa(spi=10, lifetime=LifetimeConfig(hard_add_expires_seconds=20)), 0, 100.0)
    assert dev.get_timer() == 110.0
    dev.state_delete(a)
    assert dev.get_timer() == 120.0
    dev.state_delete(b.handle)
    dev.state_free(b.handle)
    assert dev.get_timer() is None
    dev.pop_events()
    dev.handle_timer(200.0)
    assert dev.pop_events() == []


def test_first_packet_brings_a_use_time_deadline_forward() -> None:
    dev = device("mlx5")
    lft = LifetimeConfig(hard_add_expires_seconds=100, hard_use_expires_seconds=10)
    handle = dev.state_add(sa(lifetime=lft), F_PKT, 0.0).handle
    assert dev.get_timer() == 100.0
    entry = dev.get_state(handle)
    entry.sa.encap_batch([_fill(100)], 3.0)
    assert dev.get_timer() == 13.0
    dev.pop_events()
    dev.handle_timer(13.0)
    assert dev.pop_events() == [
        StateEvent("eth0", handle, Expired(SA_ID, hard=True, kind=LimitKind.USE_TIME))
    ]
    assert dev.get_timer() is None


def test_churn_does_not_grow_the_queue() -> None:
    dev = device("full")
    lft = LifetimeConfig(hard_add_expires_seconds=3600)
    for spi in range(1, 5001):
        handle = dev.state_add(sa(spi=spi, lifetime=lft), 0, float(spi)).handle
        dev.state_delete(handle)
        dev.state_free(handle)
        dev.pop_events()
    queue: TimerQueue = dev._timers
    assert len(queue._heap) <= 64 + 2  # rebuilt from the live entries (none)
    assert dev.get_timer() is None

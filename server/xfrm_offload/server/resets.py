"""What the devices of a worker hold, as the gRPC process knows it: what a restart deletes.

A worker that dies takes its devices' tables with it, and its replacement starts them
empty: to the host that is a NIC reset, and the host must hear of it as the kernel
would tell it of a link that went down (NETDEV_DOWN): LINK down, then the deletion of
every state and policy the device held, and LINK up once the device is back, so a
keymanager that watches events re-adds what it had.

The gRPC process cannot ask a dead worker what it held, so every reply of a worker
carries the table changes the call made (the device's add, delete and link events,
whether or not anyone watches), and ``Ledger`` keeps the live objects from them.
"""

from __future__ import annotations

from collections.abc import Iterable

from xfrm_offload.engine.device import (
    DeleteReason,
    LinkChanged,
    PolicyAdded,
    PolicyDeleted,
    StateAdded,
    StateDeleted,
)
from xfrm_offload.engine.events import Event

#: The events that change what a device holds (what a worker's reply carries).
TABLE_EVENTS = (StateAdded, StateDeleted, PolicyAdded, PolicyDeleted, LinkChanged)


def table_changes(events: Iterable[Event]) -> list[Event]:
    return [event for event in events if isinstance(event, TABLE_EVENTS)]


class Ledger:
    """The active states and policies, and the link, of devices whose tables live elsewhere."""

    def __init__(self) -> None:
        self.states: dict[str, dict[int, StateAdded]] = {}
        self.policies: dict[str, dict[int, PolicyAdded]] = {}
        self.down: set[str] = set()

    def apply(self, changes: Iterable[Event]) -> None:
        for event in changes:
            if isinstance(event, StateAdded):
                self.states.setdefault(event.dev, {})[event.handle] = event
            elif isinstance(event, StateDeleted):
                self.states.get(event.dev, {}).pop(event.handle, None)
            elif isinstance(event, PolicyAdded):
                self.policies.setdefault(event.dev, {})[event.handle] = event
            elif isinstance(event, PolicyDeleted):
                self.policies.get(event.dev, {}).pop(event.handle, None)
            elif isinstance(event, LinkChanged):
                if event.up:
                    self.down.discard(event.dev)
                else:
                    self.down.add(event.dev)

    def reset(self, dev: str) -> list[Event]:
        """``dev`` lost its tables: the events of its link going down (and forget them)."""
        events: list[Event] = []
        if dev not in self.down:
            events.append(LinkChanged(dev, False))
        reason = DeleteReason.LINK_DOWN
        for s in self.states.pop(dev, {}).values():
            events.append(StateDeleted(dev, s.handle, s.sa, reason))
        for p in self.policies.pop(dev, {}).values():
            events.append(PolicyDeleted(dev, p.handle, p.index, p.dir, reason))
        self.down.add(dev)
        return events

    def back(self, dev: str) -> list[Event]:
        """``dev`` is back, empty and up."""
        self.down.discard(dev)
        return [LinkChanged(dev, True)]

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

import ipaddress
from collections.abc import Iterable
from typing import Any

from xfrm_offload.engine.events import (
    DeleteReason,
    Event,
    LinkChanged,
    PolicyAdded,
    PolicyDeleted,
    SAId,
    StateAdded,
    StateDeleted,
)
from xfrm_offload.engine.types import Direction

#: A table change as a worker's reply carries it: a plain tuple, (kind, dev, ...). The
#: engine's event dataclasses (addresses, enums) cost about 15 times as much to pickle.
Change = tuple[Any, ...]
STATE_ADDED, STATE_GONE, POLICY_ADDED, POLICY_GONE, LINK = range(5)


def table_changes(events: Iterable[Event]) -> list[Change]:
    """The changes to what a device holds among its events."""
    changes: list[Change] = []
    for e in events:
        if isinstance(e, StateAdded):
            sa = e.sa
            changes.append(
                (STATE_ADDED, e.dev, e.handle, sa.daddr.packed, sa.spi, sa.proto, sa.saddr.packed)
            )
        elif isinstance(e, StateDeleted):
            changes.append((STATE_GONE, e.dev, e.handle))
        elif isinstance(e, PolicyAdded):
            changes.append((POLICY_ADDED, e.dev, e.handle, e.index, e.dir.value))
        elif isinstance(e, PolicyDeleted):
            changes.append((POLICY_GONE, e.dev, e.handle))
        elif isinstance(e, LinkChanged):
            changes.append((LINK, e.dev, e.up))
    return changes


class Ledger:
    """The active states and policies, and the link, of devices whose tables live elsewhere."""

    def __init__(self) -> None:
        #: dev -> handle -> (daddr, spi, proto, saddr), addresses packed.
        self.states: dict[str, dict[int, tuple[bytes, int, int, bytes]]] = {}
        #: dev -> handle -> (index, direction value).
        self.policies: dict[str, dict[int, tuple[int, Any]]] = {}
        self.down: set[str] = set()

    def apply(self, changes: Iterable[Change]) -> None:
        for change in changes:
            kind, dev, *rest = change
            if kind == STATE_ADDED:
                handle, daddr, spi, proto, saddr = rest
                self.states.setdefault(dev, {})[handle] = (daddr, spi, proto, saddr)
            elif kind == STATE_GONE:
                self.states.get(dev, {}).pop(rest[0], None)
            elif kind == POLICY_ADDED:
                handle, index, direction = rest
                self.policies.setdefault(dev, {})[handle] = (index, direction)
            elif kind == POLICY_GONE:
                self.policies.get(dev, {}).pop(rest[0], None)
            elif rest[0]:  # LINK up
                self.down.discard(dev)
            else:
                self.down.add(dev)

    def reset(self, dev: str) -> list[Event]:
        """``dev`` lost its tables: the events of its link going down (and forget them)."""
        events: list[Event] = []
        if dev not in self.down:
            events.append(LinkChanged(dev, False))
        reason = DeleteReason.LINK_DOWN
        address = ipaddress.ip_address
        for handle, (daddr, spi, proto, saddr) in self.states.pop(dev, {}).items():
            sa = SAId(address(daddr), spi, proto, address(saddr))
            events.append(StateDeleted(dev, handle, sa, reason))
        for handle, (index, direction) in self.policies.pop(dev, {}).items():
            events.append(PolicyDeleted(dev, handle, index, Direction(direction), reason))
        self.down.add(dev)
        return events

    def back(self, dev: str) -> list[Event]:
        """``dev`` is back, empty and up."""
        self.down.discard(dev)
        return [LinkChanged(dev, True)]

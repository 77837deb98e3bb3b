"""The server's model of the hardware: which devices exist, where they live, its clock
and its event hub.

Device calls go through ``call``: inline on the event loop (the default), or to the
worker process that hosts the device (``--workers N``, see workers.py). Either way
the calls on one device happen one at a time, in the order they were made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument, NotFound
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from .clock import Clock
from .config import ServerConfig
from .events import EventHub
from .timers import DeadlineTimer, handle_timer
from .workers import BondHostSpec, DeviceSpec, LocalDevices, WorkerPool

log = logging.getLogger("xfrm_offload.server")

#: ifindex 1 is lo on Linux; the emulated NICs count from 2 in --device order.
FIRST_IFINDEX = 2


class Nic:
    """All devices of one server, by name, in --device order."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self.clock = clock
        self.hub = EventHub(clock.now)
        self.specs: list[DeviceSpec] = [
            (spec.name, FIRST_IFINDEX + i, spec.profile) for i, spec in enumerate(config.devices)
        ]
        first_bond = FIRST_IFINDEX + len(self.specs)
        self.bonds: list[BondHostSpec] = [
            (b.name, first_bond + i, b.members, b.mode) for i, b in enumerate(config.bonds)
        ]
        #: Device names in --device order, then the bonds in --bond order.
        self.names = [name for name, _, _ in self.specs] + [b[0] for b in self.bonds]
        self._known = frozenset(self.names)
        #: Told True when a worker died and its devices are out, False when all are back.
        self.on_outage: Callable[[bool], None] = lambda _down: None
        ifindexes = [(n, i) for n, i, _ in self.specs] + [(b[0], b[1]) for b in self.bonds]
        self._by_ifindex = {ifindex: name for name, ifindex in ifindexes}
        self._ifindex = dict(ifindexes)
        self.workers = config.workers
        if self.workers and self.bonds:
            raise ValueError("a bond needs its members in the server process (no workers)")
        #: Time limits: one loop timer at the earliest deadline of all devices.
        self.timer = DeadlineTimer(clock, self._handle_timer)
        # With workers the devices are built in the worker processes, by start().
        self.host: LocalDevices | WorkerPool = LocalDevices(
            [] if self.workers else self.specs,
            self._publish,
            self._watched,
            self.timer.update,
            self.bonds,
        )
        #: Device name -> the device its wire is cabled to (both ends listed).
        self.cables: dict[str, str] = {}
        for a, b in config.cables:
            self.cables[a] = b
            self.cables[b] = a
        #: The real interfaces attached to a device, for its description (realif.py).
        self.describe_interfaces: Callable[[str], pb.Interfaces | None] = lambda _dev: None

    @property
    def devices(self) -> dict[str, Device]:
        """The Device objects, when they live in this process (no --workers)."""
        if not isinstance(self.host, LocalDevices):
            raise RuntimeError("devices live in worker processes")
        return self.host.devices

    def device(self, name: str, field: str) -> str:
        """``name`` if such a device exists; NotFound naming ``field`` otherwise."""
        if name not in self._known:
            raise NotFound(f"no device {name!r} (have: {', '.join(self.names)})", field=field)
        return name

    def wire_of(self, dev: str) -> str:
        """The device whose wire carries what ``dev`` transmits: a bond's active member
        (the bond itself while it has none), any other device's own."""
        if self.bonds and isinstance(self.host, LocalDevices):
            active = self.host.bond_active(dev)
            if active:
                return active
        return dev

    def offload_device(self, offload: xpb.XfrmUserOffload, field: str) -> str:
        """The device an XfrmUserOffload names, by name or by ifindex."""
        name = offload.dev
        if name:
            if name not in self._known:
                self.device(name, f"{field}.dev")  # raises NotFound
            ifindex = self._ifindex[name]
            if offload.ifindex and offload.ifindex != ifindex:
                raise NotFound(
                    f"{field}.ifindex {offload.ifindex} is not {name}'s ({ifindex})",
                    field=f"{field}.ifindex",
                )
            return name
        if offload.ifindex:
            by_index = self._by_ifindex.get(offload.ifindex)
            if by_index is None:
                raise NotFound(
                    f"no device with ifindex {offload.ifindex}", field=f"{field}.ifindex"
                )
            return by_index
        raise InvalidArgument(f"{field}.dev: name the device to offload to", field=f"{field}.dev")

    async def call(self, dev: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(device, path, *args)`` where ``dev`` lives; publish its events; return
        its result or raise its refusal."""
        ok, result = await self.host.call(dev, fn, *args)
        if not ok:
            raise result
        return result

    def _watched(self) -> bool:
        return self.hub.subscriber_count > 0

    def _publish(self, events: list[pb.WatchEventsResponse]) -> None:
        for event in events:
            self.hub.publish(event)

    async def _handle_timer(self, dev: str, now: float) -> None:
        await self.call(dev, handle_timer, now)

    async def fire_timers(self) -> None:
        """Fire the time limits due at the clock's now (AdvanceClock: the virtual clock arms
        no loop timer, it runs this after every step)."""
        await self.timer.fire_due()

    async def start(self) -> None:
        """Start the worker processes (if any) and the time-limit timer."""
        if self.workers:
            self.host = WorkerPool(
                self.specs,
                self.workers,
                self._publish,
                self._watched,
                self.timer.update,
                lambda down: self.on_outage(down),
            )
        self.timer.start()

    async def close(self) -> None:
        """Shutdown: stop the timer, end the event streams."""
        self.timer.stop()
        self.hub.close()

    async def stop_workers(self) -> None:
        """After the last RPC: let the workers finish what they were sent, then stop them."""
        await self.host.close()

"""The server's model of the hardware: which devices exist, where they live, its clock
and its event hub.

Device calls go through ``call``: inline on the event loop (the default), or to the
worker process that hosts the device (``--workers N``, see workers.py). Either way
the calls on one device happen one at a time, in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument, NotFound
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from . import ops
from .clock import Clock
from .config import ServerConfig
from .events import EventHub
from .workers import DeviceSpec, LocalDevices, WorkerPool

log = logging.getLogger("xfrm_offload.server")

#: ifindex 1 is lo on Linux; the emulated NICs count from 2 in --device order.
FIRST_IFINDEX = 2
#: How often time-based lifetimes are checked on the system clock (mlx5 polls every 1 s).
LIFETIME_POLL_SECONDS = 0.5


class Nic:
    """All devices of one server, by name, in --device order."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self.clock = clock
        self.hub = EventHub(clock.now)
        self.specs: list[DeviceSpec] = [
            (spec.name, FIRST_IFINDEX + i, spec.profile) for i, spec in enumerate(config.devices)
        ]
        #: Device names in --device order.
        self.names = [name for name, _, _ in self.specs]
        self._known = frozenset(self.names)
        self._by_ifindex = {ifindex: name for name, ifindex, _ in self.specs}
        self._ifindex = {name: ifindex for name, ifindex, _ in self.specs}
        self.workers = config.workers
        # With workers the devices are built in the worker processes, by start().
        self.host: LocalDevices | WorkerPool = LocalDevices(
            [] if self.workers else self.specs, self._publish, self._watched
        )
        #: Device name -> the device its wire is cabled to (both ends listed).
        self.cables: dict[str, str] = {}
        for a, b in config.cables:
            self.cables[a] = b
            self.cables[b] = a
        self._timer: asyncio.Task[None] | None = None
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

    async def poll(self) -> None:
        """Fire time-based lifetimes at the clock's now, on every device."""
        now = self.clock.now()
        await asyncio.gather(*(self.call(name, ops.poll, now) for name in self.names))

    async def start(self) -> None:
        """Start the worker processes (if any) and the lifetime timer (system clock only:
        a virtual clock polls when it is advanced)."""
        if self.workers:
            self.host = WorkerPool(self.specs, self.workers, self._publish, self._watched)
        if not self.clock.virtual:
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        while True:
            await asyncio.sleep(LIFETIME_POLL_SECONDS)
            try:
                await self.poll()
            except Exception:  # never let one bad poll stop expiry for good
                log.exception("lifetime poll failed")

    async def close(self) -> None:
        """Shutdown: stop the timer, end the event streams."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        self.hub.close()

    async def stop_workers(self) -> None:
        """After the last RPC: let the workers finish what they were sent, then stop them."""
        await self.host.close()

"""The server's model of the hardware: the devices it hosts, its clock, its event hub.

Every engine call happens on the event loop's thread, one at a time, so a device's
tables never see two changes at once; engine calls are short (microseconds), so no
device's work holds up another's for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from xfrm_offload.engine.datapath import DevicePath
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import NotFound
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.v1 import xfrm_pb2 as xpb

from . import convert
from .clock import Clock
from .config import ServerConfig
from .events import EventHub

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
        self.devices: dict[str, Device] = {}
        self._by_ifindex: dict[int, Device] = {}
        for i, spec in enumerate(config.devices):
            device = Device(spec.name, FIRST_IFINDEX + i, PROFILES[spec.profile])
            self.devices[spec.name] = device
            self._by_ifindex[device.ifindex] = device
        #: The packet path of each device.
        self.paths = {name: DevicePath(device) for name, device in self.devices.items()}
        #: Device name -> the device its wire is cabled to (both ends listed).
        self.cables: dict[str, str] = {}
        for a, b in config.cables:
            self.cables[a] = b
            self.cables[b] = a
        self._timer: asyncio.Task[None] | None = None

    def device(self, name: str, field: str) -> Device:
        """The device called ``name``; NotFound naming ``field`` otherwise."""
        device = self.devices.get(name)
        if device is None:
            raise NotFound(f"no device {name!r} (have: {', '.join(self.devices)})", field=field)
        return device

    def offload_device(self, offload: xpb.XfrmUserOffload, field: str) -> Device:
        """The device an XfrmUserOffload names, by name or by ifindex."""
        if offload.dev:
            device = self.device(offload.dev, f"{field}.dev")
            if offload.ifindex and offload.ifindex != device.ifindex:
                raise NotFound(
                    f"{field}.ifindex {offload.ifindex} is not {offload.dev}'s ({device.ifindex})",
                    field=f"{field}.ifindex",
                )
            return device
        if offload.ifindex:
            by_index = self._by_ifindex.get(offload.ifindex)
            if by_index is None:
                raise NotFound(
                    f"no device with ifindex {offload.ifindex}", field=f"{field}.ifindex"
                )
            return by_index
        raise NotFound(f"{field}.dev: name the device to offload to", field=f"{field}.dev")

    def publish(self, device: Device) -> None:
        """Hand a device's pending events to the subscribers."""
        for event in device.pop_events():
            message = convert.event_to_pb(event)
            if message is not None:
                self.hub.publish(message)

    def poll(self) -> None:
        """Fire time-based lifetimes at the clock's now, on every device."""
        now = self.clock.now()
        for device in self.devices.values():
            device.poll(now)
            self.publish(device)

    def start(self) -> None:
        """Start the lifetime timer (system clock only: a virtual clock polls on advance)."""
        if not self.clock.virtual:
            self._timer = asyncio.get_running_loop().create_task(self._run_timer())

    async def _run_timer(self) -> None:
        while True:
            await asyncio.sleep(LIFETIME_POLL_SECONDS)
            try:
                self.poll()
            except Exception:  # never let one bad poll stop expiry for good
                log.exception("lifetime poll failed")

    async def close(self) -> None:
        """Shutdown: stop the timer, end the event streams."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        self.hub.close()

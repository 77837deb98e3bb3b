"""The server's model of the hardware: the devices it hosts, its clock, its event hub."""

from __future__ import annotations

from xfrm_offload.engine.device import Device
from xfrm_offload.engine.profiles import PROFILES

from .clock import Clock
from .config import ServerConfig
from .events import EventHub

#: ifindex 1 is lo on Linux; the emulated NICs count from 2 in --device order.
FIRST_IFINDEX = 2


class Nic:
    """All devices of one server, by name, in --device order."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self.clock = clock
        self.hub = EventHub(clock.now)
        self.devices: dict[str, Device] = {}
        for i, spec in enumerate(config.devices):
            self.devices[spec.name] = Device(spec.name, FIRST_IFINDEX + i, PROFILES[spec.profile])

    def close(self) -> None:
        """Shutdown: end the event streams."""
        self.hub.close()

"""Real-interface tests need root (namespaces, TUN, AF_PACKET) and iproute2."""

from __future__ import annotations

import os
import shutil

import pytest

if os.geteuid() != 0 or shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
    pytest.skip("needs root, iproute2 and /dev/net/tun", allow_module_level=True)


@pytest.fixture(params=["on", "off"], ids=["offload", "no-offload"])
def tun_offload(request: pytest.FixtureRequest) -> str:
    """The servers' --tun-offload: a test taking it runs with TSO/GRO on the TUNs and
    without."""
    value: str = request.param
    return value

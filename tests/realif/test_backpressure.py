"""A NIC that falls behind loses packets where the kernel counts them, never its memory."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from .topology import DEV, TUN, in_ns, install_tunnel, sh, two_hosts, wait_for

SENT = 800
BURST = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({SENT}):
    s.sendto(i.to_bytes(4, "big") * 25, ("203.0.113.1", 9))
"""


async def test_packets_beyond_the_tun_queue_are_counted_as_host_rx_dropped(
    sock_dir: Path,
) -> None:
    async with two_hosts(sock_dir) as pair:
        a = pair.a
        await install_tunnel(pair)
        attachment = a.server.interfaces.attached[DEV]
        qlen = re.search(r"qlen (\d+)", sh("ip", "-n", a.ns, "link", "show", TUN).stdout)
        assert qlen is not None
        queue = int(qlen.group(1))  # the TUN's own queue (500 by default)
        assert queue < SENT
        # The NIC stops reading its TUN, as it does when its own queue is full.
        asyncio.get_running_loop().remove_reader(attachment.tun_fd)
        status, out = await in_ns(a.ns, sys.executable, "-c", BURST)
        assert status == 0, out
        attachment._resume_tun()

        async def all_read() -> bool:
            shown = (await a.client.get_device(DEV)).interfaces
            return shown.host_rx_packets == queue and shown.wire_tx_packets == queue

        await wait_for(all_read, "the queued packets read and sent")
        shown = (await a.client.get_device(DEV)).interfaces
        assert (shown.host_rx_packets, shown.host_rx_dropped) == (queue, SENT - queue)
        assert shown.wire_tx_packets == queue  # each one read went out as ESP

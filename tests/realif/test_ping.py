"""ping through two NICs between two hosts: 1,000 packets each way, none lost."""

from __future__ import annotations

from pathlib import Path

from .topology import in_ns, install_tunnel, two_hosts

COUNT = 1000


async def test_ping_both_ways_no_loss(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        await install_tunnel(pair)
        for src, dst in ((pair.a, pair.b), (pair.b, pair.a)):
            status, out = await in_ns(
                src.ns,
                "ping",
                "-q",
                "-c",
                str(COUNT),
                "-i",
                "0.002",
                "-W",
                "10",
                dst.inner4,
                timeout=40,
            )
            assert status == 0, out
            assert f"{COUNT} packets transmitted, {COUNT} received, 0% packet loss" in out

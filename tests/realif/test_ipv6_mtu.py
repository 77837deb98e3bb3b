"""IPv6 inside and outside; the MTU: what does not fit gets ICMP back, or is split."""

from __future__ import annotations

from pathlib import Path

import pytest

from xfrm_offload.server.realif import usable_mtu

from .topology import DEV, TUN, Host, counters_reach, in_ns, install_tunnel, sh, two_hosts

COUNT = 200


async def _ping(src: Host, dst: str, *extra: str, count: int = COUNT) -> tuple[int, str]:
    """Exactly ``count`` pings, 2 ms apart, each answered within 2 s or lost."""
    return await in_ns(
        src.ns, "ping", "-c", str(count), "-i", "0.002", "-W", "10", *extra, dst, timeout=30
    )


@pytest.mark.parametrize(
    ("inner6", "outer6"), [(False, True), (True, False), (True, True)], ids=["4in6", "6in4", "6in6"]
)
async def test_ping_ipv6_inside_and_outside(sock_dir: Path, inner6: bool, outer6: bool) -> None:
    async with two_hosts(sock_dir, ipv6=True) as pair:
        await install_tunnel(pair, inner6=inner6, outer6=outer6)
        for src, dst in ((pair.a, pair.b), (pair.b, pair.a)):
            status, out = await _ping(src, dst.inner6 if inner6 else dst.inner4, "-q")
            assert status == 0, out
            assert f"{COUNT} packets transmitted, {COUNT} received, 0% packet loss" in out


def test_usable_mtu_of_gcm_over_ipv4() -> None:
    # a 1500-byte inner packet: 20 outer + 8 ESP + 8 IV + 1504 payload + 16 ICV = 1556;
    # 1446 + 2 = 1448 bytes of payload make exactly 1500
    assert usable_mtu(1500, 1556, 1500) == 1446
    assert usable_mtu(1446, 1500, 1500) == 1446


async def test_df_oversize_gets_fragmentation_needed_and_the_host_lowers_its_pmtu(
    sock_dir: Path,
) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair)
        sh("ip", "-n", a.ns, "link", "set", TUN, "mtu", "1500")  # more than the wire allows
        status, out = await _ping(a, b.inner4, "-M", "do", "-s", "1472", count=1)
        assert status != 0
        assert "Frag needed and DF set (mtu = 1446)" in out, out
        assert "mtu 1446" in sh("ip", "-n", a.ns, "route", "get", b.inner4).stdout
        assert (await a.client.get_device(DEV)).interfaces.too_big == 1
        status, out = await _ping(a, b.inner4, "-M", "do", "-s", str(1446 - 28), count=3)
        assert status == 0, out


async def test_ipv6_oversize_gets_packet_too_big(sock_dir: Path) -> None:
    async with two_hosts(sock_dir, ipv6=True) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair, inner6=True)
        sh("ip", "-n", a.ns, "link", "set", TUN, "mtu", "1500")
        status, out = await _ping(a, b.inner6, "-M", "do", "-s", "1452", count=1)
        assert status != 0
        assert "Packet too big: mtu=1446" in out, out
        assert (await a.client.get_device(DEV)).interfaces.too_big == 1
        status, out = await _ping(a, b.inner6, "-M", "do", "-s", str(1446 - 48), count=3)
        assert status == 0, out


async def test_oversize_without_df_is_split_before_encapsulation(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_tunnel(pair)
        sh("ip", "-n", a.ns, "link", "set", TUN, "mtu", "1500")
        status, out = await _ping(a, b.inner4, "-M", "dont", "-s", "1472", count=3)
        assert status == 0, out
        # two fragments per echo request, each its own ESP frame
        await counters_reach(a, fragmented=3, too_big=0, wire_tx_packets=6)

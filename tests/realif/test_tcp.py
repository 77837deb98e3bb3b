"""TCP and iperf3 through two NICs; a rekey in the middle of a TCP transfer.

The 100 MB transfer takes a few seconds here (both NICs run in the test's process);
the other tests in this file take about a second each.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from xfrm_offload.server import realif, tunoffload

from .topology import DEV, Pair, in_ns, install_states, install_tunnel, remove_states, two_hosts

TRANSFER = str(Path(__file__).with_name("transfer.py"))
PORT = "5001"


async def _transfer(pair: Pair, mbytes: int, *, mark: int = 0, pause: float = 0.0,
                    during: object = None, to: str = "") -> tuple[str, str]:  # fmt: skip
    """Send ``mbytes`` MiB from A to B (at ``to``, default B's IPv4 address); the
    (sender, receiver) "count sha256" lines. ``during``, a coroutine function, runs once
    the receiver has ``mark`` bytes."""
    to = to or pair.b.inner4
    receiver = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", pair.b.ns, sys.executable, TRANSFER, "receive", to,
        PORT, str(mark), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert receiver.stdout is not None
    try:
        assert await asyncio.wait_for(receiver.stdout.readline(), 20) == b"ready\n"
        sender = asyncio.ensure_future(
            in_ns(pair.a.ns, sys.executable, TRANSFER, "send", to, PORT,
                  str(mbytes), str(pause), timeout=90)
        )  # fmt: skip
        if mark:
            assert await asyncio.wait_for(receiver.stdout.readline(), 60) == b"mark\n"
            assert callable(during)
            await during()
        status, sent = await sender
        assert status == 0, sent
        received = await asyncio.wait_for(receiver.stdout.readline(), 60)
        assert await asyncio.wait_for(receiver.wait(), 10) == 0
        return sent.strip(), received.decode().strip()
    finally:
        if receiver.returncode is None:
            receiver.kill()
            await receiver.wait()


async def test_100_mb_over_tcp_arrive_intact(sock_dir: Path, tun_offload: str) -> None:
    async with two_hosts(sock_dir, tun_offload=tun_offload) as pair:
        await install_tunnel(pair)
        sent, received = await _transfer(pair, 100)
        assert sent == received
        assert sent.startswith(f"{100 << 20} ")
        await _offloads_used(pair, tun_offload == "on")


async def _offloads_used(pair: Pair, on: bool) -> None:
    """With offloads the sender's host handed over super-packets (TSO: the host's TCP
    sends them whenever the device offers it) and the receiver's NIC coalesced; without,
    neither."""
    a = (await pair.a.client.get_device(DEV)).interfaces
    b = (await pair.b.client.get_device(DEV)).interfaces
    assert (a.tun_offload, b.tun_offload) == (on, on)
    assert (a.host_rx_segmented > 0, b.host_tx_coalesced > 0) == (on, on)
    assert a.host_rx_errors == b.host_rx_errors == 0


async def test_tcp_over_ipv6_inside_and_outside(sock_dir: Path, tun_offload: str) -> None:
    async with two_hosts(sock_dir, ipv6=True, tun_offload=tun_offload) as pair:
        await install_tunnel(pair, inner6=True, outer6=True)
        sent, received = await _transfer(pair, 20, to=pair.b.inner6)
        assert sent == received
        assert sent.startswith(f"{20 << 20} ")
        await _offloads_used(pair, tun_offload == "on")


async def test_rekey_in_the_middle_of_a_tcp_transfer(sock_dir: Path, tun_offload: str) -> None:
    async with two_hosts(sock_dir, tun_offload=tun_offload) as pair:
        await install_tunnel(pair)
        old = list(pair.sas)

        async def rekey() -> None:
            await install_states(pair)  # new SA pair (receivers first), same reqid: newest wins
            await remove_states(old)

        sent, received = await _transfer(pair, 24, mark=4 << 20, pause=0.005, during=rekey)
        assert sent == received
        new_out = pair.sas[2]
        curlft = await new_out.sender.client.update_curlft(DEV, new_out.out_handle)
        assert curlft.curlft.bytes > 4 << 20  # the rest of the stream went on the new SA
        states = await pair.a.client.list_states(DEV)
        assert sorted(s.sa.id.spi for s in states) == sorted(sa.spi for sa in pair.sas[2:])


async def _iperf3(pair: Pair, *client_args: str) -> dict[str, object]:
    server = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", pair.b.ns, "iperf3", "-s", "-1", "-B", pair.b.inner4,
        "--forceflush", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        for _ in range(10):
            if b"Server listening" in await asyncio.wait_for(server.stdout.readline(), 20):
                break
        status, out = await in_ns(
            pair.a.ns, "iperf3", "-c", pair.b.inner4, "-J", *client_args, timeout=30
        )
        assert status == 0, out
        result: dict[str, object] = json.loads(out)
        await asyncio.wait_for(server.wait(), 10)
        return result
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_iperf3_tcp_and_udp(sock_dir: Path, tun_offload: str) -> None:
    async with two_hosts(sock_dir, tun_offload=tun_offload) as pair:
        await install_tunnel(pair)
        tcp = await _iperf3(pair, "-t", "1")
        end = tcp["end"]
        assert isinstance(end, dict)
        assert end["sum_received"]["bytes"] > 0 and "error" not in tcp
        # paced far below what the NICs do, so no datagram may be missing
        udp = await _iperf3(pair, "-u", "-b", "5M", "-l", "1300", "-t", "1")
        end = udp["end"]
        assert isinstance(end, dict)
        assert end["sum"]["packets"] > 0 and end["sum"]["lost_packets"] == 0, end["sum"]


async def test_tcp_without_the_c_helpers(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a machine without a compiler runs: TSO in Python and one system call a wire
    frame (realif's fallbacks), with offloads on."""
    monkeypatch.setattr(realif, "_wireio", None)
    monkeypatch.setattr(tunoffload, "_native", None)
    async with two_hosts(sock_dir) as pair:
        await install_tunnel(pair)
        sent, received = await _transfer(pair, 20)
        assert sent == received
        assert sent.startswith(f"{20 << 20} ")
        await _offloads_used(pair, True)

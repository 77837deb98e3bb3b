"""Wire impairments on a real link: what a device attached to a veth or a UDP cable sends
from its TUN leaves through its impairment (SetImpairment, ``xfrmctl link set ...
impair``), with the same counters and seeded decisions as on a cable, and its wire taps
see the impaired stream."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from xfrm_offload.client import cli
from xfrm_offload.v1 import offload_pb2 as pb

from ..datapath.builders import Tap
from .topology import (
    DEV,
    Host,
    Pair,
    counters_reach,
    free_udp_ports,
    in_ns,
    install_policies,
    install_states,
    remove_states,
    stat,
    two_hosts,
    wait_for,
)

SENT = 40
#: SENT UDP datagrams from host A to host B: SENT ESP frames on A's wire, nothing else.
BURST = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({SENT}):
    s.sendto(i.to_bytes(4, "big") * 25, ("203.0.113.1", 9))
"""


async def burst(host: Host) -> pb.ImpairmentCounters:
    """Send the burst from ``host``; its impairment's counters once all of it is through."""
    status, out = await in_ns(host.ns, sys.executable, "-c", BURST)
    assert status == 0, out
    seen: list[pb.ImpairmentCounters] = []

    async def through() -> bool:
        counters = (await host.client.get_impairment(DEV)).counters
        seen[:] = [counters]
        return counters.packets == SENT and counters.waiting == 0

    await wait_for(through, f"{SENT} packets through the impairment")
    return seen[0]


async def xfrmctl(host: Host, *argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(["--server", host.client.address, *argv], out, err)
    assert (code, err.getvalue()) == (0, ""), err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("udp", [False, True], ids=["veth", "udp-cable"])
async def test_loss_100_percent_reaches_nobody_and_is_counted(sock_dir: Path, udp: bool) -> None:
    async with two_hosts(sock_dir, udp_ports=free_udp_ports() if udp else None) as pair:
        a, b = pair.a, pair.b
        await install_states(pair)
        await install_policies(pair)
        await xfrmctl(a, "link", "set", "dev", DEV, "impair", "loss", "100%")
        c = await burst(a)
        assert (c.packets, c.dropped, c.sent) == (SENT, SENT, 0)
        await counters_reach(a, host_rx_packets=SENT, wire_tx_packets=0)
        await counters_reach(b, wire_rx_packets=0)
        # no impairment: frames go straight out again
        assert await xfrmctl(a, "link", "set", "dev", DEV, "impair", "none") == (
            f"{DEV}: impair none\n"
        )
        status, out = await in_ns(a.ns, "ping", "-q", "-c", "3", "-i", "0.01", "-W", "10", b.inner4)
        assert status == 0, out
        assert (await a.client.get_impairment(DEV)).counters == pb.ImpairmentCounters()


async def test_duplicates_arrive_twice_and_each_is_one_replay(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_states(pair)
        await install_policies(pair)
        await a.client.set_impairment(DEV, pb.Impairment(duplicate_percent=100))
        tap = Tap(a.client, DEV, pb.PORT_WIRE)
        await tap.ready()
        try:
            c = await burst(a)
            wire = await tap.wait_for(2 * SENT)
        finally:
            tap.close()
        assert (c.packets, c.duplicated, c.dropped, c.sent) == (SENT, SENT, 0, 2 * SENT)
        # the tap sees the impaired stream: every ESP sequence number twice, in order
        assert [int.from_bytes(p[24:28], "big") for p in wire] == [
            n for n in range(1, SENT + 1) for _ in range(2)
        ]
        await counters_reach(a, wire_tx_packets=2 * SENT)
        await counters_reach(b, wire_rx_packets=2 * SENT, host_tx_packets=SENT)
        assert await stat(b, "XfrmInStateSeqError") == SENT


async def seeded_run(pair: Pair, impairment: pb.Impairment) -> tuple[pb.ImpairmentCounters, int]:
    """Fresh SAs (sequence numbers from 1), the impairment set anew, the burst: the
    counters, and the ESP sequence numbers that did not reach B (as a bit mask)."""
    a, b = pair.a, pair.b
    if pair.sas:
        await remove_states(pair.sas)
        pair.sas.clear()
    await install_states(pair)
    await a.client.set_impairment(DEV, impairment)
    tap = Tap(a.client, DEV, pb.PORT_WIRE)
    await tap.ready()
    before = (await b.client.get_device(DEV)).interfaces.host_tx_packets
    try:
        c = await burst(a)
        wire = await tap.wait_for(c.sent)
    finally:
        tap.close()
    await counters_reach(b, host_tx_packets=before + c.sent)
    arrived = {int.from_bytes(p[24:28], "big") for p in wire}
    lost = sum(1 << n for n in range(1, SENT + 1) if n not in arrived)
    return c, lost


async def test_a_seeded_loss_drops_the_same_packets_twice(sock_dir: Path) -> None:
    async with two_hosts(sock_dir) as pair:
        await install_policies(pair)
        impairment = pb.Impairment(loss_percent=30, seed=1234)
        first, lost = await seeded_run(pair, impairment)
        assert 0 < first.dropped < SENT and first.sent == SENT - first.dropped
        assert lost.bit_count() == first.dropped
        again, lost_again = await seeded_run(pair, impairment)
        assert (again, lost_again) == (first, lost)
        # another seed drops other packets
        _, other = await seeded_run(pair, pb.Impairment(loss_percent=30, seed=4321))
        assert other != lost


async def test_reordered_inside_the_replay_window_all_pass(sock_dir: Path) -> None:
    """reorder 100% gap 4 with a 5 ms delay: every 4th frame leaves at once, ahead of the
    delayed ones before it; all are inside B's replay window (128), so all pass."""
    async with two_hosts(sock_dir) as pair:
        a, b = pair.a, pair.b
        await install_states(pair)
        await install_policies(pair)
        await a.client.set_impairment(
            DEV, pb.Impairment(reorder_percent=100, reorder_gap=4, delay_us=5000)
        )
        tap = Tap(a.client, DEV, pb.PORT_WIRE)
        await tap.ready()
        try:
            c = await burst(a)
            wire = await tap.wait_for(SENT)
        finally:
            tap.close()
        assert (c.reordered, c.sent, c.dropped) == (SENT // 4, SENT, 0)
        seqs = [int.from_bytes(p[24:28], "big") for p in wire]
        assert sorted(seqs) == list(range(1, SENT + 1)) and seqs != sorted(seqs)
        await counters_reach(b, wire_rx_packets=SENT, host_tx_packets=SENT)
        assert await stat(b, "XfrmInStateSeqError") == 0


async def test_detach_while_frames_wait_in_the_impairment(sock_dir: Path) -> None:
    """Frames held by a long delay when the link goes away: nothing fails, the impairment
    lets them go (the wire is gone), and the device attaches again."""
    async with two_hosts(sock_dir) as pair:
        a = pair.a
        await install_states(pair)
        await install_policies(pair)
        await a.client.set_impairment(DEV, pb.Impairment(delay_us=60_000_000))
        status, out = await in_ns(a.ns, sys.executable, "-c", BURST)
        assert status == 0, out

        async def waiting() -> bool:
            return (await a.client.get_impairment(DEV)).counters.waiting == SENT

        await wait_for(waiting, "the burst held by the delay")
        attachment = a.server.interfaces.attached[DEV]
        described = await a.client.detach_interfaces(DEV)
        assert described.wire_tx_packets == 0
        await a.client.set_impairment(DEV)  # what waited leaves: onto no wire
        assert DEV not in a.server.datapath.wires.links and attachment.wire is None
        await a.client.attach_interfaces(
            DEV, attachment.counters.host_tun, attachment.counters.wire_if
        )
        assert (
            a.server.datapath.wires.links[DEV] == a.server.interfaces.attached[DEV]._send_impaired
        )

"""Wire impairments over gRPC: SetImpairment / GetImpairment on a cable, taps and the
receiving device's counters, and ``xfrmctl link set dev DEV impair ...``."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError, cli
from xfrm_offload.client.grammar import XfrmSyntaxError
from xfrm_offload.client.impair import parse_impairment
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from ..datapath.builders import V4_TUNNEL, Tap, install, packets, send, udp4

TX = pb.PACKET_DIRECTION_TX
N = 60
INNER = packets(udp4, "198.51.100.10", "203.0.113.20", N, 120)


@pytest.fixture
async def cabled(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    args = ["--device", "eth0", "--device", "eth1", "--cable", "eth0:eth1"]
    async with running_server(sock_dir, *args) as pair:
        yield pair


async def counters(client: Client, dev: str) -> dict[str, int]:
    stats = await client.get_stats(dev)
    return {c.name: c.value for c in stats.total if c.value}


async def until_sent(client: Client, dev: str, count: int) -> pb.ImpairmentCounters:
    async with asyncio.timeout(10):
        while True:
            reply = await client.get_impairment(dev)
            if reply.counters.sent >= count and not reply.counters.waiting:
                return reply.counters
            await asyncio.sleep(0.005)


async def run(
    client: Client, impairment: pb.Impairment
) -> tuple[pb.ImpairmentCounters, list[bytes]]:
    """Impair eth0, send N packets, wait for the wire: counters and what the tap saw."""
    await client.set_impairment("eth0", impairment)
    tap = Tap(client, "eth0", pb.PORT_WIRE)
    await tap.ready()
    try:
        results = await send(client, "eth0", TX, INNER)
        assert all(r.verdict == pb.VERDICT_PASS for r in results)
        reply = await client.get_impairment("eth0")
        expected = N + reply.counters.duplicated - reply.counters.dropped
        c = await until_sent(client, "eth0", expected)
        return c, list(await tap.wait_for(expected))
    finally:
        tap.close()


async def test_duplicates_reach_the_peer_as_replays_and_the_seed_repeats(
    cabled: tuple[OffloadServer, Client],
) -> None:
    _, client = cabled
    await install(client, V4_TUNNEL, "eth0", "eth1")
    impairment = pb.Impairment(duplicate_percent=20, loss_percent=5, seed=42)
    c, wire = await run(client, impairment)
    assert c.packets == N and c.duplicated > 0 and c.dropped > 0
    assert c.sent == len(wire) == N + c.duplicated - c.dropped
    got = await counters(client, "eth1")
    # a duplicate whose original was lost is the first copy to arrive: it passes
    assert got.get("XfrmInStateSeqError", 0) == len(wire) - len(set(wire))
    # the same seed again: the same wire, packet for packet (new SAs: the same sequence
    # numbers in the same order, though their random IV salt makes other bytes differ)
    await client.set_impairment("eth0")
    for dev in ("eth0", "eth1"):
        await client.set_link(dev, up=False)
        await client.set_link(dev, up=True)
    await install(client, V4_TUNNEL, "eth0", "eth1")
    again_c, again = await run(client, impairment)
    assert [p[24:28] for p in again] == [p[24:28] for p in wire] and again_c == c


async def test_reordering_with_a_delay_and_the_replay_window(
    cabled: tuple[OffloadServer, Client],
) -> None:
    """reorder 100% gap 4, 2 ms delay: every 4th packet arrives first; of the others, those
    within the window of 64 below the highest (60) pass: all of them."""
    _, client = cabled
    await install(client, V4_TUNNEL, "eth0", "eth1")
    c, _ = await run(client, pb.Impairment(reorder_percent=100, reorder_gap=4, delay_us=2000))
    assert c.reordered == N // 4 and c.sent == N
    got = await counters(client, "eth1")
    assert "XfrmInStateSeqError" not in got
    reply = await client.get_impairment("eth0")
    assert reply.impairment.delay_us == 2000 and reply.counters == c


async def test_corruption_is_counted_and_the_peer_drops_it(
    cabled: tuple[OffloadServer, Client],
) -> None:
    _, client = cabled
    await install(client, V4_TUNNEL, "eth0", "eth1")
    c, _ = await run(client, pb.Impairment(corrupt_percent=30, seed=9))
    assert c.corrupted > 0 and c.sent == N
    got = await counters(client, "eth1")
    dropped = sum(got.values())
    # every corrupted packet that reached the peer's ESP (all but header-only flips) is a drop
    assert 0 < dropped <= c.corrupted


@pytest.mark.parametrize(
    ("impairment", "field"),
    [
        (pb.Impairment(loss_percent=120), "impairment.loss_percent"),
        (pb.Impairment(reorder_percent=5), "impairment.reorder_percent"),
        (pb.Impairment(loss_burst=pb.GilbertElliottLoss(p=5, r=-1)), "impairment.loss_burst.r"),
        (pb.Impairment(duplicate_percent=float("nan")), "impairment.duplicate_percent"),
    ],
)
async def test_bad_impairments_name_the_field(
    cabled: tuple[OffloadServer, Client], impairment: pb.Impairment, field: str
) -> None:
    _, client = cabled
    with pytest.raises(XfrmOffloadError) as info:
        await client.set_impairment("eth0", impairment)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.field == field
    assert not (await client.get_impairment("eth0")).HasField("impairment")


async def test_unknown_device(cabled: tuple[OffloadServer, Client]) -> None:
    _, client = cabled
    with pytest.raises(XfrmOffloadError) as info:
        await client.set_impairment("nope0", pb.Impairment(loss_percent=1))
    assert info.value.code == grpc.StatusCode.NOT_FOUND


# -- xfrmctl ---------------------------------------------------------------------------

GE = pb.GilbertElliottLoss
PARSED = [
    ("loss 5%", pb.Impairment(loss_percent=5)),
    ("loss random 2.5", pb.Impairment(loss_percent=2.5)),
    ("loss gemodel 1% 10% 70% 0.1%", pb.Impairment(
        loss_burst=GE(p=1, r=10, bad_loss=70, good_loss=0.1))),
    ("loss gemodel 1%", pb.Impairment(loss_burst=GE(p=1))),
    ("duplicate 1 corrupt 0.5% seed 7", pb.Impairment(
        duplicate_percent=1, corrupt_percent=0.5, seed=7)),
    ("delay 10ms 2ms reorder 25% gap 5", pb.Impairment(
        delay_us=10000, jitter_us=2000, reorder_percent=25, reorder_gap=5)),
    ("delay 1s rate 10mbit limit 50", pb.Impairment(
        delay_us=1_000_000, rate_bps=10_000_000, limit=50)),
    ("rate 1kbps", pb.Impairment(rate_bps=8000)),
    ("delay 250", pb.Impairment(delay_us=250)),
    ("none", pb.Impairment()),
]  # fmt: skip


@pytest.mark.parametrize(("words", "expected"), PARSED, ids=[w for w, _ in PARSED])
def test_impair_grammar(words: str, expected: pb.Impairment) -> None:
    tokens = ["link", "set", "dev", "eth0", "impair", *words.split()]
    assert parse_impairment(tokens, 5) == expected


BAD = [
    ("loss 101%", 6, "expected the loss as a percentage 0-100"),
    ("loss", 6, "expected the loss as a percentage"),
    ("delay 10parsecs", 6, "expected the delay as a time (like 10ms, 250us, 1s)"),
    ("jitter 5ms", 5, "expected loss, duplicate, corrupt, reorder, delay, rate, limit or seed"),
    ("loss 1 loss 2", 7, "loss given twice"),
    ("none more", 6, "expected nothing after none"),
    ("", 5, "expected none or an impairment (loss, duplicate, corrupt, ...)"),
    ("reorder 5 gap zero", 8, "expected the gap as an integer"),
]


@pytest.mark.parametrize(("words", "index", "message"), BAD, ids=[w or "empty" for w, _, _ in BAD])
def test_impair_grammar_points_at_the_bad_token(words: str, index: int, message: str) -> None:
    tokens = ["link", "set", "dev", "eth0", "impair", *words.split()]
    with pytest.raises(XfrmSyntaxError) as info:
        parse_impairment(tokens, 5)
    assert (info.value.index, info.value.expected) == (index, message)


async def xfrmctl(client: Client, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(["--server", client.address, *argv], out, err)
    return code, out.getvalue(), err.getvalue()


async def test_xfrmctl_link_set_impair_and_show(cabled: tuple[OffloadServer, Client]) -> None:
    _, client = cabled
    words = ["loss", "5%", "delay", "10ms", "1ms", "seed", "3"]
    code, out, err = await xfrmctl(client, "link", "set", "dev", "eth0", "impair", *words)
    assert (code, err) == (0, "")
    assert out == (
        "eth0: impair loss 5% delay 10ms 1ms limit 1000 seed 3\n"
        "    packets 0 dropped 0 duplicated 0 corrupted 0 reordered 0 sent 0 waiting 0\n"
    )
    reply = await client.get_impairment("eth0")
    assert (reply.impairment.loss_percent, reply.impairment.jitter_us) == (5, 1000)
    code, shown, _ = await xfrmctl(client, "link", "show", "eth0")
    assert (code, shown) == (0, out)
    code, out, _ = await xfrmctl(client, "link", "set", "eth0", "impair", "none")
    assert (code, out) == (0, "eth0: impair none\n")
    code, _, err = await xfrmctl(client, "link", "set", "eth0", "impair", "reorder", "5")
    assert code == 1 and "reordering not possible without specifying some delay" in err
    code, _, err = await xfrmctl(client, "link", "set", "eth0", "impair", "loss", "200")
    assert code == 2 and "expected the loss as a percentage 0-100" in err

"""PacketStream as a transport: concurrency, order, flow control, shutdown, bad first messages.

The shutdown test runs xfrm-offloadd as a subprocess, so its exit code is its own. No
test here reads a clock: they wait on the server's states and events (bounded loops).
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client
from xfrm_offload.client.errors import XfrmOffloadError
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from .builders import KEY, Tunnel, packets, policy, sa, udp4

TX, RX = pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX
SERVER = [sys.executable, "-m", "xfrm_offload.server"]
DEVICES = ("eth0", "eth1", "eth2", "eth3")
PER_STREAM = 2000
BATCH = 64
#: Outbound A -> B and inbound B -> A: two SAs on one device, two SPIs.
OUT = Tunnel()
IN = Tunnel(
    outer_src="192.0.2.2",
    outer_dst="192.0.2.1",
    inner_src="203.0.113.0/24",
    inner_dst="198.51.100.0/24",
    spi=0x2002,
    reqid=2,
)


def peer_sa(t: Tunnel) -> SecurityAssociation:
    """The far end's SA (same key and SPI), in the engine, in this process."""
    return SecurityAssociation(
        SAConfig(
            daddr=ipaddress.ip_address(t.outer_dst),
            saddr=ipaddress.ip_address(t.outer_src),
            spi=t.spi,
            mode=Mode.TUNNEL,
            replay_window=1024,
            aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
        ),
        0.0,
    )


def batches_of(data: list[bytes], size: int = BATCH) -> list[list[pb.Packet]]:
    return [
        [pb.Packet(id=i, data=data[i]) for i in range(start, min(start + size, len(data)))]
        for start in range(0, len(data), size)
    ]


async def run_stream(
    client: Client, dev: str, direction: int, data: list[bytes]
) -> list[pb.PacketResult]:
    results: list[pb.PacketResult] = []
    async for reply in client.packet_stream(dev, direction, batches_of(data)):  # type: ignore[arg-type]
        results.extend(reply.results)
        await asyncio.sleep(0)  # let the other streams interleave
    return results


async def test_eight_concurrent_streams_on_four_devices(sock_dir: Path) -> None:
    args = [a for d in DEVICES for a in ("--device", d)]
    async with running_server(sock_dir, *args) as (_, client):
        for dev in DEVICES:
            for t, inbound in ((OUT, False), (IN, True)):
                assert (await client.state_add(sa(t, dev, inbound))).offloaded
                await client.policy_add(policy(t, dev, inbound))
        tx_data = {
            d: packets(udp4, "198.51.100.10", "203.0.113.20", PER_STREAM, 100 + 8 * k)
            for k, d in enumerate(DEVICES)
        }
        rx_plain = {
            d: packets(udp4, "203.0.113.20", "198.51.100.10", PER_STREAM, 200 + 8 * k)
            for k, d in enumerate(DEVICES)
        }
        rx_wire = {d: peer_sa(IN).encap_batch(rx_plain[d], 1.0) for d in DEVICES}
        async with asyncio.timeout(60):
            tasks = [
                *(run_stream(client, d, TX, tx_data[d]) for d in DEVICES),
                *(run_stream(client, d, RX, rx_wire[d]) for d in DEVICES),  # type: ignore[arg-type]
            ]
            outcome = await asyncio.gather(*tasks)
        for dev, tx, rx in zip(DEVICES, outcome[:4], outcome[4:], strict=True):
            assert [r.id for r in tx] == list(range(PER_STREAM))
            assert [r.id for r in rx] == list(range(PER_STREAM))
            assert {(r.verdict, r.drop_reason) for r in tx + rx} == {(pb.VERDICT_PASS, "")}
            # per-SA order: the ESP sequence numbers follow the packets' order exactly
            wire = [r.data for r in tx]
            assert [int.from_bytes(w[24:28], "big") for w in wire] == list(range(1, PER_STREAM + 1))
            assert peer_sa(OUT).decap_batch(wire, 1.0) == tx_data[dev]
            assert [r.data for r in rx] == rx_plain[dev]
        stats = await client.get_stats()
        assert {c.name: c.value for c in stats.total if c.value} == {}


async def test_a_first_message_without_a_valid_dev_or_direction_is_refused(
    sock_dir: Path,
) -> None:
    async with running_server(sock_dir) as (_, client):
        one = [[pb.Packet(id=1, data=udp4("198.51.100.1", "203.0.113.1", b"x"))]]
        cases = [
            ("nope", TX, grpc.StatusCode.NOT_FOUND, "dev"),
            ("", TX, grpc.StatusCode.NOT_FOUND, "dev"),
            (
                "eth0",
                pb.PACKET_DIRECTION_UNSPECIFIED,
                grpc.StatusCode.INVALID_ARGUMENT,
                "direction",
            ),
            ("eth0", 7, grpc.StatusCode.INVALID_ARGUMENT, "direction"),
        ]
        for dev, direction, code, field in cases:
            with pytest.raises(XfrmOffloadError) as refused:
                async for _ in client.packet_stream(dev, direction, one):  # type: ignore[arg-type]
                    pass
            assert refused.value.code == code
            assert refused.value.field == field, (dev, direction)

        async def switching() -> AsyncIterator[pb.PacketStreamRequest]:
            yield pb.PacketStreamRequest(dev="eth0", direction=TX, packets=one[0])
            yield pb.PacketStreamRequest(dev="eth0", direction=RX, packets=one[0])

        call = client.datapath.PacketStream(switching())
        replies = []
        with pytest.raises(grpc.aio.AioRpcError) as switched:
            async for reply in call:
                replies.append(reply)
        assert len(replies) == 1  # the first batch was answered
        assert switched.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- the server as a process ---------------------------------------------------------------


@contextmanager
def server_process(sock: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*SERVER, "--listen", f"unix:{sock}", "--log-level", "warning", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


async def connect(sock: Path) -> Client:
    deadline = time.monotonic() + 15
    while not sock.exists():
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.05)
    client = Client(f"unix:{sock}", timeout=10)
    await client.wait_ready()
    return client


async def test_a_reader_that_does_not_read_stalls_the_sender_and_nothing_is_lost(
    sock_dir: Path,
) -> None:
    """The client sends and does not read: the server stops reading (its packet budget
    is taken, its stream waits on it) and gRPC's flow control holds the client back.
    Then the client stops sending and reads: every batch it sent was answered, and the
    out SA counted exactly their packets."""
    async with running_server(sock_dir, "--packet-budget", "1") as (server, client):
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        batch = [
            pb.Packet(id=i, data=p)
            for i, p in enumerate(packets(udp4, "198.51.100.10", "203.0.113.20", 256, 1400))
        ]
        request = pb.PacketStreamRequest(dev="eth0", direction=TX, packets=batch)
        budget = server.datapath.budget  # 1 MiB: one batch (charged 1 MiB) at a time
        sent = 0
        limit = 5000  # ~1.8 GB if nothing held it back: the bound of the loop

        async def flood() -> AsyncIterator[pb.PacketStreamRequest]:
            nonlocal sent
            while sent < limit and not budget.waits:  # until the server holds us back
                yield request
                sent += 1

        call = client.datapath.PacketStream(flood())  # not read until the flood ends
        for _ in range(2000):
            if budget.waits:
                break
            await asyncio.sleep(0.01)
        assert budget.waits, f"the server never held the stream back ({sent} sent)"
        assert 0 < sent < 500, sent  # held back far below the loop's bound
        assert budget.peak <= budget.limit
        answers = [reply async for reply in call]
        assert await call.code() == grpc.StatusCode.OK
        assert len(answers) == sent
        assert all(len(a.results) == 256 for a in answers)
        states = await client.list_states("eth0")
        assert states[0].curlft.packets == 256 * sent  # exactly: nothing lost, nothing doubled
        assert budget.held == 0


async def test_sigterm_with_a_stream_mid_flight(sock_dir: Path) -> None:
    sock = sock_dir / "st.sock"
    with server_process(sock, "--grace", "60") as proc:
        client = await connect(sock)
        try:
            assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
            await client.policy_add(policy(OUT, "eth0", False))
            data = packets(udp4, "198.51.100.10", "203.0.113.20", 64, 200)
            answered = asyncio.Event()
            go_on = asyncio.Event()

            async def requests() -> AsyncIterator[pb.PacketStreamRequest]:
                for i in range(50):
                    yield pb.PacketStreamRequest(
                        dev="eth0", direction=TX, packets=[pb.Packet(id=i, data=data[i])]
                    )
                    if i == 9:
                        await go_on.wait()  # stream open, request side idle, mid-flight

            call = client.datapath.PacketStream(requests())
            got: list[pb.PacketResult] = []

            async def read() -> None:
                async for reply in call:
                    got.extend(reply.results)
                    if len(got) == 10:
                        answered.set()

            reader = asyncio.create_task(read())
            await asyncio.wait_for(answered.wait(), 10)
            proc.send_signal(signal.SIGTERM)
            # The server stops reading the open stream, answers what it had, and ends it
            # with OK at once: the stream ends although the grace period (60 s) is far
            # longer than this bound, so it was not waited out. Every batch sent before
            # the signal was answered.
            await asyncio.wait_for(reader, 30)
            assert await call.code() == grpc.StatusCode.OK
            assert [r.id for r in got] == list(range(10))
            go_on.set()
        finally:
            await client.close()
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert not sock.exists()

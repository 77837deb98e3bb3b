"""PacketStream's two wire forms: the packed PacketBatch gives exactly what repeated Packet
gives; malformed batches are refused naming the field; a cancelled stream leaves no
traceback and gives back what it held."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client.errors import XfrmOffloadError
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from .builders import Tunnel, packets, policy, sa, udp4
from .test_streams import peer_sa

TX, RX = pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX
OUT = Tunnel()
BLOCKED = ("198.51.100.10", "192.0.2.200")  # no policy: bypass, out as it came


async def test_batch_form_answers_exactly_as_the_packet_form(sock_dir: Path) -> None:
    """Two devices with the same SA (same salt, so the same ESP bytes); one gets Packet
    messages, the other the packed form, with a mix of ESP, bypass and dropped packets."""
    async with running_server(sock_dir, "--device", "eth0", "--device", "eth1") as (_, client):
        for dev in ("eth0", "eth1"):
            assert (await client.state_add(sa(OUT, dev, False))).offloaded
            await client.policy_add(policy(OUT, dev, False))
        esp = packets(udp4, "198.51.100.10", "203.0.113.20", 300, 200)
        bypass = packets(udp4, *BLOCKED, 3, 60)
        data = esp[:100] + bypass[:1] + [b"\x45\x00"] + esp[100:] + bypass[1:]
        old = [
            r
            async for reply in client.packet_stream(
                "eth0", TX, [[pb.Packet(id=i, data=d) for i, d in enumerate(data)]]
            )
            for r in reply.results
        ]
        (new,) = [r async for r in client.packet_batches("eth1", TX, [pb.PacketBatch(data=data)])]
        assert len(old) == len(new.verdict) == len(data) == 304
        assert list(new.verdict) == [r.verdict for r in old]
        # The same packets came out (ESP under a random per-SA salt: compared decrypted).
        assert [len(d) for d in new.data] == [len(r.data) for r in old]
        esp_at = [i for i, d in enumerate(new.data) if d[9:10] == b"\x32"]
        assert len(esp_at) == 300
        assert [new.data[i] for i in range(len(data)) if i not in esp_at] == [
            old[i].data for i in range(len(data)) if i not in esp_at
        ]
        for wire in ([new.data[i] for i in esp_at], [old[i].data for i in esp_at]):
            assert peer_sa(OUT).decap_batch(wire, 1.0) == esp
        handle = {r.offload_handle for r in old} - {0}, set(new.offload_handle) - {0}
        assert len(handle[0]) == len(handle[1]) == 1  # each device's own state
        assert [h != 0 for h in new.offload_handle] == [r.offload_handle != 0 for r in old]
        assert list(new.drop_reason) == [XfrmStat.OUT_ERROR.value]
        assert [r.drop_reason for r in old if r.verdict == pb.VERDICT_DROP] == ["XfrmOutError"]
        assert list(new.crypto_status) == []  # no crypto-offload packet in the batch
        # ESP numbered in packet order across the 256-packet chunks of the batch.
        seqs = [int.from_bytes(new.data[i][24:28], "big") for i in esp_at]
        assert seqs == list(range(1, 301))
        # A batch over 1 MiB is read and answered a part at a time: the same result.
        large = packets(udp4, "198.51.100.10", "203.0.113.20", 900, 1400)
        (big,) = [r async for r in client.packet_batches("eth1", TX, [pb.PacketBatch(data=large)])]
        assert list(big.verdict) == [pb.VERDICT_PASS] * 900
        assert [int.from_bytes(w[24:28], "big") for w in big.data] == list(range(301, 1201))
        receiver = peer_sa(OUT)
        receiver.decap_batch([new.data[i] for i in esp_at], 1.0)  # its window past 300
        assert receiver.decap_batch(list(big.data), 1.0) == large
        # An empty batch is answered in the same form.
        (empty,) = [r async for r in client.packet_batches("eth1", TX, [pb.PacketBatch()])]
        assert list(empty.verdict) == []


async def test_later_requests_may_leave_out_dev_and_direction(sock_dir: Path) -> None:
    async with running_server(sock_dir) as (_, client):
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 4, 100)

        async def requests() -> AsyncIterator[pb.PacketStreamRequest]:
            yield pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data))
            yield pb.PacketStreamRequest(batch=pb.PacketBatch(data=data))  # same stream: TX

        replies = [r async for r in client.datapath.PacketStream(requests())]
        seqs = [int.from_bytes(d[24:28], "big") for r in replies for d in r.batch.data]
        assert seqs == list(range(1, 9))  # both batches encapsulated, in order


@pytest.mark.parametrize(
    ("batch", "field"),
    [
        (pb.PacketBatch(data=[b"x", b"y"], offload_handle=[1]), "batch.offload_handle"),
        (pb.PacketBatch(data=[b"x"], offload_handle=[1], seq=[1, 2]), "batch.seq"),
    ],
)
async def test_a_batch_whose_arrays_disagree_is_refused(
    sock_dir: Path, batch: pb.PacketBatch, field: str
) -> None:
    async with running_server(sock_dir) as (_, client):
        with pytest.raises(XfrmOffloadError) as refused:
            async for _ in client.packet_batches("eth0", TX, [batch]):
                pass
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.field == field


async def test_a_request_with_both_forms_is_refused(sock_dir: Path) -> None:
    async with running_server(sock_dir) as (_, client):

        async def both() -> AsyncIterator[pb.PacketStreamRequest]:
            yield pb.PacketStreamRequest(
                dev="eth0",
                direction=TX,
                packets=[pb.Packet(id=1, data=b"x")],
                batch=pb.PacketBatch(data=[b"y"]),
            )

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in client.datapath.PacketStream(both()):
                pass
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("workers", [(), ("--workers", "1")], ids=["inline", "workers"])
async def test_a_stream_cancelled_mid_flight_logs_nothing_and_gives_back_what_it_held(
    sock_dir: Path, caplog: pytest.LogCaptureFixture, workers: tuple[str, ...]
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(sock_dir, *workers) as (server, client):
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        request = pb.PacketStreamRequest(
            dev="eth0",
            direction=TX,
            batch=pb.PacketBatch(data=packets(udp4, "198.51.100.10", "203.0.113.20", 256, 1400)),
        )
        datapath = server.datapath
        for round_ in range(6):
            sent = 0

            async def flood() -> AsyncIterator[pb.PacketStreamRequest]:
                nonlocal sent
                while sent < 200:  # bounded; the stream is cancelled long before
                    yield request
                    sent += 1

            call = client.datapath.PacketStream(flood())
            for _ in range(1 + round_):  # 1..6 answers read, then no more
                await call.read()
            if round_ % 2:
                # Cancelled while the server waits to write an answer the client does not
                # take (it used to log an ExecuteBatchError traceback then).
                for _ in range(500):
                    if datapath.writing:
                        break
                    await asyncio.sleep(0.01)
                assert datapath.writing == 1
            call.cancel()
            for _ in range(500):  # wait for the server's side of the stream to end
                if datapath.open_streams == 0 and datapath.budget.held == 0:
                    break
                await asyncio.sleep(0.01)
            assert datapath.open_streams == 0
            assert datapath.budget.held == 0
            assert server.calls.in_flight == 0
        # The device keeps serving, and the server said nothing about the cancellations.
        assert [d.name for d in await client.list_devices()] == ["eth0"]
    # (gRPC's client side logs its own cancelled request iterator at DEBUG: not ours.)
    server_side = [r for r in caplog.records if not r.name.startswith("grpc.aio._call")]
    assert [r for r in server_side if r.exc_info or "Traceback" in r.getMessage()] == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

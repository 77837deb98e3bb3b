"""Requests have a size limit (--max-request, default 4 MiB): gRPC core refuses a larger
message RESOURCE_EXHAUSTED before the server copies it; the client library sends a batch
larger than 4 MiB as several requests, answered as the one batch would have been."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from xfrm_offload.client import Client, split
from xfrm_offload.server.config import parse_args
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.transport import (
    DEFAULT_MAX_REQUEST_BYTES,
    MAX_MESSAGE_BYTES,
    PACKET_REQUEST_BYTES,
)

from ..conftest import running_server
from .builders import Tunnel, packets, policy, sa, udp4
from .test_streams import peer_sa

TX = pb.PACKET_DIRECTION_TX
OUT = Tunnel()
MIB = 1 << 20


def test_the_limit_is_4_mib_by_default_and_at_most_the_answers_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_args([]).max_request == DEFAULT_MAX_REQUEST_BYTES == 4 * MIB
    assert Client.packet_request_limit == PACKET_REQUEST_BYTES == 4 * MIB
    assert parse_args(["--max-request", "16"]).max_request == 16 * MIB
    with pytest.raises(SystemExit) as exited:
        parse_args(["--max-request", "65"])
    assert exited.value.code == 2
    assert "--max-request: at most 64 (the answers' limit)" in capsys.readouterr().err
    assert MAX_MESSAGE_BYTES == 64 * MIB


async def test_a_request_over_the_limit_is_refused_before_the_server_sees_it(
    sock_dir: Path,
) -> None:
    """gRPC core's own answer, on packet and control calls alike; nothing is charged,
    the SAs stay, and the server goes on."""
    async with running_server(sock_dir, "--max-request", "1") as (server, client):
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 800, 1400)
        request = pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data))
        size = request.ByteSize()
        assert size > MIB

        async def one() -> AsyncIterator[pb.PacketStreamRequest]:
            yield request

        call = client.datapath.PacketStream(one())  # the stub: no splitting
        with pytest.raises(aio.AioRpcError) as raised:
            async for _ in call:
                pass
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # gRPC core's own words (its prefix has changed between releases): both sizes
        assert f"Received message larger than max ({size} vs. {MIB})" in (
            raised.value.details() or ""
        )
        assert server.datapath.budget.held == 0  # never reached the servicer
        # A control request over the limit: the same answer.
        many = []
        for i in range(MIB // 100):
            state = sa(OUT, "eth0", False)
            state.id.spi = 0x10000 + i
            many.append(state)
        bulk = pb.StateAddBulkRequest(sas=many)
        assert bulk.ByteSize() > MIB
        with pytest.raises(aio.AioRpcError) as control:
            await client.xfrmdev.StateAddBulk(iter([bulk]))  # the stub: no splitting
        assert control.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"({bulk.ByteSize()} vs. {MIB})" in (control.value.details() or "")
        assert len(await client.list_states()) == 1  # nothing of it was added
        # The library sends the same batch as messages under the limit: all added.
        client.packet_request_limit = MIB
        added = await client.state_add_bulk([many])
        assert added.added == len(many) and added.failed == 0
        assert len(await client.list_states()) == 1 + len(many)
        # The server goes on: the same packets in requests under the limit pass.
        half = pb.PacketBatch(data=data[:400])
        (result,) = [r async for r in client.packet_batches("eth0", TX, [half])]
        assert list(result.verdict) == [pb.VERDICT_PASS] * 400


@pytest.mark.parametrize("form", ["batch", "packets"])
async def test_the_client_splits_a_batch_over_the_limit_and_joins_the_answers(
    sock_dir: Path, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_server(sock_dir, "--max-request", "1") as (server, client):
        monkeypatch.setattr(client, "packet_request_limit", MIB)
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        esp = packets(udp4, "198.51.100.10", "203.0.113.20", 2000, 1400)
        data = [*esp[:1000], b"\x45\x00", *esp[1000:]]  # one malformed packet: dropped
        requests = split.parts(
            pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data)), MIB
        )
        assert len(requests) == 3 and all(r.ByteSize() <= MIB for r in requests)
        if form == "batch":
            replies = [
                r async for r in client.packet_batches("eth0", TX, [pb.PacketBatch(data=data)] * 2)
            ]
            assert len(replies) == 2  # one answer per batch, however many requests it took
            verdicts = [list(r.verdict) for r in replies]
            outputs = [list(r.data) for r in replies]
            assert [list(r.drop_reason) for r in replies] == [["XfrmOutError"]] * 2
        else:
            batch = [pb.Packet(id=100 + i, data=d) for i, d in enumerate(data)]
            replies_p = [r async for r in client.packet_stream("eth0", TX, [batch] * 2)]
            assert len(replies_p) == 2
            assert [[r.id for r in reply.results] for reply in replies_p] == [
                [100 + i for i in range(len(data))]
            ] * 2
            verdicts = [[r.verdict for r in reply.results] for reply in replies_p]
            outputs = [[r.data for r in reply.results] for reply in replies_p]
        expect = [pb.VERDICT_PASS] * 1000 + [pb.VERDICT_DROP] + [pb.VERDICT_PASS] * 1000
        assert verdicts == [expect] * 2
        # ESP numbered in packet order across the parts and the two batches.
        wire = [d for out in outputs for d in out if d]
        assert [int.from_bytes(w[24:28], "big") for w in wire] == list(range(1, 4001))
        assert peer_sa(OUT).decap_batch(wire, 1.0) == esp + esp
        assert server.datapath.budget.held == 0


def test_join_gives_crypto_status_one_per_packet_when_any_part_has_them() -> None:
    plain = pb.PacketStreamResponse(
        batch=pb.PacketBatchResult(verdict=[pb.VERDICT_PASS] * 2, data=[b"a", b"b"])
    )
    crypto = pb.PacketStreamResponse(
        batch=pb.PacketBatchResult(
            verdict=[pb.VERDICT_PASS],
            data=[b"c"],
            offload_handle=[7],
            crypto_status=[pb.CRYPTO_STATUS_SUCCESS],
        )
    )
    whole = split.join_replies([plain, crypto]).batch
    assert list(whole.verdict) == [pb.VERDICT_PASS] * 3
    assert list(whole.data) == [b"a", b"b", b"c"]
    assert list(whole.crypto_status) == [
        pb.CRYPTO_STATUS_UNSPECIFIED,
        pb.CRYPTO_STATUS_UNSPECIFIED,
        pb.CRYPTO_STATUS_SUCCESS,
    ]
    assert split.join_replies([plain]) is plain


def test_parts_cut_in_packet_order_and_keep_handles_and_seqs_with_their_packets() -> None:
    data = [bytes([i]) * 1000 for i in range(10)]
    request = pb.PacketStreamRequest(
        dev="eth0",
        direction=TX,
        batch=pb.PacketBatch(data=data, offload_handle=range(10), seq=range(100, 110)),
    )
    pieces = split.parts(request, 4096)
    assert all(p.ByteSize() <= 4096 and p.dev == "eth0" and p.direction == TX for p in pieces)
    assert [d for p in pieces for d in p.batch.data] == data
    assert [h for p in pieces for h in p.batch.offload_handle] == list(range(10))
    assert [s for p in pieces for s in p.batch.seq] == list(range(100, 110))
    assert split.parts(request, request.ByteSize()) == [request]


def test_parts_leave_room_for_a_long_device_name_and_never_drop_a_form() -> None:
    data = [bytes([i]) * 1000 for i in range(10)]
    dev = "d" * 2000  # longer than any fixed room the head could be given
    request = pb.PacketStreamRequest(dev=dev, direction=TX, batch=pb.PacketBatch(data=data))
    pieces = split.parts(request, 4096)
    assert len(pieces) > 1 and all(p.ByteSize() <= 4096 and p.dev == dev for p in pieces)
    assert [d for p in pieces for d in p.batch.data] == data
    # Both forms at once (which the server refuses): sent as it is, nothing dropped.
    both = pb.PacketStreamRequest(
        dev="eth0",
        direction=TX,
        batch=pb.PacketBatch(data=data),
        packets=[pb.Packet(id=1, data=d) for d in data],
    )
    assert split.parts(both, 4096) == [both]


async def test_the_client_librarys_default_requests_fit_a_4_mib_server(sock_dir: Path) -> None:
    """A 5 MiB batch through the library, as it is by default, passes a server that
    refuses requests over 4 MiB: none of the requests it sent was larger."""
    async with running_server(sock_dir, "--max-request", "4") as (_, client):
        assert (await client.state_add(sa(OUT, "eth0", False))).offloaded
        await client.policy_add(policy(OUT, "eth0", False))
        data = packets(udp4, "198.51.100.10", "203.0.113.20", 3700, 1400)
        assert pb.PacketBatch(data=data).ByteSize() > PACKET_REQUEST_BYTES
        (result,) = [
            r async for r in client.packet_batches("eth0", TX, [pb.PacketBatch(data=data)])
        ]
        assert list(result.verdict) == [pb.VERDICT_PASS] * 3700

"""Packet batches larger than one PacketStream request may be: sent as several requests,
their answers joined into one.

The client library sends PacketStream requests of at most ``PACKET_REQUEST_BYTES``
(``xfrm_offload.v1.transport`` says why; a server may refuse larger ones, its
``--max-request``). ``parts`` cuts a
larger request, in packet order, into requests under the limit; the server answers each
part in order on the same stream, and ``join`` makes the one response the whole request
would have had (the same results, in the same order). A single packet larger than the
limit goes alone, and the server answers it RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

#: An upper bound of what one packet adds to a request beyond its bytes: the data
#: entry's tag and length, and a handle and a sequence number as varints (the
#: ``packets`` form: also the Packet message's tag, length and id).
PACKET_OVERHEAD = 64
#: Room kept beyond the request's dev and direction: the batch's own tag and length, and
#: the tags and lengths of its packed handle and sequence fields.
FRAMING = 32

T = TypeVar("T")


def _runs(sizes: Sequence[int], room: int) -> list[range]:
    """Consecutive index ranges whose packets (with their overhead) fit in ``room``."""
    runs: list[range] = []
    start = total = 0
    room = max(room, 1)
    for i, size in enumerate(sizes):
        cost = size + PACKET_OVERHEAD
        if i > start and total + cost > room:
            runs.append(range(start, i))
            start, total = i, 0
        total += cost
    runs.append(range(start, len(sizes)))
    return runs


def _cut(values: Sequence[T], run: range) -> Sequence[T]:
    """``values`` of the packets in ``run`` (an empty field stays empty)."""
    return values[run.start : run.stop] if values else values


def parts(request: pb.PacketStreamRequest, limit: int) -> list[pb.PacketStreamRequest]:
    """``request`` as requests of at most ``limit`` bytes each (itself if it fits)."""
    if request.ByteSize() <= limit or (request.packets and request.HasField("batch")):
        return [request]  # (both forms at once: the server refuses it, whole)
    dev, direction = request.dev, request.direction
    room = limit - pb.PacketStreamRequest(dev=dev, direction=direction).ByteSize() - FRAMING
    if request.HasField("batch"):
        batch = request.batch
        data, handles, seqs = list(batch.data), list(batch.offload_handle), list(batch.seq)
        return [
            pb.PacketStreamRequest(
                dev=dev,
                direction=direction,
                batch=pb.PacketBatch(
                    data=data[run.start : run.stop],
                    offload_handle=_cut(handles, run),
                    seq=_cut(seqs, run),
                ),
            )
            for run in _runs([len(d) for d in data], room)
        ]
    packets = list(request.packets)
    return [
        pb.PacketStreamRequest(dev=dev, direction=direction, packets=packets[run.start : run.stop])
        for run in _runs([len(p.data) for p in packets], room)
    ]


def join_replies(replies: Sequence[pb.PacketStreamResponse]) -> pb.PacketStreamResponse:
    """The one response of the parts' ``replies`` (in order)."""
    if len(replies) == 1:
        return replies[0]
    whole = pb.PacketStreamResponse()
    if not any(r.HasField("batch") for r in replies):
        for reply in replies:
            whole.results.extend(reply.results)
        return whole
    out = whole.batch
    crypto = any(r.batch.crypto_status for r in replies)
    for reply in replies:
        part = reply.batch
        out.verdict.extend(part.verdict)
        out.data.extend(part.data)
        out.offload_handle.extend(part.offload_handle)
        out.drop_reason.extend(part.drop_reason)
        if crypto:  # one status per packet once any part has them
            out.crypto_status.extend(
                part.crypto_status or [pb.CRYPTO_STATUS_UNSPECIFIED] * len(part.verdict)
            )
    return whole


async def split_requests(
    requests: AsyncIterator[pb.PacketStreamRequest], limit: int, counts: list[int]
) -> AsyncIterator[pb.PacketStreamRequest]:
    """Each request's ``parts``; how many each became is appended to ``counts`` before
    the first of them is sent (so it is known when their answers come)."""
    async for request in requests:
        pieces = parts(request, limit)
        counts.append(len(pieces))
        for piece in pieces:
            yield piece


def state_parts(sas: Sequence[xpb.XfrmUsersaInfo], limit: int) -> list[pb.StateAddBulkRequest]:
    """One StateAddBulk batch as messages of at most ``limit`` bytes each (in order): a
    server refuses a larger request whole (its --max-request)."""
    sizes = [sa.ByteSize() for sa in sas]
    return [
        pb.StateAddBulkRequest(sas=sas[run.start : run.stop])
        for run in _runs(sizes, limit - FRAMING)
    ]

"""Packet batches larger than one PacketStream request may be: sent as several requests,
their answers joined into one.

The client library sends PacketStream requests of at most ``PACKET_REQUEST_BYTES``
(``xfrm_offload.v1.transport`` says why; a server may refuse larger ones, its
``--max-request``). ``parts`` cuts a
larger request, in packet order, into requests under the limit; the server answers each
part in order on the same stream, and ``join`` makes the one response the whole request
would have had (the same results, in the same order). A single packet larger than the
limit goes alone, and the server answers it RESOURCE_EXHAUSTED.

``BatchRequests`` makes the same requests' bytes by hand, straight from the packets (views
of a mapped capture): what ``xfrmctl packet`` sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb
from xfrm_offload.v1.wire import varint

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


class _DataHeads(dict[int, bytes]):
    """The tag and length of a ``PacketBatch.data`` entry (field 1, length-delimited), by
    the entry's length: each made once, on first use."""

    def __missing__(self, length: int) -> bytes:
        head = self[length] = b"\x0a" + varint(length)
        return head


_DATA_HEADS = _DataHeads()
#: ``PacketStreamRequest.batch``'s tag (field 4, length-delimited).
_BATCH_TAG = b"\x22"


class BatchRequests:
    """Serialized PacketStreamRequests for one device and direction, built by hand: a
    PacketBatch as the bytes ``SerializeToString`` makes of ``parts``'s requests for it.

    A packet is any bytes-like object (a memoryview of a mapped capture): joining the
    pieces copies each packet once, where building the message and serializing it copy
    each twice more (and a bytes copy out of a mapping costs about four views). The
    handles and sequence numbers are few bytes and still serialized by protobuf.
    """

    def __init__(self, dev: str, direction: pb.PacketDirection, limit: int) -> None:
        # dev and direction: fields 1 and 2, before the batch (field 4), as protobuf
        # writes them (nothing for an empty dev or direction 0).
        self._head = pb.PacketStreamRequest(dev=dev, direction=direction).SerializeToString()
        self._limit = limit
        self._room = limit - len(self._head) - FRAMING  # what ``parts`` leaves a part

    def parts(
        self,
        data: Sequence[bytes | memoryview],
        handles: Sequence[int] = (),
        seqs: Sequence[int] = (),
    ) -> list[bytes]:
        """The requests of one PacketBatch(data, offload_handle, seq), serialized: one
        request, or the parts of at most ``limit`` bytes each that ``parts`` would make."""
        lengths = list(map(len, data))
        heads = list(map(_DATA_HEADS.__getitem__, lengths))
        tail = self._numbers(handles, seqs)
        body = sum(lengths) + sum(map(len, heads)) + len(tail)
        if len(self._head) + len(_BATCH_TAG) + len(varint(body)) + body <= self._limit:
            return [self._request(data, heads, tail, body)]
        requests = []
        for run in _runs(lengths, self._room):
            cut = slice(run.start, run.stop)
            tail = self._numbers(_cut(handles, run), _cut(seqs, run))
            body = sum(lengths[cut]) + sum(map(len, heads[cut])) + len(tail)
            requests.append(self._request(data[cut], heads[cut], tail, body))
        return requests

    @staticmethod
    def _numbers(handles: Sequence[int], seqs: Sequence[int]) -> bytes:
        """PacketBatch fields 2 and 3, after the data in field order."""
        if not handles and not seqs:
            return b""
        return pb.PacketBatch(offload_handle=handles, seq=seqs).SerializeToString()

    def _request(
        self,
        data: Sequence[bytes | memoryview],
        heads: Sequence[bytes],
        tail: bytes,
        body: int,
    ) -> bytes:
        n = len(data)
        pieces: list[bytes | memoryview] = [b""] * (2 * n + 4)
        pieces[0:3] = (self._head, _BATCH_TAG, varint(body))
        pieces[3 : 3 + 2 * n : 2] = heads
        pieces[4 : 4 + 2 * n : 2] = data
        pieces[-1] = tail
        return b"".join(pieces)


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

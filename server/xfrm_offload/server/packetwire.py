"""PacketStream's wire formats <-> the engine's batches: the one place packets are decoded.

A request carries its packets in one of two forms, and its response answers in the same:

- ``packets``: one ``Packet`` message per packet (id, data, offload_handle, seq), answered
  by one ``PacketResult`` per packet (the original form);
- ``batch``: a ``PacketBatch`` of parallel arrays (the packets as ``repeated bytes``, the
  crypto-offload handles and sequence numbers as packed integers, empty when unused),
  answered by a ``PacketBatchResult`` (packed verdicts and handles, the outputs, one
  drop reason per DROP). No message per packet: it costs a third as much per packet to
  build, parse and answer at 1400 B (bench/packet_shape.py).

``decode`` turns a request into a ``Batch`` of engine values (bytes and ints); the
device host and the workers see nothing else. ``encode`` turns the engine's
``Results`` (one per chunk of the batch) into the response's bytes.

Both run the common shape of the ``batch`` form in C when ``_packetwire`` is built (a
request of dev, direction and data only; the packed answer): at 64 x 1400 B the protobuf
runtime's parse and the Python build of the answer take about 25 us of CPU per message,
the C about 10 (bench/packetwire.py). The Python here is the reference and the
fallback: the C decode hands every other request (and any it finds odd) back to the
runtime, which gives its exact answer or error, and the C encode makes exactly the bytes
``packed_pieces`` makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

from google.protobuf.message import DecodeError

from xfrm_offload.engine.datapath import DROP, PASS, Results
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.extensions import load_extension
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.wire import varint

#: The C codec of the common shapes, or None (not built: the Python below runs).
native = load_extension("xfrm_offload.server", "_packetwire")

#: Packets handed to the device in one call: between two calls, other work (control
#: calls, other streams) gets its turn, however large the batch.
CHUNK_PACKETS = 256


@dataclass(slots=True)
class Batch:
    """One request's packets as engine values, and how to answer it."""

    dev: str
    direction: int
    data: list[bytes]
    #: Crypto offload TX: per-packet state handles and sequence numbers (else empty).
    handles: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    #: The ``packets`` form: the caller's ids, echoed in its results. None: ``batch`` form.
    ids: list[int] | None = None

    def chunks(self) -> list[tuple[list[bytes], list[int], list[int]]]:
        """(data, handles, seqs) of each run of at most CHUNK_PACKETS packets."""
        n = len(self.data)
        if n <= CHUNK_PACKETS:
            return [(self.data, self.handles, self.seqs)]
        return [
            (
                self.data[i : i + CHUNK_PACKETS],
                self.handles[i : i + CHUNK_PACKETS],
                self.seqs[i : i + CHUNK_PACKETS],
            )
            for i in range(0, n, CHUNK_PACKETS)
        ]


def decode(raw: bytes) -> Batch:
    """A serialized PacketStreamRequest as a Batch (InvalidArgument if it is not one)."""
    if native is not None:
        common = native.decode_batch(raw)
        if common is not None:
            dev, direction, data = common
            return Batch(dev, direction, data)
    return decode_runtime(raw)


def decode_runtime(raw: bytes) -> Batch:
    """``decode`` by the protobuf runtime: the reference, and every request of a shape the
    C decode does not read."""
    try:
        request = pb.PacketStreamRequest.FromString(raw)
    except DecodeError:
        raise InvalidArgument("not a PacketStreamRequest", field="packets") from None
    if request.HasField("batch"):
        if request.packets:
            raise InvalidArgument("a request carries packets or batch, not both", field="batch")
        packed = request.batch
        data = list(packed.data)
        handles = list(packed.offload_handle)
        seqs = list(packed.seq)
        for name, values in (("offload_handle", handles), ("seq", seqs)):
            if values and len(values) != len(data):
                raise InvalidArgument(
                    f"batch.{name} has {len(values)} entries for {len(data)} packets "
                    "(give none or one per packet)",
                    field=f"batch.{name}",
                )
        if seqs and not handles:
            handles = [0] * len(data)
        return Batch(request.dev, request.direction, data, handles, seqs)
    packets = request.packets
    handles = [p.offload_handle for p in packets]
    crypto = any(handles)
    return Batch(
        request.dev,
        request.direction,
        [p.data for p in packets],
        handles if crypto else [],
        [p.seq for p in packets] if crypto else [],
        [p.id for p in packets],
    )


def read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``raw[pos]`` and the position after it (IndexError past the end,
    ValueError when longer than 64 bits)."""
    value = shift = 0
    while True:
        b = raw[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


#: Requests at least this large are read a part at a time (``Scanner``). The C decode
#: reads 16 MiB in about 3 ms of the event loop (64 MiB: 24 ms, bench/packetwire.py), so
#: with it every request of the default --max-request (4 MiB) is read in one call.
LARGE_REQUEST = 16 << 20 if native is not None else 1 << 20


class Scanner:
    """Reads a large ``batch``-form request's packets a part at a time, so that decoding a
    64 MiB request does not hold the event loop for the 100 ms the protobuf runtime
    takes. It reads the wire format for the common shape only (dev, direction, and a
    PacketBatch of data entries); anything else (handles, seqs, the packets form,
    unknown or repeated fields, bad bytes) sets ``plain``: then ``decode`` reads it."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.plain = False
        self.dev = ""
        self.direction = 0
        self.data: list[bytes] = []
        self.pos = self.end = 0
        try:
            self._head()
        except (IndexError, UnicodeDecodeError, ValueError):
            self.plain = True

    def _length(self, pos: int) -> tuple[int, int]:
        """A length field at ``pos``: ValueError where the runtime refuses it (written in
        more than 5 bytes, or 2**31 and more), so that it reads the request itself."""
        size, after = read_varint(self.raw, pos)
        if after - pos > 5 or size > 0x7FFFFFFF:
            raise ValueError("a length the runtime refuses")
        return size, after

    def _head(self) -> None:
        raw, pos, seen = self.raw, 0, set()
        while pos < len(raw):
            tag = raw[pos]
            if tag in seen or tag not in (0x0A, 0x10, 0x22):
                self.plain = True
                return
            seen.add(tag)
            if tag == 0x10:
                value, pos = read_varint(raw, pos + 1)
                # an int32 enum: the runtime keeps the low 32 bits, signed
                self.direction = ((value & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
                continue
            size, pos = self._length(pos + 1)
            if pos + size > len(raw):
                raise ValueError("truncated")
            if tag == 0x0A:
                self.dev = raw[pos : pos + size].decode()
            else:
                self.pos, self.end = pos, pos + size
            pos += size
        if 0x22 not in seen:
            self.plain = True

    def step(self, count: int) -> bool:
        """Read up to ``count`` more packets; True when the request is read (or ``plain``)."""
        if self.plain:
            return True
        raw, pos, end, data = self.raw, self.pos, self.end, self.data
        try:
            for _ in range(count):
                if pos >= end:
                    break
                if raw[pos] != 0x0A:  # handles, seqs or unknown: the runtime reads it
                    self.plain = True
                    return True
                b = raw[pos + 1]
                if b < 0x80:
                    size, pos = b, pos + 2
                elif raw[pos + 2] < 0x80:
                    size, pos = (b & 0x7F) | raw[pos + 2] << 7, pos + 3
                else:
                    size, pos = self._length(pos + 1)
                if pos + size > end:
                    raise ValueError("truncated")
                data.append(raw[pos : pos + size])
                pos += size
        except (IndexError, ValueError):
            self.plain = True
            return True
        self.pos = pos
        return pos >= end

    def batch(self) -> Batch:
        """The request read (``decode`` when it was not the common shape)."""
        if self.plain:
            return decode(self.raw)
        return Batch(self.dev, self.direction, self.data)


def encode(batch: Batch, results: Sequence[Results]) -> bytes:
    """The serialized PacketStreamResponse answering ``batch`` with its chunks' results."""
    if batch.ids is None:
        if native is not None:
            data = results[0].data if len(results) == 1 else list(chain(*(r.data for r in results)))
            built: bytes = native.encode_batch_result(
                _verdicts(results), data, b"".join(_tail(results))
            )
            return built
        return b"".join(packed_pieces(results, [data_pieces(r) for r in results]))
    response = pb.PacketStreamResponse()
    add = response.results.add
    ids = iter(batch.ids)
    for r in results:
        crypto = r.crypto
        drops = r.drops
        data = r.data
        handles = r.handle
        # Built in place, field by field: constructing each PacketResult with keywords
        # and copying it into the response cost about three times as much per packet.
        for i, verdict in enumerate(r.verdict):
            result = add()
            result.id = next(ids)
            result.offload_handle = handles[i]
            result.verdict = verdict  # type: ignore[assignment]  # Verdict values
            if verdict == DROP:
                result.drop_reason = drops[i]
            elif verdict == PASS:
                result.data = data[i]
            if crypto is not None and crypto[i]:
                result.crypto_status = crypto[i]  # type: ignore[assignment]
    return response.SerializeToString()


# -- the packed answer, encoded by hand ---------------------------------------------------
#
# A large batch's answer is built here, chunk by chunk, as pieces of the protobuf wire
# format (the same bytes PacketStreamResponse.SerializeToString makes for it, in field
# order), and joined at the end with one bytes.join, which runs without the GIL: the
# protobuf runtime serializes 64 MiB in one call of ~130 ms that holds the event loop.


#: The tag and length of a ``data`` entry (field 2, length-delimited), by length.
_DATA_HEAD = [b"\x12" + varint(n) for n in range(2048)]


def data_pieces(r: Results) -> list[bytes]:
    """One chunk's ``PacketBatchResult.data`` entries as wire-format pieces."""
    heads = _DATA_HEAD
    pieces: list[bytes] = []
    append = pieces.append
    for d in r.data:
        n = len(d)
        append(heads[n] if n < 2048 else b"\x12" + varint(n))
        append(d)
    return pieces


def _packed(field: int, values: Sequence[int]) -> list[bytes]:
    """A packed repeated varint field (nothing when empty)."""
    if not values:
        return []
    first = values[0]
    if values.count(first) == len(values):  # the common case: one state for the whole batch
        body = varint(first) * len(values)
    else:
        body = b"".join(map(varint, values))
    return [varint(field << 3 | 2), varint(len(body)), body]


def _strings(field: int, values: Sequence[str]) -> list[bytes]:
    tag = varint(field << 3 | 2)
    pieces: list[bytes] = []
    for value in values:
        raw = value.encode()
        pieces += (tag, varint(len(raw)), raw)
    return pieces


def _verdicts(results: Sequence[Results]) -> bytes:
    """The packed ``verdict`` field's body (Verdict values fit one byte)."""
    return b"".join(bytes(r.verdict) for r in results)


def _tail(results: Sequence[Results]) -> list[bytes]:
    """The PacketBatchResult's fields after ``data`` (3 offload_handle, 4 drop_reason, 5
    crypto_status) as pieces."""
    handles = results[0].handle if len(results) == 1 else [h for r in results for h in r.handle]
    pieces = _packed(3, handles)
    pieces += _strings(4, [str(r.drops[i]) for r in results for i in sorted(r.drops)])
    if any(r.crypto is not None for r in results):
        pieces += _packed(5, [c for r in results for c in (r.crypto or [0] * len(r))])
    return pieces


def packed_pieces(results: Sequence[Results], data: list[list[bytes]]) -> list[bytes]:
    """The whole serialized PacketStreamResponse (its ``batch`` field) as pieces to join;
    ``data`` holds each chunk's ``data_pieces``. (``_packetwire.encode_batch_result``
    makes the same bytes in one copy.)"""
    verdicts = _verdicts(results)
    inner: list[bytes] = []
    if verdicts:
        inner += (b"\x0a", varint(len(verdicts)), verdicts)
    for chunk in data:
        inner += chunk
    inner += _tail(results)
    size = sum(map(len, inner))
    return [b"\x12", varint(size), *inner]


def delivered(batch: Batch, results: Sequence[Results]) -> list[tuple[int, bytes]]:
    """(id, output) of every packet that came out, for taps and cables (a ``batch``-form
    packet's id is its index in the batch)."""
    items: list[tuple[int, bytes]] = []
    base = 0
    ids = batch.ids
    for r in results:
        data = r.data
        for i in r.passed():
            items.append((ids[base + i] if ids is not None else base + i, data[i]))
        base += len(r)
    return items

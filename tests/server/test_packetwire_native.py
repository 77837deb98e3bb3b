"""_packetwire.c against the protobuf runtime and packetwire's Python reference.

The C decode reads the common shape of a PacketStreamRequest (dev, direction, a batch of
data entries) and hands everything else back (None): whenever it answers, its answer is
the runtime's, and every plain SerializeToString of that shape it answers. The C encode
makes the packed answer's bytes exactly as ``packed_pieces`` and SerializeToString make
them. Exact cases first, then random and mutated messages (Hypothesis). Without the
extension the C cases skip; the runtime's side of the exact cases still runs.
"""

from __future__ import annotations

import random
import threading

import pytest
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet
from hypothesis import given, settings
from hypothesis import strategies as st

from xfrm_offload.engine.datapath import Results
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.server import packetwire
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.wire import varint

from .test_packetwire import _results, _upb

native = packetwire.native
needs_c = pytest.mark.skipif(native is None, reason="_packetwire.c not built")

#: Packet bytes: entry i of a generated batch is a slice of this at an offset of its own.
BLOB = random.Random(0).randbytes(3100)


def _varint(value: int, pad: int = 0) -> bytes:
    """``value`` (below 2**64) as a varint, ``pad`` redundant bytes longer but at most 10
    bytes (the runtime reads non-canonical varints of up to 10 bytes too)."""
    pad = min(pad, 10 - len(varint(value)))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value == 0 and pad == 0:
            out.append(byte)
            return bytes(out)
        if value == 0:
            pad -= 1
        out.append(byte | 0x80)


def _bytes_field(tag: int, body: bytes, pad: int = 0) -> bytes:
    return bytes([tag]) + _varint(len(body), pad) + body


def _direction(value: int, pad: int = 0) -> bytes:
    """Field 2 as the runtime writes an int32 (a negative one sign-extended to 10 bytes)."""
    return b"\x10" + _varint(value & (2**64 - 1) if value < 0 else value, pad)


def _batch(*data: bytes) -> bytes:
    return _bytes_field(0x22, b"".join(_bytes_field(0x0A, d) for d in data))


def _runtime(raw: bytes) -> tuple[str, int, list[bytes]] | None:
    """What the runtime reads in ``raw`` as a common-shape answer, None if it is not one
    (a DecodeError, no batch, packets, handles or seqs, unknown fields)."""
    try:
        request = pb.PacketStreamRequest.FromString(raw)
    except DecodeError:
        return None
    batch = request.batch
    if (
        not request.HasField("batch")
        or request.packets
        or batch.offload_handle
        or batch.seq
        or len(UnknownFieldSet(request))
        or len(UnknownFieldSet(batch))
    ):
        return None
    return (request.dev, request.direction, list(batch.data))


#: (name, request bytes, what the C decode gives: the runtime's answer, or None).
DECODE_CASES: list[tuple[str, bytes, tuple[str, int, list[bytes]] | None]] = [
    ("plain", b"\x0a\x04eth0\x10\x01" + _batch(b"ab", b""), ("eth0", 1, [b"ab", b""])),
    ("empty batch", b"\x22\x00", ("", 0, [])),
    ("batch only, no dev", _batch(b"x"), ("", 0, [b"x"])),
    ("fields in any order", _batch(b"x") + b"\x10\x02\x0a\x01a", ("a", 2, [b"x"])),
    ("batch twice merges", _batch(b"x") + _batch(b"y", b"z"), ("", 0, [b"x", b"y", b"z"])),
    ("dev twice: last wins", b"\x0a\x01a\x0a\x01b" + _batch(), ("b", 0, [])),
    ("empty dev last wins", b"\x0a\x01a\x0a\x00" + _batch(), ("", 0, [])),
    ("direction twice: last wins", b"\x10\x01\x10\x02" + _batch(), ("", 2, [])),
    ("unknown enum value kept", _direction(7) + _batch(), ("", 7, [])),
    ("negative enum value", _direction(-1) + _batch(), ("", -1, [])),
    ("int32 minimum", _direction(-(2**31)) + _batch(), ("", -(2**31), [])),
    ("low 32 bits of a wider varint", _direction(2**32 + 1) + _batch(), ("", 1, [])),
    ("5-byte varint, low 32 bits", b"\x10\xff\xff\xff\xff\x0f" + _batch(), ("", -1, [])),
    ("10th byte's high bits dropped", b"\x10" + b"\xff" * 9 + b"\x7f" + _batch(), ("", -1, [])),
    ("non-canonical length", b"\x0a\x81\x00a" + _batch(), ("a", 0, [])),
    ("non-canonical data length", b"\x22\x04\x0a\x81\x00z", ("", 0, [b"z"])),
    (
        "non-ASCII dev, NUL inside",
        _bytes_field(0x0A, "é\0ü𝄞".encode()) + _batch(),
        ("é\0ü𝄞", 0, []),
    ),
    ("long entry", _batch(BLOB[:3000]), ("", 0, [BLOB[:3000]])),
    ("11-byte varint", b"\x10" + b"\x80" * 10 + b"\x01" + _batch(), None),
    ("no batch: the packets form", b"\x0a\x01a\x10\x01", None),
    ("empty message", b"", None),
    ("packets", b"\x1a\x02\x12\x00" + _batch(), None),
    ("handles", b"\x22\x05\x0a\x01x\x12\x01\x01", None),
    ("seqs", b"\x22\x05\x0a\x01x\x1a\x01\x01", None),
    ("unknown field", _batch() + b"\x2a\x00", None),
    ("unknown field in the batch", b"\x22\x02\x48\x01", None),
    ("direction as length-delimited", b"\x12\x01\x01" + _batch(), None),
    ("non-canonical tag", b"\x8a\x00\x01a" + _batch(), None),
    ("bad UTF-8 in dev", b"\x0a\x02\xff\xfe" + _batch(), None),
    ("bad UTF-8 in an earlier dev", b"\x0a\x01\xff\x0a\x01a" + _batch(), None),
    ("UTF-8 surrogate", b"\x0a\x03\xed\xa0\x80" + _batch(), None),
    ("overlong UTF-8", b"\x0a\x02\xc0\x80" + _batch(), None),
    ("truncated tag value", _batch() + b"\x10", None),
    ("truncated dev", _batch() + b"\x0a\x05ab", None),
    ("truncated batch", b"\x22\x05\x0a\x01", None),
    ("entry past its batch", b"\x22\x02\x0a\x05abcde", None),
    ("truncated entry length", b"\x22\x02\x0a\x80", None),
    ("huge length", b"\x22\xff\xff\xff\xff\xff\xff\xff\xff\x7f", None),
    ("group start", _batch() + b"\x23", None),
]


@pytest.mark.parametrize(
    ("name", "raw", "expected"), DECODE_CASES, ids=[c[0] for c in DECODE_CASES]
)
def test_decode_cases(name: str, raw: bytes, expected: tuple[str, int, list[bytes]] | None) -> None:
    """The runtime reads each case as the table says (the C side's contract), and the C
    decode gives exactly that."""
    if expected is not None:
        assert _runtime(raw) == expected
        assert packetwire.decode(raw) == packetwire.Batch(*expected)
    if native is None:
        pytest.skip("_packetwire.c not built")
    assert native.decode_batch(raw) == expected


@needs_c
def test_decode_hands_back_what_it_does_not_read_to_the_runtime() -> None:
    """A request the C decode refuses gets the runtime's answer or its InvalidArgument."""
    handles = pb.PacketStreamRequest(
        dev="e", batch=pb.PacketBatch(data=[b"a", b"b"], offload_handle=[3, 3], seq=[1, 2])
    ).SerializeToString()
    assert native is not None and native.decode_batch(handles) is None
    assert packetwire.decode(handles) == packetwire.Batch("e", 0, [b"a", b"b"], [3, 3], [1, 2])
    for raw in (b"\x22\x05\x0a\x01", b"\x0a\x02\xff\xfe\x22\x00"):
        with pytest.raises(InvalidArgument) as bad:
            packetwire.decode(raw)
        assert bad.value.field == "packets"


#: Each length-delimited field of the common shape, with its length written in 1..10 bytes.
LENGTH_FIELDS = {
    "dev": lambda pad: _bytes_field(0x0A, b"eth0", pad) + _bytes_field(0x22, b""),
    "batch": lambda pad: _bytes_field(0x22, _bytes_field(0x0A, b"x"), pad),
    "data": lambda pad: _bytes_field(0x22, _bytes_field(0x0A, b"xy", pad)),
}


@needs_c
@pytest.mark.parametrize("pad", range(10))
@pytest.mark.parametrize("field", LENGTH_FIELDS)
def test_a_length_is_read_as_wide_as_the_runtime_reads_it(field: str, pad: int) -> None:
    """upb reads a length of at most 5 bytes (non-canonical ones too) and refuses a longer
    one: the C decode reads the same ones, and hands the longer ones back (the runtime's
    DecodeError then names the request)."""
    raw = LENGTH_FIELDS[field](pad)
    assert native is not None
    scanner = packetwire.Scanner(raw)  # the Python reader of large requests, the same rule
    scanner.step(10)
    if pad < 5:
        expected = _runtime(raw)
        assert expected is not None
        assert native.decode_batch(raw) == expected
        assert not scanner.plain and scanner.batch() == packetwire.Batch(*expected)
    else:
        assert _runtime(raw) is None
        assert native.decode_batch(raw) is None
        assert scanner.plain
        with pytest.raises(InvalidArgument):
            packetwire.decode(raw)


@needs_c
def test_decode_and_encode_refuse_what_is_not_bytes() -> None:
    assert native is not None
    with pytest.raises(TypeError, match="raw must be bytes"):
        native.decode_batch(bytearray(b"\x22\x00"))
    with pytest.raises(TypeError, match=r"data\[1\] is bytearray, not bytes"):
        native.encode_batch_result(b"", [b"", bytearray(1)], b"")
    with pytest.raises(TypeError, match="verdicts and tail must be bytes"):
        native.encode_batch_result(b"", [], None)


# -- random requests ------------------------------------------------------------------------

_field = st.one_of(
    st.tuples(st.just("dev"), st.text(max_size=12), st.integers(0, 2)),
    st.tuples(
        st.just("direction"),
        st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(0, 2**64 - 1)),
        st.integers(0, 2),
    ),
    st.tuples(
        st.just("batch"),
        st.lists(st.integers(0, 3000), max_size=300 // 4),
        st.integers(0, 2),
    ),
)


def _encode_fields(fields: list[tuple[str, object, int]]) -> bytes:
    """The fields in the order given, by hand (repeats and non-canonical lengths too)."""
    out = []
    for i, (kind, value, pad) in enumerate(fields):
        if kind == "dev":
            assert isinstance(value, str)
            out.append(_bytes_field(0x0A, value.encode(), pad))
        elif kind == "direction":
            assert isinstance(value, int)
            out.append(_direction(value, pad))
        else:
            assert isinstance(value, list)
            body = b"".join(
                _bytes_field(0x0A, BLOB[(i + j) % 97 : (i + j) % 97 + size], pad)
                for j, size in enumerate(value)
            )
            out.append(_bytes_field(0x22, body, pad))
    return b"".join(out)


@needs_c
@given(
    dev=st.text(max_size=20),
    direction=st.integers(-(2**31), 2**31 - 1),
    sizes=st.lists(st.integers(0, 3000), max_size=300),
)
@settings(max_examples=150, deadline=None)
def test_every_plain_serialization_is_read_as_the_runtime_reads_it(
    dev: str, direction: int, sizes: list[int]
) -> None:
    data = [BLOB[i % 97 : i % 97 + size] for i, size in enumerate(sizes)]
    request = pb.PacketStreamRequest(
        dev=dev,
        direction=direction,  # type: ignore[arg-type]  # an open enum: any int32
        batch=pb.PacketBatch(data=data),
    )
    raw = request.SerializeToString()
    assert native is not None
    assert native.decode_batch(raw) == (dev, direction, data)
    assert packetwire.decode(raw) == packetwire.decode_runtime(raw)


@needs_c
@given(fields=st.lists(_field, min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_any_order_and_repeats_are_read_as_the_runtime_reads_them(
    fields: list[tuple[str, object, int]],
) -> None:
    raw = _encode_fields(fields)
    expected = _runtime(raw)
    assert native is not None
    assert native.decode_batch(raw) == expected
    # every field is the common shape's: only a request without a batch is handed back
    assert (expected is None) == all(kind != "batch" for kind, _, _ in fields)


@needs_c
@given(
    fields=st.lists(_field, min_size=1, max_size=5),
    cut=st.integers(0, 2**20),
    flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=3),
    extra=st.lists(st.tuples(st.integers(0, 2**20), st.binary(min_size=1, max_size=6)), max_size=2),
    how=st.sampled_from(["truncate", "flip", "insert", "all"]),
)
@settings(max_examples=300, deadline=None)
def test_mutated_requests_are_read_as_the_runtime_reads_them_or_handed_back(
    fields: list[tuple[str, object, int]],
    cut: int,
    flips: list[tuple[int, int]],
    extra: list[tuple[int, bytes]],
    how: str,
) -> None:
    """Truncated, with bytes flipped, with bytes (other fields, stray tags) inserted: the
    C decode answers what the runtime reads, or None; never anything else."""
    raw = bytearray(_encode_fields(fields))
    if how in ("insert", "all"):
        for at, blob in extra:
            at %= len(raw) + 1
            raw[at:at] = blob
    if how in ("flip", "all") and raw:
        for at, value in flips:
            raw[at % len(raw)] = value
    if how in ("truncate", "all"):
        del raw[cut % (len(raw) + 1) :]
    mutated = bytes(raw)
    assert native is not None
    got = native.decode_batch(mutated)
    if got is not None:
        assert got == _runtime(mutated)


# -- the packed answer ----------------------------------------------------------------------


def _python(results: list[Results]) -> bytes:
    return b"".join(packetwire.packed_pieces(results, [packetwire.data_pieces(r) for r in results]))


def _batch_of(results: list[Results]) -> packetwire.Batch:
    return packetwire.Batch("eth0", 1, [b""] * sum(len(r) for r in results))


ENCODE_CASES: list[tuple[str, list[int]]] = [
    ("no chunk", []),
    ("one empty chunk", [0]),
    ("one packet", [1]),
    ("64 packets", [64]),
    ("chunks, one empty", [256, 0, 3]),
    ("over 1 MiB: copied without the GIL", [256, 256, 256]),
]


@needs_c
@pytest.mark.parametrize(("name", "sizes"), ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES])
def test_encode_cases(name: str, sizes: list[int]) -> None:
    rng = random.Random(name)
    results = [_results(rng, n) for n in sizes]
    if name.startswith("over"):
        for r in results:
            r.data = [BLOB[:1400]] * len(r)
    built = packetwire.encode(_batch_of(results), results)
    assert built == _python(results) == _upb(results)
    assert name != "no chunk" or built == b"\x12\x00"


@needs_c
@given(seed=st.integers(0, 2**32), sizes=st.lists(st.integers(0, 300), max_size=4))
@settings(max_examples=150, deadline=None)
def test_encode_makes_the_reference_s_and_the_runtime_s_bytes(seed: int, sizes: list[int]) -> None:
    rng = random.Random(seed)
    results = [_results(rng, n) for n in sizes]
    built = packetwire.encode(_batch_of(results), results)
    assert built == _python(results) == _upb(results)


@needs_c
def test_a_large_answer_is_right_while_other_threads_run() -> None:
    """The copy of an answer over 1 MiB runs without the GIL, from the function's own
    tuple of the items: another thread reordering the caller's list meanwhile changes
    nothing in the answer but the order the call found."""
    assert native is not None
    data = [BLOB[i % 97 : i % 97 + 1400] for i in range(1000)]
    items = set(data)
    head = b"\x12" + varint(1000 * (1400 + 3))
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            data[0], data[-1] = data[-1], data[0]

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(20):
            built = native.encode_batch_result(b"", data, b"")
            assert built.startswith(head) and len(built) == len(head) + 1000 * 1403
            pieces = [built[at : at + 1403] for at in range(len(head), len(built), 1403)]
            assert all(p[:3] == b"\x12\xf8\x0a" and p[3:] in items for p in pieces)
    finally:
        stop.set()
        thread.join()

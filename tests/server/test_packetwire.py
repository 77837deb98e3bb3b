"""packetwire: requests decode to engine values; the hand-built packed answer is exactly
the bytes the protobuf runtime makes for the same message. Each runs on the C codec
(_packetwire.c) and on the Python reference; test_packetwire_native.py compares the two
on random and mutated messages."""

from __future__ import annotations

import random

import pytest

from xfrm_offload.engine.datapath import CONSUMED, DROP, PASS, Results
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.server import packetwire
from xfrm_offload.v1 import offload_pb2 as pb


@pytest.fixture(params=["c", "python"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The cases run on _packetwire.c and on the Python reference (the fallback)."""
    name: str = request.param
    if name == "c" and packetwire.native is None:
        pytest.skip("_packetwire.c not built")
    if name == "python":
        monkeypatch.setattr(packetwire, "native", None)
    return name


def _results(rng: random.Random, n: int) -> Results:
    r = Results(n)
    with_handles = rng.random() < 0.7
    for i in range(n):
        verdict = rng.choice([PASS, PASS, DROP, CONSUMED])
        r.verdict[i] = verdict
        if verdict == PASS:
            r.data[i] = rng.randbytes(rng.choice([0, 1, 127, 128, 1400, 2047, 2048, 9000]))
        elif verdict == DROP:
            r.drops[i] = rng.choice(list(XfrmStat))
        if with_handles:
            r.handle[i] = rng.choice([0, 7, (2 << 32) | 5, (1 << 64) - 1])
    if rng.random() < 0.3:
        r.crypto = [rng.choice([0, 1, 64, 128]) for _ in range(n)]
    return r


def _upb(results: list[Results]) -> bytes:
    """The same answer built and serialized by the protobuf runtime."""
    response = pb.PacketStreamResponse()
    packed = response.batch
    packed.SetInParent()
    crypto = any(r.crypto is not None for r in results)
    for r in results:
        packed.verdict.extend(r.verdict)  # type: ignore[arg-type]
        packed.data.extend(r.data)
        packed.offload_handle.extend(r.handle)
        packed.drop_reason.extend(r.drops[i] for i in sorted(r.drops))
        if crypto:
            packed.crypto_status.extend(r.crypto or [0] * len(r))  # type: ignore[arg-type]
    return response.SerializeToString()


@pytest.mark.parametrize("seed", range(40))
def test_hand_built_packed_answer_is_the_runtime_s_bytes(seed: int, codec: str) -> None:
    rng = random.Random(seed)
    results = [_results(rng, rng.randrange(0, 300)) for _ in range(rng.randrange(0, 4))]
    batch = packetwire.Batch("eth0", 1, [b""] * sum(len(r) for r in results))
    built = packetwire.encode(batch, results)
    assert built == _upb(results)
    parsed = pb.PacketStreamResponse.FromString(built).batch
    assert list(parsed.data) == [d for r in results for d in r.data]


def test_requests_decode_to_engine_values_in_either_form(codec: str) -> None:
    data = [b"\x45" + bytes(27), b"\x45" + bytes(99)]
    old = pb.PacketStreamRequest(
        dev="eth0",
        direction=pb.PACKET_DIRECTION_TX,
        packets=[
            pb.Packet(id=7, data=data[0]),
            pb.Packet(id=9, data=data[1], offload_handle=3, seq=5),
        ],
    )
    batch = packetwire.decode(old.SerializeToString())
    assert (batch.dev, batch.direction, batch.data, batch.ids) == ("eth0", 1, data, [7, 9])
    assert (batch.handles, batch.seqs) == ([0, 3], [0, 5])
    new = pb.PacketStreamRequest(
        dev="eth0", direction=pb.PACKET_DIRECTION_RX, batch=pb.PacketBatch(data=data)
    )
    batch = packetwire.decode(new.SerializeToString())
    assert (batch.data, batch.handles, batch.seqs, batch.ids) == (data, [], [], None)
    with pytest.raises(InvalidArgument) as bad:
        packetwire.decode(b"\xff\xff")
    assert bad.value.field == "packets"


@pytest.mark.parametrize("seed", range(20))
def test_scanner_reads_what_decode_reads_or_hands_it_over(seed: int, codec: str) -> None:
    """Random requests, some with handles (not the scanner's shape), some truncated: the
    scanner gives the same Batch as decode, or the same refusal."""
    rng = random.Random(seed)
    for _ in range(20):
        sizes = [0, 1, 127, 128, 1400, 16383, 16384, 20000]
        data = [rng.randbytes(rng.choice(sizes)) for _ in range(rng.randrange(0, 40))]
        crypto = rng.random() < 0.2
        packed = pb.PacketBatch(
            data=data,
            offload_handle=[1] * len(data) if crypto else [],
            seq=range(len(data)) if crypto else [],
        )
        request = pb.PacketStreamRequest(
            dev=rng.choice(["", "eth0", "é"]),
            direction=rng.choice([0, 1, 2, 300]),  # type: ignore[arg-type]
            batch=packed,
        )
        raw = request.SerializeToString()
        if rng.random() < 0.3:
            raw = raw[: rng.randrange(len(raw) + 1)]
        scanner = packetwire.Scanner(raw)
        while not scanner.step(rng.randrange(1, 9)):
            pass
        try:
            expected = packetwire.decode(raw)
        except InvalidArgument as exc:
            with pytest.raises(InvalidArgument) as refused:
                scanner.batch()
            assert refused.value.field == exc.field
            continue
        assert scanner.batch() == expected


@pytest.mark.parametrize(
    ("varint", "direction"),
    [
        (b"\x01", 1),
        (b"\xff\xff\xff\xff\x0f", -1),
        (b"\xff" * 9 + b"\x01", -1),
        (b"\x81\x80\x80\x80\x10", 1),
    ],
    ids=["1", "5-byte -1", "10-byte -1", "2**32 + 1"],
)
def test_scanner_keeps_an_enum_s_low_32_bits_as_the_runtime_does(
    varint: bytes, direction: int
) -> None:
    raw = b"\x10" + varint + b"\x22\x03\x0a\x01x"
    scanner = packetwire.Scanner(raw)
    assert scanner.step(8)
    assert (
        scanner.batch() == packetwire.decode_runtime(raw) == packetwire.Batch("", direction, [b"x"])
    )

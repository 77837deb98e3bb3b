"""The authorizer reads a PacketStream's device from the first request's ``dev`` field
alone (auth._wire_dev), never decoding its packets; whatever protobuf accepts must name
the same device it names for the servicer, or a grant limited to devices leaks.

The reference is what the authorizer did before: decode the whole request.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xfrm_offload.server import auth
from xfrm_offload.v1 import offload_pb2 as pb

TX = pb.PACKET_DIRECTION_TX
NIC: Any = None  # the PacketStream rule does not look at the NIC


def reference(raw: bytes) -> list[str] | None:
    try:
        dev = pb.PacketStreamRequest.FromString(raw).dev
    except Exception:
        return []
    return [dev] if dev else None


def request(dev: str = "eth0", **fields: Any) -> bytes:
    return pb.PacketStreamRequest(dev=dev, direction=TX, **fields).SerializeToString()


def batch(count: int, size: int = 1400) -> pb.PacketBatch:
    return pb.PacketBatch(data=[os.urandom(size)] * count)


def packets(count: int) -> list[pb.Packet]:
    return [pb.Packet(id=i, data=bytes(100)) for i in range(count)]


UNKNOWN = {  # field 99 (key 99 << 3 | wire type: 0x98 + wire, 0x06) of every wire type
    "varint": bytes([0x98, 0x06, 0x96, 0x01]),
    "fixed64": bytes([0x99, 0x06]) + bytes(8),
    "bytes": bytes([0x9A, 0x06, 3]) + b"abc",
    "fixed32": bytes([0x9D, 0x06]) + bytes(4),
}

# (case, raw, what the scan reads (None: it leaves the request to protobuf), devices)
CASES: list[tuple[str, bytes, str | None, list[str] | None]] = [
    ("batch of 64", request(batch=batch(64)), "eth0", ["eth0"]),
    ("batch of 48k, 64 MiB", request(batch=batch(47_000)), "eth0", ["eth0"]),
    ("Packet form: protobuf reads it", request(packets=packets(3)), None, ["eth0"]),
    ("too many fields", request("eth1") * 9, None, ["eth1"]),
    ("no dev: every device", request(dev="", batch=batch(2)), "", None),
    ("empty request", b"", "", None),
    ("dev twice: the last wins", request("eth0") + request("eth1"), "eth1", ["eth1"]),
    (
        "dev, batch, dev",
        request("eth1", batch=batch(2)) + request("eth0"),
        "eth0",
        ["eth0"],
    ),
    ("unicode dev", request("δev"), "δev", ["δev"]),
    *(
        (f"unknown {kind} field", request("eth1") + extra, "eth1", ["eth1"])
        for kind, extra in UNKNOWN.items()
    ),
    # protobuf takes a known field of another wire type for an unknown one
    ("dev as a varint: left to protobuf", request("eth1") + bytes([0x08, 1]), None, ["eth1"]),
    (
        "a group: left to protobuf",
        request("eth1") + bytes([0x9B, 0x06, 0x9C, 0x06]),
        None,
        ["eth1"],
    ),
    ("a length past the end", request("eth1") + bytes([0x22, 0x7F, 0]), None, []),
    ("a cut varint", request("eth1") + bytes([0x10, 0x80]), None, []),
    ("field number 0", bytes([0x02, 0]) + request("eth1"), None, []),
    ("dev not UTF-8", bytes([0x0A, 2, 0xC3, 0x28]), None, []),
]


@pytest.mark.parametrize(("case", "raw", "scanned", "devices"), CASES, ids=[c[0] for c in CASES])
def test_the_device_a_first_request_names(
    case: str, raw: bytes, scanned: str | None, devices: list[str] | None
) -> None:
    assert auth._wire_dev(raw) == scanned
    assert auth._packet_stream(raw, NIC) == devices == reference(raw)


def test_bad_packets_in_a_plain_request_still_name_its_device() -> None:
    # The one difference from decoding it all: a request whose packets protobuf refuses
    # (here a batch of garbage) is checked against its device, where the whole decode
    # gave up and let the role alone decide; the servicer refuses it either way.
    raw = request("eth1") + bytes([0x22, 3, 0xFF, 0xFF, 0xFF])
    assert reference(raw) == []
    assert auth._packet_stream(raw, NIC) == ["eth1"]


devs = st.sampled_from(["", "eth0", "eth1", "δ", "a" * 300])
fields = st.one_of(
    devs.map(lambda d: pb.PacketStreamRequest(dev=d).SerializeToString()),
    st.integers(0, 2).map(
        lambda d: pb.PacketStreamRequest(direction=pb.PacketDirection.Name(d)).SerializeToString()
    ),
    st.integers(0, 20).map(
        lambda n: pb.PacketStreamRequest(packets=packets(n)).SerializeToString()
    ),
    st.integers(0, 20).map(
        lambda n: pb.PacketStreamRequest(batch=batch(n, 64)).SerializeToString()
    ),
    st.sampled_from(list(UNKNOWN.values())),
)


@given(st.lists(fields, max_size=24))
def test_any_valid_request_names_what_protobuf_reads(parts: list[bytes]) -> None:
    raw = b"".join(parts)  # concatenated messages merge: the last dev wins
    assert auth._packet_stream(raw, NIC) == reference(raw)


@given(st.binary(max_size=64))
def test_random_bytes_that_protobuf_accepts_name_the_same_device(raw: bytes) -> None:
    want = reference(raw)
    got = auth._packet_stream(raw, NIC)
    # [] (protobuf refused the bytes) let the role alone decide: anything else is as strict
    assert got == want or want == []

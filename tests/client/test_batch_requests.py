"""split.BatchRequests: PacketStream requests serialized by hand are protobuf's bytes, split
where ``split.parts`` splits; xfrmctl's packet path sends them and joins the answers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xfrm_offload.client import split
from xfrm_offload.client.packets import push_capture
from xfrm_offload.client.pcap import LINKTYPE_RAW
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from ..datapath.builders import Tunnel, install, packets, udp4
from .test_packet_cli import write_pcap

U64 = st.integers(0, (1 << 64) - 1)


def reference(
    dev: str, direction: int, data: list[bytes], handles: list[int], seqs: list[int], limit: int
) -> list[bytes]:
    """What the client library sends for the same batch: split.parts, serialized."""
    request = pb.PacketStreamRequest(dev=dev, direction=direction)  # type: ignore[arg-type]
    request.batch.SetInParent()  # a batch, even an empty one
    request.batch.data.extend(data)
    request.batch.offload_handle.extend(handles)
    request.batch.seq.extend(seqs)
    return [part.SerializeToString() for part in split.parts(request, limit)]


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[bytes], list[int], list[int]]:
    sizes = draw(st.lists(st.integers(0, 65535), max_size=12))
    rng = random.Random(draw(st.integers(0, 1 << 32)))
    data = [rng.randbytes(n) for n in sizes]
    n = len(data)
    form = draw(st.sampled_from(["plain", "one handle", "counting", "any"]))
    if form == "plain":
        return data, [], []
    if form == "any":  # any numbers, any lengths: protobuf's business, not ours
        return data, draw(st.lists(U64, max_size=n)), draw(st.lists(U64, max_size=n))
    handle, start = draw(U64), draw(st.integers(0, (1 << 64) - 1 - n))
    seqs = list(range(start, start + n))
    return data, [handle] * n, seqs if form == "counting" else []


@settings(max_examples=300, deadline=None)
@given(
    batch=batches(),
    dev=st.text(max_size=20),  # any Unicode (non-ASCII names are several bytes each)
    direction=st.sampled_from([0, pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX, 1000]),
    limit=st.sampled_from([1, 200, 4096, 70_000, 200_000, split.PACKET_OVERHEAD * 3]),
    views=st.booleans(),
)
def test_hand_built_requests_are_protobufs_bytes(
    batch: tuple[list[bytes], list[int], list[int]],
    dev: str,
    direction: int,
    limit: int,
    views: bool,
) -> None:
    data, handles, seqs = batch
    encoder = split.BatchRequests(dev, direction, limit)  # type: ignore[arg-type]
    given_data: list[bytes] | list[memoryview] = [memoryview(d) for d in data] if views else data
    assert encoder.parts(given_data, handles, seqs) == reference(
        dev, direction, data, handles, seqs, limit
    )


def test_a_batch_over_the_limit_is_cut_where_parts_cuts_it() -> None:
    """Exact cut points: each part's packets with their overhead fit the room beside dev
    and direction; a packet larger than the limit goes alone."""
    data = [bytes([i]) * size for i, size in enumerate([3000, 3000, 3000, 9000, 10])]
    encoder = split.BatchRequests("eth0", pb.PACKET_DIRECTION_TX, 8192)
    got = encoder.parts(data, [7] * 5, range(100, 105))
    assert got == reference("eth0", 1, data, [7] * 5, list(range(100, 105)), 8192)
    parsed = [pb.PacketStreamRequest.FromString(raw) for raw in got]
    assert [list(p.batch.data) for p in parsed] == [data[:2], data[2:3], data[3:4], data[4:]]
    assert [list(p.batch.seq) for p in parsed] == [[100, 101], [102], [103], [104]]
    assert [len(raw) <= 8192 for raw in got] == [True, True, False, True]  # 9000 B: alone
    assert encoder.parts(data[:2]) == [reference("eth0", 1, data[:2], [], [], 8192)[0]]


async def test_xfrmctl_splits_a_batch_over_the_client_limit_and_joins_its_answers(
    sock_dir: Path, tmp_path: Path
) -> None:
    """push_capture with a small request limit sends each 64-packet batch as several
    requests and writes each batch's answers joined:
    TX then RX gives back the capture, byte for byte and in order."""
    frames = packets(udp4, "198.51.100.10", "203.0.113.20", 150, size=1200)
    plain, esp, back = tmp_path / "plain.pcap", tmp_path / "esp.pcap", tmp_path / "back.pcap"
    write_pcap(plain, LINKTYPE_RAW, frames)
    async with running_server(sock_dir, "--device", "eth0", "--device", "eth1") as (_, client):
        await install(client, Tunnel(), "eth0", "eth1")
        client.packet_request_limit = 5000  # 4 packets a request at most
        for dev, direction, inpath, outpath in (
            ("eth0", pb.PACKET_DIRECTION_TX, plain, esp),
            ("eth1", pb.PACKET_DIRECTION_RX, esp, back),
        ):
            with inpath.open("rb") as infile, outpath.open("wb") as outfile:
                counts = await push_capture(client, dev, direction, infile, outfile)
            assert (counts.sent, counts.out, counts.dropped, counts.complete) == (150, 150, 0, True)
    assert back.read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("limit", [1, 10])
def test_a_limit_below_the_framing_still_gives_one_packet_per_part(limit: int) -> None:
    data = [b"a", b"bb", b""]
    got = split.BatchRequests("eth0", pb.PACKET_DIRECTION_TX, limit).parts(data)
    assert got == reference("eth0", 1, data, [], [], limit)
    assert len(got) == 3

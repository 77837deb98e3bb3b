"""pcap reader/writer: round trips per link type, byte order and timestamp precision."""

from __future__ import annotations

import contextlib
import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter as ScapyWriter
from scapy.utils import rdpcap

from xfrm_offload.client.pcap import (
    DEFAULT_ETHERNET_HEADER,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_RAW,
    PcapError,
    PcapReader,
    PcapWriter,
    join_link,
    join_links,
    split_link,
    split_links,
)

V4 = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / b"four")
V6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / b"six")
ETH_V4 = bytes.fromhex("0a00000000020a00000000010800") + V4
VLAN_V6 = bytes.fromhex("0a00000000020a00000000018100006486dd") + V6

CASES = [
    (LINKTYPE_ETHERNET, [ETH_V4, VLAN_V6]),
    (LINKTYPE_RAW, [V4, V6]),
    (LINKTYPE_IPV4, [V4, V4[:-1] + b"!"]),
    (LINKTYPE_IPV6, [V6]),
]
STAMP = 1_700_000_000_123_456_789


def handmade(order: str, nanosecond: bool, linktype: int, frames: list[bytes]) -> bytes:
    """A pcap written field by field, in either byte order."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(frames):
        sec, ns = divmod(STAMP + i, 1_000_000_000)
        frac = ns if nanosecond else ns // 1000
        out += struct.pack(order + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


@pytest.mark.parametrize("linktype,frames", CASES, ids=["ether", "raw", "ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["<", ">"], ids=["le", "be"])
@pytest.mark.parametrize("nanosecond", [False, True], ids=["usec", "nsec"])
def test_read_handmade_then_write_back(
    linktype: int, frames: list[bytes], order: str, nanosecond: bool
) -> None:
    reader = PcapReader(io.BytesIO(handmade(order, nanosecond, linktype, frames)))
    assert (reader.linktype, reader.snaplen, reader.nanosecond) == (linktype, 65535, nanosecond)
    records = list(reader)
    assert [r.data for r in records] == frames
    precision = 1 if nanosecond else 1000
    assert [r.timestamp_ns for r in records] == [
        (STAMP + i) // precision * precision for i in range(len(frames))
    ]
    # write what was read (stripping and restoring the link header) and compare bytes
    out = io.BytesIO()
    writer = PcapWriter(out, linktype, snaplen=65535, nanosecond=nanosecond)
    for record in records:
        header, packet = split_link(linktype, record.data)
        assert packet[0] >> 4 in (4, 6)
        writer.write(join_link(linktype, header, packet), timestamp_ns=record.timestamp_ns)
    assert out.getvalue() == handmade("<", nanosecond, linktype, frames)


def test_split_link_headers() -> None:
    assert split_link(LINKTYPE_ETHERNET, ETH_V4) == (ETH_V4[:14], V4)
    assert split_link(LINKTYPE_ETHERNET, VLAN_V6) == (VLAN_V6[:18], V6)
    header, packet = split_link(LINKTYPE_ETHERNET, memoryview(VLAN_V6))  # a view: the same
    assert (type(header), type(packet)) == (bytes, memoryview)
    assert (header, bytes(packet)) == (VLAN_V6[:18], V6)
    # a tunnel may turn IPv4 into IPv6: the restored header says so
    assert join_link(LINKTYPE_ETHERNET, ETH_V4[:14], V6) == ETH_V4[:12] + b"\x86\xdd" + V6
    assert join_link(LINKTYPE_ETHERNET, b"", V4) == DEFAULT_ETHERNET_HEADER + V4


ARP = ETH_V4[:12] + b"\x08\x06" + b"arp"
ETH_V6 = ETH_V4[:12] + b"\x86\xdd" + V6


@pytest.mark.parametrize(
    "linktype,frames,batched",
    [
        (LINKTYPE_ETHERNET, [ETH_V4, ETH_V6, ETH_V4], True),
        (LINKTYPE_ETHERNET, [ETH_V4, VLAN_V6], False),  # a tag: frame by frame
        (LINKTYPE_ETHERNET, [ETH_V4, ARP], False),
        (LINKTYPE_ETHERNET, [ETH_V4, ETH_V4[:13]], False),
        (LINKTYPE_RAW, [V4, V6], True),
        (LINKTYPE_IPV4, [V4, V4], True),
        (LINKTYPE_IPV4, [V4, V6], False),
        (LINKTYPE_IPV6, [V6, b""], False),
        (LINKTYPE_RAW, [], True),
    ],
)
def test_batch_split_and_join_are_the_per_frame_ones(
    linktype: int, frames: list[bytes], batched: bool
) -> None:
    """split_links answers for a batch only when every frame would split (else None: the
    caller goes frame by frame); join_links gives what join_link gives for each."""
    split = split_links(linktype, frames)
    assert (split is not None) == batched
    views = [memoryview(f) for f in frames]
    if split is None:
        assert split_links(linktype, views) is None
        return
    assert list(zip(*split, strict=True)) == [split_link(linktype, f) for f in frames]
    headers, packets = split
    assert join_links(linktype, headers, packets) == frames
    # Views of the frames (PcapReader.views) split alike: headers bytes, packets views.
    view_split = split_links(linktype, views)
    assert view_split is not None and all(type(h) is bytes for h in view_split[0])
    assert (view_split[0], list(map(bytes, view_split[1]))) == split
    by_frame = [split_link(linktype, v) for v in views]
    assert [(h, bytes(p)) for h, p in by_frame] == [split_link(linktype, f) for f in frames]
    if linktype == LINKTYPE_ETHERNET:  # a tunnel turned every packet into IPv6
        assert join_links(linktype, headers, [V6] * len(frames)) == [
            join_link(linktype, h, V6) for h in headers
        ]


@pytest.mark.parametrize(
    "linktype,frame,message",
    [
        (LINKTYPE_ETHERNET, ARP, "ethertype 0x0806, not IP"),
        (LINKTYPE_ETHERNET, b"\x00" * 10, "too short"),
        (LINKTYPE_IPV4, V6, "raw IPv4 record holds IP version 6"),
        (LINKTYPE_IPV6, V4, "raw IPv6 record holds IP version 4"),
        (LINKTYPE_RAW, b"", "raw IP record holds IP version 0"),
    ],
)
def test_split_link_refuses_non_ip(linktype: int, frame: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        split_link(linktype, frame)


def test_join_link_refuses_a_version_the_type_cannot_hold() -> None:
    with pytest.raises(PcapError, match="IPv6 packet cannot be written as raw IPv4"):
        join_link(LINKTYPE_IPV4, b"", V6)


def test_snaplen_cuts_and_keeps_the_original_length() -> None:
    out = io.BytesIO()
    PcapWriter(out, LINKTYPE_RAW, snaplen=20).write(V4, timestamp_ns=STAMP)
    (record,) = PcapReader(io.BytesIO(out.getvalue()))
    assert (record.data, record.orig_len, record.truncated) == (V4[:20], len(V4), True)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng file; convert it"),
        (b"\xd4\xc3\xb2", "not a pcap file: 3 bytes"),
        (b"\x00" * 24, "not a pcap file: magic 0x00000000"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147), "unsupported link type 147"),
    ],
    ids=["pcapng", "short", "magic", "linktype"],
)
def test_unreadable_files(data: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        PcapReader(io.BytesIO(data))


def test_truncated_record_is_an_error_where_it_happens() -> None:
    data = handmade("<", False, LINKTYPE_RAW, [V4, V6])[:-3]
    records = iter(PcapReader(io.BytesIO(data)))
    assert next(records).data == V4
    with pytest.raises(PcapError, match="record 1: truncated data"):
        next(records)


def test_scapy_reads_what_we_write_and_we_read_what_scapy_writes(tmp_path: Path) -> None:
    ours = tmp_path / "ours.pcap"
    with ours.open("wb") as f:
        writer = PcapWriter(f, LINKTYPE_ETHERNET)
        writer.write(ETH_V4, timestamp_ns=STAMP)
        writer.write(VLAN_V6, timestamp_ns=STAMP + 1000)
    packets = rdpcap(str(ours))
    assert [bytes(p) for p in packets] == [ETH_V4, VLAN_V6]
    assert packets[0][IP].dst == "192.0.2.2"

    theirs = tmp_path / "theirs.pcap"
    scapy = ScapyWriter(str(theirs), linktype=LINKTYPE_ETHERNET, nano=True)
    scapy.write(Ether(ETH_V4))
    scapy.close()
    with theirs.open("rb") as f:
        reader = PcapReader(f)
        assert reader.nanosecond and reader.linktype == LINKTYPE_ETHERNET
        assert [r.data for r in reader] == [ETH_V4]


@pytest.fixture
def files() -> Iterator[contextlib.ExitStack]:
    """Files a test opens, closed when it ends."""
    with contextlib.ExitStack() as stack:
        yield stack


def _reader_over(data: bytes, source: str, files: contextlib.ExitStack, folder: Path) -> PcapReader:
    """A reader of ``data`` from a stream (read a block at a time) or a regular file
    (mapped)."""
    if source == "stream":
        return PcapReader(io.BytesIO(data))
    path = folder / f"{len(data)}.pcap"
    path.write_bytes(data)
    return PcapReader(files.enter_context(path.open("rb")))


@pytest.mark.parametrize(
    "source,block",
    [("stream", 1), ("stream", 17), ("stream", 100), ("stream", 1 << 20), ("file", 1)],
)
def test_records_across_read_blocks_and_write_many(
    monkeypatch: pytest.MonkeyPatch,
    files: contextlib.ExitStack,
    tmp_path: Path,
    source: str,
    block: int,
) -> None:
    """The reader takes a stream a block at a time and maps a file: records that straddle
    blocks, and one larger than a block, read back exactly, one by one or in chunks;
    write_many writes what write would."""
    import random

    from xfrm_offload.client import pcap

    monkeypatch.setattr(pcap, "READ_BLOCK", block)
    rng = random.Random(block)
    frames = [rng.randbytes(rng.randrange(0, 300)) for _ in range(200)] + [bytes(3 << 20)]
    stamps = [STAMP + i * 1000 for i in range(len(frames))]
    one, many = io.BytesIO(), io.BytesIO()
    writer = PcapWriter(one, LINKTYPE_RAW, snaplen=4 << 20)
    for frame, stamp in zip(frames, stamps, strict=True):
        writer.write(frame, timestamp_ns=stamp)
    PcapWriter(many, LINKTYPE_RAW, snaplen=4 << 20).write_many(frames, stamps)
    assert one.getvalue() == many.getvalue()
    data = one.getvalue()
    reader = _reader_over(data, source, files, tmp_path)
    records = list(reader)
    assert [r.data for r in records] == frames
    assert [r.timestamp_ns for r in records] == [s // 1000 * 1000 for s in stamps]  # usec file
    assert reader.offset == len(data)
    chunks = list(_reader_over(data, source, files, tmp_path).chunks(64))
    assert [len(c.frames) for c in chunks] == [64, 64, 64, 9]
    assert [f for c in chunks for f in c.frames] == frames
    # Views of the same records: the same bytes and heads, no copy; they outlive the
    # reader's end (the mapping goes with the last view).
    views = list(_reader_over(data, source, files, tmp_path).views(64))
    assert {type(f) for v in views for f in v.frames} == {memoryview}
    assert [bytes(f) for v in views for f in v.frames] == frames
    assert [v.heads for v in views] == [c.heads for c in chunks]
    assert [v.truncated() for v in views] == [False] * 4
    # A chunk written back is the same records.
    again = io.BytesIO()
    copier = PcapWriter(again, LINKTYPE_RAW, snaplen=4 << 20)
    for chunk in chunks:
        copier.write_chunk(chunk)
    assert again.getvalue() == data
    # Cut anywhere inside a record: an error naming that record, after the ones before it.
    cuts = {
        24 + 7: "record 0: truncated header (7 bytes)",
        24 + 16 + len(frames[0]) + 3: "record 1: truncated header (3 bytes)",
        len(data) - 1: f"record 200: truncated data ({(3 << 20) - 1} of {3 << 20} bytes)",
    }
    for cut, message in cuts.items():
        read: list[object] = []
        with pytest.raises(PcapError, match=re.escape(message)):
            for record in _reader_over(data[:cut], source, files, tmp_path):
                read.append(record)
        assert len(read) == int(message.split()[1].rstrip(":"))


@pytest.mark.parametrize("source", ["stream", "file"])
def test_an_implausible_length_is_an_error_after_the_records_before_it(
    files: contextlib.ExitStack, tmp_path: Path, source: str
) -> None:
    data = handmade("<", False, LINKTYPE_RAW, [V4, V6])
    bad = data + struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF) + bytes(10)
    chunks = _reader_over(bad, source, files, tmp_path).chunks(64)
    assert next(chunks).frames == [V4, V6]
    with pytest.raises(PcapError, match="record 2: length 4294967295 is not plausible"):
        next(chunks)


def test_a_chunk_knows_when_snaplen_cut_a_frame() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, LINKTYPE_RAW)
    writer.write(V4, timestamp_ns=STAMP)
    writer.write(V6[:20], timestamp_ns=STAMP, orig_len=len(V6))
    whole, cut = PcapReader(io.BytesIO(out.getvalue())).chunks(1)
    assert (whole.truncated(), cut.truncated()) == (False, True)
    (both,) = PcapReader(io.BytesIO(out.getvalue())).chunks(2)
    assert both.truncated()

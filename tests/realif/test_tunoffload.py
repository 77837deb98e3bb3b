"""TSO segmentation and GRO coalescing of TUN frames: exactly the bytes the kernel expects.

Expected packets are built by scapy (its own checksums) and compared byte for byte with
what tunoffload makes; the coalesced packets' CHECKSUM_PARTIAL field is checked against
a word-by-word pseudo-header sum written here.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from xfrm_offload.server import tunoffload
from xfrm_offload.server.tunoffload import (
    F_NEEDS_CSUM,
    GSO_TCPV4,
    GSO_TCPV6,
    PLAIN,
    VNET_HDR,
    BadOffload,
    from_host,
    to_host,
)

SRC4, DST4 = "198.51.100.1", "203.0.113.1"
SRC6, DST6 = "2001:db8:a::1", "2001:db8:b::1"
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1000, 2000))]
BLOB = bytes(range(256)) * 300


def _ip(v6: bool, **kw: object) -> Packet:
    if v6:
        return IPv6(src=SRC6, dst=DST6, tc=kw.get("tos", 0), hlim=64)
    return IP(src=SRC4, dst=DST4, id=kw.get("id", 100), flags="DF", tos=kw.get("tos", 0))


def _tcp(v6: bool, payload: bytes, *, seq: int = 5000, flags: str = "A", ip_id: int = 100,
         ack: int = 77, options: list[tuple[str, object]] | None = None, sport: int = 40000,
         tos: int = 0) -> bytes:  # fmt: skip
    tcp = TCP(sport=sport, dport=5201, seq=seq, ack=ack, flags=flags, window=501,
              options=TS if options is None else options)  # fmt: skip
    return bytes(_ip(v6, id=ip_id, tos=tos) / tcp / Raw(payload))


def _hdr(frame: bytes) -> tuple[int, int, int, int, int, int]:
    return VNET_HDR.unpack_from(frame)


# -- TX: a super-packet from the host, cut as a NIC's TSO cuts it -------------------------


@pytest.fixture(params=["c", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The cases run on _tunoffload.c and on the Python reference (the fallback)."""
    name: str = request.param
    if name == "c" and not tunoffload.NATIVE:
        pytest.skip("_tunoffload.c not built")
    if name == "python":
        monkeypatch.setattr(tunoffload, "_native", None)
    return name


@dataclass
class Tso:
    name: str
    v6: bool
    size: int
    mss: int
    flags: str = "PA"
    #: flags of each segment, first, middle, last
    expect: tuple[str, str, str] = ("A", "A", "PA")
    seq: int = 5000
    ip_id: int = 100


TSO_CASES = [
    Tso("ipv4 psh on last only", False, 1368 * 3, 1368),
    Tso("ipv4 odd tail", False, 1368 * 4 + 7, 1368),
    Tso("ipv4 fin and psh on last", False, 4000, 1400, "FPA", ("A", "A", "FPA")),
    Tso("ipv4 cwr on first only", False, 4000, 1400, "CA", ("CA", "A", "A")),
    Tso("ipv4 seq and id wrap", False, 5000, 1000, "A", ("A", "A", "A"), 0xFFFFFC00, 0xFFFE),
    Tso("ipv6", True, 1348 * 3 + 100, 1348),
    Tso("ipv6 odd mss", True, 999 * 3, 999, "FPA", ("A", "A", "FPA")),
    Tso("one segment", False, 500, 1368, "PA", ("PA", "PA", "PA")),
]


@pytest.mark.parametrize("case", TSO_CASES, ids=lambda c: c.name)
def test_super_packet_is_cut_into_the_segments_the_kernel_would_send(
    case: Tso, engine: str
) -> None:
    payload = BLOB[: case.size]
    packet = _tcp(case.v6, payload, seq=case.seq, flags=case.flags, ip_id=case.ip_id)
    gso = GSO_TCPV6 if case.v6 else GSO_TCPV4
    ihl = 40 if case.v6 else 20
    # as the host hands it: NEEDS_CSUM, checksum field holding whatever the host put there
    frame = VNET_HDR.pack(F_NEEDS_CSUM, gso, ihl + 32, case.mss, ihl, 16) + packet
    got = from_host(frame)
    chunks = [payload[i : i + case.mss] for i in range(0, len(payload), case.mss)]
    assert len(got) == len(chunks)
    for i, chunk in enumerate(chunks):
        flags = case.expect[0 if i == 0 else 2 if i == len(chunks) - 1 else 1]
        if len(chunks) == 1:
            flags = case.flags
        expected = _tcp(
            case.v6, chunk, seq=(case.seq + i * case.mss) & 0xFFFFFFFF, flags=flags,
            ip_id=(case.ip_id + i) & 0xFFFF,
        )  # fmt: skip
        assert got[i] == expected, f"segment {i}"


def test_packet_that_only_needs_its_checksum_gets_it_completed(engine: str) -> None:
    full = bytes(IP(src=SRC4, dst=DST4) / UDP(sport=1, dport=2) / Raw(b"abc"))
    host = bytearray(full)
    struct.pack_into("!H", host, 26, _pseudo(full, False, 17) & 0xFFFF)  # what the host leaves
    assert from_host(VNET_HDR.pack(F_NEEDS_CSUM, 0, 0, 0, 20, 6) + bytes(host)) == [full]
    tcp = _tcp(True, b"hello")
    host = bytearray(tcp)
    struct.pack_into("!H", host, 56, _pseudo(tcp, True, 6) & 0xFFFF)
    assert from_host(VNET_HDR.pack(F_NEEDS_CSUM, 0, 0, 0, 40, 16) + bytes(host)) == [tcp]
    assert from_host(PLAIN + tcp) == [tcp]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00" * 5,
        VNET_HDR.pack(0, GSO_TCPV4, 0, 1000, 0, 0) + bytes(IP(dst=DST4) / UDP() / Raw(b"x" * 99)),
        VNET_HDR.pack(0, GSO_TCPV4, 0, 0, 0, 0) + _tcp(False, b"x" * 3000),
        VNET_HDR.pack(0, GSO_TCPV4, 0, 1000, 0, 0) + _tcp(False, b"x" * 3000)[:30],
        VNET_HDR.pack(F_NEEDS_CSUM, 0, 0, 0, 20, 200) + _tcp(False, b"x"),
        VNET_HDR.pack(0, GSO_TCPV4, 0, 1000, 0, 0) + b"\x44" + _tcp(False, b"x" * 3000)[1:],
    ],
    ids=["short", "gso not tcp", "gso size 0", "truncated tcp", "csum outside", "ihl 4"],
)
def test_inconsistent_virtio_header_is_refused(frame: bytes, engine: str) -> None:
    with pytest.raises(BadOffload):
        from_host(frame)


# -- RX: segments coalesced into one super-packet for the host -----------------------------


def _sum16(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _pseudo(packet: bytes, v6: bool, proto: int) -> int:
    """The folded pseudo-header sum of ``packet`` (what CHECKSUM_PARTIAL leaves in the field)."""
    if v6:
        addrs, length = packet[8:40], len(packet) - 40
    else:
        addrs, length = packet[12:20], len(packet) - (packet[0] & 15) * 4
    return _sum16(addrs + struct.pack("!HH", proto, length))


def _segments(v6: bool, sizes: list[int], *, seq: int = 5000, ip_id: int = 100,
              last_flags: str = "A") -> list[bytes]:  # fmt: skip
    out, offset = [], 0
    for i, size in enumerate(sizes):
        flags = last_flags if i == len(sizes) - 1 else "A"
        out.append(
            _tcp(v6, BLOB[offset : offset + size], seq=seq + offset, flags=flags, ip_id=ip_id + i)
        )
        offset += size
    return out


def _coalesced(v6: bool, size: int, mss: int, flags: str = "A") -> bytes:
    """The super-packet the kernel's GRO would make of ``_segments`` totalling ``size``."""
    whole = bytearray(_tcp(v6, BLOB[:size], flags=flags))
    ihl = 40 if v6 else 20
    struct.pack_into("!H", whole, ihl + 16, _pseudo(bytes(whole), v6, 6))
    gso = GSO_TCPV6 if v6 else GSO_TCPV4
    return VNET_HDR.pack(F_NEEDS_CSUM, gso, ihl + 32, mss, ihl, 16) + bytes(whole)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_in_order_segments_of_one_flow_become_one_super_packet(v6: bool, engine: str) -> None:
    segs = _segments(v6, [1368, 1368, 1368, 500], last_flags="PA")
    assert to_host(segs) == [(_coalesced(v6, 1368 * 3 + 500, 1368, "PA"), 4)]


@dataclass
class Gro:
    name: str
    packets: list[bytes]
    #: the number of packets each frame carries, in order
    counts: list[int]


def _v4(size: int, **kw: object) -> bytes:
    return _tcp(False, BLOB[:size], **kw)  # type: ignore[arg-type]


_TWO = _segments(False, [1000, 1000])
GRO_CASES = [
    Gro("out of order", [_TWO[1], _TWO[0]], [1, 1]),
    Gro("gap in seq", [_v4(1000, seq=5000), _v4(1000, seq=7000, ip_id=101)], [1, 1]),
    Gro("other flow between", [_TWO[0], _v4(1000, sport=1, ip_id=7), _TWO[1]], [2, 1]),
    Gro("different ack", [_TWO[0], _v4(1000, seq=6000, ip_id=101, ack=78)], [1, 1]),
    Gro(
        "different timestamp",
        [
            _TWO[0],
            _v4(
                1000,
                seq=6000,
                ip_id=101,
                options=[("NOP", None), ("NOP", None), ("Timestamp", (1001, 2000))],
            ),
        ],
        [1, 1],
    ),
    Gro("different tos", [_TWO[0], _v4(1000, seq=6000, ip_id=101, tos=1)], [1, 1]),
    Gro("ip id not next", [_TWO[0], _v4(1000, seq=6000, ip_id=105)], [1, 1]),
    Gro("syn", [_v4(1000, flags="S"), _v4(1000, seq=6000, ip_id=101)], [1, 1]),
    Gro("fin", [_TWO[0], _v4(1000, seq=6000, ip_id=101, flags="FA")], [1, 1]),
    Gro("rst", [_TWO[0], _v4(1000, seq=6000, ip_id=101, flags="RA")], [1, 1]),
    Gro("urg", [_TWO[0], _v4(1000, seq=6000, ip_id=101, flags="UA")], [1, 1]),
    Gro("cwr", [_TWO[0], _v4(1000, seq=6000, ip_id=101, flags="CA")], [1, 1]),
    Gro(
        "psh ends it",
        [*_segments(False, [1000, 1000], last_flags="PA"), _v4(1000, seq=7000, ip_id=102)],
        [2, 1],
    ),
    Gro(
        "short one ends it",
        [*_segments(False, [1000, 600]), _v4(1000, seq=6600, ip_id=102)],
        [2, 1],
    ),
    Gro("larger than the first", _segments(False, [600, 1000]), [1, 1]),
    Gro("pure ack between", [_TWO[0], _v4(0, seq=6000, ip_id=101), _TWO[1]], [1, 1, 1]),
    Gro("at most 64 KB", _segments(False, [1400] * 50), [46, 4]),
    Gro(
        "udp and icmp one by one",
        [bytes(IP(dst=DST4) / UDP() / Raw(b"x" * 100)), bytes(IP(dst=DST4) / ICMP())],
        [1, 1],
    ),
    Gro(
        "ip options",
        [
            bytes(
                IP(src=SRC4, dst=DST4, options=b"\x01\x01\x01\x00")
                / TCP(flags="A")
                / Raw(b"x" * 100)
            )
        ]
        * 2,
        [1, 1],
    ),
    Gro(
        "fragment",
        [bytes(IP(src=SRC4, dst=DST4, flags="MF") / TCP(flags="A") / Raw(b"x" * 96))] * 2,
        [1, 1],
    ),
    Gro(
        "ipv6 other flow label",
        [
            _segments(True, [1000])[0],
            bytes(
                IPv6(src=SRC6, dst=DST6, fl=5, hlim=64)
                / TCP(sport=40000, dport=5201, seq=6000, ack=77, flags="A", window=501, options=TS)
                / Raw(BLOB[1000:2000])
            ),
        ],
        [1, 1],
    ),
]


@pytest.mark.parametrize("case", GRO_CASES, ids=lambda c: c.name)
def test_coalescing_rules(case: Gro, engine: str) -> None:
    frames = to_host(case.packets)
    assert [count for _, count in frames] == case.counts
    for frame, count in frames:  # one by one: unchanged, behind an all-zero header
        if count == 1:
            assert frame[: len(PLAIN)] == PLAIN
            assert frame[len(PLAIN) :] in case.packets


def test_64_kb_limit_keeps_the_stream_whole(engine: str) -> None:
    segs = _segments(False, [1400] * 50)
    frames = to_host(segs)
    first = frames[0][0][len(PLAIN) :]
    assert len(first) == 20 + 32 + 46 * 1400 <= tunoffload.MAX_COALESCED
    assert _hdr(frames[0][0])[3] == 1400
    second = frames[1][0][len(PLAIN) :]
    assert struct.unpack_from("!I", second, 24)[0] == 5000 + 46 * 1400
    assert first[52:] + second[52:] == BLOB[: 50 * 1400]


def test_interleaved_flows_each_coalesce(engine: str) -> None:
    a = _segments(False, [1000, 1000, 1000])
    b = [bytes(IP(src=SRC4, dst=str(ipaddress.ip_address(DST4) + 1), id=100 + i, flags="DF")
               / TCP(sport=40000, dport=5201, seq=5000 + 1000 * i, ack=77, flags="A",
                     window=501, options=TS) / Raw(BLOB[1000 * i : 1000 * (i + 1)]))
         for i in range(3)]  # fmt: skip
    frames = to_host([a[0], b[0], a[1], b[1], a[2], b[2]])
    assert [count for _, count in frames] == [3, 3]
    assert frames[0][0] == _coalesced(False, 3000, 1000)


# -- RX: a segment whose checksums do not verify is never merged ---------------------------


def _bad_payload(packet: bytes) -> bytes:
    """One payload bit flipped, the checksums left as they were: a bad TCP checksum."""
    return packet[:-1] + bytes((packet[-1] ^ 0x01,))


def _summed_for_another_source(packet: bytes) -> bytes:
    """The TCP checksum of the same segment sent from the next source address: right
    over the TCP bytes, wrong only in its pseudo-header part."""
    v6 = packet[0] >> 4 == 6
    ihl = 40 if v6 else 20
    moved = bytearray(packet)
    if v6:
        moved[8:24] = (ipaddress.IPv6Address(SRC6) + 1).packed
    else:
        moved[12:16] = (ipaddress.IPv4Address(SRC4) + 1).packed
    tcp = bytearray(packet[ihl:])
    tcp[16:18] = b"\0\0"
    words = struct.pack("!HH", _pseudo(bytes(moved), v6, 6), _sum16(bytes(tcp)))
    out = bytearray(packet)
    struct.pack_into("!H", out, ihl + 16, ~_sum16(words) & 0xFFFF)
    assert out != bytearray(packet)
    return bytes(out)


def _bad_ip_header(packet: bytes) -> bytes:
    """An IPv4 header checksum that does not verify (the TCP checksum still does)."""
    return packet[:10] + bytes((packet[10] ^ 0xFF,)) + packet[11:]


@dataclass
class BadSum:
    name: str
    v6: bool
    sizes: list[int]
    #: the index of the segment that fails its checksum, and how it was spoilt
    bad: int
    spoil: Callable[[bytes], bytes]
    counts: list[int]


BAD_SUM_CASES = [
    BadSum("ipv4 tcp sum, in the middle", False, [1000] * 5, 2, _bad_payload, [2, 1, 2]),
    BadSum("ipv6 tcp sum, in the middle", True, [1000] * 5, 2, _bad_payload, [2, 1, 2]),
    BadSum("ipv4 tcp sum, first", False, [1000] * 3, 0, _bad_payload, [1, 2]),
    BadSum("ipv6 tcp sum, last", True, [1000] * 4, 3, _bad_payload, [3, 1]),
    BadSum("ipv4 tcp sum, short last", False, [1000, 1000, 600], 2, _bad_payload, [2, 1]),
    BadSum("ipv4 pseudo-header", False, [1000] * 3, 1, _summed_for_another_source, [1, 1, 1]),
    BadSum("ipv6 pseudo-header", True, [1000] * 4, 2, _summed_for_another_source, [2, 1, 1]),
    BadSum("ipv4 header sum", False, [1000] * 4, 1, _bad_ip_header, [1, 1, 2]),
]


@pytest.mark.parametrize("case", BAD_SUM_CASES, ids=lambda c: c.name)
def test_segment_with_a_bad_checksum_goes_alone_between_two_runs(case: BadSum, engine: str) -> None:
    """The run before it is written, the bad segment goes alone behind an all-zero header
    (the host verifies it and drops it, as its own GRO would leave it to), and the
    segments after it start a new run: never merged under a NEEDS_CSUM the host trusts."""
    segs = _segments(case.v6, case.sizes)
    bad = case.spoil(segs[case.bad])
    before, after = segs[: case.bad], segs[case.bad + 1 :]
    frames = to_host([*before, bad, *after])
    assert [count for _, count in frames] == case.counts
    assert frames == [*to_host(before), (PLAIN + bad, 1), *to_host(after)]
    if len(before) > 1:  # exactly the kernel's super-packet of what came before
        assert frames[0][0] == _coalesced(case.v6, sum(case.sizes[: case.bad]), 1000)


@pytest.mark.skipif(not tunoffload.NATIVE, reason="_tunoffload.c not built")
@given(
    head=st.binary(min_size=0, max_size=80),
    payload_size=st.integers(min_value=0, max_value=5000),
    gso_size=st.integers(min_value=0, max_value=2000),
    v6=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_c_and_python_segment_alike_on_any_input(
    head: bytes, payload_size: int, gso_size: int, v6: bool
) -> None:
    """Well-formed or not, the C segmentation gives what the Python reference gives (the
    same segments, or BadOffload for both): a header of random bytes over a valid one."""
    valid = _tcp(v6, BLOB[:payload_size])
    packet = head + valid[len(head) :]
    try:
        expected = tunoffload.segment_reference(packet, gso_size)
    except BadOffload:
        with pytest.raises(BadOffload):
            tunoffload.segment(packet, gso_size)
        return
    assert tunoffload.segment(packet, gso_size) == expected


def _resummed(packet: bytes) -> bytes:
    """``packet`` with its IPv4 header and TCP checksums recomputed (as a sender would
    have written them for these bytes), if it is long enough to have them."""
    v6 = packet[0] >> 4 == 6
    ihl = 40 if v6 else 20
    if len(packet) < ihl + 20:
        return packet
    out = bytearray(packet)
    if not v6:
        out[10:12] = b"\0\0"
        struct.pack_into("!H", out, 10, ~_sum16(bytes(out[:20])) & 0xFFFF)
    out[ihl + 16 : ihl + 18] = b"\0\0"
    addrs = out[8:40] if v6 else out[12:20]
    pseudo = _sum16(bytes(addrs) + struct.pack("!HH", 6, len(out) - ihl))
    tcp_sum = _sum16(struct.pack("!HH", pseudo, _sum16(bytes(out[ihl:]))))
    struct.pack_into("!H", out, ihl + 16, ~tcp_sum & 0xFFFF)
    return bytes(out)


_STREAM = _segments(False, [1000] * 6, last_flags="PA") + _segments(True, [900] * 4)


@pytest.mark.skipif(not tunoffload.NATIVE, reason="_tunoffload.c not built")
@given(
    picks=st.lists(st.integers(min_value=0, max_value=len(_STREAM) - 1), max_size=24),
    flips=st.lists(st.tuples(st.integers(0, 1200), st.integers(0, 255)), max_size=3),
    resum=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_c_and_python_coalesce_alike_on_any_input(
    picks: list[int], flips: list[tuple[int, int]], resum: bool
) -> None:
    """Any order, repeats and corrupted bytes of two streams' segments: the C coalescing
    gives the Python reference's frames. ``resum``: checksums redone after the
    corruption, so that the rules past the checksum check are reached too."""
    packets = [bytearray(_STREAM[i]) for i in picks]
    for at, value in flips:
        if packets:
            packet = packets[at % len(packets)]
            packet[at % len(packet)] = value
    batch = [_resummed(bytes(p)) if resum else bytes(p) for p in packets]
    assert tunoffload.to_host(batch) == tunoffload.to_host_reference(batch)


@pytest.mark.skipif(not tunoffload.NATIVE, reason="_tunoffload.c not built")
@given(
    vnet=st.binary(min_size=10, max_size=10),
    which=st.integers(min_value=0, max_value=2),
    size=st.integers(min_value=0, max_value=3000),
    cut=st.integers(min_value=0, max_value=40),
)
@settings(max_examples=300, deadline=None)
def test_c_and_python_read_any_tun_frame_alike(
    vnet: bytes, which: int, size: int, cut: int
) -> None:
    """Any virtio_net_hdr over a TCP (IPv4 or IPv6) or UDP packet, possibly truncated:
    C and Python give the same packets, or BadOffload both."""
    packet = [
        _tcp(False, BLOB[:size]),
        _tcp(True, BLOB[:size]),
        bytes(IP(src=SRC4, dst=DST4) / UDP(sport=1, dport=2) / Raw(BLOB[:size])),
    ][which]
    frame = vnet + packet[: len(packet) - cut]
    try:
        expected = tunoffload.from_host_reference(frame)
    except BadOffload:
        with pytest.raises(BadOffload):
            tunoffload.from_host(frame)
        return
    assert tunoffload.from_host(frame) == expected

"""A small streaming reader and writer of classic pcap files (not pcapng).

    with open("in.pcap", "rb") as f:
        reader = PcapReader(f)
        for record in reader:                       # one record at a time, never the file
            link, packet = split_link(reader.linktype, record.data)

    with open("out.pcap", "wb") as f:
        writer = PcapWriter(f, LINKTYPE_IPV4)
        writer.write(packet, timestamp_ns=time.time_ns())

Read: microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) magics, either byte order.
Write: little-endian (what libpcap writes on x86), microseconds unless asked otherwise.
Link types for the packet path: Ethernet (1), raw IP (101), raw IPv4 (228), raw IPv6
(229). ``split_link`` takes the link-layer header off a frame and ``join_link`` puts one
back, so an Ethernet capture keeps each packet's own header around the NIC's output.
No dependency: the format is a 24-byte file header and a 16-byte header per record.
"""

from __future__ import annotations

import contextlib
import mmap
import operator
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Generic, NamedTuple, TypeVar

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_NAMES = {
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
}

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # a pcapng Section Header Block
DEFAULT_SNAPLEN = 262144  # what tcpdump writes
#: A record larger than this is a corrupt file, not a packet (libpcap uses the same bound).
MAX_RECORD = 256 * 1024 * 1024

ETH_HEADER_LEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
_VLAN_TYPES = (0x8100, 0x88A8)  # 802.1Q / 802.1ad tags: 4 more bytes each
#: The Ethernet header of packets a NIC created (no original header to reuse):
#: locally administered MACs 02:00:00:00:00:01 -> 02:00:00:00:00:02, IPv4.
DEFAULT_ETHERNET_HEADER = bytes.fromhex("0200000000020200000000010800")

_FILE_HEADER = struct.Struct("IHHiIII")  # byte order prefixed at use
_RECORD_HEADER_LEN = 16


class PcapError(ValueError):
    """A file this module cannot read or a packet a link type cannot hold."""


class PcapRecord(NamedTuple):
    """One captured packet: ``data`` is the frame as captured (at most snaplen bytes).

    A named tuple: one is made per packet, and a frozen dataclass cost about three
    times as much to make."""

    timestamp_ns: int
    data: bytes
    orig_len: int

    @property
    def truncated(self) -> bool:
        """True when the capture kept less than the packet (snaplen)."""
        return len(self.data) < self.orig_len


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype, f"link type {linktype}")


def _check_linktype(linktype: int) -> None:
    if linktype not in LINKTYPE_NAMES:
        supported = ", ".join(f"{name} ({number})" for number, name in LINKTYPE_NAMES.items())
        raise PcapError(f"unsupported link type {linktype}: supported are {supported}")


#: How much of the file the reader takes in one read (a stream that is no regular file).
READ_BLOCK = 1 << 20

#: A frame as read: a copy, or a memoryview of the file (``PcapReader.views``).
Frame = TypeVar("Frame", bytes, memoryview)

#: A record's header as the file has it: seconds, fraction (microseconds, or nanoseconds
#: in a nanosecond file), captured length, original length.
RecordHead = tuple[int, int, int, int]
_INCL, _ORIG = operator.itemgetter(2), operator.itemgetter(3)


class PcapChunk(NamedTuple, Generic[Frame]):
    """Consecutive records of a file: the frames (copies, or views of the file read:
    ``PcapReader.views``), and each one's header as the file has it
    (``PcapWriter.write_chunk`` writes a chunk back with new frames)."""

    frames: list[Frame]
    heads: list[RecordHead]

    def truncated(self) -> bool:
        """True when the capture kept less than some packet (snaplen)."""
        heads = self.heads
        return any(map(operator.lt, map(_INCL, heads), map(_ORIG, heads)))


class PcapReader:
    """Reads the records of a pcap stream one at a time (iteration) or in chunks.

    A regular file is mapped into memory (mmap) and each frame copied out of the page
    cache once; any other stream (a pipe, stdin, a BytesIO) is read a block at a time.
    (A mapped file that another process truncates while it is read ends the reader by
    SIGBUS, as for any tool that maps its input.)
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        head = stream.read(24)
        if head[:4] == PCAPNG_MAGIC:
            raise PcapError(
                "this is a pcapng file; convert it to pcap first: editcap -F pcap IN OUT"
            )
        if len(head) < 24:
            raise PcapError(f"not a pcap file: {len(head)} bytes, a header needs 24")
        for order in ("<", ">"):
            (magic,) = struct.unpack(order + "I", head[:4])
            if magic in (MAGIC_USEC, MAGIC_NSEC):
                break
        else:
            raise PcapError(f"not a pcap file: magic 0x{head[:4].hex()}")
        self.byteorder = order
        self.nanosecond = magic == MAGIC_NSEC
        _, self.version_major, self.version_minor, _, _, snaplen, network = struct.unpack(
            order + _FILE_HEADER.format, head
        )
        self.snaplen: int = snaplen
        # The upper 16 bits carry FCS/reserved flags (pcap spec); the link type is below.
        self.linktype: int = network & 0xFFFF
        _check_linktype(self.linktype)
        self._record = struct.Struct(order + "IIII")
        self._frac_ns = 1 if self.nanosecond else 1000
        #: Where in the stream the records handed out so far end (the file header's 24
        #: bytes to begin with): how far a reader that maps the file has read it.
        self.offset = 24

    def __iter__(self) -> Iterator[PcapRecord]:
        frac_ns = self._frac_ns
        for frames, heads in self.chunks(1024):
            for data, (sec, frac, incl_len, orig_len) in zip(frames, heads, strict=True):
                yield PcapRecord(
                    sec * 1_000_000_000 + frac * frac_ns, data, max(orig_len, incl_len)
                )

    def _mapped(self) -> tuple[mmap.mmap, int] | None:
        """The whole file mapped and where the next record starts, for a regular file."""
        try:
            fd = self._stream.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            pos = self._stream.tell()
            mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # io.UnsupportedOperation: no file descriptor
            return None
        with contextlib.suppress(OSError):  # advice only
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        return mapped, pos

    def chunks(self, count: int) -> Iterator[PcapChunk[bytes]]:
        """The records in chunks of ``count`` (the last one may be shorter). A truncated
        or implausible record raises PcapError naming it, after the chunk before it."""
        for frames, heads in self._chunks_of(count, views=False):
            yield PcapChunk(frames, heads)

    def views(self, count: int) -> Iterator[PcapChunk[memoryview]]:
        """``chunks`` with each frame a memoryview of the mapped file (or of the block read)
        instead of a copy: a copy out of a mapping costs about four times a view, and
        whoever joins the frames into one message copies them anyway. A view stays valid
        as long as it is held (the mapping goes with the last one)."""
        for frames, heads in self._chunks_of(count, views=True):
            yield PcapChunk(frames, heads)

    def _chunks_of(
        self, count: int, *, views: bool
    ) -> Iterator[tuple[list[Any], list[RecordHead]]]:
        mapped = self._mapped()
        try:
            yield from self._chunks(count, mapped, views)
        finally:
            if mapped is not None:
                # A view of it still held (the caller's last chunk) keeps the mapping, and
                # close() refuses: it is unmapped when the last view goes.
                with contextlib.suppress(BufferError):
                    mapped[0].close()

    def _chunks(
        self, count: int, mapped: tuple[mmap.mmap, int] | None, views: bool
    ) -> Iterator[tuple[list[Any], list[RecordHead]]]:
        unpack_from = self._record.unpack_from
        read = self._stream.read
        buf: bytes | mmap.mmap
        if mapped is None:
            buf, pos, eof = b"", 0, False
            base = self.offset  # where buf starts in the stream
        else:
            (buf, pos), eof = mapped, True
            base = 0
        # What frames are cut from: the buffer itself (a copy each) or a view of it.
        cut: bytes | mmap.mmap | memoryview = memoryview(buf) if views else buf
        index = 0  # records before this chunk
        frames: list[Any] = []
        heads: list[RecordHead] = []
        append_frame, append_head = frames.append, heads.append
        need = _RECORD_HEADER_LEN  # what the next record needs beyond pos
        while True:
            end = len(buf)
            while end - pos >= _RECORD_HEADER_LEN:
                head = unpack_from(buf, pos)
                incl_len = head[2]
                if incl_len > MAX_RECORD:
                    self.offset = base + pos
                    if frames:
                        yield frames, heads
                    raise PcapError(
                        f"record {index + len(frames)}: length {incl_len} is not plausible"
                    )
                start = pos + _RECORD_HEADER_LEN
                stop = start + incl_len
                if stop > end:
                    need = _RECORD_HEADER_LEN + incl_len
                    break
                append_frame(cut[start:stop])
                append_head(head)
                pos = stop
                if len(frames) == count:
                    self.offset = base + pos
                    yield frames, heads
                    index += count
                    frames, heads = [], []
                    append_frame, append_head = frames.append, heads.append
            else:
                need = _RECORD_HEADER_LEN
            if eof:
                break
            more = read(max(READ_BLOCK, need - (end - pos)))
            eof = not more
            base += pos
            buf, pos = (buf[pos:] + more if pos < end else more), 0
            cut = memoryview(buf) if views else buf
        self.offset = base + pos
        if frames:
            yield frames, heads
        left = len(buf) - pos
        if left:
            index += len(frames)
            if left < _RECORD_HEADER_LEN:
                raise PcapError(f"record {index}: truncated header ({left} bytes)")
            incl_len = unpack_from(buf, pos)[2]
            have = left - _RECORD_HEADER_LEN
            raise PcapError(f"record {index}: truncated data ({have} of {incl_len} bytes)")


class PcapWriter:
    """Writes a pcap stream: the header at once, then records one by one or in chunks."""

    def __init__(
        self,
        stream: BinaryIO,
        linktype: int,
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        nanosecond: bool = False,
    ) -> None:
        _check_linktype(linktype)
        self._stream = stream
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        magic = MAGIC_NSEC if nanosecond else MAGIC_USEC
        stream.write(_FILE_HEADER.pack(magic, 2, 4, 0, 0, snaplen, linktype))
        self._record = struct.Struct("<IIII")
        self.count = 0

    def write(self, data: bytes, *, timestamp_ns: int = 0, orig_len: int | None = None) -> None:
        """One record; ``data`` beyond snaplen is cut (orig_len keeps the real length)."""
        length = len(data) if orig_len is None else max(orig_len, len(data))
        if len(data) > self.snaplen:
            data = data[: self.snaplen]
        sec, ns = divmod(timestamp_ns, 1_000_000_000)
        frac = ns if self.nanosecond else ns // 1000
        self._stream.write(self._record.pack(sec, frac, len(data), length) + data)
        self.count += 1

    def write_many(self, frames: Sequence[bytes], timestamps_ns: Sequence[int]) -> None:
        """Many records in one write (``write`` of each, with orig_len their length)."""
        unit = 1 if self.nanosecond else 1000
        stamps = [divmod(stamp, 1_000_000_000) for stamp in timestamps_ns]
        self.write_frames(frames, [s for s, _ in stamps], [ns // unit for _, ns in stamps])

    def write_frames(
        self, frames: Sequence[bytes], seconds: Sequence[int], fractions: Sequence[int]
    ) -> None:
        """Many records in one write: each frame with its time as seconds and fraction in
        this file's unit (micro- or nanoseconds), orig_len its length. The per-record work
        runs in C (map, slice assignment, join): this is the packet tools' hot path."""
        if len(frames) != len(seconds) or len(frames) != len(fractions):
            raise ValueError(
                f"{len(frames)} frames, {len(seconds)} seconds, {len(fractions)} fractions"
            )
        lengths = list(map(len, frames))
        cut = lengths
        if lengths and max(lengths) > self.snaplen:
            snaplen = self.snaplen
            frames = [data[:snaplen] for data in frames]
            cut = [min(n, snaplen) for n in lengths]
        pieces: list[bytes] = [b""] * (2 * len(frames))
        pieces[::2] = map(self._record.pack, seconds, fractions, cut, lengths)
        pieces[1::2] = frames
        self._stream.write(b"".join(pieces))
        self.count += len(frames)

    def write_chunk(self, chunk: PcapChunk[bytes]) -> None:
        """A reader's chunk back out, times as they were (same time unit as the reader's)."""
        heads = chunk.heads
        self.write_frames(chunk.frames, [h[0] for h in heads], [h[1] for h in heads])


#: The IP versions each raw link type holds.
_RAW_VERSIONS = {LINKTYPE_RAW: (4, 6), LINKTYPE_IPV4: (4,), LINKTYPE_IPV6: (6,)}


def _ip_version(packet: bytes | memoryview) -> int:
    return packet[0] >> 4 if packet else 0


def split_link(linktype: int, frame: Frame) -> tuple[bytes, Frame]:
    """(link-layer header, IP packet) of a frame (bytes, or a view: the packet is of the
    same kind, the header always bytes). Raises PcapError if it carries no IP.

    Ethernet: the 14-byte header (plus any 802.1Q/802.1ad tags) must announce IPv4 or
    IPv6. Raw link types have no header; raw IPv4/IPv6 must hold that version.
    """
    if linktype == LINKTYPE_ETHERNET:
        offset = 12
        ethertype = int.from_bytes(frame[offset : offset + 2], "big")
        while ethertype in _VLAN_TYPES:
            offset += 4
            ethertype = int.from_bytes(frame[offset : offset + 2], "big")
        if len(frame) < offset + 2:
            raise PcapError(f"Ethernet frame of {len(frame)} bytes is too short")
        if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
            raise PcapError(f"Ethernet frame carries ethertype 0x{ethertype:04x}, not IP")
        return bytes(frame[: offset + 2]), frame[offset + 2 :]
    _check_linktype(linktype)
    version = _ip_version(frame)
    wanted = _RAW_VERSIONS[linktype]
    if version not in wanted:
        raise PcapError(f"{linktype_name(linktype)} record holds IP version {version}")
    return b"", frame


def _versions(packets: Sequence[bytes | memoryview]) -> set[int] | None:
    """The IP versions of packets, None if one is empty (the loop over the packets runs in
    C: one set of first bytes per batch)."""
    try:
        firsts = set(map(_FIRST_BYTE, packets))
    except IndexError:  # an empty packet
        return None
    return {b >> 4 for b in firsts}


_FIRST_BYTE = operator.itemgetter(0)
_ETHERTYPE_AT_12 = operator.itemgetter(slice(12, 14))
_ETH_HEADER = operator.itemgetter(slice(0, ETH_HEADER_LEN))
_AFTER_ETH_HEADER = operator.itemgetter(slice(ETH_HEADER_LEN, None))
_LAST_TWO = operator.itemgetter(slice(-2, None))
_ETHERTYPES = {
    4: ETHERTYPE_IPV4.to_bytes(2, "big"),
    6: ETHERTYPE_IPV6.to_bytes(2, "big"),
}


def split_links(linktype: int, frames: list[Frame]) -> tuple[list[bytes], list[Frame]] | None:
    """(link-layer headers, IP packets) of many frames at the cost of a few C loops, or
    None when that takes more (an 802.1Q tag, or a frame ``split_link`` would refuse):
    then call ``split_link`` on each. As there, headers are bytes, packets of the frames'
    kind (a view's hash and equality are its bytes', so the sets below hold for views)."""
    if linktype == LINKTYPE_ETHERNET:
        # Untagged IP frames only: each one's ethertype at 12 (a frame shorter than 14
        # bytes has no two bytes there and goes the long way).
        if set(map(_ETHERTYPE_AT_12, frames)) <= set(_ETHERTYPES.values()):
            headers = list(map(bytes, map(_ETH_HEADER, frames)))
            return headers, list(map(_AFTER_ETH_HEADER, frames))
        return None
    versions = _versions(frames)
    if (
        linktype in _RAW_VERSIONS
        and versions is not None
        and versions <= set(_RAW_VERSIONS[linktype])
    ):
        return [b""] * len(frames), frames
    return None


def join_links(linktype: int, headers: Sequence[bytes], packets: list[bytes]) -> list[bytes]:
    """``join_link`` of each (header, packet); raises PcapError as it does. A batch of one
    IP version whose headers all carry its ethertype already (or of a raw link type that
    holds it) is joined in C loops."""
    versions = _versions(packets)
    if versions is not None:
        if linktype == LINKTYPE_ETHERNET and len(versions) == 1:
            ethertype = _ETHERTYPES.get(versions.pop())
            if set(map(_LAST_TWO, headers)) == {ethertype}:
                return list(map(operator.add, headers, packets))
        elif linktype in _RAW_VERSIONS and versions <= set(_RAW_VERSIONS[linktype]):
            return packets
    return [join_link(linktype, h, p) for h, p in zip(headers, packets, strict=True)]


def join_link(linktype: int, header: bytes, packet: bytes) -> bytes:
    """The frame for ``packet`` under ``linktype``; ``header`` is the original Ethernet
    header (or b"" for DEFAULT_ETHERNET_HEADER), its ethertype set to the packet's version
    (a tunnel may change IPv4 to IPv6). Raises PcapError for a version the type cannot hold.
    """
    version = _ip_version(packet)
    if linktype == LINKTYPE_ETHERNET:
        head = header or DEFAULT_ETHERNET_HEADER
        ethertype = ETHERTYPE_IPV6 if version == 6 else ETHERTYPE_IPV4
        return head[:-2] + ethertype.to_bytes(2, "big") + packet
    wanted = _RAW_VERSIONS.get(linktype)
    if wanted is None:
        _check_linktype(linktype)
        raise PcapError(f"unsupported link type {linktype}")
    if version not in wanted:
        raise PcapError(
            f"an IPv{version} packet cannot be written as {linktype_name(linktype)}"
            " (use a raw IP (101) or Ethernet capture)"
        )
    return packet

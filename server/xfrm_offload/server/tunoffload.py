"""TCP segmentation (TSO) and receive coalescing (GRO) for a TUN with a virtio_net_hdr.

A TUN opened with IFF_VNET_HDR prefixes every packet with a ``struct virtio_net_hdr``
(include/uapi/linux/virtio_net.h): flags, gso_type, hdr_len, gso_size, csum_start,
csum_offset, 10 bytes in the device's byte order (little-endian here: TUNSETVNETLE).
With TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) the host hands the NIC TCP
"super-packets" of up to 64 KB and leaves checksums to it, as it does with a real NIC
that does TSO; and the NIC may hand the host coalesced segments, so that the host's TCP
receive runs once per super-packet instead of once per segment.

TX (``from_host``): a super-packet is cut into ``gso_size`` segments the way a NIC's
TSO cuts them (drivers/net and net/ipv4/tcp_offload.c's software fallback do the same):
each segment gets its own IP total/payload length, IPv4 id (first id + index) and
header checksum, TCP sequence number, and FIN/PSH only on the last segment, CWR only on
the first; and a full TCP checksum, since after ESP the peer receives plain packets
that its stack verifies. A packet that only asks for its checksum (NEEDS_CSUM, no GSO)
gets it completed at csum_start + csum_offset.

RX (``to_host``): decrypted packets of one batch are coalesced per TCP flow under the
rules of the kernel's tcp_gro_receive: same addresses and ports, IPv4 without options
or fragments and with consecutive ids, identical header bytes apart from lengths, ids,
checksums and PSH (so the same ACK number, window, options and timestamps), contiguous
sequence numbers, every segment the first one's size except a last shorter one; only
ACK (and PSH, which ends the super-packet) among the flags; at most 64 KB; and a TCP
checksum that verifies (pseudo-header included) and an IPv4 header checksum that does,
which the kernel's GRO checks before merging too (inet_gro_receive,
skb_gro_checksum_validate). The result carries NEEDS_CSUM with the
pseudo-header sum in the checksum field, as the kernel's own GRO output does, and the
host's TCP trusts it: so a segment is merged only once its own checksum was verified
here (ESP's ICV proves who sent the bytes, not that the sender's checksum was right). A
segment that fails ends its flow's run and goes alone; everything else (UDP, ICMP,
SYN/FIN/RST, single segments) too, one by one with an all-zero header, and the host
verifies it as usual (and drops a bad one, counting it in TCP's CsumErrors).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from xfrm_offload.engine.ipheader import fold_checksum, ipv4_checksum, ones_complement_sum

from .ifaces import load_helper

#: struct virtio_net_hdr (without num_buffers): TUNSETVNETHDRSZ is set to its size.
VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = VNET_HDR.size
F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
#: The header of a packet that needs nothing done (checksum already in it, no GSO).
PLAIN = bytes(VNET_HDR_LEN)

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
#: Flags that end coalescing at once (the kernel flushes on them).
_NOT_COALESCED = FIN | SYN | RST | URG | CWR
#: The largest IP packet a super-packet may become.
MAX_COALESCED = 65535
IPPROTO_TCP = 6

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class BadOffload(ValueError):
    """A TUN frame whose virtio_net_hdr does not describe the packet behind it."""


#: _tunoffload.c: segmentation and sums in C; the Python below is the reference it matches.
_native = load_helper("_tunoffload")
if _native is not None:
    _native.set_error(BadOffload)
#: True when segmentation and checksums run in C.
NATIVE = _native is not None


def _pseudo_sum(packet: bytes | bytearray, v6: bool, l4_length: int) -> int:
    """The ones' complement sum of the TCP pseudo-header (unfolded)."""
    addresses = packet[8:40] if v6 else packet[12:20]
    return ones_complement_sum(addresses) + IPPROTO_TCP + l4_length


def _l3_length(packet: bytes | bytearray) -> tuple[bool, int]:
    """(IPv6?, IP header length) of a TCP packet; BadOffload if it is not one."""
    version = packet[0] >> 4 if packet else 0
    if version == 4 and len(packet) >= 20 and packet[9] == IPPROTO_TCP and packet[0] & 0x0F >= 5:
        return False, (packet[0] & 0x0F) * 4
    if version == 6 and len(packet) >= 40 and packet[6] == IPPROTO_TCP:
        return True, 40
    raise BadOffload("GSO packet is not TCP over IPv4/IPv6 without extension headers")


def from_host(frame: bytes) -> list[bytes]:
    """The plain IP packets one TUN read carries: its virtio_net_hdr stripped, checksum
    completed, a TCP super-packet segmented; BadOffload if the header is inconsistent."""
    if _native is not None:
        packets: list[bytes] = _native.from_host(frame)
        return packets
    return from_host_reference(frame)


def from_host_reference(frame: bytes) -> list[bytes]:
    """``from_host`` in Python: the rules _tunoffload.c implements, byte for byte."""
    if len(frame) < VNET_HDR_LEN:
        raise BadOffload("shorter than its virtio_net_hdr")
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
    packet = frame[VNET_HDR_LEN:]
    if gso_type & ~GSO_ECN != GSO_NONE:
        return segment_reference(packet, gso_size)
    if flags & F_NEEDS_CSUM:
        return [complete_checksum(packet, csum_start, csum_offset)]
    return [packet]


def complete_checksum(packet: bytes, start: int, offset: int) -> bytes:
    """The checksum of ``packet[start:]`` stored at ``start + offset``, its field holding
    the pseudo-header sum (what the kernel's skb_checksum_help does; a zero result is
    written as 0xFFFF, which UDP needs and TCP treats alike)."""
    at = start + offset
    if at + 2 > len(packet) or start < 20:
        raise BadOffload("checksum offsets point outside the packet")
    data = bytearray(packet)
    _U16.pack_into(data, at, fold_checksum(ones_complement_sum(data[start:])) or 0xFFFF)
    return bytes(data)


def segment(packet: bytes, gso_size: int) -> list[bytes]:
    """A TCP super-packet cut into segments of ``gso_size`` payload bytes, each a
    complete packet (lengths, ids, sequence numbers, flags and checksums its own)."""
    if _native is not None:
        segments: list[bytes] = _native.segment(packet, gso_size)
        return segments
    return segment_reference(packet, gso_size)


def segment_reference(packet: bytes, gso_size: int) -> list[bytes]:
    """``segment`` in Python: the rules _tunoffload.c implements, byte for byte."""
    v6, ihl = _l3_length(packet)
    if len(packet) < ihl + 20:
        raise BadOffload("GSO packet shorter than its TCP header")
    thl = (packet[ihl + 12] >> 4) * 4
    hlen = ihl + thl
    if thl < 20 or hlen > len(packet) or gso_size == 0:
        raise BadOffload("GSO packet with a bad TCP header length or gso_size 0")
    template = bytearray(packet[:hlen])
    _U16.pack_into(template, ihl + 16, 0)
    (seq,) = _U32.unpack_from(packet, ihl + 4)
    (ip_id,) = _U16.unpack_from(packet, 4)
    flags = packet[ihl + 13]
    payload = memoryview(packet)[hlen:]
    total = len(payload)
    segments = []
    for index, start in enumerate(range(0, max(total, 1), gso_size)):
        chunk = payload[start : start + gso_size]
        last = start + gso_size >= total
        header = bytearray(template)
        seg_flags = flags if last else flags & ~(FIN | PSH)
        header[ihl + 13] = seg_flags if index == 0 else seg_flags & ~CWR
        _U32.pack_into(header, ihl + 4, (seq + start) & 0xFFFFFFFF)
        if v6:
            _U16.pack_into(header, 4, thl + len(chunk))
        else:
            _U16.pack_into(header, 2, hlen + len(chunk))
            _U16.pack_into(header, 4, (ip_id + index) & 0xFFFF)
            _U16.pack_into(header, 10, ipv4_checksum(memoryview(header)[:ihl]))
        tcp_sum = (
            _pseudo_sum(header, v6, thl + len(chunk))
            + ones_complement_sum(memoryview(header)[ihl:])
            + ones_complement_sum(chunk)
        )
        _U16.pack_into(header, ihl + 16, fold_checksum(tcp_sum))
        segments.append(bytes(header) + chunk)
    return segments


class _Flow:
    """Segments of one TCP flow being coalesced: the first one's header, the payloads."""

    __slots__ = ("closed", "count", "first", "fixed", "hlen", "ihl", "length", "next_id",
                 "next_seq", "payloads", "push", "size", "v6")  # fmt: skip

    def __init__(self, packet: bytes, v6: bool, ihl: int, hlen: int, seq: int) -> None:
        self.first = packet
        self.v6, self.ihl, self.hlen = v6, ihl, hlen
        self.size = len(packet) - hlen
        self.next_seq = (seq + self.size) & 0xFFFFFFFF
        #: IPv4: the id the next segment must have (ids count up, as TSO makes them).
        self.next_id = -1 if v6 else (_U16.unpack_from(packet, 4)[0] + 1) & 0xFFFF
        self.count = 1
        self.length = len(packet)
        self.payloads = [packet[hlen:]]
        self.push = False
        self.closed = False
        self.fixed = _fixed_bytes(packet, v6, ihl, hlen)

    def add(self, packet: bytes, seq: int, fixed: bytes) -> bool:
        """Append ``packet`` if it continues this flow's super-packet."""
        size = len(packet) - self.hlen
        if (
            self.closed
            or seq != self.next_seq
            or size > self.size
            or self.length + size > MAX_COALESCED
            or fixed != self.fixed
            or (self.next_id >= 0 and _U16.unpack_from(packet, 4)[0] != self.next_id)
        ):  # fmt: skip
            return False
        self.payloads.append(packet[self.hlen :])
        self.count += 1
        self.length += size
        self.next_seq = (seq + size) & 0xFFFFFFFF
        if self.next_id >= 0:
            self.next_id = (self.next_id + 1) & 0xFFFF
        self.push = bool(packet[self.ihl + 13] & PSH)
        self.closed = self.push or size < self.size
        return True

    def frame(self) -> bytes:
        """The TUN frame: a virtio_net_hdr and the packet (coalesced if more than one)."""
        if self.count == 1:
            return PLAIN + self.first
        ihl, hlen = self.ihl, self.hlen
        header = bytearray(self.first[:hlen])
        if self.v6:
            _U16.pack_into(header, 4, self.length - 40)
        else:
            _U16.pack_into(header, 2, self.length)
            _U16.pack_into(header, 10, ipv4_checksum(memoryview(header)[:ihl]))
        if self.push:
            header[ihl + 13] |= PSH
        # CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not inverted
        partial = ~fold_checksum(_pseudo_sum(header, self.v6, self.length - ihl)) & 0xFFFF
        _U16.pack_into(header, ihl + 16, partial)
        gso_type = GSO_TCPV6 if self.v6 else GSO_TCPV4
        vnet = VNET_HDR.pack(F_NEEDS_CSUM, gso_type, hlen, self.size, ihl, 16)
        return b"".join((vnet, header, *self.payloads))


def _fixed_bytes(packet: bytes, v6: bool, ihl: int, hlen: int) -> bytes:
    """The header bytes every coalesced segment must share: IP fields other than lengths,
    ids and checksums; TCP's ACK number, data offset, flags but PSH, window, urgent
    pointer and options."""
    flags = bytes((packet[ihl + 13] & ~PSH,))
    ip = packet[0:4] + packet[6:8] if v6 else packet[0:2] + packet[6:10]
    return b"".join((ip, packet[ihl + 8 : ihl + 13], flags, packet[ihl + 14 : ihl + 16],
                     packet[ihl + 18 : hlen]))  # fmt: skip


def _tcp(packet: bytes) -> tuple[bool, int, int, bytes, bool] | None:
    """(IPv6?, IP header length, IP+TCP header length, flow key, may be coalesced) of
    a TCP packet without IP options, extension headers or fragmentation; else None."""
    n = len(packet)
    if n < 40:
        return None
    version = packet[0] >> 4
    if version == 4:
        if packet[0] != 0x45 or packet[9] != IPPROTO_TCP or packet[6] & 0x3F or packet[7]:
            return None  # options, another protocol, or a fragment
        if _U16.unpack_from(packet, 2)[0] != n:
            return None
        v6, ihl, addresses = False, 20, packet[12:20]
    elif version == 6:
        if n < 60 or packet[6] != IPPROTO_TCP or _U16.unpack_from(packet, 4)[0] + 40 != n:
            return None
        v6, ihl, addresses = True, 40, packet[8:40]
    else:
        return None
    hlen = ihl + (packet[ihl + 12] >> 4) * 4
    if hlen < ihl + 20 or hlen > n:
        return None
    flags = packet[ihl + 13]
    data = hlen < n and not flags & _NOT_COALESCED and bool(flags & ACK)
    data = data and _checksums_ok(packet, v6, ihl)
    return v6, ihl, hlen, addresses + packet[ihl : ihl + 4], data


def _checksums_ok(packet: bytes, v6: bool, ihl: int) -> bool:
    """The TCP checksum verifies (pseudo-header, header and payload sum to 0xFFFF), and
    IPv4's header checksum, as the kernel's GRO checks both before merging
    (inet_gro_receive, tcp4/6_gro_receive): the super-packet gets headers of its own."""
    if not v6 and fold_checksum(ones_complement_sum(packet[:20])) != 0:
        return False
    l4 = len(packet) - ihl
    total = _pseudo_sum(packet, v6, l4) + ones_complement_sum(memoryview(packet)[ihl:])
    return fold_checksum(total) == 0


def to_host(packets: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """TUN frames (virtio_net_hdr + packet) for what the device delivers to its host,
    each with the number of packets it carries; TCP segments coalesced per flow."""
    if _native is not None and type(packets) is list:
        frames: list[tuple[bytes, int]] = _native.coalesce(packets)
        return frames
    return to_host_reference(packets)


def to_host_reference(packets: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """``to_host`` in Python: the rules _tunoffload.c implements, byte for byte."""
    entries: list[_Flow | bytes] = []
    flows: dict[bytes, _Flow] = {}
    for packet in packets:
        found = _tcp(packet)
        if found is None:
            entries.append(packet)
            continue
        v6, ihl, hlen, key, data = found
        flow = flows.pop(key, None)
        if not data:  # after what is open of its flow, and nothing joins across it
            entries.append(packet)
            continue
        (seq,) = _U32.unpack_from(packet, ihl + 4)
        if (
            flow is None
            or flow.hlen != hlen
            or not flow.add(packet, seq, _fixed_bytes(packet, v6, ihl, hlen))
        ):
            flow = _Flow(packet, v6, ihl, hlen, seq)
            flow.closed = bool(packet[ihl + 13] & PSH)
            entries.append(flow)
        flows[key] = flow
    return [
        (PLAIN + entry, 1) if isinstance(entry, bytes) else (entry.frame(), entry.count)
        for entry in entries
    ]

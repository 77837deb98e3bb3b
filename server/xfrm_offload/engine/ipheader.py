"""Small IPv4/IPv6 header helpers for the ESP engine: checksums, parsing, templates.

Everything works on plain ``bytes``; nothing here allocates per-packet objects beyond
the bytes it returns. Parsing helpers return ``None`` (never raise) on a malformed
header so the packet loops can count the drop.
"""

from __future__ import annotations

import struct

IPPROTO_HOPOPTS = 0
IPPROTO_IPIP = 4
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

IPV4_DF = 0x4000
#: Default outer TTL / hop limit: what ip4_dst_hoplimit / ip6_dst_hoplimit give by default.
DEFAULT_TTL = 64

_H10 = struct.Struct("!10H")
_V4_HEAD = struct.Struct("!BBHHHBBH")  # ver/ihl, tos, tot_len, id, frag, ttl, proto, csum
_V6_HEAD = struct.Struct("!IHBB")  # ver/tc/flow, payload_len, next header, hop limit
_UDP = struct.Struct("!HHHH")


def ones_complement_sum(data: bytes | bytearray | memoryview) -> int:
    """The 16-bit one's complement sum of ``data`` (odd length padded with a zero byte).

    Uses 2**16 == 1 (mod 0xFFFF): the sum of the big-endian 16-bit words is the whole
    buffer read as one big integer, modulo 0xFFFF; C-speed for any length.
    """
    if len(data) & 1:
        data = bytes(data) + b"\x00"
    value = int.from_bytes(data, "big")
    if value == 0:
        return 0
    return value % 0xFFFF or 0xFFFF


def fold_checksum(total: int) -> int:
    """Fold a running sum of 16-bit words and complement it (RFC 1071)."""
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_checksum(header: bytes | bytearray | memoryview) -> int:
    """The checksum an IPv4 header's checksum field must hold (field itself read as 0)."""
    if len(header) == 20:
        words = _H10.unpack(header)
        return fold_checksum(sum(words) - words[5])
    zeroed = bytearray(header)
    zeroed[10] = zeroed[11] = 0
    return fold_checksum(ones_complement_sum(zeroed))


def rewrite_ipv4_header(header: bytes | memoryview, proto: int, total_length: int) -> bytes:
    """``header`` (options included) with a new protocol and total length, checksum redone.

    TTL, TOS, ID, flags and options are left as they are: transport mode changes only
    what ESP insertion/removal changes.
    """
    out = bytearray(header)
    out[9] = proto
    out[2] = total_length >> 8
    out[3] = total_length & 0xFF
    out[10] = out[11] = 0
    csum = fold_checksum(ones_complement_sum(out))
    out[10] = csum >> 8
    out[11] = csum & 0xFF
    return bytes(out)


def parse_ipv4(packet: bytes | memoryview) -> tuple[int, int, int] | None:
    """(header length, total length, protocol) of an IPv4 packet, or None if malformed.

    The packet may be longer than its total length (link padding): callers slice to it.
    """
    n = len(packet)
    if n < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = (packet[2] << 8) | packet[3]
    if ihl < 20 or total < ihl or total > n:
        return None
    return ihl, total, packet[9]


def ipv4_header_ok(packet: bytes | memoryview, ihl: int) -> bool:
    """True unless the IPv4 packet is a fragment (MF set or an offset) or its header
    checksum does not verify: what ip_rcv drops (and reassembles) before xfrm sees it."""
    if packet[6] & 0x3F or packet[7]:
        return False
    if ihl == 20:
        s: int = sum(_H10.unpack_from(packet))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return s == 0xFFFF
    return ones_complement_sum(packet[:ihl]) == 0xFFFF


def udp_checksum_ok(packet: bytes | memoryview, start: int, length: int, v6: bool) -> bool:
    """The UDP datagram ``packet[start:start + length]`` against its checksum.

    Over IPv4 a checksum of 0 means "none" and passes (RFC 768, as ESP-in-UDP sends it);
    over IPv6 0 is not allowed (RFC 8200 §8.1) and fails. The pseudo-header takes the
    addresses from the packet's own IP header.
    """
    checksum = (packet[start + 6] << 8) | packet[start + 7]
    if checksum == 0:
        return not v6
    if v6:
        pseudo = bytes(packet[8:40]) + length.to_bytes(4, "big") + b"\x00\x00\x00\x11"
    else:
        pseudo = bytes(packet[12:20]) + b"\x00\x11" + length.to_bytes(2, "big")
    return ones_complement_sum(pseudo + bytes(packet[start : start + length])) == 0xFFFF


def parse_ipv6(packet: bytes | memoryview) -> tuple[int, int] | None:
    """(total length = 40 + payload length, next header) of an IPv6 packet, or None."""
    n = len(packet)
    if n < 40 or packet[0] >> 4 != 6:
        return None
    total = 40 + ((packet[4] << 8) | packet[5])
    if total > n:
        return None
    return total, packet[6]


_EXT_HEADERS = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS})


def _ext_len(packet: bytes | memoryview, off: int, nh: int) -> int:
    if nh == IPPROTO_FRAGMENT:
        return 8
    return (packet[off + 1] + 1) * 8


def ipv6_esp_insert_point(packet: bytes | memoryview, total: int) -> tuple[int, int] | None:
    """Where transport-mode ESP goes in an IPv6 packet: (offset, next-header field offset).

    RFC 4303 §3.1.1: after hop-by-hop, routing and fragment headers; destination
    options may sit on either side, and like the kernel (ip6_find_1stfragopt) we keep a
    destination-options header before ESP only when a routing header follows it (it is
    then meant for each hop of the route). The field at the returned offset holds the
    next header value that ESP must carry in its trailer. None if the chain is truncated.
    """
    field = 6
    off = 40
    nh = packet[6]
    while True:
        if nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT):
            pass
        elif nh == IPPROTO_DSTOPTS:
            if off + 2 > total:
                return None
            following = packet[off]
            if following != IPPROTO_ROUTING:
                return off, field
        else:
            return off, field
        if off + 2 > total:
            return None
        length = _ext_len(packet, off, nh)
        if off + length > total:
            return None
        field = off
        nh = packet[off]
        off += length


def ipv6_find_header(packet: bytes | memoryview, total: int, wanted: int) -> tuple[int, int] | None:
    """Walk the extension headers to the first header ``wanted`` (ESP, or UDP for NAT-T).

    Returns (offset, next-header field offset), or None when the chain ends elsewhere or
    is truncated.
    """
    field = 6
    off = 40
    nh = packet[6]
    while nh != wanted:
        if nh not in _EXT_HEADERS and nh != IPPROTO_FRAGMENT:
            return None
        if off + 2 > total:
            return None
        length = _ext_len(packet, off, nh)
        if off + length > total:
            return None
        field = off
        nh = packet[off]
        off += length
    return off, field


def rewrite_ipv6_header(
    head: bytes | memoryview, field: int, next_header: int, payload_length: int
) -> bytes:
    """``head`` (fixed header plus the extension headers before ESP) re-pointed.

    ``field`` is the offset of the next-header byte to set; the payload length is the
    fixed header's. Hop limit untouched.
    """
    out = bytearray(head)
    out[field] = next_header
    out[4] = payload_length >> 8
    out[5] = payload_length & 0xFF
    return bytes(out)


def ecn_encapsulate(tos: int, *, noecn: bool, copy_dscp: bool) -> int:
    """The outer TOS/traffic class for an inner one (RFC 6040 normal mode, as the kernel).

    ECN: copied, except CE which becomes ECT(0); cleared with XFRM_STATE_NOECN.
    DSCP: copied unless XFRM_SA_XFLAG_DONT_ENCAP_DSCP.
    """
    ecn = tos & 3
    if ecn == 3:
        ecn = 2
    if noecn:
        ecn = 0
    return ((tos & 0xFC) if copy_dscp else 0) | ecn


def decapsulate_tos(outer_tos: int, inner: bytes, *, ecn: bool, copy_dscp: bool) -> bytes:
    """The inner packet after tunnel decapsulation, as the kernel leaves it.

    An outer CE mark turns an ECN-capable (ECT) inner packet CE, unless the SA has
    XFRM_STATE_NOECN (``ecn`` False); an inner Not-ECT packet stays as it is.
    XFRM_STATE_DECAP_DSCP (``copy_dscp``) copies the outer DSCP into the inner header.
    The IPv4 header checksum follows.
    """
    v4 = inner[0] >> 4 == 4
    tos = inner[1] if v4 else ((inner[0] & 0x0F) << 4) | (inner[1] >> 4)
    new = (outer_tos & 0xFC) | (tos & 3) if copy_dscp else tos
    if ecn and outer_tos & 3 == 3 and new & 3:
        new |= 3
    if new == tos:
        return inner
    if v4:
        ihl = (inner[0] & 0x0F) * 4
        if not 20 <= ihl <= len(inner):
            # Not a header we can rewrite (and checksum): left as it came; the host
            # stack drops it as a bad IPv4 header.
            return inner
        head = bytearray(inner[:ihl])
        head[1] = new
        head[10:12] = ipv4_checksum(head).to_bytes(2, "big")
        return bytes(head) + inner[ihl:]
    return (
        bytes(((inner[0] & 0xF0) | (new >> 4), ((new & 0x0F) << 4) | (inner[1] & 0x0F)))
        + (inner[2:])
    )


class IPv4Template:
    """An outer IPv4 header with everything fixed but TOS, length, ID and DF.

    The checksum is the precomputed sum of the fixed words plus the variable ones,
    folded: a handful of integer operations per packet.
    """

    __slots__ = ("_addrs", "_base", "_pack", "proto", "ttl")

    def __init__(self, saddr: bytes, daddr: bytes, proto: int, ttl: int = DEFAULT_TTL) -> None:
        self.proto = proto
        self.ttl = ttl
        self._addrs = saddr + daddr
        self._pack = _V4_HEAD.pack
        a = _H10.unpack(b"\x00" * 12 + saddr + daddr)
        self._base = 0x4500 + ((ttl << 8) | proto) + sum(a)

    def build(self, total_length: int, tos: int = 0, df: bool = False, ident: int = 0) -> bytes:
        frag = IPV4_DF if df else 0
        s = self._base + tos + total_length + ident + frag
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return (
            self._pack(0x45, tos, total_length, ident, frag, self.ttl, self.proto, ~s & 0xFFFF)
            + self._addrs
        )


class IPv6Template:
    """An outer IPv6 header with everything fixed but traffic class and payload length."""

    __slots__ = ("_addrs", "_pack", "hop_limit", "next_header")

    def __init__(
        self, saddr: bytes, daddr: bytes, next_header: int, hop_limit: int = DEFAULT_TTL
    ) -> None:
        self.next_header = next_header
        self.hop_limit = hop_limit
        self._addrs = saddr + daddr
        self._pack = _V6_HEAD.pack

    def build(self, payload_length: int, tclass: int = 0, flow_label: int = 0) -> bytes:
        word = 0x60000000 | (tclass << 20) | flow_label
        return self._pack(word, payload_length, self.next_header, self.hop_limit) + self._addrs


def udp_header(sport: int, dport: int, length: int, checksum: int = 0) -> bytes:
    return _UDP.pack(sport, dport, length, checksum)


def udp6_checksum(saddr: bytes, daddr: bytes, udp: bytes) -> int:
    """The UDP checksum over the IPv6 pseudo-header (mandatory for UDP over IPv6).

    ``udp`` is the whole UDP datagram with its checksum field zero. 0 is sent as 0xFFFF.
    """
    pseudo = saddr + daddr + len(udp).to_bytes(4, "big") + b"\x00\x00\x00\x11"
    csum = fold_checksum(ones_complement_sum(pseudo + udp))
    return csum or 0xFFFF

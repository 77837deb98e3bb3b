"""ICMP "fragmentation needed" (RFC 1191) and ICMPv6 "packet too big" (RFC 8201) replies.

When a packet the host sent into the TUN would leave the NIC larger than the wire's
MTU once encapsulated, and it may not be fragmented (IPv4 with DF, any IPv6), the NIC
drops it and answers the host with the MTU that would have fitted, as the kernel does
for its own IPsec tunnels; the host's stack then lowers its path MTU and resends.
The reply comes "from" the packet's destination: the host drops ICMP from one of its
own addresses arriving on an interface as a martian, and any remote source serves the
path MTU update, which looks only at the quoted header.
"""

from __future__ import annotations

import struct

from xfrm_offload.engine.ipheader import (
    DEFAULT_TTL,
    fold_checksum,
    ipv4_checksum,
    ones_complement_sum,
)

ICMP = 1
ICMPV6 = 58
#: What an ICMP error may carry at most: RFC 1812 (576 bytes) and RFC 4443 (1280).
_V4_LIMIT = 576
_V6_LIMIT = 1280
#: The smallest MTU IPv4 routers must handle (RFC 791) and IPv6's minimum link MTU.
V4_MIN_MTU = 68
V6_MIN_MTU = 1280
#: ICMP types that are errors: never answered with another error (RFC 1122 3.2.2).
_V4_ERRORS = frozenset({3, 4, 5, 11, 12})


def may_fragment(packet: bytes) -> bool:
    """An IPv4 packet without DF: the NIC may split it instead of refusing it."""
    return len(packet) >= 20 and packet[0] >> 4 == 4 and not packet[6] & 0x40


def too_big(packet: bytes, mtu: int) -> bytes | None:
    """The ICMP error that tells the sender of ``packet`` to use ``mtu``; None when the
    packet gets none (not IP, an IPv4 fragment that may be split, an ICMP error)."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return _fragmentation_needed(packet, max(mtu, V4_MIN_MTU))
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return _packet_too_big(packet, max(mtu, V6_MIN_MTU))
    return None


def _fragmentation_needed(packet: bytes, mtu: int) -> bytes | None:
    ihl = (packet[0] & 0x0F) * 4
    if may_fragment(packet) or (
        packet[9] == ICMP and len(packet) > ihl and packet[ihl] in _V4_ERRORS
    ):
        return None
    quoted = packet[: _V4_LIMIT - 28]
    icmp = bytearray(struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quoted)
    struct.pack_into("!H", icmp, 2, fold_checksum(ones_complement_sum(icmp)))
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(icmp),
            0,
            0,
            DEFAULT_TTL,
            ICMP,
            0,
            packet[16:20],
            packet[12:16],
        )
    )
    struct.pack_into("!H", header, 10, ipv4_checksum(header))
    return bytes(header + icmp)


def _packet_too_big(packet: bytes, mtu: int) -> bytes | None:
    if packet[6] == ICMPV6 and len(packet) > 40 and packet[40] < 128:
        return None  # an ICMPv6 error (types below 128)
    src, dst = packet[24:40], packet[8:24]
    quoted = packet[: _V6_LIMIT - 48]
    icmp = bytearray(struct.pack("!BBHI", 2, 0, 0, mtu) + quoted)
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), ICMPV6)
    struct.pack_into("!H", icmp, 2, fold_checksum(ones_complement_sum(pseudo + icmp)))
    header = struct.pack("!IHBB16s16s", 6 << 28, len(icmp), ICMPV6, DEFAULT_TTL, src, dst)
    return header + bytes(icmp)

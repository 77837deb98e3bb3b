"""Selectors (xfrm_selector) against packet flows: matching and flow extraction.

A flow is what the kernel's flowi carries for an xfrm lookup: family, addresses,
upper-layer protocol, ports and the output interface. Like the kernel, protocols
without ports reuse the two port fields: ICMP/ICMPv6 put the type in ``sport`` and
the code in ``dport``, the IPv6 mobility header its type in ``sport``, GRE its key
(high 16 bits in ``sport``, low in ``dport``).

Matching follows the kernel's __xfrm4/6_selector_match: addresses under the
selector's prefix lengths, ports under their masks (mask 0 = any port), protocol
0 = any, ifindex 0 = any, and the family must be the selector's.

Addresses are ints here (``int(ipaddress)``): masking is one ``&``, and a flow
pulled out of packet bytes never builds an ipaddress object.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from .errors import InvalidArgument
from .types import Family, IPAddress, Selector

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
IPPROTO_MH = 135
IPPROTO_UDPLITE = 136

#: Protocols whose first four bytes are source and destination port.
_PORT_PROTOS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE})
#: IPv6 extension headers skipped on the way to the upper layer (RFC 8200 §4):
#: hop-by-hop, routing, destination options. Fragment (44) is handled apart.
_IPV6_EXT_SKIP = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44

ADDR_BITS = {Family.INET: 32, Family.INET6: 128}
# Enum member lookups cost an attribute walk through the metaclass: hoist them.
_INET = Family.INET
_INET6 = Family.INET6


class FlowKey(NamedTuple):
    """One packet's lookup key (the fields of flowi an xfrm selector looks at).

    A NamedTuple rather than a frozen dataclass: it is built once per packet, and
    a tuple builds several times faster.
    """

    family: Family
    saddr: int
    daddr: int
    proto: int = 0
    sport: int = 0
    dport: int = 0
    ifindex: int = 0

    @classmethod
    def of(
        cls,
        saddr: IPAddress | str,
        daddr: IPAddress | str,
        proto: int = 0,
        sport: int = 0,
        dport: int = 0,
        ifindex: int = 0,
    ) -> FlowKey:
        """Build a flow from addresses (objects or strings); the family follows them."""
        src = ipaddress.ip_address(saddr)
        dst = ipaddress.ip_address(daddr)
        if src.version != dst.version:
            raise InvalidArgument("source and destination families differ", field="saddr")
        family = Family.INET if dst.version == 4 else Family.INET6
        return cls(family, int(src), int(dst), proto, sport, dport, ifindex)

    @property
    def saddr_ip(self) -> IPAddress:
        return _to_ip(self.family, self.saddr)

    @property
    def daddr_ip(self) -> IPAddress:
        return _to_ip(self.family, self.daddr)

    def saddr_packed(self) -> bytes:
        return self.saddr.to_bytes(ADDR_BITS[self.family] // 8, "big")

    def daddr_packed(self) -> bytes:
        return self.daddr.to_bytes(ADDR_BITS[self.family] // 8, "big")


def _to_ip(family: Family, value: int) -> IPAddress:
    if family == Family.INET:
        return ipaddress.IPv4Address(value)
    return ipaddress.IPv6Address(value)


def prefix_mask(family: Family, prefixlen: int) -> int:
    """The netmask of ``prefixlen`` bits as an int (0 for /0)."""
    bits = ADDR_BITS[family]
    return ((1 << prefixlen) - 1) << (bits - prefixlen)


def check_selector(sel: Selector) -> None:
    """The checks every selector gets (an SA's and a policy's), in the order the
    server reports them: family, prefix lengths, protocol, ports. Fields are
    ``sel.*``."""
    bits = ADDR_BITS.get(sel.family)
    if bits is None:
        raise InvalidArgument("selector family must be inet or inet6", field="sel.family")
    for name in ("prefixlen_d", "prefixlen_s"):
        plen: int = getattr(sel, name)
        if not 0 <= plen <= bits:
            raise InvalidArgument(
                f"sel.{name} {plen} is longer than an IPv{4 if bits == 32 else 6} address",
                field=f"sel.{name}",
            )
    if not 0 <= sel.proto <= 255:
        raise InvalidArgument("sel.proto must be 0-255", field="sel.proto")
    for name in ("dport", "dport_mask", "sport", "sport_mask"):
        if not 0 <= getattr(sel, name) <= 0xFFFF:
            raise InvalidArgument(f"sel.{name} must be at most 65535", field=f"sel.{name}")


def _selector_addr(sel: Selector, which: str) -> tuple[int, int]:
    """(masked address, mask) of the selector's ``daddr`` or ``saddr`` (``check_selector``
    passed), validated against the family."""
    addr: IPAddress | None = getattr(sel, which)
    plen: int = getattr(sel, "prefixlen_d" if which == "daddr" else "prefixlen_s")
    if addr is None:
        if plen:
            raise InvalidArgument("a prefix length needs an address", field=f"sel.{which}")
        return 0, 0
    if addr.version != (4 if sel.family == Family.INET else 6):
        raise InvalidArgument("address family differs from sel.family", field=f"sel.{which}")
    mask = prefix_mask(sel.family, plen)
    return int(addr) & mask, mask


class SelectorMatcher:
    """A selector compiled to ints: ``matches(flow)`` is a handful of integer tests."""

    __slots__ = (
        "daddr",
        "dmask",
        "dport",
        "dport_mask",
        "family",
        "ifindex",
        "proto",
        "saddr",
        "selector",
        "smask",
        "sport",
        "sport_mask",
    )

    def __init__(self, sel: Selector) -> None:
        check_selector(sel)
        self.selector = sel
        self.family = sel.family
        self.daddr, self.dmask = _selector_addr(sel, "daddr")
        self.saddr, self.smask = _selector_addr(sel, "saddr")
        self.dport_mask = sel.dport_mask
        self.dport = sel.dport & sel.dport_mask
        self.sport_mask = sel.sport_mask
        self.sport = sel.sport & sel.sport_mask
        self.proto = sel.proto
        self.ifindex = sel.ifindex

    def matches(self, flow: FlowKey) -> bool:
        return (
            flow.family == self.family
            and (flow.daddr & self.dmask) == self.daddr
            and (flow.saddr & self.smask) == self.saddr
            and self.matches_beyond_addresses(flow)
        )

    def matches_beyond_addresses(self, flow: FlowKey) -> bool:
        """The tests after family and addresses: for an index that matched those already."""
        return (
            (flow.dport & self.dport_mask) == self.dport
            and (flow.sport & self.sport_mask) == self.sport
            and (not self.proto or flow.proto == self.proto)
            and (not self.ifindex or flow.ifindex == self.ifindex)
        )


def selector_matches(sel: Selector, flow: FlowKey) -> bool:
    """One-off match (compiles the selector each time; keep a SelectorMatcher for reuse)."""
    return SelectorMatcher(sel).matches(flow)


def _upper_ports(proto: int, buf: bytes | memoryview, off: int) -> tuple[int, int] | None:
    """The (sport, dport) the kernel's flow would carry for ``proto`` at ``off``; None if cut."""
    if proto in _PORT_PROTOS:
        if len(buf) < off + 4:
            return None
        return (buf[off] << 8) | buf[off + 1], (buf[off + 2] << 8) | buf[off + 3]
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if len(buf) < off + 2:
            return None
        return buf[off], buf[off + 1]
    if proto == IPPROTO_MH:
        if len(buf) < off + 3:
            return None
        return buf[off + 2], 0
    if proto == IPPROTO_GRE:
        if len(buf) < off + 4:
            return None
        flags = buf[off]
        if not flags & 0x20:  # no key present
            return 0, 0
        key_off = off + 4 + (4 if flags & 0x80 else 0)  # after the optional checksum word
        if len(buf) < key_off + 4:
            return None
        return (buf[key_off] << 8) | buf[key_off + 1], (buf[key_off + 2] << 8) | buf[key_off + 3]
    return 0, 0


def flow_from_packet(buf: bytes | memoryview, ifindex: int = 0) -> FlowKey | None:
    """The flow key of a raw IPv4 or IPv6 packet, or None if it is malformed or cut short.

    Fragments other than the first carry no upper-layer header: their ports are 0
    (IPv4 follows the kernel and leaves ports out for any fragment). IPv6
    hop-by-hop, routing and destination-options headers are skipped.
    """
    if not buf:
        return None
    version = buf[0] >> 4
    if version == 4:
        ihl = (buf[0] & 0x0F) * 4
        if ihl < 20 or len(buf) < ihl:
            return None
        proto = buf[9]
        saddr = int.from_bytes(buf[12:16], "big")
        daddr = int.from_bytes(buf[16:20], "big")
        if ((buf[6] << 8) | buf[7]) & 0x3FFF:  # MF or a fragment offset: no ports
            return FlowKey(_INET, saddr, daddr, proto, 0, 0, ifindex)
        ports = _upper_ports(proto, buf, ihl)
        if ports is None:
            return None
        return FlowKey(_INET, saddr, daddr, proto, ports[0], ports[1], ifindex)
    if version == 6:
        if len(buf) < 40:
            return None
        saddr = int.from_bytes(buf[8:24], "big")
        daddr = int.from_bytes(buf[24:40], "big")
        proto = buf[6]
        off = 40
        while True:
            if proto in _IPV6_EXT_SKIP:
                if len(buf) < off + 2:
                    return None
                proto, off = buf[off], off + (buf[off + 1] + 1) * 8
                if off > len(buf):
                    return None
            elif proto == _IPV6_FRAGMENT:
                if len(buf) < off + 8:
                    return None
                next_proto = buf[off]
                if ((buf[off + 2] << 8) | buf[off + 3]) & 0xFFF8:  # not the first fragment
                    return FlowKey(_INET6, saddr, daddr, next_proto, 0, 0, ifindex)
                proto, off = next_proto, off + 8
            else:
                break
        ports = _upper_ports(proto, buf, off)
        if ports is None:
            return None
        return FlowKey(_INET6, saddr, daddr, proto, ports[0], ports[1], ifindex)
    return None

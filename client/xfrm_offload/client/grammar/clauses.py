"""The clauses states and policies share: ID, SELECTOR (with UPSPEC), mark, FLAG-LIST,
LIMIT-LIST and MODE (ip/ipxfrm.c's xfrm_id_parse, xfrm_selector_parse, xfrm_lifetime_cfg_parse).

The ID and a SELECTOR are each one contiguous group, parsed here into small records the
state and policy grammars copy into their messages.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from xfrm_offload.v1 import xfrm_pb2

from .lexer import Addr, Cursor, c_uint, join_words, matches, parse_addr

XFRM_PROTOS: dict[str, int] = {"esp": 50, "ah": 51, "comp": 108, "route2": 43, "hao": 60}

# The Mobile IPv6 protocols, keyed by address alone (iproute2's xfrm_xfrmproto_is_ro).
PROTOS_WITHOUT_SPI = (43, 60)

# Upper-layer protocol names as /etc/protocols spells them (iproute2 uses getprotobyname).
IP_PROTOS: dict[str, int] = {
    "ip": 0,
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "ipv6": 41,
    "ipv6-route": 43,
    "ipv6-frag": 44,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ospf": 89,
    "pim": 103,
    "l2tp": 115,
    "sctp": 132,
    "mobility-header": 135,
    "udplite": 136,
}

PORT_PROTOS = frozenset({6, 17, 33, 132})  # tcp udp dccp sctp: sport/dport

TYPE_PROTOS = frozenset({1, 58, 135})  # icmp ipv6-icmp mobility-header: type/code

GRE_PROTO = 47

LIMIT_KEYWORDS = (
    "time-soft",
    "time-hard",
    "time-use-soft",
    "time-use-hard",
    "byte-soft",
    "byte-hard",
    "packet-soft",
    "packet-hard",
)

IfindexOf = Callable[[str], int]


@dataclass
class IdClause:
    saddr: Addr | None = None
    daddr: Addr | None = None
    proto: int | None = None
    spi: int | None = None
    start: int = 0


ID_WORDS = ("src", "dst", "proto", "spi")


def parse_id(cur: Cursor, *, loose: bool) -> IdClause:
    """ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ], one contiguous group."""
    ident = IdClause(start=cur.pos)
    while (word := cur.peek()) in ID_WORDS:
        cur.take()
        if word in ("src", "dst"):
            text, index = cur.value("expected an IP address")
            addr = parse_addr(text)
            if addr is None:
                raise cur.error("expected an IP address", index)
            other = ident.daddr if word == "src" else ident.saddr
            if other is not None and other.family != addr.family:
                raise cur.error(
                    'the same address family is required between "src" and "dst"', index
                )
            if word == "src":
                ident.saddr = addr
            else:
                ident.daddr = addr
        elif word == "proto":
            expected = f"expected an IPsec protocol ({join_words(list(XFRM_PROTOS))} or a number)"
            text, index = cur.value(expected)
            proto = XFRM_PROTOS.get(text, c_uint(text, 8))
            if proto is None:
                raise cur.error(expected, index)
            ident.proto = proto
        else:
            ident.spi = cur.uint("expected an SPI (a 32-bit number, e.g. 0x1000)")
    if not loose and ident.proto is None:
        raise cur.error("expected proto XFRM-PROTO in the ID (e.g. proto esp)")
    return ident


def id_family(ident: IdClause) -> xfrm_pb2.AddressFamily:
    addr = ident.saddr or ident.daddr
    return addr.family if addr else xfrm_pb2.ADDRESS_FAMILY_UNSPECIFIED


def parse_mark(cur: Cursor) -> xfrm_pb2.XfrmMark:
    """mark MARK [ mask MASK ]; the mask defaults to all ones."""
    value = cur.uint("expected a mark value (32-bit number)")
    mask = 0xFFFFFFFF
    if cur.peek() == "mask":
        cur.take()
        mask = cur.uint("expected a mark mask (32-bit number)")
    return xfrm_pb2.XfrmMark(v=value, m=mask)


def parse_flag_list(cur: Cursor, names: dict[str, int], what: str, bits: int) -> int:
    """FLAG-LIST: one hex number (0x..) or one or more flag names."""
    expected = f"expected {what} ({join_words(list(names))} or a 0x number)"
    if cur.at_end():
        raise cur.error(expected)
    first = cur.argv[cur.pos]
    if len(first) > 2 and first.startswith("0x"):
        index = cur.pos
        cur.take()
        number = c_uint(first, bits)
        if number is None:
            raise cur.error(expected, index)
        return number
    if first not in names:
        raise cur.error(expected)
    flags = 0
    while (word := cur.peek()) is not None and word in names:
        flags |= names[cur.take()]
    return flags


def parse_limits(cur: Cursor, lft: xfrm_pb2.XfrmLifetimeCfg) -> None:
    """After ``limit``: one or more LIMIT pairs."""
    expected = f"expected a limit ({join_words(LIMIT_KEYWORDS)})"
    if cur.peek() not in LIMIT_KEYWORDS:
        raise cur.error(expected)
    while (word := cur.peek()) in LIMIT_KEYWORDS:
        cur.take()
        number = cur.uint(f'expected a number after "{word}" (64-bit)', 64)
        target = {
            "time-soft": "soft_add_expires_seconds",
            "time-hard": "hard_add_expires_seconds",
            "time-use-soft": "soft_use_expires_seconds",
            "time-use-hard": "hard_use_expires_seconds",
            "byte-soft": "soft_byte_limit",
            "byte-hard": "hard_byte_limit",
            "packet-soft": "soft_packet_limit",
            "packet-hard": "hard_packet_limit",
        }[str(word)]
        setattr(lft, target, number)


@dataclass
class SelectorClause:
    sel: xfrm_pb2.XfrmSelector
    saddr: Addr | None = None
    daddr: Addr | None = None
    upspec: bool = False
    sport_given: bool = False
    dport_given: bool = False


SEL_WORDS = ("src", "dst", "dev", "proto")

UPSPEC_WORDS = ("proto", "sport", "dport", "type", "code", "key")


def parse_selector(cur: Cursor, ifindex_of: IfindexOf | None) -> SelectorClause:
    """SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]."""
    result = SelectorClause(sel=xfrm_pb2.XfrmSelector())
    sel = result.sel
    start = cur.pos
    while (word := cur.peek()) is not None:
        if word in ("src", "dst"):
            cur.take()
            text, index = cur.value("expected an address prefix (ADDR[/PLEN])")
            addr = parse_addr(text)
            if addr is None:
                raise cur.error("expected an address prefix (ADDR[/PLEN])", index)
            other = result.daddr if word == "src" else result.saddr
            if other is not None and other.family != addr.family:
                raise cur.error(
                    'the same address family is required between "src" and "dst"', index
                )
            sel.family = addr.family
            if word == "src":
                result.saddr, sel.saddr, sel.prefixlen_s = addr, addr.text, addr.plen
            else:
                result.daddr, sel.daddr, sel.prefixlen_d = addr, addr.text, addr.plen
        elif word == "dev":
            cur.take()
            name, index = cur.value("expected a device name")
            sel.ifindex = _resolve_dev(cur, name, index, ifindex_of)
        elif word in UPSPEC_WORDS and not result.upspec:
            _parse_upspec(cur, result)
        else:
            break
    if cur.pos == start:
        raise cur.error("expected a selector (src, dst, dev or proto)")
    return result


def _resolve_dev(cur: Cursor, name: str, index: int, ifindex_of: IfindexOf | None) -> int:
    if name == "none":
        return 0
    if ifindex_of is None:
        raise cur.error("expected no device here: device names cannot be resolved", index)
    try:
        ifindex = ifindex_of(name)
    except (KeyError, LookupError, ValueError):
        ifindex = 0
    if ifindex <= 0:
        raise cur.error("expected a known device name", index)
    return ifindex


def _parse_upspec(cur: Cursor, result: SelectorClause) -> None:
    """UPSPEC: proto P with its ports / ICMP type and code / GRE key, in any order."""
    sel = result.sel
    result.upspec = True
    port_index: int | None = None
    type_index: int | None = None
    key_index: int | None = None
    while (word := cur.peek()) in UPSPEC_WORDS:
        keyword_index = cur.pos
        cur.take()
        if word == "proto":
            expected = "expected an upper-layer protocol (tcp|udp|sctp|dccp|icmp|... or a number)"
            text, index = cur.value(expected)
            proto = 0 if text == "any" else IP_PROTOS.get(text, c_uint(text, 8))
            if proto is None:
                raise cur.error(expected, index)
            sel.proto = proto
        elif word in ("sport", "dport"):
            port_index = keyword_index if port_index is None else port_index
            port = cur.uint("expected a port number (0-65535)", 16)
            if word == "sport":
                sel.sport, sel.sport_mask = port, 0xFFFF if port else 0
            else:
                sel.dport, sel.dport_mask = port, 0xFFFF if port else 0
        elif word in ("type", "code"):
            type_index = keyword_index if type_index is None else type_index
            number = cur.uint(f"expected an ICMP {word} (0-255)", 8)
            # The kernel keeps the ICMP type in sport and the code in dport.
            if word == "type":
                sel.sport, sel.sport_mask = number, 0xFFFF
            else:
                sel.dport, sel.dport_mask = number, 0xFFFF
        else:
            key_index = keyword_index
            text, index = cur.value("expected a GRE key (DOTTED-QUAD or a number)")
            key = _gre_key(text)
            if key is None:
                raise cur.error("expected a GRE key (DOTTED-QUAD or a number)", index)
            sel.sport, sel.dport = key >> 16, key & 0xFFFF
            sel.sport_mask = sel.dport_mask = 0xFFFF
    if port_index is not None and sel.proto not in PORT_PROTOS:
        raise cur.error('expected proto tcp|udp|sctp|dccp with "sport"/"dport"', port_index)
    if type_index is not None and sel.proto not in TYPE_PROTOS:
        raise cur.error(
            'expected proto icmp|ipv6-icmp|mobility-header with "type"/"code"', type_index
        )
    if key_index is not None and sel.proto != GRE_PROTO:
        raise cur.error('expected proto gre with "key"', key_index)


def _gre_key(text: str) -> int | None:
    if "." in text:
        try:
            return int(ipaddress.IPv4Address(text))
        except ValueError:
            return None
    return c_uint(text, 32)


def parse_mode(cur: Cursor) -> xfrm_pb2.XfrmMode:
    """MODE, matched by prefix as iproute2 does (``tr`` is transport, ``tu`` tunnel)."""
    expected = "expected a mode (transport|tunnel)"
    text, index = cur.value(expected)
    if matches(text, "transport"):
        return xfrm_pb2.XFRM_MODE_TRANSPORT
    if matches(text, "tunnel"):
        return xfrm_pb2.XFRM_MODE_TUNNEL
    raise cur.error(expected, index)

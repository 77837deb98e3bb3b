"""iproute2's ``ip xfrm`` grammar, parsed into the v1 proto messages.

``parse(argv)`` takes what follows ``xfrmctl`` (an optional leading ``xfrm``/``x`` so a pasted
``ip x s add ...`` works with ``ip`` replaced) and returns a frozen :class:`Command`. The rules
are iproute2's (ip/xfrm_state.c, ip/xfrm_policy.c, ip/ipxfrm.c), re-expressed here:

* Objects and actions accept iproute2's ``matches()`` abbreviations: any non-empty prefix of the
  word. iproute2 tests candidates in a fixed order and the first hit wins, so no short form is
  ever "ambiguous": ``d`` is ``delete`` (tested before ``deleteall``), ``s`` is ``state`` at the
  object level and ``show`` at the action level, ``a`` is ``add`` (before ``allocspi``).
  Keywords inside a command (``src``, ``reqid``, ``flag`` ...) are compared exactly, as there.
* The ID (``src``/``dst``/``proto``/``spi``) and a policy's SELECTOR are each one contiguous
  group, given once; everything else may come in any order.
* Numbers are C ``strtoul(..., 0)`` numbers: ``0x`` hex, leading ``0`` octal, else decimal.
* Keys are ``0x`` + hex digits (an odd count gets a leading zero) or a raw string.
* Defaults: byte and packet limits infinite (unset optional fields), mode transport, the
  state's family from its addresses (AF_INET when none), ESN or a window wider than 32 moves
  the replay parameters into ``replay_esn`` with ``bmp_len = ceil(window / 32)``.

Errors are :class:`XfrmSyntaxError`: the tokens (key material replaced), the index of the bad
token and what was expected there; ``render()`` prints the command with a ``^~~~`` marker under
the bad token, as httpie does.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from xfrm_offload.v1 import xfrm_pb2

__all__ = [
    "Command",
    "PolicyFilter",
    "StateFilter",
    "XfrmSyntaxError",
    "parse",
    "usage",
]

Obj = Literal["state", "policy", "monitor"]
Action = Literal[
    "add", "update", "delete", "get", "list", "deleteall", "flush", "count", "help", "monitor"
]

# include/uapi/linux/xfrm.h constants (values, not code).
XFRM_STATE_FLAGS: dict[str, int] = {
    "noecn": 1,
    "decap-dscp": 2,
    "nopmtudisc": 4,
    "wildrecv": 8,
    "icmp": 16,
    "af-unspec": 32,
    "align4": 64,
    "esn": 128,
}
XFRM_STATE_ESN = 128
XFRM_EXTRA_FLAGS: dict[str, int] = {"dont-encap-dscp": 1, "oseq-may-wrap": 2}
XFRM_POLICY_FLAGS: dict[str, int] = {"localok": 1, "icmp": 2}
# Width of the legacy xfrm_replay_state bitmap: wider windows need replay_esn.
LEGACY_REPLAY_BITS = 32
# Largest key iproute2's buffer takes.
MAX_KEY_BYTES = 512
MAX_TEMPLATES = 6  # XFRM_MAX_DEPTH

XFRM_PROTOS: dict[str, int] = {"esp": 50, "ah": 51, "comp": 108, "route2": 43, "hao": 60}
# The Mobile IPv6 protocols, keyed by address alone (iproute2's xfrm_xfrmproto_is_ro).
_PROTOS_WITHOUT_SPI = (43, 60)
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

ALGO_KEYWORDS = ("aead", "enc", "auth", "auth-trunc")
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
ENCAP_TYPES: dict[str, xfrm_pb2.EncapType] = {
    "espinudp-nonike": xfrm_pb2.ENCAP_TYPE_ESPINUDP_NON_IKE,
    "espinudp": xfrm_pb2.ENCAP_TYPE_ESPINUDP,
    "espintcp": xfrm_pb2.ENCAP_TYPE_ESPINTCP,
}
MONITOR_GROUPS = ("acquire", "expire", "SA", "aevent", "policy", "report")
REDACTED = "<key>"

IfindexOf = Callable[[str], int]
_E = TypeVar("_E")


# --------------------------------------------------------------------------- errors


class XfrmSyntaxError(Exception):
    """A command that does not follow the grammar.

    ``tokens`` never holds key material: the token after ``aead|enc|auth|auth-trunc NAME`` is
    replaced by ``<key>`` before the exception is built. ``index`` may equal ``len(tokens)``,
    meaning "something is missing at the end".
    """

    def __init__(
        self, tokens: Sequence[str], index: int, expected: str, *, prog: str = "xfrmctl"
    ) -> None:
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.index = index
        self.expected = expected
        self.prog = prog
        super().__init__(f"argument {index}: {expected}")

    def render(self) -> str:
        """The command on one line, a ``^~~~`` marker under the bad token, then the message."""
        words = [self.prog, *(t if t == REDACTED else shlex.quote(t) for t in self.tokens)]
        line = " ".join(words)
        # Column where token `index` starts: prog, then each word plus a space.
        column = sum(len(w) + 1 for w in words[: self.index + 1])
        if self.index < len(self.tokens):
            width = len(words[self.index + 1])
            marker = " " * column + "^" + "~" * (width - 1)
        else:
            marker = " " * (len(line) + 1) + "^"
        return f"{line}\n{marker}\nerror: {self.expected}"


def _redact(argv: Sequence[str]) -> list[str]:
    """Copy of argv with the key token of every ALGO replaced (keys never reach messages)."""
    out = list(argv)
    for i, token in enumerate(argv):
        if token in ALGO_KEYWORDS and i + 2 < len(argv):
            out[i + 2] = REDACTED
    return out


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StateFilter:
    """What selects states for list/deleteall/get/delete/flush (iproute2's xfrm_filter).

    Unset (None) fields match anything. Addresses match as prefixes of ``*_plen`` bits, as
    iproute2's filter does.
    """

    saddr: str | None = None
    saddr_plen: int = 0
    daddr: str | None = None
    daddr_plen: int = 0
    proto: int | None = None
    spi: int | None = None
    mode: int | None = None
    reqid: int | None = None
    flags: int | None = None
    mark: xfrm_pb2.XfrmMark | None = None
    nokeys: bool = False

    def matches(self, sa: xfrm_pb2.XfrmUsersaInfo) -> bool:
        """True if the state passes this filter."""
        if self.saddr is not None and not _prefix_match(sa.saddr, self.saddr, self.saddr_plen):
            return False
        if self.daddr is not None and not _prefix_match(sa.id.daddr, self.daddr, self.daddr_plen):
            return False
        if self.proto is not None and (sa.id.proto or 50) != self.proto:
            return False
        if self.spi is not None and sa.id.spi != self.spi:
            return False
        if self.mode is not None and _mode_of(sa.mode) != _mode_of(self.mode):
            return False
        if self.reqid is not None and sa.reqid != self.reqid:
            return False
        if self.flags is not None and (sa.flags & self.flags) != self.flags:
            return False
        return self.mark is None or (sa.mark.v & self.mark.m) == (self.mark.v & self.mark.m)


@dataclass(frozen=True)
class PolicyFilter:
    """What selects policies for list/deleteall/get/delete/flush. Unset fields match all."""

    saddr: str | None = None
    prefixlen_s: int = 0
    daddr: str | None = None
    prefixlen_d: int = 0
    upspec_proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    ifindex: int | None = None
    dir: int | None = None
    index: int | None = None
    ptype: str | None = None
    action: int | None = None
    priority: int | None = None
    flags: int | None = None
    mark: xfrm_pb2.XfrmMark | None = None
    if_id: int | None = None
    nosock: bool = False

    def matches(self, policy: xfrm_pb2.XfrmUserpolicyInfo) -> bool:
        """True if the policy passes this filter (selector prefixes must be equal, as iproute2)."""
        sel = policy.sel
        if self.saddr is not None and (
            sel.prefixlen_s != self.prefixlen_s
            or not _prefix_match(sel.saddr, self.saddr, self.prefixlen_s)
        ):
            return False
        if self.daddr is not None and (
            sel.prefixlen_d != self.prefixlen_d
            or not _prefix_match(sel.daddr, self.daddr, self.prefixlen_d)
        ):
            return False
        checks: tuple[tuple[int | None, int], ...] = (
            (self.upspec_proto, sel.proto),
            (self.sport, sel.sport),
            (self.dport, sel.dport),
            (self.ifindex, sel.ifindex),
            (self.dir, policy.dir),
            (self.index, policy.index),
            (self.priority, policy.priority),
            (self.if_id, policy.if_id),
        )
        if any(want is not None and want != have for want, have in checks):
            return False
        if self.action is not None and _action_of(policy.action) != _action_of(self.action):
            return False
        if self.flags is not None and (policy.flags & self.flags) != self.flags:
            return False
        if self.mark is not None and (policy.mark.v & self.mark.m) != (self.mark.v & self.mark.m):
            return False
        return self.ptype in (None, "main")  # the NIC only holds main policies


@dataclass(frozen=True)
class Command:
    """One parsed ``ip xfrm`` command.

    ``sa`` / ``policy`` carry the request for add and update. ``state_filter`` /
    ``policy_filter`` say which objects list, get, delete, deleteall and flush touch (for get
    and delete of a state, ``state_filter`` holds the full ID). ``ptype`` is the policy type
    named on the command line (the proto has no field for it; the NIC holds "main" only).
    """

    obj: Obj
    action: Action
    sa: xfrm_pb2.XfrmUsersaInfo | None = None
    policy: xfrm_pb2.XfrmUserpolicyInfo | None = None
    state_filter: StateFilter | None = None
    policy_filter: PolicyFilter | None = None
    ptype: str | None = None
    monitor_groups: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- helpers


def _matches(word: str, keyword: str) -> bool:
    """iproute2's matches(): word is a non-empty prefix of keyword."""
    return bool(word) and keyword.startswith(word)


def _mode_of(mode: int) -> int:
    # XFRM_MODE_UNSPECIFIED means transport, the kernel's 0.
    return xfrm_pb2.XFRM_MODE_TRANSPORT if mode == 0 else mode


def _action_of(action: int) -> int:
    return xfrm_pb2.POLICY_ACTION_ALLOW if action == 0 else action


def _prefix_match(have: str, want: str, plen: int) -> bool:
    if plen == 0:
        return True
    try:
        net = ipaddress.ip_network(f"{want}/{plen}", strict=False)
        addr = ipaddress.ip_address(have or ("::" if net.version == 6 else "0.0.0.0"))
    except ValueError:
        return False
    return addr.version == net.version and addr in net


def c_uint(text: str, bits: int) -> int | None:
    """C strtoul(text, 0) limited to `bits`: 0x hex, leading-0 octal, decimal. None if invalid."""
    if not text or text[0] in "+- \t":
        return None
    lowered = text.lower()
    if lowered.startswith("0x"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text[0] == "0":
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    value = int(digits, base)
    return value if value < (1 << bits) else None


def parse_key(text: str) -> bytes | None:
    """iproute2's ALGO-KEYMAT: ``0x`` + hex (odd length left-padded) or the raw string bytes."""
    if len(text) > 2 and text.startswith("0x"):
        digits = text[2:]
        if len(digits) % 2:
            digits = "0" + digits
        try:
            key = bytes.fromhex(digits)
        except ValueError:
            return None
        # bytes.fromhex skips whitespace; iproute2 would not.
        if any(c.isspace() for c in digits):
            return None
    else:
        key = text.encode()
    return key if len(key) <= MAX_KEY_BYTES else None


@dataclass(frozen=True)
class _Addr:
    text: str
    plen: int
    family: xfrm_pb2.AddressFamily


def _parse_addr(text: str) -> _Addr | None:
    """ADDR[/PLEN]; a bare address gets the full prefix length, as get_prefix() gives."""
    try:
        if "/" in text:
            base, _, plen_text = text.partition("/")
            addr = ipaddress.ip_address(base)
            plen = c_uint(plen_text, 8) if plen_text.isdigit() else None
            if plen is None or plen > addr.max_prefixlen:
                return None
        else:
            addr = ipaddress.ip_address(text)
            plen = addr.max_prefixlen
    except ValueError:
        return None
    family = xfrm_pb2.ADDRESS_FAMILY_INET6 if addr.version == 6 else xfrm_pb2.ADDRESS_FAMILY_INET
    return _Addr(str(addr), plen, family)


def _names(words: Sequence[str]) -> str:
    return "|".join(words)


# --------------------------------------------------------------------------- cursor


class _Cursor:
    """The token list and a position; every error it raises points at a token."""

    def __init__(self, argv: Sequence[str], start: int) -> None:
        self.argv = list(argv)
        self.shown = _redact(argv)
        self.pos = start

    def at_end(self) -> bool:
        return self.pos >= len(self.argv)

    def peek(self) -> str | None:
        return None if self.at_end() else self.argv[self.pos]

    def take(self) -> str:
        word = self.argv[self.pos]
        self.pos += 1
        return word

    def error(self, expected: str, index: int | None = None) -> XfrmSyntaxError:
        return XfrmSyntaxError(self.shown, self.pos if index is None else index, expected)

    def value(self, expected: str) -> tuple[str, int]:
        """The token after a keyword, with its index; missing -> error at the end."""
        if self.at_end():
            raise self.error(expected)
        index = self.pos
        return self.take(), index

    def uint(self, expected: str, bits: int = 32) -> int:
        text, index = self.value(expected)
        number = c_uint(text, bits)
        if number is None:
            raise self.error(expected, index)
        return number

    def choice(self, options: dict[str, _E], what: str) -> _E:
        expected = f"expected {what} ({_names(list(options))})"
        text, index = self.value(expected)
        if text not in options:
            raise self.error(expected, index)
        return options[text]


# --------------------------------------------------------------------------- shared parts


@dataclass
class _Id:
    saddr: _Addr | None = None
    daddr: _Addr | None = None
    proto: int | None = None
    spi: int | None = None
    start: int = 0


_ID_WORDS = ("src", "dst", "proto", "spi")


def _parse_id(cur: _Cursor, *, loose: bool) -> _Id:
    """ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ], one contiguous group."""
    ident = _Id(start=cur.pos)
    while (word := cur.peek()) in _ID_WORDS:
        cur.take()
        if word in ("src", "dst"):
            text, index = cur.value("expected an IP address")
            addr = _parse_addr(text)
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
            expected = f"expected an IPsec protocol ({_names(list(XFRM_PROTOS))} or a number)"
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


def _id_family(ident: _Id) -> xfrm_pb2.AddressFamily:
    addr = ident.saddr or ident.daddr
    return addr.family if addr else xfrm_pb2.ADDRESS_FAMILY_UNSPECIFIED


def _parse_mark(cur: _Cursor) -> xfrm_pb2.XfrmMark:
    """mark MARK [ mask MASK ]; the mask defaults to all ones."""
    value = cur.uint("expected a mark value (32-bit number)")
    mask = 0xFFFFFFFF
    if cur.peek() == "mask":
        cur.take()
        mask = cur.uint("expected a mark mask (32-bit number)")
    return xfrm_pb2.XfrmMark(v=value, m=mask)


def _parse_flag_list(cur: _Cursor, names: dict[str, int], what: str, bits: int) -> int:
    """FLAG-LIST: one hex number (0x..) or one or more flag names."""
    expected = f"expected {what} ({_names(list(names))} or a 0x number)"
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


def _parse_limits(cur: _Cursor, lft: xfrm_pb2.XfrmLifetimeCfg) -> None:
    """After ``limit``: one or more LIMIT pairs."""
    expected = f"expected a limit ({_names(LIMIT_KEYWORDS)})"
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
class _Sel:
    sel: xfrm_pb2.XfrmSelector
    saddr: _Addr | None = None
    daddr: _Addr | None = None
    upspec: bool = False
    sport_given: bool = False
    dport_given: bool = False


_SEL_WORDS = ("src", "dst", "dev", "proto")
_UPSPEC_WORDS = ("proto", "sport", "dport", "type", "code", "key")


def _parse_selector(cur: _Cursor, ifindex_of: IfindexOf | None) -> _Sel:
    """SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]."""
    result = _Sel(sel=xfrm_pb2.XfrmSelector())
    sel = result.sel
    start = cur.pos
    while (word := cur.peek()) is not None:
        if word in ("src", "dst"):
            cur.take()
            text, index = cur.value("expected an address prefix (ADDR[/PLEN])")
            addr = _parse_addr(text)
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
        elif word in _UPSPEC_WORDS and not result.upspec:
            _parse_upspec(cur, result)
        else:
            break
    if cur.pos == start:
        raise cur.error("expected a selector (src, dst, dev or proto)")
    return result


def _resolve_dev(cur: _Cursor, name: str, index: int, ifindex_of: IfindexOf | None) -> int:
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


def _parse_upspec(cur: _Cursor, result: _Sel) -> None:
    """UPSPEC: proto P with its ports / ICMP type and code / GRE key, in any order."""
    sel = result.sel
    result.upspec = True
    port_index: int | None = None
    type_index: int | None = None
    key_index: int | None = None
    while (word := cur.peek()) in _UPSPEC_WORDS:
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


def _parse_mode(cur: _Cursor) -> xfrm_pb2.XfrmMode:
    """MODE, matched by prefix as iproute2 does (``tr`` is transport, ``tu`` tunnel)."""
    expected = "expected a mode (transport|tunnel)"
    text, index = cur.value(expected)
    if _matches(text, "transport"):
        return xfrm_pb2.XFRM_MODE_TRANSPORT
    if _matches(text, "tunnel"):
        return xfrm_pb2.XFRM_MODE_TUNNEL
    raise cur.error(expected, index)


# --------------------------------------------------------------------------- state


_STATE_FLAG_WHAT = "a state flag"


def _parse_state_add(cur: _Cursor, ifindex_of: IfindexOf | None) -> xfrm_pb2.XfrmUsersaInfo:
    sa = xfrm_pb2.XfrmUsersaInfo()
    sa.lft.SetInParent()
    ident: _Id | None = None
    algo_index: dict[str, int] = {}
    window: int | None = None
    esn_index: int | None = None
    replay: dict[str, int] = {}
    sel: _Sel | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.take()
        if word == "mode":
            sa.mode = _parse_mode(cur)
        elif word == "mark":
            sa.mark.CopyFrom(_parse_mark(cur))
        elif word == "reqid":
            sa.reqid = cur.uint("expected a reqid (32-bit number)")
        elif word == "seq":
            sa.seq = cur.uint("expected a sequence number (32-bit number)")
        elif word == "replay-window":
            # No ceiling here: the device's capability (max_replay_window) decides, and the
            # server names the field when a window is too wide for it.
            window = cur.uint("expected a replay window size (number of packets)")
        elif word in ("replay-seq", "replay-oseq", "replay-seq-hi", "replay-oseq-hi"):
            replay[word] = cur.uint(f'expected a number after "{word}" (32-bit)')
        elif word == "flag":
            flag_start = cur.pos
            sa.flags |= _parse_flag_list(cur, XFRM_STATE_FLAGS, _STATE_FLAG_WHAT, 8)
            if sa.flags & XFRM_STATE_ESN and esn_index is None:
                esn_index = next(
                    (i for i in range(flag_start, cur.pos) if cur.argv[i] == "esn"), flag_start
                )
        elif word == "extra-flag":
            sa.extra_flags |= _parse_flag_list(cur, XFRM_EXTRA_FLAGS, "an extra flag", 32)
        elif word == "sel":
            sel = _parse_selector(cur, ifindex_of)
            sa.sel.CopyFrom(sel.sel)
        elif word == "limit":
            _parse_limits(cur, sa.lft)
        elif word == "encap":
            _parse_encap(cur, sa.encap)
        elif word == "if_id":
            sa.if_id = cur.uint("expected an interface id (32-bit number)")
        elif word == "tfcpad":
            sa.tfcpad = cur.uint("expected a TFC padding length (32-bit number)")
        elif word == "dir":
            sa.dir = cur.choice({"in": xfrm_pb2.SA_DIR_IN, "out": xfrm_pb2.SA_DIR_OUT}, "a dir")
        elif word == "offload":
            _parse_state_offload(cur, sa.offload)
        elif word in ALGO_KEYWORDS:
            _parse_algo(cur, sa, word, index, algo_index)
        elif word in _ID_WORDS:
            if ident is not None:
                raise cur.error(
                    "expected the ID (src, dst, proto, spi) as one group: it was given earlier",
                    index,
                )
            cur.pos = index
            ident = _parse_id(cur, loose=False)
        else:
            raise cur.error(f"expected a state keyword, not {word!r}", index)
    if ident is None:
        raise cur.error("expected an ID: src ADDR dst ADDR proto esp spi SPI")
    if not algo_index:
        raise cur.error("expected an algorithm (aead, enc, auth or auth-trunc) with proto esp")
    if sa.flags & XFRM_STATE_ESN and not window:
        raise cur.error(
            "expected replay-window with flag esn", esn_index if esn_index is not None else 0
        )
    _apply_id(sa, ident)
    _apply_replay(sa, window or 0, replay)
    if sa.HasField("offload") and sa.family == xfrm_pb2.ADDRESS_FAMILY_INET6:
        sa.offload.flags |= xfrm_pb2.OFFLOAD_FLAG_IPV6
    return sa


def _apply_id(sa: xfrm_pb2.XfrmUsersaInfo, ident: _Id) -> None:
    if ident.saddr:
        sa.saddr = ident.saddr.text
    if ident.daddr:
        sa.id.daddr = ident.daddr.text
    sa.id.proto = ident.proto or 0
    sa.id.spi = ident.spi or 0
    family = _id_family(ident)
    # iproute2 sends AF_INET when nothing gave a family.
    sa.family = family or xfrm_pb2.ADDRESS_FAMILY_INET


def _apply_replay(sa: xfrm_pb2.XfrmUsersaInfo, window: int, replay: dict[str, int]) -> None:
    """ESN, a window wider than the legacy bitmap, or initial sequence numbers -> replay_esn.

    iproute2 sends seq/oseq for a small non-ESN window in XFRMA_REPLAY_VAL; the proto has no
    such field, so they go in replay_esn too (the kernel accepts replay_esn without ESN).
    """
    uses_esn = bool(sa.flags & XFRM_STATE_ESN) or window > LEGACY_REPLAY_BITS
    if not uses_esn and not (replay.get("replay-seq") or replay.get("replay-oseq")):
        sa.replay_window = window
        return
    esn = sa.replay_esn
    esn.SetInParent()
    esn.replay_window = window
    esn.bmp_len = (window + 31) // 32
    esn.seq = replay.get("replay-seq", 0)
    esn.oseq = replay.get("replay-oseq", 0)
    if uses_esn:
        esn.seq_hi = replay.get("replay-seq-hi", 0)
        esn.oseq_hi = replay.get("replay-oseq-hi", 0)
    sa.replay_window = 0


def _parse_encap(cur: _Cursor, encap: xfrm_pb2.XfrmEncapTmpl) -> None:
    encap.encap_type = cur.choice(dict(ENCAP_TYPES), "an encapsulation type")
    encap.encap_sport = cur.uint("expected the encap source port (0-65535)", 16)
    encap.encap_dport = cur.uint("expected the encap destination port (0-65535)", 16)
    text, index = cur.value("expected the original address (OADDR)")
    addr = _parse_addr(text)
    if addr is None or "/" in text:
        raise cur.error("expected the original address (OADDR)", index)
    encap.encap_oa = addr.text


def _parse_state_offload(cur: _Cursor, offload: xfrm_pb2.XfrmUserOffload) -> None:
    """offload [ crypto | packet ] dev DEV dir in|out (no type means crypto)."""
    offload.SetInParent()
    flags = 0
    mode = cur.peek()
    if mode in ("crypto", "packet"):
        cur.take()
        flags |= xfrm_pb2.OFFLOAD_FLAG_PACKET if mode == "packet" else 0
    _expect_word(cur, "dev", 'expected "dev DEV" after offload')
    offload.dev, _ = cur.value("expected a device name")
    _expect_word(cur, "dir", 'expected "dir in|out" after offload dev DEV')
    if cur.choice({"in": 1, "out": 0}, "an offload dir") == 1:
        flags |= xfrm_pb2.OFFLOAD_FLAG_INBOUND
    offload.flags = flags


def _expect_word(cur: _Cursor, word: str, expected: str) -> None:
    if cur.peek() != word:
        raise cur.error(expected)
    cur.take()


def _parse_algo(
    cur: _Cursor,
    sa: xfrm_pb2.XfrmUsersaInfo,
    kind: str,
    index: int,
    seen: dict[str, int],
) -> None:
    """ALGO := { enc | auth } NAME KEY | auth-trunc NAME KEY TRUNC | aead NAME KEY ICV."""
    slot = {"aead": "aead", "enc": "enc", "auth": "auth", "auth-trunc": "auth"}[kind]
    clashes = {"aead": ("aead", "enc", "auth"), "enc": ("aead", "enc"), "auth": ("aead", "auth")}
    if any(other in seen for other in clashes[slot]):
        raise cur.error(
            "expected one cipher: aead excludes enc/auth, and each is given once", index
        )
    seen[slot] = index
    name, _ = cur.value("expected an algorithm name, e.g. 'rfc4106(gcm(aes))'")
    key_text, key_index = cur.value("expected a key: 0x followed by hex digits, or a string")
    key = parse_key(key_text)
    if key is None:
        raise cur.error(
            f"expected a key: 0x followed by hex digits (at most {MAX_KEY_BYTES} bytes)",
            key_index,
        )
    if kind == "aead":
        icv = cur.uint("expected the ICV length in bits (e.g. 128)")
        sa.aead.CopyFrom(xfrm_pb2.XfrmAlgoAead(alg_name=name, alg_key=key, alg_icv_len=icv))
    elif kind == "enc":
        sa.enc.CopyFrom(xfrm_pb2.XfrmAlgo(alg_name=name, alg_key=key))
    elif kind == "auth":
        sa.auth.CopyFrom(xfrm_pb2.XfrmAlgoAuth(alg_name=name, alg_key=key))
    else:
        trunc = cur.uint("expected the truncation length in bits (e.g. 128)")
        sa.auth.CopyFrom(xfrm_pb2.XfrmAlgoAuth(alg_name=name, alg_key=key, alg_trunc_len=trunc))


def _state_filter_from_id(ident: _Id, **extra: object) -> StateFilter:
    return StateFilter(
        saddr=ident.saddr.text if ident.saddr else None,
        saddr_plen=ident.saddr.plen if ident.saddr else 0,
        daddr=ident.daddr.text if ident.daddr else None,
        daddr_plen=ident.daddr.plen if ident.daddr else 0,
        proto=ident.proto,
        spi=ident.spi,
        **extra,  # type: ignore[arg-type]
    )


def _parse_state_get(cur: _Cursor) -> StateFilter:
    """{ delete | get } ID [ mark MARK [ mask MASK ] ]."""
    ident: _Id | None = None
    mark: xfrm_pb2.XfrmMark | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word == "mark":
            cur.take()
            mark = _parse_mark(cur)
        elif word in _ID_WORDS and ident is None:
            ident = _parse_id(cur, loose=False)
        else:
            raise cur.error("expected ID keywords (src, dst, proto, spi) or mark", index)
    if ident is None:
        raise cur.error("expected an ID: dst ADDR proto esp spi SPI")
    _require_whole_id(cur, ident)
    return _state_filter_from_id(ident, mark=mark)


def _require_whole_id(cur: _Cursor, ident: _Id) -> None:
    """get/delete name one state, by the kernel's key (daddr, spi, proto): all three given.

    ip xfrm sends what it was given and the kernel finds nothing for a partial key; here a
    partial key would match several states, so it is refused before anything is touched
    (deleteall takes filters).
    """
    missing = [
        word
        for word, given in (
            ("dst ADDR", ident.daddr is not None),
            ("proto XFRM-PROTO", ident.proto is not None),
            ("spi SPI", ident.spi is not None or ident.proto in _PROTOS_WITHOUT_SPI),
        )
        if not given
    ]
    if missing:
        raise cur.error(
            f"expected the whole ID, {' '.join(missing)} missing: get and delete name one "
            "state by dst, proto and spi (deleteall takes filters)"
        )


def _parse_state_list(cur: _Cursor) -> StateFilter:
    """{ deleteall | list } [ ID ] [ nokeys ] [ mode MODE ] [ reqid REQID ] [ flag FLAG-LIST ]."""
    ident = _Id()
    extra: dict[str, object] = {}
    id_seen = False
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word in _ID_WORDS and not id_seen:
            ident = _parse_id(cur, loose=True)
            id_seen = True
            continue
        cur.take()
        if word == "nokeys":
            extra["nokeys"] = True
        elif word == "mode":
            extra["mode"] = _parse_mode(cur)
        elif word == "reqid":
            extra["reqid"] = cur.uint("expected a reqid (32-bit number)")
        elif word == "flag":
            extra["flags"] = _parse_flag_list(cur, XFRM_STATE_FLAGS, _STATE_FLAG_WHAT, 8)
        else:
            raise cur.error(
                "expected a filter (src, dst, proto, spi, nokeys, mode, reqid, flag)", index
            )
    return _state_filter_from_id(ident, **extra)


def _parse_state_flush(cur: _Cursor) -> StateFilter:
    """flush [ proto XFRM-PROTO ]."""
    if cur.at_end():
        return StateFilter()
    if cur.peek() != "proto":
        raise cur.error("expected proto XFRM-PROTO or nothing")
    ident = _parse_id(cur, loose=True)
    if not cur.at_end():
        raise cur.error("expected nothing after proto XFRM-PROTO")
    return StateFilter(proto=ident.proto)


# --------------------------------------------------------------------------- policy


_POLICY_DIRS: dict[str, xfrm_pb2.PolicyDir] = {
    "in": xfrm_pb2.POLICY_DIR_IN,
    "out": xfrm_pb2.POLICY_DIR_OUT,
    "fwd": xfrm_pb2.POLICY_DIR_FWD,
}
_POLICY_ACTIONS: dict[str, xfrm_pb2.PolicyAction] = {
    "allow": xfrm_pb2.POLICY_ACTION_ALLOW,
    "block": xfrm_pb2.POLICY_ACTION_BLOCK,
}
_PTYPES: dict[str, int] = {"main": 0, "sub": 1}


def _parse_ptype(cur: _Cursor) -> str:
    return "main" if cur.choice(_PTYPES, "a policy type") == 0 else "sub"


def _parse_tmpl(cur: _Cursor) -> xfrm_pb2.XfrmUserTmpl:
    """TMPL := ID [ mode MODE ] [ reqid REQID ] [ level LEVEL ], in any order."""
    tmpl = xfrm_pb2.XfrmUserTmpl(aalgos=0xFFFFFFFF, ealgos=0xFFFFFFFF, calgos=0xFFFFFFFF)
    ident: _Id | None = None
    start = cur.pos
    while (word := cur.peek()) is not None:
        if word == "mode":
            cur.take()
            tmpl.mode = _parse_mode(cur)
        elif word == "reqid":
            cur.take()
            tmpl.reqid = cur.uint("expected a reqid (32-bit number)")
        elif word == "level":
            cur.take()
            tmpl.optional = cur.choice({"required": 0, "use": 1}, "a level") == 1
        elif word in _ID_WORDS and ident is None:
            ident = _parse_id(cur, loose=False)
        else:
            break
    if ident is None:
        raise cur.error("expected the template's ID: src ADDR dst ADDR proto esp", start)
    if ident.saddr:
        tmpl.saddr = ident.saddr.text
    if ident.daddr:
        tmpl.id.daddr = ident.daddr.text
    tmpl.id.proto = ident.proto or 0
    tmpl.id.spi = ident.spi or 0
    tmpl.family = _id_family(ident)
    return tmpl


def _parse_policy_add(
    cur: _Cursor, ifindex_of: IfindexOf | None
) -> tuple[xfrm_pb2.XfrmUserpolicyInfo, str | None]:
    policy = xfrm_pb2.XfrmUserpolicyInfo()
    policy.lft.SetInParent()
    sel_seen = False
    ptype: str | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word in _SEL_WORDS or word in _UPSPEC_WORDS:
            if sel_seen:
                raise cur.error("expected the SELECTOR as one group: it was given earlier", index)
            policy.sel.CopyFrom(_parse_selector(cur, ifindex_of).sel)
            sel_seen = True
            continue
        cur.take()
        if word == "dir":
            policy.dir = cur.choice(_POLICY_DIRS, "a policy dir")
        elif word == "mark":
            policy.mark.CopyFrom(_parse_mark(cur))
        elif word == "index":
            policy.index = cur.uint("expected a policy index (32-bit number)")
        elif word == "ptype":
            ptype = _parse_ptype(cur)
        elif word == "action":
            policy.action = cur.choice(_POLICY_ACTIONS, "a policy action")
        elif word == "priority":
            policy.priority = cur.uint("expected a priority (32-bit number)")
        elif word == "flag":
            policy.flags |= _parse_flag_list(cur, XFRM_POLICY_FLAGS, "a policy flag", 8)
        elif word == "limit":
            _parse_limits(cur, policy.lft)
        elif word == "tmpl":
            if len(policy.tmpl) >= MAX_TEMPLATES:
                raise cur.error(f"expected at most {MAX_TEMPLATES} templates", index)
            policy.tmpl.append(_parse_tmpl(cur))
        elif word == "if_id":
            policy.if_id = cur.uint("expected an interface id (32-bit number)")
        elif word == "offload":
            # Policies are offloaded in packet mode only; iproute2 insists on the word.
            _expect_word(cur, "packet", 'expected "packet" after offload (policies)')
            _expect_word(cur, "dev", 'expected "dev DEV" after offload packet')
            dev, _ = cur.value("expected a device name")
            policy.offload.CopyFrom(
                xfrm_pb2.XfrmUserOffload(dev=dev, flags=xfrm_pb2.OFFLOAD_FLAG_PACKET)
            )
        else:
            raise cur.error(f"expected a policy keyword, not {word!r}", index)
    if policy.dir == xfrm_pb2.POLICY_DIR_UNSPECIFIED:
        raise cur.error("expected dir in|out|fwd: a policy needs a direction")
    if not policy.sel.family:
        policy.sel.family = next(
            (t.family for t in policy.tmpl if t.family), xfrm_pb2.ADDRESS_FAMILY_INET
        )
    return policy, ptype


def _parse_policy_filter(cur: _Cursor, ifindex_of: IfindexOf | None, *, get: bool) -> PolicyFilter:
    """list/deleteall filters, or get/delete's { SELECTOR | index INDEX } dir DIR ..."""
    values: dict[str, object] = {}
    sel_seen = False
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if (word in _SEL_WORDS or word in _UPSPEC_WORDS) and not sel_seen:
            parsed = _parse_selector(cur, ifindex_of)
            sel_seen = True
            if parsed.saddr:
                values["saddr"], values["prefixlen_s"] = parsed.saddr.text, parsed.saddr.plen
            if parsed.daddr:
                values["daddr"], values["prefixlen_d"] = parsed.daddr.text, parsed.daddr.plen
            if parsed.upspec:
                values["upspec_proto"] = parsed.sel.proto
                if parsed.sel.sport_mask:
                    values["sport"] = parsed.sel.sport
                if parsed.sel.dport_mask:
                    values["dport"] = parsed.sel.dport
            if parsed.sel.ifindex:
                values["ifindex"] = parsed.sel.ifindex
            continue
        cur.take()
        if word == "dir":
            values["dir"] = cur.choice(_POLICY_DIRS, "a policy dir")
        elif word == "index":
            values["index"] = cur.uint("expected a policy index (32-bit number)")
        elif word == "ptype":
            values["ptype"] = _parse_ptype(cur)
        elif word == "mark" and get:
            values["mark"] = _parse_mark(cur)
        elif word == "if_id" and get:
            values["if_id"] = cur.uint("expected an interface id (32-bit number)")
        elif word == "action" and not get:
            values["action"] = cur.choice(_POLICY_ACTIONS, "a policy action")
        elif word == "priority" and not get:
            values["priority"] = cur.uint("expected a priority (32-bit number)")
        elif word == "flag" and not get:
            values["flags"] = _parse_flag_list(cur, XFRM_POLICY_FLAGS, "a policy flag", 8)
        elif word == "nosock" and not get:
            values["nosock"] = True
        else:
            allowed = (
                "SELECTOR, index, dir, mark, ptype, if_id"
                if get
                else "SELECTOR, dir, index, ptype, action, priority, flag, nosock"
            )
            raise cur.error(f"expected a filter ({allowed})", index)
    if get:
        if "dir" not in values:
            raise cur.error("expected dir in|out|fwd")
        if not sel_seen and "index" not in values:
            raise cur.error("expected a SELECTOR or index INDEX")
    return PolicyFilter(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dispatch

_STATE_ACTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("add",), "add"),
    (("update",), "update"),
    (("allocspi",), "allocspi"),
    (("delete",), "delete"),
    (("deleteall", "delall"), "deleteall"),
    (("list", "show", "lst"), "list"),
    (("get",), "get"),
    (("flush",), "flush"),
    (("count",), "count"),
    (("help",), "help"),
)
_POLICY_ACTIONS_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("add",), "add"),
    (("update",), "update"),
    (("delete",), "delete"),
    (("deleteall", "delall"), "deleteall"),
    (("list", "show", "lst"), "list"),
    (("get",), "get"),
    (("flush",), "flush"),
    (("count",), "count"),
    (("set",), "set"),
    (("setdefault",), "setdefault"),
    (("getdefault",), "getdefault"),
    (("help",), "help"),
)


def _action(cur: _Cursor, table: tuple[tuple[tuple[str, ...], str], ...]) -> str:
    if cur.at_end():
        return "list"  # `ip xfrm state` alone lists.
    word = cur.peek() or ""
    for spellings, action in table:
        if any(_matches(word, s) for s in spellings):
            cur.take()
            return action
    names = _names([spellings[0] for spellings, _ in table])
    raise cur.error(f"expected a command ({names})")


def parse(argv: Sequence[str], *, ifindex_of: IfindexOf | None = None) -> Command:
    """Parse ``[xfrm] { state | policy | monitor } COMMAND ...`` into a :class:`Command`.

    ``ifindex_of`` resolves a selector's ``dev DEV`` to an interface index (the server's
    Device.ifindex); without it, a selector naming a device is an error.
    """
    cur = _Cursor(argv, 0)
    if not cur.at_end() and _matches(cur.argv[0], "xfrm"):
        cur.take()
    word = cur.peek()
    if word is None:
        raise cur.error("expected an object (state|policy|monitor)")
    if _matches(word, "state") or _matches(word, "sa"):
        cur.take()
        return _parse_state_command(cur, ifindex_of)
    if _matches(word, "policy"):
        cur.take()
        return _parse_policy_command(cur, ifindex_of)
    if _matches(word, "monitor"):
        cur.take()
        return _parse_monitor(cur)
    raise cur.error("expected an object (state|policy|monitor)")


def _parse_state_command(cur: _Cursor, ifindex_of: IfindexOf | None) -> Command:
    index = cur.pos
    action = _action(cur, _STATE_ACTIONS)
    if action in ("add", "update"):
        sa = _parse_state_add(cur, ifindex_of)
        return Command("state", action, sa=sa)  # type: ignore[arg-type]
    if action in ("get", "delete"):
        return Command("state", action, state_filter=_parse_state_get(cur))  # type: ignore[arg-type]
    if action in ("list", "deleteall"):
        return Command("state", action, state_filter=_parse_state_list(cur))  # type: ignore[arg-type]
    if action == "flush":
        return Command("state", "flush", state_filter=_parse_state_flush(cur))
    if action in ("count", "help"):
        if not cur.at_end():
            raise cur.error("expected nothing more")
        return Command("state", action)  # type: ignore[arg-type]
    raise cur.error(f"expected a command xfrmctl supports: {action} is not offloadable", index)


def _parse_policy_command(cur: _Cursor, ifindex_of: IfindexOf | None) -> Command:
    index = cur.pos
    action = _action(cur, _POLICY_ACTIONS_WORDS)
    if action in ("add", "update"):
        policy, ptype = _parse_policy_add(cur, ifindex_of)
        return Command("policy", action, policy=policy, ptype=ptype)  # type: ignore[arg-type]
    if action in ("get", "delete", "list", "deleteall"):
        filt = _parse_policy_filter(cur, ifindex_of, get=action in ("get", "delete"))
        return Command("policy", action, policy_filter=filt, ptype=filt.ptype)  # type: ignore[arg-type]
    if action == "flush":
        ptype = None
        if cur.peek() == "ptype":
            cur.take()
            ptype = _parse_ptype(cur)
        if not cur.at_end():
            raise cur.error("expected ptype PTYPE or nothing")
        return Command("policy", "flush", policy_filter=PolicyFilter(ptype=ptype), ptype=ptype)
    if action in ("count", "help"):
        if not cur.at_end():
            raise cur.error("expected nothing more")
        return Command("policy", action)  # type: ignore[arg-type]
    raise cur.error(f"expected a command xfrmctl supports: {action} is not offloadable", index)


def _parse_monitor(cur: _Cursor) -> Command:
    """monitor [ all | LISTofXFRM-OBJECTS ]."""
    groups: list[str] = []
    while not cur.at_end():
        word = cur.peek() or ""
        if word == "all":
            cur.take()
            continue
        hit = next((g for g in MONITOR_GROUPS if _matches(word, g)), None)
        if hit is None:
            raise cur.error(f"expected an event group ({_names(MONITOR_GROUPS)} or all)")
        cur.take()
        groups.append(hit)
    return Command("monitor", "monitor", monitor_groups=tuple(groups))


# --------------------------------------------------------------------------- usage

_STATE_USAGE = """\
Usage: xfrmctl [xfrm] state { add | update } ID [ ALGO-LIST ] [ mode MODE ]
        [ mark MARK [ mask MASK ] ] [ reqid REQID ] [ seq SEQ ]
        [ replay-window SIZE ] [ replay-seq SEQ ] [ replay-oseq SEQ ]
        [ replay-seq-hi SEQ ] [ replay-oseq-hi SEQ ]
        [ flag FLAG-LIST ] [ sel SELECTOR ] [ LIMIT-LIST ] [ encap ENCAP ]
        [ extra-flag EXTRA-FLAG-LIST ] [ if_id IF_ID ] [ tfcpad LENGTH ]
        [ offload [ crypto | packet ] dev DEV dir DIR ] [ dir DIR ]
       xfrmctl state { delete | get } ID [ mark MARK [ mask MASK ] ]
       xfrmctl state { deleteall | list } [ ID ] [ nokeys ] [ mode MODE ]
        [ reqid REQID ] [ flag FLAG-LIST ]
       xfrmctl state flush [ proto XFRM-PROTO ]
       xfrmctl state count
ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ]
XFRM-PROTO := esp | NUMBER
ALGO-LIST := [ ALGO-LIST ] ALGO
ALGO := { enc | auth } ALGO-NAME ALGO-KEYMAT |
        auth-trunc ALGO-NAME ALGO-KEYMAT ALGO-TRUNC-LEN |
        aead ALGO-NAME ALGO-KEYMAT ALGO-ICV-LEN
ALGO-KEYMAT := 0xHEXDIGITS | STRING
MODE := transport | tunnel
FLAG-LIST := [ FLAG-LIST ] FLAG
FLAG := noecn | decap-dscp | nopmtudisc | wildrecv | icmp | af-unspec | align4 | esn
EXTRA-FLAG-LIST := [ EXTRA-FLAG-LIST ] EXTRA-FLAG
EXTRA-FLAG := dont-encap-dscp | oseq-may-wrap
SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]
UPSPEC := proto { { tcp | udp | sctp | dccp } [ sport PORT ] [ dport PORT ] |
                  { icmp | ipv6-icmp | mobility-header } [ type NUMBER ] [ code NUMBER ] |
                  gre [ key { DOTTED-QUAD | NUMBER } ] | PROTO }
LIMIT-LIST := [ LIMIT-LIST ] limit LIMIT
LIMIT := { time-soft | time-hard | time-use-soft | time-use-hard } SECONDS |
         { byte-soft | byte-hard } SIZE | { packet-soft | packet-hard } COUNT
ENCAP := { espinudp | espinudp-nonike | espintcp } SPORT DPORT OADDR
DIR := in | out
"""

_POLICY_USAGE = """\
Usage: xfrmctl [xfrm] policy { add | update } SELECTOR dir DIR
        [ mark MARK [ mask MASK ] ] [ index INDEX ] [ ptype PTYPE ]
        [ action ACTION ] [ priority PRIORITY ] [ flag FLAG-LIST ]
        [ if_id IF_ID ] [ offload packet dev DEV ] [ LIMIT-LIST ] [ TMPL-LIST ]
       xfrmctl policy { delete | get } { SELECTOR | index INDEX } dir DIR
        [ mark MARK [ mask MASK ] ] [ ptype PTYPE ] [ if_id IF_ID ]
       xfrmctl policy { deleteall | list } [ nosock ] [ SELECTOR ] [ dir DIR ]
        [ index INDEX ] [ ptype PTYPE ] [ action ACTION ] [ priority PRIORITY ]
        [ flag FLAG-LIST ]
       xfrmctl policy flush [ ptype PTYPE ]
       xfrmctl policy count
SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]
UPSPEC := proto { { tcp | udp | sctp | dccp } [ sport PORT ] [ dport PORT ] |
                  { icmp | ipv6-icmp | mobility-header } [ type NUMBER ] [ code NUMBER ] |
                  gre [ key { DOTTED-QUAD | NUMBER } ] | PROTO }
DIR := in | out | fwd
PTYPE := main | sub
ACTION := allow | block
FLAG-LIST := [ FLAG-LIST ] FLAG
FLAG := localok | icmp
LIMIT-LIST := [ LIMIT-LIST ] limit LIMIT
LIMIT := { time-soft | time-hard | time-use-soft | time-use-hard } SECONDS |
         { byte-soft | byte-hard } SIZE | { packet-soft | packet-hard } COUNT
TMPL-LIST := [ TMPL-LIST ] tmpl TMPL
TMPL := ID [ mode MODE ] [ reqid REQID ] [ level LEVEL ]
ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ]
XFRM-PROTO := esp | NUMBER
MODE := transport | tunnel
LEVEL := required | use
"""

_TOP_USAGE = """\
Usage: xfrmctl [xfrm] XFRM-OBJECT { COMMAND | help }
where  XFRM-OBJECT := state | policy | monitor
       xfrmctl [xfrm] monitor [ all | LISTofXFRM-OBJECTS ]
LISTofXFRM-OBJECTS := [ LISTofXFRM-OBJECTS ] XFRM-OBJECT
XFRM-OBJECT := acquire | expire | SA | aevent | policy | report
"""


def usage(obj: str | None = None) -> str:
    """The BNF help text, iproute2's, for ``state``, ``policy`` or (None) the top level."""
    if obj == "state":
        return _STATE_USAGE
    if obj == "policy":
        return _POLICY_USAGE
    return _TOP_USAGE

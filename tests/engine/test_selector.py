"""Selector matching and flow extraction from packet bytes (packets built with scapy)."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import GRE
from scapy.packet import Raw

from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.selector import (
    FlowKey,
    SelectorMatcher,
    flow_from_packet,
    prefix_mask,
    selector_matches,
)
from xfrm_offload.engine.types import Family, Selector

ip = ipaddress.ip_address
V4 = Family.INET
V6 = Family.INET6


def sel4(
    dst: str | None = None,
    src: str | None = None,
    *,
    proto: int = 0,
    sport: int = 0,
    sport_mask: int = 0,
    dport: int = 0,
    dport_mask: int = 0,
    ifindex: int = 0,
) -> Selector:
    """An IPv4 selector from "addr/plen" strings (no "/plen": a host)."""
    d = ipaddress.ip_interface(dst) if dst else None
    s = ipaddress.ip_interface(src) if src else None
    return Selector(
        daddr=d.ip if d else None,
        saddr=s.ip if s else None,
        prefixlen_d=d.network.prefixlen if d else 0,
        prefixlen_s=s.network.prefixlen if s else 0,
        family=V4,
        proto=proto,
        sport=sport,
        sport_mask=sport_mask,
        dport=dport,
        dport_mask=dport_mask,
        ifindex=ifindex,
    )


TCP_FLOW = FlowKey.of("10.1.2.3", "192.168.7.9", 6, 40000, 443, ifindex=3)

MATCH_CASES = [
    ("empty selector matches all", Selector(), TCP_FLOW, True),
    ("exact daddr", sel4("192.168.7.9"), TCP_FLOW, True),
    ("other daddr", sel4("192.168.7.10"), TCP_FLOW, False),
    ("daddr /24", sel4("192.168.7.0/24"), TCP_FLOW, True),
    ("daddr /24 host bits ignored", sel4("192.168.7.200/24"), TCP_FLOW, True),
    ("daddr /25 other half", sel4("192.168.7.128/25"), TCP_FLOW, False),
    ("saddr /8", sel4(src="10.0.0.0/8"), TCP_FLOW, True),
    ("saddr /16 miss", sel4(src="10.2.0.0/16"), TCP_FLOW, False),
    ("proto tcp", sel4(proto=6), TCP_FLOW, True),
    ("proto udp", sel4(proto=17), TCP_FLOW, False),
    ("dport exact", sel4(proto=6, dport=443, dport_mask=0xFFFF), TCP_FLOW, True),
    ("dport other", sel4(proto=6, dport=80, dport_mask=0xFFFF), TCP_FLOW, False),
    ("dport without mask is any", sel4(dport=80), TCP_FLOW, True),
    ("dport masked range", sel4(dport=0x0100, dport_mask=0xFF00), TCP_FLOW, True),  # 256-511
    ("sport exact", sel4(sport=40000, sport_mask=0xFFFF), TCP_FLOW, True),
    ("sport other", sel4(sport=40001, sport_mask=0xFFFF), TCP_FLOW, False),
    ("ifindex same", sel4(ifindex=3), TCP_FLOW, True),
    ("ifindex other", sel4(ifindex=4), TCP_FLOW, False),
    ("family mismatch", Selector(family=V6), TCP_FLOW, False),
    (
        "icmp type 8 code 0",
        sel4(proto=1, sport=8, sport_mask=0xFFFF, dport=0, dport_mask=0xFFFF),
        FlowKey.of("10.1.2.3", "192.168.7.9", 1, 8, 0),
        True,
    ),
    (
        "icmp type 0 is not 8",
        sel4(proto=1, sport=8, sport_mask=0xFFFF),
        FlowKey.of("10.1.2.3", "192.168.7.9", 1, 0, 0),
        False,
    ),
    (
        "v6 prefix",
        Selector(daddr=ip("2001:db8::"), prefixlen_d=32, family=V6),
        FlowKey.of("2001:db8:1::1", "2001:db8:ffff::2"),
        True,
    ),
    (
        "v6 prefix miss",
        Selector(daddr=ip("2001:db8::"), prefixlen_d=32, family=V6),
        FlowKey.of("2001:db8:1::1", "2001:db9::2"),
        False,
    ),
    (
        "v6 /128",
        Selector(saddr=ip("fe80::1"), prefixlen_s=128, family=V6),
        FlowKey.of("fe80::1", "fe80::2"),
        True,
    ),
]


@pytest.mark.parametrize(
    ("name", "sel", "flow", "expected"), MATCH_CASES, ids=[c[0] for c in MATCH_CASES]
)
def test_selector_match(name: str, sel: Selector, flow: FlowKey, expected: bool) -> None:
    assert SelectorMatcher(sel).matches(flow) is expected
    assert selector_matches(sel, flow) is expected


@pytest.mark.parametrize(
    ("sel", "field"),
    [
        (Selector(daddr=ip("10.0.0.0"), prefixlen_d=33), "sel.prefixlen_d"),
        (Selector(saddr=ip("::1"), prefixlen_s=129, family=V6), "sel.prefixlen_s"),
        (Selector(daddr=ip("::1"), prefixlen_d=32, family=V4), "sel.daddr"),
        (Selector(prefixlen_s=8), "sel.saddr"),
        (Selector(dport=70000, dport_mask=0xFFFF), "sel.dport"),
        (Selector(proto=256), "sel.proto"),
    ],
)
def test_selector_validation(sel: Selector, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        SelectorMatcher(sel)
    assert exc.value.field == field


def test_prefix_mask() -> None:
    assert prefix_mask(V4, 0) == 0
    assert prefix_mask(V4, 24) == 0xFFFFFF00
    assert prefix_mask(V4, 32) == 0xFFFFFFFF
    assert prefix_mask(V6, 64) == ((1 << 64) - 1) << 64


A4, B4 = "10.1.2.3", "192.168.7.9"
A6, B6 = "2001:db8::1", "2001:db8::2"

EXTRACT_CASES = [
    ("v4 tcp", IP(src=A4, dst=B4) / TCP(sport=1234, dport=443), FlowKey.of(A4, B4, 6, 1234, 443)),
    ("v4 udp", IP(src=A4, dst=B4) / UDP(sport=500, dport=4500), FlowKey.of(A4, B4, 17, 500, 4500)),
    ("v4 icmp echo", IP(src=A4, dst=B4) / ICMP(type=8, code=0), FlowKey.of(A4, B4, 1, 8, 0)),
    (
        "v4 icmp unreachable",
        IP(src=A4, dst=B4) / ICMP(type=3, code=4),
        FlowKey.of(A4, B4, 1, 3, 4),
    ),
    (
        "v4 options",
        IP(src=A4, dst=B4, options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2),
        FlowKey.of(A4, B4, 17, 1, 2),
    ),
    (
        "v4 first fragment has no ports",
        IP(src=A4, dst=B4, flags="MF") / UDP(sport=1, dport=2),
        FlowKey.of(A4, B4, 17),
    ),
    (
        "v4 later fragment",
        IP(src=A4, dst=B4, frag=100, proto=17) / Raw(b"x" * 8),
        FlowKey.of(A4, B4, 17),
    ),
    ("v4 esp", IP(src=A4, dst=B4, proto=50) / Raw(b"\0" * 16), FlowKey.of(A4, B4, 50)),
    (
        "v4 gre with key",
        IP(src=A4, dst=B4) / GRE(key_present=1, key=0x12345678),
        FlowKey.of(A4, B4, 47, 0x1234, 0x5678),
    ),
    (
        "v4 gre with checksum and key",
        IP(src=A4, dst=B4) / GRE(chksum_present=1, key_present=1, key=0xABCD0001),
        FlowKey.of(A4, B4, 47, 0xABCD, 0x0001),
    ),
    ("v4 gre without key", IP(src=A4, dst=B4) / GRE(), FlowKey.of(A4, B4, 47)),
    ("v6 tcp", IPv6(src=A6, dst=B6) / TCP(sport=5, dport=22), FlowKey.of(A6, B6, 6, 5, 22)),
    (
        "v6 icmpv6 echo",
        IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(),
        FlowKey.of(A6, B6, 58, 128, 0),
    ),
    (
        "v6 extension headers skipped",
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / UDP(sport=7, dport=9),
        FlowKey.of(A6, B6, 17, 7, 9),
    ),
    (
        "v6 first fragment keeps ports",
        IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(offset=0, m=1) / UDP(sport=7, dport=9),
        FlowKey.of(A6, B6, 17, 7, 9),
    ),
    (
        "v6 later fragment",
        IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(offset=10, nh=17) / Raw(b"y" * 8),
        FlowKey.of(A6, B6, 17),
    ),
]


@pytest.mark.parametrize(
    ("name", "packet", "expected"), EXTRACT_CASES, ids=[c[0] for c in EXTRACT_CASES]
)
def test_flow_from_packet(name: str, packet: IP, expected: FlowKey) -> None:
    raw = bytes(packet)
    assert flow_from_packet(raw) == expected
    assert flow_from_packet(memoryview(raw)) == expected


def test_flow_carries_ifindex() -> None:
    raw = bytes(IP(src=A4, dst=B4) / TCP(sport=1, dport=2))
    assert flow_from_packet(raw, ifindex=7) == FlowKey.of(A4, B4, 6, 1, 2, ifindex=7)


MALFORMED = [
    ("empty", b""),
    ("version 5", b"\x50" + bytes(39)),
    ("v4 header cut", bytes(IP(src=A4, dst=B4) / TCP())[:12]),
    ("v4 ihl too small", b"\x44" + bytes(IP(src=A4, dst=B4))[1:]),
    ("v4 tcp ports cut", bytes(IP(src=A4, dst=B4) / TCP())[:22]),
    ("v6 header cut", bytes(IPv6(src=A6, dst=B6))[:39]),
    ("v6 ext header cut", bytes(IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / UDP())[:41]),
    ("v6 ext header runs past end", bytes(IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt(len=200))),
    ("v6 fragment cut", bytes(IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment() / UDP())[:45]),
    ("v4 gre key cut", bytes(IP(src=A4, dst=B4) / GRE(key_present=1, key=1))[:26]),
]


@pytest.mark.parametrize(("name", "raw"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_packets_give_none(name: str, raw: bytes) -> None:
    assert flow_from_packet(raw) is None


def test_flow_address_views() -> None:
    flow = FlowKey.of(A6, B6)
    assert flow.family is V6
    assert (flow.saddr_ip, flow.daddr_ip) == (ip(A6), ip(B6))
    assert flow.daddr_packed() == ip(B6).packed
    assert FlowKey.of(A4, B4).saddr_packed() == ip(A4).packed
    with pytest.raises(InvalidArgument):
        FlowKey.of(A4, B6)

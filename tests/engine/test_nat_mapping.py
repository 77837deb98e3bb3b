"""NAT-T mapping events (XFRM_MSG_MAPPING) as esp_input_done2 and km_new_mapping raise them.

An inbound ESP-in-UDP packet that verifies for an SA but comes from another outer
source address or UDP source port than the SA's raises one MAPPING event (old and new
address and port); with a mapping max age (XFRMA_MTIMER_THRESH) the kernel sends
again only for another port or once that many whole seconds have passed. The SA keeps
its encapsulation, and packets that fail to verify raise nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.events import (
    NewMapping,
)
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    Algorithm,
    Direction,
    EncapTemplate,
    Family,
    Mode,
    SAConfig,
    Selector,
)

from ..datapath.builders import checksum, udp4

PEER, LOCAL = ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")
NATTED = ipaddress.IPv4Address("198.51.100.77")
SEL = Selector(
    saddr=ipaddress.ip_address("198.51.100.0"), prefixlen_s=24,
    daddr=ipaddress.ip_address("203.0.113.0"), prefixlen_d=24, family=Family.INET,
)  # fmt: skip
INNER = [udp4("198.51.100.7", "203.0.113.9", bytes([i]) * 40) for i in range(6)]
INBOUND = XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND


def encap_sa(maxage: int = 0) -> SAConfig:
    return SAConfig(
        daddr=LOCAL,
        saddr=PEER,
        spi=0x4242,
        mode=Mode.TUNNEL,
        reqid=7,
        replay_window=64,
        aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128),
        encap=EncapTemplate(sport=4500, dport=4500),
        selector=SEL,
        mapping_maxage=maxage,
    )


def wire_packets(config: SAConfig) -> list[bytes]:
    """What the peer's device sends for INNER through the outbound twin of ``config``."""
    peer = DevicePath(Device("peer0", 9, PROFILES["full"]))
    tmpl = Template(daddr=LOCAL, saddr=PEER, reqid=7, mode=Mode.TUNNEL)
    peer.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl,)), XFRM_OFFLOAD_PACKET
    )
    peer.device.state_add(config, XFRM_OFFLOAD_PACKET, 0.0)
    out = peer.tx(INNER, 0.0).outcomes()
    assert [o[0] for o in out] == [Verdict.PASS] * len(INNER)
    return [o[1] for o in out]  # type: ignore[misc]


def natted(
    packet: bytes, saddr: ipaddress.IPv4Address | None = None, sport: int | None = None
) -> bytes:
    """The packet as a NAT in front of the peer rewrites it (UDP checksum zeroed, as RFC
    3948 lets a NAT do; IPv4 header checksum fixed)."""
    p = bytearray(packet)
    if saddr is not None:
        p[12:16] = saddr.packed
    if sport is not None:
        p[20:22] = sport.to_bytes(2, "big")
    p[26:28] = b"\0\0"
    p[10:12] = b"\0\0"
    p[10:12] = checksum(bytes(p[:20])).to_bytes(2, "big")
    return bytes(p)


@pytest.fixture
def local() -> DevicePath:
    path = DevicePath(Device("eth0", 2, PROFILES["full"]))
    tmpl = Template(daddr=LOCAL, saddr=PEER, reqid=7, mode=Mode.TUNNEL)
    path.device.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl,)), XFRM_OFFLOAD_PACKET
    )
    return path


def mappings(path: DevicePath) -> list[NewMapping]:
    return [e for e in path.device.pop_events() if isinstance(e, NewMapping)]


def test_same_source_raises_nothing(local: DevicePath) -> None:
    config = encap_sa()
    local.device.state_add(config, INBOUND, 0.0)
    wire = wire_packets(config)
    out = local.rx([natted(p) for p in wire], 1.0).outcomes()
    assert [o[1] for o in out] == INNER
    assert mappings(local) == []


def test_new_port_raises_one_event_per_packet_without_max_age(local: DevicePath) -> None:
    config = encap_sa()
    handle = local.device.state_add(config, INBOUND, 0.0).handle
    wire = wire_packets(config)
    out = local.rx([natted(p, NATTED, 31000) for p in wire[:3]], 1.0).outcomes()
    assert [o[1] for o in out] == INNER[:3]  # the packets pass: only the keymanager moves the SA
    events = mappings(local)
    assert len(events) == 3  # km_new_mapping without XFRMA_MTIMER_THRESH: every packet
    first = events[0]
    assert (first.dev, first.handle, first.reqid) == ("eth0", handle, 7)
    assert (first.sa.daddr, first.sa.spi, first.sa.proto) == (LOCAL, 0x4242, 50)
    assert (first.old_saddr, first.old_sport) == (PEER, 4500)
    assert (first.new_saddr, first.new_sport) == (NATTED, 31000)
    assert local.device.get_state(handle).config.encap == EncapTemplate(sport=4500, dport=4500)


def test_address_change_alone_is_a_mapping(local: DevicePath) -> None:
    config = encap_sa()
    local.device.state_add(config, INBOUND, 0.0)
    wire = wire_packets(config)
    local.rx([natted(wire[0], saddr=NATTED)], 1.0)
    (event,) = mappings(local)
    assert (event.new_saddr, event.new_sport) == (NATTED, 4500)


def test_max_age_rate_limits_per_port_in_whole_seconds(local: DevicePath) -> None:
    config = encap_sa(maxage=10)
    local.device.state_add(config, INBOUND, 0.0)
    wire = wire_packets(config)

    def send(i: int, port: int, now: float) -> int:
        local.rx([natted(wire[i], NATTED, port)], now)
        return len(mappings(local))

    assert send(0, 31000, 100.0) == 1
    assert send(1, 31000, 110.9) == 0  # 110 - 100 = 10, not > 10: same port, too soon
    assert send(2, 31001, 111.0) == 1  # another port: at once
    assert send(3, 31001, 121.5) == 0  # 121 - 111 = 10
    assert send(4, 31001, 122.0) == 1  # 11 > 10


def test_a_packet_that_fails_to_verify_raises_nothing(local: DevicePath) -> None:
    config = encap_sa()
    local.device.state_add(config, INBOUND, 0.0)
    wire = wire_packets(config)
    bad = bytearray(natted(wire[0], NATTED, 31000))
    bad[-1] ^= 1  # the ICV
    out = local.rx([bytes(bad)], 1.0).outcomes()
    assert out[0][:2] == (Verdict.DROP, XfrmStat.IN_STATE_PROTO_ERROR)
    assert mappings(local) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            replace(encap_sa(5), encap=None),
            "MTIMER_THRESH attribute can only be set on ENCAP states",
        ),
        (
            replace(encap_sa(5), sa_dir=Direction.OUT),
            "MTIMER_THRESH attribute should not be set on output SA",
        ),
    ],
)
def test_max_age_needs_an_inbound_encap_state(config: SAConfig, message: str) -> None:
    device = Device("eth0", 2, PROFILES["full"])
    flags = XFRM_OFFLOAD_PACKET if config.sa_dir == Direction.OUT else INBOUND
    with pytest.raises(InvalidArgument) as info:
        device.state_add(config, flags, 0.0)
    assert (info.value.message, info.value.field) == (message, "mapping_maxage")


PEER6, LOCAL6 = ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::2")
NATTED6 = ipaddress.IPv6Address("2001:db8:77::7")


def udp6_checksum(packet: bytearray) -> int:
    """The UDP checksum of an IPv6 packet whose UDP header is at 40 (RFC 8200 8.1)."""
    length = len(packet) - 40
    data = bytes(packet[8:40]) + length.to_bytes(4, "big") + b"\0\0\0\x11"
    data += bytes(packet[40:46]) + b"\0\0" + bytes(packet[48:])
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


def test_ipv6_outer_mapping() -> None:
    config = replace(encap_sa(), daddr=LOCAL6, saddr=PEER6, family=Family.INET6)
    local = DevicePath(Device("eth0", 2, PROFILES["full"]))
    tmpl = Template(daddr=LOCAL6, saddr=PEER6, reqid=7, mode=Mode.TUNNEL)
    local.device.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl,)), XFRM_OFFLOAD_PACKET
    )
    local.device.state_add(config, INBOUND, 0.0)
    peer = DevicePath(Device("peer0", 9, PROFILES["full"]))
    peer.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(replace(tmpl, daddr=LOCAL6, saddr=PEER6),)),
        XFRM_OFFLOAD_PACKET,
    )
    peer.device.state_add(config, XFRM_OFFLOAD_PACKET, 0.0)
    (sent,) = peer.tx([INNER[0]], 0.0).outcomes()
    assert sent[0] is Verdict.PASS and isinstance(sent[1], bytes)
    p = bytearray(sent[1])
    p[8:24] = NATTED6.packed
    p[40:42] = (32000).to_bytes(2, "big")
    p[46:48] = udp6_checksum(p).to_bytes(2, "big")
    out = local.rx([bytes(p)], 1.0).outcomes()
    assert out[0][:2] == (Verdict.PASS, INNER[0])
    (event,) = mappings(local)
    assert (event.old_saddr, event.old_sport, event.new_saddr, event.new_sport) == (
        PEER6,
        4500,
        NATTED6,
        32000,
    )

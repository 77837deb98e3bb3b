"""The device packet path's lookup caches never outlive the tables they summarise."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

import pytest

from xfrm_offload.engine.datapath import DevicePath, Outcome, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.events import Acquire
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import Policy, PolicyAction, Template
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    Algorithm,
    Direction,
    Family,
    LifetimeConfig,
    Mode,
    SAConfig,
    Selector,
)

from ..datapath.builders import udp4

OUTER_A, OUTER_B = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
NET_A = ipaddress.ip_address("198.51.100.0")
NET_B = ipaddress.ip_address("203.0.113.0")
SEL = Selector(saddr=NET_A, prefixlen_s=24, daddr=NET_B, prefixlen_d=24, family=Family.INET)
KEY = bytes(range(20))
INNER = [udp4("198.51.100.7", "203.0.113.9", bytes([i]) * 40) for i in range(8)]


def sa(spi: int, reqid: int = 1) -> SAConfig:
    return SAConfig(
        daddr=OUTER_B,
        saddr=OUTER_A,
        spi=spi,
        mode=Mode.TUNNEL,
        reqid=reqid,
        replay_window=64,
        aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
        selector=SEL,
    )


def tmpl(reqid: int = 1) -> Template:
    return Template(daddr=OUTER_B, saddr=OUTER_A, reqid=reqid, mode=Mode.TUNNEL)


@pytest.fixture
def pair() -> tuple[DevicePath, DevicePath]:
    a = Device("eth0", 2, PROFILES["full"])
    b = Device("eth1", 3, PROFILES["full"])
    return DevicePath(a), DevicePath(b)


def verdicts(outcomes: Sequence[Outcome]) -> list[object]:
    return [o[1] if o[0] is Verdict.DROP else o[0] for o in outcomes]


def test_tx_cache_follows_state_changes(pair: tuple[DevicePath, DevicePath]) -> None:
    a, _ = pair
    a.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    items = list(INNER)
    assert verdicts(a.tx(items, 1.0).outcomes()) == [XfrmStat.OUT_NO_STATES] * 8
    assert [type(e) for e in a.device.pop_events()][-1] is Acquire
    first = a.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 1.0).handle
    out = a.tx(items, 1.0).outcomes()
    assert verdicts(out) == [Verdict.PASS] * 8 and {o[2] for o in out} == {first}
    a.device.state_delete(first)
    assert verdicts(a.tx(items, 1.0).outcomes()) == [XfrmStat.OUT_NO_STATES] * 8
    second = a.device.state_add(sa(0x200), XFRM_OFFLOAD_PACKET, 1.0).handle
    assert {o[2] for o in a.tx(items, 1.0).outcomes()} == {second}


def test_rx_caches_follow_state_and_policy_changes(pair: tuple[DevicePath, DevicePath]) -> None:
    a, b = pair
    a.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    a.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 1.0)
    out = [o[1] for o in a.tx(INNER, 1.0).outcomes()]
    wire = [w for w in out if isinstance(w, bytes)]
    assert len(wire) == 8
    inbound = XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND
    handle = b.device.state_add(sa(0x100), inbound, 1.0).handle
    # no inbound policy: tunnel traffic is refused (XfrmInNoPols), and that verdict is cached
    assert verdicts(b.rx(wire[:2], 1.0).outcomes()) == [XfrmStat.IN_NO_POLS] * 2
    policy = b.device.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(reqid=9),)), XFRM_OFFLOAD_PACKET
    )
    # reqid 9 != 1
    assert verdicts(b.rx(wire[2:4], 1.0).outcomes()) == [XfrmStat.IN_TMPL_MISMATCH] * 2
    b.device.policy_delete(policy.handle)
    b.device.policy_add(Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET)
    passed = b.rx(wire[4:6], 1.0).outcomes()
    assert [o[1] for o in passed] == INNER[4:6]
    b.device.state_delete(handle)
    assert verdicts(b.rx(wire[6:], 1.0).outcomes()) == [XfrmStat.IN_NO_STATES] * 2


def gre4(key: int) -> bytes:
    """IPv4/GRE with the key present (flags K), as selectors see it (key in sport/dport)."""
    gre = bytes([0x20, 0x00, 0x08, 0x00]) + key.to_bytes(4, "big") + b"payload!"
    head = bytearray(udp4("198.51.100.7", "203.0.113.9", b"")[:20])
    head[9] = 47
    head[2:4] = (20 + len(gre)).to_bytes(2, "big")
    head[10:12] = b"\0\0"
    total = sum(int.from_bytes(head[i : i + 2], "big") for i in range(0, 20, 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    head[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
    return bytes(head) + gre


def test_gre_flows_differing_only_in_their_key_are_decided_apart(
    pair: tuple[DevicePath, DevicePath],
) -> None:
    a, _ = pair
    blocked = Selector(
        saddr=NET_A, prefixlen_s=24, daddr=NET_B, prefixlen_d=24, family=Family.INET,
        proto=47, dport=1, dport_mask=0xFFFF,
    )  # fmt: skip
    block = Policy(sel=blocked, dir=Direction.OUT, action=PolicyAction.BLOCK)
    a.device.policy_add(block, XFRM_OFFLOAD_PACKET)
    for order in ((2, 1), (1, 2)):
        out = a.tx([gre4(k) for k in order], 1.0).outcomes()
        assert {k: v for k, v in zip(order, verdicts(out), strict=True)} == {
            1: XfrmStat.OUT_POL_BLOCK,
            2: Verdict.PASS,
        }


def test_hard_expiry_makes_the_cached_route_give_way_to_an_acquire(
    pair: tuple[DevicePath, DevicePath],
) -> None:
    a, _ = pair
    a.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    expiring = replace(sa(0x100), lifetime=LifetimeConfig(hard_add_expires_seconds=10))
    a.device.state_add(expiring, XFRM_OFFLOAD_PACKET, 0.0)
    items = INNER[:2]
    assert verdicts(a.tx(items, 1.0).outcomes()) == [Verdict.PASS] * 2  # the route is cached now
    a.device.poll(11.0)
    a.device.pop_events()
    assert verdicts(a.tx(items, 11.0).outcomes()) == [XfrmStat.OUT_NO_STATES] * 2
    assert any(isinstance(e, Acquire) for e in a.device.pop_events())


def test_ipv6_transport_esp_after_a_hop_by_hop_header_is_received(
    pair: tuple[DevicePath, DevicePath],
) -> None:
    a, b = pair
    src, dst = ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")
    v6 = SAConfig(
        daddr=dst, saddr=src, spi=0x600, family=Family.INET6, replay_window=64,
        aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
    )  # fmt: skip
    a.device.state_add(v6, XFRM_OFFLOAD_PACKET, 1.0)
    b.device.state_add(v6, XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND, 1.0)
    udp = (4000).to_bytes(2, "big") + (5000).to_bytes(2, "big") + (12).to_bytes(2, "big") + b"\0\0"
    hop_by_hop = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # next header UDP, PadN
    payload = hop_by_hop + udp + b"abcd"
    inner = (
        bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") + bytes([0, 64])
        + src.packed + dst.packed + payload
    )  # fmt: skip
    policy = Policy(
        sel=Selector(daddr=dst, prefixlen_d=128, family=Family.INET6),
        dir=Direction.OUT,
        templates=(Template(reqid=0, mode=Mode.TRANSPORT),),
    )
    a.device.policy_add(policy, XFRM_OFFLOAD_PACKET)
    (esp,) = [o[1] for o in a.tx([inner], 1.0).outcomes()]
    assert isinstance(esp, bytes) and esp[6] == 0 and esp[40] == 50  # ESP after hop-by-hop
    (received,) = b.rx([esp], 1.0).outcomes()
    assert received[0] is Verdict.PASS and received[1] == inner

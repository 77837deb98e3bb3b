"""The device packet path's lookup caches never outlive the tables they summarise."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from xfrm_offload.engine.datapath import DevicePath, Outcome, Verdict
from xfrm_offload.engine.device import XFRM_OFFLOAD_INBOUND, XFRM_OFFLOAD_PACKET, Device
from xfrm_offload.engine.events import Acquire
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, Direction, Family, Mode, SAConfig, Selector

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
    items = [(p, 0, 0) for p in INNER]
    assert verdicts(a.tx(items, 1.0)) == [XfrmStat.OUT_NO_STATES] * 8
    assert [type(e) for e in a.device.pop_events()][-1] is Acquire
    first = a.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 1.0).handle
    out = a.tx(items, 1.0)
    assert verdicts(out) == [Verdict.PASS] * 8 and {o[2] for o in out} == {first}
    a.device.state_delete(first)
    assert verdicts(a.tx(items, 1.0)) == [XfrmStat.OUT_NO_STATES] * 8
    second = a.device.state_add(sa(0x200), XFRM_OFFLOAD_PACKET, 1.0).handle
    assert {o[2] for o in a.tx(items, 1.0)} == {second}


def test_rx_caches_follow_state_and_policy_changes(pair: tuple[DevicePath, DevicePath]) -> None:
    a, b = pair
    a.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    a.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 1.0)
    out = [o[1] for o in a.tx([(p, 0, 0) for p in INNER], 1.0)]
    wire = [w for w in out if isinstance(w, bytes)]
    assert len(wire) == 8
    inbound = XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND
    handle = b.device.state_add(sa(0x100), inbound, 1.0).handle
    # no inbound policy: tunnel traffic is refused (XfrmInNoPols), and that verdict is cached
    assert verdicts(b.rx(wire[:2], 1.0)) == [XfrmStat.IN_NO_POLS] * 2
    policy = b.device.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(reqid=9),)), XFRM_OFFLOAD_PACKET
    )
    assert verdicts(b.rx(wire[2:4], 1.0)) == [XfrmStat.IN_TMPL_MISMATCH] * 2  # reqid 9 != 1
    b.device.policy_delete(policy.handle)
    b.device.policy_add(Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET)
    passed = b.rx(wire[4:6], 1.0)
    assert [o[1] for o in passed] == INNER[4:6]
    b.device.state_delete(handle)
    assert verdicts(b.rx(wire[6:], 1.0)) == [XfrmStat.IN_NO_STATES] * 2

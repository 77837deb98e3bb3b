"""Bonding failover as the kernel's bond_ipsec_offload.sh runs it, and bond_main.c's
answers: states added on an active-backup bond land on the active member; when it goes
down every one is added again on the next member (BondFailover says what moved) and the
TX counters and sequence numbers continue there; no active member is -ENODEV, a member
without offload -EINVAL "Slave does not support ipsec offload"; offload_ok only in
active-backup."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from xfrm_offload.engine.bond import Bond, BondFailover, BondMode
from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import (
    Device,
    OffloadedPolicy,
)
from xfrm_offload.engine.errors import InvalidArgument, LocalError, NotFound
from xfrm_offload.engine.esp import host_tx_frame
from xfrm_offload.engine.events import (
    LinkChanged,
    StateAdded,
    StateDeleted,
)
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.spd import Policy
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Direction, LifetimeConfig

from ..datapath.builders import udp4
from .test_datapath import SEL, sa, tmpl
from .test_device import sa as selftest_sa
from .test_device import sa_in as selftest_sa_in


def path(name: str, ifindex: int, profile: str = "netdevsim") -> DevicePath:
    return DevicePath(Device(name, ifindex, PROFILES[profile]))


def tx_count(p: DevicePath) -> str:
    return p.device.netdevsim_debugfs().splitlines()[0]


def ping(bond: Bond, handle: int, host: SecurityAssociation, first_seq: int) -> None:
    """Three crypto-offload frames out through the bond's out state (``ping -c 3``)."""
    inner = udp4("192.168.123.3", "192.168.123.2", b"ping")
    seqs = range(first_seq, first_seq + 3)
    frames = [host_tx_frame(host.esp, inner, s) for s in seqs]
    out = bond.tx(frames, 1.0, [handle] * 3, seqs).outcomes()
    assert [(o[0], o[2]) for o in out] == [(Verdict.PASS, handle)] * 3


def failovers(bond: Bond) -> list[BondFailover]:
    return [e for e in bond.pop_events() if isinstance(e, BondFailover)]


def test_bond_ipsec_offload_selftest() -> None:
    nsim0, nsim1 = path("nsim0", 10), path("nsim1", 11)
    bond = Bond("bond0", 12, [nsim0, nsim1])
    out = bond.state_add(selftest_sa(), 0, 0.0)
    inb = bond.state_add(selftest_sa_in(), XFRM_OFFLOAD_INBOUND, 0.0)
    assert out.offloaded and inb.offloaded
    assert out.handle >> 32 == 12  # the bond's own handles
    assert bond.active is nsim0.device
    host = SecurityAssociation(selftest_sa(), 0.0)
    ping(bond, out.handle, host, 1)
    assert (tx_count(nsim0), tx_count(nsim1)) == ("SA count=2 tx=3", "SA count=0 tx=0")
    bond.pop_events()
    # the active slave goes down: failover
    bond.set_member_link("nsim0", False, 2.0)
    assert bond.active is nsim1.device
    events = bond.pop_events()  # the bond's, then its members' (nsim0's flush, nsim1's adds)
    assert [(type(e), getattr(e, "dev", "")) for e in events] == [
        (BondFailover, ""),
        (LinkChanged, "nsim0"),
        (StateDeleted, "nsim0"),
        (StateDeleted, "nsim0"),
        (StateAdded, "nsim1"),
        (StateAdded, "nsim1"),
    ]
    assert events[0] == BondFailover("bond0", "nsim0", "nsim1", 2, 0, 0)
    assert bond.member_of(out.handle)[0] is nsim1.device
    ping(bond, out.handle, host, 4)
    assert (tx_count(nsim0), tx_count(nsim1)) == ("SA count=0 tx=3", "SA count=2 tx=3")
    # ip x s flush: both ports empty
    for h in (out.handle, inb.handle):
        bond.state_delete(h)
        bond.state_free(h)
    assert (tx_count(nsim0), tx_count(nsim1)) == ("SA count=0 tx=3", "SA count=0 tx=3")


def test_no_active_member_is_enodev_and_the_first_member_up_takes_everything() -> None:
    nsim0, nsim1 = path("nsim0", 10), path("nsim1", 11)
    bond = Bond("bond0", 12, [nsim0, nsim1])
    handle = bond.state_add(selftest_sa(), 0, 0.0).handle
    bond.set_member_link("nsim0", False, 1.0)
    bond.set_member_link("nsim1", False, 1.0)
    assert bond.active is None
    assert bond.member_of(handle) == (None, 0)
    assert bond.offload_ok(handle, udp4("192.168.123.3", "192.168.123.2", b"x")) == (
        False,
        "no real device",
    )
    with pytest.raises(LocalError) as info:
        bond.state_add(replace(selftest_sa(), spi=10), 0, 1.0)
    assert (info.value.errno, info.value.field) == (errno.ENODEV, "offload.dev")
    bond.pop_events()
    bond.set_member_link("nsim1", True, 2.0)
    assert failovers(bond) == [BondFailover("bond0", None, "nsim1", 1, 0, 0)]
    assert tx_count(nsim1) == "SA count=1 tx=0"
    # nsim0 coming back does not take over (no primary: no failback)
    bond.set_member_link("nsim0", True, 3.0)
    assert bond.active is nsim1.device and failovers(bond) == []


def test_bond_link_down_flushes_what_is_offloaded_to_it() -> None:
    nsim0 = path("nsim0", 10)
    bond = Bond("bond0", 12, [nsim0])
    handle = bond.state_add(selftest_sa(), 0, 0.0).handle
    assert [h for h, _, _ in bond.bonded()] == [handle] and bond.state_count == 1
    entry = bond.get_state(handle)
    assert bond.handle_of(nsim0.device, entry.handle) == handle
    assert bond.set_link(False, 1.0) == (1, 0)
    assert (bond.state_count, nsim0.device.state_count) == (0, 0)
    assert bond.set_link(False, 1.0) == (0, 0)


def test_a_member_without_offload_is_einval() -> None:
    bond = Bond("bond0", 12, [path("veth0", 10, "nooffload"), path("nsim0", 11)])
    with pytest.raises(InvalidArgument) as info:
        bond.state_add(selftest_sa(), 0, 0.0)
    assert (info.value.message, info.value.errno) == (
        "Slave does not support ipsec offload",
        errno.EINVAL,
    )


@pytest.mark.parametrize("mode", [m for m in BondMode if m != BondMode.ACTIVE_BACKUP])
def test_only_active_backup_offloads(mode: BondMode) -> None:
    bond = Bond("bond0", 12, [path("nsim0", 10), path("nsim1", 11)], mode)
    declined = bond.state_add(selftest_sa(), 0, 0.0)
    assert not declined.offloaded and "NETIF_F_HW_ESP" in declined.reason
    with pytest.raises(InvalidArgument):
        bond.state_add(selftest_sa(), XFRM_OFFLOAD_PACKET, 0.0)
    ab = Bond("bond1", 13, [path("nsim2", 14)])
    handle = ab.state_add(selftest_sa(), 0, 0.0).handle
    packet = udp4("192.168.123.3", "192.168.123.2", b"x")
    assert ab.offload_ok(handle, packet) == (True, "")
    ab.mode = mode
    assert ab.offload_ok(handle, packet)[0] is False


def packet_bond(second: str = "full") -> tuple[Bond, DevicePath, DevicePath, DevicePath, int]:
    eth0, eth1 = path("eth0", 2, "full"), path("eth1", 3, second)
    peer = path("peer0", 4, "full")
    bond = Bond("bond0", 5, [eth0, eth1])
    handle = bond.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 0.0).handle
    bond.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET, 0.0
    )
    peer.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND, 0.0)
    peer.device.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    return bond, eth0, eth1, peer, handle


INNER = [udp4("198.51.100.7", "203.0.113.9", bytes([i]) * 30) for i in range(3)]


def test_packet_offload_sequence_numbers_continue_on_the_new_member() -> None:
    bond, eth0, eth1, peer, handle = packet_bond()
    first = [o[1] for o in bond.tx(INNER, 1.0).outcomes()]
    bond.set_member_link("eth0", False, 2.0)
    assert failovers(bond) == [BondFailover("bond0", "eth0", "eth1", 1, 1, 0)]
    second = [o[1] for o in bond.tx(INNER, 3.0).outcomes()]
    wire = [w for w in first + second if isinstance(w, bytes)]
    assert [int.from_bytes(w[24:28], "big") for w in wire] == [1, 2, 3, 4, 5, 6]
    got = peer.rx(wire, 4.0).outcomes()
    assert [o[1] for o in got] == INNER * 2  # one SA on the peer: no replay, same keys and salt
    assert bond.member_of(handle)[0] is eth1.device and eth0.device.state_count == 0
    assert bond.get_state(handle).sa.curlft.packets == 3  # counted on eth1 from here
    policies = [e for _, _, e in bond.bonded() if isinstance(e, OffloadedPolicy)]
    assert [p.lifetime.add_time for p in policies] == [0.0]  # as first added, not 2.0


def test_a_new_member_that_refuses_leaves_the_state_without_a_device() -> None:
    bond, _, nsim, _, handle = packet_bond(second="netdevsim")  # no packet offload there
    bond.set_member_link("eth0", False, 2.0)
    assert failovers(bond) == [BondFailover("bond0", "eth0", "eth1", 0, 0, 2)]
    assert bond.member_of(handle) == (None, 0)
    out = bond.tx([b""], 3.0, [handle], [1]).outcomes()
    assert out[0][:2] == (Verdict.DROP, XfrmStat.OUT_NO_STATES)
    assert nsim.device.stats.as_dict()["XfrmOutNoStates"] == 1


def test_a_policy_its_member_expired_is_gone_from_the_bond_too() -> None:
    eth0, eth1 = path("eth0", 2, "full"), path("eth1", 3, "full")
    bond = Bond("bond0", 5, [eth0, eth1])
    timed = Policy(
        sel=SEL,
        dir=Direction.OUT,
        templates=(tmpl(),),
        lifetime=LifetimeConfig(hard_add_expires_seconds=5),
    )
    handle = bond.policy_add(timed, XFRM_OFFLOAD_PACKET, 0.0).handle
    eth0.device.poll(5.0)  # the member's timer deletes and frees it
    assert bond.policy_count == 0
    bond.set_member_link("eth0", False, 6.0)
    assert failovers(bond) == [BondFailover("bond0", "eth0", "eth1", 0, 0, 0)]
    assert (bond.policy_count, eth1.device.policy_count) == (0, 0)
    with pytest.raises(NotFound):
        bond.policy_delete(handle)


def test_the_replay_window_moves_with_the_state() -> None:
    """Inbound: packets 1-3 through eth0, failover, then 2 again is a replay on eth1 and 4
    passes (the window travels whole, not only its top)."""
    sender = path("peer0", 4, "full")
    sender.device.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 0.0)
    sender.device.policy_add(
        Policy(sel=SEL, dir=Direction.OUT, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET
    )
    sent = [o[1] for o in sender.tx(INNER * 2, 0.0).outcomes()]
    wire = [w for w in sent if isinstance(w, bytes)]
    assert len(wire) == 6
    eth0, eth1 = path("eth0", 2, "full"), path("eth1", 3, "full")
    bond = Bond("bond0", 5, [eth0, eth1])
    bond.state_add(sa(0x100), XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND, 0.0)
    bond.policy_add(
        Policy(sel=SEL, dir=Direction.IN, templates=(tmpl(),)), XFRM_OFFLOAD_PACKET, 0.0
    )
    assert [o[0] for o in bond.rx([wire[0], wire[2]], 1.0).outcomes()] == [Verdict.PASS] * 2  # 1, 3
    bond.set_member_link("eth0", False, 2.0)
    got = bond.rx([wire[2], wire[1], wire[3]], 3.0).outcomes()  # 3 again, 2 (unseen), 4
    assert [o[1] if o[0] is Verdict.DROP else o[0] for o in got] == [
        XfrmStat.IN_STATE_SEQ_ERROR,
        Verdict.PASS,
        Verdict.PASS,
    ]

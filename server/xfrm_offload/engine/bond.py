"""A bond over member devices, as drivers/net/bonding/bond_main.c offloads IPsec.

The bond has no tables of its own: a state (or policy) added on the bond is added on
the current active member (``bond_ipsec_add_sa``) and the bond remembers it (its
``ipsec_list``). When the active member goes down, the member flushes everything, as
NETDEV_DOWN does; the bond picks the next member that is up (``bond_find_best_slave``:
the first in enslave order) and adds every remembered state and policy again there
(``bond_ipsec_add_sa_all``), with the sequence numbers reached so far, so the traffic
and the member's TX counter continue on the new member. A state the new member
refuses stays on the bond without a device (``xso.real_dev = NULL``: "failed to add
SA") and passes nothing until the keymanager replaces it.

The kernel's answers, restated:

* the active member changes only when it goes down (or there is none): without a
  primary, a member coming back does not take over;
* no active member: -ENODEV;
* an active member without IPsec offload: -EINVAL "Slave does not support ipsec
  offload";
* only an active-backup bond has NETIF_F_HW_ESP (BOND_XFRM_FEATURES): any other mode
  declines crypto offload (software IPsec) and refuses packet offload, like a device
  without the feature;
* ``offload_ok`` is False unless active-backup, or when the state has no device.

Handles are the bond's own ((ifindex << 32) | n) and stay valid across failovers;
``member_of`` says where one lives now. Policies follow the same rules (mainline
bond_xfrmdev_ops has no policy callbacks yet; a packet-offload policy on a bond is
re-added like its states, keeping its add time). A re-added state starts its
lifetime counters afresh on the new member. Events: the members' own (StateAdded/
Deleted on the member names) and ``BondFailover`` for each change of active member,
with what moved.
"""

from __future__ import annotations

import enum
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from .datapath import DevicePath, Results, Verdict
from .device import (
    Device,
    OffloadedPolicy,
    OffloadedState,
    PolicyAddResult,
    ReplayStateEsn,
    StateAddResult,
    StateCounters,
)
from .errors import InvalidArgument, LocalError, NotFound, WrongState
from .events import (
    Event,
    LinkChanged,
)
from .offload_rules import (
    XFRM_OFFLOAD_PACKET,
)
from .spd import Policy
from .stats import XfrmStat, XfrmStats
from .types import Direction, OffloadType, ReplayState, SAConfig


class BondMode(enum.StrEnum):
    """The bonding modes (``mode`` of ip link add type bond)."""

    BALANCE_RR = "balance-rr"
    ACTIVE_BACKUP = "active-backup"
    BALANCE_XOR = "balance-xor"
    BROADCAST = "broadcast"
    LACP = "802.3ad"
    BALANCE_TLB = "balance-tlb"
    BALANCE_ALB = "balance-alb"


@dataclass(frozen=True, slots=True)
class BondFailover(Event):
    """NETDEV_BONDING_FAILOVER: the active member changed, and what was added again."""

    bond: str
    old: str | None
    new: str | None
    #: States and policies added again on ``new``.
    states: int
    policies: int
    #: States and policies ``new`` refused (they stay on the bond without a device).
    failed: int


class _Bonded:
    """A state or policy of the bond: what to add again, and where it lives now."""

    __slots__ = (
        "active",
        "add_time",
        "config",
        "flags",
        "iv_salt",
        "member",
        "member_handle",
        "policy",
        "window",
    )

    def __init__(
        self,
        flags: int,
        *,
        config: SAConfig | None = None,
        policy: Policy | None = None,
        iv_salt: bytes | None = None,
    ) -> None:
        self.flags = flags
        self.config = config
        self.policy = policy
        self.iv_salt = iv_salt
        self.member: Device | None = None
        self.member_handle = 0
        self.active = True
        #: A policy's add time: its lifetime counts from the first add, not a re-add.
        self.add_time = 0.0
        #: The inbound replay window (top, bitmap) reached on the last member.
        self.window: tuple[int, int] | None = None


class Bond:
    """A bond device over member devices with their packet paths."""

    def __init__(
        self,
        name: str,
        ifindex: int,
        members: Sequence[DevicePath],
        mode: BondMode = BondMode.ACTIVE_BACKUP,
    ) -> None:
        if not members:
            raise InvalidArgument("a bond needs at least one member", field="members")
        self.name = name
        self.ifindex = ifindex
        self.mode = mode
        self.paths = {p.device.name: p for p in members}
        self._order = [p.device.name for p in members]
        self.active: Device | None = self._best()
        self._objects: dict[int, _Bonded] = {}
        self._next = 1
        self._events: list[Event] = []
        #: The bond's own link (ip link set bond0 down flushes what is offloaded to it).
        self.up = True
        #: The bond counts nothing itself: its members do (kept for GetStats' shape).
        self.stats = XfrmStats()

    # -- members -----------------------------------------------------------------------

    def _best(self) -> Device | None:
        """bond_find_best_slave without a primary: the first member whose link is up."""
        for name in self._order:
            device = self.paths[name].device
            if device.up:
                return device
        return None

    def set_member_link(self, member: str, up: bool, now: float) -> tuple[int, int]:
        """A member's link goes up or down; a change of active member is a failover.
        Returns what the member's own flush deleted (states, policies)."""
        path = self.paths.get(member)
        if path is None:
            raise NotFound(f"{member} is not a member of {self.name}", field="dev")
        device = path.device
        self._prune()  # never add an expired policy again
        if not up and device is self.active:
            self._remember_sequence_numbers(device)
        flushed = device.set_link(up, now)
        for obj in self._objects.values():
            if obj.member is device and not up:
                obj.member, obj.member_handle = None, 0  # flushed with the link
        # bond_select_active_slave runs when the active member is gone (or there is
        # none): a member coming back does not take over from a working one.
        if self.active is not None and self.active.up:
            return flushed
        best = self._best()
        if best is not self.active:
            old, self.active = self.active, best
            self._add_all(old, now)
        return flushed

    def _remember_sequence_numbers(self, device: Device) -> None:
        """Before the member flushes: the counters the re-added states continue from."""
        for obj in self._objects.values():
            if obj.member is not device or obj.config is None or not obj.active:
                continue
            sa = device.get_state(obj.member_handle).sa
            if sa.replay.size:
                obj.window = sa.replay.run_state()
            obj.config = replace(
                obj.config,
                replay=ReplayState(
                    seq=sa.replay.seq,
                    seq_hi=sa.replay.seq_hi,
                    oseq=sa.oseq.oseq,
                    oseq_hi=sa.oseq.oseq_hi,
                ),
            )

    def _add_all(self, old: Device | None, now: float) -> None:
        """bond_ipsec_add_sa_all: every remembered object on the new active member."""
        new = self.active
        states = policies = failed = 0
        if new is not None:
            for obj in self._objects.values():
                if not obj.active or obj.member is not None:
                    continue
                try:
                    self._add_on(new, obj, now)
                except LocalError:
                    failed += 1  # "failed to add SA": no device until replaced
                    continue
                if obj.config is not None:
                    states += 1
                else:
                    policies += 1
        self._events.append(
            BondFailover(
                self.name,
                None if old is None else old.name,
                None if new is None else new.name,
                states,
                policies,
                failed,
            )
        )

    def _add_on(self, device: Device, obj: _Bonded, now: float) -> None:
        if obj.config is not None:
            result = device.state_add(obj.config, obj.flags, now, iv_salt=obj.iv_salt)
            if not result.offloaded:
                raise WrongState(result.reason)
            obj.member_handle = result.handle
            if obj.window is not None:
                # The whole window, not just its top: a packet seen before the failover
                # is still a replay after it.
                device.get_state(result.handle).sa.replay.set_run_state(*obj.window)
        else:
            assert obj.policy is not None
            obj.member_handle = device.policy_add(obj.policy, obj.flags, obj.add_time).handle
        obj.member = device

    def _active_member(self) -> Device:
        """The member a new object goes to, with the kernel's refusals."""
        if self.active is None:
            raise LocalError(
                f"{self.name} has no active slave", field="offload.dev", errno=errno.ENODEV
            )
        if not self.active.profile.has_offload:
            raise InvalidArgument("Slave does not support ipsec offload", field="offload.dev")
        return self.active

    # -- states ------------------------------------------------------------------------

    def _handle(self) -> int:
        handle = (self.ifindex << 32) | self._next
        self._next += 1
        return handle

    def state_add(
        self, config: SAConfig, flags: int, now: float, *, iv_salt: bytes | None = None
    ) -> StateAddResult:
        packet = bool(flags & XFRM_OFFLOAD_PACKET)
        if self.mode != BondMode.ACTIVE_BACKUP:
            reason = f"{self.name} has no IPsec offload (NETIF_F_HW_ESP): mode {self.mode}"
            if packet:
                raise InvalidArgument(reason, field="offload.dev")
            otype = OffloadType.CRYPTO
            odir = Direction.IN if flags & 2 else Direction.OUT
            return StateAddResult(offloaded=False, handle=0, type=otype, dir=odir, reason=reason)
        member = self._active_member()
        # One salt for the state's life, so the IVs of a re-added state never repeat.
        obj = _Bonded(flags, config=config, iv_salt=iv_salt or os.urandom(16))
        result = member.state_add(config, flags, now, iv_salt=obj.iv_salt)
        if not result.offloaded:
            return result
        obj.member, obj.member_handle = member, result.handle
        handle = self._handle()
        self._objects[handle] = obj
        return replace(result, handle=handle)

    def _gone(self, obj: _Bonded) -> bool:
        """A policy its member deleted and freed itself (a hard time limit: the kernel
        deletes an expired policy, and the bond's reference with it)."""
        if obj.config is not None or obj.member is None:
            return False
        try:
            obj.member.get_policy(obj.member_handle)
        except NotFound:
            return True
        return False

    def _prune(self) -> None:
        for handle in [h for h, o in self._objects.items() if self._gone(o)]:
            del self._objects[handle]

    def _get(self, handle: int) -> _Bonded:
        obj = self._objects.get(handle)
        if obj is not None and self._gone(obj):
            del self._objects[handle]
            obj = None
        if obj is None:
            raise NotFound(
                f"no object with offload_handle {handle:#x} on {self.name}",
                field="ref.offload_handle",
            )
        return obj

    def member_of(self, handle: int) -> tuple[Device | None, int]:
        """Where the bond's object ``handle`` lives now: (member, its handle there)."""
        obj = self._get(handle)
        return obj.member, obj.member_handle

    def get_state(self, handle: int) -> OffloadedState:
        obj = self._get(handle)
        if obj.member is None:
            raise NotFound(f"state {handle:#x} of {self.name} has no device", field="dev")
        return obj.member.get_state(obj.member_handle)

    def state_delete(self, handle: int) -> None:
        """bond_ipsec_del_sa: on the member it lives on (if any); the bond forgets it."""
        obj = self._get(handle)
        if not obj.active:
            raise WrongState(f"{handle:#x} on {self.name} is already deleted")
        if obj.member is not None:
            if obj.config is not None:
                obj.member.state_delete(obj.member_handle)
            else:
                obj.member.policy_delete(obj.member_handle)
        obj.active = False

    def state_free(self, handle: int) -> None:
        obj = self._get(handle)
        if obj.active:
            raise WrongState(f"{handle:#x} on {self.name} must be deleted before it is freed")
        if obj.member is not None:
            if obj.config is not None:
                obj.member.state_free(obj.member_handle)
            else:
                obj.member.policy_free(obj.member_handle)
        del self._objects[handle]

    policy_delete = state_delete
    policy_free = state_free

    def bonded(self) -> Iterator[tuple[int, Device, OffloadedState | OffloadedPolicy]]:
        """(bond handle, member, the member's entry) of every object that has a device."""
        self._prune()
        for handle, obj in sorted(self._objects.items()):
            if obj.member is None:
                continue
            if obj.config is not None:
                yield handle, obj.member, obj.member.get_state(obj.member_handle)
            else:
                yield handle, obj.member, obj.member.get_policy(obj.member_handle)

    def handle_of(self, member: Device, member_handle: int) -> int:
        """The bond's handle of what lives on ``member`` as ``member_handle``; 0 if none."""
        for handle, obj in self._objects.items():
            if obj.member is member and obj.member_handle == member_handle:
                return handle
        return 0

    @property
    def state_count(self) -> int:
        return sum(1 for o in self._objects.values() if o.config is not None)

    @property
    def policy_count(self) -> int:
        self._prune()
        return sum(1 for o in self._objects.values() if o.config is None)

    def advance_esn(self, handle: int, seq_hi: int, seq: int) -> ReplayStateEsn:
        obj = self._get(handle)
        if obj.member is None:
            raise NotFound(f"state {handle:#x} of {self.name} has no device", field="dev")
        return obj.member.advance_esn(obj.member_handle, seq_hi, seq)

    def set_link(self, up: bool, now: float) -> tuple[int, int]:
        """The bond's own link. Down deletes and frees everything offloaded to the bond
        (xfrm_dev_down on the bond's NETDEV_DOWN); returns (states, policies)."""
        if up == self.up:
            return 0, 0
        self.up = up
        self._events.append(LinkChanged(self.name, up))
        if up:
            return 0, 0
        states = policies = 0
        for handle, obj in list(self._objects.items()):
            if obj.active:
                self.state_delete(handle)
                if obj.config is not None:
                    states += 1
                else:
                    policies += 1
            self.state_free(handle)
        return states, policies

    def poll(self, now: float) -> None:
        """Nothing of its own to expire: the members poll their states."""

    def get_timer(self) -> float | None:
        """The earliest deadline of the members (the states and policies added on the
        bond live there, and calls on the bond change them)."""
        deadlines = [
            d for d in (p.device.get_timer() for p in self.paths.values()) if d is not None
        ]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> None:
        """Fire the members' time limits reached at ``now``; ``pop_events`` hands on theirs."""
        for name in self._order:
            self.paths[name].device.handle_timer(now)

    def update_curlft(self, handle: int) -> StateCounters:
        obj = self._get(handle)
        if obj.member is None:
            raise NotFound(f"state {handle:#x} of {self.name} has no device", field="dev")
        return obj.member.update_curlft(obj.member_handle)

    def offload_ok(self, handle: int, packet: bytes) -> tuple[bool, str]:
        """bond_ipsec_offload_ok."""
        obj = self._get(handle)
        if self.mode != BondMode.ACTIVE_BACKUP:
            return False, f"bond mode {self.mode} (only active-backup offloads)"
        if obj.member is None:
            return False, "no real device"
        return obj.member.offload_ok(obj.member_handle, packet)

    # -- policies ----------------------------------------------------------------------

    def policy_add(self, policy: Policy, flags: int, now: float) -> PolicyAddResult:
        if self.mode != BondMode.ACTIVE_BACKUP:
            raise InvalidArgument("Policy offload is not supported", field="offload.dev")
        member = self._active_member()
        obj = _Bonded(flags, policy=policy)
        obj.add_time = now
        result = member.policy_add(policy, flags, now)
        # Added again after a failover, it keeps its index.
        obj.policy = replace(policy, index=result.index)
        obj.member, obj.member_handle = member, result.handle
        handle = self._handle()
        self._objects[handle] = obj
        return replace(result, handle=handle)

    # -- packets -----------------------------------------------------------------------

    def tx(
        self,
        packets: Sequence[bytes],
        now: float,
        handles: Sequence[int] = (),
        seqs: Sequence[int] = (),
    ) -> Results:
        """Host -> wire through the active member; crypto-offload handles are the bond's
        (``handles`` and ``seqs`` as DevicePath.tx takes them).

        A handle whose state has no device on the active member is dropped as
        XfrmOutNoStates (counted on the active member), as a device drops an unknown one.
        """
        active = self.active
        if active is None:
            return _all_dropped(len(packets), XfrmStat.OUT_ERROR)
        path = self.paths[active.name]
        if not any(handles):
            return path.tx(packets, now)  # packet offload only: no handle to translate
        out = Results(len(packets))
        forward: list[int] = []
        member_handles: list[int] = []
        back: dict[int, int] = {}
        for i, handle in enumerate(handles):
            if handle:
                obj = self._objects.get(handle)
                if obj is None or obj.member is not active:
                    active.stats.inc(XfrmStat.OUT_NO_STATES)
                    out.put(i, (Verdict.DROP, XfrmStat.OUT_NO_STATES, handle, 0))
                    continue
                back[obj.member_handle] = handle
                handle = obj.member_handle
            forward.append(i)
            member_handles.append(handle)
        sent = path.tx(
            [packets[i] for i in forward],
            now,
            member_handles,
            [seqs[i] for i in forward] if seqs else (),
        )
        for i, (v, d, h, c) in zip(forward, sent.outcomes(), strict=True):
            out.put(i, (v, d, back.get(h, h), c))
        return out

    def rx(self, packets: Sequence[bytes], now: float) -> Results:
        """Wire -> host through the active member; handles in the results are the bond's."""
        active = self.active
        if active is None or not self.up:
            return _all_dropped(len(packets), XfrmStat.IN_ERROR)
        out = self.paths[active.name].rx(packets, now)
        bond_handle: dict[int, int] = {0: 0}
        for i, h in enumerate(out.handle):
            mapped = bond_handle.get(h)
            if mapped is None:
                mapped = bond_handle[h] = self.handle_of(active, h)
            out.handle[i] = mapped
        return out

    def pop_events(self) -> list[Event]:
        """The bond's events, then what its members raised during the bond's calls."""
        events = self._events
        self._events = []
        for name in self._order:
            events.extend(self.paths[name].device.pop_events())
        return events


def _all_dropped(n: int, reason: XfrmStat) -> Results:
    """A batch of ``n`` packets all dropped for ``reason``, counted nowhere (no device)."""
    out = Results(n)
    for i in range(n):
        out.put(i, (Verdict.DROP, reason, 0, 0))
    return out

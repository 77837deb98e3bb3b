"""One emulated NIC: the xfrmdev_ops callbacks with the kernel core's checks.

``Device`` is what a driver plus its hardware are to the kernel: it takes states and
policies (``state_add``/``policy_add``), stops using them (``*_delete``), forgets them
(``*_free``), answers per-packet questions (``offload_ok``), takes the host's ESN
moves (``advance_esn``) and reports counters (``update_curlft``). Link down flushes
everything, as NETDEV_DOWN does.

Order of the checks in ``state_add`` (net/xfrm/xfrm_state.c then xfrm_device.c, see
research/kernel-anchors.md §2.1):

0. the generic SA checks every state gets, offloaded or not (xfrm_init_state: building
   the ``SecurityAssociation`` validates algorithms, keys, replay settings);
1. unknown bits in the offload flags;
2. the SA's ``dir`` against the INBOUND flag;
3. ``if_id`` on an inbound offload;
4. ``tfcpad`` (TFC padding is never offloaded);
5. a device without NETIF_F_HW_ESP: crypto offload quietly stays in software
   (answer "not offloaded"), packet offload is -EINVAL;
6. crypto offload + ESN on a device without ``advance_esn``;
7. the driver's own rules: the device ``Profile``, checked by ``offload_rules``.

A driver's -EOPNOTSUPP in crypto offload is an *answer*: ``StateAddResult.offloaded``
is False, nothing is stored and the host keeps the state in software. In packet offload
every refusal is an error.

Errors name the field at fault by the engine's own names (``SAConfig``'s
``aead.icv_bits``, ``lifetime.soft_packet_limit``, ``sa_dir``; ``offload.flags`` and
``offload.dev`` for the offload request): the server spells them the request's way
(``status.sa_field``).

Events (``pop_events``, classes in ``events``): ``StateAdded``, ``StateDeleted``,
``PolicyAdded``, ``PolicyDeleted``, ``PolicyExpired``, ``NewMapping``, ``LinkChanged``
and ``StateEvent`` (an SA's own Expired / SeqOverflow / EsnAdvanced, tagged with the
device and handle). SA events are gathered by ``poll`` and by
``collect_state_events`` (the packet path calls it for the states a batch touched).

Policy lifetimes follow xfrm_policy.c (see ``spd.PolicyLifetime``): the packet path
reports each use (``policy_used``), ``poll`` runs the policy timers that are due, and
``next_policy_deadline`` says when the next one is (for a timer that wakes the device
only when something can fire).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, replace

from . import offload_rules
from .errors import (
    InvalidArgument,
    NotFound,
    NotSupported,
    WrongState,
)
from .events import (
    DeleteReason,
    Event,
    Expired,
    LinkChanged,
    NewMapping,
    PolicyAdded,
    PolicyDeleted,
    PolicyExpired,
    SAId,
    StateAdded,
    StateDeleted,
    StateEvent,
)
from .lifetime import Lifetime
from .offload_rules import XFRM_OFFLOAD_INBOUND, XFRM_OFFLOAD_PACKET
from .profiles import NETDEVSIM_HANDLE_VALID, Profile
from .sa import CurLifetime, SecurityAssociation
from .sad import SADatabase
from .selector import check_selector
from .spd import (
    Policy,
    PolicyLifetime,
    PolicyTimerResult,
    SPDatabase,
    Template,
    check_templates,
)
from .stats import XfrmStat, XfrmStats
from .timers import TimerQueue
from .types import (
    Direction,
    Family,
    IPAddress,
    Mode,
    OffloadRequest,
    OffloadType,
    SAConfig,
)


class Lifecycle(enum.Enum):
    """An offloaded object: in use, or deleted and waiting for free."""

    ACTIVE = "active"
    DELETED = "deleted"


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateAddResult:
    """What state_add answers. ``offloaded`` False: use software IPsec (``reason``)."""

    offloaded: bool
    handle: int
    type: OffloadType
    dir: Direction
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReplayStateEsn:
    """xfrm_replay_state_esn as the device sees it."""

    bmp_len: int
    oseq: int
    seq: int
    oseq_hi: int
    seq_hi: int
    replay_window: int
    bmp: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class StateCounters:
    """update_curlft's answer: current lifetime, x->stats, replay state, drops."""

    curlft: CurLifetime
    #: x->stats: replay_window, replay, integrity_failed.
    replay_window: int
    replay: int
    integrity_failed: int
    replay_state: ReplayStateEsn
    #: Packets this state dropped, by xfrm_stat counter (non-zero only).
    drops: dict[XfrmStat, int]
    #: A hard limit fired: the state passes no traffic.
    expired: bool


class OffloadedState:
    """One state in the device's table."""

    __slots__ = (
        "config",
        "dir",
        "handle",
        "lifecycle",
        "mapping_sport",
        "mapping_time",
        "sa",
        "slot",
        "type",
    )

    def __init__(
        self,
        handle: int,
        config: SAConfig,
        sa: SecurityAssociation,
        type: OffloadType,
        dir: Direction,
        slot: int,
    ) -> None:
        self.handle = handle
        #: The configuration as the keymanager gave it.
        self.config = config
        self.sa = sa
        self.type = type
        self.dir = dir
        self.lifecycle = Lifecycle.ACTIVE
        #: netdevsim table slot, -1 when the profile has no slots.
        self.slot = slot
        #: The mapping rate limit (x->new_mapping_sport, x->new_mapping): the source
        #: port and whole second of the last MAPPING event sent.
        self.mapping_sport = 0
        self.mapping_time = 0

    @property
    def sa_id(self) -> SAId:
        return self.sa.sa_id

    @property
    def active(self) -> bool:
        return self.lifecycle is Lifecycle.ACTIVE

    def state_mtu(self, mtu: int) -> int:
        """The largest cleartext packet that fits ``mtu`` once ESP is added (xfrm_state_mtu)."""
        return self.sa.state_mtu(mtu)

    def __repr__(self) -> str:
        return (
            f"OffloadedState(handle={self.handle:#x}, spi={self.config.spi:#010x}, "
            f"type={self.type.name}, dir={self.dir.name}, {self.lifecycle.value})"
        )


class OffloadedPolicy:
    """One policy in the device's table."""

    __slots__ = ("handle", "lifecycle", "lifetime", "policy")

    def __init__(self, handle: int, policy: Policy, now: float) -> None:
        self.handle = handle
        #: As stored: index allocated, ``offload`` filled in.
        self.policy = policy
        self.lifecycle = Lifecycle.ACTIVE
        #: Current lifetime (add/use time) and the policy timer.
        self.lifetime = PolicyLifetime(policy.lifetime, now)

    @property
    def index(self) -> int:
        return self.policy.index

    @property
    def dir(self) -> Direction:
        return self.policy.dir

    @property
    def active(self) -> bool:
        return self.lifecycle is Lifecycle.ACTIVE

    def __repr__(self) -> str:
        return (
            f"OffloadedPolicy(handle={self.handle:#x}, index={self.index}, "
            f"dir={self.dir.name}, {self.lifecycle.value})"
        )


@dataclass(frozen=True, slots=True)
class PolicyAddResult:
    """What policy_add answers: the handle and the (possibly allocated) index."""

    handle: int
    index: int


def _usable_for_packet_policy(entry: OffloadedState) -> bool:
    return entry.type == OffloadType.PACKET and not entry.sa.lifetime.hard_expired


def _declined(reason: str, type: OffloadType, dir: Direction) -> StateAddResult:
    return StateAddResult(offloaded=False, handle=0, type=type, dir=dir, reason=reason)


class Device:
    """One NIC: profile, link, state and policy tables, counters and events."""

    def __init__(self, name: str, ifindex: int, profile: Profile, *, mtu: int | None = None):
        if ifindex <= 0:
            raise InvalidArgument("ifindex must be positive", field="ifindex")
        self.name = name
        self.ifindex = ifindex
        self.profile = profile
        self.mtu = profile.mtu if mtu is None else mtu
        self.up = True
        #: This device's /proc/net/xfrm_stat counters (its SAs count drops here).
        self.stats = XfrmStats()
        self._events: list[Event] = []
        self._states: dict[int, OffloadedState] = {}
        #: The states with a time limit, the only ones ``poll`` has to visit.
        self._timed: dict[int, OffloadedState] = {}
        #: Their deadlines, earliest first (``get_timer``).
        self._timers = TimerQueue()
        #: Active states: by (daddr, spi, proto) for inbound, by template for outbound.
        self.sad: SADatabase[OffloadedState] = SADatabase()
        #: Active policies.
        self.spd = SPDatabase()
        self._policies: dict[int, OffloadedPolicy] = {}
        #: Active policies by index (the packet path reports use by index).
        self._policy_by_index: dict[int, OffloadedPolicy] = {}
        #: Active policies with a time limit: the only ones the policy timer visits.
        self._timed_policies: dict[int, OffloadedPolicy] = {}
        #: netdevsim slots in use.
        self._slots: set[int] = set()
        #: Next handle counter (never reused); handles are (ifindex << 32) | counter.
        self._next_handle = 1
        #: Packets sent through offloaded states (netdevsim's ``ipsec->tx``); the
        #: packet path counts them.
        self.offload_tx_packets = 0
        #: Bumped by every change to the state/policy tables or the link: caches of
        #: lookups (the packet path's flow cache) are valid while it stays the same.
        self.generation = 0

    # -- description -------------------------------------------------------------------

    @property
    def features(self) -> tuple[str, ...]:
        return self.profile.features

    @property
    def state_count(self) -> int:
        """States in the table (active or deleted and not yet freed)."""
        return len(self._states)

    def __repr__(self) -> str:
        return (
            f"Device({self.name!r}, ifindex={self.ifindex}, profile={self.profile.name!r}, "
            f"up={self.up}, states={len(self._states)})"
        )

    # -- handles -----------------------------------------------------------------------

    def _peek_handle(self) -> int:
        """The next counter handle; ``_next_handle`` moves on only once it is used."""
        return (self.ifindex << 32) | self._next_handle

    def _free_slot(self) -> int:
        """netdevsim's nsim_ipsec_find_empty_idx: the lowest unused slot."""
        for slot in range(self.profile.max_states):
            if slot not in self._slots:
                return slot
        raise AssertionError("no free slot")  # the table-full check comes first

    # -- xdo_dev_state_add -------------------------------------------------------------

    def state_add(
        self,
        config: SAConfig,
        offload_flags: int,
        now: float,
        *,
        iv_salt: bytes | None = None,
    ) -> StateAddResult:
        """Offload a state. Raises LocalError subclasses; a crypto decline is an answer."""
        packet = bool(offload_flags & XFRM_OFFLOAD_PACKET)
        otype = OffloadType.PACKET if packet else OffloadType.CRYPTO
        odir = Direction.IN if offload_flags & XFRM_OFFLOAD_INBOUND else Direction.OUT
        # 0. What every state gets (verify_newsa_info, xfrm_init_state). Engine-level
        # NotSupported (what this emulator cannot do at all) is treated as the device's
        # -EOPNOTSUPP.
        offload_rules.mapping_checks(config)
        try:
            # The device's MTU is the path MTU its SAs' TFC padding is clamped to.
            sa = SecurityAssociation(config, now, iv_salt=iv_salt, stats=self.stats, mtu=self.mtu)
        except NotSupported as exc:
            if packet:
                raise
            offload_rules.core_state_checks(config, offload_flags, odir)
            return _declined(exc.message, otype, odir)
        offload_rules.core_state_checks(config, offload_flags, odir)
        if not self.profile.has_offload:
            if not packet:
                return _declined(f"{self.name} has no IPsec offload (NETIF_F_HW_ESP)", otype, odir)
            raise InvalidArgument(
                f"{self.name} has no IPsec offload (NETIF_F_HW_ESP)", field="offload.dev"
            )
        if not packet and config.esn and not self.profile.esn:
            raise InvalidArgument("Device doesn't support offload with ESN", field="flags")
        try:
            offload_rules.driver_state_checks(self.profile, config, otype, odir, len(self._states))
        except NotSupported as exc:
            if packet:
                raise
            return _declined(exc.message, otype, odir)
        slot = self._free_slot() if self.profile.netdevsim_handles else -1
        handle = slot | NETDEVSIM_HANDLE_VALID if slot >= 0 else self._peek_handle()
        # The offload as applied lives in the entry (type, dir) and this device; the
        # configuration is kept as given (a dataclass copy per add cost a tenth of it).
        entry = OffloadedState(handle, config, sa, otype, odir, slot)
        # Same (daddr, spi, proto) twice: the kernel's xfrm_state_add -EEXIST.
        self.sad.add(config, entry)
        # Stored from here on: nothing below may fail.
        if slot >= 0:
            self._slots.add(slot)
        else:
            self._next_handle += 1
        self._states[handle] = entry
        lft = config.lifetime
        if (
            lft.soft_add_expires_seconds
            or lft.hard_add_expires_seconds
            or lft.soft_use_expires_seconds
            or lft.hard_use_expires_seconds
        ):
            self._timed[handle] = entry
            self._timers.add(handle, sa.lifetime)
        self.generation += 1
        self._events.append(StateAdded(self.name, handle, sa.sa_id, otype, odir))
        if sa.lifetime.soft_expired:  # a limit of 0 fired at creation: report it now
            self.collect_state_events(entry)
        return StateAddResult(offloaded=True, handle=handle, type=otype, dir=odir)

    # -- xdo_dev_state_delete / free ---------------------------------------------------

    def get_state(self, handle: int) -> OffloadedState:
        """The state with ``handle`` (active or deleted); NotFound otherwise."""
        entry = self._states.get(handle)
        if entry is None:
            raise NotFound(
                f"no state with offload_handle {handle:#x} on {self.name} "
                "(never added, or already freed)",
                field="ref.offload_handle",
            )
        return entry

    def _active_state(self, handle: int) -> OffloadedState:
        entry = self.get_state(handle)
        if not entry.active:
            raise WrongState(
                f"state {handle:#x} on {self.name} is already deleted",
                field="ref.offload_handle",
            )
        return entry

    def state_delete(self, handle: int) -> None:
        """Stop using a state. Its handle stays valid until ``state_free``."""
        self._delete_state(self._active_state(handle), DeleteReason.USER)

    def _delete_state(self, entry: OffloadedState, reason: DeleteReason) -> None:
        self.collect_state_events(entry)
        entry.lifecycle = Lifecycle.DELETED
        c = entry.config
        self.sad.remove(c.daddr, c.spi, c.proto)
        self.generation += 1
        self._events.append(StateDeleted(self.name, entry.handle, entry.sa_id, reason))

    def state_free(self, handle: int) -> None:
        """Release a deleted state: its handle (and netdevsim slot) is gone."""
        entry = self.get_state(handle)
        if entry.active:
            raise WrongState(
                f"state {handle:#x} on {self.name} must be deleted before it is freed",
                field="ref.offload_handle",
            )
        self._free_state(entry)

    def _free_state(self, entry: OffloadedState) -> None:
        del self._states[entry.handle]
        self._timed.pop(entry.handle, None)
        self._timers.discard(entry.handle)
        self._slots.discard(entry.slot)

    # -- xdo_dev_policy_add / delete / free ---------------------------------------------

    def policy_add(self, policy: Policy, offload_flags: int, now: float = 0.0) -> PolicyAddResult:
        """Offload a policy (packet offload only). Every refusal is an error.

        ``now`` is the policy's add time (its lifetime counts from it).
        """
        # verify_newpolicy_info's selector checks and validate_tmpl come before any
        # offload rule.
        check_selector(policy.sel)
        check_templates(policy)
        offload_rules.policy_checks(self.profile, policy, offload_flags)
        applied = replace(
            policy,
            offload=OffloadRequest(dev=self.name, type=OffloadType.PACKET, dir=policy.dir),
        )
        stored = self.spd.add(applied)  # AlreadyExists / index errors name their field
        handle = self._peek_handle()
        self._next_handle += 1
        entry = OffloadedPolicy(handle, stored, now)
        self._policies[handle] = entry
        self._policy_by_index[stored.index] = entry
        if entry.lifetime.timer_at != float("inf"):
            self._timed_policies[handle] = entry
        self.generation += 1
        self._events.append(PolicyAdded(self.name, handle, stored.index, stored.dir))
        return PolicyAddResult(handle=handle, index=stored.index)

    def get_policy(self, handle: int) -> OffloadedPolicy:
        """The policy with ``handle`` (active or deleted); NotFound otherwise."""
        entry = self._policies.get(handle)
        if entry is None:
            raise NotFound(
                f"no policy with offload_handle {handle:#x} on {self.name} "
                "(never added, or already freed)",
                field="ref.offload_handle",
            )
        return entry

    def policy_delete(self, handle: int) -> None:
        """Stop using a policy. Its handle stays valid until ``policy_free``."""
        entry = self.get_policy(handle)
        if not entry.active:
            raise WrongState(
                f"policy {handle:#x} on {self.name} is already deleted",
                field="ref.offload_handle",
            )
        self._delete_policy(entry, DeleteReason.USER)

    def _delete_policy(self, entry: OffloadedPolicy, reason: DeleteReason) -> None:
        entry.lifecycle = Lifecycle.DELETED
        self.spd.delete(entry.index)
        self._policy_by_index.pop(entry.index, None)
        self._timed_policies.pop(entry.handle, None)
        self.generation += 1
        self._events.append(PolicyDeleted(self.name, entry.handle, entry.index, entry.dir, reason))

    def policy_free(self, handle: int) -> None:
        """Release a deleted policy."""
        entry = self.get_policy(handle)
        if entry.active:
            raise WrongState(
                f"policy {handle:#x} on {self.name} must be deleted before it is freed",
                field="ref.offload_handle",
            )
        del self._policies[handle]

    def _flush_policies(self) -> int:
        flushed = 0
        for entry in list(self.policies()):
            if entry.active:
                self._delete_policy(entry, DeleteReason.LINK_DOWN)
                flushed += 1
            del self._policies[entry.handle]
        return flushed

    def policies(self) -> Iterator[OffloadedPolicy]:
        """Every policy in the table, by handle."""
        return iter(sorted(self._policies.values(), key=lambda e: e.handle))

    def policy_used(self, index: int, now: float) -> None:
        """A packet's lookup selected the policy ``index`` at ``now`` (curlft.use_time)."""
        entry = self._policy_by_index.get(index)
        if entry is not None:
            entry.lifetime.used(now)

    def next_policy_deadline(self) -> float | None:
        """When the policy timer must run next (``poll`` at or after it); None: never.

        The earliest ``timer_at`` of the policies with a time limit, like the kernel's
        per-policy timers folded into one deadline.
        """
        if not self._timed_policies:
            return None
        return min(e.lifetime.timer_at for e in self._timed_policies.values())

    def _run_policy_timers(self, now: float) -> None:
        """Every policy timer due at ``now``, run at the times the kernel's would run."""
        for entry in list(self._timed_policies.values()):
            lft = entry.lifetime
            while entry.active and lft.timer_at <= now:
                result = lft.run_timer(lft.timer_at)
                if result is PolicyTimerResult.NOTHING:
                    continue
                hard = result is PolicyTimerResult.HARD
                self._events.append(
                    PolicyExpired(
                        self.name, entry.handle, entry.policy, lft.add_time, lft.use_time, hard
                    )
                )
                if hard:
                    # xfrm_policy_delete: the kernel removes the policy itself, and
                    # frees it from the device (xdo_dev_policy_delete + free).
                    self._delete_policy(entry, DeleteReason.EXPIRED)
                    del self._policies[entry.handle]

    @property
    def policy_count(self) -> int:
        """Policies in the table (active or deleted and not yet freed)."""
        return len(self._policies)

    # -- per-state questions -----------------------------------------------------------

    def offload_ok(self, handle: int, packet: bytes) -> tuple[bool, str]:
        """xfrm_dev_offload_ok + xdo_dev_offload_ok: may this outbound packet use the state?"""
        entry = self.get_state(handle)
        if not entry.active:
            return False, "state deleted"
        if not self.up:
            return False, "link down"
        if entry.dir != Direction.OUT:
            return False, "inbound state"
        if len(packet) < 1:
            return False, "malformed packet"
        version = packet[0] >> 4
        if version == 4 and len(packet) >= 20:
            family = Family.INET
        elif version == 6 and len(packet) >= 40:
            family = Family.INET6
        else:
            return False, "malformed packet"
        if entry.config.mode == Mode.TRANSPORT and family != entry.config.family:
            return False, "family mismatch"
        limit = entry.state_mtu(self.mtu)
        if len(packet) > limit:
            return False, f"exceeds MTU ({len(packet)} > {limit})"
        if family == Family.INET and packet[0] & 0x0F != 5:
            return False, "IPv4 options"
        if family == Family.INET6 and packet[6] in _IPV6_EXT_HEADERS:
            return False, "IPv6 extension headers"
        return True, ""

    def advance_esn(self, handle: int, seq_hi: int, seq: int) -> ReplayStateEsn:
        """xdo_dev_state_advance_esn: the host's inbound ESN replay state moved."""
        entry = self._active_state(handle)
        if entry.type != OffloadType.CRYPTO:
            raise WrongState(
                "advance_esn is for crypto offload: in packet offload the device keeps "
                "the replay window",
                field="ref.offload_handle",
            )
        if not entry.config.esn:
            raise WrongState(f"state {handle:#x} has no ESN", field="ref.offload_handle")
        if entry.dir != Direction.IN:
            raise WrongState(
                f"state {handle:#x} is outbound: advance_esn moves an inbound window",
                field="ref.offload_handle",
            )
        entry.sa.replay.set_seq_hi(seq_hi, seq)
        return self._replay_state(entry)

    def _replay_state(self, entry: OffloadedState) -> ReplayStateEsn:
        sa = entry.sa
        words = sa.replay.bitmap_words()
        return ReplayStateEsn(
            bmp_len=len(words),
            oseq=sa.oseq.oseq,
            seq=sa.replay.seq,
            oseq_hi=sa.oseq.oseq_hi,
            seq_hi=sa.replay.seq_hi,
            replay_window=sa.replay.size,
            bmp=tuple(words),
        )

    def update_curlft(self, handle: int) -> StateCounters:
        """xdo_dev_state_update_stats: the state's current lifetime and counters."""
        entry = self.get_state(handle)
        sa = entry.sa
        return StateCounters(
            curlft=sa.curlft,
            replay_window=sa.replay_window,
            replay=sa.replay_drops,
            integrity_failed=sa.integrity_failed,
            replay_state=self._replay_state(entry),
            drops={k: v for k, v in sa.drops.items() if v},
            expired=sa.lifetime.hard_expired,
        )

    # -- lookups for the packet path and listings -------------------------------------

    def states(self) -> Iterator[OffloadedState]:
        """Every state in the table, by handle."""
        return iter(sorted(self._states.values(), key=lambda e: e.handle))

    def lookup_inbound(self, daddr: IPAddress, spi: int, proto: int) -> OffloadedState | None:
        """The active state for (daddr, spi, proto), in O(1); None if none."""
        return self.sad.get(daddr, spi, proto)

    def lookup_outbound(
        self,
        tmpl: Template,
        daddr: IPAddress,
        saddr: IPAddress | None,
        *,
        mark: int = 0,
        if_id: int = 0,
    ) -> OffloadedState | None:
        """The state a packet-offload policy's template resolves to on this device.

        The binding rule of packet offload: a packet-offload policy only uses
        packet-offload states of its own device (never a crypto-offload one, and never
        another device's: each device has its own table). None -> acquire.
        """
        return self.sad.find_outbound(
            daddr=daddr,
            saddr=saddr,
            reqid=tmpl.reqid,
            proto=tmpl.proto,
            mode=tmpl.mode,
            spi=tmpl.spi,
            mark=mark,
            if_id=if_id,
            usable=_usable_for_packet_policy,
        )

    def netdevsim_debugfs(self, *, include_keys: bool = False) -> str:
        """netdevsim's debugfs ``ipsec`` file for this device (kernel-anchors §3).

        ``SA count=N tx=T`` then three lines per slot in use (the key line only with
        ``include_keys``: key material never leaves unasked). Salt and key words are
        the u32s the driver copied out of the keymat, printed in host (little-endian)
        order, as the real file shows them. Only netdevsim-style profiles have slots.
        """
        slotted = sorted((e for e in self._states.values() if e.slot >= 0), key=lambda e: e.slot)
        lines = [f"SA count={len(slotted)} tx={self.offload_tx_packets}"]
        for e in slotted:
            c = e.config
            i = e.slot
            rx = "r" if e.dir == Direction.IN else "t"
            keymat = c.aead.key if c.aead is not None else b""
            key, salt = keymat[:16].ljust(16, b"\0"), keymat[16:20].ljust(4, b"\0")
            words = [int.from_bytes(key[k : k + 4], "little") for k in range(0, 16, 4)]
            lines.append(f"sa[{i}] {rx}x ipaddr={c.daddr}")
            lines.append(
                f"sa[{i}]    spi=0x{c.spi:08x} proto=0x{c.proto:x} "
                f"salt=0x{int.from_bytes(salt, 'little'):08x} crypt={int(c.aead is not None)}"
            )
            if include_keys:
                lines.append(
                    f"sa[{i}]    key=0x{words[0]:08x} {words[1]:08x} {words[2]:08x} {words[3]:08x}"
                )
        return "\n".join(lines) + "\n"

    # -- link, time, events ------------------------------------------------------------

    def set_link(self, up: bool, now: float) -> tuple[int, int]:
        """Link up/down. Down deletes and frees every state and policy (NETDEV_DOWN).

        Returns (states deleted, policies deleted) by the flush; (0, 0) when the link
        was already in that state.
        """
        if up == self.up:
            return 0, 0
        self.up = up
        self.generation += 1
        self._events.append(LinkChanged(self.name, up))
        if up:
            return 0, 0
        flushed_states = 0
        for entry in list(self.states()):
            if entry.active:
                self._delete_state(entry, DeleteReason.LINK_DOWN)
                flushed_states += 1
            self._free_state(entry)
        flushed_policies = self._flush_policies()
        return flushed_states, flushed_policies

    def poll(self, now: float) -> None:
        """Fire time-based lifetimes of every active state at ``now``.

        Only states with a time limit are visited: a table of 100,000 SAs without
        one costs nothing to poll (the server polls twice a second).
        """
        for entry in list(self._timed.values()):
            if entry.active:
                entry.sa.poll(now)
                self.collect_state_events(entry)
        if self._timed_policies:
            self._run_policy_timers(now)

    def new_mapping(self, entry: OffloadedState, saddr: IPAddress, sport: int, now: float) -> None:
        """An ESP-in-UDP packet verified for ``entry`` came from (saddr, sport).

        esp_input_done2 compares them with the SA's saddr and encap sport; a
        difference calls km_new_mapping, which with a mapping max age (XFRMA_MTIMER_THRESH)
        sends again only for another port, or once the max age (whole seconds) has
        passed since the last one; without it, for every such packet.
        """
        c = entry.config
        encap = c.encap
        if encap is None or (saddr == c.saddr and sport == encap.sport):
            return
        maxage = c.mapping_maxage
        if maxage:
            second = int(now)
            if second - entry.mapping_time <= maxage and entry.mapping_sport == sport:
                return
            entry.mapping_sport = sport
            entry.mapping_time = second
        self._events.append(
            NewMapping(
                self.name, entry.handle, entry.sa_id, c.reqid, c.saddr, encap.sport, saddr, sport
            )
        )

    # The sans-I/O timer interface of aioquic's QuicConnection: the owner asks when the
    # next time limit is due, arms one timer for it, and calls handle_timer at that time
    # (and asks again after every call that can change it: adds, deletes, packets).

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next run (on the clock of the ``now`` arguments), or
        None: no time limit is pending (neither a state's nor the policy timer's)."""
        states = self._timers.next(self._timed_lifetime)
        policies = self.next_policy_deadline()
        if policies is None or (states is not None and states <= policies):
            return states
        return policies

    def handle_timer(self, now: float) -> None:
        """Fire the time limits reached at ``now``; their events queue up."""
        for handle in self._timers.due(now, self._timed_lifetime):
            entry = self._timed[handle]
            entry.sa.poll(now)
            self.collect_state_events(entry)
            self._timers.add(handle, entry.sa.lifetime)
        if self._timed_policies:
            self._run_policy_timers(now)

    def _timed_lifetime(self, handle: int) -> Lifetime | None:
        entry = self._timed.get(handle)
        return entry.sa.lifetime if entry is not None and entry.active else None

    def collect_state_events(self, entry: OffloadedState) -> None:
        """Move an SA's pending events to the device's queue, tagged."""
        for event in entry.sa.pop_events():
            if isinstance(event, Expired) and event.hard:
                # A hard-expired state is no longer a lookup result (the packet path
                # must find the rekeyed one, or acquire): cached lookups are void.
                self.generation += 1
            self._events.append(StateEvent(self.name, entry.handle, event))

    def emit(self, event: Event) -> None:
        """Queue an event raised outside the device's own calls (the packet path's acquires)."""
        self._events.append(event)

    def pop_events(self) -> list[Event]:
        """Every event since the last call, oldest first."""
        events = self._events
        self._events = []
        return events


#: ipv6_ext_hdr(): hop-by-hop, routing, fragment, AH, no next header, destination options.
_IPV6_EXT_HEADERS = frozenset({0, 43, 44, 51, 59, 60})

"""The security policy database (SPD) of one device: xfrm_userpolicy_info and its lookup.

Policies are kept per (direction, family) in buckets keyed by the pair of prefix
lengths of their selector (destination, source). Inside a bucket a dict maps the
masked (daddr, saddr) pair to the policies with exactly that pair, sorted by
(priority, insertion order). A lookup visits each distinct prefix-length pair
present once: mask the flow's addresses, one dict probe, then walk that short
sorted list to the first full match (ports, protocol, ifindex, mark, if_id),
stopping early when a list's next candidate cannot beat the best so far. The cost
grows with the number of distinct prefix-length pairs (a handful in practice),
not with the number of policies: 10,000 host (/32) policies are one bucket and one
probe. This is the idea of the kernel's exact-prefix hash plus inexact bins
(xfrm_policy.c), simplified.

The best policy has the lowest ``priority`` value; ties go to the one inserted
first, as in the kernel's ordered insert.

Indexes follow the kernel: the low 3 bits of an index are the policy direction
(XFRM_POLICY_IN 0, OUT 1, FWD 2); generated indexes are ``(n << 3) | dir`` with n
counting up, never 0; a requested index must carry its direction in those bits
(-EINVAL) and, when already taken, the kernel quietly generates another one: so do
we. Adding a policy whose (direction, selector, mark, mask, if_id) is already
present is -EEXIST (priority is not part of that identity); ``update=True``
replaces it, keeping its index.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .errors import AlreadyExists, InvalidArgument, NoSpace, NotFound
from .selector import FlowKey, SelectorMatcher
from .types import (
    IPPROTO_ESP,
    Direction,
    Family,
    IPAddress,
    LifetimeConfig,
    Mode,
    OffloadRequest,
    Selector,
)


class PolicyAction(enum.IntEnum):
    """XFRM_POLICY_ALLOW / XFRM_POLICY_BLOCK."""

    ALLOW = 0
    BLOCK = 1


class PolicyFlag(enum.IntFlag):
    """XFRM_POLICY_LOCALOK / XFRM_POLICY_ICMP."""

    NONE = 0
    LOCALOK = 1
    ICMP = 2


class TemplateLevel(enum.IntEnum):
    """``level required|use``: xfrm_user_tmpl.optional 0 or 1."""

    REQUIRED = 0
    USE = 1


class Share(enum.IntEnum):
    """XFRM_SHARE_* of xfrm_user_tmpl.share."""

    ANY = 0
    SESSION = 1
    USER = 2
    UNIQUE = 3


#: Policy direction as the kernel numbers it (XFRM_POLICY_IN/OUT/FWD), used in indexes.
POLICY_DIR_BITS: dict[Direction, int] = {Direction.IN: 0, Direction.OUT: 1, Direction.FWD: 2}
_DIR_OF_BITS = {bits: d for d, bits in POLICY_DIR_BITS.items()}
_U32 = 0xFFFFFFFF


def direction_of_index(index: int) -> Direction | None:
    """The direction a policy index encodes in its low 3 bits (xfrm_policy_id2dir)."""
    return _DIR_OF_BITS.get(index & 7)


@dataclass(frozen=True, slots=True)
class Template:
    """xfrm_user_tmpl: which SA a matching packet must go through.

    ``daddr``/``saddr`` None are the unspecified address: in transport mode the
    packet's own addresses are used, in tunnel mode the tunnel endpoints must be
    given (a missing source is left to the SA lookup as "any").
    ``spi`` 0 means any SPI. ``reqid`` pairs the template with SAs of the same
    reqid (0 with 0, as in the kernel's outbound lookup).
    """

    daddr: IPAddress | None = None
    saddr: IPAddress | None = None
    proto: int = IPPROTO_ESP
    spi: int = 0
    reqid: int = 0
    mode: Mode = Mode.TRANSPORT
    level: TemplateLevel = TemplateLevel.REQUIRED
    share: Share = Share.ANY
    family: Family | None = None

    def endpoints(self, flow: FlowKey) -> tuple[IPAddress, IPAddress | None]:
        """(daddr, saddr) to find the SA for a packet of ``flow`` (xfrm_tmpl_resolve_one)."""
        if self.mode == Mode.TRANSPORT:
            return flow.daddr_ip, flow.saddr_ip
        if self.daddr is None:
            raise InvalidArgument("a tunnel template needs a destination", field="templates.daddr")
        if self.saddr is None or not int(self.saddr):
            return self.daddr, None
        return self.daddr, self.saddr


def check_templates(policy: Policy) -> None:
    """What the NIC requires of a policy's templates (after its selector, before any
    offload rule, as the kernel's validate_tmpl comes after verify_newpolicy_info and
    before xfrm_dev_policy_add). Fields are the engine's (``templates[0].daddr``)."""
    for i, tmpl in enumerate(policy.templates):
        if tmpl.mode == Mode.TUNNEL and tmpl.daddr is None:
            # The kernel takes it (a zero address); this NIC could never resolve it.
            raise InvalidArgument(
                f"template {i}: a tunnel-mode template needs the tunnel's destination",
                field=f"templates[{i}].daddr",
            )


@dataclass(frozen=True, slots=True)
class Policy:
    """xfrm_userpolicy_info plus its templates (XFRMA_TMPL), mark and if_id."""

    sel: Selector
    dir: Direction
    index: int = 0
    priority: int = 0
    action: PolicyAction = PolicyAction.ALLOW
    flags: PolicyFlag = PolicyFlag.NONE
    templates: tuple[Template, ...] = ()
    mark: int = 0
    mark_mask: int = 0
    if_id: int = 0
    lifetime: LifetimeConfig = field(default_factory=LifetimeConfig)
    offload: OffloadRequest | None = None

    @property
    def identity(self) -> tuple[Direction, Selector, int, int, int]:
        """What makes two policies the same one (the kernel's EEXIST test)."""
        return (self.dir, self.sel, self.mark, self.mark_mask, self.if_id)


@dataclass(slots=True, eq=False)  # an entry is itself: never compared field by field
class _Entry:
    policy: Policy
    matcher: SelectorMatcher
    order: tuple[int, int]  # (priority, insertion sequence): lower is better
    bucket_key: tuple[int, int]  # (prefixlen_d, prefixlen_s)
    addr_key: int  # _addr_key of the masked (daddr, saddr)
    table_key: tuple[Direction, Family]


def _order_of(entry: _Entry) -> tuple[int, int]:
    return entry.order


def _addr_key(daddr: int, saddr: int) -> int:
    # One int, not a tuple: a lookup in a large table then compares one stored object,
    # not a tuple and two ints scattered in memory. (``lookup`` inlines it.)
    return daddr << 128 | saddr


class _Bucket:
    """Policies sharing one (prefixlen_d, prefixlen_s): masked addresses -> sorted entries.

    The entries of one address pair are a tuple, rebuilt on each change: a lookup reads
    them without the extra memory access a list's item array costs, and changes are rare
    next to lookups (and a pair rarely has more than a few policies).
    """

    __slots__ = ("by_addr", "dmask", "smask")

    def __init__(self, dmask: int, smask: int) -> None:
        self.dmask = dmask
        self.smask = smask
        self.by_addr: dict[int, tuple[_Entry, ...]] = {}  # by _addr_key


class SPDatabase:
    """Policies of one device, looked up by (direction, flow) without a linear scan."""

    __slots__ = ("_by_identity", "_by_index", "_idx_generator", "_seq", "_tables", "max_entries")

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._by_index: dict[int, _Entry] = {}
        self._by_identity: dict[tuple[Direction, Selector, int, int, int], _Entry] = {}
        self._tables: dict[tuple[Direction, Family], dict[tuple[int, int], _Bucket]] = {}
        self._idx_generator = 0
        self._seq = 0

    # -- changes -----------------------------------------------------------------

    def _gen_index(self, direction: Direction, wanted: int) -> int:
        dir_bits = POLICY_DIR_BITS[direction]
        if wanted and wanted not in self._by_index:
            return wanted
        while True:
            idx = self._idx_generator | dir_bits
            self._idx_generator = (self._idx_generator + 8) & _U32
            if idx == 0:
                idx = 8
            if idx not in self._by_index:
                return idx

    def add(self, policy: Policy, *, update: bool = False) -> Policy:
        """Insert ``policy``; return it as stored (with its index).

        AlreadyExists if the same (dir, selector, mark, if_id) is present, unless
        ``update``, which replaces that policy and keeps its index.
        """
        if policy.dir not in POLICY_DIR_BITS:
            raise InvalidArgument(
                "unknown policy direction", field="dir", allowed=("in", "out", "fwd")
            )
        if not 0 <= policy.index <= _U32:
            raise InvalidArgument("index must be a 32-bit value", field="index")
        if policy.index and direction_of_index(policy.index) != policy.dir:
            raise InvalidArgument("the index's low 3 bits must encode dir", field="index")
        if not 0 <= policy.priority <= _U32:
            raise InvalidArgument("priority must be a 32-bit value", field="priority")
        matcher = SelectorMatcher(policy.sel)
        old = self._by_identity.get(policy.identity)
        if old is not None:
            if not update:
                raise AlreadyExists(
                    "a policy with this selector and dir already exists", field="sel"
                )
            self._unlink(old)
            index = old.policy.index
        else:
            if self.max_entries is not None and len(self._by_index) >= self.max_entries:
                raise NoSpace(f"the policy table is full ({self.max_entries} entries)")
            index = self._gen_index(policy.dir, policy.index)
        stored = policy if policy.index == index else replace(policy, index=index)
        self._seq += 1
        sel = policy.sel
        entry = _Entry(
            policy=stored,
            matcher=matcher,
            order=(stored.priority, self._seq),
            bucket_key=(sel.prefixlen_d, sel.prefixlen_s),
            addr_key=_addr_key(matcher.daddr, matcher.saddr),
            table_key=(policy.dir, sel.family),
        )
        self._link(entry)
        return stored

    def _link(self, entry: _Entry) -> None:
        table = self._tables.setdefault(entry.table_key, {})
        bucket = table.get(entry.bucket_key)
        if bucket is None:
            bucket = table[entry.bucket_key] = _Bucket(entry.matcher.dmask, entry.matcher.smask)
        entries = bucket.by_addr.get(entry.addr_key, ())
        i = bisect.bisect(entries, entry.order, key=_order_of)
        # Concatenation, not unpacking: twice as fast when a pair has thousands of policies.
        bucket.by_addr[entry.addr_key] = entries[:i] + (entry,) + entries[i:]  # noqa: RUF005
        self._by_index[entry.policy.index] = entry
        self._by_identity[entry.policy.identity] = entry

    def _unlink(self, entry: _Entry) -> None:
        del self._by_index[entry.policy.index]
        del self._by_identity[entry.policy.identity]
        table = self._tables[entry.table_key]
        bucket = table[entry.bucket_key]
        entries = bucket.by_addr[entry.addr_key]
        i = entries.index(entry)  # by identity (eq=False)
        entries = entries[:i] + entries[i + 1 :]
        if entries:
            bucket.by_addr[entry.addr_key] = entries
        else:
            del bucket.by_addr[entry.addr_key]
            if not bucket.by_addr:
                del table[entry.bucket_key]
                if not table:
                    del self._tables[entry.table_key]

    def delete(self, index: int) -> Policy:
        """Remove the policy with ``index``; NotFound if none."""
        entry = self._by_index.get(index)
        if entry is None:
            raise NotFound(f"no policy with index {index}", field="index")
        self._unlink(entry)
        return entry.policy

    def delete_by_selector(
        self,
        direction: Direction,
        sel: Selector,
        *,
        mark: int = 0,
        mark_mask: int = 0,
        if_id: int = 0,
    ) -> Policy:
        """Remove the policy with exactly this (dir, selector, mark, if_id); NotFound if none."""
        entry = self._by_identity.get((direction, sel, mark, mark_mask, if_id))
        if entry is None:
            raise NotFound("no policy with this selector and dir", field="sel")
        self._unlink(entry)
        return entry.policy

    def clear(self) -> list[Policy]:
        """Remove every policy (flush, link down); return them in insertion order."""
        removed = [e.policy for e in sorted(self._by_index.values(), key=lambda e: e.order[1])]
        self._by_index.clear()
        self._by_identity.clear()
        self._tables.clear()
        return removed

    # -- lookups -----------------------------------------------------------------

    def get(self, index: int) -> Policy | None:
        entry = self._by_index.get(index)
        return None if entry is None else entry.policy

    def get_by_selector(
        self,
        direction: Direction,
        sel: Selector,
        *,
        mark: int = 0,
        mark_mask: int = 0,
        if_id: int = 0,
    ) -> Policy | None:
        entry = self._by_identity.get((direction, sel, mark, mark_mask, if_id))
        return None if entry is None else entry.policy

    def lookup(
        self, direction: Direction, flow: FlowKey, *, mark: int = 0, if_id: int = 0
    ) -> Policy | None:
        """The best policy for ``flow`` in ``direction`` (lowest priority value, then oldest).

        A policy applies when its selector matches, ``mark & mark_mask == mark``
        (the policy's mark, as xfrm_policy_match does) and its if_id equals ``if_id``.
        """
        table = self._tables.get((direction, flow.family))
        if not table:
            return None
        best: _Entry | None = None
        daddr, saddr = flow.daddr, flow.saddr
        for bucket in table.values():
            candidates = bucket.by_addr.get((daddr & bucket.dmask) << 128 | (saddr & bucket.smask))
            if not candidates:
                continue
            for entry in candidates:
                if best is not None and entry.order >= best.order:
                    break
                pol = entry.policy
                # The table (family) and the key (masked addresses) matched already.
                if (
                    entry.matcher.matches_beyond_addresses(flow)
                    and (mark & pol.mark_mask) == pol.mark
                    and pol.if_id == if_id
                ):
                    best = entry
                    break
        return None if best is None else best.policy

    # -- the table as a whole ----------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_index)

    def __iter__(self) -> Iterator[Policy]:
        """Every policy, in insertion order."""
        return iter([e.policy for e in sorted(self._by_index.values(), key=lambda e: e.order[1])])


# -- policy lifetimes ---------------------------------------------------------------

#: XFRM_KM_TIMEOUT: how often the kernel's policy timer repeats a soft expire.
KM_TIMEOUT = 30.0
_NEVER = float("inf")


class PolicyTimerResult(enum.Enum):
    """What one run of the policy timer decided."""

    NOTHING = "nothing"
    SOFT = "soft"  # km_policy_expired(hard=0): rekey the policy
    HARD = "hard"  # the policy is deleted, km_policy_expired(hard=1)


class PolicyLifetime:
    """A policy's xfrm_lifetime_cur and its timer, as net/xfrm/xfrm_policy.c keeps them.

    What the kernel does, restated:

    * ``add_time`` is set when the policy is inserted; ``use_time`` every time a
      packet's lookup selects the policy (xfrm_lookup on output, __xfrm_policy_check
      on input), including a block policy.
    * ``bytes`` and ``packets`` are never counted for a policy: the kernel has the
      fields (xfrm_lifetime_cur) but no code path increments them, and it never
      checks byte or packet limits of a policy. ``ip -s xfrm policy`` therefore
      always shows 0(bytes), 0(packets); so do we.
    * The timer (xfrm_policy_timer) first runs one second after the insert, then
      at the nearest pending deadline. A use limit counts from the last use, or
      from the add time when the policy was never used (unlike a state's, which
      never use-expires unused). A hard limit reached deletes the policy and sends
      one hard POLEXPIRE; a soft limit reached sends a soft POLEXPIRE on that run
      and again every XFRM_KM_TIMEOUT (30 s) while the policy lives: the kernel
      keeps no "already warned" flag for policies.
    * A use of the policy does not move the timer: the next run finds the
      deadline later and sleeps again.
    """

    __slots__ = ("add_time", "cfg", "timer_at", "use_time")

    def __init__(self, cfg: LifetimeConfig, now: float) -> None:
        self.cfg = cfg
        self.add_time = now
        self.use_time: float | None = None
        #: When the timer runs next (inf: the policy has no time limit).
        self.timer_at = now + 1.0 if _has_time_limit(cfg) else _NEVER

    @property
    def bytes(self) -> int:
        return 0

    @property
    def packets(self) -> int:
        return 0

    def used(self, now: float) -> None:
        """A lookup selected the policy at ``now``."""
        self.use_time = now

    def run_timer(self, now: float) -> PolicyTimerResult:
        """One run of xfrm_policy_timer at ``now``; sets ``timer_at`` to the next run."""
        cfg = self.cfg
        used = self.use_time if self.use_time is not None else self.add_time
        nxt = _NEVER
        for seconds, base in (
            (cfg.hard_add_expires_seconds, self.add_time),
            (cfg.hard_use_expires_seconds, used),
        ):
            if seconds:
                tmo = base + seconds - now
                if tmo <= 0:
                    self.timer_at = _NEVER
                    return PolicyTimerResult.HARD
                nxt = min(nxt, tmo)
        warn = False
        for seconds, base in (
            (cfg.soft_add_expires_seconds, self.add_time),
            (cfg.soft_use_expires_seconds, used),
        ):
            if seconds:
                tmo = base + seconds - now
                if tmo <= 0:
                    warn = True
                    tmo = KM_TIMEOUT
                nxt = min(nxt, tmo)
        self.timer_at = now + nxt
        return PolicyTimerResult.SOFT if warn else PolicyTimerResult.NOTHING

    def __repr__(self) -> str:
        return (
            f"PolicyLifetime(add_time={self.add_time}, use_time={self.use_time}, "
            f"timer_at={self.timer_at})"
        )


def _has_time_limit(cfg: LifetimeConfig) -> bool:
    return bool(
        cfg.soft_add_expires_seconds
        or cfg.hard_add_expires_seconds
        or cfg.soft_use_expires_seconds
        or cfg.hard_use_expires_seconds
    )

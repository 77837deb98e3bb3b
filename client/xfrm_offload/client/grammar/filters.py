"""What list, get, delete, deleteall and flush select: iproute2's xfrm_filter, as dataclasses.

The parsers in ``state`` and ``policy`` build them; the CLI runs ``matches()`` over what the
server lists.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from xfrm_offload.v1 import xfrm_pb2


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

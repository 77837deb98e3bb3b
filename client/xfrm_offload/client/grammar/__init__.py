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

This package is the entry point (``parse``, ``Command``, ``usage`` and the word tables that
completion reads); its modules: ``lexer`` (cursor, errors, numbers, keys, addresses),
``clauses`` (ID, SELECTOR, mark, flags, limits, mode), ``state`` and ``policy`` (their
commands), ``filters`` (what list/get/delete select).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from xfrm_offload.v1 import xfrm_pb2

from .clauses import IP_PROTOS, LIMIT_KEYWORDS, XFRM_PROTOS, IfindexOf
from .filters import PolicyFilter, StateFilter
from .lexer import (
    ALGO_KEYWORDS,
    REDACTED,
    CommandTable,
    Cursor,
    XfrmSyntaxError,
    c_uint,
    join_words,
    matches,
    parse_key,
)
from .policy import (
    POLICY_COMMANDS,
    POLICY_USAGE,
    XFRM_POLICY_FLAGS,
    parse_policy_add,
    parse_policy_filter,
    parse_ptype,
)
from .state import (
    ENCAP_TYPES,
    STATE_COMMANDS,
    STATE_USAGE,
    XFRM_EXTRA_FLAGS,
    XFRM_STATE_FLAGS,
    parse_state_add,
    parse_state_flush,
    parse_state_get,
    parse_state_list,
)

__all__ = [
    "ALGO_KEYWORDS",
    "ENCAP_TYPES",
    "IP_PROTOS",
    "LIMIT_KEYWORDS",
    "MONITOR_GROUPS",
    "POLICY_COMMANDS",
    "REDACTED",
    "STATE_COMMANDS",
    "XFRM_EXTRA_FLAGS",
    "XFRM_POLICY_FLAGS",
    "XFRM_PROTOS",
    "XFRM_STATE_FLAGS",
    "Command",
    "CommandTable",
    "PolicyFilter",
    "StateFilter",
    "XfrmSyntaxError",
    "c_uint",
    "matches",
    "parse",
    "parse_key",
    "usage",
]

Obj = Literal["state", "policy", "monitor"]

Action = Literal[
    "add", "update", "delete", "get", "list", "deleteall", "flush", "count", "help", "monitor"
]

MONITOR_GROUPS = ("acquire", "expire", "SA", "aevent", "policy", "report")


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


def _action(cur: Cursor, table: CommandTable) -> str:
    if cur.at_end():
        return "list"  # `ip xfrm state` alone lists.
    word = cur.peek() or ""
    for spellings, action in table:
        if any(matches(word, s) for s in spellings):
            cur.take()
            return action
    names = join_words([spellings[0] for spellings, _ in table])
    raise cur.error(f"expected a command ({names})")


def parse(argv: Sequence[str], *, ifindex_of: IfindexOf | None = None) -> Command:
    """Parse ``[xfrm] { state | policy | monitor } COMMAND ...`` into a :class:`Command`.

    ``ifindex_of`` resolves a selector's ``dev DEV`` to an interface index (the server's
    Device.ifindex); without it, a selector naming a device is an error.
    """
    cur = Cursor(argv, 0)
    if not cur.at_end() and matches(cur.argv[0], "xfrm"):
        cur.take()
    word = cur.peek()
    if word is None:
        raise cur.error("expected an object (state|policy|monitor)")
    if matches(word, "state") or matches(word, "sa"):
        cur.take()
        return _parse_state_command(cur, ifindex_of)
    if matches(word, "policy"):
        cur.take()
        return _parse_policy_command(cur, ifindex_of)
    if matches(word, "monitor"):
        cur.take()
        return _parse_monitor(cur)
    raise cur.error("expected an object (state|policy|monitor)")


def _parse_state_command(cur: Cursor, ifindex_of: IfindexOf | None) -> Command:
    index = cur.pos
    action = _action(cur, STATE_COMMANDS)
    if action in ("add", "update"):
        sa = parse_state_add(cur, ifindex_of)
        return Command("state", action, sa=sa)  # type: ignore[arg-type]
    if action in ("get", "delete"):
        return Command("state", action, state_filter=parse_state_get(cur))  # type: ignore[arg-type]
    if action in ("list", "deleteall"):
        return Command("state", action, state_filter=parse_state_list(cur))  # type: ignore[arg-type]
    if action == "flush":
        return Command("state", "flush", state_filter=parse_state_flush(cur))
    if action in ("count", "help"):
        if not cur.at_end():
            raise cur.error("expected nothing more")
        return Command("state", action)  # type: ignore[arg-type]
    raise cur.error(f"expected a command xfrmctl supports: {action} is not offloadable", index)


def _parse_policy_command(cur: Cursor, ifindex_of: IfindexOf | None) -> Command:
    index = cur.pos
    action = _action(cur, POLICY_COMMANDS)
    if action in ("add", "update"):
        policy, ptype = parse_policy_add(cur, ifindex_of)
        return Command("policy", action, policy=policy, ptype=ptype)  # type: ignore[arg-type]
    if action in ("get", "delete", "list", "deleteall"):
        filt = parse_policy_filter(cur, ifindex_of, get=action in ("get", "delete"))
        return Command("policy", action, policy_filter=filt, ptype=filt.ptype)  # type: ignore[arg-type]
    if action == "flush":
        ptype = None
        if cur.peek() == "ptype":
            cur.take()
            ptype = parse_ptype(cur)
        if not cur.at_end():
            raise cur.error("expected ptype PTYPE or nothing")
        return Command("policy", "flush", policy_filter=PolicyFilter(ptype=ptype), ptype=ptype)
    if action in ("count", "help"):
        if not cur.at_end():
            raise cur.error("expected nothing more")
        return Command("policy", action)  # type: ignore[arg-type]
    raise cur.error(f"expected a command xfrmctl supports: {action} is not offloadable", index)


def _parse_monitor(cur: Cursor) -> Command:
    """monitor [ all | LISTofXFRM-OBJECTS ]."""
    groups: list[str] = []
    while not cur.at_end():
        word = cur.peek() or ""
        if word == "all":
            cur.take()
            continue
        hit = next((g for g in MONITOR_GROUPS if matches(word, g)), None)
        if hit is None:
            raise cur.error(f"expected an event group ({join_words(MONITOR_GROUPS)} or all)")
        cur.take()
        groups.append(hit)
    return Command("monitor", "monitor", monitor_groups=tuple(groups))


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
        return STATE_USAGE
    if obj == "policy":
        return POLICY_USAGE
    return _TOP_USAGE

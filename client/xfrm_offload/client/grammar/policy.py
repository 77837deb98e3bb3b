"""``ip xfrm policy``: add/update into an XfrmUserpolicyInfo, get/delete/list/deleteall into a
PolicyFilter (ip/xfrm_policy.c), and the policy usage text.
"""

from __future__ import annotations

from xfrm_offload.v1 import xfrm_pb2

from .clauses import (
    ID_WORDS,
    SEL_WORDS,
    UPSPEC_WORDS,
    IdClause,
    IfindexOf,
    id_family,
    parse_flag_list,
    parse_id,
    parse_limits,
    parse_mark,
    parse_mode,
    parse_selector,
)
from .filters import PolicyFilter
from .lexer import CommandTable, Cursor, expect_word

XFRM_POLICY_FLAGS: dict[str, int] = {"localok": 1, "icmp": 2}

MAX_TEMPLATES = 6  # XFRM_MAX_DEPTH

POLICY_COMMANDS: CommandTable = (
    (("add",), "add"),
    (("update",), "update"),
    (("delete",), "delete"),
    (("deleteall", "delall"), "deleteall"),
    (("list", "show", "lst"), "list"),
    (("get",), "get"),
    (("flush",), "flush"),
    (("count",), "count"),
    (("set",), "set"),
    (("setdefault",), "setdefault"),
    (("getdefault",), "getdefault"),
    (("help",), "help"),
)

_POLICY_DIRS: dict[str, xfrm_pb2.PolicyDir] = {
    "in": xfrm_pb2.POLICY_DIR_IN,
    "out": xfrm_pb2.POLICY_DIR_OUT,
    "fwd": xfrm_pb2.POLICY_DIR_FWD,
}

_POLICY_ACTIONS: dict[str, xfrm_pb2.PolicyAction] = {
    "allow": xfrm_pb2.POLICY_ACTION_ALLOW,
    "block": xfrm_pb2.POLICY_ACTION_BLOCK,
}

_PTYPES: dict[str, int] = {"main": 0, "sub": 1}


def parse_ptype(cur: Cursor) -> str:
    return "main" if cur.choice(_PTYPES, "a policy type") == 0 else "sub"


def _parse_tmpl(cur: Cursor) -> xfrm_pb2.XfrmUserTmpl:
    """TMPL := ID [ mode MODE ] [ reqid REQID ] [ level LEVEL ], in any order."""
    tmpl = xfrm_pb2.XfrmUserTmpl(aalgos=0xFFFFFFFF, ealgos=0xFFFFFFFF, calgos=0xFFFFFFFF)
    ident: IdClause | None = None
    start = cur.pos
    while (word := cur.peek()) is not None:
        if word == "mode":
            cur.take()
            tmpl.mode = parse_mode(cur)
        elif word == "reqid":
            cur.take()
            tmpl.reqid = cur.uint("expected a reqid (32-bit number)")
        elif word == "level":
            cur.take()
            tmpl.optional = cur.choice({"required": 0, "use": 1}, "a level") == 1
        elif word in ID_WORDS and ident is None:
            ident = parse_id(cur, loose=False)
        else:
            break
    if ident is None:
        raise cur.error("expected the template's ID: src ADDR dst ADDR proto esp", start)
    if ident.saddr:
        tmpl.saddr = ident.saddr.text
    if ident.daddr:
        tmpl.id.daddr = ident.daddr.text
    tmpl.id.proto = ident.proto or 0
    tmpl.id.spi = ident.spi or 0
    tmpl.family = id_family(ident)
    return tmpl


def parse_policy_add(
    cur: Cursor, ifindex_of: IfindexOf | None
) -> tuple[xfrm_pb2.XfrmUserpolicyInfo, str | None]:
    policy = xfrm_pb2.XfrmUserpolicyInfo()
    policy.lft.SetInParent()
    sel_seen = False
    ptype: str | None = None
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if word in SEL_WORDS or word in UPSPEC_WORDS:
            if sel_seen:
                raise cur.error("expected the SELECTOR as one group: it was given earlier", index)
            policy.sel.CopyFrom(parse_selector(cur, ifindex_of).sel)
            sel_seen = True
            continue
        cur.take()
        if word == "dir":
            policy.dir = cur.choice(_POLICY_DIRS, "a policy dir")
        elif word == "mark":
            policy.mark.CopyFrom(parse_mark(cur))
        elif word == "index":
            policy.index = cur.uint("expected a policy index (32-bit number)")
        elif word == "ptype":
            ptype = parse_ptype(cur)
        elif word == "action":
            policy.action = cur.choice(_POLICY_ACTIONS, "a policy action")
        elif word == "priority":
            policy.priority = cur.uint("expected a priority (32-bit number)")
        elif word == "flag":
            policy.flags |= parse_flag_list(cur, XFRM_POLICY_FLAGS, "a policy flag", 8)
        elif word == "limit":
            parse_limits(cur, policy.lft)
        elif word == "tmpl":
            if len(policy.tmpl) >= MAX_TEMPLATES:
                raise cur.error(f"expected at most {MAX_TEMPLATES} templates", index)
            policy.tmpl.append(_parse_tmpl(cur))
        elif word == "if_id":
            policy.if_id = cur.uint("expected an interface id (32-bit number)")
        elif word == "offload":
            # Policies are offloaded in packet mode only; iproute2 insists on the word.
            expect_word(cur, "packet", 'expected "packet" after offload (policies)')
            expect_word(cur, "dev", 'expected "dev DEV" after offload packet')
            dev, _ = cur.value("expected a device name")
            policy.offload.CopyFrom(
                xfrm_pb2.XfrmUserOffload(dev=dev, flags=xfrm_pb2.OFFLOAD_FLAG_PACKET)
            )
        else:
            raise cur.error(f"expected a policy keyword, not {word!r}", index)
    if policy.dir == xfrm_pb2.POLICY_DIR_UNSPECIFIED:
        raise cur.error("expected dir in|out|fwd: a policy needs a direction")
    if not policy.sel.family:
        policy.sel.family = next(
            (t.family for t in policy.tmpl if t.family), xfrm_pb2.ADDRESS_FAMILY_INET
        )
    return policy, ptype


def parse_policy_filter(cur: Cursor, ifindex_of: IfindexOf | None, *, get: bool) -> PolicyFilter:
    """list/deleteall filters, or get/delete's { SELECTOR | index INDEX } dir DIR ..."""
    values: dict[str, object] = {}
    sel_seen = False
    while not cur.at_end():
        index = cur.pos
        word = cur.argv[index]
        if (word in SEL_WORDS or word in UPSPEC_WORDS) and not sel_seen:
            parsed = parse_selector(cur, ifindex_of)
            sel_seen = True
            if parsed.saddr:
                values["saddr"], values["prefixlen_s"] = parsed.saddr.text, parsed.saddr.plen
            if parsed.daddr:
                values["daddr"], values["prefixlen_d"] = parsed.daddr.text, parsed.daddr.plen
            if parsed.upspec:
                values["upspec_proto"] = parsed.sel.proto
                if parsed.sel.sport_mask:
                    values["sport"] = parsed.sel.sport
                if parsed.sel.dport_mask:
                    values["dport"] = parsed.sel.dport
            if parsed.sel.ifindex:
                values["ifindex"] = parsed.sel.ifindex
            continue
        cur.take()
        if word == "dir":
            values["dir"] = cur.choice(_POLICY_DIRS, "a policy dir")
        elif word == "index":
            values["index"] = cur.uint("expected a policy index (32-bit number)")
        elif word == "ptype":
            values["ptype"] = parse_ptype(cur)
        elif word == "mark" and get:
            values["mark"] = parse_mark(cur)
        elif word == "if_id" and get:
            values["if_id"] = cur.uint("expected an interface id (32-bit number)")
        elif word == "action" and not get:
            values["action"] = cur.choice(_POLICY_ACTIONS, "a policy action")
        elif word == "priority" and not get:
            values["priority"] = cur.uint("expected a priority (32-bit number)")
        elif word == "flag" and not get:
            values["flags"] = parse_flag_list(cur, XFRM_POLICY_FLAGS, "a policy flag", 8)
        elif word == "nosock" and not get:
            values["nosock"] = True
        else:
            allowed = (
                "SELECTOR, index, dir, mark, ptype, if_id"
                if get
                else "SELECTOR, dir, index, ptype, action, priority, flag, nosock"
            )
            raise cur.error(f"expected a filter ({allowed})", index)
    if get:
        if "dir" not in values:
            raise cur.error("expected dir in|out|fwd")
        if not sel_seen and "index" not in values:
            raise cur.error("expected a SELECTOR or index INDEX")
    return PolicyFilter(**values)  # type: ignore[arg-type]


POLICY_USAGE = """\
Usage: xfrmctl [xfrm] policy { add | update } SELECTOR dir DIR
        [ mark MARK [ mask MASK ] ] [ index INDEX ] [ ptype PTYPE ]
        [ action ACTION ] [ priority PRIORITY ] [ flag FLAG-LIST ]
        [ if_id IF_ID ] [ offload packet dev DEV ] [ LIMIT-LIST ] [ TMPL-LIST ]
       xfrmctl policy { delete | get } { SELECTOR | index INDEX } dir DIR
        [ mark MARK [ mask MASK ] ] [ ptype PTYPE ] [ if_id IF_ID ]
       xfrmctl policy { deleteall | list } [ nosock ] [ SELECTOR ] [ dir DIR ]
        [ index INDEX ] [ ptype PTYPE ] [ action ACTION ] [ priority PRIORITY ]
        [ flag FLAG-LIST ]
       xfrmctl policy flush [ ptype PTYPE ]
       xfrmctl policy count
SELECTOR := [ src ADDR[/PLEN] ] [ dst ADDR[/PLEN] ] [ dev DEV ] [ UPSPEC ]
UPSPEC := proto { { tcp | udp | sctp | dccp } [ sport PORT ] [ dport PORT ] |
                  { icmp | ipv6-icmp | mobility-header } [ type NUMBER ] [ code NUMBER ] |
                  gre [ key { DOTTED-QUAD | NUMBER } ] | PROTO }
DIR := in | out | fwd
PTYPE := main | sub
ACTION := allow | block
FLAG-LIST := [ FLAG-LIST ] FLAG
FLAG := localok | icmp
LIMIT-LIST := [ LIMIT-LIST ] limit LIMIT
LIMIT := { time-soft | time-hard | time-use-soft | time-use-hard } SECONDS |
         { byte-soft | byte-hard } SIZE | { packet-soft | packet-hard } COUNT
TMPL-LIST := [ TMPL-LIST ] tmpl TMPL
TMPL := ID [ mode MODE ] [ reqid REQID ] [ level LEVEL ]
ID := [ src ADDR ] [ dst ADDR ] [ proto XFRM-PROTO ] [ spi SPI ]
XFRM-PROTO := esp | NUMBER
MODE := transport | tunnel
LEVEL := required | use
"""

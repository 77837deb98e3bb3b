"""iproute2's ``ip xfrm`` output, produced from the v1 listing messages.

``format_state`` prints what ``ip xfrm state`` (``stats=True``: ``ip -s xfrm state``) prints
for one SA, ``format_policy`` the same for ``ip xfrm policy``, ``format_xfrm_stat`` the lines
of /proc/net/xfrm_stat and ``format_event`` what ``ip xfrm monitor`` prints. The layout follows
iproute2's ip/ipxfrm.c (xfrm_state_info_print, xfrm_policy_info_print, xfrm_xfrma_print,
xfrm_selector_print, xfrm_lifetime_print, xfrm_stats_print), re-expressed here: a tab before
every detail line, a space after most fields (so some lines end with a space, as there), hex
as ``0x%08x``, and the kernel's attribute order: mark, auth-trunc, aead, enc, encap, tmpl,
anti-replay context, offload, if_id, tfcpad, dir; then the selector, then (with -s) the
lifetime and stats blocks. ``format_device`` (with ``format_interfaces``) is xfrmctl's own
``ip link``-like view of a device, its capabilities and attached interfaces.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xfrm_offload.v1 import offload_pb2, xfrm_pb2

__all__ = [
    "KEYS_HIDDEN",
    "format_event",
    "format_policy",
    "format_selector",
    "format_state",
    "format_time",
    "format_xfrm_stat",
]

IfnameOf = Callable[[int], str]

# Printed in place of key material when keys are not shown (ip xfrm state list nokeys).
KEYS_HIDDEN = "<<Keys hidden>>"

_XFRM_PROTO_NAMES = {50: "esp", 51: "ah", 108: "comp", 43: "route2", 60: "hao", 255: "ipsec-any"}
# getprotobynumber() names from /etc/protocols, for the selector's upper-layer protocol.
_IP_PROTO_NAMES = {
    1: "icmp",
    2: "igmp",
    4: "ipencap",
    6: "tcp",
    17: "udp",
    33: "dccp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "ipv6-icmp",
    89: "ospf",
    103: "pim",
    115: "l2tp",
    132: "sctp",
    135: "mobility-header",
    136: "udplite",
}
_ICMP_PROTOS = frozenset({1, 58})
_MH_PROTO = 135
_GRE_PROTO = 47
_STATE_FLAG_NAMES = (
    (1, "noecn"),
    (2, "decap-dscp"),
    (4, "nopmtudisc"),
    (8, "wildrecv"),
    (16, "icmp"),
    (32, "af-unspec"),
    (64, "align4"),
    (128, "esn"),
)
_EXTRA_FLAG_NAMES = ((1, "dont-encap-dscp"), (2, "oseq-may-wrap"))
_POLICY_FLAG_NAMES = ((1, "localok"), (2, "icmp"))
_ENCAP_NAMES = {1: "espinudp-nonike", 2: "espinudp", 7: "espintcp"}
# What the kernel fills in for "auth NAME KEY" (no explicit truncation), per xfrm_algo.c.
_DEFAULT_TRUNC_BITS = {
    "digest_null": 0,
    "hmac(md5)": 96,
    "hmac(sha1)": 96,
    "hmac(sha256)": 96,
    "hmac(sha384)": 192,
    "hmac(sha512)": 256,
    "hmac(rmd160)": 96,
    "xcbc(aes)": 96,
    "cmac(aes)": 96,
}
_ESN_FLAG = 128
_LEGACY_REPLAY_BITS = 32  # width of the non-ESN replay bitmap
_AF_UNSPEC_FLAG = 32
_BITMAP_WORDS_PER_LINE = 8

_T = "\t"  # iproute2's per-line prefix for detail lines of a top-level object.


# --------------------------------------------------------------------------- small pieces


def _flag_words(flags: int, names: Sequence[tuple[int, str]]) -> str:
    """XFRM_FLAG_PRINT: known names space-separated, then any unknown bits in hex."""
    words: list[str] = []
    for bit, name in names:
        if flags & bit:
            flags &= ~bit
            words.append(name)
    text = " ".join(words)
    if words and flags:
        text += " "
    if flags:
        text += f"{flags:x}"
    return text


def _mask8(value: int) -> str:
    return format(value & 0xFF, "08b")


def _family_of(*addresses: str) -> int:
    for address in addresses:
        if address:
            return 6 if ":" in address else 4
    return 4


def _family_version(family: int) -> int | None:
    if family == xfrm_pb2.ADDRESS_FAMILY_INET:
        return 4
    if family == xfrm_pb2.ADDRESS_FAMILY_INET6:
        return 6
    return None


def _addr(text: str, version: int) -> str:
    """An address as rt_addr_n2a prints it; empty means the all-zero address."""
    if not text:
        return "::" if version == 6 else "0.0.0.0"
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _xfrm_proto(proto: int) -> str:
    proto = proto or 50  # 0 means ESP in the proto.
    return _XFRM_PROTO_NAMES.get(proto, str(proto))


def _mode(mode: int) -> str:
    return "tunnel" if mode == xfrm_pb2.XFRM_MODE_TUNNEL else "transport"


def format_time(seconds: int, tz: datetime.tzinfo | None = None) -> str:
    """strxf_time: ``-`` for 0, else ``%Y-%m-%d %H:%M:%S`` in `tz` (None = local time)."""
    if seconds == 0:
        return "-"
    stamp = datetime.datetime.fromtimestamp(seconds, tz)
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


def _default_ifname(ifindex: int) -> str:
    return f"if{ifindex}"


def format_selector(
    sel: xfrm_pb2.XfrmSelector,
    *,
    version: int = 4,
    stats: bool = False,
    ifname_of: IfnameOf | None = None,
) -> str:
    """xfrm_selector_print without prefix: ``src A/P dst B/P [proto ..] [dev ..] [uid N]``."""
    fam = _family_version(sel.family) or version
    out = f"src {_addr(sel.saddr, fam)}/{sel.prefixlen_s} "
    out += f"dst {_addr(sel.daddr, fam)}/{sel.prefixlen_d} "
    if sel.proto:
        out += f"proto {_IP_PROTO_NAMES.get(sel.proto, str(sel.proto))} "
    if sel.proto in _ICMP_PROTOS:
        # The kernel keeps the ICMP type in sport and the code in dport.
        if sel.sport_mask:
            out += f"type {sel.sport} "
        if sel.dport_mask:
            out += f"code {sel.dport} "
    elif sel.proto == _GRE_PROTO:
        if sel.sport_mask or sel.dport_mask:
            out += f"key {(sel.sport << 16) + sel.dport} "
    elif sel.proto == _MH_PROTO:
        if sel.sport_mask:
            out += f"type {sel.sport} "
        if sel.dport_mask and stats:
            out += f"(dport) 0x{sel.dport:04x} "
    else:
        if sel.sport_mask:
            out += f"sport {sel.sport} "
        if sel.dport_mask:
            out += f"dport {sel.dport} "
    if sel.ifindex > 0:
        out += f"dev {(ifname_of or _default_ifname)(sel.ifindex)} "
    if stats:
        out += f"uid {sel.user}"
    return out + "\n"


def _selector_is_zero(sel: xfrm_pb2.XfrmSelector) -> bool:
    return sel.ByteSize() == 0


def _id_lines(
    saddr: str,
    daddr: str,
    proto: int,
    spi: int,
    reqid: int,
    mode: int,
    version: int,
    *,
    force_spi: bool,
    stats: bool,
    prefix: str,
    title: str = "",
) -> str:
    """xfrm_id_info_print: ``src A dst B`` then ``proto P spi S reqid R mode M``."""
    out = f"{title}src {_addr(saddr, version)} dst {_addr(daddr, version)}\n"
    out += f"{prefix}\tproto {_xfrm_proto(proto)} "
    if stats or force_spi or spi:
        out += f"spi 0x{spi:08x}"
        if stats:
            out += f"({spi})"
        out += " "
    out += f"reqid {reqid}"
    if stats:
        out += f"(0x{reqid:08x})"
    return out + f" mode {_mode(mode)}\n"


def _key_text(key: bytes, stats: bool, show_keys: bool) -> str:
    if not show_keys:
        return KEYS_HIDDEN
    if not key:
        return ""  # iproute2 prints nothing for a zero-length key
    text = "0x" + key.hex()
    if stats:
        text += f" ({len(key) * 8} bits)"
    return text


def _lifetime_lines(
    cfg: xfrm_pb2.XfrmLifetimeCfg,
    cur: xfrm_pb2.XfrmLifetimeCur,
    tz: datetime.tzinfo | None,
) -> str:
    """xfrm_lifetime_print: unset byte/packet limits are XFRM_INF, printed ``(INF)``."""

    def limit(name: str) -> str:
        return str(getattr(cfg, name)) if cfg.HasField(name) else "(INF)"

    return (
        f"{_T}lifetime config:\n"
        f"{_T}  limit: soft {limit('soft_byte_limit')}(bytes),"
        f" hard {limit('hard_byte_limit')}(bytes)\n"
        f"{_T}  limit: soft {limit('soft_packet_limit')}(packets),"
        f" hard {limit('hard_packet_limit')}(packets)\n"
        f"{_T}  expire add: soft {cfg.soft_add_expires_seconds}(sec),"
        f" hard {cfg.hard_add_expires_seconds}(sec)\n"
        f"{_T}  expire use: soft {cfg.soft_use_expires_seconds}(sec),"
        f" hard {cfg.hard_use_expires_seconds}(sec)\n"
        f"{_T}lifetime current:\n"
        f"{_T}  {cur.bytes}(bytes), {cur.packets}(packets)\n"
        f"{_T}  add {format_time(cur.add_time, tz)} use {format_time(cur.use_time, tz)}\n"
    )


# --------------------------------------------------------------------------- state


def _uses_esn_context(sa: xfrm_pb2.XfrmUsersaInfo) -> bool:
    # The kernel dumps XFRMA_REPLAY_ESN_VAL when the state was given one, else XFRMA_REPLAY_VAL;
    # iproute2 gives one for ESN or a window wider than the legacy bitmap. Listings carry
    # replay_esn for every state, so its presence alone does not tell.
    window = sa.replay_esn.replay_window or sa.replay_window
    return bool(sa.flags & _ESN_FLAG or window > _LEGACY_REPLAY_BITS)


def _replay_lines(state: offload_pb2.State) -> str:
    sa = state.sa
    replay = state.replay if state.HasField("replay") else sa.replay_esn
    if not _uses_esn_context(sa):
        bitmap = replay.bmp[0] if replay.bmp else 0
        return (
            f"{_T}anti-replay context: seq 0x{replay.seq:x}, oseq 0x{replay.oseq:x},"
            f" bitmap 0x{bitmap:08x}\n"
        )
    window = replay.replay_window or sa.replay_esn.replay_window
    bmp_len = replay.bmp_len or len(replay.bmp) or (window + 31) // 32
    words = list(replay.bmp) + [0] * max(0, bmp_len - len(replay.bmp))
    out = f"{_T}anti-replay esn context:\n"
    out += (
        f"{_T} seq-hi 0x{replay.seq_hi:x}, seq 0x{replay.seq:x},"
        f" oseq-hi 0x{replay.oseq_hi:x}, oseq 0x{replay.oseq:x}\n"
    )
    out += f"{_T} replay_window {window}, bitmap-length {bmp_len}"
    # Highest word first, eight to a line, each followed by a space.
    for count, word in enumerate(reversed(words[:bmp_len])):
        if count % _BITMAP_WORDS_PER_LINE == 0:
            out += f"\n{_T} "
        out += f"{word:08x} "
    return out + "\n"


def _offload_line(state: offload_pb2.State, ifname: str) -> str:
    flags = state.sa.offload.flags
    inbound = (
        state.dir == xfrm_pb2.OFFLOAD_DIR_IN
        if state.dir
        else bool(flags & xfrm_pb2.OFFLOAD_FLAG_INBOUND)
    )
    packet = (
        state.type == xfrm_pb2.OFFLOAD_TYPE_PACKET
        if state.type
        else bool(flags & xfrm_pb2.OFFLOAD_FLAG_PACKET)
    )
    return (
        f"{_T}crypto offload parameters: dev {ifname}"
        f" dir {'in' if inbound else 'out'} mode {'packet' if packet else 'crypto'}\n"
    )


def format_state(
    state: offload_pb2.State,
    *,
    stats: bool = False,
    show_keys: bool = False,
    tz: datetime.tzinfo | None = None,
    ifname_of: IfnameOf | None = None,
) -> str:
    """One state as ``ip xfrm state`` prints it (``stats``: ``ip -s xfrm state``).

    ``show_keys`` False prints :data:`KEYS_HIDDEN` where the key would be (the server sends
    no keys unless asked). ``tz`` is the zone of the add/use times (None: local time).
    ``ifname_of`` names selector ifindexes (default ``if<N>``).
    """
    sa = state.sa
    version = _family_version(sa.family) or _family_of(sa.saddr, sa.id.daddr)
    proto = sa.id.proto or 50
    out = _id_lines(
        sa.saddr,
        sa.id.daddr,
        proto,
        sa.id.spi,
        sa.reqid,
        sa.mode,
        version,
        force_spi=proto in (50, 51, 108),
        stats=stats,
        prefix="",
    )
    out += f"{_T}replay-window {sa.replay_window} "
    if stats:
        # iproute2 prints this field with %08u after a 0x: a decimal number, zero-padded.
        out += f"seq 0x{sa.seq:08d} "
    if stats or sa.flags:
        out += "flag " + _flag_words(sa.flags, _STATE_FLAG_NAMES)
    if stats:
        out += f" (0x{_mask8(sa.flags)})"
    out += "\n"
    if sa.extra_flags:
        out += f"{_T}extra_flag {_flag_words(sa.extra_flags, _EXTRA_FLAG_NAMES)}\n"
    out += _state_attributes(state, version, stats=stats, show_keys=show_keys)
    # The kernel fills the selector's family from the state's unless af-unspec is set, so
    # only an af-unspec state can have an all-zero selector, which iproute2 then omits.
    if not (_selector_is_zero(sa.sel) and sa.flags & _AF_UNSPEC_FLAG):
        out += f"{_T}sel " + format_selector(
            sa.sel, version=version, stats=stats, ifname_of=ifname_of
        )
    if stats:
        out += _lifetime_lines(sa.lft, state.curlft, tz)
        out += (
            f"{_T}stats:\n"
            f"{_T}  replay-window {state.stats.replay_window} replay {state.stats.replay}"
            f" failed {state.stats.integrity_failed}\n"
        )
    return out


def _state_attributes(
    state: offload_pb2.State, version: int, *, stats: bool, show_keys: bool
) -> str:
    """xfrm_xfrma_print for a state, in the kernel's attribute order."""
    sa = state.sa
    out = ""
    if sa.mark.v or sa.mark.m:
        out += f"{_T}mark {_hash_x(sa.mark.v)}/{_hash_x(sa.mark.m)}\n"
    if sa.HasField("auth"):
        trunc = sa.auth.alg_trunc_len or _DEFAULT_TRUNC_BITS.get(sa.auth.alg_name, 0)
        key = _key_text(sa.auth.alg_key, stats, show_keys)
        out += f"{_T}auth-trunc {sa.auth.alg_name} {key} {trunc}\n"
    if sa.HasField("aead"):
        key = _key_text(sa.aead.alg_key, stats, show_keys)
        out += f"{_T}aead {sa.aead.alg_name} {key} {sa.aead.alg_icv_len}\n"
    if sa.HasField("enc"):
        out += f"{_T}enc {sa.enc.alg_name} {_key_text(sa.enc.alg_key, stats, show_keys)}\n"
    if sa.HasField("encap"):
        encap = sa.encap
        kind = _ENCAP_NAMES.get(encap.encap_type, str(encap.encap_type))
        out += (
            f"{_T}encap type {kind} sport {encap.encap_sport} dport {encap.encap_dport}"
            f" addr {_addr(encap.encap_oa, version)}\n"
        )
    out += _replay_lines(state)
    if state.dev or sa.HasField("offload"):
        out += _offload_line(state, state.dev or sa.offload.dev)
    if sa.if_id:
        out += f"{_T}if_id {_hash_x(sa.if_id)}\n"
    if sa.tfcpad:
        out += f"{_T}tfcpad {sa.tfcpad}\n"
    if sa.dir:
        out += f"{_T}dir {'in' if sa.dir == xfrm_pb2.SA_DIR_IN else 'out'}\n"
    return out


def _hash_x(value: int) -> str:
    """C's %#x: 0 prints as 0, others with a 0x prefix."""
    return f"{value:#x}" if value else "0"


# --------------------------------------------------------------------------- policy


_POLICY_DIR_NAMES = {
    xfrm_pb2.POLICY_DIR_IN: "in",
    xfrm_pb2.POLICY_DIR_OUT: "out",
    xfrm_pb2.POLICY_DIR_FWD: "fwd",
}


def _policy_version(info: xfrm_pb2.XfrmUserpolicyInfo) -> int:
    found = _family_version(info.sel.family)
    if found:
        return found
    return _family_of(info.sel.saddr, info.sel.daddr, *(t.saddr or t.id.daddr for t in info.tmpl))


def _tmpl_lines(tmpl: xfrm_pb2.XfrmUserTmpl, version: int, *, stats: bool) -> str:
    fam = _family_version(tmpl.family) or _family_of(tmpl.saddr, tmpl.id.daddr) or version
    out = _T + _id_lines(
        tmpl.saddr,
        tmpl.id.daddr,
        tmpl.id.proto,
        tmpl.id.spi,
        tmpl.reqid,
        tmpl.mode,
        fam,
        force_spi=False,
        stats=stats,
        prefix=_T,
        title="tmpl ",
    )
    if stats or tmpl.optional:
        out += f"{_T}\t"
        if tmpl.optional:
            out += "level use "
        elif stats:
            out += "level required "
        if stats:
            out += "share any "
        out += "\n"
    if stats:
        out += (
            f"{_T}\tenc-mask {tmpl.ealgos:08x} auth-mask {tmpl.aalgos:08x}"
            f" comp-mask {tmpl.calgos:08x}\n"
        )
    return out


def format_policy(
    policy: offload_pb2.Policy,
    *,
    stats: bool = False,
    tz: datetime.tzinfo | None = None,
    ifname_of: IfnameOf | None = None,
) -> str:
    """One policy as ``ip xfrm policy`` prints it (``stats``: ``ip -s xfrm policy``)."""
    info = policy.policy
    version = _policy_version(info)
    out = format_selector(info.sel, version=version, stats=stats, ifname_of=ifname_of)
    out += f"{_T}dir {_POLICY_DIR_NAMES.get(info.dir, str(info.dir))} "
    if info.action == xfrm_pb2.POLICY_ACTION_BLOCK:
        out += "action block "
    elif stats:
        out += "action allow "
    if stats:
        out += f"index {info.index} "
    out += f"priority {info.priority} ptype main "
    if stats:
        out += "share any "
    if stats or info.flags:
        out += "flag " + _flag_words(info.flags, _POLICY_FLAG_NAMES)
    if stats:
        out += f" (0x{_mask8(info.flags)})"
    out += "\n"
    if stats:
        out += _lifetime_lines(info.lft, policy.curlft, tz)
    if info.mark.v or info.mark.m:
        out += f"{_T}mark {_hash_x(info.mark.v)}/{_hash_x(info.mark.m)}\n"
    for tmpl in info.tmpl:
        out += _tmpl_lines(tmpl, version, stats=stats)
    if policy.dev or info.HasField("offload"):
        out += f"{_T}crypto offload parameters: dev {policy.dev or info.offload.dev} mode packet\n"
    if info.if_id:
        out += f"{_T}if_id {_hash_x(info.if_id)}\n"
    return out


# --------------------------------------------------------------------------- counters


def format_xfrm_stat(counters: Iterable[offload_pb2.XfrmStatCounter]) -> str:
    """/proc/net/xfrm_stat: one ``%-24s\\t%lu`` line per counter, in the order given."""
    return "".join(f"{c.name:<24}\t{c.value}\n" for c in counters)


# --------------------------------------------------------------------------- events


def _id_summary(ident: xfrm_pb2.XfrmId, saddr: str = "") -> str:
    version = _family_of(saddr, ident.daddr)
    head = f"src {_addr(saddr, version)} " if saddr else ""
    return (
        f"{head}dst {_addr(ident.daddr, version)}\n"
        f"{_T}proto {_xfrm_proto(ident.proto)} spi 0x{ident.spi:08x}\n"
    )


def format_mapping(mapping: offload_pb2.MappingEvent) -> str:
    """XFRM_MSG_MAPPING as ``ip xfrm monitor`` prints it (xfrm_mapping_print)."""
    version = _family_of(mapping.old_saddr, mapping.id.daddr)
    return (
        f"Mapping change {_addr(mapping.old_saddr, version)}:{mapping.old_sport} -> "
        f"{_addr(mapping.new_saddr, version)}:{mapping.new_sport}\n"
        f"{_T}dst {_addr(mapping.id.daddr, version)}  reqid 0x{mapping.reqid:x}"
        f" protocol {_xfrm_proto(mapping.id.proto)}  SPI 0x{mapping.id.spi:x}\n"
    )


def format_event(
    event: offload_pb2.WatchEventsResponse,
    *,
    state: offload_pb2.State | None = None,
    policy: offload_pb2.Policy | None = None,
    tz: datetime.tzinfo | None = None,
    ifname_of: IfnameOf | None = None,
) -> str:
    """One event as ``ip xfrm monitor`` prints it.

    Events carry the object's identity, not its whole configuration. Pass the ``state`` /
    ``policy`` (from a listing) to get iproute2's full block; without it the block is the
    identity lines only. Kinds the kernel has no message for (link, sequence overflow, lost
    events) get one descriptive line.
    """
    kind = event.WhichOneof("body")
    if kind == "expire":
        expire = event.expire
        body = (
            format_state(state, tz=tz, ifname_of=ifname_of)
            if state is not None
            else _id_summary(expire.id, expire.saddr)
        )
        return f"Expired {body}{_T} hard {int(expire.hard)}\n"
    if kind == "acquire":
        acquire = event.acquire
        tmpl = acquire.tmpl
        out = f"acquire proto {_xfrm_proto(tmpl.id.proto)} "
        if tmpl.id.spi:
            out += f"spi 0x{tmpl.id.spi:08x} "
        out += "\n  sel " + format_selector(acquire.sel, ifname_of=ifname_of)
        if policy is not None:
            out += "  policy " + format_policy(policy, tz=tz, ifname_of=ifname_of)
        else:
            out += f"  policy index {acquire.policy_index} dev {event.dev}\n"
        return out
    if kind == "object":
        obj = event.object
        if event.kind == offload_pb2.EVENT_KIND_POLICY_DELETED and obj.reason == "expired":
            # The kernel deletes a hard-expired policy without XFRM_MSG_DELPOLICY: ip xfrm
            # monitor shows only the POLEXPIRE before it.
            return ""
        deleted = event.kind in (
            offload_pb2.EVENT_KIND_STATE_DELETED,
            offload_pb2.EVENT_KIND_POLICY_DELETED,
        )
        lead = "Deleted " if deleted else ""
        if event.kind in (offload_pb2.EVENT_KIND_STATE_ADDED, offload_pb2.EVENT_KIND_STATE_DELETED):
            body = (
                format_state(state, tz=tz, ifname_of=ifname_of)
                if state is not None
                else _id_summary(obj.id)
            )
        elif policy is not None:
            body = format_policy(policy, tz=tz, ifname_of=ifname_of)
        else:
            body = f"policy dev {event.dev} handle 0x{obj.policy.offload_handle:x}\n"
        return lead + body
    if kind == "policy_expire":
        # xfrm_policy_print of XFRM_MSG_POLEXPIRE: the policy, then its hard flag.
        expired = event.policy_expire
        body = format_policy(expired.policy, tz=tz, ifname_of=ifname_of)
        return f"Expired {body}{_T}hard {int(expired.hard)}\n"
    if kind == "mapping":
        return format_mapping(event.mapping)
    if kind == "link":
        up = event.link.link == offload_pb2.LINK_STATE_UP
        return f"dev {event.dev} link {'up' if up else 'down'}\n"
    if kind == "seq_overflow":
        return f"Sequence overflow {_id_summary(event.seq_overflow.id)}"
    if kind == "esn_advanced":
        return (
            f"Async event (esn advanced) dev {event.dev}"
            f" handle 0x{event.esn_advanced.ref.offload_handle:x}"
            f" seq-hi 0x{event.esn_advanced.seq_hi:x}\n"
        )
    if kind == "bond_failover":
        f = event.bond_failover
        return (
            f"dev {event.dev} failover {f.old_active or '(none)'} -> {f.new_active or '(none)'}:"
            f" {f.states} states and {f.policies} policies added again, {f.failed} refused\n"
        )
    if kind == "lost":
        return f"Lost {event.lost.count} events\n"
    return f"Unknown event {event.kind}\n"


def _enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def format_device(device: offload_pb2.Device, *, details: bool) -> str:
    """Human output of one device, `ip link`-like."""
    link = _enum_name(offload_pb2.LinkState, device.link, "LINK_STATE_")
    lines = [
        f"{device.ifindex}: {device.name}: profile {device.profile} link {link}"
        + (f" cable {device.cable_peer}" if device.cable_peer else ""),
        f"    features: {' '.join(device.features) or '-'}",
        f"    states {device.state_count} policies {device.policy_count}",
    ]
    if device.HasField("interfaces"):
        lines += format_interfaces(device.interfaces)
    if device.HasField("bond"):  # a bond has no capabilities of its own: its members do
        bond = device.bond
        lines.append(
            f"    bond mode {bond.mode} members {','.join(bond.members)}"
            f" active {bond.active or '(none)'}"
        )
        return "\n".join(lines)
    if details:
        if device.engine:
            lines.append(f"    engine {device.engine}")
        caps = device.capabilities
        types = ",".join(
            _enum_name(xfrm_pb2.OffloadType, t, "OFFLOAD_TYPE_") for t in caps.offload_types
        )
        modes = ",".join(_enum_name(xfrm_pb2.XfrmMode, m, "XFRM_MODE_") for m in caps.modes)
        lines.append(f"    offload {types} modes {modes} esn {'on' if caps.esn else 'off'}")
        lines.append(
            f"    max-states {caps.max_states or 'unlimited'} max-replay-window "
            f"{caps.max_replay_window} mtu {caps.mtu}"
        )
        if caps.packet_in_replay_windows:
            windows = ",".join(str(w) for w in caps.packet_in_replay_windows)
            lines.append(f"    packet-in replay-windows {windows}")
        rules = [
            name
            for name, on in (
                ("reqid-required", caps.reqid_required),
                ("soft-below-hard", caps.soft_below_hard),
            )
            if on
        ]
        if rules:
            lines.append(f"    rules {' '.join(rules)}")
        if caps.natt:
            natt_types = ",".join(
                _enum_name(xfrm_pb2.OffloadType, t, "OFFLOAD_TYPE_")
                for t in caps.natt_offload_types
            )
            natt_modes = ",".join(
                _enum_name(xfrm_pb2.XfrmMode, m, "XFRM_MODE_") for m in caps.natt_modes
            )
            lines.append(f"    nat-t espinudp offload {natt_types} modes {natt_modes}")
        if caps.policy_offload:
            dirs = ",".join(
                _enum_name(xfrm_pb2.PolicyDir, d, "POLICY_DIR_") for d in caps.policy_dirs
            )
            lines.append(
                f"    policy-offload dirs {dirs} max-templates {caps.max_policy_templates}"
            )
        for alg in caps.algorithms:
            keys = ",".join(str(k) for k in alg.key_bits)
            icvs = ",".join(str(i) for i in alg.icv_bits)
            lines.append(f"    {alg.kind} {alg.name} key-bits {keys} icv-bits {icvs or '-'}")
    return "\n".join(lines)


def format_interfaces(ifs: offload_pb2.Interfaces) -> list[str]:
    """The real interfaces on a device's two sides and their counters."""
    running = "running" if ifs.wire_running else "down"
    wire = ifs.wire_if or f"udp {ifs.wire_udp}"
    return [
        f"    host tun {ifs.host_tun} mtu {ifs.host_mtu} wire {wire} mtu {ifs.wire_mtu} {running}",
        f"    host rx {ifs.host_rx_packets} tx {ifs.host_tx_packets}"
        f" rx-dropped {ifs.host_rx_dropped} tx-dropped {ifs.host_tx_dropped}"
        f"  wire rx {ifs.wire_rx_packets} tx {ifs.wire_tx_packets}"
        f" rx-dropped {ifs.wire_rx_dropped} tx-dropped {ifs.wire_tx_dropped}"
        f"  too-big {ifs.too_big} fragmented {ifs.fragmented}",
        f"    host tun-offload {'on' if ifs.tun_offload else 'off'}"
        f" rx-segmented {ifs.host_rx_segmented} tx-coalesced {ifs.host_tx_coalesced}"
        f" rx-errors {ifs.host_rx_errors}",
    ]

"""Proto <-> engine types. Only translation here: no rules, no state."""

from __future__ import annotations

import enum
import functools
import ipaddress
import socket
from typing import TypeVar, cast

from xfrm_offload.engine import native
from xfrm_offload.engine.bond import Bond, BondFailover, BondMode
from xfrm_offload.engine.device import (
    Device,
    Lifecycle,
    OffloadedPolicy,
    OffloadedState,
    ReplayStateEsn,
    StateCounters,
)
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.events import (
    Acquire,
    EsnAdvanced,
    Event,
    Expired,
    LinkChanged,
    NewMapping,
    PolicyAdded,
    PolicyDeleted,
    PolicyExpired,
    SAId,
    SeqOverflow,
    StateAdded,
    StateDeleted,
    StateEvent,
)
from xfrm_offload.engine.impair import GilbertElliott, Impairment, ImpairmentConfig
from xfrm_offload.engine.profiles import Capabilities
from xfrm_offload.engine.sa import CurLifetime
from xfrm_offload.engine.spd import (
    Policy,
    PolicyAction,
    PolicyFlag,
    Share,
    Template,
    TemplateLevel,
)
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    IPPROTO_ESP,
    NO_LIMITS,
    NO_REPLAY,
    XFRM_INF,
    Algorithm,
    Direction,
    EncapTemplate,
    EncapType,
    Family,
    IPAddress,
    LifetimeConfig,
    Mode,
    OffloadType,
    ReplayState,
    SAConfig,
    SAExtraFlag,
    SAFlag,
    Selector,
)
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

MODE_TO_PB = {Mode.TRANSPORT: xpb.XFRM_MODE_TRANSPORT, Mode.TUNNEL: xpb.XFRM_MODE_TUNNEL}
OFFLOAD_TYPE_TO_PB = {
    OffloadType.UNSPECIFIED: xpb.OFFLOAD_TYPE_UNSPECIFIED,
    OffloadType.CRYPTO: xpb.OFFLOAD_TYPE_CRYPTO,
    OffloadType.PACKET: xpb.OFFLOAD_TYPE_PACKET,
}
OFFLOAD_DIR_TO_PB = {
    Direction.IN: xpb.OFFLOAD_DIR_IN,
    Direction.OUT: xpb.OFFLOAD_DIR_OUT,
    Direction.FWD: xpb.OFFLOAD_DIR_FWD,
}
POLICY_DIR_TO_PB = {
    Direction.IN: xpb.POLICY_DIR_IN,
    Direction.OUT: xpb.POLICY_DIR_OUT,
    Direction.FWD: xpb.POLICY_DIR_FWD,
}


def capabilities_to_pb(caps: Capabilities) -> pb.Capabilities:
    return pb.Capabilities(
        algorithms=[
            pb.AlgorithmCapability(
                name=a.name, kind=a.kind, key_bits=a.key_bits, icv_bits=a.icv_bits
            )
            for a in caps.algorithms
        ],
        offload_types=[OFFLOAD_TYPE_TO_PB[t] for t in caps.offload_types],
        modes=[MODE_TO_PB[m] for m in caps.modes],
        esn=caps.esn,
        max_states=caps.max_states,
        max_replay_window=caps.max_replay_window,
        packet_in_replay_windows=caps.packet_in_replay_windows,
        reqid_required=caps.reqid_required,
        soft_below_hard=caps.soft_below_hard,
        natt=caps.natt,
        natt_offload_types=[OFFLOAD_TYPE_TO_PB[t] for t in caps.natt_offload_types],
        natt_modes=[MODE_TO_PB[m] for m in caps.natt_modes],
        policy_offload=caps.policy_offload,
        policy_dirs=[POLICY_DIR_TO_PB[d] for d in caps.policy_dirs],
        max_policy_templates=caps.max_policy_templates,
        mtu=caps.mtu,
    )


def device_to_pb(device: Device) -> pb.Device:
    """The device as ListDevices shows it; the servicer fills in cable_peer."""
    return pb.Device(
        name=device.name,
        ifindex=device.ifindex,
        profile=device.profile.name,
        link=pb.LINK_STATE_UP if device.up else pb.LINK_STATE_DOWN,
        features=device.profile.features,
        capabilities=capabilities_to_pb(device.profile.capabilities),
        state_count=device.state_count,
        policy_count=device.policy_count,
        crypto_tx_packets=device.offload_tx_packets,
        debugfs=device.netdevsim_debugfs() if device.profile.netdevsim_handles else "",
        engine=native.engine(),
    )


#: What an active-backup bond advertises (BOND_XFRM_FEATURES).
_BOND_XFRM_FEATURES = ("NETIF_F_HW_ESP", "NETIF_F_HW_ESP_TX_CSUM", "NETIF_F_GSO_ESP")


def bond_to_pb(bond: Bond) -> pb.Device:
    """A bond as ListDevices shows it: profile "bond", its mode, members and active one."""
    active = bond.active
    return pb.Device(
        name=bond.name,
        ifindex=bond.ifindex,
        profile="bond",
        link=pb.LINK_STATE_UP if bond.up and active is not None else pb.LINK_STATE_DOWN,
        features=_BOND_XFRM_FEATURES if bond.mode == BondMode.ACTIVE_BACKUP else (),
        state_count=bond.state_count,
        policy_count=bond.policy_count,
        bond=pb.BondInfo(
            mode=bond.mode.value,
            members=list(bond.paths),
            active="" if active is None else active.name,
        ),
    )


def bonded_state_to_pb(
    bond: Bond, handle: int, member: Device, entry: OffloadedState, *, include_keys: bool
) -> pb.State:
    """A state of the bond: the member's entry, named by the bond (``ip xfrm state``
    shows ``dev bond0``: xso.dev is the bond)."""
    state = state_to_pb(member, entry, include_keys=include_keys)
    state.offload_handle = handle
    state.dev = bond.name
    state.sa.offload.dev = bond.name
    state.sa.offload.ifindex = bond.ifindex
    return state


def bonded_policy_to_pb(bond: Bond, handle: int, entry: OffloadedPolicy) -> pb.Policy:
    lft = entry.lifetime
    return _policy_pb(
        entry.policy,
        bond.name,
        bond.ifindex,
        handle,
        _LIFECYCLE_TO_PB[entry.lifecycle],
        xpb.XfrmLifetimeCur(add_time=int(lft.add_time), use_time=int(lft.use_time or 0)),
    )


# -- requests -> engine configuration ------------------------------------------------
#
# Field names in errors are paths inside the request's XfrmUsersaInfo /
# XfrmUserpolicyInfo; the servicer prefixes them with the request field ("sa.").

_FAMILY_FROM_PB: dict[int, Family] = {
    xpb.ADDRESS_FAMILY_INET: Family.INET,
    xpb.ADDRESS_FAMILY_INET6: Family.INET6,
}
_MODE_FROM_PB: dict[int, Mode] = {
    xpb.XFRM_MODE_UNSPECIFIED: Mode.TRANSPORT,
    xpb.XFRM_MODE_TRANSPORT: Mode.TRANSPORT,
    xpb.XFRM_MODE_TUNNEL: Mode.TUNNEL,
}
_SA_DIR_FROM_PB: dict[int, Direction] = {xpb.SA_DIR_IN: Direction.IN, xpb.SA_DIR_OUT: Direction.OUT}

_ENCAP_TO_PB: dict[EncapType, xpb.EncapType] = {
    EncapType.ESPINUDP: xpb.ENCAP_TYPE_ESPINUDP,
    EncapType.ESPINUDP_NON_IKE: xpb.ENCAP_TYPE_ESPINUDP_NON_IKE,
    EncapType.ESPINTCP: xpb.ENCAP_TYPE_ESPINTCP,
}
_ENCAP_FROM_PB = {v: k for k, v in _ENCAP_TO_PB.items()}
_U32 = 0xFFFFFFFF
_F = TypeVar("_F", bound=enum.IntFlag)


def _family_of(addr: IPAddress) -> Family:
    return Family.INET if addr.version == 4 else Family.INET6


def parse_address(text: str, field: str, *, required: bool = True) -> IPAddress | None:
    """A textual address, or InvalidArgument naming ``field``."""
    if not text:
        if required:
            raise InvalidArgument(f"{field} is required", field=field)
        return None
    # inet_pton is strict (no "1.2.3" shorthands) and far faster than ip_address's parser
    try:
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    try:
        return ipaddress.IPv6Address(socket.inet_pton(socket.AF_INET6, text))
    except (OSError, ValueError):
        raise InvalidArgument(f"{field}: {text!r} is not an IP address", field=field) from None


def _family(
    requested: int, addrs: list[tuple[IPAddress | None, str]], field: str, default: Family
) -> Family:
    """The family the message asks for, checked against every address it carries."""
    family = _FAMILY_FROM_PB.get(requested)
    if requested and family is None:
        raise InvalidArgument(f"{field}: unknown address family {requested}", field=field)
    for addr, name in addrs:
        if addr is None:
            continue
        if family is None:
            family = _family_of(addr)
        elif _family_of(addr) != family:
            raise InvalidArgument(
                f"{name} is IPv{addr.version} but the family is "
                f"{'IPv4' if family == Family.INET else 'IPv6'}",
                field=name,
            )
    return default if family is None else family


def selector_from_pb(sel: xpb.XfrmSelector, field: str, default_family: Family) -> Selector:
    daddr = parse_address(sel.daddr, f"{field}.daddr", required=False)
    saddr = parse_address(sel.saddr, f"{field}.saddr", required=False)
    family = _family(
        sel.family,
        [(daddr, f"{field}.daddr"), (saddr, f"{field}.saddr")],
        f"{field}.family",
        default_family,
    )
    # The values are checked by the engine (selector.check_selector), for SAs and policies.
    return Selector(
        daddr=daddr,
        saddr=saddr,
        prefixlen_d=sel.prefixlen_d,
        prefixlen_s=sel.prefixlen_s,
        dport=sel.dport,
        dport_mask=sel.dport_mask,
        sport=sel.sport,
        sport_mask=sel.sport_mask,
        family=family,
        proto=sel.proto,
        ifindex=sel.ifindex,
        user=sel.user,
    )


def lifetime_from_pb(lft: xpb.XfrmLifetimeCfg) -> LifetimeConfig:
    def limit(name: str) -> int:
        return int(getattr(lft, name)) if lft.HasField(name) else XFRM_INF

    return LifetimeConfig(
        soft_byte_limit=limit("soft_byte_limit"),
        hard_byte_limit=limit("hard_byte_limit"),
        soft_packet_limit=limit("soft_packet_limit"),
        hard_packet_limit=limit("hard_packet_limit"),
        soft_add_expires_seconds=lft.soft_add_expires_seconds,
        hard_add_expires_seconds=lft.hard_add_expires_seconds,
        soft_use_expires_seconds=lft.soft_use_expires_seconds,
        hard_use_expires_seconds=lft.hard_use_expires_seconds,
    )


@functools.cache
def _known_bits(flag_type: type[enum.IntFlag]) -> int:
    known = 0
    for member in flag_type:
        known |= int(member)
    return known


#: (flag type, value) -> member. Building an IntFlag member costs a microsecond; only
#: values of known bits get in, which bounds the cache.
_FLAG_MEMBERS: dict[tuple[type[enum.IntFlag], int], enum.IntFlag] = {}


def _flags(value: int, flag_type: type[_F], field: str) -> _F:
    member = _FLAG_MEMBERS.get((flag_type, value))
    if member is None:
        known = _known_bits(flag_type)
        if value & ~known:
            raise InvalidArgument(f"{field}: unknown bits 0x{value & ~known:x}", field=field)
        member = _FLAG_MEMBERS[flag_type, value] = flag_type(value)
    return cast(_F, member)


#: What an absent selector means, shared (frozen); an absent lifetime or replay state is
#: the engine's shared NO_LIMITS or NO_REPLAY.
_ANY_SELECTOR = {family: Selector(family=family) for family in Family}


def sa_config_from_pb(sa: xpb.XfrmUsersaInfo) -> SAConfig:
    """XfrmUsersaInfo -> SAConfig, checking what a netlink parser would (field-named errors).

    The offload attribute is not translated here: the device layer reads its raw
    flags itself, as the kernel's xfrm_dev_state_add does.
    """
    sid = sa.id  # each read of a submessage field builds a new wrapper: read once
    daddr = parse_address(sid.daddr, "id.daddr")
    saddr = parse_address(sa.saddr, "saddr")
    assert daddr is not None and saddr is not None
    # The family as the engine's value; whether the addresses are of it is the
    # engine's first check (sa._validate, as verify_newsa_info's).
    family = _FAMILY_FROM_PB.get(sa.family) if sa.family else _family_of(daddr)
    if family is None:
        raise InvalidArgument(f"family: unknown address family {sa.family}", field="family")
    if sa.mode not in _MODE_FROM_PB:
        raise InvalidArgument(f"mode: unknown mode {sa.mode}", field="mode")
    if sa.dir and sa.dir not in _SA_DIR_FROM_PB:
        raise InvalidArgument(f"dir: unknown direction {sa.dir}", field="dir")
    proto = sid.proto
    if proto > 255:
        raise InvalidArgument("id.proto must be 0-255", field="id.proto")
    flags = _flags(sa.flags, SAFlag, "flags")
    if sa.HasField("replay_esn"):
        esn = sa.replay_esn
        window = esn.replay_window
        if esn.bmp_len and window > esn.bmp_len * 32:
            raise InvalidArgument(
                "ESN replay window is too large for the chosen bitmap size",
                field="replay_esn.replay_window",
            )
        replay = ReplayState(seq=esn.seq, seq_hi=esn.seq_hi, oseq=esn.oseq, oseq_hi=esn.oseq_hi)
    else:
        window = sa.replay_window
        replay = NO_REPLAY
    has_enc, has_auth = sa.HasField("enc"), sa.HasField("auth")
    aead = None
    if sa.HasField("aead"):
        if has_enc or has_auth:
            raise InvalidArgument("aead excludes enc and auth", field="aead")
        a = sa.aead
        aead = Algorithm(a.alg_name, a.alg_key, a.alg_icv_len)
    enc = Algorithm(sa.enc.alg_name, sa.enc.alg_key) if has_enc else None
    auth = Algorithm(sa.auth.alg_name, sa.auth.alg_key, sa.auth.alg_trunc_len) if has_auth else None
    encap = None
    if sa.HasField("encap"):
        encap_type = _ENCAP_FROM_PB.get(sa.encap.encap_type)
        if encap_type is None:
            raise InvalidArgument("encap.encap_type is required", field="encap.encap_type")
        encap = EncapTemplate(
            encap_type=encap_type,
            sport=sa.encap.encap_sport,
            dport=sa.encap.encap_dport,
            oa=parse_address(sa.encap.encap_oa, "encap.encap_oa", required=False),
        )
    mark = sa.mark
    return SAConfig(
        daddr=daddr,
        saddr=saddr,
        spi=sid.spi,
        proto=proto or IPPROTO_ESP,
        family=family,
        mode=_MODE_FROM_PB[sa.mode],
        reqid=sa.reqid,
        flags=flags,
        extra_flags=_flags(sa.extra_flags, SAExtraFlag, "extra_flags"),
        replay_window=window,
        replay=replay,
        aead=aead,
        enc=enc,
        auth=auth,
        encap=encap,
        selector=(
            selector_from_pb(sa.sel, "sel", family) if sa.HasField("sel") else _ANY_SELECTOR[family]
        ),
        lifetime=lifetime_from_pb(sa.lft) if sa.HasField("lft") else NO_LIMITS,
        mark=mark.v,
        mark_mask=mark.m,
        if_id=sa.if_id,
        tfcpad=sa.tfcpad,
        sa_dir=_SA_DIR_FROM_PB.get(sa.dir),
        mapping_maxage=sa.mapping_maxage,
    )


_PB_POLICY_DIR: dict[int, Direction] = {
    xpb.POLICY_DIR_IN: Direction.IN,
    xpb.POLICY_DIR_OUT: Direction.OUT,
    xpb.POLICY_DIR_FWD: Direction.FWD,
}
_PB_POLICY_ACTION: dict[int, PolicyAction] = {
    xpb.POLICY_ACTION_UNSPECIFIED: PolicyAction.ALLOW,
    xpb.POLICY_ACTION_ALLOW: PolicyAction.ALLOW,
    xpb.POLICY_ACTION_BLOCK: PolicyAction.BLOCK,
}


def template_from_pb(tmpl: xpb.XfrmUserTmpl, field: str) -> Template:
    daddr = parse_address(tmpl.id.daddr, f"{field}.id.daddr", required=False)
    saddr = parse_address(tmpl.saddr, f"{field}.saddr", required=False)
    family = _family(
        tmpl.family,
        [(daddr, f"{field}.id.daddr"), (saddr, f"{field}.saddr")],
        f"{field}.family",
        Family.INET,
    )
    if tmpl.mode not in _MODE_FROM_PB:
        raise InvalidArgument(f"{field}.mode: unknown mode {tmpl.mode}", field=f"{field}.mode")
    # A tunnel-mode template without daddr: the engine's spd.check_templates.
    if tmpl.share > max(Share):
        raise InvalidArgument(f"{field}.share: unknown share {tmpl.share}", field=f"{field}.share")
    return Template(
        daddr=daddr,
        saddr=saddr,
        proto=tmpl.id.proto or IPPROTO_ESP,
        spi=tmpl.id.spi,
        reqid=tmpl.reqid,
        mode=_MODE_FROM_PB[tmpl.mode],
        level=TemplateLevel.USE if tmpl.optional else TemplateLevel.REQUIRED,
        share=Share(tmpl.share),
        family=family if (daddr or saddr or tmpl.family) else None,
    )


def policy_from_pb(policy: xpb.XfrmUserpolicyInfo) -> Policy:
    """XfrmUserpolicyInfo -> Policy (field-named errors, relative to the message)."""
    direction = _PB_POLICY_DIR.get(policy.dir)
    if direction is None:
        raise InvalidArgument(
            "dir must be in, out or fwd", field="dir", allowed=("IN", "OUT", "FWD")
        )
    action = _PB_POLICY_ACTION.get(policy.action)
    if action is None:
        raise InvalidArgument(f"action: unknown action {policy.action}", field="action")
    sel = selector_from_pb(policy.sel, "sel", Family.INET)
    return Policy(
        sel=sel,
        dir=direction,
        index=policy.index,
        priority=policy.priority,
        action=action,
        flags=_flags(policy.flags, PolicyFlag, "flags"),
        templates=tuple(template_from_pb(t, f"tmpl[{i}]") for i, t in enumerate(policy.tmpl)),
        mark=policy.mark.v,
        mark_mask=policy.mark.m,
        if_id=policy.if_id,
        lifetime=lifetime_from_pb(policy.lft),
    )


# -- engine objects -> replies --------------------------------------------------------

_FAMILY_TO_PB = {Family.INET: xpb.ADDRESS_FAMILY_INET, Family.INET6: xpb.ADDRESS_FAMILY_INET6}
_SA_DIR_TO_PB = {Direction.IN: xpb.SA_DIR_IN, Direction.OUT: xpb.SA_DIR_OUT}
_LIFECYCLE_TO_PB = {Lifecycle.ACTIVE: pb.LIFECYCLE_ACTIVE, Lifecycle.DELETED: pb.LIFECYCLE_DELETED}


def _addr(addr: IPAddress | None) -> str:
    return "" if addr is None else str(addr)


def selector_to_pb(sel: Selector) -> xpb.XfrmSelector:
    return xpb.XfrmSelector(
        daddr=_addr(sel.daddr),
        saddr=_addr(sel.saddr),
        dport=sel.dport,
        dport_mask=sel.dport_mask,
        sport=sel.sport,
        sport_mask=sel.sport_mask,
        family=_FAMILY_TO_PB[sel.family],
        prefixlen_d=sel.prefixlen_d,
        prefixlen_s=sel.prefixlen_s,
        proto=sel.proto,
        ifindex=sel.ifindex,
        user=sel.user,
    )


def lifetime_to_pb(lft: LifetimeConfig) -> xpb.XfrmLifetimeCfg:
    out = xpb.XfrmLifetimeCfg(
        soft_add_expires_seconds=lft.soft_add_expires_seconds,
        hard_add_expires_seconds=lft.hard_add_expires_seconds,
        soft_use_expires_seconds=lft.soft_use_expires_seconds,
        hard_use_expires_seconds=lft.hard_use_expires_seconds,
    )
    for name in ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit"):
        value = getattr(lft, name)
        if value != XFRM_INF:
            setattr(out, name, value)
    return out


def curlft_to_pb(cur: CurLifetime) -> xpb.XfrmLifetimeCur:
    return xpb.XfrmLifetimeCur(
        bytes=cur.bytes,
        packets=cur.packets,
        add_time=int(cur.add_time),
        use_time=int(cur.use_time or 0),
    )


def replay_to_pb(replay: ReplayStateEsn) -> xpb.XfrmReplayStateEsn:
    return xpb.XfrmReplayStateEsn(
        bmp_len=replay.bmp_len,
        oseq=replay.oseq,
        seq=replay.seq,
        oseq_hi=replay.oseq_hi,
        seq_hi=replay.seq_hi,
        replay_window=replay.replay_window,
        bmp=replay.bmp,
    )


def _key(alg: Algorithm, include_keys: bool) -> bytes:
    return alg.key if include_keys else b""


def sa_config_to_pb(
    config: SAConfig, offload: xpb.XfrmUserOffload, *, include_keys: bool
) -> xpb.XfrmUsersaInfo:
    """SAConfig -> XfrmUsersaInfo; key bytes only with ``include_keys`` (lengths always)."""
    out = xpb.XfrmUsersaInfo(
        sel=selector_to_pb(config.selector),
        id=xpb.XfrmId(daddr=str(config.daddr), spi=config.spi, proto=config.proto),
        saddr=str(config.saddr),
        lft=lifetime_to_pb(config.lifetime),
        reqid=config.reqid,
        family=_FAMILY_TO_PB[config.family],
        mode=MODE_TO_PB[config.mode],
        replay_window=config.replay_window,
        flags=int(config.flags),
        mark=xpb.XfrmMark(v=config.mark, m=config.mark_mask),
        if_id=config.if_id,
        tfcpad=config.tfcpad,
        extra_flags=int(config.extra_flags),
        dir=xpb.SA_DIR_UNSPECIFIED if config.sa_dir is None else _SA_DIR_TO_PB[config.sa_dir],
        offload=offload,
        mapping_maxage=config.mapping_maxage,
    )
    if config.esn or config.replay_window > 32:
        # XFRMA_REPLAY_ESN_VAL exists for ESN and bitmap windows only (as the kernel
        # reports it), so a listing tells an ESN state from a legacy one.
        out.replay_esn.CopyFrom(
            xpb.XfrmReplayStateEsn(
                bmp_len=(config.replay_window + 31) // 32,
                replay_window=config.replay_window,
                seq=config.replay.seq,
                seq_hi=config.replay.seq_hi,
                oseq=config.replay.oseq,
                oseq_hi=config.replay.oseq_hi,
            )
        )
    if config.aead is not None:
        a = config.aead
        out.aead.CopyFrom(
            xpb.XfrmAlgoAead(
                alg_name=a.name,
                alg_key=_key(a, include_keys),
                alg_icv_len=a.icv_bits,
                alg_key_len=len(a.key) * 8,
            )
        )
    if config.enc is not None:
        e = config.enc
        out.enc.CopyFrom(
            xpb.XfrmAlgo(alg_name=e.name, alg_key=_key(e, include_keys), alg_key_len=len(e.key) * 8)
        )
    if config.auth is not None:
        h = config.auth
        out.auth.CopyFrom(
            xpb.XfrmAlgoAuth(
                alg_name=h.name,
                alg_key=_key(h, include_keys),
                alg_trunc_len=h.icv_bits,
                alg_key_len=len(h.key) * 8,
            )
        )
    if config.encap is not None:
        out.encap.CopyFrom(
            xpb.XfrmEncapTmpl(
                encap_type=_ENCAP_TO_PB[config.encap.encap_type],
                encap_sport=config.encap.sport,
                encap_dport=config.encap.dport,
                encap_oa=_addr(config.encap.oa),
            )
        )
    return out


def _offload_flags(type: OffloadType, direction: Direction, v6: bool) -> int:
    flags = xpb.OFFLOAD_FLAG_IPV6 if v6 else 0
    if direction == Direction.IN:
        flags |= xpb.OFFLOAD_FLAG_INBOUND
    if type == OffloadType.PACKET:
        flags |= xpb.OFFLOAD_FLAG_PACKET
    return flags


def state_to_pb(device: Device, entry: OffloadedState, *, include_keys: bool) -> pb.State:
    counters = device.update_curlft(entry.handle)
    offload = xpb.XfrmUserOffload(
        dev=device.name,
        ifindex=device.ifindex,
        flags=_offload_flags(entry.type, entry.dir, entry.config.family == Family.INET6),
    )
    return pb.State(
        sa=sa_config_to_pb(entry.config, offload, include_keys=include_keys),
        offload_handle=entry.handle,
        dev=device.name,
        type=OFFLOAD_TYPE_TO_PB[entry.type],
        dir=OFFLOAD_DIR_TO_PB[entry.dir],
        lifecycle=_LIFECYCLE_TO_PB[entry.lifecycle],
        curlft=curlft_to_pb(counters.curlft),
        stats=xpb.XfrmStats(
            replay_window=counters.replay_window,
            replay=counters.replay,
            integrity_failed=counters.integrity_failed,
        ),
        replay=replay_to_pb(counters.replay_state),
        expired=counters.expired,
    )


def update_curlft_to_pb(counters: StateCounters) -> pb.UpdateCurlftResponse:
    return pb.UpdateCurlftResponse(
        curlft=curlft_to_pb(counters.curlft),
        stats=xpb.XfrmStats(
            replay_window=counters.replay_window,
            replay=counters.replay,
            integrity_failed=counters.integrity_failed,
        ),
        replay=replay_to_pb(counters.replay_state),
        drops=[
            pb.XfrmStatCounter(name=stat.value, value=value)
            for stat, value in sorted(counters.drops.items(), key=lambda kv: _STAT_ORDER[kv[0]])
        ],
    )


_STAT_ORDER = {stat: i for i, stat in enumerate(XfrmStat)}


def template_to_pb(tmpl: Template) -> xpb.XfrmUserTmpl:
    family = tmpl.family or Family.INET
    return xpb.XfrmUserTmpl(
        id=xpb.XfrmId(daddr=_addr(tmpl.daddr), spi=tmpl.spi, proto=tmpl.proto),
        family=_FAMILY_TO_PB[family],
        saddr=_addr(tmpl.saddr),
        reqid=tmpl.reqid,
        mode=MODE_TO_PB[tmpl.mode],
        share=int(tmpl.share),
        optional=tmpl.level == TemplateLevel.USE,
        aalgos=0xFFFFFFFF,
        ealgos=0xFFFFFFFF,
        calgos=0xFFFFFFFF,
    )


def policy_to_pb(device: Device, entry: OffloadedPolicy) -> pb.Policy:
    lft = entry.lifetime
    return _policy_pb(
        entry.policy,
        device.name,
        device.ifindex,
        entry.handle,
        _LIFECYCLE_TO_PB[entry.lifecycle],
        xpb.XfrmLifetimeCur(add_time=int(lft.add_time), use_time=int(lft.use_time or 0)),
    )


def _policy_pb(
    p: Policy, dev: str, ifindex: int, handle: int, lifecycle: int, curlft: xpb.XfrmLifetimeCur
) -> pb.Policy:
    info = xpb.XfrmUserpolicyInfo(
        sel=selector_to_pb(p.sel),
        lft=lifetime_to_pb(p.lifetime),
        priority=p.priority,
        index=p.index,
        dir=POLICY_DIR_TO_PB[p.dir],
        action=xpb.POLICY_ACTION_BLOCK
        if p.action == PolicyAction.BLOCK
        else xpb.POLICY_ACTION_ALLOW,
        flags=int(p.flags),
        tmpl=[template_to_pb(t) for t in p.templates],
        mark=xpb.XfrmMark(v=p.mark, m=p.mark_mask),
        if_id=p.if_id,
        offload=xpb.XfrmUserOffload(dev=dev, ifindex=ifindex, flags=xpb.OFFLOAD_FLAG_PACKET),
    )
    return pb.Policy(
        policy=info,
        offload_handle=handle,
        dev=dev,
        lifecycle=lifecycle,  # type: ignore[arg-type]
        curlft=curlft,
    )


def stats_to_pb(stats: dict[str, int]) -> list[pb.XfrmStatCounter]:
    return [pb.XfrmStatCounter(name=name, value=value) for name, value in stats.items()]


# -- events ---------------------------------------------------------------------------


def _sa_id_to_pb(sa: SAId) -> xpb.XfrmId:
    return xpb.XfrmId(daddr=str(sa.daddr), spi=sa.spi, proto=sa.proto)


def event_to_pb(event: Event) -> pb.WatchEventsResponse | None:
    """A device's event as WatchEvents sends it; None for events subscribers never see."""
    if isinstance(event, StateEvent):
        ref = pb.StateRef(dev=event.dev, offload_handle=event.handle)
        inner = event.event
        if isinstance(inner, Expired):
            return pb.WatchEventsResponse(
                dev=event.dev,
                kind=pb.EVENT_KIND_EXPIRE,
                expire=pb.ExpireEvent(
                    ref=ref,
                    id=_sa_id_to_pb(inner.sa),
                    saddr=str(inner.sa.saddr),
                    hard=inner.hard,
                    limit=inner.kind.value,
                ),
            )
        if isinstance(inner, SeqOverflow):
            return pb.WatchEventsResponse(
                dev=event.dev,
                kind=pb.EVENT_KIND_SEQ_OVERFLOW,
                seq_overflow=pb.SeqOverflowEvent(ref=ref, id=_sa_id_to_pb(inner.sa)),
            )
        if isinstance(inner, EsnAdvanced):
            return pb.WatchEventsResponse(
                dev=event.dev,
                kind=pb.EVENT_KIND_ESN_ADVANCED,
                esn_advanced=pb.EsnAdvancedEvent(ref=ref, seq_hi=inner.seq_hi),
            )
        return None
    if isinstance(event, StateAdded | StateDeleted):
        added = isinstance(event, StateAdded)
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_STATE_ADDED if added else pb.EVENT_KIND_STATE_DELETED,
            object=pb.ObjectEvent(
                state=pb.StateRef(dev=event.dev, offload_handle=event.handle),
                id=_sa_id_to_pb(event.sa),
                reason="" if isinstance(event, StateAdded) else event.reason.value,
            ),
        )
    if isinstance(event, PolicyAdded | PolicyDeleted):
        added = isinstance(event, PolicyAdded)
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_POLICY_ADDED if added else pb.EVENT_KIND_POLICY_DELETED,
            object=pb.ObjectEvent(
                policy=pb.PolicyRef(dev=event.dev, offload_handle=event.handle),
                reason="" if isinstance(event, PolicyAdded) else event.reason.value,
            ),
        )
    if isinstance(event, Acquire):
        family = event.sel.family if event.daddr is None else _family_of(event.daddr)
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_ACQUIRE,
            acquire=pb.AcquireEvent(
                policy=pb.PolicyRef(dev=event.dev, offload_handle=event.policy_handle),
                policy_index=event.policy_index,
                sel=selector_to_pb(event.sel),
                tmpl=xpb.XfrmUserTmpl(
                    id=xpb.XfrmId(daddr=_addr(event.daddr), proto=event.proto),
                    family=_FAMILY_TO_PB[family],
                    saddr=_addr(event.saddr),
                    reqid=event.reqid,
                    mode=MODE_TO_PB[event.mode],
                ),
            ),
        )
    if isinstance(event, PolicyExpired):
        curlft = xpb.XfrmLifetimeCur(
            add_time=int(event.add_time), use_time=int(event.use_time or 0)
        )
        lifecycle = pb.LIFECYCLE_DELETED if event.hard else pb.LIFECYCLE_ACTIVE
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_POLICY_EXPIRE,
            policy_expire=pb.PolicyExpireEvent(
                ref=pb.PolicyRef(dev=event.dev, offload_handle=event.handle),
                policy=_policy_pb(event.policy, event.dev, 0, event.handle, lifecycle, curlft),
                hard=event.hard,
            ),
        )
    if isinstance(event, NewMapping):
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_MAPPING,
            mapping=pb.MappingEvent(
                ref=pb.StateRef(dev=event.dev, offload_handle=event.handle),
                id=_sa_id_to_pb(event.sa),
                reqid=event.reqid,
                old_saddr=str(event.old_saddr),
                old_sport=event.old_sport,
                new_saddr=str(event.new_saddr),
                new_sport=event.new_sport,
            ),
        )
    if isinstance(event, BondFailover):
        return pb.WatchEventsResponse(
            dev=event.bond,
            kind=pb.EVENT_KIND_BOND_FAILOVER,
            bond_failover=pb.BondFailoverEvent(
                old_active=event.old or "",
                new_active=event.new or "",
                states=event.states,
                policies=event.policies,
                failed=event.failed,
            ),
        )
    if isinstance(event, LinkChanged):
        return pb.WatchEventsResponse(
            dev=event.dev,
            kind=pb.EVENT_KIND_LINK,
            link=pb.LinkEvent(link=pb.LINK_STATE_UP if event.up else pb.LINK_STATE_DOWN),
        )
    return None


# -- wire impairments -------------------------------------------------------------------

_US = 1e-6


def impairment_from_pb(imp: pb.Impairment) -> ImpairmentConfig:
    """Impairment -> ImpairmentConfig, validated (errors name the proto field)."""
    burst = None
    if imp.HasField("loss_burst"):
        ge = imp.loss_burst
        burst = GilbertElliott(
            p=ge.p,
            r=ge.r if ge.HasField("r") else None,
            bad_loss=ge.bad_loss if ge.HasField("bad_loss") else 100.0,
            good_loss=ge.good_loss if ge.HasField("good_loss") else 0.0,
        )
    config = ImpairmentConfig(
        loss=imp.loss_percent,
        loss_burst=burst,
        duplicate=imp.duplicate_percent,
        corrupt=imp.corrupt_percent,
        reorder=imp.reorder_percent,
        gap=imp.reorder_gap,
        delay=imp.delay_us * _US,
        jitter=imp.jitter_us * _US,
        rate=imp.rate_bps,
        seed=imp.seed,
        limit=imp.limit or 1000,
    )
    try:
        config.validate()
    except InvalidArgument as exc:
        exc.field = _IMPAIRMENT_FIELDS.get(exc.field or "", exc.field)
        raise
    return config


_IMPAIRMENT_FIELDS = {
    "loss": "impairment.loss_percent",
    "loss_burst": "impairment.loss_burst",
    "loss_burst.p": "impairment.loss_burst.p",
    "loss_burst.r": "impairment.loss_burst.r",
    "loss_burst.bad_loss": "impairment.loss_burst.bad_loss",
    "loss_burst.good_loss": "impairment.loss_burst.good_loss",
    "duplicate": "impairment.duplicate_percent",
    "corrupt": "impairment.corrupt_percent",
    "reorder": "impairment.reorder_percent",
    "gap": "impairment.reorder_gap",
    "delay": "impairment.delay_us",
    "jitter": "impairment.jitter_us",
    "rate": "impairment.rate_bps",
    "limit": "impairment.limit",
}


def impairment_to_pb(impairment: Impairment[int]) -> pb.GetImpairmentResponse:
    c = impairment.config
    out = pb.Impairment(
        loss_percent=c.loss,
        duplicate_percent=c.duplicate,
        corrupt_percent=c.corrupt,
        reorder_percent=c.reorder,
        reorder_gap=c.gap,
        delay_us=round(c.delay / _US),
        jitter_us=round(c.jitter / _US),
        rate_bps=c.rate,
        seed=c.seed,
        limit=c.limit,
    )
    if c.loss_burst is not None:
        ge = c.loss_burst
        out.loss_burst.CopyFrom(
            pb.GilbertElliottLoss(p=ge.p, bad_loss=ge.bad_loss, good_loss=ge.good_loss)
        )
        if ge.r is not None:
            out.loss_burst.r = ge.r
    n = impairment.counters
    return pb.GetImpairmentResponse(
        impairment=out,
        counters=pb.ImpairmentCounters(
            packets=n.packets,
            dropped=n.dropped,
            duplicated=n.duplicated,
            corrupted=n.corrupted,
            reordered=n.reordered,
            sent=n.sent,
            waiting=len(impairment),
        ),
    )

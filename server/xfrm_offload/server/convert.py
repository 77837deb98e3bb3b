"""Proto <-> engine types. Only translation here: no rules, no state."""

from __future__ import annotations

import ipaddress

from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.profiles import Capabilities
from xfrm_offload.engine.types import (
    IPPROTO_ESP,
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


def device_to_pb(device: Device, cable_peer: str = "") -> pb.Device:
    return pb.Device(
        name=device.name,
        ifindex=device.ifindex,
        profile=device.profile.name,
        link=pb.LINK_STATE_UP if device.up else pb.LINK_STATE_DOWN,
        features=device.profile.features,
        capabilities=capabilities_to_pb(device.profile.capabilities),
        state_count=device.state_count,
        policy_count=device.policy_count,
        cable_peer=cable_peer,
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
_ENCAP_FROM_PB: dict[int, EncapType] = {
    xpb.ENCAP_TYPE_ESPINUDP: EncapType.ESPINUDP,
    xpb.ENCAP_TYPE_ESPINUDP_NON_IKE: EncapType.ESPINUDP_NON_IKE,
    xpb.ENCAP_TYPE_ESPINTCP: EncapType.ESPINTCP,
}
_U32 = 0xFFFFFFFF


def _family_of(addr: IPAddress) -> Family:
    return Family.INET if addr.version == 4 else Family.INET6


def parse_address(text: str, field: str, *, required: bool = True) -> IPAddress | None:
    """A textual address, or InvalidArgument naming ``field``."""
    if not text:
        if required:
            raise InvalidArgument(f"{field} is required", field=field)
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{field}: {text!r} is not an IP address", field=field) from None


def _check_u16(value: int, field: str) -> int:
    if value > 0xFFFF:
        raise InvalidArgument(f"{field} must be at most 65535", field=field)
    return value


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
    bits = 32 if family == Family.INET else 128
    for name, plen in (("prefixlen_d", sel.prefixlen_d), ("prefixlen_s", sel.prefixlen_s)):
        if plen > bits:
            raise InvalidArgument(
                f"{field}.{name} {plen} is longer than an IPv{4 if bits == 32 else 6} address",
                field=f"{field}.{name}",
            )
    if sel.proto > 255:
        raise InvalidArgument(f"{field}.proto must be 0-255", field=f"{field}.proto")
    return Selector(
        daddr=daddr,
        saddr=saddr,
        prefixlen_d=sel.prefixlen_d,
        prefixlen_s=sel.prefixlen_s,
        dport=_check_u16(sel.dport, f"{field}.dport"),
        dport_mask=_check_u16(sel.dport_mask, f"{field}.dport_mask"),
        sport=_check_u16(sel.sport, f"{field}.sport"),
        sport_mask=_check_u16(sel.sport_mask, f"{field}.sport_mask"),
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


def _flags(value: int, flag_type: type[SAFlag] | type[SAExtraFlag], field: str) -> int:
    known = 0
    for member in flag_type:
        known |= int(member)
    if value & ~known:
        raise InvalidArgument(f"{field}: unknown bits 0x{value & ~known:x}", field=field)
    return value


def sa_config_from_pb(sa: xpb.XfrmUsersaInfo) -> SAConfig:
    """XfrmUsersaInfo -> SAConfig, checking what a netlink parser would (field-named errors).

    The offload attribute is not translated here: the device layer reads its raw
    flags itself, as the kernel's xfrm_dev_state_add does.
    """
    daddr = parse_address(sa.id.daddr, "id.daddr")
    saddr = parse_address(sa.saddr, "saddr")
    assert daddr is not None and saddr is not None
    family = _family(
        sa.family, [(daddr, "id.daddr"), (saddr, "saddr")], "family", _family_of(daddr)
    )
    if sa.mode not in _MODE_FROM_PB:
        raise InvalidArgument(f"mode: unknown mode {sa.mode}", field="mode")
    if sa.dir and sa.dir not in _SA_DIR_FROM_PB:
        raise InvalidArgument(f"dir: unknown direction {sa.dir}", field="dir")
    if sa.id.proto > 255:
        raise InvalidArgument("id.proto must be 0-255", field="id.proto")
    flags = SAFlag(_flags(sa.flags, SAFlag, "flags"))
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
        replay = ReplayState()
    if sa.HasField("aead") and (sa.HasField("enc") or sa.HasField("auth")):
        raise InvalidArgument("aead excludes enc and auth", field="aead")
    aead = (
        Algorithm(sa.aead.alg_name, sa.aead.alg_key, sa.aead.alg_icv_len)
        if sa.HasField("aead")
        else None
    )
    enc = Algorithm(sa.enc.alg_name, sa.enc.alg_key) if sa.HasField("enc") else None
    auth = (
        Algorithm(sa.auth.alg_name, sa.auth.alg_key, sa.auth.alg_trunc_len)
        if sa.HasField("auth")
        else None
    )
    encap = None
    if sa.HasField("encap"):
        encap_type = _ENCAP_FROM_PB.get(sa.encap.encap_type)
        if encap_type is None:
            raise InvalidArgument("encap.encap_type is required", field="encap.encap_type")
        for name in ("encap_sport", "encap_dport"):
            port = getattr(sa.encap, name)
            if not 0 < port <= 0xFFFF:
                raise InvalidArgument(f"encap.{name} must be 1-65535", field=f"encap.{name}")
        encap = EncapTemplate(
            encap_type=encap_type,
            sport=sa.encap.encap_sport,
            dport=sa.encap.encap_dport,
            oa=parse_address(sa.encap.encap_oa, "encap.encap_oa", required=False),
        )
    return SAConfig(
        daddr=daddr,
        saddr=saddr,
        spi=sa.id.spi,
        proto=sa.id.proto or IPPROTO_ESP,
        family=family,
        mode=_MODE_FROM_PB[sa.mode],
        reqid=sa.reqid,
        flags=flags,
        extra_flags=SAExtraFlag(_flags(sa.extra_flags, SAExtraFlag, "extra_flags")),
        replay_window=window,
        replay=replay,
        aead=aead,
        enc=enc,
        auth=auth,
        encap=encap,
        selector=selector_from_pb(sa.sel, "sel", family),
        lifetime=lifetime_from_pb(sa.lft),
        mark=sa.mark.v,
        mark_mask=sa.mark.m,
        if_id=sa.if_id,
        tfcpad=sa.tfcpad,
        sa_dir=_SA_DIR_FROM_PB.get(sa.dir),
    )

"""The offload rules as pure checks: what xfrm_dev_state_add / xfrm_dev_policy_add and a
driver's xdo_dev_*_add refuse, given the device's ``Profile`` and the request.

Each function raises the engine's errors (``InvalidArgument``, ``NotSupported``,
``NoSpace``) naming the field at fault, and otherwise returns nothing; none keeps
state. ``Device`` calls them in the kernel's order (see its docstring) and decides
what a ``NotSupported`` means (a decline in crypto offload, an error in packet
offload).
"""

from __future__ import annotations

from .algorithms import AlgorithmKind
from .errors import InvalidArgument, LocalError, NoSpace, NotSupported
from .profiles import Profile
from .spd import Policy
from .types import XFRM_INF, Direction, OffloadType, SAConfig

# -- xfrm_user_offload.flags ------------------------------------------------------------
XFRM_OFFLOAD_IPV6 = 1
XFRM_OFFLOAD_INBOUND = 2
XFRM_OFFLOAD_PACKET = 4
_KNOWN_OFFLOAD_FLAGS = XFRM_OFFLOAD_IPV6 | XFRM_OFFLOAD_INBOUND | XFRM_OFFLOAD_PACKET

_U32 = 0xFFFFFFFF


def core_state_checks(config: SAConfig, flags: int, odir: Direction) -> None:
    """xfrm_dev_state_add's own checks (kernel-anchors §2.1 steps 1-4)."""
    if flags & ~_KNOWN_OFFLOAD_FLAGS:
        raise InvalidArgument(
            f"Unrecognized flags in offload request: {flags & ~_KNOWN_OFFLOAD_FLAGS:#x}",
            field="offload.flags",
            allowed=("IPV6=1", "INBOUND=2", "PACKET=4"),
        )
    if config.sa_dir is not None and config.sa_dir != odir:
        raise InvalidArgument("Mismatched SA and offload direction", field="sa_dir")
    if odir == Direction.IN and config.if_id:
        raise InvalidArgument("XFRM if_id is not supported in RX path", field="if_id")
    if config.tfcpad:
        raise InvalidArgument("TFC padding can't be offloaded", field="tfcpad")


def mapping_checks(config: SAConfig) -> None:
    """verify_newsa_info / verify_mtimer_thresh: a mapping max age needs ESP-in-UDP
    and an inbound SA."""
    if not config.mapping_maxage:
        return
    if config.encap is None:
        raise InvalidArgument(
            "MTIMER_THRESH attribute can only be set on ENCAP states",
            field="mapping_maxage",
        )
    if config.sa_dir == Direction.OUT:
        raise InvalidArgument(
            "MTIMER_THRESH attribute should not be set on output SA",
            field="mapping_maxage",
        )


def driver_state_checks(
    p: Profile, config: SAConfig, otype: OffloadType, odir: Direction, states: int
) -> None:
    """The profile's rules: what the driver's xdo_dev_state_add refuses.

    ``states`` is how many states the device's table holds (a full table is -ENOSPC).
    """
    packet = otype == OffloadType.PACKET
    if config.proto not in p.protos:
        raise InvalidArgument(
            "Unsupported protocol for ipsec offload",
            field="proto",
            allowed=tuple(str(x) for x in p.protos),
        )
    if otype not in p.offload_types:
        raise InvalidArgument(
            "Unsupported ipsec offload type",
            field="offload.flags",
            allowed=tuple(t.name for t in p.offload_types),
        )
    if config.mode not in p.modes:
        raise InvalidArgument(
            f"{config.mode.name.lower()} mode can't be offloaded",
            field="mode",
            allowed=tuple(m.name for m in p.modes),
        )
    if p.max_states and states >= p.max_states:
        raise NoSpace("No space for SA in Rx table!")
    _check_algorithms(p, config)
    if config.esn and not p.esn:
        raise InvalidArgument("Device doesn't support offload with ESN", field="flags")
    if p.selector_protos and config.selector.proto not in p.selector_protos:
        raise InvalidArgument(
            "Device does not support upper protocol other than TCP/UDP",
            field="selector.proto",
            allowed=tuple(str(x) for x in p.selector_protos),
        )
    if config.encap is not None:
        _check_natt(p, config, otype)
    if config.replay_window > p.max_replay_window:
        raise InvalidArgument(
            f"replay window larger than {p.max_replay_window}",
            field="replay_window",
        )
    if not packet:
        return
    # The kernel keeps windows <= 32 without ESN in the legacy form, which mlx5
    # does not look at; the bitmap form (ESN, or > 32) must be a size HW has.
    bitmap_form = config.esn or config.replay_window > 32
    if (
        p.packet_in_replay_windows
        and odir == Direction.IN
        and bitmap_form
        and config.replay_window not in p.packet_in_replay_windows
    ):
        raise InvalidArgument(
            "Unsupported replay window size",
            field="replay_window",
            allowed=tuple(str(w) for w in p.packet_in_replay_windows),
        )
    if p.packet_reqid_required and not config.reqid:
        raise InvalidArgument("Cannot offload without reqid", field="reqid")
    if p.packet_soft_below_hard:
        lft = config.lifetime
        for kind in ("byte", "packet"):
            soft = getattr(lft, f"soft_{kind}_limit")
            hard = getattr(lft, f"hard_{kind}_limit")
            if soft >= hard and hard != XFRM_INF:
                raise InvalidArgument(
                    f"Hard {kind} limit must be greater than soft one",
                    field=f"lifetime.soft_{kind}_limit",
                )
            if not soft or not hard:
                raise InvalidArgument(
                    f"Soft/hard {kind} limits can't be 0",
                    field=f"lifetime.{'soft' if not soft else 'hard'}_{kind}_limit",
                )


def _unsupported_alg(p: Profile, message: str, field: str, allowed: tuple[str, ...]) -> LocalError:
    """-EOPNOTSUPP (declined: the state stays in software) or -EINVAL, as the profile says."""
    if p.decline_unsupported_algorithms:
        return NotSupported(message, field=field, allowed=allowed)
    return InvalidArgument(message, field=field, allowed=allowed)


def _check_algorithms(p: Profile, config: SAConfig) -> None:
    """Algorithm rules, in netdevsim's order: AEAD present, ICV, name, key."""
    algs = p.algorithms
    for slot, alg in (("aead", config.aead), ("enc", config.enc), ("auth", config.auth)):
        if alg is None:
            continue
        support = algs.get(alg.name)
        if support is None:
            names = tuple(algs)
            if slot != "aead" and not any(a.kind is not AlgorithmKind.AEAD for a in algs.values()):
                raise _unsupported_alg(
                    p,
                    "Unsupported IPsec algorithm: only AEADs can be offloaded",
                    field=slot,
                    allowed=names,
                )
            raise _unsupported_alg(
                p,
                f"Cannot offload xfrm states with {alg.name}",
                field=f"{slot}.name",
                allowed=names,
            )
        spec = support.spec
        icv = alg.icv_bits or spec.default_icv_bits
        if support.icv_bits and icv not in support.icv_bits:
            what = "AEAD ICV length" if slot == "aead" else "truncation length"
            raise _unsupported_alg(
                p,
                f"Cannot offload xfrm states with {what} other than "
                + "/".join(str(b) for b in support.icv_bits)
                + " bit",
                field=f"{slot}.icv_bits",
                allowed=tuple(str(b) for b in support.icv_bits),
            )
        key_bits = len(alg.key) * 8 - spec.salt_bits
        if support.key_bits and key_bits not in support.key_bits:
            raise _unsupported_alg(
                p,
                f"Cannot offload xfrm states with {alg.name} key length other than "
                + "/".join(str(b) for b in support.key_bits)
                + f" bit (got {len(alg.key) * 8} bits of keying material)",
                field=f"{slot}.key",
                allowed=tuple(f"{b} bits" for b in support.keymat_bits),
            )


def _check_natt(p: Profile, config: SAConfig, otype: OffloadType) -> None:
    """NAT-T (ESP-in-UDP) rules: encap types, and the offload types and modes they go with."""
    assert config.encap is not None
    if not p.natt_encap_types:
        raise InvalidArgument("Encapsulation is not supported", field="encap")
    if config.encap.encap_type not in p.natt_encap_types:
        raise InvalidArgument(
            "Encapsulation other than UDP is not supported",
            field="encap.encap_type",
            allowed=tuple(t.name for t in p.natt_encap_types),
        )
    if otype not in p.natt_offload_types:
        raise InvalidArgument(
            "Encapsulation is supported in "
            + "/".join(t.name.lower() for t in p.natt_offload_types)
            + " offload mode only",
            field="encap",
        )
    if config.mode not in p.natt_modes:
        raise InvalidArgument(
            "Encapsulation is supported in "
            + "/".join(m.name.lower() for m in p.natt_modes)
            + " mode only",
            field="mode",
        )


def policy_checks(p: Profile, policy: Policy, flags: int) -> None:
    """xfrm_dev_policy_add and the driver's xdo_dev_policy_add: packet offload only,
    then the profile's policy rules."""
    if flags != XFRM_OFFLOAD_PACKET:
        raise InvalidArgument(
            "Unrecognized flags in offload request: a policy offload is packet offload",
            field="offload.flags",
            allowed=("PACKET=4",),
        )
    if not p.has_offload or not p.policy_dirs:
        raise InvalidArgument("Policy offload is not supported", field="offload.dev")
    templates = policy.templates
    if p.max_policy_templates and len(templates) > p.max_policy_templates:
        raise InvalidArgument(
            f"Cannot offload more than {p.max_policy_templates} template(s)",
            field="templates",
        )
    if policy.dir not in p.policy_dirs:
        raise InvalidArgument(
            f"Cannot offload {policy.dir.name.lower()} policy",
            field="dir",
            allowed=tuple(d.name for d in p.policy_dirs),
        )
    sel = policy.sel
    if p.policy_reject_reqid0_wildcard:
        reqid = templates[0].reqid if templates else 0
        wildcard = (
            not sel.proto
            and (sel.saddr is None or not int(sel.saddr))
            and (sel.daddr is None or not int(sel.daddr))
        )
        if not reqid and wildcard:
            raise InvalidArgument(
                "Unsupported policy with reqid 0 without at least one of upper protocol "
                "or ip addr(s) different than 0",
                field="templates[0].reqid" if templates else "templates",
            )
    if p.policy_selector_protos and sel.proto not in p.policy_selector_protos:
        raise InvalidArgument(
            "Device does not support upper protocol other than TCP/UDP",
            field="sel.proto",
            allowed=tuple(str(x) for x in p.policy_selector_protos),
        )
    if p.policy_reject_max_priority and policy.priority == _U32:
        raise InvalidArgument("Device does not support requested policy priority", field="priority")

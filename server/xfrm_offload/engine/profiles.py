"""Device capability profiles: what one kind of NIC accepts, as data.

A profile is the driver half of ``xdo_dev_state_add`` / ``xdo_dev_policy_add``
written down as fields, so a keymanager's CI can run against the NIC it will meet
in production. ``device.Device`` applies the kernel core's checks and then the
profile's; nothing here executes rules, it only states them.

The built-in profiles (research notes kernel-anchors.md §3 and §4):

``full``
    Everything the engine can do: every algorithm in ``algorithms.ALGORITHMS``,
    crypto and packet offload, transport and tunnel, ESN, windows up to the
    engine's maximum, NAT-T in both offload types and modes, policy offload in,
    out and fwd, no table limit.
``netdevsim``
    drivers/net/netdevsim/ipsec.c: ``rfc4106(gcm(aes))`` with a 128-bit key and
    its 32-bit salt, ICV 128 only; 33 SAs per port; crypto offload only; no
    ``advance_esn`` (so the core refuses crypto+ESN); ESP or AH; no policy
    offload. Handles are ``slot | BIT(31)``.

    One deliberate difference: the real driver takes *any* key longer than 128
    bits and uses its first 16 bytes as the key and the next 4 as the salt, so a
    256-bit (or 192-bit) key is silently truncated and the "hardware" would
    encrypt with a different key than the host. netdevsim does no crypto, so it
    never shows; this emulator does, so it refuses such keys (-EINVAL on
    ``aead.alg_key``) instead of producing traffic nobody can decrypt.
``mlx5``
    drivers/net/ethernet/mellanox/mlx5/core/en_accel/ipsec.c: AES-GCM with a 128
    or 256-bit key (192 refused) plus salt, ICV 128; ESN; selector protocol
    any/TCP/UDP; in packet offload: inbound replay windows 32/64/128/256 (when the
    window uses the bitmap form: ESN or larger than 32), reqid required, soft
    limits below hard ones and neither 0; NAT-T only ``espinudp``, only in packet
    offload and transport mode; policies with at most one template, dir in/out,
    not reqid 0 with an empty selector.
``nooffload``
    A NIC without ``NETIF_F_HW_ESP`` (no xfrmdev_ops): the kernel quietly keeps
    crypto-offload states in software (StateAdd answers "not offloaded") and
    refuses packet offload with -EINVAL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .algorithms import ALGORITHMS, AlgorithmKind, AlgorithmSpec
from .replay import MAX_REPLAY_WINDOW
from .types import IPPROTO_ESP, IPPROTO_UDP, Direction, EncapType, Mode, OffloadType

IPPROTO_AH = 51
IPPROTO_TCP = 6

#: netdev feature names a profile can report.
NETIF_F_HW_ESP = "NETIF_F_HW_ESP"
NETIF_F_HW_ESP_TX_CSUM = "NETIF_F_HW_ESP_TX_CSUM"
NETIF_F_GSO_ESP = "NETIF_F_GSO_ESP"

#: netdevsim's NSIM_IPSEC_MAX_SA_COUNT and NSIM_IPSEC_VALID.
NETDEVSIM_MAX_SA = 33
NETDEVSIM_HANDLE_VALID = 1 << 31


@dataclass(frozen=True, slots=True)
class AlgorithmSupport:
    """One algorithm a device accepts, narrowed from the engine's ``AlgorithmSpec``.

    ``key_bits`` are cipher/MAC key lengths *without* the salt (as in
    ``AlgorithmSpec``); empty means "any length" (HMAC keys). ``icv_bits`` are the
    accepted ICV / truncation lengths after defaults are resolved.
    """

    spec: AlgorithmSpec
    key_bits: tuple[int, ...]
    icv_bits: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> AlgorithmKind:
        return self.spec.kind

    @property
    def keymat_bits(self) -> tuple[int, ...]:
        """Accepted lengths of the whole keying material (AEAD: key + salt), in bits."""
        return tuple(k + self.spec.salt_bits for k in self.key_bits)


@dataclass(frozen=True, slots=True)
class AlgorithmCapability:
    """What ListDevices reports about one algorithm (proto ``AlgorithmCapability``)."""

    name: str
    #: "aead", "cipher" or "auth".
    kind: str
    #: Accepted key lengths in bits; for AEADs including the 32-bit salt. Empty: any.
    key_bits: tuple[int, ...]
    icv_bits: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """A profile as ListDevices reports it (proto ``Capabilities``, engine types)."""

    algorithms: tuple[AlgorithmCapability, ...]
    offload_types: tuple[OffloadType, ...]
    modes: tuple[Mode, ...]
    esn: bool
    #: 0 = no limit.
    max_states: int
    max_replay_window: int
    #: Packet-mode inbound windows accepted; empty = any up to ``max_replay_window``.
    packet_in_replay_windows: tuple[int, ...]
    reqid_required: bool
    soft_below_hard: bool
    natt: bool
    natt_offload_types: tuple[OffloadType, ...]
    natt_modes: tuple[Mode, ...]
    policy_offload: bool
    policy_dirs: tuple[Direction, ...]
    #: 0 = no limit.
    max_policy_templates: int
    mtu: int


_KIND_NAMES = {
    AlgorithmKind.AEAD: "aead",
    AlgorithmKind.CIPHER: "cipher",
    AlgorithmKind.AUTH: "auth",
}


@dataclass(frozen=True, slots=True)
class Profile:
    """One kind of NIC: its features and every rule its driver applies.

    Rules that apply "in packet offload" are named ``packet_*``. An empty tuple
    for a protocol list means "any".
    """

    name: str
    description: str
    #: netdev features; without NETIF_F_HW_ESP the device has no xfrmdev_ops at all.
    features: tuple[str, ...]
    mtu: int
    algorithms: Mapping[str, AlgorithmSupport]
    offload_types: tuple[OffloadType, ...]
    modes: tuple[Mode, ...]
    #: SA protocols (id.proto) accepted.
    protos: tuple[int, ...]
    #: xdo_dev_state_advance_esn implemented (the core refuses crypto+ESN without it).
    esn: bool
    #: 0 = no limit; a full table answers -ENOSPC.
    max_states: int
    max_replay_window: int
    #: Packet offload, inbound: the bitmap-form windows accepted (empty = any).
    packet_in_replay_windows: tuple[int, ...]
    #: Packet offload: reqid must be non-zero.
    packet_reqid_required: bool
    #: Packet offload: soft < hard (unless hard is INF), neither 0, for bytes and packets.
    packet_soft_below_hard: bool
    #: Upper-layer protocols the SA selector may name (empty = any).
    selector_protos: tuple[int, ...]
    #: NAT-T: accepted encap types, and with which offload types and modes.
    natt_encap_types: tuple[EncapType, ...]
    natt_offload_types: tuple[OffloadType, ...]
    natt_modes: tuple[Mode, ...]
    #: Policy offload directions; empty = no xdo_dev_policy_add.
    policy_dirs: tuple[Direction, ...]
    #: 0 = no limit.
    max_policy_templates: int
    #: Policies with reqid 0 and neither protocol nor addresses are refused (mlx5).
    policy_reject_reqid0_wildcard: bool
    #: Upper-layer protocols a policy selector may name (empty = any).
    policy_selector_protos: tuple[int, ...]
    #: Policy priority U32_MAX refused (mlx5).
    policy_reject_max_priority: bool
    #: Handles are ``slot | BIT(31)`` with the lowest free slot (netdevsim).
    netdevsim_handles: bool = False
    #: Crypto offload: an algorithm the device lacks is declined (-EOPNOTSUPP, the
    #: state stays in software) instead of refused with -EINVAL. netdevsim and mlx5
    #: refuse, as their drivers do; a custom profile may decline.
    decline_unsupported_algorithms: bool = False

    @property
    def has_offload(self) -> bool:
        """NETIF_F_HW_ESP: the device has xfrmdev_ops."""
        return NETIF_F_HW_ESP in self.features and bool(self.offload_types)

    @property
    def capabilities(self) -> Capabilities:
        algorithms = tuple(
            AlgorithmCapability(
                name=a.name,
                kind=_KIND_NAMES[a.kind],
                key_bits=a.keymat_bits,
                icv_bits=a.icv_bits,
            )
            for a in self.algorithms.values()
        )
        return Capabilities(
            algorithms=algorithms,
            offload_types=self.offload_types,
            modes=self.modes,
            esn=self.esn,
            max_states=self.max_states,
            max_replay_window=self.max_replay_window,
            packet_in_replay_windows=self.packet_in_replay_windows,
            reqid_required=self.packet_reqid_required,
            soft_below_hard=self.packet_soft_below_hard,
            natt=bool(self.natt_encap_types),
            natt_offload_types=self.natt_offload_types if self.natt_encap_types else (),
            natt_modes=self.natt_modes if self.natt_encap_types else (),
            policy_offload=bool(self.policy_dirs),
            policy_dirs=self.policy_dirs,
            max_policy_templates=self.max_policy_templates,
            mtu=self.mtu,
        )


def _support(
    name: str, key_bits: tuple[int, ...] | None = None, icv_bits: tuple[int, ...] | None = None
) -> AlgorithmSupport:
    spec = ALGORITHMS[name]
    return AlgorithmSupport(
        spec=spec,
        key_bits=spec.key_bits if key_bits is None else key_bits,
        icv_bits=spec.icv_bits if icv_bits is None else icv_bits,
    )


def _algorithms(*supports: AlgorithmSupport) -> Mapping[str, AlgorithmSupport]:
    return MappingProxyType({s.name: s for s in supports})


_ALL_TYPES = (OffloadType.CRYPTO, OffloadType.PACKET)
_ALL_MODES = (Mode.TRANSPORT, Mode.TUNNEL)
_ALL_FEATURES = (NETIF_F_HW_ESP, NETIF_F_HW_ESP_TX_CSUM, NETIF_F_GSO_ESP)

FULL = Profile(
    name="full",
    description="everything the engine can do",
    features=_ALL_FEATURES,
    mtu=1500,
    algorithms=_algorithms(*(_support(name) for name in ALGORITHMS)),
    offload_types=_ALL_TYPES,
    modes=_ALL_MODES,
    protos=(IPPROTO_ESP,),
    esn=True,
    max_states=0,
    max_replay_window=MAX_REPLAY_WINDOW,
    packet_in_replay_windows=(),
    packet_reqid_required=False,
    packet_soft_below_hard=False,
    selector_protos=(),
    natt_encap_types=(EncapType.ESPINUDP,),
    natt_offload_types=_ALL_TYPES,
    natt_modes=_ALL_MODES,
    policy_dirs=(Direction.IN, Direction.OUT, Direction.FWD),
    max_policy_templates=0,
    policy_reject_reqid0_wildcard=False,
    policy_selector_protos=(),
    policy_reject_max_priority=False,
)

NETDEVSIM = Profile(
    name="netdevsim",
    description="the kernel's netdevsim: rfc4106(gcm(aes)) AES-128 ICV 128, 33 SAs, crypto only",
    features=_ALL_FEATURES,
    mtu=1500,
    algorithms=_algorithms(_support("rfc4106(gcm(aes))", key_bits=(128,), icv_bits=(128,))),
    offload_types=(OffloadType.CRYPTO,),
    modes=_ALL_MODES,
    protos=(IPPROTO_ESP, IPPROTO_AH),
    esn=False,
    max_states=NETDEVSIM_MAX_SA,
    # netdevsim never sees the window (crypto offload: the host runs replay).
    max_replay_window=MAX_REPLAY_WINDOW,
    packet_in_replay_windows=(),
    packet_reqid_required=False,
    packet_soft_below_hard=False,
    selector_protos=(),
    natt_encap_types=(),
    natt_offload_types=(),
    natt_modes=(),
    policy_dirs=(),
    max_policy_templates=0,
    policy_reject_reqid0_wildcard=False,
    policy_selector_protos=(),
    policy_reject_max_priority=False,
    netdevsim_handles=True,
)

MLX5 = Profile(
    name="mlx5",
    description="mlx5 (ConnectX): AES-GCM 128/256 ICV 128, crypto and packet offload",
    features=_ALL_FEATURES,
    mtu=1500,
    algorithms=_algorithms(_support("rfc4106(gcm(aes))", key_bits=(128, 256), icv_bits=(128,))),
    offload_types=_ALL_TYPES,
    modes=_ALL_MODES,
    protos=(IPPROTO_ESP,),
    esn=True,
    max_states=0,
    max_replay_window=4096,
    packet_in_replay_windows=(32, 64, 128, 256),
    packet_reqid_required=True,
    packet_soft_below_hard=True,
    selector_protos=(0, IPPROTO_TCP, IPPROTO_UDP),
    natt_encap_types=(EncapType.ESPINUDP,),
    natt_offload_types=(OffloadType.PACKET,),
    natt_modes=(Mode.TRANSPORT,),
    policy_dirs=(Direction.IN, Direction.OUT),
    max_policy_templates=1,
    policy_reject_reqid0_wildcard=True,
    policy_selector_protos=(0, IPPROTO_TCP, IPPROTO_UDP),
    policy_reject_max_priority=True,
)

NOOFFLOAD = Profile(
    name="nooffload",
    description="a NIC without IPsec offload (no NETIF_F_HW_ESP): crypto falls back to software",
    features=(),
    mtu=1500,
    algorithms=_algorithms(),
    offload_types=(),
    modes=(),
    protos=(),
    esn=False,
    max_states=0,
    max_replay_window=0,
    packet_in_replay_windows=(),
    packet_reqid_required=False,
    packet_soft_below_hard=False,
    selector_protos=(),
    natt_encap_types=(),
    natt_offload_types=(),
    natt_modes=(),
    policy_dirs=(),
    max_policy_templates=0,
    policy_reject_reqid0_wildcard=False,
    policy_selector_protos=(),
    policy_reject_max_priority=False,
)

#: The built-in profiles by name.
PROFILES: Mapping[str, Profile] = MappingProxyType(
    {p.name: p for p in (FULL, NETDEVSIM, MLX5, NOOFFLOAD)}
)

"""Configuration types of the engine: what a keymanager asks the NIC to hold.

Field names follow the kernel uAPI (include/uapi/linux/xfrm.h: xfrm_usersa_info,
xfrm_selector, xfrm_lifetime_cfg, xfrm_replay_state_esn, xfrm_encap_tmpl,
xfrm_user_offload) so a keymanager author recognises them. Everything here is
immutable configuration; the mutable per-SA state (sequence numbers, replay
window, current lifetime, counters) lives in the runtime objects that are built
from it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: xfrm_lifetime_cfg uses this for "no limit" (XFRM_INF in the kernel).
XFRM_INF = 2**64 - 1

IPPROTO_ESP = 50
IPPROTO_UDP = 17


class Mode(enum.IntEnum):
    """XFRM_MODE_*: how the SA frames the packet."""

    TRANSPORT = 0
    TUNNEL = 1


class Family(enum.IntEnum):
    """AF_INET / AF_INET6, as in xfrm_usersa_info.family."""

    INET = 2
    INET6 = 10


class Direction(enum.IntEnum):
    """XFRM_DEV_OFFLOAD_IN/OUT/FWD (and XFRM_SA_DIR_IN/OUT for states)."""

    IN = 1
    OUT = 2
    FWD = 3


class OffloadType(enum.IntEnum):
    """XFRM_DEV_OFFLOAD_UNSPECIFIED/CRYPTO/PACKET."""

    UNSPECIFIED = 0
    CRYPTO = 1
    PACKET = 2


class SAFlag(enum.IntFlag):
    """XFRM_STATE_* flags of xfrm_usersa_info.flags."""

    NONE = 0
    NOECN = 1
    DECAP_DSCP = 2
    NOPMTUDISC = 4
    WILDRECV = 8
    ICMP = 16
    AF_UNSPEC = 32
    ALIGN4 = 64
    ESN = 128


_ESN_BIT = int(SAFlag.ESN)


class SAExtraFlag(enum.IntFlag):
    """XFRM_SA_XFLAG_* (XFRMA_SA_EXTRA_FLAGS)."""

    NONE = 0
    DONT_ENCAP_DSCP = 1
    OSEQ_MAY_WRAP = 2


_OSEQ_MAY_WRAP_BIT = int(SAExtraFlag.OSEQ_MAY_WRAP)


class EncapType(enum.IntEnum):
    """UDP_ENCAP_* values of xfrm_encap_tmpl.encap_type."""

    ESPINUDP_NON_IKE = 1
    ESPINUDP = 2
    ESPINTCP = 7


@dataclass(frozen=True, slots=True)
class Selector:
    """xfrm_selector: which traffic an SA or policy applies to.

    ``proto`` 0 means any upper-layer protocol. For ICMP/ICMPv6 the kernel
    stores the type in ``sport`` and the code in ``dport``; we do the same.
    A port or mask of 0 means any.
    """

    daddr: IPAddress | None = None
    saddr: IPAddress | None = None
    prefixlen_d: int = 0
    prefixlen_s: int = 0
    dport: int = 0
    dport_mask: int = 0
    sport: int = 0
    sport_mask: int = 0
    family: Family = Family.INET
    proto: int = 0
    ifindex: int = 0
    user: int = 0


@dataclass(frozen=True, slots=True)
class LifetimeConfig:
    """xfrm_lifetime_cfg. Byte/packet limits default to XFRM_INF, times to 0 (none)."""

    soft_byte_limit: int = XFRM_INF
    hard_byte_limit: int = XFRM_INF
    soft_packet_limit: int = XFRM_INF
    hard_packet_limit: int = XFRM_INF
    soft_add_expires_seconds: int = 0
    hard_add_expires_seconds: int = 0
    soft_use_expires_seconds: int = 0
    hard_use_expires_seconds: int = 0


#: No limits at all: what an SA without lifetimes shares (``Lifetime`` knows it by
#: identity and skips the work a real limit needs).
NO_LIMITS = LifetimeConfig()


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One transform: xfrm_algo / xfrm_algo_aead / xfrm_algo_auth.

    ``name`` is the kernel's name (``rfc4106(gcm(aes))``, ``cbc(aes)``,
    ``hmac(sha256)``...). ``key`` is the whole keying material as ``ip xfrm``
    takes it (for AEADs: key || 4-byte salt). ``icv_bits`` is the AEAD ICV length
    or the auth truncation length; 0 means "the algorithm's default".
    """

    name: str
    key: bytes = field(repr=False)
    icv_bits: int = 0


@dataclass(frozen=True, slots=True)
class EncapTemplate:
    """xfrm_encap_tmpl: NAT-T UDP encapsulation (RFC 3948)."""

    encap_type: EncapType = EncapType.ESPINUDP
    sport: int = 4500
    dport: int = 4500
    oa: IPAddress | None = None


@dataclass(frozen=True, slots=True)
class ReplayState:
    """xfrm_replay_state_esn minus the bitmap: the starting counters of an SA."""

    seq: int = 0
    seq_hi: int = 0
    oseq: int = 0
    oseq_hi: int = 0


#: No counters yet: what an SA without a replay state shares.
NO_REPLAY = ReplayState()


@dataclass(frozen=True, slots=True)
class OffloadRequest:
    """xfrm_user_offload resolved: which device, which mode, which direction."""

    dev: str
    type: OffloadType = OffloadType.CRYPTO
    dir: Direction = Direction.OUT


@dataclass(frozen=True, slots=True)
class SAConfig:
    """xfrm_usersa_info plus its attributes: everything needed to run one SA.

    ``family`` is the family of the outer addresses (id.daddr/saddr). In tunnel
    mode the inner packet may be of either family.
    """

    daddr: IPAddress
    saddr: IPAddress
    spi: int
    proto: int = IPPROTO_ESP
    family: Family = Family.INET
    mode: Mode = Mode.TRANSPORT
    reqid: int = 0
    flags: SAFlag = SAFlag.NONE
    extra_flags: SAExtraFlag = SAExtraFlag.NONE
    replay_window: int = 0
    replay: ReplayState = NO_REPLAY
    aead: Algorithm | None = None
    enc: Algorithm | None = None
    auth: Algorithm | None = None
    encap: EncapTemplate | None = None
    selector: Selector = Selector()
    lifetime: LifetimeConfig = NO_LIMITS
    mark: int = 0
    mark_mask: int = 0
    if_id: int = 0
    tfcpad: int = 0
    sa_dir: Direction | None = None
    #: XFRMA_MTIMER_THRESH: at most one MAPPING event per this many seconds for the
    #: same new source port (0: one per packet, the kernel's default).
    mapping_maxage: int = 0

    @property
    def esn(self) -> bool:
        # int arithmetic: IntFlag's own & builds a new member each time, ten times slower
        # (and so does reading a member's .value)
        return bool(int(self.flags) & _ESN_BIT)

    @property
    def oseq_may_wrap(self) -> bool:
        return bool(int(self.extra_flags) & _OSEQ_MAY_WRAP_BIT)

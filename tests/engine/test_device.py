"""The emulated NIC's xfrmdev_ops semantics (kernel-anchors §1-4, acceptance scenarios).

Scenarios 1-11 and 14-18 of research/kernel-anchors.md at the engine level: the exact
exception class, errno and proto field of every refusal, netdevsim's handle format and
table size, link-down flushes with their events, and the state/policy lifecycle.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from xfrm_offload.engine.device import (
    Device,
    Lifecycle,
)
from xfrm_offload.engine.errors import (
    AlreadyExists,
    InvalidArgument,
    LocalError,
    NoSpace,
    NotFound,
    NotSupported,
    WrongState,
)
from xfrm_offload.engine.events import (
    DeleteReason,
    EsnAdvanced,
    Expired,
    LimitKind,
    LinkChanged,
    PolicyAdded,
    PolicyDeleted,
    SAId,
    SeqOverflow,
    StateAdded,
    StateDeleted,
    StateEvent,
)
from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_IPV6,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES, Profile
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    XFRM_INF,
    Algorithm,
    Direction,
    EncapTemplate,
    EncapType,
    Family,
    LifetimeConfig,
    Mode,
    OffloadType,
    ReplayState,
    SAConfig,
    SAFlag,
    Selector,
)

IN, OUT, FWD = Direction.IN, Direction.OUT, Direction.FWD
CRYPTO, PACKET = OffloadType.CRYPTO, OffloadType.PACKET
F_IN, F_PKT, F_V6 = XFRM_OFFLOAD_INBOUND, XFRM_OFFLOAD_PACKET, XFRM_OFFLOAD_IPV6

# The rtnetlink.sh selftest's SA: spi 9, reqid 42, this 160-bit keymat (key || salt).
KEYMAT = bytes.fromhex("3132333435363738393031323334353664636261")
LOCAL = IPv4Address("192.168.123.3")
PEER = IPv4Address("192.168.123.2")
GCM = "rfc4106(gcm(aes))"
IV_SALT = bytes(range(16))


def gcm(key_bits: int = 128, icv: int = 128) -> Algorithm:
    return Algorithm(GCM, bytes(range(key_bits // 8)) + b"dcba", icv)


def sa(**kw: Any) -> SAConfig:
    """The selftest's outbound SA (dst PEER), changed by ``kw``."""
    base: dict[str, Any] = dict(
        daddr=PEER,
        saddr=LOCAL,
        spi=9,
        reqid=42,
        aead=Algorithm(GCM, KEYMAT, 128),
    )
    base.update(kw)
    return SAConfig(**base)


def sa_in(**kw: Any) -> SAConfig:
    """The selftest's inbound SA (dst LOCAL)."""
    return sa(daddr=LOCAL, saddr=PEER, **kw)


def device(profile: str | Profile = "full", name: str = "eth0", ifindex: int = 2) -> Device:
    return Device(name, ifindex, PROFILES[profile] if isinstance(profile, str) else profile)


def ipv4_udp(src: IPv4Address, dst: IPv4Address, payload: bytes, *, ihl: int = 5) -> bytes:
    """A UDP/IPv4 packet (UDP checksum 0), with ``ihl - 5`` words of NOP options."""
    udp = struct.pack("!HHHH", 1000, 2000, 8 + len(payload), 0) + payload
    opts = b"\x01" * ((ihl - 5) * 4)
    total = 20 + len(opts) + len(udp)
    hdr = bytearray(
        struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, 0, 64, 17, 0, src.packed, dst.packed)
        + opts
    )
    struct.pack_into("!H", hdr, 10, ipv4_checksum(hdr))
    return bytes(hdr) + udp


def ipv6_udp(src: IPv6Address, dst: IPv6Address, payload: bytes, nh: int = 17) -> bytes:
    udp = struct.pack("!HHHH", 1000, 2000, 8 + len(payload), 0) + payload
    return struct.pack("!IHBB", 6 << 28, len(udp), nh, 64) + src.packed + dst.packed + udp


# -- refusals: (profile, offload flags, SA, exception, errno, field, message) ----------


@dataclass(frozen=True)
class Refusal:
    profile: str
    flags: int
    config: SAConfig
    exc: type[LocalError]
    errno: int
    field: str | None
    message: str


EINVAL, EOPNOTSUPP = errno.EINVAL, errno.EOPNOTSUPP
ESN = SAFlag.ESN

REFUSALS = {
    # xfrm_dev_state_add's own checks, in order (kernel-anchors §2.1).
    "unknown offload flag": Refusal(
        "full", 8, sa(), InvalidArgument, EINVAL, "offload.flags", "Unrecognized flags"
    ),
    "unknown flag with packet": Refusal(
        "full", 0x14, sa(), InvalidArgument, EINVAL, "offload.flags", "Unrecognized flags"
    ),
    "flags before dir": Refusal(
        "full", 8, sa(sa_dir=IN), InvalidArgument, EINVAL, "offload.flags", "Unrecognized"
    ),
    "dir out, offload in": Refusal(
        "full", F_IN, sa_in(sa_dir=OUT), InvalidArgument, EINVAL, "sa_dir", "Mismatched SA"
    ),
    "dir in, offload out": Refusal(
        "full", 0, sa(sa_dir=IN), InvalidArgument, EINVAL, "sa_dir", "Mismatched SA"
    ),
    "if_id on rx": Refusal(
        "full", F_IN, sa_in(if_id=7), InvalidArgument, EINVAL, "if_id", "RX path"
    ),
    "if_id on rx packet": Refusal(
        "mlx5", F_IN | F_PKT, sa_in(if_id=7), InvalidArgument, EINVAL, "if_id", "RX path"
    ),
    "tfcpad": Refusal("full", 0, sa(tfcpad=1400), InvalidArgument, EINVAL, "tfcpad", "TFC padding"),
    "tfcpad netdevsim": Refusal(
        "netdevsim", 0, sa(tfcpad=1400), InvalidArgument, EINVAL, "tfcpad", "TFC padding"
    ),
    "tfcpad before driver": Refusal(
        "mlx5", 0, sa(tfcpad=1, aead=gcm(icv=96)), InvalidArgument, EINVAL, "tfcpad", "TFC"
    ),
    "crypto esn without advance_esn": Refusal(
        "netdevsim",
        F_IN,
        sa_in(flags=ESN, replay_window=32),
        InvalidArgument,
        EINVAL,
        "flags",
        "Device doesn't support offload with ESN",
    ),
    "no HW_ESP, packet": Refusal(
        "nooffload", F_PKT, sa(), InvalidArgument, EINVAL, "offload.dev", "NETIF_F_HW_ESP"
    ),
    # Generic SA checks (xfrm_init_state), field names by the engine's config names.
    "esn window 0 dir in": Refusal(
        "full",
        F_IN,
        sa_in(flags=ESN, sa_dir=IN),
        InvalidArgument,
        EINVAL,
        "replay_window",
        "ESN replay window must be > 0",
    ),
    "unknown aead": Refusal(
        "full",
        0,
        sa(aead=Algorithm("gcm(aes)", KEYMAT)),
        InvalidArgument,
        EINVAL,
        "aead.name",
        "unknown aead",
    ),
    "112-bit key (netdevsim)": Refusal(
        "netdevsim",
        0,
        sa(aead=Algorithm(GCM, bytes(14))),
        InvalidArgument,
        EINVAL,
        "aead.key",
        "key of 112 bits",
    ),
    "112-bit key (mlx5)": Refusal(
        "mlx5",
        0,
        sa(aead=Algorithm(GCM, bytes(14))),
        InvalidArgument,
        EINVAL,
        "aead.key",
        "key of 112 bits",
    ),
    "ah, packet offload": Refusal(
        "full", F_PKT, sa(proto=51), NotSupported, EOPNOTSUPP, "proto", "only ESP"
    ),
    "espinudp-nonike, packet": Refusal(
        "full",
        F_PKT,
        sa(encap=EncapTemplate(EncapType.ESPINUDP_NON_IKE)),
        NotSupported,
        EOPNOTSUPP,
        "encap.encap_type",
        "ESP-in-UDP",
    ),
    # netdevsim (drivers/net/netdevsim/ipsec.c).
    "netdevsim packet offload": Refusal(
        "netdevsim",
        F_PKT,
        sa(),
        InvalidArgument,
        EINVAL,
        "offload.flags",
        "Unsupported ipsec offload type",
    ),
    "netdevsim icv 96": Refusal(
        "netdevsim",
        0,
        sa(aead=Algorithm(GCM, KEYMAT, 96)),
        InvalidArgument,
        EINVAL,
        "aead.icv_bits",
        "AEAD ICV length other than 128",
    ),
    "netdevsim icv 64": Refusal(
        "netdevsim",
        0,
        sa(aead=Algorithm(GCM, KEYMAT, 64)),
        InvalidArgument,
        EINVAL,
        "aead.icv_bits",
        "AEAD ICV length other than 128",
    ),
    "netdevsim 192-bit key": Refusal(
        "netdevsim",
        0,
        sa(aead=gcm(192)),
        InvalidArgument,
        EINVAL,
        "aead.key",
        "key length other than 128",
    ),
    "netdevsim 256-bit key (truncation quirk refused)": Refusal(
        "netdevsim",
        0,
        sa(aead=gcm(256)),
        InvalidArgument,
        EINVAL,
        "aead.key",
        "key length other than 128",
    ),
    "netdevsim cbc+hmac": Refusal(
        "netdevsim",
        0,
        sa(
            aead=None, enc=Algorithm("cbc(aes)", bytes(16)), auth=Algorithm("hmac(sha1)", bytes(20))
        ),
        InvalidArgument,
        EINVAL,
        "enc",
        "Unsupported IPsec algorithm",
    ),
    "netdevsim gmac": Refusal(
        "netdevsim",
        0,
        sa(aead=Algorithm("rfc4543(gcm(aes))", KEYMAT)),
        InvalidArgument,
        EINVAL,
        "aead.name",
        "rfc4543(gcm(aes))",
    ),
    # mlx5 (en_accel/ipsec.c mlx5e_xfrm_validate_state).
    "mlx5 icv 96": Refusal(
        "mlx5",
        0,
        sa(aead=gcm(icv=96)),
        InvalidArgument,
        EINVAL,
        "aead.icv_bits",
        "AEAD ICV length other than 128",
    ),
    "mlx5 192-bit key": Refusal(
        "mlx5",
        0,
        sa(aead=gcm(192)),
        InvalidArgument,
        EINVAL,
        "aead.key",
        "key length other than 128/256",
    ),
    "mlx5 chacha": Refusal(
        "mlx5",
        0,
        sa(aead=Algorithm("rfc7539esp(chacha20,poly1305)", bytes(36))),
        InvalidArgument,
        EINVAL,
        "aead.name",
        "chacha20",
    ),
    "mlx5 cbc+hmac": Refusal(
        "mlx5",
        F_PKT,
        sa(
            aead=None, enc=Algorithm("cbc(aes)", bytes(16)), auth=Algorithm("hmac(sha1)", bytes(20))
        ),
        InvalidArgument,
        EINVAL,
        "enc",
        "Unsupported IPsec algorithm",
    ),
    "mlx5 selector icmp": Refusal(
        "mlx5",
        0,
        sa(selector=Selector(proto=1)),
        InvalidArgument,
        EINVAL,
        "selector.proto",
        "other than TCP/UDP",
    ),
    "mlx5 packet in window 48": Refusal(
        "mlx5",
        F_IN | F_PKT,
        sa_in(replay_window=48),
        InvalidArgument,
        EINVAL,
        "replay_window",
        "Unsupported replay window size",
    ),
    "mlx5 packet in esn window 16": Refusal(
        "mlx5",
        F_IN | F_PKT,
        sa_in(replay_window=16, flags=ESN),
        InvalidArgument,
        EINVAL,
        "replay_window",
        "Unsupported replay window size",
    ),
    "mlx5 window above 4096": Refusal(
        "mlx5",
        F_IN,
        sa_in(replay_window=8192),
        InvalidArgument,
        EINVAL,
        "replay_window",
        "larger than 4096",
    ),
    "mlx5 packet reqid 0": Refusal(
        "mlx5", F_PKT, sa(reqid=0), InvalidArgument, EINVAL, "reqid", "without reqid"
    ),
    "mlx5 soft packets above hard": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(soft_packet_limit=20, hard_packet_limit=10)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_packet_limit",
        "Hard packet limit must be greater",
    ),
    "mlx5 soft packets equal hard": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(soft_packet_limit=10, hard_packet_limit=10)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_packet_limit",
        "Hard packet limit must be greater",
    ),
    "mlx5 soft packets 0": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(soft_packet_limit=0)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_packet_limit",
        "can't be 0",
    ),
    "mlx5 soft bytes above hard": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(soft_byte_limit=2000, hard_byte_limit=1000)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_byte_limit",
        "Hard byte limit must be greater",
    ),
    "mlx5 hard bytes 0": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(hard_byte_limit=0)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_byte_limit",
        "Hard byte limit must be greater",
    ),
    "mlx5 soft bytes 0": Refusal(
        "mlx5",
        F_PKT,
        sa(lifetime=LifetimeConfig(soft_byte_limit=0)),
        InvalidArgument,
        EINVAL,
        "lifetime.soft_byte_limit",
        "can't be 0",
    ),
    "mlx5 natt crypto": Refusal(
        "mlx5",
        0,
        sa(encap=EncapTemplate()),
        InvalidArgument,
        EINVAL,
        "encap",
        "packet offload mode only",
    ),
    "mlx5 natt tunnel": Refusal(
        "mlx5",
        F_PKT,
        sa(encap=EncapTemplate(), mode=Mode.TUNNEL),
        InvalidArgument,
        EINVAL,
        "mode",
        "transport mode only",
    ),
    "netdevsim natt": Refusal(
        "netdevsim",
        0,
        sa(encap=EncapTemplate()),
        InvalidArgument,
        EINVAL,
        "encap",
        "Encapsulation is not supported",
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_state_add_refusals(case: Refusal) -> None:
    dev = device(case.profile)
    with pytest.raises(case.exc) as info:
        dev.state_add(case.config, case.flags, 0.0)
    assert info.value.errno == case.errno
    assert info.value.field == case.field
    assert case.message in str(info.value)
    # Nothing stored, nothing announced, no key material in the message.
    assert dev.state_count == 0
    assert dev.pop_events() == []
    assert KEYMAT.hex() not in str(info.value)


# -- acceptances: (profile, flags, SA) -> offloaded with that type and dir ---------------

ACCEPTED = {
    "netdevsim out": ("netdevsim", 0, sa()),
    "netdevsim in": ("netdevsim", F_IN, sa_in()),
    "netdevsim with sa dir": ("netdevsim", F_IN, sa_in(sa_dir=IN)),
    "netdevsim tunnel": ("netdevsim", 0, sa(mode=Mode.TUNNEL)),
    "netdevsim ipv6": (
        "netdevsim",
        F_V6,
        sa(daddr=IPv6Address("2001:db8::2"), saddr=IPv6Address("2001:db8::3"), family=Family.INET6),
    ),
    "full if_id on tx": ("full", 0, sa(if_id=7)),
    "full packet in": ("full", F_IN | F_PKT, sa_in(replay_window=4096, flags=ESN)),
    "full cbc+hmac packet": (
        "full",
        F_PKT,
        sa(
            aead=None,
            enc=Algorithm("cbc(aes)", bytes(32)),
            auth=Algorithm("hmac(sha256)", bytes(32), 128),
        ),
    ),
    "full chacha crypto": (
        "full",
        0,
        sa(aead=Algorithm("rfc7539esp(chacha20,poly1305)", bytes(36))),
    ),
    "full gcm icv 64": ("full", 0, sa(aead=gcm(192, 64))),
    "full natt crypto tunnel": ("full", 0, sa(encap=EncapTemplate(), mode=Mode.TUNNEL)),
    "full packet fwd-less reqid 0": ("full", F_PKT, sa(reqid=0)),
    "mlx5 crypto esn in": ("mlx5", F_IN, sa_in(flags=ESN, replay_window=128)),
    "mlx5 256-bit key": ("mlx5", 0, sa(aead=gcm(256))),
    "mlx5 selector tcp": ("mlx5", 0, sa(selector=Selector(proto=6))),
    "mlx5 packet in window 64": ("mlx5", F_IN | F_PKT, sa_in(replay_window=64)),
    "mlx5 packet in esn window 256": ("mlx5", F_IN | F_PKT, sa_in(replay_window=256, flags=ESN)),
    "mlx5 packet in legacy window 16": ("mlx5", F_IN | F_PKT, sa_in(replay_window=16)),
    "mlx5 packet in window 0": ("mlx5", F_IN | F_PKT, sa_in()),
    "mlx5 packet out esn window 0 dir out": ("mlx5", F_PKT, sa(flags=ESN, sa_dir=OUT)),
    "mlx5 packet natt transport": ("mlx5", F_PKT, sa(encap=EncapTemplate())),
    "mlx5 packet soft below hard": (
        "mlx5",
        F_PKT,
        sa(
            lifetime=LifetimeConfig(
                soft_packet_limit=10,
                hard_packet_limit=20,
                soft_byte_limit=1000,
                hard_byte_limit=XFRM_INF,
            )
        ),
    ),
    "mlx5 crypto ignores packet-only rules": (
        "mlx5",
        F_IN,
        sa_in(
            reqid=0,
            replay_window=48,
            lifetime=LifetimeConfig(soft_packet_limit=20, hard_packet_limit=10),
        ),
    ),
}


@pytest.mark.parametrize(("profile", "flags", "config"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_state_add_accepts(profile: str, flags: int, config: SAConfig) -> None:
    dev = device(profile)
    result = dev.state_add(config, flags, 0.0)
    otype = PACKET if flags & F_PKT else CRYPTO
    odir = IN if flags & F_IN else OUT
    assert (result.offloaded, result.type, result.dir, result.reason) == (True, otype, odir, "")
    assert result.handle != 0
    entry = dev.get_state(result.handle)
    assert (entry.type, entry.dir, entry.lifecycle) == (otype, odir, Lifecycle.ACTIVE)
    assert entry.config is config  # kept as given; the offload lives in the entry
    assert dev.lookup_inbound(config.daddr, config.spi, config.proto) is entry
    sa_id = SAId(config.daddr, config.spi, config.proto, config.saddr)
    assert dev.pop_events() == [StateAdded("eth0", result.handle, sa_id, otype, odir)]


# -- scenario 1: the netdevsim round trip --------------------------------------------------


def test_netdevsim_round_trip() -> None:
    dev = device("netdevsim")
    out = dev.state_add(sa(), 0, 0.0)
    inb = dev.state_add(sa_in(), F_IN, 0.0)
    # nsim: handle = slot | BIT(31), lowest free slot first.
    assert (out.handle, inb.handle) == (0x80000000, 0x80000001)
    assert dev.state_count == 2
    assert [e.handle for e in dev.states()] == [0x80000000, 0x80000001]
    assert [e.slot for e in dev.states()] == [0, 1]
    # The selftest's debugfs check (after 3 pings through the out SA: tx=3).
    dev.offload_tx_packets = 3
    assert dev.netdevsim_debugfs() == (
        "SA count=2 tx=3\n"
        "sa[0] tx ipaddr=192.168.123.2\n"
        "sa[0]    spi=0x00000009 proto=0x32 salt=0x61626364 crypt=1\n"
        "sa[1] rx ipaddr=192.168.123.3\n"
        "sa[1]    spi=0x00000009 proto=0x32 salt=0x61626364 crypt=1\n"
    )
    keys = dev.netdevsim_debugfs(include_keys=True).splitlines()
    assert keys[3] == "sa[0]    key=0x34333231 38373635 32313039 36353433"
    # ip x s flush: delete + free each.
    for handle in (out.handle, inb.handle):
        dev.state_delete(handle)
        dev.state_free(handle)
    assert dev.state_count == 0
    assert list(dev.states()) == []
    assert dev.netdevsim_debugfs().startswith("SA count=0 ")


# -- scenario 4: the table is full at 33 ---------------------------------------------------


def test_netdevsim_table_full_then_free_slot() -> None:
    dev = device("netdevsim")
    handles = [dev.state_add(sa(spi=spi), 0, 0.0).handle for spi in range(1, 34)]
    assert handles == [0x80000000 | i for i in range(33)]
    with pytest.raises(NoSpace) as info:
        dev.state_add(sa(spi=100), 0, 0.0)
    assert info.value.errno == errno.ENOSPC
    assert str(info.value) == "No space for SA in Rx table!"
    # Deleted but not yet freed still holds its slot (the handle is still valid).
    dev.state_delete(0x80000005)
    with pytest.raises(NoSpace):
        dev.state_add(sa(spi=100), 0, 0.0)
    dev.state_free(0x80000005)
    assert dev.state_add(sa(spi=100), 0, 0.0).handle == 0x80000005
    with pytest.raises(NoSpace):
        dev.state_add(sa(spi=101), 0, 0.0)


def test_table_full_comes_before_algorithm_checks() -> None:
    # nsim_ipsec_add_sa looks for a free slot before it parses the key.
    dev = device("netdevsim")
    for spi in range(1, 34):
        dev.state_add(sa(spi=spi), 0, 0.0)
    with pytest.raises(NoSpace):
        dev.state_add(sa(spi=100, aead=Algorithm(GCM, KEYMAT, 96)), 0, 0.0)


def test_counter_handles_are_unique_and_never_reused() -> None:
    dev = device("mlx5", ifindex=7)
    first = dev.state_add(sa(), 0, 0.0).handle
    assert first == (7 << 32) | 1
    dev.state_delete(first)
    dev.state_free(first)
    second = dev.state_add(sa(), 0, 0.0).handle
    assert second == (7 << 32) | 2
    pol = dev.policy_add(
        Policy(sel=Selector(proto=6), dir=OUT, templates=(Template(reqid=1),)), F_PKT
    )
    assert pol.handle == (7 << 32) | 3
    other = device("mlx5", name="eth1", ifindex=8).state_add(sa(), 0, 0.0).handle
    assert other == (8 << 32) | 1


def test_duplicate_state_is_already_exists() -> None:
    dev = device("full")
    dev.state_add(sa(), 0, 0.0)
    with pytest.raises(AlreadyExists) as info:
        dev.state_add(sa(reqid=7), F_PKT, 0.0)
    assert (info.value.errno, info.value.field) == (errno.EEXIST, "spi")
    # Once deleted, the id is free again even before free.
    dev.state_delete(next(dev.states()).handle)
    assert dev.state_add(sa(), 0, 0.0).offloaded


def test_duplicate_on_netdevsim_keeps_the_slot_free() -> None:
    dev = device("netdevsim")
    dev.state_add(sa(), 0, 0.0)
    with pytest.raises(AlreadyExists):
        dev.state_add(sa(), 0, 0.0)
    assert dev.state_add(sa(spi=10), 0, 0.0).handle == 0x80000001


# -- scenario 5: -EOPNOTSUPP is an answer in crypto mode, an error in packet mode ----------


DECLINING_MLX5 = replace(PROFILES["mlx5"], decline_unsupported_algorithms=True)
CBC = dict(aead=None, enc=Algorithm("cbc(aes)", bytes(16)), auth=Algorithm("hmac(sha1)", bytes(20)))


@pytest.mark.parametrize(
    ("profile", "config", "reason"),
    [
        ("nooffload", sa(), "eth0 has no IPsec offload (NETIF_F_HW_ESP)"),
        (DECLINING_MLX5, sa(**CBC), "Unsupported IPsec algorithm: only AEADs can be offloaded"),
        (DECLINING_MLX5, sa(aead=gcm(icv=96)), "Cannot offload xfrm states with AEAD ICV length"),
        ("netdevsim", sa(proto=51), "only ESP is implemented"),
        ("full", sa(encap=EncapTemplate(EncapType.ESPINUDP_NON_IKE)), "only ESP-in-UDP"),
    ],
    ids=["no HW_ESP", "declined alg", "declined icv", "engine: AH", "engine: non-IKE"],
)
def test_crypto_decline_is_an_answer(profile: str | Profile, config: SAConfig, reason: str) -> None:
    dev = device(profile)
    result = dev.state_add(config, 0, 0.0)
    assert (result.offloaded, result.handle, result.type, result.dir) == (False, 0, CRYPTO, OUT)
    assert result.reason.startswith(reason)
    assert dev.state_count == 0
    assert dev.lookup_inbound(config.daddr, config.spi, config.proto) is None
    assert dev.pop_events() == []


def test_decline_in_packet_mode_is_an_error() -> None:
    dev = device(DECLINING_MLX5)
    with pytest.raises(NotSupported) as info:
        dev.state_add(sa(**CBC), F_PKT, 0.0)
    assert (info.value.errno, info.value.field) == (errno.EOPNOTSUPP, "enc")


def test_decline_still_runs_core_checks() -> None:
    # The engine cannot do AH, but a bad offload request is refused first as -EINVAL.
    with pytest.raises(InvalidArgument) as info:
        device("netdevsim").state_add(sa(proto=51, tfcpad=10), 0, 0.0)
    assert info.value.field == "tfcpad"


# -- lifecycle: delete, free, and what a deleted state still answers ----------------------


def test_state_lifecycle_errors() -> None:
    dev = device("full")
    handle = dev.state_add(sa(), 0, 0.0).handle
    with pytest.raises(WrongState, match="must be deleted before it is freed") as info:
        dev.state_free(handle)
    assert (info.value.errno, info.value.field) == (errno.EBUSY, "ref.offload_handle")
    dev.state_delete(handle)
    assert dev.get_state(handle).lifecycle is Lifecycle.DELETED
    assert dev.lookup_inbound(PEER, 9, 50) is None
    assert dev.offload_ok(handle, ipv4_udp(LOCAL, PEER, b"x")) == (False, "state deleted")
    assert dev.update_curlft(handle).curlft.packets == 0  # counters stay readable
    with pytest.raises(WrongState, match="already deleted"):
        dev.state_delete(handle)
    dev.state_free(handle)
    with pytest.raises(NotFound, match="already freed") as nf:
        dev.state_free(handle)
    assert (nf.value.errno, nf.value.field) == (errno.ENOENT, "ref.offload_handle")
    for call in (dev.state_delete, dev.update_curlft, dev.get_state):
        with pytest.raises(NotFound):
            call(handle)
    with pytest.raises(NotFound):
        dev.offload_ok(12345, b"")
    sa_id = SAId(PEER, 9, 50, LOCAL)
    assert dev.pop_events() == [
        StateAdded("eth0", handle, sa_id, CRYPTO, OUT),
        StateDeleted("eth0", handle, sa_id, DeleteReason.USER),
    ]


# -- offload_ok (xfrm_dev_offload_ok) --------------------------------------------------------


def _fill(total: int) -> bytes:
    return ipv4_udp(LOCAL, PEER, bytes(total - 28))


V6A, V6B = IPv6Address("2001:db8::3"), IPv6Address("2001:db8::2")
V6SA = sa(daddr=V6B, saddr=V6A, family=Family.INET6)

OFFLOAD_OK = {
    "plain": (sa(), 0, _fill(100), (True, "")),
    "transport mtu edge": (sa(), 0, _fill(1466), (True, "")),
    "transport mtu +1": (sa(), 0, _fill(1467), (False, "exceeds MTU (1467 > 1466)")),
    "tunnel mtu edge": (sa(mode=Mode.TUNNEL), 0, _fill(1446), (True, "")),
    "tunnel mtu +1": (sa(mode=Mode.TUNNEL), 0, _fill(1447), (False, "exceeds MTU (1447 > 1446)")),
    "natt tunnel mtu": (
        sa(mode=Mode.TUNNEL, encap=EncapTemplate()),
        0,
        _fill(1439),
        (False, "exceeds MTU (1439 > 1438)"),
    ),
    "cbc transport mtu edge": (
        sa(
            aead=None,
            enc=Algorithm("cbc(aes)", bytes(16)),
            auth=Algorithm("hmac(sha256)", bytes(32), 128),
        ),
        0,
        _fill(1458),
        (True, ""),
    ),
    "ipv4 options": (sa(), 0, ipv4_udp(LOCAL, PEER, b"x", ihl=6), (False, "IPv4 options")),
    "ipv6 ok": (V6SA, F_V6, ipv6_udp(V6A, V6B, b"x"), (True, "")),
    "ipv6 hop-by-hop": (
        V6SA,
        F_V6,
        ipv6_udp(V6A, V6B, b"x", nh=0),
        (False, "IPv6 extension headers"),
    ),
    "ipv6 fragment": (
        V6SA,
        F_V6,
        ipv6_udp(V6A, V6B, b"x", nh=44),
        (False, "IPv6 extension headers"),
    ),
    "family mismatch": (sa(), 0, ipv6_udp(V6A, V6B, b"x"), (False, "family mismatch")),
    "tunnel 6in4": (sa(mode=Mode.TUNNEL), 0, ipv6_udp(V6A, V6B, b"x"), (True, "")),
    "inbound state": (sa_in(), F_IN, _fill(100), (False, "inbound state")),
    "empty": (sa(), 0, b"", (False, "malformed packet")),
    "short ipv4": (sa(), 0, b"\x45" + bytes(10), (False, "malformed packet")),
    "not ip": (sa(), 0, bytes(40), (False, "malformed packet")),
}


@pytest.mark.parametrize(
    ("config", "flags", "packet", "answer"), OFFLOAD_OK.values(), ids=OFFLOAD_OK.keys()
)
def test_offload_ok(config: SAConfig, flags: int, packet: bytes, answer: tuple[bool, str]) -> None:
    dev = device("full")
    handle = dev.state_add(config, flags, 0.0).handle
    assert dev.offload_ok(handle, packet) == answer


def test_offload_ok_link_down() -> None:
    dev = device("full")
    dev.set_link(False, 0.0)
    handle = dev.state_add(sa(), 0, 0.0).handle  # the kernel does not refuse a down device
    assert dev.offload_ok(handle, _fill(100)) == (False, "link down")


def test_offload_ok_smaller_mtu() -> None:
    dev = Device("eth0", 2, PROFILES["full"], mtu=1280)
    handle = dev.state_add(sa(), 0, 0.0).handle
    assert dev.offload_ok(handle, _fill(1246)) == (True, "")
    assert dev.offload_ok(handle, _fill(1247)) == (False, "exceeds MTU (1247 > 1246)")


# -- scenario 10: advance_esn ----------------------------------------------------------------


def test_advance_esn_moves_the_crypto_window() -> None:
    dev = device("mlx5")
    handle = dev.state_add(sa_in(flags=ESN, replay_window=64), F_IN, 0.0).handle
    replay = dev.advance_esn(handle, 1, 5)
    assert (replay.seq_hi, replay.seq, replay.replay_window, replay.bmp_len) == (1, 5, 64, 2)
    assert replay.bmp == (0, 0)
    assert dev.update_curlft(handle).replay_state == replay
    with pytest.raises(InvalidArgument) as info:
        dev.advance_esn(handle, 0, 0xFFFFFFFF)
    assert (info.value.errno, info.value.field) == (errno.EINVAL, "replay.seq_hi")
    with pytest.raises(InvalidArgument) as info:
        dev.advance_esn(handle, 1, 4)
    assert info.value.field == "replay.seq"
    assert dev.pop_events()[1:] == []  # the host moved it: no EsnAdvanced event


@pytest.mark.parametrize(
    ("flags", "config", "match"),
    [
        (F_IN, sa_in(replay_window=64), "has no ESN"),
        (0, sa(flags=ESN, sa_dir=OUT), "is outbound"),
        (F_IN | F_PKT, sa_in(flags=ESN, replay_window=64), "packet offload the device keeps"),
    ],
    ids=["not esn", "outbound", "packet mode"],
)
def test_advance_esn_refusals(flags: int, config: SAConfig, match: str) -> None:
    dev = device("mlx5")
    handle = dev.state_add(config, flags, 0.0).handle
    with pytest.raises(WrongState, match=match):
        dev.advance_esn(handle, 1, 0)


def test_advance_esn_on_deleted_state() -> None:
    dev = device("mlx5")
    handle = dev.state_add(sa_in(flags=ESN, replay_window=64), F_IN, 0.0).handle
    dev.state_delete(handle)
    with pytest.raises(WrongState, match="already deleted"):
        dev.advance_esn(handle, 1, 0)


# -- packets through a device's SA (the packet path proper is another module) --------------


def _peer(config: SAConfig, **replay: int) -> SecurityAssociation:
    """The other end: the same SA, outbound, with real crypto."""
    return SecurityAssociation(
        replace(config, sa_dir=OUT, replay_window=0, replay=ReplayState(**replay)),
        0.0,
        iv_salt=IV_SALT,
    )


def test_packet_mode_esn_wrap_raises_tagged_event() -> None:
    # Scenario 10 (packet side) / 13: the device's own window crosses 2^32.
    dev = device("full")
    config = sa_in(flags=ESN, replay_window=64, replay=ReplayState(seq=0xFFFFFFF0))
    handle = dev.state_add(config, F_IN | F_PKT, 0.0).handle
    peer = _peer(config, oseq=0xFFFFFFFF)
    entry = dev.get_state(handle)
    esp = peer.encap(ipv4_udp(PEER, LOCAL, b"hello"), 1.0)
    assert isinstance(esp, bytes)
    assert entry.sa.decap(esp, 1.0) == ipv4_udp(PEER, LOCAL, b"hello")
    dev.collect_state_events(entry)
    events = dev.pop_events()
    sa_id = SAId(LOCAL, 9, 50, PEER)
    assert events[-1] == StateEvent("eth0", handle, EsnAdvanced(sa_id, 1))
    replay = dev.update_curlft(handle).replay_state
    assert (replay.seq_hi, replay.seq) == (1, 0)


def test_sequence_overflow_counts_on_the_device() -> None:
    # Scenario 14: the last number goes out, the next one is XfrmOutStateSeqError.
    dev = device("full")
    config = sa(sa_dir=OUT, replay=ReplayState(oseq=0xFFFFFFFE))
    handle = dev.state_add(config, F_PKT, 0.0).handle
    entry = dev.get_state(handle)
    out = entry.sa.encap_batch([_fill(100)] * 3, 1.0)
    assert isinstance(out[0], bytes)
    assert out[0][24:28] == b"\xff\xff\xff\xff"  # ESP seq after the 20-byte IP + SPI
    assert out[1:] == [XfrmStat.OUT_STATE_SEQ_ERROR] * 2
    assert dev.stats[XfrmStat.OUT_STATE_SEQ_ERROR] == 2
    assert dev.update_curlft(handle).drops == {XfrmStat.OUT_STATE_SEQ_ERROR: 2}
    dev.collect_state_events(entry)
    assert dev.pop_events()[1:] == [
        StateEvent("eth0", handle, SeqOverflow(SAId(PEER, 9, 50, LOCAL)))
    ]


def test_packet_lifetimes_fire_tagged_expire_events() -> None:
    # Scenario 15: soft after 10 packets, hard after 20, then traffic stops.
    dev = device("mlx5")
    lft = LifetimeConfig(soft_packet_limit=10, hard_packet_limit=20)
    handle = dev.state_add(sa(lifetime=lft), F_PKT, 0.0).handle
    entry = dev.get_state(handle)
    out = entry.sa.encap_batch([_fill(100)] * 25, 1.0)
    assert sum(isinstance(p, bytes) for p in out) == 20
    assert out[20:] == [XfrmStat.OUT_STATE_EXPIRED] * 5
    dev.collect_state_events(entry)
    sa_id = SAId(PEER, 9, 50, LOCAL)
    assert dev.pop_events()[1:] == [
        StateEvent("eth0", handle, Expired(sa_id, hard=False, kind=LimitKind.PACKETS)),
        StateEvent("eth0", handle, Expired(sa_id, hard=True, kind=LimitKind.PACKETS)),
    ]
    counters = dev.update_curlft(handle)
    assert (counters.curlft.packets, counters.curlft.bytes, counters.expired) == (20, 2000, True)
    assert dev.stats[XfrmStat.OUT_STATE_EXPIRED] == 5
    # A hard-expired packet SA is no longer a candidate for its policy's template.
    assert dev.lookup_outbound(Template(reqid=42), PEER, LOCAL) is None


def test_poll_fires_time_limits_of_active_states_only() -> None:
    dev = device("full")
    lft = LifetimeConfig(soft_add_expires_seconds=30, hard_add_expires_seconds=60)
    a = dev.state_add(sa(lifetime=lft), 0, 100.0).handle
    b = dev.state_add(sa(spi=10, lifetime=lft), 0, 100.0).handle
    dev.state_delete(b)
    dev.pop_events()
    dev.poll(129.0)
    assert dev.pop_events() == []
    dev.poll(130.0)
    sa_id = SAId(PEER, 9, 50, LOCAL)
    assert dev.pop_events() == [
        StateEvent("eth0", a, Expired(sa_id, hard=False, kind=LimitKind.ADD_TIME))
    ]
    dev.poll(160.0)
    assert dev.pop_events() == [
        StateEvent("eth0", a, Expired(sa_id, hard=True, kind=LimitKind.ADD_TIME))
    ]


def test_zero_limit_fires_at_add() -> None:
    dev = device("full")
    handle = dev.state_add(sa(lifetime=LifetimeConfig(hard_packet_limit=0)), F_PKT, 0.0).handle
    events = dev.pop_events()
    assert events[1] == StateEvent(
        "eth0", handle, Expired(SAId(PEER, 9, 50, LOCAL), hard=True, kind=LimitKind.PACKETS)
    )


def test_stats_after_good_and_corrupted_packets() -> None:
    # Scenario 16: N good, M with a broken ICV.
    dev = device("mlx5")
    config = sa_in(replay_window=64)
    handle = dev.state_add(config, F_IN | F_PKT, 0.0).handle
    peer = _peer(config)
    wire = [peer.encap(ipv4_udp(PEER, LOCAL, bytes([i]) * 50), 1.0) for i in range(8)]
    assert all(isinstance(w, bytes) for w in wire)
    packets = [bytes(w) for w in wire if isinstance(w, bytes)]
    bad = {1, 4, 6}
    received = [p[:-1] + bytes([p[-1] ^ 1]) if i in bad else p for i, p in enumerate(packets)]
    out = dev.get_state(handle).sa.decap_batch(received, 2.0)
    assert [o == XfrmStat.IN_STATE_PROTO_ERROR for o in out] == [i in bad for i in range(8)]
    counters = dev.update_curlft(handle)
    assert (counters.curlft.packets, counters.curlft.bytes) == (5, 5 * 78)
    assert (counters.integrity_failed, counters.replay, counters.replay_window) == (3, 0, 0)
    assert counters.drops == {XfrmStat.IN_STATE_PROTO_ERROR: 3}
    assert dev.stats[XfrmStat.IN_STATE_PROTO_ERROR] == 3


# -- scenario 17: link down ------------------------------------------------------------------


def _mlx5_with_two_of_each() -> tuple[Device, list[int], list[int]]:
    dev = device("mlx5")
    states = [
        dev.state_add(sa(), F_PKT, 0.0).handle,
        dev.state_add(sa_in(), F_IN | F_PKT, 0.0).handle,
    ]
    policies = [
        dev.policy_add(
            Policy(
                sel=Selector(daddr=PEER, prefixlen_d=32), dir=d, templates=(Template(reqid=42),)
            ),
            F_PKT,
        ).handle
        for d in (OUT, IN)
    ]
    return dev, states, policies


def test_link_down_flushes_everything_with_events() -> None:
    dev, states, policies = _mlx5_with_two_of_each()
    dev.pop_events()
    assert dev.set_link(False, 5.0) == (2, 2)
    assert dev.up is False
    events = dev.pop_events()
    assert events[0] == LinkChanged("eth0", up=False)
    assert events[1:3] == [
        StateDeleted("eth0", states[0], SAId(PEER, 9, 50, LOCAL), DeleteReason.LINK_DOWN),
        StateDeleted("eth0", states[1], SAId(LOCAL, 9, 50, PEER), DeleteReason.LINK_DOWN),
    ]
    assert events[3:] == [
        PolicyDeleted("eth0", policies[0], 1, OUT, DeleteReason.LINK_DOWN),
        PolicyDeleted("eth0", policies[1], 8, IN, DeleteReason.LINK_DOWN),
    ]
    assert (dev.state_count, dev.policy_count, len(dev.sad), len(dev.spd)) == (0, 0, 0, 0)
    for handle in states:
        with pytest.raises(NotFound):
            dev.state_delete(handle)
    for handle in policies:
        with pytest.raises(NotFound):
            dev.policy_free(handle)
    # Down again: nothing happens. Up: an empty device; re-adding needs a new add.
    assert dev.set_link(False, 6.0) == (0, 0)
    assert dev.pop_events() == []
    assert dev.set_link(True, 7.0) == (0, 0)
    assert dev.pop_events() == [LinkChanged("eth0", up=True)]
    assert dev.lookup_inbound(LOCAL, 9, 50) is None
    again = dev.state_add(sa_in(), F_IN | F_PKT, 8.0).handle
    assert again not in states


def test_link_down_frees_deleted_states_without_a_second_event() -> None:
    dev, states, policies = _mlx5_with_two_of_each()
    dev.state_delete(states[0])
    dev.policy_delete(policies[0])
    dev.pop_events()
    assert dev.set_link(False, 1.0) == (1, 1)
    kinds = [type(e).__name__ for e in dev.pop_events()]
    assert kinds == ["LinkChanged", "StateDeleted", "PolicyDeleted"]
    assert (dev.state_count, dev.policy_count) == (0, 0)


# -- scenario 6 and 18: policy offload ---------------------------------------------------


def pol(**kw: Any) -> Policy:
    base: dict[str, Any] = dict(
        sel=Selector(daddr=PEER, prefixlen_d=32, proto=6), dir=OUT, templates=(Template(reqid=42),)
    )
    base.update(kw)
    return Policy(**base)


POLICY_REFUSALS = {
    "flags 0": ("mlx5", 0, pol(), InvalidArgument, "offload.flags", "Unrecognized flags"),
    "flags packet|ipv6": (
        "mlx5",
        F_PKT | F_V6,
        pol(),
        InvalidArgument,
        "offload.flags",
        "Unrecognized",
    ),
    "flags inbound": ("full", F_IN, pol(), InvalidArgument, "offload.flags", "Unrecognized"),
    "netdevsim": ("netdevsim", F_PKT, pol(), InvalidArgument, "offload.dev", "not supported"),
    "nooffload": ("nooffload", F_PKT, pol(), InvalidArgument, "offload.dev", "not supported"),
    "mlx5 two templates": (
        "mlx5",
        F_PKT,
        pol(templates=(Template(reqid=1), Template(reqid=2))),
        InvalidArgument,
        "templates",
        "more than 1 template",
    ),
    "mlx5 fwd": ("mlx5", F_PKT, pol(dir=FWD), InvalidArgument, "dir", "Cannot offload fwd policy"),
    "mlx5 reqid 0 empty selector": (
        "mlx5",
        F_PKT,
        pol(sel=Selector(), templates=(Template(),)),
        InvalidArgument,
        "templates[0].reqid",
        "reqid 0",
    ),
    "mlx5 no template empty selector": (
        "mlx5",
        F_PKT,
        pol(sel=Selector(), templates=()),
        InvalidArgument,
        "templates",
        "reqid 0",
    ),
    "mlx5 selector icmp": (
        "mlx5",
        F_PKT,
        pol(sel=Selector(proto=1)),
        InvalidArgument,
        "sel.proto",
        "TCP/UDP",
    ),
    "mlx5 priority u32 max": (
        "mlx5",
        F_PKT,
        pol(priority=0xFFFFFFFF),
        InvalidArgument,
        "priority",
        "priority",
    ),
    "index with wrong dir": ("full", F_PKT, pol(index=8), InvalidArgument, "index", "dir"),
}


@pytest.mark.parametrize(
    ("profile", "flags", "policy", "exc", "field", "message"),
    POLICY_REFUSALS.values(),
    ids=POLICY_REFUSALS.keys(),
)
def test_policy_add_refusals(
    profile: str, flags: int, policy: Policy, exc: type[LocalError], field: str, message: str
) -> None:
    dev = device(profile)
    with pytest.raises(exc) as info:
        dev.policy_add(policy, flags)
    assert (info.value.errno, info.value.field) == (errno.EINVAL, field)
    assert message in str(info.value)
    assert (dev.policy_count, len(dev.spd), dev.pop_events()) == (0, 0, [])


@pytest.mark.parametrize(
    ("profile", "policy", "index"),
    [
        ("mlx5", pol(), 1),
        ("mlx5", pol(dir=IN), 0 | 8),
        ("mlx5", pol(sel=Selector(proto=17), templates=(Template(),)), 1),  # reqid 0, proto set
        ("mlx5", pol(sel=Selector(daddr=PEER, prefixlen_d=32), templates=(Template(),)), 1),
        ("full", pol(dir=FWD, templates=(Template(reqid=1), Template(reqid=2))), 2),
        ("full", pol(sel=Selector(), templates=()), 1),
        ("full", pol(index=0x101), 0x101),
    ],
)
def test_policy_add_accepts(profile: str, policy: Policy, index: int) -> None:
    dev = device(profile)
    result = dev.policy_add(policy, F_PKT)
    assert result.index == index
    entry = dev.get_policy(result.handle)
    assert (entry.index, entry.dir, entry.lifecycle) == (index, policy.dir, Lifecycle.ACTIVE)
    assert entry.policy.offload is not None and entry.policy.offload.type == PACKET
    assert dev.spd.get(index) == entry.policy
    assert dev.pop_events() == [PolicyAdded("eth0", result.handle, index, policy.dir)]


def test_duplicate_policy_is_already_exists() -> None:
    dev = device("mlx5")
    dev.policy_add(pol(), F_PKT)
    with pytest.raises(AlreadyExists) as info:
        dev.policy_add(pol(priority=5), F_PKT)
    assert (info.value.errno, info.value.field) == (errno.EEXIST, "sel")
    assert dev.policy_count == 1


def test_policy_lifecycle() -> None:
    dev = device("mlx5")
    handle = dev.policy_add(pol(), F_PKT).handle
    with pytest.raises(WrongState, match="must be deleted before it is freed"):
        dev.policy_free(handle)
    dev.policy_delete(handle)
    assert dev.get_policy(handle).lifecycle is Lifecycle.DELETED
    assert len(dev.spd) == 0
    with pytest.raises(WrongState, match="already deleted"):
        dev.policy_delete(handle)
    # The same selector can be offloaded again while the old one awaits free.
    second = dev.policy_add(pol(), F_PKT)
    assert [p.handle for p in dev.policies()] == [handle, second.handle]
    dev.policy_free(handle)
    with pytest.raises(NotFound, match="already freed"):
        dev.policy_free(handle)
    assert dev.pop_events()[1] == PolicyDeleted("eth0", handle, 1, OUT, DeleteReason.USER)


def test_packet_policy_binds_only_packet_states_of_its_device() -> None:
    # Scenario 18: a packet-offload policy never resolves to a crypto-offload state.
    dev = device("mlx5")
    tmpl = Template(reqid=42)
    dev.state_add(sa(), 0, 0.0)  # crypto, same reqid and addresses
    assert dev.lookup_outbound(tmpl, PEER, LOCAL) is None
    handle = dev.state_add(sa(spi=10), F_PKT, 0.0).handle
    found = dev.lookup_outbound(tmpl, PEER, LOCAL)
    assert found is not None and found.handle == handle
    # Another device with the same policy has nothing to use.
    assert device("mlx5", name="eth1", ifindex=3).lookup_outbound(tmpl, PEER, LOCAL) is None

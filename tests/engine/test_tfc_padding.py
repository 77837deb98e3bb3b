"""TFC padding as the kernel does it: up to ``tfcpad``, never past the MTU, tunnel only.

esp_output (net/ipv4/esp4.c, net/ipv6/esp6.c) pads an inner packet shorter than
``padto = min(tfcpad, xfrm_state_mtu(x, mtu))`` up to padto; a longer one is sent as it
is. xfrm_state_mtu (net/xfrm/xfrm_state.c) is the largest cleartext packet that still
fits the MTU with the SA's ESP overhead, so padding alone never makes a packet exceed
the MTU. verify_newsa_info (net/xfrm/xfrm_user.c) refuses tfcpad outside tunnel mode.

Every expected length below is worked out by hand from those functions: outer IP header
(20 or 40), UDP (8) for NAT-T, ESP header + IV (8 + 8 for GCM, 8 + 16 for CBC), the
padded inner packet and 2 trailer bytes rounded up to the block alignment (4 for GCM,
16 for CBC), ICV (16). Runs on both engines (conftest's ``esp_engine``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from xfrm_offload.engine import native
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, EncapTemplate, Family, Mode, SAConfig

GCM = Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128)
CBC = Algorithm("cbc(aes)", bytes(range(16, 32)))
SHA256 = Algorithm("hmac(sha256)", bytes(range(32, 64)), 128)
OUTER = {
    Family.INET: (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")),
    Family.INET6: (ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")),
}


def sa_config(
    family: Family = Family.INET,
    *,
    mode: Mode = Mode.TUNNEL,
    natt: bool = False,
    cbc: bool = False,
    tfcpad: int = 0,
) -> SAConfig:
    saddr, daddr = OUTER[family]
    return SAConfig(
        daddr=daddr,
        saddr=saddr,
        spi=0x7FC,
        family=family,
        mode=mode,
        replay_window=64,
        aead=None if cbc else GCM,
        enc=CBC if cbc else None,
        auth=SHA256 if cbc else None,
        encap=EncapTemplate(sport=4500, dport=4500) if natt else None,
        tfcpad=tfcpad,
    )


def inner_packet(family: Family, length: int) -> bytes:
    """A UDP packet of exactly ``length`` bytes."""
    udp = UDP(sport=1, dport=2)
    if family == Family.INET:
        out = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / udp / Raw(bytes(length - 28)))
    else:
        out = bytes(IPv6(src="fd00::1", dst="fd00::2") / udp / Raw(bytes(length - 48)))
    assert len(out) == length
    return out


@dataclass(frozen=True)
class Case:
    outer: Family
    inner: Family
    inner_len: int
    tfcpad: int
    mtu: int
    #: The ESP packet's length on the wire, outer header included.
    out_len: int
    natt: bool = False
    cbc: bool = False


V4, V6 = Family.INET, Family.INET6
CASES = {
    # IPv4 outer, GCM: xfrm_state_mtu(1500) = ((1500 - 36 - 16) & ~3) - 2 = 1446.
    "off: no padding": Case(V4, V4, 100, 0, 1500, 20 + 16 + 104 + 16),
    "tfcpad below the packet": Case(V4, V4, 100, 64, 1500, 20 + 16 + 104 + 16),
    "tfcpad equal to the packet": Case(V4, V4, 100, 100, 1500, 20 + 16 + 104 + 16),
    "tfcpad above the packet": Case(V4, V4, 100, 1000, 1500, 20 + 16 + 1004 + 16),
    "tfcpad at the MTU limit": Case(V4, V4, 100, 1446, 1500, 1500),
    "tfcpad one past the limit": Case(V4, V4, 100, 1447, 1500, 1500),
    "tfcpad 65535: to the limit": Case(V4, V4, 100, 0xFFFF, 1500, 1500),
    "smaller device MTU": Case(V4, V4, 100, 0xFFFF, 1400, 1400),
    "jumbo device MTU": Case(V4, V4, 100, 0xFFFF, 9000, 9000),
    "jumbo MTU, tfcpad below it": Case(V4, V4, 100, 4000, 9000, 20 + 16 + 4004 + 16),
    "packet above the limit": Case(V4, V4, 1600, 0xFFFF, 1500, 20 + 16 + 1604 + 16),
    "IPv6 inner in IPv4": Case(V4, V6, 100, 0xFFFF, 1500, 1500),
    # IPv6 outer: header_len 8 + 8 + 40 = 56, state MTU ((1500 - 72) & ~3) - 2 = 1426.
    "IPv6 outer, above the packet": Case(V6, V6, 100, 1000, 1500, 40 + 16 + 1004 + 16),
    "IPv6 outer, to the limit": Case(V6, V6, 100, 0xFFFF, 1500, 1500),
    "IPv6 outer, 1280": Case(V6, V6, 100, 0xFFFF, 1280, 1280),
    "IPv4 inner in IPv6": Case(V6, V4, 200, 0xFFFF, 1500, 1500),
    # NAT-T: 8 more bytes of header, so the limit is 8 lower (1438 / 1418).
    "NAT-T, above the packet": Case(V4, V4, 100, 1000, 1500, 20 + 8 + 16 + 1004 + 16, True),
    "NAT-T, to the limit": Case(V4, V4, 100, 0xFFFF, 1500, 1500, True),
    "NAT-T IPv6, to the limit": Case(V6, V6, 100, 0xFFFF, 1500, 1500, True),
    # CBC: 16-byte IV and blocks. MTU 1490: ((1490 - 44 - 16) & ~15) - 2 = 1422, whose
    # ESP packet is 1484: the block rounding keeps it under the MTU.
    "CBC, above the packet": Case(V4, V4, 100, 1000, 1500, 20 + 24 + 1008 + 16, cbc=True),
    "CBC, to the limit": Case(V4, V4, 100, 0xFFFF, 1500, 1500, cbc=True),
    "CBC, limit not block-aligned": Case(V4, V4, 100, 0xFFFF, 1490, 1484, cbc=True),
    # An MTU too small for the headers: xfrm_state_mtu's u32 result wraps to a huge
    # value, so tfcpad itself is the limit (68 - 64 - 16 < 0 for IPv6 NAT-T).
    "MTU below the overhead": Case(V6, V6, 100, 200, 68, 40 + 8 + 16 + 204 + 16, True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_tfc_padded_length(case: Case) -> None:
    cfg = sa_config(case.outer, natt=case.natt, cbc=case.cbc, tfcpad=case.tfcpad)
    tx = SecurityAssociation(cfg, 0.0, mtu=case.mtu)
    rx = SecurityAssociation(cfg, 0.0, mtu=case.mtu)
    inner = inner_packet(case.inner, case.inner_len)
    out = tx.encap(inner, 1.0)
    assert isinstance(out, bytes)
    assert len(out) == case.out_len
    # The receiver gives back the inner packet alone: the padding is cut by its length.
    assert rx.decap(out, 1.0) == inner
    assert (tx.curlft.bytes, rx.curlft.bytes) == (case.inner_len, case.inner_len)


def test_limit_is_the_state_mtu() -> None:
    sa = SecurityAssociation(sa_config(tfcpad=0xFFFF), 0.0, mtu=1500)
    assert (sa.state_mtu(1500), sa.tfc_padto) == (1446, 1446)
    assert SecurityAssociation(sa_config(tfcpad=300), 0.0).tfc_padto == 300
    assert SecurityAssociation(sa_config(), 0.0).tfc_padto == 0


TRANSPORT = {
    "IPv4": sa_config(V4, mode=Mode.TRANSPORT, tfcpad=1),
    "IPv6": sa_config(V6, mode=Mode.TRANSPORT, tfcpad=1400),
    "IPv4 NAT-T": sa_config(V4, mode=Mode.TRANSPORT, natt=True, tfcpad=0xFFFF),
}


@pytest.mark.parametrize("cfg", TRANSPORT.values(), ids=TRANSPORT.keys())
def test_transport_mode_refuses_tfcpad(cfg: SAConfig) -> None:
    with pytest.raises(InvalidArgument) as info:
        SecurityAssociation(cfg, 0.0)
    assert info.value.field == "tfcpad"
    assert info.value.message == "TFC padding can only be used in tunnel mode"


DEVICE_REFUSALS = {
    # verify_newsa_info runs before the offload is asked for, so transport mode hears
    # the mode rule and tunnel mode the offload one (xfrm_dev_state_add).
    "transport": (Mode.TRANSPORT, "TFC padding can only be used in tunnel mode"),
    "tunnel": (Mode.TUNNEL, "TFC padding can't be offloaded"),
}


@pytest.mark.parametrize("mode,message", DEVICE_REFUSALS.values(), ids=DEVICE_REFUSALS.keys())
def test_device_refusal_order(mode: Mode, message: str) -> None:
    dev = Device("eth0", 2, PROFILES["full"])
    with pytest.raises(InvalidArgument) as info:
        dev.state_add(sa_config(mode=mode, tfcpad=100), 0, 0.0)
    assert (info.value.field, info.value.message) == ("tfcpad", message)
    assert dev.state_count == 0


def test_device_builds_its_sas_with_its_mtu() -> None:
    dev = Device("eth0", 2, PROFILES["full"], mtu=1280)
    result = dev.state_add(sa_config(), 0, 0.0)
    entry = dev.get_state(result.handle)
    assert entry.sa.mtu == 1280
    assert entry.state_mtu(dev.mtu) == entry.sa.state_mtu(1280) == 1226


NATIVE_REFUSALS = {
    "negative": (True, -1),
    "past 16 bits": (True, 0x10000),
    "transport mode": (False, 100),
}


@pytest.mark.skipif(not native.available(), reason="native engine not built")
@pytest.mark.parametrize("tunnel,padto", NATIVE_REFUSALS.values(), ids=NATIVE_REFUSALS.keys())
def test_native_sa_refuses_an_impossible_limit(tunnel: bool, padto: int) -> None:
    """The C SA takes the limit already clamped; one the kernel could never have (or the
    padding in transport mode) is a caller's bug, refused rather than used."""
    batch = SecurityAssociation(sa_config(), 0.0, engine="native").batch
    assert isinstance(batch, native.NativeEsp)
    sa_type: Any = type(batch._sa)

    def build(tunnel: bool, padto: int) -> object:
        return sa_type(
            kind=0, chacha=False, key=GCM.key[:16], salt=GCM.key[16:], digest="",
            auth_key=b"", icv_len=16, iv_salt=bytes(16), spi=1, esn=False, tunnel=tunnel,
            outer_v6=False, natt=False, sport=0, dport=0, tfc_padto=padto, saddr=bytes(4),
            daddr=bytes(4), nopmtudisc=False, decap_ecn=True, decap_dscp=False,
            tos_map=bytes(256), window=32, results=native._RESULTS,
        )  # fmt: skip

    build(tunnel, 0)  # the same parameters with no padding are fine
    with pytest.raises(ValueError, match="inconsistent parameters"):
        build(tunnel, padto)

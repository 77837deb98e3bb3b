"""Interop with scapy's ESP (scapy.layers.ipsec.SecurityAssociation) as the peer.

For every algorithm both implement, in transport and tunnel mode, over IPv4 and IPv6,
with and without ESN and NAT-T: what our SA encapsulates scapy decrypts, and what scapy
encrypts our SA decapsulates, both to the byte-exact original packet.
scapy ignores truncated GCM ICVs on encrypt (secdev/scapy#4903), so GCM uses 16 bytes.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA
from scapy.packet import Packet, Padding, Raw

from xfrm_offload.engine.esp import (
    CryptoStatus,
    host_rx_finish,
    host_tx_frame,
    nic_rx_crypto,
    nic_tx_crypto,
)
from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    Algorithm,
    EncapTemplate,
    Family,
    Mode,
    ReplayState,
    SAConfig,
    SAFlag,
)

SPI = 0x0000C0DE
ESN_HI = 0x00000007
KEY16 = bytes(range(1, 17))
KEY32 = bytes(range(0x20, 0x40))
SALT = b"\xa0\xa1\xa2\xa3"
HKEY = bytes(range(0x40, 0x80))


@dataclass(frozen=True)
class Suite:
    name: str
    aead: Algorithm | None
    enc: Algorithm | None
    auth: Algorithm | None
    crypt_algo: str
    crypt_key: bytes
    auth_algo: str | None = None
    auth_key: bytes | None = None


SUITES = [
    Suite(
        "aes128-gcm",
        Algorithm("rfc4106(gcm(aes))", KEY16 + SALT, 128),
        None,
        None,
        "AES-GCM",
        KEY16 + SALT,
    ),
    Suite(
        "aes256-gcm",
        Algorithm("rfc4106(gcm(aes))", KEY32 + SALT, 128),
        None,
        None,
        "AES-GCM",
        KEY32 + SALT,
    ),
    Suite(
        "aes128-gmac",
        Algorithm("rfc4543(gcm(aes))", KEY16 + SALT, 128),
        None,
        None,
        "AES-NULL-GMAC",
        KEY16 + SALT,
    ),
    Suite(
        "chacha20-poly1305",
        Algorithm("rfc7539esp(chacha20,poly1305)", KEY32 + SALT, 128),
        None,
        None,
        "CHACHA20-POLY1305",
        KEY32 + SALT,
    ),
    Suite(
        "aes-cbc-sha1-96",
        None,
        Algorithm("cbc(aes)", KEY16),
        Algorithm("hmac(sha1)", HKEY[:20]),
        "AES-CBC",
        KEY16,
        "HMAC-SHA1-96",
        HKEY[:20],
    ),
    Suite(
        "aes-cbc-sha256-128",
        None,
        Algorithm("cbc(aes)", KEY32),
        Algorithm("hmac(sha256)", HKEY[:32], 128),
        "AES-CBC",
        KEY32,
        "SHA2-256-128",
        HKEY[:32],
    ),
    Suite(
        "aes-cbc-sha384-192",
        None,
        Algorithm("cbc(aes)", KEY16),
        Algorithm("hmac(sha384)", HKEY[:48]),
        "AES-CBC",
        KEY16,
        "SHA2-384-192",
        HKEY[:48],
    ),
    Suite(
        "aes-cbc-sha512-256",
        None,
        Algorithm("cbc(aes)", KEY16),
        Algorithm("hmac(sha512)", HKEY),
        "AES-CBC",
        KEY16,
        "SHA2-512-256",
        HKEY,
    ),
    Suite(
        "null-sha256-128",
        None,
        Algorithm("ecb(cipher_null)", b""),
        Algorithm("hmac(sha256)", HKEY[:32], 128),
        "NULL",
        b"",
        "SHA2-256-128",
        HKEY[:32],
    ),
]

OUTER = {
    Family.INET: ("198.51.100.1", "198.51.100.2"),
    Family.INET6: ("2001:db8::1", "2001:db8::2"),
}


def inner_packet(family: Family, size: int = 61) -> Packet:
    payload = Raw(bytes((i * 7) & 0xFF for i in range(size)))
    if family == Family.INET:
        return (
            IP(src="10.1.0.1", dst="10.2.0.2", ttl=17, tos=0x28)
            / UDP(sport=1234, dport=80)
            / payload
        )
    return IPv6(src="fd00::1", dst="fd00::2", hlim=9, tc=0x28) / UDP(sport=1234, dport=80) / payload


def transport_packet(family: Family) -> Packet:
    src, dst = OUTER[family]
    payload = Raw(b"transport-mode payload " * 3)
    if family == Family.INET:
        return IP(src=src, dst=dst, ttl=33, id=4242) / TCP(sport=5555, dport=443) / payload
    return IPv6(src=src, dst=dst, hlim=33) / TCP(sport=5555, dport=443) / payload


def make_pair(
    suite: Suite, mode: Mode, family: Family, esn: bool, natt: bool, *, tfcpad: int = 0
) -> tuple[SecurityAssociation, SecurityAssociation, ScapySA]:
    src, dst = OUTER[family]
    base = SAConfig(
        daddr=ipaddress.ip_address(dst),
        saddr=ipaddress.ip_address(src),
        spi=SPI,
        family=family,
        mode=mode,
        flags=SAFlag.ESN if esn else SAFlag.NONE,
        replay_window=64,
        aead=suite.aead,
        enc=suite.enc,
        auth=suite.auth,
        encap=EncapTemplate(sport=4500, dport=4500) if natt else None,
        tfcpad=tfcpad,
    )
    hi = ESN_HI if esn else 0
    ours_out = SecurityAssociation(_replace(base, replay=ReplayState(oseq=41, oseq_hi=hi)), 0.0)
    ours_in = SecurityAssociation(_replace(base, replay=ReplayState(seq=41, seq_hi=hi)), 0.0)
    tunnel_header = None
    if mode == Mode.TUNNEL:
        tunnel_header = IP(src=src, dst=dst) if family == Family.INET else IPv6(src=src, dst=dst)
    peer = ScapySA(
        ESP,
        spi=SPI,
        crypt_algo=suite.crypt_algo,
        crypt_key=suite.crypt_key,
        auth_algo=suite.auth_algo,
        auth_key=suite.auth_key,
        tunnel_header=tunnel_header,
        nat_t_header=UDP(sport=4500, dport=4500) if natt else None,
        esn_en=esn,
        esn=hi,
    )
    return ours_out, ours_in, peer


def _replace(config: SAConfig, **changes: object) -> SAConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def _family_of(pkt: bytes) -> type[Packet]:
    return IP if pkt[0] >> 4 == 4 else IPv6


CASES = list(
    itertools.product(
        SUITES,
        [Mode.TRANSPORT, Mode.TUNNEL],
        [Family.INET, Family.INET6],
        [False, True],
        [False, True],
    )
)


def _case_id(case: tuple[Suite, Mode, Family, bool, bool]) -> str:
    suite, mode, family, esn, natt = case
    return "-".join(
        [suite.name, mode.name.lower(), family.name.lower(), "esn" if esn else "noesn"]
        + (["natt"] if natt else [])
    )


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_interop_with_scapy(case: tuple[Suite, Mode, Family, bool, bool]) -> None:
    suite, mode, family, esn, natt = case
    ours_out, ours_in, peer = make_pair(suite, mode, family, esn, natt)
    original = inner_packet(family) if mode == Mode.TUNNEL else transport_packet(family)
    wire_original = bytes(original)

    # ours -> scapy
    sent = ours_out.encap(wire_original, 1.0)
    assert isinstance(sent, bytes)
    parsed = _family_of(sent)(sent)
    if family == Family.INET:
        assert ipv4_checksum(sent[:20]) == int.from_bytes(sent[10:12], "big")
        assert sent[8] == (64 if mode == Mode.TUNNEL else 33)  # outer TTL / TTL untouched
    else:
        assert sent[7] == (64 if mode == Mode.TUNNEL else 33)
    if natt:
        assert parsed[UDP].sport == 4500 and parsed[UDP].dport == 4500
    esp = parsed[ESP]
    assert esp.spi == SPI and esp.seq == 42
    decrypted = peer.decrypt(parsed)
    assert bytes(decrypted) == wire_original

    # scapy -> ours
    encrypted = peer.encrypt(original, seq_num=42)
    received = bytes(encrypted)
    if natt and family == Family.INET6:
        # scapy sends ESP-in-UDP with checksum 0 over IPv6 too, which IPv6 forbids
        # (RFC 8200 8.1): dropped before ESP; with the checksum computed it passes.
        assert ours_in.decap(received, 1.0) is XfrmStat.IN_HDR_ERROR
        assert ours_in.drops == {XfrmStat.IN_HDR_ERROR: 1}
        del encrypted[UDP].chksum
        received = bytes(encrypted)
        assert received[46:48] != bytes(2)
    out = ours_in.decap(received, 1.0)
    assert out == wire_original
    assert ours_in.curlft.packets == 1 and ours_in.integrity_failed == 0


TFC = [
    (suite, family, natt)
    for suite in (SUITES[0], SUITES[5])  # GCM (4-byte alignment), CBC (16-byte blocks)
    for family in (Family.INET, Family.INET6)
    for natt in (False, True)
]


@pytest.mark.parametrize(
    "suite,family,natt",
    TFC,
    ids=[f"{s.name}-{f.name.lower()}{'-natt' if n else ''}" for s, f, n in TFC],
)
def test_scapy_decodes_tfc_padding(suite: Suite, family: Family, natt: bool) -> None:
    """A TFC-padded tunnel packet decrypts in scapy to the inner packet followed by the
    zeros (scapy's Padding layer), and the tfcpad of 65535 stops at the MTU (1500)."""
    ours_out, ours_in, peer = make_pair(suite, Mode.TUNNEL, family, False, natt, tfcpad=0xFFFF)
    original = bytes(inner_packet(family))
    sent = ours_out.encap(original, 1.0)
    assert isinstance(sent, bytes)
    padto = ours_out.tfc_padto
    assert len(sent) <= 1500 and padto == ours_out.state_mtu(1500)
    decrypted = peer.decrypt(_family_of(sent)(sent))
    assert bytes(decrypted) == original + bytes(padto - len(original))
    assert bytes(decrypted[Padding]) == bytes(padto - len(original))
    assert ours_in.decap(sent, 1.0) == original


CROSS = [(Family.INET, Family.INET6), (Family.INET6, Family.INET)]


@pytest.mark.parametrize("outer,inner", CROSS, ids=["v6-in-v4", "v4-in-v6"])
def test_tunnel_cross_family(outer: Family, inner: Family) -> None:
    ours_out, ours_in, peer = make_pair(SUITES[0], Mode.TUNNEL, outer, False, False)
    original = inner_packet(inner)
    sent = ours_out.encap(bytes(original), 1.0)
    assert isinstance(sent, bytes)
    assert bytes(peer.decrypt(_family_of(sent)(sent))) == bytes(original)
    received = bytes(peer.encrypt(original, seq_num=42))
    assert ours_in.decap(received, 1.0) == bytes(original)


def test_transport_ipv6_extension_headers() -> None:
    """ESP goes after hop-by-hop and routing, before a trailing destination-options header."""
    ours_out, ours_in, peer = make_pair(SUITES[0], Mode.TRANSPORT, Family.INET6, False, False)
    src, dst = OUTER[Family.INET6]
    original = (
        IPv6(src=src, dst=dst)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=[])
        / IPv6ExtHdrDestOpt()
        / UDP(sport=1, dport=2)
        / Raw(b"ext-headers")
    )
    sent = ours_out.encap(bytes(original), 1.0)
    assert isinstance(sent, bytes)
    parsed = IPv6(sent)
    assert parsed.nh == 0  # hop-by-hop still first
    assert parsed[IPv6ExtHdrRouting].nh == 50  # ESP right after routing
    assert IPv6ExtHdrDestOpt not in parsed  # the destination options are inside ESP
    assert bytes(peer.decrypt(parsed)) == bytes(original)
    received = bytes(peer.encrypt(original, seq_num=42))
    assert ours_in.decap(received, 1.0) == bytes(original)


OFFLOAD_CASES = [
    (mode, family, natt)
    for mode in (Mode.TRANSPORT, Mode.TUNNEL)
    for family in (Family.INET, Family.INET6)
    for natt in (False, True)
    if not (natt and family == Family.INET6)  # the host would redo the UDP checksum
]


@pytest.mark.parametrize(
    "mode,family,natt",
    OFFLOAD_CASES,
    ids=[f"{m.name.lower()}-{f.name.lower()}{'-natt' if n else ''}" for m, f, n in OFFLOAD_CASES],
)
def test_crypto_offload_halves_interoperate(mode: Mode, family: Family, natt: bool) -> None:
    """Host framing + NIC crypto give what scapy decrypts; the reverse restores the packet.
    The NIC's halves run on the module's engine (the native one, or the reference)."""
    ours_out, ours_in, peer = make_pair(SUITES[0], mode, family, True, natt)
    original = inner_packet(family) if mode == Mode.TUNNEL else transport_packet(family)
    wire = bytes(original)
    seq = (ESN_HI << 32) | 42
    frame = host_tx_frame(ours_out.esp, wire, seq)
    outer = 20 if family == Family.INET else 40
    esp_offset = outer + (8 if natt else 0)
    assert frame[esp_offset + 8 : esp_offset + 16] == bytes(8)  # IV slot left to the NIC
    assert frame[-16:] == bytes(16)  # ICV room
    sealed = ours_out.batch.nic_seal(frame, seq)
    assert sealed == nic_tx_crypto(ours_out.esp, frame, esp_offset, seq)
    assert sealed is not None and len(sealed) == len(frame)
    assert bytes(peer.decrypt(_family_of(sealed)(sealed))) == wire
    # A frame without room for the IV and the ICV (its IP and UDP lengths made to agree)
    # is refused, never sealed into a longer frame.
    short = bytearray(frame[: esp_offset + 8 + 8 + 8])
    if family == Family.INET:
        short[2:4] = len(short).to_bytes(2, "big")
    else:
        short[4:6] = (len(short) - 40).to_bytes(2, "big")
    if natt:
        short[outer + 4 : outer + 6] = (len(short) - outer).to_bytes(2, "big")
    assert ours_out.batch.nic_seal(bytes(short), seq) is None

    received = bytes(peer.encrypt(original, seq_num=42))
    status, decrypted = ours_in.batch.nic_open(received, ESN_HI)
    assert (status, decrypted) == nic_rx_crypto(ours_in.esp, received, ESN_HI)
    assert status is CryptoStatus.CRYPTO_SUCCESS
    assert len(decrypted) == len(received)
    assert host_rx_finish(ours_in.esp, decrypted) == wire

    tampered = bytearray(received)
    tampered[-1] ^= 1
    status, same = ours_in.batch.nic_open(bytes(tampered), ESN_HI)
    assert status is (
        CryptoStatus.CRYPTO_TUNNEL_ESP_AUTH_FAILED
        if mode == Mode.TUNNEL
        else CryptoStatus.CRYPTO_TRANSPORT_ESP_AUTH_FAILED
    )
    assert same == bytes(tampered)
    status, _ = ours_in.batch.nic_open(received[: esp_offset + 12], ESN_HI)
    assert status is CryptoStatus.CRYPTO_INVALID_PACKET_SYNTAX

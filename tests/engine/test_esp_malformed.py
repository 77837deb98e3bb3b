"""Malformed inbound packets: each is dropped and counted under its exact xfrm_stat name.

Counter choices (see esp.py): structural problems (too short, lengths that disagree,
pad length too large, misaligned CBC payload) -> XfrmInHdrError; ICV failure ->
XfrmInStateProtoError (+ integrity_failed); SPI not ours -> XfrmInNoStates; ESP where
ESP-in-UDP is expected or the reverse -> XfrmInStateMismatch; inner protocol that does not
fit the mode -> XfrmInStateModeError; replays -> XfrmInStateSeqError. None raise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from xfrm_offload.engine.esp import NonEsp
from xfrm_offload.engine.ipheader import (
    IPv4Template,
    fold_checksum,
    ipv4_checksum,
    ones_complement_sum,
)
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, EncapTemplate, Family, Mode, SAConfig

SRC = ipaddress.IPv4Address("192.0.2.1")
DST = ipaddress.IPv4Address("192.0.2.2")
GCM = Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128)
INNER = bytes.fromhex("4500002000004000401100000a0000010a000002") + bytes(12)
INNER6 = bytes.fromhex("60000000000c1140") + bytes(15) + b"\x01" + bytes(15) + b"\x02" + bytes(12)


def config(**kw: object) -> SAConfig:
    base: dict[str, object] = dict(
        daddr=DST, saddr=SRC, spi=0x1001, mode=Mode.TUNNEL, replay_window=64, aead=GCM
    )
    base.update(kw)
    return SAConfig(**base)  # type: ignore[arg-type]


def pair(cfg: SAConfig) -> tuple[SecurityAssociation, SecurityAssociation]:
    return SecurityAssociation(cfg, 0.0), SecurityAssociation(cfg, 0.0)


def wrap(esp: bytes, proto: int = 50) -> bytes:
    return IPv4Template(SRC.packed, DST.packed, proto).build(20 + len(esp)) + esp


def forge(tx: SecurityAssociation, plain_with_trailer: bytes, seq: int = 1) -> bytes:
    """A packet with a valid ICV around whatever plaintext (and trailer) we choose."""
    return wrap(tx.esp.crypto.seal(plain_with_trailer, seq))


def good(tx: SecurityAssociation) -> bytes:
    out = tx.encap(INNER, 0.0)
    assert isinstance(out, bytes)
    return out


def outer_checksum(b: bytearray) -> bytes:
    """``b`` with its IPv4 header checksum made right again (as a real peer sends it)."""
    ihl = (b[0] & 0x0F) * 4
    if len(b) >= 20 and b[0] >> 4 == 4 and 20 <= ihl <= len(b):
        b[10:12] = ipv4_checksum(b[:ihl]).to_bytes(2, "big")
    return bytes(b)


def setbyte(p: bytes, i: int, v: int) -> bytes:
    b = bytearray(p)
    b[i] = v
    return outer_checksum(b)


def raw_setbyte(p: bytes, i: int, v: int) -> bytes:
    """``setbyte`` without the checksum fix: a header whose checksum no longer holds."""
    b = bytearray(p)
    b[i] = v
    return bytes(b)


def udp_checksummed(p: bytes) -> bytes:
    """A NAT-T packet with its UDP checksum computed (what a peer may send over IPv4)."""
    b = bytearray(p)
    b[26:28] = bytes(2)
    ulen = (b[24] << 8) | b[25]
    pseudo = bytes(b[12:20]) + b"\x00\x11" + ulen.to_bytes(2, "big")
    csum = fold_checksum(ones_complement_sum(pseudo + bytes(b[20 : 20 + ulen]))) or 0xFFFF
    b[26:28] = csum.to_bytes(2, "big")
    return bytes(b)


def flip(p: bytes, i: int, bits: int) -> bytes:
    """``p`` with ``bits`` of byte ``i`` flipped (one packet: each encap is a new one)."""
    return setbyte(p, i, p[i] ^ bits)


def set_total(p: bytes, total: int) -> bytes:
    b = bytearray(p)
    b[2:4] = total.to_bytes(2, "big")
    return outer_checksum(b)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[SecurityAssociation], bytes]
    expected: XfrmStat
    cfg: SAConfig | None = None


CASES = [
    Case("empty", lambda tx: b"", XfrmStat.IN_HDR_ERROR),
    Case("truncated-ipv4-header", lambda tx: good(tx)[:12], XfrmStat.IN_HDR_ERROR),
    Case("ihl-below-5", lambda tx: setbyte(good(tx), 0, 0x44), XfrmStat.IN_HDR_ERROR),
    Case("ipv6-on-ipv4-sa", lambda tx: setbyte(good(tx), 0, 0x65), XfrmStat.IN_HDR_ERROR),
    Case(
        "total-length-beyond-buffer",
        lambda tx: set_total(good(tx), len(good(tx)) + 1),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case("total-length-below-ihl", lambda tx: set_total(good(tx), 19), XfrmStat.IN_HDR_ERROR),
    Case("not-esp-protocol", lambda tx: setbyte(good(tx), 9, 6), XfrmStat.IN_HDR_ERROR),
    Case("udp-to-non-natt-sa", lambda tx: setbyte(good(tx), 9, 17), XfrmStat.IN_STATE_MISMATCH),
    Case(
        "esp-shorter-than-spi-seq", lambda tx: wrap(b"\x00\x00\x10\x01\x00"), XfrmStat.IN_HDR_ERROR
    ),
    Case(
        "esp-header-and-iv-only",
        lambda tx: wrap(good(tx)[20:36]),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "esp-without-icv-room",
        lambda tx: wrap(good(tx)[20 : 20 + 8 + 8 + 16 + 1]),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case("wrong-spi", lambda tx: setbyte(good(tx), 23, 0x02), XfrmStat.IN_NO_STATES),
    Case(
        "garbage-after-icv",
        lambda tx: wrap(good(tx)[20:] + b"\x00\x01\x02\x03"),
        XfrmStat.IN_STATE_PROTO_ERROR,
    ),
    Case(
        "flipped-ciphertext-bit",
        lambda tx: flip(good(tx), 40, 0x10),
        XfrmStat.IN_STATE_PROTO_ERROR,
    ),
    Case(
        "flipped-sequence-bit",
        lambda tx: flip(good(tx), 27, 0x04),
        XfrmStat.IN_STATE_PROTO_ERROR,
    ),
    Case(
        "pad-length-too-large",
        lambda tx: forge(tx, INNER + bytes((250, 4))),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "pad-length-eats-everything",
        lambda tx: forge(tx, b"\x01\x02" + bytes((2, 4))),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "trailer-only-no-payload",
        lambda tx: forge(tx, bytes((0, 4))),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "tunnel-sa-gets-tcp-next-header",
        lambda tx: forge(tx, INNER + b"\x01\x02" + bytes((2, 6))),
        XfrmStat.IN_STATE_MODE_ERROR,
    ),
    Case(
        "next-header-ipip-but-inner-ipv6",
        lambda tx: forge(tx, INNER6 + b"\x01\x02" + bytes((2, 4))),
        XfrmStat.IN_STATE_MODE_ERROR,
    ),
    Case(
        "inner-length-beyond-payload",
        lambda tx: forge(tx, set_total(INNER, 200) + b"\x01\x02" + bytes((2, 4))),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "sequence-number-zero",
        lambda tx: forge(tx, INNER + b"\x01\x02\x02\x04", 0),
        XfrmStat.IN_STATE_SEQ_ERROR,
    ),
    Case(
        "cbc-payload-not-block-aligned",
        lambda tx: wrap(good(tx)[20:] + b"\x00"),
        XfrmStat.IN_HDR_ERROR,
        config(
            aead=None,
            enc=Algorithm("cbc(aes)", bytes(16)),
            auth=Algorithm("hmac(sha256)", bytes(32), 128),
        ),
    ),
    Case(
        "cbc-icv-mismatch",
        lambda tx: flip(good(tx), -1, 1),
        XfrmStat.IN_STATE_PROTO_ERROR,
        config(
            aead=None,
            enc=Algorithm("cbc(aes)", bytes(16)),
            auth=Algorithm("hmac(sha1)", bytes(20)),
        ),
    ),
    Case(
        "plain-esp-to-natt-sa",
        lambda tx: wrap(good(tx)[28:]),
        XfrmStat.IN_STATE_MISMATCH,
        config(encap=EncapTemplate()),
    ),
    Case(
        "natt-udp-length-too-long",
        lambda tx: setbyte(good(tx), 24, 0x7F),
        XfrmStat.IN_HDR_ERROR,
        config(encap=EncapTemplate()),
    ),
    # The outer IPv4 header as ip_rcv checks it before xfrm: fragments are reassembled
    # there (the NIC sees none) and a bad header checksum is dropped.
    Case("outer-fragment-mf", lambda tx: setbyte(good(tx), 6, 0x20), XfrmStat.IN_HDR_ERROR),
    Case("outer-fragment-offset", lambda tx: setbyte(good(tx), 7, 0x01), XfrmStat.IN_HDR_ERROR),
    Case(
        "outer-fragment-offset-high-bits",
        lambda tx: setbyte(good(tx), 6, 0x41),
        XfrmStat.IN_HDR_ERROR,
    ),
    Case(
        "outer-bad-header-checksum",
        lambda tx: raw_setbyte(good(tx), 8, 63),  # TTL changed, checksum not
        XfrmStat.IN_HDR_ERROR,
    ),
    # ESP-in-UDP: a non-zero UDP checksum is verified before ESP sees the packet.
    Case(
        "natt-bad-udp-checksum",
        lambda tx: flip(udp_checksummed(good(tx)), 27, 0x01),  # one packet, its checksum wrong
        XfrmStat.IN_HDR_ERROR,
        config(encap=EncapTemplate()),
    ),
    Case(
        "natt-udp-checksum-of-a-changed-payload",
        lambda tx: flip(udp_checksummed(good(tx)), 60, 0x08),
        XfrmStat.IN_HDR_ERROR,
        config(encap=EncapTemplate()),
    ),
    Case(
        "natt-ipv6-zero-udp-checksum",
        lambda tx: zero_udp6_checksum(good(tx)),
        XfrmStat.IN_HDR_ERROR,
        config(
            encap=EncapTemplate(),
            family=Family.INET6,
            daddr=ipaddress.IPv6Address("2001:db8::2"),
            saddr=ipaddress.IPv6Address("2001:db8::1"),
        ),
    ),
    Case(
        "natt-udp-truncated",
        lambda tx: wrap(good(tx)[20:25], proto=17),
        XfrmStat.IN_HDR_ERROR,
        config(encap=EncapTemplate()),
    ),
    Case(
        "transport-ipv6-truncated-extension-chain",
        lambda tx: (
            bytes.fromhex("6000000000040040")
            + bytes(15)
            + b"\x01"
            + bytes(15)
            + b"\x02"
            + b"\x32\x05\x00\x00"
        ),
        XfrmStat.IN_HDR_ERROR,
        config(
            mode=Mode.TRANSPORT,
            family=Family.INET6,
            daddr=ipaddress.IPv6Address("::2"),
            saddr=ipaddress.IPv6Address("::1"),
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_is_dropped_and_counted(case: Case) -> None:
    tx, rx = pair(case.cfg or config())
    packet = case.make(tx)
    assert rx.decap(packet, 1.0) is case.expected
    counts = {k: v for k, v in rx.stats.as_dict().items() if v}
    assert counts == {case.expected.value: 1}
    assert rx.drops == {case.expected: 1}
    assert rx.integrity_failed == (1 if case.expected is XfrmStat.IN_STATE_PROTO_ERROR else 0)
    assert rx.curlft.packets == (
        1
        if case.expected is XfrmStat.IN_STATE_MODE_ERROR
        or case.name == "inner-length-beyond-payload"
        else 0
    )


def zero_udp6_checksum(p: bytes) -> bytes:
    b = bytearray(p)
    b[46:48] = bytes(2)
    return bytes(b)


def test_natt_udp_checksums_verified_over_ipv4_and_required_over_ipv6() -> None:
    """RFC 768 / 8200 as udp_rcv applies them: over IPv4 a right non-zero checksum and a
    zero one both pass; over IPv6 our own (computed) checksum passes."""
    tx, rx = pair(config(encap=EncapTemplate()))
    sent = good(tx)
    assert sent[26:28] == bytes(2)  # TX over IPv4: zero, as the kernel sends it
    assert rx.decap(udp_checksummed(sent), 1.0) == INNER
    assert rx.decap(good(tx), 1.0) == INNER
    v6 = config(
        encap=EncapTemplate(),
        family=Family.INET6,
        daddr=ipaddress.IPv6Address("2001:db8::2"),
        saddr=ipaddress.IPv6Address("2001:db8::1"),
    )
    tx6, rx6 = pair(v6)
    sent6 = good(tx6)
    assert sent6[46:48] != bytes(2)  # TX over IPv6: computed
    assert rx6.decap(sent6, 1.0) == INNER
    assert not any(rx.stats.as_dict().values()) and not any(rx6.stats.as_dict().values())


def test_replayed_packet() -> None:
    tx, rx = pair(config())
    p = good(tx)
    assert rx.decap(p, 1.0) == INNER
    assert rx.decap(p, 1.0) is XfrmStat.IN_STATE_SEQ_ERROR
    assert rx.replay_drops == 1 and rx.stats[XfrmStat.IN_STATE_SEQ_ERROR] == 1


def test_bytes_beyond_ip_total_length_are_ignored() -> None:
    """Link-layer padding after the IP datagram is not part of it (ip_rcv trims)."""
    tx, rx = pair(config())
    assert rx.decap(good(tx) + b"\x00" * 6, 1.0) == INNER


def test_dummy_packet_is_dropped_silently() -> None:
    tx, rx = pair(config())
    assert rx.decap(forge(tx, b"\x00" * 10 + b"\x01\x02" + bytes((2, 59))), 1.0) is None
    assert rx.decap(forge(tx, b"\x01\x02" + bytes((2, 59)), seq=2), 1.0) is None
    assert not any(rx.stats.as_dict().values())
    assert rx.curlft.packets == 2  # authenticated traffic all the same
    assert rx.replay.seq == 2


@pytest.mark.parametrize(
    "payload,kind",
    [(b"\xff", NonEsp.KEEPALIVE), (b"\x00\x00\x00\x00" + b"IKE message", NonEsp.IKE)],
    ids=["keepalive", "non-esp-marker"],
)
def test_natt_control_traffic_is_not_esp(payload: bytes, kind: NonEsp) -> None:
    _, rx = pair(config(encap=EncapTemplate()))
    udp = (4500).to_bytes(2, "big") * 2 + (8 + len(payload)).to_bytes(2, "big") + b"\0\0"
    assert rx.decap(wrap(udp + payload, proto=17), 1.0) is kind
    assert not any(rx.stats.as_dict().values())
    assert rx.curlft.packets == 0


def test_tfc_padding_is_removed() -> None:
    tx, rx = pair(config(tfcpad=300))
    p = good(tx)
    assert len(p) == 20 + 8 + 8 + 300 + 2 + 2 + 16  # 300 bytes padded, then 4-byte alignment
    assert rx.decap(p, 1.0) == INNER

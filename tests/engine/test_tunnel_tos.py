"""Tunnel decapsulation carries congestion marks and, when asked, DSCP in (the kernel's
ipip/ip6 decap rules, RFC 6040 normal mode)."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from xfrm_offload.engine import ipheader as ip
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Family, Mode, SAConfig, SAFlag

NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
BASE = SAConfig(
    daddr=ipaddress.ip_address("192.0.2.2"),
    saddr=ipaddress.ip_address("192.0.2.1"),
    spi=0x2002,
    mode=Mode.TUNNEL,
    replay_window=64,
    aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128),
)
V6_OUTER = dataclasses.replace(
    BASE,
    daddr=ipaddress.ip_address("2001:db8::2"),
    saddr=ipaddress.ip_address("2001:db8::1"),
    family=Family.INET6,
)


def inner4(tos: int) -> bytes:
    head = bytearray.fromhex("4500002000004000401100000a0000010a000002")
    head[1] = tos
    head[10:12] = ip.ipv4_checksum(head).to_bytes(2, "big")
    return bytes(head) + bytes(12)


def inner6(tclass: int) -> bytes:
    first = (0x60 | (tclass >> 4)).to_bytes(1, "big") + ((tclass & 0x0F) << 4).to_bytes(1, "big")
    return first + bytes(2) + (8).to_bytes(2, "big") + bytes([17, 64]) + bytes(32) + bytes(8)


def with_outer_tos(esp: bytes, tos: int, v6: bool) -> bytes:
    if v6:
        return bytes([0x60 | (tos >> 4), ((tos & 0x0F) << 4) | (esp[1] & 0x0F)]) + esp[2:]
    head = bytearray(esp[:20])
    head[1] = tos
    head[10:12] = ip.ipv4_checksum(head).to_bytes(2, "big")
    return bytes(head) + esp[20:]


def inner_tos(packet: bytes) -> int:
    if packet[0] >> 4 == 4:
        return packet[1]
    return ((packet[0] & 0x0F) << 4) | (packet[1] >> 4)


CASES = [
    # (outer TOS, inner TOS, SA flags, inner TOS after decap)
    (0xB8 | CE, 0x28 | ECT0, SAFlag.NONE, 0x28 | CE),  # congestion mark carried in
    (0xB8 | CE, 0x28 | ECT1, SAFlag.NONE, 0x28 | CE),
    (0xB8 | CE, 0x28 | NOT_ECT, SAFlag.NONE, 0x28 | NOT_ECT),  # not ECN-capable: untouched
    (0xB8 | CE, 0x28 | ECT0, SAFlag.NOECN, 0x28 | ECT0),  # noecn: no ECN processing
    (0xB8 | ECT0, 0x28 | ECT0, SAFlag.NONE, 0x28 | ECT0),  # no mark: untouched
    (0xB8 | ECT0, 0x28 | ECT0, SAFlag.DECAP_DSCP, 0xB8 | ECT0),  # decap-dscp copies DSCP
    (0xB8 | CE, 0x28 | ECT0, SAFlag.DECAP_DSCP, 0xB8 | CE),  # both
]


@pytest.mark.parametrize("outer", [BASE, V6_OUTER], ids=["outer-v4", "outer-v6"])
@pytest.mark.parametrize("make_inner", [inner4, inner6], ids=["inner-v4", "inner-v6"])
@pytest.mark.parametrize(("outer_tos", "tos", "flags", "expected"), CASES)
def test_tunnel_decap_tos(
    outer: SAConfig,
    make_inner: object,
    outer_tos: int,
    tos: int,
    flags: SAFlag,
    expected: int,
) -> None:
    assert callable(make_inner)
    config = dataclasses.replace(outer, flags=flags)
    tx = SecurityAssociation(dataclasses.replace(config, replay_window=0), 0.0)
    rx = SecurityAssociation(config, 0.0)
    packets = [make_inner(tos) for _ in range(3)]
    esp = [with_outer_tos(e, outer_tos, outer is V6_OUTER) for e in tx.encap_batch(packets, 1.0)]  # type: ignore[arg-type]
    out = rx.decap_batch(esp, 1.0)
    assert [inner_tos(p) for p in out] == [expected] * 3  # type: ignore[arg-type]
    if make_inner is inner4:
        for p in out:
            assert isinstance(p, bytes) and ip.ipv4_checksum(p[:20]) == int.from_bytes(
                p[10:12], "big"
            )
            assert p[:1] + p[2:10] + p[12:] == packets[0][:1] + packets[0][2:10] + packets[0][12:]
    else:
        assert all(isinstance(p, bytes) and p[2:] == packets[0][2:] for p in out)

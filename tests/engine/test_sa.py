"""The runtime SA: config rules, sequence overflow, lifetimes, ESN events, counters."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from xfrm_offload.engine.errors import InvalidArgument, NotSupported
from xfrm_offload.engine.events import EsnAdvanced, Expired, LimitKind, SAId, SeqOverflow
from xfrm_offload.engine.replay import MAX_REPLAY_WINDOW
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat, XfrmStats
from xfrm_offload.engine.types import (
    Algorithm,
    Direction,
    EncapTemplate,
    EncapType,
    Family,
    LifetimeConfig,
    Mode,
    ReplayState,
    SAConfig,
    SAExtraFlag,
    SAFlag,
)

SRC = ipaddress.IPv4Address("192.0.2.1")
DST = ipaddress.IPv4Address("192.0.2.2")
INNER = bytes.fromhex("4500002000004000401100000a0000010a000002") + bytes(12)
BASE = SAConfig(
    daddr=DST,
    saddr=SRC,
    spi=0x1001,
    mode=Mode.TUNNEL,
    replay_window=64,
    aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128),
)


def sa(now: float = 0.0, **changes: Any) -> SecurityAssociation:
    return SecurityAssociation(dataclasses.replace(BASE, **changes), now)


def ok(results: list[bytes | XfrmStat]) -> list[bytes]:
    """The packets of an encap batch that must have gone through entirely."""
    assert all(isinstance(r, bytes) for r in results)
    return [r for r in results if isinstance(r, bytes)]


def one(result: bytes | XfrmStat) -> bytes:
    assert isinstance(result, bytes)
    return result


def seq_of(packet: bytes | object) -> int:
    assert isinstance(packet, bytes)
    return int.from_bytes(packet[24:28], "big")


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(flags=SAFlag.ESN, replay_window=0), "replay_window"),
        (dict(replay=ReplayState(seq_hi=1)), "replay.seq_hi"),
        (dict(replay=ReplayState(oseq=0xFFFFFFFF)), "replay.oseq"),
        (
            dict(flags=SAFlag.ESN, replay=ReplayState(oseq=0xFFFFFFFF, oseq_hi=0xFFFFFFFF)),
            "replay.oseq",
        ),
        (dict(sa_dir=Direction.OUT), "replay_window"),
        (dict(sa_dir=Direction.IN, replay=ReplayState(oseq=5)), "replay.oseq"),
        (dict(sa_dir=Direction.IN, extra_flags=SAExtraFlag.OSEQ_MAY_WRAP), "extra_flags"),
        (dict(sa_dir=Direction.FWD), "sa_dir"),
        (dict(daddr=ipaddress.IPv6Address("::1")), "daddr"),
        (dict(aead=Algorithm("rfc4106(gcm(aes))", bytes(19), 128)), "aead.key"),
        # What the replay window and the output sequence check when built (on first use):
        # refused when the SA is added all the same.
        (dict(replay_window=MAX_REPLAY_WINDOW + 1), "replay_window"),
        (dict(flags=SAFlag.ESN, replay=ReplayState(seq_hi=1 << 32)), "replay.seq_hi"),
        (dict(flags=SAFlag.ESN, replay=ReplayState(seq=-1)), "replay.seq"),
        (dict(flags=SAFlag.ESN, replay=ReplayState(oseq_hi=1 << 32)), "replay.oseq_hi"),
    ],
)
def test_config_rules(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        sa(**changes)
    assert info.value.field == field


def test_esn_out_sa_may_have_no_window() -> None:
    out = sa(flags=SAFlag.ESN, replay_window=0, sa_dir=Direction.OUT)
    assert out.replay.size == 0
    packet = out.encap(INNER, 1.0)
    assert isinstance(packet, bytes)
    assert packet[20:28] == (0x1001).to_bytes(4, "big") + (1).to_bytes(4, "big")
    assert out.oseq.last == 1


def test_unsupported_proto_and_encap() -> None:
    with pytest.raises(NotSupported) as info:
        sa(proto=51)
    assert info.value.field == "proto"
    with pytest.raises(NotSupported) as info:
        sa(encap=EncapTemplate(encap_type=EncapType.ESPINTCP))
    assert info.value.field == "encap.encap_type"


def test_sa_id_and_repr_hide_keys() -> None:
    s = sa()
    assert s.sa_id == SAId(daddr=DST, spi=0x1001, proto=50, saddr=SRC)
    assert bytes(range(20)).hex() not in repr(s) + repr(s.config)


# -- outbound sequence ----------------------------------------------------------------


def test_sequence_overflow_non_esn() -> None:
    s = sa(replay=ReplayState(oseq=0xFFFFFFFE))
    out = s.encap_batch([INNER, INNER, INNER], 1.0)
    assert seq_of(out[0]) == 0xFFFFFFFF
    assert out[1:] == [XfrmStat.OUT_STATE_SEQ_ERROR, XfrmStat.OUT_STATE_SEQ_ERROR]
    assert s.stats[XfrmStat.OUT_STATE_SEQ_ERROR] == 2
    assert s.pop_events() == [SeqOverflow(sa=s.sa_id)]  # one event, however many drops
    assert s.encap(INNER, 2.0) is XfrmStat.OUT_STATE_SEQ_ERROR
    assert s.pop_events() == []
    assert s.curlft.packets == 1


def test_sequence_may_wrap() -> None:
    s = sa(replay=ReplayState(oseq=0xFFFFFFFE), extra_flags=SAExtraFlag.OSEQ_MAY_WRAP)
    out = s.encap_batch([INNER] * 3, 1.0)
    assert [seq_of(p) for p in out] == [0xFFFFFFFF, 0, 1]
    assert s.pop_events() == []


def test_a_wrapped_sequence_never_repeats_an_iv() -> None:
    """Wire sequence 1 after an oseq-may-wrap wrap must not reuse the IV of wire sequence 1
    before it (same key, same IV salt: the same SA, before and after the wrap)."""
    salt = bytes(range(16))
    before = SecurityAssociation(BASE, 0.0, iv_salt=salt)
    wrapping = dataclasses.replace(
        BASE, replay=ReplayState(oseq=0xFFFFFFFE), extra_flags=SAExtraFlag.OSEQ_MAY_WRAP
    )
    after = SecurityAssociation(wrapping, 0.0, iv_salt=salt)
    first = ok(before.encap_batch([INNER], 1.0))[0]
    wrapped = ok(after.encap_batch([INNER] * 3, 1.0))[2]
    assert seq_of(first) == seq_of(wrapped) == 1
    iv = slice(28, 36)  # outer IPv4 (20) + SPI and sequence (8), then the 8-byte IV
    assert first[iv] != wrapped[iv]


def test_esn_sequence_bumps_oseq_hi() -> None:
    tx = sa(flags=SAFlag.ESN, replay=ReplayState(oseq=0xFFFFFFFE, oseq_hi=3))
    rx = sa(flags=SAFlag.ESN, replay=ReplayState(seq=0xFFFFFFF0, seq_hi=3))
    out = ok(tx.encap_batch([INNER] * 3, 1.0))
    assert [seq_of(p) for p in out] == [0xFFFFFFFF, 0, 1]
    assert (tx.oseq.oseq_hi, tx.oseq.oseq) == (4, 1)
    assert rx.decap_batch(out, 1.0) == [INNER] * 3
    assert rx.pop_events() == [EsnAdvanced(sa=rx.sa_id, seq_hi=4)]
    assert (rx.replay.seq_hi, rx.replay.seq) == (4, 1)


# -- inbound --------------------------------------------------------------------------


def test_replay_and_integrity_counters() -> None:
    tx, rx = sa(), sa()
    good = [one(tx.encap(INNER, 1.0)) for _ in range(5)]
    bad = bytearray(good[4])
    bad[-1] ^= 1
    results = rx.decap_batch([good[0], good[1], good[1], bytes(bad), good[3]], 1.0)
    assert results == [
        INNER,
        INNER,
        XfrmStat.IN_STATE_SEQ_ERROR,
        XfrmStat.IN_STATE_PROTO_ERROR,
        INNER,
    ]
    assert (rx.replay_drops, rx.replay_window, rx.integrity_failed) == (1, 0, 1)
    assert rx.curlft.packets == 3 and rx.curlft.bytes == 3 * len(INNER)
    # The forged copy of #5 did not mark it: the genuine #5 still passes.
    assert rx.decap(good[4], 1.0) == INNER
    assert rx.drops == {XfrmStat.IN_STATE_SEQ_ERROR: 1, XfrmStat.IN_STATE_PROTO_ERROR: 1}


def test_shared_stats_object() -> None:
    device = XfrmStats()
    a = SecurityAssociation(BASE, 0.0, stats=device)
    b = SecurityAssociation(dataclasses.replace(BASE, spi=0x2002), 0.0, stats=device)
    p = one(a.encap(INNER, 1.0))
    assert b.decap(p, 1.0) is XfrmStat.IN_NO_STATES  # not b's SPI
    assert a.decap(b"", 1.0) is XfrmStat.IN_HDR_ERROR
    assert device[XfrmStat.IN_NO_STATES] == 1 and device[XfrmStat.IN_HDR_ERROR] == 1


def test_outbound_mode_error_uses_no_sequence_number() -> None:
    s = sa()
    assert s.encap(b"\x99" * 30, 1.0) is XfrmStat.OUT_STATE_MODE_ERROR
    assert seq_of(s.encap(INNER, 1.0)) == 1
    assert s.curlft.packets == 1


# -- lifetimes ------------------------------------------------------------------------


def test_packet_limits() -> None:
    s = sa(lifetime=LifetimeConfig(soft_packet_limit=10, hard_packet_limit=20))
    out = s.encap_batch([INNER] * 25, 1.0)
    assert all(isinstance(p, bytes) for p in out[:20])
    assert out[20:] == [XfrmStat.OUT_STATE_EXPIRED] * 5
    assert s.pop_events() == [
        Expired(sa=s.sa_id, hard=False, kind=LimitKind.PACKETS),
        Expired(sa=s.sa_id, hard=True, kind=LimitKind.PACKETS),
    ]
    assert s.curlft.packets == 20
    assert s.stats[XfrmStat.OUT_STATE_EXPIRED] == 5


def test_byte_limits_inbound() -> None:
    tx = sa()
    rx = sa(lifetime=LifetimeConfig(soft_byte_limit=2 * len(INNER), hard_byte_limit=3 * len(INNER)))
    packets = ok(tx.encap_batch([INNER] * 4, 1.0))
    assert rx.decap_batch(packets[:2], 1.0) == [INNER, INNER]
    assert rx.pop_events() == [Expired(sa=rx.sa_id, hard=False, kind=LimitKind.BYTES)]
    assert rx.decap_batch(packets[2:], 1.0) == [INNER, XfrmStat.IN_STATE_EXPIRED]
    assert rx.pop_events() == [Expired(sa=rx.sa_id, hard=True, kind=LimitKind.BYTES)]


def test_time_limits_through_poll() -> None:
    s = sa(
        now=100.0,
        lifetime=LifetimeConfig(
            soft_add_expires_seconds=10, hard_add_expires_seconds=20, hard_use_expires_seconds=5
        ),
    )
    s.poll(105.0)
    assert s.pop_events() == []
    assert isinstance(s.encap(INNER, 106.0), bytes)  # first use at 106: use deadline 111
    s.poll(110.0)
    assert s.pop_events() == [Expired(sa=s.sa_id, hard=False, kind=LimitKind.ADD_TIME)]
    assert s.encap(INNER, 111.0) is XfrmStat.OUT_STATE_EXPIRED
    assert s.pop_events() == [Expired(sa=s.sa_id, hard=True, kind=LimitKind.USE_TIME)]
    assert s.curlft.use_time == 106.0 and s.curlft.add_time == 100.0


def test_batch_and_single_paths_agree() -> None:
    """A big batch (bulk lifetime accounting) counts exactly like packet-by-packet."""
    a, b = sa(), sa()
    a.encap_batch([INNER] * 50, 1.0)
    for _ in range(50):
        b.encap(INNER, 1.0)
    assert a.curlft == b.curlft
    assert a.oseq.oseq == b.oseq.oseq == 50


@pytest.mark.parametrize("family", [Family.INET, Family.INET6])
def test_natt_tunnel_round_trip(family: Family) -> None:
    addrs = (
        (SRC, DST)
        if family == Family.INET
        else (ipaddress.IPv6Address("2001:db8::1"), ipaddress.IPv6Address("2001:db8::2"))
    )
    tx = sa(
        saddr=addrs[0], daddr=addrs[1], family=family, encap=EncapTemplate(sport=4501, dport=4502)
    )
    rx = sa(
        saddr=addrs[0], daddr=addrs[1], family=family, encap=EncapTemplate(sport=4501, dport=4502)
    )
    p = one(tx.encap(INNER, 1.0))
    udp = p[20:28] if family == Family.INET else p[40:48]
    assert udp[:4] == (4501).to_bytes(2, "big") + (4502).to_bytes(2, "big")
    if family == Family.INET:
        assert udp[6:8] == b"\x00\x00"  # RFC 3948: zero checksum over IPv4
    else:
        assert udp[6:8] != b"\x00\x00"
    assert rx.decap(p, 1.0) == INNER

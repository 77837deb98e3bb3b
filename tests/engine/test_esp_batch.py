"""Batches against the reference, packet by packet: same bytes, same state.

Each case feeds the same traffic to an SA on the module's engine (the native one, or the
Python reference: see conftest) and to one on the Python reference, with the same IV
salt, in batches and one by one, and requires identical results, sequence counters,
replay windows, counters and events: sequence numbers across 2^32 and their end, the
replay window in and out of order, ESN inference, drops counted once.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import (
    Algorithm,
    Mode,
    ReplayState,
    SAConfig,
    SAExtraFlag,
    SAFlag,
)

SALT = bytes(range(100, 116))
BASE = SAConfig(
    daddr=ipaddress.IPv4Address("192.0.2.2"),
    saddr=ipaddress.IPv4Address("192.0.2.1"),
    spi=0x1001,
    mode=Mode.TUNNEL,
    replay_window=32,
    aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128),
)


def v4(size: int, tos: int = 0, df: bool = True, first: int = 0x45) -> bytes:
    head = bytes([first, tos]) + size.to_bytes(2, "big") + b"\x12\x34"
    head += bytes([0x40 if df else 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return head + bytes(i & 0xFF for i in range(size - 20))


def v6(size: int) -> bytes:
    head = bytes([0x60, 0, 0, 0]) + (size - 40).to_bytes(2, "big") + bytes([17, 64])
    return head + bytes(15) + b"\x01" + bytes(15) + b"\x02" + bytes(size - 40)


def pair(**changes: Any) -> tuple[SecurityAssociation, SecurityAssociation]:
    """(engine, reference): the same SA twice, the first on the module's engine (see
    conftest: the native one, or the reference itself), the second the Python reference."""
    cfg = dataclasses.replace(BASE, **changes)
    fast = SecurityAssociation(cfg, 0.0, iv_salt=SALT)
    ref = SecurityAssociation(cfg, 0.0, iv_salt=SALT, engine="python")
    return fast, ref


def state(s: SecurityAssociation) -> tuple[object, ...]:
    r = s.replay
    return (
        s.oseq.last,
        s.oseq.overflowed,
        r.seq_hi,
        r.seq,
        r.bitmap,
        r.replay_window,
        r.replay,
        dict(s.drops),
        s.integrity_failed,
        s.curlft,
        s.pop_events(),
    )


MIXED = [
    v4(100),
    v4(100),
    v4(100, df=False),  # same length and TOS, DF differs
    v4(100),
    v6(100),  # same length, another version
    v4(100, tos=0xB8),
    v4(100, tos=0xB9),  # ECN bits
    v4(100, df=False),
    v4(100, df=False),
    v6(120),
    b"\x99" * 30,  # not IP: mode error, uses no sequence number
    b"\x45" * 10,  # too short
    v4(64),
    v4(1400),
    v4(0xFFFF - 20),  # too big once encapsulated: uses a number, then dropped
    v4(101),
    v4(102),
    v4(103, first=0x46),
    v4(100, tos=0xB8),
    v4(100),
]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"flags": SAFlag.NOPMTUDISC},
        {"flags": SAFlag.ESN, "replay": ReplayState(oseq=0xFFFFFFF8)},  # crosses 2^32
        {"replay": ReplayState(oseq=0xFFFFFFF0)},  # the block would overflow
        {"replay": ReplayState(oseq=0xFFFFFFF0), "extra_flags": SAExtraFlag.OSEQ_MAY_WRAP},
        {"replay": ReplayState(oseq=0xFFFFFFF0 - 2 * len(MIXED))},  # just fits, twice
    ],
    ids=["plain", "nopmtudisc", "esn-wrap", "overflow", "may-wrap", "edge"],
)
def test_encap_batch_matches_generic(changes: dict[str, Any]) -> None:
    fast, ref = pair(**changes)
    for _ in range(3):
        assert fast.encap_batch(MIXED, 1.0) == ref.encap_batch(MIXED, 1.0)
        assert state(fast) == state(ref)
    # One by one too (the per-packet path of an SA near a lifetime limit).
    for p in MIXED:
        assert fast.encap(p, 2.0) == ref.encap(p, 2.0)
    assert state(fast) == state(ref)


def traffic(sender: SecurityAssociation, count: int) -> list[bytes]:
    inner = [v4(60 + i % 7) if i % 5 else v6(80) for i in range(count)]
    out = sender.encap_batch(inner, 1.0)
    assert all(isinstance(p, bytes) for p in out)
    return [p for p in out if isinstance(p, bytes)]


def dummy(sender: SecurityAssociation, seq: int) -> bytes:
    """An ESP dummy packet (next header 59) with sequence number ``seq``."""
    esp = sender.esp
    return esp._outer(esp.crypto.seal(b"\x01\x02\x02\x3b", seq), 0, True)


def flip(p: bytes, at: int = -1) -> bytes:
    b = bytearray(p)
    b[at] ^= 1
    return bytes(b)


# Receive orders, as indexes into the sent packets (0 is sequence number 1), with
# specials: "bad" (a flipped ICV bit of the next index), "dummy", "short", "spi".
ORDERS: dict[str, list[Any]] = {
    "in-order": list(range(40)),
    "reordered": [1, 0, 3, 2, 5, 4, 6, 9, 8, 7, 10],
    "duplicates": [0, 1, 1, 2, 0, 3, 3, 4],
    "gap-then-fill": [0, 1, 5, 6, 2, 3, 4, 7],
    "far-ahead": [0, 1, 60, 61, 2, 30, 29, 62],
    "icv-fail-then-good": [0, ("bad", 1), 1, ("bad", 3), 2, 3, ("bad", 3)],
    "malformed": [0, "short", 1, "spi", 2, "dummy", 3, "garbage", 4],
    "start-at-zero": [("seq0",), 0, 1],
}


def received(sent: list[bytes], sender: SecurityAssociation, order: list[Any]) -> list[bytes]:
    out: list[bytes] = []
    for item in order:
        if isinstance(item, int):
            out.append(sent[item])
        elif isinstance(item, tuple) and item[0] == "bad":
            out.append(flip(sent[item[1]]))
        elif item == ("seq0",):
            p = bytearray(sent[0])
            p[24:28] = bytes(4)
            out.append(bytes(p))
        elif item == "short":
            out.append(sent[0][:40])
        elif item == "spi":
            out.append(flip(sent[0], 23))
        elif item == "dummy":
            out.append(dummy(sender, 70))
        else:
            out.append(b"\x45" + bytes(60))
    return out


@pytest.mark.parametrize("order", list(ORDERS), ids=list(ORDERS))
@pytest.mark.parametrize("window", [0, 4, 32, 128])
@pytest.mark.parametrize("split", [1, 3, 1000])
def test_decap_batch_matches_generic(order: str, window: int, split: int) -> None:
    sender = SecurityAssociation(BASE, 0.0, iv_salt=SALT)
    sent = traffic(sender, 64)
    packets = received(sent, sender, ORDERS[order])
    fast, ref = pair(replay_window=window)
    for i in range(0, len(packets), split):
        chunk = packets[i : i + split]
        assert fast.decap_batch(chunk, 1.0) == ref.decap_batch(chunk, 1.0)
        assert state(fast) == state(ref)


@pytest.mark.parametrize("start", [0xFFFFFFF0, 0xFFFFFFFF - 40, 3])
@pytest.mark.parametrize("window", [16, 64])
def test_decap_batch_matches_generic_esn(start: int, window: int) -> None:
    """ESN across the 2^32 boundary: inferred high bits, EsnAdvanced events."""
    sender = SecurityAssociation(
        dataclasses.replace(BASE, replay=ReplayState(oseq=start), flags=SAFlag.ESN),
        0.0,
        iv_salt=SALT,
    )
    sent = traffic(sender, 60)
    order = [0, 1, 3, 2, 10, 9, 20, 21, 4, 40, 30, 41, 59, 42, 5, 58, *range(43, 50)]
    packets = received(sent, sender, order)
    fast, ref = pair(replay_window=window, replay=ReplayState(seq=start), flags=SAFlag.ESN)
    for i in range(0, len(packets), 5):
        chunk = packets[i : i + 5]
        assert fast.decap_batch(chunk, 1.0) == ref.decap_batch(chunk, 1.0)
        assert state(fast) == state(ref)


def test_decap_batch_counts_drops_once() -> None:
    sender = SecurityAssociation(BASE, 0.0, iv_salt=SALT)
    sent = traffic(sender, 8)
    fast, _ = pair()
    out = fast.decap_batch([sent[0], flip(sent[1]), sent[1], sent[1], sent[0][:40]], 1.0)
    assert out == [
        v6(80),  # traffic(): inner packet 0 is IPv6, packet 1 IPv4 of 61 bytes
        XfrmStat.IN_STATE_PROTO_ERROR,
        v4(61),
        XfrmStat.IN_STATE_SEQ_ERROR,
        XfrmStat.IN_HDR_ERROR,
    ]
    assert fast.integrity_failed == 1
    assert fast.replay_drops == 1
    assert fast.curlft.packets == 2


@pytest.mark.parametrize("window", [0, 32])
def test_outer_ce_reaches_the_inner_packet_in_every_loop(window: int) -> None:
    """RFC 6040 decap: an outer CE mark turns an ECT inner packet CE, in the batch loops
    for a window of 0 (no replay protection) as for any other window."""
    sender = SecurityAssociation(BASE, 0.0, iv_salt=SALT)
    inner = v4(100, tos=0xB9)  # DSCP 46, ECT(1)
    (sealed,) = sender.encap_batch([inner], 1.0)
    assert isinstance(sealed, bytes)
    marked = bytearray(sealed)
    marked[1] |= 3  # CE on the way
    marked[10:12] = bytes(2)
    marked[10:12] = ipv4_checksum(marked[:20]).to_bytes(2, "big")
    fast, ref = pair(replay_window=window)
    expected = bytearray(inner)
    expected[1] = 0xBB
    expected[10:12] = ipv4_checksum(expected[:20]).to_bytes(2, "big")
    assert fast.decap_batch([bytes(marked)], 1.0) == [bytes(expected)]
    assert ref.decap_batch([bytes(marked)], 1.0) == [bytes(expected)]

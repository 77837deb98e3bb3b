"""The device path looks its caches up once per run of packets with the same key bytes.

``key_runs`` (the Python reference in datapath.py, and its restatement in _esp.c) groups
a batch into runs of consecutive packets whose cache keys are equal; the paths resolve a
run with one lookup. That must change nothing a packet sees: a mixed batch (several
flows, no policy, a block policy, a policy without a state, crypto offload frames,
fragments, IPv6 extension headers, junk, replays, corruptions) gives, on each engine
(see conftest), the same outcomes, counters, events and SA state as the same packets fed
one at a time.
"""

from __future__ import annotations

import ipaddress
import random
from collections import Counter
from typing import Any

import pytest

from xfrm_offload.engine import native
from xfrm_offload.engine.datapath import DevicePath, Results, Verdict, key_runs
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.esp import CryptoStatus, host_tx_frame
from xfrm_offload.engine.native import KEY_ESP4, KEY_FLOW
from xfrm_offload.engine.offload_rules import XFRM_OFFLOAD_INBOUND, XFRM_OFFLOAD_PACKET
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.spd import Policy, PolicyAction, Template
from xfrm_offload.engine.stats import XfrmStat
from xfrm_offload.engine.types import Algorithm, Direction, Family, Mode, SAConfig, Selector

from ..datapath.builders import udp4, udp6
from .differential import inner_packets, mutate

OUTER_A, OUTER_B = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
SALT = bytes(range(50, 66))
KEY = bytes(range(20))


def net(prefix: str) -> tuple[Any, int]:
    n = ipaddress.ip_network(prefix)
    return n.network_address, n.prefixlen


def selector(src: str, dst: str) -> Selector:
    (s, ls), (d, ld) = net(src), net(dst)
    return Selector(saddr=s, prefixlen_s=ls, daddr=d, prefixlen_d=ld, family=Family.INET)


def sa(spi: int, reqid: int = 1) -> SAConfig:
    return SAConfig(
        daddr=OUTER_B,
        saddr=OUTER_A,
        spi=spi,
        mode=Mode.TUNNEL,
        reqid=reqid,
        replay_window=64,
        aead=Algorithm("rfc4106(gcm(aes))", KEY, 128),
    )


def tmpl(reqid: int) -> Template:
    return Template(daddr=OUTER_B, saddr=OUTER_A, reqid=reqid, mode=Mode.TUNNEL)


ROUTED = selector("198.51.100.0/24", "203.0.113.0/25")
BLOCKED = selector("198.51.100.0/24", "203.0.113.128/26")
STATELESS = selector("198.51.100.0/24", "203.0.113.192/26")


def tx_device() -> tuple[DevicePath, int]:
    """A sending device: routed, blocked and state-less flows; a crypto offload state."""
    d = Device("eth0", 2, PROFILES["full"])
    d.policy_add(Policy(sel=ROUTED, dir=Direction.OUT, templates=(tmpl(1),)), XFRM_OFFLOAD_PACKET)
    block = Policy(sel=BLOCKED, dir=Direction.OUT, action=PolicyAction.BLOCK)
    d.policy_add(block, XFRM_OFFLOAD_PACKET)
    d.policy_add(
        Policy(sel=STATELESS, dir=Direction.OUT, templates=(tmpl(2),)), XFRM_OFFLOAD_PACKET
    )
    d.state_add(sa(0x100), XFRM_OFFLOAD_PACKET, 0.0, iv_salt=SALT)
    crypto = d.state_add(sa(0x300, reqid=3), 0, 0.0, iv_salt=SALT).handle
    return DevicePath(d), crypto


def rx_device() -> DevicePath:
    """The receiving end: the routed flow's state and policy, a block for part of it,
    and a crypto offload state."""
    d = Device("eth1", 3, PROFILES["full"])
    inbound = XFRM_OFFLOAD_PACKET | XFRM_OFFLOAD_INBOUND
    d.state_add(sa(0x100), inbound, 0.0)
    d.state_add(sa(0x400, reqid=4), XFRM_OFFLOAD_INBOUND, 0.0)
    blocked_in = selector("198.51.100.64/26", "203.0.113.0/25")
    block = Policy(sel=blocked_in, dir=Direction.IN, action=PolicyAction.BLOCK, priority=1)
    d.policy_add(block, XFRM_OFFLOAD_PACKET)
    d.policy_add(
        Policy(sel=ROUTED, dir=Direction.IN, templates=(tmpl(1),), priority=2),
        XFRM_OFFLOAD_PACKET,
    )
    return DevicePath(d)


def fragment(p: bytes) -> bytes:
    b = bytearray(p)
    b[6] |= 0x20  # MF: not keyed (the ports are not where a key looks)
    return bytes(b)


def hop_by_hop(p: bytes) -> bytes:
    """An IPv6 packet with a hop-by-hop header before its UDP header: not keyed."""
    body = bytes([17, 0, 1, 4, 0, 0, 0, 0]) + p[40:]
    return p[:4] + len(body).to_bytes(2, "big") + bytes([0]) + p[7:40] + body


def flows(rng: random.Random) -> list[bytes]:
    """Inner packets from a handful of flows of every kind, each repeated in a run."""
    kinds: list[Any] = [
        lambda n: udp4("198.51.100.7", "203.0.113.9", n),  # routed
        lambda n: udp4("198.51.100.70", "203.0.113.10", n, sport=7),  # routed (blocked on RX)
        lambda n: udp4("198.51.100.7", "203.0.113.9", n, dport=53),  # routed, another flow
        lambda n: udp4("198.51.100.7", "203.0.113.130", n),  # blocked
        lambda n: udp4("198.51.100.7", "203.0.113.200", n),  # no state: acquire
        lambda n: udp4("10.0.0.1", "10.0.0.2", n),  # no policy
        lambda n: udp6("2001:db8::1", "2001:db8::2", n),  # no policy
        lambda n: hop_by_hop(udp6("2001:db8::1", "2001:db8::2", n)),
        lambda n: fragment(udp4("198.51.100.7", "203.0.113.9", n)),
    ]
    out: list[bytes] = []
    order = list(kinds)  # every kind at least once
    while len(out) < 300:
        make = order.pop() if order else rng.choice(kinds)
        for _ in range(rng.choice([1, 1, 2, 5, 17, 40])):
            out.append(make(rng.randbytes(rng.randrange(1, 200))))
        if rng.random() < 0.1:
            out += inner_packets(rng, 2)  # junk, truncated, oversized
    return out


def chunks(rng: random.Random, items: list[Any]) -> list[list[Any]]:
    out, i = [], 0
    while i < len(items):
        k = rng.choice([1, 7, 64, 256])
        out.append(items[i : i + k])
        i += k
    return out


def observed(path: DevicePath) -> tuple[Any, ...]:
    d = path.device
    states = sorted(
        (e.handle, e.sa.curlft.packets, e.sa.curlft.bytes, dict(e.sa.drops)) for e in d.states()
    )
    events = Counter(repr(e) for e in d.pop_events())
    return d.stats.as_dict(), states, events


def outcomes(results: list[Results]) -> list[Any]:
    return [o for r in results for o in r.outcomes()]


@pytest.mark.parametrize("seed", range(12))
def test_tx_runs_match_one_packet_at_a_time(seed: int) -> None:
    rng = random.Random(seed)
    (batched, crypto), (single, _) = tx_device(), tx_device()
    inner = flows(rng)
    esp = batched.device.get_state(crypto).sa.esp
    handles = [crypto if rng.random() < 0.05 else 0 for _ in inner]
    seqs = [i + 1 if h else 0 for i, h in enumerate(handles)]
    packets = [
        host_tx_frame(esp, p, s) if h and p[:1] == b"\x45" and len(p) > 20 else p
        for p, h, s in zip(inner, handles, seqs, strict=True)
    ]
    got, want = [], []
    start = 0
    for chunk in chunks(rng, packets):
        end = start + len(chunk)
        h, s = handles[start:end], seqs[start:end]
        got.append(batched.tx(chunk, 1.0, h if any(h) else (), s if any(h) else ()))
        want += [single.tx([p], 1.0, [h[j]] if any(h) else (), [s[j]] if any(h) else ())
                 for j, p in enumerate(chunk)]  # fmt: skip
        start = end
    assert outcomes(got) == outcomes(want)
    seen = observed(batched)
    assert seen == observed(single)
    for reason in ("XfrmOutPolBlock", "XfrmOutNoStates"):
        assert seen[0][reason] > 0, reason


def test_rx_runs_match_one_packet_at_a_time() -> None:
    rng = random.Random(7)
    sender, _ = tx_device()
    inner = flows(rng)
    wire = [o[1] for o in sender.tx(inner, 1.0).outcomes() if isinstance(o[1], bytes)]
    peer = SecurityAssociation(sa(0x400, reqid=4), 0.0, iv_salt=SALT, engine="python")
    stranger = SecurityAssociation(sa(0x999), 0.0, iv_salt=SALT, engine="python")
    traffic: list[bytes] = []
    for p in wire:
        r = rng.random()
        if r < 0.7:
            traffic.append(p)
        elif r < 0.75:
            traffic += [p, p]  # a replay
        elif r < 0.85:
            traffic.append(mutate(rng, p))
        elif r < 0.9:
            (other,) = peer.encap_batch([udp4("198.51.100.7", "203.0.113.9", b"c")], 1.0)
            assert isinstance(other, bytes)
            traffic.append(other)  # crypto offload RX
        else:
            (other,) = stranger.encap_batch([p[:60]], 1.0)
            assert isinstance(other, bytes)
            traffic.append(other)  # no such state
    batched, single = rx_device(), rx_device()
    got = [batched.rx(chunk, 2.0) for chunk in chunks(rng, traffic)]
    want = [single.rx([p], 2.0) for p in traffic]
    assert outcomes(got) == outcomes(want)
    seen = observed(batched)
    assert seen == observed(single)
    for reason in ("XfrmInPolBlock", "XfrmInNoStates", "XfrmInStateSeqError"):
        assert seen[0][reason] > 0, reason
    # the batches did carry cleartext through runs, and crypto offload frames between them
    passed = Counter(o[3] for o in outcomes(got) if o[2] and o[0] == Verdict.PASS)
    assert passed[0] > 50 and passed[CryptoStatus.CRYPTO_SUCCESS] > 5


# -- key_runs: the C restatement against the reference --------------------------------


def items(rng: random.Random) -> list[Any]:
    base = inner_packets(rng, 30) + flows(rng)[:60]
    out: list[Any] = []
    for p in base:
        r = rng.random()
        if r < 0.6:
            out += [p] * rng.choice([1, 2, 9])
        elif r < 0.8:
            out.append(mutate(rng, p))
        elif r < 0.9:
            out.append(rng.choice([None, XfrmStat.IN_HDR_ERROR, bytearray(p)]))
        else:
            esp = bytearray(udp4("192.0.2.1", "192.0.2.2", rng.randbytes(20)))
            esp[9] = 50
            out += [bytes(esp)] * rng.choice([1, 3])
    return out


@pytest.mark.skipif(not native.available(), reason="native engine not built")
@pytest.mark.parametrize("seed", range(100))
def test_native_key_runs_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    c_key_runs = native.key_runs_native()
    assert c_key_runs is not None
    batch = items(rng)
    for kind in (KEY_FLOW, KEY_ESP4):
        assert c_key_runs(batch, kind) == key_runs(batch, kind)
    assert c_key_runs([], KEY_FLOW) == []


def test_key_runs_groups_equal_keys_only() -> None:
    a = udp4("198.51.100.7", "203.0.113.9", b"one")
    a2 = udp4("198.51.100.7", "203.0.113.9", b"other payload, same flow")
    b = udp4("198.51.100.7", "203.0.113.9", b"x", dport=53)
    frag = fragment(a)
    runs = key_runs([a, a2, b, frag, frag, None, a], KEY_FLOW)
    assert [end for _, end in runs] == [2, 3, 6, 7]
    assert [k is None for k, _ in runs] == [False, False, True, False]

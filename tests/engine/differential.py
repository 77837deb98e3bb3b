"""The two ESP engines side by side: random SAs, random traffic, good and mutated packets.

``run_case(config, seed, n, mtu)`` builds each SA twice (the Python reference and the
native engine, same IV salt, the same device MTU bounding TFC padding), pushes the same
encap batches and then the same decap batches (the good packets, mutated ones, forged
ones with a valid ICV around a chosen plaintext, replays, NAT-T control datagrams)
through both, and asserts identical outputs, verdicts, drop reasons, counters, replay
state, lifetimes (byte/packet limits reached inside batches: counters, where in the
batch soft and hard fired, the expired drops after it) and events after every batch,
and that no packet TFC padding grew is longer than the MTU. It returns how many packets
it compared. Used by test_native_property.py and scripts/differential.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from typing import Any

from hypothesis import strategies as st

from xfrm_offload.engine.crypto_offload import CryptoStatus, host_tx_frame
from xfrm_offload.engine.errors import PacketDrop
from xfrm_offload.engine.ipheader import ipv4_checksum, udp6_checksum, udp_header
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import (
    XFRM_INF,
    Algorithm,
    EncapTemplate,
    Family,
    LifetimeConfig,
    Mode,
    ReplayState,
    SAConfig,
    SAExtraFlag,
    SAFlag,
)

SALT = bytes(range(200, 216))


def _key(n: int) -> bytes:
    return bytes((7 * i + n) & 0xFF for i in range(n))


TRANSFORMS: list[tuple[Algorithm | None, Algorithm | None, Algorithm | None]] = [
    *(
        (Algorithm("rfc4106(gcm(aes))", _key(k + 4), icv), None, None)
        for k in (16, 24, 32)
        for icv in (64, 96, 128)
    ),
    *((Algorithm("rfc4543(gcm(aes))", _key(k + 4), 128), None, None) for k in (16, 24, 32)),
    (Algorithm("rfc7539esp(chacha20,poly1305)", _key(36), 128), None, None),
    *(
        (None, Algorithm("cbc(aes)", _key(k)), Algorithm(f"hmac({h})", _key(kl), trunc))
        for k in (16, 24, 32)
        for h, kl, trunc in (
            ("sha1", 20, 0),
            ("sha256", 32, 128),
            ("sha256", 32, 0),
            ("sha384", 48, 192),
            ("sha512", 64, 256),
            ("sha512", 0, 512),
        )
    ),
    (None, Algorithm("cbc(aes)", _key(16)), None),
    (None, Algorithm("ecb(cipher_null)", b""), Algorithm("hmac(sha256)", _key(32), 128)),
    (None, Algorithm("ecb(cipher_null)", b""), Algorithm("digest_null", b"")),
]
ADDRS = {
    Family.INET: (ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")),
    Family.INET6: (ipaddress.ip_address("2001:db8::1"), ipaddress.ip_address("2001:db8::2")),
}


#: TFC padding lengths: none, below / around / above common packet sizes and MTUs.
TFCPADS = st.one_of(st.sampled_from([0, 0, 0, 100, 1400, 1500, 0xFFFF]), st.integers(1, 9200))
#: Device MTUs: the usual ones, IPv4's minimum (too small for some SAs' headers: the
#: kernel's u32 xfrm_state_mtu wraps then), and anything up to jumbo frames.
MTUS = st.one_of(st.sampled_from([68, 576, 1280, 1500, 9000]), st.integers(68, 9216))


@st.composite
def configs(draw: st.DrawFn) -> SAConfig:
    """A random SA within what the engine accepts (one config serves both ends)."""
    aead, enc, auth = draw(st.sampled_from(TRANSFORMS))
    mode = draw(st.sampled_from([Mode.TUNNEL, Mode.TRANSPORT]))
    family = draw(st.sampled_from([Family.INET, Family.INET6]))
    esn = draw(st.booleans())
    flags = SAFlag.ESN if esn else SAFlag.NONE
    for f in (SAFlag.NOECN, SAFlag.DECAP_DSCP, SAFlag.NOPMTUDISC):
        if draw(st.booleans()):
            flags |= f
    extra = SAExtraFlag.NONE
    if draw(st.booleans()):
        extra |= SAExtraFlag.DONT_ENCAP_DSCP
    if not esn and draw(st.booleans()):
        extra |= SAExtraFlag.OSEQ_MAY_WRAP
    window = (
        draw(st.sampled_from([0, 1, 32, 64, 100, 1024]))
        if not esn
        else draw(st.sampled_from([1, 32, 64, 100, 1024]))
    )
    near = draw(st.sampled_from([0, 2**32 - 300, 2**32 - 40, 5]))
    oseq_hi = draw(st.sampled_from([0, 1, 2**32 - 1])) if esn else 0
    if oseq_hi == 2**32 - 1 and near == 0:
        near = 2**32 - 300  # not both 0xffffffff later... and close to the 2^64 end
    limits = LifetimeConfig()
    if draw(st.integers(0, 3)) == 0:
        # small enough to be reached inside a batch; now and then none (XFRM_INF)
        def limit(top: int) -> int:
            return draw(st.one_of(st.integers(0, top), st.just(XFRM_INF)))

        limits = LifetimeConfig(
            soft_packet_limit=limit(200),
            hard_packet_limit=limit(400),
            soft_byte_limit=limit(40_000),
            hard_byte_limit=limit(80_000),
        )
    saddr, daddr = ADDRS[family]
    return SAConfig(
        daddr=daddr,
        saddr=saddr,
        spi=draw(st.sampled_from([1, 0x1001, 0xFFFFFFFF, 0x12345678])),
        family=family,
        mode=mode,
        flags=flags,
        extra_flags=extra,
        replay_window=window,
        replay=ReplayState(seq=near, seq_hi=oseq_hi, oseq=near, oseq_hi=oseq_hi),
        aead=aead,
        enc=enc,
        auth=auth,
        encap=EncapTemplate(sport=draw(st.sampled_from([4500, 1234])))
        if draw(st.booleans())
        else None,
        tfcpad=draw(TFCPADS) if mode == Mode.TUNNEL else 0,
        lifetime=limits,
    )


# -- traffic ---------------------------------------------------------------------------


def _v4(rng: random.Random, payload: bytes) -> bytes:
    opts = bytes(rng.choice([0, 4, 8, 40])) if rng.random() < 0.2 else b""
    ihl = 20 + len(opts)
    total = ihl + len(payload)
    hdr = bytes([0x40 | ihl // 4, rng.randrange(256)]) + total.to_bytes(2, "big")
    # DF or not; now and then a fragment (MF), which a receiver must refuse
    frag = rng.choice([0, 0x40, 0x40, 0, 0, 0, 0, 0, 0x20])
    hdr += rng.randbytes(2) + bytes([frag, 0, rng.randrange(1, 256)])
    hdr += bytes([rng.choice([6, 17, 1, 50]), 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + opts
    hdr = hdr[:10] + ipv4_checksum(hdr).to_bytes(2, "big") + hdr[12:]
    return hdr + payload


def _v6(rng: random.Random, payload: bytes) -> bytes:
    chain = b""
    nh = rng.choice([6, 17, 58])
    # extension headers, built back to front: (type, length in 8-byte units)
    for ext in reversed(rng.sample([0, 43, 44, 60, 60], rng.randrange(0, 4))):
        if ext == 44:
            chain = bytes([nh, 0]) + rng.randbytes(6) + chain
        else:
            units = rng.randrange(0, 3)
            chain = bytes([nh, units]) + rng.randbytes(6 + 8 * units) + chain
        nh = ext
    body = chain + payload
    tc = rng.randrange(256)
    hdr = bytes([0x60 | tc >> 4, (tc & 0xF) << 4, 0, 0]) + len(body).to_bytes(2, "big")
    hdr += bytes([nh, 64]) + ADDRS[Family.INET6][0].packed + ADDRS[Family.INET6][1].packed
    return hdr + body


def inner_packets(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        size = rng.choice([1, 2, 15, 40, 64, 100, 300, 1400, rng.randrange(1, 1500)])
        payload = rng.randbytes(size)
        kind = rng.random()
        if kind < 0.45:
            p = _v4(rng, payload)
        elif kind < 0.9:
            p = _v6(rng, payload)
        elif kind < 0.95:
            p = rng.randbytes(rng.randrange(0, 60))  # not IP at all / truncated
        else:
            p = _v4(rng, rng.randbytes(0xFFFF - 60 - rng.randrange(0, 40)))  # too big
        if rng.random() < 0.05:
            p = p[: rng.randrange(0, len(p) + 1)]  # a header that promises more
        out.append(p)
    return out


def _fix_v4(b: bytearray) -> None:
    """A header edit a peer would make: the IPv4 header checksum follows it."""
    ihl = (b[0] & 0x0F) * 4
    if len(b) >= 20 and b[0] >> 4 == 4 and 20 <= ihl <= len(b):
        b[10:12] = bytes(2)
        b[10:12] = ipv4_checksum(b[:ihl]).to_bytes(2, "big")


def _udp(sa: SecurityAssociation, body: bytes) -> bytes:
    """A UDP header for ``body`` between the SA's ports: checksum 0 over IPv4, computed
    over IPv6 (where 0 is refused)."""
    esp = sa.esp
    n = 8 + len(body)
    csum = 0
    if esp.outer_v6:
        csum = udp6_checksum(esp.saddr, esp.daddr, udp_header(esp.sport, esp.dport, n) + body)
    return udp_header(esp.sport, esp.dport, n, csum)


def mutate(rng: random.Random, p: bytes) -> bytes:
    b = bytearray(p)
    how = rng.randrange(8)
    if how == 0 and b:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif how == 1:
        del b[rng.randrange(len(b) + 1) :]
    elif how == 2 and b:
        b[rng.randrange(min(len(b), 60))] = rng.randrange(256)
    elif how == 3 and len(b) > 2:
        b[1] |= 3  # outer ECN CE (IPv4 TOS; the IPv6 traffic class's upper bits)
        _fix_v4(b)
    elif how == 4 and len(b) > 20:
        b[1] = rng.randrange(256)  # DSCP + ECN
        _fix_v4(b)
    elif how == 5:
        b += rng.randbytes(rng.randrange(1, 20))  # link padding
    elif how == 6 and len(b) > 40:
        # the outer protocol / next header: ESP, UDP or anything
        b[9 if b[0] >> 4 == 4 else 6] = rng.choice([50, 17, 6, 0, 60, 43, 44])
        _fix_v4(b)
    else:
        b = bytearray(rng.randbytes(rng.randrange(0, 80)))
    return bytes(b)


def forged(rng: random.Random, forger: SecurityAssociation, seq: int) -> bytes:
    """A packet whose ICV verifies around a plaintext we choose: reaches the checks that
    come after decryption (trailer, pad length, inner protocol, inner length)."""
    esp = forger.esp
    align = esp.pad_mask + 1
    nh = rng.choice([4, 41, 59, 17, 6, rng.randrange(256)])
    if nh == 4:
        body = bytearray(_v4(rng, rng.randbytes(rng.randrange(0, 80))))
        if rng.random() < 0.5:
            body[2:4] = rng.randrange(0, len(body) + 30).to_bytes(2, "big")
        if rng.random() < 0.2:
            body[0] = 0x40 | rng.randrange(16)
    elif nh == 41:
        body = bytearray(_v6(rng, rng.randbytes(rng.randrange(0, 80))))
        if rng.random() < 0.5:
            body[4:6] = rng.randrange(0, len(body)).to_bytes(2, "big")
    else:
        body = bytearray(rng.randbytes(rng.randrange(0, 60)))
    if rng.random() < 0.2 and body:
        body[0] = rng.randrange(256)
    padlen = rng.choice([0, 1, 3, len(body), len(body) + 1, 255, rng.randrange(256)])
    padlen = min(padlen, 255)
    plain = bytes(body)
    plain += bytes(-(len(plain) + 2) % align)
    plain += bytes((padlen, nh))
    sealed = esp.crypto.seal(plain, seq)
    cfg = forger.config
    if cfg.mode == Mode.TUNNEL:
        return esp._outer(sealed, rng.randrange(256), rng.random() < 0.5)
    # transport: an outer header of the SA's family around it
    n = len(sealed) + (8 if esp.natt else 0)
    if esp.natt:
        sealed = _udp(forger, sealed) + sealed
    if esp.outer_v6:
        return esp.tmpl6.build(n) + sealed
    return esp.tmpl4.build(20 + n) + sealed


def natt_control(forger: SecurityAssociation, rng: random.Random) -> bytes:
    esp = forger.esp
    body = b"\xff" if rng.random() < 0.5 else bytes(4) + rng.randbytes(rng.randrange(0, 40))
    udp = _udp(forger, body)
    if esp.outer_v6:
        return esp.tmpl6.build(8 + len(body)) + udp + body
    return esp.tmpl4.build(28 + len(body)) + udp + body


# -- comparing -------------------------------------------------------------------------


def state(s: SecurityAssociation) -> tuple[Any, ...]:
    r = s.replay
    return (
        s.oseq.batch_state(),
        s.oseq.overflowed,
        r.run_state(),
        r.replay_window,
        r.replay,
        dict(s.drops),
        s.integrity_failed,
        s.curlft,
        s.lifetime.soft_expired,
        s.lifetime.hard_expired,
        s.batch_fired,
        s.pop_events(),
        s.stats.as_dict(),
    )


def _chunks(rng: random.Random, items: list[bytes]) -> list[list[bytes]]:
    out = []
    i = 0
    while i < len(items):
        k = rng.choice([1, 3, 17, 64, 256])
        out.append(items[i : i + k])
        i += k
    return out


def run_case(config: SAConfig, seed: int, n: int, mtu: int = 1500) -> int:
    """Drive both engines with the same traffic; assert they agree. Returns packets compared."""
    rng = random.Random(seed)
    tx = [
        SecurityAssociation(config, 0.0, iv_salt=SALT, engine=e, mtu=mtu)
        for e in ("python", "native")
    ]
    padto = tx[0].tfc_padto
    # A padded packet fits the MTU unless the MTU cannot even hold the headers (then
    # xfrm_state_mtu wraps as a u32 and tfcpad alone is the limit, as in the kernel).
    clamped = padto and tx[0].state_mtu(mtu) >= 0
    compared = 0
    sent: list[bytes] = []
    now = 1.0
    for chunk in _chunks(rng, inner_packets(rng, n)):
        results = [s.encap_batch(chunk, now) for s in tx]
        assert results[0] == results[1], (config, mtu)
        assert state(tx[0]) == state(tx[1]), (config, mtu)
        for inner, out in zip(chunk, results[0], strict=True):
            if clamped and isinstance(out, bytes) and len(inner) < padto:
                assert len(out) <= mtu, (config, mtu, len(inner), len(out))
        sent += [p for p in results[0] if isinstance(p, bytes)]
        compared += len(chunk)
        now += 0.5
    # The receiving ends: the window where the sender started (or elsewhere, sometimes).
    rx_cfg = config
    if rng.random() < 0.2:
        rx_cfg = dataclasses.replace(
            config, replay=ReplayState(seq=rng.randrange(2**32 - 1), seq_hi=config.replay.seq_hi)
        )
    rx = [SecurityAssociation(rx_cfg, 0.0, iv_salt=SALT, engine=e) for e in ("python", "native")]
    forger = SecurityAssociation(config, 0.0, iv_salt=SALT, engine="python")
    last = max(tx[0].oseq.last, 1)
    traffic: list[bytes] = []
    for p in sent:
        r = rng.random()
        if r < 0.55:
            traffic.append(p)
        elif r < 0.75:
            traffic.append(mutate(rng, p))
        elif r < 0.85:
            seq = min(rng.choice([last, last - 1, last + 5, 1]), 2**64 - 1)
            traffic.append(forged(rng, forger, seq))
        elif r < 0.9 and config.encap is not None:
            traffic.append(natt_control(forger, rng))
        else:
            traffic.append(p)
            traffic.append(p)  # a replay
    if rng.random() < 0.3:
        rng.shuffle(traffic)
    for chunk in _chunks(rng, traffic):
        received = [s.decap_batch(chunk, now) for s in rx]
        assert received[0] == received[1], config
        assert state(rx[0]) == state(rx[1]), config
        compared += len(chunk)
        now += 0.5
    return compared


# -- crypto offload: the NIC's halves ---------------------------------------------------


def run_crypto_offload_case(config: SAConfig, seed: int, n: int) -> int:
    """The NIC's halves of crypto offload on both engines: ``nic_seal`` of host frames
    (good, mutated, with sequence numbers at and past the 64-bit ends) and ``nic_open`` of
    ESP packets (good, mutated, forged, NAT-T control, with any seq_hi) must give the same
    bytes and statuses. Returns how many calls it compared."""
    rng = random.Random(seed)
    ref, nat = (
        SecurityAssociation(config, 0.0, iv_salt=SALT, engine=e) for e in ("python", "native")
    )
    esp, fast = ref.esp, nat.batch
    compared = 0
    for inner in inner_packets(rng, n):
        seq = rng.choice([1, 2**32, rng.randrange(2**64), 2**64 - 1, 2**64, -1])
        try:
            frame = host_tx_frame(esp, inner, seq & (2**64 - 1))
        except PacketDrop:
            frame = inner  # not a packet the mode takes: the NIC sees it as it is
        if rng.random() < 0.3:
            frame = mutate(rng, frame)
        assert fast.nic_seal(frame, seq) == esp.nic_seal(frame, seq), (config, seq)
        compared += 1
    sender = SecurityAssociation(config, 0.0, iv_salt=SALT, engine="python")
    sent = [p for p in sender.encap_batch(inner_packets(rng, n), 1.0) if isinstance(p, bytes)]
    last = max(sender.oseq.last, 1)
    for p in sent:
        r = rng.random()
        if r < 0.3:
            p = mutate(rng, p)
        elif r < 0.4:
            p = forged(rng, sender, min(last, 2**64 - 1))
        elif r < 0.45 and config.encap is not None:
            p = natt_control(sender, rng)
        seq_hi = rng.choice([config.replay.oseq_hi, 0, rng.randrange(2**32), 2**32 - 1])
        got, want = fast.nic_open(p, seq_hi), esp.nic_open(p, seq_hi)
        assert got == want, (config, seq_hi)
        assert got[1] is p or got[0] == CryptoStatus.CRYPTO_SUCCESS
        compared += 1
    return compared

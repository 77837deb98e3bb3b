"""ESP engine throughput against a raw AESGCM loop in the same process.

Run: ``PYTHONPATH=proto:server:client python bench/esp.py`` (prints a table).

AES-128-GCM, tunnel mode, IPv4 outer, inner IPv4/UDP packets of 64, 512 and 1400 bytes.
The engine is driven through its batch API (``SecurityAssociation.encap_batch`` /
``decap_batch``), which includes the sequence counter, replay window and lifetime
accounting. The reference is ``AESGCM.encrypt``/``decrypt`` on the same plaintext with a
prebuilt nonce and AAD: the Python limit. "floor" is a loop doing only what no ESP
encapsulation can skip (pack the header and nonce, join plaintext and trailer, the AEAD
call, join header and ciphertext; decap: the reverse), with no checks and no counters,
as a ratio to raw: the most any CPython engine could reach on this machine. Each figure
is the median of several rounds, raw, floor and engine rounds alternating; "ns above
AEAD" is the engine's per-packet time minus the raw loop's. scapy's
``SecurityAssociation`` is timed on fewer packets for comparison.
"""

from __future__ import annotations

import ipaddress
import os
import statistics
import struct
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from serverproc import tune_malloc

from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig

SIZES = (64, 512, 1400)
BATCH = 256
BATCHES = 16  # packets per round = BATCH * BATCHES
ROUNDS = 15
SCAPY_PACKETS = 300

KEYMAT = bytes(range(16)) + b"\xa0\xa1\xa2\xa3"
FLOOR_HEAD = struct.Struct("!24sIQ")  # outer IPv4 + SPI, sequence number, IV
FLOOR_NONCE = struct.Struct("!IQ")  # salt, IV
FLOOR_ESP = struct.Struct("!28x8s")  # the IV of an ESP packet in IPv4
FLOOR_LEN = struct.Struct("!2xH")  # an inner IPv4 packet's total length


def inner_packet(size: int) -> bytes:
    """An IPv4/UDP packet of exactly ``size`` bytes with a valid header checksum."""
    from xfrm_offload.engine.ipheader import ipv4_checksum

    payload_len = size - 28
    hdr = bytearray(
        bytes.fromhex("4500") + size.to_bytes(2, "big") + bytes.fromhex("00004000 40110000")
    )
    hdr += bytes([10, 0, 0, 1, 10, 0, 0, 2])
    csum = ipv4_checksum(hdr)
    hdr[10:12] = csum.to_bytes(2, "big")
    udp = (4000).to_bytes(2, "big") + (5000).to_bytes(2, "big")
    udp += (payload_len + 8).to_bytes(2, "big") + b"\x00\x00"
    return bytes(hdr) + udp + os.urandom(payload_len)


def config(window: int = 128) -> SAConfig:
    return SAConfig(
        daddr=ipaddress.IPv4Address("192.0.2.2"),
        saddr=ipaddress.IPv4Address("192.0.2.1"),
        spi=0x1001,
        mode=Mode.TUNNEL,
        replay_window=window,
        aead=Algorithm("rfc4106(gcm(aes))", KEYMAT, 128),
    )


def median_rates(
    runs: list[Callable[[], int]], setup: Callable[[], None] | None = None
) -> list[float]:
    """Packets per second of each of ``runs`` (each returns its packet count): the median
    over ROUNDS. The runs alternate round by round, so the raw loop and the engine see
    the same moments of a shared, noisy machine. ``setup`` (untimed) runs before each.
    """
    rates: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for run, out in zip(runs, rates, strict=True):
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            n = run()
            out.append(n / (time.perf_counter() - t0))
    return [statistics.median(r) for r in rates]


def bench_size(size: int) -> dict[str, float]:
    packet = inner_packet(size)
    batch = [packet] * BATCH
    aead = AESGCM(KEYMAT[:16])
    nonce = KEYMAT[16:] + bytes(8)
    aad = bytes(8)
    pad = (-(size + 2)) % 4
    plain = packet + bytes(range(1, pad + 1)) + bytes([pad, 4])
    total = BATCH * BATCHES

    def raw_encrypt() -> int:
        enc = aead.encrypt
        for _ in range(total):
            enc(nonce, plain, aad)
        return total

    # The floor: only the work no ESP encapsulation can skip (outer header and nonce
    # packed, plaintext and trailer joined, the AEAD call, header and ciphertext joined),
    # with no checks, no counters and a fixed outer header. What the engine adds beyond
    # it is its checks and bookkeeping; what the floor adds beyond raw, CPython's.
    outer = bytes(20) + KEYMAT[:4]  # any 24 bytes: IPv4 header + SPI
    trailer = plain[size:]

    def floor_encrypt() -> int:
        enc, head_of, nonce_of, salt = aead.encrypt, FLOOR_HEAD.pack, FLOOR_NONCE.pack, 0xA0A1
        seq = 0
        for _ in range(BATCHES):
            out: list[bytes] = []
            append = out.append
            for q in batch:
                seq += 1
                head = head_of(outer, seq, seq)
                append(head + enc(nonce_of(salt, seq), q + trailer, head[20:28]))
        return total

    tx = SecurityAssociation(config(), 0.0)
    now = 1.0

    def engine_encap() -> int:
        enc = tx.encap_batch
        for _ in range(BATCHES):
            enc(batch, now)
        return total

    # Decap needs fresh sequence numbers every round: each round's packets are made
    # just before it (untimed), so engine and raw loop read equally fresh memory. The
    # raw loop decrypts the same ciphertexts with nonces/AADs prebuilt from them.
    sender = SecurityAssociation(config(), 0.0)
    rx = SecurityAssociation(config(), 0.0)
    fresh: list[list[bytes]] = []
    prebuilt: list[tuple[bytes, bytes, bytes]] = []

    def make_round() -> None:
        fresh.clear()
        for _ in range(BATCHES):
            fresh.append([p for p in sender.encap_batch(batch, now) if isinstance(p, bytes)])
        prebuilt.clear()
        prebuilt.extend((KEYMAT[16:] + p[28:36], p[36:], p[20:28]) for b in fresh for p in b)

    def raw_decrypt() -> int:
        dec = aead.decrypt
        for n, c, a in prebuilt:
            dec(n, c, a)
        return total

    def floor_decrypt() -> int:
        dec, head, inner_of, salt = (
            aead.decrypt,
            FLOOR_ESP.unpack_from,
            FLOOR_LEN.unpack_from,
            KEYMAT[16:],
        )
        for b in fresh:
            out: list[bytes] = []
            append = out.append
            for q in b:
                iv = head(q)[0]
                pt = dec(salt + iv, q[36:], q[20:28])
                append(pt[: inner_of(pt)[0]])
        return total

    def engine_decap() -> int:
        dec = rx.decap_batch
        for b in fresh:
            out = dec(b, now)
        assert out[-1] == packet
        return total

    r: dict[str, float] = {}
    r["raw_enc"], r["floor_enc"], r["eng_enc"] = median_rates(
        [raw_encrypt, floor_encrypt, engine_encap]
    )
    r["raw_dec"], r["floor_dec"], r["eng_dec"] = median_rates(
        [raw_decrypt, floor_decrypt, engine_decap], make_round
    )
    r["scapy_enc"], r["scapy_dec"] = bench_scapy(packet)
    return r


def bench_scapy(packet: bytes) -> tuple[float, float]:
    from scapy.layers.inet import IP
    from scapy.layers.ipsec import ESP
    from scapy.layers.ipsec import SecurityAssociation as ScapySA

    sa = ScapySA(
        ESP,
        spi=0x1001,
        crypt_algo="AES-GCM",
        crypt_key=KEYMAT,
        tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"),
    )
    pkt = IP(packet)
    t0 = time.perf_counter()
    enc = [sa.encrypt(pkt) for _ in range(SCAPY_PACKETS)]
    enc_rate = SCAPY_PACKETS / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for e in enc:
        sa.decrypt(e)
    dec_rate = SCAPY_PACKETS / (time.perf_counter() - t0)
    return enc_rate, dec_rate


def main() -> int:
    tuned = "--no-malloc-tuning" not in sys.argv and tune_malloc()
    print(f"glibc heap trim threshold raised: {tuned}")
    print(f"AES-128-GCM tunnel IPv4, batch {BATCH}, median of {ROUNDS} rounds")
    head = (
        f"{'size':>5} {'dir':>6} {'raw kpps':>9} {'floor':>6} {'engine kpps':>12} {'ratio':>6} "
        f"{'ns above AEAD':>14} {'scapy kpps':>11} {'engine/scapy':>13}"
    )
    print(head)
    print("-" * len(head))
    for size in SIZES:
        r = bench_size(size)
        for d in ("enc", "dec"):
            raw, eng, sc = r[f"raw_{d}"], r[f"eng_{d}"], r[f"scapy_{d}"]
            floor = r[f"floor_{d}"] / raw
            over = (1 / eng - 1 / raw) * 1e9
            print(
                f"{size:>5} {'encap' if d == 'enc' else 'decap':>6} {raw / 1e3:>9.0f} "
                f"{floor:>6.2f} {eng / 1e3:>12.0f} {eng / raw:>6.2f} {over:>14.0f} "
                f"{sc / 1e3:>11.2f} {eng / sc:>12.0f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

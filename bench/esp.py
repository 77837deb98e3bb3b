"""ESP engine throughput: the native and the reference engine beside a raw C EVP loop.

Run: ``PYTHONPATH=proto:server:client:bench python bench/esp.py [--quick]``.

Tunnel mode, IPv4 outer, inner IPv4/UDP packets of 64 and 1400 bytes, batches of 256,
for AES-128-GCM (rfc4106), ChaCha20-Poly1305 (rfc7539esp) and AES-128-CBC + HMAC-SHA256
(128-bit ICV). In one run, rounds alternating so every loop sees the same moments of a
shared machine (the figure is each loop's median):

- ``C``: the raw C EVP loop (``native.raw_seal``, for benchmarking only): one EVP seal
  per packet, key set once, into a fresh bytes object, in a list per batch: the floor
  any engine on EVP pays. Decap rows compare against the same seal loop run over that
  round's freshly made ESP packets (the memory the engines' decap reads), since AEAD open
  costs what seal does (CBC decryption is cheaper than encryption: the CBC decap ratio
  flatters the engine there).
- ``py``: the Python loop: ``cryptography``'s AEAD ``encrypt`` (CBC: a CBC encryptor +
  ``hmac.digest``) per packet with a prebuilt nonce and AAD.
- ``ref`` / ``native``: ``SecurityAssociation.encap_batch`` / ``decap_batch`` on the
  Python reference and on the native engine (sequence counter, replay window, lifetime
  accounting, every check included).

Times are this thread's CPU time (``time.thread_time_ns``), not wall time: on a machine
shared with other work, a loop descheduled mid-round would otherwise be charged for the
wait. Columns: ns per packet of each, the native engine's rate as a ratio to the C loop, its ns
per packet above the C loop, and the reference's ratio to the C loop.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from serverproc import tune_malloc

from xfrm_offload.engine import native
from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig

SIZES = (64, 1400)
BATCH = 256
BATCHES = 8  # batches per round
ROUNDS = 9


@dataclass(frozen=True)
class Suite:
    name: str
    raw: str  # native.raw_seal's cipher name
    aead: Algorithm | None = None
    enc: Algorithm | None = None
    auth: Algorithm | None = None


SUITES = (
    Suite(
        "AES-128-GCM",
        "aes-128-gcm",
        aead=Algorithm("rfc4106(gcm(aes))", bytes(range(16)) + b"\xa0\xa1\xa2\xa3", 128),
    ),
    Suite(
        "ChaCha20-Poly1305",
        "chacha20-poly1305",
        aead=Algorithm("rfc7539esp(chacha20,poly1305)", bytes(range(36)), 128),
    ),
    Suite(
        "AES-CBC-HMAC-SHA256",
        "cbc-hmac-sha256",
        enc=Algorithm("cbc(aes)", bytes(range(16))),
        auth=Algorithm("hmac(sha256)", bytes(range(32)), 128),
    ),
)


def inner_packet(size: int) -> bytes:
    """An IPv4/UDP packet of exactly ``size`` bytes with a valid header checksum."""
    payload_len = size - 28
    hdr = bytearray(
        bytes.fromhex("4500") + size.to_bytes(2, "big") + bytes.fromhex("00004000 40110000")
    )
    hdr += bytes([10, 0, 0, 1, 10, 0, 0, 2])
    hdr[10:12] = ipv4_checksum(hdr).to_bytes(2, "big")
    udp = (4000).to_bytes(2, "big") + (5000).to_bytes(2, "big")
    udp += (payload_len + 8).to_bytes(2, "big") + b"\x00\x00"
    return bytes(hdr) + udp + os.urandom(payload_len)


def config(s: Suite) -> SAConfig:
    return SAConfig(
        daddr=ipaddress.IPv4Address("192.0.2.2"),
        saddr=ipaddress.IPv4Address("192.0.2.1"),
        spi=0x1001,
        mode=Mode.TUNNEL,
        replay_window=128,
        aead=s.aead,
        enc=s.enc,
        auth=s.auth,
    )


def median_ns(
    runs: list[Callable[[], int]], setup: Callable[[], None] | None = None
) -> list[float]:
    """ns per packet of each run (each returns its packet count): median over ROUNDS, the
    runs alternating round by round. ``setup`` (untimed) runs before each."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for run, out in zip(runs, times, strict=True):
            if setup is not None:
                setup()
            t0 = time.thread_time_ns()
            n = run()
            out.append((time.thread_time_ns() - t0) / n)
    return [statistics.median(t) for t in times]


def python_loop(s: Suite, plain: bytes) -> Callable[[], int]:
    total = BATCH * BATCHES
    if s.aead is not None:
        key = s.aead.key[:-4]
        aead = ChaCha20Poly1305(key) if s.raw.startswith("chacha") else AESGCM(key)
        nonce, aad = s.aead.key[-4:] + bytes(8), bytes(8)

        def run() -> int:
            enc = aead.encrypt
            for _ in range(BATCHES):
                out = []
                for _ in range(BATCH):
                    out.append(enc(nonce, plain, aad))
            return total

        return run
    assert s.enc is not None and s.auth is not None
    ckey, akey, iv = s.enc.key, s.auth.key, bytes(16)
    body = plain + bytes(-len(plain) % 16)

    def run_cbc() -> int:
        for _ in range(BATCHES):
            out = []
            for _ in range(BATCH):
                e = Cipher(algorithms.AES(ckey), modes.CBC(iv)).encryptor()
                ct = e.update(body) + e.finalize()
                out.append(ct + hmac.digest(akey, ct, "sha256")[:16])
        return total

    return run_cbc


def bench(s: Suite, size: int) -> dict[str, float]:
    packet = inner_packet(size)
    batch = [packet] * BATCH
    plain = packet + bytes(range(1, (-(size + 2)) % 4 + 1)) + b"\x02\x04"
    total = BATCH * BATCHES
    raw_key = s.aead.key[:-4] if s.aead is not None else bytes(range(16))
    now = 1.0

    def raw_c() -> int:
        seal = native.raw_seal
        for _ in range(BATCHES):
            seal(s.raw, raw_key, batch)
        return total

    sas = {e: SecurityAssociation(config(s), 0.0, engine=e) for e in ("python", "native")}

    def encap(engine: str) -> Callable[[], int]:
        enc = sas[engine].encap_batch

        def run() -> int:
            for _ in range(BATCHES):
                enc(batch, now)
            return total

        return run

    # Decap: fresh sequence numbers every round, made (untimed) before it.
    sender = SecurityAssociation(config(s), 0.0, engine="native")
    rx = {e: SecurityAssociation(config(s), 0.0, engine=e) for e in ("python", "native")}
    fresh: list[list[bytes]] = []

    def make_round() -> None:
        fresh.clear()
        for _ in range(BATCHES):
            fresh.append([p for p in sender.encap_batch(batch, now) if isinstance(p, bytes)])

    def decap(engine: str) -> Callable[[], int]:
        dec = rx[engine].decap_batch

        def run() -> int:
            got: list[object] = []
            for b in fresh:
                got = dec(b, now)  # type: ignore[assignment]
            assert got[-1] == packet
            return total

        return run

    r: dict[str, float] = {}
    r["c"], r["py"], r["ref_enc"], r["nat_enc"] = median_ns(
        [raw_c, python_loop(s, plain), encap("python"), encap("native")]
    )

    def raw_c_fresh() -> int:
        """The C loop over the round's fresh packets: the same memory freshness decap sees."""
        seal = native.raw_seal
        for b in fresh:
            seal(s.raw, raw_key, b)
        return total

    # setup before every run: each decap run gets its own fresh packets
    r["c_dec"], r["ref_dec"], r["nat_dec"] = median_ns(
        [raw_c_fresh, decap("python"), decap("native")], make_round
    )
    return r


def main(argv: list[str] | None = None) -> int:
    global ROUNDS, BATCHES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 4 batches")
    parser.add_argument(
        "--no-malloc-tuning", action="store_true", help="keep glibc's heap trim threshold"
    )
    args = parser.parse_args(argv)
    if not native.available():
        print("bench/esp.py: the native engine is not built", file=sys.stderr)
        return 1
    if args.quick:
        ROUNDS, BATCHES = 5, 4
    tuned = not args.no_malloc_tuning and tune_malloc()
    print(f"glibc heap trim threshold raised: {tuned}; {native.describe()}")
    print(f"tunnel IPv4, batch {BATCH}, median of {ROUNDS} rounds, ns of CPU per packet")
    head = (
        f"{'suite':<20} {'size':>5} {'dir':>5} {'C':>6} {'py':>6} {'ref':>7} {'native':>7} "
        f"{'native/C':>9} {'ns above C':>11} {'ref/C':>6}"
    )
    print(head)
    print("-" * len(head))
    for s in SUITES:
        for size in SIZES:
            r = bench(s, size)
            for d in ("enc", "dec"):
                c = r["c"] if d == "enc" else r["c_dec"]
                ref, nat = r[f"ref_{d}"], r[f"nat_{d}"]
                print(
                    f"{s.name:<20} {size:>5} {'encap' if d == 'enc' else 'decap':>5} "
                    f"{c:>6.0f} {r['py']:>6.0f} {ref:>7.0f} {nat:>7.0f} {c / nat:>9.2f} "
                    f"{nat - c:>11.0f} {c / ref:>6.2f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())

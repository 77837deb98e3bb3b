"""Hardening figures: memory under malformed and good packets (soak), unary calls in
flight (load).

Run: ``python bench/hardening.py`` (``--quick`` for a smoke run, ``--json`` for
machine-readable output, ``--workers N`` to host the device in N worker processes).

- Soak: ``xfrm-offloadd`` as a separate process with one ``full`` device holding an
  inbound and an outbound packet-offload SA (bench/datapath.py's). Its VmRSS (with its
  workers') is read after a warm-up, after SOAK packets of malformed ESP on the RX path
  (a third each: truncated to the ESP header, a flipped ICV byte, an unknown SPI; drops
  counted under their xfrm_stat names, shown), and after SOAK good packets (RX ESP from
  the peer's SA, fresh sequence numbers). Flat means nothing a peer sends grows memory.
- Load: N unary calls (GetDevice, a device call) started at once on one channel, for
  N = 1k, 2k, 5k: failures by status code, and the p50/p99 latency of the calls that
  succeeded (from start of the wave to each answer).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from datapath import connect, inner_packet, install, make_esp, peer_sender
from serverproc import server_process, vm_rss

from xfrm_offload.v1 import offload_pb2 as pb

RX = pb.PACKET_DIRECTION_RX
BATCH = 256
MIB = 1 << 20


def malformed_batch(good: list[bytes]) -> list[bytes]:
    """BATCH malformed ESP packets made from good ones: three kinds, in turn."""
    out = []
    for i in range(BATCH):
        packet = bytearray(good[i % len(good)])
        kind = i % 3
        if kind == 0:
            out.append(bytes(packet[:28]))  # IPv4 + ESP header, nothing after
        elif kind == 1:
            packet[-1] ^= 0x01  # the ICV
            out.append(bytes(packet))
        else:
            packet[20:24] = (0xDEAD0000 + i).to_bytes(4, "big")  # no such SPI
            out.append(bytes(packet))
    return out


def requests(batches: Iterator[list[bytes]]) -> Iterator[pb.PacketStreamRequest]:
    for data in batches:
        yield pb.PacketStreamRequest(
            dev="eth0", direction=RX, packets=[pb.Packet(id=i, data=d) for i, d in enumerate(data)]
        )


async def push(client: Any, batches: Iterator[list[bytes]]) -> collections.Counter[str]:
    """Send every batch on one PacketStream; the verdicts and drop reasons seen."""
    seen: collections.Counter[str] = collections.Counter()
    async for reply in client.datapath.PacketStream(requests(batches)):
        for r in reply.results:
            seen[r.drop_reason or pb.Verdict.Name(r.verdict)] += 1
    return seen


async def soak(count: int, workers: int) -> dict[str, Any]:
    sender = peer_sender()
    plain = inner_packet(200, src="203.0.113.20", dst="198.51.100.10")  # NET_B -> NET_A
    good = make_esp(sender, plain, BATCH)
    bad = malformed_batch(good)
    rounds = count // BATCH
    with tempfile.TemporaryDirectory(prefix="xo-bench-") as d:
        sock = Path(d) / "s.sock"
        args = ["--device", "eth0"] + (["--workers", str(workers)] if workers else [])
        with server_process(sock, *args) as proc:
            client = await connect(sock)
            try:
                await install(client, "eth0")
                await push(client, iter([bad] * 64))  # warm-up: every path taken once
                before = vm_rss(proc.pid)
                t0 = time.perf_counter()
                drops = await push(client, iter([bad] * rounds))
                bad_rate = rounds * BATCH / (time.perf_counter() - t0)
                after_bad = vm_rss(proc.pid)

                def fresh() -> Iterator[list[bytes]]:
                    for _ in range(rounds):
                        yield make_esp(sender, plain, BATCH)

                t0 = time.perf_counter()
                passed = await push(client, fresh())
                good_rate = rounds * BATCH / (time.perf_counter() - t0)
                after_good = vm_rss(proc.pid)
            finally:
                await client.close()
    return {
        "packets": rounds * BATCH,
        "rss_mib": {
            "before": round(before / MIB, 1),
            "after_malformed": round(after_bad / MIB, 1),
            "after_good": round(after_good / MIB, 1),
        },
        "malformed": dict(drops),
        "malformed_pps": round(bad_rate),
        "good": dict(passed),
        "good_pps": round(good_rate),
    }


async def wave(client: Any, calls: int) -> dict[str, Any]:
    """``calls`` GetDevice started at once on one channel."""
    started = time.perf_counter()
    latencies: list[float] = []
    codes: collections.Counter[str] = collections.Counter()

    async def one() -> None:
        try:
            await client.device.GetDevice(pb.GetDeviceRequest(name="eth0"), timeout=60)
        except grpc.aio.AioRpcError as exc:
            codes[exc.code().name] += 1
        else:
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one() for _ in range(calls)))
    latencies.sort()

    def pct(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))] * 1000, 1) if latencies else None

    return {"calls": calls, "failures": dict(codes), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


async def load(waves: Sequence[int], workers: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="xo-bench-") as d:
        sock = Path(d) / "s.sock"
        args = ["--device", "eth0"] + (["--workers", str(workers)] if workers else [])
        with server_process(sock, *args):
            client = await connect(sock)
            try:
                return [await wave(client, n) for n in waves]
            finally:
                await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run (100k packets)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--packets", type=int, default=None, help="soak packets of each kind")
    args = parser.parse_args(argv)
    count = args.packets or (100_000 if args.quick else 1_000_000)
    waves = (1000, 2000) if args.quick else (1000, 2000, 5000)
    result = {
        "workers": args.workers,
        "soak": asyncio.run(soak(count, args.workers)),
        "load": asyncio.run(load(waves, args.workers)),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    s = result["soak"]
    rss = s["rss_mib"]
    print(f"soak, {s['packets']} packets each, workers={args.workers}")
    print(
        f"  VmRSS MiB: before {rss['before']}, after malformed {rss['after_malformed']}, "
        f"after good {rss['after_good']}"
    )
    print(f"  malformed ({s['malformed_pps']} pps): {s['malformed']}")
    print(f"  good ({s['good_pps']} pps): {s['good']}")
    print("load: GetDevice calls in flight on one channel")
    for w in result["load"]:
        print(
            f"  {w['calls']:5d}: failures {w['failures'] or 0}, p50 {w['p50_ms']} ms, "
            f"p99 {w['p99_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

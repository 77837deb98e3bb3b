"""Packet floods, and the control plane beside them.

Run: ``PYTHONPATH=proto:server:client python bench/flood.py`` (``--quick`` for a short
run, ``--json`` for machine-readable output).

The server runs as a separate process on a Unix socket, once in its own process and once
with ``--workers 1``, under each of two floods of CLIENTS streams, each from its own
process: batches of about 64 MiB (1400 B packets, TX through an AES-GCM tunnel SA) pushed
as fast as the server takes them and never an answer read; and batches of 64 short ESP
packets for an SA that does not exist (every one dropped) pushed and answered as fast as
the server goes. Meanwhile a control client calls ListDevices and
GetStats in turn, one call every CONTROL_GAP seconds, and the server's VmRSS (its workers
included) is sampled every RSS_GAP seconds. Reported: RSS before, peak and at the end,
how many batches the server took in (what the flood clients got to send), and the control
calls' latency (p50, p99, max) and failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from datapath import connect, inner_packet, install
from grpc import aio
from serverproc import server_process, vm_rss

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.transport import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES

CLIENTS = 4
#: Packets per flood batch: 64 MiB of messages less room for the framing.
BATCH_PACKETS = (MAX_MESSAGE_BYTES - (1 << 20)) // 1404
CONTROL_GAP = 0.02
RSS_GAP = 0.25
METHOD = "/xfrm_offload.v1.DatapathService/PacketStream"


#: The two floods: (name, packets per batch, whether the flood clients read the answers).
FLOODS = (("64 MiB, unread", BATCH_PACKETS, False), ("64 x 120 B ESP, no SA, RX, read", 64, True))


async def flood_part(seconds: float, workers: int, flood: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xo-flood-") as d:
        sock = Path(d) / "s.sock"
        args = ["--workers", str(workers)] if workers else []
        with server_process(sock, *args) as proc:
            control = await connect(sock)
            await install(control, "eth0")
            flooders = [
                subprocess.Popen(
                    [sys.executable, __file__, "--flood-client", str(sock), flood],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(CLIENTS)
            ]
            before = vm_rss(proc.pid)
            stop = asyncio.Event()
            latencies: list[float] = []
            failures: dict[str, int] = {}
            rss: list[int] = []

            async def sample() -> None:
                while not stop.is_set():
                    rss.append(vm_rss(proc.pid))
                    await asyncio.sleep(RSS_GAP)

            async def control_calls() -> None:
                k = 0
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        if k % 2:
                            await control.get_stats()
                        else:
                            await control.list_devices()
                        latencies.append(time.perf_counter() - t0)
                    except Exception as exc:  # counted and reported, the run goes on
                        name = type(exc).__name__
                        failures[name] = failures.get(name, 0) + 1
                    k += 1
                    await asyncio.sleep(CONTROL_GAP)

            tasks = [asyncio.create_task(sample()), asyncio.create_task(control_calls())]
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*tasks)
            sent = []
            for flooder in flooders:
                flooder.terminate()  # it prints how many batches it got to send, and exits
                out, _ = flooder.communicate(timeout=30)
                sent.append(int(out.split()[-1]) if out.split() else -1)
            await asyncio.sleep(0.5)
            after = vm_rss(proc.pid)
            await control.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3

    return {
        "flood": flood,
        "workers": workers,
        "seconds": seconds,
        "batches_sent": sum(sent),
        "rss_before_mib": before / (1 << 20),
        "rss_peak_mib": max(rss) / (1 << 20),
        "rss_after_mib": after / (1 << 20),
        "rss_samples_mib": [round(r / (1 << 20)) for r in rss],
        "control_calls": len(latencies),
        "control_failures": failures,
        "control_p50_ms": pct(0.5) if latencies else None,
        "control_p99_ms": pct(0.99) if latencies else None,
        "control_max_ms": latencies[-1] * 1e3 if latencies else None,
        "control_mean_ms": statistics.mean(latencies) * 1e3 if latencies else None,
    }


async def flood_client(sock: str, flood: str) -> None:
    """One flood client (its own process): send batches until SIGTERM, reading the answers
    or not as the flood says; then print how many it sent."""
    _, count, read = next(f for f in FLOODS if f[0] == flood)
    if read:  # short ESP for an SA nobody has: every packet dropped (XfrmInNoStates)
        packet = inner_packet(1400)
        data = [packet[:9] + b"\x32" + packet[10:120]] * count
        direction = pb.PACKET_DIRECTION_RX
    else:
        data = [inner_packet(1400)] * count
        direction = pb.PACKET_DIRECTION_TX
    raw = pb.PacketStreamRequest(
        dev="eth0", direction=direction, batch=pb.PacketBatch(data=data)
    ).SerializeToString()
    del data
    sent = 0
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)

    async def batches() -> AsyncIterator[bytes]:
        nonlocal sent
        while not done.is_set():
            yield raw
            sent += 1

    async def drain(call: Any) -> None:
        async for _ in call:
            pass

    async with aio.insecure_channel(f"unix:{sock}", options=CHANNEL_OPTIONS) as ch:
        call = ch.stream_stream(METHOD, None, None)(batches())
        reader = asyncio.ensure_future(drain(call)) if read else None
        await done.wait()
        call.cancel()
        if reader is not None:
            with contextlib.suppress(BaseException):
                await reader
    print(sent, flush=True)


def report(runs: list[dict[str, Any]]) -> None:
    print(f"{CLIENTS} flood clients; control calls beside")
    head = f"{'flood':<32}{'server':<12}{'batches':>8}{'RSS before':>11}{'peak':>7}{'after':>7}"
    head += f"{'ctl calls':>10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}  failures"
    print(head)
    for r in runs:
        name = f"--workers {r['workers']}" if r["workers"] else "in-process"
        print(
            f"{r['flood']:<32}{name:<12}{r['batches_sent']:>8}{r['rss_before_mib']:>11.0f}"
            f"{r['rss_peak_mib']:>7.0f}{r['rss_after_mib']:>7.0f}{r['control_calls']:>10}"
            f"{r['control_p50_ms']:>8.1f}{r['control_p99_ms']:>8.1f}{r['control_max_ms']:>8.1f}"
            f"  {r['control_failures'] or 0}"
        )
        print(f"{'':<44}RSS over time (MiB): {r['rss_samples_mib']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--flood-client", nargs=2, metavar=("SOCK", "FLOOD"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.flood_client:
        asyncio.run(flood_client(*args.flood_client))
        return 0
    seconds = 4.0 if args.quick else 10.0
    runs = [asyncio.run(flood_part(seconds, w, f[0])) for f in FLOODS for w in (0, 1)]
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

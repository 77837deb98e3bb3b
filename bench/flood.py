"""Packet floods, and the control plane beside them.

Run: ``PYTHONPATH=proto:server:client python bench/flood.py`` (``--quick`` for a short
run, ``--json`` for machine-readable output, ``--baseline REF`` to run git REF's server
beside this tree's in the same run, ``--tcp`` for plaintext loopback TCP instead of the
Unix socket and its gate).

The server runs as a separate process, once in its own process and once with
``--workers 1``, under each of three floods of CLIENTS streams, each from its own
process:

- ``64 MiB``: requests of about 64 MiB (1400 B packets, TX through an AES-GCM tunnel
  SA, gRPC's message limit) pushed as fast as the server takes them, no answer read. A
  server whose ``--max-request`` is lower (today's default: 4 MiB) refuses each: the
  flood client opens a new stream and sends again (the refusals are counted);
- ``4 MiB``: the same with requests just under 4 MiB (what the client library sends of
  a larger batch), never read;
- ``64 x 120 B``: batches of 64 short ESP packets for an SA that does not exist (every
  one dropped) pushed and answered as fast as the server goes.

Meanwhile a control client calls ListDevices and GetStats in turn, one call every
CONTROL_GAP seconds, and the server's VmRSS (its workers included) is sampled every
RSS_GAP seconds; the clock starts once every flood client is connected. Reported: RSS
before, peak and at the end, how many requests the flood clients got to send (and how
many streams were refused), and the control calls' latency (p50, p99, max) and
failures.

How the load is generated matters on a 2-core machine: four flood clients that each
serialize and send as fast as they can keep both cores busy by themselves, so a control
call also waits for the scheduler to run its own client and the server at all.
``--nice N`` starts the flood clients under ``nice -n N``: with 19 the control client and
the server get the CPU when they need it, and the latency left is the server's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
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
from packet_shape import archive, tree_env
from serverproc import server_process, vm_rss

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.transport import CHANNEL_OPTIONS, MAX_MESSAGE_BYTES

CLIENTS = 4
#: Packets per request: 64 MiB, and 4 MiB (the default --max-request), of
#: messages less room for the framing.
BIG_PACKETS = (MAX_MESSAGE_BYTES - (1 << 20)) // 1404
LIMIT_PACKETS = ((4 << 20) - (64 << 10)) // 1404
CONTROL_GAP = 0.02
RSS_GAP = 0.25
#: How long the flood clients may take to connect.
READY_SECONDS = 60
METHOD = "/xfrm_offload.v1.DatapathService/PacketStream"


#: The floods: (name, packets per request, whether the flood clients read the answers).
FLOODS = (
    ("64 MiB, unread", BIG_PACKETS, False),
    ("4 MiB, unread", LIMIT_PACKETS, False),
    ("64 x 120 B ESP, no SA, RX, read", 64, True),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def flood_part(
    seconds: float,
    workers: int,
    flood: str,
    tcp: bool,
    tree: Path | None = None,
    server_args: Sequence[str] = (),
    nice: int = 0,
) -> dict[str, Any]:
    """One server (this tree's, or the one at ``tree``) under one flood."""
    env = tree_env(tree) if tree is not None else None
    with tempfile.TemporaryDirectory(prefix="xo-flood-") as d:
        sock = Path(d) / "s.sock"
        args = [*server_args, *(["--workers", str(workers)] if workers else [])]
        target = f"unix:{sock}"
        if tcp:  # plaintext loopback TCP: no Unix-socket gate between clients and gRPC
            target = f"127.0.0.1:{free_port()}"
            args += ["--listen", target, "--plaintext"]
        with server_process(sock, *args, env=env) as proc:
            control = await connect(sock, target)
            await install(control, "eth0")
            flooders = [
                subprocess.Popen(
                    [
                        *(["nice", "-n", str(nice)] if nice else []),
                        *[sys.executable, __file__, "--flood-client", target, flood],
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(CLIENTS)
            ]
            for flooder in flooders:  # each says "ready" once connected
                assert flooder.stdout is not None
                line = await asyncio.wait_for(
                    asyncio.to_thread(flooder.stdout.readline), READY_SECONDS
                )
                if line.strip() != "ready":
                    raise RuntimeError(f"flood client did not start: {line!r}")
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
            sent = refused = 0
            for flooder in flooders:
                flooder.terminate()  # it prints what it got to send, and exits
                out, _ = flooder.communicate(timeout=30)
                words = out.split()
                sent += int(words[-2]) if len(words) >= 2 else -1
                refused += int(words[-1]) if len(words) >= 2 else -1
            await asyncio.sleep(0.5)
            after = vm_rss(proc.pid)
            await control.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3

    return {
        "server": "this tree" if tree is None else "baseline",
        "server_args": list(server_args),
        "flood": flood,
        "transport": "tcp" if tcp else "unix",
        "flood_nice": nice,
        "workers": workers,
        "seconds": seconds,
        "requests_sent": sent,
        "streams_refused": refused,
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


async def flood_client(target: str, flood: str) -> None:
    """One flood client (its own process): send requests until SIGTERM, reading the
    answers or not as the flood says, on a new stream whenever the server ends one;
    then print how many requests it sent and how many streams were refused."""
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
    sent = refused = 0
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

    async with aio.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
        await ch.channel_ready()
        print("ready", flush=True)
        stopped = asyncio.ensure_future(done.wait())
        while not done.is_set():
            call = ch.stream_stream(METHOD, None, None)(batches())
            # Unread: the call's end (a refusal) is all there is to wait for.
            ended = asyncio.ensure_future(drain(call) if read else call.code())
            await asyncio.wait((ended, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                call.cancel()
            with contextlib.suppress(BaseException):
                await ended
            if not done.is_set():
                refused += 1
    print(sent, refused, flush=True)


def report(runs: list[dict[str, Any]]) -> None:
    nice = runs[0]["flood_nice"]
    print(f"{CLIENTS} flood clients (nice {nice}); control calls beside ({runs[0]['transport']})")
    head = f"{'flood':<32}{'server':<24}{'sent':>6}{'refused':>8}{'RSS before':>11}{'peak':>7}"
    head += f"{'after':>7}{'ctl calls':>10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}  failures"
    print(head)
    for r in runs:
        name = r["server"] + (f", --workers {r['workers']}" if r["workers"] else ", in-process")
        if r["server_args"]:
            name += " " + " ".join(r["server_args"])
        print(
            f"{r['flood']:<32}{name:<24}{r['requests_sent']:>6}{r['streams_refused']:>8}"
            f"{r['rss_before_mib']:>11.0f}{r['rss_peak_mib']:>7.0f}{r['rss_after_mib']:>7.0f}"
            f"{r['control_calls']:>10}{r['control_p50_ms']:>8.1f}{r['control_p99_ms']:>8.1f}"
            f"{r['control_max_ms']:>8.1f}  {r['control_failures'] or 0}"
        )
        print(f"{'':<56}RSS over time (MiB): {r['rss_samples_mib']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, help="per flood (default 10, --quick 4)")
    parser.add_argument(
        "--flood-client", nargs=2, metavar=("TARGET", "FLOOD"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--tcp", action="store_true", help="clients on plaintext loopback TCP, not the Unix socket"
    )
    parser.add_argument("--baseline", metavar="REF", help="also run git REF's server, first")
    parser.add_argument("--floods", default="0,1,2", help="which floods, by index (default: 0,1,2)")
    parser.add_argument("--workers", default="0,1", help="worker counts to run (default 0,1)")
    parser.add_argument(
        "--server-args", default="", help="more arguments for this tree's server, one string"
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="run the flood clients under nice -n N (default 0)"
    )
    args = parser.parse_args(argv)
    if args.flood_client:
        asyncio.run(flood_client(*args.flood_client))
        return 0
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    floods = [FLOODS[int(i)][0] for i in args.floods.split(",")]
    counts = [int(w) for w in args.workers.split(",")]
    runs = []
    with tempfile.TemporaryDirectory(prefix="xo-flood-base-") as tmp:
        trees: list[Path | None] = [archive(args.baseline, Path(tmp))] if args.baseline else []
        trees.append(None)
        for flood in floods:
            for workers in counts:
                for tree in trees:  # baseline and this tree one after the other
                    extra = args.server_args.split() if tree is None else []
                    runs.append(
                        asyncio.run(
                            flood_part(seconds, workers, flood, args.tcp, tree, extra, args.nice)
                        )
                    )
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

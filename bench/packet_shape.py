"""PacketStream's wire form and transport settings, against today's path, in one run.

Run: ``PYTHONPATH=proto:server:client python bench/packet_shape.py`` (``--quick`` for a
smoke run; ``--baseline REF`` names the git ref whose server is "today's path",
default ``main``; ``--only stream|xfrmctl|http2`` runs one part (``--stream-only`` is
``--only stream``), ``--rounds N`` sets the rounds; ``--client-ref REF`` adds REF's
xfrmctl to the xfrmctl rows, ``--xfrmctl-batch N`` this xfrmctl with ``--batch N``;
``--json`` for machine-readable output).

AES-128-GCM tunnel IPv4 packet offload TX, inner packets of 1400 B, batches of 64. Every
server is a separate process on a Unix socket; every request is serialized before a round
is timed, and answers are parsed (the client's share of the work counts). In one run,
rounds interleaved (median of ROUNDS):

- ``echo``: a bare gRPC echo (this script with ``--echo-server``): a stream-stream
  handler that sends every request's bytes back untouched, fed the same serialized
  64-packet PacketStream requests: the transport's ceiling (under this tree's HTTP/2
  settings, xfrm_offload/v1/transport.py).
- ``today``: PacketStream of the ``--baseline`` ref's server (a ``git archive`` of it in
  a temporary directory, given this tree's compiled ESP extension when its ``_esp.c`` is
  the same), ``repeated Packet`` form. The report names each server's ESP engine.
- ``packets``: this tree's server, ``repeated Packet`` form.
- ``batch``: this tree's server, the packed ``PacketBatch`` form.
- ``packets tcp``, ``batch tcp``: the same server and forms over plaintext loopback TCP
  (its second listener, ``--plaintext``), where gRPC owns the connection: the Unix
  socket's SO_PEERCRED relay costs ``batch / batch tcp``.
- ``xfrmctl``: ``xfrmctl packet tx`` of a capture of XFRMCTL_PACKETS x 1400 B, start-up
  included, as a subprocess: this tree's (PacketBatch) and the baseline's (Packet), and
  this tree's again against an "answering echo" (this script with ``--echo-server ...
  --answer``: every PacketBatch answered with its own packets, all PASS, no ESP), which
  shows what xfrmctl itself costs and how fast it goes when the server costs next to
  nothing. Each run starts with no output file (the last run's is removed untimed). The
  echo these rows are measured against carries the same 64-packet batches in the
  PacketBatch form, the form xfrmctl sends. ``--client-ref REF`` adds REF's xfrmctl
  against this tree's server and against the answering echo: the client before and after
  a change, in the same run; ``--xfrmctl-batch N`` adds this xfrmctl with ``--batch N``
  (against the same echo of 64-packet batches: what bigger messages save).
- CPU: each stream row also reports the CPU its server process spent per packet (from
  /proc, all threads) and the CPU this client process spent per packet, summed over the
  rounds (/proc counts 10 ms ticks); each xfrmctl row the CPU of the xfrmctl process and
  of its server (median over its runs). On a machine shared with other work the rates
  move with the load, the CPU per packet much less: the "CPU x today" column is today's
  server+client CPU per packet over this one's.
- ``http2``: the bare echo again under HTTP/2 and channel settings (frame size, stream
  window, BDP probe), server and client alike, against gRPC's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from datapath import inner_packet, install
from grpc import aio
from serverproc import cpu_seconds, tune_malloc

from xfrm_offload.client import Client
from xfrm_offload.client.pcap import LINKTYPE_IPV4, PcapWriter
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1.transport import CHANNEL_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
METHOD = "/xfrm_offload.v1.DatapathService/PacketStream"
SIZE, BATCH = 1400, 64
TX = pb.PACKET_DIRECTION_TX
MAX_MESSAGE = 64 << 20
ME = [sys.executable, str(Path(__file__).resolve())]
#: The HTTP/2 settings this tree's client and server use beyond the message size.
SET = list(CHANNEL_OPTIONS[2:])  # none today: see xfrm_offload/v1/transport.py
#: HTTP/2 and channel settings tried on the bare echo (server and client alike).
HTTP2: dict[str, list[tuple[str, int]]] = {
    "default": [],
    "frame 1 MiB": [("grpc.http2.max_frame_size", 1 << 20)],
    "frame 16 MiB": [("grpc.http2.max_frame_size", (1 << 24) - 1)],
    "window 8 MiB": [("grpc.http2.lookahead_bytes", 8 << 20)],
    "window 8 MiB, no BDP": [("grpc.http2.lookahead_bytes", 8 << 20), ("grpc.http2.bdp_probe", 0)],
    "no BDP": [("grpc.http2.bdp_probe", 0)],
    "frame 1 MiB + window 8 MiB": [
        ("grpc.http2.max_frame_size", 1 << 20),
        ("grpc.http2.lookahead_bytes", 8 << 20),
    ],
    "frame 1 MiB + window 2 MiB": [
        ("grpc.http2.max_frame_size", 1 << 20),
        ("grpc.http2.lookahead_bytes", 2 << 20),
    ],
    "write buffer 1 MiB": [("grpc.http2.write_buffer_size", 1 << 20)],
    "window 4 MiB, no BDP, frame 1 MiB": [
        ("grpc.http2.lookahead_bytes", 4 << 20),
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.max_frame_size", 1 << 20),
    ],
}


# -- the bare echo server ------------------------------------------------------------------


async def echo_server(sock: str, options: list[tuple[str, int]], answer: bool = False) -> None:
    """Serve PacketStream's path by sending each request's bytes back untouched, or
    (``answer``) by answering each PacketBatch with its own packets, all PASS: a server
    as cheap as one can be that xfrmctl accepts, so xfrmctl's own cost shows."""

    async def echo(requests: Any, context: Any) -> Any:
        async for raw in requests:
            yield raw

    async def answer_batches(requests: Any, context: Any) -> Any:
        async for raw in requests:
            data = pb.PacketStreamRequest.FromString(raw).batch.data
            reply = pb.PacketStreamResponse()
            reply.batch.verdict.extend([pb.VERDICT_PASS] * len(data))
            reply.batch.data.extend(data)
            yield reply.SerializeToString()

    server = aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            *options,
        ]
    )
    # No (de)serializers: raw bytes.
    handler = grpc.stream_stream_rpc_method_handler(answer_batches if answer else echo)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "xfrm_offload.v1.DatapathService", {"PacketStream": handler}
            ),
        )
    )
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    await server.wait_for_termination()


# -- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def process(cmd: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_env(root: Path) -> dict[str, str]:
    """The environment that runs the code of a source tree at ``root``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(root / p) for p in ("proto", "server", "client"))
    return env


def archive(ref: str, into: Path) -> Path:
    """The source tree of git ``ref`` under ``into``, with this tree's built ESP extension
    when ``ref`` has the same C source (a git archive has no compiled module, and a
    baseline on the Python engine would not be today's path)."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True
    ).stdout
    tar = into / "tree.tar"
    tar.write_bytes(blob)
    with tarfile.open(tar) as t:
        t.extractall(into / "tree", filter="data")
    tree = into / "tree"
    engine = Path("server/xfrm_offload/engine")
    source = tree / engine / "_esp.c"
    if source.exists() and source.read_bytes() == (ROOT / engine / "_esp.c").read_bytes():
        for built in (ROOT / engine).glob("_esp*.so"):
            shutil.copy2(built, tree / engine / built.name)
    return tree


async def wait_socket(sock: Path) -> None:
    for _ in range(400):
        if sock.exists():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{sock}: no server")


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def channel(target: Path | str, options: Sequence[tuple[str, int]] = ()) -> aio.Channel:
    return aio.insecure_channel(
        f"unix:{target}" if isinstance(target, Path) else target,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            *options,
        ],
    )


async def timed(ch: aio.Channel, requests: list[bytes], parse: str) -> float:
    """Packets/s of one stream carrying ``requests`` (raw bytes both ways); ``parse``:
    'echo' (answers are the requests), 'packets' or 'batch' (checks every verdict)."""
    call = ch.stream_stream(METHOD, None, None)(iter(requests))
    got = 0
    t0 = time.perf_counter()
    async for raw in call:
        if parse == "echo":
            got += BATCH
            continue
        reply = pb.PacketStreamResponse.FromString(raw)
        if parse == "batch":
            verdicts = reply.batch.verdict
            got += len(verdicts)
            ok = all(v == pb.VERDICT_PASS for v in verdicts)
            _ = list(reply.batch.data)
        else:
            got += len(reply.results)
            ok = all(r.verdict == pb.VERDICT_PASS for r in reply.results)
            _ = [r.data for r in reply.results]
        if not ok:
            raise RuntimeError(f"{parse}: a packet did not pass")
    elapsed = time.perf_counter() - t0
    n = len(requests) * BATCH
    if got != n:
        raise RuntimeError(f"{parse}: {got}/{n} answers")
    return n / elapsed


def requests(form: str, count: int) -> list[bytes]:
    data = [inner_packet(SIZE)] * BATCH
    if form == "batch":
        one = pb.PacketStreamRequest(dev="eth0", direction=TX, batch=pb.PacketBatch(data=data))
    else:
        one = pb.PacketStreamRequest(
            dev="eth0", direction=TX, packets=[pb.Packet(id=i, data=d) for i, d in enumerate(data)]
        )
    # Distinct objects, one serialization each, as a client would send them.
    return [one.SerializeToString() for _ in range(count // BATCH)]


async def install_on(sock: Path) -> str:
    """Install the SAs and policies on eth0; the ESP engine the server runs."""
    async with Client(f"unix:{sock}", timeout=30) as client:
        await client.wait_ready()
        await install(client, "eth0")
        return (await client.get_device("eth0")).engine or "python"


def write_capture(path: Path, count: int) -> None:
    packet = inner_packet(SIZE)
    with path.open("wb") as f:
        writer = PcapWriter(f, LINKTYPE_IPV4)
        for i in range(count):
            writer.write(packet, timestamp_ns=i * 1000)


def own_cpu() -> float:
    """User + system CPU seconds of this process, all threads."""
    t = os.times()
    return t.user + t.system


def children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def xfrmctl_rate(
    env: dict[str, str],
    sock: Path,
    capture: Path,
    out: Path,
    count: int,
    server: int,
    extra: Sequence[str] = (),
) -> tuple[float, float, float]:
    """Packets/s of one ``xfrmctl packet tx`` (``extra``: more of its options); its CPU
    and its server's, s per packet."""
    cmd = [sys.executable, "-m", "xfrm_offload.client.cli", "--server", f"unix:{sock}"]
    cmd += ["packet", "tx", "--dev", "eth0", "--in", str(capture), "--out", str(out), *extra]
    # The last run's output goes first, untimed: replacing it would make this run free
    # the page cache of a 420 MB file, whichever tree wrote it.
    out.unlink(missing_ok=True)
    k0, s0 = children_cpu(), cpu_seconds(server)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    k1, s1 = children_cpu(), cpu_seconds(server)
    if done.returncode != 0 or f"out {count}," not in done.stdout:
        raise RuntimeError(f"xfrmctl: {done.returncode} {done.stdout} {done.stderr}")
    return count / elapsed, (k1 - k0) / count, (s1 - s0) / count


# -- the run -------------------------------------------------------------------------------


async def run(
    baseline: str,
    rounds: int,
    stream_packets: int,
    xfrmctl_packets: int,
    only: str = "",
    client_ref: str = "",
    xfrmctl_batch: int = 0,
) -> dict[str, Any]:
    """The sections of the run (``only``: one of "stream", "xfrmctl", "http2");
    ``client_ref``: a git ref whose xfrmctl runs beside this tree's; ``xfrmctl_batch``:
    this xfrmctl again with ``--batch N``."""
    result: dict[str, Any] = {
        "baseline": baseline,
        "client_ref": client_ref,
        "xfrmctl_batch": xfrmctl_batch,
    }
    with tempfile.TemporaryDirectory(prefix="xo-shape-") as d:
        tmp = Path(d)
        packets_form = requests("packets", stream_packets)
        if only in ("", "stream", "xfrmctl"):
            old_tree = archive(baseline, tmp)
            server = [sys.executable, "-m", "xfrm_offload.server", "--log-level", "warning"]
            socks = {name: tmp / f"{name}.sock" for name in ("echo", "today", "now", "answer")}
            answer = [*ME, "--echo-server", str(socks["answer"]), json.dumps(SET), "--answer"]
            tcp = f"127.0.0.1:{free_port()}"
            now_cmd = [*server, "--listen", f"unix:{socks['now']}", "--listen", tcp, "--plaintext"]
            with (
                process([*ME, "--echo-server", str(socks["echo"]), json.dumps(SET)]) as echo_p,
                process(
                    [*server, "--listen", f"unix:{socks['today']}"], tree_env(old_tree)
                ) as today_p,
                process(now_cmd, tree_env(ROOT)) as now_p,
                process(answer) as answer_p,
            ):
                pids = {
                    "echo": echo_p.pid,
                    "today": today_p.pid,
                    "now": now_p.pid,
                    "answer": answer_p.pid,
                }
                for sock in socks.values():
                    await wait_socket(sock)
                result["engine"] = {
                    "today": await install_on(socks["today"]),
                    "now": await install_on(socks["now"]),
                }
                if only in ("", "stream"):
                    await stream_section(result, socks, tcp, pids, rounds, stream_packets)
                if only in ("", "xfrmctl"):
                    # Each row: whose xfrmctl, against which server, with which options.
                    trees: dict[str, tuple[Path, str, list[str]]] = {
                        "today": (old_tree, "today", []),
                        "now": (ROOT, "now", []),
                        "answer": (ROOT, "answer", []),
                    }
                    if client_ref:
                        (tmp / "client-ref").mkdir()
                        ref_tree = archive(client_ref, tmp / "client-ref")
                        trees["ref"] = (ref_tree, "now", [])
                        trees["ref answer"] = (ref_tree, "answer", [])
                    if xfrmctl_batch:
                        batch = ["--batch", str(xfrmctl_batch)]
                        trees["batch"] = (ROOT, "now", batch)
                        trees["batch answer"] = (ROOT, "answer", batch)
                    await xfrmctl_section(result, tmp, socks, pids, trees, rounds, xfrmctl_packets)
        if only in ("", "http2"):
            result["http2"] = await http2_section(tmp, packets_form, rounds)
    return result


async def stream_section(
    result: dict[str, Any],
    socks: dict[str, Path],
    tcp: str,
    pids: dict[str, int],
    rounds: int,
    stream_packets: int,
) -> None:
    packets_form = requests("packets", stream_packets)
    batch_form = requests("batch", stream_packets)
    runs: dict[str, tuple[Path | str, list[bytes], str]] = {
        "echo": (socks["echo"], packets_form, "echo"),
        "today": (socks["today"], packets_form, "packets"),
        "packets": (socks["now"], packets_form, "packets"),
        "batch": (socks["now"], batch_form, "batch"),
        "packets tcp": (tcp, packets_form, "packets"),
        "batch tcp": (tcp, batch_form, "batch"),
    }
    server_of = {"echo": "echo", "today": "today"}
    # Today's path with today's client settings; the others with this tree's.
    channels = {
        name: channel(sock, () if name == "today" else SET) for name, (sock, _, _) in runs.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    # CPU summed over all rounds: /proc counts in clock ticks (10 ms), too coarse for one
    # round.
    server_cpu = dict.fromkeys(runs, 0.0)
    client_cpu = dict.fromkeys(runs, 0.0)
    counted = dict.fromkeys(runs, 0)
    for _ in range(rounds):
        for name, (_, reqs, parse) in runs.items():
            pid = pids[server_of.get(name, "now")]
            s0, c0 = cpu_seconds(pid), own_cpu()
            rates[name].append(await timed(channels[name], reqs, parse))
            server_cpu[name] += cpu_seconds(pid) - s0
            client_cpu[name] += own_cpu() - c0
            counted[name] += len(reqs) * BATCH
    for ch in channels.values():
        await ch.close(None)
    result["stream"] = {name: statistics.median(r) for name, r in rates.items()}
    result["stream_cpu"] = {
        name: {
            "server": server_cpu[name] / counted[name],
            "client": client_cpu[name] / counted[name],
        }
        for name in runs
    }


async def xfrmctl_section(
    result: dict[str, Any],
    tmp: Path,
    socks: dict[str, Path],
    pids: dict[str, int],
    trees: dict[str, tuple[Path, str, list[str]]],
    rounds: int,
    xfrmctl_packets: int,
) -> None:
    capture, out = tmp / "in.pcap", tmp / "out.pcap"
    write_capture(capture, xfrmctl_packets)
    ctl: dict[str, list[float]] = {name: [] for name in trees}
    ctl_cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    echo_ch = channel(socks["echo"], SET)
    echo_reqs = requests("batch", xfrmctl_packets)  # what xfrmctl sends
    echo_rates = []
    for _ in range(max(1, rounds // 2)):
        echo_rates.append(await timed(echo_ch, echo_reqs, "echo"))
        for name, (root, server, extra) in trees.items():
            rate, client, server_s = xfrmctl_rate(
                tree_env(root), socks[server], capture, out, xfrmctl_packets, pids[server], extra
            )
            ctl[name].append(rate)
            ctl_cpu[name].append((client, server_s))
    await echo_ch.close(None)
    result["xfrmctl"] = {name: statistics.median(r) for name, r in ctl.items()}
    result["xfrmctl"]["echo"] = statistics.median(echo_rates)
    result["xfrmctl"]["packets"] = xfrmctl_packets
    # Each run's own ratio to the echo of its round: the figure a shared machine moves least.
    result["xfrmctl_ratio"] = {
        name: statistics.median(r / e for r, e in zip(v, echo_rates, strict=True))
        for name, v in ctl.items()
    }
    result["xfrmctl_cpu"] = {
        name: {
            "client": statistics.median(c for c, _ in v),
            "server": statistics.median(s for _, s in v),
        }
        for name, v in ctl_cpu.items()
    }


async def http2_section(tmp: Path, packets_form: list[bytes], rounds: int) -> dict[str, Any]:
    """Every variant's echo server at once, rounds interleaved: a shared machine's moments
    fall on all of them alike. Each variant's rate and its ratio to the default's in the
    same round, per round (a setting wins only if it wins every round)."""
    with contextlib.ExitStack() as servers:
        h2_channels = {}
        pids = {}
        for i, (name, options) in enumerate(HTTP2.items()):
            sock = tmp / f"h2-{i}.sock"
            proc = servers.enter_context(
                process([*ME, "--echo-server", str(sock), json.dumps(options)])
            )
            pids[name] = proc.pid
            await wait_socket(sock)
            h2_channels[name] = channel(sock, options)
        h2_rates: dict[str, list[float]] = {name: [] for name in HTTP2}
        cpu = dict.fromkeys(HTTP2, 0.0)  # server + client, summed over the rounds
        for _ in range(rounds):
            for name, ch in h2_channels.items():
                s0, c0 = cpu_seconds(pids[name]), own_cpu()
                h2_rates[name].append(await timed(ch, packets_form, "echo"))
                cpu[name] += cpu_seconds(pids[name]) - s0 + own_cpu() - c0
        for ch in h2_channels.values():
            await ch.close(None)
    default = h2_rates["default"]
    counted = rounds * len(packets_form) * BATCH
    return {
        name: {
            "rate": statistics.median(r),
            "ratios": [x / d for x, d in zip(r, default, strict=True)],
            "cpu": cpu[name] / counted,
        }
        for name, r in h2_rates.items()
    }


def row(
    label: str,
    rate: float,
    today: float,
    echo: float,
    cpu: dict[str, float] | None = None,
    cpu_today: dict[str, float] | None = None,
) -> None:
    line = f"{label:<34}{rate:>10.0f}{1e9 / rate:>9.0f}{rate / today:>9.2f}{rate / echo:>8.2f}"
    if cpu is not None and cpu_today is not None:
        mine, theirs = cpu["server"] + cpu["client"], cpu_today["server"] + cpu_today["client"]
        line += f"{cpu['server'] * 1e9:>11.0f}{cpu['client'] * 1e9:>11.0f}{theirs / mine:>12.2f}"
    print(line)


CPU_HEAD = f"{'server ns':>11}{'client ns':>11}{'CPU x today':>12}"


def report(r: dict[str, Any]) -> None:
    if "engine" in r:
        engine = r["engine"]
        print(f"ESP engine: today's server {engine['today']}, this server {engine['now']}")
    if "stream" in r:
        s = r["stream"]
        print(
            f"PacketStream, TX, AES-128-GCM tunnel, {BATCH} x {SIZE} B (baseline: {r['baseline']})"
        )
        print(f"{'path':<34}{'pkt/s':>10}{'ns/pkt':>9}{'x today':>9}{'/ echo':>8}{CPU_HEAD}")
        cpu = r["stream_cpu"]
        names = {
            "echo": "bare gRPC echo (bytes untouched)",
            "today": "today's server, Packet form",
            "packets": "this server, Packet form",
            "batch": "this server, PacketBatch form",
            "packets tcp": "  the same, Packet, over TCP",
            "batch tcp": "  the same, PacketBatch, over TCP",
        }
        for key, label in names.items():
            row(label, s[key], s["today"], s["echo"], cpu[key], cpu["today"])
        print(
            f"Unix socket / loopback TCP: Packet {s['packets'] / s['packets tcp']:.2f}, "
            f"PacketBatch {s['batch'] / s['batch tcp']:.2f}"
        )
    if "xfrmctl" in r:
        x = r["xfrmctl"]
        print(f"\nxfrmctl packet tx, {x['packets']} x {SIZE} B, start-up included")
        print(f"{'':<34}{'pkt/s':>10}{'ns/pkt':>9}{'x today':>9}{'/ echo':>8}{CPU_HEAD}")
        xc = r["xfrmctl_cpu"]
        ref = r.get("client_ref", "")
        for key, label in (
            ("echo", "bare gRPC echo, same PacketBatches"),
            ("today", "today's xfrmctl + server"),
            ("now", "this xfrmctl + server"),
            ("answer", "this xfrmctl + answering echo"),
            ("ref", f"{ref}'s xfrmctl + this server"),
            ("ref answer", f"{ref}'s xfrmctl + answering echo"),
            ("batch", f"this xfrmctl --batch {r.get('xfrmctl_batch')} + server"),
            ("batch answer", "  the same + answering echo"),
        ):
            if key in x:
                row(label, x[key], x["today"], x["echo"], xc.get(key), xc["today"])
        ratio = r["xfrmctl_ratio"]
        print(
            "per-round ratio to the echo (median): "
            f"today {ratio['today']:.2f}, this tree {ratio['now']:.2f},"
            f" this xfrmctl against the answering echo {ratio['answer']:.2f}"
        )
        if "ref" in ratio:
            print(
                f"  {ref}'s xfrmctl: against this server {ratio['ref']:.2f},"
                f" against the answering echo {ratio['ref answer']:.2f}"
            )
        if "batch" in ratio:
            print(
                f"  this xfrmctl --batch {r['xfrmctl_batch']} (the echo's batches stay"
                f" {BATCH}): against this server {ratio['batch']:.2f},"
                f" against the answering echo {ratio['batch answer']:.2f}"
            )
        print("(server ns, client ns: CPU per packet; the echo's client is this bench process)")
    if "http2" in r:
        h = r["http2"]
        print(f"\nbare echo under HTTP/2 settings ({BATCH} x {SIZE} B)")
        print(f"{'':<36}{'pkt/s':>10}{'ns/pkt':>9}{'CPU ns':>8}  x default, each round")
        for name, v in h.items():
            rate = v["rate"]
            rounds = " ".join(f"{x:.2f}" for x in v["ratios"])
            print(f"{name:<36}{rate:>10.0f}{1e9 / rate:>9.0f}{v['cpu'] * 1e9:>8.0f}  {rounds}")
        print("(CPU ns: the echo server's and this client's CPU per packet, both)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline", default="main", help="git ref of today's path")
    parser.add_argument(
        "--only", choices=["stream", "xfrmctl", "http2"], default="", help="one section"
    )
    parser.add_argument("--stream-only", action="store_true", help="--only stream")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 9, quick 2)")
    parser.add_argument(
        "--client-ref", default="", metavar="REF", help="also run REF's xfrmctl (xfrmctl rows)"
    )
    parser.add_argument(
        "--xfrmctl-batch",
        type=int,
        default=0,
        metavar="N",
        help="also run this xfrmctl with --batch N (xfrmctl rows)",
    )
    parser.add_argument(
        "--echo-server", nargs=2, metavar=("SOCK", "OPTIONS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--answer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        sock, options = args.echo_server
        asyncio.run(echo_server(sock, [tuple(o) for o in json.loads(options)], args.answer))
        return 0
    tune_malloc()
    if args.stream_only:
        args.only = "stream"
    rounds, stream_packets, xfrmctl_packets = (
        (2, 4096, 20_000) if args.quick else (9, 16384, 300_000)
    )
    result = asyncio.run(
        run(
            args.baseline,
            args.rounds or rounds,
            stream_packets,
            xfrmctl_packets,
            args.only,
            args.client_ref,
            args.xfrmctl_batch,
        )
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The packet path's throughput, from the raw AEAD call out to the full gRPC path.

Run: ``PYTHONPATH=proto:server:client python bench/datapath.py`` (``--quick`` for a smoke
run, ``--json`` for machine-readable output, ``--in-process`` for the in-process rows
alone: raw C, AESGCM and the device path, no server).

AES-128-GCM (rfc4106), packet offload, tunnel mode, IPv4 outer, inner IPv4/UDP packets of
64, 512 and 1400 bytes; TX (encapsulate) and RX (decapsulate). In one run:

- ``raw``: ``AESGCM.encrypt``/``decrypt`` on the same plaintext/ciphertext with prebuilt
  nonce and AAD, in this process: the Python limit, reference 1.0.
- ``engine``: an engine ``Device`` and its ``DevicePath.tx``/``rx`` called directly on
  batches of ENGINE_BATCH, in this process (policy lookup, flow cache, ESP, replay,
  lifetimes: everything but gRPC), on the native ESP engine when it is built.
- ``raw C``: the native extension's raw C EVP loop (``native.raw_seal``, benchmark only,
  as bench/esp.py calls it): one AES-128-GCM seal per packet over the same batches, key
  set once, the floor any engine on EVP pays. RX rounds seal the ciphertext bytes the
  engine opens (AEAD open costs what seal does). Raw, raw C and engine rounds alternate;
  each is timed in wall time and in this thread's CPU time (``time.thread_time``), and
  the CPU-time table (engine / raw C, ns per packet above it) is the one a shared machine
  leaves stable.
- ``echo``: ``DiagService.EchoStream`` of ``xfrm-offloadd`` in a SEPARATE PROCESS over a
  Unix socket, with the same packets in the same batches: the transport's own ceiling.
- ``grpc``: ``DatapathService.PacketStream`` of that server, batches of 1, 16, 64, 256;
  the server on asyncio and again with ``--uvloop`` (batches of 64 and 256).
- ``workers``: ``--workers 1`` vs ``--workers 2`` if the server has the option, two
  devices, one stream each, the requests PRE-GENERATED (every protobuf message built
  before timing) and sent by this one client process, which shares the machine's cores
  with the server's processes.
- ``layout``: the same 1 vs 2 workers WITHOUT gRPC or a client: the server's device host
  (``Nic``) built in this process and handed pre-decoded batches (engine values, as
  PacketStream hands them over), with the CPU this process (the pipes to the workers)
  and the workers spend per packet.

The client (this process) builds every request message before a round is timed; a
round is one stream carrying its packets, pipelined (requests written while responses
are read; HTTP/2 flow control bounds what is in flight). Echo and gRPC rounds alternate,
as do raw and engine rounds, so both see the same moments of a shared machine. Each
figure is the median of ROUNDS rounds. "ns above AEAD" is 1/rate - 1/raw rate: the
machine-stable cost of everything but the cipher. Gbit/s counts inner packet bytes.
RX packets are made beforehand by a peer SA in this process with increasing sequence
numbers, fresh for every round (the server's replay window sees each once).
The server's VmRSS is sampled during a sustained flood (TX, 1400 B, batches of 256).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from serverproc import children, cpu_seconds, server_process, tune_malloc, vm_rss

from xfrm_offload.client import Client
from xfrm_offload.engine import native
from xfrm_offload.engine.datapath import DevicePath, Verdict
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.types import Algorithm, Direction, Mode, SAConfig, Selector
from xfrm_offload.server import ops, packetwire
from xfrm_offload.server.clock import SystemClock
from xfrm_offload.server.config import parse_args
from xfrm_offload.server.nic import Nic
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

SIZES = (64, 512, 1400)
GRPC_BATCHES = (1, 16, 64, 256)
UVLOOP_BATCHES = (64, 256)
ENGINE_BATCH = 256
KEYMAT = bytes(range(16)) + b"\xa0\xa1\xa2\xa3"
A, B = ipaddress.IPv4Address("192.0.2.1"), ipaddress.IPv4Address("192.0.2.2")
NET_A, NET_B = ipaddress.IPv4Address("198.51.100.0"), ipaddress.IPv4Address("203.0.113.0")
OUT_SPI, IN_SPI = 0x1001, 0x2002
TX, RX = pb.PACKET_DIRECTION_TX, pb.PACKET_DIRECTION_RX


@dataclass(frozen=True)
class Plan:
    rounds: int
    engine_packets: int
    #: packets per gRPC round, by batch size (one packet per message is ~35x slower)
    grpc_packets: dict[int, int]
    flood_seconds: float
    worker_packets: int


FULL = Plan(
    rounds=5,
    engine_packets=8192,
    grpc_packets={1: 600, 16: 4096, 64: 12288, 256: 16384},
    flood_seconds=4.0,
    worker_packets=16384,
)
QUICK = Plan(
    rounds=2,
    engine_packets=1024,
    grpc_packets={1: 100, 16: 512, 64: 1024, 256: 2048},
    flood_seconds=1.0,
    worker_packets=2048,
)


# -- packets and SAs ----------------------------------------------------------------------


def inner_packet(size: int, src: str = "198.51.100.10", dst: str = "203.0.113.20") -> bytes:
    """An IPv4/UDP packet of exactly ``size`` bytes with a valid header checksum."""
    hdr = bytearray(
        bytes.fromhex("4500") + size.to_bytes(2, "big") + bytes.fromhex("00004000 40110000")
    )
    hdr += ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    hdr[10:12] = ipv4_checksum(bytes(hdr)).to_bytes(2, "big")
    udp = (4000).to_bytes(2, "big") + (5000).to_bytes(2, "big")
    udp += (size - 20).to_bytes(2, "big") + b"\x00\x00"
    return bytes(hdr) + udp + os.urandom(size - 28)


def sa_config(inbound: bool) -> SAConfig:
    """Out: A -> B, NET_A -> NET_B. In: B -> A, NET_B -> NET_A (the peer's out)."""
    return SAConfig(
        daddr=A if inbound else B,
        saddr=B if inbound else A,
        spi=IN_SPI if inbound else OUT_SPI,
        mode=Mode.TUNNEL,
        reqid=2 if inbound else 1,
        replay_window=128 if inbound else 0,
        aead=Algorithm("rfc4106(gcm(aes))", KEYMAT, 128),
        sa_dir=Direction.IN if inbound else Direction.OUT,
    )


def engine_policy(inbound: bool) -> Policy:
    src, dst = (NET_B, NET_A) if inbound else (NET_A, NET_B)
    return Policy(
        sel=Selector(saddr=src, prefixlen_s=24, daddr=dst, prefixlen_d=24),
        dir=Direction.IN if inbound else Direction.OUT,
        templates=(
            Template(
                daddr=A if inbound else B,
                saddr=B if inbound else A,
                reqid=2 if inbound else 1,
                mode=Mode.TUNNEL,
            ),
        ),
    )


def peer_sender() -> SecurityAssociation:
    """The far end's outbound SA: makes the ESP packets the RX paths receive."""
    return SecurityAssociation(sa_config(inbound=True), 0.0)


def make_esp(sender: SecurityAssociation, plain: bytes, count: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < count:
        n = min(256, count - len(out))
        out.extend(p for p in sender.encap_batch([plain] * n, 1.0) if isinstance(p, bytes))
    return out


def pb_sa(dev: str, inbound: bool) -> xpb.XfrmUsersaInfo:
    c = sa_config(inbound)
    src, dst = (NET_B, NET_A) if inbound else (NET_A, NET_B)
    return xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr=str(c.daddr), spi=c.spi, proto=50),
        saddr=str(c.saddr),
        reqid=c.reqid,
        mode=xpb.XFRM_MODE_TUNNEL,
        replay_window=c.replay_window,
        aead=xpb.XfrmAlgoAead(alg_name="rfc4106(gcm(aes))", alg_key=KEYMAT, alg_icv_len=128),
        sel=xpb.XfrmSelector(saddr=str(src), prefixlen_s=24, daddr=str(dst), prefixlen_d=24),
        dir=xpb.SA_DIR_IN if inbound else xpb.SA_DIR_OUT,
        offload=xpb.XfrmUserOffload(
            dev=dev, flags=xpb.OFFLOAD_FLAG_PACKET | (xpb.OFFLOAD_FLAG_INBOUND if inbound else 0)
        ),
    )


def pb_policy(dev: str, inbound: bool) -> xpb.XfrmUserpolicyInfo:
    p = engine_policy(inbound)
    t = p.templates[0]
    return xpb.XfrmUserpolicyInfo(
        sel=xpb.XfrmSelector(
            saddr=str(p.sel.saddr), prefixlen_s=24, daddr=str(p.sel.daddr), prefixlen_d=24
        ),
        dir=xpb.POLICY_DIR_IN if inbound else xpb.POLICY_DIR_OUT,
        tmpl=[
            xpb.XfrmUserTmpl(
                id=xpb.XfrmId(daddr=str(t.daddr), proto=50),
                saddr=str(t.saddr),
                reqid=t.reqid,
                mode=xpb.XFRM_MODE_TUNNEL,
            )
        ],
        offload=xpb.XfrmUserOffload(dev=dev, flags=xpb.OFFLOAD_FLAG_PACKET),
    )


# -- in-process: raw AEAD and the engine -----------------------------------------------------


def median_rates(runs: list[Callable[[], int]], rounds: int) -> list[float]:
    """Packets/s of each run (returning its packet count), rounds alternating; medians."""
    return median_rates_cpu(runs, rounds)[0]


def median_rates_cpu(runs: list[Callable[[], int]], rounds: int) -> tuple[list[float], list[float]]:
    """Like ``median_rates``: the wall-time rates, and the rates in this thread's CPU time
    (what a loop descheduled on a shared machine is not charged for)."""
    rates: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, out, out_cpu in zip(runs, rates, cpu, strict=True):
            t0, c0 = time.perf_counter(), time.thread_time()
            n = run()
            c1, t1 = time.thread_time(), time.perf_counter()
            out.append(n / (t1 - t0))
            out_cpu.append(n / max(c1 - c0, 1e-9))
    return [statistics.median(r) for r in rates], [statistics.median(r) for r in cpu]


def in_process(size: int, plan: Plan) -> dict[str, float]:
    plain = inner_packet(size)
    total = plan.engine_packets
    aead = AESGCM(KEYMAT[:16])
    nonce, aad = KEYMAT[16:] + bytes(8), bytes(8)
    pad = (-(size + 2)) % 4
    trailer_plain = plain + bytes(range(1, pad + 1)) + bytes([pad, 4])

    def raw_encrypt() -> int:
        enc = aead.encrypt
        for _ in range(total):
            enc(nonce, trailer_plain, aad)
        return total

    raw_key = KEYMAT[:16]

    device = Device("eth0", 2, PROFILES["full"])
    for inbound in (False, True):
        flags = XFRM_OFFLOAD_PACKET | (XFRM_OFFLOAD_INBOUND if inbound else 0)
        assert device.state_add(sa_config(inbound), flags, 0.0).offloaded
        device.policy_add(engine_policy(inbound), XFRM_OFFLOAD_PACKET)
    path = DevicePath(device)
    tx_batch = [plain] * ENGINE_BATCH
    batches = total // ENGINE_BATCH

    def engine_tx() -> int:
        tx = path.tx
        for _ in range(batches):
            out = tx(tx_batch, 1.0)
        assert out.verdict[-1] == Verdict.PASS
        device.pop_events()
        return batches * ENGINE_BATCH

    def raw_c_tx() -> int:
        seal = native.raw_seal
        for _ in range(batches):
            seal("aes-128-gcm", raw_key, tx_batch)
        return batches * ENGINE_BATCH

    r: dict[str, float] = {}
    wall, cpu = median_rates_cpu([raw_encrypt, raw_c_tx, engine_tx], plan.rounds)
    r["raw_tx"], r["c_tx"], r["engine_tx"] = wall
    r["cpu_raw_tx"], r["cpu_c_tx"], r["cpu_engine_tx"] = cpu

    reply = inner_packet(size, "203.0.113.20", "198.51.100.10")
    esp = make_esp(peer_sender(), reply, batches * ENGINE_BATCH * plan.rounds)
    prebuilt = [(KEYMAT[16:] + p[28:36], p[36:], p[20:28]) for p in esp[: batches * ENGINE_BATCH]]
    rounds = iter(range(plan.rounds))

    def raw_decrypt() -> int:
        dec = aead.decrypt
        for n, c, a in prebuilt:
            dec(n, c, a)
        return len(prebuilt)

    def engine_rx() -> int:
        k = next(rounds) * batches * ENGINE_BATCH
        rx = path.rx
        for b in range(batches):
            out = rx(esp[k + b * ENGINE_BATCH : k + (b + 1) * ENGINE_BATCH], 1.0)
        assert out.verdict[-1] == Verdict.PASS and out.data[-1] == reply, out.outcomes()[-1]
        device.pop_events()
        return batches * ENGINE_BATCH

    # The bytes the engine opens (ciphertext without the ICV), per batch, made untimed.
    sealed = [
        [c[:-16] for _, c, _ in prebuilt[s : s + ENGINE_BATCH]]
        for s in range(0, len(prebuilt), ENGINE_BATCH)
    ]

    def raw_c_rx() -> int:
        seal = native.raw_seal
        for b in sealed:
            seal("aes-128-gcm", raw_key, b)
        return len(prebuilt)

    wall, cpu = median_rates_cpu([raw_decrypt, raw_c_rx, engine_rx], plan.rounds)
    r["raw_rx"], r["c_rx"], r["engine_rx"] = wall
    r["cpu_raw_rx"], r["cpu_c_rx"], r["cpu_engine_rx"] = cpu
    return r


# -- the server process ---------------------------------------------------------------------


async def connect(sock: Path) -> Client:
    deadline = time.monotonic() + 20
    while not sock.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.05)
    client = Client(f"unix:{sock}", timeout=30)
    await client.wait_ready()
    return client


async def install(client: Client, dev: str) -> None:
    for inbound in (False, True):
        assert (await client.state_add(pb_sa(dev, inbound))).offloaded
        await client.policy_add(pb_policy(dev, inbound))


# -- streams ------------------------------------------------------------------------------


def packet_requests(
    dev: str, direction: int, data: Sequence[bytes], batch: int
) -> list[pb.PacketStreamRequest]:
    return [
        pb.PacketStreamRequest(
            dev=dev,
            direction=direction,  # type: ignore[arg-type]
            packets=[pb.Packet(id=i, data=data[i]) for i in range(s, min(s + batch, len(data)))],
        )
        for s in range(0, len(data), batch)
    ]


def echo_requests(data: Sequence[bytes], batch: int) -> list[pb.EchoStreamRequest]:
    return [pb.EchoStreamRequest(packets=data[s : s + batch]) for s in range(0, len(data), batch)]


async def timed_packet_stream(client: Client, requests: list[pb.PacketStreamRequest]) -> float:
    """Packets/s of one PacketStream carrying ``requests``; checks the last batch passed."""
    n = sum(len(r.packets) for r in requests)
    got = 0
    last: Any = None
    t0 = time.perf_counter()
    async for reply in client.datapath.PacketStream(iter(requests)):
        got += len(reply.results)
        last = reply
    elapsed = time.perf_counter() - t0
    if got != n or last is None or any(r.verdict != pb.VERDICT_PASS for r in last.results):
        raise RuntimeError(f"PacketStream: {got}/{n} results, last {last.results[-1]}")
    return n / elapsed


async def timed_echo(client: Client, requests: list[pb.EchoStreamRequest]) -> float:
    n = sum(len(r.packets) for r in requests)
    got = 0
    t0 = time.perf_counter()
    async for reply in client.diag.EchoStream(iter(requests)):
        got += len(reply.packets)
    elapsed = time.perf_counter() - t0
    if got != n:
        raise RuntimeError(f"EchoStream: {got}/{n}")
    return n / elapsed


async def grpc_part(plan: Plan, uvloop: bool, batches: Sequence[int]) -> dict[str, Any]:
    """Echo vs PacketStream, per size, direction and batch size, one server process."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xo-bench-") as d:
        sock = Path(d) / "s.sock"
        with server_process(sock, *(["--uvloop"] if uvloop else [])):
            client = await connect(sock)
            try:
                await install(client, "eth0")
                sender = peer_sender()
                for size in SIZES:
                    plain = inner_packet(size)
                    reply = inner_packet(size, "203.0.113.20", "198.51.100.10")
                    for direction, name in ((TX, "tx"), (RX, "rx")):
                        for batch in batches:
                            count = plan.grpc_packets[batch]
                            echo_rates, grpc_rates = [], []
                            for _ in range(plan.rounds):
                                if direction == TX:
                                    data = [plain] * count
                                else:  # fresh sequence numbers every round, made untimed
                                    data = make_esp(sender, reply, count)
                                echo = echo_requests(data, batch)
                                reqs = packet_requests("eth0", direction, data, batch)
                                echo_rates.append(await timed_echo(client, echo))
                                grpc_rates.append(await timed_packet_stream(client, reqs))
                            out[f"{size}/{name}/{batch}"] = {
                                "echo": statistics.median(echo_rates),
                                "grpc": statistics.median(grpc_rates),
                            }
                stats = await client.get_stats("eth0")
                drops = {c.name: c.value for c in stats.total if c.value}
                if drops:
                    raise RuntimeError(f"the server dropped packets: {drops}")
            finally:
                await client.close()
    return out


async def flood_part(plan: Plan) -> dict[str, Any]:
    """Server VmRSS during a sustained TX flood at 1400 B, batches of 256 (reading replies)."""
    with tempfile.TemporaryDirectory(prefix="xo-bench-") as d:
        sock = Path(d) / "s.sock"
        with server_process(sock) as proc:
            client = await connect(sock)
            try:
                await install(client, "eth0")
                reqs = packet_requests("eth0", TX, [inner_packet(1400)] * 256, 256)
                before = vm_rss(proc.pid)
                samples: list[int] = []
                sent = 0
                stop = time.monotonic() + plan.flood_seconds

                def requests() -> Iterator[pb.PacketStreamRequest]:
                    nonlocal sent
                    while time.monotonic() < stop and sent < 100_000:  # bounded both ways
                        sent += 1
                        yield reqs[0]

                async def sample() -> None:
                    while time.monotonic() < stop:
                        samples.append(vm_rss(proc.pid))
                        await asyncio.sleep(0.1)

                sampler = asyncio.create_task(sample())
                t0 = time.perf_counter()
                got = 0
                async for reply in client.datapath.PacketStream(requests()):
                    got += len(reply.results)
                elapsed = time.perf_counter() - t0
                await sampler
                after = vm_rss(proc.pid)
            finally:
                await client.close()
    return {
        "seconds": elapsed,
        "packets": got,
        "pps": got / elapsed,
        "rss_before": before,
        "rss_peak": max(samples, default=after),
        "rss_after": after,
    }


async def workers_part(plan: Plan) -> dict[str, Any]:
    """1 vs 2 workers: two devices, one TX stream each, requests all built beforehand."""
    res: dict[str, Any] = {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory(prefix="xo-bench-") as d:
            sock = Path(d) / "s.sock"
            args = ["--workers", str(n), "--device", "eth0", "--device", "eth1"]
            with server_process(sock, *args):
                client = await connect(sock)
                try:
                    for dev in ("eth0", "eth1"):
                        await install(client, dev)
                    plain = [inner_packet(1400)] * plan.worker_packets
                    load = {dev: packet_requests(dev, TX, plain, 64) for dev in ("eth0", "eth1")}
                    rates = []
                    for _ in range(plan.rounds):
                        t0 = time.perf_counter()
                        await asyncio.gather(
                            *(timed_packet_stream(client, reqs) for reqs in load.values())
                        )
                        rates.append(2 * plan.worker_packets / (time.perf_counter() - t0))
                    res[str(n)] = statistics.median(rates)
                finally:
                    await client.close()
    return res


async def layout_part(plan: Plan) -> dict[str, Any]:
    """1 vs 2 worker processes WITHOUT gRPC: the server's device host (``Nic`` with
    ``--workers N``) built in this process and handed the same pre-decoded TX batches a
    PacketStream would forward (``ops.packets``), every batch of a round submitted at
    once. What the 2-core machine is left to measure is the worker layout itself: this
    process only pickles batches into the pipes and reads the answers, the workers
    encapsulate."""
    res: dict[str, Any] = {}
    devs = ("eth0", "eth1")
    plain = [inner_packet(1400)] * plan.worker_packets
    load = {
        dev: [packetwire.decode(r.SerializeToString()) for r in packet_requests(dev, TX, plain, 64)]
        for dev in devs
    }
    for n in (1, 2):
        args = ["--workers", str(n), *(a for dev in devs for a in ("--device", dev))]
        nic = Nic(parse_args(args), SystemClock())
        await nic.start()
        try:
            now = nic.clock.now()
            for dev in devs:
                for inbound in (False, True):
                    await nic.call(dev, ops.state_add, pb_sa(dev, inbound), now)
                    await nic.call(dev, ops.policy_add, pb_policy(dev, inbound), now)
            rates, main_cores, worker_cores = [], [], []
            workers = children(os.getpid())
            for _ in range(plan.rounds):
                own0, kids0 = _own_cpu(), sum(map(cpu_seconds, workers))
                t0 = time.perf_counter()
                answers = await asyncio.gather(
                    *(
                        nic.call(dev, ops.packets, TX, b.data, b.handles, b.seqs, now)
                        for dev in devs
                        for b in load[dev]
                    )
                )
                elapsed = time.perf_counter() - t0
                rates.append(len(devs) * plan.worker_packets / elapsed)
                main_cores.append((_own_cpu() - own0) / elapsed)
                worker_cores.append((sum(map(cpu_seconds, workers)) - kids0) / elapsed)
                if any(v != pb.VERDICT_PASS for v in answers[-1].verdict):
                    raise RuntimeError(f"layout: {answers[-1].outcomes()[-1]}")
            res[str(n)] = statistics.median(rates)
            res[f"{n}/main_cores"] = statistics.median(main_cores)
            res[f"{n}/worker_cores"] = statistics.median(worker_cores)
        finally:
            await nic.close()
            await nic.stop_workers()
    return res


def _own_cpu() -> float:
    """User + system CPU seconds of this process, all threads."""
    t = os.times()
    return t.user + t.system


# -- report -------------------------------------------------------------------------------


@dataclass
class Result:
    plan: dict[str, Any]
    client_loop: str
    engine: str = ""
    in_process: dict[str, dict[str, float]] = field(default_factory=dict)
    asyncio_server: dict[str, Any] = field(default_factory=dict)
    uvloop_server: dict[str, Any] = field(default_factory=dict)
    flood: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, Any] | None = None
    layout: dict[str, Any] | None = None
    seconds: float = 0.0


def ns_above(rate: float, raw: float) -> float:
    return (1 / rate - 1 / raw) * 1e9


def gbps(rate: float, size: int) -> float:
    return rate * size * 8 / 1e9


def _row(size: int, d: str, raw: float, name: str, rate: float, echo: float = 0.0) -> None:
    ratio_echo = f"{rate / echo:>6.2f}" if echo else f"{'':>6}"
    over = f"{ns_above(rate, raw):>8.0f}" if rate != raw else f"{'':>8}"
    print(
        f"{size:>5} {d:>3} {name:<22} {rate / 1e3:>8.1f} {gbps(rate, size):>7.2f} "
        f"{rate / raw:>6.2f} {ratio_echo} {over}"
    )


def print_cpu_table(r: Result) -> None:
    """The in-process rows in this thread's CPU time, against the raw C EVP loop."""
    print(f"in process, CPU time of this thread, ESP engine {r.engine}, batches of {ENGINE_BATCH}")
    head = (
        f"{'size':>5} {'dir':>3} {'raw C':>7} {'AESGCM':>7} {'engine':>7} "
        f"{'engine/C':>9} {'ns above C':>11} {'AESGCM/C':>9}"
    )
    print(head)
    print("-" * len(head))
    for size in SIZES:
        ip = r.in_process[str(size)]
        for d in ("tx", "rx"):
            c, py, eng = (ip[f"cpu_{k}_{d}"] for k in ("c", "raw", "engine"))
            print(
                f"{size:>5} {d:>3} {1e9 / c:>7.0f} {1e9 / py:>7.0f} {1e9 / eng:>7.0f} "
                f"{eng / c:>9.2f} {ns_above(eng, c):>11.0f} {py / c:>9.2f}"
            )
    print("(ns of CPU per packet; engine/C and AESGCM/C are rate ratios)\n")


def print_report(r: Result) -> None:
    print_cpu_table(r)
    print(f"AES-128-GCM tunnel IPv4, packet offload; client loop: {r.client_loop}; medians of")
    print(f"{r.plan['rounds']} rounds; server in a separate process over a Unix socket")
    head = (
        f"{'size':>5} {'dir':>3} {'path':<22} {'kpps':>8} {'Gbit/s':>7} {'/raw':>6} "
        f"{'/echo':>6} {'ns>AEAD':>8}"
    )
    print(head)
    print("-" * len(head))
    for size in SIZES:
        ip = r.in_process[str(size)]
        for d in ("tx", "rx"):
            raw = ip[f"raw_{d}"]

            row = functools.partial(_row, size, d, raw)
            row("raw AESGCM", raw)
            row("raw C EVP loop", ip[f"c_{d}"])
            row(f"engine (batch {ENGINE_BATCH})", ip[f"engine_{d}"])
            for batch in GRPC_BATCHES:
                e = r.asyncio_server[f"{size}/{d}/{batch}"]
                row(f"echo b{batch}", e["echo"])
                row(f"grpc b{batch}", e["grpc"], e["echo"])
            for batch in UVLOOP_BATCHES:
                e = r.uvloop_server[f"{size}/{d}/{batch}"]
                row(f"echo b{batch} uvloop", e["echo"])
                row(f"grpc b{batch} uvloop", e["grpc"], e["echo"])
    f = r.flood
    print(
        f"\nflood (TX 1400 B, batches of 256, {f['seconds']:.1f} s, {f['pps'] / 1e3:.0f} kpps): "
        f"server VmRSS {f['rss_before'] / 2**20:.1f} -> peak {f['rss_peak'] / 2**20:.1f} -> "
        f"{f['rss_after'] / 2**20:.1f} MiB"
    )
    if r.workers is not None:  # filled by the remote part
        w = r.workers
        print(
            f"workers (TX 1400 B, batches of 64, 2 devices x 1 stream, load pre-generated, "
            f"client shares the cores): 1: {w['1'] / 1e3:.0f} kpps, 2: {w['2'] / 1e3:.0f} kpps, "
            f"x{w['2'] / w['1']:.2f}"
        )
    if r.layout is not None:
        w = r.layout
        print(
            f"worker layout without gRPC (TX 1400 B, batches of 64, 2 devices, pre-decoded "
            f"batches from this process): 1: {w['1'] / 1e3:.0f} kpps, 2: {w['2'] / 1e3:.0f} kpps, "
            f"x{w['2'] / w['1']:.2f}"
        )
        for n in ("1", "2"):
            main, kids = w[f"{n}/main_cores"], w[f"{n}/worker_cores"]
            print(
                f"  {n} worker(s): this process {main:.2f} cores "
                f"({main / w[n] * 1e9:.0f} ns/packet in the pipes), "
                f"workers {kids:.2f} cores ({kids / w[n] * 1e9:.0f} ns/packet)"
            )
    print(f"\ntotal {r.seconds:.0f} s")


async def remote_parts(plan: Plan, result: Result) -> None:
    result.asyncio_server = await grpc_part(plan, False, GRPC_BATCHES)
    result.uvloop_server = await grpc_part(plan, True, UVLOOP_BATCHES)
    result.flood = await flood_part(plan)
    result.workers = await workers_part(plan)
    result.layout = await layout_part(plan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="only the in-process rows (raw C, AESGCM, the device path): no server",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    tune_malloc()
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio"
    if not native.available():
        print("bench/datapath.py: the native engine is not built", file=sys.stderr)
        return 1
    native.set_engine("native")  # the in-process device's SAs
    result = Result(plan=asdict(plan), client_loop=loop_name, engine=native.describe())
    for size in SIZES:
        result.in_process[str(size)] = in_process(size, plan)
    if not args.in_process:
        runner(remote_parts(plan, result))
    result.seconds = time.perf_counter() - t0
    if args.json:
        json.dump(asdict(result), sys.stdout, indent=2)
        print()
    elif args.in_process:
        print_cpu_table(result)
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

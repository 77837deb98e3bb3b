"""Control-plane figures of the emulated NIC: RPC rates against a bare echo, bulk install,
lookups as tables grow, memory per SA.

Run: ``python bench/control_plane.py`` (``--quick`` for a smoke run, ``--json`` for
machine-readable output, ``--uvloop`` to run server and client on uvloop).

- The RPC figures are taken over a Unix socket against ``xfrm-offloadd`` started as a
  SEPARATE PROCESS, so the client's load does not share the server's core (the machine
  has 2 cores: one for each). The reference is the bare unary ``Echo`` RPC of the same
  server, at the same concurrency: StateAdd/StateDelete/StateFree are given as a ratio
  to it. Server CPU per call (from /proc/PID/stat) is the machine-stable figure.
- Bulk install streams ``StateAddBulk`` messages of BULK_MESSAGE SAs; ListDevices'
  ``state_count`` must then equal the number added. Memory per SA is the server's
  VmRSS growth over that install, divided by the count.
- Lookups and tracemalloc run IN-PROCESS on an engine ``Device`` (they are engine data
  structures, no gRPC): ``Device.lookup_inbound`` with 1 versus many SAs installed, and
  the SPD lookup (``Device.spd.lookup``) of an outbound flow with 1 versus many policies.
  The inbound row has a floor: a bare dict of the same entries under the same keys, read
  the same way, which shows what the memory of this machine allows. Removal (delete +
  free of random SAs) is timed from a small table and from the full one.

Every SA is AES-GCM-128 (rfc4106), crypto offload, inbound, on the ``full`` profile, with
its own SPI and peer address. Each figure is the median of several rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import json
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverproc import cpu_seconds, server_process, vm_rss

from xfrm_offload.client import Client
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.offload_rules import (
    XFRM_OFFLOAD_INBOUND,
    XFRM_OFFLOAD_PACKET,
)
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.engine.selector import FlowKey
from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.types import (
    IPPROTO_ESP,
    Algorithm,
    Direction,
    Family,
    SAConfig,
    Selector,
)
from xfrm_offload.v1 import xfrm_pb2 as xpb

GCM = "rfc4106(gcm(aes))"
KEYMAT = bytes(range(16)) + b"\xa0\xa1\xa2\xa3"  # AES-128 key || 4-byte salt
DEV = "eth0"
LOCAL = ipaddress.IPv4Address("192.0.2.1")
#: SA number i is the tunnel to peer PEER_BASE + i with SPI SPI_BASE + i.
PEER_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
SPI_BASE = 0x10000
CONCURRENCY = 32
BULK_MESSAGE = 1000
REMOVALS = 1000  # SAs removed at random, from a table of this many and from the full one
TARGETS = {"rpc": 0.8, "bulk": 20_000.0, "inbound": 0.9, "outbound": 0.5}


@dataclass(frozen=True)
class Plan:
    rounds: int
    calls_seq: int  # calls per round, sequential
    calls_conc: int  # calls per round, CONCURRENCY in flight
    bulk: int  # SAs in the bulk install (and in the in-process inbound table)
    policies: int
    tracemalloc_sas: int
    lookups: int  # lookups per round
    lookup_rounds: int


FULL = Plan(5, 600, 1500, 100_000, 10_000, 10_000, 200_000, 7)
QUICK = Plan(2, 150, 300, 10_000, 10_000, 2_000, 50_000, 5)


# -- SAs ------------------------------------------------------------------------------


def peer(i: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(PEER_BASE + i)


def sa_pb(i: int) -> xpb.XfrmUsersaInfo:
    """SA number ``i`` as a keymanager sends it (inbound crypto offload, replay window 32)."""
    return xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr=str(LOCAL), spi=SPI_BASE + i, proto=IPPROTO_ESP),
        saddr=str(peer(i)),
        mode=xpb.XFRM_MODE_TUNNEL,
        reqid=1,
        replay_window=32,
        aead=xpb.XfrmAlgoAead(alg_name=GCM, alg_key=KEYMAT, alg_icv_len=128),
        offload=xpb.XfrmUserOffload(dev=DEV, flags=xpb.OFFLOAD_FLAG_INBOUND),
    )


def sa_config(i: int) -> SAConfig:
    """The same SA as the engine sees it."""
    from xfrm_offload.engine.types import Mode

    return SAConfig(
        daddr=LOCAL,
        saddr=peer(i),
        spi=SPI_BASE + i,
        mode=Mode.TUNNEL,
        reqid=1,
        replay_window=32,
        aead=Algorithm(GCM, KEYMAT, 128),
    )


# -- the server process ---------------------------------------------------------------


# -- RPC rates --------------------------------------------------------------------------


@dataclass
class Sample:
    rate: float  # calls/s
    server_us: float  # server CPU per call
    client_us: float  # client CPU per call


async def timed(
    pid: int, calls: Sequence[Callable[[], Awaitable[Any]]], concurrency: int
) -> Sample:
    """Run ``calls`` with ``concurrency`` of them in flight; rate and CPU per call."""
    it = iter(calls)

    async def worker() -> None:
        for call in it:  # workers share one iterator: each call runs once
            await call()

    s0, c0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    s1, c1 = cpu_seconds(pid), time.process_time()
    n = len(calls)
    return Sample(n / elapsed, (s1 - s0) / n * 1e6, (c1 - c0) / n * 1e6)


OPS = ("echo", "state_add", "state_delete", "state_free")


async def one_round(
    client: Client, pid: int, first: int, n: int, concurrency: int
) -> dict[str, Sample]:
    """Echo n times, then add n new SAs (numbers first..), delete them, free them."""
    sas = [sa_pb(first + i) for i in range(n)]
    handles: list[int] = []

    async def echo() -> None:
        await client.echo(b"")

    async def add(sa: xpb.XfrmUsersaInfo) -> None:
        reply = await client.state_add(sa)
        assert reply.offloaded, reply.not_offloaded_reason
        handles.append(reply.offload_handle)

    def adder(sa: xpb.XfrmUsersaInfo) -> Callable[[], Awaitable[None]]:
        return lambda: add(sa)

    def deleter(h: int) -> Callable[[], Awaitable[None]]:
        return lambda: client.state_delete(DEV, h)

    def freer(h: int) -> Callable[[], Awaitable[None]]:
        return lambda: client.state_free(DEV, h)

    out = {"echo": await timed(pid, [echo] * n, concurrency)}
    out["state_add"] = await timed(pid, [adder(sa) for sa in sas], concurrency)
    out["state_delete"] = await timed(pid, [deleter(h) for h in handles], concurrency)
    out["state_free"] = await timed(pid, [freer(h) for h in handles], concurrency)
    return out


async def rpc_rates(
    client: Client, pid: int, plan: Plan
) -> tuple[dict[tuple[str, int], list[Sample]], int]:
    """Interleaved rounds of echo / add / delete / free, sequential then concurrent.

    Returns the samples and the next unused SA number.
    """
    samples: dict[tuple[str, int], list[Sample]] = {}
    first = 0
    for _ in range(plan.rounds):
        for conc, n in ((1, plan.calls_seq), (CONCURRENCY, plan.calls_conc)):
            for op, sample in (await one_round(client, pid, first, n, conc)).items():
                samples.setdefault((op, conc), []).append(sample)
            first += n
    return samples, first


def median_sample(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.rate for s in samples),
        statistics.median(s.server_us for s in samples),
        statistics.median(s.client_us for s in samples),
    )


# -- bulk install -------------------------------------------------------------------------


def chunks(items: Sequence[xpb.XfrmUsersaInfo], size: int) -> Iterable[Sequence[Any]]:
    return (items[k : k + size] for k in range(0, len(items), size))


async def bulk_install(client: Client, pid: int, count: int, first: int) -> dict[str, Any]:
    sas = [sa_pb(first + i) for i in range(count)]  # built before the clock starts
    before = await client.list_devices()
    rss0 = vm_rss(pid)
    s0, t0 = cpu_seconds(pid), time.perf_counter()
    reply = await client.state_add_bulk(chunks(sas, BULK_MESSAGE))
    elapsed = time.perf_counter() - t0
    server_cpu = cpu_seconds(pid) - s0
    rss1 = vm_rss(pid)
    after = await client.list_devices()
    count_before = next(d.state_count for d in before if d.name == DEV)
    count_after = next(d.state_count for d in after if d.name == DEV)
    return {
        "sas": count,
        "message_size": BULK_MESSAGE,
        "seconds": elapsed,
        "sas_per_s": count / elapsed,
        "server_us_per_sa": server_cpu / count * 1e6,
        "added": reply.added,
        "failed": reply.failed,
        "state_count_before": count_before,
        "state_count_after": count_after,
        "state_count_ok": count_after - count_before == count and reply.added == count,
        "server_rss_before": rss0,
        "server_rss_after": rss1,
        "server_rss_per_sa": (rss1 - rss0) / count,
    }


async def rpc_part(plan: Plan, uvloop: bool, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sock = Path(tmp) / "bench.sock"
        args = ["--device", f"{DEV}:full"]
        args += ["--uvloop"] if uvloop else []
        args += ["--workers", str(workers)] if workers else []
        with server_process(sock, *args) as proc:
            async with Client(f"unix:{sock}") as client:
                for _ in range(200):  # the socket appears once the server has bound
                    if sock.exists() or proc.poll() is not None:
                        break
                    await asyncio.sleep(0.05)
                await client.wait_ready(20)
                for _ in range(200):  # warm-up: channel, code paths
                    await client.echo(b"")
                samples, first = await rpc_rates(client, proc.pid, plan)
                bulk = await bulk_install(client, proc.pid, plan.bulk, first)
                # With the table full: the lifetime poll now walks every SA.
                echo_full = await timed(proc.pid, [lambda: client.echo(b"")] * plan.calls_seq, 1)
    rates = {f"{op}/{conc}": median_sample(s).__dict__ for (op, conc), s in samples.items()}
    for conc in (1, CONCURRENCY):
        ref = rates[f"echo/{conc}"]["rate"]
        for op in OPS:
            rates[f"{op}/{conc}"]["ratio"] = rates[f"{op}/{conc}"]["rate"] / ref
    return {"rpc": rates, "bulk": bulk, "echo_seq_after_bulk": echo_full.__dict__}


# -- in-process engine lookups and memory --------------------------------------------------


def interleaved(runs: dict[str, Callable[[], None]], n: int, rounds: int) -> dict[str, float]:
    """Median rate of each run (``n`` operations each), the runs alternating round by
    round so that load from other processes on the shared cores hits them alike.

    Also ``ratio:NAME``: the median over rounds of NAME's rate over the first run's.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            rates[name].append(n / (time.perf_counter() - t0))
    first = rates[next(iter(runs))]
    out = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        out[f"ratio:{name}"] = statistics.median(x / y for x, y in zip(r, first, strict=True))
    return out


def fill(device: Device, start: int, stop: int) -> None:
    for i in range(start, stop):
        device.state_add(sa_config(i), XFRM_OFFLOAD_INBOUND, 0.0)
        device.pop_events()  # the server hands them to the event hub at once


def remove_each(device: Device, handles: list[int]) -> float:
    """state_delete + state_free of each handle: microseconds per SA."""
    t0 = time.perf_counter()
    for h in handles:
        device.state_delete(h)
        device.state_free(h)
        device.pop_events()
    return (time.perf_counter() - t0) / len(handles) * 1e6


def inbound_lookup(plan: Plan) -> dict[str, Any]:
    """lookup_inbound on a Device with 1 SA and on one with plan.bulk SAs."""
    n = plan.lookups
    sample = 4096
    small = Device(DEV, 2, PROFILES["full"])
    fill(small, 0, 1)
    big = Device(DEV, 2, PROFILES["full"])
    gc.collect()
    rss0 = vm_rss(os.getpid())
    t0 = time.perf_counter()
    fill(big, 0, plan.bulk)
    fill_s = time.perf_counter() - t0
    rss1 = vm_rss(os.getpid())

    def run_keys(
        device: Device, keys: list[tuple[ipaddress.IPv4Address, int, int]]
    ) -> Callable[[], None]:
        reps = n // len(keys)
        look = device.lookup_inbound
        assert all(look(*k) is not None for k in keys)

        def run() -> None:
            for _ in range(reps):
                for daddr, spi, proto in keys:
                    look(daddr, spi, proto)

        return run

    def run_plain(
        device: Device, keys: list[tuple[ipaddress.IPv4Address, int, int]]
    ) -> Callable[[], None]:
        """The floor: a bare dict holding the same entries under the SAD's key, looked
        up the way the SAD does, with no layers around it."""
        reps = n // len(keys)
        table = {(s.config.daddr.packed, s.config.spi, s.config.proto): s for s in device.states()}
        get = table.get

        def run() -> None:
            for _ in range(reps):
                for daddr, spi, proto in keys:
                    get((daddr.packed, spi, proto))

        return run

    # The 1-SA case walks ``sample`` distinct key objects of equal value, so every
    # case walks a list of distinct tuples and the difference is the table alone.
    one = [(LOCAL, int(str(SPI_BASE)), int(str(IPPROTO_ESP))) for _ in range(sample)]
    rng = random.Random(4303)
    spread = [(LOCAL, SPI_BASE + rng.randrange(plan.bulk), IPPROTO_ESP) for _ in range(sample)]
    r = interleaved(
        {
            "one": run_keys(small, one),
            "same": run_keys(big, one),
            "spread": run_keys(big, spread),
            "plain_one": run_plain(small, one),
            "plain_spread": run_plain(big, spread),
        },
        n,
        plan.lookup_rounds,
    )
    # Removal must not scan the table either: every one of these inbound SAs shares
    # its (reqid, daddr), the key of the outbound index.
    few = Device(DEV, 2, PROFILES["full"])
    fill(few, 0, REMOVALS)
    removal_us = {
        name: remove_each(device, rng.sample([s.handle for s in device.states()], REMOVALS))
        for name, device in (("few", few), ("many", big))
    }
    return {
        "sas": plan.bulk,
        "rate_1": r["one"],
        "rate_many_same_key": r["same"],
        "rate_many_random_keys": r["spread"],
        "ratio": r["ratio:spread"],
        "ratio_same_key": r["ratio:same"],
        "plain_dict_ratio": r["ratio:plain_spread"] / r["ratio:plain_one"],
        "removals": REMOVALS,
        "remove_us_few": removal_us["few"],
        "remove_us_many": removal_us["many"],
        "fill_seconds": fill_s,
        "engine_state_add_us": fill_s / plan.bulk * 1e6,
        "process_rss_per_sa": (rss1 - rss0) / plan.bulk,
    }


def policy(i: int, prefixlen: int = 32) -> Policy:
    """An outbound packet-offload policy: UDP to peer i (masked to ``prefixlen``)."""
    return Policy(
        sel=Selector(daddr=peer(i), prefixlen_d=prefixlen, saddr=LOCAL, prefixlen_s=32, proto=17),
        dir=Direction.OUT,
        templates=(Template(daddr=peer(i), saddr=LOCAL, reqid=i + 1),),
    )


def flow(i: int) -> FlowKey:
    return FlowKey(Family.INET, int(LOCAL), PEER_BASE + i, 17, 4500, 5000, 0)


def outbound_lookup(plan: Plan) -> dict[str, Any]:
    """Device.spd.lookup of a flow with 1 policy, then with plan.policies.

    Also a harder table: the same number of policies spread over 25 destination prefix
    lengths (/8 to /32), so the lookup has 25 (prefixlen_d, prefixlen_s) buckets to probe.
    """
    n = plan.lookups
    sample = 4096

    def runner(device: Device, flows: list[FlowKey]) -> Callable[[], None]:
        reps = n // len(flows)
        look = device.spd.lookup
        out = Direction.OUT
        assert all(look(out, f) is not None for f in flows)

        def run() -> None:
            for _ in range(reps):
                for f in flows:
                    look(out, f)

        return run

    one = Device(DEV, 2, PROFILES["full"])
    one.policy_add(policy(0), XFRM_OFFLOAD_PACKET)
    many = Device(DEV, 2, PROFILES["full"])
    for i in range(plan.policies):
        many.policy_add(policy(i), XFRM_OFFLOAD_PACKET)
    rng = random.Random(4301)
    flows = [flow(rng.randrange(plan.policies)) for _ in range(sample)]

    # Prefix lengths /8../32: policy i covers peer(i) masked; distinct masked
    # destinations are kept distinct by spreading i over the whole 10/8 range.
    mixed = Device(DEV, 2, PROFILES["full"])
    stride = (1 << 24) // plan.policies
    added: list[int] = []
    for k in range(plan.policies):
        i = k * stride
        with contextlib.suppress(Exception):  # two /8s of the same net: one is enough
            mixed.policy_add(policy(i, 8 + k % 25), XFRM_OFFLOAD_PACKET)
            added.append(i)
    mixed_flows = [flow(added[rng.randrange(len(added))]) for _ in range(sample)]
    r = interleaved(
        {
            "one": runner(one, [flow(0) for _ in range(sample)]),
            "many": runner(many, flows),
            "mixed": runner(mixed, mixed_flows),
        },
        n,
        plan.lookup_rounds,
    )
    return {
        "policies": plan.policies,
        "rate_1": r["one"],
        "rate_many": r["many"],
        "ratio": r["ratio:many"],
        "mixed_prefix_policies": len(mixed.spd),
        "rate_mixed_prefixes": r["mixed"],
        "ratio_mixed_prefixes": r["ratio:mixed"],
    }


def traced_memory(plan: Plan) -> dict[str, Any]:
    """Python-heap bytes per SA on an engine Device (tracemalloc: OpenSSL's own cipher
    contexts are allocated outside Python's allocator and are not counted here)."""
    device = Device(DEV, 2, PROFILES["full"])
    fill(device, 0, 1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(device, 1, plan.tracemalloc_sas + 1)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"sas": plan.tracemalloc_sas, "bytes_per_sa": (after - before) / plan.tracemalloc_sas}


# -- output ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_report(r: dict[str, Any]) -> None:
    loop = "uvloop" if r["uvloop"] else "asyncio"
    print(
        f"xfrm-offloadd in a separate process ({loop}), Unix socket; "
        f"client in this process. {os.cpu_count()} cores. Median of {r['plan']['rounds']} rounds."
    )
    print("\nUnary RPCs: calls/s, ratio to Echo at the same concurrency (target >= 0.8)")
    head = (
        f"{'rpc':<13} {'in flight':>9} {'calls/s':>9} {'ratio':>6} "
        f"{'server us/call':>15} {'client us/call':>15}  target"
    )
    print(head)
    print("-" * len(head))
    for conc in (1, CONCURRENCY):
        for op in OPS:
            s = r["rpc"][f"{op}/{conc}"]
            mark = "ref" if op == "echo" else verdict(s["ratio"] >= TARGETS["rpc"])
            print(
                f"{op:<13} {conc:>9} {s['rate']:>9.0f} {s['ratio']:>6.2f} "
                f"{s['server_us']:>15.0f} {s['client_us']:>15.0f}  {mark}"
            )
    b = r["bulk"]
    print(f"\nBulk install: StateAddBulk, {b['sas']:,} SAs in messages of {b['message_size']:,}")
    print(
        f"  {b['sas_per_s']:,.0f} SAs/s ({b['seconds']:.1f} s; server CPU "
        f"{b['server_us_per_sa']:.0f} us/SA)  target >= {TARGETS['bulk']:,.0f}: "
        f"{verdict(b['sas_per_s'] >= TARGETS['bulk'])}"
    )
    print(
        f"  added={b['added']:,} failed={b['failed']:,}; ListDevices state_count "
        f"{b['state_count_before']:,} -> {b['state_count_after']:,}: "
        f"{verdict(b['state_count_ok'])}"
    )
    e = r["echo_seq_after_bulk"]
    ref = r["rpc"]["echo/1"]
    print(
        f"  Echo, sequential, with the table full: {e['rate']:,.0f} calls/s "
        f"({e['rate'] / ref['rate']:.2f} of the empty-table figure), "
        f"server {e['server_us']:.0f} us/call"
    )
    i, o = r["inbound"], r["outbound"]
    print("\nLookups, IN-PROCESS on an engine Device (engine data structures, no gRPC)")
    print(
        f"  inbound lookup_inbound: 1 SA {i['rate_1'] / 1e6:.2f} M/s; {i['sas']:,} SAs "
        f"{i['rate_many_random_keys'] / 1e6:.2f} M/s random keys "
        f"({i['rate_many_same_key'] / 1e6:.2f} M/s one key, ratio {i['ratio_same_key']:.2f}); "
        f"ratio {i['ratio']:.2f} "
        f"(target >= {TARGETS['inbound']}): {verdict(i['ratio'] >= TARGETS['inbound'])}"
    )
    print(
        f"    floor: a bare dict of the same entries, same keys: ratio {i['plain_dict_ratio']:.2f}"
    )
    print(
        f"  state_delete + state_free of {i['removals']:,} random SAs: "
        f"{i['remove_us_few']:.1f} us/SA from {i['removals']:,}, "
        f"{i['remove_us_many']:.1f} us/SA from {i['sas']:,}"
    )
    print(
        f"  outbound SPD lookup: 1 policy {o['rate_1'] / 1e6:.2f} M/s; {o['policies']:,} "
        f"policies {o['rate_many'] / 1e6:.2f} M/s; ratio {o['ratio']:.2f} "
        f"(target >= {TARGETS['outbound']}): {verdict(o['ratio'] >= TARGETS['outbound'])}"
    )
    print(
        f"  outbound, {o['mixed_prefix_policies']:,} policies over 25 prefix lengths: "
        f"{o['rate_mixed_prefixes'] / 1e6:.2f} M/s, ratio {o['ratio_mixed_prefixes']:.2f}"
    )
    m = r["tracemalloc"]
    print("\nMemory per installed SA")
    print(
        f"  server VmRSS growth over the bulk install: {b['server_rss_per_sa']:,.0f} B/SA "
        f"({b['server_rss_before'] / 2**20:.0f} -> {b['server_rss_after'] / 2**20:.0f} MiB)"
    )
    print(
        f"  in-process engine Device, {i['sas']:,} SAs: VmRSS {i['process_rss_per_sa']:,.0f} B/SA"
        f" (engine state_add {i['engine_state_add_us']:.0f} us/SA)"
    )
    print(f"  tracemalloc, {m['sas']:,} SAs: {m['bytes_per_sa']:,.0f} B/SA of Python heap")
    print(f"\ntotal {r['seconds']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--uvloop", action="store_true", help="server and client on uvloop")
    parser.add_argument(
        "--workers", type=int, default=0, help="start the server with --workers N (default 0)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    if args.uvloop:
        import uvloop

        result = uvloop.run(rpc_part(plan, True, args.workers))
    else:
        result = asyncio.run(rpc_part(plan, False, args.workers))
    result["inbound"] = inbound_lookup(plan)
    result["outbound"] = outbound_lookup(plan)
    result["tracemalloc"] = traced_memory(plan)
    result["plan"] = plan.__dict__
    result["uvloop"] = args.uvloop
    result["workers"] = args.workers
    result["server_process"] = "separate"
    result["seconds"] = time.perf_counter() - t0
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

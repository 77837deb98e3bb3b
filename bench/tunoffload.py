"""The TUN offloads' per-segment cost: this tree's C against a baseline ref's C, in one run.

Run: ``.venv/bin/python bench/tunoffload.py`` (``--baseline REF``: the git ref whose
``_tunoffload.c`` is compiled into a temporary directory with the same flags and timed
beside this tree's, default ``main``; ``--rounds N``; ``--quick`` for a smoke run).

Workloads, each timed as ns per segment (median of the rounds, the builds interleaved
in every round, so that a busy machine moves them alike):

- ``coalesce v4`` / ``coalesce v6``: ``to_host`` of a batch of 47 in-order 1,368-byte
  TCP segments of one flow (timestamps on), as the device hands a batch to its host:
  one super-packet of 64 KB.
- ``segment v4``: ``from_host`` of a 64 KB TSO super-packet cut into 1,368-byte
  segments (47 segments).

The Python reference is timed too (one call per round: it is 30-100x slower). The
figure that matters is the difference of this tree's C and the baseline's, per segment.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hatch_build import compile_native  # noqa: E402
from xfrm_offload.server import tunoffload  # noqa: E402

SOURCE = "server/xfrm_offload/server/_tunoffload.c"
MSS = 1368
#: TCP options: NOP, NOP, timestamps (what Linux sends on an established connection).
OPTIONS = b"\x01\x01\x08\x0a" + struct.pack("!II", 1000, 2000)


def super_packet(v6: bool, size: int) -> bytes:
    """A TCP super-packet of ``size`` payload bytes as a host hands it to TSO."""
    tcp = struct.pack("!HHIIBBHHH", 40000, 5201, 5000, 77, 8 << 4, 0x10, 501, 0, 0) + OPTIONS
    payload = bytes(range(256)) * (size // 256 + 1)
    l4 = tcp + payload[:size]
    if v6:
        src, dst = (
            bytes.fromhex("20010db8000a" + "00" * 9 + "01"),
            bytes.fromhex("20010db8000b" + "00" * 9 + "01"),
        )
        ip = struct.pack("!IHBB", 6 << 28, len(l4), 6, 64) + src + dst
    else:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 100, 0x4000, 64, 6, 0,
                         bytes((198, 51, 100, 1)), bytes((203, 0, 113, 1)))  # fmt: skip
    return ip + l4


def baseline_build(ref: str, out: Path) -> ModuleType:
    """``_tunoffload.c`` of git ref ``ref``, compiled and loaded beside this tree's."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:{SOURCE}"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    (out / SOURCE).parent.mkdir(parents=True)
    (out / SOURCE).write_bytes(source)
    lib = out / ("_tunoffload" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    why = compile_native(out, lib, source=Path(SOURCE), libs=())
    if why is not None:
        sys.exit(f"bench/tunoffload: cannot build {ref}'s {SOURCE}: {why}")
    spec = importlib.util.spec_from_file_location("baseline._tunoffload", lib)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.set_error(tunoffload.BadOffload)
    return module


def per_segment(call: Callable[[], object], segments: int, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / (calls * segments)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    native = tunoffload._native
    if native is None:
        print("bench/tunoffload: _tunoffload.c is not built here", file=sys.stderr)
        return 1
    rounds, calls = (3, 50) if args.quick else (args.rounds, 2000)
    batches = {
        v6: tunoffload.segment_reference(super_packet(v6, 47 * MSS), MSS) for v6 in (False, True)
    }
    tso = tunoffload.VNET_HDR.pack(1, tunoffload.GSO_TCPV4, 52, MSS, 20, 16) + super_packet(
        False, 47 * MSS
    )
    with tempfile.TemporaryDirectory(prefix="bench-tunoffload-") as tmp:
        base = baseline_build(args.baseline, Path(tmp))
        work: dict[str, tuple[int, dict[str, Callable[[], object]]]] = {}
        for v6, name in ((False, "coalesce v4"), (True, "coalesce v6")):
            batch = batches[v6]
            assert native.coalesce(batch) == tunoffload.to_host_reference(batch)
            work[name] = (len(batch), {
                "this": partial(native.coalesce, batch),
                "baseline": partial(base.coalesce, batch),
                "python": partial(tunoffload.to_host_reference, batch),
            })  # fmt: skip
        work["segment v4"] = (47, {
            "this": partial(native.from_host, tso),
            "baseline": partial(base.from_host, tso),
            "python": partial(tunoffload.from_host_reference, tso),
        })  # fmt: skip
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for name, (segments, builds) in work.items():
                for build, call in builds.items():
                    n = max(1, calls // 100) if build == "python" else calls
                    times.setdefault((name, build), []).append(per_segment(call, segments, n))
    print(f"ns per segment, median of {rounds} rounds; baseline {args.baseline}")
    print(f"{'workload':<12} {'this C':>8} {'baseline C':>11} {'this-base':>10} {'python':>9}")
    for name in work:
        this, base_ns, py = (
            statistics.median(times[name, b]) for b in ("this", "baseline", "python")
        )
        print(f"{name:<12} {this:8.1f} {base_ns:11.1f} {this - base_ns:10.1f} {py:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PacketStream's batch codec in-process: the protobuf runtime / Python against _packetwire.

Run: ``.venv/bin/python bench/packetwire.py`` (``--packets N --size B`` for the batch,
default 64 x 1400 B; ``--rounds N``). CPU time of this thread per message (median of
ROUNDS runs of LOOPS calls each), the two codecs interleaved in one run:

- decode: a serialized PacketStreamRequest (dev, direction, a PacketBatch of the
  packets) to a ``Batch``: ``packetwire.decode_runtime`` (FromString, the list of data,
  the checks) against ``packetwire.decode`` with the C decode;
- encode: the ``Results`` of the batch, every packet PASS with a 1400 B output and one
  state handle, to the serialized PacketStreamResponse: ``b"".join(packed_pieces(...))``
  against ``packetwire.encode`` with the C encode.

Then the same for one 64 MiB message (1400 B packets), once each: what a call holds the
event loop for at the largest request a server takes (``--max-request 64``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from xfrm_offload.engine.datapath import Results
from xfrm_offload.server import packetwire
from xfrm_offload.v1 import offload_pb2 as pb


def _cpu_us(call: Callable[[], object], loops: int) -> float:
    start = time.thread_time()
    for _ in range(loops):
        call()
    return (time.thread_time() - start) / loops * 1e6


def _messages(packets: int, size: int) -> tuple[bytes, packetwire.Batch, list[Results]]:
    data = [os.urandom(size) for _ in range(packets)]
    raw = pb.PacketStreamRequest(
        dev="eth0", direction=pb.PACKET_DIRECTION_TX, batch=pb.PacketBatch(data=data)
    ).SerializeToString()
    batch = packetwire.decode_runtime(raw)
    results = []
    for chunk, _, _ in batch.chunks():
        r = Results(len(chunk))
        r.data = [d + bytes(size // 20) for d in chunk]  # an ESP packet is longer
        r.handle = [7] * len(chunk)
        results.append(r)
    return raw, batch, results


def _python_encode(batch: packetwire.Batch, results: list[Results]) -> bytes:
    return b"".join(packetwire.packed_pieces(results, [packetwire.data_pieces(r) for r in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=64)
    parser.add_argument("--size", type=int, default=1400)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--loops", type=int, default=500)
    args = parser.parse_args()
    if packetwire.native is None:
        raise SystemExit("bench/packetwire.py: _packetwire is not built")
    raw, batch, results = _messages(args.packets, args.size)
    assert packetwire.decode(raw) == packetwire.decode_runtime(raw)
    assert packetwire.encode(batch, results) == _python_encode(batch, results)
    cases: dict[str, Callable[[], object]] = {
        "decode runtime": lambda: packetwire.decode_runtime(raw),
        "decode C": lambda: packetwire.decode(raw),
        "encode Python": lambda: _python_encode(batch, results),
        "encode C": lambda: packetwire.encode(batch, results),
    }
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, call in cases.items():
            runs[name].append(_cpu_us(call, args.loops))
    median = {name: statistics.median(v) for name, v in runs.items()}
    print(f"{args.packets} x {args.size} B, CPU us per message (median of {args.rounds}):")
    for kind, python, c in (
        ("decode", "decode runtime", "decode C"),
        ("encode", "encode Python", "encode C"),
    ):
        ratio = median[python] / median[c]
        print(
            f"  {kind}: {python.split()[1]} {median[python]:.1f}, C {median[c]:.1f} ({ratio:.1f}x)"
        )
    big_raw, big_batch, big_results = _messages(64 * 1024 * 1024 // (args.size + 3), args.size)
    print(f"one {len(big_raw) >> 20} MiB message ({len(big_batch.data)} packets), CPU ms:")
    for name, call in (
        ("decode runtime", lambda: packetwire.decode_runtime(big_raw)),
        ("decode C", lambda: packetwire.decode(big_raw)),
        ("encode Python", lambda: _python_encode(big_batch, big_results)),
        ("encode C", lambda: packetwire.encode(big_batch, big_results)),
    ):
        wall = time.perf_counter()
        cpu = _cpu_us(call, 1) / 1000
        print(f"  {name}: {cpu:.1f} (wall {1000 * (time.perf_counter() - wall):.1f})")


if __name__ == "__main__":
    main()

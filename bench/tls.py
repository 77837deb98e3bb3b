"""What TLS costs: StateAdd and PacketStream over mutual TLS against plaintext loopback TCP,
as ratios in one run; the Unix socket (its SO_PEERCRED relay) on the same scale.

Run: ``python bench/tls.py`` (``--quick`` for a smoke run, ``--json`` for the figures).

Three ``xfrm-offloadd`` processes, one per transport, each with one ``full`` device:
plaintext TCP on 127.0.0.1 (``--plaintext``), mutual TLS on 127.0.0.1 (certificates
made here with ``cryptography``, EC P-256, TLS 1.3), and the Unix socket. One client
connection each, opened before timing (the handshake is not in the figures). Rounds
alternate between the transports; each figure is the median over the rounds.

- StateAdd: sequential calls, and 32 in flight, each a new inbound crypto-offload SA.
- PacketStream: packet-offload TX of 1400-byte packets in batches of 64.

What the Unix socket's relay costs (the server accepts Unix connections itself to read
SO_PEERCRED and copies the bytes to gRPC's own socket): a direct connection to gRPC's
socket has no identity, so the bench measures one relay more instead, the same
``UnixGate`` run in a helper process in front of the Unix server (``unix+relay``):
``unix+relay / unix`` is about what one relay takes from ``unix``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from datapath import inner_packet, install, packet_requests, timed_packet_stream

from xfrm_offload.client import Client, TlsOptions
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' certificate maker
from tests.security.certs import make_pki

SERVER = [sys.executable, "-m", "xfrm_offload.server"]


@dataclass(frozen=True)
class Plan:
    rounds: int
    state_adds: int
    batches: int


FULL = Plan(rounds=5, state_adds=1000, batches=96)
QUICK = Plan(rounds=2, state_adds=200, batches=16)
_spis = itertools.count(0x10000)


RELAY = """
import asyncio, sys
from pathlib import Path
from xfrm_offload.server.peers import UnixGate

async def main() -> None:
    gate = UnixGate(Path(sys.argv[1]), 0o600, Path(sys.argv[2]))
    await gate.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@asynccontextmanager
async def relay(front: Path, back: Path) -> AsyncIterator[str]:
    """One more SO_PEERCRED relay, in its own process, from ``front`` to ``back``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RELAY, str(front), str(back), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 30)
    try:
        yield f"unix:{front}"
    finally:
        proc.terminate()
        await proc.wait()


@asynccontextmanager
async def server(args: list[str], audit: Path) -> AsyncIterator[str]:
    """A server process; yields the address from its "serving" line."""
    proc = await asyncio.create_subprocess_exec(
        *SERVER, *args, "--log-format", "json", "--audit-log", str(audit),
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    address = ""
    while not address:
        raw = await asyncio.wait_for(proc.stderr.readline(), 30)
        if not raw:
            raise RuntimeError(f"server {args} did not start")
        if raw.startswith(b"{"):
            line = json.loads(raw)
            if line.get("msg") == "serving":
                address = line["listen"]

    async def drain() -> None:
        assert proc.stderr is not None
        while await proc.stderr.read(65536):
            pass

    drainer = asyncio.ensure_future(drain())
    try:
        yield address
    finally:
        proc.terminate()
        await proc.wait()
        drainer.cancel()


def crypto_sa() -> xpb.XfrmUsersaInfo:
    spi = next(_spis)
    return xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr="192.0.2.1", spi=spi, proto=50),
        saddr=f"198.51.100.{spi % 250 + 1}",
        mode=xpb.XFRM_MODE_TRANSPORT,
        aead=xpb.XfrmAlgoAead(alg_name="rfc4106(gcm(aes))", alg_key=bytes(20), alg_icv_len=128),
        offload=xpb.XfrmUserOffload(dev="eth0", flags=xpb.OFFLOAD_FLAG_INBOUND),  # crypto offload
    )


async def state_adds(client: Client, count: int, in_flight: int) -> float:
    """StateAdds per second, ``in_flight`` at a time."""
    sas = [crypto_sa() for _ in range(count)]
    queue = iter(sas)

    async def worker() -> None:
        for sa in queue:
            await client.state_add(sa)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - t0)


async def measure(plan: Plan) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="xo-tls-bench-") as d:
        directory = Path(d)
        pki = make_pki(directory)
        client_cert = pki.clients["admin.test"]
        tls = TlsOptions(pki.ca.path, client_cert.cert, client_cert.key)
        setups = {
            "plaintext": (["--listen", "127.0.0.1:0", "--plaintext"], None),
            "tls": (["--listen", "127.0.0.1:0", "--tls-cert", str(pki.server.cert),
                     "--tls-key", str(pki.server.key), "--tls-client-ca", str(pki.ca.path)], tls),
            "unix": (["--listen", f"unix:{directory}/s.sock"], None),
        }  # fmt: skip
        clients: dict[str, Client] = {}
        async with (
            server(setups["plaintext"][0], directory / "a1") as plain_addr,
            server(setups["tls"][0], directory / "a2") as tls_addr,
            server(setups["unix"][0], directory / "a3") as unix_addr,
            relay(directory / "r.sock", directory / "s.sock") as relay_addr,
        ):
            for name, address in (("plaintext", plain_addr), ("tls", tls_addr),
                                  ("unix", unix_addr), ("unix+relay", relay_addr)):  # fmt: skip
                if name == "unix+relay":  # the same server as unix, one relay further
                    clients[name] = Client(address, timeout=30)
                    await clients[name].wait_ready()
                    continue
                clients[name] = Client(address, timeout=30, tls=setups[name][1])
                await clients[name].wait_ready()
                await install(clients[name], "eth0")
            data = [inner_packet(1400) for _ in range(64)] * plan.batches
            requests = packet_requests("eth0", pb.PACKET_DIRECTION_TX, data, 64)
            figures: dict[str, list[Callable[[Client], Awaitable[float]]]] = {
                "StateAdd sequential (calls/s)": [lambda c: state_adds(c, plan.state_adds, 1)],
                "StateAdd 32 in flight (calls/s)": [lambda c: state_adds(c, plan.state_adds, 32)],
                "PacketStream 1400 B x64 (packets/s)": [lambda c: timed_packet_stream(c, requests)],
            }
            rates: dict[str, dict[str, list[float]]] = {
                f: {n: [] for n in clients} for f in figures
            }
            for _ in range(plan.rounds):
                for figure, (run,) in figures.items():
                    for name, client in clients.items():
                        rates[figure][name].append(await run(client))
            for client in clients.values():
                await client.close()
    return {f: {n: statistics.median(r) for n, r in by.items()} for f, by in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(QUICK if args.quick else FULL))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'figure':38} {'plaintext':>10} {'tls':>10} {'unix':>10} {'unix+relay':>10} "
          f"{'tls/plain':>10} {'unix/plain':>10} {'relay':>8}")  # fmt: skip
    for figure, by in result.items():
        print(
            f"{figure:38} {by['plaintext']:10.0f} {by['tls']:10.0f} {by['unix']:10.0f} "
            f"{by['unix+relay']:10.0f} {by['tls'] / by['plaintext']:10.2f} "
            f"{by['unix'] / by['plaintext']:10.2f} {by['unix+relay'] / by['unix']:8.2f}"
        )


if __name__ == "__main__":
    main()

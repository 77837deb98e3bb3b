"""xfrm-offloadd as a process: arguments, the socket file, graceful shutdown on signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server

SERVER = [sys.executable, "-m", "xfrm_offload.server"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nonsense"], "expected HOST:PORT or unix:PATH"),
        (["--listen", "127.0.0.1:99999"], "port must be a number from 0 to 65535"),
        (["--listen", "::1:50051"], "needs brackets"),
        (["--listen", "unix:"], "needs a socket path"),
        (["--device", "eth0:bogus"], "unknown profile 'bogus'"),
        (["--device", "a/b"], "device name must be 1-15 characters"),
        (["--device", "averyveryverylongname"], "device name must be 1-15 characters"),
        (["--device", "eth0", "--device", "eth0:mlx5"], "eth0 given more than once"),
        (["--cable", "eth0:eth1"], "no device 'eth1'"),
        (
            ["--device", "a", "--device", "b", "--device", "c", "--cable", "a:b", "--cable", "a:c"],
            "a is in two cables",
        ),
        (["--workers", "65"], "expected a number of workers from 0 to 64"),
        (["--log-level", "loud"], "invalid choice: 'loud'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    proc = subprocess.run([*SERVER, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "usage: xfrm-offloadd" in proc.stderr


def test_unbindable_address_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = subprocess.run(
        [*SERVER, "--listen", f"unix:{blocker}/x.sock"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_streams_cleanly_and_removes_socket(
    sock_dir: Path, sig: signal.Signals
) -> None:
    sock = sock_dir / "d.sock"
    proc = await asyncio.create_subprocess_exec(
        *SERVER,
        "--listen",
        f"unix:{sock}",
        "--log-format",
        "json",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with Client(f"unix:{sock}") as client:
            for _ in range(100):
                if sock.exists():
                    break
                await asyncio.sleep(0.05)
            await client.wait_ready()
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
            # A stream open during shutdown must end with OK, not be cut.
            call = client.device.WatchEvents(pb.WatchEventsRequest())
            assert [d.name for d in await client.list_devices()] == ["eth0"]
            proc.send_signal(sig)
            events = [e async for e in call]
            assert events == []
            assert await call.code() == grpc.StatusCode.OK
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        assert not sock.exists()
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert '"msg": "serving"' in log and '"msg": "stopped"' in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_second_server_never_takes_over_a_live_socket(sock_dir: Path) -> None:
    sock = sock_dir / "live.sock"
    async with running_server(sock_dir, "--listen", f"unix:{sock}") as (_, client):
        proc = await asyncio.create_subprocess_exec(
            *SERVER, "--listen", f"unix:{sock}", stderr=asyncio.subprocess.PIPE
        )
        assert await asyncio.wait_for(proc.wait(), 30) == 1
        assert proc.stderr is not None
        assert b"another server is listening there" in await proc.stderr.read()
        assert [d.name for d in await client.list_devices()] == ["eth0"]  # still ours
    # a socket file nobody listens on is an earlier run's leftover: taken over
    leftover = sock_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(leftover))
    async with running_server(sock_dir, "--listen", f"unix:{leftover}") as (_, client):
        assert [d.name for d in await client.list_devices()] == ["eth0"]

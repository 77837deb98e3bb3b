"""xfrm-offloadd --engine: the start-up log and GetDevice say which ESP engine runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.engine import native
from xfrm_offload.engine.errors import InvalidArgument

SERVER = [sys.executable, "-m", "xfrm_offload.server"]


@pytest.mark.parametrize(
    ("flag", "env", "engine"),
    [
        (["--engine", "python"], {}, "python"),
        (["--engine", "native"], {native.ENV: "python"}, "native"),  # the flag wins
        ([], {native.ENV: "python"}, "python"),
        (["--engine", "auto", "--workers", "1"], {native.ENV: "python"}, "native"),
    ],
    ids=["python", "flag-over-env", "env", "auto-workers"],
)
async def test_engine_choice_reaches_log_and_devices(
    sock_dir: Path, flag: list[str], env: dict[str, str], engine: str
) -> None:
    if engine == "native" and not native.available():
        pytest.skip("native engine not built here")
    sock = sock_dir / "e.sock"
    proc = await asyncio.create_subprocess_exec(
        *SERVER,
        "--listen",
        f"unix:{sock}",
        "--log-format",
        "json",
        *flag,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    try:
        assert proc.stderr is not None
        first = json.loads(await asyncio.wait_for(proc.stderr.readline(), 30))
        assert first["msg"] == "engine"
        assert first["engine"].split()[0] == engine
        for _ in range(200):
            if sock.exists():
                break
            await asyncio.sleep(0.05)
        async with Client(f"unix:{sock}") as client:
            await client.wait_ready()
            assert (await client.get_device("eth0")).engine == engine
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_engine_variable_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SERVER, "--listen", f"unix:{tmp_path}/x.sock"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, native.ENV: "turbo"},
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "unknown engine 'turbo'" in proc.stderr


def test_native_refused_when_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_esp", None)
    with pytest.raises(InvalidArgument) as info:
        native.resolve("native")
    assert info.value.field == "engine"
    assert native.resolve("auto") == "python"
    with pytest.raises(InvalidArgument):
        native.resolve("fast")

"""The README's client library example, run as written against a real server, twice."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from ..conftest import running_server

README = Path(__file__).parent.parent.parent / "README.md"


def client_example() -> str:
    section = README.read_text().split("## The client library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


async def test_the_client_example_ends_and_runs_again(sock_dir: Path) -> None:
    async with running_server(sock_dir) as (_, client):
        env = {**os.environ, "XFRM_OFFLOAD_SERVER": client.address}
        for _ in range(2):  # a second run must not meet the first run's SA
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                client_example(),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert (proc.returncode, err) == (0, b"")
            lines = out.decode().splitlines()
            assert re.fullmatch(r"\d+ add_time: \d+", lines[0]), lines  # handle, curlft
            assert lines[2] == (
                "StatusCode.FAILED_PRECONDITION ref.offload_handle state"
                f" {int(lines[0].split()[0]):#x} on eth0 must be deleted before it is freed"
            )
            assert "kind: EVENT_KIND_STATE_DELETED" in out.decode()
            assert await client.list_states() == []

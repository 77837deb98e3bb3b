"""scripts/two-hosts: two machines with their NICs in one command, torn down when
interrupted. One run (about 10 s: each xfrmctl call starts a Python process)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "two-hosts"


async def test_pings_through_and_tears_down_when_interrupted() -> None:
    env = {**os.environ, "COUNT": "3", "HOLD": "60", "PREFIX": "xo-t-"}
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    lines: list[str] = []
    names: re.Match[str] | None = None
    try:
        for _ in range(500):  # bounded: the script prints a few dozen lines before holding
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, "".join(lines)
            lines.append(line)
            if "holding for" in line:
                break
        output = "".join(lines)
        assert output.count("3 packets transmitted, 3 received, 0% packet loss") == 2, output
        assert re.search(r"host tun xo0 mtu 1420 wire wire0 mtu 1500 running", output), output
        names = re.search(r"namespaces (\S+) and (\S+),", output)
        assert names is not None
        proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
        assert await asyncio.wait_for(proc.wait(), 30) == 130, output + rest
        assert "torn down" in rest, output + rest
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert names.group(1) not in listed and names.group(2) not in listed
    finally:
        if proc.returncode is None:  # its trap tears down; SIGKILL only if that hangs
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if names is not None:
            for ns in names.groups():
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

"""--listen unix:PATH: only the default socket's runtime directory is ever created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SERVER = [sys.executable, "-m", "xfrm_offload.server"]


def test_a_socket_in_a_missing_directory_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    proc = subprocess.run(
        [*SERVER, "--listen", f"unix:{missing}/s.sock"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert proc.stderr.endswith(
        f"xfrm-offloadd: error: argument --listen: unix:{missing}/s.sock: no directory {missing}\n"
    )
    assert list(tmp_path.iterdir()) == []  # not even tmp_path/no


def test_the_default_sockets_runtime_directory_is_made_private(tmp_path: Path) -> None:
    """With XDG_RUNTIME_DIR set, the default socket lives in $XDG_RUNTIME_DIR/xfrm-offload,
    made 0700 when missing. Checked through the parsed config and a real start/stop, as a
    user other than root (whose default, /run/xfrm-offload, other servers here may use)."""
    script = (
        "import asyncio, os, stat\n"
        "os.geteuid = lambda: 4242\n"
        "from xfrm_offload.server.app import OffloadServer\n"
        "from xfrm_offload.server.config import parse_args\n"
        "async def main():\n"
        "    server = OffloadServer(parse_args([]))\n"
        "    await server.start()\n"
        "    path = server.config.listen[0].unix_path\n"
        "    print(path, oct(stat.S_IMODE(os.stat(path.parent).st_mode)))\n"
        "    await server.stop(grace=0)\n"
        "asyncio.run(main())\n"
    )
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path}/xfrm-offload/xfrm-offloadd.sock 0o700\n"

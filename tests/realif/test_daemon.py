"""xfrm-offloadd with interfaces it cannot attach: exit 1 naming why, nothing left behind."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host-tun", "xo0@xo-t-none-{r}", "--wire-if", "lo"], "no network namespace"),
        (["--host-tun", "xo0", "--wire-if", "xo-t-{r}"], "wire_if xo-t-{r}: no such interface"),
    ],
)
def test_unattachable_interfaces_exit_1_without_leftovers(
    sock_dir: Path, args: list[str], message: str
) -> None:
    suffix = secrets.token_hex(3)
    sock = sock_dir / "s.sock"
    argv = [a.format(r=suffix) for a in args]
    run = subprocess.run(
        [sys.executable, "-m", "xfrm_offload.server", "--listen", f"unix:{sock}", *argv],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert message.format(r=suffix) in run.stderr and "Traceback" not in run.stderr
    assert not sock.exists()

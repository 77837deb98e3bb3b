"""scripts/apt-optional: a busy or failing apt never aborts setup (tshark is optional)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "scripts" / "apt-optional"
BUSY = "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)"


def fake_bin(folder: Path, apt_status: int) -> Path:
    """apt-get that records its calls and exits apt_status, and id -u that says root: the
    one thing a test here must not do is run the real apt-get."""
    (folder / "calls").write_text("")
    for name, body in {
        "apt-get": f'echo "$*" >> {folder}/calls\n'
        + (f'echo "{BUSY}" >&2\n' if apt_status else "")
        + f"exit {apt_status}\n",
        "id": "echo 0\n",
    }.items():
        path = folder / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    return folder


def run(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{folder}:/usr/bin:/bin", "APT_TRIES": "3", "APT_WAIT": "0"}
    return subprocess.run(
        ["bash", str(SCRIPT), "tshark"], capture_output=True, text=True, env=env, timeout=30
    )


def test_busy_apt_is_retried_then_setup_goes_on(tmp_path: Path) -> None:
    proc = run(fake_bin(tmp_path, 100))
    assert proc.returncode == 0
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["-o DPkg::Lock::Timeout=10 update -qq"] * 3  # update fails: no install
    assert proc.stderr.count("apt-get failed or is busy (try ") == 3
    assert proc.stderr.endswith(
        "scripts/apt-optional: warning: tshark not installed; what needs it is skipped"
        " (install it later with: apt-get install tshark)\n"
    )


def test_working_apt_installs_once(tmp_path: Path) -> None:
    proc = run(fake_bin(tmp_path, 0))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert (tmp_path / "calls").read_text().splitlines() == [
        "-o DPkg::Lock::Timeout=10 update -qq",
        "-o DPkg::Lock::Timeout=10 install -y -qq tshark",
    ]

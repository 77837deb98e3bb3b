"""What the benchmarks share: the server as a separate process, its memory and CPU
time read from /proc, and glibc's heap tuning.

The benchmarks run as scripts (``python bench/datapath.py``), so this folder is on the
import path and ``import serverproc`` finds this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_command() -> list[str]:
    """The server of this interpreter and PYTHONPATH (``xfrm-offloadd`` is the same code)."""
    return [sys.executable, "-m", "xfrm_offload.server"]


@contextlib.contextmanager
def server_process(
    sock: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``xfrm-offloadd --listen unix:SOCK ARGS`` for the duration (``env``: another
    tree's, bench/packet_shape.py's ``tree_env``); its log is shown only when it did not
    stop cleanly on SIGTERM."""
    cmd = [*server_command(), "--listen", f"unix:{sock}", "--log-level", "warning", *args]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (a server's workers)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def vm_rss(pid: int) -> int:
    """VmRSS of a process plus its children's, bytes."""
    total = 0
    for p in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) plus its children's."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(c) for c in children(pid))


def tune_malloc() -> bool:
    """Keep glibc from trimming the heap after every batch.

    A batch API holds its outputs (256 x 1.4 kB) until the caller takes them; with
    glibc's default 128 kB trim threshold the freed heap top goes back to the OS after
    each batch and the next batch page-faults it in again (about 0.4 us per 1.4 kB
    packet on this machine). The raw loop frees each output at once and is unaffected.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad = -1, -2
    return bool(libc.mallopt(m_trim_threshold, 64 << 20) and libc.mallopt(m_top_pad, 16 << 20))

"""Shared fixtures: a real xfrm-offloadd in-process on a temporary Unix socket; and the
Hypothesis settings every property test runs under."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args

# Hypothesis: every run has one seed, printed in the header and again after a failure
# (rerun with --hypothesis-seed=N); failing examples are kept in a database that is
# replayed first on the next run. CI keeps the database across runs by caching the
# directory XO_HYPOTHESIS_DB names (default .hypothesis/examples in the checkout, which
# git ignores). HYPOTHESIS_PROFILE=ci: no deadline (a loaded runner is slow, not wrong).
_DATABASE = DirectoryBasedExampleDatabase(
    os.environ.get("XO_HYPOTHESIS_DB", str(Path(__file__).parent.parent / ".hypothesis/examples"))
)
settings.register_profile("default", database=_DATABASE, print_blob=True)
settings.register_profile("ci", parent=settings.get_profile("default"), deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's own plugin reads the option
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = str(random.SystemRandom().randrange(1 << 32))


def _seed_line(config: pytest.Config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    return f"hypothesis seed: {seed} (rerun with --hypothesis-seed={seed})"


def pytest_report_header(config: pytest.Config) -> str:
    return _seed_line(config)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if exitstatus != 0:
        terminalreporter.write_line(_seed_line(config))


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="xo-") as d:
        yield Path(d)


@asynccontextmanager
async def running_server(sock_dir: Path, *args: str) -> AsyncIterator[tuple[OffloadServer, Client]]:
    """Start a server with xfrm-offloadd's arguments, yield it with a connected client."""
    sock = sock_dir / f"s{os.getpid()}-{len(list(sock_dir.iterdir()))}.sock"
    # XO_TEST_WORKERS=N runs every server test with the devices in N worker processes.
    workers = os.environ.get("XO_TEST_WORKERS")
    extra = ["--workers", workers] if workers and "--workers" not in args else []
    config = parse_args(["--listen", f"unix:{sock}", *args, *extra])
    server = OffloadServer(config)
    await server.start()
    client = Client(f"unix:{sock}", timeout=10)
    try:
        yield server, client
    finally:
        await client.close()
        await server.stop(grace=1)


@pytest.fixture
async def server(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    """The default server: one device eth0 with profile full."""
    async with running_server(sock_dir) as pair:
        yield pair


async def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Wait for a state the test cannot await directly (the server's or its threads'),
    polling every 10 ms; bounded: AssertionError naming ``what`` after ``seconds``."""
    for _ in range(round(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")

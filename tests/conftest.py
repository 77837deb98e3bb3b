"""Shared fixtures: a real xfrm-offloadd in-process on a temporary Unix socket."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args


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

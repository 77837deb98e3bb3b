"""Many clients at once against one server: nothing lost, nothing doubled, no crosstalk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb

from ..conftest import running_server
from .sa_builders import DEVICE_ARGS, gcm_sa

CLIENTS = 10
PER_CLIENT = 100


@pytest.fixture
async def clients(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, list[Client]]]:
    async with AsyncExitStack() as stack:
        server, first = await stack.enter_async_context(running_server(sock_dir, *DEVICE_ARGS))
        others = [Client(first.address, timeout=30) for _ in range(CLIENTS - 1)]
        for c in others:
            stack.push_async_callback(c.close)
        yield server, [first, *others]


async def test_thousand_concurrent_state_adds(
    clients: tuple[OffloadServer, list[Client]],
) -> None:
    _, nics = clients

    async def add_all(i: int, client: Client) -> list[pb.StateAddResponse]:
        spis = range(0x1000 + i * PER_CLIENT, 0x1000 + (i + 1) * PER_CLIENT)
        return await asyncio.gather(*(client.state_add(gcm_sa("eth0", spi)) for spi in spis))

    replies = await asyncio.gather(*(add_all(i, c) for i, c in enumerate(nics)))
    flat = [r for per_client in replies for r in per_client]
    assert len(flat) == CLIENTS * PER_CLIENT
    assert all(r.offloaded for r in flat)
    handles = {r.offload_handle for r in flat}
    assert len(handles) == CLIENTS * PER_CLIENT  # every handle distinct
    assert handles == {(2 << 32) | n for n in range(1, CLIENTS * PER_CLIENT + 1)}
    states = await nics[3].list_states("eth0")
    assert len(states) == CLIENTS * PER_CLIENT
    assert sorted(s.sa.id.spi for s in states) == list(range(0x1000, 0x1000 + CLIENTS * PER_CLIENT))
    assert {s.offload_handle for s in states} == handles
    assert (await nics[7].get_device("eth0")).state_count == CLIENTS * PER_CLIENT


async def test_raced_duplicates_exactly_one_wins(
    clients: tuple[OffloadServer, list[Client]],
) -> None:
    _, nics = clients
    a, b = nics[0], nics[1]

    async def attempt(client: Client, spi: int) -> pb.StateAddResponse | XfrmOffloadError:
        try:
            return await client.state_add(gcm_sa("eth0", spi))
        except XfrmOffloadError as exc:
            return exc

    spis = range(1, 201)
    results = await asyncio.gather(*(attempt(c, spi) for spi in spis for c in (a, b)))
    for spi, pair in zip(spis, zip(results[::2], results[1::2], strict=True), strict=True):
        won = [r for r in pair if isinstance(r, pb.StateAddResponse)]
        lost = [r for r in pair if isinstance(r, XfrmOffloadError)]
        assert len(won) == 1 and len(lost) == 1, spi
        assert (lost[0].code, lost[0].field) == (grpc.StatusCode.ALREADY_EXISTS, "sa.id.spi")
    states = await a.list_states("eth0")
    assert sorted(s.sa.id.spi for s in states) == list(spis)


async def test_one_clients_bad_requests_do_not_disturb_another(
    clients: tuple[OffloadServer, list[Client]],
) -> None:
    _, nics = clients
    good, bad = nics[0], nics[1]

    first_added = asyncio.Event()

    async def good_work() -> list[int]:
        handles = []
        for spi in range(1, 101):
            handles.append((await good.state_add(gcm_sa("eth0", spi))).offload_handle)
            first_added.set()
            if spi % 3 == 0:
                await good.state_delete("eth0", handles[-1])
                await good.state_free("eth0", handles[-1])
                handles.pop()
        return handles

    async def bad_work() -> list[grpc.StatusCode]:
        codes = []
        first = 2 << 32 | 1  # good's first state (spi 1, never deleted)
        calls = [
            lambda: bad.state_add(gcm_sa("eth0", 1, icv_bits=100)),
            lambda: bad.state_add(gcm_sa("eth0", 1)),  # a duplicate of good's first
            lambda: bad.state_delete("eth0", 2 << 32 | 999),
            lambda: bad.state_free("eth0", first),  # not deleted: refused
            lambda: bad.state_delete("mlx0", first),  # another device's handle
            lambda: bad.state_add(gcm_sa("nope", 5)),
            lambda: bad.state_add(gcm_sa("sim0", 7, icv_bits=96)),
        ]
        await first_added.wait()
        for _ in range(40):
            for call in calls:
                try:
                    await call()
                except XfrmOffloadError as exc:
                    codes.append(exc.code)
                else:
                    codes.append(grpc.StatusCode.OK)
        return codes

    handles, codes = await asyncio.gather(good_work(), bad_work())
    assert len(handles) == 67
    # every bad call was refused (no duplicate slipped in, nothing of good's was freed)
    assert len(codes) == 40 * 7 and grpc.StatusCode.OK not in codes
    states = await good.list_states("eth0")
    assert [s.offload_handle for s in states] == sorted(handles)
    assert sorted(s.sa.id.spi for s in states) == [s for s in range(1, 101) if s % 3]
    assert all(s.lifecycle == pb.LIFECYCLE_ACTIVE for s in states)

"""xfrmctl monitor: events from other clients, printed as ip xfrm monitor prints them."""

from __future__ import annotations

import asyncio
import io
import json
import shlex
from collections.abc import Callable
from pathlib import Path

from xfrm_offload.client import Client
from xfrm_offload.client.cli import ExitStatus, run
from xfrm_offload.client.grammar import parse
from xfrm_offload.client.render import format_policy, format_state
from xfrm_offload.server.app import OffloadServer

from ..conftest import running_server

KEY = "0x44434241343332312423222114131211f4f3f2f1"
STATE = (
    "x s add src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x100 reqid 1"
    f" aead rfc4106(gcm(aes)) {KEY} 128 {{extra}} offload packet dev eth4 dir out"
)


class Monitor:
    """`xfrmctl ... monitor ...` running as a task, as a user's second terminal would."""

    def __init__(self, server: OffloadServer, client: Client, *argv: str) -> None:
        self.server = server
        self.out, self.err = io.StringIO(), io.StringIO()
        self.task = asyncio.create_task(
            run(["--server", client.address, *argv], self.out, self.err)
        )

    async def subscribed(self) -> None:
        """Wait until the WatchEvents stream is open (one monitor at a time per test)."""
        await self._until(lambda: self.server.nic.hub.subscriber_count == 1)

    async def result(self) -> tuple[int, str, str]:
        code = await asyncio.wait_for(self.task, 5)
        # The server drops the subscription once it sees the stream cancelled.
        await self._until(lambda: self.server.nic.hub.subscriber_count == 0)
        return code, self.out.getvalue(), self.err.getvalue()

    @staticmethod
    async def _until(condition: Callable[[], bool]) -> None:
        for _ in range(500):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the server never saw the monitor's stream open or close")


async def add_state(client: Client, extra: str = "") -> None:
    sa = parse(shlex.split(STATE.format(extra=extra))).sa
    assert sa is not None
    assert (await client.state_add(sa)).offloaded


async def test_monitor_prints_a_state_added_by_another_client(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4") as (server, client):
        monitor = Monitor(server, client, "monitor", "--count", "1")
        await monitor.subscribed()
        await add_state(client)
        [state] = await client.list_states()
        assert await monitor.result() == (ExitStatus.OK, format_state(state), "")


async def test_monitor_sa_group_prints_deletions_in_full(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4", "--device", "eth5") as (server, client):
        monitor = Monitor(server, client, "x", "mon", "--count", "2", "SA", "eth4")
        await monitor.subscribed()
        await client.set_link("eth5", False)  # another device, another group: not shown
        await add_state(client)
        [state] = await client.list_states()
        await client.state_delete("eth4", state.offload_handle)
        code, out, err = await monitor.result()
        assert (code, err) == (ExitStatus.OK, "")
        assert out == format_state(state) + "Deleted " + format_state(state)


async def test_monitor_expire_and_policy_groups(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4", "--virtual-clock") as (server, client):
        monitor = Monitor(server, client, "monitor", "--count", "2", "expire", "policy")
        await monitor.subscribed()
        await add_state(client, "limit time-soft 10 time-hard 20")
        [state] = await client.list_states()
        line = "x p a src 10.0.0.1 dst 10.0.0.2 dir out offload packet dev eth4"
        policy_info = parse(shlex.split(line)).policy
        assert policy_info is not None
        await client.policy_add(policy_info)
        [policy] = await client.list_policies()
        await client.advance_clock(11)
        code, out, err = await monitor.result()
        assert (code, err) == (ExitStatus.OK, "")
        assert out == format_policy(policy) + "Expired " + format_state(state) + "\t hard 0\n"


async def test_monitor_json_and_link_events(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4") as (server, client):
        monitor = Monitor(server, client, "--json", "monitor", "--count", "3")
        await monitor.subscribed()
        await add_state(client)
        await client.set_link("eth4", False)
        code, out, err = await monitor.result()
        assert (code, err) == (ExitStatus.OK, "")
        events = [json.loads(line) for line in out.splitlines()]
        assert [e["kind"] for e in events] == [
            "EVENT_KIND_STATE_ADDED",
            "EVENT_KIND_LINK",
            "EVENT_KIND_STATE_DELETED",
        ]
        assert events[2]["object"]["reason"] == "link-down"
        # The human form of a link event.
        monitor = Monitor(server, client, "monitor", "--count", "1")
        await monitor.subscribed()
        await client.set_link("eth4", True)
        assert await monitor.result() == (ExitStatus.OK, "dev eth4 link up\n", "")


async def test_monitor_ends_with_the_server(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4") as (server, client):
        monitor = Monitor(server, client, "monitor")
        await monitor.subscribed()
        await add_state(client)
        server.nic.hub.close()  # what a server shutdown does to every event stream
        code, out, err = await monitor.result()
        assert (code, err) == (ExitStatus.OK, "")
        assert out.startswith("src 10.0.0.1 dst 10.0.0.2\n")


async def test_monitor_usage_errors(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth4") as (_, client):
        for argv, marker in (
            (["monitor", "--count", "0"], "expected a positive event count"),
            (["x", "monitor", "bogus"], "expected an event group"),
            (["monitor", "report"], "expected a group this NIC reports"),
        ):
            out, err = io.StringIO(), io.StringIO()
            code = await run(["--server", client.address, *argv], out, err)
            assert (code, out.getvalue()) == (ExitStatus.USAGE, ""), argv
            assert marker in err.getvalue(), argv

"""Local callers by uid: the Unix socket (SO_PEERCRED) and plaintext loopback TCP.

The tests run as root; the other user is a client subprocess that drops to uid and gid
65534 before it connects (after its imports: this interpreter lives under /root, which
uid 65534 cannot read). SO_PEERCRED records the credentials of connect() time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from xfrm_offload.client import Client, XfrmOffloadError
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as 65534")

#: The other user's client: ListDevices and StateAdd, each answered OK or code: message.
CHILD = f"""
import asyncio, json, os, sys
sys.path.insert(0, {str(ROOT)!r})
from xfrm_offload.client import Client, XfrmOffloadError
from tests.server.sa_builders import gcm_sa
import grpc.aio, grpc._cython.cygrpc, grpc_status.rpc_status, google.rpc.error_details_pb2

os.setgroups([])
os.setgid({NOBODY})
os.setuid({NOBODY})

async def main(address):
    out = {{"uid": os.getuid(), "gid": os.getgid()}}
    async with Client(address, timeout=10) as nic:
        for name, call in (("ListDevices", nic.list_devices),
                           ("StateAdd", lambda: nic.state_add(gcm_sa("eth0", spi=77)))):
            try:
                await call()
                out[name] = "OK"
            except XfrmOffloadError as exc:
                out[name] = f"{{exc.code.name}}: {{exc.message}}"
    print(json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


async def as_nobody(address: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    assert (result.pop("uid"), result.pop("gid")) == (NOBODY, NOBODY)
    return result


@asynccontextmanager
async def unix_server(*args: str, policy: str | None = None) -> AsyncIterator[OffloadServer]:
    with tempfile.TemporaryDirectory(prefix="xo-peer-") as d:
        directory = Path(d)
        directory.chmod(0o755)  # the other user may reach the socket; its mode decides
        extra = []
        if policy is not None:
            (directory / "policy").write_text(policy)
            extra = ["--policy", str(directory / "policy")]
        config = parse_args(["--listen", f"unix:{directory}/s.sock", *args, *extra])
        server = OffloadServer(config)
        await server.start()
        try:
            yield server
        finally:
            await server.stop(grace=1)


async def test_socket_mode_0600_keeps_another_user_out() -> None:
    async with unix_server() as server:
        assert (Path(server.addresses[0][5:]).stat().st_mode & 0o777) == 0o600
        result = await as_nobody(server.addresses[0])
        assert result["ListDevices"].startswith("UNAVAILABLE:")  # EACCES at connect


async def test_another_uid_is_nothing_by_default() -> None:
    async with unix_server("--socket-mode", "0666") as server:
        assert (Path(server.addresses[0][5:]).stat().st_mode & 0o777) == 0o666
        result = await as_nobody(server.addresses[0])
        assert result == {
            "ListDevices": "PERMISSION_DENIED: ListDevices needs the viewer role on every "
            "device (a request without a device filter); uid:65534 has no role",
            "StateAdd": "PERMISSION_DENIED: StateAdd needs the keymanager role on eth0; "
            "uid:65534 has no role",
        }
        async with Client(server.addresses[0]) as root:  # the server's own uid: admin
            assert [d.name for d in await root.list_devices()] == ["eth0"]


@pytest.mark.parametrize("line", ["uid:65534 viewer", "gid:65534 viewer", "user:nobody viewer"])
async def test_a_policy_line_admits_another_uid(line: str) -> None:
    async with unix_server("--socket-mode", "0666", policy=f"uid:0 admin\n{line}\n") as server:
        result = await as_nobody(server.addresses[0])
        assert result["ListDevices"] == "OK"
        assert result["StateAdd"] == (
            "PERMISSION_DENIED: StateAdd needs the keymanager role on eth0; uid:65534 has viewer"
        )
        async with Client(server.addresses[0]) as root:
            assert (await root.state_add(_sa())).offload_handle


async def test_a_policy_without_the_servers_uid_narrows_it_too() -> None:
    async with unix_server(policy="uid:0 viewer\n") as server, Client(server.addresses[0]) as root:
        assert [d.name for d in await root.list_devices()] == ["eth0"]
        with pytest.raises(XfrmOffloadError) as refused:
            await root.state_add(_sa())
        assert refused.value.code.name == "PERMISSION_DENIED"
        assert refused.value.reason == "ROLE_MISSING"


async def test_grpcs_own_socket_gives_no_identity() -> None:
    async with unix_server() as server:
        gate = server.security.gates[0]
        async with Client(f"unix:{gate.upstream}") as direct:
            with pytest.raises(XfrmOffloadError) as refused:
                await direct.list_devices()
        assert refused.value.code.name == "UNAUTHENTICATED"
        assert (gate.upstream.parent.stat().st_mode & 0o777) == 0o700


async def test_plaintext_loopback_knows_callers_by_socket_owner() -> None:
    config = parse_args(["--listen", "127.0.0.1:0", "--plaintext"])
    server = OffloadServer(config)
    await server.start()
    try:
        result = await as_nobody(server.addresses[0])
        assert result["ListDevices"].startswith("PERMISSION_DENIED: ListDevices needs the viewer")
        assert "uid:65534 has no role" in result["ListDevices"]
        async with Client(server.addresses[0]) as root:
            assert (await root.state_add(_sa())).offload_handle
    finally:
        await server.stop(grace=1)


def _sa():  # type: ignore[no-untyped-def]
    from ..server.sa_builders import gcm_sa

    return gcm_sa("eth0", spi=1234)


async def test_the_relay_forgets_closed_connections_and_survives_garbage() -> None:
    async with unix_server() as server:
        gate = server.security.gates[0]
        path = server.addresses[0].removeprefix("unix:")
        for _ in range(10):
            async with Client(server.addresses[0]) as nic:
                await nic.list_devices()
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))  # not HTTP/2
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 10) is not None  # gRPC hangs up
            writer.close()
        for _ in range(200):  # bounded: the relays end as their peers go
            if not gate._peers:
                break
            await asyncio.sleep(0.01)
        assert gate._peers == {}
        async with Client(server.addresses[0]) as nic:  # still serving
            assert [d.name for d in await nic.list_devices()] == ["eth0"]


async def test_50_channels_at_once_each_known_by_its_own_connection() -> None:
    from grpc import aio

    from xfrm_offload.v1 import offload_pb2 as pb
    from xfrm_offload.v1 import offload_pb2_grpc

    from ..server.sa_builders import gcm_sa

    async with unix_server() as server:
        gate = server.security.gates[0]
        # Each its own connection: gRPC shares one between equal channels otherwise.
        channels = [
            aio.insecure_channel(
                server.addresses[0], options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(50)
        ]
        try:

            async def use(i: int, channel: aio.Channel) -> int:
                await offload_pb2_grpc.DeviceServiceStub(channel).ListDevices(
                    pb.ListDevicesRequest(), timeout=30
                )
                reply = await offload_pb2_grpc.XfrmDevServiceStub(channel).StateAdd(
                    pb.StateAddRequest(sa=gcm_sa("eth0", spi=0x5000 + i)), timeout=30
                )
                return int(reply.offload_handle)

            handles = await asyncio.gather(*(use(i, c) for i, c in enumerate(channels)))
            assert len(set(handles)) == 50  # every one admitted as the server's uid
            assert gate.open_connections == 50
            assert len(gate._peers) == 50
        finally:
            for channel in channels:
                await channel.close(None)
        for _ in range(3000):  # bounded: the relays end as their peers go
            if not gate._peers and gate.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert gate._peers == {} and gate.open_connections == 0

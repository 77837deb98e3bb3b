"""TLS and mutual TLS: who gets through the handshake, reload on SIGHUP, unsafe starts refused."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from xfrm_offload.client import Client, TlsOptions
from xfrm_offload.server.config import parse_args
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc as rpc

from .certs import Issued, Pki, issue
from .conftest import channel, tcp_address, tls_server

SERVER = [sys.executable, "-m", "xfrm_offload.server"]


async def list_devices(ch: aio.Channel) -> list[str]:
    reply = await rpc.DeviceServiceStub(ch).ListDevices(pb.ListDevicesRequest(), timeout=10)
    return [d.name for d in reply.devices]


@pytest.mark.parametrize("who", ["none", "expired", "foreign", "wrong server name"])
async def test_bad_clients_fail_the_handshake_and_others_go_on(pki: Pki, who: str) -> None:
    async with tls_server(pki) as server:
        if who == "wrong server name":
            # a good client certificate, but the server's is not for the name expected
            good = pki.clients["admin.test"]
            tls = TlsOptions(pki.ca.path, good.cert, good.key, server_name="other.example")
            bad = Client(tcp_address(server), timeout=10, tls=tls).channel
        else:
            client = {"none": None, "expired": pki.expired, "foreign": pki.foreign}[who]
            bad = channel(server, pki, client)
        ok = channel(server, pki, pki.clients["admin.test"])
        try:
            with pytest.raises(aio.AioRpcError) as refused:
                await list_devices(bad)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await list_devices(ok) == ["eth0"]
        finally:
            await bad.close(None)
            await ok.close(None)


async def test_a_client_that_does_not_trust_the_servers_ca_is_refused(pki: Pki) -> None:
    async with tls_server(pki) as server:
        ch = channel(server, pki, pki.clients["admin.test"], ca=pki.other_ca.path)
        try:
            with pytest.raises(aio.AioRpcError) as refused:
                await list_devices(ch)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await ch.close(None)


def _install(issued: Issued, directory: Path) -> None:
    shutil.copy(issued.cert, directory / "server.crt")
    shutil.copy(issued.key, directory / "server.key")


async def test_reload_serves_new_certificates_and_keeps_open_streams(
    pki: Pki, tmp_path: Path
) -> None:
    _install(pki.server, tmp_path)
    shutil.copy(pki.ca.path, tmp_path / "clients.crt")
    files = ["--tls-cert", str(tmp_path / "server.crt"), "--tls-key", str(tmp_path / "server.key"),
             "--tls-client-ca", str(tmp_path / "clients.crt")]  # fmt: skip
    async with tls_server(pki, *files, "--device", "eth1") as server:
        old = channel(server, pki, pki.clients["admin.test"])
        events: Any = rpc.DeviceServiceStub(old).WatchEvents(pb.WatchEventsRequest(devs=["eth1"]))
        first = asyncio.ensure_future(events.read())
        stub = rpc.DeviceServiceStub(old)
        for _ in range(100):  # bounded: until the watch is in place
            await stub.SetLinkState(pb.SetLinkStateRequest(name="eth1", link=pb.LINK_STATE_DOWN))
            await stub.SetLinkState(pb.SetLinkStateRequest(name="eth1", link=pb.LINK_STATE_UP))
            if (await asyncio.wait({first}, timeout=0.05))[0]:
                break
        assert (await first).kind == pb.EVENT_KIND_LINK

        # New server certificate from the other CA; clients now need other-CA certificates.
        _install(
            issue(
                pki.other_ca,
                tmp_path,
                "xfrm-offloadd",
                dns=("localhost",),
                ips=("127.0.0.1",),
                server=True,
                file_name="next",
            ),
            tmp_path,
        )
        shutil.copy(pki.other_ca.path, tmp_path / "clients.crt")
        assert server.security.tls is not None and server.security.tls.reload()

        stale = channel(server, pki, pki.clients["admin.test"])  # trusts the old CA only
        fresh = channel(server, pki, pki.foreign, ca=pki.other_ca.path)
        try:
            with pytest.raises(aio.AioRpcError) as refused:
                await list_devices(stale)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await list_devices(fresh) == ["eth1"]
            # the connection made before the reload, and its stream, go on
            await stub.SetLinkState(pb.SetLinkStateRequest(name="eth1", link=pb.LINK_STATE_DOWN))
            event = await asyncio.wait_for(events.read(), 10)
            assert (event.kind, event.dev) == (pb.EVENT_KIND_LINK, "eth1")
        finally:
            events.cancel()
            for ch in (old, stale, fresh):
                await ch.close(None)


async def test_sighup_reloads_a_running_server(pki: Pki, tmp_path: Path) -> None:
    _install(pki.server, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *SERVER, "--listen", "127.0.0.1:0", "--log-format", "json",
        "--tls-cert", str(tmp_path / "server.crt"), "--tls-key", str(tmp_path / "server.key"),
        "--tls-client-ca", str(pki.ca.path),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        address = (await _log_line(proc.stderr, "serving"))["listen"]
        proc.send_signal(signal.SIGHUP)
        line = await _log_line(proc.stderr, "tls reloaded")
        assert line["cert"] == str(tmp_path / "server.crt")
        good = pki.clients["admin.test"]
        tls = TlsOptions(pki.ca.path, good.cert, good.key)
        async with Client(address, timeout=10, tls=tls) as nic:
            assert [d.name for d in await nic.list_devices()] == ["eth0"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def _log_line(stream: asyncio.StreamReader, msg: str) -> dict[str, str]:
    """The server's next JSON log line with this message (gRPC's own lines are skipped)."""
    while True:
        raw = await asyncio.wait_for(stream.readline(), 30)
        assert raw, f"the server ended before logging {msg!r}"
        if raw.startswith(b"{"):
            line: dict[str, str] = json.loads(raw)
            if line.get("msg") == msg:
                return line


async def test_plaintext_on_loopback_says_so_at_start() -> None:
    proc = await asyncio.create_subprocess_exec(
        *SERVER, "--listen", "127.0.0.1:0", "--plaintext", "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        line = await _log_line(
            proc.stderr,
            "plaintext TCP listener: no encryption; callers are known by the uid owning "
            "their socket",
        )
        assert line["level"] == "warning"
        assert line["listen"].startswith("127.0.0.1:")
        serving = await _log_line(proc.stderr, "security")
        assert (serving["tls"], serving["policy"]) == ("off", "defaults")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "0.0.0.0:0"], "TCP needs --tls-cert and --tls-key"),
        (["--listen", "127.0.0.1:0"], "(or --plaintext, on a loopback address only)"),
        (["--listen", "0.0.0.0:0", "--plaintext"], "plaintext TCP only on a loopback address"),
        (["--listen", "[::]:0", "--plaintext"], "plaintext TCP only on a loopback address"),
        (["--listen", "192.0.2.1:0", "--plaintext"], "plaintext TCP only on a loopback address"),
        (["--listen", "example.com:0", "--plaintext"], "plaintext TCP only on a loopback address"),
        (["--tls-cert", "/nonexistent"], "give both, the certificate and its key"),
        (["--tls-client-ca", "/nonexistent"], "--tls-client-ca: needs --tls-cert"),
        (["--tls-cert", "/nonexistent", "--tls-key", "/x"], "No such file"),
        (["--socket-mode", "0999"], "expected an octal mode"),
    ],
)
def test_unsafe_or_broken_settings_refuse_to_start(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "usage: xfrm-offloadd" in err


def test_the_process_refuses_plaintext_on_every_address() -> None:
    proc = subprocess.run(
        [*SERVER, "--listen", "0.0.0.0:0", "--plaintext"], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "argument --listen 0.0.0.0:0: plaintext TCP only on a loopback address" in proc.stderr


def test_tls_files_that_are_not_pem_refuse_to_start(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").write_text("")
    for args, message in [
        (["--tls-cert", str(tmp_path / "empty"), "--tls-key", str(pki.server.key)],
         "not a PEM certificate"),
        (["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.cert)],
         "not a PEM private key"),
        (["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--plaintext"],
         "--plaintext: not with --tls-cert"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            parse_args(["--listen", "127.0.0.1:0", *args])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err

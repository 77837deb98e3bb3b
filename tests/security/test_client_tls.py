"""xfrmctl and the client library over mutual TLS: options, environment variables, refusals."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from xfrm_offload.client import Client, TlsOptions, XfrmOffloadError
from xfrm_offload.client.cli import ExitStatus, run
from xfrm_offload.client.tls import CA_ENV, CERT_ENV, KEY_ENV

from .certs import Pki
from .conftest import tcp_address, tls_server


async def xfrmctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def tls_flags(pki: Pki, name: str) -> list[str]:
    issued = pki.clients[name]
    return ["--tls-ca", str(pki.ca.path), "--tls-cert", str(issued.cert),
            "--tls-key", str(issued.key)]  # fmt: skip


async def test_xfrmctl_with_tls_options(pki: Pki, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.write_text("cert:admin.test admin\ncert:viewer.test viewer\n")
    async with tls_server(pki, "--policy", str(policy)) as server:
        address = tcp_address(server)
        code, out, err = await xfrmctl("--server", address, *tls_flags(pki, "admin.test"),
                                       "device", "list")  # fmt: skip
        assert (code, err) == (ExitStatus.OK, "")
        assert out.startswith("2: eth0: profile full link up\n")
        code, out, err = await xfrmctl("--server", address, *tls_flags(pki, "viewer.test"),
                                       "link", "set", "dev", "eth0", "down")  # fmt: skip
        assert code == ExitStatus.SERVER_ERROR
        assert "PERMISSION_DENIED" in err
        assert "SetLinkState needs the keymanager role on eth0; cert:viewer.test has viewer" in err
        # no client certificate: the handshake fails, the server is unreachable for us
        code, _, err = await xfrmctl("--server", address, "--tls-ca", str(pki.ca.path),
                                     "--timeout", "5", "device", "list")  # fmt: skip
        assert code == ExitStatus.UNREACHABLE
        assert f"cannot reach the server at {address}" in err


async def test_xfrmctl_reads_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = pki.clients["admin.test"]
    monkeypatch.setenv(CA_ENV, str(pki.ca.path))
    monkeypatch.setenv(CERT_ENV, str(issued.cert))
    monkeypatch.setenv(KEY_ENV, str(issued.key))
    async with tls_server(pki) as server:
        code, out, err = await xfrmctl("--server", tcp_address(server), "device", "show", "eth0")
        assert (code, err) == (ExitStatus.OK, "")
        assert "eth0" in out
        async with Client(tcp_address(server), timeout=10) as nic:  # the library too
            assert [d.name for d in await nic.list_devices()] == ["eth0"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-ca", "/nonexistent/ca.crt"], "--tls-ca /nonexistent/ca.crt: No such file"),
        (["--tls-ca", "{empty}"], "not a PEM file"),
    ],
)
async def test_xfrmctl_bad_tls_settings_are_usage_errors(
    pki: Pki, tmp_path: Path, flags: list[str], message: str
) -> None:
    (tmp_path / "empty").write_text("")
    names = {"cert": str(pki.clients["admin.test"].cert), "empty": str(tmp_path / "empty")}
    argv = [f.format(**names) for f in flags]
    code, _, err = await xfrmctl("--server", "127.0.0.1:1", *argv, "device", "list")
    assert code == ExitStatus.USAGE
    assert err.startswith("xfrmctl: ")
    assert message in err
    code, _, err = await xfrmctl("--server", "127.0.0.1:1", *argv, "packet", "tx", "--dev",
                                 "eth0", "--in", "a", "--out", "b")  # fmt: skip
    assert code == ExitStatus.USAGE
    assert message in err


async def test_a_unix_socket_ignores_tls_settings(sock_dir: Path) -> None:
    from ..conftest import running_server

    async with running_server(sock_dir) as (_, client):
        tls = TlsOptions(ca=Path("/nonexistent"))
        async with Client(client.address, tls=tls) as nic:
            assert [d.name for d in await nic.list_devices()] == ["eth0"]


async def test_the_library_raises_permission_denied_with_the_role(pki: Pki, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.write_text("cert:traffic.test traffic\n")
    async with tls_server(pki, "--policy", str(policy)) as server:
        issued = pki.clients["traffic.test"]
        tls = TlsOptions(pki.ca.path, issued.cert, issued.key)
        async with Client(tcp_address(server), timeout=10, tls=tls) as nic:
            with pytest.raises(XfrmOffloadError) as refused:
                await nic.list_states("eth0", include_keys=True)
    assert refused.value.code.name == "PERMISSION_DENIED"
    assert refused.value.reason == "ROLE_MISSING"
    assert refused.value.message == (
        "ListStates needs the admin role on eth0; cert:traffic.test has traffic"
    )


GRPCURL = Path(sys.executable).with_name("grpcurl")


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl comes with the test extras")
async def test_grpcurl_with_mutual_tls_as_the_readme_shows(pki: Pki) -> None:
    issued = pki.clients["viewer.test"]
    tls = ["-cacert", str(pki.ca.path), "-cert", str(issued.cert), "-key", str(issued.key)]
    async with tls_server(pki) as server:
        address = tcp_address(server)

        async def grpcurl(*args: str) -> tuple[int, str, str]:
            proc = await asyncio.create_subprocess_exec(
                str(GRPCURL), *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode is not None
            return proc.returncode, out.decode(), err.decode()

        code, out, _ = await grpcurl(*tls, address, "list")
        assert code == 0
        assert "xfrm_offload.v1.DeviceService" in out.splitlines()
        code, out, _ = await grpcurl(*tls, address, "xfrm_offload.v1.DeviceService/ListDevices")
        assert code == 0
        assert json.loads(out)["devices"][0]["name"] == "eth0"
        code, out, _ = await grpcurl(*tls, address, "grpc.health.v1.Health/Check")
        assert (code, json.loads(out)) == (0, {"status": "SERVING"})

"""xfrmctl device list/show, in-process against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

from xfrm_offload.client import Client
from xfrm_offload.client.cli import ExitStatus, run
from xfrm_offload.engine import native
from xfrm_offload.server.app import OffloadServer

from ..conftest import running_server


async def xfrmctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_device_list_human_and_json(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "eth0", "--device", "eth4:mlx5") as (
        _,
        client,
    ):
        code, out, err = await xfrmctl("--server", client.address, "device", "list")
        assert (code, err) == (ExitStatus.OK, "")
        assert out == (
            "2: eth0: profile full link up\n"
            "    features: NETIF_F_HW_ESP NETIF_F_HW_ESP_TX_CSUM NETIF_F_GSO_ESP\n"
            "    states 0 policies 0\n"
            "3: eth4: profile mlx5 link up\n"
            "    features: NETIF_F_HW_ESP NETIF_F_HW_ESP_TX_CSUM NETIF_F_GSO_ESP\n"
            "    states 0 policies 0\n"
        )
        code, out, _ = await xfrmctl("--server", client.address, "--json", "dev", "ls")
        assert code == ExitStatus.OK
        data = json.loads(out)
        assert [(d["name"], d["profile"], d["link"]) for d in data] == [
            ("eth0", "full", "LINK_STATE_UP"),
            ("eth4", "mlx5", "LINK_STATE_UP"),
        ]


async def test_device_show_lists_capabilities(sock_dir: Path) -> None:
    async with running_server(sock_dir, "--device", "sim0:netdevsim") as (_, client):
        code, out, _ = await xfrmctl("--server", client.address, "device", "show", "sim0")
        assert code == ExitStatus.OK
        assert out.splitlines()[0] == "2: sim0: profile netdevsim link up"
        assert "    offload crypto modes transport,tunnel esn off" in out
        assert "    max-states 33 " in out
        assert f"    engine {native.engine()}\n" in out  # which ESP engine runs
        assert "    aead rfc4106(gcm(aes)) key-bits 160 icv-bits 128" in out
        code, out, _ = await xfrmctl("--server", client.address, "--json", "device", "show", "sim0")
        assert json.loads(out)["capabilities"]["max_states"] == 33
        assert json.loads(out)["engine"] == native.engine()


async def test_unknown_device_exits_1(server: tuple[OffloadServer, Client]) -> None:
    _, client = server
    code, out, err = await xfrmctl("--server", client.address, "device", "show", "nope0")
    assert (code, out) == (ExitStatus.SERVER_ERROR, "")
    assert err == "xfrmctl: NOT_FOUND: no device 'nope0' (have: eth0) (field name)\n"


async def test_unreachable_server_exits_3(sock_dir: Path) -> None:
    code, _, err = await xfrmctl(
        "--server", f"unix:{sock_dir}/absent.sock", "--timeout", "1", "device", "list"
    )
    assert code == ExitStatus.UNREACHABLE
    assert "cannot reach the server" in err


async def test_usage_errors_exit_2() -> None:
    assert (await xfrmctl("device"))[0] == ExitStatus.USAGE
    assert (await xfrmctl("--server", "bad", "device", "list"))[0] == ExitStatus.USAGE

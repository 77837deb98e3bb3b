"""xfrmctl with iproute2's habits and no surprises: whole IDs for get/delete, closed pipes,
bad timeouts, -j/-p/--version, options after the command, packet help."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client
from xfrm_offload.client.cli import ExitStatus, run
from xfrm_offload.client.grammar import parse
from xfrm_offload.v1 import xfrm_pb2

from ..conftest import running_server
from .test_cli_xfrm import KEY, sa_text

XFRMCTL = str(Path(sys.executable).parent / "xfrmctl")


def sa_line(spi: int, dst: str = "192.0.2.9", dev: str = "eth4") -> str:
    return (
        f"state add src 192.0.2.1 dst {dst} proto esp spi {spi:#x} reqid {spi}"
        f" aead rfc4106(gcm(aes)) {KEY} 128 offload packet dev {dev} dir out"
    )


class Ctl:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def __call__(self, line: str, *options: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["--server", self.client.address, *options, *shlex.split(line)]
        return await run(argv, out, err), out.getvalue(), err.getvalue()

    async def spis(self) -> list[int]:
        return sorted(s.sa.id.spi for s in await self.client.list_states())


@pytest.fixture
async def ctl(sock_dir: Path) -> AsyncIterator[Ctl]:
    async with running_server(sock_dir, "--device", "eth4", "--device", "eth5") as (_, client):
        yield Ctl(client)


# --------------------------------------------------------------------------- 1: whole IDs


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ("x s del dst 192.0.2.9 proto esp", "spi SPI"),
        ("state get dst 192.0.2.9 proto esp", "spi SPI"),
        ("state delete proto esp spi 0x2", "dst ADDR"),
        ("state delete src 192.0.2.1 proto esp spi 0x2", "dst ADDR"),
    ],
)
async def test_get_and_delete_refuse_a_partial_id(ctl: Ctl, line: str, missing: str) -> None:
    for spi in (1, 2, 3):
        assert (await ctl(sa_line(spi)))[0] == ExitStatus.OK
    code, out, err = await ctl(line)
    assert (code, out) == (ExitStatus.USAGE, "")
    assert err.endswith(
        f"error: expected the whole ID, {missing} missing: get and delete name one state by"
        " dst, proto and spi (deleteall takes filters)\n"
    )
    assert await ctl.spis() == [1, 2, 3]  # nothing deleted


async def test_get_or_delete_of_nothing_is_an_error(ctl: Ctl) -> None:
    await ctl(sa_line(1))
    for action in ("get", "delete"):
        code, out, err = await ctl(f"state {action} dst 192.0.2.9 proto esp spi 0x99")
        assert (code, out) == (ExitStatus.SERVER_ERROR, "")
        assert err == (
            "xfrmctl: NOT_FOUND: no state with dst 192.0.2.9 proto esp spi 0x00000099 on any"
            " device (ip xfrm: RTNETLINK answers: No such process)\n"
        )
    code, _, err = await ctl("state get dst 192.0.2.9 proto esp spi 1", "--dev", "eth5")
    assert code == ExitStatus.SERVER_ERROR and "spi 0x00000001 on eth5 (ip xfrm" in err
    assert await ctl.spis() == [1]


async def test_delete_takes_one_and_deleteall_takes_filters(ctl: Ctl) -> None:
    for spi in (1, 2, 3):
        await ctl(sa_line(spi))
    await ctl(sa_line(4, dst="192.0.2.10"))
    await ctl(sa_line(5, dev="eth5"))
    assert await ctl("x s del dst 192.0.2.9 proto esp spi 2") == (ExitStatus.OK, "", "")
    assert await ctl.spis() == [1, 3, 4, 5]
    assert await ctl("x s deleteall dst 192.0.2.9 proto esp") == (ExitStatus.OK, "", "")
    assert await ctl.spis() == [4]
    # deleteall matching nothing is not an error (ip xfrm state deleteall exits 0 too)
    assert await ctl("state deleteall dst 198.51.100.1") == (ExitStatus.OK, "", "")
    assert await ctl("state flush proto esp") == (ExitStatus.OK, "", "")
    assert await ctl.spis() == []


# --------------------------------------------------------------------------- 2: closed pipes


async def _xfrmctl_into_closed_pipe(address: str, *argv: str) -> tuple[int, bytes]:
    """xfrmctl writing into a pipe whose reader is already gone: (returncode, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            XFRMCTL, "--server", address, *argv, stdout=write_end, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err


@pytest.mark.parametrize(
    "argv",
    [
        ["-s", "state", "list"],
        ["stats"],
        ["--json", "state", "list"],
        ["state", "list", "-j", "-p"],
        ["policy", "list"],
        ["device", "list"],
    ],
)
async def test_a_closed_pipe_ends_xfrmctl_as_it_ends_cat(ctl: Ctl, argv: list[str]) -> None:
    await ctl(sa_line(1))
    await ctl("x p a src 192.0.2.1 dst 192.0.2.9 dir out offload packet dev eth4")
    code, err = await _xfrmctl_into_closed_pipe(ctl.client.address, *argv)
    assert (code, err) == (-signal.SIGPIPE, b"")  # killed by SIGPIPE: the shell shows 141


async def test_head_reading_one_line_of_a_long_listing(ctl: Ctl) -> None:
    for spi in range(1, 201):  # about 150 kB with -s: more than a pipe holds
        await ctl.client.state_add(_sa(spi))
    shell = f"{shlex.quote(XFRMCTL)} --server {ctl.client.address} -s state list | head -1;"
    shell += ' echo "status ${PIPESTATUS[0]}" >&2'
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", shell, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out == b"src 192.0.2.1 dst 192.0.2.9\n"
    assert err == b"status 141\n"  # 128 + SIGPIPE, no traceback


def _sa(spi: int) -> xfrm_pb2.XfrmUsersaInfo:
    sa = parse(shlex.split(sa_line(spi))).sa
    assert sa is not None
    return sa


# --------------------------------------------------------------------------- 4: timeouts


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
async def test_a_timeout_that_is_not_positive_is_a_usage_error(value: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert await run(["--timeout", value, "state", "list"], out, err) == ExitStatus.USAGE
    assert "xfrmctl: error: argument --timeout: " in err.getvalue()
    assert "cannot reach" not in err.getvalue()


# --------------------------------------------------------------------------- 5: habits


async def test_json_spellings_compact_and_pretty(ctl: Ctl) -> None:
    await ctl(sa_line(1))
    compact = [(await ctl("state list", option))[1] for option in ("-j", "-json", "--json")]
    assert len(set(compact)) == 1 and compact[0].count("\n") == 1  # one line, as ip -j
    [state] = json.loads(compact[0])
    assert state["sa"]["id"]["spi"] == 1
    code, pretty, _ = await ctl("state list", "-j", "-p")
    assert code == ExitStatus.OK and json.loads(pretty) == [state]
    assert pretty.startswith('[\n  {\n    "sa": {\n')  # indented by 2


@pytest.mark.parametrize(
    ("line", "options"),
    [
        ("state list --json", ["--json"]),
        ("state list -j", ["-j"]),
        ("x s l -s", ["-s"]),
        ("state list --dev eth5", ["--dev", "eth5"]),
        ("state count --dev=eth5", ["--dev", "eth5"]),
        ("stats eth4 -j", ["-j"]),
        ("device list --json", ["--json"]),
    ],
)
async def test_options_after_the_command(ctl: Ctl, line: str, options: list[str]) -> None:
    await ctl(sa_line(1))
    await ctl(sa_line(2, dev="eth5"))
    words = [w for w in shlex.split(line) if w not in options and not w.startswith("--dev=")]
    assert await ctl(line) == await ctl(shlex.join(words), *options)


async def test_options_after_the_command_print_ip_text(ctl: Ctl) -> None:
    await ctl(sa_line(2, dev="eth5"))
    expected = sa_text(2, dst="192.0.2.9", dev="eth5").replace("10.0.0.1", "192.0.2.1")
    assert await ctl("state list --dev eth5") == (ExitStatus.OK, expected, "")
    assert await ctl("state list --dev eth4") == (ExitStatus.OK, "", "")


@pytest.mark.parametrize("option", ["--version", "-V", "-Version"])
async def test_version(option: str) -> None:
    out = io.StringIO()
    assert await run([option], out, io.StringIO()) == ExitStatus.OK
    assert out.getvalue() == "xfrmctl utility, xfrm-offload-0.1.0\n"


@pytest.mark.parametrize(
    "argv", [[XFRMCTL, "--version"], [sys.executable, "-m", "xfrm_offload.client.cli", "--version"]]
)
async def test_version_of_the_script_and_of_python_m(argv: list[str]) -> None:
    """The console script and ``python -m xfrm_offload.client.cli`` are the same program."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert (proc.returncode, out, err) == (0, b"xfrmctl utility, xfrm-offload-0.1.0\n", b"")


async def test_packet_help() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert await run(["packet", "help"], out, err) == ExitStatus.OK
    assert out.getvalue().startswith(
        "usage: xfrmctl packet [-h] [--dev DEV] --in IN.pcap --out OUT.pcap"
    )
    assert "--seq-start" in out.getvalue() and err.getvalue() == ""


async def test_replay_window_is_the_devices_to_cap(sock_dir: Path) -> None:
    """The CLI passes any 32-bit window; the profile decides (full: 65536, mlx5: 32-256)."""
    async with running_server(sock_dir, "--device", "eth4", "--device", "mlx0:mlx5") as (_, c):
        ctl = Ctl(c)

        def line(spi: int, dev: str, window: int) -> str:
            return (
                f"state add src 192.0.2.1 dst 192.0.2.9 proto esp spi {spi} reqid 1"
                f" mode transport aead rfc4106(gcm(aes)) {KEY} 128 flag esn"
                f" replay-window {window} offload packet dev {dev} dir in"
            )

        assert await ctl(line(1, "eth4", 65536)) == (ExitStatus.OK, "", "")
        [state] = await c.list_states()
        assert state.sa.replay_esn.replay_window == 65536
        assert await ctl(line(2, "eth4", 65537)) == (
            ExitStatus.SERVER_ERROR,
            "",
            "xfrmctl: INVALID_ARGUMENT: replay window must be between 0 and 65536"
            " (field sa.replay_window)\n",
        )
        assert await ctl(line(3, "mlx0", 4096)) == (
            ExitStatus.SERVER_ERROR,
            "",
            "xfrmctl: INVALID_ARGUMENT: Unsupported replay window size (allowed: 32, 64, 128,"
            " 256) (field sa.replay_window)\n",
        )

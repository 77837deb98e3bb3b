"""xfrmctl packet's output file: never the input, never partial, and a short run is a failure."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from xfrm_offload.client import Client, cli
from xfrm_offload.client.pcap import LINKTYPE_RAW
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args

from ..conftest import running_server
from ..datapath.builders import Tunnel, install, packets, udp4
from .test_packet_cli import read_pcap, write_pcap

OLD = b"an earlier run's output\n"


@pytest.fixture
async def nic(sock_dir: Path) -> AsyncIterator[tuple[OffloadServer, Client]]:
    """A server the test may stop itself (the shared fixture stops it at the end)."""
    sock = sock_dir / "s.sock"
    server = OffloadServer(
        parse_args(["--listen", f"unix:{sock}", "--device", "eth0", "--device", "eth1"])
    )
    await server.start()
    client = Client(f"unix:{sock}", timeout=10)
    try:
        await install(client, Tunnel(), "eth0", "eth1")
        yield server, client
    finally:
        await client.close()
        await server.stop(grace=1)


async def xfrmctl(client: Client, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await cli.run(["--server", client.address, *argv], out, err)
    return status, out.getvalue(), err.getvalue()


def capture(folder: Path, count: int) -> Path:
    path = folder / "plain.pcap"
    write_pcap(path, LINKTYPE_RAW, packets(udp4, "198.51.100.10", "203.0.113.20", count))
    return path


@pytest.mark.parametrize("spelling", ["same", "dotdot", "hardlink", "symlink"])
async def test_out_naming_the_in_file_is_refused_before_anything_is_touched(
    nic: tuple[OffloadServer, Client], tmp_path: Path, spelling: str
) -> None:
    _, client = nic
    plain = capture(tmp_path, 10)
    before = plain.read_bytes()
    out = {
        "same": plain,
        "dotdot": tmp_path / "sub" / ".." / "plain.pcap",
        "hardlink": tmp_path / "link.pcap",
        "symlink": tmp_path / "sym.pcap",
    }[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "hardlink":
        os.link(plain, out)
    elif spelling == "symlink":
        out.symlink_to(plain)
    names = sorted(p.name for p in tmp_path.iterdir())
    status, stdout, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(out)
    )
    assert (status, stdout) == (cli.ExitStatus.USAGE, "")
    assert err.endswith(
        f"xfrmctl packet: error: --out {out} is the --in file; name another output file\n"
    )
    assert plain.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # nothing created
    [state] = [s for s in await client.list_states() if s.dir == 2]  # out
    assert state.curlft.packets == 0  # and nothing sent


async def test_a_refused_run_leaves_the_old_output_alone(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = nic
    plain, esp = capture(tmp_path, 10), tmp_path / "esp.pcap"
    esp.write_bytes(OLD)
    status, stdout, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth9", "--in", str(plain), "--out", str(esp)
    )
    assert (status, stdout) == (cli.ExitStatus.SERVER_ERROR, "")
    assert err.startswith("xfrmctl: NOT_FOUND: ")
    assert esp.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esp.pcap", "plain.pcap"]
    # Not a pcap at all: refused after the temporary file was made, which goes too, and the
    # capture named as --out keeps its bytes.
    before = plain.read_bytes()
    status, _, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(esp), "--out", str(plain)
    )
    assert (status, err) == (cli.ExitStatus.USAGE, "xfrmctl: not a pcap file: magic 0x616e2065\n")
    assert plain.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esp.pcap", "plain.pcap"]


async def test_a_successful_run_replaces_the_output_with_its_mode(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = nic
    plain, esp = capture(tmp_path, 10), tmp_path / "esp.pcap"
    esp.write_bytes(OLD)
    status, stdout, err = await xfrmctl(
        client, "packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)
    )
    assert (status, stdout, err) == (0, "sent 10, out 10, dropped 0\n", "")
    assert len(read_pcap(esp)[1]) == 10
    umask = os.umask(0)
    os.umask(umask)
    assert esp.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would have made it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esp.pcap", "plain.pcap"]


async def _wait_until_sending(client: Client) -> None:
    """Until the device has encrypted some of the capture (bounded: 2000 looks)."""
    for _ in range(2000):
        states = await client.list_states()
        if any(s.dir == 2 and s.curlft.packets for s in states):
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the run never started sending")


async def start_run(client: Client, plain: Path, esp: Path) -> asyncio.Task[tuple[int, str, str]]:
    """A long tx run (one packet per batch), returned once the device is encrypting."""
    argv = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
    run = asyncio.create_task(xfrmctl(client, *argv, "--batch", "1"))
    await _wait_until_sending(client)
    return run


async def test_an_interrupted_run_leaves_no_output(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    _, client = nic
    plain, esp = capture(tmp_path, 20000), tmp_path / "esp.pcap"
    run = await start_run(client, plain, esp)
    run.cancel()  # what Ctrl-C does to asyncio.run's main task
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.pcap"]


async def test_a_server_stopped_mid_run_is_a_failure(sock_dir: Path, tmp_path: Path) -> None:
    """xfrm-offloadd stopped by SIGTERM while a capture streams: the run fails (exit 1 when
    the stream's OK end arrives, 3 when the connection went first) and writes nothing."""
    sock = sock_dir / "p.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "xfrm_offload.server", "--listen", f"unix:{sock}",
        "--device", "eth0", "--device", "eth1", stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with Client(f"unix:{sock}", timeout=10) as client:
            for _ in range(200):
                if sock.exists():
                    break
                await asyncio.sleep(0.05)
            await client.wait_ready()
            await install(client, Tunnel(), "eth0", "eth1")
            plain, esp = capture(tmp_path, 20000), tmp_path / "esp.pcap"
            esp.write_bytes(OLD)
            run = await start_run(client, plain, esp)
            proc.send_signal(signal.SIGTERM)
            status, stdout, err = await run
        assert stdout == ""
        if status == cli.ExitStatus.SERVER_ERROR:  # the stream's OK end came first (usual)
            assert re.fullmatch(
                r"xfrmctl: the server ended the stream after answering (\d+) of the packets"
                r" sent \(sent \d+, out \1, dropped 0\); (.*) not written\n",
                err,
            ), err
            assert err.endswith(f"; {esp} not written\n")
        else:
            assert status == cli.ExitStatus.UNREACHABLE, err
            assert err.startswith("xfrmctl: cannot reach the server at ")
        assert esp.read_bytes() == OLD
        assert sorted(p.name for p in tmp_path.iterdir()) == ["esp.pcap", "plain.pcap"]
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_rx_after_tx_on_a_cabled_pair_drops_every_packet_as_a_replay(
    sock_dir: Path, tmp_path: Path
) -> None:
    """The README's explanation of the tx-then-rx example on scripts/demo's server: the
    cable already delivered what eth0 sent, so eth1 sees the capture as replays."""
    cabled = ("--device", "eth0", "--device", "eth1", "--cable", "eth0:eth1")
    async with running_server(sock_dir, *cabled) as (_, client):
        await install(client, Tunnel(), "eth0", "eth1")
        plain, esp, back = capture(tmp_path, 100), tmp_path / "esp.pcap", tmp_path / "back.pcap"
        tx = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out", str(esp)]
        assert await xfrmctl(client, *tx) == (0, "sent 100, out 100, dropped 0\n", "")
        rx = ["packet", "rx", "--dev", "eth1", "--in", str(esp), "--out", str(back)]
        assert await xfrmctl(client, *rx) == (
            0,
            "sent 100, out 0, dropped 100\n  XfrmInStateSeqError 100\n",
            "",
        )


async def test_out_through_a_symlink_and_to_a_device(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """A link to a file: the file is replaced, the link stays. /dev/null (no regular file):
    written in place, never renamed over."""
    _, client = nic
    plain = capture(tmp_path, 10)
    (tmp_path / "real.pcap").write_bytes(OLD)
    (tmp_path / "link.pcap").symlink_to(tmp_path / "real.pcap")
    tx = ["packet", "tx", "--dev", "eth0", "--in", str(plain), "--out"]
    assert await xfrmctl(client, *tx, str(tmp_path / "link.pcap")) == (
        0,
        "sent 10, out 10, dropped 0\n",
        "",
    )
    assert (tmp_path / "link.pcap").is_symlink()
    assert len(read_pcap(tmp_path / "real.pcap")[1]) == 10
    assert await xfrmctl(client, *tx, os.devnull) == (0, "sent 10, out 10, dropped 0\n", "")
    assert Path(os.devnull).is_char_device()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pcap", "plain.pcap", "real.pcap"]


XFRMCTL = str(Path(sys.executable).parent / "xfrmctl")


async def _shell(line: str) -> tuple[bytes, bytes]:
    """stdout and stderr of a bash pipeline (bounded: 60 s)."""
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", line, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    return await asyncio.wait_for(proc.communicate(), 60)


async def test_a_capture_through_pipes_both_ways(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """--in /dev/stdin from a pipe (read a block at a time, not mapped) and --out
    /dev/stdout into one: the same capture as from and to files; the summary goes to
    stderr, never into the capture on stdout."""
    _, client = nic
    plain, esp = capture(tmp_path, 3000), tmp_path / "esp.pcap"
    ctl = f"{XFRMCTL} --server {client.address} packet tx --dev eth0"
    line = f"cat {plain} | {ctl} --in /dev/stdin --out /dev/stdout | cat > {esp}"
    line += '; echo "status ${PIPESTATUS[*]}" >&2'
    out, err = await _shell(line)
    assert (out, err) == (b"", b"sent 3000, out 3000, dropped 0\nstatus 0 0 0\n")
    _, wire, stamps = read_pcap(esp)
    assert len(wire) == 3000 and stamps == read_pcap(plain)[2]
    assert {w[9] for w in wire} == {50}  # ESP
    # stdout redirected to a file: the capture replaces the file, the summary goes to stderr
    line = f"{ctl} --in {plain} --out /dev/stdout > {esp}"
    assert await _shell(line) == (b"", b"sent 3000, out 3000, dropped 0\n")
    _, again, _ = read_pcap(esp)
    assert len(again) == 3000 and {w[9] for w in again} == {50}


async def test_a_closed_pipe_on_out_ends_xfrmctl_as_it_ends_cat(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """--out /dev/stdout into head: killed by SIGPIPE (the shell shows 141), no message,
    no traceback."""
    _, client = nic
    plain = capture(tmp_path, 3000)  # about 400 kB out: more than a pipe holds
    ctl = f"{XFRMCTL} --server {client.address} packet tx --dev eth0"
    line = f"{ctl} --in {plain} --out /dev/stdout | head -c 100 | wc -c"
    out, err = await _shell(line + '; echo "status ${PIPESTATUS[0]}" >&2')
    assert (out, err) == (b"100\n", b"status 141\n")


async def test_a_summary_into_head_and_a_malformed_capture(
    nic: tuple[OffloadServer, Client], tmp_path: Path
) -> None:
    """The summary piped into head -1 (drops make it several lines): exit 0 and the first
    line. A capture cut inside a record: exit 2 naming the record, no output file."""
    _, client = nic
    plain = capture(tmp_path, 100)
    ctl = f"{XFRMCTL} --server {client.address} packet"
    esp = tmp_path / "esp.pcap"
    out, err = await _shell(f"{ctl} tx --dev eth0 --in {plain} --out {esp}")
    assert (out, err) == (b"sent 100, out 100, dropped 0\n", b"")
    # RX on the device whose SA sent them: no inbound state for that SPI, all dropped.
    line = f"{ctl} rx --dev eth0 --in {esp} --out {tmp_path / 'back.pcap'} | head -1"
    out, err = await _shell(line + '; echo "status ${PIPESTATUS[0]}" >&2')
    assert out == b"sent 100, out 0, dropped 100\n"
    assert err == b"status 0\n"
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(plain.read_bytes()[:-5])
    out, err = await _shell(f"{ctl} tx --dev eth0 --in {cut} --out {tmp_path / 'x.pcap'}")
    assert out == b""
    assert re.fullmatch(rb"xfrmctl: record 99: truncated data \(\d+ of \d+ bytes\)\n", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "back.pcap", "cut.pcap", "esp.pcap", "plain.pcap",
    ]  # fmt: skip

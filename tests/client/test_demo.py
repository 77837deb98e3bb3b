"""The demo (the README's main job) against an in-process server with two devices."""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from xfrm_offload.client import demo
from xfrm_offload.client.pcap import LINKTYPE_IPV4, PcapReader

from ..conftest import running_server

TWO_DEVICES = ("--device", "eth0", "--device", "eth1", "--cable", "eth0:eth1")


async def test_demo_runs_and_writes_a_pcap_tshark_decrypts(sock_dir: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "wire.pcap"
    async with running_server(sock_dir, *TWO_DEVICES) as (_, client):
        out, err = io.StringIO(), io.StringIO()
        status = await demo.run(["--server", client.address, "--pcap", str(pcap)], out, err)
        text = out.getvalue()
        assert (status, err.getvalue()) == (0, ""), text
        # the demo leaves the devices as it found them
        assert await client.list_states() == [] and await client.list_policies() == []
    assert "eth0 -> eth1: sent 420, received 420 (byte-exact, in order)" in text
    assert "eth1 -> eth0: sent 420, received 420 (byte-exact, in order)" in text
    assert "no packet lost across the rekey" in text
    assert "crypto offload parameters: dev eth0 dir out mode packet" in text
    assert "limit: soft 320(packets), hard (INF)(packets)" in text
    assert re.search(r"Expired src 192\.0\.2\.1 dst 192\.0\.2\.2", text)
    assert "XfrmInStateSeqError     \t0\n" in text
    with pcap.open("rb") as f:
        reader = PcapReader(f)
        records = list(reader)
    assert reader.linktype == LINKTYPE_IPV4 and len(records) == 840
    assert {r.data[9] for r in records} == {50}  # all ESP
    spis = {r.data[20:24] for r in records}
    assert len(spis) == 4  # two SA pairs: before and after the rekey
    # the printed command carries one esp_sa entry per SA; run it as a user would
    command = next(line.strip() for line in text.splitlines() if line.strip().startswith("tshark"))
    assert command.count("uat:esp_sa:") == 4
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    assert "tshark decrypted 840 of 840 packets with a good ICV" in text
    done = subprocess.run(
        [*shlex.split(command), "-T", "fields", "-e", "esp.icv_good", "-e", "udp.dstport"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.splitlines() == ["1\t5000"] * 840


@pytest.mark.parametrize(
    "args,message",
    [
        (("--device", "eth0"), "the server has no device eth1 (it has eth0)"),
        (("--device", "eth0", "--device", "eth1"), ""),  # no cable: the demo plugs one in
    ],
    ids=["one-device", "uncabled"],
)
async def test_demo_needs_two_devices(
    sock_dir: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    async with running_server(sock_dir, *args) as (_, client):
        err = io.StringIO()
        argv = ["--server", client.address, "--pcap", str(tmp_path / "w.pcap")]
        status = await demo.run(argv, io.StringIO(), err)
    if message:
        assert status == 1
        assert (
            err.getvalue().startswith("xfrm-offload-demo: FAILED: ") and message in err.getvalue()
        )
    else:
        assert (status, err.getvalue()) == (0, "")


async def test_demo_without_a_server_says_how_to_start_one(sock_dir: Path) -> None:
    err = io.StringIO()
    status = await demo.run(
        ["--server", f"unix:{sock_dir}/none.sock", "--wait", "0.3"], io.StringIO(), err
    )
    assert status == 1
    assert "cannot reach xfrm-offloadd" in err.getvalue()
    assert "--device eth0 --device eth1 --cable eth0:eth1" in err.getvalue()

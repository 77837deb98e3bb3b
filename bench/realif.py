"""Real interfaces: iperf3 through two NICs, beside strongSwan's userspace ESP, one run.

    sudo .venv/bin/python bench/realif.py [--seconds S] [--modes on,off,before]
                                          [--no-strongswan] [--json FILE]

The two NICs are scripts/two-hosts' (two namespaces, an xfrm-offloadd in each, TUNs
as hosts, a veth as the wire, AES-128-GCM tunnel SAs), held up while this measures:

- iperf3 TCP goodput (one stream), A -> B;
- UDP packet rates at 64 B and 1400 B IP packets, unpaced (-b 0), and 1400 B paced,
  with the two servers' peak memory (unpaced UDP must keep to bounded memory);
- CPU per packet: the two servers' CPU time over the packets their devices handled
  (each packet is one device's TX and the other's RX);
- the ratio of the packet rate to the in-process device path (bench/datapath.py's
  engine TX/RX loop in this process, the slower of the two): what the I/O costs.

All of it once per mode (--modes, default all three, in this order): ``on``, the
servers' default (TSO/GRO on the TUNs, recvmmsg/sendmmsg on the wire); ``off``
(``--tun-offload off``: the TUN packet by packet); ``before``, the path as it was before
both (``--tun-offload off`` and XFRM_OFFLOAD_REALIF_HELPERS=0 for the servers, which leaves
realif's C helpers out; the ESP engine stays native). So the effect of each is a ratio
within the run too.

Beside it, in the same run, strongSwan's kernel-libipsec (charon does ESP in userspace
over a TUN, IKEv2 PSK) on the same kind of topology, through the shared anchor script
``strongswan-libipsec.sh`` (``../shared/anchors`` beside the repo, else /work/shared).
Needs root, iperf3, jq and Debian's strongSwan packages (scripts/setup installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from datapath import QUICK, in_process
from serverproc import cpu_seconds

from xfrm_offload.client import Client

ROOT = Path(__file__).resolve().parent.parent
TWO_HOSTS = ROOT / "scripts" / "two-hosts"
ANCHORS = [ROOT.parent / "shared" / "anchors", Path("/work/shared/anchors")]
PEER = "203.0.113.1"
#: iperf3 payloads that make IP packets of 64 and 1400 bytes (20 IP + 8 UDP).
UDP_PAYLOAD = {64: 36, 1400: 1372}
PACED_RATE = "150M"
#: Seconds of untimed TCP through each mode's NICs before its measurements.
WARM_UP = 2
#: --modes: each one's key in the results.
MODES = {
    "on": "xfrm_offload",
    "off": "xfrm_offload_tun_offload_off",
    "before": "xfrm_offload_before",
}


class TwoHosts:
    """scripts/two-hosts held up (HOLD) until closed: namespaces, servers' pids and sockets."""

    def __init__(self, mode: str = "on") -> None:
        env = {
            **os.environ,
            "COUNT": "3",
            "HOLD": "1800",
            "PREFIX": "xo-b-",
            "TUN_OFFLOAD": "on" if mode == "on" else "off",
        }
        if mode == "before":  # realif's C helpers not loaded (runtime switch)
            env["XFRM_OFFLOAD_REALIF_HELPERS"] = "0"
        self.proc = subprocess.Popen(
            [str(TWO_HOSTS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        self.namespaces: tuple[str, str] = ("", "")
        self.sockets: tuple[str, str] = ("", "")
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if m := re.search(r"namespaces (\S+) and (\S+),", line):
                self.namespaces = (m.group(1), m.group(2))
            if m := re.search(r"servers (\S+) (\S+)", line):
                self.sockets = (m.group(1), m.group(2))
            if "holding for" in line:
                break
        else:
            raise RuntimeError("two-hosts did not come up:\n" + "".join(seen))
        self.pids = [self._server_pid(ns) for ns in self.namespaces]

    @staticmethod
    def _server_pid(ns: str) -> int:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in pids.split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"xfrm-offloadd" in cmdline or b"xfrm_offload.server" in cmdline:
                return int(pid)
        raise RuntimeError(f"no xfrm-offloadd in {ns}")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def nic_packets(hosts: TwoHosts) -> int:
    """Packets the two devices took in so far (host side TX plus wire side RX)."""
    total = 0
    for sock in hosts.sockets:
        async with Client(sock, timeout=10) as client:
            ifs = (await client.get_device("eth0")).interfaces
            total += ifs.host_rx_packets + ifs.wire_rx_packets
    return total


def iperf3(hosts: TwoHosts, seconds: float, *args: str) -> dict[str, Any]:
    ns_a, ns_b = hosts.namespaces
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns_b, "iperf3", "-s", "-1", "-B", PEER, "--forceflush"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    try:
        for line in server.stdout:
            if "Server listening" in line:
                break
        out = subprocess.run(
            ["ip", "netns", "exec", ns_a, "iperf3", "-c", PEER, "-J", "-t", str(seconds), *args],
            capture_output=True, text=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
        result: dict[str, Any] = json.loads(out)
        server.wait(timeout=30)
        return result
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


async def measured(hosts: TwoHosts, seconds: float, *args: str) -> dict[str, Any]:
    """One iperf3 run with the servers' CPU, packets handled and peak memory around it."""
    for pid in hosts.pids:
        reset_peak(pid)
    packets0 = await nic_packets(hosts)
    cpu0 = sum(cpu_seconds(p) for p in hosts.pids)
    result = iperf3(hosts, seconds, *args)
    cpu = sum(cpu_seconds(p) for p in hosts.pids) - cpu0
    packets = await nic_packets(hosts) - packets0
    if "error" in result:
        raise RuntimeError(f"iperf3 {' '.join(args)}: {result['error']}")
    end = result["end"]
    row: dict[str, Any] = {
        "server_cpu_s": round(cpu, 2),
        "nic_packets": packets,
        "us_cpu_per_nic_packet": round(1e6 * cpu / packets, 2) if packets else None,
        "server_peak_rss_mib": [round(peak_rss_mib(p), 1) for p in hosts.pids],
    }
    if "-u" in args:
        s = end["sum"]
        got = s["packets"] - s["lost_packets"]
        row |= {
            "sent_pps": round(s["packets"] / s["seconds"]),
            "received_pps": round(got / s["seconds"]),
            "goodput_mbps": round(
                got * int(args[args.index("-l") + 1]) * 8 / s["seconds"] / 1e6, 1
            ),
            "loss_pct": round(s["lost_percent"], 2),
        }
    else:
        row["goodput_mbps"] = round(end["sum_received"]["bits_per_second"] / 1e6, 1)
    return row


def strongswan(seconds: float) -> dict[str, Any]:
    script = next((d / "strongswan-libipsec.sh" for d in ANCHORS if d.is_dir()), None)
    if script is None or not script.exists():
        return {"skipped": "no strongswan-libipsec.sh in ../shared/anchors or /work/shared"}
    with tempfile.TemporaryDirectory(prefix="xo-swan-") as out:
        env = {
            **os.environ,
            "OUT": out,
            "A7_DUR": str(int(seconds)),
            "A7_REPS": "1",
            "A7_ESP": "aes128gcm16",
            "A7_UDP_RATES": PACED_RATE,
            "A7_QUIET_WAIT": "3",  # the machine is shared: do not wait for it to be quiet
        }
        run = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, timeout=600
        )
        report = Path(out) / "a7.json"
        if run.returncode != 0 or not report.exists():
            return {"failed": run.returncode, "log": run.stderr[-2000:]}
        data = json.loads(report.read_text())
    esp = data["libipsec"][0]
    return {
        "tcp_mbps": esp["tcp_mbps"][0],
        "charon_cpu_pct": [esp["charon_left_cpu_pct"][0], esp["charon_right_cpu_pct"][0]],
        "udp1372_unpaced_goodput_mbps": esp["udp1372"]["goodput_mbps"],
        "udp1372_unpaced_loss_pct": esp["udp1372"]["loss_pct"],
        "udp1372_paced": esp["udp1372_paced"],
        "charon_peak_rss_mib_unpaced": esp["udp1372"]["charon_left_peak_rss_mb"],
    }


def load_note() -> str:
    """The machine's load average: others' work shares the 2 cores during the run."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} (1 / 5 min) on {os.cpu_count()} cores"


async def two_nics(
    seconds: float, mode: str, inproc: dict[int, dict[str, float]]
) -> dict[str, Any]:
    """TCP and UDP through scripts/two-hosts' NICs in ``mode`` (see MODES)."""
    hosts = TwoHosts(mode)
    try:
        # Untimed first: whichever mode was measured first got about two thirds of the CPU
        # the later ones got (five runs of 2026-12-02), so every mode warms up alike.
        iperf3(hosts, WARM_UP)
        nic: dict[str, Any] = {"tcp": await measured(hosts, seconds)}
        for size, payload in UDP_PAYLOAD.items():
            nic[f"udp{size}_unpaced"] = await measured(
                hosts, seconds, "-u", "-b", "0", "-l", str(payload)
            )
        nic["udp1400_paced"] = await measured(
            hosts, seconds, "-u", "-b", PACED_RATE, "-l", str(UDP_PAYLOAD[1400])
        )
    finally:
        hosts.close()
    for size in UDP_PAYLOAD:
        row = nic[f"udp{size}_unpaced"]
        floor = min(inproc[size]["engine_tx"], inproc[size]["engine_rx"])
        row["ratio_to_in_process"] = round(row["received_pps"] / floor, 2)
    tcp = nic["tcp"]  # TCP's packets per second (each one TX and one RX) over the floor
    if tcp["nic_packets"]:
        floor = min(inproc[1400]["engine_tx"], inproc[1400]["engine_rx"])
        tcp["nic_pps"] = round(tcp["nic_packets"] / 2 / seconds)
        tcp["ratio_to_in_process"] = round(tcp["nic_pps"] / floor, 2)
    paced, unpaced = nic["udp1400_paced"], nic["udp1400_unpaced"]
    nic["unpaced_over_paced_goodput"] = round(unpaced["goodput_mbps"] / paced["goodput_mbps"], 2)
    return nic


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per iperf3 run (default 4)")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="what to measure, in order: on (default servers), off (--tun-offload off), "
        "before (also without realif's C helpers) (default: on,off,before)",
    )
    parser.add_argument("--no-strongswan", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/realif.py needs root (namespaces, TUN, AF_PACKET)")
    seconds = args.seconds
    results: dict[str, Any] = {"load_before": load_note()}

    inproc = {size: in_process(size, QUICK) for size in (64, 1400)}
    results["in_process_pps"] = {
        size: {"tx": round(r["engine_tx"]), "rx": round(r["engine_rx"])}
        for size, r in inproc.items()
    }
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        sys.exit(f"bench/realif.py: --modes takes some of {','.join(MODES)}")
    for mode in modes:
        results[MODES[mode]] = await two_nics(seconds, mode, inproc)
    if not args.no_strongswan:
        swan = strongswan(seconds)
        results["strongswan_libipsec"] = swan
        for mode in modes:
            if "tcp_mbps" in swan:
                results[f"tcp_ratio_to_strongswan_{mode}"] = round(
                    results[MODES[mode]]["tcp"]["goodput_mbps"] / swan["tcp_mbps"], 2
                )
    for mode in modes[1:]:
        now, then = results[MODES[modes[0]]]["tcp"], results[MODES[mode]]["tcp"]
        results[f"tcp_goodput_{modes[0]}_over_{mode}"] = round(
            now["goodput_mbps"] / then["goodput_mbps"], 2
        )
    results["load_after"] = load_note()
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())

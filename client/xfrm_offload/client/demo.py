"""The main job: a keymanager session against an xfrm-offloadd with two cabled devices.

    xfrm-offloadd --device eth0 --device eth1 --cable eth0:eth1 &
    python -m xfrm_offload.client.demo            # or: xfrm-offload-demo [--server ADDR]

Through the client library only, like a keymanager would: install mirror-image
packet-offload SAs and policies (A's TX is B's RX; AES-GCM-128, tunnel mode), send
traffic both ways and check it arrives byte-exact on the other host, print the states
as ``ip -s xfrm state`` does and the xfrm_stat counters, let a soft packet limit expire,
rekey on the EXPIRE event without losing a packet, write the wire traffic to a pcap and
print (and, with tshark installed, run) the tshark command that decrypts it.

Exit status 0 when every check held; 1 with a message saying which did not.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from .api import Client
from .errors import XfrmOffloadError
from .pcap import LINKTYPE_IPV4, PcapWriter
from .render import format_event, format_state, format_xfrm_stat

DEV_A, DEV_B = "eth0", "eth1"
OUTER_A, OUTER_B = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
HOST_A, HOST_B = "198.51.100.10", "203.0.113.20"
REQID = 1
#: Packets each way in the first round; the first SAs' soft packet limit sits a little above.
FIRST_ROUND = 300
SOFT_PACKETS = FIRST_ROUND + 20
BATCH = 25
AEAD = "rfc4106(gcm(aes))"
TSHARK_AEAD = "AES-GCM with 16 octet ICV [RFC4106]"
DEFAULT_PCAP = Path(tempfile.gettempdir()) / "xfrm-offload-demo.pcap"
TIMEOUT = 10.0


class DemoError(Exception):
    """A check of the demo failed."""


def prefix_selector(src: str, dst: str) -> xpb.XfrmSelector:
    """The selector ``src SRC dst DST`` of two prefixes (host bits of each are dropped)."""
    src_net = ipaddress.ip_network(src, strict=False)
    dst_net = ipaddress.ip_network(dst, strict=False)
    return xpb.XfrmSelector(
        saddr=str(src_net.network_address),
        prefixlen_s=src_net.prefixlen,
        daddr=str(dst_net.network_address),
        prefixlen_d=dst_net.prefixlen,
    )


@dataclass
class SaPair:
    """One direction's SA: outbound on the sender's device, inbound on the receiver's."""

    src: str
    dst: str
    sel_src: str
    sel_dst: str
    tx_dev: str
    rx_dev: str
    spi: int
    key: bytes = field(repr=False)  # 16-byte AES key + 4-byte salt; never printed alone
    out_handle: int = 0
    in_handle: int = 0

    def info(self, inbound: bool, soft_packets: int | None) -> xpb.XfrmUsersaInfo:
        sa = xpb.XfrmUsersaInfo(
            id=xpb.XfrmId(daddr=self.dst, spi=self.spi, proto=50),
            saddr=self.src,
            reqid=REQID,
            mode=xpb.XFRM_MODE_TUNNEL,
            replay_window=128 if inbound else 0,
            aead=xpb.XfrmAlgoAead(alg_name=AEAD, alg_key=self.key, alg_icv_len=128),
            sel=prefix_selector(self.sel_src, self.sel_dst),
            dir=xpb.SA_DIR_IN if inbound else xpb.SA_DIR_OUT,
            offload=xpb.XfrmUserOffload(
                dev=self.rx_dev if inbound else self.tx_dev,
                flags=xpb.OFFLOAD_FLAG_PACKET | (xpb.OFFLOAD_FLAG_INBOUND if inbound else 0),
            ),
        )
        if soft_packets is not None:
            sa.lft.soft_packet_limit = soft_packets
        return sa

    def tshark_entry(self) -> str:
        fields = ["IPv4", self.src, self.dst, f"0x{self.spi:08x}", TSHARK_AEAD]
        fields += [f"0x{self.key.hex()}", "NULL", ""]
        return "uat:esp_sa:" + ",".join(f'"{f}"' for f in fields)


def new_pair(src: str, dst: str, sel_src: str, sel_dst: str, tx: str, rx: str) -> SaPair:
    spi = 0x100 + int.from_bytes(os.urandom(3), "big")  # fresh SPIs per run and per rekey
    return SaPair(src, dst, sel_src, sel_dst, tx, rx, spi, os.urandom(20))


def policy(
    sel_src: str, sel_dst: str, dev: str, inbound: bool, src: str, dst: str
) -> xpb.XfrmUserpolicyInfo:
    return xpb.XfrmUserpolicyInfo(
        sel=prefix_selector(sel_src, sel_dst),
        dir=xpb.POLICY_DIR_IN if inbound else xpb.POLICY_DIR_OUT,
        tmpl=[
            xpb.XfrmUserTmpl(
                id=xpb.XfrmId(daddr=dst, proto=50),
                saddr=src,
                reqid=REQID,
                mode=xpb.XFRM_MODE_TUNNEL,
            )
        ],
        offload=xpb.XfrmUserOffload(dev=dev, flags=xpb.OFFLOAD_FLAG_PACKET),
    )


def _checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src: str, dst: str, number: int, size: int = 200) -> bytes:
    """An IPv4/UDP packet whose payload carries its number (so every packet differs)."""
    payload = number.to_bytes(4, "big") * (size // 4)
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        number & 0xFFFF,
        0x4000,
        64,
        17,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return head[:10] + struct.pack("!H", _checksum(head)) + head[12:] + udp


class PacketTap:
    """WatchPackets on one device port, collected in the background."""

    def __init__(self, client: Client, dev: str, port: int) -> None:
        self.dev = dev
        self.packets: list[bytes] = []
        self.stamps: list[int] = []
        self.lost = 0
        self._ready = asyncio.Event()
        self._call = client.datapath.WatchPackets(pb.WatchPacketsRequest(dev=dev, port=port))  # type: ignore[arg-type]
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for message in self._call:
            self._ready.set()  # the first, empty message: the watch is in place
            self.lost += message.lost
            now = time.time_ns()
            for result in message.packets:
                self.packets.append(result.data)
                self.stamps.append(now)

    async def ready(self) -> None:
        await asyncio.wait_for(self._ready.wait(), TIMEOUT)

    async def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while len(self.packets) + self.lost < count:
            if time.monotonic() > deadline or self._task.done():
                raise DemoError(
                    f"{self.dev}: {len(self.packets)} packets arrived of {count} expected"
                )
            await asyncio.sleep(0.005)
        if self.lost:
            raise DemoError(f"{self.dev}: the tap lost {self.lost} packets (fell behind)")

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()


class EventLog:
    """Every event of the two devices, in a queue, from a background WatchEvents."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[pb.WatchEventsResponse] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client.watch_events([DEV_A, DEV_B]):
            self.seen.append(event)

    async def wait(
        self, what: str, match: Any, count: int = 1, timeout: float = TIMEOUT
    ) -> list[pb.WatchEventsResponse]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.seen if match(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline or self._task.done():
                raise DemoError(f"no {what} event arrived (waited {timeout:g} s)")
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self._task.cancel()


class Demo:
    def __init__(self, client: Client, out: TextIO, pcap: Path, wait: float = 5.0) -> None:
        self.client = client
        self.wait = wait
        self.out = out
        self.pcap = pcap
        self.sent = {DEV_A: 0, DEV_B: 0}  # packets each device's host sent
        self.expected: dict[str, list[bytes]] = {DEV_A: [], DEV_B: []}  # what each host gets
        self.all_pairs: list[SaPair] = []
        self.policies: list[tuple[str, int]] = []
        self.numbers = 0

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def step(self, title: str) -> None:
        self.say(f"\n=== {title}")

    async def add_pair(
        self,
        pair: SaPair,
        soft: int | None,
        *,
        inbound_only: bool = False,
        outbound_only: bool = False,
    ) -> None:
        if not outbound_only:
            reply = await self.client.state_add(pair.info(True, soft))
            pair.in_handle = reply.offload_handle
            self.say(
                f"  {pair.rx_dev}: in  SA spi 0x{pair.spi:08x} {pair.src} -> {pair.dst}"
                f" (handle {pair.in_handle})"
            )
        if not inbound_only:
            reply = await self.client.state_add(pair.info(False, soft))
            pair.out_handle = reply.offload_handle
            self.say(
                f"  {pair.tx_dev}: out SA spi 0x{pair.spi:08x} {pair.src} -> {pair.dst}"
                f" (handle {pair.out_handle})"
            )
        if pair not in self.all_pairs:
            self.all_pairs.append(pair)

    async def exchange(self, count: int, expect: dict[str, int] | None = None) -> dict[str, int]:
        """``count`` packets A -> B and B -> A; which out SA carried them, per device."""
        used: dict[str, int] = {}
        for dev, src, dst, peer in ((DEV_A, HOST_A, HOST_B, DEV_B), (DEV_B, HOST_B, HOST_A, DEV_A)):
            data = []
            for _ in range(count):
                data.append(udp4(src, dst, self.numbers))
                self.numbers += 1
            batches = [
                [
                    pb.Packet(id=self.sent[dev] + i, data=d)
                    for i, d in enumerate(data[start : start + BATCH], start)
                ]
                for start in range(0, count, BATCH)
            ]
            results: list[pb.PacketResult] = []
            async for reply in self.client.packet_stream(dev, pb.PACKET_DIRECTION_TX, batches):
                results.extend(reply.results)
            bad = [r for r in results if r.verdict != pb.VERDICT_PASS]
            if bad:
                raise DemoError(f"{dev} TX dropped {len(bad)} packets ({bad[0].drop_reason})")
            handles = {r.offload_handle for r in results}
            if len(handles) != 1:
                raise DemoError(f"{dev} TX used several SAs: {sorted(handles)}")
            used[dev] = handles.pop()
            if expect is not None and used[dev] != expect[dev]:
                raise DemoError(f"{dev} TX used SA handle {used[dev]}, not {expect[dev]}")
            self.sent[dev] += count
            self.expected[peer].extend(data)
        return used

    async def check_arrivals(self, host: dict[str, PacketTap]) -> None:
        for dev, tap in host.items():
            await tap.wait_for(len(self.expected[dev]))
            if tap.packets != self.expected[dev]:
                raise DemoError(f"{dev}: the packets delivered differ from those sent")

    async def print_states(self) -> None:
        for state in await self.client.list_states():
            self.say(f"[{state.dev}]")
            self.out.write(format_state(state, stats=True))

    async def print_counters(self, *, full: bool) -> None:
        """The xfrm_stat counters of both devices together (``full``: zeros too)."""
        stats = await self.client.get_stats()
        nonzero = [c for c in stats.total if c.value]
        if full:
            self.say("xfrm_stat, both devices (cat /proc/net/xfrm_stat):")
            self.out.write(format_xfrm_stat(stats.total))
        elif nonzero:
            self.say("xfrm_stat, non-zero counters:")
            self.out.write(format_xfrm_stat(nonzero))
        else:
            self.say("xfrm_stat: every counter still zero (nothing dropped)")

    async def remove_pair_side(self, pair: SaPair, inbound: bool) -> None:
        dev, handle = (pair.rx_dev, pair.in_handle) if inbound else (pair.tx_dev, pair.out_handle)
        await self.client.state_delete(dev, handle)
        await self.client.state_free(dev, handle)
        self.say(
            f"  {dev}: {'in ' if inbound else 'out'} SA spi 0x{pair.spi:08x} deleted and freed"
        )
        if inbound:
            pair.in_handle = 0
        else:
            pair.out_handle = 0

    async def run(self) -> None:
        client = self.client
        try:
            await client.wait_ready(self.wait)
        except TimeoutError:
            raise DemoError(
                f"cannot reach xfrm-offloadd at {client.address}; start one with: "
                f"xfrm-offloadd --device {DEV_A} --device {DEV_B} --cable {DEV_A}:{DEV_B}"
            ) from None
        devices = {d.name: d for d in await client.list_devices()}
        missing = [d for d in (DEV_A, DEV_B) if d not in devices]
        if missing:
            raise DemoError(
                f"the server has no device {missing[0]} (it has {', '.join(devices)}); start it "
                f"with --device {DEV_A} --device {DEV_B}"
            )
        busy = [d for d in (DEV_A, DEV_B) if devices[d].state_count or devices[d].policy_count]
        if busy:
            raise DemoError(f"{busy[0]} already holds states or policies: use a fresh server")
        if devices[DEV_A].cable_peer != DEV_B:
            await client.set_cable(DEV_A, DEV_B)
        self.say(
            f"xfrm-offloadd at {client.address}: {DEV_A} (host A, {OUTER_A}) cabled to "
            f"{DEV_B} (host B, {OUTER_B})"
        )

        events = EventLog(client)
        host = {d: PacketTap(client, d, pb.PORT_HOST) for d in (DEV_A, DEV_B)}
        wire = {d: PacketTap(client, d, pb.PORT_WIRE) for d in (DEV_A, DEV_B)}
        try:
            for tap in (*host.values(), *wire.values()):
                await tap.ready()
            await self.session(events, host)
            await self.write_pcap(wire)
        finally:
            events.close()
            for tap in (*host.values(), *wire.values()):
                tap.close()
            await self.cleanup()
        self.tshark()

    async def session(self, events: EventLog, host: dict[str, PacketTap]) -> None:
        a_to_b = new_pair(OUTER_A, OUTER_B, NET_A, NET_B, DEV_A, DEV_B)
        b_to_a = new_pair(OUTER_B, OUTER_A, NET_B, NET_A, DEV_B, DEV_A)
        self.step(
            f"1. keymanager installs mirror-image SAs and policies (AES-GCM-128, tunnel, "
            f"packet offload, packet-soft {SOFT_PACKETS})"
        )
        # The event stream says nothing until its first event: the first SA's STATE_ADDED
        # proves the subscription is live before anything that matters happens (if the
        # SA beat the subscription, it is added again).
        for attempt in range(5):
            await self.add_pair(a_to_b, SOFT_PACKETS, inbound_only=True)
            try:
                await events.wait(
                    "STATE_ADDED", lambda e: e.kind == pb.EVENT_KIND_STATE_ADDED, timeout=1.0
                )
                break
            except DemoError:
                if attempt == 4:
                    raise
                await self.remove_pair_side_quiet(a_to_b, inbound=True)
        await self.add_pair(a_to_b, SOFT_PACKETS, outbound_only=True)
        await self.add_pair(b_to_a, SOFT_PACKETS)
        for sel_src, sel_dst, dev, inbound, src, dst in (
            (NET_A, NET_B, DEV_A, False, OUTER_A, OUTER_B),
            (NET_B, NET_A, DEV_A, True, OUTER_B, OUTER_A),
            (NET_B, NET_A, DEV_B, False, OUTER_B, OUTER_A),
            (NET_A, NET_B, DEV_B, True, OUTER_A, OUTER_B),
        ):
            reply = await self.client.policy_add(policy(sel_src, sel_dst, dev, inbound, src, dst))
            self.policies.append((dev, reply.offload_handle))
            self.say(f"  {dev}: policy {'in ' if inbound else 'out'} {sel_src} -> {sel_dst}")
        await events.wait("STATE_ADDED", lambda e: e.kind == pb.EVENT_KIND_STATE_ADDED, 4)
        await events.wait("POLICY_ADDED", lambda e: e.kind == pb.EVENT_KIND_POLICY_ADDED, 4)

        self.step(f"2. traffic: {FIRST_ROUND} packets A -> B and {FIRST_ROUND} B -> A")
        await self.exchange(FIRST_ROUND, {DEV_A: a_to_b.out_handle, DEV_B: b_to_a.out_handle})
        await self.check_arrivals(host)
        self.say(f"  all {2 * FIRST_ROUND} arrived byte-exact on the other host")

        self.step("3. the states, as ip -s xfrm state prints them")
        await self.print_states()
        await self.print_counters(full=True)

        self.step(f"4. more traffic: the soft packet limit ({SOFT_PACKETS}) expires")
        soft_outs = {a_to_b.out_handle: DEV_A, b_to_a.out_handle: DEV_B}

        def soft_out(e: pb.WatchEventsResponse) -> bool:
            return (
                e.kind == pb.EVENT_KIND_EXPIRE
                and not e.expire.hard
                and soft_outs.get(e.expire.ref.offload_handle) == e.dev
            )

        while not all(any(soft_out(e) for e in events.seen if e.dev == d) for d in (DEV_A, DEV_B)):
            if self.sent[DEV_A] > SOFT_PACKETS + 5 * BATCH:
                raise DemoError(f"no soft EXPIRE after {self.sent[DEV_A]} packets each way")
            await self.exchange(10)
            await asyncio.sleep(0)
        await events.wait("soft EXPIRE", soft_out, 2)
        await self.check_arrivals(host)
        self.say(f"  sent {self.sent[DEV_A]} packets each way; events:")
        for event in events.seen:
            if event.kind == pb.EVENT_KIND_EXPIRE:
                self.out.write(f"  [{event.dev}] " + format_event(event))

        self.say("  the keymanager rekeys on the soft EXPIRE (the hard limit would stop traffic)")
        self.step("5. rekey: new SA pair (new SPIs), traffic continues, old SAs deleted")
        new_ab = new_pair(OUTER_A, OUTER_B, NET_A, NET_B, DEV_A, DEV_B)
        new_ba = new_pair(OUTER_B, OUTER_A, NET_B, NET_A, DEV_B, DEV_A)
        old_out = {DEV_A: a_to_b.out_handle, DEV_B: b_to_a.out_handle}
        await self.add_pair(new_ab, None, inbound_only=True)  # receivers first
        await self.add_pair(new_ba, None, inbound_only=True)
        await self.exchange(BATCH, old_out)
        self.say(f"  {BATCH} packets each way still on the old SAs")
        await self.add_pair(new_ab, None, outbound_only=True)
        await self.add_pair(new_ba, None, outbound_only=True)
        new_out = {DEV_A: new_ab.out_handle, DEV_B: new_ba.out_handle}
        await self.exchange(BATCH, new_out)
        self.say(f"  {BATCH} packets each way on the new SAs (the newest outbound SA wins)")
        await self.remove_pair_side(a_to_b, inbound=False)
        await self.remove_pair_side(b_to_a, inbound=False)
        await self.exchange(BATCH, new_out)
        await self.check_arrivals(host)  # nothing in flight on the old SAs any more
        await self.remove_pair_side(a_to_b, inbound=True)
        await self.remove_pair_side(b_to_a, inbound=True)
        await self.exchange(BATCH, new_out)
        await self.check_arrivals(host)
        await events.wait("STATE_DELETED", lambda e: e.kind == pb.EVENT_KIND_STATE_DELETED, 4)

        self.step("6. totals")
        for dev, peer in ((DEV_A, DEV_B), (DEV_B, DEV_A)):
            received = len(host[peer].packets)
            self.say(
                f"  {dev} -> {peer}: sent {self.sent[dev]}, received {received}"
                " (byte-exact, in order)"
            )
            if received != self.sent[dev]:
                raise DemoError(f"{dev} -> {peer}: {self.sent[dev] - received} packets lost")
        self.say("  no packet lost across the rekey")
        await self.print_states()
        await self.print_counters(full=False)
        counts = collections.Counter(pb.EventKind.Name(e.kind) for e in events.seen)
        self.say("events seen: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))

    async def write_pcap(self, wire: dict[str, PacketTap]) -> None:
        total = sum(self.sent.values())
        frames: list[tuple[int, bytes]] = []
        for dev, tap in wire.items():
            await tap.wait_for(self.sent[dev])
            frames += zip(tap.stamps, tap.packets, strict=True)
        frames.sort(key=lambda f: f[0])  # stable: each device's own order is kept
        with self.pcap.open("wb") as f:
            writer = PcapWriter(f, LINKTYPE_IPV4)
            for stamp, data in frames:
                writer.write(data, timestamp_ns=stamp)
        self.wire_count = total
        self.step(f"7. the wire traffic: {total} ESP packets in {self.pcap} (raw IPv4)")

    def tshark_argv(self, *extra: str) -> list[str]:
        argv = [
            "tshark",
            "-r",
            str(self.pcap),
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ]
        for pair in self.all_pairs:
            argv += ["-o", pair.tshark_entry()]
        return argv + list(extra)

    def tshark(self) -> None:
        self.say("Decrypt it with tshark (or Wireshark: Protocols > ESP > SAs). The keys were made")
        self.say("with os.urandom for this run and are printed here only, in this command:")
        self.say("  " + shlex.join(self.tshark_argv()))
        if shutil.which("tshark") is None:
            self.say("(tshark is not installed: not run)")
            return
        fields = self.tshark_argv("-T", "fields", "-e", "esp.icv_good")
        done = subprocess.run(fields, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise DemoError(f"tshark failed: {done.stderr.strip()[:300]}")
        good = sum(1 for line in done.stdout.splitlines() if line.strip() == "1")
        self.say(f"tshark decrypted {good} of {self.wire_count} packets with a good ICV")
        if good != self.wire_count:
            raise DemoError(f"tshark verified {good} packets, expected {self.wire_count}")

    async def cleanup(self) -> None:
        """Leave the devices as we found them (a keymanager that exits removes its SAs)."""
        with contextlib.suppress(XfrmOffloadError):
            for pair in self.all_pairs:
                for inbound, handle in ((True, pair.in_handle), (False, pair.out_handle)):
                    if handle:
                        await self.remove_pair_side_quiet(pair, inbound)
            for dev, handle in self.policies:
                await self.client.policy_delete(dev, handle)
                await self.client.policy_free(dev, handle)

    async def remove_pair_side_quiet(self, pair: SaPair, inbound: bool) -> None:
        dev, handle = (pair.rx_dev, pair.in_handle) if inbound else (pair.tx_dev, pair.out_handle)
        await self.client.state_delete(dev, handle)
        await self.client.state_free(dev, handle)


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(
        prog="xfrm-offload-demo",
        description="A keymanager session against xfrm-offloadd with devices eth0 and eth1.",
    )
    parser.add_argument("--server", metavar="ADDR", help="unix:PATH or HOST:PORT")
    parser.add_argument("--pcap", type=Path, default=DEFAULT_PCAP, help=f"({DEFAULT_PCAP})")
    parser.add_argument(
        "--wait", type=float, default=5.0, metavar="S", help="seconds to wait for the server (5)"
    )
    args = parser.parse_args(list(argv))
    started = time.monotonic()
    try:
        client = Client(args.server, timeout=TIMEOUT)
    except ValueError as exc:
        err.write(f"xfrm-offload-demo: --server: {exc}\n")
        return 2
    try:
        async with client:
            await Demo(client, out, args.pcap, args.wait).run()
    except (DemoError, XfrmOffloadError) as exc:
        err.write(f"xfrm-offload-demo: FAILED: {exc}\n")
        return 1
    out.write(f"\ndemo done in {time.monotonic() - started:.1f} s: every check held\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())

"""Mirrored SA and policy pairs for packet-path tests: device A sends, device B receives."""

from __future__ import annotations

import asyncio
import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

from xfrm_offload.client import Client
from xfrm_offload.client.demo import prefix_selector
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

KEY = bytes(range(16)) + b"\xa0\xa1\xa2\xa3"  # AES-128 + salt
INBOUND, PACKET, IPV6 = 2, 4, 1


@dataclass(frozen=True)
class Tunnel:
    """Outer endpoints, inner networks and the SA's parameters of one direction A -> B."""

    outer_src: str = "192.0.2.1"
    outer_dst: str = "192.0.2.2"
    inner_src: str = "198.51.100.0/24"
    inner_dst: str = "203.0.113.0/24"
    spi: int = 0x1001
    reqid: int = 1
    mode: xpb.XfrmMode = xpb.XFRM_MODE_TUNNEL
    replay_window: int = 64
    lft: xpb.XfrmLifetimeCfg | None = None


#: The address and mode shapes the packet tests run through (A = 192.0.2.1 or 2001:db8::1).
V4_TUNNEL = Tunnel()
V6_TUNNEL = Tunnel(
    outer_src="2001:db8::1",
    outer_dst="2001:db8::2",
    inner_src="2001:db8:1::/64",
    inner_dst="2001:db8:2::/64",
)
V4_TRANSPORT = Tunnel(
    inner_src="192.0.2.1/32", inner_dst="192.0.2.2/32", mode=xpb.XFRM_MODE_TRANSPORT
)
V6_TRANSPORT = Tunnel(
    outer_src="2001:db8::1",
    outer_dst="2001:db8::2",
    inner_src="2001:db8::1/128",
    inner_dst="2001:db8::2/128",
    mode=xpb.XFRM_MODE_TRANSPORT,
)


def _v6(addr: str) -> bool:
    return ipaddress.ip_network(addr, strict=False).version == 6


def sa(t: Tunnel, dev: str, inbound: bool, *, packet: bool = True) -> xpb.XfrmUsersaInfo:
    flags = (
        (INBOUND if inbound else 0) | (PACKET if packet else 0) | (IPV6 if _v6(t.outer_dst) else 0)
    )
    info = xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr=t.outer_dst, spi=t.spi, proto=50),
        saddr=t.outer_src,
        reqid=t.reqid,
        mode=t.mode,
        replay_window=t.replay_window if inbound else 0,
        aead=xpb.XfrmAlgoAead(alg_name="rfc4106(gcm(aes))", alg_key=KEY, alg_icv_len=128),
        sel=prefix_selector(t.inner_src, t.inner_dst),
        dir=xpb.SA_DIR_IN if inbound else xpb.SA_DIR_OUT,
        offload=xpb.XfrmUserOffload(dev=dev, flags=flags),
    )
    if t.lft is not None:
        info.lft.CopyFrom(t.lft)
    return info


def policy(t: Tunnel, dev: str, inbound: bool) -> xpb.XfrmUserpolicyInfo:
    tunnel = t.mode == xpb.XFRM_MODE_TUNNEL
    return xpb.XfrmUserpolicyInfo(
        sel=prefix_selector(t.inner_src, t.inner_dst),
        dir=xpb.POLICY_DIR_IN if inbound else xpb.POLICY_DIR_OUT,
        tmpl=[
            xpb.XfrmUserTmpl(
                id=xpb.XfrmId(daddr=t.outer_dst if tunnel else "", proto=50),
                saddr=t.outer_src if tunnel else "",
                reqid=t.reqid,
                mode=t.mode,
            )
        ],
        offload=xpb.XfrmUserOffload(dev=dev, flags=PACKET),
    )


async def install(client: Client, t: Tunnel, tx_dev: str, rx_dev: str) -> tuple[int, int]:
    """Out SA + out policy on tx_dev, in SA + in policy on rx_dev; the two SA handles."""
    out = await client.state_add(sa(t, tx_dev, inbound=False))
    inn = await client.state_add(sa(t, rx_dev, inbound=True))
    assert out.offloaded and inn.offloaded
    await client.policy_add(policy(t, tx_dev, inbound=False))
    await client.policy_add(policy(t, rx_dev, inbound=True))
    return out.offload_handle, inn.offload_handle


def checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src: str, dst: str, payload: bytes, sport: int = 4000, dport: int = 5000) -> bytes:
    """An IPv4/UDP packet with a correct header checksum (UDP checksum 0)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        1,
        0x4000,
        64,
        17,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + udp


def udp6(src: str, dst: str, payload: bytes, sport: int = 4000, dport: int = 5000) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    head = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        len(udp),
        17,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return head + udp


def packets(make, src: str, dst: str, count: int, size: int = 100) -> list[bytes]:  # type: ignore[no-untyped-def]
    """``count`` distinct packets (each payload carries its number)."""
    return [make(src, dst, i.to_bytes(4, "big") * (size // 4)) for i in range(count)]


async def send(
    client: Client,
    dev: str,
    direction: int,
    data: list[bytes],
    batch: int = 64,
    handles: list[int] | None = None,
    seqs: list[int] | None = None,
) -> list[pb.PacketResult]:
    """Push packets through one PacketStream in batches; every result, in order."""
    batches = [
        [
            pb.Packet(
                id=i,
                data=data[i],
                offload_handle=handles[i] if handles else 0,
                seq=seqs[i] if seqs else 0,
            )
            for i in range(start, min(start + batch, len(data)))
        ]
        for start in range(0, len(data), batch)
    ]
    results: list[pb.PacketResult] = []
    async for reply in client.packet_stream(dev, direction, batches):  # type: ignore[arg-type]
        results.extend(reply.results)
    return results


class Tap:
    """Collects what a device delivers on a port (WatchPackets) in the background."""

    def __init__(self, client: Client, dev: str, port: int) -> None:
        self.packets: list[bytes] = []
        self.lost = 0
        self._call = client.datapath.WatchPackets(pb.WatchPacketsRequest(dev=dev, port=port))  # type: ignore[arg-type]
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        async for message in self._call:
            self._ready.set()
            self.lost += message.lost
            self.packets.extend(r.data for r in message.packets)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """The first ``count`` packets (fails the test if they do not come in time)."""
        async with asyncio.timeout(timeout):
            while len(self.packets) + self.lost < count:
                await asyncio.sleep(0.01)
        return self.packets

    async def ready(self) -> None:
        """Wait until the server has the watch in place (its first, empty message)."""
        await asyncio.wait_for(self._ready.wait(), 10)

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()


class Events:
    """WatchEvents in the background, live before the test goes on (``async with``)."""

    def __init__(self, server: OffloadServer, client: Client, **filters: Any) -> None:
        self.server = server
        self.client = client
        self.filters = filters
        self.queue: asyncio.Queue[pb.WatchEventsResponse] = asyncio.Queue()

    async def __aenter__(self) -> Events:
        hub = self.server.nic.hub
        before = hub.subscriptions
        self._task = asyncio.get_running_loop().create_task(self._run())
        async with asyncio.timeout(10):
            while not hub.subscriptions - before:
                await asyncio.sleep(0.005)
        (self.sub,) = hub.subscriptions - before
        return self

    def published(self) -> int:
        """Events the server has for this stream so far, sent or queued (a call's events
        are there before the call returns)."""
        return self.sub.sent + len(self.sub.queue) + (1 if self.sub.lost else 0)

    async def _run(self) -> None:
        async for event in self.client.watch_events(**self.filters):
            await self.queue.put(event)

    async def next(self, timeout: float = 10.0) -> pb.WatchEventsResponse:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()

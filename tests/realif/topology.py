"""Two hosts in network namespaces, each with its NIC: the real-interfaces test bench.

host A (namespace xo-t-XXXX-a)                 host B (namespace xo-t-XXXX-b)
  xo0 (TUN) 198.51.100.1/24, 2001:db8:a::1/64    xo0 (TUN) 203.0.113.1/24, 2001:db8:b::1/64
  device eth0 of server A                         device eth0 of server B
  wire0 (veth) ---------------------------------- wire0 (veth)
  ESP outer 192.0.2.1 / 2001:db8:ff::1            ESP outer 192.0.2.2 / 2001:db8:ff::2

Both servers run in the test's process (each its own OffloadServer, own Unix socket);
the namespaces are removed when the context ends, also when the test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import running_server
from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.v1 import xfrm_pb2 as xpb

DEV = "eth0"
TUN = "xo0"
WIRE = "wire0"
INNER4 = ("198.51.100.1", "203.0.113.1")
NET4 = ("198.51.100.0/24", "203.0.113.0/24")
INNER6 = ("2001:db8:a::1", "2001:db8:b::1")
NET6 = ("2001:db8:a::/64", "2001:db8:b::/64")
OUTER4 = ("192.0.2.1", "192.0.2.2")
OUTER6 = ("2001:db8:ff::1", "2001:db8:ff::2")
AEAD = "rfc4106(gcm(aes))"
PACKET = 4
INBOUND = 2
IPV6 = 1
REQID = 7


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def ns_sh(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


@dataclass
class Host:
    ns: str
    server: OffloadServer
    client: Client
    inner4: str
    inner6: str
    outer4: str
    outer6: str


@dataclass
class SaKeys:
    """One direction's SA: what tshark needs to decrypt it, and where it is installed."""

    src: str
    dst: str
    spi: int
    key: bytes
    sender: Host
    out_handle: int
    receiver: Host
    in_handle: int


@dataclass
class Pair:
    hosts: tuple[Host, Host]
    suffix: str
    sas: list[SaKeys] = field(default_factory=list)

    @property
    def a(self) -> Host:
        return self.hosts[0]

    @property
    def b(self) -> Host:
        return self.hosts[1]


def _namespaces(suffix: str) -> tuple[str, str]:
    return f"xo-t-{suffix}-a", f"xo-t-{suffix}-b"


def _make_links(ns_a: str, ns_b: str, ipv6: bool, veth: bool = True) -> None:
    for ns in (ns_a, ns_b):
        sh("ip", "netns", "add", ns)
        # No IPv6 chatter (router solicitations, MLD) on links that carry only ESP; with
        # IPv6 inside, TUNs get no link-local address and so send nothing of their own.
        ns_sh(ns, "sysctl", "-qw", f"net.ipv6.conf.default.disable_ipv6={0 if ipv6 else 1}")
        ns_sh(ns, "sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    if not veth:
        return
    sh("ip", "-n", ns_a, "link", "add", WIRE, "type", "veth", "peer", "name", WIRE, "netns", ns_b)
    for ns in (ns_a, ns_b):
        ns_sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{WIRE}.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", WIRE, "up")


def remove_namespaces(suffix: str) -> None:
    for ns in _namespaces(suffix):
        sh("ip", "netns", "del", ns, check=False)


def _address_host(host: Host, peer: Host) -> None:
    sh("ip", "-n", host.ns, "addr", "add", f"{host.inner4}/24", "dev", TUN)
    sh("ip", "-n", host.ns, "route", "add", str(_net(peer.inner4, 24)), "dev", TUN)
    if host.inner6:
        sh("ip", "-n", host.ns, "addr", "add", f"{host.inner6}/64", "dev", TUN, "nodad")
        sh("ip", "-n", host.ns, "route", "add", str(_net(peer.inner6, 64)), "dev", TUN)


def _net(addr: str, plen: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(f"{addr}/{plen}", strict=False)


def free_udp_ports() -> tuple[int, int]:
    """Two UDP ports free on 127.0.0.1 now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return socks[0].getsockname()[1], socks[1].getsockname()[1]
    finally:
        for sock in socks:
            sock.close()


def _wire_args(ns: str, index: int, udp_ports: tuple[int, int] | None) -> list[str]:
    if udp_ports is None:
        return ["--wire-if", f"{WIRE}@{ns}"]
    local, peer = udp_ports[index], udp_ports[1 - index]
    return ["--wire-udp", f"127.0.0.1:{local},127.0.0.1:{peer}"]


@asynccontextmanager
async def two_hosts(
    sock_dir: Path,
    *,
    ipv6: bool = False,
    extra_args: Sequence[str] = (),
    udp_ports: tuple[int, int] | None = None,
    tun_offload: str = "on",
) -> AsyncIterator[Pair]:
    """Two namespaces, a server each with its TUN attached; their wires a veth between
    the namespaces or, with ``udp_ports``, a UDP cable over the test's own loopback;
    ``tun_offload`` the servers' --tun-offload."""
    suffix = secrets.token_hex(3)
    ns_a, ns_b = _namespaces(suffix)
    try:
        _make_links(ns_a, ns_b, ipv6, veth=udp_ports is None)
        async with AsyncExitStack() as stack:
            hosts = []
            for index, (ns, inner4, inner6, outer4, outer6) in enumerate(
                zip((ns_a, ns_b), INNER4, INNER6, OUTER4, OUTER6, strict=True)
            ):
                server, client = await stack.enter_async_context(
                    running_server(
                        sock_dir,
                        "--device",
                        DEV,
                        "--host-tun",
                        f"{TUN}@{ns}",
                        *_wire_args(ns, index, udp_ports),
                        "--tun-offload",
                        tun_offload,
                        *extra_args,
                    )
                )
                hosts.append(
                    Host(ns, server, client, inner4, inner6 if ipv6 else "", outer4, outer6)
                )
            a, b = hosts
            _address_host(a, b)
            _address_host(b, a)
            yield Pair((a, b), suffix)
    finally:
        remove_namespaces(suffix)


# -- SAs and policies --------------------------------------------------------------------


def _selector(src_net: str, dst_net: str) -> xpb.XfrmSelector:
    s, d = ipaddress.ip_network(src_net), ipaddress.ip_network(dst_net)
    family = xpb.ADDRESS_FAMILY_INET6 if s.version == 6 else xpb.ADDRESS_FAMILY_INET
    return xpb.XfrmSelector(
        saddr=str(s.network_address),
        daddr=str(d.network_address),
        prefixlen_s=s.prefixlen,
        prefixlen_d=d.prefixlen,
        family=family,
    )


def _family(addr: str) -> xpb.AddressFamily:
    return xpb.ADDRESS_FAMILY_INET6 if ":" in addr else xpb.ADDRESS_FAMILY_INET


def tunnel_sa(
    src: str, dst: str, sel: tuple[str, str], spi: int, key: bytes, inbound: bool
) -> xpb.XfrmUsersaInfo:
    flags = PACKET | (INBOUND if inbound else 0) | (IPV6 if ":" in src else 0)
    return xpb.XfrmUsersaInfo(
        id=xpb.XfrmId(daddr=dst, spi=spi, proto=50),
        saddr=src,
        reqid=REQID,
        mode=xpb.XFRM_MODE_TUNNEL,
        family=_family(src),
        replay_window=128 if inbound else 0,
        sel=_selector(*sel),
        aead=xpb.XfrmAlgoAead(alg_name=AEAD, alg_key=key, alg_icv_len=128),
        offload=xpb.XfrmUserOffload(dev=DEV, flags=flags),
    )


def tunnel_policy(
    src: str, dst: str, sel: tuple[str, str], inbound: bool
) -> xpb.XfrmUserpolicyInfo:
    return xpb.XfrmUserpolicyInfo(
        sel=_selector(*sel),
        dir=xpb.POLICY_DIR_IN if inbound else xpb.POLICY_DIR_OUT,
        tmpl=[
            xpb.XfrmUserTmpl(
                id=xpb.XfrmId(daddr=dst, proto=50),
                saddr=src,
                reqid=REQID,
                mode=xpb.XFRM_MODE_TUNNEL,
                family=_family(src),
            )
        ],
        offload=xpb.XfrmUserOffload(dev=DEV, flags=PACKET),
    )


def _ends(pair: Pair, outer6: bool) -> tuple[str, str]:
    a, b = pair.a, pair.b
    return (a.outer6, b.outer6) if outer6 else (a.outer4, b.outer4)


async def install_states(
    pair: Pair, *, inner6: bool = False, outer6: bool = False
) -> tuple[int, int]:
    """A fresh SA pair (A->B, B->A) on both devices; returns the two SPIs."""
    src, dst = _ends(pair, outer6)
    net = NET6 if inner6 else NET4
    spis = (0x1000 + secrets.randbelow(1 << 20), 0x2000000 + secrets.randbelow(1 << 20))
    legs = ((pair.a, pair.b, src, dst, net), (pair.b, pair.a, dst, src, (net[1], net[0])))
    for (sender, receiver, s, d, sel), spi in zip(legs, spis, strict=True):
        key = os.urandom(20)
        # the receiver first, so that nothing sent on a new SA meets a NIC without it
        added_in = await receiver.client.state_add(tunnel_sa(s, d, sel, spi, key, inbound=True))
        added_out = await sender.client.state_add(tunnel_sa(s, d, sel, spi, key, inbound=False))
        pair.sas.append(
            SaKeys(
                s, d, spi, key, sender, added_out.offload_handle, receiver, added_in.offload_handle
            )
        )
    return spis


async def remove_states(sas: Sequence[SaKeys]) -> None:
    """Delete and free SAs: the senders' first, then the receivers' (nothing in flight)."""
    for sa in sas:
        await sa.sender.client.state_delete(DEV, sa.out_handle)
        await sa.sender.client.state_free(DEV, sa.out_handle)
    for sa in sas:
        await sa.receiver.client.state_delete(DEV, sa.in_handle)
        await sa.receiver.client.state_free(DEV, sa.in_handle)


async def install_policies(pair: Pair, *, inner6: bool = False, outer6: bool = False) -> None:
    src, dst = _ends(pair, outer6)
    net = NET6 if inner6 else NET4
    back = (net[1], net[0])
    await pair.a.client.policy_add(tunnel_policy(src, dst, net, inbound=False))
    await pair.a.client.policy_add(tunnel_policy(dst, src, back, inbound=True))
    await pair.b.client.policy_add(tunnel_policy(dst, src, back, inbound=False))
    await pair.b.client.policy_add(tunnel_policy(src, dst, net, inbound=True))


async def install_tunnel(
    pair: Pair, *, inner6: bool = False, outer6: bool = False
) -> tuple[int, int]:
    spis = await install_states(pair, inner6=inner6, outer6=outer6)
    await install_policies(pair, inner6=inner6, outer6=outer6)
    return spis


async def run(*args: str, timeout: float = 60) -> tuple[int, str]:
    """A command's exit status and output (stdout and stderr), bounded in time."""
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def in_ns(ns: str, *args: str, timeout: float = 60) -> tuple[int, str]:
    return await run("ip", "netns", "exec", ns, *args, timeout=timeout)


async def stat(host: Host, name: str) -> int:
    """One xfrm_stat counter of the host's device."""
    reply = await host.client.get_stats(DEV)
    return {c.name: c.value for c in reply.total}[name]


async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Until ``predicate`` holds (checked every 10 ms, at most 500 times)."""
    for _ in range(500):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def capture(ns: str, iface: str, pcap: Path, count: int) -> AsyncIterator[None]:
    """dumpcap on ``iface`` in ``ns`` into ``pcap`` (at most ``count`` frames, 30 s),
    started before the block runs; waits for it to stop after the block."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "dumpcap", "-i", iface, "-c", str(count),
        "-a", "duration:30", "-P", "-w", str(pcap),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        started = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"Capturing on" in started, started

        async def header_written() -> bool:  # the capture is active once the file has one
            return pcap.exists() and pcap.stat().st_size >= 24

        await wait_for(header_written, "dumpcap to start")
        yield
        await asyncio.wait_for(proc.wait(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def counters_reach(host: Host, **expected: int) -> None:
    """Until the device's interface counters hold ``expected`` (the sends and TUN writes
    are counted by their writer threads just after the system call returns)."""
    seen: dict[str, int] = {}

    async def reached() -> bool:
        shown = (await host.client.get_device(DEV)).interfaces
        seen.update({name: getattr(shown, name) for name in expected})
        return seen == expected

    try:
        await wait_for(reached, f"counters {expected}")
    except AssertionError:
        raise AssertionError(f"counters {seen}, expected {expected}") from None

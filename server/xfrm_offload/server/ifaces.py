"""Linux interfaces for the NIC's two sides: TUN devices, AF_PACKET sockets, link state.

Everything here is thin system glue: open a TUN (IFF_TUN | IFF_NO_PI) or a packet
socket on a link, possibly inside a named network namespace (``ip netns``'s
``/run/netns/NAME``), read and set MTU and flags, and watch link changes through
rtnetlink. A file descriptor keeps the namespace it was created in, so each one is
opened while the calling thread is inside that namespace and the thread goes back
at once (``setns`` changes the calling thread only).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from xfrm_offload.engine.extensions import load_extension

#: ioctl numbers (linux/if_tun.h, linux/sockios.h).
TUNSETIFF = 0x400454CA
TUNSETCARRIER = 0x400454E2
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUNSETVNETLE = 0x400454DC
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
#: TUNSETOFFLOAD bits: the host may leave checksums to us and hand us TCP super-packets.
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
#: rtnetlink (linux/rtnetlink.h): link messages and their multicast group.
RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
IFLA_STATS64 = 23
NETNS_DIR = "/run/netns"

_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class IfRef:
    """An interface by name, in a named network namespace or the server's own ("")."""

    name: str
    netns: str = ""

    def __str__(self) -> str:
        return f"{self.name}@{self.netns}" if self.netns else self.name


def parse_ifref(text: str) -> IfRef:
    """``IFNAME[@NETNS]``; ValueError naming what is wrong."""
    name, sep, netns = text.partition("@")
    if not _IFNAME.match(name):
        raise ValueError(
            f"{text!r}: interface name must be 1-15 characters of letters, digits, '_', '.', '-'"
        )
    if sep and not _NETNS.match(netns):
        raise ValueError(f"{text!r}: network namespace name after '@' is empty or malformed")
    return IfRef(name, netns)


@dataclass(frozen=True)
class UdpRef:
    """A UDP cable's end: this server's address and port, the peer's, and the namespace
    its socket lives in ("" = the server's own)."""

    local: tuple[str, int]
    peer: tuple[str, int]
    netns: str = ""

    def __str__(self) -> str:
        text = f"{_hostport(self.local)},{_hostport(self.peer)}"
        return f"{text}@{self.netns}" if self.netns else text


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 1 <= number <= 65535:
        raise ValueError(f"{what} {text!r}: expected ADDRESS:PORT ([IPv6]:PORT), port 1-65535")
    return host, number


def parse_udpref(text: str) -> UdpRef:
    """``LOCAL:PORT,PEER:PORT[@NETNS]``; ValueError naming what is wrong."""
    body, sep, netns = text.partition("@")
    if sep and not _NETNS.match(netns):
        raise ValueError(f"{text!r}: network namespace name after '@' is empty or malformed")
    local, comma, peer = body.partition(",")
    if not comma:
        raise ValueError(f"{text!r}: expected LOCAL:PORT,PEER:PORT")
    ends = _parse_hostport(local, "local"), _parse_hostport(peer, "peer")
    if (":" in ends[0][0]) != (":" in ends[1][0]):
        raise ValueError(f"{text!r}: both ends must be IPv4 or both IPv6")
    return UdpRef(ends[0], ends[1], netns)


def open_udp_socket(ref: UdpRef, rcvbuf: int) -> socket.socket:
    """A nonblocking UDP socket bound to ``ref.local``, connected to ``ref.peer``."""
    family = socket.AF_INET6 if ":" in ref.local[0] else socket.AF_INET
    with netns(ref.netns):
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind(ref.local)
            sock.connect(ref.peer)
        except OSError:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


_libc = ctypes.CDLL(None, use_errno=True)


def load_helper(name: str) -> ModuleType | None:
    """C helper ``name`` of this package (_tunoffload, _wireio) unless it was not built
    or XFRM_OFFLOAD_REALIF_HELPERS=0: the caller then runs its Python equivalent
    ($XFRM_OFFLOAD_NATIVE_DIR: another build of it, see engine/extensions.py)."""
    if os.environ.get("XFRM_OFFLOAD_REALIF_HELPERS", "1") == "0":
        return None
    return load_extension("xfrm_offload.server", name)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


@contextlib.contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block with this thread in network namespace ``name`` ("" = stay here)."""
    if not name:
        yield
        return
    try:
        target = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no network namespace {name!r}") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def _ifreq(name: str, fmt: str = "", *values: int) -> bytes:
    data = struct.pack(fmt, *values) if fmt else b""
    return name.encode().ljust(16, b"\0") + data.ljust(24, b"\0")


class Control:
    """ioctls on the interfaces of one namespace (a datagram socket opened there)."""

    def __init__(self, netns_name: str) -> None:
        with netns(netns_name):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def close(self) -> None:
        self.sock.close()

    def _ioctl(self, request: int, arg: bytes) -> bytes:
        return fcntl.ioctl(self.sock.fileno(), request, arg)

    def flags(self, name: str) -> int:
        (value,) = struct.unpack_from("H", self._ioctl(SIOCGIFFLAGS, _ifreq(name)), 16)
        return int(value)

    def set_up(self, name: str) -> None:
        self._ioctl(SIOCSIFFLAGS, _ifreq(name, "H", self.flags(name) | IFF_UP))

    def mtu(self, name: str) -> int:
        (value,) = struct.unpack_from("i", self._ioctl(SIOCGIFMTU, _ifreq(name)), 16)
        return int(value)

    def set_mtu(self, name: str, mtu: int) -> None:
        self._ioctl(SIOCSIFMTU, _ifreq(name, "i", mtu))


def open_tun(ref: IfRef, vnet_hdr_len: int = 0) -> int:
    """A nonblocking fd on TUN ``ref`` (created if missing: it then lives while the fd does).

    ``vnet_hdr_len`` > 0: every packet carries a little-endian virtio_net_hdr of that
    size, and the host may hand over TCP super-packets (TSO4/6) with checksums left to
    the reader (see tunoffload.py); 0: plain IP packets, one per read.
    """
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr_len else 0)
    with netns(ref.netns):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, TUNSETIFF, _ifreq(ref.name, "H", flags))
            if vnet_hdr_len:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", vnet_hdr_len))
                fcntl.ioctl(fd, TUNSETVNETLE, struct.pack("i", 1))
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError:
            os.close(fd)
            raise
    return fd


def set_carrier(fd: int, on: bool) -> None:
    """The TUN's carrier (what the host sees as LOWER_UP / NO-CARRIER)."""
    fcntl.ioctl(fd, TUNSETCARRIER, struct.pack("i", int(on)))


def open_packet_socket(ref: IfRef, rcvbuf: int) -> socket.socket:
    """A nonblocking AF_PACKET datagram socket bound to link ``ref`` (every protocol)."""
    with netns(ref.netns):
        sock = socket.socket(
            socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.htons(ETH_P_ALL)
        )
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((ref.name, ETH_P_ALL))
        except OSError:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


def packet_drops(sock: socket.socket) -> int:
    """Frames the kernel dropped because the socket's queue was full, since the last call."""
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _packets, drops = struct.unpack("II", raw)
    return int(drops)


def open_link_watch(netns_name: str) -> socket.socket:
    """A nonblocking rtnetlink socket receiving link changes of namespace ``netns_name``."""
    with netns(netns_name):
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        sock.bind((0, RTMGRP_LINK))
    sock.setblocking(False)
    return sock


def running(flags: int) -> bool:
    """Administratively up with its carrier (``ip link``'s UP and LOWER_UP): the carrier
    flag changes at once, where IFF_RUNNING waits for the kernel's linkwatch."""
    return bool(flags & IFF_UP and flags & IFF_LOWER_UP)


@dataclass(frozen=True)
class LinkInfo:
    """What RTM_GETLINK says of a link: its flags and the packets it dropped sending."""

    flags: int
    tx_dropped: int


def link_info(netns_name: str, index: int) -> LinkInfo | None:
    """Flags and counters of link ``index`` (RTM_GETLINK); None if it is gone."""
    with netns(netns_name):
        sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
    with sock:
        sock.settimeout(2.0)
        # nlmsghdr (len, RTM_GETLINK, NLM_F_REQUEST, seq 1, pid 0) + ifinfomsg
        request = struct.pack("IHHII", 32, RTM_GETLINK, 1, 1, 0)
        request += struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, 0, 0)
        sock.send(request)
        reply = sock.recv(65536)
    if len(reply) < 32:
        return None
    length, kind = struct.unpack_from("IH", reply)
    got, flags = struct.unpack_from("iI", reply, 20)
    if kind != RTM_NEWLINK or got != index:
        return None
    tx_dropped = 0
    offset = 32
    while offset + 4 <= min(length, len(reply)):
        size, attr = struct.unpack_from("HH", reply, offset)
        if size < 4:
            break
        if attr == IFLA_STATS64 and size >= 4 + 8 * 8:
            # rtnl_link_stats64: rx/tx packets, rx/tx bytes, rx/tx errors, rx/tx dropped
            (tx_dropped,) = struct.unpack_from("Q", reply, offset + 4 + 7 * 8)
        offset += (size + 3) & ~3
    return LinkInfo(flags, tx_dropped)


def link_flags(netns_name: str, index: int) -> int | None:
    """The 32-bit interface flags of link ``index``; None if it is gone."""
    info = link_info(netns_name, index)
    return None if info is None else info.flags


def ifindex(netns_name: str, name: str) -> int:
    with netns(netns_name):
        try:
            return socket.if_nametoindex(name)
        except OSError:  # raised without an errno
            raise OSError(errno.ENODEV, "no such interface") from None


def link_messages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(message type, ifindex, flags) of each RTM_NEWLINK / RTM_DELLINK in ``data``."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("IH", data, offset)
        if length < 16:
            return
        if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= 32:
            index, flags = struct.unpack_from("iI", data, offset + 20)
            yield kind, index, flags
        offset += (length + 3) & ~3

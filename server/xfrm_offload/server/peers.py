"""Who is on the other end of a local connection: SO_PEERCRED on the Unix socket, the
socket owner's uid on plaintext loopback TCP.

gRPC does not tell a handler which socket its call came on (the peer string of a Unix
connection is just ``unix:``, and its local credentials carry no uid), so the server
accepts Unix connections itself (:class:`UnixGate`): it reads the peer's uid, gid and
pid with SO_PEERCRED, connects to gRPC's own listener in a private directory from a
socket bound to a fresh abstract name, remembers name -> credentials, and copies bytes
both ways. gRPC then reports that name as the call's peer (``unix-abstract:NAME``), and
:meth:`UnixGate.lookup` turns it back into the credentials. Abstract names are unique
while bound and a name leaves the table before its socket closes, so no other
connection can take one over. Anyone who reaches the private listener directly (only
the server's uid or root can) has no entry, hence no identity.

On loopback TCP the peer string names the client's port; the kernel's socket table
(NETLINK_SOCK_DIAG, as ``ss -e`` reads it) says which uid owns that socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("xfrm_offload.server")

#: How much one read of the byte pump takes.
CHUNK = 256 * 1024


@dataclass(frozen=True)
class PeerCred:
    """What SO_PEERCRED reports: the connecting process's pid, uid and gid."""

    pid: int
    uid: int
    gid: int


def peer_cred(sock: socket.socket) -> PeerCred:
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return PeerCred(pid, uid, gid)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file, then half-close the other side (gRPC's own ends travel)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class UnixGate:
    """A Unix socket in front of gRPC that knows each client's uid and gid."""

    def __init__(self, path: Path, mode: int, upstream: Path) -> None:
        self.path = path
        self.mode = mode
        self.upstream = upstream
        self._peers: dict[str, PeerCred] = {}
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def lookup(self, grpc_peer: str) -> PeerCred | None:
        """The credentials behind a call whose ``context.peer()`` is ``grpc_peer``."""
        name = grpc_peer.removeprefix("unix-abstract:")
        return self._peers.get(name) if name != grpc_peer else None

    async def start(self) -> None:
        old_umask = os.umask(0o177)  # born 0600: no window where others may connect
        try:
            self._server = await asyncio.start_unix_server(self._accepted, path=str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, self.mode)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        name = f"xfrm-offloadd-{os.getpid()}-{secrets.token_hex(12)}"
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            cred = peer_cred(writer.get_extra_info("socket"))
            upstream.bind("\0" + name)
            upstream.setblocking(False)
            await asyncio.get_running_loop().sock_connect(upstream, str(self.upstream))
            up_reader, up_writer = await asyncio.open_unix_connection(sock=upstream)
        except OSError as exc:
            log.warning("unix connection dropped", extra={"fields": {"error": str(exc)}})
            upstream.close()
            writer.transport.abort()
            self._tasks.discard(task)
            return
        self._peers[name] = cred
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            del self._peers[name]  # before the name can be bound again
            up_writer.transport.abort()
            writer.close()
            self._tasks.discard(task)

    async def close(self) -> None:
        """Stop accepting now (the socket file goes); connections end when gRPC's do."""
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    async def wait_closed(self, timeout: float) -> None:
        """After gRPC stopped: let the last bytes through, then cut what is left."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


# -- loopback TCP: the owner of the client's socket ------------------------------------

_NETLINK_SOCK_DIAG = 4  # NETLINK_INET_DIAG, which socket does not name
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_ESTABLISHED = 1
_NOCOOKIE = 0xFFFFFFFF


def _sockid(family: int, src: str, sport: int, dst: str, dport: int) -> bytes:
    """struct inet_diag_sockid: ports and addresses big-endian, no interface, no cookie."""
    return (
        struct.pack("!HH", sport, dport)
        + socket.inet_pton(family, src).ljust(16, b"\0")
        + socket.inet_pton(family, dst).ljust(16, b"\0")
        + struct.pack("=III", 0, _NOCOOKIE, _NOCOOKIE)
    )


def socket_owner(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the TCP socket connected from ``client`` to ``server`` on this host."""
    family = socket.AF_INET6 if ":" in client[0] else socket.AF_INET
    request = struct.pack(
        "=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_ESTABLISHED
    ) + _sockid(family, client[0], client[1], server[0], server[1])
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(header + request)
        reply = nl.recv(8192)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == _NLMSG_ERROR or length < 16 + 80:
        return None
    # struct inet_diag_msg: 4 bytes, the 48-byte sockid, expires, rqueue, wqueue, uid, inode
    (uid,) = struct.unpack_from("=I", reply, 16 + 4 + 48 + 12)
    return int(uid)


def parse_tcp_peer(grpc_peer: str) -> tuple[str, int] | None:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` -> (address, port); None otherwise."""
    for prefix in ("ipv4:", "ipv6:"):
        if grpc_peer.startswith(prefix):
            host, _, port = grpc_peer.removeprefix(prefix).rpartition(":")
            host = host.strip("[]").split("%", 1)[0]
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return None
            return (host, int(port)) if port.isdigit() else None
    return None


def loopback_owner(grpc_peer: str, listeners: list[tuple[str, int]]) -> int | None:
    """The uid behind a plaintext loopback call, trying each loopback listener we have."""
    client = parse_tcp_peer(grpc_peer)
    if client is None or not ipaddress.ip_address(client[0]).is_loopback:
        return None
    v6 = ":" in client[0]
    for host, port in listeners:
        if (":" in host) != v6:
            continue
        try:
            uid = socket_owner(client, (host, port))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EAGAIN):
                log.warning("sock_diag lookup failed", extra={"fields": {"error": str(exc)}})
            continue
        if uid is not None:
            return uid
    return None

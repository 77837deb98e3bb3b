"""Who is on the other end of a local connection: SO_PEERCRED on the Unix socket, the
socket owner's uid on plaintext loopback TCP.

gRPC does not tell a handler which socket its call came on (the peer string of a Unix
connection is just ``unix:``, and its local credentials carry no uid), so the server
accepts Unix connections itself (:class:`UnixGate`): it reads the peer's uid, gid and
pid with SO_PEERCRED, connects to gRPC's own listener in a private directory from a
socket bound to a fresh abstract name, remembers name -> credentials, and relays bytes
both ways. gRPC then reports that name as the call's peer (``unix-abstract:NAME``), and
:meth:`UnixGate.lookup` turns it back into the credentials. Abstract names are unique
while bound and a name leaves the table before its socket closes, so no other
connection can take one over. Anyone who reaches the private listener directly (only
the server's uid or root can) has no entry, hence no identity.

The relay runs beside the event loop, never on it: a thread accepts (blocking), and
each connection gets one thread per direction that moves bytes with ``splice(2)``
through a pipe of its own. The bytes never enter Python, and a connection holds at most
one pipe (CHUNK) per direction. The loop is C (``_relay.c``) and holds no GIL from the
connection's start to its end: the same loop over ``os.splice`` (the fallback where the
extension is not built) takes the GIL back after every call and waits for it while the
event loop serves gRPC, which cost more than the copying. An end of file travels on as
a half-close; an error or a reset cuts both directions.

On loopback TCP the peer string names the client's port; the kernel's socket table
(NETLINK_SOCK_DIAG, as ``ss -e`` reads it) says which uid owns that socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import itertools
import logging
import os
import secrets
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from xfrm_offload.engine.extensions import load_extension

from .logs import RateLimitedLog

#: The C pump (``_relay.c``, built by hatch_build.py); None: the os.splice loop runs.
native_pump = load_extension("xfrm_offload.server", "_relay")

log = logging.getLogger("xfrm_offload.server")

#: How many Unix connections are relayed at once by default (two threads each).
MAX_CONNECTIONS = 1024

#: The most one splice moves, and the capacity of each direction's pipe: all that one
#: connection holds inside the relay per direction.
CHUNK = 256 * 1024
#: Accept errors that mean "out of descriptors or memory, for now": retry after this.
_ACCEPT_BACKOFF = 0.1
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: How long close() waits for the accept thread (it ends at once; this only bounds a bug).
_ACCEPTOR_JOIN = 5.0


@dataclass(frozen=True)
class PeerCred:
    """What SO_PEERCRED reports: the connecting process's pid, uid and gid."""

    pid: int
    uid: int
    gid: int


def peer_cred(sock: socket.socket) -> PeerCred:
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return PeerCred(pid, uid, gid)


class _Relayed:
    """One relayed connection: the client's socket and the one to gRPC's listener."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def abort(self) -> None:
        """Cut both directions: a blocked splice returns at once. The descriptors stay
        open until both pumps are gone (closing one a thread still uses could hand its
        number to another file)."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.upstream.close()
        self.client.close()


def _pump(src: socket.socket, dst: socket.socket, relayed: _Relayed) -> None:
    """Move bytes from ``src`` to ``dst`` until end of file, then half-close ``dst``
    (gRPC's own ends travel); on any error cut the connection both ways."""
    try:
        pipe_r, pipe_w = os.pipe2(os.O_CLOEXEC)
    except OSError:  # out of descriptors: this connection goes
        relayed.abort()
        return
    try:
        with contextlib.suppress(OSError):  # the default (64 KiB) also works
            fcntl.fcntl(pipe_w, fcntl.F_SETPIPE_SZ, CHUNK)
        if native_pump is not None:
            _, error = native_pump.pump(src.fileno(), dst.fileno(), pipe_r, pipe_w, CHUNK)
            if error:
                raise OSError(error, os.strerror(error))
        else:
            _splice_loop(src.fileno(), dst.fileno(), pipe_r, pipe_w)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        relayed.abort()
    finally:
        os.close(pipe_r)
        os.close(pipe_w)


def _splice_loop(src: int, dst: int, pipe_r: int, pipe_w: int) -> None:
    """What ``_relay.pump`` does, in Python (the GIL comes back after every call)."""
    # The pipe is empty before every read, so the read never waits on it.
    while size := os.splice(src, pipe_w, CHUNK):
        while size:
            size -= os.splice(pipe_r, dst, size)


class UnixGate:
    """A Unix socket in front of gRPC that knows each client's uid and gid."""

    def __init__(
        self, path: Path, mode: int, upstream: Path, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.path = path
        self.mode = mode
        self.upstream = upstream
        #: Connections relayed at once; past it a new one is closed at once (each costs
        #: two threads and two pipes for as long as its client keeps it open).
        self.max_connections = max_connections
        self._warnings = RateLimitedLog()
        self._peers: dict[str, PeerCred] = {}
        self._open: set[_Relayed] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._serial = itertools.count()

    def lookup(self, grpc_peer: str) -> PeerCred | None:
        """The credentials behind a call whose ``context.peer()`` is ``grpc_peer``."""
        name = grpc_peer.removeprefix("unix-abstract:")
        return self._peers.get(name) if name != grpc_peer else None

    @property
    def open_connections(self) -> int:
        """Connections relayed now (accepted and not yet closed)."""
        return len(self._open)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # born 0600: no window where others may connect
        try:
            listener.bind(str(self.path))
        except OSError:
            listener.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(self.path, self.mode)
        listener.listen(socket.SOMAXCONN)
        self._listener = listener
        self._acceptor = threading.Thread(
            target=self._accept, name=f"unix-gate {self.path.name}", daemon=True
        )
        self._acceptor.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError as exc:  # EINVAL once close() shut the listener down
                if exc.errno in _TRANSIENT:
                    self._warnings.warn("accept", "unix accept failed", error=str(exc))
                    self._closing.wait(_ACCEPT_BACKOFF)
                continue
            if len(self._open) >= self.max_connections:
                client.close()
                self._warnings.warn(
                    "limit", "unix connection refused: too many open", limit=self.max_connections
                )
                continue
            try:
                relayed = _Relayed(client)
            except OSError as exc:  # no descriptor for the upstream side: this one goes
                self._warnings.warn("dropped", "unix connection dropped", error=str(exc))
                client.close()
                continue
            self._open.add(relayed)
            try:
                threading.Thread(
                    target=self._relay,
                    args=(relayed,),
                    name=f"unix-relay {self.path.name}",
                    daemon=True,
                ).start()
            except RuntimeError as exc:  # no thread to spare: this connection goes
                self._warnings.warn("dropped", "unix connection dropped", error=str(exc))
                self._forget(relayed)
        self._listener.close()

    def _relay(self, relayed: _Relayed) -> None:
        """One connection, from SO_PEERCRED to the close of both sockets."""
        name = f"xfrm-offloadd-{os.getpid()}-{next(self._serial)}-{secrets.token_hex(8)}"
        try:
            cred = peer_cred(relayed.client)
            relayed.upstream.bind("\0" + name)
            self._peers[name] = cred  # bound: the name is ours; known before gRPC sees it
            relayed.upstream.connect(str(self.upstream))
            back = threading.Thread(
                target=_pump,
                args=(relayed.upstream, relayed.client, relayed),
                name=f"unix-relay {self.path.name}",
                daemon=True,
            )
            back.start()
        except (OSError, RuntimeError) as exc:
            self._peers.pop(name, None)
            self._warnings.warn("dropped", "unix connection dropped", error=str(exc))
            self._forget(relayed)
            return
        try:
            _pump(relayed.client, relayed.upstream, relayed)
            back.join()
        finally:  # also if the pump failed: the name and both sockets never outlive it
            self._peers.pop(name, None)  # before the name can be bound again
            self._forget(relayed)

    def _forget(self, relayed: _Relayed) -> None:
        relayed.close()
        self._open.discard(relayed)
        if not self._open and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                self._loop.call_soon_threadsafe(self._check_idle)

    def _check_idle(self) -> None:
        if not self._open:
            self._idle.set()

    async def close(self) -> None:
        """Stop accepting now (the socket file goes); connections end when gRPC's do."""
        self._closing.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        if self._acceptor is not None:
            self._acceptor.join(_ACCEPTOR_JOIN)  # at once: the shutdown woke it
            if self._acceptor.is_alive():
                log.warning("unix gate: the accept thread did not stop")
        self.path.unlink(missing_ok=True)

    async def wait_closed(self, timeout: float) -> None:
        """After gRPC stopped: let the last bytes through, then cut what is left."""
        if not await self._wait_idle(timeout):
            for relayed in list(self._open):
                relayed.abort()
            if not await self._wait_idle(timeout):
                log.warning(
                    "unix relay: connections still open after shutdown",
                    extra={"fields": {"count": len(self._open)}},
                )

    async def _wait_idle(self, timeout: float) -> bool:
        while self._open:
            self._idle.clear()
            if not self._open:
                break
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                return not self._open
        return True


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

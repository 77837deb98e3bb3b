"""The Unix socket's SO_PEERCRED relay (peers.UnixGate) on its own, between real Unix
sockets: a client on the public socket, an upstream server standing in for gRPC's
private listener. Each test runs with the C splice pump and with the os.splice loop
(the fallback of a build without a compiler).

What gRPC relies on: identity by the upstream's peer name, every byte in order, an end of
file travelling on as a half-close in either direction, a client gone mid-stream cutting
both ways, the server's stop ending every connection, and nothing left behind (threads,
descriptors, table entries) however many connections came and went.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from xfrm_offload.server import peers
from xfrm_offload.server.peers import PeerCred, UnixGate

from ..conftest import until as wait_until

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["native", "python"])
def pump(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setattr(peers, "native_pump", None)
    elif peers.native_pump is None:
        pytest.skip("the relay's C pump is not built here (no compiler)")
    yield request.param


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the relay's threads reach on their own (bounded: 30 s)."""
    await wait_until(condition, what, 30.0)


@asynccontextmanager
async def gate_to(sock_dir: Path, handler: Handler) -> AsyncIterator[UnixGate]:
    """A gate on ``sock_dir/public`` in front of an upstream server running ``handler``."""
    upstream = await asyncio.start_unix_server(handler, path=str(sock_dir / "private"))
    gate = UnixGate(sock_dir / "public", 0o600, sock_dir / "private")
    await gate.start()
    try:
        yield gate
    finally:
        await gate.close()
        await gate.wait_closed(1.0)
        upstream.close()
        await upstream.wait_closed()


async def connect(gate: UnixGate) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(gate.path))


async def echo_then_mark_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte as it comes; after the client's end of file, b"EOF" and close."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write(b"EOF")
    await writer.drain()
    writer.close()


def relay_threads(gate: UnixGate) -> int:
    """This gate's relay threads alive now (named after its socket; earlier tests'
    servers may still hold connections of their own)."""
    return sum(t.name == f"unix-relay {gate.path.name}" for t in threading.enumerate())


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_upstream_sees_a_name_that_maps_to_the_clients_credentials(
    pump: str, sock_dir: Path
) -> None:
    names: asyncio.Queue[str] = asyncio.Queue()

    async def report_name(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        await names.put(peer[1:].decode() if isinstance(peer, bytes) else str(peer))
        await reader.read()
        writer.close()

    async with gate_to(sock_dir, report_name) as gate:
        assert (gate.path.stat().st_mode & 0o777) == 0o600
        _, writer = await connect(gate)
        name = await asyncio.wait_for(names.get(), 30)
        me = PeerCred(os.getpid(), os.getuid(), os.getgid())
        assert gate.lookup(f"unix-abstract:{name}") == me
        assert gate.lookup(f"unix:{name}") is None  # only the abstract names are ours
        assert gate.lookup("unix-abstract:xfrm-offloadd-0-0-00") is None
        writer.close()
        await until(lambda: gate.lookup(f"unix-abstract:{name}") is None, "name forgotten")
        assert gate.open_connections == 0


async def test_every_byte_both_ways_and_the_end_of_file_travels_up_then_down(
    pump: str, sock_dir: Path
) -> None:
    data = os.urandom(3 << 20)  # many pipe-fulls: the pump loops, bounded, both ways

    async with gate_to(sock_dir, echo_then_mark_eof) as gate:
        reader, writer = await connect(gate)

        async def send() -> None:
            for i in range(0, len(data), 100_000):
                writer.write(data[i : i + 100_000])
                await writer.drain()
            writer.write_eof()  # the upstream answers b"EOF" only once it saw ours

        sender = asyncio.create_task(send())
        got = await asyncio.wait_for(reader.read(), 60)  # to the upstream's end of file
        await sender
        assert got == data + b"EOF"
        writer.close()


async def test_the_upstreams_end_of_file_leaves_the_client_able_to_send(
    pump: str, sock_dir: Path
) -> None:
    heard: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def say_hello_then_listen(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"hello")
        writer.write_eof()
        heard.set_result(await reader.read())  # all the client sends, to its end of file
        writer.close()

    async with gate_to(sock_dir, say_hello_then_listen) as gate:
        reader, writer = await connect(gate)
        assert await asyncio.wait_for(reader.read(), 30) == b"hello"  # then end of file
        writer.write(b"still here")
        writer.write_eof()
        assert await asyncio.wait_for(heard, 30) == b"still here"
        writer.close()
        await until(lambda: gate.open_connections == 0, "connection closed")


async def test_a_client_gone_mid_stream_ends_its_relay(pump: str, sock_dir: Path) -> None:
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def stream_until_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(100_000):  # bounded; the client stops reading long before
                writer.write(bytes(65536))
                await writer.drain()
        ended.set_result(None)
        writer.close()

    async with gate_to(sock_dir, stream_until_gone) as gate:
        reader, writer = await connect(gate)
        await reader.readexactly(1 << 20)  # mid-stream, with more queued unread
        writer.transport.abort()
        await asyncio.wait_for(ended, 30)  # the upstream's writes failed: cut, not stuck
        await until(lambda: gate.open_connections == 0, "relay ended")
        reader, writer = await connect(gate)  # the gate itself carries on
        assert len(await reader.readexactly(65536)) == 65536
        writer.close()


async def test_the_stop_lets_open_connections_finish_then_cuts_them(
    pump: str, sock_dir: Path
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):  # never closes on its own
            writer.write(data)
            await writer.drain()
        writer.close()

    async with gate_to(sock_dir, echo) as gate:
        reader, writer = await connect(gate)
        await gate.close()  # no new connections: the socket file is gone
        assert not gate.path.exists()
        with pytest.raises(OSError):
            await connect(gate)
        writer.write(b"ping")  # the open one still works
        assert await asyncio.wait_for(reader.readexactly(4), 30) == b"ping"
        await gate.wait_closed(0.1)  # its upstream never ends it: cut
        assert gate.open_connections == 0
        assert await asyncio.wait_for(reader.read(), 30) == b""


async def test_200_connections_leave_no_thread_no_descriptor_no_entry(
    pump: str, sock_dir: Path
) -> None:
    async with gate_to(sock_dir, echo_then_mark_eof) as gate:
        # One connection first: the upstream server's and the loop's own lazy resources.
        reader, writer = await connect(gate)
        writer.write_eof()
        assert await reader.read() == b"EOF"
        writer.close()
        await writer.wait_closed()
        await until(lambda: gate.open_connections == 0, "first connection closed")
        # Relay threads of earlier tests gone too, with the sockets they close: the
        # descriptor count below is then this test's own.
        await until(lambda: relay_threads(gate) == 0, "earlier relay threads ended")
        threads, descriptors = threading.active_count(), fds()
        for batch in range(4):  # 50 at once, four times
            conns = [await connect(gate) for _ in range(50)]
            for i, (_, w) in enumerate(conns):
                w.write(f"{batch}-{i}".encode())
                w.write_eof()
            for i, (r, _) in enumerate(conns):
                assert await asyncio.wait_for(r.read(), 30) == f"{batch}-{i}EOF".encode()
            assert len(gate._peers) <= 50
            for _, w in conns:
                w.close()
                await w.wait_closed()
        await until(lambda: gate.open_connections == 0, "all closed")
        await until(lambda: relay_threads(gate) == 0, "relay threads ended")
        assert threading.active_count() <= threads
        assert gate._peers == {}
        await until(lambda: fds() == descriptors, "descriptors closed")


async def test_upstream_gone_drops_the_connection_and_keeps_the_gate(
    pump: str, sock_dir: Path
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with gate_to(sock_dir, hang_up) as gate:
        (sock_dir / "private").unlink()  # gRPC's listener unreachable: connect fails
        reader, writer = await connect(gate)
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()
        await until(lambda: gate.open_connections == 0, "dropped")
        assert gate._peers == {}


def test_the_c_pump_reports_the_error_that_stopped_it() -> None:
    if peers.native_pump is None:
        pytest.skip("the relay's C pump is not built here (no compiler)")
    pipe_r, pipe_w = os.pipe()
    try:
        assert peers.native_pump.pump(-1, -1, pipe_r, pipe_w, 4096) == (0, errno.EBADF)
        with pytest.raises(ValueError, match="chunk"):
            peers.native_pump.pump(0, 1, pipe_r, pipe_w, 0)
    finally:
        os.close(pipe_r)
        os.close(pipe_w)


async def test_bytes_flow_while_the_event_loop_is_busy(pump: str, sock_dir: Path) -> None:
    # The upstream is a thread and the client a blocking socket used from the loop's own
    # thread: the loop does not run at all while the 1 MiB goes there and back, which a
    # relay on the event loop could never carry.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_dir / "private"))
    listener.listen()

    def echo_once() -> None:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    upstream = threading.Thread(target=echo_once, daemon=True)
    upstream.start()
    gate = UnixGate(sock_dir / "public", 0o600, sock_dir / "private")
    await gate.start()
    try:
        data = os.urandom(1 << 20)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(gate.path))

            def send() -> None:
                client.sendall(data)
                client.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send)
            sender.start()
            got = bytearray()
            while chunk := client.recv(65536):  # blocking: the loop is held here
                got += chunk
            sender.join()
        assert bytes(got) == data
        upstream.join(30)
        assert not upstream.is_alive()
    finally:
        listener.close()
        await gate.close()
        await gate.wait_closed(1.0)


def _out_of_descriptors(*args: Any) -> Any:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


@pytest.mark.parametrize("lacking", ["pipe", "upstream socket"])
async def test_out_of_descriptors_drops_the_connection_not_the_gate(
    lacking: str, sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with gate_to(sock_dir, echo_then_mark_eof) as gate:
        threads = threading.active_count()
        with monkeypatch.context() as patch:
            if lacking == "pipe":
                patch.setattr(os, "pipe2", _out_of_descriptors)
            else:  # the socket to gRPC's listener, made as the connection is accepted
                patch.setattr(peers, "_Relayed", _out_of_descriptors)
            reader, writer = await connect(gate)
            assert await asyncio.wait_for(reader.read(), 30) == b""  # cut, not hung
            writer.close()
            await until(lambda: gate.open_connections == 0, "dropped")
        await until(lambda: threading.active_count() == threads, "its threads ended")
        assert gate._peers == {}
        reader, writer = await connect(gate)
        writer.write(b"again")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 30) == b"againEOF"
        writer.close()


async def test_past_the_connection_limit_a_new_one_is_closed_and_the_others_go_on(
    pump: str, sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each relayed connection costs two threads and two pipes for as long as its client
    keeps it: past ``max_connections`` a new one is closed at once (and said once)."""
    async with gate_to(sock_dir, echo_then_mark_eof) as gate:
        gate.max_connections = 2
        held = [await connect(gate) for _ in range(2)]
        for reader, writer in held:  # both relayed: bytes go through
            writer.write(b"ping")
            await writer.drain()
            assert await reader.readexactly(4) == b"ping"
        for _ in range(3):  # three more while full: each closed without a byte
            reader, writer = await connect(gate)
            assert await asyncio.wait_for(reader.read(), 30) == b""
            writer.close()
        assert gate.open_connections == 2
        refused = [r for r in caplog.records if "too many open" in r.getMessage()]
        assert len(refused) == 1  # rate-limited: once per interval
        _, first = held[0]
        first.close()
        await until(lambda: gate.open_connections == 1, "one connection ended")
        reader, writer = await connect(gate)  # room again
        writer.write(b"again")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 30) == b"againEOF"
        for _, w in [*held[1:], (reader, writer)]:
            w.close()

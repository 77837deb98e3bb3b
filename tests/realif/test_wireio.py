"""_wireio.c's recv_frames / send_frames on their own, over loopback UDP and a Unix
datagram pair: batches across the 64-frame boundary, limits, empty batches, frames
larger than the buffer (counted truncated, dropped), a full queue (refused frames
counted, the rest sent), a bad descriptor and bad arguments. No namespaces, so
scripts/sanitize runs this file on its ASan build; the packet-socket path (AF_PACKET,
skipping our own and non-IP frames) runs in the namespaced tests (test_wire.py)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from types import ModuleType

import pytest

from xfrm_offload.server import realif

if realif._wireio is None:
    pytest.skip("_wireio.c not built", allow_module_level=True)
wireio: ModuleType = realif._wireio


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two connected, nonblocking UDP sockets on 127.0.0.1 (a UDP cable's two ends)."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for sock in (a, b):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        a.setblocking(False)
        b.setblocking(False)
        yield a, b
    finally:
        a.close()
        b.close()


def _frames(count: int, largest: int = 1600) -> list[bytes]:
    return [bytes([i & 0xFF]) * (i * 37 % largest) for i in range(count)]


def test_empty_batches_do_nothing(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp_pair
    assert wireio.send_frames(a.fileno(), [], 0, b"") == (0, 0)
    assert wireio.recv_frames(b.fileno(), 64, 2048, False) == ([], 0, 0)
    assert wireio.recv_frames(b.fileno(), 0, 2048, False) == ([], 0, 0)


def test_frames_cross_the_batch_boundary_in_order(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = udp_pair
    frames = _frames(150)  # 64 + 64 + 22, an empty datagram among them
    assert wireio.send_frames(a.fileno(), frames, 0, b"") == (150, 0)
    assert wireio.recv_frames(b.fileno(), 1000, 2048, False) == (frames, 0, 0)


def test_limit_leaves_the_rest_queued(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = udp_pair
    frames = _frames(100)
    assert wireio.send_frames(a.fileno(), frames, 0, b"") == (100, 0)
    assert wireio.recv_frames(b.fileno(), 70, 2048, False) == (frames[:70], 0, 0)
    assert wireio.recv_frames(b.fileno(), 70, 2048, False) == (frames[70:], 0, 0)


def test_frames_larger_than_the_buffer_are_counted_and_dropped(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = udp_pair
    frames = _frames(130)
    assert wireio.send_frames(a.fileno(), frames, 0, b"") == (130, 0)
    fit = [f for f in frames if len(f) <= 1000]
    assert wireio.recv_frames(b.fileno(), 1000, 1000, False) == (fit, 130 - len(fit), 0)


def test_a_full_queue_refuses_some_frames_and_the_rest_still_go() -> None:
    """A Unix datagram pair whose sender has the smallest send buffer holds only a few
    frames: the nonblocking sendmmsg stops at EAGAIN, each refused frame is counted, and
    every frame counted sent arrives, in order."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        a.setblocking(False)
        b.setblocking(False)
        frames = _frames(200, 300)
        sent, failed = wireio.send_frames(a.fileno(), frames, 0, b"")
        assert sent + failed == 200 and failed > 0 and sent > 0
        assert wireio.recv_frames(b.fileno(), 1000, 512, False) == (frames[:sent], 0, 0)


def test_a_bad_descriptor_is_an_errno_not_a_crash() -> None:
    r, w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    fd = r.detach()
    w.close()
    socket.close(fd)  # a descriptor number that is no longer open
    assert wireio.recv_frames(fd, 10, 2048, False) == ([], 0, errno.EBADF)
    assert wireio.send_frames(fd, [b"x", b"y", b"z"], 0, b"") == (0, 3)


@pytest.mark.parametrize(
    ("call", "args", "error"),
    [
        ("recv_frames", (0, -1, 2048, False), ValueError),
        ("recv_frames", (0, 10, 0, False), ValueError),
        ("recv_frames", (0, 10, 65537, False), ValueError),
        ("send_frames", (0, [b"x", "y"], 0, b""), TypeError),
        ("send_frames", (0, (b"x",), 0, b""), TypeError),
        ("send_frames", (0, [b"x"], 1, bytes(9)), ValueError),
    ],
    ids=["negative limit", "size 0", "size too big", "not bytes", "not a list", "long address"],
)
def test_bad_arguments_are_refused(call: str, args: tuple[object, ...], error: type) -> None:
    with pytest.raises(error):
        getattr(wireio, call)(*args)

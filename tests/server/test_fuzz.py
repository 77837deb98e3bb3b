"""Bounded fuzzing, run with the suite (seconds; in-process and with workers): every RPC
with generated messages and with random bytes, and the packet paths with mutated packets.

The server runs in a thread with its own event loop (Hypothesis drives plain functions);
requests go over a real Unix socket through generic calls. Asserted for every call: the
answer is never UNKNOWN or INTERNAL (a status the server did not mean), the server log
has no traceback and no error line, and afterwards the server still answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from ..datapath.builders import Tunnel, install, packets, udp4
from .raw_calls import Method, all_methods
from .sa_builders import DEVICE_ARGS

#: Every method but the interface attachments: fuzzed names like "eth0" would put this
#: machine's own link under a device (tests/realif covers their refusals, in namespaces).
METHODS = [m for m in all_methods() if "/xfrm_offload.v1.InterfaceService/" not in m.path]
#: A tunnel eth1 -> eth2 for the packet paths (beside the four profiles' devices).
PACKET_DEVICES = ("--device", "eth1", "--device", "eth2")
TUNNEL = Tunnel(spi=0x4242)
#: Calls that stream until cancelled once accepted.
WATCHES = ("/WatchEvents", "/WatchPackets", "/Watch")
#: The answers no request may get: they mean the server failed, not the request.
NEVER = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def failures(self) -> list[str]:
        return [
            self.format(r) + (f"\n{r.exc_info}" if r.exc_info else "")
            for r in self.records
            if r.exc_info or r.levelno >= logging.ERROR
        ]


class ServerThread:
    """An OffloadServer (four profiles, virtual clock) on its own loop in a thread."""

    def __init__(self, sock: Path, *extra: str) -> None:
        self.address = f"unix:{sock}"
        self.args = [
            "--listen",
            self.address,
            *DEVICE_ARGS,
            *PACKET_DEVICES,
            "--virtual-clock",
            *extra,
        ]
        self.started = threading.Event()
        self.server: OffloadServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.server = OffloadServer(parse_args(self.args))
        await self.server.start()
        self.started.set()
        await self._stop.wait()
        await self.server.stop(grace=1)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    def subscribers(self) -> int:
        assert self.server is not None
        return self.server.nic.hub.subscriber_count


@pytest.fixture(scope="module", params=[[], ["--workers", "2"]], ids=["in-process", "workers"])
def fuzzed(request: pytest.FixtureRequest) -> Iterator[tuple[ServerThread, LogRecords]]:
    records = LogRecords()
    for name in ("xfrm_offload", "grpc", "asyncio"):
        logging.getLogger(name).addHandler(records)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="xo-") as d,
            ServerThread(Path(d) / "f.sock", *request.param) as s,
        ):
            yield s, records
    finally:
        for name in ("xfrm_offload", "grpc", "asyncio"):
            logging.getLogger(name).removeHandler(records)


@pytest.fixture
def channel(fuzzed: tuple[ServerThread, LogRecords]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzzed[0].address) as ch:
        yield ch


# -- messages from their descriptors -----------------------------------------------------

#: Strings that reach past the first check: device names, addresses, algorithm names.
WORDS = st.sampled_from(
    [
        "",
        "eth0",
        "mlx0",
        "sim0",
        "sw0",
        "nosuch",
        "192.0.2.1",
        "2001:db8::1",
        "0.0.0.0",
        "::",
        "rfc4106(gcm(aes))",
        "cbc(aes)",
        "hmac(sha256)",
    ]
)
_INTS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: Any) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INTS:
        lo, hi = _INTS[t]
        return st.one_of(st.sampled_from([0, 1, lo, hi]), st.integers(lo, hi))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if t == FieldDescriptor.TYPE_STRING:
        return st.one_of(WORDS, st.text(max_size=24))
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=80)
    if t == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-(2**31), 2**31 - 1))
    raise AssertionError(f"no strategy for {field.full_name}")


def fill(data: st.DataObject, message: Message, depth: int = 3) -> Message:
    """Set a random subset of ``message``'s fields to random values, nested ``depth`` deep."""
    for field in message.DESCRIPTOR.fields:
        if not data.draw(st.booleans()):
            continue
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.is_repeated:
            if is_message and field.message_type.GetOptions().map_entry:  # type: ignore[union-attr]
                continue  # no maps in these protos
            for _ in range(data.draw(st.integers(0, 3))):
                if is_message:
                    if depth > 0:
                        fill(data, getattr(message, field.name).add(), depth - 1)
                else:
                    getattr(message, field.name).append(data.draw(_scalar(field)))
        elif is_message:
            if depth > 0:
                fill(data, getattr(message, field.name), depth - 1)
                getattr(message, field.name).SetInParent()
        else:
            value = data.draw(_scalar(field))
            if field.type == FieldDescriptor.TYPE_FLOAT:
                value = float(value)
            setattr(message, field.name, value)
    return message


# -- calls -------------------------------------------------------------------------------


def call(server: ServerThread, channel: grpc.Channel, method: Method, payloads: list[bytes]) -> Any:
    """Make one call with raw request bytes; its code (OK or the error's)."""
    d = method.descriptor
    try:
        if d.client_streaming:
            if d.server_streaming:
                for _ in channel.stream_stream(method.path, None, None)(iter(payloads), timeout=10):
                    pass
            else:
                channel.stream_unary(method.path, None, None)(iter(payloads), timeout=10)
        elif d.server_streaming:
            while server.subscribers():  # the watches cancelled before are gone
                threading.Event().wait(0.001)
            stream: Any = channel.unary_stream(method.path, None, None)(payloads[0], timeout=10)
            if method.path.endswith(WATCHES):
                if method.path.endswith("/WatchEvents"):
                    # No first message: accepted once subscribed, or refused.
                    while not server.subscribers() and stream.running():
                        threading.Event().wait(0.001)
                else:
                    next(stream, None)  # the watch's first message, or its refusal
                if stream.running():
                    stream.cancel()
                    return grpc.StatusCode.OK
            for _ in stream:
                pass
        else:
            channel.unary_unary(method.path, None, None)(payloads[0], timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def request_class(method: Method) -> type[Message]:
    return GetMessageClass(method.descriptor.input_type)


def still_serving(channel: grpc.Channel) -> None:
    diag = offload_pb2_grpc.DiagServiceStub(channel)
    assert diag.Echo(pb.EchoRequest(payload=b"ping"), timeout=10).payload == b"ping"
    devices = offload_pb2_grpc.DeviceServiceStub(channel)
    assert len(devices.ListDevices(pb.ListDevicesRequest(), timeout=10).devices) == 6


@FUZZ
@given(data=st.data())
def test_generated_messages_on_every_method(
    fuzzed: tuple[ServerThread, LogRecords], channel: grpc.Channel, data: st.DataObject
) -> None:
    server, log = fuzzed
    method = data.draw(st.sampled_from(METHODS), label="method")
    cls = request_class(method)
    count = data.draw(st.integers(1, 3)) if method.descriptor.client_streaming else 1
    payloads = [fill(data, cls()).SerializeToString() for _ in range(count)]
    code = call(server, channel, method, payloads)
    assert code not in NEVER, (method.path, code)
    assert log.failures() == []


@FUZZ
@given(data=st.data())
def test_random_bytes_on_every_method(
    fuzzed: tuple[ServerThread, LogRecords], channel: grpc.Channel, data: st.DataObject
) -> None:
    server, log = fuzzed
    method = data.draw(st.sampled_from(METHODS), label="method")
    count = data.draw(st.integers(1, 3)) if method.descriptor.client_streaming else 1
    payloads = [data.draw(st.binary(max_size=120)) for _ in range(count)]
    code = call(server, channel, method, payloads)
    assert code not in NEVER, (method.path, code)
    assert log.failures() == []


def test_every_method_was_reachable_and_the_server_still_answers(
    fuzzed: tuple[ServerThread, LogRecords], channel: grpc.Channel
) -> None:
    still_serving(channel)
    assert fuzzed[1].failures() == []


# -- packet paths ------------------------------------------------------------------------


def stream(
    channel: grpc.Channel, dev: str, direction: pb.PacketDirection, data: list[bytes]
) -> list[Any]:
    """One PacketStream batch; its results (the stream must end OK)."""
    stub = offload_pb2_grpc.DatapathServiceStub(channel)
    request = pb.PacketStreamRequest(
        dev=dev, direction=direction, packets=[pb.Packet(id=i, data=d) for i, d in enumerate(data)]
    )
    results: list[Any] = []
    for reply in stub.PacketStream(iter([request]), timeout=10):
        results.extend(reply.results)
    return results


@pytest.fixture(scope="module")
def esp(fuzzed: tuple[ServerThread, LogRecords]) -> list[bytes]:
    """Valid ESP packets of TUNNEL (eth1 encrypts them, eth2 would accept them)."""
    from xfrm_offload.client import Client

    server, _ = fuzzed
    assert server.loop is not None

    async def setup() -> None:
        async with Client(server.address) as client:
            await install(client, TUNNEL, "eth1", "eth2")

    asyncio.run_coroutine_threadsafe(setup(), server.loop).result(30)
    clear = packets(udp4, "198.51.100.7", "203.0.113.9", 16, 120)
    with grpc.insecure_channel(server.address) as ch:
        results = stream(ch, "eth1", pb.PACKET_DIRECTION_TX, clear)
    assert [r.verdict for r in results] == [pb.VERDICT_PASS] * 16
    return [r.data for r in results]


def mutate(data: st.DataObject, packet: bytes) -> bytes:
    """Flip, cut, extend or overwrite a few bytes of ``packet``."""
    out = bytearray(packet)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "cut", "extend", "set"]))
        if kind == "cut":
            del out[data.draw(st.integers(0, len(out))) :]
        elif kind == "extend":
            out += data.draw(st.binary(min_size=1, max_size=40))
        elif out:
            at = data.draw(st.integers(0, len(out) - 1))
            if kind == "flip":
                out[at] ^= 1 << data.draw(st.integers(0, 7))
            else:
                out[at] = data.draw(st.integers(0, 255))
    return bytes(out)


@FUZZ
@given(data=st.data())
def test_mutated_packets_on_both_paths(
    fuzzed: tuple[ServerThread, LogRecords],
    channel: grpc.Channel,
    esp: list[bytes],
    data: st.DataObject,
) -> None:
    _, log = fuzzed
    rx = data.draw(st.booleans(), label="rx")
    clear = packets(udp4, "198.51.100.7", "203.0.113.9", 4, 60)
    bases = esp if rx else clear
    batch = [
        mutate(data, data.draw(st.sampled_from(bases))) for _ in range(data.draw(st.integers(1, 8)))
    ]
    dev, direction = ("eth2", pb.PACKET_DIRECTION_RX) if rx else ("eth1", pb.PACKET_DIRECTION_TX)
    results = stream(channel, dev, direction, batch)
    assert [r.id for r in results] == list(range(len(batch)))
    for r in results:
        assert r.verdict in (pb.VERDICT_PASS, pb.VERDICT_DROP, pb.VERDICT_CONSUMED), r
        assert (r.verdict == pb.VERDICT_DROP) == bool(r.drop_reason), r
    assert log.failures() == []


def test_random_bytes_as_packets(
    fuzzed: tuple[ServerThread, LogRecords], channel: grpc.Channel
) -> None:
    rng = random.Random(13)  # plain noise: the same every run
    noise = [rng.randbytes(rng.randrange(0, 200)) for _ in range(256)]
    for dev, direction in (("eth2", pb.PACKET_DIRECTION_RX), ("eth1", pb.PACKET_DIRECTION_TX)):
        results = stream(channel, dev, direction, noise)
        assert len(results) == len(noise)
    still_serving(channel)
    assert fuzzed[1].failures() == []

"""A device between two real network stacks: a TUN as its host, a Linux link as its wire.

What the host routes into the TUN is the device's TX (packet offload: policy lookup,
ESP); what leaves TX goes out on the wire through an AF_PACKET socket, so tcpdump
and tshark see the ESP frames on the link. Frames arriving on the wire are the
device's RX; what RX delivers is written back into the TUN.

I/O keeps up without a busy loop: each fd has an asyncio reader (``add_reader`` on
nonblocking fds); a reader drains everything that is ready into a bounded queue, and
one pump per direction hands the queue to the device in batches of up to ``BATCH``.
When a queue is full its reader pauses, so the kernel's own bounded queues (the
TUN's txqueuelen, the packet socket's receive buffer) hold the rest and count what
does not fit; the socket's count is read back into ``wire_rx_dropped``.

Every packet reaches the device through ``exchange``: the one place that knows how a
batch of raw packets is handed to a device and its outcomes come back.

A device with a wire impairment (SetImpairment) sends its TX frames into it instead
(``Wires.impairments``, the cables' own); what leaves the impairment comes back to
``_send_impaired``, the same writer thread, and the device's wire taps see it. Without
an impairment, frames go from the pump to the writer thread as they always did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from xfrm_offload.engine.datapath import DevicePath, Results
from xfrm_offload.engine.device import Device
from xfrm_offload.engine.errors import AlreadyExists, InvalidArgument, LocalError, NotFound
from xfrm_offload.engine.ipheader import ipv4_checksum
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc

from . import ifaces, logs, ops, toobig, tunoffload
from .events import Subscription
from .ifaces import IfRef, UdpRef
from .nic import Nic
from .servicers import refusals
from .status import Context
from .workers import WorkerDied

if TYPE_CHECKING:
    from .datapath import Wires

log = logging.getLogger("xfrm_offload.server")
#: _wireio.c: recvmmsg / sendmmsg, many wire frames a system call (None: one a call).
_wireio = ifaces.load_helper("_wireio")

TX = pb.PACKET_DIRECTION_TX
RX = pb.PACKET_DIRECTION_RX
#: Packets handed to the device in one call.
BATCH = 256
#: Packets read but not yet handed to the device, per direction; then reading pauses.
QUEUE_LIMIT = 2048
#: Bytes of ESP the TUN's default MTU leaves room for: an IPv6 outer header (40), ESP
#: header and IV (16), trailer with up to 3 bytes of padding (5) and a 16-byte ICV (16)
#: make 77, or 73 for ESP-in-UDP over IPv4; rounded up. Larger transforms (CBC-HMAC)
#: are caught per packet: "too big" answers carry the exact usable MTU.
ESP_OVERHEAD = 80
#: The MTU a UDP cable stands for (an Ethernet link's): ESP frames up to this size, each
#: one datagram.
UDP_WIRE_MTU = 1500
#: The wire socket's receive buffer (the kernel's bounded queue in front of RX).
WIRE_RCVBUF = 4 * 1024 * 1024
_READ_SIZE = 65536
#: A TUN read with offloads: a virtio_net_hdr and an IP packet of up to 64 KB.
_TUN_READ_SIZE = tunoffload.VNET_HDR_LEN + 65535
#: Where wire frames go: a locally administered unicast address that no interface has,
#: so the host stacks at both ends of the link see them as another host's (packet type
#: OTHERHOST) and drop them at once, leaving them to the NICs' packet sockets, which see
#: every frame: as a host never handles the ESP its offload NIC terminates. (Sent to the
#: peer interface's own address, every frame went up the peer stack's IPv4 input first.)
WIRE_DESTINATION = bytes.fromhex("02584f000001")
_IP_PROTOS = (ifaces.ETH_P_IP, ifaces.ETH_P_IPV6)


def device_batch(
    device: Device, path: DevicePath, direction: int, packets: list[bytes], now: float
) -> Results:
    """One batch of raw IP packets through a device's packet-offload path (runs where the
    device lives: this process or its worker)."""
    if direction == TX:
        return path.tx(packets, now)
    return path.rx(packets, now)


async def exchange(nic: Nic, dev: str, direction: int, packets: list[bytes]) -> Results:
    """Hand ``packets`` to device ``dev`` (TX: from its host, RX: from its wire); the
    results index i for packet i."""
    results: Results = await nic.call(dev, device_batch, direction, packets, nic.clock.now())
    return results


def fragment_ipv4(packet: bytes, mtu: int) -> list[bytes]:
    """An IPv4 packet without DF split into fragments of at most ``mtu`` bytes (RFC 791)."""
    ihl = (packet[0] & 0x0F) * 4
    header, payload = bytearray(packet[:ihl]), packet[ihl:]
    step = max(8, (mtu - ihl) // 8 * 8)
    offset_field = struct.unpack_from("!H", packet, 6)[0]
    more_before = offset_field & 0x2000
    base = offset_field & 0x1FFF
    pieces = []
    for start in range(0, len(payload), step):
        piece = payload[start : start + step]
        last = start + step >= len(payload)
        struct.pack_into("!H", header, 2, ihl + len(piece))
        flags = 0 if last and not more_before else 0x2000
        struct.pack_into("!H", header, 6, flags | (base + start // 8))
        struct.pack_into("!H", header, 10, 0)
        struct.pack_into("!H", header, 10, ipv4_checksum(header))
        pieces.append(bytes(header) + piece)
    return pieces


def usable_mtu(inner: int, outer: int, wire_mtu: int) -> int:
    """The largest inner packet whose encapsulation fits ``wire_mtu``, given that
    ``inner`` bytes became ``outer``: the fixed part (headers, IV, ICV) is what is left
    after the ESP payload (inner + 2 trailer bytes, padded to 4 for AEADs). A CBC
    transform pads to 16, so the answer may be up to 12 high: the next packet of that
    size gets its own answer, lower by the difference."""
    fixed = outer - ((inner + 2 + 3) & ~3)
    return ((wire_mtu - fixed) & ~3) - 2


class _Queue:
    """Packets read from one fd, waiting for the device; its reader pauses when full."""

    def __init__(self, resume: Callable[[], None]) -> None:
        self.packets: collections.deque[bytes] = collections.deque()
        self.ready = asyncio.Event()
        self.paused = False
        self._resume = resume

    def take(self) -> list[bytes]:
        packets = self.packets
        batch = [packets.popleft() for _ in range(min(BATCH, len(packets)))]
        if self.paused and len(packets) < QUEUE_LIMIT // 2:
            self.paused = False
            self._resume()
        return batch


class Attachment:
    """One device's TUN and wire, their readers, pumps and link watch."""

    def __init__(
        self,
        nic: Nic,
        dev: str,
        tun: IfRef,
        wire: IfRef | UdpRef,
        host_mtu: int = 0,
        wires: Wires | None = None,
        tun_offload: bool = True,
    ) -> None:
        self.nic = nic
        #: The TUN carries virtio_net_hdrs: TSO super-packets in, coalesced TCP out.
        self.tun_offload = tun_offload
        #: The server's wires: impairments and taps (None: frames always go straight out).
        self.wires = wires
        #: TX frames handed to an impairment so far (the ids its taps show).
        self._impaired_frames = 0
        self.dev = dev
        self.tun_ref = tun
        self.wire_ref = wire
        self.requested_mtu = host_mtu
        self.counters = pb.Interfaces(host_tun=str(tun), tun_offload=tun_offload)
        if isinstance(wire, UdpRef):
            self.counters.wire_udp = str(wire)
        else:
            self.counters.wire_if = str(wire)
        self.tun_fd = -1
        self.wire: socket.socket | None = None
        self.watch: socket.socket | None = None
        self.wire_control: ifaces.Control | None = None
        self.wire_index = 0
        self.tun_index = 0
        self.wire_mtu = 0
        #: sendto addresses for IPv4 and IPv6 frames on a link (None: a UDP cable).
        self._link_addresses: tuple[tuple[str, int, int, int, bytes], ...] | None = None
        self._loop = asyncio.get_running_loop()
        self._tx = _Queue(self._resume_tun)
        self._rx = _Queue(self._resume_wire)
        self._tasks: list[asyncio.Task[None]] = []
        #: Link changes being applied (each a task until the device has it).
        self._changes: set[asyncio.Task[None]] = set()
        self._link_sub: Subscription | None = None
        self._wire_writer = ThreadPoolExecutor(1, thread_name_prefix=f"xo-{dev}-wire")
        self._tun_writer = ThreadPoolExecutor(1, thread_name_prefix=f"xo-{dev}-tun")
        #: Sides whose fd failed for good ("host_tun", "wire_if"): no longer read.
        self.lost: set[str] = set()

    # -- setup and teardown ---------------------------------------------------------------

    def open(self) -> None:
        """Open both sides; LocalError naming the side (everything closed again) if not."""
        try:
            self._open_wire()
        except OSError as exc:
            self._close_fds()
            field = "wire_udp" if isinstance(self.wire_ref, UdpRef) else "wire_if"
            raise _refusal(exc, self.wire_ref, field) from None
        try:
            self._open_tun()
        except OSError as exc:
            self._close_fds()
            raise _refusal(exc, self.tun_ref, "host_tun") from None

    def _open_wire(self) -> None:
        ref = self.wire_ref
        if isinstance(ref, UdpRef):
            self.wire = ifaces.open_udp_socket(ref, WIRE_RCVBUF)
            self.wire_mtu = self.counters.wire_mtu = UDP_WIRE_MTU
            return
        self.wire_control = ifaces.Control(ref.netns)
        self.wire_index = ifaces.ifindex(ref.netns, ref.name)
        self.wire_mtu = self.counters.wire_mtu = self.wire_control.mtu(ref.name)
        self.wire = ifaces.open_packet_socket(ref, WIRE_RCVBUF)
        self.watch = ifaces.open_link_watch(ref.netns)
        self._link_addresses = (
            (ref.name, ifaces.ETH_P_IP, 0, 0, WIRE_DESTINATION),
            (ref.name, ifaces.ETH_P_IPV6, 0, 0, WIRE_DESTINATION),
        )

    def _open_tun(self) -> None:
        ref = self.tun_ref
        host_mtu = self.requested_mtu or max(toobig.V4_MIN_MTU, self.wire_mtu - ESP_OVERHEAD)
        self.tun_fd = ifaces.open_tun(ref, tunoffload.VNET_HDR_LEN if self.tun_offload else 0)
        self.tun_index = ifaces.ifindex(ref.netns, ref.name)
        control = ifaces.Control(ref.netns)
        try:
            control.set_mtu(ref.name, host_mtu)
            control.set_up(ref.name)
        finally:
            control.close()
        self.counters.host_mtu = host_mtu

    async def start(self) -> None:
        """Start reading, pumping and following the link."""
        assert self.wire is not None
        loop = self._loop
        loop.add_reader(self.tun_fd, self._read_tun)
        self._resume_wire()
        if self.watch is not None:
            loop.add_reader(self.watch.fileno(), self._read_link_changes)
        dev = self.dev
        self._link_sub = self.nic.hub.subscribe(
            lambda e: e.kind == pb.EVENT_KIND_LINK and e.dev == dev
        )
        self._tasks = [
            loop.create_task(
                self._pump(self._tx, TX, self._transmitted, self._send_wire, self._wire_writer)
            ),
            loop.create_task(
                self._pump(self._rx, RX, self._received, self._write_tun, self._tun_writer)
            ),
            loop.create_task(self._follow_device_link(self._link_sub)),
        ]
        if self.wires is not None:
            self.wires.links[dev] = self._send_impaired
        if isinstance(self.wire_ref, UdpRef):  # a cable has no carrier to follow
            await self._apply_wire_state(True)
            return
        try:
            flags = ifaces.link_flags(self.wire_ref.netns, self.wire_index)
        except OSError:  # rtnetlink did not answer: down until it reports the link
            flags = None
        await self._apply_wire_state(flags is not None and ifaces.running(flags))

    async def close(self) -> None:
        loop = self._loop
        if self.wires is not None and self.wires.links.get(self.dev) == self._send_impaired:
            del self.wires.links[self.dev]
        if self.tun_fd >= 0:
            loop.remove_reader(self.tun_fd)
        for sock in (self.wire, self.watch):
            if sock is not None:
                loop.remove_reader(sock.fileno())
        tasks = [*self._tasks, *self._changes]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in (self._wire_writer, self._tun_writer):
            writer.shutdown(wait=True)  # at most a batch each: then no write meets a closed fd
        if self._link_sub is not None:
            self.nic.hub.unsubscribe(self._link_sub)
        self._close_fds()

    def _close_fds(self) -> None:
        if self.tun_fd >= 0:
            os.close(self.tun_fd)
            self.tun_fd = -1
        for sock in (self.wire, self.watch):
            if sock is not None:
                sock.close()
        self.wire = self.watch = None
        if self.wire_control is not None:
            self.wire_control.close()
            self.wire_control = None

    def describe(self) -> pb.Interfaces:
        if self.wire is not None and self.wire.family == socket.AF_PACKET:
            self.counters.wire_rx_dropped += ifaces.packet_drops(self.wire)
        self.counters.wire_mtu = self.wire_mtu
        if self.tun_index and "host_tun" not in self.lost:
            with contextlib.suppress(OSError):
                info = ifaces.link_info(self.tun_ref.netns, self.tun_index)
                if info is not None:  # what the TUN's queue dropped while reading paused
                    self.counters.host_rx_dropped = info.tx_dropped
        described = pb.Interfaces()
        described.CopyFrom(self.counters)
        return described

    # -- readers: drain what is ready into the queues --------------------------------------

    def _read_tun(self) -> None:
        packets = self._tx.packets
        fd = self.tun_fd
        before = len(packets)
        offload = self.tun_offload
        try:
            while len(packets) < QUEUE_LIMIT:
                if not offload:
                    packets.append(os.read(fd, _READ_SIZE))
                    continue
                try:  # a super-packet becomes its segments, each a packet of the device's
                    segments = tunoffload.from_host(os.read(fd, _TUN_READ_SIZE))
                    packets.extend(segments)
                    if len(segments) > 1:
                        self.counters.host_rx_segmented += 1
                except tunoffload.BadOffload as exc:
                    self.counters.host_rx_errors += 1
                    log.debug("bad TUN frame", extra=logs.fields(dev=self.dev, error=str(exc)))
        except BlockingIOError:
            pass
        except OSError as exc:  # the TUN was deleted: stop reading (it would stay ready)
            self._side_lost(fd, "host_tun", exc)
        self.counters.host_rx_packets += len(packets) - before
        self._after_read(self._tx, len(packets) >= QUEUE_LIMIT, fd)

    def _frame_limit(self) -> int:
        """The largest wire frame taken (both readers): the link's MTU and some room; a
        larger one is dropped and counted in wire_rx_dropped."""
        return min(_READ_SIZE, max(self.wire_mtu, UDP_WIRE_MTU) + 256)

    def _read_many(self, packet_socket: bool) -> None:
        """Both wire readers with _wireio: what is ready, many frames a system call."""
        assert self.wire is not None and _wireio is not None
        packets, fd = self._rx.packets, self.wire.fileno()
        room = QUEUE_LIMIT - len(packets)
        size = self._frame_limit()
        frames, truncated, error = _wireio.recv_frames(fd, room, size, packet_socket)
        packets.extend(frames)
        self.counters.wire_rx_packets += len(frames)
        self.counters.wire_rx_dropped += truncated  # larger than the link's MTU
        if error and packet_socket and error != errno.ENETDOWN:
            self._side_lost(fd, "wire_if", OSError(error, os.strerror(error)))
        elif error and not packet_socket:  # ECONNREFUSED: the peer's port is closed for now
            log.debug(
                "udp wire read failed",
                extra=logs.fields(dev=self.dev, error=os.strerror(error)),
            )
        self._after_read(self._rx, len(packets) >= QUEUE_LIMIT, fd)

    def _read_frames(self, packet_socket: bool) -> None:
        """A wire reader (AF_PACKET, or the UDP cable): _read_many with _wireio, else
        one frame a system call, under the same rules."""
        if _wireio is not None:
            self._read_many(packet_socket)
            return
        packets = self._rx.packets
        assert self.wire is not None
        wire = self.wire
        room = QUEUE_LIMIT - len(packets)
        size = self._frame_limit()
        got = 0
        try:
            while got < room:
                if packet_socket:
                    data, address = wire.recvfrom(_READ_SIZE)
                    if address[2] == ifaces.PACKET_OUTGOING or address[1] not in _IP_PROTOS:
                        continue  # our own transmissions, ARP and the like
                else:
                    data = wire.recv(_READ_SIZE)
                if len(data) > size:  # as _read_many: larger than the link's MTU
                    self.counters.wire_rx_dropped += 1
                    continue
                packets.append(data)
                got += 1
        except BlockingIOError:
            pass
        except OSError as exc:
            if not packet_socket:  # ECONNREFUSED: the peer's port is closed for now
                log.debug("udp wire read failed", extra=logs.fields(dev=self.dev, error=str(exc)))
            elif exc.errno != errno.ENETDOWN:  # down is reported once; gone is for good
                self._side_lost(wire.fileno(), "wire_if", exc)
        self.counters.wire_rx_packets += got
        self._after_read(self._rx, got == room, wire.fileno())

    def _side_lost(self, fd: int, side: str, exc: OSError) -> None:
        """An fd that fails for good: stop reading it, so its readiness does not spin the
        loop; the device keeps its states (detach and attach again to recover)."""
        self._loop.remove_reader(fd)
        self.lost.add(side)
        log.warning(
            "interface gone, no longer read",
            extra=logs.fields(dev=self.dev, side=side, error=str(exc)),
        )

    def _after_read(self, queue: _Queue, full: bool, fd: int) -> None:
        if full and not queue.paused:
            queue.paused = True
            self._loop.remove_reader(fd)
        if queue.packets:
            queue.ready.set()

    def _resume_tun(self) -> None:
        if self.tun_fd >= 0 and "host_tun" not in self.lost:
            self._loop.add_reader(self.tun_fd, self._read_tun)

    def _resume_wire(self) -> None:
        if self.wire is not None and "wire_if" not in self.lost:
            packet_socket = not isinstance(self.wire_ref, UdpRef)
            self._loop.add_reader(self.wire.fileno(), self._read_frames, packet_socket)

    # -- pumps: queue -> device -> the other side --------------------------------------------

    async def _pump(
        self,
        queue: _Queue,
        direction: int,
        select: Callable[[Sequence[bytes], Results], list[bytes]],
        write: Callable[[list[bytes]], None],
        writer: ThreadPoolExecutor,
    ) -> None:
        """Queue -> device -> ``select`` what goes out -> ``write`` it in ``writer``'s
        thread, while the loop already hands the next batch to the device (one write in
        flight per direction, in order)."""
        loop = self._loop
        writing: asyncio.Future[None] | None = None
        while True:
            await queue.ready.wait()
            queue.ready.clear()
            while queue.packets:
                batch = queue.take()
                try:
                    results = await exchange(self.nic, self.dev, direction, batch)
                except (LocalError, WorkerDied) as exc:  # the packets are lost, not the pump
                    log.warning("batch refused", extra=logs.fields(dev=self.dev, error=str(exc)))
                    continue
                out = select(batch, results)
                if writing is not None:
                    await writing
                    writing = None
                if out:
                    writing = loop.run_in_executor(writer, write, out)

    def _transmitted(self, packets: Sequence[bytes], results: Results) -> list[bytes]:
        """The frames to send for a TX batch; too big ones answered or split (loop thread)."""
        frames: list[bytes] = []
        oversize: list[bytes] = []
        mtu, out = self.wire_mtu, results.data
        for i in results.passed():
            packet, data = packets[i], out[i]
            if len(data) <= mtu:
                frames.append(data)
                continue
            usable = usable_mtu(len(packet), len(data), mtu)
            if toobig.may_fragment(packet) and usable >= toobig.V4_MIN_MTU:
                pieces = fragment_ipv4(packet, usable)
                self.counters.fragmented += 1
                oversize.extend(pieces)
                continue
            reply = toobig.too_big(packet, usable)
            if reply is not None:
                self.counters.too_big += 1
                self._tun_writer.submit(self._write_tun, [reply])
        if oversize:
            self._tx.packets.extendleft(reversed(oversize))
            self._tx.ready.set()
        wires = self.wires
        if frames and wires is not None and wires.impairments.impaired(self.dev):
            first = self._impaired_frames
            self._impaired_frames += len(frames)
            wires.impairments.push(self.dev, list(enumerate(frames, first)))
            return []  # they leave through _send_impaired when due
        return frames

    def _received(self, packets: Sequence[bytes], results: Results) -> list[bytes]:
        """What an RX batch delivers to the host (loop thread)."""
        out = results.data
        return [out[i] for i in results.passed()]

    # The writes run in a thread of their own per side: a TUN write runs the host's
    # receive path (TCP and all) and a link send the peer's packet socket delivery,
    # inside the system call, which releases the GIL: so that kernel work overlaps the
    # loop's work on the next batch. Only these threads change the tx counters.

    def _send_wire(self, frames: list[bytes]) -> None:
        wire, addresses, counters = self.wire, self._link_addresses, self.counters
        assert wire is not None
        if _wireio is not None and all(type(f) is bytes for f in frames):
            index = 0 if addresses is None else self.wire_index
            sent, failed = _wireio.send_frames(wire.fileno(), frames, index, WIRE_DESTINATION)
            counters.wire_tx_packets += sent
            counters.wire_tx_dropped += failed
            return
        for frame in frames:
            try:
                if addresses is None:  # a UDP cable
                    wire.send(frame)
                else:
                    wire.sendto(frame, addresses[frame[0] >> 4 == 6])
            except OSError:  # queue full (ENOBUFS / EAGAIN), link down (ENETDOWN), too big
                counters.wire_tx_dropped += 1
                continue
            counters.wire_tx_packets += 1

    async def _send_impaired(self, frames: list[bytes]) -> None:
        """What left the device's impairment, onto the wire (loop thread; the send runs in
        the wire's writer thread, after any batch the pump handed it before)."""
        if self.wire is not None:
            await self._loop.run_in_executor(self._wire_writer, self._send_wire, frames)

    def _write_tun(self, packets: list[bytes]) -> None:
        """Deliver ``packets`` to the host: with offloads, TCP segments coalesced into
        super-packets (one write, and one pass of the host's TCP receive, for many);
        the counters count IP packets either way."""
        write, fd, counters = os.write, self.tun_fd, self.counters
        frames = tunoffload.to_host(packets) if self.tun_offload else [(p, 1) for p in packets]
        for frame, count in frames:
            try:
                write(fd, frame)
            except OSError:  # the TUN is down or its queue full
                counters.host_tx_dropped += count
                continue
            counters.host_tx_packets += count
            if count > 1:
                counters.host_tx_coalesced += 1

    # -- link state, both ways -------------------------------------------------------------

    def _read_link_changes(self) -> None:
        assert self.watch is not None
        flags: int | None = -1  # -1: nothing about the wire in these messages
        try:
            while True:
                for kind, index, got in ifaces.link_messages(self.watch.recv(65536)):
                    if index == self.wire_index:
                        flags = got if kind == ifaces.RTM_NEWLINK else None
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOBUFS: messages were lost; ask afresh
            if exc.errno == errno.ENOBUFS:
                with contextlib.suppress(OSError):
                    flags = ifaces.link_flags(self.wire_ref.netns, self.wire_index)
        if flags != -1:
            running = flags is not None and ifaces.running(flags)
            task = self._loop.create_task(self._apply_wire_state(running))
            self._changes.add(task)
            task.add_done_callback(self._changes.discard)

    async def _apply_wire_state(self, running: bool) -> None:
        """The device's link follows the wire's (down flushes, with events)."""
        if self.wire_control is not None and isinstance(self.wire_ref, IfRef):
            with contextlib.suppress(OSError):  # gone: keep the last MTU known
                self.wire_mtu = self.wire_control.mtu(self.wire_ref.name)
        self.counters.wire_running = running
        reply = await self.nic.call(self.dev, ops.set_link, running, self.nic.clock.now())
        if reply.flushed_states or reply.flushed_policies or not running:
            log.info(
                "wire link changed",
                extra=logs.fields(
                    dev=self.dev,
                    wire=str(self.wire_ref),
                    up=running,
                    flushed_states=reply.flushed_states,
                    flushed_policies=reply.flushed_policies,
                ),
            )

    async def _follow_device_link(self, events: Subscription) -> None:
        """The TUN's carrier follows the device's link (SetLinkState or the wire)."""
        async for event in events:
            if event.kind == pb.EVENT_KIND_LINK and self.tun_fd >= 0:
                with contextlib.suppress(OSError):
                    ifaces.set_carrier(self.tun_fd, event.link.link == pb.LINK_STATE_UP)


class RealInterfaces:
    """The attachments of one server's devices."""

    def __init__(self, nic: Nic, wires: Wires | None = None, tun_offload: bool = True) -> None:
        self.nic = nic
        self.wires = wires
        #: --tun-offload: TUNs attached from now on carry virtio_net_hdrs (TSO/GRO).
        self.tun_offload = tun_offload
        self.attached: dict[str, Attachment] = {}
        nic.describe_interfaces = self.describe

    def describe(self, dev: str) -> pb.Interfaces | None:
        attachment = self.attached.get(dev)
        return None if attachment is None else attachment.describe()

    async def attach(
        self, dev: str, tun: str, wire: str, host_mtu: int = 0, wire_udp: str = ""
    ) -> pb.Interfaces:
        """Attach a TUN and a link (``wire``) or a UDP cable (``wire_udp``); LocalError
        naming the request field at fault."""
        self.nic.device(dev, "dev")
        tun_ref = _ifref(tun, "host_tun")
        wire_ref: IfRef | UdpRef
        if bool(wire) == bool(wire_udp):
            raise InvalidArgument("give one of wire_if and wire_udp", field="wire_if")
        if wire_udp:
            try:
                wire_ref = ifaces.parse_udpref(wire_udp)
            except ValueError as exc:
                raise InvalidArgument(f"wire_udp: {exc}", field="wire_udp") from None
        else:
            wire_ref = _ifref(wire, "wire_if")
        if dev in self.attached:
            raise AlreadyExists(f"{dev} already has interfaces attached", field="dev")
        if host_mtu and not toobig.V4_MIN_MTU <= host_mtu <= 65535:
            raise InvalidArgument("host_mtu must be from 68 to 65535, or 0", field="host_mtu")
        for other in self.attached.values():
            if tun_ref in (other.tun_ref, other.wire_ref) or wire_ref in (
                other.tun_ref,
                other.wire_ref,
            ):
                raise AlreadyExists(f"{other.dev} already uses that interface", field="wire_if")
        attachment = Attachment(
            self.nic, dev, tun_ref, wire_ref, host_mtu, self.wires, self.tun_offload
        )
        attachment.open()
        try:
            await attachment.start()
        except BaseException:
            await attachment.close()
            raise
        self.attached[dev] = attachment
        log.info(
            "interfaces attached",
            extra=logs.fields(dev=dev, host_tun=str(tun_ref), wire=str(wire_ref)),
        )
        return attachment.describe()

    async def detach(self, dev: str) -> pb.Interfaces:
        self.nic.device(dev, "dev")
        attachment = self.attached.pop(dev, None)
        if attachment is None:
            raise NotFound(f"{dev} has no interfaces attached", field="dev")
        described = attachment.describe()
        await attachment.close()
        log.info("interfaces detached", extra=logs.fields(dev=dev))
        return described

    async def close(self) -> None:
        for dev in list(self.attached):
            await self.attached.pop(dev).close()


def _ifref(text: str, field: str) -> IfRef:
    try:
        return ifaces.parse_ifref(text)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: {exc}", field=field) from None


def _refusal(exc: OSError, ref: IfRef | UdpRef, field: str) -> LocalError:
    """An OSError of opening one side as the request's answer, naming its field."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        where = f"no network namespace {ref.netns!r}" if "namespace" in str(exc) else reason
        return NotFound(f"{field} {ref}: {where}", field=field)
    return InvalidArgument(f"{field} {ref}: {reason}", field=field, errno=exc.errno)


class InterfaceServicer(offload_pb2_grpc.InterfaceServiceServicer):
    """AttachInterfaces / DetachInterfaces."""

    def __init__(self, interfaces: RealInterfaces) -> None:
        self.interfaces = interfaces

    @refusals()
    async def AttachInterfaces(
        self, request: pb.AttachInterfacesRequest, context: Context
    ) -> pb.AttachInterfacesResponse:
        attached = await self.interfaces.attach(
            request.dev, request.host_tun, request.wire_if, request.host_mtu, request.wire_udp
        )
        return pb.AttachInterfacesResponse(interfaces=attached)

    @refusals()
    async def DetachInterfaces(
        self, request: pb.DetachInterfacesRequest, context: Context
    ) -> pb.DetachInterfacesResponse:
        return pb.DetachInterfacesResponse(interfaces=await self.interfaces.detach(request.dev))

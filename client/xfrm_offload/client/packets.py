"""``xfrmctl packet tx|rx``: every packet of a pcap file through a device's TX or RX path.

    xfrmctl packet tx --dev eth0 --in plain.pcap --out esp.pcap
    xfrmctl packet rx --dev eth1 --in esp.pcap --out plain.pcap
    xfrmctl packet tx --dev eth0 --in framed.pcap --out esp.pcap --handle 3 --seq-start 1

What comes out with verdict PASS is written to --out with the input's link type (an
Ethernet capture keeps each packet's own Ethernet header). Then ``sent N, out M, dropped
K`` and the drops by xfrm_stat name; for crypto-offload RX, the packets by crypto status.

Crypto offload TX: the host builds the ESP frame (header, zeroed IV slot, payload and
trailer, zeroed ICV room) and tells the NIC the state (--handle, the state's offload
handle) and each packet's 64-bit sequence number: --seq-start for the first packet,
counting up by one per packet. Packet offload needs neither (the NIC looks it all up).

Memory stays bounded on any capture size: at most MAX_IN_FLIGHT batches are between the
file reader and the file writer at any time (read, send, receive, write as it goes).
Frames that hold no IP packet (ARP, truncated by snaplen) are skipped and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import operator
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TextIO

import grpc

from xfrm_offload.v1 import offload_pb2 as pb

from .api import Client
from .errors import XfrmOffloadError
from .pcap import (
    PcapChunk,
    PcapError,
    PcapReader,
    PcapWriter,
    RecordHead,
    join_links,
    split_link,
    split_links,
)
from .split import BatchRequests
from .status import ExitStatus
from .tls import TlsError, TlsOptions

#: Batches sent and not yet answered, at most: what bounds the memory a run pins.
MAX_IN_FLIGHT = 4
DEFAULT_BATCH = 64
#: Seconds between two progress bar updates at most.
PROGRESS_INTERVAL = 0.2

USAGE = """\
Usage: xfrmctl [ OPTIONS ] packet { tx | rx } --dev DEV --in IN.pcap --out OUT.pcap
                                 [ --batch N ] [ --handle H --seq-start S ]
"""

_CRYPTO_PREFIX = "CRYPTO_STATUS_"
#: The details grpc.aio gives a call whose request write failed in the client's own core.
_CORE_WRITE_FAILED = "Internal error from Core"


class _UsageError(Exception):
    pass


class SequenceOverflow(ValueError):
    """Crypto offload TX: the capture holds more packets than --seq-start leaves 64-bit
    sequence numbers for."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, out: TextIO, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._out = out

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            self._out.write(message)


def _positive(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _unsigned(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return value


def build_parser(out: TextIO) -> argparse.ArgumentParser:
    parser = _Parser(
        out,
        prog="xfrmctl packet",
        description="Push every packet of a pcap capture through a device's TX or RX path.",
        epilog="Crypto offload TX: the capture holds host-framed ESP packets; --handle names "
        "the state, --seq-start is the first packet's 64-bit sequence number, the next ones "
        "count up. Exit status: 0 done (drops are results), 1 server refusal, 2 usage.",
    )
    parser.add_argument("direction", choices=["tx", "rx"], help="the device's TX or RX path")
    parser.add_argument("--dev", help="device name (else xfrmctl's --dev)")
    parser.add_argument("--in", dest="infile", required=True, metavar="IN.pcap")
    parser.add_argument("--out", dest="outfile", required=True, metavar="OUT.pcap")
    parser.add_argument(
        "--batch", type=_positive, default=DEFAULT_BATCH, help="packets per message (64)"
    )
    parser.add_argument(
        "--handle", type=_unsigned, default=0, help="crypto offload TX: the state's handle"
    )
    parser.add_argument(
        "--seq-start",
        type=_unsigned,
        default=None,
        help="crypto offload TX: the first packet's sequence number (default 1)",
    )
    return parser


@dataclass
class PacketCounts:
    """What a run did."""

    sent: int = 0
    out: int = 0
    dropped: int = 0
    consumed: int = 0
    skipped: int = 0
    drops: collections.Counter[str] = field(default_factory=collections.Counter)
    crypto: collections.Counter[str] = field(default_factory=collections.Counter)
    skip_reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Every packet of the capture was read, sent and answered (False: the server ended
    #: the stream early, e.g. when it was stopped).
    complete: bool = False

    @property
    def answered(self) -> int:
        return self.out + self.dropped + self.consumed

    def summary(self) -> str:
        line = f"sent {self.sent}, out {self.out}, dropped {self.dropped}"
        if self.consumed:
            line += f", consumed {self.consumed}"
        if self.skipped:
            line += f", skipped {self.skipped}"
        lines = [line]
        lines += [f"  {reason} {n}" for reason, n in sorted(self.drops.items())]
        if self.crypto:
            status = ", ".join(f"{name} {n}" for name, n in sorted(self.crypto.items()))
            lines.append(f"crypto status: {status}")
        lines += [f"  skipped: {reason} {n}" for reason, n in sorted(self.skip_reasons.items())]
        return "\n".join(lines) + "\n"


class _Progress:
    """tqdm's bar on a terminal: bytes of the capture read out of its size, percentage,
    rate and time left, with the packet counts after it; nothing when err is no terminal.

    Bytes, not packets: the packet count of a capture is unknown until it is read through,
    and its size is not.
    """

    def __init__(self, err: TextIO) -> None:
        isatty = getattr(err, "isatty", None)
        self.err = err
        self.on = bool(isatty and isatty())
        self._bar: Any = None
        self._offset = 0

    def watch(self, infile: BinaryIO, label: str) -> None:
        """Start the bar for this capture (call once the file is open)."""
        if not self.on:
            return
        from tqdm import tqdm  # only on a terminal: no import cost for scripts

        self._bar = tqdm(
            total=os.fstat(infile.fileno()).st_size,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.err,
            leave=False,
            mininterval=PROGRESS_INTERVAL,
            dynamic_ncols=True,
        )

    def update(
        self, counts: PacketCounts, offset: int | None = None, *, force: bool = False
    ) -> None:
        """The counts, and how far the capture is read (``offset``: bytes; None: as
        before)."""
        if self._bar is None:
            return
        if offset is not None:
            self._offset = offset
        self._bar.set_postfix_str(
            f"sent {counts.sent}, out {counts.out}, dropped {counts.dropped}", refresh=False
        )
        self._bar.update(self._offset - self._bar.n)
        if force:
            self._bar.refresh()

    def done(self) -> None:
        if self._bar is not None:
            self._bar.close()  # leave=False: the line is erased, the summary follows
            self._bar = None


@dataclass
class _Batch:
    """What the writer needs of one batch in flight: each packet's link header and its
    record header in the capture (for its time)."""

    headers: list[bytes]
    heads: list[RecordHead]


_SECONDS, _FRACTION = operator.itemgetter(0), operator.itemgetter(1)


def _usable(
    linktype: int, chunk: PcapChunk[memoryview], counts: PacketCounts
) -> tuple[_Batch, list[memoryview]]:
    """The packets of a chunk worth sending (views of the capture), their link headers
    and record headers; frames truncated by snaplen or holding no IP packet are skipped
    and counted."""
    if not chunk.truncated():
        split = split_links(linktype, chunk.frames)
        if split is not None:  # the common case, checked per batch
            headers, packets = split
            return _Batch(headers, chunk.heads), packets
    batch, packets = _Batch([], []), list[memoryview]()
    for frame, head in zip(chunk.frames, chunk.heads, strict=True):
        if head[2] < head[3]:
            counts.skipped += 1
            counts.skip_reasons["truncated by snaplen"] += 1
            continue
        try:
            header, packet = split_link(linktype, frame)
        except PcapError:
            counts.skipped += 1
            counts.skip_reasons["not an IP packet"] += 1
            continue
        packets.append(packet)
        batch.headers.append(header)
        batch.heads.append(head)
    return batch, packets


async def push_capture(
    client: Client,
    dev: str,
    direction: pb.PacketDirection,
    infile: BinaryIO,
    outfile: BinaryIO,
    *,
    batch: int = DEFAULT_BATCH,
    handle: int = 0,
    seq_start: int = 1,
    progress: _Progress | None = None,
) -> PacketCounts:
    """Stream a pcap through a device and write what comes out; raises PcapError,
    SequenceOverflow and XfrmOffloadError.

    Packets go in PacketBatch messages, batch by batch as the capture's chunks come, and
    the per-packet work stays in C loops (record slicing, map, slice assignment) where it
    can: past that, most of the client's cost per packet is grpc.aio's own per message.
    A batch holds at most ``batch`` packets: the usable ones of ``batch`` records. Each
    request is serialized by hand from views of the capture (split.BatchRequests: one
    copy of each packet, where a message built and serialized took three) and sent as it
    is; each answer is parsed by protobuf.
    """
    reader = PcapReader(infile)
    linktype = reader.linktype
    # The input's time unit: each packet's time is copied, not converted.
    writer = PcapWriter(
        outfile, linktype, snaplen=max(reader.snaplen, 65535), nanosecond=reader.nanosecond
    )
    counts = PacketCounts()
    in_flight: collections.deque[_Batch] = collections.deque()
    room = asyncio.Semaphore(MAX_IN_FLIGHT)
    crypto_names = {
        value: name.removeprefix(_CRYPTO_PREFIX).lower().replace("_", "-")
        for name, value in pb.CryptoStatus.items()
    }

    # Raised in the request iterator, re-raised below.
    failure: list[PcapError | SequenceOverflow] = []
    encoder = BatchRequests(dev, direction, client.packet_request_limit)

    async def batches() -> AsyncIterator[list[bytes]]:
        seq = seq_start
        try:
            for chunk in reader.views(batch):
                meta, data = _usable(linktype, chunk, counts)
                if not data:
                    continue
                n = len(data)
                if handle and seq + n > 1 << 64:
                    raise SequenceOverflow(
                        f"--seq-start {seq_start} leaves 64-bit sequence numbers for"
                        f" {(1 << 64) - seq_start} packets; the capture has more"
                    )
                counts.sent += n
                await room.acquire()
                in_flight.append(meta)
                if handle:
                    yield encoder.parts(data, [handle] * n, range(seq, seq + n))
                else:
                    yield encoder.parts(data)
                seq += n
        except (PcapError, SequenceOverflow) as exc:  # grpc would make it CANCELLED: keep it
            failure.append(exc)
            return
        read_all.set()

    read_all = asyncio.Event()

    def take(reply: pb.PacketBatchResult) -> None:
        """Count one answer and write what passed."""
        meta = in_flight.popleft()
        room.release()
        verdicts = list(reply.verdict)
        if len(verdicts) != len(meta.heads):
            raise XfrmOffloadError(
                grpc.StatusCode.INTERNAL,
                f"the server answered {len(verdicts)} results for {len(meta.heads)} packets",
            )
        outputs = list(reply.data)
        heads = meta.heads
        passed = verdicts.count(pb.VERDICT_PASS)
        if passed == len(verdicts):
            headers = meta.headers
        else:
            keep = [i for i, verdict in enumerate(verdicts) if verdict == pb.VERDICT_PASS]
            outputs = [outputs[i] for i in keep]
            headers = [meta.headers[i] for i in keep]
            heads = [heads[i] for i in keep]
            dropped = verdicts.count(pb.VERDICT_DROP)
            counts.dropped += dropped
            counts.consumed += len(verdicts) - passed - dropped
            for reason in reply.drop_reason:
                counts.drops[reason or "unknown"] += 1
            if dropped > len(reply.drop_reason):  # a server that named fewer than it dropped
                counts.drops["unknown"] += dropped - len(reply.drop_reason)
        writer.write_frames(
            join_links(linktype, headers, outputs),
            list(map(_SECONDS, heads)),
            list(map(_FRACTION, heads)),
        )
        counts.out += passed
        if reply.crypto_status:
            for status, n in collections.Counter(reply.crypto_status).items():
                if status:
                    counts.crypto[crypto_names.get(status, "unknown")] += n
        if progress is not None:
            progress.update(counts, reader.offset)

    try:
        async for reply in client.packet_batch_wire(batches()):
            take(reply)
    except XfrmOffloadError as exc:
        # grpc.aio's own race (grpc/grpc#36066): a request written just as the server
        # ends the stream fails in the client's core, and the call then reports that
        # failure, INTERNAL "Internal error from Core", in place of the server's status.
        # The server did end the stream early: say so, as when its OK end comes first.
        if (exc.code, exc.message) != (grpc.StatusCode.INTERNAL, _CORE_WRITE_FAILED):
            raise
    if failure:
        raise failure[0]
    counts.complete = read_all.is_set() and not in_flight
    return counts


def _is_open_as(path: Path, stream: TextIO) -> bool:
    """True when ``path`` names the file ``stream`` writes to (--out /dev/stdout, or the
    file stdout is redirected to)."""
    try:
        x, y = os.stat(path), os.fstat(stream.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation: a StringIO has no descriptor
        return False
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


class _IncompleteRun(Exception):
    """The server ended the stream before every packet was answered."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # b does not exist yet
        return a.resolve() == b.resolve()


class _Output:
    """--out, written to a temporary file beside it and renamed into place only on success,
    so a refused, failed or interrupted run leaves whatever was there before untouched.

    A symbolic link is followed (its target is replaced, the link stays). What is not a
    regular file (a pipe, /dev/stdout, /dev/null) cannot be renamed over: it is written in
    place, as it would be by any tool.
    """

    def __init__(self, path: Path) -> None:
        self.temp: Path | None = None
        if path.exists() and not path.is_file():
            self.path = path
            self.file: BinaryIO = path.open("wb")
            return
        self.path = path.resolve() if path.is_symlink() else path
        fd, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part"
        )
        self.temp = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # what open(path, "wb") would have made
        self.file = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.close()
        if self.temp is not None:
            os.replace(self.temp, self.path)

    def discard(self) -> None:
        self.file.close()
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)


async def packet_main(
    tokens: Sequence[str],
    *,
    server: str | None,
    default_dev: str,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    tls: TlsOptions | None = None,
) -> int:
    """``xfrmctl packet ...`` (tokens start with "packet"); returns xfrmctl's exit status."""
    try:
        args = build_parser(out).parse_args(list(tokens[1:]))
        dev = args.dev or default_dev
        if not dev:
            raise _UsageError(f"{USAGE}xfrmctl packet: error: --dev DEV is required")
        if args.seq_start is not None and not args.handle:
            raise _UsageError(
                f"{USAGE}xfrmctl packet: error: --seq-start needs --handle (crypto offload TX)"
            )
        if args.handle and args.direction != "tx":
            raise _UsageError(
                f"{USAGE}xfrmctl packet: error: --handle is for crypto offload TX only"
            )
        client = Client(server, timeout=None, tls=tls)
    except (_UsageError, TlsError) as exc:
        err.write(f"{exc}\n")
        return ExitStatus.USAGE
    except SystemExit as exc:  # --help
        return ExitStatus.USAGE if exc.code else ExitStatus.OK
    except ValueError as exc:
        err.write(f"xfrmctl: --server: {exc}\n")
        return ExitStatus.USAGE
    direction = pb.PACKET_DIRECTION_TX if args.direction == "tx" else pb.PACKET_DIRECTION_RX
    progress = _Progress(err)
    inpath, outpath = Path(args.infile), Path(args.outfile)
    if _same_file(inpath, outpath):  # before anything is opened: the capture stays whole
        err.write(
            f"{USAGE}xfrmctl packet: error: --out {args.outfile} is the --in file;"
            " name another output file\n"
        )
        await client.close()
        return ExitStatus.USAGE
    try:
        infile = inpath.open("rb")  # closed by the with below
        progress.watch(infile, f"{args.direction} {dev}")
    except OSError as exc:
        await client.close()
        err.write(f"xfrmctl: --in {args.infile}: {exc.strerror}\n")
        return ExitStatus.USAGE
    output: _Output | None = None
    summary_to_err = _is_open_as(outpath, out)
    try:
        with infile:
            output = _Output(outpath)
            counts = await push_capture(
                client,
                dev,
                direction,
                infile,
                output.file,
                batch=args.batch,
                handle=args.handle,
                seq_start=1 if args.seq_start is None else args.seq_start,
                progress=progress,
            )
            progress.update(counts, force=True)  # the bar's last state: 100%
            if not counts.complete:
                raise _IncompleteRun
            output.commit()
            output = None
    except _IncompleteRun:
        progress.done()
        err.write(
            f"xfrmctl: the server ended the stream after answering {counts.answered} of the"
            f" packets sent ({counts.summary().splitlines()[0]}); {args.outfile} not written\n"
        )
        return ExitStatus.SERVER_ERROR
    except (PcapError, SequenceOverflow) as exc:
        progress.done()
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.USAGE
    except BrokenPipeError:  # --out is a pipe its reader closed: end as cat would (SIGPIPE)
        progress.done()
        raise
    except OSError as exc:
        progress.done()
        err.write(f"xfrmctl: --out {args.outfile}: {exc.strerror or exc}\n")
        return ExitStatus.USAGE
    except XfrmOffloadError as exc:
        progress.done()
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            err.write(f"xfrmctl: cannot reach the server at {client.address}: {exc.message}\n")
            return ExitStatus.UNREACHABLE
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.SERVER_ERROR
    finally:
        if output is not None:  # failed, refused or interrupted (CancelledError): no output
            output.discard()
        await client.close()
    progress.done()
    # --out /dev/stdout: the capture went to stdout, the summary must not follow it there.
    (err if summary_to_err else out).write(counts.summary())
    return ExitStatus.OK

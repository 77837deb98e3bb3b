"""Command line of xfrm-offloadd, parsed into a ServerConfig (argparse exits 2 on bad input)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from xfrm_offload.engine.bond import BondMode
from xfrm_offload.engine.profiles import PROFILES
from xfrm_offload.v1.endpoint import Endpoint, default_socket_path, parse_endpoint
from xfrm_offload.v1.transport import DEFAULT_MAX_REQUEST_BYTES, MAX_MESSAGE_BYTES

from . import logs, security
from .ifaces import IfRef, UdpRef, parse_ifref, parse_udpref

DEFAULT_DEVICE = "eth0"
DEFAULT_PROFILE = "full"
#: Linux interface names: at most IFNAMSIZ-1 = 15 bytes, no '/', ':' or whitespace.
_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")


@dataclass(frozen=True)
class DeviceSpec:
    """One --device: a name and a capability profile."""

    name: str
    profile: str = DEFAULT_PROFILE


@dataclass(frozen=True)
class InterfaceSpec:
    """--host-tun with --wire-if or --wire-udp of one device: a TUN as its host, a link
    or a UDP cable as its wire."""

    dev: str
    host_tun: IfRef
    wire_if: IfRef | None = None
    wire_udp: UdpRef | None = None


@dataclass(frozen=True)
class BondSpec:
    """One --bond: a name, its members in enslave order, a bonding mode."""

    name: str
    members: tuple[str, ...]
    mode: str = "active-backup"


@dataclass(frozen=True)
class ServerConfig:
    """Everything xfrm-offloadd was asked to do."""

    listen: tuple[Endpoint, ...]
    devices: tuple[DeviceSpec, ...] = (DeviceSpec(DEFAULT_DEVICE),)
    cables: tuple[tuple[str, str], ...] = ()
    virtual_clock: bool = False
    grace: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    uvloop: bool = False
    workers: int = 0
    #: Calls in flight before new ones are answered RESOURCE_EXHAUSTED (limits.py).
    max_calls: int = 10_000
    #: Packet bytes in flight across every PacketStream (datapath.py's PacketBudget).
    packet_budget: int = 256 << 20
    #: --max-request: the largest request message gRPC core takes (transport.py).
    max_request: int = DEFAULT_MAX_REQUEST_BYTES
    bonds: tuple[BondSpec, ...] = ()
    security: security.SecurityConfig = field(default_factory=security.SecurityConfig)
    metrics: Endpoint | None = None
    #: --engine: auto/native/python; None keeps XFRM_OFFLOAD_ENGINE's choice (default auto).
    engine: str | None = None
    interfaces: tuple[InterfaceSpec, ...] = ()
    #: --tun-offload: TUNs carry virtio_net_hdrs (TSO from the host, coalesced TCP to it).
    tun_offload: bool = True


def _endpoint(text: str) -> Endpoint:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _metrics(text: str) -> Endpoint:
    endpoint = _endpoint(text)
    if endpoint.unix_path is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: Prometheus scrapes HOST:PORT, not unix:")
    return endpoint


def _device(text: str) -> DeviceSpec:
    name, _, profile = text.partition(":")
    if not _IFNAME.match(name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: device name must be 1-15 characters of letters, digits, '_', '.', '-'"
        )
    profile = profile or DEFAULT_PROFILE
    if profile not in PROFILES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown profile {profile!r} (choose from {', '.join(sorted(PROFILES))})"
        )
    return DeviceSpec(name, profile)


def _cable(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b or a == b:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DEV_A:DEV_B, two different devices")
    return a, b


def _dev_ifref(text: str) -> tuple[str, IfRef]:
    """``[DEV=]IFNAME[@NETNS]`` (DEV empty: the first --device)."""
    dev, _, rest = text.rpartition("=")
    try:
        return dev, parse_ifref(rest)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dev_udpref(text: str) -> tuple[str, UdpRef]:
    """``[DEV=]LOCAL:PORT,PEER:PORT[@NETNS]``."""
    dev, _, rest = text.rpartition("=")
    try:
        return dev, parse_udpref(rest)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interfaces(
    parser: argparse.ArgumentParser,
    names: list[str],
    tuns: list[tuple[str, IfRef]],
    wires: list[tuple[str, IfRef]],
    cables: list[tuple[str, UdpRef]],
) -> tuple[InterfaceSpec, ...]:
    """Pair each device's --host-tun with its --wire-if or --wire-udp."""
    sides: dict[str, dict[str, IfRef | UdpRef]] = {}
    given_sides: tuple[tuple[str, list[tuple[str, IfRef]] | list[tuple[str, UdpRef]]], ...] = (
        ("--host-tun", tuns),
        ("--wire-if", wires),
        ("--wire-udp", cables),
    )
    for option, given in given_sides:
        for dev, ref in given:
            dev = dev or names[0]
            if dev not in names:
                parser.error(f"argument {option}: no device {dev!r} (have: {', '.join(names)})")
            if option in sides.setdefault(dev, {}):
                parser.error(f"argument {option}: {dev} given more than once")
            sides[dev][option] = ref
    specs = []
    for dev, pair in sides.items():
        tun = pair.get("--host-tun")
        link, cable = pair.get("--wire-if"), pair.get("--wire-udp")
        if not isinstance(tun, IfRef) or (link is None) == (cable is None):
            missing = "--wire-if" if tun is not None else "--host-tun"
            parser.error(
                f"argument {missing}: {dev} needs --host-tun and one of --wire-if, --wire-udp"
            )
        specs.append(
            InterfaceSpec(
                dev,
                tun,
                link if isinstance(link, IfRef) else None,
                cable if isinstance(cable, UdpRef) else None,
            )
        )
    return tuple(specs)


def _bond(text: str) -> BondSpec:
    name, _, rest = text.partition(":")
    members, _, mode = rest.partition(":")
    if not _IFNAME.match(name):
        raise argparse.ArgumentTypeError(
            f"{text!r}: bond name must be 1-15 characters of letters, digits, '_', '.', '-'"
        )
    names = tuple(m for m in members.split(",") if m)
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:MEMBER[,MEMBER...][:MODE]")
    modes = [m.value for m in BondMode]
    mode = mode or BondMode.ACTIVE_BACKUP.value
    if mode not in modes:
        raise argparse.ArgumentTypeError(
            f"{text!r}: unknown bonding mode {mode!r} (choose from {', '.join(modes)})"
        )
    return BondSpec(name, names, mode)


def _workers(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of workers from 0 to 64")
    return int(text)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def _mebibytes(text: str) -> int:
    return _at_least_one(text) << 20


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xfrm-offloadd",
        description="An emulated IPsec offload NIC (Linux xfrmdev_ops) served over gRPC.",
    )
    parser.add_argument(
        "--listen",
        metavar="ADDR",
        action="append",
        type=_endpoint,
        help=f"unix:PATH or HOST:PORT, repeatable (default: unix:{default_socket_path()})",
    )
    parser.add_argument(
        "--device",
        metavar="NAME[:PROFILE]",
        action="append",
        type=_device,
        help=f"a NIC to host, repeatable; profiles: {', '.join(sorted(PROFILES))} "
        f"(default: {DEFAULT_DEVICE}:{DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--cable",
        metavar="DEV_A:DEV_B",
        action="append",
        type=_cable,
        default=[],
        help="connect two devices' wires inside the server, repeatable",
    )
    parser.add_argument(
        "--bond",
        metavar="NAME:MEMBER[,MEMBER...][:MODE]",
        action="append",
        type=_bond,
        default=[],
        help="a bond over --device members (mode active-backup by default), repeatable; "
        "states and policies added on it live on its active member",
    )
    parser.add_argument(
        "--virtual-clock",
        action="store_true",
        help="time moves only through the AdvanceClock RPC (for tests of time limits)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long in-flight RPCs may finish on shutdown (default: 5)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N",
        help="run the devices in N worker processes, sharded round-robin "
        "(default 0: in the server's own process)",
    )
    parser.add_argument(
        "--max-calls",
        type=_at_least_one,
        default=10_000,
        metavar="N",
        help="calls in flight (streams included) before new ones are answered "
        "RESOURCE_EXHAUSTED with a retry hint (default: 10000)",
    )
    parser.add_argument(
        "--packet-budget",
        type=_mebibytes,
        default=256 << 20,
        metavar="MIB",
        help="packet bytes in flight across all packet streams, MiB; streams past it "
        "wait on flow control (default: 256)",
    )
    parser.add_argument(
        "--max-request",
        type=_mebibytes,
        default=DEFAULT_MAX_REQUEST_BYTES,
        metavar="MIB",
        help="the largest request message of any call, MiB, at most 64; gRPC refuses a "
        "larger one RESOURCE_EXHAUSTED before it is copied (default: "
        f"{DEFAULT_MAX_REQUEST_BYTES >> 20}, what the client library sends at most)",
    )
    parser.add_argument(
        "--host-tun",
        metavar="[DEV=]IFNAME[@NETNS]",
        action="append",
        type=_dev_ifref,
        default=[],
        help="a TUN as DEV's host side (default DEV: the first --device), in network "
        "namespace NETNS if given; created if missing",
    )
    parser.add_argument(
        "--wire-if",
        metavar="[DEV=]IFNAME[@NETNS]",
        action="append",
        type=_dev_ifref,
        default=[],
        help="a link (veth, ...) as DEV's wire side, through an AF_PACKET socket",
    )
    parser.add_argument(
        "--wire-udp",
        metavar="[DEV=]LOCAL:PORT,PEER:PORT[@NETNS]",
        action="append",
        type=_dev_udpref,
        default=[],
        help="instead of --wire-if: a UDP cable to another server's DEV (one datagram per "
        "ESP frame)",
    )
    parser.add_argument(
        "--tun-offload",
        choices=("on", "off"),
        default="on",
        help="TUN offloads (virtio_net_hdr): the host hands TCP super-packets to the NIC, "
        "which segments them (TSO), and receives coalesced TCP segments (GRO) (default: on)",
    )
    security.add_arguments(parser)
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        type=_metrics,
        default=None,
        help="serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any free port)",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "native", "python"),
        default=None,
        help="ESP engine: native (C on OpenSSL), python (the reference), auto (native "
        "when built; default, or $XFRM_OFFLOAD_ENGINE)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> ServerConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    devices: list[DeviceSpec] = args.device or [DeviceSpec(DEFAULT_DEVICE)]
    names = [d.name for d in devices]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if args.max_request > MAX_MESSAGE_BYTES:
        parser.error(
            f"argument --max-request: at most {MAX_MESSAGE_BYTES >> 20} (the answers' limit)"
        )
    if duplicates:
        parser.error(f"argument --device: {', '.join(duplicates)} given more than once")
    cabled: set[str] = set()
    for a, b in args.cable:
        for end in (a, b):
            if end not in names:
                parser.error(f"argument --cable: no device {end!r} (have: {', '.join(names)})")
            if end in cabled:
                parser.error(f"argument --cable: {end} is in two cables (a wire has two ends)")
            cabled.add(end)
    interfaces = _interfaces(parser, names, args.host_tun, args.wire_if, args.wire_udp)
    bonded: set[str] = set()
    for bond in args.bond:
        if bond.name in names or bond.name in {b.name for b in args.bond if b is not bond}:
            parser.error(f"argument --bond: {bond.name} is already a device name")
        for member in bond.members:
            if member not in names:
                parser.error(f"argument --bond: no device {member!r} (have: {', '.join(names)})")
            if member in bonded:
                parser.error(f"argument --bond: {member} is in two bonds")
            bonded.add(member)
    if args.bond and args.workers:
        parser.error(
            "argument --bond: a bond needs its members in the server process (no --workers)"
        )
    listen = args.listen or [Endpoint(unix_path=default_socket_path())]
    for endpoint in args.listen or ():
        # Only the default socket's runtime directory is made (app.py); a directory named on
        # the command line must exist: a typo must not leave a directory tree behind.
        path = endpoint.unix_path
        if path is not None and path != default_socket_path() and not path.parent.exists():
            parser.error(f"argument --listen: {endpoint}: no directory {path.parent}")
    return ServerConfig(
        listen=tuple(listen),
        devices=tuple(devices),
        cables=tuple(args.cable),
        virtual_clock=args.virtual_clock,
        grace=args.grace,
        log_level=args.log_level,
        log_format=args.log_format,
        uvloop=args.uvloop,
        workers=args.workers,
        max_calls=args.max_calls,
        packet_budget=args.packet_budget,
        max_request=args.max_request,
        interfaces=interfaces,
        tun_offload=args.tun_offload == "on",
        bonds=tuple(args.bond),
        security=security.from_args(parser, args, listen),
        metrics=args.metrics,
        engine=args.engine,
    )

"""xfrmctl: drive an xfrm-offloadd from a shell.

    xfrmctl [--server ADDR] [--json] device list
    xfrmctl [--server ADDR] [--json] device show DEV

Exit status: 0 ok, 1 the server refused, 2 usage error, 3 server unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb
from xfrm_offload.v1.endpoint import SERVER_ENV, default_address

from .api import Client
from .errors import XfrmOffloadError


class ExitStatus(enum.IntEnum):
    """What xfrmctl's exit code means."""

    OK = 0
    SERVER_ERROR = 1
    USAGE = 2
    UNREACHABLE = 3


class UsageError(Exception):
    """A command line xfrmctl cannot understand (exit 2)."""


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def format_device(device: pb.Device, *, details: bool) -> str:
    """Human output of one device, `ip link`-like."""
    link = _enum_name(pb.LinkState, device.link, "LINK_STATE_")
    lines = [
        f"{device.ifindex}: {device.name}: profile {device.profile} link {link}"
        + (f" cable {device.cable_peer}" if device.cable_peer else ""),
        f"    features: {' '.join(device.features) or '-'}",
        f"    states {device.state_count} policies {device.policy_count}",
    ]
    if details:
        caps = device.capabilities
        types = ",".join(
            _enum_name(xpb.OffloadType, t, "OFFLOAD_TYPE_") for t in caps.offload_types
        )
        modes = ",".join(_enum_name(xpb.XfrmMode, m, "XFRM_MODE_") for m in caps.modes)
        lines.append(f"    offload {types} modes {modes} esn {'on' if caps.esn else 'off'}")
        lines.append(
            f"    max-states {caps.max_states or 'unlimited'} max-replay-window "
            f"{caps.max_replay_window} mtu {caps.mtu}"
        )
        if caps.packet_in_replay_windows:
            windows = ",".join(str(w) for w in caps.packet_in_replay_windows)
            lines.append(f"    packet-in replay-windows {windows}")
        rules = [
            name
            for name, on in (
                ("reqid-required", caps.reqid_required),
                ("soft-below-hard", caps.soft_below_hard),
            )
            if on
        ]
        if rules:
            lines.append(f"    rules {' '.join(rules)}")
        if caps.natt:
            natt_types = ",".join(
                _enum_name(xpb.OffloadType, t, "OFFLOAD_TYPE_") for t in caps.natt_offload_types
            )
            natt_modes = ",".join(
                _enum_name(xpb.XfrmMode, m, "XFRM_MODE_") for m in caps.natt_modes
            )
            lines.append(f"    nat-t espinudp offload {natt_types} modes {natt_modes}")
        if caps.policy_offload:
            dirs = ",".join(_enum_name(xpb.PolicyDir, d, "POLICY_DIR_") for d in caps.policy_dirs)
            lines.append(
                f"    policy-offload dirs {dirs} max-templates {caps.max_policy_templates}"
            )
        for alg in caps.algorithms:
            keys = ",".join(str(k) for k in alg.key_bits)
            icvs = ",".join(str(i) for i in alg.icv_bits)
            lines.append(f"    {alg.kind} {alg.name} key-bits {keys} icv-bits {icvs or '-'}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xfrmctl",
        description="Control an xfrm-offloadd emulated IPsec offload NIC.",
        epilog=f"The server address defaults to ${SERVER_ENV}, else the server's default socket.",
    )
    parser.add_argument(
        "--server", metavar="ADDR", help=f"unix:PATH or HOST:PORT ({default_address()})"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    sub = parser.add_subparsers(dest="object", metavar="OBJECT", required=True)
    device = sub.add_parser("device", aliases=["dev"], help="list and show devices")
    device_sub = device.add_subparsers(dest="action", metavar="ACTION", required=True)
    device_sub.add_parser("list", aliases=["ls"], help="every device")
    show = device_sub.add_parser("show", help="one device with its capabilities")
    show.add_argument("dev", metavar="DEV")
    return parser


async def _device(args: argparse.Namespace, client: Client, out: TextIO) -> None:
    if args.action in ("list", "ls"):
        devices = await client.list_devices()
        if args.json:
            json.dump([to_json(d) for d in devices], out, indent=2)
            out.write("\n")
        else:
            for device in devices:
                out.write(format_device(device, details=False) + "\n")
    else:
        device = await client.get_device(args.dev)
        if args.json:
            json.dump(to_json(device), out, indent=2)
            out.write("\n")
        else:
            out.write(format_device(device, details=True) + "\n")


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one xfrmctl command; returns the exit status (usable in-process by tests)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 0) and ExitStatus.USAGE
    try:
        client = Client(args.server, timeout=args.timeout)
    except ValueError as exc:
        err.write(f"xfrmctl: --server: {exc}\n")
        return ExitStatus.USAGE
    try:
        async with client:
            await _device(args, client, out)
    except XfrmOffloadError as exc:
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            err.write(f"xfrmctl: cannot reach the server at {client.address}: {exc.message}\n")
            return ExitStatus.UNREACHABLE
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.SERVER_ERROR
    return ExitStatus.OK


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())

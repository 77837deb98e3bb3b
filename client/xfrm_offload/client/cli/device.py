"""``xfrmctl device ...``: the NIC's devices (their formatting is render.format_device)."""

from __future__ import annotations

from collections.abc import Sequence

from ..render import format_device, format_interfaces
from ..status import ExitStatus
from .options import Parser
from .session import Session, to_json


def device_parser() -> Parser:
    parser = Parser(prog="xfrmctl device")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", aliases=["ls"], help="every device")
    show = sub.add_parser("show", help="one device with its capabilities")
    show.add_argument("dev", metavar="DEV")
    attach = sub.add_parser("attach", help="put DEV between a TUN (host) and a link (wire)")
    attach.add_argument("dev", metavar="DEV")
    attach.add_argument("--tun", required=True, metavar="IFNAME[@NETNS]", help="host side")
    wire = attach.add_mutually_exclusive_group(required=True)
    wire.add_argument("--wire", default="", metavar="IFNAME[@NETNS]", help="wire side: a link")
    wire.add_argument(
        "--udp", default="", metavar="LOCAL:PORT,PEER:PORT[@NETNS]", help="or a UDP cable"
    )
    attach.add_argument("--mtu", type=int, default=0, help="the TUN's MTU (default: auto)")
    detach = sub.add_parser("detach", help="take DEV's interfaces off")
    detach.add_argument("dev", metavar="DEV")
    return parser


async def run_device(session: Session, tokens: Sequence[str]) -> int:
    parser = device_parser()
    parser.out = session.out
    try:
        args = parser.parse_args(list(tokens[1:]))
    except SystemExit:  # device --help, already printed
        return ExitStatus.OK
    client = session.client
    if args.action in ("list", "ls"):
        devices = await client.list_devices()
        if session.args.json:
            session.emit_json([to_json(d) for d in devices])
        else:
            for device in devices:
                session.out.write(format_device(device, details=False) + "\n")
    elif args.action == "attach":
        attached = await client.attach_interfaces(
            args.dev, args.tun, args.wire, args.mtu, wire_udp=args.udp
        )
        session.out.write("\n".join([f"{args.dev}:", *format_interfaces(attached)]) + "\n")
    elif args.action == "detach":
        detached = await client.detach_interfaces(args.dev)
        session.out.write("\n".join([f"{args.dev}: detached", *format_interfaces(detached)]) + "\n")
    else:
        device = await client.get_device(args.dev)
        if session.args.json:
            session.emit_json(to_json(device))
        else:
            session.out.write(format_device(device, details=True) + "\n")
    return ExitStatus.OK

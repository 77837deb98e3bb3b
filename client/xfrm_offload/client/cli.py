"""xfrmctl: drive an xfrm-offloadd from a shell, with iproute2's ``ip xfrm`` grammar.

    xfrmctl [OPTIONS] [xfrm] state|policy COMMAND ...     as ip xfrm state|policy
    xfrmctl [OPTIONS] [xfrm] monitor [--count N] [all | GROUP...] [DEV...]
    xfrmctl [OPTIONS] stats [DEV]
    xfrmctl [OPTIONS] link set [dev] DEV up|down | impair ...   (impair.py)
    xfrmctl [OPTIONS] link show [dev] DEV
    xfrmctl [OPTIONS] device list | device show DEV
    xfrmctl [OPTIONS] device attach DEV --tun IFNAME[@NETNS] --wire IFNAME[@NETNS] | detach DEV
    xfrmctl [OPTIONS] packet tx|rx --dev DEV --in IN.pcap --out OUT.pcap   (packets.py)

OPTIONS: --server ADDR, -j/--json, -p/--pretty, -s/--stats, --keys, --dev DEV, --timeout S,
--tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME (tls.py), --version;
as with ip, they may also follow the command (``state list --json``).
Exit status: 0 ok, 1 the server refused, 2 usage error, 3 server unreachable; a reader that
closes the pipe early ends xfrmctl by SIGPIPE, as it ends cat or ip.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb
from xfrm_offload.v1.endpoint import SERVER_ENV, default_address

from . import grammar
from .api import Client
from .errors import XfrmOffloadError
from .grammar import Command, PolicyFilter, StateFilter, XfrmSyntaxError
from .impair import format_impairment, parse_impairment
from .packets import build_parser as packet_parser
from .packets import packet_main
from .render import format_event, format_policy, format_state, format_xfrm_stat
from .status import ExitStatus as ExitStatus  # re-exported: xfrmctl's exit codes
from .tls import TlsError, add_tls_arguments, tls_of


class UsageError(Exception):
    """A command line xfrmctl cannot understand (exit 2)."""


class Refused(Exception):
    """A request xfrmctl itself declines or the NIC cannot do (exit 1, like a server refusal)."""


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


# --------------------------------------------------------------------------- devices


def format_device(device: pb.Device, *, details: bool) -> str:
    """Human output of one device, `ip link`-like."""
    link = _enum_name(pb.LinkState, device.link, "LINK_STATE_")
    lines = [
        f"{device.ifindex}: {device.name}: profile {device.profile} link {link}"
        + (f" cable {device.cable_peer}" if device.cable_peer else ""),
        f"    features: {' '.join(device.features) or '-'}",
        f"    states {device.state_count} policies {device.policy_count}",
    ]
    if device.HasField("interfaces"):
        lines += format_interfaces(device.interfaces)
    if device.HasField("bond"):  # a bond has no capabilities of its own: its members do
        bond = device.bond
        lines.append(
            f"    bond mode {bond.mode} members {','.join(bond.members)}"
            f" active {bond.active or '(none)'}"
        )
        return "\n".join(lines)
    if details:
        if device.engine:
            lines.append(f"    engine {device.engine}")
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


def format_interfaces(ifs: pb.Interfaces) -> list[str]:
    """The real interfaces on a device's two sides and their counters."""
    running = "running" if ifs.wire_running else "down"
    wire = ifs.wire_if or f"udp {ifs.wire_udp}"
    return [
        f"    host tun {ifs.host_tun} mtu {ifs.host_mtu} wire {wire} mtu {ifs.wire_mtu} {running}",
        f"    host rx {ifs.host_rx_packets} tx {ifs.host_tx_packets}"
        f" rx-dropped {ifs.host_rx_dropped} tx-dropped {ifs.host_tx_dropped}"
        f"  wire rx {ifs.wire_rx_packets} tx {ifs.wire_tx_packets}"
        f" rx-dropped {ifs.wire_rx_dropped} tx-dropped {ifs.wire_tx_dropped}"
        f"  too-big {ifs.too_big} fragmented {ifs.fragmented}",
    ]


# --------------------------------------------------------------------------- arguments

TOP_USAGE = """\
Usage: xfrmctl [ OPTIONS ] [ xfrm ] XFRM-OBJECT { COMMAND | help }
       xfrmctl [ OPTIONS ] [ xfrm ] monitor [ --count N ] [ all | LISTofXFRM-GROUPS ] [ DEV... ]
       xfrmctl [ OPTIONS ] stats [ DEV ]
       xfrmctl [ OPTIONS ] link set [ dev ] DEV { up | down }
       xfrmctl [ OPTIONS ] link set [ dev ] DEV impair { none | IMPAIRMENT... }
       xfrmctl [ OPTIONS ] link show [ dev ] DEV
       xfrmctl [ OPTIONS ] device { list | show DEV }
       xfrmctl [ OPTIONS ] packet { tx | rx } --dev DEV --in IN.pcap --out OUT.pcap [ --batch N ]
       xfrmctl completion { bash | zsh }
       xfrmctl { --version | -V }
where  XFRM-OBJECT := state | policy
       LISTofXFRM-GROUPS := [ LISTofXFRM-GROUPS ] { acquire | expire | SA | aevent | policy }
       OPTIONS := { --server ADDR | -j[son] | -p[retty] | -s[tats] | --keys | --dev DEV |
                    --timeout SECONDS | --tls-ca FILE | --tls-cert FILE | --tls-key FILE |
                    --tls-server-name NAME }
       IMPAIRMENT := tc-netem's: loss [ random ] PCT | loss gemodel P [ R [ 1-H [ 1-K ] ] ]
                     | duplicate PCT | corrupt PCT | reorder PCT [ gap N ] | delay TIME [ JITTER ]
                     | rate RATE | limit PACKETS | seed N
A state or policy must name its device: offload [ crypto | packet ] dev DEV dir DIR for
states, offload packet dev DEV for policies (this NIC holds offloaded objects only).
Keys are shown only with --keys; --dev limits state, policy and stats to one device.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports through xfrmctl's streams instead of exiting the process."""

    out: TextIO = sys.stdout

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            self.out.write(message)


def build_parser() -> argparse.ArgumentParser:
    """The global options; everything after them is the command, read by hand or by grammar."""
    parser = _Parser(
        prog="xfrmctl",
        description="Control an xfrm-offloadd emulated IPsec offload NIC.",
        epilog=f"{TOP_USAGE}\nThe server address defaults to ${SERVER_ENV}, else the server's "
        "default socket.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--server", metavar="ADDR", help=f"unix:PATH or HOST:PORT ({default_address()})"
    )
    parser.add_argument(
        "-j", "-json", "--json", dest="json", action="store_true", help="machine-readable output"
    )
    parser.add_argument(
        "-p", "-pretty", "--pretty", dest="pretty", action="store_true", help="indented JSON"
    )
    parser.add_argument(
        "-s",
        "-stats",
        "--stats",
        action="count",
        default=0,
        help="lifetimes and statistics, as ip -s xfrm",
    )
    parser.add_argument("--keys", action="store_true", help="show key material (hidden otherwise)")
    parser.add_argument(
        "--dev", metavar="DEV", default="", help="only this device's states and policies"
    )
    parser.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds per call (default 30)"
    )
    parser.add_argument(
        "-V", "-Version", "--version", action="version", version=f"xfrmctl {_version()}"
    )
    add_tls_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="what to do (see below)")
    return parser


def _seconds(text: str) -> float:
    """A --timeout: a positive, finite number of seconds (0 would fail every call at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"utility, xfrm-offload-{version('xfrm-offload')}"
    except PackageNotFoundError:  # a source tree without an install
        return "utility, xfrm-offload (not installed)"


#: Global options that may also follow the command, as iproute2 takes ``-s`` anywhere before
#: the object; the value says whether the option takes an argument.
_GLOBAL_OPTIONS: dict[str, bool] = {
    "-j": False,
    "-json": False,
    "--json": False,
    "-p": False,
    "-pretty": False,
    "--pretty": False,
    "-s": False,
    "-stats": False,
    "--stats": False,
    "--keys": False,
    "--dev": True,
    "--server": True,
    "--tls-ca": True,
    "--tls-cert": True,
    "--tls-key": True,
    "--tls-server-name": True,
    "--timeout": True,
}


def hoist_options(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """(global options, the command's own words) of a command line's tail.

    Nothing in the ip xfrm grammar starts with "-", so a global option among the command's
    words cannot be mistaken for one of them (``packet`` and ``monitor --count`` keep theirs).
    """
    options: list[str] = []
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name = token.split("=", 1)[0]
        if name in _GLOBAL_OPTIONS:
            options.append(token)
            if _GLOBAL_OPTIONS[name] and "=" not in token and i + 1 < len(tokens):
                options.append(tokens[i + 1])
                i += 1
        else:
            words.append(token)
        i += 1
    return options, words


def _device_parser() -> _Parser:
    parser = _Parser(prog="xfrmctl device")
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


def _matches(word: str, keyword: str) -> bool:
    """iproute2's matches(): word is a non-empty prefix of keyword."""
    return bool(word) and keyword.startswith(word)


_PROTO_NAMES = {number: name for name, number in grammar.XFRM_PROTOS.items()}


def _shown(tokens: Sequence[str]) -> list[str]:
    """Tokens with key material replaced, for error messages (as grammar does)."""
    shown = list(tokens)
    for i, token in enumerate(tokens):
        if token in grammar.ALGO_KEYWORDS and i + 2 < len(tokens):
            shown[i + 2] = grammar.REDACTED
    return shown


def _syntax(tokens: Sequence[str], index: int, expected: str) -> XfrmSyntaxError:
    return XfrmSyntaxError(_shown(tokens), index, expected)


# --------------------------------------------------------------------------- session


class _Session:
    """One command's connection, options and output streams."""

    def __init__(self, args: argparse.Namespace, client: Client, out: TextIO) -> None:
        self.args = args
        self.client = client
        self.out = out
        self._devices: list[pb.Device] | None = None

    async def devices(self) -> list[pb.Device]:
        if self._devices is None:
            self._devices = await self.client.list_devices()
        return self._devices

    async def device_names(self) -> list[str]:
        if self.args.dev:
            return [self.args.dev]
        return [d.name for d in await self.devices()]

    async def ifname_of(self) -> Callable[[int], str]:
        names = {d.ifindex: d.name for d in await self.devices()}
        return lambda ifindex: names.get(ifindex, f"if{ifindex}")

    def emit_json(self, data: object) -> None:
        """One JSON document: on one line as ip -j prints it, indented with -p."""
        json.dump(data, self.out, indent=2 if self.args.pretty else None)
        self.out.write("\n")


async def _parse_xfrm(session: _Session | None, tokens: Sequence[str]) -> Command:
    """grammar.parse, resolving selector ``dev DEV`` names through the server only if used."""
    named: list[str] = []

    def record(name: str) -> int:
        named.append(name)
        return 1

    command = grammar.parse(tokens, ifindex_of=record)  # syntax first: no server needed
    if named and session is not None:
        index = {d.name: d.ifindex for d in await session.devices()}
        command = grammar.parse(tokens, ifindex_of=lambda name: index.get(name, 0))
    return command


# --------------------------------------------------------------------------- state


def _active_states(states: Iterable[pb.State]) -> list[pb.State]:
    return [s for s in states if s.lifecycle != pb.LIFECYCLE_DELETED]


async def _matching_states(
    session: _Session, filt: StateFilter, *, include_keys: bool = False
) -> list[pb.State]:
    states = await session.client.list_states(session.args.dev, include_keys=include_keys)
    return [s for s in _active_states(states) if filt.matches(s.sa)]


async def _states_by_id(
    session: _Session, filt: StateFilter, *, include_keys: bool = False
) -> list[pb.State]:
    """get/delete: the state with this (daddr, spi, proto) on each device that has one.

    The grammar refuses get/delete without the whole ID, so this names one SA (per device).
    Nothing found is ESRCH, which ip xfrm reports as "RTNETLINK answers: No such process".
    """
    assert filt.daddr is not None and filt.proto is not None
    ident = xpb.XfrmId(daddr=filt.daddr, spi=filt.spi or 0, proto=filt.proto)
    found: list[pb.State] = []
    for dev in await session.device_names():
        try:
            state = await session.client.get_state(dev, id=ident, include_keys=include_keys)
        except XfrmOffloadError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND or exc.field != "id":
                raise
            continue
        if state.lifecycle != pb.LIFECYCLE_DELETED and filt.matches(state.sa):
            found.append(state)
    if not found:
        where = f"on {session.args.dev}" if session.args.dev else "on any device"
        raise XfrmOffloadError(
            grpc.StatusCode.NOT_FOUND,
            f"no state with dst {filt.daddr}"
            f" proto {_PROTO_NAMES.get(ident.proto, str(ident.proto))}"
            f" spi {ident.spi:#010x} {where} (ip xfrm: RTNETLINK answers: No such process)",
            reason="ESRCH",
        )
    return found


async def _remove_states(session: _Session, states: Iterable[pb.State]) -> int:
    """The kernel's delete: xdo_dev_state_delete then xdo_dev_state_free."""
    count = 0
    for state in states:
        if state.lifecycle != pb.LIFECYCLE_DELETED:
            await session.client.state_delete(state.dev, state.offload_handle)
            count += 1
        await session.client.state_free(state.dev, state.offload_handle)
    return count


async def _print_states(session: _Session, states: list[pb.State], *, show_keys: bool) -> None:
    if session.args.json:
        session.emit_json([to_json(s) for s in states])
        return
    ifname_of = await session.ifname_of()
    for state in states:
        session.out.write(
            format_state(
                state, stats=session.args.stats > 0, show_keys=show_keys, ifname_of=ifname_of
            )
        )


def _require_offload(tokens: Sequence[str], what: str, hint: str) -> XfrmSyntaxError:
    return _syntax(
        tokens,
        len(tokens),
        f"expected {hint}: this NIC holds offloaded {what} only (ip xfrm would install a "
        "software one)",
    )


async def _state(session: _Session, command: Command, tokens: Sequence[str]) -> int:
    client, args = session.client, session.args
    action = command.action
    if action == "update":
        raise Refused(
            "state update: xfrmdev_ops has no update callback, so an offloaded state cannot "
            "change in place; delete it and add it again (or add the new SA, then delete the old)"
        )
    if action == "add":
        assert command.sa is not None
        if not command.sa.HasField("offload"):
            raise _require_offload(tokens, "states", "offload [crypto|packet] dev DEV dir in|out")
        reply = await client.state_add(command.sa)
        if args.json:
            session.emit_json(to_json(reply))
        if not reply.offloaded:
            raise Refused(
                f"{command.sa.offload.dev} declined the offload (-EOPNOTSUPP"
                + (f": {reply.not_offloaded_reason}" if reply.not_offloaded_reason else "")
                + "); the kernel would fall back to software IPsec, this NIC holds nothing"
            )
        return ExitStatus.OK
    filt = command.state_filter or StateFilter()
    if action in ("get", "delete"):
        show_keys = args.keys and action == "get"
        states = await _states_by_id(session, filt, include_keys=show_keys)
        if action == "get":
            await _print_states(session, states, show_keys=show_keys)
        else:
            await _remove_states(session, states)
        return ExitStatus.OK
    if action == "list":
        show_keys = args.keys and not filt.nokeys
        states = await _matching_states(session, filt, include_keys=show_keys)
        await _print_states(session, states, show_keys=show_keys)
        return ExitStatus.OK
    if action == "deleteall":
        await _remove_states(session, await _matching_states(session, filt))
        return ExitStatus.OK
    if action == "flush":
        states = await client.list_states(args.dev)
        # Flush also frees states a keymanager deleted and never freed.
        await _remove_states(session, [s for s in states if filt.matches(s.sa)])
        return ExitStatus.OK
    if action == "count":
        count = len(_active_states(await client.list_states(args.dev)))
        if args.json:
            session.emit_json({"count": count})
        else:
            # ip xfrm state count: print_sadinfo's layout.
            session.out.write(f"\t SAD count {count}\n")
        return ExitStatus.OK
    session.out.write(grammar.usage("state"))
    return ExitStatus.OK


# --------------------------------------------------------------------------- policy


def _exact_selector(filt: PolicyFilter, sel: xpb.XfrmSelector) -> bool:
    """get/delete by SELECTOR name one policy: parts not given must be absent, as the kernel
    compares whole selectors (by index, anything goes)."""
    by_index = (filt.saddr, filt.daddr, filt.upspec_proto, filt.ifindex) == (None,) * 4
    if by_index:
        return True
    return (
        (filt.saddr is not None or sel.prefixlen_s == 0)
        and (filt.daddr is not None or sel.prefixlen_d == 0)
        and (filt.upspec_proto is not None or sel.proto == 0)
        and (filt.sport is not None or sel.sport_mask == 0)
        and (filt.dport is not None or sel.dport_mask == 0)
        and (filt.ifindex is not None or sel.ifindex == 0)
    )


async def _matching_policies(
    session: _Session, filt: PolicyFilter, *, exact: bool = False
) -> list[pb.Policy]:
    policies = await session.client.list_policies(session.args.dev)
    return [
        p
        for p in policies
        if p.lifecycle != pb.LIFECYCLE_DELETED
        and filt.matches(p.policy)
        and (not exact or _exact_selector(filt, p.policy.sel))
    ]


async def _remove_policies(session: _Session, policies: Iterable[pb.Policy]) -> int:
    count = 0
    for policy in policies:
        if policy.lifecycle != pb.LIFECYCLE_DELETED:
            await session.client.policy_delete(policy.dev, policy.offload_handle)
            count += 1
        await session.client.policy_free(policy.dev, policy.offload_handle)
    return count


async def _print_policies(session: _Session, policies: list[pb.Policy]) -> None:
    if session.args.json:
        session.emit_json([to_json(p) for p in policies])
        return
    ifname_of = await session.ifname_of()
    for policy in policies:
        session.out.write(format_policy(policy, stats=session.args.stats > 0, ifname_of=ifname_of))


async def _policy(session: _Session, command: Command, tokens: Sequence[str]) -> int:
    client, args = session.client, session.args
    action = command.action
    if action == "update":
        raise Refused(
            "policy update: xfrmdev_ops has no update callback, so an offloaded policy cannot "
            "change in place; delete it and add it again"
        )
    if action == "add":
        assert command.policy is not None
        if not command.policy.HasField("offload"):
            raise _require_offload(tokens, "policies", "offload packet dev DEV")
        reply = await client.policy_add(command.policy)
        if args.json:
            session.emit_json(to_json(reply))
        return ExitStatus.OK
    filt = command.policy_filter or PolicyFilter()
    if action in ("get", "delete"):
        policies = await _matching_policies(session, filt, exact=True)
        if not policies:
            raise XfrmOffloadError(
                grpc.StatusCode.NOT_FOUND,
                "no such policy (ip xfrm: RTNETLINK answers: No such file or directory)",
                reason="ENOENT",
            )
        if action == "get":
            await _print_policies(session, policies)
        else:
            await _remove_policies(session, policies)
        return ExitStatus.OK
    if action == "list":
        await _print_policies(session, await _matching_policies(session, filt))
        return ExitStatus.OK
    if action == "deleteall":
        await _remove_policies(session, await _matching_policies(session, filt))
        return ExitStatus.OK
    if action == "flush":
        policies = await client.list_policies(args.dev)
        await _remove_policies(session, [p for p in policies if filt.matches(p.policy)])
        return ExitStatus.OK
    if action == "count":
        policies = await client.list_policies(args.dev)
        active = [p for p in policies if p.lifecycle != pb.LIFECYCLE_DELETED]
        counts = {
            d: sum(1 for p in active if p.policy.dir == d)
            for d in (xpb.POLICY_DIR_IN, xpb.POLICY_DIR_OUT, xpb.POLICY_DIR_FWD)
        }
        if args.json:
            session.emit_json(
                {
                    "in": counts[xpb.POLICY_DIR_IN],
                    "out": counts[xpb.POLICY_DIR_OUT],
                    "fwd": counts[xpb.POLICY_DIR_FWD],
                }
            )
        else:
            # ip xfrm policy count: print_spdinfo's layout, its final empty line included;
            # -s adds the per-socket counts (none here: the NIC has no socket policies).
            line = (
                f"\t SPD IN  {counts[xpb.POLICY_DIR_IN]} OUT {counts[xpb.POLICY_DIR_OUT]}"
                f" FWD {counts[xpb.POLICY_DIR_FWD]}"
            )
            if args.stats:
                line += " (Sock: IN 0 OUT 0 FWD 0)"
            session.out.write(line + "\n\n")
        return ExitStatus.OK
    session.out.write(grammar.usage("policy"))
    return ExitStatus.OK


# --------------------------------------------------------------------------- monitor

#: ip xfrm monitor's object groups, as the server's event kinds.
MONITOR_KINDS: dict[str, tuple[pb.EventKind, ...]] = {
    "acquire": (pb.EVENT_KIND_ACQUIRE,),
    "expire": (pb.EVENT_KIND_EXPIRE, pb.EVENT_KIND_POLICY_EXPIRE),
    "SA": (pb.EVENT_KIND_STATE_ADDED, pb.EVENT_KIND_STATE_DELETED),
    "aevent": (pb.EVENT_KIND_ESN_ADVANCED, pb.EVENT_KIND_SEQ_OVERFLOW),
    "policy": (pb.EVENT_KIND_POLICY_ADDED, pb.EVENT_KIND_POLICY_DELETED),
    "report": (),
}


class _ObjectCache:
    """States and policies seen while monitoring, so deletions print the whole object too."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.states: dict[tuple[str, int], pb.State] = {}
        self.policies: dict[tuple[str, int], pb.Policy] = {}

    async def state(self, dev: str, handle: int, *, forget: bool = False) -> pb.State | None:
        key = (dev, handle)
        if forget:
            return self.states.pop(key, None)
        if key not in self.states:
            try:
                self.states[key] = await self.client.get_state(dev, handle=handle)
            except XfrmOffloadError:
                return None  # already gone: print the identity only
        return self.states[key]

    async def policy(self, dev: str, handle: int, *, forget: bool = False) -> pb.Policy | None:
        key = (dev, handle)
        if forget:
            return self.policies.pop(key, None)
        if key not in self.policies:
            try:
                for policy in await self.client.list_policies(dev):
                    self.policies[(policy.dev, policy.offload_handle)] = policy
            except XfrmOffloadError:
                return None
        return self.policies.get(key)


async def _describe(cache: _ObjectCache, event: pb.WatchEventsResponse) -> str:
    kind = event.WhichOneof("body")
    state: pb.State | None = None
    policy: pb.Policy | None = None
    if kind == "object":
        obj = event.object
        if event.kind in (pb.EVENT_KIND_STATE_ADDED, pb.EVENT_KIND_STATE_DELETED):
            state = await cache.state(
                event.dev,
                obj.state.offload_handle,
                forget=event.kind == pb.EVENT_KIND_STATE_DELETED,
            )
        else:
            policy = await cache.policy(
                event.dev,
                obj.policy.offload_handle,
                forget=event.kind == pb.EVENT_KIND_POLICY_DELETED,
            )
    elif kind == "expire":
        state = await cache.state(event.dev, event.expire.ref.offload_handle)
    elif kind == "acquire":
        policy = await cache.policy(event.dev, event.acquire.policy.offload_handle)
    return format_event(event, state=state, policy=policy)


async def _monitor(session: _Session, tokens: Sequence[str], start: int) -> int:
    """[xfrm] monitor [--count N] [all | GROUP...] [DEV...]: events until Ctrl-C or stream end."""
    limit: int | None = None
    words: list[str] = []
    rest = list(tokens[start:])
    i = 0
    while i < len(rest):
        if rest[i] == "--count":
            if i + 1 >= len(rest) or not rest[i + 1].isdigit() or int(rest[i + 1]) < 1:
                raise _syntax(tokens, start + i + 1, "expected a positive event count")
            limit = int(rest[i + 1])
            i += 2
            continue
        words.append(rest[i])
        i += 1
    devs: list[str] = []
    if words:
        names = {d.name for d in await session.devices()}
        devs = [w for w in words if w in names]
        words = [w for w in words if w not in names]
    if session.args.dev and session.args.dev not in devs:
        devs.append(session.args.dev)
    command = grammar.parse(["monitor", *words])
    kinds = [k for group in command.monitor_groups for k in MONITOR_KINDS[group]]
    if command.monitor_groups and not kinds:
        raise _syntax(tokens, len(tokens), "expected a group this NIC reports (not only report)")
    cache = _ObjectCache(session.client)
    seen = 0
    async for event in session.client.watch_events(devs, kinds):
        if session.args.json:
            session.out.write(json.dumps(to_json(event)) + "\n")
        else:
            session.out.write(await _describe(cache, event))
        session.out.flush()
        seen += 1
        if limit is not None and seen >= limit:
            break
    return ExitStatus.OK


# --------------------------------------------------------------------------- others


async def _stats(session: _Session, tokens: Sequence[str]) -> int:
    """stats [DEV]: /proc/net/xfrm_stat, per device then the total, or one device's."""
    if len(tokens) > 2:
        raise _syntax(tokens, 2, "expected at most one device name")
    dev = tokens[1] if len(tokens) == 2 else session.args.dev
    reply = await session.client.get_stats(dev)
    if session.args.json:
        session.emit_json(to_json(reply))
    elif dev:
        session.out.write(format_xfrm_stat(reply.devices[0].counters))
    else:
        for device in reply.devices:
            session.out.write(f"{device.dev}:\n{format_xfrm_stat(device.counters)}\n")
        session.out.write(f"total:\n{format_xfrm_stat(reply.total)}")
    return ExitStatus.OK


def parse_link(tokens: Sequence[str]) -> tuple[str, bool | pb.Impairment | None]:
    """``link set [dev] DEV up|down`` (iproute2's matches() for set, as ip link), or
    ``link set [dev] DEV impair ...`` (the impairment), or ``link show [dev] DEV`` (None)."""
    # "set" before "show", so "s" is set, as in ip link
    if len(tokens) >= 2 and not _matches(tokens[1], "set") and _matches(tokens[1], "show"):
        index = 3 if len(tokens) > 2 and tokens[2] == "dev" else 2
        if index >= len(tokens):
            raise _syntax(tokens, index, "expected a device name")
        if index + 1 < len(tokens):
            raise _syntax(tokens, index + 1, "expected nothing more")
        return tokens[index], None
    if len(tokens) < 2 or not _matches(tokens[1], "set"):
        raise _syntax(tokens, 1, "expected set or show")
    index = 2
    if index < len(tokens) and tokens[index] == "dev":
        index += 1
    if index >= len(tokens):
        raise _syntax(tokens, index, "expected a device name")
    dev = tokens[index]
    index += 1
    if index < len(tokens) and tokens[index] == "impair":
        return dev, parse_impairment(tokens, index + 1)
    if index >= len(tokens) or tokens[index] not in ("up", "down"):
        raise _syntax(tokens, index, "expected up|down|impair")
    if index + 1 < len(tokens):
        raise _syntax(tokens, index + 1, "expected nothing more")
    return dev, tokens[index] == "up"


async def _link(session: _Session, tokens: Sequence[str]) -> int:
    dev, up = parse_link(tokens)
    if not isinstance(up, bool):
        if up is not None:
            await session.client.set_impairment(dev, up)
        impairment = await session.client.get_impairment(dev)
        if session.args.json:
            session.emit_json(to_json(impairment))
        else:
            session.out.write(format_impairment(dev, impairment))
        return ExitStatus.OK
    reply = await session.client.set_link(dev, up)
    if session.args.json:
        session.emit_json(to_json(reply))
    elif up:
        session.out.write(f"{dev}: link up\n")
    else:
        session.out.write(
            f"{dev}: link down, flushed {reply.flushed_states} states"
            f" and {reply.flushed_policies} policies\n"
        )
    return ExitStatus.OK


async def _device(session: _Session, tokens: Sequence[str]) -> int:
    parser = _device_parser()
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


# --------------------------------------------------------------------------- dispatch


def _xfrm_object(tokens: Sequence[str]) -> tuple[str | None, int]:
    """Which ip xfrm object the command names (state/policy/monitor), and at which token."""
    index = 1 if tokens and _matches(tokens[0], "xfrm") else 0
    if index >= len(tokens):
        return None, index
    word = tokens[index]
    if _matches(word, "state") or _matches(word, "sa"):
        return "state", index
    if _matches(word, "policy"):
        return "policy", index
    if _matches(word, "monitor"):
        return "monitor", index
    return None, index


_HELP_WORDS = ("help", "-h", "--help")
_OTHER_COMMANDS = ("stats", "link", "device", "dev")


def _help_only(tokens: Sequence[str]) -> str | None:
    """The usage text to print when the command only asks for help, else None."""
    obj, index = _xfrm_object(tokens)
    if obj is None:
        if index < len(tokens) and tokens[index] in _HELP_WORDS:
            return TOP_USAGE
        return None
    if index + 1 < len(tokens) and tokens[index + 1] in _HELP_WORDS:
        return TOP_USAGE if obj == "monitor" else grammar.usage(obj)
    return None


async def _dispatch(session: _Session, tokens: Sequence[str]) -> int:
    first = tokens[0]
    if first == "stats":
        return await _stats(session, tokens)
    if first == "link":
        return await _link(session, tokens)
    if first in ("device", "dev"):
        return await _device(session, tokens)
    obj, index = _xfrm_object(tokens)
    if obj == "monitor":
        return await _monitor(session, tokens, index + 1)
    command = await _parse_xfrm(session, tokens)
    if command.obj == "state":
        return await _state(session, command, tokens)
    return await _policy(session, command, tokens)


def _check_syntax(tokens: Sequence[str]) -> None:
    """Offline syntax check of state/policy commands, so usage errors need no server."""
    obj, index = _xfrm_object(tokens)
    if tokens[0] in _OTHER_COMMANDS:
        if tokens[0] == "link":
            parse_link(tokens)
        return
    if obj is None:
        raise _syntax(
            tokens,
            index,
            "expected an object (state|policy|monitor, or stats|link|device|help)",
        )
    if obj != "monitor":
        grammar.parse(tokens, ifindex_of=lambda _name: 1)


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one xfrmctl command; returns the exit status (usable in-process by tests)."""
    parser = build_parser()
    assert isinstance(parser, _Parser)
    parser.out = out
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err.write(f"{exc}\n")
        return ExitStatus.USAGE
    except SystemExit as exc:  # --help, --version
        return ExitStatus.USAGE if exc.code else ExitStatus.OK
    tokens: list[str] = list(args.command)
    if tokens and tokens[0] not in ("packet", "completion"):
        hoisted, tokens = hoist_options(tokens)
        if hoisted:  # parse again with them in front, where argparse reads options
            head = list(argv[: len(argv) - len(args.command)])
            try:
                args = parser.parse_args([*head, *hoisted, *tokens])
            except UsageError as exc:
                err.write(f"{exc}\n")
                return ExitStatus.USAGE
            except SystemExit as exc:
                return ExitStatus.USAGE if exc.code else ExitStatus.OK
    if not tokens:
        err.write(TOP_USAGE)
        return ExitStatus.USAGE
    if tokens[0] == "completion":
        from .completion import completion_main

        return completion_main(tokens, out=out, err=err)
    if tokens[0] == "packet":  # pcap files through the datapath: its own options (packets.py)
        if tokens[1:] == ["help"]:
            out.write(packet_parser(out).format_help())
            return ExitStatus.OK
        return await packet_main(
            tokens, server=args.server, default_dev=args.dev, out=out, err=err, tls=tls_of(args)
        )
    text = _help_only(tokens)
    if text is not None:
        out.write(text)
        return ExitStatus.OK
    try:
        _check_syntax(tokens)
        client = Client(args.server, timeout=args.timeout, tls=tls_of(args))
    except XfrmSyntaxError as exc:
        err.write(exc.render() + "\n")
        return ExitStatus.USAGE
    except TlsError as exc:
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.USAGE
    except ValueError as exc:
        err.write(f"xfrmctl: --server: {exc}\n")
        return ExitStatus.USAGE
    try:
        async with client:
            return await _dispatch(_Session(args, client, out), tokens)
    except XfrmSyntaxError as exc:
        err.write(exc.render() + "\n")
        return ExitStatus.USAGE
    except UsageError as exc:
        err.write(f"{exc}\n")
        return ExitStatus.USAGE
    except Refused as exc:
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.SERVER_ERROR
    except XfrmOffloadError as exc:
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            err.write(f"xfrmctl: cannot reach the server at {client.address}: {exc.message}\n")
            return ExitStatus.UNREACHABLE
        err.write(f"xfrmctl: {exc}\n")
        return ExitStatus.SERVER_ERROR


def _die_of_sigpipe() -> NoReturn:
    """End as a well-behaved filter does when its reader went away: killed by SIGPIPE.

    Python ignores SIGPIPE and raises BrokenPipeError instead; the shell would then see
    exit 1 ("server refused") and a traceback. Point stdout at /dev/null so nothing is
    flushed at exit, then take the default action of the signal: the shell reports 141.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    sys.exit(128 + signal.SIGPIPE)  # not reached: the signal ends the process


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = asyncio.run(run(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a closed pipe shows here when the output fit in the buffer
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        _die_of_sigpipe()
    return status


if __name__ == "__main__":
    sys.exit(main())

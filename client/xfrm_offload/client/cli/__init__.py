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

One module per command group (state, policy, monitor, stats, link, device, packet,
completion); session holds what they share, options the global options; this package
parses the command line and dispatches.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

import grpc

from .. import grammar
from ..api import Client
from ..errors import XfrmOffloadError
from ..grammar import XfrmSyntaxError, matches
from ..status import ExitStatus
from ..tls import TlsError, tls_of
from .completion import run_completion
from .device import run_device
from .link import parse_link, run_link
from .monitor import run_monitor
from .options import TOP_USAGE, Parser, build_parser, hoist_options
from .packet import run_packet
from .policy import run_policy
from .session import Refused, Session, UsageError, parse_xfrm, syntax, to_json
from .state import run_state
from .stats import run_stats

__all__ = [
    "TOP_USAGE",
    "ExitStatus",
    "Refused",
    "UsageError",
    "build_parser",
    "hoist_options",
    "main",
    "parse_link",
    "run",
    "to_json",
]


def _xfrm_object(tokens: Sequence[str]) -> tuple[str | None, int]:
    """Which ip xfrm object the command names (state/policy/monitor), and at which token."""
    index = 1 if tokens and matches(tokens[0], "xfrm") else 0
    if index >= len(tokens):
        return None, index
    word = tokens[index]
    if matches(word, "state") or matches(word, "sa"):
        return "state", index
    if matches(word, "policy"):
        return "policy", index
    if matches(word, "monitor"):
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


async def _dispatch(session: Session, tokens: Sequence[str]) -> int:
    first = tokens[0]
    if first == "stats":
        return await run_stats(session, tokens)
    if first == "link":
        return await run_link(session, tokens)
    if first in ("device", "dev"):
        return await run_device(session, tokens)
    obj, index = _xfrm_object(tokens)
    if obj == "monitor":
        return await run_monitor(session, tokens, index + 1)
    command = await parse_xfrm(session, tokens)
    if command.obj == "state":
        return await run_state(session, command, tokens)
    return await run_policy(session, command, tokens)


def _check_syntax(tokens: Sequence[str]) -> None:
    """Offline syntax check of state/policy commands, so usage errors need no server."""
    obj, index = _xfrm_object(tokens)
    if tokens[0] in _OTHER_COMMANDS:
        if tokens[0] == "link":
            parse_link(tokens)
        return
    if obj is None:
        raise syntax(
            tokens,
            index,
            "expected an object (state|policy|monitor, or stats|link|device|help)",
        )
    if obj != "monitor":
        grammar.parse(tokens, ifindex_of=lambda _name: 1)


async def run(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one xfrmctl command; returns the exit status (usable in-process by tests)."""
    parser = build_parser()
    assert isinstance(parser, Parser)
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
        return run_completion(tokens, out, err)
    if tokens[0] == "packet":  # pcap files through the datapath: its own options (packets.py)
        return await run_packet(args, tokens, out, err)
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
            return await _dispatch(Session(args, client, out), tokens)
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

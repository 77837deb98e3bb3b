"""xfrmctl's commands other than packet and completion: the ip xfrm objects (state, policy,
monitor), stats, link and device, with their offline syntax check and dispatch.

Imported by ``cli.run`` only when one of them runs: ``xfrmctl packet`` never loads the
ip xfrm grammar, the renderers or these command modules (about 30 ms of its start-up).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

import grpc

from .. import grammar
from ..api import Client
from ..errors import XfrmOffloadError
from ..grammar import XfrmSyntaxError, matches
from ..status import ExitStatus
from ..tls import TlsError, tls_of
from .device import run_device
from .link import parse_link, run_link
from .monitor import run_monitor
from .options import TOP_USAGE
from .policy import run_policy
from .session import Refused, Session, UsageError, parse_xfrm, syntax
from .state import run_state
from .stats import run_stats


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


async def run_command(
    args: argparse.Namespace, tokens: Sequence[str], out: TextIO, err: TextIO
) -> int:
    """One command (its global options parsed into ``args``); returns the exit status."""
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

"""xfrmctl's global options, its top-level usage text, and options that follow the command.

Light on imports: ``xfrmctl packet`` starts with this module and packets.py alone (the other
commands' modules, the ip xfrm grammar among them, load only when one runs: commands.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from xfrm_offload.v1.endpoint import SERVER_ENV, default_address

from ..tls import add_tls_arguments

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


class UsageError(Exception):
    """A command line xfrmctl cannot understand (exit 2)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports through xfrmctl's streams instead of exiting the process."""

    out: TextIO = sys.stdout

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            self.out.write(message)


def build_parser() -> argparse.ArgumentParser:
    """The global options; everything after them is the command, read by hand or by grammar."""
    parser = Parser(
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
    parser.add_argument("-V", "-Version", "--version", action=_Version)
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


class _Version(argparse.Action):
    """argparse's "version" action with the version looked up only when asked: the lookup
    reads the installed distributions' metadata, 12-15 ms of every start otherwise."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show program's version number and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        parser.exit(message=f"xfrmctl {_version()}\n")  # Parser writes it to its out


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

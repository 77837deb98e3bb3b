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
parses the command line and dispatches: packet and completion here, the others through
commands.py, imported only when one of them runs (``xfrmctl packet`` starts faster
without the ip xfrm grammar and the renderers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from ..status import ExitStatus
from .options import TOP_USAGE, Parser, UsageError, build_parser, hoist_options
from .packet import run_packet

__all__ = ["TOP_USAGE", "ExitStatus", "UsageError", "build_parser", "hoist_options", "main", "run"]


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
        from .completion import run_completion

        return run_completion(tokens, out, err)
    if tokens[0] == "packet":  # pcap files through the datapath: its own options (packets.py)
        return await run_packet(args, tokens, out, err)
    from .commands import run_command  # the other commands' modules, on first use

    return await run_command(args, tokens, out, err)


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

"""``xfrmctl packet ...``: pcap files through the datapath; the command itself is packets.py."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

from ..packets import build_parser as packet_parser
from ..packets import packet_main
from ..status import ExitStatus
from ..tls import tls_of


async def run_packet(
    args: argparse.Namespace, tokens: Sequence[str], out: TextIO, err: TextIO
) -> int:
    """``packet tx|rx ...`` with its own options, or ``packet help``."""
    if tokens[1:] == ["help"]:
        out.write(packet_parser(out).format_help())
        return ExitStatus.OK
    return await packet_main(
        tokens, server=args.server, default_dev=args.dev, out=out, err=err, tls=tls_of(args)
    )

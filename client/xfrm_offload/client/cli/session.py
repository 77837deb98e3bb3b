"""What every xfrmctl command shares: its session (connection, options, output), its
errors, and the ip xfrm parse that resolves device names through the server.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from xfrm_offload.v1 import offload_pb2 as pb

from .. import grammar
from ..api import Client
from ..grammar import Command, XfrmSyntaxError
from ..grammar.lexer import redact
from .options import UsageError as UsageError  # the commands' usage error, defined there


class Refused(Exception):
    """A request xfrmctl itself declines or the NIC cannot do (exit 1, like a server refusal)."""


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def syntax(tokens: Sequence[str], index: int, expected: str) -> XfrmSyntaxError:
    return XfrmSyntaxError(redact(tokens), index, expected)


class Session:
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


async def parse_xfrm(session: Session | None, tokens: Sequence[str]) -> Command:
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


def require_offload(tokens: Sequence[str], what: str, hint: str) -> XfrmSyntaxError:
    return syntax(
        tokens,
        len(tokens),
        f"expected {hint}: this NIC holds offloaded {what} only (ip xfrm would install a "
        "software one)",
    )

"""``xfrmctl link ...``: a device's link up or down, and its wire impairments (tc-netem's words)."""

from __future__ import annotations

from collections.abc import Sequence

from xfrm_offload.v1 import offload_pb2 as pb

from ..grammar import matches
from ..impair import format_impairment, parse_impairment
from ..status import ExitStatus
from .session import Session, syntax, to_json


def parse_link(tokens: Sequence[str]) -> tuple[str, bool | pb.Impairment | None]:
    """``link set [dev] DEV up|down`` (iproute2's matches() for set, as ip link), or
    ``link set [dev] DEV impair ...`` (the impairment), or ``link show [dev] DEV`` (None)."""
    # "set" before "show", so "s" is set, as in ip link
    if len(tokens) >= 2 and not matches(tokens[1], "set") and matches(tokens[1], "show"):
        index = 3 if len(tokens) > 2 and tokens[2] == "dev" else 2
        if index >= len(tokens):
            raise syntax(tokens, index, "expected a device name")
        if index + 1 < len(tokens):
            raise syntax(tokens, index + 1, "expected nothing more")
        return tokens[index], None
    if len(tokens) < 2 or not matches(tokens[1], "set"):
        raise syntax(tokens, 1, "expected set or show")
    index = 2
    if index < len(tokens) and tokens[index] == "dev":
        index += 1
    if index >= len(tokens):
        raise syntax(tokens, index, "expected a device name")
    dev = tokens[index]
    index += 1
    if index < len(tokens) and tokens[index] == "impair":
        return dev, parse_impairment(tokens, index + 1)
    if index >= len(tokens) or tokens[index] not in ("up", "down"):
        raise syntax(tokens, index, "expected up|down|impair")
    if index + 1 < len(tokens):
        raise syntax(tokens, index + 1, "expected nothing more")
    return dev, tokens[index] == "up"


async def run_link(session: Session, tokens: Sequence[str]) -> int:
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

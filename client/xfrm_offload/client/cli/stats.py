"""``xfrmctl stats [DEV]``: /proc/net/xfrm_stat of each device and their total."""

from __future__ import annotations

from collections.abc import Sequence

from ..render import format_xfrm_stat
from ..status import ExitStatus
from .session import Session, syntax, to_json


async def run_stats(session: Session, tokens: Sequence[str]) -> int:
    """stats [DEV]: /proc/net/xfrm_stat, per device then the total, or one device's."""
    if len(tokens) > 2:
        raise syntax(tokens, 2, "expected at most one device name")
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

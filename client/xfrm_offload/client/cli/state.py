"""``xfrmctl state ...``: ip xfrm state against the NIC's offloaded states."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from .. import grammar
from ..errors import XfrmOffloadError
from ..grammar import Command, StateFilter
from ..render import format_state
from ..status import ExitStatus
from .session import Refused, Session, require_offload, to_json

_PROTO_NAMES = {number: name for name, number in grammar.XFRM_PROTOS.items()}


def _active_states(states: Iterable[pb.State]) -> list[pb.State]:
    return [s for s in states if s.lifecycle != pb.LIFECYCLE_DELETED]


async def _matching_states(
    session: Session, filt: StateFilter, *, include_keys: bool = False
) -> list[pb.State]:
    states = await session.client.list_states(session.args.dev, include_keys=include_keys)
    return [s for s in _active_states(states) if filt.matches(s.sa)]


async def _states_by_id(
    session: Session, filt: StateFilter, *, include_keys: bool = False
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


async def _remove_states(session: Session, states: Iterable[pb.State]) -> int:
    """The kernel's delete: xdo_dev_state_delete then xdo_dev_state_free."""
    count = 0
    for state in states:
        if state.lifecycle != pb.LIFECYCLE_DELETED:
            await session.client.state_delete(state.dev, state.offload_handle)
            count += 1
        await session.client.state_free(state.dev, state.offload_handle)
    return count


async def _print_states(session: Session, states: list[pb.State], *, show_keys: bool) -> None:
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


async def run_state(session: Session, command: Command, tokens: Sequence[str]) -> int:
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
            raise require_offload(tokens, "states", "offload [crypto|packet] dev DEV dir in|out")
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

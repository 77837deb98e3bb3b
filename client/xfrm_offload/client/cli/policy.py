"""``xfrmctl policy ...``: ip xfrm policy against the NIC's offloaded policies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from .. import grammar
from ..errors import XfrmOffloadError
from ..grammar import Command, PolicyFilter
from ..render import format_policy
from ..status import ExitStatus
from .session import Refused, Session, require_offload, to_json


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
    session: Session, filt: PolicyFilter, *, exact: bool = False
) -> list[pb.Policy]:
    policies = await session.client.list_policies(session.args.dev)
    return [
        p
        for p in policies
        if p.lifecycle != pb.LIFECYCLE_DELETED
        and filt.matches(p.policy)
        and (not exact or _exact_selector(filt, p.policy.sel))
    ]


async def _remove_policies(session: Session, policies: Iterable[pb.Policy]) -> int:
    count = 0
    for policy in policies:
        if policy.lifecycle != pb.LIFECYCLE_DELETED:
            await session.client.policy_delete(policy.dev, policy.offload_handle)
            count += 1
        await session.client.policy_free(policy.dev, policy.offload_handle)
    return count


async def _print_policies(session: Session, policies: list[pb.Policy]) -> None:
    if session.args.json:
        session.emit_json([to_json(p) for p in policies])
        return
    ifname_of = await session.ifname_of()
    for policy in policies:
        session.out.write(format_policy(policy, stats=session.args.stats > 0, ifname_of=ifname_of))


async def run_policy(session: Session, command: Command, tokens: Sequence[str]) -> int:
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
            raise require_offload(tokens, "policies", "offload packet dev DEV")
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

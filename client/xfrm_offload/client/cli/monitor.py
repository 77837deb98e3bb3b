"""``xfrmctl monitor ...``: ip xfrm monitor over the server's event stream."""

from __future__ import annotations

import json
from collections.abc import Sequence

from xfrm_offload.v1 import offload_pb2 as pb

from .. import grammar
from ..api import Client
from ..errors import XfrmOffloadError
from ..render import format_event
from ..status import ExitStatus
from .session import Session, syntax, to_json

#: ip xfrm monitor's object groups, as the server's event kinds.
MONITOR_KINDS: dict[str, tuple[pb.EventKind, ...]] = {
    "acquire": (pb.EVENT_KIND_ACQUIRE,),
    "expire": (pb.EVENT_KIND_EXPIRE, pb.EVENT_KIND_POLICY_EXPIRE),
    "SA": (pb.EVENT_KIND_STATE_ADDED, pb.EVENT_KIND_STATE_DELETED),
    "aevent": (pb.EVENT_KIND_ESN_ADVANCED, pb.EVENT_KIND_SEQ_OVERFLOW),
    "policy": (pb.EVENT_KIND_POLICY_ADDED, pb.EVENT_KIND_POLICY_DELETED),
    "report": (),
}


class _ObjectCache:
    """States and policies seen while monitoring, so deletions print the whole object too."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.states: dict[tuple[str, int], pb.State] = {}
        self.policies: dict[tuple[str, int], pb.Policy] = {}

    async def state(self, dev: str, handle: int, *, forget: bool = False) -> pb.State | None:
        key = (dev, handle)
        if forget:
            return self.states.pop(key, None)
        if key not in self.states:
            try:
                self.states[key] = await self.client.get_state(dev, handle=handle)
            except XfrmOffloadError:
                return None  # already gone: print the identity only
        return self.states[key]

    async def policy(self, dev: str, handle: int, *, forget: bool = False) -> pb.Policy | None:
        key = (dev, handle)
        if forget:
            return self.policies.pop(key, None)
        if key not in self.policies:
            try:
                for policy in await self.client.list_policies(dev):
                    self.policies[(policy.dev, policy.offload_handle)] = policy
            except XfrmOffloadError:
                return None
        return self.policies.get(key)


async def _describe(cache: _ObjectCache, event: pb.WatchEventsResponse) -> str:
    kind = event.WhichOneof("body")
    state: pb.State | None = None
    policy: pb.Policy | None = None
    if kind == "object":
        obj = event.object
        if event.kind in (pb.EVENT_KIND_STATE_ADDED, pb.EVENT_KIND_STATE_DELETED):
            state = await cache.state(
                event.dev,
                obj.state.offload_handle,
                forget=event.kind == pb.EVENT_KIND_STATE_DELETED,
            )
        else:
            policy = await cache.policy(
                event.dev,
                obj.policy.offload_handle,
                forget=event.kind == pb.EVENT_KIND_POLICY_DELETED,
            )
    elif kind == "expire":
        state = await cache.state(event.dev, event.expire.ref.offload_handle)
    elif kind == "acquire":
        policy = await cache.policy(event.dev, event.acquire.policy.offload_handle)
    return format_event(event, state=state, policy=policy)


async def run_monitor(session: Session, tokens: Sequence[str], start: int) -> int:
    """[xfrm] monitor [--count N] [all | GROUP...] [DEV...]: events until Ctrl-C or stream end."""
    limit: int | None = None
    words: list[str] = []
    rest = list(tokens[start:])
    i = 0
    while i < len(rest):
        if rest[i] == "--count":
            if i + 1 >= len(rest) or not rest[i + 1].isdigit() or int(rest[i + 1]) < 1:
                raise syntax(tokens, start + i + 1, "expected a positive event count")
            limit = int(rest[i + 1])
            i += 2
            continue
        words.append(rest[i])
        i += 1
    devs: list[str] = []
    if words:
        names = {d.name for d in await session.devices()}
        devs = [w for w in words if w in names]
        words = [w for w in words if w not in names]
    if session.args.dev and session.args.dev not in devs:
        devs.append(session.args.dev)
    command = grammar.parse(["monitor", *words])
    kinds = [k for group in command.monitor_groups for k in MONITOR_KINDS[group]]
    if command.monitor_groups and not kinds:
        raise syntax(tokens, len(tokens), "expected a group this NIC reports (not only report)")
    cache = _ObjectCache(session.client)
    seen = 0
    async for event in session.client.watch_events(devs, kinds):
        if session.args.json:
            session.out.write(json.dumps(to_json(event)) + "\n")
        else:
            session.out.write(await _describe(cache, event))
        session.out.flush()
        seen += 1
        if limit is not None and seen >= limit:
            break
    return ExitStatus.OK

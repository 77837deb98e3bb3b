"""Everything the servicers ask of one device, as functions run where the device lives.

Each function takes the ``Device`` and its ``DevicePath`` first, then plain or proto
arguments, and returns proto messages or plain data: the same call runs in the
server's own process or inside a worker process (``workers.py``), so arguments and
results must pickle, and functions must be module-level. Refusals are the engine's
LocalError with field names relative to the request message the servicer passes in.
"""

from __future__ import annotations

from xfrm_offload.engine.bond import Bond
from xfrm_offload.engine.datapath import DevicePath, Results
from xfrm_offload.engine.device import Device, OffloadedPolicy, OffloadedState
from xfrm_offload.engine.errors import LocalError, NotFound
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from . import convert

TX = pb.PACKET_DIRECTION_TX

# -- xfrmdev_ops ----------------------------------------------------------------------


def state_add(
    device: Device, path: DevicePath, sa: xpb.XfrmUsersaInfo, now: float
) -> pb.StateAddResponse:
    config = convert.sa_config_from_pb(sa)
    result = device.state_add(config, sa.offload.flags, now)
    if not result.offloaded:
        return pb.StateAddResponse(offloaded=False, not_offloaded_reason=result.reason)
    return pb.StateAddResponse(
        offloaded=True,
        offload_handle=result.handle,
        type=convert.OFFLOAD_TYPE_TO_PB[result.type],
        dir=convert.OFFLOAD_DIR_TO_PB[result.dir],
    )


def state_add_many(
    device: Device, path: DevicePath, sas: list[xpb.XfrmUsersaInfo], now: float
) -> list[pb.StateAddResponse | LocalError]:
    """Many state adds in one call (StateAddBulk): each answer or refusal, in order."""
    answers: list[pb.StateAddResponse | LocalError] = []
    for sa in sas:
        try:
            answers.append(state_add(device, path, sa, now))
        except LocalError as exc:
            answers.append(exc)
    return answers


def state_delete(device: Device, path: DevicePath, handle: int) -> None:
    device.state_delete(handle)


def state_free(device: Device, path: DevicePath, handle: int) -> None:
    device.state_free(handle)


def offload_ok(
    device: Device, path: DevicePath, handle: int, packet: bytes
) -> pb.OffloadOkResponse:
    ok, reason = device.offload_ok(handle, packet)
    return pb.OffloadOkResponse(ok=ok, reason=reason)


def advance_esn(
    device: Device, path: DevicePath, handle: int, seq_hi: int, seq: int
) -> pb.AdvanceEsnResponse:
    return pb.AdvanceEsnResponse(
        replay=convert.replay_to_pb(device.advance_esn(handle, seq_hi, seq))
    )


def update_curlft(device: Device, path: DevicePath, handle: int) -> pb.UpdateCurlftResponse:
    return convert.update_curlft_to_pb(device.update_curlft(handle))


def policy_add(
    device: Device, path: DevicePath, policy: xpb.XfrmUserpolicyInfo, now: float
) -> pb.PolicyAddResponse:
    result = device.policy_add(convert.policy_from_pb(policy), policy.offload.flags, now)
    return pb.PolicyAddResponse(offload_handle=result.handle, index=result.index)


def policy_delete(device: Device, path: DevicePath, handle: int) -> None:
    device.policy_delete(handle)


def policy_free(device: Device, path: DevicePath, handle: int) -> None:
    device.policy_free(handle)


# -- device, listings, counters --------------------------------------------------------


def describe(device: Device, path: DevicePath) -> pb.Device:
    """The device as ListDevices shows it (the caller fills in cable_peer)."""
    if isinstance(device, Bond):
        return convert.bond_to_pb(device)
    return convert.device_to_pb(device)


def set_link(device: Device, path: DevicePath, up: bool, now: float) -> pb.SetLinkStateResponse:
    states, policies = device.set_link(up, now)
    return pb.SetLinkStateResponse(
        device=describe(device, path), flushed_states=states, flushed_policies=policies
    )


def set_member_link(
    bond: Bond, path: Bond, member: str, up: bool, now: float
) -> pb.SetLinkStateResponse:
    """SetLinkState on a bond member: through its bond, which fails over if it must."""
    states, policies = bond.set_member_link(member, up, now)
    return pb.SetLinkStateResponse(
        device=convert.device_to_pb(bond.paths[member].device),
        flushed_states=states,
        flushed_policies=policies,
    )


def list_states(device: Device, path: DevicePath, include_keys: bool) -> list[pb.State]:
    if isinstance(device, Bond):
        return [
            convert.bonded_state_to_pb(device, h, member, e, include_keys=include_keys)
            for h, member, e in device.bonded()
            if isinstance(e, OffloadedState)
        ]
    return [convert.state_to_pb(device, e, include_keys=include_keys) for e in device.states()]


def get_state(device: Device, path: DevicePath, request: pb.GetStateRequest) -> pb.State:
    if isinstance(device, Bond):
        return _get_bonded_state(device, request)
    if request.WhichOneof("key") == "id":
        daddr = convert.parse_address(request.id.daddr, "id.daddr")
        assert daddr is not None
        entry = device.lookup_inbound(daddr, request.id.spi, request.id.proto or 50)
        if entry is None:
            raise NotFound(
                f"no state with dst {daddr} spi {request.id.spi:#010x} on {device.name}",
                field="id",
            )
    else:
        entry = device.get_state(request.offload_handle)
    return convert.state_to_pb(device, entry, include_keys=request.include_keys)


def _get_bonded_state(bond: Bond, request: pb.GetStateRequest) -> pb.State:
    if request.WhichOneof("key") == "id":
        daddr = convert.parse_address(request.id.daddr, "id.daddr")
        assert daddr is not None
        wanted = (daddr, request.id.spi, request.id.proto or 50)
        for handle, on, entry in bond.bonded():
            if isinstance(entry, OffloadedState):
                c = entry.config
                if (c.daddr, c.spi, c.proto) == wanted:
                    return convert.bonded_state_to_pb(
                        bond, handle, on, entry, include_keys=request.include_keys
                    )
        raise NotFound(
            f"no state with dst {daddr} spi {request.id.spi:#010x} on {bond.name}", field="id"
        )
    handle = request.offload_handle
    member, _ = bond.member_of(handle)
    if member is None:
        raise NotFound(f"state {handle:#x} of {bond.name} has no device", field="offload_handle")
    return convert.bonded_state_to_pb(
        bond, handle, member, bond.get_state(handle), include_keys=request.include_keys
    )


def list_member_states(bond: Bond, path: Bond, member: str, include_keys: bool) -> list[pb.State]:
    """ListStates of a bond member: its own states, not the bond's (those are listed once,
    as dev bond0, the way ip xfrm state shows an SA offloaded through a bond)."""
    device = bond.paths[member].device
    return [
        s
        for s in list_states(device, bond.paths[member], include_keys)
        if not bond.handle_of(device, s.offload_handle)
    ]


def list_member_policies(bond: Bond, path: Bond, member: str) -> list[pb.Policy]:
    """ListPolicies of a bond member: its own policies, not the bond's."""
    device = bond.paths[member].device
    return [
        p
        for p in list_policies(device, bond.paths[member])
        if not bond.handle_of(device, p.offload_handle)
    ]


def list_policies(device: Device, path: DevicePath) -> list[pb.Policy]:
    if isinstance(device, Bond):
        return [
            convert.bonded_policy_to_pb(device, h, e)
            for h, _, e in device.bonded()
            if isinstance(e, OffloadedPolicy)
        ]
    return [convert.policy_to_pb(device, e) for e in device.policies()]


def stats(device: Device, path: DevicePath) -> dict[str, int]:
    return device.stats.as_dict()


def poll(device: Device, path: DevicePath, now: float) -> None:
    """Fire time-based lifetimes at ``now``."""
    device.poll(now)


# -- packets ---------------------------------------------------------------------------


def packets(
    device: Device,
    path: DevicePath,
    direction: int,
    data: list[bytes],
    handles: list[int],
    seqs: list[int],
    now: float,
) -> Results:
    """One chunk of a PacketStream batch, engine values in and out (packetwire.py decoded
    it and encodes the answer: no protobuf crosses to a worker)."""
    if direction == TX:
        return path.tx(data, now, handles, seqs)
    return path.rx(data, now)


def receive(
    device: Device, path: DevicePath, items: list[tuple[int, bytes]], now: float
) -> list[tuple[int, bytes]]:
    """Packets arriving through a cable: the RX path; what reaches the host."""
    results = path.rx([data for _, data in items], now)
    return [(items[i][0], results.data[i]) for i in results.passed()]


def drain_events(device: Device, watched: bool) -> list[pb.WatchEventsResponse]:
    """The device's pending events as WatchEvents messages (unstamped: the hub numbers them);
    none when nobody watches (they are taken off the device all the same)."""
    events = device.pop_events()
    if not watched:
        return []
    return [m for m in map(convert.event_to_pb, events) if m is not None]

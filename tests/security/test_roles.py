"""Every RPC under every role, over mutual TLS: allowed or refused, with the exact code.

The table states the issue's assignment of RPCs to roles on its own (it does not read
the server's table), and checks that it names every RPC of the API.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import offload_pb2_grpc as rpc

from ..server.sa_builders import gcm_sa, packet_policy
from .certs import Pki, issue
from .conftest import channel, tls_server

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
MISSING = 0x7777  # a handle nobody has
#: What a stream's read returns at its end (not in grpc-stubs).
EOF: Any = aio.EOF  # type: ignore[attr-defined]

POLICY = """\
# the roles of the table test, one certificate each
cert:admin.test       admin
cert:viewer.test      viewer
cert:traffic.test     traffic
cert:keymanager.test  keymanager
cert:scoped.test      keymanager,viewer,traffic   dev eth1
"""
ROLE_OF_CERT = {
    "admin.test": "admin",
    "viewer.test": "viewer",
    "traffic.test": "traffic",
    "keymanager.test": "keymanager",
    "nobody.test": None,
}

_numbers = itertools.count(1)


@dataclass
class Stubs:
    # Any: the generated stubs are typed for sync channels; these are grpc.aio's.
    xfrm: Any
    device: Any
    datapath: Any
    diag: Any
    #: An admin's stubs, to make events happen.
    admin: Stubs | None = None

    @classmethod
    def on(cls, ch: aio.Channel, admin: Stubs | None = None) -> Stubs:
        return cls(
            rpc.XfrmDevServiceStub(ch),
            rpc.DeviceServiceStub(ch),
            rpc.DatapathServiceStub(ch),
            rpc.DiagServiceStub(ch),
            admin,
        )


def ref(handle: int = MISSING) -> pb.StateRef:
    return pb.StateRef(dev="eth0", offload_handle=handle)


def pref(handle: int = MISSING) -> pb.PolicyRef:
    return pb.PolicyRef(dev="eth0", offload_handle=handle)


async def one(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def watch_events(s: Stubs) -> None:
    """Read one event; an admin toggles eth1's link until the watch is in place."""
    call = s.device.WatchEvents(pb.WatchEventsRequest(devs=["eth1"]))
    first = asyncio.ensure_future(call.read())
    try:
        assert s.admin is not None
        for _ in range(100):  # bounded: the watch is normally in place at once
            for link in (pb.LINK_STATE_DOWN, pb.LINK_STATE_UP):
                await s.admin.device.SetLinkState(pb.SetLinkStateRequest(name="eth1", link=link))
            done, _ = await asyncio.wait({first}, timeout=0.05)
            if done:
                break
        event = await first
        assert event is not EOF
    finally:
        call.cancel()


async def packet_stream(s: Stubs) -> None:
    call = s.datapath.PacketStream(
        one([pb.PacketStreamRequest(dev="eth0", direction=pb.PACKET_DIRECTION_TX)])
    )
    response = await call.read()
    assert response is not EOF
    call.cancel()


async def watch_packets(s: Stubs) -> None:
    call = s.datapath.WatchPackets(pb.WatchPacketsRequest(dev="eth0", port=pb.PORT_WIRE))
    assert await call.read() is not EOF  # the watch is in place
    call.cancel()


async def echo_stream(s: Stubs) -> None:
    call = s.diag.EchoStream(one([pb.EchoStreamRequest()]))
    assert await call.read() is not EOF
    call.cancel()


async def bulk(s: Stubs) -> None:
    sas = [gcm_sa("eth0", spi=0x1000 + next(_numbers))]
    await s.xfrm.StateAddBulk(one([pb.StateAddBulkRequest(sas=sas)]))


Call = Callable[[Stubs], Awaitable[Any]]

#: (case, RPC, role needed, the code when allowed, the call). include_keys needs admin.
TABLE: list[tuple[str, str, str, grpc.StatusCode, Call]] = [
    ("StateAdd", "StateAdd", "keymanager", OK,
     lambda s: s.xfrm.StateAdd(pb.StateAddRequest(sa=gcm_sa("eth0", spi=next(_numbers))))),
    ("StateAddBulk", "StateAddBulk", "keymanager", OK, bulk),
    ("StateDelete", "StateDelete", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.StateDelete(pb.StateDeleteRequest(ref=ref()))),
    ("StateFree", "StateFree", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.StateFree(pb.StateFreeRequest(ref=ref()))),
    ("OffloadOk", "OffloadOk", "traffic", NOT_FOUND,
     lambda s: s.xfrm.OffloadOk(pb.OffloadOkRequest(ref=ref(), packet=bytes(40)))),
    ("AdvanceEsn", "AdvanceEsn", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.AdvanceEsn(pb.AdvanceEsnRequest(ref=ref(), seq_hi=1))),
    ("UpdateCurlft", "UpdateCurlft", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.UpdateCurlft(pb.UpdateCurlftRequest(ref=ref()))),
    ("PolicyAdd", "PolicyAdd", "keymanager", OK,
     lambda s: s.xfrm.PolicyAdd(pb.PolicyAddRequest(
         policy=packet_policy("eth0", src=f"192.0.2.{next(_numbers)}")))),
    ("PolicyDelete", "PolicyDelete", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.PolicyDelete(pb.PolicyDeleteRequest(ref=pref()))),
    ("PolicyFree", "PolicyFree", "keymanager", NOT_FOUND,
     lambda s: s.xfrm.PolicyFree(pb.PolicyFreeRequest(ref=pref()))),
    ("ListDevices", "ListDevices", "viewer", OK,
     lambda s: s.device.ListDevices(pb.ListDevicesRequest())),
    ("GetDevice", "GetDevice", "viewer", OK,
     lambda s: s.device.GetDevice(pb.GetDeviceRequest(name="eth0"))),
    ("SetLinkState", "SetLinkState", "keymanager", OK,
     lambda s: s.device.SetLinkState(pb.SetLinkStateRequest(name="eth0", link=pb.LINK_STATE_UP))),
    ("ListStates", "ListStates", "viewer", OK,
     lambda s: s.device.ListStates(pb.ListStatesRequest())),
    ("ListStates keys", "ListStates", "admin", OK,
     lambda s: s.device.ListStates(pb.ListStatesRequest(include_keys=True))),
    ("GetState", "GetState", "viewer", NOT_FOUND,
     lambda s: s.device.GetState(pb.GetStateRequest(dev="eth0", offload_handle=MISSING))),
    ("GetState keys", "GetState", "admin", NOT_FOUND,
     lambda s: s.device.GetState(
         pb.GetStateRequest(dev="eth0", offload_handle=MISSING, include_keys=True))),
    ("ListPolicies", "ListPolicies", "viewer", OK,
     lambda s: s.device.ListPolicies(pb.ListPoliciesRequest())),
    ("GetStats", "GetStats", "viewer", OK, lambda s: s.device.GetStats(pb.GetStatsRequest())),
    ("WatchEvents", "WatchEvents", "viewer", OK, watch_events),
    ("PacketStream", "PacketStream", "traffic", OK, packet_stream),
    ("WatchPackets", "WatchPackets", "traffic", OK, watch_packets),
    ("SetCable", "SetCable", "admin", OK,
     lambda s: s.datapath.SetCable(pb.SetCableRequest(dev_a="eth0"))),
    ("SetImpairment", "SetImpairment", "admin", OK,
     lambda s: s.datapath.SetImpairment(pb.SetImpairmentRequest(dev="eth0"))),
    ("GetImpairment", "GetImpairment", "viewer", OK,
     lambda s: s.datapath.GetImpairment(pb.GetImpairmentRequest(dev="eth0"))),
    ("AdvanceClock", "AdvanceClock", "admin", OK,
     lambda s: s.diag.AdvanceClock(pb.AdvanceClockRequest(seconds=1))),
    ("Echo", "Echo", "admin", OK, lambda s: s.diag.Echo(pb.EchoRequest())),
    ("EchoStream", "EchoStream", "admin", OK, echo_stream),
]  # fmt: skip


async def outcome(call: Call, stubs: Stubs) -> tuple[grpc.StatusCode, str]:
    try:
        await asyncio.wait_for(call(stubs), 10)
    except aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return OK, ""


def test_the_table_names_every_rpc_of_the_api() -> None:
    every = {
        m.name
        for name in ("XfrmDevService", "DeviceService", "DatapathService", "DiagService")
        for m in pb.DESCRIPTOR.services_by_name[name].methods
    }
    assert {row[1] for row in TABLE} == every


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy"
    path.write_text(POLICY)
    return path


SERVER_ARGS = ("--device", "eth0", "--device", "eth1", "--virtual-clock")


@pytest.mark.parametrize("cert", list(ROLE_OF_CERT))
async def test_every_rpc_under_every_role(pki: Pki, policy_file: Path, cert: str) -> None:
    role = ROLE_OF_CERT[cert]
    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy_file)) as server:
        admin_ch = channel(server, pki, pki.clients["admin.test"])
        ch = channel(server, pki, pki.clients[cert])
        try:
            stubs = Stubs.on(ch, admin=Stubs.on(admin_ch))
            got, want = {}, {}
            for case, _rpc, needs, allowed, call in TABLE:
                code, message = await outcome(call, stubs)
                got[case] = code
                want[case] = allowed if role in (needs, "admin") else DENIED
                if code == DENIED:
                    assert f"needs the {needs} role" in message, (case, message)
                    assert f"cert:{cert} has" in message
            assert got == want
        finally:
            await ch.close(None)
            await admin_ch.close(None)


async def test_a_grant_limited_to_devices(pki: Pki, policy_file: Path) -> None:
    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy_file)) as server:
        ch = channel(server, pki, pki.clients["scoped.test"])
        s = Stubs.on(ch)
        try:
            cases: list[tuple[Call, grpc.StatusCode]] = [
                (lambda s: s.xfrm.StateAdd(pb.StateAddRequest(sa=gcm_sa("eth1", spi=5))), OK),
                (lambda s: s.xfrm.StateAdd(pb.StateAddRequest(sa=gcm_sa("eth0", spi=5))), DENIED),
                (lambda s: s.device.ListStates(pb.ListStatesRequest(dev="eth1")), OK),
                (lambda s: s.device.ListStates(pb.ListStatesRequest(dev="eth0")), DENIED),
                # no device filter: every device, which a grant on eth1 does not cover
                (lambda s: s.device.ListStates(pb.ListStatesRequest()), DENIED),
                (lambda s: s.device.GetDevice(pb.GetDeviceRequest(name="eth1")), OK),
                (lambda s: s.device.ListDevices(pb.ListDevicesRequest()), DENIED),
                (packet_stream, DENIED),  # eth0
                (lambda s: s.xfrm.StateAddBulk(one([
                    pb.StateAddBulkRequest(sas=[gcm_sa("eth1", spi=6)]),
                    pb.StateAddBulkRequest(sas=[gcm_sa("eth0", spi=6)]),
                ])), DENIED),
                (lambda s: s.diag.Echo(pb.EchoRequest()), DENIED),  # admin, nowhere granted
            ]  # fmt: skip
            codes = [(await outcome(call, s))[0] for call, _ in cases]
            assert codes == [want for _, want in cases]
            _, message = await outcome(cases[1][0], s)
            assert message == (
                "StateAdd needs the keymanager role on eth0; "
                "cert:scoped.test has viewer,traffic,keymanager on eth1"
            )
            # the bulk stream's first message (eth1) was processed before the refusal
            listed = await s.device.ListStates(pb.ListStatesRequest(dev="eth1"))
            assert sorted(st.sa.id.spi for st in listed.states) == [5, 6]
        finally:
            await ch.close(None)


async def test_a_packet_stream_is_checked_on_the_device_its_first_request_names(
    pki: Pki, policy_file: Path
) -> None:
    def first(*devs: str, packets: int = 0) -> bytes:  # concatenated: the last dev wins
        data = pb.PacketBatch(data=[bytes(1400)] * packets)
        return b"".join(
            pb.PacketStreamRequest(
                dev=d, direction=pb.PACKET_DIRECTION_TX, batch=data
            ).SerializeToString()
            for d in devs
        )

    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy_file)) as server:
        ch = channel(server, pki, pki.clients["scoped.test"])  # traffic on eth1 only
        method = ch.stream_stream("/xfrm_offload.v1.DatapathService/PacketStream", None, None)
        try:
            for raw, want in [
                (first("eth1"), OK),
                (first("eth0"), DENIED),
                (first("eth1", packets=2000), OK),  # a big batch: its device alone is read
                (first("eth0", packets=2000), DENIED),
                (first("eth1", "eth0"), DENIED),
                (first("eth0", "eth1"), OK),
                (first(""), DENIED),  # no device: every device
            ]:
                call = method(iter([raw]))
                try:
                    await call.read()
                    code = OK
                except aio.AioRpcError as exc:
                    code = exc.code()
                finally:
                    call.cancel()
                assert code == want, raw[:16]
        finally:
            await ch.close(None)


async def test_without_a_client_certificate_only_health_and_reflection_answer(pki: Pki) -> None:
    # TLS without --tls-client-ca: encrypted, but nobody has an identity.
    async with tls_server(pki, *SERVER_ARGS, mutual=False) as server:
        ch = channel(server, pki, None)
        try:
            code, message = await outcome(TABLE[10][4], Stubs.on(ch))  # ListDevices
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "no identity" in message
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            names = await _reflected_services(ch)
            assert "xfrm_offload.v1.XfrmDevService" in names
        finally:
            await ch.close(None)


async def test_health_and_reflection_answer_a_caller_with_no_role(
    pki: Pki, policy_file: Path
) -> None:
    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy_file)) as server:
        ch = channel(server, pki, pki.clients["nobody.test"])
        try:
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert "grpc.health.v1.Health" in await _reflected_services(ch)
        finally:
            await ch.close(None)


async def test_without_a_policy_every_verified_client_is_admin(pki: Pki) -> None:
    async with tls_server(pki, *SERVER_ARGS) as server:
        ch = channel(server, pki, pki.clients["nobody.test"])
        try:
            stubs = Stubs.on(ch, admin=Stubs.on(ch))
            codes = {case: (await outcome(call, stubs))[0] for case, *_, call in TABLE}
            assert codes == {case: allowed for case, _, _, allowed, _ in TABLE}
        finally:
            await ch.close(None)


async def _reflected_services(ch: aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(ch)
    call = stub.ServerReflectionInfo(
        one([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    response = await call.read()
    call.cancel()
    return {s.name for s in response.list_services_response.service}


async def test_sighup_policy_reload_changes_rights_and_a_bad_file_keeps_the_old(
    pki: Pki, policy_file: Path
) -> None:
    sa = lambda s: s.xfrm.StateAdd(pb.StateAddRequest(sa=gcm_sa("eth0", spi=next(_numbers))))  # noqa: E731
    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy_file)) as server:
        ch = channel(server, pki, pki.clients["viewer.test"])
        s = Stubs.on(ch)
        try:
            assert (await outcome(sa, s))[0] == DENIED
            policy_file.write_text(POLICY + "cert:viewer.test keymanager\n")
            server.security.reload()  # what SIGHUP calls
            assert (await outcome(sa, s))[0] == OK  # the same connection, new rights
            policy_file.write_text("cert:viewer.test boss\n")
            server.security.reload()  # refused: the last good policy stays
            assert (await outcome(sa, s))[0] == OK
            assert server.security.authorizer.policy.source == str(policy_file)
        finally:
            await ch.close(None)


async def test_unknown_methods_are_unimplemented_and_not_remembered(pki: Pki) -> None:
    async with tls_server(pki) as server:
        ch = channel(server, pki, pki.clients["admin.test"])
        try:
            for i in range(20):
                call = ch.unary_unary(f"/xfrm_offload.v1.DeviceService/Nope{i}", None, None)
                with pytest.raises(aio.AioRpcError) as refused:
                    await call(b"")
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert not any("Nope" in m for m in server.security.authorizer._wrapped)
        finally:
            await ch.close(None)


async def test_a_certificate_without_alternative_names_is_known_by_its_subject_cn(
    pki: Pki, tmp_path: Path
) -> None:
    cn_only = issue(pki.ca, tmp_path, "cn-only.test")  # no subjectAltName at all
    policy = tmp_path / "policy"
    policy.write_text("cert:cn-only.test viewer\n")
    async with tls_server(pki, *SERVER_ARGS, "--policy", str(policy)) as server:
        ch = channel(server, pki, cn_only)
        try:
            stubs = Stubs.on(ch)
            assert (await outcome(TABLE[10][4], stubs))[0] == OK  # ListDevices
            code, message = await outcome(TABLE[0][4], stubs)  # StateAdd
            assert (code, message) == (
                DENIED,
                "StateAdd needs the keymanager role on eth0; cert:cn-only.test has viewer",
            )
        finally:
            await ch.close(None)

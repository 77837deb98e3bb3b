"""Undecodable request bytes on every method: INVALID_ARGUMENT naming the message type,
never UNKNOWN, and one log line per method (rate-limited), never a traceback."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from xfrm_offload.client import Client
from xfrm_offload.server.app import OffloadServer

from .raw_calls import Method, all_methods, call_raw

METHODS = all_methods()
#: Not a message of any type: a field with wire type 7, which does not exist.
GARBAGE = b"\xff\xff\xff"


def test_the_table_has_every_method() -> None:
    # the issue counted 27: health has since gained List, the datapath Set/GetImpairment,
    # InterfaceService Attach/DetachInterfaces
    assert len(METHODS) == 32


@pytest.mark.parametrize("method", METHODS, ids=str)
async def test_undecodable_bytes_are_invalid_argument_naming_the_type(
    server: tuple[OffloadServer, Client], method: Method, caplog: pytest.LogCaptureFixture
) -> None:
    srv, client = server
    srv.malformed.log.interval = 3600.0  # both requests fall in one logging interval
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        code, details = await call_raw(client.channel, method, [GARBAGE, GARBAGE])
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert method.request_type.rsplit(".", 1)[-1] in details
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    lines = [r for r in caplog.records if r.getMessage() == "malformed request"]
    if method.path.endswith("/PacketStream"):  # parses its own bytes, answers per stream
        assert lines == []
    else:
        assert len(lines) == 1  # the second one is counted, not logged
        assert lines[0].fields["type"] == method.request_type  # type: ignore[attr-defined]


async def test_the_refusal_carries_bad_request_and_error_info(
    server: tuple[OffloadServer, Client],
) -> None:
    _, client = server
    call = client.channel.unary_unary("/xfrm_offload.v1.XfrmDevService/StateAdd", None, None)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(GARBAGE)
    status = rpc_status.from_call(raised.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert info.reason == "MALFORMED_REQUEST"
    assert status.details[1].Unpack(bad)
    assert bad.field_violations[0].field == "xfrm_offload.v1.StateAddRequest"


async def test_the_next_line_counts_the_requests_left_out(
    server: tuple[OffloadServer, Client], caplog: pytest.LogCaptureFixture
) -> None:
    srv, client = server
    caplog.set_level(logging.WARNING)
    echo = next(m for m in METHODS if m.path.endswith("/Echo"))
    srv.malformed.log.interval = 3600.0
    for _ in range(5):
        await call_raw(client.channel, echo, [GARBAGE])
    srv.malformed.log.interval = 0.0  # the next one is logged, with the count
    await call_raw(client.channel, echo, [GARBAGE])
    lines = [r for r in caplog.records if r.getMessage() == "malformed request"]
    assert [getattr(r, "fields", {}).get("suppressed", 0) for r in lines] == [0, 4]


async def test_a_good_message_after_the_bad_one_still_works(
    server: tuple[OffloadServer, Client],
) -> None:
    _, client = server
    echo = next(m for m in METHODS if m.path.endswith("/Echo"))
    assert (await call_raw(client.channel, echo, [GARBAGE]))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (await call_raw(client.channel, echo, [b""]))[0] == grpc.StatusCode.OK

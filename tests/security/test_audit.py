"""The audit log: one line per control-plane change and key disclosure, field by field,
and never a byte of key material."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from xfrm_offload.client import XfrmOffloadError

from ..server.sa_builders import gcm_sa, packet_policy
from .certs import Pki
from .conftest import client_for, tls_server

KEY = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90deadbeef")  # 128-bit key + salt

POLICY = "cert:admin.test admin\ncert:viewer.test viewer\n"


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def essentials(line: dict[str, Any]) -> dict[str, Any]:
    """The audit fields (without the timestamp and the logger's own)."""
    return {k: v for k, v in line.items() if k not in ("ts", "level", "logger", "msg")}


async def test_each_change_and_disclosure_is_one_line_without_keys(
    pki: Pki, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    policy = tmp_path / "policy"
    policy.write_text(POLICY)
    args = ("--virtual-clock", "--audit-log", str(log), "--policy", str(policy))
    async with tls_server(pki, *args) as server:
        admin, viewer = (
            client_for(server, pki, "admin.test"),
            client_for(server, pki, "viewer.test"),
        )
        async with admin, viewer:
            sa = gcm_sa("eth0", spi=0x501, key=KEY)
            handle = (await admin.state_add(sa)).offload_handle
            await admin.list_devices()  # not a change: no line
            await admin.list_states()  # no keys asked: no line
            keyed = await admin.get_state("eth0", handle=handle, include_keys=True)
            assert keyed.sa.aead.alg_key == KEY  # disclosed to the caller, not to the log
            await admin.get_state("eth0", id=sa.id, include_keys=True)  # by SA id
            await admin.list_states(include_keys=True)
            with pytest.raises(XfrmOffloadError):
                await viewer.get_state("eth0", handle=handle, include_keys=True)
            with pytest.raises(XfrmOffloadError):
                await viewer.state_delete("eth0", handle)
            await admin.state_delete("eth0", handle)
            await admin.state_free("eth0", handle)
            with pytest.raises(XfrmOffloadError):
                await admin.state_free("eth0", handle)  # gone: NOT_FOUND, audited too
            policy_handle = (await admin.policy_add(packet_policy("eth0"))).offload_handle
            await admin.set_link("eth0", up=True)
            await admin.advance_clock(5)
            bulk = await admin.state_add_bulk([[gcm_sa("eth0", spi=0x502, key=KEY)]])
            assert bulk.added == 1
    lines = audit_lines(log)
    assert all(line["msg"] == "audit" and line["logger"] == "xfrm_offload.audit" for line in lines)
    h, p = f"{handle:#x}", f"{policy_handle:#x}"
    assert [essentials(line) for line in lines] == [
        {"who": "cert:admin.test", "rpc": "StateAdd", "dev": "eth0", "handle": h, "result": "OK"},
        {"who": "cert:admin.test", "rpc": "GetState", "dev": "eth0", "handle": h,
         "keys": "disclosed", "states": 1, "result": "OK"},
        {"who": "cert:admin.test", "rpc": "GetState", "dev": "eth0", "handle": h,
         "keys": "disclosed", "states": 1, "result": "OK"},
        {"who": "cert:admin.test", "rpc": "ListStates", "keys": "disclosed", "states": 1,
         "result": "OK"},
        {"who": "cert:viewer.test", "rpc": "GetState", "dev": "eth0",
         "detail": "GetState needs the admin role on eth0; cert:viewer.test has viewer",
         "result": "PERMISSION_DENIED"},
        {"who": "cert:viewer.test", "rpc": "StateDelete", "dev": "eth0",
         "detail": "StateDelete needs the keymanager role on eth0; cert:viewer.test has viewer",
         "result": "PERMISSION_DENIED"},
        {"who": "cert:admin.test", "rpc": "StateDelete", "dev": "eth0", "handle": h,
         "result": "OK"},
        {"who": "cert:admin.test", "rpc": "StateFree", "dev": "eth0", "handle": h,
         "result": "OK"},
        {"who": "cert:admin.test", "rpc": "StateFree", "dev": "eth0", "handle": h,
         "detail": lines[8].get("detail"), "result": "NOT_FOUND"},
        {"who": "cert:admin.test", "rpc": "PolicyAdd", "dev": "eth0", "handle": p,
         "result": "OK"},
        {"who": "cert:admin.test", "rpc": "SetLinkState", "dev": "eth0", "result": "OK"},
        {"who": "cert:admin.test", "rpc": "AdvanceClock", "result": "OK"},
        {"who": "cert:admin.test", "rpc": "StateAddBulk", "sas": 1, "added": 1, "failed": 0,
         "result": "OK"},
    ]  # fmt: skip
    assert lines[8]["detail"]  # the server's own words for the refusal
    text = log.read_bytes()
    for form in (KEY, KEY.hex().encode(), KEY.hex().upper().encode(), base64.b64encode(KEY),
                 KEY[:16].hex().encode(), base64.b64encode(KEY[:16])):  # fmt: skip
        assert form not in text
    assert (log.stat().st_mode & 0o777) == 0o600


async def test_audit_lines_go_to_stderr_by_default(
    pki: Pki, capfd: pytest.CaptureFixture[str]
) -> None:
    # --log-level error: audit lines are never filtered by level
    async with (
        tls_server(pki, "--log-level", "error") as server,
        client_for(server, pki, "keymanager.test") as km,
    ):
        await km.state_add(gcm_sa("eth0", spi=0x601, key=KEY))
    err = capfd.readouterr().err
    audit = [line for line in err.splitlines() if "logger=xfrm_offload.audit" in line]
    assert len(audit) == 1
    assert "who=cert:keymanager.test rpc=StateAdd dev=eth0 handle=0x" in audit[0]
    assert audit[0].endswith("result=OK")
    assert KEY.hex() not in err

"""Every field a BadRequest names is a real path in the request message.

The engine names fields by its own config names; ``status.sa_field`` (and
``esn_field``, and ``policy_field`` for policies) are the one place they become request
paths. These tests walk the
proto descriptors: a path that names no field of the request (a typo, an engine
name that leaked through unmapped) fails here, whatever test exercises it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from xfrm_offload.engine.spd import Policy, Template
from xfrm_offload.engine.types import (
    Algorithm,
    EncapTemplate,
    LifetimeConfig,
    OffloadRequest,
    ReplayState,
    SAConfig,
    Selector,
)
from xfrm_offload.server import convert
from xfrm_offload.server.status import esn_field, policy_field, sa_field
from xfrm_offload.v1 import offload_pb2 as pb
from xfrm_offload.v1 import xfrm_pb2 as xpb

from ..engine.test_device import POLICY_REFUSALS, REFUSALS, Refusal

SOURCES = Path(__file__).parents[2] / "server" / "xfrm_offload"


def paths(message: Any, depth: int = 6) -> set[str]:
    """Every dotted field path of ``message`` (repeated fields as ``name[N]`` too)."""
    found: set[str] = set()
    for f in message.fields:
        names = [f.name]
        if f.is_repeated:
            names.append(f"{f.name}[N]")
        for name in names:
            found.add(name)
            if f.message_type is not None and depth > 1:
                found.update(f"{name}.{sub}" for sub in paths(f.message_type, depth - 1))
    return found


def resolves(message: Any, path: str) -> bool:
    return re.sub(r"\[\d+\]", "[N]", path) in paths(message)


#: Every request message of the API, and the items a bulk call answers for.
REQUESTS: list[Any] = [
    d
    for d in pb.DESCRIPTOR.message_types_by_name.values()
    if d.name.endswith("Request") or d.name.endswith("Config")
] + [xpb.XfrmUsersaInfo.DESCRIPTOR, xpb.XfrmUserpolicyInfo.DESCRIPTOR]
ALL_PATHS = {p for d in REQUESTS for p in paths(d)}


def test_the_walk_finds_nested_and_repeated_paths() -> None:
    sa = xpb.XfrmUsersaInfo.DESCRIPTOR
    assert resolves(sa, "aead.alg_icv_len")
    assert resolves(sa, "id.spi")
    assert not resolves(sa, "aead.icv_bits")
    assert not resolves(sa, "lifetime.soft_byte_limit")
    assert resolves(xpb.XfrmUserpolicyInfo.DESCRIPTOR, "tmpl[0].reqid")


@pytest.mark.parametrize(
    ("engine", "request_path"),
    [
        ("aead.icv_bits", "aead.alg_icv_len"),
        ("auth.icv_bits", "auth.alg_trunc_len"),
        ("aead.key", "aead.alg_key"),
        ("enc.name", "enc.alg_name"),
        ("lifetime.hard_byte_limit", "lft.hard_byte_limit"),
        ("replay.seq", "replay_esn.seq"),
        ("proto", "id.proto"),
        ("spi", "id.spi"),
        ("daddr", "id.daddr"),
        ("sa_dir", "dir"),
        ("selector.proto", "sel.proto"),
        ("replay_window", "replay_window"),
        ("encap.encap_type", "encap.encap_type"),
        ("encap.sport", "encap.encap_sport"),
        ("encap.dport", "encap.encap_dport"),
        ("offload.flags", "offload.flags"),
        # Request paths (the server's own parsing names them) stay as they are.
        ("aead.alg_icv_len", "aead.alg_icv_len"),
        ("id.daddr", "id.daddr"),
        ("lft.soft_packet_limit", "lft.soft_packet_limit"),
        ("replay_esn.replay_window", "replay_esn.replay_window"),
    ],
)
def test_sa_field(engine: str, request_path: str) -> None:
    assert sa_field(engine) == request_path
    assert resolves(xpb.XfrmUsersaInfo.DESCRIPTOR, request_path)


@pytest.mark.parametrize(
    ("engine", "request_path"), [("replay.seq_hi", "seq_hi"), ("replay.seq", "seq")]
)
def test_esn_field(engine: str, request_path: str) -> None:
    assert esn_field(engine) == request_path
    assert resolves(pb.AdvanceEsnRequest.DESCRIPTOR, request_path)


@pytest.mark.parametrize(
    ("engine", "request_path"),
    [
        ("templates", "tmpl"),
        ("templates[0].daddr", "tmpl[0].id.daddr"),
        ("templates[2].spi", "tmpl[2].id.spi"),
        ("templates[0].level", "tmpl[0].optional"),
        ("templates[0].reqid", "tmpl[0].reqid"),
        ("templates.daddr", "tmpl.id.daddr"),
        ("lifetime.hard_add_expires_seconds", "lft.hard_add_expires_seconds"),
        ("mark", "mark.v"),
        ("mark_mask", "mark.m"),
        ("sel.proto", "sel.proto"),
        ("dir", "dir"),
        ("index", "index"),
        ("offload.flags", "offload.flags"),
        # Request paths (the server's own parsing names them) stay as they are.
        ("tmpl[1].id.daddr", "tmpl[1].id.daddr"),
        ("lft.soft_byte_limit", "lft.soft_byte_limit"),
    ],
)
def test_policy_field(engine: str, request_path: str) -> None:
    assert policy_field(engine) == request_path
    assert resolves(xpb.XfrmUserpolicyInfo.DESCRIPTOR, request_path)


@pytest.mark.parametrize(
    ("profile", "flags", "policy", "exc", "field", "message"),
    POLICY_REFUSALS.values(),
    ids=POLICY_REFUSALS.keys(),
)
def test_every_policy_refusal_names_a_policy_add_field(
    profile: str, flags: int, policy: Policy, exc: type, field: str, message: str
) -> None:
    """Each of the device's policy-add refusals, as PolicyAdd reports it."""
    assert resolves(pb.PolicyAddRequest.DESCRIPTOR, f"policy.{policy_field(field)}"), field


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_every_state_refusal_names_a_state_add_field(case: Refusal) -> None:
    """Each of the device's state-add refusals, as StateAdd reports it."""
    field = case.field
    if field is not None:
        assert resolves(pb.StateAddRequest.DESCRIPTOR, f"sa.{sa_field(field)}"), field


def _field_arguments() -> list[tuple[str, str]]:
    """(module, value) of every ``field=`` keyword the engine and server pass, as a
    literal or as a regex for an f-string (each ``{...}`` one or more path segments)."""
    found = []
    for source in sorted(SOURCES.glob("*/*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.keyword) or node.arg != "field":
                continue
            for value in _branches(node.value):
                if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                    found.append((source.name, re.escape(value.value)))
                elif isinstance(value, ast.JoinedStr):
                    found.append((source.name, _pattern(value)))
    return found


def _branches(node: ast.expr) -> list[ast.expr]:
    """``a if c else b`` is both a and b."""
    if isinstance(node, ast.IfExp):
        return _branches(node.body) + _branches(node.orelse)
    return [node]


def _pattern(node: ast.JoinedStr) -> str:
    parts = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            parts.append(re.escape(str(part.value)))
        else:
            parts.append(r"[a-z_\[\]N.]+")
    return "".join(parts)


FIELD_ARGUMENTS = _field_arguments()


def test_the_scan_sees_the_engine_and_the_server() -> None:
    modules = {module for module, _ in FIELD_ARGUMENTS}
    assert {"offload_rules.py", "sa.py", "convert.py", "nic.py"} <= modules
    assert len(FIELD_ARGUMENTS) > 100


def _engine_names(config: type, nested: dict[str, type]) -> set[str]:
    """A config's field names, nested one level (``aead.icv_bits``, ``lifetime.*``; a
    repeated one as ``templates[N].daddr`` too), and the offload request's
    (``offload.flags``)."""
    names = {f"offload.{f.name}" for f in dataclasses.fields(OffloadRequest)} | {"offload.flags"}
    for f in dataclasses.fields(config):
        names.add(f.name)
        sub = nested.get(f.name)
        if sub is not None:
            for head in (f.name, f"{f.name}[N]"):
                names.update(f"{head}.{g.name}" for g in dataclasses.fields(sub))
            names.add(f"{f.name}[N]")
    return names


_NESTED: dict[str, type] = {
    "aead": Algorithm,
    "enc": Algorithm,
    "auth": Algorithm,
    "encap": EncapTemplate,
    "lifetime": LifetimeConfig,
    "replay": ReplayState,
    "selector": Selector,
}
_POLICY_NESTED: dict[str, type] = {
    "sel": Selector,
    "templates": Template,
    "lifetime": LifetimeConfig,
}
#: What a field name can become: itself (the server's own names are request paths),
#: or the mapping of an engine name (a state's, an ESN update's or a policy's).
REACHABLE = (
    {(p, p) for p in ALL_PATHS}
    | {
        (name, mapped)
        for name in _engine_names(SAConfig, _NESTED)
        for mapped in (sa_field(name), esn_field(name))
    }
    | {
        (name, policy_field(name.replace("[N]", "[0]")).replace("[0]", "[N]"))
        for name in _engine_names(Policy, _POLICY_NESTED)
    }
    | set(convert._IMPAIRMENT_FIELDS.items())
)
#: Fields named by checks no request reaches: the server's own configuration
#: (--device, --bond, --engine) and a test hook of the SA.
NOT_REQUEST_FIELDS = {
    ("bond.py", "members"),
    ("device.py", "ifindex"),
    ("native.py", "engine"),
    ("sa.py", "iv_salt"),
}


@pytest.mark.parametrize(("module", "pattern"), FIELD_ARGUMENTS)
def test_every_named_field_is_a_request_path(module: str, pattern: str) -> None:
    """Every field the code names is a request path, itself or through the mapping."""
    if (module, pattern) in NOT_REQUEST_FIELDS:
        return
    regex = re.compile(pattern.replace(r"\[0\]", r"\[N\]"))
    assert any(regex.fullmatch(name) and mapped in ALL_PATHS for name, mapped in REACHABLE), (
        f"{module}: field {pattern!r} names no request field"
    )

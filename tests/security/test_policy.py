"""The policy file: its grammar, its mistakes named by line, what a grant covers."""

from __future__ import annotations

import os

import pytest

from xfrm_offload.server.policy import (
    ADMIN,
    Grant,
    Identity,
    PolicyError,
    default_policy,
    parse_policy,
)

UNIX_NOBODY = Identity("uid:65534", uid=65534, gid=65534)
KM_CERT = Identity("cert:km.example", cert_names=("km.example", "CN-of-km"))


def test_lines_match_their_identities_and_grant_the_union() -> None:
    policy = parse_policy(
        "# comment\n"
        "uid:65534 viewer           # trailing comment\n"
        "gid:65534 traffic dev eth0,eth1\n"
        "cert:km.example keymanager,viewer dev eth0\n"
        "cert:* viewer\n"
        "user:root admin\n",
        "p",
    )
    assert policy.grants(UNIX_NOBODY) == [
        Grant(frozenset({"viewer"})),
        Grant(frozenset({"traffic"}), frozenset({"eth0", "eth1"})),
    ]
    assert policy.grants(KM_CERT) == [
        Grant(frozenset({"keymanager", "viewer"}), frozenset({"eth0"})),
        Grant(frozenset({"viewer"})),
    ]
    assert policy.grants(Identity("uid:0", uid=0, gid=0)) == [Grant(frozenset({ADMIN}))]
    # a uid line never matches a certificate, nor a certificate line a Unix peer
    assert policy.grants(Identity("cert:x", cert_names=("65534",))) == [
        Grant(frozenset({"viewer"}))
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("uid:1 viewer extra", "p:1: expected IDENTITY ROLE[,ROLE...] [dev DEV[,DEV...]]"),
        ("\nuid:1", "p:2: expected IDENTITY"),
        ("uid:x viewer", "p:1: uid:'x' is not a number"),
        ("who:1 viewer", "p:1: unknown identity kind 'who'"),
        ("uid: viewer", "p:1: identity 'uid:'"),
        ("uid:1 boss", "p:1: unknown role 'boss' (roles: viewer, traffic, keymanager, admin)"),
        ("uid:1 viewer,boss", "p:1: unknown role 'boss'"),
        ("uid:1 viewer dev ,", "p:1: dev needs at least one device name"),
        ("uid:1 viewer on eth0", "p:1: expected IDENTITY"),
        ("user:no-such-user-here viewer", "p:1: no user named 'no-such-user-here'"),
    ],
)
def test_mistakes_are_named_by_line(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "p")
    assert message in str(refused.value)


def test_the_defaults() -> None:
    policy = default_policy()
    assert policy.grants(Identity("uid:0", uid=0)) == [Grant(frozenset({ADMIN}))]
    me = os.geteuid()
    assert policy.grants(Identity(f"uid:{me}", uid=me)) == [Grant(frozenset({ADMIN}))]
    assert policy.grants(UNIX_NOBODY) == []
    assert policy.grants(KM_CERT) == [Grant(frozenset({ADMIN}))]  # the CA is the policy


@pytest.mark.parametrize(
    ("grant", "role", "devices", "covers"),
    [
        (Grant(frozenset({"viewer"})), "viewer", None, True),
        (Grant(frozenset({"viewer"})), "keymanager", ["eth0"], False),
        (Grant(frozenset({"admin"})), "keymanager", ["eth0"], True),
        (Grant(frozenset({"viewer"}), frozenset({"eth0"})), "viewer", ["eth0"], True),
        (Grant(frozenset({"viewer"}), frozenset({"eth0"})), "viewer", ["eth0", "eth1"], False),
        (Grant(frozenset({"viewer"}), frozenset({"eth0"})), "viewer", None, False),
        (Grant(frozenset({"admin"}), frozenset({"eth0"})), "admin", None, False),
    ],
)
def test_what_a_grant_covers(
    grant: Grant, role: str, devices: list[str] | None, covers: bool
) -> None:
    assert grant.covers(role, devices) is covers

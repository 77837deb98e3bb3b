"""Who may do what: roles, identities, and the policy file that grants one to the other.

Roles (an RPC needs one of them; admin covers every RPC):

- ``viewer``: listings, counters, events, device details, never keys;
- ``traffic``: packet streams, packet taps, OffloadOk;
- ``keymanager``: state and policy add/delete/free, AdvanceEsn, UpdateCurlft, link state;
- ``admin``: ``include_keys``, the clock, cables, the echo RPCs, and everything above.

The policy file, one grant a line (``#`` starts a comment)::

    # IDENTITY         ROLES                [dev DEV[,DEV...]]
    uid:0              admin
    user:km            keymanager,viewer
    gid:1001           viewer               dev eth0,eth1
    cert:km.example    keymanager,viewer    dev eth0
    cert:*             viewer

``uid:N`` / ``user:NAME`` and ``gid:N`` / ``group:NAME`` match Unix socket peers (and
plaintext loopback peers by uid), ``cert:NAME`` a verified client certificate with
NAME among its subject alternative names (DNS, URI, e-mail) or as its subject CN,
``cert:*`` any verified client certificate. ``dev`` limits the grant to those devices.
An identity gets the union of the lines it matches. With a policy file, the file is
the whole policy; without one, the defaults of :func:`default_policy` apply.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

VIEWER = "viewer"
TRAFFIC = "traffic"
KEYMANAGER = "keymanager"
ADMIN = "admin"
ROLES = (VIEWER, TRAFFIC, KEYMANAGER, ADMIN)


@dataclass(frozen=True)
class Identity:
    """Who is calling: a Unix peer (uid, gid) or a client certificate's names.

    ``name`` is what the audit log and refusals show (``uid:1000``, ``cert:km.example``).
    """

    name: str
    uid: int | None = None
    gid: int | None = None
    cert_names: tuple[str, ...] = ()

    @property
    def has_cert(self) -> bool:
        return bool(self.cert_names)


@dataclass(frozen=True)
class Grant:
    """Roles, on every device (``devices`` None) or on those named."""

    roles: frozenset[str]
    devices: frozenset[str] | None = None

    def covers(self, role: str, devices: Iterable[str] | None) -> bool:
        """Whether this grant allows ``role`` for a request naming ``devices``.

        ``devices`` None: the request spans every device (a listing without a device
        filter), which only an unscoped grant covers.
        """
        if role not in self.roles and ADMIN not in self.roles:
            return False
        if self.devices is None:
            return True
        return devices is not None and all(d in self.devices for d in devices)

    def __str__(self) -> str:
        roles = ",".join(r for r in ROLES if r in self.roles)
        return roles if self.devices is None else f"{roles} on {','.join(sorted(self.devices))}"


@dataclass(frozen=True)
class Rule:
    """One policy line: which identities it matches, what it grants."""

    kind: str  # "uid", "gid", "cert"
    value: str  # the number, the certificate name, or "*"
    grant: Grant
    line: int = 0

    def matches(self, identity: Identity) -> bool:
        if self.kind == "uid":
            return identity.uid is not None and str(identity.uid) == self.value
        if self.kind == "gid":
            return identity.gid is not None and str(identity.gid) == self.value
        return identity.has_cert and (self.value == "*" or self.value in identity.cert_names)


@dataclass(frozen=True)
class Policy:
    """The grants in force; ``source`` says where they came from (for the start-up log)."""

    rules: tuple[Rule, ...]
    source: str
    #: Without a policy file: every verified client certificate is admin (the CA is the policy).
    any_cert_admin: bool = False
    admin_uids: frozenset[int] = field(default_factory=frozenset)

    def grants(self, identity: Identity) -> list[Grant]:
        found = [rule.grant for rule in self.rules if rule.matches(identity)]
        if (identity.uid is not None and identity.uid in self.admin_uids) or (
            self.any_cert_admin and identity.has_cert
        ):
            found.append(Grant(frozenset({ADMIN})))
        return found


def default_policy() -> Policy:
    """No policy file: on the Unix socket (and plaintext loopback) the server's own uid
    and root are admin and nobody else is anything; on mTLS every client the CA verified
    is admin."""
    return Policy(
        rules=(),
        source="defaults",
        any_cert_admin=True,
        admin_uids=frozenset({0, os.geteuid()}),
    )


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and line."""


def _unix_id(kind: str, value: str, where: str) -> str:
    """``uid:N``/``gid:N`` as given, ``user:NAME``/``group:NAME`` resolved to their number."""
    if kind in ("uid", "gid"):
        if not value.isdigit():
            raise PolicyError(f"{where}: {kind}:{value!r} is not a number")
        return value
    try:
        if kind == "user":
            return str(pwd.getpwnam(value).pw_uid)
        return str(grp.getgrnam(value).gr_gid)
    except KeyError:
        raise PolicyError(f"{where}: no {kind} named {value!r} on this host") from None


def parse_policy(text: str, source: str) -> Policy:
    """Parse a policy file's text; PolicyError naming the line at the first mistake."""
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{source}:{number}"
        if len(words) not in (2, 4) or (len(words) == 4 and words[2] != "dev"):
            raise PolicyError(f"{where}: expected IDENTITY ROLE[,ROLE...] [dev DEV[,DEV...]]")
        kind, sep, value = words[0].partition(":")
        if not sep or not value:
            raise PolicyError(
                f"{where}: identity {words[0]!r}: expected uid:N, gid:N, "
                "user:NAME, group:NAME, cert:NAME or cert:*"
            )
        if kind in ("uid", "gid", "user", "group"):
            value = _unix_id(kind, value, where)
            kind = "uid" if kind in ("uid", "user") else "gid"
        elif kind != "cert":
            raise PolicyError(
                f"{where}: unknown identity kind {kind!r} (uid, gid, user, group, cert)"
            )
        roles = frozenset(words[1].split(","))
        unknown = sorted(roles - set(ROLES))
        if unknown or not roles:
            raise PolicyError(
                f"{where}: unknown role {unknown[0] if unknown else ''!r} "
                f"(roles: {', '.join(ROLES)})"
            )
        devices = frozenset(d for d in words[3].split(",") if d) if len(words) == 4 else None
        if devices is not None and not devices:
            raise PolicyError(f"{where}: dev needs at least one device name")
        rules.append(Rule(kind, value, Grant(roles, devices), number))
    return Policy(rules=tuple(rules), source=source)


def load_policy(path: Path | None) -> Policy:
    """The policy file's grants, or the defaults without one (PolicyError, OSError)."""
    if path is None:
        return default_policy()
    return parse_policy(path.read_text(), str(path))

"""Errors the engine raises: the caller's mistakes, kept apart from the peer's.

``LocalError`` and its subclasses mean the *caller* (the keymanager, through the
server) asked for something the NIC refuses; each carries the kernel errno it
stands for and, where one field is to blame, that field's name. The server turns
them into gRPC status codes in one place.

What a *peer* sends that is wrong (replayed, forged, malformed, no SA) is never
an exception that leaves the engine: it is a drop, counted under its
``/proc/net/xfrm_stat`` name (see ``stats.XfrmStat``). ``PacketDrop`` exists only
to carry that reason out of a deep helper up to the packet loop that counts it.
"""

from __future__ import annotations

import errno as _errno

from .stats import XfrmStat


class EngineError(Exception):
    """Base of every error the engine raises."""


class LocalError(EngineError):
    """The caller asked for something the NIC refuses (the kernel's negative errno).

    ``field`` names the field at fault by the engine's own dotted names (``SAConfig``'s
    ``aead.icv_bits``, ``lifetime.soft_byte_limit``, ``sa_dir``; ``offload.flags``);
    the server maps them to request paths (``server/status.py``). ``allowed`` lists
    acceptable values when the set is small. Messages never contain key material.
    """

    errno: int = _errno.EINVAL

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        allowed: tuple[str, ...] = (),
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = allowed
        if errno is not None:
            self.errno = errno

    def __str__(self) -> str:
        text = self.message
        if self.allowed:
            text += f" (allowed: {', '.join(self.allowed)})"
        return text


class InvalidArgument(LocalError):
    """-EINVAL."""

    errno = _errno.EINVAL


class NotSupported(LocalError):
    """-EOPNOTSUPP: in crypto offload an answer (use software IPsec), in packet mode an error."""

    errno = _errno.EOPNOTSUPP


class NoSpace(LocalError):
    """-ENOSPC: the device's table is full."""

    errno = _errno.ENOSPC


class AlreadyExists(LocalError):
    """-EEXIST."""

    errno = _errno.EEXIST


class NotFound(LocalError):
    """-ENOENT / -ESRCH: no such state, policy or device."""

    errno = _errno.ENOENT


class WrongState(LocalError):
    """The object exists but is in the wrong lifecycle state (free before delete...)."""

    errno = _errno.EBUSY


class PacketDrop(EngineError):
    """Internal: a packet is dropped for ``reason``. Caught by the packet loops."""

    __slots__ = ("reason",)

    def __init__(self, reason: XfrmStat) -> None:
        super().__init__(reason.value)
        self.reason = reason

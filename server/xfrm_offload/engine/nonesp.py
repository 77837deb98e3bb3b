"""What a NAT-T UDP datagram was when it was not ESP, and the exception that says so."""

from __future__ import annotations

import enum

from .errors import EngineError


class NonEsp(enum.Enum):
    """What a NAT-T UDP datagram was, when it was not ESP."""

    #: RFC 3948 §2.3 NAT-keepalive: a single 0xFF byte; eaten.
    KEEPALIVE = "nat-keepalive"
    #: RFC 3948 §2.2 non-ESP marker (4 zero bytes): IKE, for the host's IKE daemon.
    IKE = "non-esp-marker"


class NotEsp(EngineError):
    """Internal: a NAT-T datagram that is not ESP (not a drop, not counted)."""

    __slots__ = ("kind",)

    def __init__(self, kind: NonEsp) -> None:
        super().__init__(kind.value)
        self.kind = kind

"""gRPC errors decoded into exceptions carrying the status, message and field violations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One google.rpc.BadRequest.FieldViolation: which request field, and what is wrong."""

    field: str
    description: str


class XfrmOffloadError(Exception):
    """The server refused a call.

    ``code`` is the gRPC status; ``errno`` the kernel errno it stands for (when the
    server said); ``reason`` the ErrorInfo reason (``EINVAL``, ``ENOSPC``...);
    ``violations`` the fields at fault; ``allowed`` acceptable values, when listed.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        violations: tuple[FieldViolation, ...] = (),
        reason: str = "",
        errno: int | None = None,
        allowed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = violations
        self.reason = reason
        self.errno = errno
        self.allowed = allowed

    @property
    def field(self) -> str | None:
        """The first field named by the server, if any."""
        return self.violations[0].field if self.violations else None

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.field and self.field not in self.message:
            text += f" (field {self.field})"
        return text

    @classmethod
    def from_rpc_error(cls, exc: aio.AioRpcError) -> XfrmOffloadError:
        """Decode the rich status the server put in the trailers."""
        violations: list[FieldViolation] = []
        reason = ""
        errno: int | None = None
        allowed: tuple[str, ...] = ()
        # aio metadata iterates as (key, value) pairs (the stubs describe the sync API)
        metadata = cast("Iterable[tuple[str, str | bytes]]", exc.trailing_metadata() or ())
        for key, value in metadata:
            if key != _DETAILS_KEY or not isinstance(value, bytes):
                continue
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad = error_details_pb2.BadRequest()
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(bad):
                    violations.extend(
                        FieldViolation(v.field, v.description) for v in bad.field_violations
                    )
                elif detail.Unpack(info):
                    reason = info.reason
                    if info.metadata.get("errno", "").isdigit():
                        errno = int(info.metadata["errno"])
                    if info.metadata.get("allowed"):
                        allowed = tuple(info.metadata["allowed"].split(","))
        return cls(
            exc.code(),
            exc.details() or "",
            violations=tuple(violations),
            reason=reason,
            errno=errno,
            allowed=allowed,
        )

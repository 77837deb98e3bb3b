"""TLS for TCP listeners: the server's certificate and key, optionally a client CA (mTLS).

The credentials are gRPC's dynamic ones: gRPC asks :meth:`ServerTls.fetch` at each
new handshake whether the configuration changed, so :meth:`ServerTls.reload` (SIGHUP)
takes effect for new connections while the open ones, and their streams, go on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("xfrm_offload.server")


@dataclass(frozen=True)
class TlsFiles:
    """--tls-cert, --tls-key and, for mutual TLS, --tls-client-ca."""

    cert: Path
    key: Path
    client_ca: Path | None = None


class ServerTls:
    """The files read into gRPC server credentials, re-read on request."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()  # fetch runs on gRPC's threads
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._initial = self._read()

    def _read(self) -> grpc.ServerCertificateConfiguration:
        """Read and check the files (OSError or ValueError saying which one is wrong)."""
        pairs = [(_pem(self.files.key, "PRIVATE KEY"), _pem(self.files.cert, "CERTIFICATE"))]
        ca = _pem(self.files.client_ca, "CERTIFICATE") if self.files.client_ca else None
        return grpc.ssl_server_certificate_configuration(pairs, root_certificates=ca)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self.fetch,  # type: ignore[arg-type]  # None = no change, as gRPC documents
            require_client_authentication=self.files.client_ca is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's question before a handshake: a new configuration, or None for the same."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload(self) -> bool:
        """Re-read the files for the next handshakes; on a bad file keep the old ones."""
        try:
            config = self._read()
        except (OSError, ValueError) as exc:
            log.error(
                "tls reload failed, keeping the old certificates",
                extra={"fields": {"error": str(exc)}},
            )
            return False
        with self._lock:
            self._pending = config
        log.info("tls reloaded", extra={"fields": {"cert": str(self.files.cert)}})
        return True


def _pem(path: Path, kind: str) -> bytes:
    """A PEM file's bytes, refusing one without a ``kind`` block (a swapped or empty file)."""
    data = path.read_bytes()
    marker = b"PRIVATE KEY-----" if kind == "PRIVATE KEY" else f"-----BEGIN {kind}-----".encode()
    if marker not in data:
        raise ValueError(f"{path}: not a PEM {kind.lower()}")
    return data

"""TLS for a client on a TCP address: the CA to trust, a client certificate for mTLS.

Each setting comes from its argument, else its environment variable:

- ``--tls-ca`` / ``$XFRM_OFFLOAD_TLS_CA``: the CA that signed the server's certificate
  (absent: the system's roots);
- ``--tls-cert`` / ``$XFRM_OFFLOAD_TLS_CERT`` and ``--tls-key`` / ``$XFRM_OFFLOAD_TLS_KEY``:
  the client's certificate and key, for a server that requires them (mutual TLS);
- ``--tls-server-name`` / ``$XFRM_OFFLOAD_TLS_SERVER_NAME``: the name to expect in the
  server's certificate when it is not the address's host.

TLS is used on a TCP address when any of them is set; a Unix socket never uses it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

CA_ENV = "XFRM_OFFLOAD_TLS_CA"
CERT_ENV = "XFRM_OFFLOAD_TLS_CERT"
KEY_ENV = "XFRM_OFFLOAD_TLS_KEY"
SERVER_NAME_ENV = "XFRM_OFFLOAD_TLS_SERVER_NAME"


class TlsError(ValueError):
    """A TLS setting that cannot be used; the message names the option."""


@dataclass(frozen=True)
class TlsOptions:
    """What a client needs for TLS (every field optional, see the module doc)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    @classmethod
    def resolve(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> TlsOptions | None:
        """Arguments over environment variables; None when TLS is not asked for at all."""

        def pick(value: str | Path | None, env: str) -> Path | None:
            chosen = value or environ.get(env)
            return Path(chosen) if chosen else None

        options = cls(
            pick(ca, CA_ENV),
            pick(cert, CERT_ENV),
            pick(key, KEY_ENV),
            server_name or environ.get(SERVER_NAME_ENV) or None,
        )
        return options if options != cls() else None

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials (TlsError naming the option that is wrong)."""
        if (self.cert is None) != (self.key is None):
            raise TlsError("--tls-cert and --tls-key go together (a certificate and its key)")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "--tls-ca") if self.ca else None,
            private_key=_read(self.key, "--tls-key") if self.key else None,
            certificate_chain=_read(self.cert, "--tls-cert") if self.cert else None,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def _read(path: Path, option: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{option} {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"{option} {path}: not a PEM file")
    return data


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """xfrmctl's --tls-ca, --tls-cert, --tls-key, --tls-server-name."""
    parser.add_argument(
        "--tls-ca", metavar="FILE", help=f"CA of the server's certificate (${CA_ENV})"
    )
    parser.add_argument(
        "--tls-cert", metavar="FILE", help=f"client certificate for mutual TLS (${CERT_ENV})"
    )
    parser.add_argument("--tls-key", metavar="FILE", help=f"its private key (${KEY_ENV})")
    parser.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help=f"name expected in the server's certificate (${SERVER_NAME_ENV})",
    )


def tls_of(args: argparse.Namespace) -> TlsOptions | None:
    """The TLS settings of parsed xfrmctl arguments, with the environment as fallback."""
    return TlsOptions.resolve(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)

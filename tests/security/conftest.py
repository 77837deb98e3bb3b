"""Fixtures of the security tests: certificates, a TLS server in-process, clients by name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc import aio

from xfrm_offload.client import Client, TlsOptions
from xfrm_offload.server.app import OffloadServer
from xfrm_offload.server.config import parse_args

from .certs import Issued, Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))


def tls_args(pki: Pki, *, mutual: bool = True) -> list[str]:
    args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)]
    return [*args, "--tls-client-ca", str(pki.ca.path)] if mutual else args


@asynccontextmanager
async def tls_server(pki: Pki, *args: str, mutual: bool = True) -> AsyncIterator[OffloadServer]:
    """xfrm-offloadd on 127.0.0.1:PORT with the test server certificate (mTLS by default)."""
    config = parse_args(["--listen", "127.0.0.1:0", *tls_args(pki, mutual=mutual), *args])
    server = OffloadServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=1)


def tcp_address(server: OffloadServer) -> str:
    return next(a for a in server.addresses if not a.startswith("unix:"))


def channel(
    server: OffloadServer, pki: Pki, client: Issued | None, *, ca: Path | None = None
) -> aio.Channel:
    """A raw channel to the TLS server, presenting ``client``'s certificate (None: none)."""
    credentials = grpc.ssl_channel_credentials(
        (ca or pki.ca.path).read_bytes(),
        client.key.read_bytes() if client else None,
        client.cert.read_bytes() if client else None,
    )
    return aio.secure_channel(tcp_address(server), credentials)


def client_for(server: OffloadServer, pki: Pki, name: str) -> Client:
    """The library client presenting the certificate issued to ``name``."""
    issued = pki.clients[name]
    tls = TlsOptions(ca=pki.ca.path, cert=issued.cert, key=issued.key)
    return Client(tcp_address(server), timeout=10, tls=tls)

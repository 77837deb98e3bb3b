"""Where the server listens by default and how addresses are spelled (hand-written, not generated).

Both the server and the client need these, and the client must not import the
server, so they live with the contract.

Address forms: ``unix:PATH`` (also ``unix://PATH``), ``HOST:PORT``, ``[V6ADDR]:PORT``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The environment variable a client reads for the server address.
SERVER_ENV = "XFRM_OFFLOAD_SERVER"
SOCKET_NAME = "xfrm-offloadd.sock"


def default_socket_path() -> Path:
    """The server's default Unix socket.

    root: ``/run/xfrm-offload/xfrm-offloadd.sock``; anyone else:
    ``$XDG_RUNTIME_DIR/xfrm-offload/xfrm-offloadd.sock``, or
    ``/tmp/xfrm-offload-$UID/xfrm-offloadd.sock`` without XDG_RUNTIME_DIR.
    """
    if os.geteuid() == 0:
        return Path("/run/xfrm-offload") / SOCKET_NAME
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "xfrm-offload" / SOCKET_NAME
    return Path(f"/tmp/xfrm-offload-{os.geteuid()}") / SOCKET_NAME


def default_address() -> str:
    """``$XFRM_OFFLOAD_SERVER`` if set, else ``unix:`` + the default socket."""
    return os.environ.get(SERVER_ENV) or f"unix:{default_socket_path()}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed listen/connect address: a Unix socket path, or a host and TCP port."""

    unix_path: Path | None = None
    host: str = ""
    port: int = 0

    @property
    def grpc_target(self) -> str:
        """The string grpc's channel and server APIs take."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.grpc_target


def parse_endpoint(text: str) -> Endpoint:
    """Parse an address; raise ValueError saying what is wrong with it."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"{text!r}: unix: needs a socket path, e.g. unix:/run/x.sock")
        return Endpoint(unix_path=Path(path))
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected HOST:PORT or unix:PATH")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address needs brackets, e.g. [::1]:50051")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return Endpoint(host=host, port=int(port_text))

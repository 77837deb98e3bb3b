"""The server's security settings and the parts that carry them out, in one object.

Options (see README, Security): ``--tls-cert``/``--tls-key`` (TLS on every TCP
listener), ``--tls-client-ca`` (mutual TLS: a client certificate is required and
verified), ``--plaintext`` (TCP without TLS, loopback addresses only), ``--policy``,
``--socket-mode``, ``--audit-log``. Without TLS a TCP listener is refused at start
unless ``--plaintext`` is given and its address is a loopback one.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpc import aio

from xfrm_offload.v1.endpoint import Endpoint

from . import logs, peers
from .audit import Audit
from .auth import Authorizer, Identifier
from .peers import UnixGate
from .policy import PolicyError, load_policy
from .tls import ServerTls, TlsFiles

if TYPE_CHECKING:
    from .nic import Nic

log = logging.getLogger("xfrm_offload.server")


@dataclass(frozen=True)
class SecurityConfig:
    """What the security options asked for."""

    tls: TlsFiles | None = None
    plaintext: bool = False
    policy: Path | None = None
    socket_mode: int = 0o600
    audit_log: Path | None = None


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an octal mode such as 0600")
    return mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security (README: Security)")
    group.add_argument("--tls-cert", type=Path, metavar="FILE", help="server certificate (PEM)")
    group.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    group.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="FILE",
        help="mutual TLS: require client certificates issued by this CA (PEM)",
    )
    group.add_argument(
        "--plaintext",
        action="store_true",
        help="TCP without TLS, allowed on loopback addresses only (peers known by socket owner)",
    )
    group.add_argument(
        "--policy", type=Path, metavar="FILE", help="who may do what (default: see README)"
    )
    group.add_argument(
        "--socket-mode",
        type=_mode,
        default=0o600,
        metavar="MODE",
        help="Unix socket file mode, octal (default 0600: the server's uid and root)",
    )
    group.add_argument(
        "--audit-log",
        type=Path,
        metavar="FILE",
        help="append audit lines (JSON) to FILE instead of stderr",
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, listen: list[Endpoint]
) -> SecurityConfig:
    """Check the security options against the listeners; parser.error (exit 2) if unsafe."""
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("argument --tls-cert/--tls-key: give both, the certificate and its key")
    if args.tls_client_ca is not None and args.tls_cert is None:
        parser.error("argument --tls-client-ca: needs --tls-cert and --tls-key")
    tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    if tls is not None and args.plaintext:
        parser.error("argument --plaintext: not with --tls-cert (TCP listeners use TLS)")
    for endpoint in listen:
        if endpoint.unix_path is not None or tls is not None:
            continue
        if not args.plaintext:
            parser.error(
                f"argument --listen {endpoint}: TCP needs --tls-cert and --tls-key "
                "(or --plaintext, on a loopback address only)"
            )
        if not is_loopback(endpoint.host):
            parser.error(
                f"argument --listen {endpoint}: plaintext TCP only on a loopback address "
                "(127.0.0.1, [::1], localhost); use TLS anywhere else"
            )
    if tls is not None:
        try:
            ServerTls(tls)
        except (OSError, ValueError) as exc:
            parser.error(f"argument --tls-cert: {exc}")
    try:
        load_policy(args.policy)
    except (OSError, PolicyError) as exc:
        parser.error(f"argument --policy: {exc}")
    return SecurityConfig(tls, args.plaintext, args.policy, args.socket_mode, args.audit_log)


class Security:
    """Listeners with identities, the authorizer, the audit log, and SIGHUP reload."""

    def __init__(self, config: SecurityConfig, nic: Nic, log_format: str) -> None:
        self.config = config
        self.tls = ServerTls(config.tls) if config.tls else None
        self.audit = Audit(config.audit_log, log_format)
        self.gates: list[UnixGate] = []
        self.loopback: list[tuple[str, int]] = []
        self.identify = Identifier(self.gates, self.loopback)
        self.authorizer = Authorizer(nic, load_policy(config.policy), self.identify, self.audit)
        self._private: Path | None = None

    def interceptors(self) -> list[Any]:
        return [self.authorizer]

    def bind(self, server: aio.Server, endpoint: Endpoint) -> str:
        """Add one listener to ``server``; the address it is reachable at."""
        if endpoint.unix_path is not None:
            if self._private is None:  # gRPC's own socket: only the server's uid reaches it
                self._private = Path(tempfile.mkdtemp(prefix="xfrm-offloadd-"))
            upstream = self._private / f"grpc{len(self.gates)}.sock"
            server.add_insecure_port(f"unix:{upstream}")
            self.gates.append(UnixGate(endpoint.unix_path, self.config.socket_mode, upstream))
            return endpoint.grpc_target
        if self.tls is not None:
            port = server.add_secure_port(endpoint.grpc_target, self.tls.credentials())
        else:
            port = server.add_insecure_port(endpoint.grpc_target)
            hosts = ["127.0.0.1", "::1"] if endpoint.host == "localhost" else [endpoint.host]
            self.loopback += [(h, port) for h in hosts]
            log.warning(
                "plaintext TCP listener: no encryption; callers are known by the uid owning "
                "their socket",
                extra=logs.fields(listen=f"{endpoint.host}:{port}"),
            )
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        return f"{host}:{port}"

    async def start(self) -> None:
        for gate in self.gates:
            await gate.start()
        log.info(
            "security",
            extra=logs.fields(
                tls="mutual"
                if self.config.tls and self.config.tls.client_ca
                else ("server" if self.tls else "off"),
                policy=self.authorizer.policy.source,
                socket_mode=f"{self.config.socket_mode:04o}",
                unix_relay="splice, C" if peers.native_pump is not None else "splice, Python",
                audit=str(self.config.audit_log or "stderr"),
            ),
        )

    async def close(self) -> None:
        """Stop taking Unix connections (the socket files go); open ones carry on."""
        for gate in self.gates:
            await gate.close()

    async def wait_closed(self, timeout: float = 1.0) -> None:
        for gate in self.gates:
            await gate.wait_closed(timeout)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
        self.audit.close()

    def reload(self) -> None:
        """SIGHUP: re-read the TLS files and the policy; a bad file keeps the old one."""
        if self.tls is not None:
            self.tls.reload()
        try:
            self.authorizer.policy = load_policy(self.config.policy)
        except (OSError, PolicyError) as exc:
            log.error(
                "policy reload failed, keeping the old policy", extra=logs.fields(error=str(exc))
            )
        else:
            log.info("policy reloaded", extra=logs.fields(policy=self.authorizer.policy.source))

"""Test certificates made with ``cryptography``: CAs, a server, clients (good, expired, foreign).

EC P-256 keys: making one takes well under a millisecond, so every test module can
have its own fresh set.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path
    pem: bytes


@dataclass(frozen=True)
class Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(name, key, cert, path)


def issue(
    ca: Authority,
    directory: Path,
    common_name: str,
    *,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    server: bool = False,
    expired: bool = False,
    file_name: str | None = None,
) -> Issued:
    """A leaf certificate signed by ``ca`` (a server's when ``server``, else a client's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    if expired:
        before, after = NOW - datetime.timedelta(days=10), NOW - datetime.timedelta(days=1)
    else:
        before, after = NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=30)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    stem = file_name or common_name
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path, pem)


@dataclass(frozen=True)
class Pki:
    """What the security tests use: the CA, the server, clients, and the bad ones."""

    ca: Authority
    other_ca: Authority
    server: Issued
    clients: dict[str, Issued]
    expired: Issued
    foreign: Issued


#: Client certificates, one per role of the table tests, plus one with no grant.
CLIENT_NAMES = (
    "admin.test",
    "viewer.test",
    "traffic.test",
    "keymanager.test",
    "nobody.test",
    "scoped.test",
)


def make_pki(directory: Path) -> Pki:
    ca = make_ca(directory, "test-ca")
    other = make_ca(directory, "other-ca")
    server = issue(
        ca,
        directory,
        "xfrm-offloadd",
        dns=("localhost",),
        ips=("127.0.0.1", "::1"),
        server=True,
        file_name="server",
    )
    clients = {name: issue(ca, directory, name, dns=(name,)) for name in CLIENT_NAMES}
    expired = issue(ca, directory, "expired.test", dns=("expired.test",), expired=True)
    foreign = issue(other, directory, "foreign.test", dns=("admin.test",), file_name="foreign")
    return Pki(ca, other, server, clients, expired, foreign)

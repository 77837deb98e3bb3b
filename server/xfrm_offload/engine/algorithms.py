"""The ESP transforms the engine knows, under the kernel's names and key conventions.

Names and defaults follow net/xfrm/xfrm_algo.c (read, described in our own words):

- AEADs take ``key || salt`` as one blob, the way ``ip xfrm ... aead NAME KEYMAT ICV``
  does: ``rfc4106(gcm(aes))`` and ``rfc4543(gcm(aes))`` with a 4-byte salt after a 128,
  192 or 256-bit AES key, ``rfc7539esp(chacha20,poly1305)`` with a 4-byte salt after its
  256-bit key. ``rfc4543`` is GMAC: it authenticates the payload and leaves it in clear.
- Ciphers (``enc``) are paired with an authenticator (``auth``): ``cbc(aes)`` and
  ``ecb(cipher_null)``; ``hmac(sha1|sha256|sha384|sha512)`` and ``digest_null``.
- An auth algorithm's default truncation is the kernel's, which for ``hmac(sha256)`` is
  the legacy 96 bits, not RFC 4868's 128: a keymanager that wants 128 says so with
  ``auth-trunc`` (``Algorithm.icv_bits``).

``validate_transforms`` checks an SAConfig's ``aead``/``enc``/``auth`` and resolves the
defaults; errors name the field and list what is allowed, never the key bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .errors import InvalidArgument
from .types import Algorithm


class AlgorithmKind(enum.Enum):
    """Which SAConfig slot an algorithm goes in."""

    AEAD = "aead"
    CIPHER = "enc"
    AUTH = "auth"


@dataclass(frozen=True, slots=True)
class AlgorithmSpec:
    """What a device profile lists about one algorithm, and what validation needs.

    ``key_bits`` are the accepted *cipher/MAC key* lengths (without the salt); an empty
    tuple means "any length" (HMAC keys). ``icv_bits`` are the accepted ICV (AEAD) or
    truncation (auth) lengths, ``default_icv_bits`` what 0 stands for.
    """

    name: str
    kind: AlgorithmKind
    key_bits: tuple[int, ...]
    salt_bits: int = 0
    icv_bits: tuple[int, ...] = ()
    default_icv_bits: int = 0
    #: Cipher block size in bytes (1 for stream ciphers and AEADs built on CTR).
    block_size: int = 1
    #: Explicit IV carried on the wire after the ESP header, in bytes.
    iv_size: int = 0
    #: For AUTH: the hash name for hmac.digest; the untruncated output size.
    digest: str = ""
    full_icv_bits: int = 0
    #: True when the payload is not encrypted (GMAC, cipher_null).
    auth_only: bool = False


def _trunc_range(full: int) -> tuple[int, ...]:
    # The kernel accepts any truncation up to the full digest (xfrm_user attach_auth_trunc
    # checks only the upper bound; authenc accepts any smaller authsize). We require whole
    # bytes and at least 32 bits, which keeps the ICV byte-aligned and not absurdly short.
    return tuple(range(32, full + 1, 8))


_SPECS = (
    AlgorithmSpec(
        "rfc4106(gcm(aes))",
        AlgorithmKind.AEAD,
        key_bits=(128, 192, 256),
        salt_bits=32,
        icv_bits=(64, 96, 128),
        default_icv_bits=128,
        iv_size=8,
    ),
    AlgorithmSpec(
        "rfc4543(gcm(aes))",
        AlgorithmKind.AEAD,
        key_bits=(128, 192, 256),
        salt_bits=32,
        icv_bits=(128,),
        default_icv_bits=128,
        iv_size=8,
        auth_only=True,
    ),
    AlgorithmSpec(
        "rfc7539esp(chacha20,poly1305)",
        AlgorithmKind.AEAD,
        key_bits=(256,),
        salt_bits=32,
        icv_bits=(128,),
        default_icv_bits=128,
        iv_size=8,
    ),
    AlgorithmSpec(
        "cbc(aes)", AlgorithmKind.CIPHER, key_bits=(128, 192, 256), block_size=16, iv_size=16
    ),
    AlgorithmSpec("ecb(cipher_null)", AlgorithmKind.CIPHER, key_bits=(0,), auth_only=True),
    AlgorithmSpec(
        "hmac(sha1)",
        AlgorithmKind.AUTH,
        key_bits=(),
        icv_bits=_trunc_range(160),
        default_icv_bits=96,
        digest="sha1",
        full_icv_bits=160,
    ),
    AlgorithmSpec(
        "hmac(sha256)",
        AlgorithmKind.AUTH,
        key_bits=(),
        icv_bits=_trunc_range(256),
        default_icv_bits=96,  # the kernel's legacy default; RFC 4868 wants auth-trunc 128
        digest="sha256",
        full_icv_bits=256,
    ),
    AlgorithmSpec(
        "hmac(sha384)",
        AlgorithmKind.AUTH,
        key_bits=(),
        icv_bits=_trunc_range(384),
        default_icv_bits=192,
        digest="sha384",
        full_icv_bits=384,
    ),
    AlgorithmSpec(
        "hmac(sha512)",
        AlgorithmKind.AUTH,
        key_bits=(),
        icv_bits=_trunc_range(512),
        default_icv_bits=256,
        digest="sha512",
        full_icv_bits=512,
    ),
    AlgorithmSpec(
        "digest_null",
        AlgorithmKind.AUTH,
        key_bits=(0,),
        icv_bits=(0,),
        default_icv_bits=0,
    ),
)

#: Every algorithm the engine implements, by kernel name (what the "full" profile lists).
ALGORITHMS: Mapping[str, AlgorithmSpec] = MappingProxyType({s.name: s for s in _SPECS})


@dataclass(frozen=True, slots=True)
class ResolvedTransforms:
    """An SA's transforms after validation, defaults filled in."""

    #: The AEAD (``aead`` slot) or the cipher (``enc`` slot).
    cipher: AlgorithmSpec
    #: Cipher key without salt; for AEADs the salt is split off into ``salt``.
    cipher_key: bytes
    salt: bytes
    #: None for AEADs; ``digest_null`` when no authenticator was given.
    auth: AlgorithmSpec | None
    auth_key: bytes
    #: ICV length on the wire, in bytes.
    icv_len: int

    def __repr__(self) -> str:  # keys are secret: never in a repr
        auth = self.auth.name if self.auth else None
        return (
            f"ResolvedTransforms(cipher={self.cipher.name!r}, auth={auth!r}, "
            f"icv_len={self.icv_len})"
        )


def _names(kind: AlgorithmKind) -> tuple[str, ...]:
    return tuple(s.name for s in _SPECS if s.kind is kind)


def _lookup(alg: Algorithm, kind: AlgorithmKind, field: str) -> AlgorithmSpec:
    spec = ALGORITHMS.get(alg.name)
    if spec is None or spec.kind is not kind:
        raise InvalidArgument(
            f"unknown {kind.value} algorithm {alg.name!r}",
            field=f"{field}.name",
            allowed=_names(kind),
        )
    return spec


def _key_allowed(spec: AlgorithmSpec) -> tuple[str, ...]:
    if spec.salt_bits:
        return tuple(f"{k}+{spec.salt_bits} bits" for k in spec.key_bits)
    return tuple(f"{k} bits" for k in spec.key_bits)


def _check_icv(spec: AlgorithmSpec, icv_bits: int, field: str) -> int:
    bits = icv_bits or spec.default_icv_bits
    if bits not in spec.icv_bits:
        allowed = tuple(str(b) for b in spec.icv_bits)
        if len(allowed) > 4:
            allowed = (f"{spec.icv_bits[0]}..{spec.icv_bits[-1]} in steps of 8",)
        raise InvalidArgument(
            f"{spec.name}: ICV length {icv_bits} bits not supported",
            field=f"{field}.icv_bits",
            allowed=allowed,
        )
    return bits


def _check_aead(
    aead: Algorithm, enc: Algorithm | None, auth: Algorithm | None
) -> tuple[AlgorithmSpec, int]:
    """An AEAD SA's checks: (spec, ICV bits)."""
    if enc is not None or auth is not None:
        raise InvalidArgument(
            "an AEAD SA takes no separate enc/auth algorithm",
            field="enc" if enc is not None else "auth",
        )
    spec = _lookup(aead, AlgorithmKind.AEAD, "aead")
    key_bits = len(aead.key) * 8 - spec.salt_bits
    if key_bits not in spec.key_bits:
        raise InvalidArgument(
            f"{spec.name}: key of {len(aead.key) * 8} bits not supported",
            field="aead.key",
            allowed=_key_allowed(spec),
        )
    return spec, _check_icv(spec, aead.icv_bits, "aead")


def _check_cipher_auth(
    enc: Algorithm | None, auth: Algorithm | None
) -> tuple[AlgorithmSpec, AlgorithmSpec, int]:
    """A cipher (+ authenticator) SA's checks: (cipher spec, auth spec, ICV bits)."""
    if enc is None:
        raise InvalidArgument(
            "ESP needs an aead or an enc algorithm", field="enc", allowed=_names(AlgorithmKind.AEAD)
        )
    cspec = _lookup(enc, AlgorithmKind.CIPHER, "enc")
    if len(enc.key) * 8 not in cspec.key_bits:
        raise InvalidArgument(
            f"{cspec.name}: key of {len(enc.key) * 8} bits not supported",
            field="enc.key",
            allowed=_key_allowed(cspec),
        )
    if auth is None:
        return cspec, ALGORITHMS["digest_null"], 0
    aspec = _lookup(auth, AlgorithmKind.AUTH, "auth")
    if aspec.key_bits and len(auth.key) * 8 not in aspec.key_bits:
        raise InvalidArgument(
            f"{aspec.name}: key of {len(auth.key) * 8} bits not supported",
            field="auth.key",
            allowed=_key_allowed(aspec),
        )
    return cspec, aspec, _check_icv(aspec, auth.icv_bits, "auth")


def check_transforms(aead: Algorithm | None, enc: Algorithm | None, auth: Algorithm | None) -> None:
    """``validate_transforms``' checks alone, for whoever needs no keys yet."""
    if aead is not None:
        _check_aead(aead, enc, auth)
    else:
        _check_cipher_auth(enc, auth)


def validate_transforms(
    aead: Algorithm | None, enc: Algorithm | None, auth: Algorithm | None
) -> ResolvedTransforms:
    """Check an SA's algorithms like xfrm_user + esp_init_state would; resolve defaults.

    Exactly one of ``aead`` or ``enc`` is required; ``auth`` goes only with ``enc``
    (ESP without any authentication, ``enc`` alone, is allowed by the kernel; we keep it
    for tests with ``digest_null`` semantics).
    """
    if aead is not None:
        spec, icv = _check_aead(aead, enc, auth)
        split = len(aead.key) - spec.salt_bits // 8
        return ResolvedTransforms(
            cipher=spec,
            cipher_key=bytes(aead.key[:split]),
            salt=bytes(aead.key[split:]),
            auth=None,
            auth_key=b"",
            icv_len=icv // 8,
        )
    cspec, aspec, icv = _check_cipher_auth(enc, auth)
    assert enc is not None  # _check_cipher_auth refuses None
    return ResolvedTransforms(
        cipher=cspec,
        cipher_key=bytes(enc.key),
        salt=b"",
        auth=aspec,
        auth_key=b"" if auth is None else bytes(auth.key),
        icv_len=icv // 8,
    )

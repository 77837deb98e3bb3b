"""Algorithm table and SAConfig transform validation (kernel names, key conventions)."""

from __future__ import annotations

import pytest

from xfrm_offload.engine.algorithms import ALGORITHMS, AlgorithmKind, validate_transforms
from xfrm_offload.engine.errors import InvalidArgument
from xfrm_offload.engine.types import Algorithm

SECRET = bytes.fromhex("deadbeefcafebabe0011223344556677")


def test_table_lists_kernel_names() -> None:
    assert set(ALGORITHMS) == {
        "rfc4106(gcm(aes))",
        "rfc4543(gcm(aes))",
        "rfc7539esp(chacha20,poly1305)",
        "cbc(aes)",
        "ecb(cipher_null)",
        "hmac(sha1)",
        "hmac(sha256)",
        "hmac(sha384)",
        "hmac(sha512)",
        "digest_null",
    }
    gcm = ALGORITHMS["rfc4106(gcm(aes))"]
    assert (gcm.kind, gcm.key_bits, gcm.salt_bits, gcm.icv_bits) == (
        AlgorithmKind.AEAD,
        (128, 192, 256),
        32,
        (64, 96, 128),
    )
    assert ALGORITHMS["rfc4543(gcm(aes))"].auth_only


@pytest.mark.parametrize(
    "auth,expected_icv",
    [
        ("hmac(sha1)", 12),
        ("hmac(sha256)", 12),  # the kernel's legacy 96-bit default
        ("hmac(sha384)", 24),
        ("hmac(sha512)", 32),
    ],
)
def test_kernel_default_truncation(auth: str, expected_icv: int) -> None:
    t = validate_transforms(None, Algorithm("cbc(aes)", bytes(16)), Algorithm(auth, bytes(20)))
    assert t.icv_len == expected_icv


@pytest.mark.parametrize(
    "aead,icv_len,key_len",
    [
        (Algorithm("rfc4106(gcm(aes))", bytes(20), 64), 8, 16),
        (Algorithm("rfc4106(gcm(aes))", bytes(28), 96), 12, 24),
        (Algorithm("rfc4106(gcm(aes))", bytes(36), 0), 16, 32),
        (Algorithm("rfc4543(gcm(aes))", bytes(20), 128), 16, 16),
        (Algorithm("rfc7539esp(chacha20,poly1305)", bytes(36), 128), 16, 32),
    ],
)
def test_valid_aeads_split_salt(aead: Algorithm, icv_len: int, key_len: int) -> None:
    t = validate_transforms(aead, None, None)
    assert (t.icv_len, len(t.cipher_key), len(t.salt)) == (icv_len, key_len, 4)
    assert t.cipher_key + t.salt == aead.key


def test_auth_trunc_choice_and_null() -> None:
    t = validate_transforms(
        None, Algorithm("cbc(aes)", bytes(32)), Algorithm("hmac(sha256)", bytes(32), 128)
    )
    assert t.icv_len == 16
    t = validate_transforms(None, Algorithm("ecb(cipher_null)", b""), None)
    assert t.icv_len == 0 and t.auth is not None and t.auth.name == "digest_null"


ENC = Algorithm("cbc(aes)", bytes(16))


@pytest.mark.parametrize(
    "aead,enc,auth,field",
    [
        (Algorithm("gcm(aes)", SECRET + bytes(4), 128), None, None, "aead.name"),
        (Algorithm("cbc(aes)", SECRET), None, None, "aead.name"),
        (Algorithm("rfc4106(gcm(aes))", SECRET[:14], 128), None, None, "aead.key"),
        (Algorithm("rfc4106(gcm(aes))", SECRET, 128), None, None, "aead.key"),
        (Algorithm("rfc4106(gcm(aes))", SECRET + bytes(4), 32), None, None, "aead.icv_bits"),
        (Algorithm("rfc4543(gcm(aes))", SECRET + bytes(4), 96), None, None, "aead.icv_bits"),
        (
            Algorithm("rfc7539esp(chacha20,poly1305)", SECRET + bytes(4), 128),
            None,
            None,
            "aead.key",
        ),
        (Algorithm("rfc4106(gcm(aes))", SECRET + bytes(4), 128), ENC, None, "enc"),
        (None, None, None, "enc"),
        (None, Algorithm("cbc(des)", SECRET[:8]), None, "enc.name"),
        (None, Algorithm("cbc(aes)", SECRET[:15]), None, "enc.key"),
        (None, ENC, Algorithm("hmac(md5)", SECRET), "auth.name"),
        (None, ENC, Algorithm("hmac(sha1)", SECRET, 192), "auth.icv_bits"),
        (None, ENC, Algorithm("hmac(sha256)", SECRET, 100), "auth.icv_bits"),
        (None, ENC, Algorithm("digest_null", SECRET), "auth.key"),
    ],
)
def test_invalid_transforms_name_the_field(
    aead: Algorithm | None, enc: Algorithm | None, auth: Algorithm | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_transforms(aead, enc, auth)
    err = info.value
    assert err.field == field
    text = str(err) + repr(err) + " ".join(err.allowed)
    assert SECRET.hex() not in text and SECRET[:8].hex() not in text
    if field.endswith(".name"):
        assert err.allowed  # lists the known names
    if field == "aead.key":
        assert any("+32 bits" in a for a in err.allowed)


def test_resolved_repr_hides_keys() -> None:
    t = validate_transforms(Algorithm("rfc4106(gcm(aes))", SECRET + b"salt", 128), None, None)
    assert repr(t) == "ResolvedTransforms(cipher='rfc4106(gcm(aes))', auth=None, icv_len=16)"

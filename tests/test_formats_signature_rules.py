"""The RSA header signature (trust-file-formats.md sections 2 and 3), word for word.

Headers are RSA PKCS#1 v1.5 only (tag 10 = 0), hashed with the digest of tag 8 (1 = SHA-1,
3 = SHA-512); the reasons a signature cannot be checked end up in the phone's trace.
"""

from __future__ import annotations

from typing import cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from phone.errors import SignatureError
from phone.formats import Digest, SignedFile, Signer, build_signed, parse_signed
from phone.formats.signature import signer_public_key, verify_signature

CONFIG = b"<device><fullConfig>true</fullConfig></device>\n"


@pytest.fixture(scope="module")
def sgn(small_signer: Signer) -> SignedFile:
    return build_signed(CONFIG, small_signer, filename="SEP0011.cnf.xml.sgn", timestamp=1)


def _header_swap(signed: SignedFile, old: bytes, new: bytes) -> SignedFile:
    header = signed.header.encode()
    assert header.count(old) == 1
    return parse_signed(header.replace(old, new) + signed.payload)


def _reason(signed: SignedFile, certificate: x509.Certificate) -> str:
    with pytest.raises(SignatureError) as caught:
        signed.verify(certificate)
    return str(caught.value)


# --- the signer ------------------------------------------------------------------------------


def test_section3_signer_key_must_be_rsa(rsa_signer: Signer) -> None:
    # Section 3, ECDSA: no public evidence of any non-RSA header signature.
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TypeError) as caught:
        Signer(rsa_signer.certificate, key)  # type: ignore[arg-type]
    assert str(caught.value) == "Cisco signed headers are RSA only; the signer key must be RSA"


def test_signer_key_must_match_its_certificate(rsa_signer: Signer, small_signer: Signer) -> None:
    with pytest.raises(ValueError) as caught:
        Signer(rsa_signer.certificate, small_signer.key)
    assert str(caught.value) == "the signer's private key does not match its certificate"


def test_section2_signer_version_is_written_as_tag_28(small_signer: Signer) -> None:
    header = small_signer.sign_header(
        b"",
        version=(1, 2),
        digest=Digest.SHA1,
        filename="ITLFile.tlv",
        timestamp=1,
        signer_version=(1, 1),
    )
    assert header.signer_version == (1, 1)
    # Tag 28 SIGNER_VERSION: 2 bytes, major and minor (section 2, [C1]).
    assert header.encode().count(b"\x1c\x00\x02\x01\x01") == 1
    plain = small_signer.sign_header(
        b"", version=(1, 2), digest=Digest.SHA1, filename="ITLFile.tlv", timestamp=1
    )
    assert plain.signer_version is None


# --- why a signature cannot be checked ---------------------------------------------------------


def test_section2_unknown_digest_code_is_named(sgn: SignedFile, small_signer: Signer) -> None:
    # Tag 8: 1 = SHA-1, 2 = SHA-256 (never seen), 3 = SHA-512; 9 is no code at all.
    bad = _header_swap(sgn, b"\x08\x00\x01\x01", b"\x08\x00\x01\x09")
    assert _reason(bad, small_signer.certificate) == (
        "header names digest code 9 (unknown(9)); phones know only SHA-1 (1) and SHA-512 (3)"
    )


def test_section2_signature_algorithm_other_than_rsa_is_named(
    sgn: SignedFile, small_signer: Signer
) -> None:
    # Tag 10: 0 = RSA (PKCS#1 v1.5); no other value seen.
    bad = _header_swap(sgn, b"\x0a\x00\x01\x00", b"\x0a\x00\x01\x01")
    assert _reason(bad, small_signer.certificate) == (
        "header names signature algorithm 1; only RSA (0) exists"
    )


def test_section3_signer_certificate_with_a_non_rsa_key(sgn: SignedFile) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError) as caught:
        verify_signature(sgn.header, sgn.signed_data(), key.public_key())
    assert str(caught.value) == "the signer certificate's key is not RSA; headers are RSA-signed"


def test_section2_signature_size_must_match_the_key(sgn: SignedFile, rsa_signer: Signer) -> None:
    # A 128-byte signature (RSA-1024) checked against a 2048-bit certificate.
    assert _reason(sgn, rsa_signer.certificate) == (
        "signature is 128 bytes but the signer key is 2048-bit (256 bytes)"
    )


@pytest.mark.parametrize(("digest", "label"), [(Digest.SHA1, "SHA-1"), (Digest.SHA512, "SHA-512")])
def test_section3_signature_not_matching_names_the_digest(
    small_signer: Signer, digest: Digest, label: str
) -> None:
    signed = build_signed(CONFIG, small_signer, filename="a.sgn", timestamp=1, digest=digest)
    changed = SignedFile(signed.header, CONFIG + b" ")
    assert _reason(changed, small_signer.certificate) == (
        f"{label} RSA signature does not match the file's contents: the file was changed after "
        "signing, or signed by another key"
    )


class _UnloadableKeyCertificate:
    """A certificate whose key bytes do not decode (a record from an untrusted file)."""

    def public_key(self) -> object:
        raise ValueError("invalid key bytes")


def test_section3_signer_certificate_whose_key_cannot_be_loaded() -> None:
    certificate = cast(x509.Certificate, _UnloadableKeyCertificate())
    with pytest.raises(SignatureError) as caught:
        signer_public_key(certificate)
    assert str(caught.value) == (
        "the signer certificate's public key cannot be loaded (invalid key bytes)"
    )


def test_section3_signature_of_a_key_size_not_a_multiple_of_8_is_whole_bytes() -> None:
    # RSA signatures are as long as the modulus in whole bytes (RFC 8017 section 8.2.1: k octets,
    # k = ceil(bits / 8)), so a 2047-bit key signs 256 bytes, and that is not a size mismatch.
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric import rsa

    from phone.pki import self_signed

    key = rsa.generate_private_key(public_exponent=65537, key_size=2047)
    ident = self_signed("odd", now=datetime(2026, 1, 1, tzinfo=UTC), key=key)
    odd = Signer(ident.certificate, key)
    assert odd.modulus_bytes == 256
    signed = build_signed(CONFIG, odd, filename="SEP0011.cnf.xml.sgn", timestamp=1)
    assert len(signed.header.signature) == 256
    signed.verify(ident.certificate)

"""Signing and verifying the RSA PKCS#1 v1.5 signature of a Cisco signed header.

Coverage (trust-file-formats.md section 3, [C2]): the whole file minus the signature element
(its tag, length and value), hashed with the digest named in header tag 8.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from phone.errors import SignatureError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.frozen import Frozen
from phone.formats.header import (
    RSA_PKCS1,
    Digest,
    Header,
    HeaderSpec,
    digest_label,
    sign_header,
)
from phone.formats.tlv import Element

_set = object.__setattr__  # how a frozen value sets its own fields (phone.formats.frozen)


class Signer(Frozen):
    """A certificate and its RSA private key, as used to sign trust lists and ``.sgn`` files."""

    _fields = ("certificate", "key")
    __slots__ = _fields
    _compare = _fields
    _repr = _fields
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def __init__(self, certificate: x509.Certificate, key: rsa.RSAPrivateKey) -> None:
        _set(self, "certificate", certificate)
        _set(self, "key", key)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not isinstance(self.key, rsa.RSAPrivateKey):
            # No public evidence of any non-RSA header signature (section 3, ECDSA).
            raise TypeError("Cisco signed headers are RSA only; the signer key must be RSA")
        if self.certificate.public_key() != self.key.public_key():
            raise ValueError("the signer's private key does not match its certificate")

    @property
    def name(self) -> str:
        """Subject in CUCM's name-string form (header tag 4)."""
        return cucm_name(self.certificate.subject)

    @property
    def issuer(self) -> str:
        """Issuer in CUCM's name-string form (header tag 6)."""
        return cucm_name(self.certificate.issuer)

    @property
    def serial(self) -> bytes:
        """Serial as raw magnitude bytes (header tag 5)."""
        return serial_bytes(self.certificate.serial_number)

    @property
    def modulus_bytes(self) -> int:
        """Signature size in bytes."""
        return (self.key.key_size + 7) // 8

    def sign(self, data: bytes, digest: Digest) -> bytes:
        """RSA PKCS#1 v1.5 signature of ``data`` with ``digest``."""
        return self.key.sign(data, padding.PKCS1v15(), digest.algorithm())

    def sign_header(
        self,
        body: bytes,
        *,
        version: tuple[int, int],
        digest: Digest,
        filename: str,
        timestamp: int | None,
        signer_version: tuple[int, int] | None = None,
        extra: tuple[Element, ...] = (),
    ) -> Header:
        """A CUCM-ordered header naming this signer, signed over itself and ``body``."""
        spec = self.header_spec(
            version=version,
            digest=digest,
            filename=filename,
            timestamp=timestamp,
            signer_version=signer_version,
            extra=extra,
        )
        return sign_header(spec, body, lambda data: self.sign(data, digest))

    def header_spec(
        self,
        *,
        version: tuple[int, int],
        digest: Digest,
        filename: str,
        timestamp: int | None,
        signer_version: tuple[int, int] | None = None,
        extra: tuple[Element, ...] = (),
    ) -> HeaderSpec:
        """What layout_header needs for a header this signer signs."""
        return HeaderSpec(
            version=version,
            signer_name=self.name,
            signer_serial=self.serial,
            signer_issuer=self.issuer,
            digest=digest,
            modulus_bytes=self.modulus_bytes,
            filename=filename,
            timestamp=timestamp,
            signer_version=signer_version,
            extra=extra,
        )


def signer_public_key(certificate: x509.Certificate) -> PublicKeyTypes:
    """The public key of ``certificate``, as needed to check a header signature.

    cryptography loads a certificate's key lazily, so a certificate that parsed may still hold
    key bytes that do not decode or an algorithm it does not know (a record from an untrusted
    file, say).

    Raises:
        SignatureError: the key cannot be loaded, so no signature can be checked with it.
    """
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(
            f"the signer certificate's public key cannot be loaded ({exc})"
        ) from None


def verify_signature(header: Header, signed_data: bytes, public_key: PublicKeyTypes) -> None:
    """Check ``header.signature`` over ``signed_data`` with ``public_key``.

    Raises:
        SignatureError: with a reason a person can act on, when the signature does not verify or
            cannot be checked (unknown digest code, non-RSA key, size mismatch).
    """
    digest = header.digest
    if digest is None:
        raise SignatureError(
            f"header names digest code {header.digest_code} ({digest_label(header.digest_code)}); "
            "phones know only SHA-1 (1) and SHA-512 (3)"
        )
    if header.signature_algorithm != RSA_PKCS1:
        raise SignatureError(
            f"header names signature algorithm {header.signature_algorithm}; only RSA (0) exists"
        )
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureError("the signer certificate's key is not RSA; headers are RSA-signed")
    if len(header.signature) != (public_key.key_size + 7) // 8:  # a 2047-bit key: 256 bytes
        raise SignatureError(
            f"signature is {len(header.signature)} bytes but the signer key is "
            f"{public_key.key_size}-bit ({(public_key.key_size + 7) // 8} bytes)"
        )
    try:
        public_key.verify(header.signature, signed_data, padding.PKCS1v15(), digest.algorithm())
    except (InvalidSignature, ValueError):
        raise SignatureError(
            f"{digest.label} RSA signature does not match the file's contents: the file was "
            "changed after signing, or signed by another key"
        ) from None

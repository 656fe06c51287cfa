"""Phone firmware image headers (trust-file-formats.md section 10).

Two families exist:

* **Legacy** images (79xx ``.sbn``/``.loads``...): the section-2 TLV header, version 1.1, no
  timestamp, then the payload. Parsed by :func:`phone.formats.signed.parse_signed`.
* **Container** images (78xx/88xx, 11.x): a 336-byte little-endian header starting with the
  magic ``CD 34 12 AB``, carrying the SHA-256 of the payload at offset 20 ([C1], checked on four
  real files) and a 256-byte signature at offset 80.

What Cisco's image signatures cover is unknown (section 10a: a gcd attack recovered no modulus).
vphone therefore *emulates* them, documented in docs/firmware.md: a legacy image is signed like
any ``.sgn`` (file minus signature element), a container image signs its first 80 header bytes
(which include the payload hash) with RSA PKCS#1 v1.5 / SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from phone.errors import LengthError, SignatureError, TruncatedError, ValueFormatError
from phone.formats.signed import SignedFile, parse_signed

MAGIC = bytes.fromhex("cd3412ab")
CONTAINER_HEADER_LENGTH = 336
_FIXED = struct.Struct("<4sIIII32sI24s256s")  # 336 bytes: the layout of section 10b
_NAME_FIELD = 24
_SIGNED_PREFIX = 80  # emulated: the signature covers the header up to the signature field


@dataclass(frozen=True)
class ContainerImage:
    """A 78xx/88xx-style firmware file."""

    header_length: int
    reserved1: int
    payload_length: int
    reserved2: int
    payload_sha256: bytes
    name: str
    name_field: bytes
    signature: bytes
    extra_header: bytes
    payload: bytes

    def encode(self) -> bytes:
        """The file's bytes."""
        return self._prefix() + self.signature + self.extra_header + self.payload

    def _prefix(self) -> bytes:
        return _FIXED.pack(
            MAGIC,
            self.header_length,
            self.reserved1,
            self.payload_length,
            self.reserved2,
            self.payload_sha256,
            len(self.name.encode("latin-1")),
            self.name_field,
            bytes(256),
        )[:_SIGNED_PREFIX]

    def signed_data(self) -> bytes:
        """The header bytes the (emulated) signature covers."""
        return self._prefix()

    def hash_matches(self) -> bool:
        """Whether the SHA-256 at offset 20 matches the payload (Cisco's own check, [C1])."""
        return hmac.compare_digest(hashlib.sha256(self.payload).digest(), self.payload_sha256)

    def verify(self, public_key: rsa.RSAPublicKey) -> None:
        """Check the payload hash, then the emulated signature; raise SignatureError."""
        if not self.hash_matches():
            raise SignatureError(
                "payload SHA-256 does not match the hash in the image header (Checksum Error)"
            )
        try:
            public_key.verify(
                self.signature, self.signed_data(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (InvalidSignature, ValueError):
            raise SignatureError("image signature does not verify with this key") from None


def is_container(data: bytes) -> bool:
    """True when ``data`` starts with the container magic."""
    return data[:4] == MAGIC


def parse_container(data: bytes) -> ContainerImage:
    """Parse a container image.

    Raises:
        FormatError: (a subclass) naming the byte offset and what was expected there.
    """
    if len(data) < _FIXED.size:
        raise TruncatedError(
            f"file of {len(data)} bytes is shorter than the image header",
            offset=len(data),
            expected=f"{_FIXED.size} header bytes",
        )
    magic, hlen, res1, plen, res2, sha, name_len, name_field, signature = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise ValueFormatError(
            f"magic {magic.hex()}", offset=0, expected="cd3412ab (container image)"
        )
    if hlen < _FIXED.size:
        raise LengthError(
            f"header length {hlen} is shorter than the fixed header",
            offset=4,
            expected=f"at least {_FIXED.size}",
        )
    if hlen > len(data):
        raise TruncatedError(
            f"header length {hlen} is past the end of the file",
            offset=4,
            expected=f"<= {len(data)}",
        )
    if hlen + plen != len(data):
        raise LengthError(
            f"header length {hlen} + payload length {plen} != file size {len(data)}",
            offset=12,
            expected=f"a payload length of {len(data) - hlen}",
        )
    if name_len > _NAME_FIELD:
        raise LengthError(
            f"name length {name_len} exceeds the {_NAME_FIELD}-byte name field",
            offset=52,
            expected=f"at most {_NAME_FIELD}",
        )
    return ContainerImage(
        header_length=hlen,
        reserved1=res1,
        payload_length=plen,
        reserved2=res2,
        payload_sha256=sha,
        name=name_field[:name_len].decode("latin-1"),
        name_field=name_field,
        signature=signature,
        extra_header=bytes(data[_FIXED.size : hlen]),
        payload=bytes(data[hlen:]),
    )


def build_container(payload: bytes, name: str, key: rsa.RSAPrivateKey) -> ContainerImage:
    """Build and (emulated-)sign a container image named ``name``."""
    raw_name = name.encode("ascii")
    if len(raw_name) >= _NAME_FIELD:
        raise ValueError(f"image name {name!r} does not fit the {_NAME_FIELD}-byte field")
    if key.key_size != 2048:
        raise ValueError("the container's signature field holds exactly 256 bytes (RSA-2048)")
    unsigned = ContainerImage(
        header_length=CONTAINER_HEADER_LENGTH,
        reserved1=0,
        payload_length=len(payload),
        reserved2=0,
        payload_sha256=hashlib.sha256(payload).digest(),
        name=name,
        name_field=raw_name.ljust(_NAME_FIELD, b"\0"),
        signature=bytes(256),
        extra_header=b"",
        payload=payload,
    )
    signature = key.sign(unsigned.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    return ContainerImage(**{**unsigned.__dict__, "signature": signature})


Image = SignedFile | ContainerImage


def parse_image(data: bytes) -> Image:
    """Parse either image family, chosen by the magic bytes."""
    if is_container(data):
        return parse_container(data)
    return parse_signed(data)

"""Signed files (``.sgn``) and encrypted signed configs (``.enc.sgn``).

A ``.sgn`` file is the section-2 header followed by the original file's bytes, with no records
(trust-file-formats.md section 7). An ``.enc.sgn`` adds an encryption block (tags 16-27) after the
timestamp and carries the config encrypted with AES-128-CBC under a key wrapped with the phone's
RSA public key (section 8, [C1]: a single source, certutils ``enccnf``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from phone.errors import DecryptionError, StructureError
from phone.formats.header import (
    Digest,
    Header,
    Tag,
    layout_header,
    parse_header,
)
from phone.formats.signature import Signer, signer_public_key, verify_signature
from phone.formats.tlv import container, cstring, encode_all, leaf, u8, u16, u32

SGN_VERSION = (1, 0)  # certutils since Oct 2020, probably from observation [G]
ENC_VERSION = (2, 0)  # [C1]
_CR = b"\r"  # the plaintext is padded with carriage returns before encryption [C1]


@dataclass(frozen=True)
class SignedFile:
    """A parsed or built ``.sgn`` / ``.enc.sgn`` / legacy signed firmware file."""

    header: Header
    payload: bytes

    @property
    def encrypted(self) -> bool:
        """True when the header carries an encryption block (an ``.enc.sgn``)."""
        return self.header.encryption is not None

    def encode(self) -> bytes:
        """The file's bytes."""
        return self.header.encode() + self.payload

    def signed_data(self) -> bytes:
        """The bytes the signature covers: header minus the signature element, plus payload."""
        return self.header.encode_unsigned() + self.payload

    def verify(self, certificate: x509.Certificate) -> None:
        """Verify the signature with ``certificate``'s key; raise SignatureError."""
        verify_signature(self.header, self.signed_data(), signer_public_key(certificate))


def parse_signed(data: bytes) -> SignedFile:
    """Parse a ``.sgn`` (or ``.enc.sgn``, or legacy signed firmware) file.

    Raises:
        FormatError: (a subclass) naming the byte offset and what was expected there.
    """
    header = parse_header(data)
    return SignedFile(header, bytes(data[header.length :]))


def strip_signature(data: bytes) -> bytes:
    """The original file inside a ``.sgn``: everything after the header (section 7, [C2])."""
    return parse_signed(data).payload


def build_signed(
    payload: bytes,
    signer: Signer,
    *,
    filename: str,
    timestamp: int | None,
    digest: Digest = Digest.SHA1,
    version: tuple[int, int] = SGN_VERSION,
) -> SignedFile:
    """Sign ``payload`` into a ``.sgn`` file named ``filename`` (the name as served)."""
    header = signer.sign_header(
        payload, version=version, digest=digest, filename=filename, timestamp=timestamp
    )
    return SignedFile(header, payload)


def encode_signed(
    payload: bytes,
    signer: Signer,
    *,
    filename: str,
    timestamp: int | None,
    digest: Digest = Digest.SHA1,
    version: tuple[int, int] = SGN_VERSION,
) -> bytes:
    """The bytes of ``build_signed(payload, signer, ...).encode()``, made from a template.

    A TFTP node signs one config per phone with one key (issue 17): those headers differ only
    in the file name, the timestamp and the signature, so the header is laid out once per
    signer, version, digest and size of the name and of the timestamp, and the three values are
    written into it. The layout, and so every byte, is layout_header's; a name that is not
    ASCII or a timestamp out of range raises as build_signed does. tests/test_signed_template.py
    compares the two.
    """
    name = cstring(filename)
    stamp = b"" if timestamp is None else u32(timestamp)
    # Keyed by the signer object's id (hashing a Signer hashes its certificate's DER, on every
    # file). The entry holds the signer, so no other object can have that id while it lives.
    key = (id(signer), version, digest, len(stamp), len(name))
    entry = _TEMPLATES.get(key)
    if entry is None:
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        entry = (signer, _template(signer, version, digest, filename, timestamp))
        _TEMPLATES[key] = entry
    head, prefix, between, tail, cut = entry[1]
    # The signature covers the header without the signature element (section 3), then the
    # payload; RSA PKCS#1 v1.5 signatures are exactly the modulus's length, the placeholder's.
    rest = (between, name, tail[:cut], stamp, tail[cut + len(stamp) :])
    signature = signer.sign(b"".join((head, *rest, payload)), digest)
    return b"".join((head, prefix, signature, *rest, payload))


# The templates a process keeps: one per TFTP node and file-name length in use.
_MAX_TEMPLATES = 256
_Template = tuple[bytes, bytes, bytes, bytes, int]
_TEMPLATES: dict[tuple[object, ...], tuple[Signer, _Template]] = {}


def _template(
    signer: Signer,
    version: tuple[int, int],
    digest: Digest,
    filename: str,
    timestamp: int | None,
) -> _Template:
    """The header of the first file of its kind, cut around its values for encode_signed: (the
    bytes before the signature element, the element's tag and length, from the signature's end
    to the file name's value, from the name's end to the header's end, where the timestamp's
    value starts in that last part). Elements in CUCM order: ..., signature, file name,
    timestamp, padding (layout_header); the next files write their own name and timestamp
    over this one's."""
    spec = signer.header_spec(
        version=version, digest=digest, filename=filename, timestamp=timestamp
    )
    elements = layout_header(spec, bytes(spec.modulus_bytes))
    raw = encode_all(elements)
    spans: dict[int, tuple[int, int]] = {}
    pos = 0
    for element in elements:
        if not element.single_byte:
            spans.setdefault(element.tag, (pos, pos + element.size))
        pos += element.size
    signature_start, signature_end = spans[Tag.SIGNATURE]
    name_start, name_end = spans[Tag.FILENAME]
    # The timestamp element follows the name; its value starts after its tag and length. With
    # no timestamp nothing is written there, so the cut may fall anywhere.
    stamp_start = spans.get(Tag.TIMESTAMP, (name_end, name_end))[0]
    return (
        raw[:signature_start],
        raw[signature_start : signature_end - spec.modulus_bytes],
        raw[signature_end : name_start + 3],
        raw[name_end:],
        stamp_start + 3 - name_end,
    )


def build_encrypted(
    plaintext: bytes,
    signer: Signer,
    recipient: rsa.RSAPublicKey,
    *,
    filename: str,
    timestamp: int,
    digest: Digest = Digest.SHA1,
    aes_key: bytes,
    iv: bytes,
) -> SignedFile:
    """Encrypt ``plaintext`` to ``recipient`` and sign the result into an ``.enc.sgn``.

    ``aes_key`` and ``iv`` (16 random bytes each) are parameters so the core stays
    deterministic; callers at the edge draw them from ``os.urandom``.
    """
    if len(aes_key) != 16 or len(iv) != 16:
        raise ValueError("AES-128-CBC needs a 16-byte key and a 16-byte IV")
    pad = (-len(plaintext)) % 16
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(plaintext + _CR * pad) + encryptor.finalize()
    wrapped = recipient.encrypt(aes_key, padding.PKCS1v15())
    block = (
        container(
            Tag.ENCRYPTION_INFO,
            (
                container(
                    Tag.IV_INFO,
                    (
                        leaf(Tag.IV_UNKNOWN, u8(0)),
                        leaf(Tag.IV, iv),
                        leaf(Tag.PADDING_COUNT, u16(pad)),
                    ),
                ),
                container(
                    Tag.KEY_INFO,
                    (
                        leaf(Tag.KEY_UNKNOWN, u8(0)),
                        leaf(Tag.KEY_SIZE, u16(recipient.key_size)),
                        leaf(Tag.KEY_ALGORITHM, u8(1)),
                        leaf(Tag.ENCRYPTED_KEY, wrapped),
                    ),
                ),
            ),
        ),
        leaf(Tag.PLAINTEXT_DIGEST_ALGORITHM, u8(digest)),
        leaf(Tag.PLAINTEXT_DIGEST, _digest(digest, plaintext)),
    )
    header = signer.sign_header(
        ciphertext,
        version=ENC_VERSION,
        digest=digest,
        filename=filename,
        timestamp=timestamp,
        extra=block,
    )
    return SignedFile(header, ciphertext)


def _digest(digest: Digest, data: bytes) -> bytes:
    h = hashes.Hash(digest.algorithm())
    h.update(data)
    return h.finalize()


def decrypt(signed: SignedFile, private_key: rsa.RSAPrivateKey) -> bytes:
    """Decrypt an ``.enc.sgn`` payload with the phone's private key and check its digest.

    The signature is *not* checked here: callers verify it first, as a phone does.

    Raises:
        StructureError: the file has no encryption block.
        DecryptionError: wrong key, bad padding count, or plaintext digest mismatch.
    """
    info = signed.header.encryption
    if info is None:
        raise StructureError(
            "file has no encryption block",
            offset=0,
            expected="an .enc.sgn header with tags 16-27",
        )
    # PKCS#1 v1.5 with the wrong key: older OpenSSL raises, OpenSSL 3.2+ answers with random
    # bytes of a random length (implicit rejection, against Bleichenbacher's oracle). Both mean
    # the key was wrapped for another certificate, so both say so.
    try:
        aes_key = private_key.decrypt(info.encrypted_key, padding.PKCS1v15())
    except ValueError:
        aes_key = b""
    if len(aes_key) != 16:
        raise DecryptionError(
            "the config key is wrapped for another certificate: this phone's key cannot "
            "unwrap it to a 16-byte AES key (re-enroll the phone's LSC or fix the device's "
            "encryption key)"
        )
    if len(signed.payload) % 16:
        raise DecryptionError(
            f"encrypted payload of {len(signed.payload)} bytes is not a whole number of blocks"
        )
    if info.padding_count > min(15, len(signed.payload)):
        raise DecryptionError(f"padding count {info.padding_count} is impossible")
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(info.iv)).decryptor()
    padded = decryptor.update(signed.payload) + decryptor.finalize()
    plaintext = padded[: len(padded) - info.padding_count]
    try:
        expected = _digest(Digest(info.digest_code), plaintext)
    except ValueError:
        raise DecryptionError(f"unknown plaintext digest code {info.digest_code}") from None
    if not hmac.compare_digest(expected, info.plaintext_digest):
        raise DecryptionError("decrypted config does not match its digest: wrong key or tampered")
    return plaintext


def md5_hex(data: bytes) -> str:
    """Lowercase hex MD5 (the ``certHash`` of the stub config, section 8)."""
    return hashlib.md5(data).hexdigest()

"""``.sgn`` and ``.enc.sgn`` files (trust-file-formats.md sections 3, 7 and 8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import FORMATS_TIMESTAMP
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.errors import DecryptionError, FormatError, SignatureError, StructureError
from phone.formats import (
    Digest,
    SignedFile,
    Signer,
    build_encrypted,
    build_signed,
    decrypt,
    parse_signed,
    strip_signature,
)
from phone.formats.header import parse_header
from phone.formats.signed import ENC_VERSION, SGN_VERSION
from phone.formats.tlv import Element, container, encode_all, leaf, u16
from phone.formats.views import element_layout, signed_view

Verify = Callable[[bytes, x509.Certificate], None]

CONFIG = b'<?xml version="1.0"?>\n<device><fullConfig>true</fullConfig></device>\n'
AES_KEY = bytes(range(16))
IV = bytes(range(16, 32))


def _flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= mask
    return bytes(out)


@pytest.fixture(scope="module")
def small_sgn(small_signer: Signer) -> SignedFile:
    """A small .sgn signed with RSA-1024, cheap enough to tamper with at every byte."""
    return build_signed(
        CONFIG, small_signer, filename="SEP001122334455.cnf.xml.sgn", timestamp=FORMATS_TIMESTAMP
    )


@pytest.fixture(scope="module")
def enc_sgn(rsa_signer: Signer, phone_key: rsa.RSAPrivateKey) -> SignedFile:
    """An .enc.sgn of ``CONFIG`` for the phone's key, signed by the SAST signer."""
    return build_encrypted(
        CONFIG,
        rsa_signer,
        phone_key.public_key(),
        filename="SEP001122334455.cnf.xml.enc.sgn",
        timestamp=FORMATS_TIMESTAMP,
        aes_key=AES_KEY,
        iv=IV,
    )


# --- .sgn ------------------------------------------------------------------------------------


def test_sgn_layout_and_round_trip(small_sgn: SignedFile, small_signer: Signer) -> None:
    data = small_sgn.encode()
    header = small_sgn.header
    assert header.version == SGN_VERSION == (1, 0)
    pads = sum(1 for e in header.elements if e.single_byte)
    assert element_layout(header.elements) == "1,2,3{4,5,6},7{8,9{10,11}},12,14,15" + ",pad" * pads
    assert header.length % 4 == 0
    assert header.filename == "SEP001122334455.cnf.xml.sgn"
    assert header.modulus_index == 1 and len(header.signature) == 128
    assert data[header.length :] == CONFIG
    parsed = parse_signed(data)
    assert parsed == small_sgn
    assert parsed.encode() == data
    assert not parsed.encrypted
    parsed.verify(small_signer.certificate)


def test_sgn_verifies_independently(
    small_sgn: SignedFile, small_signer: Signer, independent_verify: Verify
) -> None:
    independent_verify(small_sgn.encode(), small_signer.certificate)


def test_strip_returns_the_original_file(small_sgn: SignedFile) -> None:
    assert strip_signature(small_sgn.encode()) == CONFIG


def test_every_single_byte_flip_fails(small_sgn: SignedFile, small_signer: Signer) -> None:
    # All of the file, covered region and signature alike: every flip either breaks the parse
    # (FormatError) or the signature (SignatureError). Never a pass, never another exception.
    data = small_sgn.encode()
    outcomes = {"format": 0, "signature": 0}
    for at in range(len(data)):
        for mask in (0x01, 0x80):
            try:
                parse_signed(_flip(data, at, mask)).verify(small_signer.certificate)
            except FormatError:
                outcomes["format"] += 1
            except SignatureError:
                outcomes["signature"] += 1
            else:
                pytest.fail(f"flip 0x{mask:02x} at byte {at} still verifies")
    assert sum(outcomes.values()) == 2 * len(data)
    assert outcomes["signature"] > len(data)  # most flips parse and are caught by the signature


def test_flipped_signature_bytes_fail(small_sgn: SignedFile, small_signer: Signer) -> None:
    data = small_sgn.encode()
    start = small_sgn.header.offsets[12] + 3
    for at in range(start, start + 128):
        with pytest.raises(SignatureError, match="does not match"):
            parse_signed(_flip(data, at)).verify(small_signer.certificate)


def test_sgn_wrong_certificate(small_sgn: SignedFile, stranger_cert: x509.Certificate) -> None:
    with pytest.raises(SignatureError, match="128 bytes but the signer key is 2048-bit"):
        small_sgn.verify(stranger_cert)


def test_sgn_wrong_certificate_of_the_same_size(
    rsa_signer: Signer, stranger_cert: x509.Certificate
) -> None:
    signed = build_signed(CONFIG, rsa_signer, filename="a.sgn", timestamp=FORMATS_TIMESTAMP)
    signed.verify(rsa_signer.certificate)
    with pytest.raises(SignatureError, match="does not match"):
        signed.verify(stranger_cert)


def test_sgn_sha512(rsa_signer: Signer, independent_verify: Verify) -> None:
    signed = build_signed(
        CONFIG, rsa_signer, filename="x.sgn", timestamp=None, digest=Digest.SHA512
    )
    data = signed.encode()
    assert parse_signed(data).header.digest is Digest.SHA512
    assert parse_signed(data).header.timestamp is None
    signed.verify(rsa_signer.certificate)
    independent_verify(data, rsa_signer.certificate)
    with pytest.raises(InvalidSignature):
        independent_verify(_flip(data, len(data) - 1), rsa_signer.certificate)


def test_empty_payload(small_signer: Signer) -> None:
    signed = build_signed(b"", small_signer, filename="empty.sgn", timestamp=0)
    parsed = parse_signed(signed.encode())
    assert parsed.payload == b""
    parsed.verify(small_signer.certificate)


def test_unknown_digest_code_is_a_signature_error(
    small_sgn: SignedFile, small_signer: Signer
) -> None:
    data = small_sgn.encode()
    at = data.index(b"\x08\x00\x01\x01") + 3
    sha256 = parse_signed(data[:at] + b"\x02" + data[at + 1 :])  # code 2: never seen in use
    with pytest.raises(SignatureError, match="SHA-256"):
        sha256.verify(small_signer.certificate)
    unknown = parse_signed(data[:at] + b"\x09" + data[at + 1 :])
    with pytest.raises(SignatureError, match="digest code 9"):
        unknown.verify(small_signer.certificate)


def test_signed_view(small_sgn: SignedFile) -> None:
    view = signed_view(small_sgn)
    assert view["header"]["version"] == "1.0"
    assert view["header"]["digest"] == "SHA-1"
    assert view["encrypted"] is False
    assert view["payload"]["length"] == len(CONFIG)


# --- .enc.sgn --------------------------------------------------------------------------------


def test_enc_sgn_layout(enc_sgn: SignedFile, phone_key: rsa.RSAPrivateKey) -> None:
    header = enc_sgn.header
    assert header.version == ENC_VERSION == (2, 0)
    assert enc_sgn.encrypted
    layout = element_layout(header.elements)
    assert layout.startswith(
        "1,2,3{4,5,6},7{8,9{10,11}},12,14,15,16{17{18,19,20},21{22,23,24,25}},26,27"
    )
    info = header.encryption
    assert info is not None
    assert info.iv == IV
    assert info.padding_count == (-len(CONFIG)) % 16
    assert info.key_bits == 2048
    assert len(info.encrypted_key) == 256
    assert len(enc_sgn.payload) % 16 == 0
    assert CONFIG not in enc_sgn.encode()
    assert header.length % 4 == 0


def test_enc_sgn_round_trip(
    enc_sgn: SignedFile,
    rsa_signer: Signer,
    phone_key: rsa.RSAPrivateKey,
    independent_verify: Verify,
) -> None:
    data = enc_sgn.encode()
    parsed = parse_signed(data)
    assert parsed.encode() == data
    parsed.verify(rsa_signer.certificate)
    independent_verify(data, rsa_signer.certificate)
    assert decrypt(parsed, phone_key) == CONFIG


def test_enc_sgn_block_aligned_plaintext_has_no_padding(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    plaintext = b"x" * 64
    signed = build_encrypted(
        plaintext,
        rsa_signer,
        phone_key.public_key(),
        filename="a.enc.sgn",
        timestamp=1,
        aes_key=AES_KEY,
        iv=IV,
    )
    assert signed.header.encryption is not None
    assert signed.header.encryption.padding_count == 0
    assert decrypt(parse_signed(signed.encode()), phone_key) == plaintext


def test_enc_sgn_wrong_key(enc_sgn: SignedFile, rsa_signer: Signer) -> None:
    with pytest.raises(DecryptionError):
        decrypt(enc_sgn, rsa_signer.key)  # the signer's key, not the phone's


def test_enc_sgn_tampered_ciphertext(
    enc_sgn: SignedFile, rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    data = enc_sgn.encode()
    for at in (enc_sgn.header.length, len(data) - 17, len(data) - 1):
        bad = parse_signed(_flip(data, at))
        with pytest.raises(SignatureError):
            bad.verify(rsa_signer.certificate)
        with pytest.raises(DecryptionError):
            decrypt(bad, phone_key)


def test_enc_sgn_tampered_wrapped_key(
    enc_sgn: SignedFile, rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    info = enc_sgn.header.encryption
    assert info is not None
    data = enc_sgn.encode()
    at = data.index(info.encrypted_key) + 100
    bad = parse_signed(_flip(data, at))
    with pytest.raises(SignatureError):
        bad.verify(rsa_signer.certificate)
    with pytest.raises(DecryptionError):
        decrypt(bad, phone_key)


def test_enc_sgn_tampered_digest(enc_sgn: SignedFile, phone_key: rsa.RSAPrivateKey) -> None:
    info = enc_sgn.header.encryption
    assert info is not None
    data = enc_sgn.encode()
    at = data.index(info.plaintext_digest)
    with pytest.raises(DecryptionError, match="does not match its digest"):
        decrypt(parse_signed(_flip(data, at)), phone_key)


def test_enc_sgn_impossible_padding_count(
    enc_sgn: SignedFile, phone_key: rsa.RSAPrivateKey
) -> None:
    data = enc_sgn.encode()
    pad = (-len(CONFIG)) % 16
    marker = b"\x14\x00\x02" + pad.to_bytes(2, "big")
    assert data.count(marker) == 1
    bad = data.replace(marker, b"\x14\x00\x02\x00\x10")
    with pytest.raises(DecryptionError, match="padding count 16"):
        decrypt(parse_signed(bad), phone_key)


def test_decrypt_plain_sgn_is_a_structure_error(
    small_sgn: SignedFile, phone_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(StructureError, match="no encryption block"):
        decrypt(small_sgn, phone_key)


def test_build_encrypted_needs_16_byte_key_and_iv(
    rsa_signer: Signer, phone_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(ValueError, match="16-byte"):
        build_encrypted(
            CONFIG,
            rsa_signer,
            phone_key.public_key(),
            filename="a",
            timestamp=1,
            aes_key=b"short",
            iv=IV,
        )


# --- the encryption block of an .enc.sgn header (trust-file-formats.md section 5) --------------


def _edited(
    elements: tuple[Element, ...], path: tuple[int, ...], new: Element | None
) -> tuple[Element, ...]:
    """``elements`` with the element at tag ``path`` replaced by ``new`` (None: removed)."""
    out: list[Element] = []
    for element in elements:
        if element.tag != path[0]:
            out.append(element)
        elif len(path) == 1:
            if new is not None:
                out.append(new)
        else:
            assert element.children is not None
            out.append(container(element.tag, _edited(element.children, path[1:], new)))
    return tuple(out)


def _header_bytes(elements: tuple[Element, ...]) -> bytes:
    """Encode header elements with tag 2 set to their total size."""
    data = bytearray(encode_all(elements))
    at = 0
    for element in elements:
        if element.tag == 2 and not element.single_byte:
            data[at + 3 : at + 5] = u16(len(data))
            break
        at += element.size
    return bytes(data)


def _offset_of(elements: tuple[Element, ...], tag: int) -> int:
    at = 0
    for element in elements:
        if element.tag == tag:
            return at
        at += element.size
    raise AssertionError(f"no tag {tag}")


# (tag path, replacement, problem, expected); None removes the element. Tags per section 5:
# 16 encryption info {17 IV info {19 IV, 20 padding count}, 21 key info {23 key size,
# 24 key algorithm, 25 encrypted key}}, then 26 plaintext digest algorithm, 27 plaintext digest.
# (Whether a tag is a container is the parser's fixed table HEADER_CONTAINERS, so a container
# in the wrong shape cannot come from bytes; header._children asserts it.)
ENC_DAMAGE = [
    ((16, 17), None, "no IV info (tag 17)", "IV info"),
    ((16, 21), None, "no key info (tag 21)", "key info"),
    ((16, 17, 19), None, "no IV (tag 19)", "IV"),
    ((16, 17, 19), leaf(19, bytes(15)), "IV (tag 19) holds 15 bytes", "16 bytes"),
    ((16, 17, 20), None, "no padding count (tag 20)", "padding count"),
    ((16, 17, 20), leaf(20, b"\x01"), "padding count (tag 20) holds 1 bytes", "2 bytes"),
    ((16, 21, 23), None, "no key size (tag 23)", "key size"),
    ((16, 21, 23), leaf(23, b"\x00\x80\x00"), "key size (tag 23) holds 3 bytes", "2 bytes"),
    ((16, 21, 24), None, "no key algorithm (tag 24)", "key algorithm"),
    ((16, 21, 24), leaf(24, b"\x00\x01"), "key algorithm (tag 24) holds 2 bytes", "1 bytes"),
    ((16, 21, 25), None, "no encrypted key (tag 25)", "encrypted key"),
    ((26,), None, "no plaintext digest algorithm (tag 26)", "plaintext digest algorithm"),
    ((27,), None, "no plaintext digest (tag 27)", "plaintext digest"),
]


@pytest.mark.parametrize(("path", "new", "problem", "expected"), ENC_DAMAGE)
def test_enc_header_damage_is_named_at_the_encryption_block(
    enc_sgn: SignedFile,
    path: tuple[int, ...],
    new: Element | None,
    problem: str,
    expected: str,
) -> None:
    elements = enc_sgn.header.elements
    at = _offset_of(elements, 16)  # every problem is reported at the encryption info element
    with pytest.raises(FormatError) as caught:
        parse_header(_header_bytes(_edited(elements, path, new)))
    assert str(caught.value) == f"at byte {at}: {problem} (expected {expected})"
    assert caught.value.offset == at


def test_enc_header_bad_digest_algorithm_is_named_at_its_own_element(enc_sgn: SignedFile) -> None:
    elements = _edited(enc_sgn.header.elements, (26,), leaf(26, b"\x01\x01"))
    at = _offset_of(elements, 26)
    with pytest.raises(FormatError) as caught:
        parse_header(_header_bytes(elements))
    assert str(caught.value) == (
        f"at byte {at}: plaintext digest algorithm (tag 26) holds 2 bytes (expected 1 bytes)"
    )


def test_enc_header_fields_read_big_endian(enc_sgn: SignedFile) -> None:
    """IV, padding count (u16), key size (u16: the phone key's RSA-2048 bits)."""
    info = parse_header(enc_sgn.encode()).encryption
    assert info is not None
    assert info.iv == IV
    assert info.key_bits == 2048
    assert len(CONFIG) == 69
    assert info.padding_count == 11  # 69 bytes + 11 = 80, a multiple of the AES block (16)
    elements = _edited(enc_sgn.header.elements, (16, 21, 23), leaf(23, b"\x01\x00"))
    elements = _edited(elements, (16, 17, 20), leaf(20, b"\x00\x07"))
    info = parse_header(_header_bytes(elements)).encryption
    assert info is not None
    assert (info.key_bits, info.padding_count) == (256, 7)

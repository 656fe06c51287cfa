"""Container firmware images field by field (trust-file-formats.md section 10b).

The expected bytes come from the section 10b table (little-endian fields: magic at 0, header
length at 4, 0 at 8, payload length at 12, 0 at 16, SHA-256 of the payload at 20, name length at
52, the NUL-padded name at 56..80, the signature at 80..336), never from the codec's constants.
A refused file names the byte offset of the field at fault; that offset and text are what
``vphone image show`` prints, so they are compared whole.
"""

from __future__ import annotations

import hashlib

import pytest

from phone.errors import LengthError, SignatureError, TruncatedError, ValueFormatError
from phone.formats import ContainerImage, Signer, build_container, parse_container

PAYLOAD = b"[CISCO-ID]\nsip78xx.99-9-9-99\n"
NAME = "sip78xx.99-9-9-99.loads"  # 23 bytes: the longest name that leaves a NUL in the field


def _le32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def _container_bytes(
    *,
    magic: bytes = bytes.fromhex("cd3412ab"),
    header_length: int = 336,
    payload_length: int | None = None,
    name: bytes = b"x.loads",
    name_length: int | None = None,
    payload: bytes = PAYLOAD,
) -> bytes:
    """A container image laid out by hand from the section 10b table."""
    header = (
        magic
        + _le32(header_length)
        + _le32(0)
        + _le32(len(payload) if payload_length is None else payload_length)
        + _le32(0)
        + hashlib.sha256(payload).digest()
        + _le32(len(name) if name_length is None else name_length)
        + name.ljust(24, b"\0")
        + bytes(256)
    )
    assert len(header) == 336
    return header + bytes(max(0, header_length - 336)) + payload


@pytest.fixture(scope="module")
def built(rsa_signer: Signer) -> ContainerImage:
    return build_container(PAYLOAD, NAME, rsa_signer.key)


# --- what the builder writes ----------------------------------------------------------------


def test_10b_built_header_fields_are_the_table_values(built: ContainerImage) -> None:
    data = built.encode()
    assert data[0:4] == bytes.fromhex("cd3412ab")
    assert data[4:8] == bytes.fromhex("50010000")  # 0x150 = 336, little-endian
    assert data[8:12] == bytes(4)  # section 10b: offset 8 holds 0
    assert data[12:16] == len(PAYLOAD).to_bytes(4, "little")
    assert data[16:20] == bytes(4)  # section 10b: offset 16 holds 0
    assert data[20:52] == hashlib.sha256(PAYLOAD).digest()
    assert data[52:56] == bytes([23, 0, 0, 0])
    # The name is NUL-padded up to offset 80 (section 10b), not space-padded.
    assert data[56:80] == b"sip78xx.99-9-9-99.loads\0"
    assert len(data[80:336]) == 256 and data[80:336] != bytes(256)
    assert data[336:] == PAYLOAD


def test_10b_built_header_equals_a_hand_laid_header_before_the_signature(
    built: ContainerImage,
) -> None:
    expected = _container_bytes(name=NAME.encode())
    assert built.encode()[:80] == expected[:80]
    assert built.signed_data() == expected[:80]  # emulated coverage: the first 80 bytes
    assert built.reserved1 == 0 and built.reserved2 == 0


def test_10b_builder_refuses_a_key_that_does_not_fill_256_signature_bytes(
    small_signer: Signer,
) -> None:
    with pytest.raises(ValueError) as caught:
        build_container(PAYLOAD, NAME, small_signer.key)
    assert str(caught.value) == "the container's signature field holds exactly 256 bytes (RSA-2048)"


# --- what the parser refuses, and where -----------------------------------------------------


def test_10b_wrong_magic_is_refused_at_byte_0() -> None:
    data = _container_bytes(magic=bytes.fromhex("abcd1234"))
    with pytest.raises(ValueFormatError) as caught:
        parse_container(data)
    assert caught.value.offset == 0
    assert caught.value.expected == "cd3412ab (container image)"
    assert str(caught.value) == ("at byte 0: magic abcd1234 (expected cd3412ab (container image))")


def test_10b_header_length_below_336_is_refused_at_byte_4() -> None:
    data = _container_bytes(header_length=335, payload_length=len(PAYLOAD) + 1)
    with pytest.raises(LengthError) as caught:
        parse_container(data)
    assert caught.value.offset == 4
    assert str(caught.value) == (
        "at byte 4: header length 335 is shorter than the fixed header (expected at least 336)"
    )


def test_10b_header_length_past_the_file_is_refused_at_byte_4() -> None:
    data = _container_bytes(payload=b"")
    data = data[:4] + _le32(400) + data[8:]
    with pytest.raises(TruncatedError) as caught:
        parse_container(data)
    assert caught.value.offset == 4
    assert str(caught.value) == (
        "at byte 4: header length 400 is past the end of the file (expected <= 336)"
    )


def test_10b_payload_length_that_misses_the_file_size_is_refused_at_byte_12() -> None:
    payload = bytes(10)
    data = _container_bytes(payload=payload, payload_length=11)
    with pytest.raises(LengthError) as caught:
        parse_container(data)
    assert caught.value.offset == 12
    # header length + payload length = file size (section 10b): 346 - 336 = 10.
    assert caught.value.expected == "a payload length of 10"
    assert str(caught.value) == (
        "at byte 12: header length 336 + payload length 11 != file size 346"
        " (expected a payload length of 10)"
    )


def test_10b_name_length_past_the_24_byte_field_is_refused_at_byte_52() -> None:
    data = _container_bytes(name=b"n" * 24, name_length=25)
    with pytest.raises(LengthError) as caught:
        parse_container(data)
    assert caught.value.offset == 52
    assert str(caught.value) == (
        "at byte 52: name length 25 exceeds the 24-byte name field (expected at most 24)"
    )


def test_10b_a_name_filling_all_24_bytes_is_read_whole() -> None:
    # Offsets 56..80 hold the name: 24 bytes with no NUL left is still a name of 24 bytes.
    image = parse_container(_container_bytes(name=b"abcdefghijklmnopqrstuvwx"))
    assert image.name == "abcdefghijklmnopqrstuvwx"
    assert image.hash_matches()


def test_10b_name_bytes_above_ascii_are_read_one_byte_one_character() -> None:
    image = parse_container(_container_bytes(name=b"caf\xe9.loads"))
    assert image.name == "caf\u00e9.loads"


# --- verification reasons (shown by `vphone image show --cert`) ------------------------------


def test_item39_payload_that_misses_its_hash_reads_checksum_error(
    built: ContainerImage, rsa_signer: Signer
) -> None:
    # item 39 (phone-behaviour.md): "Checksum Error" is the phone's status for this image.
    data = bytearray(built.encode())
    data[-1] ^= 0x01
    with pytest.raises(SignatureError) as caught:
        parse_container(bytes(data)).verify(rsa_signer.key.public_key())
    assert str(caught.value) == (
        "payload SHA-256 does not match the hash in the image header (Checksum Error)"
    )


def test_item37_image_signed_by_another_key_is_refused_with_its_reason(
    built: ContainerImage, small_signer: Signer
) -> None:
    with pytest.raises(SignatureError) as caught:
        built.verify(small_signer.key.public_key())
    assert str(caught.value) == "image signature does not verify with this key"

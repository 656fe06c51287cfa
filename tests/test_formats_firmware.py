"""Phone firmware image headers (trust-file-formats.md section 10)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from samples import CONTAINER_LOADS, LEGACY_LOADS, sample_bytes

from phone.errors import LengthError, SignatureError, TruncatedError, ValueFormatError
from phone.formats import (
    ContainerImage,
    SignedFile,
    Signer,
    build_container,
    build_signed,
    parse_container,
    parse_image,
    parse_signed,
)
from phone.formats.firmware import CONTAINER_HEADER_LENGTH, MAGIC, is_container
from phone.formats.views import container_view, element_layout

PAYLOAD = b"[CISCO-ID]\nsip78xx.99-9-9-99\n" * 20


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.fixture(scope="module")
def container(rsa_signer: Signer) -> ContainerImage:
    """A container image signed (emulated) with the SAST key."""
    return build_container(PAYLOAD, "sip78xx.99-9-9-99.loads", rsa_signer.key)


# --- legacy images (10a) ---------------------------------------------------------------------


def test_legacy_sample() -> None:
    data = sample_bytes(LEGACY_LOADS)
    image = parse_image(data)
    assert isinstance(image, SignedFile)
    header = image.header
    assert header.version == (1, 1)
    assert header.timestamp is None
    assert header.filename == "term41.default.loads"
    assert header.signer_name == "CN=someSigner;OU=someOrgUnit;O=someOrg"
    assert header.signer_issuer == "CN=someCA;OU=someOrgUnit;O=someOrg"
    assert header.serial_hex == "1234567890abcdef"
    assert header.length == 408
    assert header.modulus_index == 2 and len(header.signature) == 256
    assert element_layout(header.elements) == "1,2,3{4,5,6},7{8,9{10,11}},12,14,pad,pad,pad"
    assert image.encode() == data
    assert len(image.payload) == len(data) - 408


def test_legacy_style_image_signed_in_the_lab(rsa_signer: Signer) -> None:
    # vphone emulates legacy image signatures like any .sgn (see phone/formats/firmware.py).
    signed = build_signed(
        PAYLOAD, rsa_signer, filename="P0030899.sbn", timestamp=None, version=(1, 1)
    )
    image = parse_image(signed.encode())
    assert isinstance(image, SignedFile)
    assert image.header.version_text == "1.1"
    assert "15" not in element_layout(image.header.elements).split(",")
    image.verify(rsa_signer.certificate)
    with pytest.raises(SignatureError):
        parse_signed(_flip(signed.encode(), len(signed.encode()) - 1)).verify(
            rsa_signer.certificate
        )


# --- container images (10b) ------------------------------------------------------------------


def test_container_sample() -> None:
    data = sample_bytes(CONTAINER_LOADS)
    assert is_container(data)
    image = parse_image(data)
    assert isinstance(image, ContainerImage)
    assert image.name == "sip78xx.11-0-1-11.loads"
    assert image.header_length == CONTAINER_HEADER_LENGTH == 336
    assert image.payload_length == len(data) - 336
    assert image.hash_matches()
    assert image.payload_sha256 == hashlib.sha256(data[336:]).digest()
    assert image.encode() == data
    assert b"[CISCO-ID]" in image.payload  # an INI-like load list (section 10b)
    view = container_view(image)
    assert view["hash"]["ok"] is True
    assert view["hash"]["stored"] == view["hash"]["computed"]


def test_container_sample_with_flipped_payload_fails_the_hash() -> None:
    data = sample_bytes(CONTAINER_LOADS)
    image = parse_container(_flip(data, len(data) - 1))
    assert not image.hash_matches()
    assert container_view(image)["hash"]["ok"] is False


def test_built_container_verifies(container: ContainerImage, rsa_signer: Signer) -> None:
    data = container.encode()
    assert data[:4] == MAGIC
    assert len(data) == 336 + len(PAYLOAD)
    parsed = parse_container(data)
    assert parsed == container
    assert parsed.encode() == data
    parsed.verify(rsa_signer.key.public_key())


def test_built_container_flipped_payload_fails_the_hash(
    container: ContainerImage, rsa_signer: Signer
) -> None:
    data = container.encode()
    for at in (336, 336 + len(PAYLOAD) // 2, len(data) - 1):
        bad = parse_container(_flip(data, at))
        assert not bad.hash_matches()
        with pytest.raises(SignatureError, match="Checksum Error"):
            bad.verify(rsa_signer.key.public_key())


def test_built_container_flipped_header_or_signature_fails(
    container: ContainerImage, rsa_signer: Signer
) -> None:
    data = container.encode()
    key = rsa_signer.key.public_key()
    # The name (offset 56) and the stored hash (offset 20) are signed; so is the signature.
    for at in (20, 56, 80, 335):
        try:
            bad = parse_container(_flip(data, at))
        except LengthError:
            continue
        with pytest.raises(SignatureError):
            bad.verify(key)


def test_built_container_wrong_key(container: ContainerImage, small_signer: Signer) -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        container.verify(small_signer.key.public_key())


def test_build_container_limits(rsa_signer: Signer, small_signer: Signer) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        build_container(b"", "n" * 24, rsa_signer.key)
    assert build_container(b"", "n" * 23, rsa_signer.key).name == "n" * 23
    with pytest.raises(ValueError, match="RSA-2048"):
        build_container(b"", "x", small_signer.key)


def _header(**fields: int) -> bytes:
    values = {"hlen": 336, "plen": 0, "name_len": 4, **fields}
    return struct.pack(
        "<4sIIII32sI24s256s",
        MAGIC,
        values["hlen"],
        0,
        values["plen"],
        0,
        bytes(32),
        values["name_len"],
        b"name".ljust(24, b"\0"),
        bytes(256),
    )


def test_container_malformed_headers() -> None:
    assert parse_container(_header()).name == "name"
    with pytest.raises(TruncatedError) as short:
        parse_container(_header()[:335])
    assert short.value.offset == 335
    with pytest.raises(ValueFormatError, match="magic"):
        parse_container(b"\0" * 4 + _header()[4:])
    with pytest.raises(LengthError, match="shorter than the fixed header"):
        parse_container(_header(hlen=0))
    with pytest.raises(TruncatedError, match="past the end"):
        parse_container(_header(hlen=337))
    with pytest.raises(LengthError, match="file size"):
        parse_container(_header(plen=1))
    with pytest.raises(LengthError, match="name length 25"):
        parse_container(_header(name_len=25))
    extra = _header(hlen=340, plen=2) + b"\1\2\3\4" + b"pp"
    image = parse_container(extra)
    assert image.extra_header == b"\1\2\3\4" and image.payload == b"pp"
    assert image.encode() == extra


def test_parse_image_picks_the_family(container: ContainerImage, rsa_signer: Signer) -> None:
    assert isinstance(parse_image(container.encode()), ContainerImage)
    signed = build_signed(b"x", rsa_signer, filename="a", timestamp=None, version=(1, 1))
    assert isinstance(parse_image(signed.encode()), SignedFile)

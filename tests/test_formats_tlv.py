"""The TLV element codec and the signed header (trust-file-formats.md sections 1 and 2)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from samples import CERTUTILS_ITL, sample_bytes

from phone.errors import LengthError, StructureError, TruncatedError, ValueFormatError
from phone.formats import Digest, Tag, digest_label, parse_header
from phone.formats.header import HeaderSpec, layout_header
from phone.formats.tlv import (
    MAX_DEPTH,
    PADDING,
    Element,
    container,
    cstring,
    decode_cstring,
    encode_all,
    leaf,
    parse_elements,
    read_element,
    u16,
)
from phone.formats.views import element_layout, header_view

CUCM_HEADER = "1,2,3{4,5,6},7{8,9{10,11}},12,14,15"

# --- elements --------------------------------------------------------------------------------


def test_leaf_encodes_tag_big_endian_length_and_value() -> None:
    assert leaf(14, b"ITLFile.tlv\0").encode() == b"\x0e\x00\x0cITLFile.tlv\0"
    assert leaf(5, b"").encode() == b"\x05\x00\x00"


def test_container_length_is_the_size_of_its_children() -> None:
    # Section 1: tag 7 length 15 = tag 8 (4 bytes) + tag 9 (3) + tags 10 and 11 (4 each).
    info = container(7, [leaf(8, b"\x01"), container(9, [leaf(10, b"\x00"), leaf(11, b"\x02")])])
    assert info.encode() == bytes.fromhex("07000f 08000101 090008 0a000100 0b000102")
    assert info.size == 18


def test_padding_is_a_single_byte_without_length() -> None:
    assert PADDING.encode() == b"\x0d"
    assert PADDING.size == 1
    parsed = parse_elements(b"\x0d\x0d\x0e\x00\x01\x00", 0, 6, padding=True)
    assert parsed == (PADDING, PADDING, leaf(14, b"\0"))


def test_padding_tag_is_an_ordinary_element_outside_headers() -> None:
    # In record bodies tag 13 has no special meaning: it has a length like any other tag.
    (element,) = parse_elements(b"\x0d\x00\x01\x07", 0, 4)
    assert element == leaf(13, b"\x07")


def test_round_trip_of_nested_elements() -> None:
    data = bytes.fromhex("07000f 08000101 090008 0a000100 0b000102 0e000161")
    elements = parse_elements(data, 0, len(data), containers=frozenset({7, 9}))
    assert encode_all(elements) == data
    assert element_layout(elements) == "7{8,9{10,11}},14"


def test_element_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="one byte"):
        Element(256)
    with pytest.raises(ValueError, match="65535"):
        leaf(1, bytes(0x10000))
    assert leaf(1, bytes(0xFFFF)).size == 0xFFFF + 3  # the boundary itself is fine


def test_overrun_at_end_of_file_is_truncation() -> None:
    data = b"\x0e\x00\x05abc"
    with pytest.raises(TruncatedError) as caught:
        read_element(data, 0, len(data), containers=frozenset(), padding=False)
    assert caught.value.offset == 0
    assert "5 value bytes" in caught.value.expected


def test_overrun_of_an_enclosing_region_is_a_lying_length() -> None:
    # A child claims 9 bytes inside a container that holds only 4: the file goes on, so the
    # length lies (it is not a truncation).
    data = bytes.fromhex("030004 040009 ff") + b"trailing bytes"
    with pytest.raises(LengthError) as caught:
        read_element(data, 0, len(data), containers=frozenset({3}), padding=False)
    assert caught.value.offset == 3


def test_three_byte_prefix_cut_short() -> None:
    with pytest.raises(TruncatedError, match="tag 14"):
        parse_elements(b"\x0e\x00", 0, 2)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    def nest(depth: int) -> bytes:
        data = leaf(4, b"x").encode()
        for _ in range(depth):
            data = b"\x03" + u16(len(data)) + data
        return data

    ok = nest(MAX_DEPTH)
    assert encode_all(parse_elements(ok, 0, len(ok), containers=frozenset({3}))) == ok
    deep = nest(MAX_DEPTH + 1)
    with pytest.raises(StructureError, match="nested"):
        parse_elements(deep, 0, len(deep), containers=frozenset({3}))


def test_cstring_round_trip_and_tolerance() -> None:
    assert cstring("CN=SAST") == b"CN=SAST\0"
    assert decode_cstring(b"CN=SAST\0") == "CN=SAST"
    assert decode_cstring(b"no-nul") == "no-nul"
    assert decode_cstring(b"\xe9\0") == "\xe9"  # odd bytes show up instead of failing


# --- the header ------------------------------------------------------------------------------


def _spec(filename: str = "ITLFile.tlv", timestamp: int | None = 1430968247) -> HeaderSpec:
    return HeaderSpec(
        version=(1, 2),
        signer_name="CN=gigantic-6.cisco.com;OU=VTG;O=Alpha;L=SJ;ST=CA;C=US",
        signer_serial=bytes.fromhex("24491f10703fea9b"),
        signer_issuer="CN=gigantic-6.cisco.com;OU=VTG;O=Alpha;L=SJ;ST=CA;C=US",
        digest=Digest.SHA1,
        modulus_bytes=128,
        filename=filename,
        timestamp=timestamp,
    )


def _header_bytes(spec: HeaderSpec) -> bytes:
    return encode_all(layout_header(spec, bytes(spec.modulus_bytes)))


def test_layout_reproduces_the_cucm_ctl_header_of_the_spec() -> None:
    # S2 (section 12): SIGNERID 127, header length 312, one padding byte at offset 311.
    data = _header_bytes(_spec("CTLFile.tlv"))
    assert len(data) == 312
    assert data[:10] == bytes.fromhex("0100020102 0200020138")
    assert data[10:13] == bytes.fromhex("03007f")
    assert data[-1] == 0x0D and data[-2] != 0x0D
    assert data[0x121:] == bytes.fromhex("0e000c 43544c46696c652e746c7600 0f0004554ad7b7 0d")
    header = parse_header(data)
    assert header.length == 312
    assert element_layout(header.elements) == CUCM_HEADER + ",pad"


@pytest.mark.parametrize("extra", range(4))
def test_padding_makes_the_header_length_a_multiple_of_four(extra: int) -> None:
    data = _header_bytes(_spec("x" * (10 + extra)))
    header = parse_header(data)
    assert header.length == len(data)
    assert header.length % 4 == 0
    pads = sum(1 for e in header.elements if e.single_byte)
    assert pads < 4
    assert element_layout(header.elements) == CUCM_HEADER + ",pad" * pads


def test_header_fields_are_typed() -> None:
    header = parse_header(_header_bytes(_spec()))
    assert header.version == (1, 2)
    assert header.version_text == "1.2"
    assert header.signer_name.startswith("CN=gigantic-6.cisco.com;OU=VTG")
    assert header.serial_hex == "24491f10703fea9b"
    assert header.digest is Digest.SHA1
    assert header.modulus_index == 1
    assert header.filename == "ITLFile.tlv"
    assert header.timestamp == 1430968247
    assert header.signer_version is None
    view = header_view(header)
    assert view["timestamp_utc"] == "2015-05-07T03:10:47Z"
    assert view["modulus_bytes"] == 128 == view["signature_bytes"]


def test_header_without_timestamp_like_firmware() -> None:
    header = parse_header(_header_bytes(_spec(timestamp=None)))
    assert header.timestamp is None
    assert element_layout(header.elements).startswith("1,2,3{4,5,6},7{8,9{10,11}},12,14")
    assert "15" not in element_layout(header.elements).split(",")


def test_sample_header_in_certutils_order() -> None:
    data = sample_bytes(CERTUTILS_ITL)
    header = parse_header(data)
    assert header.length == 388
    assert header.version_text == "1.2"
    assert header.signer_version == (1, 0)
    assert header.signer_name == "CN=SAST,O=SAST,OU=SAST"
    assert header.serial_hex == "6ba5de3a260b069337c75b38be3c2d74"
    assert header.digest is Digest.SHA1
    assert len(header.signature) == 256
    assert header.filename == "ITLFile.tlv"
    assert header.timestamp == 0x69540B16
    assert element_layout(header.elements) == "1,2,28,3{4,6,5},7{8,9{10,11}},12,14,15"
    assert header.encode() == data[:388]


def test_encode_unsigned_drops_exactly_the_signature_element() -> None:
    data = _header_bytes(_spec())
    header = parse_header(data)
    unsigned = header.encode_unsigned()
    assert len(unsigned) == len(data) - 3 - 128
    at = header.offsets[Tag.SIGNATURE]
    assert unsigned == data[:at] + data[at + 3 + 128 :]


def test_digest_codes_and_labels() -> None:
    assert Digest(1).label == "SHA-1"
    assert Digest(3).label == "SHA-512"
    assert digest_label(9) == "unknown(9)"
    assert Digest.parse("sha512") is Digest.SHA512
    assert Digest.parse("SHA-1") is Digest.SHA1
    with pytest.raises(ValueError, match="unknown digest"):
        Digest.parse("md5")


# --- header failures -------------------------------------------------------------------------


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1
    return data.replace(old, new)


def test_empty_input() -> None:
    with pytest.raises(TruncatedError) as caught:
        parse_header(b"")
    assert caught.value.offset == 0


def test_header_length_past_the_end_of_the_file() -> None:
    data = _header_bytes(_spec())
    bad = _replace(data, bytes.fromhex("0200020138"), bytes.fromhex("0200020400"))
    with pytest.raises(TruncatedError) as caught:
        parse_header(bad)
    assert caught.value.offset == 5
    assert "past the end" in caught.value.problem
    assert caught.value.expected == f"a header length of at most {len(bad)}"


def test_header_length_of_zero() -> None:
    bad = _replace(_header_bytes(_spec()), bytes.fromhex("0200020138"), bytes.fromhex("0200020000"))
    with pytest.raises(LengthError) as caught:
        parse_header(bad)
    assert caught.value.offset == 5


def test_header_length_element_of_the_wrong_size() -> None:
    bad = bytes.fromhex("0100020102 020003000138") + bytes(400)
    with pytest.raises(ValueFormatError, match="holds 3 bytes"):
        parse_header(bad)


def test_header_shorter_than_its_elements() -> None:
    # The header length (12) cuts the signer container (which starts at 10) in two.
    data = bytearray(_header_bytes(_spec()))
    data[8:10] = u16(12)
    with pytest.raises(LengthError) as caught:
        parse_header(bytes(data))
    assert caught.value.offset == 10


def test_no_header_length_in_the_first_64k() -> None:
    with pytest.raises(StructureError, match="no header length"):
        parse_header(b"\x0d" * 70_000)


def test_duplicate_signature_is_refused() -> None:
    spec = _spec()
    elements = list(layout_header(spec, bytes(128)))
    at = next(i for i, e in enumerate(elements) if e.tag == Tag.SIGNATURE)
    elements.insert(at + 1, leaf(Tag.SIGNATURE, bytes(128)))
    data = bytearray(encode_all(elements))
    data[8:10] = u16(len(data))
    with pytest.raises(StructureError, match="tag 12 appears twice"):
        parse_header(bytes(data))


def _swap(elements: Sequence[Element], tag: int, new: Element | None) -> tuple[Element, ...]:
    """Replace (or drop) the leaf ``tag`` at any depth; containers re-measure themselves."""
    out: list[Element] = []
    for element in elements:
        if element.children is not None:
            out.append(container(element.tag, _swap(element.children, tag, new)))
        elif element.tag == tag and not element.single_byte:
            if new is not None:
                out.append(new)
        else:
            out.append(element)
    return tuple(out)


def _encode_header(elements: Sequence[Element]) -> bytes:
    """Encode ``elements`` with tag 2 set to their total size (so only one thing is wrong)."""
    data = bytearray(encode_all(elements))
    at = 0
    for element in elements:
        if element.tag == Tag.HEADER_LENGTH and not element.single_byte:
            data[at + 3 : at + 5] = u16(len(data))
            return bytes(data)
        at += element.size
    raise AssertionError("no header length element")


@pytest.mark.parametrize(
    ("tag", "value", "error", "message"),
    [
        (Tag.SIGNATURE, b"", LengthError, "signature element is empty"),
        (Tag.SERIAL_NUMBER, b"", ValueFormatError, "serial number is empty"),
        (Tag.VERSION, b"", ValueFormatError, "header version"),
        (Tag.DIGEST_ALGORITHM, b"", ValueFormatError, "digest algorithm"),
        (Tag.DIGEST_ALGORITHM, b"\x01\x01", ValueFormatError, "digest algorithm"),
        (Tag.SIGNATURE_MODULUS, b"", ValueFormatError, "signature modulus"),
        (Tag.TIMESTAMP, b"\x00\x00\x00", ValueFormatError, "timestamp"),
    ],
)
def test_zero_and_wrong_lengths_of_fixed_fields(
    tag: Tag, value: bytes, error: type[Exception], message: str
) -> None:
    elements = layout_header(_spec(), bytes(128))
    assert parse_header(_encode_header(elements)).length == len(encode_all(elements))
    bad = _encode_header(_swap(elements, tag, leaf(tag, value)))
    with pytest.raises(error, match=message) as caught:
        parse_header(bad)
    assert 0 <= caught.value.offset < len(bad)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "tag",
    [
        Tag.VERSION,
        Tag.SIGNER_NAME,
        Tag.SERIAL_NUMBER,
        Tag.ISSUER_NAME,
        Tag.DIGEST_ALGORITHM,
        Tag.SIGNATURE_ALGORITHM,
        Tag.SIGNATURE_MODULUS,
        Tag.SIGNATURE,
        Tag.FILENAME,
    ],
)
def test_missing_required_field(tag: Tag) -> None:
    bad = _encode_header(_swap(layout_header(_spec(), bytes(128)), tag, None))
    with pytest.raises(StructureError, match=f"tag {int(tag)}"):
        parse_header(bad)


def test_missing_signer_info() -> None:
    data = bytes.fromhex("0100020102 020002000d 0d0d0d")
    with pytest.raises(StructureError, match="signer info"):
        parse_header(data)

"""Rules of the TLV element codec (trust-file-formats.md section 1), word for word.

Each element is tag (1 byte) + length (u16 BE) + value; tag 13 in a header is a single padding
byte; a container's length is the byte size of the elements nested right after it. Failures
name the byte and what was expected there ("at byte N: problem (expected ...)").
"""

from __future__ import annotations

import pytest

from phone.errors import FormatError, LengthError, StructureError, TruncatedError
from phone.formats.tlv import (
    PADDING,
    Element,
    container,
    cstring,
    decode_cstring,
    encode_all,
    find,
    leaf,
    parse_elements,
    read_element,
    u8,
    u16,
    u32,
)

NONE: frozenset[int] = frozenset()


def _read(data: bytes, end: int | None = None, containers: frozenset[int] = NONE) -> FormatError:
    with pytest.raises(FormatError) as caught:
        read_element(
            data, 0, len(data) if end is None else end, containers=containers, padding=False
        )
    return caught.value


def test_section1_tag_is_one_byte() -> None:
    assert Element(0).encode() == b"\x00\x00\x00"
    assert Element(255).encode() == b"\xff\x00\x00"
    for tag in (256, -1):
        with pytest.raises(ValueError) as caught:
            Element(tag)
        assert str(caught.value) == f"tag {tag} does not fit in one byte"


def test_section1_length_is_a_u16() -> None:
    assert leaf(1, bytes(65535)).encode()[:3] == b"\x01\xff\xff"
    with pytest.raises(ValueError) as caught:
        leaf(1, bytes(65536))
    assert str(caught.value) == "tag 1: value of 65536 bytes exceeds 65535"


def test_section1_container_length_is_a_u16_too() -> None:
    # A container's length counts its children: 65535 bytes of them fit, 65536 do not.
    full = container(3, [leaf(4, bytes(65532))])
    assert full.size == 3 + 65535
    assert full.encode()[:6] == b"\x03\xff\xff\x04\xff\xfc"
    assert encode_all([full]) == full.encode()
    over = container(3, [leaf(4, bytes(65533))])
    for encode in (over.encode, lambda: encode_all([leaf(1, b""), over])):
        with pytest.raises(ValueError) as caught:
            encode()
        assert str(caught.value) == "container 3 holds 65536 bytes, more than 65535"


def test_section1_sizes() -> None:
    assert PADDING.size == 1
    padding = Element(13, single_byte=True)  # section 1: tag 13 is a single byte
    assert (padding.size, padding.encode()) == (1, b"\x0d")
    assert leaf(14, b"CTLFile.tlv\0").size == 15
    # Section 1: tag 7 length 15 = tag 8 (4 bytes) + tag 9 (3) + tags 10 and 11 (4 each).
    info = container(7, [leaf(8, b"\x01"), container(9, [leaf(10, b"\x00"), leaf(11, b"\x01")])])
    assert info.size == 18
    assert info.encode()[:3] == b"\x07\x00\x0f"
    assert container(3, []).encode() == b"\x03\x00\x00"


def test_section1_parsed_leaves_are_ordinary_elements() -> None:
    data = bytes.fromhex("0e000c") + b"CTLFile.tlv\0" + bytes.fromhex("0f0004554ad7b7")
    first, second = parse_elements(data, 0, len(data))
    assert first == leaf(14, b"CTLFile.tlv\0")
    assert (first.size, first.children, first.single_byte) == (15, None, False)
    assert (second.tag, second.value, second.size) == (15, bytes.fromhex("554ad7b7"), 7)
    element, pos = read_element(data, 15, len(data), containers=NONE, padding=False)
    assert (element.tag, pos) == (15, 22)


def test_section1_region_boundaries() -> None:
    # An element may end exactly at the end of its region, an empty one included.
    data = bytes.fromhex("05 0000 06 0001 07")
    assert parse_elements(data, 0, len(data)) == (leaf(5, b""), leaf(6, b"\x07"))
    assert parse_elements(data, 3, len(data)) == (leaf(6, b"\x07"),)
    assert read_element(data, 0, 3, containers=NONE, padding=False) == (leaf(5, b""), 3)


def test_section1_file_ending_inside_an_element_is_a_truncation() -> None:
    caught = _read(b"\x0e\x00\x05abc")
    assert type(caught) is TruncatedError
    assert str(caught) == (
        "at byte 0: file ends inside element with tag 14 (expected 5 value bytes for tag 14)"
    )
    caught = _read(b"\x0e\x00")
    assert type(caught) is TruncatedError
    assert str(caught) == (
        "at byte 0: file ends inside element with tag 14 (expected a 3-byte tag and length)"
    )


def test_section1_running_past_an_enclosing_element_is_a_lying_length() -> None:
    # A child claims 9 bytes inside a container that holds only 4, and the file goes on.
    data = bytes.fromhex("030004 040009 ff") + b"trailing bytes"
    caught = _read(data, containers=frozenset({3}))
    assert type(caught) is LengthError
    assert str(caught) == (
        "at byte 3: element with tag 4 runs past the end of its enclosing region at byte 7"
        " (expected 9 value bytes for tag 4)"
    )
    # Likewise a 3-byte prefix that does not fit before the region's end.
    caught = _read(bytes.fromhex("0400") + b"more", end=2)
    assert type(caught) is LengthError
    assert str(caught) == (
        "at byte 0: element with tag 4 runs past the end of its enclosing region at byte 2"
        " (expected a 3-byte tag and length)"
    )


def test_containers_nest_at_most_four_deep() -> None:
    # tlv.py: known files nest three deep (tag 16 > 17 > 18); the codec refuses a fifth level.
    def nest(depth: int) -> bytes:
        data = leaf(4, b"x").encode()
        for _ in range(depth):
            data = b"\x03" + u16(len(data)) + data
        return data

    ok = nest(4)
    (outer,) = parse_elements(ok, 0, len(ok), containers=frozenset({3}))
    assert outer.encode() == ok
    # read_element counts from the top level by default, as the header parser calls it.
    assert read_element(ok, 0, len(ok), containers=frozenset({3}), padding=False)[1] == len(ok)
    deep = nest(5)
    with pytest.raises(StructureError):
        read_element(deep, 0, len(deep), containers=frozenset({3}), padding=False)
    with pytest.raises(StructureError) as caught:
        parse_elements(deep, 0, len(deep), containers=frozenset({3}))
    assert str(caught.value) == (
        "at byte 12: containers nested more than 4 deep (expected at most 4 levels of containers)"
    )


def test_section1_padding_is_one_byte_only_in_headers() -> None:
    element, pos = read_element(b"\x0d\x0d", 1, 2, containers=NONE, padding=True)
    assert (element, pos) == (PADDING, 2)
    assert element.single_byte
    # In a header region a 0x0D byte is padding at any depth, inside containers too.
    data = b"\x03\x00\x04\x0d\x04\x00\x00"
    element, pos = read_element(data, 0, len(data), containers=frozenset({3}), padding=True)
    assert (element, pos) == (container(3, [PADDING, leaf(4, b"")]), 7)
    element, pos = read_element(b"\x0d\x00\x01\x07", 0, 4, containers=NONE, padding=False)
    assert (element, pos) == (leaf(13, b"\x07"), 4)


def test_find_returns_the_first_real_element_with_the_tag() -> None:
    elements = (PADDING, leaf(13, b"a"), leaf(13, b"b"), leaf(4, b"c"))
    assert find(elements, 13) == leaf(13, b"a")  # the padding byte is not an element with a value
    assert find(elements, 4) == leaf(4, b"c")
    assert find(elements, 5) is None
    assert find((PADDING,), 13) is None


def test_section1_integers_are_big_endian() -> None:
    assert u8(0xFF) == b"\xff"
    assert u16(0x0138) == b"\x01\x38"  # header length 312 (S2)
    assert u32(0x554AD7B7) == b"\x55\x4a\xd7\xb7"  # S2 timestamp


def test_section2_name_strings_are_nul_terminated_ascii() -> None:
    assert cstring("CTLFile.tlv") == b"CTLFile.tlv\0"
    with pytest.raises(UnicodeEncodeError):
        cstring("caf\xe9")
    assert decode_cstring(b"a\0\0") == "a\0"  # exactly one terminator is removed
    assert decode_cstring(b"\0") == ""
    assert decode_cstring(b"caf\xe9") == "caf\xe9"


def test_a_container_already_read_reads_the_same_under_the_same_rules_only() -> None:
    # tlv.py keeps the containers it parsed (a fleet's headers repeat the signer's): the same
    # bytes under other rules (padding, container tags, depth: see the four-deep test) are
    # parsed again, with the answer those rules give.
    data = b"\x03\x00\x04\x0d\x04\x00\x00"
    assert read_element(data, 0, len(data), containers=frozenset({3}), padding=True)[0] == (
        container(3, [PADDING, leaf(4, b"")])
    )
    with pytest.raises(FormatError):  # 0x0D is a tag when the region has no padding
        read_element(data, 0, len(data), containers=frozenset({3}), padding=False)
    nested = b"\x03\x00\x03\x04\x00\x00"
    assert read_element(nested, 0, 6, containers=frozenset({3}), padding=False)[0] == (
        container(3, [leaf(4, b"")])
    )
    assert read_element(nested, 0, 6, containers=frozenset({3, 4}), padding=False)[0] == (
        container(3, [container(4, [])])
    )


def test_a_container_is_parsed_once_and_the_kept_ones_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from phone.formats import tlv

    calls: list[int] = []
    real = tlv.parse_elements

    def counting(data: bytes, start: int, end: int, **kwargs: object) -> tuple[Element, ...]:
        calls.append(start)
        return real(data, start, end, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tlv, "parse_elements", counting)
    monkeypatch.setattr(tlv, "_CONTAINERS", {})
    data = b"\x03\x00\x03\x04\x00\x00"
    first = read_element(data, 0, 6, containers=frozenset({3}), padding=False)
    again = read_element(b"\x05\x00\x00" + data, 3, 9, containers=frozenset({3}), padding=False)
    assert calls == [3] and again == (first[0], 9)  # found by its bytes, wherever they are
    for n in range(300):
        value = u16(n)
        read_element(
            b"\x03\x00\x05\x04\x00\x02" + value, 0, 8, containers=frozenset({3}), padding=False
        )
        assert len(tlv._CONTAINERS) <= 256

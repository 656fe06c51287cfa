"""The TVS codec's rules, byte for byte and word for word (tvs-capf-wire.md section 1).

Each test pins one rule of the wire format (header, TLV elements, the device name, the
requests tvsd drops, the answer) with literal values taken from tvs-capf-wire.md, and the exact
reason a dropped request is logged with (the server logs the ProtocolError's text).
"""

from __future__ import annotations

import struct

import pytest

from phone.errors import ProtocolError
from phone.wire.tvs import (
    Command,
    Frame,
    FrameReader,
    check_request,
    decode_answer,
    device_name_element,
    encode_frame,
    parse_device_name,
    response,
    tvs_device_name,
    verify_request,
)

NAME = "CP-8841-SEP001122AABBCC"  # 1.4: CP-, 4 digits, -SEP, 12 upper-case hex digits
# vphone refuses a TVS body above 16 KiB (phone/wire/tvs.py: "refused before it is buffered";
# the largest TVS request seen in a CUCM log was 3708 bytes).
LIMIT = 16384


def _frame(data: bytes) -> Frame:
    frames = list(FrameReader().feed(data))
    assert len(frames) == 1
    return frames[0]


def _header(command: int, length: int, session: int = 1) -> bytes:
    # 1.2: protocol id 0x57, version 1, command, reserved 0, session u32 BE, length u16 BE
    return bytes((0x57, 0x01, command, 0x00)) + struct.pack(">IH", session, length)


def _element(tag: int, value: bytes) -> bytes:
    # 1.4: tag 1 byte, length u16 BE, value
    return bytes((tag,)) + struct.pack(">H", len(value)) + value


def _name_value(name: str = NAME) -> bytes:
    return b"\x01" + name.encode()


# --- lengths are unsigned 16-bit (1.2, 1.4) and the body limit ----------------------------------


def test_item_1_4_element_length_is_u16_be_up_to_the_body_limit() -> None:
    value = b"\xab" * (LIMIT - 3)  # one element filling the body exactly
    data = encode_frame(Frame(Command.VERIFY_RESPONSE, 1, ((2, value),)))
    assert data[:10] == _header(2, LIMIT)
    assert data[10:13] == b"\x02\x3f\xfd"  # tag 2, length 16381 as u16 BE
    assert _frame(data).elements == ((2, value),)


def test_body_over_the_limit_is_refused_when_encoding() -> None:
    with pytest.raises(ValueError) as caught:
        encode_frame(Frame(Command.VERIFY_RESPONSE, 1, ((2, b"\0" * (LIMIT - 2)),)))
    assert str(caught.value) == "TVS body of 16385 bytes exceeds 16384"


def test_element_over_32k_is_refused_as_too_long_not_as_a_packing_error() -> None:
    # 1.4: a length up to 0xffff is a valid u16 (unsigned): only vphone's body limit refuses it
    with pytest.raises(ValueError) as caught:
        encode_frame(Frame(Command.VERIFY_RESPONSE, 1, ((2, b"\0" * 0x8000),)))
    assert str(caught.value) == "TVS body of 32771 bytes exceeds 16384"


def test_reader_accepts_a_body_of_exactly_the_limit_and_refuses_one_more() -> None:
    body = _element(2, b"\0" * (LIMIT - 3))
    assert _frame(_header(2, LIMIT) + body).elements == ((2, b"\0" * (LIMIT - 3)),)
    with pytest.raises(ProtocolError) as caught:
        list(FrameReader().feed(_header(2, LIMIT + 1)))
    assert str(caught.value) == "TVS body length 16385 exceeds 16384"


def test_item_1_4_element_with_empty_value_is_three_bytes() -> None:
    # tag + u16 length 0: a complete element, nothing cut off
    assert _frame(_header(2, 3) + b"\x08\x00\x00").elements == ((8, b""),)


@pytest.mark.parametrize("tail", [b"\x07", b"\x07\x00"])
def test_element_header_cut_off_is_a_protocol_error(tail: bytes) -> None:
    body = b"\x07\x00\x01\x00" + tail  # one whole element, then 1 or 2 bytes of a header
    with pytest.raises(ProtocolError) as caught:
        list(FrameReader().feed(_header(2, len(body)) + body))
    assert str(caught.value) == "TVS element header cut off at body byte 4"


def test_element_length_with_high_bit_is_unsigned_and_overruns() -> None:
    body = b"\x02\x80\x00abc"  # announces 32768 bytes: unsigned u16, not -32768
    with pytest.raises(ProtocolError) as caught:
        list(FrameReader().feed(_header(1, len(body)) + body))
    assert str(caught.value) == "TVS element 2 at body byte 0 overruns the body"


# --- the device name (1.4) -------------------------------------------------------------------


def test_item_1_4_device_name_element_is_lead_byte_01_then_ascii() -> None:
    assert device_name_element(NAME) == (1, b"\x01CP-8841-SEP001122AABBCC")
    with pytest.raises(UnicodeEncodeError):
        device_name_element("CP-8841-SEP001122AABBC\u00e9")


@pytest.mark.parametrize(
    ("model", "name", "expected"),
    [
        ("8841", "SEP001122AABBCC", "CP-8841-SEP001122AABBCC"),
        ("8845-3PCC", "sep001122aabbcc", "CP-8845-SEP001122AABBCC"),  # first 4 digits, upper
        ("CP-88451", "SEP001122AABBCC", "CP-8845-SEP001122AABBCC"),  # never more than 4
        ("79", "SEP001122AABBCC", "CP-0079-SEP001122AABBCC"),  # padded on the left with 0
        ("lab", "SEP001122AABBCC", "CP-0000-SEP001122AABBCC"),  # tvsc's default CP-0000-
    ],
)
def test_item_1_4_tvs_device_name_is_cp_4_digits_sep_upper_mac(
    model: str, name: str, expected: str
) -> None:
    assert tvs_device_name(model, name) == expected
    assert parse_device_name(device_name_element(expected)[1]) == expected


def test_item_1_4_device_name_with_non_ascii_bytes_is_refused_with_replacement_chars() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_device_name(b"\x01CP-8841-SEP001122AABB\xc3\xa9")
    assert str(caught.value) == (
        "TVS device name 'CP-8841-SEP001122AABB\ufffd\ufffd' is not CP-MMMM-SEP<12 upper-case hex>"
    )


def test_item_1_4_lower_case_mac_is_refused_word_for_word() -> None:
    # tvs-raw-lowercase-mac
    with pytest.raises(ProtocolError) as caught:
        parse_device_name(b"\x01CP-8841-SEP001122aabbcc")
    assert str(caught.value) == (
        "TVS device name 'CP-8841-SEP001122aabbcc' is not CP-MMMM-SEP<12 upper-case hex>"
    )


# --- requests tvsd drops (1.7) ---------------------------------------------------------------


def _refusal(frame: Frame) -> str:
    with pytest.raises(ProtocolError) as caught:
        check_request(frame)
    return str(caught.value)


def test_item_1_7_a_response_command_from_a_client_is_dropped() -> None:
    frame = Frame(Command.VERIFY_RESPONSE, 1, ((7, b"\x00"),))
    assert _refusal(frame) == "a client sent VERIFY_RESPONSE"


def test_item_1_7_unknown_tag_is_dropped() -> None:
    # tvs-raw-unknown-tag: tag 9 (TTL) is a response element
    frame = Frame(Command.VERIFY_REQUEST, 1, ((1, _name_value()), (9, b"\0\0\0\1"), (2, b"x")))
    assert _refusal(frame) == "unknown element tag 9 in a VERIFY_REQUEST"


def test_item_1_7_missing_device_name_is_dropped() -> None:
    assert _refusal(Frame(Command.VERIFY_REQUEST, 1, ((2, b"x"),))) == (
        "TVS request without a device name"
    )


def test_item_1_7_missing_certificate_is_dropped() -> None:
    # tvs-raw-missing-certificate; an empty CERTIFICATE element is no certificate either
    assert _refusal(Frame(Command.VERIFY_REQUEST, 1, ((1, _name_value()),))) == (
        "TVS verify request without a certificate"
    )
    assert _refusal(Frame(Command.VERIFY_REQUEST, 1, ((1, _name_value()), (2, b"")))) == (
        "TVS verify request without a certificate"
    )


@pytest.mark.parametrize("present", [3, 4])
def test_emulated_query_needs_both_issuer_and_serial(present: int) -> None:
    # docs/networks.md: the emulated query [G] carries ISSUER_NAME (3) and SERIAL_NUMBER (4)
    frame = Frame(Command.QUERY_REQUEST, 1, ((1, _name_value()), (present, b"\x01")))
    assert _refusal(frame) == "TVS query without issuer or serial"


def test_emulated_query_with_issuer_and_serial_passes() -> None:
    check_request(Frame(Command.QUERY_REQUEST, 1, ((1, _name_value()), (3, b"CN=x"), (4, b""))))
    check_request(verify_request(1, NAME, b"der"))


# --- the answer (1.4) -----------------------------------------------------------------------


def test_item_1_4_ttl_is_u32_be_the_whole_range() -> None:
    frame = response(Command.VERIFY_RESPONSE, 1, valid=True, roles=(1,), ttl=0xFFFFFFFF)
    data = encode_frame(frame)
    # STATUS 0, ROLES 01, TTL ffffffff
    assert data[10:] == bytes.fromhex("07 0001 00  08 0001 01  09 0004 ffffffff")
    answer = decode_answer(_frame(data))
    assert answer.ttl == 4294967295


def test_item_1_4_captured_answer_decodes() -> None:
    # 1.4: known cert, roles CCM+TFTP, TTL 3600
    answer = decode_answer(
        _frame(bytes.fromhex("5701020000000001 0010 070001000800020103090004 00000e10"))
    )
    assert (answer.valid, answer.roles, answer.ttl, answer.certificates) == (True, (1, 3), 3600, ())


@pytest.mark.parametrize("status", [b"", b"\x00\x00"])
def test_answer_status_must_be_one_byte(status: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_answer(Frame(Command.VERIFY_RESPONSE, 1, ((7, status),)))
    assert str(caught.value) == "TVS response without a 1-byte status"


def test_answer_without_status_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_answer(Frame(Command.VERIFY_RESPONSE, 1, ((8, b"\x01"),)))
    assert str(caught.value) == "TVS response without a 1-byte status"


def test_valid_answer_with_an_unknown_tag_is_refused() -> None:
    frame = Frame(Command.VERIFY_RESPONSE, 1, ((7, b"\x00"), (8, b"\x01"), (5, b"")))
    with pytest.raises(ProtocolError) as caught:
        decode_answer(frame)
    assert str(caught.value) == "unknown element tag 5 in a TVS response"


def test_valid_answer_without_roles_or_ttl_has_none_and_zero() -> None:
    answer = decode_answer(Frame(Command.VERIFY_RESPONSE, 1, ((7, b"\x00"),)))
    assert (answer.valid, answer.roles, answer.ttl, answer.certificates) == (True, (), 0, ())


@pytest.mark.parametrize("ttl", [b"\x00\x00", b"\x00\x00\x0e\x10\x00"])
def test_item_1_4_ttl_must_be_4_bytes(ttl: bytes) -> None:
    frame = Frame(Command.VERIFY_RESPONSE, 1, ((7, b"\x00"), (8, b"\x01"), (9, ttl)))
    with pytest.raises(ProtocolError) as caught:
        decode_answer(frame)
    assert str(caught.value) == "TVS TTL is not 4 bytes"

"""SCCP framing, stream parsing and the emulated ITL report, pinned to literal bytes (issue 16).

Sources: docs/sccp.md "Framing" (length = 4 + body, counting the message id and the body; a
peer writes length + 8 bytes; header version; message id; a length below 4 or above 4096 is
refused before the body is buffered; a message id without a class is kept as Unknown) and
phone/wire/sccp/emulated.py's documented layout of the ITL report [G] (message id 0x7F01,
char[64] TFTP host, 20-byte SHA-1, u32 Unix time).
"""

from __future__ import annotations

import struct

import pytest

from phone.errors import LengthError, TruncatedError, ValueFormatError
from phone.wire.sccp import Frame, FrameReader, LineStatReq, Unknown, decode, parse_stream
from phone.wire.sccp.emulated import itl_report_message, read_itl_report
from phone.wire.sccp.framing import encode_frame, name

KEEPALIVE = bytes.fromhex("04000000 00000000 00000000")  # docs/sccp.md Framing


# --- encode_frame --------------------------------------------------------------------------------


def test_frame_header_is_length_version_id_little_endian() -> None:
    assert encode_frame(Frame(0x0081, b"\xaa\xbb", 0x11)) == bytes.fromhex(
        "06000000 11000000 81000000 aabb"
    )
    assert encode_frame(Frame(0)) == KEEPALIVE


def test_largest_frame_is_length_4096() -> None:
    # docs/sccp.md: a length field above 4096 is refused [G]; 4096 itself is allowed.
    data = encode_frame(Frame(0x1234, bytes(4092)))
    assert data[:12] == bytes.fromhex("00100000 00000000 34120000")
    assert len(data) == 4104
    with pytest.raises(ValueError) as info:
        encode_frame(Frame(0x1234, bytes(4093)))
    assert str(info.value) == "SCCP message of length 4097 exceeds 4096"


# --- FrameReader ---------------------------------------------------------------------------------


def test_reader_accepts_lengths_4_and_4096() -> None:
    reader = FrameReader()
    big = struct.pack("<III", 4096, 0x11, 0x1234) + bytes(4092)
    assert list(reader.feed(KEEPALIVE + big)) == [
        Frame(0, b"", 0),
        Frame(0x1234, bytes(4092), 0x11),
    ]
    assert reader.pending == 0
    assert reader.offset == 12 + 4104


@pytest.mark.parametrize("length", [3, 4097, 0x80000000, 0xFFFFFFFF])  # u32, unsigned
def test_reader_refuses_a_length_outside_4_to_4096(length: int) -> None:
    reader = FrameReader()
    with pytest.raises(LengthError) as info:
        list(reader.feed(KEEPALIVE + struct.pack("<I", length)))
    assert info.value.problem == f"SCCP length field {length}"
    assert info.value.offset == 12
    assert info.value.expected == "4..4096 (message id and body)"


def test_reader_waits_for_length_plus_8_bytes() -> None:
    reader = FrameReader()
    data = bytes.fromhex("08000000 00000000 0b000000 03000000")  # LineStatReq, line 3
    assert list(reader.feed(data[:3])) == []
    assert (reader.pending, reader.offset) == (3, 0)
    assert list(reader.feed(data[3:15])) == []
    assert (reader.pending, reader.offset) == (15, 0)
    assert list(reader.feed(data[15:])) == [Frame(0x0B, bytes.fromhex("03000000"), 0)]
    assert (reader.pending, reader.offset) == (0, 16)


def test_name_of_a_message_id() -> None:
    assert name(0x0081) == "RegisterAck"
    assert name(0x0000) == "KeepAlive"
    assert name(0x1234) == "message 0x1234"
    assert name(0x7F01) == "message 0x7f01"


# --- parse_stream --------------------------------------------------------------------------------


def test_stream_ending_inside_a_header_needs_12_bytes() -> None:
    data = KEEPALIVE + bytes.fromhex("080000")
    with pytest.raises(TruncatedError) as info:
        parse_stream(data)
    assert info.value.problem == "SCCP stream ends 3 bytes into a frame"
    assert info.value.offset == 15
    assert info.value.expected == "12 bytes of frame from byte 12"


def test_stream_ending_after_a_length_field_needs_length_plus_8() -> None:
    for cut in (4, 15):  # header version 0x11: only the 4-byte length field is read
        data = KEEPALIVE + bytes.fromhex("08000000 11000000 0b000000 03000000")[:cut]
        with pytest.raises(TruncatedError) as info:
            parse_stream(data)
        assert info.value.problem == f"SCCP stream ends {cut} bytes into a frame"
        assert info.value.offset == 12 + cut
        assert info.value.expected == "16 bytes of frame from byte 12"


def test_errors_in_a_later_frame_count_from_the_stream_start() -> None:
    data = KEEPALIVE + KEEPALIVE + bytes.fromhex("04000000 00000000 0b000000")  # no lineNumber
    with pytest.raises(TruncatedError) as info:
        parse_stream(data)
    assert info.value.offset == 24 + 12
    assert info.value.problem == "LineStatReq body ends at byte 0"


def test_unknown_message_keeps_its_id_and_body() -> None:
    data = bytes.fromhex("08000000 00000000 9f000000 01000000")  # Reset, decoded as Unknown
    assert parse_stream(data) == [Unknown(0x9F, bytes.fromhex("01000000"))]
    assert decode(Frame(0x9F, b"\1\2", 0x11)) == Unknown(0x9F, b"\1\2")


def test_bytes_after_the_fields_are_trailing() -> None:
    assert decode(Frame(0x0B, bytes.fromhex("03000000 07"))) == LineStatReq(3, trailing=b"\7")
    assert decode(Frame(0x0B, bytes.fromhex("03000000"))) == LineStatReq(3, trailing=b"")


# --- the emulated ITL report (0x7F01) ------------------------------------------------------------

SHA1 = "00112233445566778899aabbccddeeff01234567"
REPORT_BODY = b"tftp.example" + bytes(64 - 12) + bytes.fromhex(SHA1) + bytes.fromhex("04030201")


def test_itl_report_layout() -> None:
    message = itl_report_message("tftp.example", SHA1, 0x01020304)
    assert message == Unknown(0x7F01, REPORT_BODY)
    assert read_itl_report(message) == ("tftp.example", SHA1, 0x01020304)


def test_itl_report_time_is_a_u32() -> None:
    assert itl_report_message("t", SHA1, 0xFFFFFFFF).raw[-4:] == b"\xff\xff\xff\xff"
    message = itl_report_message("t", SHA1, 0x1_0000_0005)
    assert message.raw[-4:] == bytes.fromhex("05000000")
    assert read_itl_report(Unknown(0x7F01, message.raw[:-4] + b"\xff\xff\xff\xff"))[2] == 0xFFFFFFFF


def test_itl_report_host_is_at_most_63_characters() -> None:
    host = "h" * 63
    assert itl_report_message(host, SHA1, 0).raw[:64] == b"h" * 63 + b"\0"
    assert read_itl_report(itl_report_message(host, SHA1, 0))[0] == host
    with pytest.raises(ValueError) as info:
        itl_report_message("h" * 64, SHA1, 0)
    assert str(info.value) == f"TFTP host {'h' * 64!r} does not fit 63 bytes"
    with pytest.raises(ValueError) as info:
        itl_report_message("a\0b", SHA1, 0)
    assert str(info.value) == "TFTP host 'a\\x00b' does not fit 63 bytes"


def test_itl_report_hash_is_a_sha1() -> None:
    for bad in (SHA1[:-2], SHA1 + "00"):
        with pytest.raises(ValueError) as info:
            itl_report_message("t", bad, 0)
        assert str(info.value) == "the ITL hash is a SHA-1 (40 hex digits)"


def test_reading_another_message_as_an_itl_report_is_refused() -> None:
    with pytest.raises(ValueFormatError) as info:
        read_itl_report(Unknown(0x7F02, REPORT_BODY))
    assert info.value.problem == "message 0x7f02 is not the ITL report"
    assert info.value.offset == 8
    assert info.value.expected == "message id 0x7f01"


def test_itl_report_body_is_88_bytes() -> None:
    assert read_itl_report(Unknown(0x7F01, REPORT_BODY + b"x"))[0] == "tftp.example"
    with pytest.raises(TruncatedError) as info:
        read_itl_report(Unknown(0x7F01, REPORT_BODY[:87]))
    assert info.value.problem == "ITL report body ends at byte 87"
    assert info.value.offset == 12 + 87
    assert info.value.expected == "88"


def test_itl_report_host_must_be_ascii() -> None:
    with pytest.raises(ValueFormatError) as info:
        read_itl_report(Unknown(0x7F01, b"h\xe9" + REPORT_BODY[2:]))
    assert info.value.problem == "ITL report TFTP host is not ASCII"
    assert info.value.offset == 12
    assert info.value.expected == "ASCII host name"
    with pytest.raises(UnicodeEncodeError):
        itl_report_message("h\xe9", SHA1, 0)

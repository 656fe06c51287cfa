"""The CAPF wire codec (phone/wire/capf.py; trust-file-formats.md section 9b)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.errors import ProtocolError
from phone.wire.capf import (
    HEADER,
    MAX_BODY,
    PROTOCOL_ID,
    AuthType,
    CertType,
    Command,
    Frame,
    FrameReader,
    Tag,
    certificate_element,
    cstring_element,
    decode_frame,
    encode_frame,
    sha2_signed_element,
    u8_element,
    u16_element,
)

DER = bytes(range(40)) * 3  # the codec does not parse the certificate itself


def test_header_is_8_bytes_protocol_0x55_command_session_length() -> None:
    frame = Frame(Command.AUTH_REQ, 0x01020304, (u8_element(Tag.VERSION, 3),))
    data = encode_frame(frame)
    assert HEADER.size == 8
    assert data[:8] == bytes([0x55, 1, 1, 2, 3, 4, 0, 4])
    assert data[8:] == bytes([7, 0, 1, 3])
    assert decode_frame(data) == frame


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.name)
def test_every_command_round_trips(command: Command) -> None:
    frame = Frame(command, 7, (u8_element(Tag.REASON, 1),))
    assert decode_frame(encode_frame(frame)) == frame


def test_every_element_round_trips_through_the_typed_getters() -> None:
    frame = Frame(
        Command.AUTH_RESP,
        1,
        (
            u8_element(Tag.VERSION, 3),
            cstring_element(Tag.DEVICE_NAME, "SEP001122334455"),
            u8_element(Tag.AUTH_TYPE, AuthType.PASSWORD),
            cstring_element(Tag.PASSWORD, "123456"),
            u16_element(Tag.KEY_SIZE, 2048),
            certificate_element(CertType.MIC, DER),
            (Tag.SIGNED_DATA, b"sig1"),
            sha2_signed_element(b"sig512"),
            (Tag.REASON_INFO, b"why\0"),
        ),
    )
    back = decode_frame(encode_frame(frame))
    assert back.u8(Tag.VERSION) == 3
    assert back.cstring(Tag.DEVICE_NAME) == "SEP001122334455"
    assert back.u8(Tag.AUTH_TYPE) == AuthType.PASSWORD
    assert back.cstring(Tag.PASSWORD) == "123456"
    assert back.u16(Tag.KEY_SIZE) == 2048
    assert back.certificate() == (CertType.MIC, DER)
    assert back.raw(Tag.SIGNED_DATA) == b"sig1"
    assert back.sha2_signed() == (3, b"sig512")
    assert back.text(Tag.REASON_INFO) == "why"
    assert back.u8(Tag.KEY_TYPE) is None and back.certificate() is not None


def test_certificate_element_is_nested_01_len_00_type_der() -> None:
    # Section 9b: Jabber4Linux saw {01}[len] 00 01 + DER for an LSC.
    tag, value = certificate_element(CertType.LSC, DER)
    assert tag == Tag.CERTIFICATE
    assert value[:5] == b"\x01" + struct.pack(">H", len(DER) + 2) + b"\x00\x01"
    assert value[5:] == DER


def test_sha2_signed_data_starts_with_3_for_sha512() -> None:
    tag, value = sha2_signed_element(b"\xaa" * 256)
    assert tag == Tag.SHA2_SIGNED_DATA and value[0] == 3 and value[1:3] == b"\x01\x00"


def test_reader_takes_frames_byte_by_byte_and_several_at_once() -> None:
    frames = [
        Frame(Command.KEYGEN_REQ, 9, (u8_element(Tag.KEY_TYPE, 0),)),
        Frame(Command.END_SESSION, 9),
    ]
    data = b"".join(encode_frame(f) for f in frames)
    reader = FrameReader()
    got: list[Frame] = []
    for byte in data:
        got.extend(reader.feed(bytes([byte])))
    assert got == frames and reader.pending == 0
    assert list(FrameReader().feed(data)) == frames


# --- strict parsing: what a server drops the connection for ------------------------------------


def _raw(proto: int, command: int, session: int, body: bytes, length: int | None = None) -> bytes:
    return HEADER.pack(proto, command, session, len(body) if length is None else length) + body


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_raw(0x57, 1, 1, b""), "protocol id 0x57"),
        (_raw(PROTOCOL_ID, 0, 1, b""), "unknown CAPF command 0"),
        (_raw(PROTOCOL_ID, 24, 1, b""), "unknown CAPF command 24"),
        (_raw(PROTOCOL_ID, 1, 1, b"", MAX_BODY + 1), "exceeds"),
        (_raw(PROTOCOL_ID, 1, 1, b"\x07\x00"), "element header cut off"),
        (_raw(PROTOCOL_ID, 1, 1, b"\x07\x00\x05\x01"), "announces 5 bytes, only 1 remain"),
        (_raw(PROTOCOL_ID, 1, 1, b"\x0e\x00\x00"), "unknown element tag 14"),
        (_raw(PROTOCOL_ID, 1, 1, b"\x07\x00\x01\x03")[:-2], "cut off"),
        (_raw(PROTOCOL_ID, 1, 1, b"") + b"\x55", "trailing"),
    ],
)
def test_malformed_frames_raise_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_frame(data)


@pytest.mark.parametrize(
    ("element", "getter", "match"),
    [
        ((Tag.VERSION, b"\x03\x00"), lambda f: f.u8(Tag.VERSION), "2 bytes, not 1 byte"),
        ((Tag.KEY_SIZE, b"\x08"), lambda f: f.u16(Tag.KEY_SIZE), "1 bytes, not 2 bytes"),
        ((Tag.DEVICE_NAME, b"SEP00"), lambda f: f.cstring(Tag.DEVICE_NAME), "NUL-terminated"),
        ((Tag.DEVICE_NAME, b"S\0P\0"), lambda f: f.cstring(Tag.DEVICE_NAME), "NUL-terminated"),
        ((Tag.PASSWORD, b"\xff\0"), lambda f: f.cstring(Tag.PASSWORD), "not ASCII"),
        ((Tag.PASSWORD, b"1\n2\0"), lambda f: f.cstring(Tag.PASSWORD), "control characters"),
        ((Tag.CERTIFICATE, b"\x01\x00\x02\x00\x01"), lambda f: f.certificate(), "no DER"),
        ((Tag.SHA2_SIGNED_DATA, b"\x03\x00"), lambda f: f.sha2_signed(), "cut off"),
        ((Tag.SHA2_SIGNED_DATA, b"\x03\x00\x05ab"), lambda f: f.sha2_signed(), "announces 5"),
    ],
)
def test_malformed_elements_raise_protocol_error(
    element: tuple[int, bytes], getter: object, match: str
) -> None:
    frame = decode_frame(encode_frame(Frame(Command.AUTH_RESP, 1, (element,))))
    assert callable(getter)
    with pytest.raises(ProtocolError, match=match):
        getter(frame)


@pytest.mark.parametrize(
    "wrapper", [b"\x02\x00\x03\x00\x01", b"\x01\x00\x09\x00\x01", b"\x01\x00\x03\x00\x05"]
)
def test_the_certificate_wrapper_is_skipped_unchecked(wrapper: bytes) -> None:
    # tvs-capf-wire.md 2.4: "Receivers skip the 5 wrapper bytes without checking them."
    frame = decode_frame(
        encode_frame(Frame(Command.AUTH_RESP, 1, ((Tag.CERTIFICATE, wrapper + b"X"),)))
    )
    presented = frame.certificate()
    assert presented is not None and presented[1] == b"X"


def test_a_repeated_element_is_refused() -> None:
    frame = Frame(
        Command.AUTH_RESP, 1, (u8_element(Tag.AUTH_TYPE, 1), u8_element(Tag.AUTH_TYPE, 2))
    )
    with pytest.raises(ProtocolError, match="AUTH_TYPE repeated"):
        decode_frame(encode_frame(frame)).u8(Tag.AUTH_TYPE)


def test_encoder_refuses_what_the_wire_cannot_carry() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(Frame(Command.AUTH_RESP, 1, ((Tag.SIGNED_DATA, b"x" * (MAX_BODY + 1)),)))
    with pytest.raises(ValueError, match="printable ASCII"):
        cstring_element(Tag.PASSWORD, "12\x0034")
    with pytest.raises(ValueError, match="32 bits"):
        Frame(Command.AUTH_REQ, 1 << 32)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_nothing_but_protocol_error(data: bytes) -> None:
    reader = FrameReader()
    try:
        for frame in reader.feed(data):
            frame.certificate()
            frame.sha2_signed()
            for tag in frame.tags():
                frame.raw(tag)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(Command)),
    st.integers(0, 0xFFFFFFFF),
    st.lists(st.tuples(st.sampled_from(list(Tag)), st.binary(max_size=64)), max_size=6),
)
def test_any_frame_round_trips(
    command: Command, session: int, elements: list[tuple[Tag, bytes]]
) -> None:
    frame = Frame(command, session, tuple((int(t), v) for t, v in elements))
    assert decode_frame(encode_frame(frame)) == frame

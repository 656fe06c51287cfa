"""TVS frame codec (trust-file-formats.md section 9a, item 22)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.errors import ProtocolError
from phone.wire.tvs import (
    MAX_BODY,
    Command,
    Frame,
    FrameReader,
    decode_answer,
    encode_frame,
    query_request,
    response,
)


def test_header_layout_matches_the_spec() -> None:
    data = encode_frame(query_request(0x01020304, "CP-8841-SEP001122334455", "CN=x", b"\x01"))
    assert data[:4] == bytes([0x57, 1, Command.QUERY_REQUEST, 0])
    assert data[4:8] == bytes([1, 2, 3, 4])
    assert int.from_bytes(data[8:10], "big") == len(data) - 10
    # Device name element: tag 1, then a 0x01 byte before the ASCII name.
    assert data[10] == 1 and data[13] == 1 and b"CP-8841-SEP001122334455" in data


def test_round_trip_split_at_every_byte() -> None:
    frame = response(
        Command.QUERY_RESPONSE,
        7,
        valid=True,
        roles=(0, 21),
        ttl=86400,
        certificates=(b"cert-a", b"cert-b"),
    )
    data = encode_frame(frame) * 2
    for cut in range(len(data) + 1):
        reader = FrameReader()
        frames = [*reader.feed(data[:cut]), *reader.feed(data[cut:])]
        assert frames == [frame, frame]
        assert reader.pending == 0


def test_answer_decoding_valid_and_invalid() -> None:
    # Only the emulated QUERY_RESPONSE [G] carries certificates; a VERIFY_RESPONSE is exactly
    # STATUS, ROLES, TTL (tvs-capf-wire.md 1.4).
    answer = decode_answer(
        response(Command.QUERY_RESPONSE, 1, valid=True, roles=(2,), ttl=60, certificates=(b"c",))
    )
    assert answer.valid and answer.roles == (2,) and answer.ttl == 60
    assert answer.certificates == (b"c",)
    verify = response(
        Command.VERIFY_RESPONSE, 1, valid=True, roles=(2,), ttl=60, certificates=(b"c",)
    )
    assert [t for t, _ in verify.elements] == [7, 8, 9]
    assert not decode_answer(
        response(Command.VERIFY_RESPONSE, 1, valid=False, roles=(), ttl=0)
    ).valid


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x58\x01\x01\x00\x00\x00\x00\x01\x00\x00", "protocol id"),
        (b"\x57\x02\x01\x00\x00\x00\x00\x01\x00\x00", "version"),
        (b"\x57\x01\x09\x00\x00\x00\x00\x01\x00\x00", "unknown TVS command"),
        (b"\x57\x01\x01\x00\x00\x00\x00\x01\xff\xff", "exceeds"),
    ],
)
def test_bad_headers_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        list(FrameReader().feed(data))


def test_element_overrunning_body_refused() -> None:
    body = b"\x07\x00\x05\x00"
    data = bytes([0x57, 1, 2, 0, 0, 0, 0, 1]) + len(body).to_bytes(2, "big") + body
    with pytest.raises(ProtocolError, match="overruns"):
        list(FrameReader().feed(data))


def test_oversized_length_refused_before_buffering() -> None:
    reader = FrameReader()
    header = bytes([0x57, 1, 1, 0, 0, 0, 0, 1]) + (MAX_BODY + 1).to_bytes(2, "big")
    with pytest.raises(ProtocolError):
        list(reader.feed(header))


def test_response_of_wrong_kind_refused() -> None:
    with pytest.raises(ProtocolError, match="expected a TVS response"):
        decode_answer(Frame(Command.QUERY_REQUEST, 1, ()))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_frames_or_protocol_error_only(data: bytes) -> None:
    reader = FrameReader()
    try:
        for frame in reader.feed(data):
            with contextlib.suppress(ProtocolError):
                decode_answer(frame)
    except ProtocolError:
        pass

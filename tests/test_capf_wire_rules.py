"""The CAPF codec's rules, byte by byte (phone/wire/capf.py; tvs-capf-wire.md section 2).

Expected bytes are the spec's (2.2 header, 2.4 element encodings, 2.6 SUDI data) or a captured
capfc message (``shared/interop/transcripts/capf-upgrade-lsc-auth.json``), never the codec's own
output. The refusal texts are what the server logs and records when it drops a session
(:meth:`phone.cluster.capf.CapfSession.abort`), so they are compared word for word.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from samples import shared_dir

from phone.errors import ProtocolError
from phone.wire.capf import (
    CertType,
    Command,
    Frame,
    FrameReader,
    Tag,
    certificate_element,
    decode_frame,
    encode_frame,
    sha2_signed_element,
    sudi_data,
    sudi_element,
    u16_element,
)

TRANSCRIPTS = shared_dir() / "interop" / "transcripts"
needs_transcripts = pytest.mark.skipif(
    not TRANSCRIPTS.is_dir(), reason=f"the interop transcripts are not at {TRANSCRIPTS}"
)


def _frame(command: Command, *elements: tuple[int, bytes]) -> Frame:
    return Frame(command, 1, elements)


def _refusal(frame: Frame, getter: str, *args: int) -> str:
    with pytest.raises(ProtocolError) as caught:
        getattr(frame, getter)(*args)
    return str(caught.value)


# --- 2.2: header and body length -----------------------------------------------------------------


def test_header_body_length_is_u16_be_and_a_16_kib_body_is_accepted() -> None:
    # A body of exactly 16384 bytes (vphone's MAX_BODY, docs: a certificate and two signatures
    # fit in far less) encodes and decodes; one byte more is refused on both sides.
    value = bytes(16384 - 3)
    data = encode_frame(_frame(Command.AUTH_RESP, (Tag.SIGNED_DATA, value)))
    assert data[:8] == bytes([0x55, 2, 0, 0, 0, 1, 0x40, 0x00])  # 2.2: u16 BE length 16384
    assert data[8:11] == bytes([6, 0x3F, 0xFD])  # 2.4: tag 6, u16 BE length 16381
    assert decode_frame(data).raw(Tag.SIGNED_DATA) == value
    with pytest.raises(ValueError) as caught:
        encode_frame(_frame(Command.AUTH_RESP, (Tag.SIGNED_DATA, value + b"\0")))
    assert str(caught.value) == "CAPF body of 16385 bytes exceeds 16384"
    header = bytes([0x55, 2, 0, 0, 0, 1, 0x40, 0x01])
    with pytest.raises(ProtocolError) as refused:
        list(FrameReader().feed(header))
    assert str(refused.value) == "CAPF body length 16385 exceeds 16384"


def test_element_length_is_u16_be_and_an_element_over_65535_bytes_is_refused() -> None:
    # 2.4: the element length is a u16; 65536 bytes cannot be said on the wire at all.
    with pytest.raises(ValueError) as too_long:
        encode_frame(_frame(Command.AUTH_RESP, (Tag.SIGNED_DATA, bytes(65536))))
    assert str(too_long.value) == "CAPF element SIGNED_DATA of 65536 bytes is too long"
    with pytest.raises(ValueError) as unknown:
        encode_frame(_frame(Command.AUTH_RESP, (99, bytes(65536))))
    assert str(unknown.value) == "CAPF element 99 of 65536 bytes is too long"
    # 65535 bytes fit in the element length but not in a body.
    with pytest.raises(ValueError) as body:
        encode_frame(_frame(Command.AUTH_RESP, (Tag.SIGNED_DATA, bytes(65535))))
    assert str(body.value) == "CAPF body of 65538 bytes exceeds 16384"
    with pytest.raises(ValueError) as half:
        encode_frame(_frame(Command.AUTH_RESP, (Tag.SIGNED_DATA, bytes(0x8000))))
    assert str(half.value) == "CAPF body of 32771 bytes exceeds 16384"


def test_element_length_over_0x7fff_is_an_overrun_not_a_negative_length() -> None:
    # An element header announcing 0x8000 bytes (u16 BE, 2.4) in a 7-byte body.
    data = bytes([0x55, 2, 0, 0, 0, 1, 0, 7]) + bytes([6, 0x80, 0x00, 1, 2, 3, 4])
    with pytest.raises(ProtocolError) as caught:
        decode_frame(data)
    assert str(caught.value) == (
        "CAPF AUTH_RESP: element SIGNED_DATA at body byte 0 announces 32768 bytes, only 4 remain"
    )


def test_element_overrun_names_its_offset_and_what_remains() -> None:
    # VERSION 3, then PASSWORD announcing 5 bytes with 2 left (2.4 TLV: tag, u16 BE, value).
    body = bytes([7, 0, 1, 3, 11, 0, 5, 0x31, 0x00])
    data = bytes([0x55, 2, 0, 0, 0, 9, 0, len(body)]) + body
    with pytest.raises(ProtocolError) as caught:
        decode_frame(data)
    assert str(caught.value) == (
        "CAPF AUTH_RESP: element PASSWORD at body byte 4 announces 5 bytes, only 2 remain"
    )


def test_trailing_bytes_after_one_frame_are_refused() -> None:
    # END_SESSION{REASON 1} (2.7) followed by one stray byte.
    data = bytes([0x55, 15, 0, 0, 0, 1, 0, 4, 1, 0, 1, 1]) + b"\x55"
    with pytest.raises(ProtocolError) as caught:
        decode_frame(data)
    assert str(caught.value) == "trailing bytes after a CAPF frame"


# --- 2.4: element encodings ---------------------------------------------------------------------


def test_key_size_is_u16_be_over_the_whole_range() -> None:
    # 2.4 KEY_SIZE: u16 BE; values of 0x8000 and over are unsigned.
    assert u16_element(Tag.KEY_SIZE, 2048) == (10, b"\x08\x00")
    assert u16_element(Tag.KEY_SIZE, 0xFFFF) == (10, b"\xff\xff")
    assert _frame(Command.KEYGEN_REQ, (10, b"\x80\x00")).u16(Tag.KEY_SIZE) == 0x8000


def test_certificate_wrapper_length_is_unsigned() -> None:
    # 2.4 CERTIFICATE: 01, u16 BE (DER length + 2), 00, type byte, DER.
    tag, value = certificate_element(CertType.LSC, bytes(0x8000))
    assert tag == 4
    assert value[:5] == bytes([0x01, 0x80, 0x02, 0x00, 0x01])


def test_sha2_signed_data_length_is_unsigned() -> None:
    # 2.4 SHA2_SIGNED_DATA: [hash id 3][sig length u16 BE][signature].
    tag, value = sha2_signed_element(bytes(0x8000))
    assert tag == 20 and value[:3] == bytes([0x03, 0x80, 0x00])


def test_sudi_sub_blocks_are_certificate_0_sha1_1_sha512_3() -> None:
    # 2.4 SUDI_DATA: (type 0x00, DER), (type 0x01 = SHA-1, sig), (type 0x03 = SHA-512, sig).
    assert sudi_element(b"C", b"S1", b"S512") == (
        16,
        bytes([0, 0, 1]) + b"C" + bytes([1, 0, 2]) + b"S1" + bytes([3, 0, 4]) + b"S512",
    )
    tag, value = sudi_element(bytes(0x8000), b"", b"")
    assert tag == 16 and value[:3] == bytes([0x00, 0x80, 0x00])


def test_sudi_signed_data_is_the_session_id_little_endian_unsigned() -> None:
    # 2.6 step 3: session id as u32 LITTLE-endian + DER; session ids run to 0xFFFFFFFF (2.2).
    assert sudi_data(6, b"DER") == b"\x06\x00\x00\x00DER"
    assert sudi_data(0x80000001, b"") == b"\x01\x00\x00\x80"
    assert sudi_data(0xFFFFFFFF, b"x") == b"\xff\xff\xff\xffx"


# --- strings -----------------------------------------------------------------------------------


def test_a_string_element_with_two_nuls_is_not_one_string() -> None:
    # 2.4 DEVICE_NAME / PASSWORD: text + one NUL terminator.
    frame = _frame(Command.AUTH_RESP, (Tag.PASSWORD, b"12\0\0"))
    assert _refusal(frame, "cstring", Tag.PASSWORD) == (
        "CAPF AUTH_RESP: element PASSWORD is not one NUL-terminated string"
    )
    frame = _frame(Command.AUTH_RESP, (Tag.DEVICE_NAME, b"SEP0011223344A1"))
    assert _refusal(frame, "cstring", Tag.DEVICE_NAME) == (
        "CAPF AUTH_RESP: element DEVICE_NAME is not one NUL-terminated string"
    )


def test_a_repeated_element_of_an_unknown_tag_is_named_by_its_number() -> None:
    frame = _frame(Command.AUTH_RESP, (99, b"a"), (99, b"b"))
    assert _refusal(frame, "raw", 99) == "CAPF AUTH_RESP: element 99 repeated"


def test_reason_info_text_is_ascii_with_replacement_and_loses_only_nuls() -> None:
    # 2.4 REASON_INFO: free text; vphone reads it leniently (a byte over 0x7F is one U+FFFD).
    frame = _frame(Command.END_SESSION, (Tag.REASON_INFO, b"caf\xc3\xa9 X\0\0"))
    assert frame.text(Tag.REASON_INFO) == "caf\ufffd\ufffd X"
    assert _frame(Command.END_SESSION, (Tag.REASON_INFO, b"XX")).text(Tag.REASON_INFO) == "XX"


# --- 2.4 / 2.6: SUDI data and SHA-2 signed data ------------------------------------------------


def _sudi_refusal(value: bytes) -> str:
    return _refusal(_frame(Command.AUTH_RESP, (Tag.SUDI_DATA, value)), "sudi")


def test_sudi_data_with_an_empty_last_block_parses() -> None:
    sudi = _frame(Command.AUTH_RESP, (Tag.SUDI_DATA, bytes([0, 0, 1, 0xAA, 1, 0, 0, 3, 0, 0])))
    sudi_value = sudi.sudi()
    assert sudi_value is not None
    assert (sudi_value.certificate, sudi_value.sha1_signature) == (b"\xaa", b"")
    assert (sudi_value.sha2_algorithm, sudi_value.sha2_signature) == (3, b"")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (bytes([0, 0]), "SUDI sub-block cut off"),
        (bytes([0, 0, 0, 1, 0]), "SUDI sub-block cut off"),
        (bytes([0, 0, 5, 1, 2]), "SUDI sub-block overruns"),
        (bytes([0, 0, 1, 0xAA, 1, 0, 1]), "SUDI sub-block overruns"),
        (bytes([0, 0, 0x80, 1]), "SUDI sub-block overruns"),
        (bytes([0, 0, 0, 1, 0, 0]), "SUDI data is not certificate + two signatures"),
        (bytes([1, 0, 0, 1, 0, 0, 3, 0, 0]), "SUDI data is not certificate + two signatures"),
    ],
)
def test_malformed_sudi_data_is_refused(value: bytes, said: str) -> None:
    assert _sudi_refusal(value) == f"CAPF AUTH_RESP: {said}"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (b"\x03\x00", "SHA-2 signed data is cut off"),
        (b"\x03\x00\x00", "SHA-2 signed data announces 0 bytes, holds 0"),
        (b"\x03\x00\x05ab", "SHA-2 signed data announces 5 bytes, holds 2"),
        (b"\x03\x01\x00" + bytes(1), "SHA-2 signed data announces 256 bytes, holds 1"),
    ],
)
def test_malformed_sha2_signed_data_is_refused(value: bytes, said: str) -> None:
    frame = _frame(Command.AUTH_RESP, (Tag.SHA2_SIGNED_DATA, value))
    assert _refusal(frame, "sha2_signed") == f"CAPF AUTH_RESP: {said}"


def test_sha2_signed_data_of_one_byte_parses() -> None:
    frame = _frame(Command.AUTH_RESP, (Tag.SHA2_SIGNED_DATA, b"\x03\x00\x01\xaa"))
    assert frame.sha2_signed() == (3, b"\xaa")


@needs_transcripts
def test_captured_capfc_auth_response_sudi_and_sha2_elements() -> None:
    # capf-upgrade-lsc-auth: capfc's AUTH_RESPONSE (session 6) with SUDI data of a 774-byte MIC
    # and two 256-byte signatures (types 0, 1, 3), and SHA2_SIGNED_DATA (3, 256 bytes).
    transcript = json.loads((TRANSCRIPTS / "capf-upgrade-lsc-auth.json").read_text())
    message = transcript["messages"][1]
    assert message["from"] == "client"
    frame = decode_frame(bytes.fromhex(message["hex"]))
    assert frame.session == 6
    sudi = frame.sudi()
    assert sudi is not None
    assert len(sudi.certificate) == 774
    assert hashlib.sha256(sudi.certificate).hexdigest() == (
        "db6f471230554e414d2d59dd1ce3d9eabec208cb3e891452b504776de44c9c3e"
    )
    assert (len(sudi.sha1_signature), sudi.sha2_algorithm, len(sudi.sha2_signature)) == (
        256,
        3,
        256,
    )
    sha2 = frame.sha2_signed()
    assert sha2 is not None and sha2[0] == 3 and len(sha2[1]) == 256

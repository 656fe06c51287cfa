"""Rules of the signed header (trust-file-formats.md sections 2, 3 and 8), word for word.

Every failure names its problem, the byte where a person finds it in a hex viewer, and what was
expected there (``phone/errors.py``: "at byte N: problem (expected ...)"). The headers below are
laid out like the spec's real CUCM CTL, sample S2 (section 12): tag 1 at byte 0, tag 2 at 5,
the signer container (tag 3, length 127) at 10, the signature info (tag 7, length 15) at 140,
the 128-byte signature (tag 12) at 158, the file name (tag 14) at 289, the timestamp (tag 15)
at 304, one padding byte at 311, header length 312.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from conftest import FORMATS_TIMESTAMP
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.errors import FormatError, LengthError, StructureError, ValueFormatError
from phone.formats import Digest, SignedFile, Signer, build_encrypted, parse_header
from phone.formats.header import HeaderSpec, layout_header
from phone.formats.tlv import Element, container, encode_all, leaf, u16
from phone.formats.views import header_view

S2_NAME = "CN=gigantic-6.cisco.com;OU=VTG;O=Alpha;L=SJ;ST=CA;C=US"  # section 2, tag 4 of S2
S2_SERIAL = bytes.fromhex("24491f10703fea9b")  # section 2, tag 5 of S2
S2_TIMESTAMP = 0x554AD7B7  # section 2, tag 15 of S2


def _s2_spec(signer_version: tuple[int, int] | None = None) -> HeaderSpec:
    return HeaderSpec(
        version=(1, 2),
        signer_name=S2_NAME,
        signer_serial=S2_SERIAL,
        signer_issuer=S2_NAME,
        digest=Digest.SHA1,
        modulus_bytes=128,
        filename="CTLFile.tlv",
        timestamp=S2_TIMESTAMP,
        signer_version=signer_version,
    )


def _s2_elements(signer_version: tuple[int, int] | None = None) -> tuple[Element, ...]:
    return layout_header(_s2_spec(signer_version), bytes(128))


def _edited(
    elements: tuple[Element, ...], path: tuple[int, ...], new: Element | None
) -> tuple[Element, ...]:
    """``elements`` with the element at tag ``path`` replaced by ``new`` (None: removed)."""
    out: list[Element] = []
    for element in elements:
        if element.single_byte or element.tag != path[0]:
            out.append(element)
        elif len(path) == 1:
            if new is not None:
                out.append(new)
        else:
            assert element.children is not None
            out.append(container(element.tag, _edited(element.children, path[1:], new)))
    return tuple(out)


def _encoded(elements: tuple[Element, ...]) -> bytes:
    """Encode header elements with tag 2 set to their total size."""
    data = bytearray(encode_all(elements))
    at = 0
    for element in elements:
        if element.tag == 2 and not element.single_byte:
            data[at + 3 : at + 5] = u16(len(data))
            return bytes(data)
        at += element.size
    raise AssertionError("no tag 2")


def _failure(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as caught:
        parse_header(data)
    return caught.value


def test_s2_layout_offsets() -> None:
    data = _encoded(_s2_elements())
    # S2 hex dump (section 12): 01 0002 0102 | 02 0002 0138 | 03 007f ...
    assert data[:13] == bytes.fromhex("0100020102 0200020138 03007f")
    header = parse_header(data)
    assert header.offsets[3] == 10
    assert header.offsets[7] == 140
    assert header.offsets[12] == 158
    assert header.offsets[14] == 289
    assert header.offsets[15] == 304
    assert header.length == 312


# (tag path, replacement, error, problem, offset, expected); None removes the element.
# Tag names and sizes per section 2: 1 version (2 bytes), 3 signer {4 name, 5 serial, 6 CA name},
# 7 signature info {8 digest (1 byte), 9 {10 algorithm (1 byte), 11 modulus index (1 byte)}},
# 12 signature, 14 file name, 15 timestamp (u32). A missing top-level element is reported at
# byte 0; a problem inside a container at the container's first byte; a bad top-level value at
# its own element.
HEADER_DAMAGE = [
    ((1,), None, StructureError, "at byte 0: no header version (tag 1) (expected header version)"),
    (
        (1,),
        leaf(1, b"\x01"),
        ValueFormatError,
        "at byte 0: header version (tag 1) holds 1 bytes (expected 2 bytes)",
    ),
    (
        (3,),
        None,
        StructureError,
        "at byte 0: no signer info container (tag 3) (expected signer info container)",
    ),
    ((3, 4), None, StructureError, "at byte 10: no signer name (tag 4) (expected signer name)"),
    (
        (3, 5),
        None,
        StructureError,
        "at byte 10: no signer serial number (tag 5) (expected signer serial number)",
    ),
    (
        (3, 6),
        None,
        StructureError,
        "at byte 10: no signer CA name (tag 6) (expected signer CA name)",
    ),
    (
        (3, 5),
        leaf(5, b""),
        ValueFormatError,
        "at byte 10: signer serial number is empty (expected at least one byte)",
    ),
    (
        (7,),
        None,
        StructureError,
        "at byte 0: no signature info container (tag 7) (expected signature info container)",
    ),
    (
        (7, 8),
        None,
        StructureError,
        "at byte 140: no digest algorithm (tag 8) (expected digest algorithm)",
    ),
    (
        (7, 8),
        leaf(8, b"\x01\x01"),
        ValueFormatError,
        "at byte 140: digest algorithm (tag 8) holds 2 bytes (expected 1 bytes)",
    ),
    (
        (7, 9),
        None,
        StructureError,
        "at byte 140: no signature algorithm info (tag 9) (expected signature algorithm info)",
    ),
    (
        (7, 9, 10),
        None,
        StructureError,
        "at byte 140: no signature algorithm (tag 10) (expected signature algorithm)",
    ),
    (
        (7, 9, 10),
        leaf(10, b""),
        ValueFormatError,
        "at byte 140: signature algorithm (tag 10) holds 0 bytes (expected 1 bytes)",
    ),
    (
        (7, 9, 11),
        None,
        StructureError,
        "at byte 140: no signature modulus (tag 11) (expected signature modulus)",
    ),
    (
        (7, 9, 11),
        leaf(11, b"\x00\x01"),
        ValueFormatError,
        "at byte 140: signature modulus (tag 11) holds 2 bytes (expected 1 bytes)",
    ),
    ((12,), None, StructureError, "at byte 0: no signature (tag 12) (expected signature)"),
    (
        (12,),
        leaf(12, b""),
        LengthError,
        "at byte 158: signature element is empty (expected signature bytes)",
    ),
    ((14,), None, StructureError, "at byte 0: no file name (tag 14) (expected file name)"),
    (
        (15,),
        leaf(15, b"\x55\x4a\xd7"),
        ValueFormatError,
        "at byte 304: timestamp (tag 15) holds 3 bytes (expected 4 bytes)",
    ),
]


@pytest.mark.parametrize(
    ("path", "new", "error", "message"),
    HEADER_DAMAGE,
    ids=[row[3].split(": ", 1)[1].split(" (")[0] for row in HEADER_DAMAGE],
)
def test_section2_header_damage_is_named_word_for_word(
    path: tuple[int, ...], new: Element | None, error: type[FormatError], message: str
) -> None:
    caught = _failure(_encoded(_edited(_s2_elements(), path, new)))
    assert type(caught) is error
    assert str(caught) == message


def test_section2_signer_version_tag28_is_two_bytes_after_tag2() -> None:
    # certutils order (section 2): 1, 2, 28, 3{...}: tag 28 starts at byte 10.
    elements = _s2_elements(signer_version=(1, 0))
    header = parse_header(_encoded(elements))
    assert header.signer_version == (1, 0)
    assert header.offsets[28] == 10
    caught = _failure(_encoded(_edited(elements, (28,), leaf(28, b"\x01"))))
    assert str(caught) == "at byte 10: signer version (tag 28) holds 1 bytes (expected 2 bytes)"


def test_section2_timestamp_is_a_big_endian_u32() -> None:
    header = parse_header(_encoded(_s2_elements()))
    assert header.timestamp == 1430968247  # 0x554AD7B7 = 2015-05-07 03:10:47Z (S2)
    assert header.version == (1, 2)
    assert header.signer_name == S2_NAME
    assert header.signer_serial == S2_SERIAL
    assert header.signer_issuer == S2_NAME
    assert (header.digest_code, header.signature_algorithm, header.modulus_index) == (1, 0, 1)


def test_section2_unique_header_tags_twice_are_refused_at_the_second_copy() -> None:
    elements = _s2_elements()
    twice = (*elements[:-1], leaf(14, b"x.tlv\0"), elements[-1])
    caught = _failure(_encoded(twice))
    assert type(caught) is StructureError
    assert str(caught) == (
        "at byte 311: tag 14 appears twice in the header (expected each header field once)"
    )


def test_section2_unknown_tags_may_repeat_and_are_kept_byte_for_byte() -> None:
    elements = _s2_elements()
    data = _encoded((*elements[:-1], leaf(99, b"a"), leaf(99, b"bc"), elements[-1]))
    header = parse_header(data)
    assert header.encode() == data
    assert header.offsets[99] == 311  # the first copy
    assert [e.value for e in header.elements if e.tag == 99] == [b"a", b"bc"]


def test_section2_header_length_boundaries() -> None:
    # Tag 2 is the offset where the header ends; it cannot end inside tag 2 itself (bytes 5-9).
    caught = _failure(bytes.fromhex("0100020102 0200020009") + bytes(8))
    assert str(caught) == (
        "at byte 5: header length 9 ends before the header length element itself"
        " (expected a header length of at least 10)"
    )
    assert type(caught) is LengthError
    # Ending right after tag 2 is a length, but then the header holds no signer.
    caught = _failure(bytes.fromhex("0100020102 020002000a"))
    assert (
        str(caught)
        == "at byte 0: no signer info container (tag 3) (expected signer info container)"
    )
    # A header length equal to the file's size is fine; one byte more is past the end.
    data = _encoded(_s2_elements())
    assert parse_header(data).length == len(data) == 312
    caught = _failure(data[:-1])
    assert str(caught) == (
        "at byte 5: header length 312 is past the end of the 311-byte file"
        " (expected a header length of at most 311)"
    )
    caught = _failure(bytes.fromhex("0100020102 020003000138") + bytes(400))
    assert str(caught) == (
        "at byte 5: header length element holds 3 bytes (expected a 2-byte header length)"
    )


def test_section2_tag2_must_come_within_the_first_65535_bytes() -> None:
    # Tag 2 is a u16: a header length element starting at byte 65535 still is one (and then
    # its length, at most 65535, ends before the element itself); one starting at 65536 cannot.
    def with_tag2_at(pos: int) -> bytes:
        filler = pos - 5 - 3  # after tag 1 (5 bytes), one unknown element of 3 + filler bytes
        return (
            bytes.fromhex("0100020102")
            + bytes((99,))
            + u16(filler)
            + bytes(filler)
            + (bytes.fromhex("020002ffff"))
        )

    caught = _failure(with_tag2_at(65535))
    assert type(caught) is LengthError
    assert caught.offset == 65535
    caught = _failure(with_tag2_at(65536))
    assert type(caught) is StructureError
    assert str(caught) == (
        "at byte 65536: no header length element in the first 65535 bytes"
        " (expected tag 2 (header length) near the start)"
    )


def test_section2_file_ending_inside_the_header() -> None:
    # The file ends before any tag 2 said where the header ends; bytes after the header are
    # not the header's.
    data = _encoded(_s2_elements())
    caught = _failure(bytes.fromhex("0100020102"))
    assert str(caught) == (
        "at byte 5: file ends before the header does (expected more header elements)"
    )
    assert parse_header(data + b"payload").encode() == data


def test_section3_signed_bytes_are_the_header_without_the_signature_element() -> None:
    elements = _s2_elements()
    data = _encoded(elements)
    parsed = parse_header(data)
    # Section 3: delete the signature TLV (3-byte prefix at byte 158 and its 128 bytes).
    assert parsed.encode_unsigned() == data[:158] + data[158 + 3 + 128 :]
    assert len(parsed.encode_unsigned()) == 312 - 131
    # A header known only by its elements (no raw bytes) gives the same bytes.
    unparsed = dataclasses.replace(parsed, raw=b"", offsets={})
    assert unparsed.encode() == data
    assert unparsed.encode_unsigned() == data[:158] + data[158 + 3 + 128 :]


def test_digest_names_as_typed_by_a_person() -> None:
    # Section 2 / 6: codes 1 = SHA-1, 2 = SHA-256, 3 = SHA-512.
    assert Digest.parse("sha_512") is Digest.SHA512
    assert Digest.parse("Sha-256") is Digest.SHA256
    assert Digest.parse("SHA1") is Digest.SHA1
    with pytest.raises(ValueError) as caught:
        Digest.parse("md5")
    assert str(caught.value) == "unknown digest 'md5'; use sha1, sha256 or sha512"


# --- section 8: the .enc.sgn encryption block ----------------------------------------------

CONFIG = b'<?xml version="1.0"?>\n<device><fullConfig>false</fullConfig></device>\n'


@pytest.fixture(scope="module")
def enc_sgn(rsa_signer: Signer, phone_key: rsa.RSAPrivateKey) -> SignedFile:
    return build_encrypted(
        CONFIG,
        rsa_signer,
        phone_key.public_key(),
        filename="SEP001122334455.cnf.xml.enc.sgn",
        timestamp=FORMATS_TIMESTAMP,
        aes_key=bytes(16),
        iv=bytes(range(16)),
    )


def test_section8_key_algorithm_and_plaintext_digest_are_read_from_the_block(
    enc_sgn: SignedFile,
) -> None:
    info = parse_header(enc_sgn.encode()).encryption
    assert info is not None
    assert info.key_algorithm == 1  # tag 24, "value 1 (guessed to mean AES)", section 8
    assert info.digest_code == 1  # tag 26, same codes as tag 8: 1 = SHA-1
    assert info.plaintext_digest == hashlib.sha1(CONFIG).digest()  # tag 27
    assert info.iv == bytes(range(16))  # tag 19
    view = header_view(parse_header(enc_sgn.encode()))
    assert view["encryption"]["key_algorithm"] == 1
    # The values are the file's, not constants: another key algorithm byte reads back as such.
    elements = _edited(enc_sgn.header.elements, (16, 21, 24), leaf(24, b"\x07"))
    elements = _edited(elements, (26,), leaf(26, b"\x03"))
    info = parse_header(_encoded(elements)).encryption
    assert info is not None
    assert (info.key_algorithm, info.digest_code) == (7, 3)


def test_section8_no_encryption_block_in_a_plain_header() -> None:
    assert parse_header(_encoded(_s2_elements())).encryption is None


# --- building: the layout a builder signs is typed as the parser types it --------------------


def _fake_sign(modulus_bytes: int) -> object:
    """A deterministic stand-in for RSA: a digest of the signed bytes, stretched to the size."""

    def sign(data: bytes) -> bytes:
        return (hashlib.sha512(data).digest() * 8)[:modulus_bytes]

    return sign


@pytest.mark.parametrize("modulus_bytes", [64, 128, 256, 512])  # tag 11's table, section 2
@pytest.mark.parametrize("timestamp", [S2_TIMESTAMP, None])
@pytest.mark.parametrize("signer_version", [None, (1, 0)])
@pytest.mark.parametrize("filename", ["CTLFile.tlv", "SEP001122334455.cnf.xml.sgn"])
def test_section3_a_signed_header_is_what_the_parser_reads_back(
    modulus_bytes: int,
    timestamp: int | None,
    signer_version: tuple[int, int] | None,
    filename: str,
) -> None:
    # sign_header types the header it laid out without reading its bytes back (a TFTP node
    # signs thousands of configs); whatever it returns must equal what parse_header makes of
    # the same bytes: elements, offsets, raw bytes and every typed field. The file names give
    # 0 to 3 padding bytes (the header length is a multiple of 4, section 3).
    from phone.formats.header import sign_header

    spec = dataclasses.replace(
        _s2_spec(signer_version),
        modulus_bytes=modulus_bytes,
        timestamp=timestamp,
        filename=filename,
    )
    built = sign_header(spec, b"records", _fake_sign(modulus_bytes))  # type: ignore[arg-type]
    parsed = parse_header(built.raw)
    assert built == parsed
    # Header's equality leaves out the offsets and the raw bytes: compared on their own.
    assert built.offsets == parsed.offsets
    assert built.raw == parsed.raw
    assert built.length == len(built.raw)
    assert built.length % 4 == 0
    assert len(built.signature) == modulus_bytes


@pytest.mark.parametrize("filename", ["CTLFile.tlv", "ITLFile.tlv", "SEP0011.cnf.xml.sgn"])
def test_signing_types_its_own_layout_without_parsing_it(
    filename: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast path of issue 17 (per-phone configs signed by the thousand): a header laid out
    # by layout_header, with no extra elements, is typed from its elements, not re-parsed.
    from phone.formats import header as module

    def no_parsing(data: bytes) -> object:
        raise AssertionError("sign_header parsed the header it laid out itself")

    spec = dataclasses.replace(_s2_spec(), filename=filename)
    expected = module.sign_header(spec, b"", _fake_sign(128))  # type: ignore[arg-type]
    monkeypatch.setattr(module, "parse_header", no_parsing)
    built = module.sign_header(spec, b"", _fake_sign(128))  # type: ignore[arg-type]
    assert (built, built.offsets, built.raw) == (expected, expected.offsets, expected.raw)
    # The unsigned part is cut out of the raw bytes, the same bytes the elements give.
    assert built.encode_unsigned() == encode_all(
        e for e in built.elements if e.tag != 12 or e.single_byte
    )


def test_layout_refuses_a_signature_size_tag_11_cannot_say() -> None:
    # Tag 11 indexes (64, 128, 256, 512) bytes (section 2); no index, no header.
    with pytest.raises(ValueError) as caught:
        layout_header(dataclasses.replace(_s2_spec(), modulus_bytes=100), bytes(100))
    assert str(caught.value) == "no modulus index for a 100-byte signature"


def test_layout_refuses_a_signature_of_another_size_than_the_modulus() -> None:
    with pytest.raises(ValueError) as caught:
        layout_header(_s2_spec(), bytes(127))
    assert str(caught.value) == "signature length does not match the signer's modulus"


def test_the_fast_typing_never_trusts_a_header_length_the_parser_refuses() -> None:
    # _typed_layout may skip parsing only when tag 2 says what the bytes say; a header length
    # off by 4 (still a multiple of 4) must meet the parser's own refusal, word for word.
    from phone.formats.header import _typed_layout

    elements = _edited(_s2_elements(), (2,), leaf(2, u16(316)))
    raw = encode_all(elements)
    with pytest.raises(FormatError) as parsed:
        parse_header(raw)
    with pytest.raises(FormatError) as typed:
        _typed_layout(elements, raw)
    assert str(typed.value) == str(parsed.value)

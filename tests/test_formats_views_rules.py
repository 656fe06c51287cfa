"""The JSON views of parsed trust files (``vphone tlv show --json``, ``vphone image show --json``).

phone/formats/views.py calls its key names "part of the CLI's contract: add keys, do not rename
them", so every view here is compared whole, key by key, against literal values: a renamed key,
a lost value or a wrong count is a different JSON document for whoever scripts against it.
Values come from trust-file-formats.md (section 2 header tags, section 4 records, section 8
encryption block, section 10 images) and the views' own documented conventions (lowercase hex,
``show itl`` role names, ISO 8601 UTC times).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from samples import LEGACY_LOADS, sample_bytes

from phone.formats import ContainerImage, parse_signed
from phone.formats.header import EncryptionInfo, Header
from phone.formats.tlv import PADDING, container, leaf
from phone.formats.trustlist import Record
from phone.formats.views import container_view, header_view, record_view, timestamp_text

# A CUCM-style header layout (section 2): 1, 2, 3{4,5,6}, 7{8,9{10,11}}, 12, 14, 15, padding.
_LAYOUT = (
    leaf(1, b"\x01\x00"),
    leaf(2, b"\x00\x00"),
    container(3, (leaf(4, b"CN=signer\0"), leaf(5, b"\x01\x02"), leaf(6, b"CN=ca\0"))),
    container(7, (leaf(8, b"\x01"), container(9, (leaf(10, b"\x00"), leaf(11, b"\x02"))))),
    leaf(12, bytes(256)),
    leaf(14, b"SEP0001.cnf.xml\0"),
    leaf(15, b"\x55\x4a\xd7\x07"),
    PADDING,
    PADDING,
)


def _header(**changes: object) -> Header:
    fields: dict[str, object] = {
        "elements": _LAYOUT,
        "version": (1, 0),
        "length": 332,
        "signer_name": "CN=signer",
        "signer_serial": b"\x01\x02",
        "signer_issuer": "CN=ca",
        "digest_code": 1,
        "signature_algorithm": 0,
        "modulus_index": 2,
        "signature": bytes(256),
        "filename": "SEP0001.cnf.xml",
        "timestamp": 1430968327,
        "signer_version": None,
    }
    fields.update(changes)
    return Header(**fields)  # type: ignore[arg-type]


@pytest.fixture
def tokyo() -> Iterator[None]:
    """The process's local time zone set to UTC+9 (no daylight saving) for one test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        try:
            yield
        finally:
            patch.undo()
            time.tzset()


# --- header ----------------------------------------------------------------------------------


def test_section2_header_view_is_the_whole_documented_document() -> None:
    assert header_view(_header()) == {
        "version": "1.0",
        "length": 332,
        "signer_version": None,
        "signer": {"name": "CN=signer", "serial": "0102", "issuer": "CN=ca"},
        "digest": "SHA-1",  # tag 8 code 1 (section 2)
        "digest_code": 1,
        "signature_algorithm": "RSA",  # tag 10 code 0: RSA PKCS#1 (section 2)
        "modulus_index": 2,
        "modulus_bytes": 256,  # tag 11 index 2 of 64/128/256/512 (section 2)
        "signature_bytes": 256,
        "filename": "SEP0001.cnf.xml",
        "timestamp": 1430968327,
        "timestamp_utc": "2015-05-07T03:12:07Z",
        "padding": 2,
        "layout": "1,2,3{4,5,6},7{8,9{10,11}},12,14,15,pad,pad",
        "unknown_tags": [],
        "encryption": None,
    }


def test_section2_signature_algorithm_no_source_names_stays_its_number() -> None:
    view = header_view(_header(signature_algorithm=1))
    assert view["signature_algorithm"] == 1


@pytest.mark.parametrize(("index", "size"), [(0, 64), (1, 128), (3, 512), (4, None), (255, None)])
def test_section2_modulus_index_reads_through_the_64_128_256_512_table(
    index: int, size: int | None
) -> None:
    view = header_view(_header(modulus_index=index))
    assert (view["modulus_index"], view["modulus_bytes"]) == (index, size)


def test_section2_signer_version_tag28_reads_major_dot_minor() -> None:
    # certutils writes tag 28 after tag 2 (section 2); CUCM writes none (None above).
    assert header_view(_header(signer_version=(1, 0)))["signer_version"] == "1.0"
    assert header_view(_header(signer_version=(2, 7)))["signer_version"] == "2.7"


def test_section2_unknown_tags_are_listed_once_in_file_order_at_any_depth() -> None:
    elements = (
        leaf(1, b"\x01\x00"),
        container(3, (leaf(4, b"x\0"), leaf(99, b""), leaf(99, b"y"))),
        container(7, (leaf(98, b""), container(9, (leaf(99, b""), leaf(97, b""))))),
        leaf(98, b""),
        PADDING,
    )
    view = header_view(_header(elements=elements))
    assert view["unknown_tags"] == [99, 98, 97]
    assert view["padding"] == 1
    assert view["layout"] == "1,3{4,99,99},7{98,9{99,97}},98,pad"


def test_timestamp_is_shown_in_utc_whatever_the_local_zone(tokyo: None) -> None:
    # "Unix time as ISO 8601 UTC": 1430968247 is 2015-05-07 03:10:47 UTC (12:10:47 in Tokyo).
    assert timestamp_text(1430968247) == "2015-05-07T03:10:47Z"
    assert header_view(_header(timestamp=0))["timestamp_utc"] == "1970-01-01T00:00:00Z"


def test_section8_encryption_block_view() -> None:
    info = EncryptionInfo(
        iv=bytes(range(16)),
        padding_count=7,
        key_bits=128,
        key_algorithm=1,
        encrypted_key=bytes(256),
        digest_code=2,
        plaintext_digest=bytes.fromhex("ab" * 32),
    )
    assert header_view(_header(encryption=info))["encryption"] == {
        "iv": "000102030405060708090a0b0c0d0e0f",
        "padding_count": 7,
        "key_bits": 128,
        "key_algorithm": 1,
        "encrypted_key_bytes": 256,
        "plaintext_digest": "SHA-256",
        "plaintext_digest_code": 2,
        "plaintext_digest_value": "ab" * 32,
    }


def test_section10a_legacy_image_header_view() -> None:
    # Every value below is a section 10a fact about legacy images, checked on this sample.
    header = parse_signed(sample_bytes(LEGACY_LOADS)).header
    assert header_view(header) == {
        "version": "1.1",
        "length": 408,
        "signer_version": None,
        "signer": {
            "name": "CN=someSigner;OU=someOrgUnit;O=someOrg",
            "serial": "1234567890abcdef",
            "issuer": "CN=someCA;OU=someOrgUnit;O=someOrg",
        },
        "digest": "SHA-1",
        "digest_code": 1,
        "signature_algorithm": "RSA",
        "modulus_index": 2,
        "modulus_bytes": 256,
        "signature_bytes": 256,
        "filename": "term41.default.loads",
        "timestamp": None,
        "timestamp_utc": None,
        "padding": 3,
        "layout": "1,2,3{4,5,6},7{8,9{10,11}},12,14,pad,pad,pad",
        "unknown_tags": [],
        "encryption": None,
    }


# --- records ---------------------------------------------------------------------------------


def _record(**changes: object) -> Record:
    fields: dict[str, object] = {
        "elements": (leaf(1, b"\x00\x10"), leaf(2, b"\x00\x00"), leaf(3, b"\x00\x00")),
        "role": 0,
        "dns_name": None,
        "subject": None,
        "issuer": None,
        "serial": None,
        "public_key": None,
        "certificate_der": None,
        "ip": None,
        "offset": 412,
    }
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def test_section4_record_without_serial_or_certificate_shows_nulls() -> None:
    assert record_view(_record(), 1) == {
        "index": 1,
        "offset": 412,
        "length": 15,  # three elements of 3 + 2 bytes
        "role": "SAST",
        "role_code": 0,
        "subject": None,
        "issuer": None,
        "serial": None,
        "dns_name": None,
        "ip": None,
        "has_certificate": False,
        "certificate_sha1": None,
        "layout": "1,2,3",
        "unknown_tags": [],
    }


def test_section4_record_ip_that_is_not_4_bytes_is_shown_as_hex() -> None:
    view = record_view(_record(ip=bytes.fromhex("20010db8000000000000000000000001"), role=99), 2)
    assert view["ip"] == "20010db8000000000000000000000001"
    assert view["role"] == 99
    assert record_view(_record(ip=bytes([10, 0, 0, 1])), 1)["ip"] == "10.0.0.1"
    assert record_view(_record(serial=b"\x0a\xbc"), 1)["serial"] == "0abc"


# --- container images --------------------------------------------------------------------------


def test_section10b_container_view_reports_the_sha256_check() -> None:
    payload = b"abc"
    # SHA-256("abc"), FIPS 180-2 appendix B.1; MD5 and SHA-1 of "abc" from RFC 1321 / FIPS 180.
    sha256_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    image = ContainerImage(
        header_length=336,
        reserved1=0,
        payload_length=3,
        reserved2=0,
        payload_sha256=bytes.fromhex(sha256_abc),
        name="x.loads",
        name_field=b"x.loads".ljust(24, b"\0"),
        signature=bytes(256),
        extra_header=b"",
        payload=payload,
    )
    assert container_view(image) == {
        "name": "x.loads",
        "header_length": 336,
        "payload_length": 3,
        "signature_bytes": 256,
        "hash": {
            "algorithm": "SHA-256",
            "stored": sha256_abc,
            "computed": sha256_abc,
            "ok": True,
        },
        "payload": {
            "length": 3,
            "md5": "900150983cd24fb0d6963f7d28e17f72",
            "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
        },
    }

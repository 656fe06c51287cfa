"""Trust-list rules of phone/formats/trustlist.py pinned one by one (issue 16).

Which record signed a list (phone-behaviour.md item 12: the signer named by issuer + serial must
match a SAST record; trust-file-formats.md section 3: "the record whose role is 0 (SAST) and whose
serial matches header tag 5"), what the self-check reports (shown by ``vphone tlv show/verify``),
and the record layout of trust-file-formats.md section 4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pytest
from conftest import FORMATS_NOW, FORMATS_TIMESTAMP
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from phone.errors import (
    FormatError,
    LengthError,
    StructureError,
    TruncatedError,
    ValueFormatError,
)
from phone.formats import (
    Role,
    Signer,
    TrustList,
    build_trust_list,
    certificateless_record,
    find_by_signer,
    find_sast,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
)
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.tlv import Element, cstring, leaf, u16
from phone.formats.trustlist import Record, parse_role
from phone.formats.views import self_check_view
from phone.pki import Identity, self_signed

# trust-file-formats.md section 4: record tags.
RECORD_LENGTH, ISSUER_NAME, SERIAL_NUMBER, FUNCTION, CERTIFICATE = 1, 5, 6, 4, 9
# trust-file-formats.md section 5: role codes.
SAST, CCM_TFTP, TVS = 0, 2, 21


def _record(body: list[Element]) -> Record:
    """A record of ``body``'s elements behind a record-length element (section 4, tag 1)."""
    size = 5 + sum(e.size for e in body)
    return Record(
        elements=(leaf(RECORD_LENGTH, u16(size)), *body),
        role=0,
        dns_name=None,
        subject=None,
        issuer=None,
        serial=None,
        public_key=None,
        certificate_der=None,
        ip=None,
    )


def _edited(record: Record, tag: int, value: bytes | None) -> Record:
    """``record`` with element ``tag`` given ``value`` (or dropped, for None)."""
    body = [e for e in record.elements[1:] if e.tag != tag or value is not None]
    if value is not None:
        body = [e if e.tag != tag else leaf(tag, value) for e in body]
    return _record(body)


def _signed(records: list[Record], signer: Signer) -> TrustList:
    """The list built and signed by ``signer``, then parsed back from its bytes."""
    built = build_trust_list(records, signer, timestamp=FORMATS_TIMESTAMP)
    return parse_trust_list(built.encode())


def _other_serial(certificate: x509.Certificate) -> bytes:
    serial = bytearray(serial_bytes(certificate.serial_number))
    serial[-1] ^= 0x01
    return bytes(serial)


# --- item 12: the signer record matches on role SAST, serial AND issuer --------------------


def _near_misses(sast: x509.Certificate) -> dict[str, Record]:
    """Records that each miss exactly one of the three conditions of the signer rule."""
    exact = record_from_certificate(sast, Role.SAST)
    return {
        "another serial": _edited(exact, SERIAL_NUMBER, _other_serial(sast)),
        "another issuer": _edited(exact, ISSUER_NAME, cstring("CN=someone-else")),
        "not SAST": record_from_certificate(sast, CCM_TFTP),
    }


@pytest.mark.parametrize("miss", ["another serial", "another issuer", "not SAST"])
def test_item12_signer_record_needs_sast_role_serial_and_issuer(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer, miss: str
) -> None:
    sast = itl_certs["SAST"]
    trust_list = _signed([_near_misses(sast)[miss]], rsa_signer)
    header = trust_list.header
    # The header names the signer by serial and issuer (section 2, tags 5 and 4/6).
    assert header.signer_serial == serial_bytes(sast.serial_number)
    assert header.signer_issuer == cucm_name(sast.issuer)
    assert find_sast(trust_list.records, header) is None
    assert trust_list.find_signer() is None
    assert find_by_signer(trust_list.records, header, [SAST]) is None
    check = verify_self_signed(trust_list)
    assert check.valid is None
    assert check.record is None
    assert check.reason == (
        f"no SAST record in the file has serial {serial_bytes(sast.serial_number).hex()} "
        f"and issuer {cucm_name(sast.issuer)!r}"
    )
    assert self_check_view(check, trust_list) == {
        "valid": None,
        "reason": check.reason,
        "record": None,
    }


def test_item12_signer_record_is_found_after_near_misses(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    sast = itl_certs["SAST"]
    misses = list(_near_misses(sast).values())
    trust_list = _signed([*misses, record_from_certificate(sast, Role.SAST)], rsa_signer)
    signer_record = trust_list.records[3]
    assert find_sast(trust_list.records, trust_list.header) is signer_record
    assert trust_list.find_signer() is signer_record
    assert find_by_signer(trust_list.records, trust_list.header, [SAST]) is signer_record
    check = verify_self_signed(trust_list)
    assert check.valid is True
    assert check.record is signer_record
    # The success text names the record's subject and serial (hex) as `vphone tlv` prints them.
    assert check.reason == (
        f"signed by SAST record {cucm_name(sast.subject)} "
        f"({serial_bytes(sast.serial_number).hex()})"
    )
    assert self_check_view(check, trust_list) == {
        "valid": True,
        "reason": check.reason,
        "record": 4,
    }


def test_item12_find_by_signer_takes_any_of_the_given_roles(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # Item 14: a .sgn signer is looked up among TFTP / CCM+TFTP records, not SAST only.
    sast = itl_certs["SAST"]
    trust_list = _signed([record_from_certificate(sast, CCM_TFTP)], rsa_signer)
    header = trust_list.header
    assert find_by_signer(trust_list.records, header, [3, CCM_TFTP]) is trust_list.records[0]
    assert find_by_signer(trust_list.records, header, [3, TVS]) is None
    misses = _near_misses(sast)
    for miss in ("another serial", "another issuer"):
        one = _signed([_edited(misses[miss], FUNCTION, u16(CCM_TFTP))], rsa_signer)
        assert one.records[0].role == CCM_TFTP
        assert find_by_signer(one.records, one.header, [CCM_TFTP]) is None


# --- the self-check's verdicts, as `vphone tlv show` reports them ---------------------------


def test_item12_signer_sast_record_without_certificate_is_invalid(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # The record matches the signer (role 0, serial, issuer) but carries no tag 9: there is no
    # key to check the signature with, so the list is invalid, not "unknown signer".
    sast = itl_certs["SAST"]
    bare = _edited(record_from_certificate(sast, Role.SAST), CERTIFICATE, None)
    trust_list = _signed([bare], rsa_signer)
    record = trust_list.records[0]
    assert record.certificate_der is None
    assert trust_list.find_signer() is record
    check = verify_self_signed(trust_list)
    assert check.valid is False
    assert check.record is record
    assert check.reason == "the signer's SAST record carries no certificate"
    assert self_check_view(check, trust_list) == {
        "valid": False,
        "reason": "the signer's SAST record carries no certificate",
        "record": 1,
    }


def test_item13_tampered_list_is_invalid_and_names_its_signer_record(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    sast = itl_certs["SAST"]
    built = build_trust_list(
        [record_from_certificate(sast, Role.SAST)], rsa_signer, timestamp=FORMATS_TIMESTAMP
    )
    data = bytearray(built.encode())
    data[-1] ^= 0x01  # the last byte of the SAST record's certificate
    trust_list = parse_trust_list(bytes(data))
    check = verify_self_signed(trust_list)
    assert check.valid is False
    assert check.record is trust_list.records[0]
    # item 17: RSA PKCS#1 v1.5 over the file minus the signature TLV, here SHA-1.
    assert check.reason.startswith("SHA-1 RSA signature does not match the file's contents")
    assert self_check_view(check, trust_list)["record"] == 1


def test_record_certificate_that_is_not_der_reads_in_full(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # A SAST record for the signer whose tag 9 is not DER X.509 (section 4: "DER X.509
    # certificate"): certificate() raises a format error naming the record's offset and tag 9,
    # and the self-check reports that text as the reason.
    sast = itl_certs["SAST"]
    broken = _edited(record_from_certificate(sast, Role.SAST), CERTIFICATE, b"\x30\x03abc")
    trust_list = _signed([broken], rsa_signer)
    record = trust_list.records[0]
    with pytest.raises(ValueFormatError) as caught:
        record.certificate()
    error = caught.value
    offset = trust_list.header.length  # the first record starts right after the header
    assert error.offset == offset
    assert error.expected == "a DER certificate in tag 9"
    text = str(error)
    assert text.startswith(f"at byte {offset}: record certificate is not valid DER X.509 (")
    assert text.endswith(") (expected a DER certificate in tag 9)")
    check = verify_self_signed(trust_list)
    assert (check.valid, check.record, check.reason) == (False, record, text)


# --- records (trust-file-formats.md section 4) ------------------------------------------------


@pytest.fixture(scope="module")
def header_bytes(rsa_signer: Signer) -> bytes:
    """The header of a signed list without records: records are appended to it by hand."""
    return build_trust_list([], rsa_signer, timestamp=FORMATS_TIMESTAMP).header.encode()


def test_record_built_without_dns_name_holds_just_the_nul(
    itl_certs: Mapping[str, x509.Certificate],
) -> None:
    # Section 4, tag 2: "length 1 (just the NUL) for eToken records"; CUCM order 1..9 (no IP).
    record = record_from_certificate(itl_certs["SAST"], Role.SAST)
    assert [e.tag for e in record.elements] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert record.elements[1] == leaf(2, b"\x00")
    assert record.dns_name == ""
    assert record.ip is None and record.ip_text is None
    assert record.elements[0].value == u16(record.size)
    assert record.offset == 0  # not placed in a file yet
    assert certificateless_record(TVS, dns_name="tvs1").offset == 0


def test_build_defaults_are_cucms(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # Section 3 / 12 (S2): CUCM writes "ITLFile.tlv", header version 1.2, SHA-1 (code 1), no tag
    # 28; records start right after the header, one after the other.
    records = [
        record_from_certificate(itl_certs["SAST"], Role.SAST),
        certificateless_record(TVS, dns_name="tvs1", ip="10.0.0.2"),
    ]
    trust_list = build_trust_list(records, rsa_signer, timestamp=FORMATS_TIMESTAMP)
    header = trust_list.header
    assert header.filename == "ITLFile.tlv"
    assert header.version_text == "1.2"
    assert header.digest_code == 1
    assert header.signer_version is None
    # certutils' tag 28 (section 5: signer version 1.1 for EC TFTP certificates) when asked.
    tagged = build_trust_list(
        records, rsa_signer, timestamp=FORMATS_TIMESTAMP, signer_version=(1, 1)
    )
    assert tagged.header.signer_version == (1, 1)
    assert parse_trust_list(tagged.encode()).header.signer_version == (1, 1)
    first, second = trust_list.records
    assert first.offset == header.length
    assert second.offset == header.length + first.size
    assert second.ip_text == "10.0.0.2"
    assert second.size == 5 + 3 + 5 + 5 + 3 + 4  # tags 1, 2 ("tvs1\0"), 4, 10
    data = trust_list.encode()
    assert data[second.offset : second.offset + second.size] == second.encode()
    assert parse_trust_list(data) == trust_list


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("CTLFile.tlv", "CTL"),
        ("ctlfile.tlv", "CTL"),
        ("CTLSEP001122334455.tlv", "CTL"),
        ("ITLFile.tlv", "ITL"),
        ("ITLSEP001122334455.tlv", "ITL"),
    ],
)
def test_ctl_or_itl_by_file_name(rsa_signer: Signer, filename: str, kind: str) -> None:
    # phone-behaviour.md item 2: CTLSEP<MAC>.tlv / ITLSEP<MAC>.tlv; the name is the only marker.
    trust_list = build_trust_list([], rsa_signer, filename=filename, timestamp=FORMATS_TIMESTAMP)
    assert trust_list.kind == kind
    assert trust_list.is_ctl is (kind == "CTL")


def test_roles_and_certificate_count(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # item 18 counts certificates, so records without tag 9 do not count.
    records = [
        record_from_certificate(itl_certs["SAST"], Role.SAST),
        certificateless_record(TVS, dns_name="tvs1"),
        record_from_certificate(itl_certs["TVS"], TVS),
        certificateless_record(3, dns_name="tftp"),
    ]
    trust_list = _signed(records, rsa_signer)
    assert trust_list.certificate_count() == 2
    assert [r.role for r in trust_list.with_role(TVS)] == [TVS, TVS]
    assert trust_list.with_role(TVS, 3) == trust_list.records[1:]
    assert trust_list.with_role(4) == ()


def test_record_ip_text_only_for_four_bytes(header_bytes: bytes) -> None:
    # Section 4, tag 10: "4 bytes, IPv4, network order"; other sizes are kept but not shown.
    def with_ip(ip: bytes) -> Record:
        body = leaf(2, b"h\x00").encode() + leaf(4, u16(3)).encode() + leaf(10, ip).encode()
        record = leaf(1, u16(5 + len(body))).encode() + body
        return parse_trust_list(header_bytes + record).records[0]

    assert with_ip(bytes([10, 35, 48, 106])).ip_text == "10.35.48.106"
    sixteen = with_ip(bytes(range(16)))
    assert sixteen.ip == bytes(range(16))
    assert sixteen.ip_text is None


def test_record_text_fields_and_raw_fields(header_bytes: bytes) -> None:
    body = b"".join(
        leaf(tag, value).encode()
        for tag, value in [
            (2, b"cucm-pub\x00"),
            (3, b"CN=subject\x00"),
            (4, u16(2)),
            (5, b"CN=issuer"),  # hand-made: no NUL (decoded all the same)
            (6, b"\x01\x02"),
            (7, b"key"),
            (9, b"not DER"),
        ]
    )
    raw = leaf(1, u16(5 + len(body))).encode() + body
    record = parse_trust_list(header_bytes + raw).records[0]
    assert (record.dns_name, record.subject, record.issuer) == (
        "cucm-pub",
        "CN=subject",
        "CN=issuer",
    )
    assert (record.serial, record.public_key, record.certificate_der) == (
        b"\x01\x02",
        b"key",
        b"not DER",
    )
    assert record.serial_hex == "0102"
    assert record.role == CCM_TFTP and record.role_label == "CCM+TFTP"
    assert record.offset == len(header_bytes)
    assert record.encode() == raw
    assert record.size == len(raw)


# --- parse errors, as `vphone tlv show` prints them (section 4: tag 1 comes first) ------------


def _error_text(data: bytes) -> str:
    with pytest.raises(FormatError) as caught:
        parse_trust_list(data)
    return str(caught.value)


def test_file_ending_inside_a_record_length_element(header_bytes: bytes) -> None:
    at = len(header_bytes)
    for tail in (b"\x01", b"\x01\x00\x02\x00"):
        with pytest.raises(TruncatedError):
            parse_trust_list(header_bytes + tail)
        assert _error_text(header_bytes + tail) == (
            f"at byte {at}: file ends inside a record's length element (expected 5 bytes)"
        )


def test_record_not_starting_with_its_length_element(header_bytes: bytes) -> None:
    at = len(header_bytes)
    expected = "(expected a record-length element (tag 1, length 2))"
    with pytest.raises(StructureError):
        parse_trust_list(header_bytes + b"\x02\x00\x02\x00\x05")
    assert _error_text(header_bytes + b"\x02\x00\x02\x00\x05") == (
        f"at byte {at}: record starts with tag 2 {expected}"
    )
    # Tag 1 with a length other than 2 is no record-length element either.
    for bad in (b"\x01\x00\x03\x00\x05\x00", b"\x01\x01\x02\x00\x05"):
        assert _error_text(header_bytes + bad) == (
            f"at byte {at}: record starts with tag 1 {expected}"
        )


def test_record_length_below_five(header_bytes: bytes) -> None:
    at = len(header_bytes)
    with pytest.raises(LengthError):
        parse_trust_list(header_bytes + b"\x01\x00\x02\x00\x04")
    assert _error_text(header_bytes + b"\x01\x00\x02\x00\x04") == (
        f"at byte {at}: record length 4 is smaller than its own length element "
        "(expected a record length of at least 5)"
    )


def test_record_of_exactly_five_bytes_has_no_role(header_bytes: bytes) -> None:
    # Length 5 is the length element alone: it passes the length checks and then lacks tag 4.
    at = len(header_bytes)
    with pytest.raises(StructureError):
        parse_trust_list(header_bytes + b"\x01\x00\x02\x00\x05")
    assert _error_text(header_bytes + b"\x01\x00\x02\x00\x05") == (
        f"at byte {at}: record has no role (expected a FUNCTION element (tag 4))"
    )


def test_record_running_past_the_end(header_bytes: bytes) -> None:
    at = len(header_bytes)
    role = leaf(4, u16(3)).encode()
    record = leaf(1, u16(5 + len(role))).encode() + role  # 10 bytes
    assert len(parse_trust_list(header_bytes + record).records) == 1
    for cut, missing in ((1, 1), (3, 3)):
        data = header_bytes + record[:-cut]
        with pytest.raises(TruncatedError):
            parse_trust_list(data)
        assert _error_text(data) == (
            f"at byte {at}: record of 10 bytes runs past the end of the file "
            f"(expected {missing} more bytes)"
        )


def test_record_role_must_be_two_bytes(header_bytes: bytes) -> None:
    at = len(header_bytes)
    for value in (b"\x03", b"\x00\x00\x03"):
        role = leaf(4, value).encode()
        data = header_bytes + leaf(1, u16(5 + len(role))).encode() + role
        with pytest.raises(ValueFormatError):
            parse_trust_list(data)
        assert _error_text(data) == (
            f"at byte {at}: record role holds {len(value)} bytes (expected a 2-byte role code)"
        )


def test_size_limit_default_is_one_mebibyte(header_bytes: bytes) -> None:
    # parse_trust_list's documented default: 1 MiB (1,048,576 bytes); item 18's 64 KB lists fit.
    limit = 1 << 20
    role = leaf(4, u16(3)).encode()
    filler_size = 0xFFFF - 5 - len(role)
    records = b""
    while len(header_bytes) + len(records) + 0xFFFF <= limit:
        filler = leaf(0x63, bytes(filler_size - 3)).encode()
        records += leaf(1, u16(0xFFFF)).encode() + role + filler
    rest = limit - len(header_bytes) - len(records)
    filler = leaf(0x63, bytes(rest - 5 - len(role) - 3)).encode()
    records += leaf(1, u16(rest)).encode() + role + filler
    data = header_bytes + records
    assert len(data) == limit
    assert parse_trust_list(data).encode() == data
    with pytest.raises(StructureError):
        parse_trust_list(data + b"\x00")
    assert _error_text(data + b"\x00") == (
        f"at byte {limit}: file of {limit + 1} bytes is larger than any trust list "
        f"(expected a trust list of at most {limit} bytes)"
    )


# --- certificates inside records (section 4, tag 9) -------------------------------------------


def _in_a_record(der: bytes, header_bytes: bytes) -> Record:
    body = leaf(4, u16(SAST)).encode() + leaf(CERTIFICATE, der).encode()
    return parse_trust_list(header_bytes + leaf(1, u16(5 + len(body))).encode() + body).records[0]


def test_record_certificate_with_a_zero_serial_is_still_usable(
    formats_identities: Mapping[str, Identity], header_bytes: bytes
) -> None:
    # Old device certificates carry a zero serial (RFC 5280 forbids it); the record stays usable.
    ident = self_signed(
        "zero-serial", now=FORMATS_NOW, key=formats_identities["small"].key, serial=0x1F
    )
    der = bytearray(ident.certificate.public_bytes(Encoding.DER))
    at = der.index(b"\xa0\x03\x02\x01\x02\x02\x01\x1f")  # version 3, then serial INTEGER 0x1F
    der[at + 7] = 0x00
    record = _in_a_record(bytes(der), header_bytes)
    certificate = record.certificate()
    assert certificate is not None
    assert certificate.subject == ident.certificate.subject
    # The "show ctl" hash column: SHA-1 of the certificate's DER bytes (section 4, tag 9).
    assert record.certificate_sha1 == hashlib.sha1(bytes(der)).hexdigest()


def test_record_certificate_with_a_malformed_extension_fails_when_read(
    formats_identities: Mapping[str, Identity], header_bytes: bytes
) -> None:
    # A certificate whose BasicConstraints holds an OCTET STRING where the cA BOOLEAN belongs:
    # the error belongs to the record, at once, not to whoever reads the extensions later.
    der = bytearray(formats_identities["CAPF"].certificate.public_bytes(Encoding.DER))
    at = der.index(b"\x30\x06\x01\x01\xff\x02\x01\x00")  # CA:TRUE, pathlen 0
    der[at + 2] = 0x04
    record = _in_a_record(bytes(der), header_bytes)
    with pytest.raises(ValueFormatError) as caught:
        record.certificate()
    assert str(caught.value).endswith("(expected a DER certificate in tag 9)")
    assert caught.value.offset == len(header_bytes)


def test_role_names_as_typed(header_bytes: bytes) -> None:
    # Section 5 names; a person may type either the label or the enum name, in any case.
    assert parse_role("Ccm+Tftp") == CCM_TFTP
    assert parse_role("tvs") == TVS
    assert parse_role("App_Server") == 7
    assert parse_role("APP-SERVER") == 7
    assert parse_role("0") == SAST
    with pytest.raises(ValueError) as caught:
        parse_role("PHONE")
    assert str(caught.value) == "unknown role 'PHONE'"

"""Trust-list rules of phone/formats/trustlist.py pinned one by one (issue 16).

Which record signed a list (phone-behaviour.md item 12: the signer named by issuer + serial must
match a SAST record; trust-file-formats.md section 3: "the record whose role is 0 (SAST) and whose
serial matches header tag 5"), what the self-check reports (shown by ``vphone tlv show/verify``),
and the record layout of trust-file-formats.md section 4.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from conftest import FORMATS_TIMESTAMP
from cryptography import x509

from phone.formats import (
    Role,
    Signer,
    TrustList,
    build_trust_list,
    find_by_signer,
    find_sast,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
)
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.tlv import Element, cstring, leaf, u16
from phone.formats.trustlist import Record
from phone.formats.views import self_check_view

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

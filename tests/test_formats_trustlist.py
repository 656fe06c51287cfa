"""ITL and CTL files (trust-file-formats.md sections 3 to 5)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping

import pytest
from conftest import FORMATS_NOW, FORMATS_TIMESTAMP
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from samples import CERTUTILS_ITL, sample_bytes

from phone.errors import (
    FormatError,
    LengthError,
    SignatureError,
    StructureError,
    TruncatedError,
    ValueFormatError,
)
from phone.formats import (
    Digest,
    Role,
    Signer,
    TrustList,
    build_trust_list,
    certificateless_record,
    find_by_signer,
    parse_trust_list,
    record_from_certificate,
    role_label,
    verify_self_signed,
    verify_with_certificate,
)
from phone.formats.certfields import cucm_name, public_key_bytes, serial_bytes
from phone.formats.tlv import Element, find, leaf, u16
from phone.formats.trustlist import MAX_TRUST_LIST_SIZE, Record, parse_role
from phone.formats.views import element_layout, role_view, trust_list_view
from phone.pki import Identity, self_signed

Verify = Callable[[bytes, x509.Certificate], None]

CUCM_HEADER = "1,2,3{4,5,6},7{8,9{10,11}},12,14,15"


def _flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= mask
    return bytes(out)


def _fails(data: bytes, certificate: x509.Certificate) -> bool:
    """True when ``data`` does not parse, or parses and does not verify with ``certificate``."""
    try:
        verify_with_certificate(parse_trust_list(data), certificate)
    except (FormatError, SignatureError):
        return True
    return False


# --- the certutils sample (S1) ---------------------------------------------------------------


def test_sample_round_trips_byte_for_byte() -> None:
    data = sample_bytes(CERTUTILS_ITL)
    trust_list = parse_trust_list(data)
    assert trust_list.encode() == data
    assert sum(r.size for r in trust_list.records) == len(data) - trust_list.header.length


def test_sample_verifies_against_its_own_sast_record(independent_verify: Verify) -> None:
    trust_list = parse_trust_list(sample_bytes(CERTUTILS_ITL))
    check = verify_self_signed(trust_list)
    assert check.valid is True, check.reason
    assert check.record is trust_list.records[0]
    certificate = trust_list.records[0].certificate()
    assert certificate is not None
    independent_verify(trust_list.encode(), certificate)


def test_sample_records() -> None:
    trust_list = parse_trust_list(sample_bytes(CERTUTILS_ITL))
    assert trust_list.kind == "ITL"
    assert [r.role_label for r in trust_list.records] == [
        "SAST",
        "CCM",
        "CCM",
        "APP-SERVER",
        "APP-SERVER",
    ]
    assert trust_list.certificate_count() == 5
    for record in trust_list.records:
        certificate = record.certificate()
        assert certificate is not None
        # Record fields match the certificate they carry.
        assert record.serial == serial_bytes(certificate.serial_number)
        assert record.public_key == public_key_bytes(certificate)
        signature = find(record.elements, 8)
        assert signature is not None and signature.value == certificate.signature
        assert element_layout(record.elements) == "1,3,5,6,4,7,8,9"  # certutils' order
    gts = trust_list.records[4]
    assert gts.serial_hex == "0203e5936f31b01349886ba217"
    assert gts.subject == "C=US,O=Google Trust Services LLC,CN=GTS Root R1"


def test_sample_tamper_anywhere_fails() -> None:
    data = sample_bytes(CERTUTILS_ITL)
    trust_list = parse_trust_list(data)
    certificate = trust_list.records[0].certificate()
    assert certificate is not None
    rng = random.Random(2015)
    positions = rng.sample(range(len(data)), 1000)
    positions += [0, 5, 9, trust_list.header.length, len(data) - 1]  # edges
    for at in positions:
        assert _fails(_flip(data, at), certificate), f"flip at byte {at} still verifies"


# --- building (section 3) --------------------------------------------------------------------


def test_cucm_ordered_itl_layout(cucm_itl: TrustList) -> None:
    header = cucm_itl.header
    pads = sum(1 for e in header.elements if e.single_byte)
    assert element_layout(header.elements) == CUCM_HEADER + ",pad" * pads
    assert header.length % 4 == 0
    assert header.length == len(header.encode())
    assert header.version_text == "1.2"
    assert header.signer_version is None  # CUCM writes no tag 28
    assert header.timestamp == FORMATS_TIMESTAMP
    assert [r.role_label for r in cucm_itl.records] == ["SAST", "CCM+TFTP", "TVS", "CAPF"]
    assert element_layout(cucm_itl.records[0].elements) == "1,2,3,4,5,6,7,8,9"
    assert element_layout(cucm_itl.records[1].elements) == "1,2,3,4,5,6,7,8,9,10"
    assert cucm_itl.records[1].ip_text == "10.35.48.106"
    assert cucm_itl.records[1].dns_name == "cucm-pub"


def test_built_itl_round_trips_and_self_verifies(cucm_itl: TrustList) -> None:
    data = cucm_itl.encode()
    parsed = parse_trust_list(data)
    assert parsed.encode() == data
    assert parsed == cucm_itl
    check = verify_self_signed(parsed)
    assert check.valid is True, check.reason
    assert check.record is parsed.records[0]


def test_built_itl_verifies_independently(
    cucm_itl: TrustList, itl_certs: Mapping[str, x509.Certificate], independent_verify: Verify
) -> None:
    data = cucm_itl.encode()
    independent_verify(data, itl_certs["SAST"])
    with pytest.raises(InvalidSignature):
        independent_verify(data, itl_certs["TVS"])


def test_record_offsets_point_into_the_built_file(cucm_itl: TrustList) -> None:
    data = cucm_itl.encode()
    for record in cucm_itl.records:
        assert data[record.offset : record.offset + record.size] == record.encode()


def test_header_names_the_signer_as_cucm_does(
    cucm_itl: TrustList, rsa_signer: Signer, itl_certs: Mapping[str, x509.Certificate]
) -> None:
    header = cucm_itl.header
    sast = itl_certs["SAST"]
    assert header.signer_name == cucm_name(sast.subject) == rsa_signer.name
    assert header.signer_name.startswith("CN=ITLRECOVERY_cucm-pub;OU=")
    assert header.signer_serial == serial_bytes(sast.serial_number)
    assert header.signer_issuer == cucm_name(sast.issuer)
    assert header.modulus_index == 2 and len(header.signature) == 256


def test_sha512_itl(
    cucm_itl_sha512: TrustList,
    itl_certs: Mapping[str, x509.Certificate],
    independent_verify: Verify,
) -> None:
    data = cucm_itl_sha512.encode()
    assert cucm_itl_sha512.header.digest is Digest.SHA512
    assert b"\x07\x00\x0f\x08\x00\x01\x03" in data[: cucm_itl_sha512.header.length]  # code 3
    assert verify_self_signed(parse_trust_list(data)).valid is True
    independent_verify(data, itl_certs["SAST"])
    # The same bytes checked as SHA-1 do not verify: the digest code matters.
    key = itl_certs["SAST"].public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    signed = cucm_itl_sha512.signed_data()
    with pytest.raises(InvalidSignature):
        key.verify(cucm_itl_sha512.header.signature, signed, padding.PKCS1v15(), hashes.SHA1())


def test_signed_data_is_the_file_minus_the_signature_element(cucm_itl: TrustList) -> None:
    data = cucm_itl.encode()
    at = cucm_itl.header.offsets[12]
    assert cucm_itl.signed_data() == data[:at] + data[at + 3 + 256 :]


# --- tampering and wrong signers -------------------------------------------------------------


def test_flipped_signature_byte_fails(
    cucm_itl: TrustList, itl_certs: Mapping[str, x509.Certificate]
) -> None:
    data = cucm_itl.encode()
    at = cucm_itl.header.offsets[12] + 3
    for offset in (0, 128, 255):
        bad = _flip(data, at + offset)
        with pytest.raises(SignatureError, match="does not match"):
            verify_with_certificate(parse_trust_list(bad), itl_certs["SAST"])
        assert verify_self_signed(parse_trust_list(bad)).valid is False


def test_a_flip_of_any_covered_byte_fails(
    cucm_itl: TrustList, itl_certs: Mapping[str, x509.Certificate]
) -> None:
    data = cucm_itl.encode()
    sig_at = cucm_itl.header.offsets[12]
    covered = [i for i in range(len(data)) if not sig_at <= i < sig_at + 259]
    assert len(covered) == len(cucm_itl.signed_data())
    for at in covered:
        assert _fails(_flip(data, at), itl_certs["SAST"]), f"flip at byte {at} still verifies"


def test_wrong_certificate_fails(cucm_itl: TrustList, stranger_cert: x509.Certificate) -> None:
    with pytest.raises(SignatureError):
        verify_with_certificate(cucm_itl, stranger_cert)


def test_no_matching_sast_record_is_unknown_not_invalid(
    itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # Signed by the SAST key, but the file holds no SAST record for it (pre-12 CallManager
    # signing, or a list meant to be checked against the phone's current ITL).
    records = [record_from_certificate(itl_certs["TVS"], Role.TVS)]
    trust_list = build_trust_list(records, rsa_signer, timestamp=FORMATS_TIMESTAMP)
    check = verify_self_signed(trust_list)
    assert check.valid is None
    assert check.record is None
    assert trust_list.header.serial_hex in check.reason


def test_sast_record_of_an_impostor_fails(
    itl_certs: Mapping[str, x509.Certificate],
    rsa_signer: Signer,
    formats_identities: Mapping[str, Identity],
) -> None:
    # A SAST record with the signer's name, serial and issuer but another key: the phone must
    # not take the serial's word for it.
    sast = itl_certs["SAST"]
    impostor = self_signed(
        "ITLRECOVERY_cucm-pub",
        now=FORMATS_NOW,
        key=formats_identities["stranger"].key,
        serial=sast.serial_number,
    ).certificate
    trust_list = build_trust_list(
        [record_from_certificate(impostor, Role.SAST)], rsa_signer, timestamp=FORMATS_TIMESTAMP
    )
    assert find_by_signer(trust_list.records, trust_list.header, [Role.SAST]) is not None
    check = verify_self_signed(trust_list)
    assert check.valid is False
    assert "does not match" in check.reason


# --- records (section 4) ---------------------------------------------------------------------


def test_certificateless_record_is_33_bytes_and_round_trips(rsa_signer: Signer) -> None:
    record = certificateless_record(Role.CCM_TFTP, dns_name="10.48.47.153", ip="10.48.47.153")
    assert record.size == 33
    assert element_layout(record.elements) == "1,2,4,10"
    trust_list = build_trust_list(
        [record, record], rsa_signer, filename="CTLFile.tlv", timestamp=FORMATS_TIMESTAMP
    )
    data = trust_list.encode()
    parsed = parse_trust_list(data)
    assert parsed.encode() == data
    assert parsed.kind == "CTL"
    assert [r.size for r in parsed.records] == [33, 33]
    first = parsed.records[0]
    assert first.certificate() is None
    assert first.certificate_sha1 is None
    assert first.subject is None and first.serial is None and first.serial_hex == ""
    assert first.ip_text == "10.48.47.153"
    assert first.dns_name == "10.48.47.153"


@pytest.mark.parametrize("code", [6, 22, 300, 0xFFFF])
def test_unknown_role_codes_are_kept_and_shown_as_numbers(rsa_signer: Signer, code: int) -> None:
    record = certificateless_record(code, dns_name="x")
    trust_list = build_trust_list([record], rsa_signer, timestamp=FORMATS_TIMESTAMP)
    parsed = parse_trust_list(trust_list.encode())
    assert parsed.records[0].role == code
    assert role_label(code) == str(code)
    assert role_view(code) == code
    assert trust_list_view(parsed)["records"][0]["role"] == code


def test_role_names() -> None:
    assert [role_label(int(r)) for r in Role] == [
        "SAST",
        "CCM",
        "CCM+TFTP",
        "TFTP",
        "CAPF",
        "SRST",
        "APP-SERVER",
        "TVS",
    ]
    assert [int(r) for r in Role] == [0, 1, 2, 3, 4, 5, 7, 21]
    assert parse_role("ccm+tftp") == 2
    assert parse_role("APP_SERVER") == 7
    assert parse_role("21") == 21
    with pytest.raises(ValueError, match="unknown role"):
        parse_role("PHONE")


def _with_record_element(record: Record, element: Element, at: int) -> Record:
    """``record`` with ``element`` inserted at position ``at`` (record length fixed)."""
    body = list(record.elements[1:])
    body.insert(at, element)
    size = 5 + sum(e.size for e in body)
    return Record(
        elements=(leaf(1, u16(size)), *body),
        role=record.role,
        dns_name=record.dns_name,
        subject=record.subject,
        issuer=record.issuer,
        serial=record.serial,
        public_key=record.public_key,
        certificate_der=record.certificate_der,
        ip=record.ip,
    )


def test_unknown_tags_survive_a_round_trip(
    cucm_itl: TrustList, itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer
) -> None:
    # An unknown tag inside a record...
    record = record_from_certificate(itl_certs["TVS"], Role.TVS, dns_name="tvs")
    odd = _with_record_element(record, leaf(0x42, b"future"), 3)
    trust_list = build_trust_list([odd], rsa_signer, timestamp=FORMATS_TIMESTAMP)
    data = trust_list.encode()
    parsed = parse_trust_list(data)
    assert parsed.encode() == data
    assert element_layout(parsed.records[0].elements) == "1,2,3,4,66,5,6,7,8,9"
    assert trust_list_view(parsed)["records"][0]["unknown_tags"] == [66]
    assert verify_self_signed(parsed).valid is None  # no SAST record; parsing is what counts

    # ... and one in the header, after the timestamp (header length grows accordingly).
    header = cucm_itl.header.encode()
    body = cucm_itl.encode()[len(header) :]
    extra = leaf(0x63, b"\x01\x02\x03").encode()
    unpadded = header.rstrip(b"\x0d")
    new_length = len(unpadded) + len(extra)
    padding = (-new_length) % 4
    new_header = bytearray(unpadded + extra + b"\x0d" * padding)
    new_header[8:10] = u16(len(new_header))
    data = bytes(new_header) + body
    parsed = parse_trust_list(data)
    assert parsed.encode() == data
    assert element_layout(parsed.header.elements).startswith(CUCM_HEADER + ",99")
    assert trust_list_view(parsed)["header"]["unknown_tags"] == [99]
    assert len(parsed.records) == 4


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda rec: b"\x01\x00\x02\x00\x00" + rec[5:], LengthError, "record length 0"),
        (lambda rec: b"\x01\x00\x02\x00\x04" + rec[5:], LengthError, "smaller than its own"),
        (lambda rec: b"\x02" + rec[1:], StructureError, "record starts with tag 2"),
        (lambda rec: rec[:1] + b"\x00\x03" + rec[3:], StructureError, "record starts with"),
    ],
)
def test_bad_record_length_element(
    cucm_itl: TrustList, mutate: Callable[[bytes], bytes], error: type[Exception], message: str
) -> None:
    data = cucm_itl.encode()
    start = cucm_itl.header.length
    bad = data[:start] + mutate(data[start:])
    with pytest.raises(error, match=message) as caught:
        parse_trust_list(bad)
    assert caught.value.offset == start  # type: ignore[attr-defined]


def test_record_without_role(rsa_signer: Signer) -> None:
    record = certificateless_record(Role.TFTP, dns_name="tftp")
    data = build_trust_list([record], rsa_signer, timestamp=FORMATS_TIMESTAMP).encode()
    start = len(data) - record.size
    # Turn the FUNCTION tag (4) into an unknown tag 99: the record then has no role.
    at = data.index(b"\x04\x00\x02", start)
    with pytest.raises(StructureError, match="no role") as caught:
        parse_trust_list(data[:at] + b"\x63" + data[at + 1 :])
    assert caught.value.offset == start


def test_record_role_of_the_wrong_size(rsa_signer: Signer) -> None:
    record = _with_record_element(certificateless_record(Role.TFTP, dns_name="t"), leaf(9, b""), 0)
    body = [e for e in record.elements[1:] if e.tag != 4] + [leaf(4, b"\x00\x00\x03")]
    size = 5 + sum(e.size for e in body)
    raw = leaf(1, u16(size)).encode() + b"".join(e.encode() for e in body)
    header = build_trust_list([], rsa_signer, timestamp=FORMATS_TIMESTAMP).header.encode()
    with pytest.raises(ValueFormatError, match="role holds 3 bytes"):
        parse_trust_list(header + raw)


def test_record_element_overruns_its_record(cucm_itl: TrustList) -> None:
    data = bytearray(cucm_itl.encode())
    first = cucm_itl.records[0]
    # The DNS-name element (right after the 5-byte length) claims more bytes than the record.
    at = first.offset + 5
    assert data[at] == 2
    data[at + 1 : at + 3] = u16(0xFFFF)
    with pytest.raises(LengthError, match="enclosing region") as caught:
        parse_trust_list(bytes(data))
    assert caught.value.offset == at


def test_last_record_cut_short_is_truncation(cucm_itl: TrustList) -> None:
    data = cucm_itl.encode()
    with pytest.raises(TruncatedError, match="runs past the end") as caught:
        parse_trust_list(data[:-1])
    assert caught.value.offset == cucm_itl.records[-1].offset


def test_every_truncation_fails_or_ends_at_a_record_boundary(rsa_signer: Signer) -> None:
    records = [
        certificateless_record(Role.CCM_TFTP, dns_name="10.48.47.153", ip="10.48.47.153"),
        certificateless_record(Role.TVS, dns_name="tvs"),
    ]
    data = build_trust_list(records, rsa_signer, timestamp=FORMATS_TIMESTAMP).encode()
    header_length = parse_trust_list(data).header.length
    boundaries = {header_length, header_length + 33, len(data)}
    for size in range(len(data) + 1):
        prefix = data[:size]
        if size in boundaries:
            assert len(parse_trust_list(prefix).records) == [*sorted(boundaries)].index(size)
        elif size < header_length:
            with pytest.raises(FormatError):
                parse_trust_list(prefix)
        else:
            with pytest.raises(TruncatedError):
                parse_trust_list(prefix)


def test_size_limit(cucm_itl: TrustList) -> None:
    data = cucm_itl.encode()
    assert len(data) < MAX_TRUST_LIST_SIZE
    with pytest.raises(StructureError, match="larger than any trust list") as caught:
        parse_trust_list(data, max_size=len(data) - 1)
    assert caught.value.offset == len(data) - 1
    assert parse_trust_list(data, max_size=len(data)).encode() == data


# --- certificates inside records -------------------------------------------------------------


def test_record_certificate_that_is_not_der(cucm_itl: TrustList) -> None:
    record = cucm_itl.records[0]
    assert record.certificate_der is not None
    broken = dataclasses.replace(record, certificate_der=b"\x30\x03abc")
    with pytest.raises(ValueFormatError, match="not valid DER") as caught:
        broken.certificate()
    assert caught.value.offset == record.offset


def test_record_certificate_with_a_bad_version_is_a_format_error(cucm_itl: TrustList) -> None:
    # cryptography raises InvalidVersion (not a ValueError) for this one.
    der = bytearray(cucm_itl.records[0].certificate_der or b"")
    at = der.index(b"\xa0\x03\x02\x01\x02")
    der[at + 4] = 0x07
    broken = dataclasses.replace(cucm_itl.records[0], certificate_der=bytes(der))
    with pytest.raises(ValueFormatError, match="not valid DER"):
        broken.certificate()


def test_signer_certificate_with_an_unknown_key_type_is_invalid(cucm_itl: TrustList) -> None:
    # The SAST record's certificate parses, but its key algorithm OID is not RSA any more:
    # the self-check reports it instead of crashing.
    data = cucm_itl.encode()
    rsa_oid = bytes.fromhex("06092a864886f70d0101010500")
    at = data.index(rsa_oid, cucm_itl.records[0].offset)
    assert at < cucm_itl.records[1].offset
    bad = data[: at + 10] + b"\x63" + data[at + 11 :]
    check = verify_self_signed(parse_trust_list(bad))
    assert check.valid is False
    assert "cannot be loaded" in check.reason

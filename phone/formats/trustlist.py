"""ITL and CTL files (``ITLFile.tlv``, ``CTLFile.tlv``, ``ITLSEP<MAC>.tlv``...).

A trust list is a signed header (section 2) followed by records (section 4), each record a run
of TLV elements that starts with its own total length. Parsing keeps every element, so encoding
reproduces the input byte for byte; building writes CUCM's element orders.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import warnings
from collections.abc import Iterable, Sequence
from enum import IntEnum

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from phone.errors import (
    LengthError,
    SignatureError,
    StructureError,
    TruncatedError,
    ValueFormatError,
)
from phone.formats.certfields import cucm_name, public_key_bytes, serial_bytes
from phone.formats.frozen import Frozen
from phone.formats.header import (
    Digest,
    Header,
)
from phone.formats.header import parse_header as _parse_header
from phone.formats.signature import Signer, signer_public_key, verify_signature
from phone.formats.tlv import (
    Element,
    cstring,
    decode_cstring,
    encode_all,
    find,
    leaf,
    parse_elements,
    u16,
)


class Role(IntEnum):
    """Record FUNCTION codes (section 5). Files may hold codes not listed here; they are kept."""

    SAST = 0
    CCM = 1
    CCM_TFTP = 2
    TFTP = 3
    CAPF = 4
    SRST = 5
    APP_SERVER = 7
    TVS = 21

    @property
    def label(self) -> str:
        """The role's name as ``show itl`` prints it."""
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.SAST: "SAST",
    Role.CCM: "CCM",
    Role.CCM_TFTP: "CCM+TFTP",
    Role.TFTP: "TFTP",
    Role.CAPF: "CAPF",
    Role.SRST: "SRST",
    Role.APP_SERVER: "APP-SERVER",
    Role.TVS: "TVS",
}


def role_label(code: int) -> str:
    """Name of a role code, or the number itself for a code no source names."""
    try:
        return Role(code).label
    except ValueError:
        return str(code)


def parse_role(text: str) -> int:
    """Accept a role name ("CCM+TFTP", "tvs") or number as typed by a person."""
    if text.isdigit():
        return int(text)
    for role in Role:
        if role.label.lower() == text.lower() or role.name.lower() == text.lower():
            return int(role)
    raise ValueError(f"unknown role {text!r}")


class RecordTag(IntEnum):
    """Record tags (section 4)."""

    RECORD_LENGTH = 1
    DNS_NAME = 2
    SUBJECT_NAME = 3
    FUNCTION = 4
    ISSUER_NAME = 5
    SERIAL_NUMBER = 6
    PUBLIC_KEY = 7
    SIGNATURE = 8
    CERTIFICATE = 9
    IP_ADDRESS = 10
    CERTIFICATE_HASH = 11
    HASH_ALGORITHM = 12


# What cryptography raises for DER that is not a usable certificate: ValueError for most
# problems, but a bad version and a repeated or unsupported extension have their own exception
# classes that do not derive from ValueError (found by tools/fuzz_formats.py).
_CERTIFICATE_ERRORS = (
    ValueError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


@functools.lru_cache(maxsize=256)
def _load_certificate(der: bytes) -> x509.Certificate:
    """The certificate in ``der``, extensions decoded.

    Remembered per DER: certificates are immutable, and the phones of a fleet check the same
    few records of their shared trust lists on every boot (about 10 us a load). A failure
    is not remembered: it raises again on every call.
    """
    with warnings.catch_warnings():
        # A zero or negative serial (RFC 5280 forbids it, some old device certificates have
        # one) only draws a deprecation warning; the record is still usable.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        certificate = x509.load_der_x509_certificate(der)
        # Extensions decode lazily (python-libraries.md 4.1); touch them here so a malformed
        # extension is a format error of this record, not a crash later.
        _ = certificate.extensions
    return certificate


_set = object.__setattr__  # how a frozen value sets its own fields (phone.formats.frozen)


class Record(Frozen):
    """One trust-list record. ``elements`` is authoritative; the rest are typed views."""

    _fields = (
        "elements",
        "role",
        "dns_name",
        "subject",
        "issuer",
        "serial",
        "public_key",
        "certificate_der",
        "ip",
        "offset",
        "raw",
    )
    __slots__ = _fields
    _compare = _fields[:-2]  # not offset and raw
    _repr = _fields[:-1]  # not raw
    elements: tuple[Element, ...]
    role: int
    dns_name: str | None
    subject: str | None
    issuer: str | None
    serial: bytes | None
    public_key: bytes | None
    certificate_der: bytes | None
    ip: bytes | None
    offset: int
    raw: bytes  # the bytes as parsed

    def __init__(  # noqa: PLR0917 - a dataclass's positional order, kept
        self,
        elements: tuple[Element, ...],
        role: int,
        dns_name: str | None,
        subject: str | None,
        issuer: str | None,
        serial: bytes | None,
        public_key: bytes | None,
        certificate_der: bytes | None,
        ip: bytes | None,
        offset: int = 0,
        raw: bytes = b"",
    ) -> None:
        _set(self, "elements", elements)
        _set(self, "role", role)
        _set(self, "dns_name", dns_name)
        _set(self, "subject", subject)
        _set(self, "issuer", issuer)
        _set(self, "serial", serial)
        _set(self, "public_key", public_key)
        _set(self, "certificate_der", certificate_der)
        _set(self, "ip", ip)
        _set(self, "offset", offset)
        _set(self, "raw", raw)

    @property
    def role_label(self) -> str:
        """The role's name, or its number when unknown."""
        return role_label(self.role)

    @property
    def serial_hex(self) -> str:
        """Serial as lowercase hex ("" when the record has none)."""
        return self.serial.hex() if self.serial else ""

    @property
    def ip_text(self) -> str | None:
        """Tag 10 as a dotted quad, when it holds 4 bytes."""
        if self.ip is None or len(self.ip) != 4:
            return None
        return str(ipaddress.IPv4Address(self.ip))

    @property
    def size(self) -> int:
        """Encoded size in bytes (equals the record-length value)."""
        return sum(e.size for e in self.elements)

    def encode(self) -> bytes:
        """Record bytes exactly as in the file."""
        return self.raw or encode_all(self.elements)

    def certificate(self) -> x509.Certificate | None:
        """The DER certificate of tag 9, parsed; None for records without one.

        Raises:
            ValueFormatError: the certificate bytes are not DER X.509.
        """
        if self.certificate_der is None:
            return None
        try:
            certificate = _load_certificate(self.certificate_der)
        except _CERTIFICATE_ERRORS as exc:
            raise ValueFormatError(
                f"record certificate is not valid DER X.509 ({exc})",
                offset=self.offset,
                expected="a DER certificate in tag 9",
            ) from None
        return certificate

    @property
    def certificate_sha1(self) -> str | None:
        """SHA-1 of the certificate DER: the hash column of ``show itl``/``show ctl``."""
        if self.certificate_der is None:
            return None
        return hashlib.sha1(self.certificate_der).hexdigest()


class TrustList(Frozen):
    """An ITL or CTL file."""

    _fields = ("header", "records")
    __slots__ = _fields
    _compare = _fields
    _repr = _fields
    header: Header
    records: tuple[Record, ...]

    def __init__(self, header: Header, records: tuple[Record, ...]) -> None:
        _set(self, "header", header)
        _set(self, "records", records)

    def encode(self) -> bytes:
        """The file's bytes."""
        return self.header.encode() + b"".join(r.encode() for r in self.records)

    def signed_data(self) -> bytes:
        """The bytes the signature covers: the file minus the signature element."""
        return self.header.encode_unsigned() + b"".join(r.encode() for r in self.records)

    @property
    def is_ctl(self) -> bool:
        """True for a CTL (by file name, the only marker the format has)."""
        return self.header.filename.upper().startswith("CTL")

    @property
    def kind(self) -> str:
        """ "CTL" or "ITL"."""
        return "CTL" if self.is_ctl else "ITL"

    def with_role(self, *roles: int) -> tuple[Record, ...]:
        """Records whose role is one of ``roles``."""
        return tuple(r for r in self.records if r.role in roles)

    def certificate_count(self) -> int:
        """How many records carry a certificate (the 39-certificate limit counts these)."""
        return sum(1 for r in self.records if r.certificate_der is not None)

    def find_signer(self) -> Record | None:
        """The SAST record whose serial and issuer match the header's signer, if any.

        A self-signed list names its own signer; phones check a *new* list against the SAST
        records of the list they already hold (phone-behaviour item 12).
        """
        return find_sast(self.records, self.header)


def find_sast(records: Iterable[Record], header: Header) -> Record | None:
    """The SAST record among ``records`` matching ``header``'s signer serial and issuer."""
    for record in records:
        if (
            record.role == Role.SAST
            and record.serial == header.signer_serial
            and record.issuer == header.signer_issuer
        ):
            return record
    return None


def find_by_signer(
    records: Iterable[Record], header: Header, roles: Sequence[int]
) -> Record | None:
    """The record with one of ``roles`` whose serial and issuer match ``header``'s signer."""
    for record in records:
        if (
            record.role in roles
            and record.serial == header.signer_serial
            and record.issuer == header.signer_issuer
        ):
            return record
    return None


# --- parsing ---------------------------------------------------------------------------------


# No trust list comes near this: a full 39-certificate ITL of RSA-2048 certificates is about
# 64 KB. Refusing larger input up front bounds parse time and memory: a crafted file of 10-byte
# records would otherwise cost about 46 bytes of Python objects per byte of input.
MAX_TRUST_LIST_SIZE = 1 << 20


def parse_trust_list(data: bytes, *, max_size: int = MAX_TRUST_LIST_SIZE) -> TrustList:
    """Parse an ITL or CTL file.

    Raises:
        StructureError: the file is longer than ``max_size`` bytes (1 MiB by default).
        FormatError: (a subclass) naming the byte offset and what was expected there.
    """
    if len(data) > max_size:
        raise StructureError(
            f"file of {len(data)} bytes is larger than any trust list",
            offset=max_size,
            expected=f"a trust list of at most {max_size} bytes",
        )
    header = _parse_header(data)
    records: list[Record] = []
    pos = header.length
    while pos < len(data):
        record, pos = _parse_record(data, pos)
        records.append(record)
    return TrustList(header, tuple(records))


def _parse_record(data: bytes, pos: int) -> tuple[Record, int]:
    if pos + 5 > len(data):
        raise TruncatedError(
            "file ends inside a record's length element", offset=pos, expected="5 bytes"
        )
    if data[pos] != RecordTag.RECORD_LENGTH or data[pos + 1 : pos + 3] != b"\x00\x02":
        raise StructureError(
            f"record starts with tag {data[pos]}",
            offset=pos,
            expected="a record-length element (tag 1, length 2)",
        )
    length = int.from_bytes(data[pos + 3 : pos + 5], "big")
    if length < 5:
        raise LengthError(
            f"record length {length} is smaller than its own length element",
            offset=pos,
            expected="a record length of at least 5",
        )
    end = pos + length
    if end > len(data):
        raise TruncatedError(
            f"record of {length} bytes runs past the end of the file",
            offset=pos,
            expected=f"{end - len(data)} more bytes",
        )
    elements = (
        Element(RecordTag.RECORD_LENGTH, data[pos + 3 : pos + 5]),
        *parse_elements(data, pos + 5, end),
    )
    return _typed_record(elements, pos, bytes(data[pos:end])), end


def _text(elements: Sequence[Element], tag: RecordTag) -> str | None:
    element = find(elements, tag)
    return None if element is None else decode_cstring(element.value)


def _raw(elements: Sequence[Element], tag: RecordTag) -> bytes | None:
    element = find(elements, tag)
    return None if element is None else element.value


def _typed_record(elements: tuple[Element, ...], offset: int, raw: bytes = b"") -> Record:
    function = find(elements, RecordTag.FUNCTION)
    if function is None:
        raise StructureError(
            "record has no role", offset=offset, expected="a FUNCTION element (tag 4)"
        )
    if len(function.value) != 2:
        raise ValueFormatError(
            f"record role holds {len(function.value)} bytes",
            offset=offset,
            expected="a 2-byte role code",
        )
    return Record(
        elements=elements,
        role=int.from_bytes(function.value, "big"),
        dns_name=_text(elements, RecordTag.DNS_NAME),
        subject=_text(elements, RecordTag.SUBJECT_NAME),
        issuer=_text(elements, RecordTag.ISSUER_NAME),
        serial=_raw(elements, RecordTag.SERIAL_NUMBER),
        public_key=_raw(elements, RecordTag.PUBLIC_KEY),
        certificate_der=_raw(elements, RecordTag.CERTIFICATE),
        ip=_raw(elements, RecordTag.IP_ADDRESS),
        offset=offset,
        raw=raw or encode_all(elements),
    )


# --- building --------------------------------------------------------------------------------


def _ip_bytes(ip: str | None) -> bytes | None:
    return None if ip is None else ipaddress.IPv4Address(ip).packed


def _record(elements: list[Element]) -> Record:
    """A record not yet placed in a file (offset 0): build_trust_list re-types it in place."""
    size = 5 + sum(e.size for e in elements)
    return _typed_record((leaf(RecordTag.RECORD_LENGTH, u16(size)), *elements), 0)


def record_from_certificate(
    certificate: x509.Certificate,
    role: int,
    *,
    dns_name: str = "",
    ip: str | None = None,
) -> Record:
    """A record for ``certificate`` in CUCM's element order 1, 2, 3, 4, 5, 6, 7, 8, 9, 10."""
    # Imported here: only building a record needs it, not parsing one (issue 17 item 4; see
    # certfields.public_key_bytes).
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    elements = [
        leaf(RecordTag.DNS_NAME, cstring(dns_name)),
        leaf(RecordTag.SUBJECT_NAME, cstring(cucm_name(certificate.subject))),
        leaf(RecordTag.FUNCTION, u16(role)),
        leaf(RecordTag.ISSUER_NAME, cstring(cucm_name(certificate.issuer))),
        leaf(RecordTag.SERIAL_NUMBER, serial_bytes(certificate.serial_number)),
        leaf(RecordTag.PUBLIC_KEY, public_key_bytes(certificate)),
        leaf(RecordTag.SIGNATURE, certificate.signature),
        leaf(RecordTag.CERTIFICATE, certificate.public_bytes(Encoding.DER)),
    ]
    ip_value = _ip_bytes(ip)
    if ip_value is not None:
        elements.append(leaf(RecordTag.IP_ADDRESS, ip_value))
    return _record(elements)


def certificateless_record(role: int, *, dns_name: str, ip: str | None = None) -> Record:
    """A record without a certificate: length, DNS name, role and IP (the 33-byte CUCM form)."""
    elements = [leaf(RecordTag.DNS_NAME, cstring(dns_name)), leaf(RecordTag.FUNCTION, u16(role))]
    ip_value = _ip_bytes(ip)
    if ip_value is not None:
        elements.append(leaf(RecordTag.IP_ADDRESS, ip_value))
    return _record(elements)


def build_trust_list(
    records: Iterable[Record],
    signer: Signer,
    *,
    filename: str = "ITLFile.tlv",
    timestamp: int,
    digest: Digest = Digest.SHA1,
    version: tuple[int, int] = (1, 2),
    signer_version: tuple[int, int] | None = None,
) -> TrustList:
    """Build and sign a trust list the way CUCM writes one (header version 1.2, no tag 28).

    ``timestamp`` is Unix time: the core never reads the clock.
    """
    records = tuple(records)
    body = b"".join(r.encode() for r in records)
    header = signer.sign_header(
        body,
        version=version,
        digest=digest,
        filename=filename,
        timestamp=timestamp,
        signer_version=signer_version,
    )
    # Re-type records with their final offsets, so error messages point into the real file.
    placed: list[Record] = []
    pos = header.length
    for record in records:
        placed.append(_typed_record(record.elements, pos))
        pos += record.size
    return TrustList(header, tuple(placed))


def verify_with_certificate(trust_list: TrustList, certificate: x509.Certificate) -> None:
    """Verify ``trust_list``'s signature with ``certificate``'s key; raise SignatureError."""
    verify_signature(trust_list.header, trust_list.signed_data(), signer_public_key(certificate))


class SelfCheck(Frozen):
    """Outcome of checking a list against its own SAST record."""

    _fields = ("valid", "record", "reason")
    __slots__ = _fields
    _compare = _fields
    _repr = _fields
    valid: bool | None  # None: no record in the file matches the signer
    record: Record | None
    reason: str

    def __init__(self, valid: bool | None, record: Record | None, reason: str) -> None:
        _set(self, "valid", valid)
        _set(self, "record", record)
        _set(self, "reason", reason)


def verify_self_signed(trust_list: TrustList) -> SelfCheck:
    """Check a trust list against the SAST record in it that matches the header's signer."""
    record = trust_list.find_signer()
    if record is None:
        return SelfCheck(
            None,
            None,
            f"no SAST record in the file has serial {trust_list.header.serial_hex} "
            f"and issuer {trust_list.header.signer_issuer!r}",
        )
    try:
        certificate = record.certificate()
        if certificate is None:
            return SelfCheck(False, record, "the signer's SAST record carries no certificate")
        verify_with_certificate(trust_list, certificate)
    except (SignatureError, ValueFormatError) as exc:
        return SelfCheck(False, record, str(exc))
    return SelfCheck(True, record, f"signed by SAST record {record.subject} ({record.serial_hex})")

"""Certificates of an emulated Cisco Unified CM node, and a small issuing CA.

Every CUCM node owns five self-signed certificates, each named after the service that uses it:

============  ==================================  =============================================
kind          subject common name                 role here
============  ==================================  =============================================
CallManager   ``<hostname>``                      TLS server and client (SIP, signs ITL/CTL)
ITLRecovery   ``ITLRECOVERY_<hostname>``          recovery signer of the ITL; 5/10/15/20 years
TVS           ``<hostname>``                      Trust Verification Service, TLS server/client
CAPF          ``CAPF-<8 hex of sha1(hostname)>``  issues phone LSCs, hence a CA (path length 0)
Tomcat        ``<hostname>``                      web server, TLS server/client
============  ==================================  =============================================

All subjects also carry OU, O, L, ST and C (see :class:`NameAttributes`). Keys are RSA 2048
(1024 for old security profiles) and every signature uses SHA-256.

Everything here is pure: no file I/O and no clock reads. The current time is always the
``now`` argument, which must be timezone-aware.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509 import ObjectIdentifier
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from phone.errors import LabError, UsageError
from phone.pki.keys import KeySource

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_DAYS",
    "ITLRECOVERY_YEARS",
    "NODE_KEY_SIZES",
    "CertKind",
    "Identity",
    "NameAttributes",
    "NodeCertificates",
    "PrivateKey",
    "PublicKey",
    "add_years",
    "generate_node",
    "issue",
    "make_ca",
    "node_certificate",
    "node_common_name",
    "self_signed",
]

PrivateKey: TypeAlias = RSAPrivateKey | EllipticCurvePrivateKey
"""The private key types an :class:`Identity` may hold."""

PublicKey: TypeAlias = RSAPublicKey | EllipticCurvePublicKey
"""The public key types :func:`issue` certifies."""

DEFAULT_DAYS = 1826
"""Default validity in days of :func:`self_signed` and :func:`issue`: five years."""

ITLRECOVERY_YEARS = (5, 10, 15, 20)
"""The only validities, in years, that CUCM offers for an ITLRecovery certificate."""

NODE_KEY_SIZES = (1024, 2048, 4096)
"""RSA key sizes a node certificate may have: 2048 by default, 1024 for old profiles, 4096 as
CUCM offers since 11.5; the CLI and scenario files accept exactly these (issue 18 item 3)."""

_SERIAL_LIMIT = 1 << 159  # RFC 5280: at most 20 octets, and positive
_SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True)
class NameAttributes:
    """The subject attributes besides CN: OU, O, L, ST and C (a two-letter country code).

    Raises:
        LabError: an attribute is empty or longer than X.509 allows, or the country is not two
            characters long.
    """

    unit: str = "VTG"
    organization: str = "vphone lab"
    locality: str = "SJ"
    state: str = "CA"
    country: str = "US"

    def __post_init__(self) -> None:
        for label, value, limit in (
            ("organizational unit", self.unit, 64),
            ("organization", self.organization, 64),
            ("locality", self.locality, 128),
            ("state", self.state, 128),
        ):
            if not 1 <= len(value) <= limit:
                raise LabError(f"the {label} must be 1 to {limit} characters long, got {value!r}")
        if len(self.country) != 2:
            raise LabError(f"the country must be a two-letter code, got {self.country!r}")

    def name(self, common_name: str) -> x509.Name:
        """Return the X.509 name ``CN=common_name`` plus these attributes.

        The name is encoded C, ST, L, O, OU, CN, so its RFC 4514 string reads
        ``CN=...,OU=...,O=...,L=...,ST=...,C=...`` as CUCM displays it.

        Raises:
            LabError: ``common_name`` is empty or longer than 64 characters.
        """
        if not 1 <= len(common_name) <= 64:
            raise LabError(
                f"a common name must be 1 to 64 characters long, got {len(common_name)}: "
                f"{common_name!r}"
            )
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.country),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, self.state),
                x509.NameAttribute(NameOID.LOCALITY_NAME, self.locality),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.unit),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )


DEFAULT_ATTRIBUTES = NameAttributes()
"""OU=VTG, O=vphone lab, L=SJ, ST=CA, C=US."""


@dataclass(frozen=True)
class Identity:
    """A certificate together with its private key.

    Raises:
        UsageError: the key is not the private half of the certificate's public key.
    """

    certificate: x509.Certificate
    key: PrivateKey

    def __post_init__(self) -> None:
        if self.certificate.public_key() != self.key.public_key():
            raise UsageError(
                f"the private key does not belong to the certificate {self.subject_string}"
            )

    @property
    def serial_hex(self) -> str:
        """The serial as lowercase hex of its magnitude bytes, the way trust files and phones
        print it (``"1f"``, ``"0abc"``): the same text as a header's or record's serial."""
        number = self.certificate.serial_number
        return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex()

    @property
    def subject_string(self) -> str:
        """The subject as an RFC 4514 string, e.g. ``CN=cucm,OU=VTG,O=vphone lab,...``."""
        return self.certificate.subject.rfc4514_string()

    @property
    def common_name(self) -> str:
        """The subject's first common name, or ``""`` when it has none."""
        return _common_name(self.certificate.subject)


class CertKind(StrEnum):
    """The certificates every CUCM node owns, by the name CUCM gives them."""

    CALLMANAGER = "CallManager"
    ITLRECOVERY = "ITLRecovery"
    TVS = "TVS"
    CAPF = "CAPF"
    TOMCAT = "Tomcat"

    @classmethod
    def from_name(cls, name: str) -> CertKind:
        """Return the kind called ``name``, ignoring case (``"callmanager"`` works).

        Raises:
            LabError: no kind has that name.
        """
        for kind in cls:
            if kind.value.lower() == name.lower():
                return kind
        known = ", ".join(kind.value for kind in cls)
        raise LabError(f"unknown certificate kind {name!r} (known: {known})")


def add_years(moment: datetime, years: int) -> datetime:
    """Return ``moment`` moved by ``years`` calendar years; 29 February becomes 28 February.

    Raises:
        LabError: the result falls outside the years 1 to 9999.
    """
    year = moment.year + years
    if not 1 <= year <= 9999:
        raise LabError(f"{moment.isoformat()} plus {years} years is out of range")
    try:
        return moment.replace(year=year)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=year, day=28)


def node_common_name(kind: CertKind, hostname: str) -> str:
    """Return the subject common name CUCM gives the ``kind`` certificate of node ``hostname``.

    The CAPF name ends in the first 8 hex digits of the SHA-1 of the hostname (UTF-8).

    Raises:
        LabError: the hostname is empty or contains whitespace.
    """
    if not hostname or any(char.isspace() for char in hostname):
        raise LabError(f"invalid node hostname {hostname!r}")
    match kind:
        case CertKind.CAPF:
            return "CAPF-" + hashlib.sha1(hostname.encode()).hexdigest()[:8]
        case CertKind.ITLRECOVERY:
            return "ITLRECOVERY_" + hostname
        case CertKind.CALLMANAGER | CertKind.TVS | CertKind.TOMCAT:
            return hostname


def self_signed(
    common_name: str,
    *,
    now: datetime,
    key: PrivateKey,
    days: int = DEFAULT_DAYS,
    unit: str = DEFAULT_ATTRIBUTES.unit,
    org: str = DEFAULT_ATTRIBUTES.organization,
    locality: str = DEFAULT_ATTRIBUTES.locality,
    state: str = DEFAULT_ATTRIBUTES.state,
    country: str = DEFAULT_ATTRIBUTES.country,
    serial: int | None = None,
    ca: bool = False,
    path_length: int | None = None,
    extended_key_usage: Sequence[ObjectIdentifier] = (),
) -> Identity:
    """Build a self-signed certificate, signed with SHA-256, valid from ``now`` for ``days`` days.

    The certificate carries BasicConstraints (``CA:TRUE`` with ``path_length`` when ``ca``),
    a KeyUsage fitting the role and key type, a SubjectKeyIdentifier and, when given, an
    ExtendedKeyUsage. ``serial`` defaults to a random positive 159-bit number.

    Raises:
        LabError: a bad name attribute, validity or serial number.
        UsageError: ``now`` is naive.
    """
    attributes = NameAttributes(unit, org, locality, state, country)
    start = _start(now)
    return _self_signed(
        attributes.name(common_name),
        key,
        not_before=start,
        not_after=_plus_days(start, days),
        serial=serial,
        ca=ca,
        path_length=path_length,
        extended_key_usage=extended_key_usage,
    )


def node_certificate(
    kind: CertKind,
    hostname: str,
    *,
    now: datetime,
    keys: KeySource,
    key_size: int = 2048,
    validity_years: int = 5,
    validity_days: int | None = None,
    attributes: NameAttributes = DEFAULT_ATTRIBUTES,
    serial: int | None = None,
) -> Identity:
    """Build the self-signed ``kind`` certificate of CUCM node ``hostname``, as CUCM would.

    The key comes from ``keys`` and is RSA ``key_size`` bits (1024 or 2048). The certificate is
    valid from ``now`` for ``validity_years`` calendar years (see :func:`add_years`), or for
    ``validity_days`` days when that is given. An ITLRecovery certificate can only be valid 5,
    10, 15 or 20 years, as in CUCM, and does not take ``validity_days``.

    CallManager, TVS and Tomcat certificates have ExtendedKeyUsage serverAuth and clientAuth;
    the CAPF certificate is a CA with path length 0, since CAPF issues the phones' LSCs.

    Raises:
        LabError: a bad key size, validity, hostname, name attribute or serial number, or
            ``keys`` returned a key of the wrong size.
        UsageError: ``now`` is naive.
    """
    if key_size not in NODE_KEY_SIZES:
        raise LabError(f"a {kind} key must be RSA 1024, 2048 or 4096 bits, not {key_size}")
    if kind is CertKind.ITLRECOVERY:
        if validity_days is not None:
            raise LabError("the ITLRecovery validity is chosen in years (5, 10, 15 or 20)")
        if validity_years not in ITLRECOVERY_YEARS:
            raise LabError(
                f"the ITLRecovery certificate can be valid 5, 10, 15 or 20 years, "
                f"not {validity_years}"
            )
    elif validity_days is None and validity_years < 1:
        raise LabError(f"a {kind} certificate must be valid at least 1 year, not {validity_years}")

    subject = attributes.name(node_common_name(kind, hostname))
    start = _start(now)
    if validity_days is None:
        not_after = add_years(start, validity_years)
    else:
        not_after = _plus_days(start, validity_days)

    key = keys.rsa(key_size)
    if key.key_size != key_size:
        raise LabError(f"the key source returned an RSA-{key.key_size} key for RSA-{key_size}")

    is_capf = kind is CertKind.CAPF
    eku = (
        _SERVER_AND_CLIENT if kind in (CertKind.CALLMANAGER, CertKind.TVS, CertKind.TOMCAT) else ()
    )
    return _self_signed(
        subject,
        key,
        not_before=start,
        not_after=not_after,
        serial=serial,
        ca=is_capf,
        path_length=0 if is_capf else None,
        extended_key_usage=eku,
    )


@dataclass(frozen=True)
class NodeCertificates:
    """The five certificates of one CUCM node."""

    hostname: str
    callmanager: Identity
    itlrecovery: Identity
    tvs: Identity
    capf: Identity
    tomcat: Identity

    def get(self, kind: CertKind) -> Identity:
        """Return the ``kind`` certificate and key."""
        match kind:
            case CertKind.CALLMANAGER:
                return self.callmanager
            case CertKind.ITLRECOVERY:
                return self.itlrecovery
            case CertKind.TVS:
                return self.tvs
            case CertKind.CAPF:
                return self.capf
            case CertKind.TOMCAT:
                return self.tomcat

    def items(self) -> Iterator[tuple[CertKind, Identity]]:
        """Yield ``(kind, identity)`` for every certificate, in :class:`CertKind` order."""
        for kind in CertKind:
            yield kind, self.get(kind)


def generate_node(
    hostname: str,
    *,
    now: datetime,
    keys: KeySource,
    key_size: int = 2048,
    itlrecovery_years: int = 5,
    validity_years: int = 5,
    attributes: NameAttributes = DEFAULT_ATTRIBUTES,
) -> NodeCertificates:
    """Build all five certificates of CUCM node ``hostname`` (see :func:`node_certificate`).

    ``itlrecovery_years`` is the ITLRecovery validity (5, 10, 15 or 20); ``validity_years``
    that of the other four. Keys are drawn from ``keys`` in :class:`CertKind` order.

    Raises:
        LabError: as :func:`node_certificate`.
        UsageError: ``now`` is naive.
    """

    def build(kind: CertKind) -> Identity:
        years = itlrecovery_years if kind is CertKind.ITLRECOVERY else validity_years
        return node_certificate(
            kind,
            hostname,
            now=now,
            keys=keys,
            key_size=key_size,
            validity_years=years,
            attributes=attributes,
        )

    return NodeCertificates(
        hostname=hostname,
        callmanager=build(CertKind.CALLMANAGER),
        itlrecovery=build(CertKind.ITLRECOVERY),
        tvs=build(CertKind.TVS),
        capf=build(CertKind.CAPF),
        tomcat=build(CertKind.TOMCAT),
    )


def make_ca(
    common_name: str,
    *,
    now: datetime,
    key: PrivateKey,
    days: int = 3652,
    attributes: NameAttributes = DEFAULT_ATTRIBUTES,
    serial: int | None = None,
    path_length: int | None = None,
) -> Identity:
    """Build a self-signed CA (``CA:TRUE``, keyCertSign and cRLSign), valid ``days`` days.

    Raises:
        LabError: a bad name attribute, validity or serial number.
        UsageError: ``now`` is naive.
    """
    start = _start(now)
    return _self_signed(
        attributes.name(common_name),
        key,
        not_before=start,
        not_after=_plus_days(start, days),
        serial=serial,
        ca=True,
        path_length=path_length,
        extended_key_usage=(),
    )


def issue(
    ca: Identity,
    common_name: str,
    public_key: PublicKey,
    *,
    now: datetime,
    days: int = DEFAULT_DAYS,
    serial: int | None = None,
    attributes: NameAttributes = DEFAULT_ATTRIBUTES,
    is_ca: bool = False,
    path_length: int | None = None,
    extended_key_usage: Sequence[ObjectIdentifier] = (),
) -> x509.Certificate:
    """Issue a certificate for ``public_key`` signed by ``ca`` with SHA-256.

    The issuer name is the CA certificate's subject; the AuthorityKeyIdentifier is the CA's
    SubjectKeyIdentifier. Nothing checks that ``ca`` is really a CA or still valid, so that
    tests can build broken chains on purpose.

    Raises:
        LabError: a bad name attribute, validity or serial number.
        UsageError: ``now`` is naive.
    """
    start = _start(now)
    builder = _builder(
        attributes.name(common_name),
        ca.certificate.subject,
        public_key,
        not_before=start,
        not_after=_plus_days(start, days),
        serial=serial,
        ca=is_ca,
        path_length=path_length,
        extended_key_usage=extended_key_usage,
    )
    try:
        ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    builder = builder.add_extension(aki, critical=False)
    return builder.sign(ca.key, hashes.SHA256())


# --- internals ---------------------------------------------------------------------------------


def _common_name(name: x509.Name) -> str:
    for attribute in name.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


def _start(now: datetime) -> datetime:
    """``now`` in UTC, truncated to the second as X.509 times are."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise UsageError(f"now must be timezone-aware, got the naive {now.isoformat()}")
    return now.astimezone(UTC).replace(microsecond=0)


def _plus_days(start: datetime, days: int) -> datetime:
    if days < 1:
        raise LabError(f"a certificate must be valid at least 1 day, not {days}")
    try:
        return start + timedelta(days=days)
    except OverflowError:
        raise LabError(f"a validity of {days} days runs past the year 9999") from None


def _serial(serial: int | None) -> int:
    if serial is None:
        return x509.random_serial_number()
    if not 0 < serial < _SERIAL_LIMIT:
        raise LabError(f"a serial number must be positive and below 2**159, not {serial}")
    return serial


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    ca: bool,
    path_length: int | None,
    extended_key_usage: Sequence[ObjectIdentifier],
) -> x509.CertificateBuilder:
    if path_length is not None and (not ca or path_length < 0):
        raise LabError("a path length needs a CA certificate and must not be negative")
    is_rsa = isinstance(public_key, RSAPublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(_serial(serial))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa and not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(extended_key_usage)), critical=False
        )
    return builder


def _self_signed(
    subject: x509.Name,
    key: PrivateKey,
    *,
    not_before: datetime,
    not_after: datetime,
    serial: int | None,
    ca: bool,
    path_length: int | None,
    extended_key_usage: Sequence[ObjectIdentifier],
) -> Identity:
    builder = _builder(
        subject,
        subject,
        key.public_key(),
        not_before=not_before,
        not_after=not_after,
        serial=serial,
        ca=ca,
        path_length=path_length,
        extended_key_usage=extended_key_usage,
    )
    return Identity(builder.sign(key, hashes.SHA256()), key)

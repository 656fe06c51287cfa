"""Small builders for trust-rule tests: a cluster's certificates, its ITL/CTL and signed files.

Not a test module. Uses the committed key pool, so building a kit costs no key generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from keypool import pooled_keys

from phone.formats import (
    Digest,
    Role,
    Signer,
    TrustList,
    build_signed,
    build_trust_list,
    certificateless_record,
    record_from_certificate,
)
from phone.formats.certfields import cucm_name, serial_bytes
from phone.pki import Identity, self_signed
from phone.trust.tvs import TvsOutcome

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TIMESTAMP = int(NOW.timestamp())


def identity(cn: str) -> Identity:
    """A self-signed RSA-2048 identity from the key pool."""
    return self_signed(cn, now=datetime(2026, 1, 1, tzinfo=UTC), key=pooled_keys().rsa(2048))


def signer(ident: Identity) -> Signer:
    """The Signer form of an identity."""
    key = ident.key
    from cryptography.hazmat.primitives.asymmetric import rsa

    assert isinstance(key, rsa.RSAPrivateKey)
    return Signer(ident.certificate, key)


@dataclass
class Kit:
    """One cluster's certificates, with builders for what its TFTP server serves."""

    name: str
    callmanager: Identity
    itlrecovery: Identity
    tvs: Identity
    capf: Identity

    @classmethod
    def make(cls, name: str = "c1") -> Kit:
        """Fresh identities for cluster ``name``."""
        return cls(
            name,
            identity(f"cucm1.{name}.lab"),
            identity(f"ITLRECOVERY_cucm1.{name}.lab"),
            identity(f"tvs1.{name}.lab"),
            identity(f"CAPF-{name}"),
        )

    def itl(self, *, signed_by: str = "itlrecovery", digest: Digest = Digest.SHA1) -> TrustList:
        """The ITL per the seed (item 19), signed by ITLRecovery (12.x) or CallManager (8.x)."""
        records = [
            record_from_certificate(self.itlrecovery.certificate, Role.SAST),
            record_from_certificate(self.callmanager.certificate, Role.TFTP, dns_name="cucm1"),
            record_from_certificate(self.callmanager.certificate, Role.SAST, dns_name="cucm1"),
            record_from_certificate(self.tvs.certificate, Role.TVS, dns_name="tvs1"),
            record_from_certificate(self.capf.certificate, Role.CAPF),
        ]
        who = self.itlrecovery if signed_by == "itlrecovery" else self.callmanager
        return build_trust_list(records, signer(who), timestamp=TIMESTAMP, digest=digest)

    def empty_itl(self) -> TrustList:
        """The rollback ITL: TFTP and TVS sections without certificates (item 16)."""
        records = [
            record_from_certificate(self.itlrecovery.certificate, Role.SAST),
            certificateless_record(Role.TFTP, dns_name="cucm1", ip="10.0.0.1"),
            certificateless_record(Role.TVS, dns_name="tvs1", ip="10.0.0.1"),
        ]
        return build_trust_list(records, signer(self.itlrecovery), timestamp=TIMESTAMP)

    def ctl(self) -> TrustList:
        """A tokenless CTL signed by ITLRecovery (12.x)."""
        records = [
            record_from_certificate(self.itlrecovery.certificate, Role.SAST),
            record_from_certificate(self.callmanager.certificate, Role.CCM_TFTP),
            record_from_certificate(self.capf.certificate, Role.CAPF),
        ]
        return build_trust_list(
            records, signer(self.itlrecovery), filename="CTLFile.tlv", timestamp=TIMESTAMP
        )

    def config(self, mac: str = "001122334455", xml: bytes = b"<device/>") -> bytes:
        """``SEP<mac>.cnf.xml.sgn`` signed by the CallManager key."""
        name = f"SEP{mac}.cnf.xml.sgn"
        return build_signed(
            xml, signer(self.callmanager), filename=name, timestamp=TIMESTAMP
        ).encode()


def key_of(ident: Identity) -> tuple[str, bytes]:
    """(issuer string, serial bytes) as a signed header names a certificate."""
    cert = ident.certificate
    return cucm_name(cert.issuer), serial_bytes(cert.serial_number)


class FakeTvs:
    """A TVS oracle for pure-rule tests: vouches for the identities it is given."""

    def __init__(self, vouches: dict[tuple[str, bytes], tuple[Identity, frozenset[int]]]) -> None:
        self.vouches = vouches
        self.asked: list[tuple[str, bytes]] = []
        self.held: list[x509.Certificate | None] = []  # the certificate of a VERIFY, or None

    @classmethod
    def knowing(cls, *entries: tuple[Identity, frozenset[int]]) -> FakeTvs:
        """A TVS that knows these identities with these roles."""
        return cls({key_of(ident): (ident, roles) for ident, roles in entries})

    def __call__(
        self, issuer: str, serial: bytes, certificate: x509.Certificate | None = None
    ) -> TvsOutcome:
        self.asked.append((issuer, serial))
        self.held.append(certificate)
        found = self.vouches.get((issuer, serial))
        if found is not None and certificate is not None and certificate != found[0].certificate:
            found = None  # a VERIFY vouches for that certificate only (tvs-capf-wire.md 1.6)
        if found is None:
            return TvsOutcome(
                False, frozenset(), None, "tvs1:2445", "TVS answered invalid", "item 24"
            )
        ident, roles = found
        return TvsOutcome(True, roles, ident.certificate, "tvs1:2445", "TVS vouched", "item 22")


def no_tvs(issuer: str, serial: bytes, certificate: x509.Certificate | None = None) -> TvsOutcome:
    """A TVS oracle that is never reachable."""
    del certificate
    return TvsOutcome(False, frozenset(), None, None, "TVS unreachable (fail closed)", "item 24")

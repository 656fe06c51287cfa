"""Shared fixtures.

Formats fixtures (prefixed ``formats_`` or named after what they hold: ``rsa_signer``,
``itl_certs``...) build certificates from the pre-generated test keys of ``tests/keypool.py``
once per session, since RSA key generation would dominate the run time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from keypool import pooled_keys

from phone.formats import Digest, Role, Signer, TrustList, build_trust_list
from phone.formats.trustlist import record_from_certificate
from phone.pki import Identity, cert_to_pem, key_to_pem, self_signed

FORMATS_NOW = datetime(2024, 5, 7, 3, 10, 47, tzinfo=UTC)
"""The "current time" of every formats fixture (certificates start here)."""

FORMATS_TIMESTAMP = int(FORMATS_NOW.timestamp())
"""``FORMATS_NOW`` as the Unix time written into built headers."""

KEY_PASSWORD = b"correct horse"


def _rsa(identity: Identity) -> rsa.RSAPrivateKey:
    key = identity.key
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="session")
def formats_identities() -> Mapping[str, Identity]:
    """Self-signed CUCM-like identities: SAST, CCM+TFTP, TVS, CAPF, plus spares.

    ``stranger`` signs nothing on purpose (the "wrong signer"), ``phone`` receives encrypted
    configs, ``small`` is RSA-1024 for fast exhaustive tamper tests.
    """
    keys = pooled_keys()
    # Draw every 2048-bit key in one go so they are distinct (the pool cursor is shared).
    big = [keys.rsa(2048) for _ in range(6)]
    small = keys.rsa(1024)
    return {
        "SAST": self_signed("ITLRECOVERY_cucm-pub", now=FORMATS_NOW, key=big[0]),
        "CCM+TFTP": self_signed("cucm-pub", now=FORMATS_NOW, key=big[1]),
        "TVS": self_signed("cucm-pub-tvs", now=FORMATS_NOW, key=big[2]),
        "CAPF": self_signed("CAPF-1a2b3c4d", now=FORMATS_NOW, key=big[3], ca=True, path_length=0),
        "stranger": self_signed("stranger", now=FORMATS_NOW, key=big[4]),
        "phone": self_signed("SEP001122334455", now=FORMATS_NOW, key=big[5]),
        "small": self_signed("small-signer", now=FORMATS_NOW, key=small),
    }


@pytest.fixture(scope="session")
def itl_certs(formats_identities: Mapping[str, Identity]) -> dict[str, x509.Certificate]:
    """The certificates of the four ITL roles, keyed by role name."""
    return {
        role: formats_identities[role].certificate for role in ("SAST", "CCM+TFTP", "TVS", "CAPF")
    }


@pytest.fixture(scope="session")
def rsa_signer(formats_identities: Mapping[str, Identity]) -> Signer:
    """The RSA-2048 SAST (ITLRecovery) signer."""
    identity = formats_identities["SAST"]
    return Signer(identity.certificate, _rsa(identity))


@pytest.fixture(scope="session")
def small_signer(formats_identities: Mapping[str, Identity]) -> Signer:
    """An RSA-1024 signer (128-byte signatures), for tests that verify many files."""
    identity = formats_identities["small"]
    return Signer(identity.certificate, _rsa(identity))


@pytest.fixture(scope="session")
def stranger_cert(formats_identities: Mapping[str, Identity]) -> x509.Certificate:
    """A certificate whose key signed none of the built files."""
    return formats_identities["stranger"].certificate


@pytest.fixture(scope="session")
def phone_key(formats_identities: Mapping[str, Identity]) -> rsa.RSAPrivateKey:
    """The phone's RSA-2048 key, recipient of encrypted configs."""
    return _rsa(formats_identities["phone"])


@pytest.fixture(scope="session")
def cucm_itl(itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer) -> TrustList:
    """A CUCM-ordered ITL (SAST, CCM+TFTP, TVS, CAPF), SHA-1, signed by the SAST record."""
    records = [
        record_from_certificate(itl_certs["SAST"], Role.SAST),
        record_from_certificate(
            itl_certs["CCM+TFTP"], Role.CCM_TFTP, dns_name="cucm-pub", ip="10.35.48.106"
        ),
        record_from_certificate(itl_certs["TVS"], Role.TVS, dns_name="cucm-pub"),
        record_from_certificate(itl_certs["CAPF"], Role.CAPF, dns_name="cucm-pub"),
    ]
    return build_trust_list(
        records, rsa_signer, filename="ITLFile.tlv", timestamp=FORMATS_TIMESTAMP
    )


@pytest.fixture(scope="session")
def cucm_itl_sha512(itl_certs: Mapping[str, x509.Certificate], rsa_signer: Signer) -> TrustList:
    """The same ITL signed with SHA-512 (digest code 3)."""
    records = [
        record_from_certificate(itl_certs["SAST"], Role.SAST),
        record_from_certificate(itl_certs["TVS"], Role.TVS, dns_name="cucm-pub"),
    ]
    return build_trust_list(
        records,
        rsa_signer,
        filename="ITLFile.tlv",
        timestamp=FORMATS_TIMESTAMP,
        digest=Digest.SHA512,
    )


@pytest.fixture(scope="session")
def formats_pem_dir(
    tmp_path_factory: pytest.TempPathFactory, formats_identities: Mapping[str, Identity]
) -> Path:
    """A folder with ``<name>.pem`` certificates and ``<name>.key`` keys of every identity.

    Keys are unencrypted test keys, except ``SAST-encrypted.key`` (password ``KEY_PASSWORD``).
    """
    folder = tmp_path_factory.mktemp("formats-pem")
    for name, identity in formats_identities.items():
        stem = name.replace("+", "_")
        (folder / f"{stem}.pem").write_bytes(cert_to_pem(identity.certificate))
        (folder / f"{stem}.key").write_bytes(key_to_pem(identity.key, None, allow_unencrypted=True))
    (folder / "SAST-encrypted.key").write_bytes(
        key_to_pem(formats_identities["SAST"].key, KEY_PASSWORD)
    )
    return folder


# --- an independent reading of the signature rule (spec section 3) ------------------------------


def split_signed_file(data: bytes) -> tuple[bytes, bytes, int]:
    """Return (covered bytes, signature, digest code) of a signed Cisco file.

    Written straight from trust-file-formats.md sections 1-3 and deliberately independent of
    :mod:`phone.formats`: walk the top-level header elements (tag, u16 length, value; tag 13 is
    one byte; a container's length covers its nested elements, so it is skipped like a value)
    until the offset stored in tag 2, and cut out the signature element (tag 12) whole.
    """
    pos = 0
    header_end: int | None = None
    signature_at: int | None = None
    signature = b""
    digest = 0
    while header_end is None or pos < header_end:
        tag = data[pos]
        if tag == 13:
            pos += 1
            continue
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        value = data[pos + 3 : pos + 3 + length]
        if tag == 2:
            header_end = int.from_bytes(value, "big")
        elif tag == 7:
            assert value[:3] == b"\x08\x00\x01", "tag 8 comes first in the signature info"
            digest = value[3]
        elif tag == 12:
            signature_at, signature = pos, value
        pos += 3 + length
    assert signature_at is not None, "no signature element"
    covered = data[:signature_at] + data[signature_at + 3 + len(signature) :]
    return covered, signature, digest


def raw_verify(data: bytes, certificate: x509.Certificate) -> None:
    """Verify a signed file with bare ``cryptography`` calls; raise InvalidSignature if bad."""
    covered, signature, digest = split_signed_file(data)
    algorithm: hashes.HashAlgorithm = {1: hashes.SHA1(), 3: hashes.SHA512()}[digest]
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, covered, padding.PKCS1v15(), algorithm)


@pytest.fixture(scope="session")
def independent_verify() -> Callable[[bytes, x509.Certificate], None]:
    """:func:`raw_verify`: the spec's signature rule checked without :mod:`phone.formats`."""
    return raw_verify


@pytest.fixture
def pooled_cli_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """``vphone scenario`` commands run in this process build their labs from the test key
    pool, not fresh RSA keys."""
    from phone.cli import scenario as scenario_cli

    monkeypatch.setattr(scenario_cli, "key_source", pooled_keys)

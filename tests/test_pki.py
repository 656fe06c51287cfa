"""Tests of the lab PKI: CUCM node certificates, the key pool, and serialization."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from keypool import pooled_key_lists, pooled_keys

from phone.errors import (
    CryptoError,
    DecryptionError,
    FormatError,
    LabError,
    LengthError,
    StructureError,
    TruncatedError,
    UsageError,
    ValueFormatError,
)
from phone.pki import (
    CertKind,
    FreshKeys,
    Identity,
    NameAttributes,
    PooledKeys,
    PrivateKey,
    add_years,
    cert_from_der,
    cert_from_pem,
    cert_to_der,
    cert_to_pem,
    certs_from_pem,
    certs_from_pkcs12,
    certs_to_pem,
    certs_to_pkcs12,
    generate_node,
    identity_from_pkcs12,
    identity_to_pkcs12,
    issue,
    key_from_pem,
    key_to_pem,
    make_ca,
    node_certificate,
    node_common_name,
    self_signed,
    write_private_file,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOST = "cucm-pub"
PASSWORD = b"correct horse"


def rsa_key(bits: int = 2048) -> RSAPrivateKey:
    """A pooled test key (the process-wide pool; distinct within 24 consecutive calls)."""
    return pooled_keys().rsa(bits)


def public_numbers_equal(a: PrivateKey, b: PrivateKey) -> bool:
    return a.public_key().public_numbers() == b.public_key().public_numbers()


def attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = [a.value for a in name.get_attributes_for_oid(oid)]
    assert len(values) == 1
    value = values[0]
    assert isinstance(value, str)
    return value


# --- node certificates -------------------------------------------------------------------------


def test_node_certificates_have_cucm_subject_names() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    capf_suffix = hashlib.sha1(HOST.encode()).hexdigest()[:8]
    expected = {
        CertKind.CALLMANAGER: HOST,
        CertKind.ITLRECOVERY: f"ITLRECOVERY_{HOST}",
        CertKind.TVS: HOST,
        CertKind.CAPF: f"CAPF-{capf_suffix}",
        CertKind.TOMCAT: HOST,
    }
    assert dict((kind, ident.common_name) for kind, ident in node.items()) == expected
    for kind, common_name in expected.items():
        identity = node.get(kind)
        cert = identity.certificate
        assert node_common_name(kind, HOST) == common_name
        subject = f"CN={common_name},OU=VTG,O=vphone lab,L=SJ,ST=CA,C=US"
        assert identity.subject_string == subject
        assert cert.issuer == cert.subject
        cert.verify_directly_issued_by(cert)
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        assert isinstance(identity.key, RSAPrivateKey)
        assert identity.key.key_size == 2048
        assert identity.key.public_key().public_numbers().e == 65537
        assert cert.not_valid_before_utc == NOW
        assert cert.not_valid_after_utc == datetime(2031, 1, 1, tzinfo=UTC)
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert len(capf_suffix) == 8
    assert node.hostname == HOST


def test_node_certificates_have_distinct_keys_and_serials() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    identities = [identity for _, identity in node.items()]
    moduli = {identity.key.public_key().public_numbers() for identity in identities}
    serials = {identity.certificate.serial_number for identity in identities}
    assert len(moduli) == 5
    assert len(serials) == 5
    assert all(0 < serial < 1 << 159 for serial in serials)


def test_node_certificate_roles() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    server_and_client = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    for kind in (CertKind.CALLMANAGER, CertKind.TVS, CertKind.TOMCAT):
        extensions = node.get(kind).certificate.extensions
        assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == (
            server_and_client
        )
        basic = extensions.get_extension_for_class(x509.BasicConstraints).value
        assert not basic.ca
    capf = node.capf.certificate.extensions
    assert capf.get_extension_for_class(x509.BasicConstraints).value.ca
    assert capf.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    itl = node.itlrecovery.certificate.extensions
    assert not itl.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        itl.get_extension_for_class(x509.ExtendedKeyUsage)


@pytest.mark.parametrize("years", [5, 10, 15, 20])
def test_itlrecovery_validity_accepted(years: int) -> None:
    identity = node_certificate(
        CertKind.ITLRECOVERY, HOST, now=NOW, keys=pooled_keys(), validity_years=years
    )
    cert = identity.certificate
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == datetime(2026 + years, 1, 1, tzinfo=UTC)
    assert cert.not_valid_after_utc == add_years(NOW, years)


@pytest.mark.parametrize("years", [0, 1, 7, 25, -5])
def test_itlrecovery_validity_refused(years: int) -> None:
    with pytest.raises(LabError, match=r"5, 10, 15 or 20 years, not"):
        node_certificate(
            CertKind.ITLRECOVERY, HOST, now=NOW, keys=pooled_keys(), validity_years=years
        )


def test_generate_node_itlrecovery_years() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys(), itlrecovery_years=20)
    assert node.itlrecovery.certificate.not_valid_after_utc == datetime(2046, 1, 1, tzinfo=UTC)
    assert node.callmanager.certificate.not_valid_after_utc == datetime(2031, 1, 1, tzinfo=UTC)
    with pytest.raises(LabError):
        generate_node(HOST, now=NOW, keys=pooled_keys(), itlrecovery_years=7)


def test_itlrecovery_refuses_days() -> None:
    with pytest.raises(LabError, match="years"):
        node_certificate(CertKind.ITLRECOVERY, HOST, now=NOW, keys=pooled_keys(), validity_days=365)


def test_other_certificates_take_days() -> None:
    identity = node_certificate(
        CertKind.TOMCAT, HOST, now=NOW, keys=pooled_keys(), validity_days=30
    )
    assert identity.certificate.not_valid_after_utc == NOW + timedelta(days=30)
    with pytest.raises(LabError):
        node_certificate(CertKind.TOMCAT, HOST, now=NOW, keys=pooled_keys(), validity_days=0)
    with pytest.raises(LabError):
        node_certificate(CertKind.TVS, HOST, now=NOW, keys=pooled_keys(), validity_years=0)


def test_add_years_handles_29_february() -> None:
    leap = datetime(2028, 2, 29, 12, 30, tzinfo=UTC)
    assert add_years(leap, 5) == datetime(2033, 2, 28, 12, 30, tzinfo=UTC)
    assert add_years(leap, 4) == datetime(2032, 2, 29, 12, 30, tzinfo=UTC)
    identity = node_certificate(
        CertKind.ITLRECOVERY, HOST, now=leap, keys=pooled_keys(), validity_years=10
    )
    assert identity.certificate.not_valid_after_utc == datetime(2038, 2, 28, 12, 30, tzinfo=UTC)


def test_key_size_1024_accepted() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys(), key_size=1024)
    for _, identity in node.items():
        assert identity.key.key_size == 1024
        public = identity.certificate.public_key()
        assert isinstance(public, RSAPublicKey)
        assert public.key_size == 1024


@pytest.mark.parametrize("bits", [512, 3072, 8192])
def test_other_key_sizes_refused(bits: int) -> None:
    # 4096 is accepted: the sizes the CLI and scenario files offer (issue 18 item 3).
    with pytest.raises(LabError, match=f"1024, 2048 or 4096 bits, not {bits}"):
        node_certificate(CertKind.CALLMANAGER, HOST, now=NOW, keys=FreshKeys(), key_size=bits)


def test_node_certificate_checks_key_source() -> None:
    class WrongSize:
        def rsa(self, bits: int) -> RSAPrivateKey:
            return pooled_keys().rsa(1024)

    with pytest.raises(LabError, match="RSA-1024 key for RSA-2048"):
        node_certificate(CertKind.TVS, HOST, now=NOW, keys=WrongSize())


def test_custom_name_attributes() -> None:
    attributes = NameAttributes(
        unit="Voice", organization="Example", locality="Paris", state="IDF", country="FR"
    )
    identity = node_certificate(
        CertKind.CALLMANAGER,
        "cucm1.example.com",
        now=NOW,
        keys=pooled_keys(),
        attributes=attributes,
        serial=0x1F,
    )
    subject = identity.certificate.subject
    assert attribute(subject, NameOID.COMMON_NAME) == "cucm1.example.com"
    assert attribute(subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == "Voice"
    assert attribute(subject, NameOID.ORGANIZATION_NAME) == "Example"
    assert attribute(subject, NameOID.LOCALITY_NAME) == "Paris"
    assert attribute(subject, NameOID.STATE_OR_PROVINCE_NAME) == "IDF"
    assert attribute(subject, NameOID.COUNTRY_NAME) == "FR"
    assert identity.serial_hex == "1f"
    with pytest.raises(LabError, match="two-letter"):
        NameAttributes(country="USA")
    with pytest.raises(LabError):
        NameAttributes(unit="")


@pytest.mark.parametrize("hostname", ["", "bad host", "x" * 60])
def test_bad_hostnames_refused(hostname: str) -> None:
    with pytest.raises(LabError):
        node_certificate(CertKind.ITLRECOVERY, hostname, now=NOW, keys=pooled_keys())


def test_cert_kind_from_name() -> None:
    assert CertKind.from_name("callmanager") is CertKind.CALLMANAGER
    assert CertKind.from_name("ITLRecovery") is CertKind.ITLRECOVERY
    assert CertKind("Tomcat") is CertKind.TOMCAT
    assert str(CertKind.CAPF) == "CAPF"
    with pytest.raises(LabError, match="unknown certificate kind"):
        CertKind.from_name("ipsec")


# --- self-signed certificates and the issuing CA -----------------------------------------------


def test_self_signed_defaults_and_serial() -> None:
    key = rsa_key()
    identity = self_signed("lab", now=NOW, key=key, serial=0x00ABC)
    cert = identity.certificate
    assert identity.serial_hex == "0abc"
    assert cert.not_valid_after_utc == NOW + timedelta(days=1826)
    assert identity.subject_string == "CN=lab,OU=VTG,O=vphone lab,L=SJ,ST=CA,C=US"
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)


def test_self_signed_converts_now_to_utc_and_truncates() -> None:
    paris = timezone(timedelta(hours=1))
    now = datetime(2026, 1, 1, 1, 0, 0, 123456, tzinfo=paris)
    cert = self_signed("lab", now=now, key=rsa_key(), days=1).certificate
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + timedelta(days=1)


def test_self_signed_with_ec_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    identity = self_signed("ec-lab", now=NOW, key=key, ca=True)
    cert = identity.certificate
    cert.verify_directly_issued_by(cert)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize("serial", [0, -1, 1 << 159])
def test_bad_serials_refused(serial: int) -> None:
    with pytest.raises(LabError, match="serial"):
        self_signed("lab", now=NOW, key=rsa_key(), serial=serial)


def test_naive_now_refused() -> None:
    with pytest.raises(UsageError, match="timezone-aware"):
        self_signed("lab", now=datetime(2026, 1, 1), key=rsa_key())


def test_identity_refuses_mismatched_key() -> None:
    identity = self_signed("lab", now=NOW, key=rsa_key())
    other = rsa_key()
    assert not public_numbers_equal(identity.key, other)
    with pytest.raises(UsageError, match="does not belong"):
        Identity(identity.certificate, other)


def test_issue_from_ca() -> None:
    ca = make_ca("vphone lab CA", now=NOW, key=rsa_key())
    ca_cert = ca.certificate
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.not_valid_after_utc == NOW + timedelta(days=3652)
    leaf_key = rsa_key()
    cert = issue(
        ca,
        "SEP001122334455",
        leaf_key.public_key(),
        now=NOW,
        days=365,
        serial=42,
        attributes=NameAttributes(unit="phones"),
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    cert.verify_directly_issued_by(ca_cert)
    assert cert.issuer == ca_cert.subject
    assert cert.serial_number == 42
    assert cert.not_valid_after_utc == NOW + timedelta(days=365)
    assert attribute(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == "phones"
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert Identity(cert, leaf_key).common_name == "SEP001122334455"


# --- the key pool ------------------------------------------------------------------------------


def test_pooled_keys_distinct_until_exhausted_then_cycle() -> None:
    lists = pooled_key_lists()
    assert len(lists[2048]) == 24
    assert len(lists[1024]) == 4
    pool = PooledKeys(lists)
    first = [pool.rsa(1024) for _ in range(4)]
    assert len({id(key) for key in first}) == 4
    assert [pool.rsa(1024) for _ in range(4)] == first
    # Sizes have their own cursors.
    assert pool.rsa(2048) is lists[2048][0]
    assert pool.rsa(2048) is lists[2048][1]
    assert pool.sizes == (1024, 2048)
    assert pool.pool_size(2048) == 24
    assert pool.pool_size(4096) == 0


def test_two_pools_are_independent() -> None:
    lists = pooled_key_lists()
    assert PooledKeys(lists).rsa(2048) is PooledKeys(lists).rsa(2048)


def test_pooled_keys_missing_size() -> None:
    pool = PooledKeys({1024: pooled_key_lists()[1024]})
    with pytest.raises(LabError, match="no pooled RSA-2048 keys"):
        pool.rsa(2048)
    fallback = PooledKeys({1024: pooled_key_lists()[1024]}, fallback=pooled_keys())
    assert fallback.rsa(2048).key_size == 2048


def test_pooled_keys_refuses_bad_pools() -> None:
    lists = pooled_key_lists()
    with pytest.raises(UsageError, match="RSA-1024 key"):
        PooledKeys({2048: [lists[2048][0], lists[1024][0]]})
    with pytest.raises(UsageError, match="empty"):
        PooledKeys({2048: []})


def test_fresh_keys() -> None:
    key = FreshKeys().rsa(1024)
    assert key.key_size == 1024
    assert key.public_key().public_numbers().e == 65537


def test_process_pool_is_cached() -> None:
    assert pooled_keys() is pooled_keys()


# --- PEM and DER -------------------------------------------------------------------------------


def test_cert_pem_and_der_round_trip() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    cert = node.callmanager.certificate
    pem = cert_to_pem(cert)
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert cert_from_pem(pem) == cert
    assert cert_from_der(cert_to_der(cert)) == cert
    certs = [identity.certificate for _, identity in node.items()]
    assert certs_from_pem(certs_to_pem(certs)) == certs
    assert cert_from_pem(certs_to_pem(certs)) == certs[0]


@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_garbage_certificates(data: bytes) -> None:
    with pytest.raises(ValueFormatError) as info:
        cert_from_pem(data)
    assert info.value.offset == 0
    assert info.value.expected == "a PEM certificate"
    with pytest.raises(FormatError):
        certs_from_pem(data)
    with pytest.raises(FormatError):
        cert_from_der(data)


def test_key_pem_round_trip_encrypted() -> None:
    key = rsa_key()
    pem = key_to_pem(key, PASSWORD)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = key_from_pem(pem, PASSWORD)
    assert isinstance(loaded, RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()
    assert public_numbers_equal(loaded, key)


def test_key_pem_round_trip_ec() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    loaded = key_from_pem(key_to_pem(key, PASSWORD), PASSWORD)
    assert public_numbers_equal(loaded, key)


def test_unencrypted_key_needs_consent() -> None:
    key = rsa_key()
    with pytest.raises(UsageError, match="refusing to serialize a private key without"):
        key_to_pem(key, None)
    pem = key_to_pem(key, None, allow_unencrypted=True)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_numbers_equal(key_from_pem(pem, None), key)
    with pytest.raises(UsageError, match="empty"):
        key_to_pem(key, b"")


def test_key_wrong_or_missing_password() -> None:
    key = rsa_key()
    pem = key_to_pem(key, PASSWORD)
    with pytest.raises(CryptoError, match="wrong password"):
        key_from_pem(pem, b"wrong")
    with pytest.raises(CryptoError, match="no password"):
        key_from_pem(pem, None)
    clear = key_to_pem(key, None, allow_unencrypted=True)
    with pytest.raises(CryptoError, match="not encrypted"):
        key_from_pem(clear, PASSWORD)


@pytest.mark.parametrize("password", [None, PASSWORD])
@pytest.mark.parametrize("data", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"])
def test_garbage_keys(data: bytes, password: bytes | None) -> None:
    with pytest.raises(ValueFormatError) as info:
        key_from_pem(data, password)
    assert info.value.offset == 0
    assert info.value.expected == "a PEM private key"


# --- PKCS#12 -----------------------------------------------------------------------------------


def test_identity_pkcs12_round_trip() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    identity = node.callmanager
    data = identity_to_pkcs12(identity, b"callmanager", PASSWORD)
    loaded = identity_from_pkcs12(data, PASSWORD)
    assert loaded.certificate == identity.certificate
    assert public_numbers_equal(loaded.key, identity.key)
    assert loaded.serial_hex == identity.serial_hex
    chained = identity_to_pkcs12(identity, b"cm", PASSWORD, chain=[node.tvs.certificate])
    assert identity_from_pkcs12(chained, PASSWORD).certificate == identity.certificate
    assert certs_from_pkcs12(chained, PASSWORD) == [identity.certificate, node.tvs.certificate]


def test_pkcs12_wrong_password() -> None:
    identity = self_signed("lab", now=NOW, key=rsa_key())
    data = identity_to_pkcs12(identity, b"lab", PASSWORD)
    with pytest.raises(CryptoError, match="wrong password"):
        identity_from_pkcs12(data, b"wrong")
    with pytest.raises(DecryptionError):
        certs_from_pkcs12(data, b"wrong")
    with pytest.raises(UsageError, match="empty"):
        identity_to_pkcs12(identity, b"lab", b"")


def test_trust_store_pkcs12_round_trip() -> None:
    node = generate_node(HOST, now=NOW, keys=pooled_keys())
    certs = [identity.certificate for _, identity in node.items()]
    data = certs_to_pkcs12(certs, PASSWORD)
    assert certs_from_pkcs12(data, PASSWORD) == certs
    with pytest.raises(StructureError, match="no private key"):
        identity_from_pkcs12(data, PASSWORD)
    with pytest.raises(CryptoError):
        certs_from_pkcs12(data, b"wrong")
    with pytest.raises(UsageError):
        certs_to_pkcs12([], PASSWORD)


def test_garbage_pkcs12() -> None:
    identity = self_signed("lab", now=NOW, key=rsa_key())
    data = identity_to_pkcs12(identity, b"lab", PASSWORD)
    with pytest.raises(ValueFormatError) as info:
        identity_from_pkcs12(b"garbage", PASSWORD)
    assert info.value.offset == 0
    with pytest.raises(TruncatedError):
        identity_from_pkcs12(b"", PASSWORD)
    with pytest.raises(TruncatedError):
        identity_from_pkcs12(data[:-10], PASSWORD)
    with pytest.raises(LengthError) as trailing:
        certs_from_pkcs12(data + b"\x00", PASSWORD)
    assert trailing.value.offset == len(data)
    with pytest.raises(FormatError):
        certs_from_pkcs12(cert_to_der(identity.certificate), PASSWORD)


# --- private files -----------------------------------------------------------------------------


def test_write_private_file(tmp_path: Path) -> None:
    target = tmp_path / "callmanager.p12"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_private_file(target, b"secret bytes")
    assert target.read_bytes() == b"secret bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["callmanager.p12"]

    fresh = tmp_path / "new.pem"
    write_private_file(fresh, b"")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["callmanager.p12", "new.pem"]


def test_write_private_file_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_private_file(tmp_path / "nowhere" / "key.pem", b"x")
    assert list(tmp_path.iterdir()) == []

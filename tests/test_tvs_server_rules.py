"""The TVS server's rules (items 21, 22, 25; tvs-capf-wire.md 1.4, 1.7): who may ask, what a
query by issuer and serial finds, and the reasons a verdict is logged with.

The reasons are what ``lab serve`` logs for every TVS request (``TVS host: COMMAND -> valid
(reason)``), so they are compared whole.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, timedelta, timezone

import pytest
from clusterlab import NOW, make_lab, phone_mic
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from keypool import pooled_keys

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, TrustStore
from phone.cluster.tvs import TvsService, TvsVerdict, answer_request, authenticate_client
from phone.errors import ProtocolError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.trustlist import Role
from phone.pki import issue, self_signed
from phone.vendor import manufacturing_cas
from phone.wire.tvs import Command, Frame, query_request, verify_request

MAC = "001122AABBCC"
DEVICE = f"CP-8841-SEP{MAC}"  # 1.4: CP-MMMM-SEP + 12 upper-case hex digits
NO_CLIENT = "no client certificate: TVS authenticates phones by their LSC or MIC"


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One cluster whose TVS requires a client certificate (vphone's ``required`` mode)."""
    lab = make_lab(ClusterSpec("alpha"))
    lab.cluster("alpha").set_parameter("tvs-client-certificate", "required", now=NOW)
    yield lab


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Cluster:
    return lab.cluster("alpha")


@pytest.fixture(scope="module")
def tvs(lab: Lab, cluster: Cluster) -> TvsService:
    service = lab.tvs_service(cluster.publisher.hostname)
    assert service is not None
    return service


@pytest.fixture(scope="module")
def mic() -> x509.Certificate:
    return phone_mic(MAC).certificate


# --- item 21: client authentication (required mode) -------------------------------------------


def test_item21_no_client_certificate_reason() -> None:
    assert authenticate_client(None, (), NOW) == NO_CLIENT


def test_item21_ec_signed_client_certificate_is_accepted() -> None:
    anchor = self_signed("EC CA", now=NOW, key=ec.generate_private_key(ec.SECP256R1()), ca=True)
    client = issue(
        anchor, f"SEP{MAC}", ec.generate_private_key(ec.SECP256R1()).public_key(), now=NOW
    )
    assert authenticate_client(client, (anchor.certificate,), NOW) is None


def test_item21_issuer_name_alone_is_not_enough_the_signature_must_verify() -> None:
    keys = pooled_keys()
    real = self_signed("Phone CA", now=NOW, key=keys.rsa(2048), ca=True)
    impostor = self_signed("Phone CA", now=NOW, key=keys.rsa(2048), ca=True)
    assert impostor.certificate.subject == real.certificate.subject
    client = issue(impostor, f"SEP{MAC}", keys.rsa(2048).public_key(), now=NOW)
    assert authenticate_client(client, (real.certificate,), NOW) == (
        f"client certificate {cucm_name(client.subject)} was not issued by a certificate "
        "in the CAPF-trust store"
    )
    assert authenticate_client(client, (impostor.certificate,), NOW) is None


def _ed25519_pair() -> tuple[x509.Certificate, x509.Certificate]:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ed CA")])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"SEP{MAC}")])

    def build(subject: x509.Name, public: ed25519.Ed25519PublicKey) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(name)
            .public_key(public)
            .serial_number(7)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=1))
            .sign(key, None)
        )

    return build(name, key.public_key()), build(
        subject, ed25519.Ed25519PrivateKey.generate().public_key()
    )


def test_item21_only_rsa_and_ec_anchors_vouch() -> None:
    # phone certificates (MIC, LSC) are RSA or EC: an Ed25519 anchor vouches for nothing
    anchor, client = _ed25519_pair()
    assert authenticate_client(client, (anchor,), NOW) == (
        f"client certificate {cucm_name(client.subject)} was not issued by a certificate "
        "in the CAPF-trust store"
    )


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs in a time zone far from UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_item21_client_validity_bounds_are_inclusive_and_the_reason_is_in_utc(
    mic: x509.Certificate, tokyo: None
) -> None:
    anchors = (x509.load_der_x509_certificate(_der(_issuer_of(mic))),)
    assert authenticate_client(mic, anchors, mic.not_valid_before_utc) is None
    assert authenticate_client(mic, anchors, mic.not_valid_after_utc) is None
    late = (mic.not_valid_after_utc + timedelta(seconds=1)).astimezone(
        timezone(timedelta(hours=-5))
    )
    expected_utc = (mic.not_valid_after_utc + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert authenticate_client(mic, anchors, late) == (
        f"client certificate {cucm_name(mic.subject)} is not valid at {expected_utc}"
    )


def _issuer_of(certificate: x509.Certificate) -> x509.Certificate:
    for anchor in manufacturing_cas():
        if anchor.subject == certificate.issuer:
            return anchor
    raise AssertionError("no manufacturing CA issued the MIC")


# --- item 25 / 22: verify and query verdicts and their logged reasons --------------------------


def test_item25_verify_reasons(tvs: TvsService, cluster: Cluster, mic: x509.Certificate) -> None:
    known = tvs.verify(_der(cluster.capf.certificate), client=mic, now=NOW)
    assert (known.valid, known.roles, known.reason) == (True, (Role.CAPF,), "found")
    unknown = tvs.verify(_der(cluster.publisher.tomcat.certificate), client=mic, now=NOW)
    assert (unknown.valid, unknown.reason) == (
        False,
        "certificate not found in the TVS certificate store",
    )


def test_item22_query_finds_a_certificate_after_others_with_other_serials(
    tvs: TvsService, cluster: Cluster, mic: x509.Certificate
) -> None:
    # the CAPF certificate is vouched for after the nodes' and ITLRecovery's (module docstring)
    target = cluster.capf.certificate
    verdict = tvs.query(
        cucm_name(target.issuer), serial_bytes(target.serial_number), client=mic, now=NOW
    )
    assert (verdict.valid, verdict.roles, verdict.certificates, verdict.reason) == (
        True,
        (Role.CAPF,),
        (_der(target),),
        "found",
    )
    assert verdict.ttl == 86400  # item 23


def test_item22_query_issuer_may_end_in_nul_bytes(
    tvs: TvsService, cluster: Cluster, mic: x509.Certificate
) -> None:
    # a C string's terminator after the issuer name (trust-list headers carry it so)
    target = cluster.capf.certificate
    serial = serial_bytes(target.serial_number)
    verdict = tvs.query(cucm_name(target.issuer) + "\x00\x00", serial, client=mic, now=NOW)
    assert verdict.valid and verdict.certificates == (_der(target),)


def test_item22_query_issuer_must_match_no_extra_characters(
    tvs: TvsService, cluster: Cluster, mic: x509.Certificate
) -> None:
    target = cluster.capf.certificate
    serial = serial_bytes(target.serial_number)
    issuer = cucm_name(target.issuer) + "X"
    verdict = tvs.query(issuer, serial, client=mic, now=NOW)
    assert (verdict.valid, verdict.roles, verdict.ttl, verdict.certificates) == (False, (), 0, ())
    assert verdict.reason == (
        f"no certificate with serial {serial.hex()} and issuer {issuer!r} in the "
        "TVS certificate store"
    )


def test_item21_query_dates_the_client_at_the_given_time(
    tvs: TvsService, cluster: Cluster, mic: x509.Certificate
) -> None:
    target = cluster.capf.certificate
    late = mic.not_valid_after_utc + timedelta(days=1)
    verdict = tvs.query(
        cucm_name(target.issuer), serial_bytes(target.serial_number), client=mic, now=late
    )
    assert not verdict.valid
    assert verdict.reason == (
        f"client certificate {cucm_name(mic.subject)} is not valid at "
        f"{late.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )


# --- judge: the request's elements, the connection's client and clock ---------------------------


@pytest.mark.parametrize("command", [Command.QUERY_REQUEST, Command.VERIFY_REQUEST])
def test_item21_judge_passes_the_client_and_the_time_on(
    tvs: TvsService, cluster: Cluster, mic: x509.Certificate, command: Command
) -> None:
    target = cluster.capf.certificate
    frame = (
        query_request(1, DEVICE, cucm_name(target.issuer), serial_bytes(target.serial_number))
        if command is Command.QUERY_REQUEST
        else verify_request(1, DEVICE, _der(target))
    )
    assert tvs.judge(frame, client=mic, now=NOW).valid
    assert tvs.judge(frame, client=None, now=NOW).reason == NO_CLIENT
    late = mic.not_valid_after_utc + timedelta(days=1)
    refused = tvs.judge(frame, client=mic, now=late)
    assert not refused.valid and refused.reason.endswith(
        f"is not valid at {late:%Y-%m-%dT%H:%M:%SZ}"
    )


def test_item22_judge_query_with_empty_issuer_and_serial(
    tvs: TvsService, mic: x509.Certificate
) -> None:
    frame = Frame(Command.QUERY_REQUEST, 1, ((1, b"\x01" + DEVICE.encode()), (3, b""), (4, b"")))
    verdict = tvs.judge(frame, client=mic, now=NOW)
    assert (verdict.valid, verdict.reason) == (
        False,
        "no certificate with serial  and issuer '' in the TVS certificate store",
    )


# --- 1.7: a CERTIFICATE that is not DER is dropped --------------------------------------------


def test_item_1_7_not_a_certificate_is_dropped_word_for_word() -> None:
    # tvs-raw-not-a-certificate
    def judge(frame: Frame) -> TvsVerdict:
        raise AssertionError("a dropped request is never judged")

    with pytest.raises(ProtocolError) as caught:
        answer_request(verify_request(1, DEVICE, b"not a certificate"), judge)
    assert str(caught.value) == "the certificate element is not a DER certificate"


def test_item22_query_skips_a_same_serial_certificate_of_another_issuer(
    lab: Lab, tvs: TvsService, cluster: Cluster, mic: x509.Certificate
) -> None:
    # serial numbers are unique per issuer only: the CAPF certificate (vouched for first) has
    # the same serial as this CallManager-trust entry of another issuer
    capf = cluster.capf.certificate
    other = self_signed(
        "Other CA", now=NOW, key=pooled_keys().rsa(2048), serial=capf.serial_number
    ).certificate
    cluster.add_trusted(TrustStore.CALLMANAGER, other, source="test", now=NOW)
    verdict = tvs.query(
        cucm_name(other.issuer), serial_bytes(other.serial_number), client=mic, now=NOW
    )
    assert (verdict.valid, verdict.roles, verdict.certificates) == (
        True,
        (Role.CCM,),
        (_der(other),),
    )

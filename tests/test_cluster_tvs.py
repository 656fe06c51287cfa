"""The Trust Verification Service (seed, Trust Verification Service; items 21-25)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from clusterlab import NOW, make_lab, phone_mic, tvs_service
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys

from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, TrustStore
from phone.cluster.tvs import DEFAULT_TTL, TvsService
from phone.errors import LabError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.trustlist import Role
from phone.pki import self_signed

MAC = "001122AABBCC"


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def lab() -> Lab:
    """Two clusters; alpha has a TFTP node and a CallManager-only node."""
    return make_lab(ClusterSpec("alpha", tvs_nodes=2), ClusterSpec("beta"))


@pytest.fixture(scope="module")
def mic() -> x509.Certificate:
    """A phone MIC issued by the emulated manufacturing CA."""
    return phone_mic(MAC).certificate


@pytest.fixture
def required(lab: Lab) -> Iterator[None]:
    """Every cluster of ``lab`` requires a TVS client certificate (vphone's former default)
    for one test; the public tvsd requests none (tvs-capf-wire.md 1.1), so off is restored."""
    for cluster in lab.clusters:
        cluster.set_parameter("tvs-client-certificate", "required", now=NOW)
    yield
    for cluster in lab.clusters:
        cluster.set_parameter("tvs-client-certificate", "off", now=NOW)


def _tvs(lab: Lab, host: str) -> TvsService:
    service = lab.tvs_service(host)
    assert service is not None
    return service


def test_item21_tvs_refuses_clients_without_a_trusted_certificate(lab: Lab, required: None) -> None:
    alpha = lab.cluster("alpha")
    tvs = _tvs(lab, alpha.publisher.hostname)
    target = _der(alpha.publisher.callmanager.certificate)
    verdict = tvs.verify(target, client=None, now=NOW)
    assert not verdict.valid and "no client certificate" in verdict.reason
    stranger = self_signed("SEP001122334455", now=NOW, key=pooled_keys().rsa(2048))
    verdict = tvs.verify(target, client=stranger.certificate, now=NOW)
    assert not verdict.valid and "CAPF-trust" in verdict.reason
    # An LSC issued by another cluster's CAPF is not trusted here.
    beta = lab.cluster("beta")
    foreign = certops.issue_lsc(beta, MAC, pooled_keys().rsa(2048).public_key(), now=NOW)
    assert not tvs.verify(target, client=foreign, now=NOW).valid


def test_item21_tvs_accepts_mic_and_own_lsc(lab: Lab, mic: x509.Certificate) -> None:
    alpha = lab.cluster("alpha")
    tvs = _tvs(lab, alpha.publisher.hostname)
    target = _der(alpha.publisher.callmanager.certificate)
    assert tvs.verify(target, client=mic, now=NOW).valid
    lsc = certops.issue_lsc(alpha, MAC, pooled_keys().rsa(2048).public_key(), now=NOW)
    assert tvs.verify(target, client=lsc, now=NOW).valid


def test_item21_expired_client_refused_and_lab_clock_fallback(
    lab: Lab, mic: x509.Certificate, required: None
) -> None:
    alpha = lab.cluster("alpha")
    tvs = _tvs(lab, alpha.publisher.hostname)
    target = _der(alpha.publisher.callmanager.certificate)
    late = mic.not_valid_after_utc + timedelta(days=1)
    verdict = tvs.verify(target, client=mic, now=late)
    assert not verdict.valid and "not valid at" in verdict.reason
    assert tvs.verify(target, client=mic).valid  # default: the time of the last change
    lab.clock = lambda: late
    try:
        assert not tvs.verify(target, client=mic).valid
    finally:
        lab.clock = None


def test_item25_roles_of_the_clusters_own_certificates(lab: Lab, mic: x509.Certificate) -> None:
    alpha = lab.cluster("alpha")
    tftp, cm_only = alpha.nodes
    tvs = _tvs(lab, cm_only.hostname)  # any TVS node answers the same
    expected = {
        tftp.callmanager.certificate: (Role.SAST, Role.CCM, Role.TFTP),
        cm_only.callmanager.certificate: (Role.CCM,),
        tftp.tvs.certificate: (Role.TVS,),
        cm_only.tvs.certificate: (Role.TVS,),
        alpha.itlrecovery.certificate: (Role.SAST,),
        alpha.capf.certificate: (Role.CAPF,),
    }
    for certificate, roles in expected.items():
        verdict = tvs.verify(_der(certificate), client=mic, now=NOW)
        assert verdict.valid and verdict.roles == roles, certificate.subject
        assert verdict.ttl == DEFAULT_TTL == 86400
    for unknown in (
        tftp.tomcat.certificate,
        lab.cluster("beta").publisher.callmanager.certificate,
    ):
        verdict = tvs.verify(_der(unknown), client=mic, now=NOW)
        assert not verdict.valid and verdict.roles == () and verdict.ttl == 0
    assert not tvs.verify(b"not a certificate", client=mic, now=NOW).valid


def test_item25_mixed_mode_callmanager_is_ccm_tftp(mic: x509.Certificate) -> None:
    cluster = make_lab(ClusterSpec(mixed_mode=True)).cluster()
    tvs = tvs_service(cluster, cluster.publisher.hostname)
    assert tvs is not None
    verdict = tvs.verify(_der(cluster.publisher.callmanager.certificate), client=mic, now=NOW)
    assert verdict.roles == (Role.SAST, Role.CCM_TFTP)


def test_item22_query_by_issuer_and_serial(lab: Lab, mic: x509.Certificate, required: None) -> None:
    alpha = lab.cluster("alpha")
    tvs = _tvs(lab, alpha.publisher.hostname)
    target = alpha.itlrecovery.certificate
    serial = serial_bytes(target.serial_number)
    for issuer in (cucm_name(target.issuer), target.issuer.rfc4514_string().upper()):
        verdict = tvs.query(issuer, serial, client=mic, now=NOW)
        assert verdict.valid and verdict.roles == (Role.SAST,)
        assert verdict.certificates == (_der(target),)
    wrong = tvs.query(cucm_name(target.issuer), serial + b"\x01", client=mic, now=NOW)
    assert not wrong.valid and "no certificate" in wrong.reason
    assert not tvs.query(cucm_name(target.issuer), serial, client=None, now=NOW).valid


def test_item25_trust_store_entries_and_ttl_parameter(mic: x509.Certificate) -> None:
    lab = make_lab(ClusterSpec("alpha"), ClusterSpec("beta"))
    alpha, beta = lab.cluster("alpha"), lab.cluster("beta")
    tvs = _tvs(lab, alpha.publisher.hostname)
    sast = beta.itlrecovery.certificate
    ccm = beta.publisher.callmanager.certificate
    other = beta.publisher.tomcat.certificate
    alpha.add_trusted(TrustStore.PHONE_SAST, sast, source="test", now=NOW)
    alpha.add_trusted(TrustStore.CALLMANAGER, ccm, source="test", now=NOW)
    alpha.add_trusted(TrustStore.TOMCAT, other, source="test", now=NOW)
    assert tvs.verify(_der(sast), client=mic, now=NOW).roles == (Role.SAST,)
    assert tvs.verify(_der(ccm), client=mic, now=NOW).roles == (Role.CCM,)
    assert not tvs.verify(_der(other), client=mic, now=NOW).valid  # tomcat-trust: no
    alpha.set_parameter("tvs-ttl", "3600", now=NOW)
    assert tvs.verify(_der(sast), client=mic, now=NOW).ttl == 3600
    # TVS caches nothing: removal is effective at once.
    [entry] = alpha.trust(TrustStore.PHONE_SAST)
    assert alpha.remove_trusted(TrustStore.PHONE_SAST, entry.sha256, now=NOW)
    assert not tvs.verify(_der(sast), client=mic, now=NOW).valid


def test_stopped_tvs_node_is_absent(mic: x509.Certificate) -> None:
    lab = make_lab()
    cluster: Cluster = lab.cluster()
    host = cluster.publisher.hostname
    tvs = _tvs(lab, host)
    assert tvs.certificate == cluster.publisher.tvs.certificate  # item 21: checked vs ITL
    cluster.stop_node(host, now=NOW)
    assert lab.tvs_service(host) is None
    verdict = tvs.verify(_der(cluster.itlrecovery.certificate), client=mic, now=NOW)
    assert not verdict.valid and "not running" in verdict.reason
    assert lab.tvs_service("nowhere.lab") is None


def test_tvs_client_certificate_defaults_to_off_as_tvsd(lab: Lab) -> None:
    # tvs-capf-wire.md 1.1: tvsd requests no client certificate; vphone answers such clients.
    alpha = lab.cluster("alpha")
    assert alpha.parameters.tvs_client_certificate == "off"
    tvs = _tvs(lab, alpha.publisher.hostname)
    verdict = tvs.verify(_der(alpha.publisher.callmanager.certificate), client=None, now=NOW)
    assert verdict.valid and verdict.certificates == ()
    with pytest.raises(LabError):
        alpha.set_parameter("tvs-client-certificate", "sometimes", now=NOW)


def test_tvs_client_certificate_is_persisted_and_shown(tmp_path: Path) -> None:
    from phone.cli.lab_show import cluster_report
    from phone.cluster.store import load_lab, save_lab

    lab = make_lab()
    lab.cluster().set_parameter("tvs-client-certificate", "required", now=NOW)
    save_lab(lab, tmp_path / "lab")
    again = load_lab(tmp_path / "lab")
    assert again.cluster().parameters.tvs_client_certificate == "required"
    assert cluster_report(again.cluster())["parameters"]["tvs-client-certificate"] == "required"

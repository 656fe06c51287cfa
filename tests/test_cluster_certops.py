"""Certificate operations: regeneration, Bulk Certificate Management, ITL reset (items 26-35)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clusterlab import NOW, make_lab, phone_mic, tvs_service
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys

from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, TrustStore
from phone.cluster.tvs import TvsService
from phone.errors import DecryptionError, LabError, SignatureError
from phone.formats.trustlist import Role, TrustList, parse_trust_list, verify_with_certificate
from phone.pki import CertKind

LATER = NOW + timedelta(hours=1)
PASSWORD = b"bulk-pass"


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def _itl(cluster: Cluster, host: str | None = None) -> TrustList:
    data = cluster.itl_file(host or cluster.tftp_hosts[0])
    assert data is not None
    return parse_trust_list(data)


def _tvs(cluster: Cluster) -> TvsService:
    tvs = tvs_service(cluster, cluster.publisher.hostname)
    assert tvs is not None
    return tvs


# --- Bulk Certificate Management (item 34, 35) -----------------------------------------------


def test_item34_bulk_round_trip_between_two_clusters() -> None:
    lab: Lab = make_lab(ClusterSpec("old", release="12.x"), ClusterSpec("new"))
    old, new = lab.cluster("old"), lab.cluster("new")
    mic = phone_mic("001122AABBCC").certificate
    wanted_by_old = [new.publisher.callmanager.certificate, new.itlrecovery.certificate]
    wanted_by_new = [old.publisher.callmanager.certificate, old.itlrecovery.certificate]

    def vouches(cluster: Cluster, certificates: list[x509.Certificate]) -> list[bool]:
        return [_tvs(cluster).verify(_der(c), client=mic, now=NOW).valid for c in certificates]

    assert vouches(old, wanted_by_old) == [False, False]
    assert vouches(new, wanted_by_new) == [False, False]
    exports = {c.name: certops.export_certificates(c, password=PASSWORD) for c in (old, new)}
    assert set(exports["old"]) == set(certops.BULK_FILES.values())

    result = certops.import_certificates(old, exports, password=PASSWORD, now=LATER)
    assert result.own_skipped == 0 and not result.warnings  # its own export is not read
    assert vouches(old, wanted_by_old) == [True, True]
    assert vouches(new, wanted_by_new) == [False, False]  # not before its own import

    certops.import_certificates(new, exports, password=PASSWORD, now=LATER)
    assert vouches(new, wanted_by_new) == [True, True]
    # SAST (Phone-SAST-trust) and CCM (CallManager-trust): enough for a phone of one cluster
    # to accept the other's ITL through TVS (item 35).
    for certificate in wanted_by_old:
        verdict = _tvs(old).verify(_der(certificate), client=mic, now=NOW)
        assert verdict.roles == (Role.SAST, Role.CCM)

    # Item 35: the old cluster's TVS answers a query for the new ITL's signer.
    new_itl = _itl(new)
    verdict = _tvs(old).query(
        new_itl.header.signer_issuer, new_itl.header.signer_serial, client=mic, now=NOW
    )
    assert verdict.valid and Role.SAST in verdict.roles
    signer = x509.load_der_x509_certificate(verdict.certificates[0])
    verify_with_certificate(new_itl, signer)

    # Importing again adds nothing.
    again = certops.import_certificates(old, exports, password=PASSWORD, now=LATER)
    assert again.added == () and again.already_present > 0


def test_item34_trust_store_mapping() -> None:
    lab = make_lab(ClusterSpec("a"), ClusterSpec("b", tvs_nodes=2))
    a, b = lab.cluster("a"), lab.cluster("b")
    certops.import_certificates(
        a, {"b": certops.export_certificates(b, password=PASSWORD)}, password=PASSWORD, now=LATER
    )

    def store(name: TrustStore) -> set[bytes]:
        return {_der(e.certificate) for e in a.trust(name)}

    b_cm = {_der(n.callmanager.certificate) for n in b.nodes}
    b_itlr = {_der(b.itlrecovery.certificate)}
    b_capf = {_der(b.capf.certificate)}
    b_tomcat = {_der(n.tomcat.certificate) for n in b.nodes}
    assert store(TrustStore.PHONE_SAST) == b_cm | b_itlr
    assert store(TrustStore.CALLMANAGER) == b_cm | b_itlr | b_capf
    assert store(TrustStore.TOMCAT) == b_tomcat
    assert b_capf.isdisjoint(store(TrustStore.CAPF))  # CAPF goes to CallManager-trust only
    sources = {e.source for e in a.trust(TrustStore.PHONE_SAST)}
    assert sources == {"b CallManager (bulk import)", "b ITLRecovery (bulk import)"}


def test_item34_own_certificates_skipped_and_prerequisite_warning() -> None:
    lab = make_lab(ClusterSpec("a"), ClusterSpec("b"))
    a = lab.cluster("a")
    a.set_parameter("prepare-cluster-for-rollback", "true", now=NOW)
    own = certops.export_certificates(a, password=PASSWORD)
    result = certops.import_certificates(a, {"copy": own}, password=PASSWORD, now=LATER)
    assert result.added == () and result.own_skipped == 4  # CM, ITLRecovery, CAPF, Tomcat
    assert any("Prepare Cluster for Rollback" in w for w in result.warnings)
    with pytest.raises(DecryptionError):
        certops.import_certificates(a, {"b": own}, password=b"wrong", now=LATER)


# --- regeneration (items 26-29) --------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CertKind))
def test_regenerate_every_kind(kind: CertKind) -> None:
    cluster = make_lab().cluster()
    host = cluster.tftp_hosts[0]
    before_itl = cluster.stored_itl(host)
    result = certops.regenerate(cluster, kind, now=LATER, keys=pooled_keys())
    assert result.old != result.new
    assert cluster.identity(kind) == result.new
    assert result.new.certificate.not_valid_before_utc == LATER
    changed = cluster.stored_itl(host) != before_itl
    assert changed is (kind is not CertKind.TOMCAT)  # Tomcat is not in the ITL
    if kind is CertKind.CAPF:
        capf_trust = [_der(e.certificate) for e in cluster.trust(TrustStore.CAPF)]
        assert _der(result.new.certificate) in capf_trust
        assert _der(result.old.certificate) in capf_trust  # LSCs of the old CAPF still work


def test_seed_itlrecovery_validity_parameter() -> None:
    cluster = make_lab().cluster()  # 14.x: 5, 10, 15 or 20 years
    cluster.set_parameter("itl-recovery-validity-years", "20", now=NOW)
    result = certops.regenerate(cluster, CertKind.ITLRECOVERY, now=LATER, keys=pooled_keys())
    validity = result.new.certificate.not_valid_after_utc - LATER
    assert timedelta(days=365 * 20) <= validity <= timedelta(days=366 * 20)
    assert "ITLRecovery certificate" in certops.ITLRECOVERY_WARNING
    assert "tokenless CTL" in certops.ITLRECOVERY_WARNING
    old = make_lab(ClusterSpec(release="12.x")).cluster()
    with pytest.raises(LabError, match="offers an ITLRecovery validity of 5"):
        old.set_parameter("itl-recovery-validity-years", "20", now=NOW)


def test_regenerate_needs_a_node_in_multi_node_clusters() -> None:
    cluster = make_lab(ClusterSpec(tvs_nodes=2)).cluster()
    with pytest.raises(LabError, match="--node"):
        certops.regenerate(cluster, CertKind.TVS, now=LATER, keys=pooled_keys())
    with pytest.raises(LabError, match="publisher"):
        certops.regenerate(
            cluster,
            CertKind.ITLRECOVERY,
            now=LATER,
            keys=pooled_keys(),
            host=cluster.nodes[1].hostname,
        )
    second = cluster.nodes[1].hostname
    result = certops.regenerate(cluster, CertKind.TVS, now=LATER, keys=pooled_keys(), host=second)
    assert cluster.node(second).tvs == result.new


def test_item26_callmanager_regenerated_on_8x_tvs_vouches_for_the_new_signer() -> None:
    cluster = make_lab(ClusterSpec(release="8.x-11.5")).cluster()
    old_signer = _itl(cluster).header.serial_hex
    result = certops.regenerate(cluster, CertKind.CALLMANAGER, now=LATER, keys=pooled_keys())
    assert any("item 26" in w for w in result.warnings)
    itl = _itl(cluster)
    assert itl.header.serial_hex != old_signer  # signed by the new CallManager key
    mic = phone_mic("001122AABBCC").certificate
    verdict = _tvs(cluster).query(
        itl.header.signer_issuer, itl.header.signer_serial, client=mic, now=LATER
    )
    assert verdict.valid and Role.SAST in verdict.roles


def test_item28_callmanager_regenerated_on_12x_keeps_the_itl_signer() -> None:
    cluster = make_lab(ClusterSpec(release="12.x")).cluster()
    before = _itl(cluster).header
    certops.regenerate(cluster, CertKind.CALLMANAGER, now=LATER, keys=pooled_keys())
    after = _itl(cluster).header
    assert after.signer_serial == before.signer_serial  # still ITLRecovery


# --- utils itl reset (item 29) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "normal", "reset"),
    [
        ("8.x-11.5", CertKind.CALLMANAGER, CertKind.ITLRECOVERY),
        ("14.x", CertKind.ITLRECOVERY, CertKind.CALLMANAGER),
    ],
)
def test_item29_itl_reset_localkey(release: str, normal: CertKind, reset: CertKind) -> None:
    cluster = make_lab(ClusterSpec(release=release, tvs_nodes=2, tftp_nodes=2)).cluster()
    first, second = cluster.tftp_hosts
    before = _itl(cluster, first)
    certops.itl_reset(cluster, "localkey", now=LATER)
    for host in (first, second):
        itl = _itl(cluster, host)
        verify_with_certificate(itl, cluster.identity(reset, host).certificate)
        with pytest.raises(SignatureError):
            verify_with_certificate(itl, cluster.identity(normal, host).certificate)
    # Same records: the existing ITL content, re-signed.
    assert [r.encode() for r in _itl(cluster, first).records] == [
        r.encode() for r in before.records
    ]
    # A TFTP restart restores normal signing on that node only.
    cluster.start_node(first, now=LATER + timedelta(minutes=5))
    verify_with_certificate(_itl(cluster, first), cluster.identity(normal, first).certificate)
    verify_with_certificate(_itl(cluster, second), cluster.identity(reset, second).certificate)
    cluster.restart_tftp(now=LATER + timedelta(minutes=6))
    assert cluster.state.itl_reset is None


def test_item29_itl_reset_remotekey_with_the_retired_itlrecovery_key() -> None:
    cluster = make_lab().cluster()
    regenerated = certops.regenerate(cluster, CertKind.ITLRECOVERY, now=LATER, keys=pooled_keys())
    with pytest.raises(SignatureError):
        verify_with_certificate(_itl(cluster), regenerated.old.certificate)
    certops.itl_reset(cluster, "remotekey", now=LATER, remote=regenerated.old)
    itl = _itl(cluster)
    verify_with_certificate(itl, regenerated.old.certificate)  # phones still trust that one
    assert itl.records[0].certificate() == regenerated.new.certificate


def test_item29_itl_reset_argument_errors() -> None:
    cluster = make_lab().cluster()
    with pytest.raises(LabError, match="remote key"):
        certops.itl_reset(cluster, "remotekey", now=LATER)
    with pytest.raises(LabError, match="localkey uses"):
        certops.itl_reset(cluster, "localkey", now=LATER, remote=cluster.capf)
    with pytest.raises(LabError, match="localkey or remotekey"):
        certops.itl_reset(cluster, "sideways", now=LATER)

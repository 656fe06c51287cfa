"""ITL and CTL the lab builds, and the ITL hash database (seed; items 2, 16, 18, 19, 26-30)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from clusterlab import NOW, file_service, make_lab
from keypool import pooled_keys

from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.itl import HashOutcome, ItlHashDatabase, itl_hash
from phone.cluster.records import ClusterSpec, Device
from phone.errors import LabError, SignatureError
from phone.formats.trustlist import Role, TrustList, parse_trust_list, verify_with_certificate
from phone.pki import CertKind
from phone.trust.lists import is_empty_itl

LATER = NOW + timedelta(hours=1)


def _itl(cluster: Cluster, host: str | None = None) -> TrustList:
    service = file_service(cluster, host or cluster.tftp_hosts[0])
    assert service is not None
    data = service.get("ITLFile.tlv")
    assert data is not None
    parsed = parse_trust_list(data)
    assert parsed.encode() == data  # the codec reproduces what the lab wrote
    return parsed


def _tftp_log(cluster: Cluster, since: int = 0) -> list[str]:
    return [e.message for e in cluster.log_since(since) if e.service == "TFTP"]


def _one(spec: ClusterSpec | None = None) -> Cluster:
    return make_lab(spec or ClusterSpec()).cluster()


# --- content ---------------------------------------------------------------------------------


def test_item19_itl_records_and_roles() -> None:
    cluster = _one(ClusterSpec(tvs_nodes=2))
    itl = _itl(cluster)
    pub = cluster.publisher
    assert [r.role for r in itl.records] == [
        Role.SAST,
        Role.SAST,
        Role.TFTP,
        Role.CAPF,
        Role.TVS,
        Role.TVS,
    ]
    ders = [r.certificate() for r in itl.records]
    # ITLRecovery as SAST; the TFTP node's CallManager twice (SAST for ITL signatures, TFTP for
    # config signatures); CAPF; every TVS certificate of the cluster.
    assert ders[0] == cluster.itlrecovery.certificate
    assert ders[1] == ders[2] == pub.callmanager.certificate
    assert ders[3] == cluster.capf.certificate
    assert ders[4:] == [n.tvs.certificate for n in cluster.nodes]
    assert itl.records[2].dns_name == pub.hostname and itl.records[2].ip_text == pub.ip
    assert itl.header.filename == "ITLFile.tlv"


def test_seed_itl_one_per_tftp_node() -> None:
    cluster = _one(ClusterSpec(tvs_nodes=3, tftp_nodes=2))
    first, second, third = cluster.nodes
    itl1, itl2 = _itl(cluster, first.hostname), _itl(cluster, second.hostname)
    assert itl1.records[2].certificate() == first.callmanager.certificate
    assert itl2.records[2].certificate() == second.callmanager.certificate
    assert itl1.encode() != itl2.encode()
    assert file_service(cluster, third.hostname) is None  # no TFTP on the third node
    assert set(cluster.hashes.tftp) == {first.hostname, second.hostname}


def test_item2_itlsep_name_serves_the_same_itl() -> None:
    cluster = _one()
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    assert service.get("ITLSEP001122334455.tlv") == service.get("ITLFile.tlv") is not None


@pytest.mark.parametrize(
    ("release", "signer"),
    [
        ("8.x-11.5", CertKind.CALLMANAGER),
        ("12.x", CertKind.ITLRECOVERY),
        ("14.x", CertKind.ITLRECOVERY),
    ],
)
def test_release_profile_itl_signer(release: str, signer: CertKind) -> None:
    cluster = _one(ClusterSpec(release=release))
    itl = _itl(cluster)
    expected = cluster.identity(signer).certificate
    other_kind = CertKind.ITLRECOVERY if signer is CertKind.CALLMANAGER else CertKind.CALLMANAGER
    verify_with_certificate(itl, expected)
    with pytest.raises(SignatureError):
        verify_with_certificate(itl, cluster.identity(other_kind).certificate)
    record = itl.find_signer()
    assert record is not None and record.role == Role.SAST
    assert record.certificate() == expected


def test_trust_file_formats_5_mixed_mode_itl_role_is_ccm_tftp() -> None:
    cluster = _one(ClusterSpec(mixed_mode=True))
    assert [r.role for r in _itl(cluster).records][:3] == [Role.SAST, Role.SAST, Role.CCM_TFTP]


# --- rebuild and the hash database -----------------------------------------------------------


def test_seed_itl_hash_stored_when_tftp_activated() -> None:
    cluster = _one()
    host = cluster.tftp_hosts[0]
    data = cluster.stored_itl(host)
    assert data is not None
    assert cluster.hashes.tftp[host].hash == itl_hash(data)
    assert f"Tftp Itl hash stored: {itl_hash(data)}" in _tftp_log(cluster)


def test_seed_itl_hash_not_changed_logged() -> None:
    cluster = _one()
    host = cluster.tftp_hosts[0]
    before, row = cluster.stored_itl(host), cluster.hashes.tftp[host]
    since = cluster.next_log_seq
    cluster.restart_tftp(now=LATER)  # TFTP activation again: the ITL is generated again
    assert _tftp_log(cluster, since) == ["Tftp Itl hash not changed"]
    assert cluster.stored_itl(host) == before
    assert cluster.hashes.tftp[host] == row  # same hash, same time stored


def test_seed_itl_rebuilt_and_hash_updated_when_content_changes() -> None:
    cluster = _one()
    host = cluster.tftp_hosts[0]
    before = cluster.stored_itl(host)
    since = cluster.next_log_seq
    certops.regenerate(cluster, CertKind.TVS, now=LATER, keys=pooled_keys())
    after = cluster.stored_itl(host)
    assert after is not None and after != before
    assert cluster.hashes.tftp[host].hash == itl_hash(after)
    assert cluster.hashes.tftp[host].updated_at == int(LATER.timestamp())
    assert _tftp_log(cluster, since) == [f"Tftp Itl hash updated: {itl_hash(after)}"]
    assert _itl(cluster).records[-1].certificate() == cluster.publisher.tvs.certificate


def test_seed_itl_checksum_unchanged_by_changes_outside_the_itl() -> None:
    cluster = _one()
    host = cluster.tftp_hosts[0]
    before = cluster.stored_itl(host)
    since = cluster.next_log_seq
    cluster.add_device(Device("001122334455"), now=LATER)
    cluster.set_parameter("sip-station-realm", "example", now=LATER)
    assert cluster.stored_itl(host) == before
    assert _tftp_log(cluster, since) == []


def test_item18_forty_certificates_refused() -> None:
    # 36 TVS nodes: ITLRecovery + CallManager x2 + CAPF + 36 TVS = 40 certificates.
    cluster = _one(ClusterSpec(tvs_nodes=36, key_size=1024))
    host = cluster.tftp_hosts[0]
    service = file_service(cluster, host)
    assert service is not None
    assert service.get("ITLFile.tlv") is None
    problem = cluster.itl_problem(host)
    assert problem is not None and "40 certificates" in problem
    assert any(m.startswith("WARNING") and "40 certificates" in m for m in _tftp_log(cluster))
    assert host not in cluster.hashes.tftp  # nothing a phone could hold


def test_item18_thirty_nine_small_certificates_served() -> None:
    cluster = _one(ClusterSpec(tvs_nodes=35, key_size=1024))
    itl = _itl(cluster)
    assert itl.certificate_count() == 39
    assert len(itl.encode()) <= 64 * 1024


def test_item18_past_64_kb_refused_even_below_40_certificates() -> None:
    # 39 RSA-2048 certificates take about 66 KB: the phone side refuses past 64 KB too.
    cluster = _one(ClusterSpec(tvs_nodes=35))
    host = cluster.tftp_hosts[0]
    problem = cluster.itl_problem(host)
    assert problem is not None and "64 KB" in problem
    assert cluster.itl_file(host) is None


# --- rollback ITL ----------------------------------------------------------------------------


def test_item16_rollback_itl_has_empty_tftp_and_tvs_sections() -> None:
    cluster = _one(ClusterSpec(tvs_nodes=2))
    normal = _itl(cluster)
    cluster.set_parameter("prepare-cluster-for-rollback", "true", now=LATER)
    rollback = _itl(cluster)
    assert is_empty_itl(rollback)  # what the phone side calls the rollback ITL
    assert [r.role for r in rollback.records] == [r.role for r in normal.records]
    tftp_and_tvs = rollback.with_role(Role.TFTP, Role.TVS)
    assert len(tftp_and_tvs) == 3
    for record in tftp_and_tvs:
        # The 33-byte-style certificateless record: length, DNS name (the IP), role, IP.
        assert record.certificate_der is None and record.subject is None
        assert record.dns_name == record.ip_text
    assert {r.ip_text for r in tftp_and_tvs} == {n.ip for n in cluster.nodes}
    # SAST and CAPF records stay, and the usual signer still signs it.
    assert rollback.records[0].encode() == normal.records[0].encode()
    assert rollback.records[3].encode() == normal.records[3].encode()
    verify_with_certificate(rollback, cluster.itlrecovery.certificate)
    assert rollback.header.serial_hex == normal.header.serial_hex
    host = cluster.tftp_hosts[0]
    assert cluster.hashes.tftp[host].hash == itl_hash(rollback.encode())


def test_item33_rollback_parameter_off_restores_the_normal_itl() -> None:
    cluster = _one()
    normal = _itl(cluster)
    cluster.set_parameter("prepare-cluster-for-rollback", "true", now=LATER)
    cluster.set_parameter("prepare-cluster-for-rollback", "false", now=LATER + timedelta(1))
    restored = _itl(cluster)
    assert not is_empty_itl(restored)
    assert [r.encode() for r in restored.records] == [r.encode() for r in normal.records]


# --- CTL -------------------------------------------------------------------------------------


def test_item2_no_ctl_in_non_secure_mode() -> None:
    cluster = _one()
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    assert service.get("CTLFile.tlv") is None
    assert service.get("CTLSEP001122334455.tlv") is None
    with pytest.raises(LabError, match="not in mixed mode"):
        cluster.update_ctl(now=LATER)


@pytest.mark.parametrize(
    ("release", "signer"),
    [
        ("8.x-11.5", CertKind.CALLMANAGER),
        ("12.x", CertKind.ITLRECOVERY),
        ("14.x", CertKind.ITLRECOVERY),
    ],
)
def test_mixed_mode_tokenless_ctl(release: str, signer: CertKind) -> None:
    cluster = _one(ClusterSpec(release=release, tvs_nodes=2))
    assert cluster.ctl_file is None
    cluster.set_mixed_mode(True, now=LATER)
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    data = service.get("CTLFile.tlv")
    assert data is not None and service.get("ctlsep001122334455.tlv") == data
    ctl = parse_trust_list(data)
    assert ctl.encode() == data and ctl.is_ctl
    # CUCM order (sample S2): publisher CallManager SAST, CCM+TFTP per node, CAPF, ITLRecovery.
    assert [r.role for r in ctl.records] == [
        Role.SAST,
        Role.CCM_TFTP,
        Role.CCM_TFTP,
        Role.CAPF,
        Role.SAST,
    ]
    assert not ctl.with_role(Role.TVS)  # TVS records exist in the ITL only
    assert ctl.records[0].certificate() == cluster.publisher.callmanager.certificate
    assert ctl.records[-1].certificate() == cluster.itlrecovery.certificate
    verify_with_certificate(ctl, cluster.identity(signer).certificate)
    assert [r.dns_name for r in ctl.records[1:3]] == [n.hostname for n in cluster.nodes]


def test_seed_warning_ctl_keeps_old_callmanager_until_ctl_update() -> None:
    cluster = _one(ClusterSpec(mixed_mode=True))
    old = cluster.publisher.callmanager.certificate
    result = certops.regenerate(cluster, CertKind.CALLMANAGER, now=LATER, keys=pooled_keys())
    assert any("ctl-update" in w for w in result.warnings)
    assert cluster.ctl_file is not None
    assert parse_trust_list(cluster.ctl_file).records[1].certificate() == old
    cluster.update_ctl(now=LATER + timedelta(minutes=1))
    assert cluster.ctl_file is not None
    fresh = parse_trust_list(cluster.ctl_file).records[1].certificate()
    assert fresh == cluster.publisher.callmanager.certificate != old


def test_set_mode_non_secure_stops_serving_the_ctl() -> None:
    cluster = _one(ClusterSpec(mixed_mode=True))
    assert cluster.ctl_file is not None
    cluster.set_mixed_mode(False, now=LATER)
    assert cluster.ctl_file is None
    assert [r.role for r in _itl(cluster).records][2] == Role.TFTP


# --- ITL File Status (item 30) ---------------------------------------------------------------


def test_seed_itl_status_rules_one_by_one() -> None:
    db = ItlHashDatabase()
    assert db.store_tftp("cucm1", "aa", 1) is HashOutcome.INSERTED
    assert db.store_tftp("cucm1", "aa", 2) is HashOutcome.UNCHANGED
    assert db.tftp["cucm1"].updated_at == 1
    # A device row that does not exist is inserted.
    assert db.report("001122334455", "cucm1", "aa", 10) is HashOutcome.INSERTED
    # Same hash: the timestamp is updated.
    assert db.report("001122334455", "cucm1", "aa", 20) is HashOutcome.TIMESTAMP_UPDATED
    assert db.devices["001122334455"].timestamp == 20
    assert db.mismatches() == []
    # Different hash: the reported hash and timestamp are updated against the device.
    assert db.report("001122334455", "cucm1", "bb", 30) is HashOutcome.MISMATCH_UPDATED
    row = db.devices["001122334455"]
    assert (row.hash, row.timestamp) == ("bb", 30)
    [mismatch] = db.mismatches()
    assert mismatch.expected == "aa"
    # Unregister: the device's trust hash information is deleted.
    assert db.delete_device("001122334455")
    assert not db.delete_device("001122334455")
    assert db.mismatches() == []


@dataclass(frozen=True)
class _Report:
    tftp_host: str
    itl_hash: str
    timestamp: int


def test_item30_cluster_report_mismatch_after_itl_change_and_delete_on_unregister() -> None:
    cluster = _one()
    host = cluster.tftp_hosts[0]
    current = cluster.hashes.tftp[host].hash
    node = cluster.node(host)
    result = cluster.register("001122334455", now=NOW, itl_report=_Report(node.ip, current, 5))
    assert result.accepted and result.created and result.itl is HashOutcome.INSERTED
    assert cluster.hashes.mismatches() == []
    certops.regenerate(cluster, CertKind.TVS, now=LATER, keys=pooled_keys())
    [mismatch] = cluster.hashes.mismatches()  # the phone still holds the old ITL
    assert mismatch.device.hash == current and mismatch.expected != current
    cluster.unregister("001122334455", now=LATER)
    assert cluster.hashes.devices == {}


def test_item30_no_itl_report_before_14x() -> None:
    cluster = _one(ClusterSpec(release="12.x"))
    host = cluster.tftp_hosts[0]
    result = cluster.register("001122334455", now=NOW, itl_report=_Report(host, "aa", 5))
    assert result.accepted and result.itl is None
    assert cluster.hashes.devices == {}
    assert cluster.hashes.tftp[host]  # the per-TFTP hash is kept on every release


def test_item6_autoregistration_off_refuses_unknown_phones() -> None:
    cluster = _one()
    cluster.set_parameter("autoregistration", "false", now=NOW)
    result = cluster.register("001122334455", now=NOW)
    assert not result.accepted and "auto-registration" in result.reason
    assert cluster.device("001122334455") is None

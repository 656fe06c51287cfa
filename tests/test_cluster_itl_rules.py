"""Rules of the cluster's trust-list building, one at a time (items 16, 18, 19; sections 2, 5).

Direct calls of :mod:`phone.cluster.itl` over the session's shared identities: no lab, no
key generation.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from phone.cluster.itl import (
    DeviceHashRow,
    ItlHashDatabase,
    Member,
    TftpHashRow,
    TrustListPlan,
    content_key_of,
    ctl_records,
    itl_records,
)
from phone.formats.header import Digest
from phone.formats.signature import Signer
from phone.formats.trustlist import parse_trust_list
from phone.pki import Identity

# Role codes, trust-file-formats.md section 5.
SAST, CCM_TFTP, TFTP, CAPF, TVS = 0, 2, 3, 4, 21
TIMESTAMP = 1_767_268_800  # 2026-01-01 12:00 UTC


def _members(ids: Mapping[str, Identity]) -> dict[str, Member]:
    return {
        "itlrecovery": Member("cucm1.lab", "10.0.0.11", ids["SAST"].certificate),
        "tftp": Member("cucm1.lab", "10.0.0.11", ids["CCM+TFTP"].certificate),
        "tftp2": Member("cucm2.lab", "10.0.0.12", ids["stranger"].certificate),
        "tvs": Member("cucm1.lab", "10.0.0.11", ids["TVS"].certificate),
        "capf": Member("cucm1.lab", "10.0.0.11", ids["CAPF"].certificate),
    }


def test_item19_itl_records_without_rollback_argument_is_the_normal_itl(
    formats_identities: Mapping[str, Identity],
) -> None:
    # item 19, phone-behaviour.md: ITLRecovery (SAST), the TFTP node's CallManager certificate
    # as SAST and as TFTP (non-secure mode), CAPF, every TVS certificate -- each record a
    # certificate; the "empty" rollback ITL (item 16) only when asked for.
    m = _members(formats_identities)
    records = itl_records(
        itlrecovery=m["itlrecovery"], tftp=m["tftp"], tvs=[m["tvs"]], capf=m["capf"],
        mixed_mode=False,
    )  # fmt: skip
    assert [r.role for r in records] == [SAST, SAST, TFTP, CAPF, TVS]
    assert all(r.certificate_der is not None for r in records)
    assert records[2].certificate_der == records[1].certificate_der


def test_ctl_tftp_only_node_is_a_tftp_record_and_callmanager_nodes_ccm_tftp(
    formats_identities: Mapping[str, Identity],
) -> None:
    # trust-file-formats.md section 5 / module docstring: every CallManager node's certificate
    # as CCM+TFTP (2), a TFTP-only node's as TFTP (3); publisher SAST first, ITLRecovery SAST last.
    m = _members(formats_identities)
    records = ctl_records(
        publisher=m["tftp"],
        nodes=[(m["tftp"], True), (m["tftp2"], False)],
        capf=m["capf"],
        itlrecovery=m["itlrecovery"],
    )
    assert [r.role for r in records] == [SAST, CCM_TFTP, TFTP, CAPF, SAST]
    assert records[2].dns_name == "cucm2.lab"


@pytest.mark.parametrize(
    ("digest", "code"),
    [(Digest.SHA1, 1), (Digest.SHA256, 2), (Digest.SHA512, 3)],
)
def test_section2_trust_list_is_signed_with_the_plans_digest_and_keeps_its_content_key(
    formats_identities: Mapping[str, Identity], rsa_signer: Signer, digest: Digest, code: int
) -> None:
    # trust-file-formats.md section 2, tag 8: 1 = SHA-1, 2 = SHA-256, 3 = SHA-512. A file built
    # from a plan carries that code, and reads back as the same content (so the cluster keeps
    # it rather than re-signing: "the hash changes only when the ITL file is modified", seed).
    m = _members(formats_identities)
    records = itl_records(
        itlrecovery=m["itlrecovery"], tftp=m["tftp"], tvs=[m["tvs"]], capf=None,
        mixed_mode=True, rollback=False,
    )  # fmt: skip
    plan = TrustListPlan(records, rsa_signer, "ITLFile.tlv", digest)
    data = plan.build(TIMESTAMP)
    header = parse_trust_list(data).header
    assert header.digest_code == code
    assert header.timestamp == TIMESTAMP
    assert content_key_of(data) == plan.content_key()
    other = TrustListPlan(records, rsa_signer, "ITLFile.tlv", Digest(code % 3 + 1))
    assert content_key_of(data) != other.content_key()


def test_item18_size_limit_is_64_kb_inclusive(
    formats_identities: Mapping[str, Identity], rsa_signer: Signer
) -> None:
    # item 18, phone-behaviour.md: an ITL past 64 KB (65,536 bytes) cannot be loaded; one of
    # exactly 64 KB can.
    m = _members(formats_identities)
    records = itl_records(
        itlrecovery=m["itlrecovery"], tftp=m["tftp"], tvs=[m["tvs"]], capf=m["capf"],
        mixed_mode=False, rollback=False,
    )  # fmt: skip
    plan = TrustListPlan(records, rsa_signer, "ITLFile.tlv", Digest.SHA1)
    assert plan.size_problem(65536) is None
    assert plan.size_problem(65537) == (
        "the ITL is 65537 bytes, more than 64 KB: phones cannot load it"
    )


def test_item30_hash_database_snapshot_copies_both_tables() -> None:
    # item 30 (ITL File Status): a snapshot holds the TFTP rows and the device rows as they
    # were, and later writes do not change it.
    db = ItlHashDatabase()
    db.store_tftp("cucm1.lab", "aa" * 20, TIMESTAMP)
    db.report("001122AABBCC", "cucm1.lab", "AA" * 20, TIMESTAMP)
    tftp, devices = db.snapshot()
    assert tftp == {"cucm1.lab": TftpHashRow("cucm1.lab", "aa" * 20, TIMESTAMP)}
    assert devices == {
        "001122AABBCC": DeviceHashRow("001122AABBCC", "cucm1.lab", "aa" * 20, TIMESTAMP)
    }
    db.store_tftp("cucm2.lab", "bb" * 20, TIMESTAMP)
    db.delete_device("001122AABBCC")
    assert list(tftp) == ["cucm1.lab"] and list(devices) == ["001122AABBCC"]

"""Trust-list rules of the pure core, by phone-behaviour item number."""

from __future__ import annotations

import pytest
from cryptography import x509
from trustkit import FakeTvs, Kit, identity, no_tvs, signer

from phone.formats import Role, TrustList, build_trust_list, record_from_certificate
from phone.trust.decision import Verdict
from phone.trust.lists import (
    ListKind,
    ListOutcome,
    TvsAsk,
    evaluate_trust_list,
    has_tftp_certificate,
    is_empty_itl,
)
from phone.trust.tvs import TvsOutcome

SAST_ONLY = frozenset({Role.SAST})


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.make("c1")


@pytest.fixture(scope="module")
def other() -> Kit:
    return Kit.make("c2")


def itl_decision(
    data: bytes,
    *,
    ctl: TrustList | None = None,
    itl: TrustList | None = None,
    tvs: TvsAsk = no_tvs,
) -> ListOutcome:
    return evaluate_trust_list(
        data, name="ITLFile.tlv", kind=ListKind.ITL, installed_ctl=ctl, installed_itl=itl, tvs=tvs
    )


def test_item9_first_itl_trusted_on_first_use(kit: Kit) -> None:
    outcome = itl_decision(kit.itl().encode())
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 9"
    assert outcome.decision.status == "ITL installed"  # item 9 [S3][S4]
    assert outcome.trust_list is not None


def test_item9_tofu_even_for_a_list_whose_self_signature_is_broken(kit: Kit) -> None:
    # Trust on first use means no verification: the seed's only check is later, via TVS.
    data = bytearray(kit.itl().encode())
    data[-10] ^= 0xFF
    outcome = itl_decision(bytes(data))
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert "does not match" in outcome.decision.reason


def test_item3_same_itl_again_is_unchanged(kit: Kit) -> None:
    itl = kit.itl()
    outcome = itl_decision(itl.encode(), itl=itl)
    assert outcome.decision.verdict is Verdict.UNCHANGED
    assert outcome.decision.status is None


def test_item12_update_signed_by_known_sast_accepted(kit: Kit) -> None:
    old = kit.itl()
    # 12.x: the new ITL (say with a regenerated CallManager) is still signed by ITLRecovery.
    regenerated = Kit(kit.name, identity("cucm1.c1.lab"), kit.itlrecovery, kit.tvs, kit.capf)
    outcome = itl_decision(regenerated.itl().encode(), itl=old)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 12"
    assert outcome.decision.status == "Trust List updated"  # item 13 [S13]


def test_item12_tampered_update_from_known_signer_rejected(kit: Kit) -> None:
    old = kit.itl()
    new = bytearray(
        Kit(kit.name, identity("cucm1.c1.lab"), kit.itlrecovery, kit.tvs, kit.capf).itl().encode()
    )
    new[-1] ^= 0x01
    outcome = itl_decision(bytes(new), itl=old)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.status == "Trust List update failed"  # item 13 [S13]
    assert "signature" in outcome.decision.reason


def test_item13_unknown_signer_without_tvs_rejected_and_old_kept(kit: Kit, other: Kit) -> None:
    outcome = itl_decision(other.itl().encode(), itl=kit.itl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.status == "Trust List update failed"  # item 13 [S13]
    assert outcome.trust_list is None
    assert "is not a SAST record" in outcome.decision.reason


def test_items12_20_unknown_signer_vouched_by_tvs_accepted(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    outcome = itl_decision(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "items 12, 20"
    assert tvs.asked  # TVS was consulted


def test_item12_tvs_vouching_without_sast_role_is_not_enough(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, frozenset({Role.CCM})))
    outcome = itl_decision(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.REJECTED


def test_item24_tvs_vouching_for_another_certificate_fails_signature(kit: Kit, other: Kit) -> None:
    # A TVS that returns the wrong certificate for the signer: the signature must still verify.
    def liar(issuer: str, serial: bytes, certificate: x509.Certificate | None = None) -> TvsOutcome:
        return TvsOutcome(True, SAST_ONLY, kit.tvs.certificate, "tvs", "TVS vouched", "item 22")

    outcome = itl_decision(other.itl().encode(), itl=kit.itl(), tvs=liar)
    assert outcome.decision.verdict is Verdict.REJECTED


def test_item26_regenerated_callmanager_on_8x_accepted_through_tvs(kit: Kit) -> None:
    old = kit.itl(signed_by="callmanager")
    new_cm = identity("cucm1.c1.lab")
    regenerated = Kit(kit.name, new_cm, kit.itlrecovery, kit.tvs, kit.capf)
    new = regenerated.itl(signed_by="callmanager").encode()
    assert itl_decision(new, itl=old).decision.verdict is Verdict.REJECTED
    tvs = FakeTvs.knowing((new_cm, frozenset({Role.SAST, Role.TFTP})))
    assert itl_decision(new, itl=old, tvs=tvs).decision.verdict is Verdict.ACCEPTED


def test_item10_first_ctl_imprinted(kit: Kit) -> None:
    outcome = evaluate_trust_list(
        kit.ctl().encode(),
        name="CTLFile.tlv",
        kind=ListKind.CTL,
        installed_ctl=None,
        installed_itl=kit.itl(),
        tvs=no_tvs,
    )
    assert outcome.decision.rule == "item 10"
    assert outcome.decision.status == "CTL installed"  # item 10 [S13]


def test_item13_ctl_update_from_unknown_signer_reports_ctl_update_failed(
    kit: Kit, other: Kit
) -> None:
    outcome = evaluate_trust_list(
        other.ctl().encode(),
        name="CTLFile.tlv",
        kind=ListKind.CTL,
        installed_ctl=kit.ctl(),
        installed_itl=None,
        tvs=no_tvs,
    )
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.status == "CTL update failed"  # item 47 [S13]


def test_item11_itl_with_ctl_must_verify_against_ctl_not_tofu(kit: Kit, other: Kit) -> None:
    # A phone holding a CTL does not trust an ITL on first use.
    outcome = itl_decision(other.itl().encode(), ctl=kit.ctl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 11"
    ok = itl_decision(kit.itl().encode(), ctl=kit.ctl())
    assert ok.decision.verdict is Verdict.ACCEPTED
    assert ok.decision.rule == "item 11"


def test_item11_ctl_path_never_asks_tvs(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    outcome = itl_decision(other.itl().encode(), ctl=kit.ctl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert tvs.asked == []


def test_item16_empty_itl_accepts_any_next_itl(kit: Kit, other: Kit) -> None:
    empty = kit.empty_itl()
    assert is_empty_itl(empty)
    assert not is_empty_itl(kit.itl())
    outcome = itl_decision(other.itl().encode(), itl=empty)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 16"


def test_item16_empty_itl_itself_is_accepted_from_the_known_signer(kit: Kit) -> None:
    outcome = itl_decision(kit.empty_itl().encode(), itl=kit.itl())
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert not has_tftp_certificate(None, kit.empty_itl())


def test_item12_more_than_two_sast_records_rejected(kit: Kit) -> None:
    records = [
        record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
        record_from_certificate(kit.callmanager.certificate, Role.SAST),
        record_from_certificate(kit.tvs.certificate, Role.SAST),
    ]
    data = build_trust_list(records, signer(kit.itlrecovery), timestamp=0).encode()
    outcome = itl_decision(data, itl=kit.itl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert "3 SAST records" in outcome.decision.reason


def test_item18_forty_certificates_refused_and_fatal(kit: Kit) -> None:
    cert = kit.tvs.certificate
    records = [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)]
    records += [record_from_certificate(cert, Role.TVS) for _ in range(39)]
    data = build_trust_list(records, signer(kit.itlrecovery), timestamp=0).encode()
    outcome = itl_decision(data)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 18"
    assert outcome.fatal


def test_item18_thirty_nine_certificates_is_the_boundary(kit: Kit) -> None:
    records = [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)]
    records += [record_from_certificate(kit.tvs.certificate, Role.TVS) for _ in range(38)]
    data = build_trust_list(records, signer(kit.itlrecovery), timestamp=0).encode()
    assert len(data) <= 64 * 1024
    assert itl_decision(data).decision.verdict is Verdict.ACCEPTED


def test_item17_truncated_list_rejected_with_offset(kit: Kit) -> None:
    data = kit.itl().encode()[:-7]
    outcome = itl_decision(data, itl=kit.itl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert "at byte" in outcome.decision.reason


def _itl_version(kit: Kit, version: tuple[int, int]) -> bytes:
    """The kit's ITL records, signed by ITLRecovery, with header version ``version``."""
    records = [
        record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
        record_from_certificate(kit.callmanager.certificate, Role.TFTP, dns_name="cucm1"),
        record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
    ]
    return build_trust_list(records, signer(kit.itlrecovery), timestamp=0, version=version).encode()


# Item 17 [S6][S30]: a phone parses TLV header versions 1.0-1.2; trust-file-formats.md section
# 2: 1.2 in CUCM CTLs and certutils ITLs, 1.1 in every legacy firmware file, 1.0 in certutils
# .sgn. A 10.3 firmware logged "hdr ver 1.2 (knows only upto 1.1)" and still verified the file:
# a newer minor version is tolerated, another major version is not a trust list it reads.
@pytest.mark.parametrize("version", [(1, 0), (1, 1), (1, 2), (1, 3)])
def test_item17_header_versions_1x_are_trusted_on_first_use(
    kit: Kit, version: tuple[int, int]
) -> None:
    outcome = itl_decision(_itl_version(kit, version))
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 9"
    assert outcome.trust_list is not None
    assert outcome.trust_list.header.version == version


@pytest.mark.parametrize("version", [(1, 0), (1, 1)])
def test_item17_header_versions_1_0_and_1_1_update_from_the_known_signer(
    kit: Kit, version: tuple[int, int]
) -> None:
    outcome = itl_decision(_itl_version(kit, version), itl=kit.itl())
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert (outcome.decision.rule, outcome.decision.status) == ("item 12", "Trust List updated")


@pytest.mark.parametrize(("version", "text"), [((2, 0), "2.0"), ((0, 9), "0.9"), ((3, 1), "3.1")])
def test_item17_another_major_header_version_is_rejected_and_old_list_kept(
    kit: Kit, version: tuple[int, int], text: str
) -> None:
    outcome = itl_decision(_itl_version(kit, version), itl=kit.itl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 17"
    assert outcome.decision.reason == f"header version {text} is not a 1.x trust list"
    assert outcome.decision.status == "Trust List update failed"  # item 13 [S13]
    assert outcome.trust_list is None
    # Without any list installed the major check still applies (no trust on first use).
    assert itl_decision(_itl_version(kit, version)).decision.rule == "item 17"


def test_item2_ctl_served_as_itl_rejected(kit: Kit) -> None:
    outcome = itl_decision(kit.ctl().encode())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 2"

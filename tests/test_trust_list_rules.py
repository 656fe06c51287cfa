"""The ITL/CTL rules of ``phone.trust.lists``, one rule a test, with the words a user reads.

Every decision is pinned whole: verdict, rule (the phone-behaviour item), the reason text the
trace and the JSON output show, the status-message text (item 47), the list to install (or
none: item 13 keeps the old one), the TVS outcome that decided, and whether the failure is fatal.
Status texts and limits are literal, from phone-behaviour.md and the Cisco seed text
(default-security.txt); names are the kit's certificate names as CUCM writes them.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from cryptography import x509
from trustkit import TIMESTAMP, FakeTvs, Kit, identity, key_of, no_tvs, signer

from phone.formats import Role, TrustList, build_trust_list, record_from_certificate
from phone.formats.trustlist import Record, certificateless_record
from phone.pki import Identity
from phone.trust.decision import Decision, Verdict
from phone.trust.lists import ListKind, ListOutcome, TvsAsk, evaluate_trust_list
from phone.trust.tvs import TvsOutcome

ITL = "ITLFile.tlv"
CTL = "CTLFile.tlv"
# Status texts: item 13 and item 47 of phone-behaviour.md [S13].
UPDATED = "Trust List updated"
UPDATE_FAILED = "Trust List update failed"
CTL_UPDATE_FAILED = "CTL update failed"
ITL_INSTALLED = "ITL installed"  # item 9
CTL_INSTALLED = "CTL installed"  # item 10
SAST_ONLY = frozenset({Role.SAST})


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.make("c1")


@pytest.fixture(scope="module")
def other() -> Kit:
    return Kit.make("c2")


def dn(cn: str) -> str:
    """A kit certificate's name as CUCM writes it in a header or record."""
    return f"CN={cn};OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"


def signer_words(cn: str, ident: Identity) -> str:
    """How a reason names the signer of a list signed by ``ident`` (self-signed ``cn``)."""
    serial = key_of(ident)[1].hex()
    return f"signer {dn(cn)!r} (serial {serial}, issuer {dn(cn)!r})"


def decide(
    data: bytes,
    *,
    kind: ListKind = ListKind.ITL,
    ctl: TrustList | None = None,
    itl: TrustList | None = None,
    tvs: TvsAsk = no_tvs,
) -> ListOutcome:
    name = CTL if kind is ListKind.CTL else ITL
    return evaluate_trust_list(
        data, name=name, kind=kind, installed_ctl=ctl, installed_itl=itl, tvs=tvs
    )


def rejected(rule: str, reason: str, status: str) -> Decision:
    return Decision(Verdict.REJECTED, rule, reason, status)


def accepted(rule: str, reason: str, status: str) -> Decision:
    return Decision(Verdict.ACCEPTED, rule, reason, status)


def assert_installs(outcome: ListOutcome, data: bytes) -> None:
    assert outcome.trust_list is not None
    assert outcome.trust_list.encode() == data
    assert not outcome.fatal


def assert_keeps_old(outcome: ListOutcome, *, tvs: TvsOutcome | None = None) -> None:
    # Item 13: a rejection installs nothing, so the old list stays.
    assert outcome.trust_list is None
    assert outcome.tvs == tvs
    assert not outcome.fatal


def regenerated(kit: Kit) -> Kit:
    """The same cluster with a new CallManager certificate (items 26, 28)."""
    return Kit(kit.name, identity(f"cucm1.{kit.name}.lab"), kit.itlrecovery, kit.tvs, kit.capf)


def tampered(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-1] ^= 0x01  # the last byte of the last record's certificate: signature no longer fits
    return bytes(damaged)


def itl_of(records: list[Record], by: Identity, *, filename: str = ITL) -> bytes:
    return build_trust_list(records, signer(by), filename=filename, timestamp=TIMESTAMP).encode()


# --- what is checked before any trust decision (items 2, 17, 18, 12) ---------------------------


def test_item17_itl_that_does_not_parse_is_rejected_and_old_kept(kit: Kit) -> None:
    outcome = decide(kit.itl().encode()[:-7], itl=kit.itl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 17"
    assert outcome.decision.reason.startswith("ITLFile.tlv does not parse: ")
    assert outcome.decision.status == UPDATE_FAILED
    assert_keeps_old(outcome)


def test_item17_ctl_that_does_not_parse_reports_ctl_update_failed(kit: Kit) -> None:
    outcome = decide(kit.ctl().encode()[:-7], kind=ListKind.CTL, ctl=kit.ctl())
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 17"
    assert outcome.decision.reason.startswith("CTLFile.tlv does not parse: ")
    assert outcome.decision.status == CTL_UPDATE_FAILED  # item 47
    assert_keeps_old(outcome)


def test_item2_ctl_served_as_itl_is_named_and_rejected(kit: Kit) -> None:
    outcome = decide(kit.ctl().encode())
    assert outcome.decision == rejected(
        "item 2",
        "ITLFile.tlv was requested as the ITL but its header names 'CTLFile.tlv'",
        UPDATE_FAILED,
    )
    assert_keeps_old(outcome)


def test_item2_itl_served_as_ctl_is_named_and_rejected(kit: Kit) -> None:
    outcome = decide(kit.itl().encode(), kind=ListKind.CTL)
    assert outcome.decision == rejected(
        "item 2",
        "CTLFile.tlv was requested as the CTL but its header names 'ITLFile.tlv'",
        CTL_UPDATE_FAILED,  # item 47
    )
    assert_keeps_old(outcome)


def test_item17_ctl_of_another_major_version_reports_ctl_update_failed(kit: Kit) -> None:
    records = [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)]
    data = build_trust_list(
        records, signer(kit.itlrecovery), filename=CTL, timestamp=TIMESTAMP, version=(2, 0)
    ).encode()
    outcome = decide(data, kind=ListKind.CTL)
    assert outcome.decision == rejected(
        "item 17", "header version 2.0 is not a 1.x trust list", CTL_UPDATE_FAILED
    )
    assert_keeps_old(outcome)


def _padded_itl(kit: Kit, size: int) -> bytes:
    """An ITL of exactly ``size`` bytes holding two certificates: a certificateless record's
    DNS name takes up the rest (no certificate, so it does not count towards the 39)."""
    base = [
        record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
        record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
    ]
    empty = len(itl_of([*base, certificateless_record(Role.TFTP, dns_name="")], kit.itlrecovery))
    filler = certificateless_record(Role.TFTP, dns_name="x" * (size - empty))
    data = itl_of([*base, filler], kit.itlrecovery)
    assert len(data) == size
    return data


def test_item18_an_itl_of_exactly_64_kilobytes_is_loaded(kit: Kit) -> None:
    # Seed: the phone fails when the ITL "exceeds 64 kilobytes"; 65,536 bytes does not exceed.
    data = _padded_itl(kit, 65536)
    outcome = decide(data)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 9"
    assert_installs(outcome, data)


def test_item18_an_itl_over_64_kilobytes_is_fatal_even_with_few_certificates(kit: Kit) -> None:
    data = _padded_itl(kit, 65537)
    outcome = decide(data, itl=kit.itl())
    assert outcome.decision == rejected(
        "item 18",
        "ITLFile.tlv holds 2 certificates in 65537 bytes; a phone loads at most 39 certificates"
        " / 64 KB, so registration will fail",
        UPDATE_FAILED,
    )
    assert outcome.trust_list is None
    assert outcome.fatal  # item 18: registration fails


def test_item18_forty_certificates_are_fatal_even_under_64_kilobytes(
    kit: Kit, formats_identities: Mapping[str, Identity]
) -> None:
    small = formats_identities["small"].certificate  # RSA-1024: 40 of them fit in 64 KB
    records = [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)]
    records += [record_from_certificate(small, Role.TVS) for _ in range(39)]
    data = itl_of(records, kit.itlrecovery)
    assert len(data) < 65536
    outcome = decide(data)
    assert outcome.decision == rejected(
        "item 18",
        f"ITLFile.tlv holds 40 certificates in {len(data)} bytes; a phone loads at most 39"
        " certificates / 64 KB, so registration will fail",
        UPDATE_FAILED,
    )
    assert outcome.trust_list is None
    assert outcome.fatal


def _sast_records(kit: Kit, count: int) -> list[Record]:
    certs = [kit.itlrecovery, kit.callmanager, kit.tvs][:count]
    return [record_from_certificate(i.certificate, Role.SAST) for i in certs]


def test_item12_a_list_with_three_sast_records_is_rejected(kit: Kit) -> None:
    outcome = decide(itl_of(_sast_records(kit, 3), kit.itlrecovery), itl=kit.itl())
    assert outcome.decision == rejected(
        "item 12", "ITLFile.tlv holds 3 SAST records; at most 2", UPDATE_FAILED
    )
    assert_keeps_old(outcome)


def test_item12_a_ctl_with_three_sast_records_reports_ctl_update_failed(kit: Kit) -> None:
    data = itl_of(_sast_records(kit, 3), kit.itlrecovery, filename=CTL)
    outcome = decide(data, kind=ListKind.CTL)
    assert outcome.decision == rejected(
        "item 12", "CTLFile.tlv holds 3 SAST records; at most 2", CTL_UPDATE_FAILED
    )
    assert_keeps_old(outcome)


def test_item12_two_sast_records_are_allowed(kit: Kit) -> None:
    data = itl_of(_sast_records(kit, 2), kit.itlrecovery)
    outcome = decide(data, itl=kit.itl())
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert_installs(outcome, data)


# --- item 3: the list already installed ----------------------------------------------------------


def test_item3_the_installed_itl_again_is_unchanged_and_kept(kit: Kit) -> None:
    itl = kit.itl()
    outcome = decide(itl.encode(), ctl=kit.ctl(), itl=itl)
    assert outcome.decision == Decision(
        Verdict.UNCHANGED, "item 3", "ITLFile.tlv is the ITL already installed"
    )
    assert outcome.trust_list is itl
    assert outcome.tvs is None


def test_item3_the_installed_ctl_again_is_unchanged_and_kept(kit: Kit) -> None:
    ctl = kit.ctl()
    outcome = decide(ctl.encode(), kind=ListKind.CTL, ctl=ctl, itl=kit.itl())
    assert outcome.decision == Decision(
        Verdict.UNCHANGED, "item 3", "CTLFile.tlv is the CTL already installed"
    )
    assert outcome.trust_list is ctl


# --- CTL: items 10, 12, 20, 24, 35 ---------------------------------------------------------------


def test_item10_first_ctl_is_imprinted_with_its_reason(kit: Kit) -> None:
    data = kit.ctl().encode()
    outcome = decide(data, kind=ListKind.CTL, itl=kit.itl())
    assert outcome.decision == accepted(
        "item 10", "no CTL on the phone: CTLFile.tlv imprinted (leap of faith)", CTL_INSTALLED
    )
    assert_installs(outcome, data)
    assert outcome.tvs is None


def test_item12_ctl_update_from_the_installed_ctls_sast_is_accepted(kit: Kit) -> None:
    new = build_trust_list(
        [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)],
        signer(kit.itlrecovery),
        filename=CTL,
        timestamp=TIMESTAMP,
    ).encode()
    outcome = decide(new, kind=ListKind.CTL, ctl=kit.ctl())
    assert outcome.decision == accepted(
        "item 12",
        f"CTLFile.tlv: {signer_words('ITLRECOVERY_cucm1.c1.lab', kit.itlrecovery)} is CTL "
        f"record SAST {dn('ITLRECOVERY_cucm1.c1.lab')!r}",
        UPDATED,
    )
    assert_installs(outcome, new)


def test_item24_ctl_from_an_unknown_signer_with_tvs_unreachable_fails_closed(
    kit: Kit, other: Kit
) -> None:
    outcome = decide(other.ctl().encode(), kind=ListKind.CTL, ctl=kit.ctl())
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == rejected(
        "item 24",
        f"CTLFile.tlv: {signer_text} is not a SAST record of the installed CTL; "
        "TVS unreachable (fail closed); kept the old CTL",
        CTL_UPDATE_FAILED,  # item 47
    )
    assert outcome.tvs is not None and outcome.tvs.reason == "TVS unreachable (fail closed)"
    assert outcome.trust_list is None


def test_item35_ctl_from_an_unknown_signer_vouched_by_tvs_is_installed(
    kit: Kit, other: Kit
) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    data = other.ctl().encode()
    outcome = decide(data, kind=ListKind.CTL, ctl=kit.ctl(), tvs=tvs)
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == accepted(
        "items 12, 20",
        f"CTLFile.tlv: {signer_text} is not a SAST record of the installed CTL, but TVS vouched",
        UPDATED,
    )
    assert_installs(outcome, data)
    assert outcome.tvs is not None and outcome.tvs.valid
    assert tvs.asked == [key_of(other.itlrecovery)]


# --- ITL with a CTL installed: items 11, 13, 35 --------------------------------------------------


def test_item11_itl_signed_by_the_ctls_sast_is_accepted_with_its_reason(kit: Kit) -> None:
    data = kit.itl().encode()
    outcome = decide(data, ctl=kit.ctl())
    assert outcome.decision == accepted(
        "item 11",
        f"ITLFile.tlv: {signer_words('ITLRECOVERY_cucm1.c1.lab', kit.itlrecovery)} is CTL "
        f"record SAST {dn('ITLRECOVERY_cucm1.c1.lab')!r}",
        UPDATED,
    )
    assert_installs(outcome, data)


def test_item11_itl_signed_by_the_ctls_ccm_tftp_record_is_accepted(kit: Kit) -> None:
    # 8.x: the ITL is signed by CallManager, which the CTL lists as CCM+TFTP.
    data = kit.itl(signed_by="callmanager").encode()
    outcome = decide(data, ctl=kit.ctl())
    assert outcome.decision == accepted(
        "item 11",
        f"ITLFile.tlv: {signer_words('cucm1.c1.lab', kit.callmanager)} is CTL record CCM+TFTP "
        f"{dn('cucm1.c1.lab')!r}",
        UPDATED,
    )
    assert_installs(outcome, data)


def test_item11_itl_signed_by_the_ctls_tftp_record_is_accepted(kit: Kit) -> None:
    ctl = build_trust_list(
        [
            record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
            record_from_certificate(kit.callmanager.certificate, Role.TFTP),
        ],
        signer(kit.itlrecovery),
        filename=CTL,
        timestamp=TIMESTAMP,
    )
    data = kit.itl(signed_by="callmanager").encode()
    outcome = decide(data, ctl=ctl)
    assert outcome.decision.rule == "item 11"
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.reason.endswith(f"is CTL record TFTP {dn('cucm1.c1.lab')!r}")


def test_item11_itl_from_a_signer_the_ctl_lacks_is_rejected_without_tvs(
    kit: Kit, other: Kit
) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    outcome = decide(other.itl().encode(), ctl=kit.ctl(), itl=kit.itl(), tvs=tvs)
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == rejected(
        "item 11",
        f"ITLFile.tlv: {signer_text} is not a SAST record of the installed CTL; kept the old ITL",
        UPDATE_FAILED,
    )
    assert_keeps_old(outcome)
    assert tvs.asked == []  # item 35: "verify new ITL against new CTL without TVS"


def test_item13_itl_that_fails_the_ctl_signature_check_is_rejected(kit: Kit) -> None:
    outcome = decide(tampered(regenerated(kit).itl().encode()), ctl=kit.ctl())
    prefix = (
        f"ITLFile.tlv: signature check with CTL record SAST {dn('ITLRECOVERY_cucm1.c1.lab')!r}"
        " failed: "
    )
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 13"
    assert outcome.decision.reason.startswith(prefix)
    assert outcome.decision.reason.endswith("; kept the old ITL")
    assert outcome.decision.status == UPDATE_FAILED
    assert_keeps_old(outcome)


# --- ITL without a CTL: items 9, 16, 12, 13, 20, 24 ----------------------------------------------


def test_item9_first_itl_reason_names_the_self_check(kit: Kit) -> None:
    data = kit.itl().encode()
    outcome = decide(data)
    serial = key_of(kit.itlrecovery)[1].hex()
    assert outcome.decision == accepted(
        "item 9",
        "no CTL and no ITL on the phone: ITLFile.tlv trusted on first use (self-check: signed by"
        f" SAST record {dn('ITLRECOVERY_cucm1.c1.lab')} ({serial}))",
        ITL_INSTALLED,
    )
    assert_installs(outcome, data)


def test_item16_after_the_rollback_itl_any_itl_is_installed(kit: Kit, other: Kit) -> None:
    data = other.itl().encode()
    outcome = decide(data, itl=kit.empty_itl())
    assert outcome.decision == accepted(
        "item 16",
        "the installed ITL is the empty rollback ITL, so any new ITL is accepted: "
        "ITLFile.tlv installed",
        UPDATED,
    )
    assert_installs(outcome, data)


def test_item12_itl_update_from_the_installed_itls_sast_names_the_record(kit: Kit) -> None:
    data = regenerated(kit).itl().encode()
    outcome = decide(data, itl=kit.itl())
    assert outcome.decision == accepted(
        "item 12",
        f"ITLFile.tlv: {signer_words('ITLRECOVERY_cucm1.c1.lab', kit.itlrecovery)} is ITL "
        f"record SAST {dn('ITLRECOVERY_cucm1.c1.lab')!r}",
        UPDATED,
    )
    assert_installs(outcome, data)
    assert outcome.tvs is None


def test_item13_itl_update_failing_the_signature_check_keeps_the_old_itl(kit: Kit) -> None:
    outcome = decide(tampered(regenerated(kit).itl().encode()), itl=kit.itl())
    prefix = (
        f"ITLFile.tlv: signature check with ITL record SAST {dn('ITLRECOVERY_cucm1.c1.lab')!r}"
        " failed: "
    )
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 13"
    assert outcome.decision.reason.startswith(prefix)
    assert outcome.decision.reason.endswith("; kept the old ITL")
    assert outcome.decision.status == UPDATE_FAILED
    assert_keeps_old(outcome)


def test_item12_only_a_sast_record_of_the_installed_itl_vouches_locally(kit: Kit) -> None:
    # The installed ITL holds CallManager as TFTP only: an ITL signed by CallManager is not
    # signed by a SAST record, so the phone asks TVS (here unreachable: item 24).
    installed = build_trust_list(
        [
            record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
            record_from_certificate(kit.callmanager.certificate, Role.TFTP, dns_name="cucm1"),
            record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
        ],
        signer(kit.itlrecovery),
        timestamp=TIMESTAMP,
    )
    outcome = decide(kit.itl(signed_by="callmanager").encode(), itl=installed)
    assert outcome.decision == rejected(
        "item 24",
        f"ITLFile.tlv: {signer_words('cucm1.c1.lab', kit.callmanager)} is not a SAST record of "
        "the installed ITL; TVS unreachable (fail closed); kept the old ITL",
        UPDATE_FAILED,
    )


def test_item24_tvs_answering_invalid_rejects_the_itl(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing()
    outcome = decide(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == rejected(
        "item 24",
        f"ITLFile.tlv: {signer_text} is not a SAST record of the installed ITL; "
        "TVS answered invalid; kept the old ITL",
        UPDATE_FAILED,
    )
    assert outcome.tvs is not None
    assert_keeps_old(outcome, tvs=outcome.tvs)
    assert outcome.tvs.reason == "TVS answered invalid"


def test_item20_the_phone_verifies_the_signer_certificate_the_new_itl_carries(
    kit: Kit, other: Kit
) -> None:
    # tvs-capf-wire.md 1.3: holding the certificate, the phone asks with VERIFY.
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    decide(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    assert tvs.asked == [key_of(other.itlrecovery)]
    assert tvs.held == [other.itlrecovery.certificate]


def test_item20_an_itl_without_its_signers_record_is_asked_about_by_issuer_and_serial(
    kit: Kit, other: Kit
) -> None:
    # No SAST record in the new ITL carries the signer's certificate: the phone can only name
    # the signer (issuer and serial from the header) and takes the certificate TVS returns.
    records = [record_from_certificate(other.tvs.certificate, Role.TVS, dns_name="tvs1")]
    data = itl_of(records, other.itlrecovery)
    tvs = FakeTvs.knowing((other.itlrecovery, SAST_ONLY))
    outcome = decide(data, itl=kit.itl(), tvs=tvs)
    assert tvs.asked == [key_of(other.itlrecovery)]
    assert tvs.held == [None]
    assert outcome.decision.rule == "items 12, 20"
    assert_installs(outcome, data)


# The roles of a TVS answer read as numbers, as the wire carries them (tvs-capf-wire.md), whether
# the answer came over a socket (plain ints) or from the in-memory lab's TVS (Role members).
@pytest.mark.parametrize(
    "roles", [frozenset({1, 21}), frozenset({Role.CCM, Role.TVS})], ids=["wire", "lab"]
)
def test_item12_tvs_vouching_for_a_non_signer_role_is_rejected(
    kit: Kit, other: Kit, roles: frozenset[int]
) -> None:
    tvs = FakeTvs.knowing((other.itlrecovery, roles))
    outcome = decide(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == rejected(
        "item 12",
        f"ITLFile.tlv: {signer_text} is not a SAST record of the installed ITL; TVS vouched but "
        "not for a trust-list signer role (roles [1, 21]); kept the old ITL",
        UPDATE_FAILED,
    )
    assert outcome.tvs is not None and outcome.tvs.roles == roles
    assert_keeps_old(outcome, tvs=outcome.tvs)


def _vouching(certificate: x509.Certificate | None) -> tuple[TvsAsk, TvsOutcome]:
    answer = TvsOutcome(True, SAST_ONLY, certificate, "tvs1:2445", "TVS vouched", "item 22")

    def tvs(issuer: str, serial: bytes, certificate: x509.Certificate | None = None) -> TvsOutcome:
        del issuer, serial, certificate
        return answer

    return tvs, answer


def test_item13_tvs_vouching_without_a_certificate_cannot_verify_the_itl(
    kit: Kit, other: Kit
) -> None:
    tvs, answer = _vouching(None)
    outcome = decide(other.itl().encode(), itl=kit.itl(), tvs=tvs)
    assert outcome.decision == rejected(
        "item 13",
        "ITLFile.tlv: the certificate TVS returned carries no certificate to check the "
        "signature with; kept the old ITL",
        UPDATE_FAILED,
    )
    assert_keeps_old(outcome, tvs=answer)


def test_item13_the_certificate_tvs_returned_must_verify_the_itl(kit: Kit, other: Kit) -> None:
    # Item 12: "accept iff TVS returns that certificate"; another one fails the signature.
    tvs, answer = _vouching(kit.tvs.certificate)
    outcome = decide(other.itl().encode(), ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 13"
    assert outcome.decision.reason.startswith(
        "ITLFile.tlv: signature check with the certificate TVS returned failed: "
    )
    assert outcome.decision.reason.endswith("; kept the old ITL")
    assert outcome.decision.status == UPDATE_FAILED
    assert_keeps_old(outcome, tvs=answer)


def test_items12_20_itl_vouched_by_tvs_is_installed_with_the_tvs_outcome(
    kit: Kit, other: Kit
) -> None:
    tvs, answer = _vouching(other.itlrecovery.certificate)
    data = other.itl().encode()
    outcome = decide(data, itl=kit.itl(), tvs=tvs)
    signer_text = signer_words("ITLRECOVERY_cucm1.c2.lab", other.itlrecovery)
    assert outcome.decision == accepted(
        "items 12, 20",
        f"ITLFile.tlv: {signer_text} is not a SAST record of the installed ITL, but TVS vouched",
        UPDATED,
    )
    assert_installs(outcome, data)
    assert outcome.tvs == answer

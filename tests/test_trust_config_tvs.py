"""Config acceptance (items 5, 14-16) and the TVS client (items 20-24), by item number."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from trustkit import NOW, TIMESTAMP, FakeTvs, Kit, key_of, no_tvs, signer

from phone.errors import NetworkError
from phone.formats import Role, TrustList, build_signed, build_trust_list, record_from_certificate
from phone.trust.config import config_names, evaluate_config
from phone.trust.decision import Verdict
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsClient, TvsOutcome, TvsServer

MAC = "001122334455"
NAME = f"SEP{MAC}.cnf.xml.sgn"


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.make("cfg1")


@pytest.fixture(scope="module")
def other() -> Kit:
    return Kit.make("cfg2")


def test_item5_signed_config_requested_only_with_tftp_certificate(kit: Kit) -> None:
    assert config_names(MAC, ctl=None, itl=None, encrypted=False) == (f"SEP{MAC}.cnf.xml",)
    assert config_names(MAC, ctl=None, itl=kit.itl(), encrypted=False) == (NAME,)
    assert config_names(MAC, ctl=None, itl=kit.itl(), encrypted=True) == (f"{NAME[:-4]}.enc.sgn",)
    # Item 16: the empty rollback ITL has no TFTP certificate: unsigned again.
    assert config_names(MAC, ctl=None, itl=kit.empty_itl(), encrypted=False) == (
        f"SEP{MAC}.cnf.xml",
    )


def test_item14_config_signed_by_itl_tftp_record_accepted(kit: Kit) -> None:
    outcome = evaluate_config(kit.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.xml == b"<device/>"


def test_item14_tampered_config_byte_rejected(kit: Kit) -> None:
    data = bytearray(kit.config(MAC))
    data[-3] ^= 0x20
    outcome = evaluate_config(bytes(data), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.status == f"File auth error {NAME}"  # 79xx admin guides
    assert outcome.xml is None


def test_item14_config_from_unknown_signer_rejected_with_actionable_reason(
    kit: Kit, other: Kit
) -> None:
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    reason = outcome.decision.reason
    assert key_of(other.callmanager)[1].hex() in reason
    assert "is not a TFTP record of the installed ITL" in reason
    assert "fail closed" in reason


def test_items14_20_config_from_unknown_signer_vouched_by_tvs(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.callmanager, frozenset({Role.CCM})))
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "items 14, 20"


def test_item14_tvs_role_capf_does_not_authorize_config(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.callmanager, frozenset({Role.CAPF})))
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.REJECTED


def test_item14_config_signed_for_another_file_rejected(kit: Kit) -> None:
    data = kit.config("AABBCCDDEEFF")  # another phone's config, validly signed
    outcome = evaluate_config(data, name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert "another file" in outcome.decision.reason


def test_item14_ctl_tftp_record_authenticates_config(kit: Kit) -> None:
    outcome = evaluate_config(kit.config(MAC), name=NAME, ctl=kit.ctl(), itl=None, tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED


def test_item15_unsigned_config_refused_with_non_empty_itl(kit: Kit) -> None:
    outcome = evaluate_config(
        b"<device/>", name=f"SEP{MAC}.cnf.xml", ctl=None, itl=kit.itl(), tvs=no_tvs
    )
    assert outcome.decision.verdict is Verdict.REJECTED
    assert outcome.decision.rule == "item 15"


def test_item16_unsigned_config_accepted_with_empty_itl(kit: Kit) -> None:
    outcome = evaluate_config(
        b"<device/>", name=f"SEP{MAC}.cnf.xml", ctl=None, itl=kit.empty_itl(), tvs=no_tvs
    )
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert outcome.decision.rule == "item 16"


def test_item5_unsigned_config_accepted_without_trust_list() -> None:
    outcome = evaluate_config(b"<d/>", name=f"SEP{MAC}.cnf.xml", ctl=None, itl=None, tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED


def test_item14_truncated_signed_config_rejected(kit: Kit) -> None:
    data = kit.config(MAC)[:100]
    outcome = evaluate_config(data, name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.REJECTED
    assert "does not parse" in outcome.decision.reason


# --- TVS client -----------------------------------------------------------------------------


class Exchange:
    """A scripted TVS network: per host, an answer or an exception; records the calls."""

    def __init__(
        self,
        kit: Kit,
        answers: dict[str, TvsAnswer | Exception],
        server_cert: x509.Certificate | None = None,
    ) -> None:
        self.kit = kit
        self.answers = answers
        self.server_cert = server_cert or kit.tvs.certificate
        self.calls: list[str] = []
        self.certificates: list[bytes | None] = []  # DER of each VERIFY, None for a QUERY

    def __call__(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        self.calls.append(server.host)
        self.certificates.append(certificate)
        answer = self.answers[server.host]
        if isinstance(answer, Exception):
            raise answer
        problem = check_server(self.server_cert)
        if problem is not None:
            raise NetworkError(f"TLS refused: {problem}")
        return answer


def vouch(ident_cert: x509.Certificate, ttl: int = 86400) -> TvsAnswer:
    from cryptography.hazmat.primitives.serialization import Encoding

    return TvsAnswer(True, (Role.SAST,), ttl, (ident_cert.public_bytes(Encoding.DER),))


def test_item20_no_tvs_record_in_itl_means_no_tvs(kit: Kit) -> None:
    exchange = Exchange(kit, {})
    issuer, serial = key_of(kit.callmanager)
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.empty_itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert not outcome.valid
    assert outcome.rule == "item 20"
    assert exchange.calls == []


def test_item21_servers_tried_by_priority_and_unreachable_skipped(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(
        kit, {"tvs1": NetworkError("unreachable"), "tvs2": vouch(other.itlrecovery.certificate)}
    )
    outcome = TvsClient().ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=[TvsServer("tvs1"), TvsServer("tvs2")],
        exchange=exchange,
        now=NOW,
    )
    assert outcome.valid
    assert exchange.calls == ["tvs1", "tvs2"]
    assert outcome.server == "tvs2:2445"


def test_item21_tvs_server_certificate_must_be_in_itl(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    # The server presents another cluster's TVS certificate (e.g. regenerated TVS, item 27).
    exchange = Exchange(
        kit, {"tvs1": vouch(other.itlrecovery.certificate)}, server_cert=other.tvs.certificate
    )
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert not outcome.valid
    assert "is not a TVS record of the installed ITL" in outcome.reason


def test_item23_positive_answer_cached_for_ttl_then_expires(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": vouch(other.itlrecovery.certificate, ttl=3600)})
    client = TvsClient()
    servers = [TvsServer("tvs1")]
    client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=exchange, now=NOW)
    cached = client.ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=servers,
        exchange=exchange,
        now=NOW + timedelta(seconds=3599),
    )
    assert cached.valid and cached.cached
    assert exchange.calls == ["tvs1"]
    client.ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=servers,
        exchange=exchange,
        now=NOW + timedelta(seconds=3600),
    )
    assert exchange.calls == ["tvs1", "tvs1"]  # expired at exactly the TTL


def test_item23_cache_is_volatile(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": vouch(other.itlrecovery.certificate)})
    client = TvsClient()
    client.ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    client.clear()  # reboot
    assert len(client) == 0


def test_item24_invalid_answer_is_final_and_not_cached(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(
        kit,
        {
            "tvs1": TvsAnswer(False, (), 0, (), "unknown certificate"),
            "tvs2": vouch(other.itlrecovery.certificate),
        },
    )
    client = TvsClient()
    outcome = client.ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=[TvsServer("tvs1"), TvsServer("tvs2")],
        exchange=exchange,
        now=NOW,
    )
    assert not outcome.valid
    assert "answered invalid" in outcome.reason
    assert exchange.calls == ["tvs1"]
    assert len(client) == 0


def test_item24_all_servers_down_fails_closed(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": NetworkError("connection refused")})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert not outcome.valid
    assert "fail closed" in outcome.reason


def test_item22_valid_answer_without_the_asked_certificate_is_refused(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": vouch(other.tvs.certificate)})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert not outcome.valid


def test_sgn_sha512_config_verifies(kit: Kit) -> None:
    from phone.formats import Digest

    data = build_signed(
        b"<device/>",
        signer(kit.callmanager),
        filename=NAME,
        timestamp=TIMESTAMP,
        digest=Digest.SHA512,
    ).encode()
    outcome = evaluate_config(data, name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED


# --- VERIFY when the phone holds the certificate, QUERY otherwise (issue 12; wire 1.3) ----------


def test_item20_config_signer_unknown_to_the_lists_is_asked_with_query(
    kit: Kit, other: Kit
) -> None:
    tvs = FakeTvs.knowing((other.callmanager, frozenset({Role.CCM})))
    evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert tvs.held == [None]  # only issuer and serial are known: the emulated QUERY [G]


def test_item20_config_signer_held_in_a_list_under_another_role_is_verified(kit: Kit) -> None:
    # Signed by the TVS certificate: the ITL holds it (TVS role, not TFTP), so the phone sends
    # that certificate in a VERIFY, which tvsd can answer.
    data = build_signed(b"<device/>", signer(kit.tvs), filename=NAME, timestamp=TIMESTAMP).encode()
    tvs = FakeTvs.knowing((kit.tvs, frozenset({Role.CCM, Role.TFTP})))
    outcome = evaluate_config(data, name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert tvs.held == [kit.tvs.certificate]


def test_item12_new_itl_signer_is_verified_with_the_certificate_the_list_carries(kit: Kit) -> None:
    from phone.trust.lists import ListKind, evaluate_trust_list

    other = Kit.make("c9")
    tvs = FakeTvs.knowing((other.itlrecovery, frozenset({Role.SAST})))
    outcome = evaluate_trust_list(
        other.itl().encode(),
        name="ITLSEP001122334455.tlv",
        kind=ListKind.ITL,
        installed_ctl=None,
        installed_itl=kit.itl(),
        tvs=tvs,
    )
    assert outcome.decision.verdict is Verdict.ACCEPTED
    assert tvs.held == [other.itlrecovery.certificate]  # its SAST record: a VERIFY


def test_item22_query_answer_picks_the_certificate_with_both_serial_and_issuer(
    kit: Kit, other: Kit
) -> None:
    """A QUERY answer may carry several certificates (tvs-capf-wire.md 1.6): the phone takes the
    one whose serial *and* issuer are the ones asked about, skipping bytes that are no
    certificate, and never one that matches on the issuer alone."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from phone.pki import self_signed

    wanted = other.itlrecovery.certificate
    issuer, serial = key_of(other.itlrecovery)
    # Same subject (so the same issuer, self-signed), another serial and key.
    namesake = self_signed(
        str(wanted.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value),
        now=NOW,
        key=kit.capf.key,
        serial=wanted.serial_number + 1,
    ).certificate
    assert namesake.issuer == wanted.issuer  # else the "issuer alone" case is never met
    certificates = (
        b"\x30\x03\x02\x01\x00",  # DER, but not a certificate
        namesake.public_bytes(Encoding.DER),
        wanted.public_bytes(Encoding.DER),
    )
    exchange = Exchange(kit, {"tvs1": TvsAnswer(True, (Role.SAST,), 600, certificates)})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert outcome.valid
    assert outcome.certificate == wanted
    # Only the namesake: no certificate with that serial, so TVS vouched for nothing (item 24).
    exchange = Exchange(kit, {"tvs1": TvsAnswer(True, (Role.SAST,), 600, certificates[:2])})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert not outcome.valid
    assert outcome.reason == (
        f"TVS tvs1:2445 answered valid but returned no certificate with serial {serial.hex()} "
        f"and issuer {issuer!r}"
    )


# --- unsigned configs: which lists allow them (items 5, 15, 16), word for word ----------------


def _unsigned(ctl: TrustList | None, itl: TrustList | None) -> tuple[str, str, str | None]:
    decision = evaluate_config(
        b"<device/>", name=f"SEP{MAC}.cnf.xml", ctl=ctl, itl=itl, tvs=no_tvs
    ).decision
    return decision.verdict, decision.rule, decision.reason


def test_item5_unsigned_config_reasons_word_for_word(kit: Kit) -> None:
    name = f"SEP{MAC}.cnf.xml"
    assert _unsigned(None, None) == (
        "accepted",
        "item 5",
        f"{name}: no trust list installed, so the phone takes an unsigned config",
    )
    assert _unsigned(None, kit.empty_itl()) == (
        "accepted",
        "item 16",
        f"{name}: the installed ITL is the empty rollback ITL: any unsigned config is accepted",
    )
    assert _unsigned(None, kit.itl()) == (
        "rejected",
        "item 15",
        f"{name}: a trust list with a TFTP certificate is installed: unsigned configs are refused",
    )
    # A CTL whose only certificates are SAST records, no ITL: no TFTP certificate anywhere.
    sast_only = build_trust_list(
        [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)],
        signer(kit.itlrecovery),
        filename="CTLFile.tlv",
        timestamp=TIMESTAMP,
    )
    assert _unsigned(sast_only, None) == (
        "accepted",
        "item 5",
        f"{name}: no TFTP certificate in the installed lists: unsigned config accepted",
    )


def test_item15_a_ctl_alone_with_a_tftp_certificate_refuses_unsigned_configs(kit: Kit) -> None:
    # The CTL's CCM+TFTP record (item 5) counts even without an ITL ...
    assert _unsigned(kit.ctl(), None)[:2] == ("rejected", "item 15")
    # ... and beside an ITL that holds a TVS certificate but no TFTP one (not the empty ITL).
    tvs_only = build_trust_list(
        [
            record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
            record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
        ],
        signer(kit.itlrecovery),
        timestamp=TIMESTAMP,
    )
    assert _unsigned(None, tvs_only)[:2] == ("accepted", "item 5")
    assert _unsigned(kit.ctl(), tvs_only)[:2] == ("rejected", "item 15")


def test_item20_signer_held_in_a_later_record_is_sent_as_verify(kit: Kit) -> None:
    """A config signed by a certificate the ITL holds in another role (here the TVS record, the
    fourth record): the phone sends that certificate (VERIFY), found past the other records."""
    name = f"SEP{MAC}.cnf.xml.sgn"
    data = build_signed(b"<device/>", signer(kit.tvs), filename=name, timestamp=0)
    tvs = FakeTvs.knowing((kit.tvs, frozenset({Role.TFTP})))
    evaluate_config(data.encode(), name=f"SEP{MAC}.cnf.xml.sgn", ctl=None, itl=kit.itl(), tvs=tvs)
    assert tvs.held == [kit.tvs.certificate]


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("", "TVS tvs1:2445 answered invalid"),
        ("unknown", "TVS tvs1:2445 answered invalid: unknown"),
    ],
)
def test_item24_invalid_answer_fails_closed_naming_the_server(
    kit: Kit, other: Kit, reason: str, text: str
) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": TvsAnswer(False, (), 0, (), reason)})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert outcome == TvsOutcome(False, frozenset(), None, "tvs1:2445", text, "item 24")
    assert outcome.valid is False and outcome.roles == frozenset()


def test_item24_valid_answer_without_the_certificate_fails_closed_naming_the_server(
    kit: Kit, other: Kit
) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": TvsAnswer(True, (Role.SAST,), 600, ())})
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert (outcome.valid, outcome.rule, outcome.server) == (False, "item 24", "tvs1:2445")
    assert outcome.roles == frozenset() and outcome.certificate is None


def test_items20_21_no_tvs_record_or_no_server_word_for_word(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {})
    # Item 20, the 8945's "Not using TVS - TVS not in Trust list" [S50].
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.empty_itl(), servers=[TvsServer("tvs1")], exchange=exchange, now=NOW
    )
    assert outcome == TvsOutcome(
        False,
        frozenset(),
        None,
        None,
        "not using TVS: the installed ITL has no TVS record",
        "item 20",
    )
    outcome = TvsClient().ask(issuer, serial, itl=kit.itl(), servers=[], exchange=exchange, now=NOW)
    assert outcome == TvsOutcome(
        False, frozenset(), None, None, "no TVS server in the phone's configuration", "item 21"
    )


def test_item23_cached_answer_carries_the_roles_certificate_and_expiry(
    kit: Kit, other: Kit
) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(kit, {"tvs1": vouch(other.itlrecovery.certificate, ttl=3600)})
    client = TvsClient()
    servers = [TvsServer("tvs1")]
    client.ask(issuer, serial, itl=kit.itl(), servers=servers, exchange=exchange, now=NOW)
    later = NOW + timedelta(seconds=10)
    cached = client.ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=exchange, now=later
    )
    expires = NOW + timedelta(seconds=3600)
    assert cached == TvsOutcome(
        True,
        frozenset({Role.SAST}),
        other.itlrecovery.certificate,
        None,
        f"cached TVS answer, valid until {expires:%Y-%m-%d %H:%M:%SZ}",
        "item 23",
        cached=True,
    )
    # A VERIFY about the same signer is another question: not answered from the QUERY's entry.
    client.ask(
        issuer,
        serial,
        itl=kit.itl(),
        servers=servers,
        exchange=exchange,
        now=later,
        certificate=other.itlrecovery.certificate,
    )
    assert exchange.calls == ["tvs1", "tvs1"]


def test_item21_every_server_failing_is_one_fail_closed_reason(kit: Kit, other: Kit) -> None:
    issuer, serial = key_of(other.itlrecovery)
    exchange = Exchange(
        kit, {"tvs1": NetworkError("connection refused"), "tvs2": NetworkError("timed out")}
    )
    servers = [TvsServer("tvs1"), TvsServer("tvs2")]
    outcome = TvsClient().ask(
        issuer, serial, itl=kit.itl(), servers=servers, exchange=exchange, now=NOW
    )
    assert exchange.calls == ["tvs1", "tvs2"]
    assert outcome.reason == (
        "TVS tvs1:2445: connection refused; TVS tvs2:2445: timed out (fail closed)"
    )
    assert outcome.rule == "item 24"

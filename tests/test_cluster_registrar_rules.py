"""The line side of the registrar, rule by rule (items 6, 40-42; RFC 3261 8.2.6, 10.3, 17.2;
RFC 2617/7616 digest): status lines and header names as they go on the wire, the To tag, the
nonce rules and their bounds, the retransmission cache, Expires and the phone model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from clusterlab import NOW, make_lab
from registrarkit import (
    CONTACT,
    MAC,
    PASSWORD,
    PHONE,
    USER,
    Draws,
    answer,
    make_registrar,
    names,
    request,
    reset,
    to_tag,
    with_authorization,
)

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device, Registration
from phone.cluster.registrar import Registrar, Source
from phone.errors import LabError
from phone.wire.sip import (
    Credentials,
    SipRequest,
    SipResponse,
    digest_ha1,
    digest_response,
    parse_challenge,
    warning_text,
)

T = int(NOW.timestamp())


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab()


@pytest.fixture
def cluster(lab: Lab) -> Iterator[Cluster]:
    yield from reset(lab.cluster())


def digest_device(cluster: Cluster) -> None:
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
        replace=True,
    )


def plain_device(cluster: Cluster) -> None:
    cluster.add_device(Device(MAC), now=NOW, replace=True)


def handle(reg: Registrar, req: SipRequest, *, at: int = 0, source: Source = PHONE) -> SipResponse:
    response = reg.handle(req, source, NOW + timedelta(seconds=at))
    assert response is not None
    return response


def status_line(response: SipResponse) -> tuple[int, str]:
    return response.status, response.reason


# --- RFC 3261 8.2.6: every response carries a To tag; the reason phrases of 21.x ---------------


def test_rfc3261_keepalive_options_is_200_ok_with_allow_and_a_to_tag(cluster: Cluster) -> None:
    # Item 40: OPTIONS (the keepalive) is never challenged; RFC 3261 11.2: the answer lists the
    # methods in Allow; 8.2.6.2: the UAS adds a To tag.
    digest_device(cluster)
    response = handle(make_registrar(cluster), request(cluster, "OPTIONS"))
    assert status_line(response) == (200, "OK")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "Allow"]
    assert response.header("Allow") == "REGISTER, OPTIONS, ACK"
    assert to_tag(response)


def test_rfc3261_ack_is_never_answered(cluster: Cluster) -> None:
    # RFC 3261 17.2.1: an ACK gets no response.
    plain_device(cluster)
    assert make_registrar(cluster).handle(request(cluster, "ACK"), PHONE, NOW) is None


def test_item40_challenge_is_401_unauthorized_with_www_authenticate(cluster: Cluster) -> None:
    # RFC 3261 21.4.2 "401 Unauthorized", 20.44 WWW-Authenticate; RFC 2617 3.2.1.
    digest_device(cluster)
    draws = Draws()
    reg = make_registrar(cluster, draws)
    response = handle(reg, request(cluster))
    assert status_line(response) == (401, "Unauthorized")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "WWW-Authenticate"]
    assert to_tag(response)
    challenge = parse_challenge(response.header("WWW-Authenticate"))
    # The nonce is 16 fresh random bytes (128 bits), in hex, drawn from the registrar's source.
    assert draws.sizes[-2:] == [16, 4]  # the nonce, then the To tag
    assert challenge.nonce == draws.values[-2].hex() and len(challenge.nonce) == 32
    assert to_tag(response) == draws.values[-1].hex()


def test_item40_the_given_random_source_is_used(cluster: Cluster) -> None:
    digest_device(cluster)
    draws = Draws()
    reg = make_registrar(cluster, draws)
    assert draws.sizes == [16]  # the decoy secret of issue 13, drawn at once
    handle(reg, request(cluster))
    assert len(draws.sizes) == 3


def test_item40_accepted_register_is_200_ok_with_contact_and_expires(cluster: Cluster) -> None:
    # RFC 3261 10.3 step 8: the 200 OK lists the bindings (Contact) and their expiry.
    plain_device(cluster)
    response = handle(make_registrar(cluster), request(cluster, extra=(("Expires", "1800"),)))
    assert status_line(response) == (200, "OK")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "Contact", "Expires"]
    assert response.header("Contact") == CONTACT
    assert response.header("Expires") == "1800"
    assert to_tag(response)
    assert MAC in cluster.registrations


def test_rfc3261_expires_0_unregisters_with_200_ok_expires_0(cluster: Cluster) -> None:
    plain_device(cluster)
    reg = make_registrar(cluster)
    handle(reg, request(cluster))
    response = handle(reg, request(cluster, n=2, extra=(("Expires", "0"),)))
    assert status_line(response) == (200, "OK")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "Expires"]
    assert response.header("Expires") == "0"
    assert to_tag(response)
    assert MAC not in cluster.registrations


# --- RFC 3261 10.2.1.1 / 10.3: which expiry ------------------------------------------------------


def granted(cluster: Cluster, *contacts: str, expires: str | None = None) -> SipResponse:
    extra = () if expires is None else (("Expires", expires),)
    return handle(make_registrar(cluster), request(cluster, contacts=contacts, extra=extra))


def test_rfc3261_contact_expires_param_beats_the_expires_header(cluster: Cluster) -> None:
    plain_device(cluster)
    response = granted(cluster, CONTACT + ";expires=120", expires="1800")
    assert response.status == 200 and response.header("Expires") == "120"


def test_rfc3261_contact_expires_0_unregisters(cluster: Cluster) -> None:
    plain_device(cluster)
    handle(make_registrar(cluster), request(cluster))
    response = granted(cluster, CONTACT + ";expires=0", expires="3600")
    assert response.header("Expires") == "0" and MAC not in cluster.registrations


def test_rfc3261_no_expiry_at_all_is_3600(cluster: Cluster) -> None:
    plain_device(cluster)
    assert granted(cluster, CONTACT).header("Expires") == "3600"


def test_rfc3261_more_than_3600_is_granted_3600(cluster: Cluster) -> None:
    plain_device(cluster)
    assert granted(cluster, CONTACT, expires="7200").header("Expires") == "3600"
    assert granted(cluster, CONTACT + ";expires=3601").header("Expires") == "3600"


def test_rfc3261_bad_contact_expires_is_400_bad_request(cluster: Cluster) -> None:
    # RFC 3261 21.4.1 "400 Bad Request"; the Warning says what was wrong.
    plain_device(cluster)
    response = granted(cluster, CONTACT + ";expires=soon")
    assert status_line(response) == (400, "Bad Request")
    assert warning_text(response) == "bad Contact expires 'soon'"
    assert to_tag(response)
    assert MAC not in cluster.registrations


def test_rfc3261_contact_expires_is_ascii_digits(cluster: Cluster) -> None:
    # RFC 3261 25.1 delta-seconds = 1*DIGIT: "²" is a digit to str.isdigit, not to the RFC;
    # it was a ValueError inside the registrar instead of a 400.
    plain_device(cluster)
    response = granted(cluster, CONTACT + ";expires=\u00b2")
    assert status_line(response) == (400, "Bad Request")
    assert warning_text(response) == "bad Contact expires '\u00b2'"


def test_rfc3261_contact_star_with_expires_0_removes_the_binding(cluster: Cluster) -> None:
    # RFC 3261 10.2.2: "Contact: *" with "Expires: 0" removes every binding of the AOR. With no
    # +sip.instance the phone is identified by its digest user (challenged first).
    digest_device(cluster)
    reg = make_registrar(cluster)
    handle(reg, request(cluster), at=0)  # 401
    first = request(cluster)
    registered = handle(reg, answer(first, handle(reg, first), n=2))
    assert registered.status == 200 and MAC in cluster.registrations
    star = request(cluster, contacts=("*",), n=3, extra=(("Expires", "0"),))
    challenge = handle(reg, star)
    assert challenge.status == 401
    response = handle(reg, answer(star, challenge, n=4))
    assert status_line(response) == (200, "OK")
    assert response.header("Expires") == "0"
    assert MAC not in cluster.registrations


STAR_INVALID = "Contact * is only valid alone and with Expires: 0 (RFC 3261 10.3)"


def test_rfc3261_contact_star_with_another_contact_is_400(cluster: Cluster) -> None:
    # RFC 3261 10.3 step 6: "*" with additional Contact fields is invalid: 400. The phone is
    # still identified by its +sip.instance (the "*" before it is skipped, not the end).
    plain_device(cluster)
    handle(make_registrar(cluster), request(cluster))
    response = granted(cluster, "*", CONTACT, expires="0")
    assert (response.status, response.reason) == (400, "Bad Request")
    assert warning_text(response) == STAR_INVALID
    assert MAC in cluster.registrations


@pytest.mark.parametrize("expires", [None, "3600"])
def test_rfc3261_contact_star_needs_expires_0(cluster: Cluster, expires: str | None) -> None:
    # RFC 3261 10.3 step 6: "*" with an expiration other than zero is invalid: 400.
    digest_device(cluster)
    reg = make_registrar(cluster)
    extra = () if expires is None else (("Expires", expires),)
    star = request(cluster, contacts=("*",), extra=extra)
    response = handle(reg, answer(star, handle(reg, star), n=2))
    assert (response.status, response.reason) == (400, "Bad Request")
    assert warning_text(response) == STAR_INVALID
    assert MAC not in cluster.registrations


# --- item 6: the phone model from User-Agent; unknown phones ------------------------------------


def autoregistered_model(cluster: Cluster, agent: str) -> str:
    response = handle(make_registrar(cluster), request(cluster, extra=(("User-Agent", agent),)))
    assert response.status == 200
    return cluster.devices[MAC].model


def test_item6_autoregistered_model_is_the_user_agent_model(cluster: Cluster) -> None:
    # A Cisco phone's User-Agent is Cisco-CP<model>/<load>; the model is what precedes the
    # first "/".
    assert autoregistered_model(cluster, "Cisco-CP7841/14.2.1") == "7841"


def test_item6_model_stops_at_the_first_slash(cluster: Cluster) -> None:
    assert autoregistered_model(cluster, "Cisco-CP7841/14.2.1/lab") == "7841"


def test_item6_other_user_agent_gets_the_default_model(cluster: Cluster) -> None:
    assert autoregistered_model(cluster, "cisco-cp7841/14.2.1") == "8841"


def test_item6_unknown_phone_without_autoregistration_is_404_and_logged(
    cluster: Cluster,
) -> None:
    cluster.set_parameter("autoregistration", "false", now=NOW)
    since = cluster.next_log_seq
    response = handle(make_registrar(cluster), request(cluster))
    assert status_line(response) == (404, "Not Found")
    assert warning_text(response) == (
        f"SEP{MAC} is not configured and auto-registration is disabled"
    )
    assert to_tag(response)
    assert [e.message for e in cluster.log_since(since)] == [f"SEP{MAC} rejected"]


def test_item6_unknown_phone_other_request_is_404_not_logged(cluster: Cluster) -> None:
    cluster.set_parameter("autoregistration", "false", now=NOW)
    since = cluster.next_log_seq
    response = handle(make_registrar(cluster), request(cluster, "INVITE"))
    assert response.status == 404
    assert list(cluster.log_since(since)) == []


def test_item6_unknown_phone_invite_with_autoregistration_is_404(cluster: Cluster) -> None:
    response = handle(make_registrar(cluster), request(cluster, "INVITE"))
    assert response.status == 404 and MAC not in cluster.devices


# --- the cluster's refusal is the phone's Warning ----------------------------------------------


def test_cluster_refusal_is_403_forbidden_with_its_reason(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_device(cluster)

    def refuse(mac: str, **kwargs: object) -> Registration:
        return Registration(False, "the node is being upgraded")

    monkeypatch.setattr(cluster, "register", refuse)
    response = handle(make_registrar(cluster), request(cluster))
    assert status_line(response) == (403, "Forbidden")
    assert warning_text(response) == "the node is being upgraded"


def test_cluster_error_is_403_forbidden_with_its_text(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_device(cluster)

    def fail(mac: str, **kwargs: object) -> Registration:
        raise LabError("the cluster database is read-only")

    monkeypatch.setattr(cluster, "register", fail)
    response = handle(make_registrar(cluster), request(cluster))
    assert status_line(response) == (403, "Forbidden")
    assert warning_text(response) == "the cluster database is read-only"


# --- item 42; the line side routes nothing ---------------------------------------------------


def test_item42_digest_on_without_credentials_is_403(cluster: Cluster) -> None:
    cluster.add_device(Device(MAC, digest_authentication=True), now=NOW, replace=True)
    response = handle(make_registrar(cluster), request(cluster))
    assert status_line(response) == (403, "Forbidden")
    assert warning_text(response) == (
        f"digest authentication is on for SEP{MAC} but no digest credentials are configured "
        "(item 42)"
    )


def test_line_side_invite_is_501_not_implemented(cluster: Cluster) -> None:
    plain_device(cluster)
    response = handle(make_registrar(cluster), request(cluster, "INVITE"))
    assert status_line(response) == (501, "Not Implemented")
    assert warning_text(response) == "the emulated cluster does not route requests"
    assert to_tag(response)


# --- RFC 2617 / 7616: what the digest answer must carry ---------------------------------------


def test_rfc2617_answer_without_qop_is_400(cluster: Cluster) -> None:
    # The challenge offers qop="auth"; an RFC 2069 answer without it is refused.
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    nonce = parse_challenge(handle(reg, req).header("WWW-Authenticate")).nonce
    ha1 = digest_ha1(USER, "ccmsipline", PASSWORD)
    legacy = Credentials(
        USER,
        "ccmsipline",
        nonce,
        req.uri,
        digest_response(ha1, nonce=nonce, method="REGISTER", uri=req.uri),
    )
    response = handle(reg, with_authorization(req, legacy.render(), n=2))
    assert status_line(response) == (400, "Bad Request")
    assert warning_text(response) == "digest qop=auth is required"


def test_rfc7616_digest_uri_must_be_the_request_uri(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    challenge = handle(reg, req)
    other = req.__class__(req.method, "sip:elsewhere.example", req.headers)
    authorized = answer(other, challenge, n=2)
    response = handle(reg, req.__class__(req.method, req.uri, authorized.headers))
    assert status_line(response) == (400, "Bad Request")
    assert warning_text(response) == "digest uri does not match the Request-URI"


def test_rfc2617_nc_is_hexadecimal_and_a_replay_is_403(cluster: Cluster) -> None:
    # RFC 2617 3.2.2: nc is 8 hex digits; a count not above the last one is a replay.
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    challenge = handle(reg, req)
    assert handle(reg, answer(req, challenge, n=2, nc=0x0A)).status == 200
    assert handle(reg, answer(req, challenge, n=3, nc=0x10)).status == 200
    replay = handle(reg, answer(req, challenge, n=4, nc=0x10))
    assert status_line(replay) == (403, "Forbidden")
    assert warning_text(replay) == "nonce count 00000010 replayed (last seen 00000010)"
    assert to_tag(replay)


def test_item40_a_changed_password_takes_effect_at_once(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    assert handle(reg, answer(req, handle(reg, req), n=2)).status == 200
    cluster.update_device(MAC, now=NOW + timedelta(seconds=1), digest_password="n3w-pw")
    again = request(cluster, n=3)
    assert handle(reg, answer(again, handle(reg, again), n=4)).status == 403
    new = handle(reg, answer(again, handle(reg, request(cluster, n=5)), n=6, password="n3w-pw"))
    assert new.status == 200


# --- item 41: nonce validity, the stale flag, the nonce store ----------------------------------


def test_item41_expired_nonce_right_password_is_stale_true_and_not_a_failure(
    cluster: Cluster,
) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    challenge = handle(reg, req)
    since = cluster.next_log_seq
    response = handle(reg, answer(req, challenge, n=2), at=601)
    assert response.status == 401 and parse_challenge(response.header("WWW-Authenticate")).stale
    assert [e for e in cluster.log_since(since) if "failed" in e.message] == []


def test_item41_expired_nonce_wrong_password_is_stale_false_and_logged(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    challenge = handle(reg, req)
    since = cluster.next_log_seq
    response = handle(reg, answer(req, challenge, n=2, password="wrong"), at=601)
    assert response.status == 401
    assert not parse_challenge(response.header("WWW-Authenticate")).stale
    failures = [e.message for e in cluster.log_since(since) if "failed" in e.message]
    assert len(failures) == 1 and "wrong password (with an expired nonce)" in failures[0]


def stale_after(cluster: Cluster, seconds: int) -> bool | None:
    """Answer a nonce rightly ``seconds`` after it was issued, after another challenge issued
    then: True = stale (still known), False = unknown (forgotten: a plain fresh 401)."""
    reg = make_registrar(cluster)
    req = request(cluster)
    challenge = handle(reg, req)
    handle(reg, request(cluster, n=2), at=seconds)  # a new challenge: prunes the store
    response = handle(reg, answer(req, challenge, n=3), at=seconds)
    if response.status != 401:
        return None
    return parse_challenge(response.header("WWW-Authenticate")).stale


def test_item41_expired_nonce_is_remembered_for_two_validity_periods(cluster: Cluster) -> None:
    # Kept for 2 x nonce-validity (default 600 s, item 41) so that it reads as stale.
    digest_device(cluster)
    assert stale_after(cluster, 1200) is True
    assert stale_after(cluster, 1201) is False


def test_item41_pruning_keeps_the_fresh_nonce(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    handle(reg, request(cluster))
    req = request(cluster, n=2)
    fresh = handle(reg, req, at=5000)  # prunes the first nonce
    assert handle(reg, answer(req, fresh, n=3), at=5000).status == 200


# --- RFC 3261 17.2: the retransmission cache ----------------------------------------------------


def test_rfc3261_retransmission_within_64_t1_gets_the_same_answer(cluster: Cluster) -> None:
    # 64*T1 = 32 s (RFC 3261 17.2.1, Timer J/H): the same answer, no new nonce.
    digest_device(cluster)
    reg = make_registrar(cluster)
    first = handle(reg, request(cluster))
    assert handle(reg, request(cluster), at=32) is first
    later = handle(reg, request(cluster), at=33)
    assert later is not first and later.header("WWW-Authenticate") != first.header(
        "WWW-Authenticate"
    )


def test_rfc3261_a_transaction_is_per_source_port_and_cseq(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    req = request(cluster)
    first = handle(reg, req)
    other_port = handle(reg, req, source=Source("10.1.2.3", 5062, "udp"))
    assert other_port is not first
    other_cseq = req.replace_headers(("CSeq", "7 REGISTER"), drop=("CSeq",))
    assert handle(reg, other_cseq) is not first


def test_the_registrar_remembers_2048_transactions(cluster: Cluster) -> None:
    plain_device(cluster)
    reg = make_registrar(cluster)
    first = handle(reg, request(cluster, "OPTIONS"))
    for n in range(2, 2049):  # 2,048 transactions
        handle(reg, request(cluster, "OPTIONS", n=n))
    assert handle(reg, request(cluster, "OPTIONS")) is first
    handle(reg, request(cluster, "OPTIONS", n=5000))  # the 2,049th: the oldest goes
    handle(reg, request(cluster, "OPTIONS", n=2))  # refreshes nothing; 2 was newer than 1
    assert handle(reg, request(cluster, "OPTIONS")) is not first


# --- the counters (benchmarks, tests) --------------------------------------------------------


def test_counters_count_challenges_acceptances_and_refusals(cluster: Cluster) -> None:
    digest_device(cluster)
    reg = make_registrar(cluster)
    assert (reg.challenges, reg.accepted, reg.refused) == (0, 0, 0)
    req = request(cluster)
    challenge = handle(reg, req)
    handle(reg, request(cluster, n=2))
    assert (reg.challenges, reg.accepted, reg.refused) == (2, 0, 0)
    handle(reg, answer(req, challenge, n=3, nc=1))
    handle(reg, answer(req, challenge, n=4, nc=2))
    handle(reg, request(cluster, "OPTIONS", n=5))
    assert (reg.challenges, reg.accepted, reg.refused) == (2, 3, 0)
    handle(reg, answer(req, challenge, n=6, nc=2))  # replay
    handle(reg, answer(req, challenge, n=7, nc=9, password="wrong"))
    assert (reg.challenges, reg.accepted, reg.refused) == (2, 3, 2)

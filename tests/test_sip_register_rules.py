"""The phone's REGISTER (RFC 3261 section 10) and its digest answers (items 40-42).

The REGISTER is compared byte for byte with a literal text in the form of RFC 3261 section
10.2's example; the answer to a 401/407 with the Authorization / Proxy-Authorization header of
RFC 3261 section 22.2-22.3 and a request-digest computed here by RFC 2617 section 3.2.2.1's
formula. Outcome reasons are what the phone's trace shows: compared whole.
"""

from __future__ import annotations

import hashlib

import pytest

from phone.errors import ProtocolError
from phone.wire.sip.digest import Challenge
from phone.wire.sip.message import SipRequest, SipResponse, encode_message, make_response
from phone.wire.sip.register import (
    RegisterClient,
    RegisterOutcome,
    final_outcome,
    format_itl_report,
    parse_itl_report,
)

REGISTRAR = "cucm1.cluster1.lab"


class _Counter:
    """Random bytes, the n-th call's all equal to n: 01 01 ..., 02 02 ..."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, size: int) -> bytes:
        self.calls += 1
        return bytes([self.calls]) * size


def _client(
    user: str | None = "alice", password: str | None = "pw", **kwargs: object
) -> RegisterClient:
    return RegisterClient(
        registrar=REGISTRAR,
        transport="tcp",
        local=("10.0.0.5", 51234),
        mac="0011223344aa",
        model="8841",
        user=user,
        password=password,
        random=_Counter(),
        **kwargs,  # type: ignore[arg-type]
    )


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _rfc2617_response(user: str, realm: str, password: str, nonce: str, cnonce: str) -> str:
    # RFC 2617 3.2.2.1, qop=auth, nc=00000001, method REGISTER, the registrar's Request-URI.
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"REGISTER:sip:{REGISTRAR}")
    return _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")


def _challenge(
    request: SipRequest, nonce: str = "n1", *, stale: bool = False, status: int = 401
) -> SipResponse:
    value = Challenge("ccmsipline", nonce, stale=stale).render()
    if status == 401:
        return make_response(request, 401, "Unauthorized", headers=(("WWW-Authenticate", value),))
    return make_response(
        request, 407, "Proxy Authentication Required", headers=(("Proxy-Authenticate", value),)
    )


# --- the REGISTER on the wire ----------------------------------------------------------------


def test_register_without_digest_user_is_sent_word_for_word() -> None:
    # RFC 3261 10.2: To/From = the address of record (the phone's SEP<MAC> without a digest
    # user), Call-ID and CSeq 1, Contact with the phone's address and RFC 5626 +sip.instance in
    # Cisco's urn:uuid:00000000-0000-0000-0000-<MAC> form, MAC in upper case; Via with the
    # z9hG4bK cookie (8.1.1.7) and rport (RFC 3581); Max-Forwards 70 (8.1.1.6); Expires 3600,
    # the one-hour default of 10.2.1.1. 64 random bits in Call-ID and branch, 32 in the tag.
    client = _client(user=None, password=None)
    assert encode_message(client.start()) == (
        b"REGISTER sip:cucm1.cluster1.lab SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.5:51234;branch=z9hG4bK0303030303030303;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:SEP0011223344AA@cucm1.cluster1.lab>;tag=02020202\r\n"
        b"To: <sip:SEP0011223344AA@cucm1.cluster1.lab>\r\n"
        b"Call-ID: 0101010101010101@10.0.0.5\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b"Contact: <sip:SEP0011223344AA@10.0.0.5:51234;transport=tcp>;"
        b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-0011223344AA>"\r\n'
        b"User-Agent: Cisco-CP8841/vphone\r\n"
        b"Expires: 3600\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_item40_register_answering_a_401_is_sent_word_for_word() -> None:
    # Item 40: the digest user is the address of record; the second REGISTER has the same
    # Call-ID and tag, CSeq 2, a new branch, and Authorization (RFC 3261 22.2) answering the
    # challenge with qop=auth, nc=00000001 and a 64-bit cnonce (RFC 2617 3.2.2).
    client = _client(expires=120)
    first = client.start()
    second = client.receive(_challenge(first))
    assert isinstance(second, SipRequest)
    response = _rfc2617_response("alice", "ccmsipline", "pw", "n1", "0404040404040404")
    assert encode_message(second) == (
        b"REGISTER sip:cucm1.cluster1.lab SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 10.0.0.5:51234;branch=z9hG4bK0505050505050505;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@cucm1.cluster1.lab>;tag=02020202\r\n"
        b"To: <sip:alice@cucm1.cluster1.lab>\r\n"
        b"Call-ID: 0101010101010101@10.0.0.5\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b"Contact: <sip:alice@10.0.0.5:51234;transport=tcp>;"
        b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-0011223344AA>"\r\n'
        b"User-Agent: Cisco-CP8841/vphone\r\n"
        b"Expires: 120\r\n"
        b'Authorization: Digest username="alice", realm="ccmsipline", nonce="n1", '
        b'uri="sip:cucm1.cluster1.lab", response="' + response.encode() + b'", '
        b'algorithm=MD5, qop=auth, nc=00000001, cnonce="0404040404040404"\r\n'
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


def test_item40_a_407_is_answered_with_proxy_authorization() -> None:
    # RFC 3261 22.3: a 407's Proxy-Authenticate is answered in Proxy-Authorization.
    client = _client()
    second = client.receive(_challenge(client.start(), status=407))
    assert isinstance(second, SipRequest)
    assert second.get("Authorization") is None
    assert [n for n, _ in second.headers if n.endswith("Authorization")] == ["Proxy-Authorization"]
    ok = client.receive(make_response(second, 200, "OK"))
    assert isinstance(ok, RegisterOutcome) and ok.ok
    assert ok.exchanges == (
        (
            "challenged",
            "item 40",
            "REGISTER (CSeq 1) -> 407 Proxy Authentication Required: digest challenge, "
            "realm 'ccmsipline'",
        ),
        (
            "answered",
            "item 40",
            "REGISTER (CSeq 2) with Proxy-Authorization for digest user 'alice' -> 200 OK",
        ),
    )


# --- which responses the client takes ----------------------------------------------------


def test_client_takes_no_response_before_its_register() -> None:
    other = _client()
    response = make_response(other.start(), 200, "OK")
    client = _client()
    assert not client.matches(response)
    assert client.receive(response) is None


def test_client_ignores_an_answer_without_via() -> None:
    # RFC 3261 8.1.3.3 / 17.1.3: the branch of the top Via matches a response to its request;
    # a response without one matches nothing.
    client = _client()
    ok = make_response(client.start(), 200, "OK")
    no_via = SipResponse(200, "OK", tuple((n, v) for n, v in ok.headers if n != "Via"))
    assert not client.matches(no_via)
    assert client.receive(no_via) is None


# --- outcomes --------------------------------------------------------------------------------


def test_a_3xx_is_a_failed_registration() -> None:
    # RFC 3261 21.3: 300 is a redirection, not a success (2xx is 200-299).
    client = _client()
    # A refusal's Warning text (RFC 3261 20.43) is part of the reason the phone shows.
    moved = make_response(
        client.start(),
        300,
        "Multiple Choices",
        headers=(("Warning", '399 cucm1 "register with cucm2"'),),
    )
    outcome = client.receive(moved)
    assert outcome == RegisterOutcome(
        False, 300, "Multiple Choices: register with cucm2", rule="item 1"
    )
    assert final_outcome(300, "Multiple Choices") == RegisterOutcome(
        False, 300, "Multiple Choices", None, "item 1"
    )
    assert final_outcome(299, "OK", expires=60) == RegisterOutcome(True, 299, "OK", 60)


def test_a_refusal_without_a_warning_is_its_reason_phrase() -> None:
    assert final_outcome(403, "Forbidden") == RegisterOutcome(
        False, 403, "Forbidden", None, "item 1"
    )
    assert final_outcome(403, "Forbidden", "") == RegisterOutcome(False, 403, "Forbidden")
    assert final_outcome(403, "Forbidden", "no such user") == RegisterOutcome(
        False, 403, "Forbidden: no such user", None, "item 1"
    )


@pytest.mark.parametrize(
    ("status", "reason", "header"),
    [
        (401, "Unauthorized", "WWW-Authenticate"),
        (407, "Proxy Authentication Required", "Proxy-Authenticate"),
    ],
)
def test_a_challenge_without_its_header_fails(status: int, reason: str, header: str) -> None:
    # RFC 3261 22.1: a 401 carries WWW-Authenticate, a 407 Proxy-Authenticate.
    client = _client()
    outcome = client.receive(make_response(client.start(), status, reason))
    assert outcome == RegisterOutcome(False, status, f"{reason} without {header}")


def test_a_challenge_that_is_not_digest_fails_with_its_reason() -> None:
    client = _client()
    basic = make_response(
        client.start(), 401, "Unauthorized", headers=(("WWW-Authenticate", 'Basic realm="x"'),)
    )
    assert client.receive(basic) == RegisterOutcome(
        False, 401, "unusable challenge: challenge uses scheme 'Basic'; only Digest is supported"
    )


def test_a_challenge_in_an_algorithm_other_than_md5_fails() -> None:
    client = _client()
    value = Challenge("ccmsipline", "n1", algorithm="SHA-256").render()
    sha = make_response(client.start(), 401, "Unauthorized", headers=(("WWW-Authenticate", value),))
    outcome = client.receive(sha)
    assert isinstance(outcome, RegisterOutcome)
    assert (outcome.ok, outcome.code, outcome.reason) == (
        False,
        401,
        "digest algorithm SHA-256 is not supported",
    )


def test_item42_challenge_without_credentials_fails_with_the_rule() -> None:
    # Item 42: digest enabled but no digest credentials -> registration fails.
    client = _client(user=None, password=None)
    assert client.receive(_challenge(client.start())) == RegisterOutcome(
        False,
        401,
        "digest challenge from realm 'ccmsipline' but the configuration holds no digest "
        "credentials (item 42)",
        rule="item 42",
    )


def test_item41_stale_nonce_is_answered_and_a_fresh_refusal_ends_it() -> None:
    # Item 41: an expired nonce comes as a new 401 with stale=true and is answered again;
    # item 40: a second challenge that is not stale means the credentials were refused.
    client = _client()
    second = client.receive(_challenge(client.start()))
    assert isinstance(second, SipRequest)
    third = client.receive(_challenge(second, "n2", stale=True))
    assert isinstance(third, SipRequest)
    refused = client.receive(_challenge(third, "n3"))
    assert refused == RegisterOutcome(
        False,
        401,
        "digest credentials of 'alice' refused in realm 'ccmsipline'",
        rule="item 40",
        exchanges=(
            (
                "challenged",
                "item 40",
                "REGISTER (CSeq 1) -> 401 Unauthorized: digest challenge, realm 'ccmsipline'",
            ),
            (
                "answered",
                "item 40",
                "REGISTER (CSeq 2) with Authorization for digest user 'alice' -> 401 Unauthorized",
            ),
            (
                "challenged",
                "item 41",
                "REGISTER (CSeq 2) -> 401 Unauthorized: digest challenge, realm 'ccmsipline', "
                "stale nonce (expired: a fresh one)",
            ),
            (
                "answered",
                "item 40",
                "REGISTER (CSeq 3) with Authorization for digest user 'alice' -> 401 Unauthorized",
            ),
            (
                "challenged",
                "item 40",
                "REGISTER (CSeq 3) -> 401 Unauthorized: digest challenge, realm 'ccmsipline'",
            ),
        ),
    )


def test_item40_three_challenges_are_answered_the_fourth_ends_it() -> None:
    # Item 41 answers each stale nonce, but a registrar that only ever sends stale ones is
    # given up after three answers.
    client = _client()
    request = client.start()
    for nonce in ("n1", "n2", "n3"):
        step = client.receive(_challenge(request, nonce, stale=nonce != "n1"))
        assert isinstance(step, SipRequest)
        request = step
    assert request.cseq == (4, "REGISTER")
    outcome = client.receive(_challenge(request, "n4", stale=True))
    assert isinstance(outcome, RegisterOutcome)
    assert (outcome.ok, outcome.code, outcome.reason, outcome.rule) == (
        False,
        401,
        "too many digest challenges",
        "item 40",
    )
    assert len(outcome.exchanges) == 7


# --- the emulated ITL report header -------------------------------------------------------


def test_itl_report_is_the_lower_case_sha1_with_host_and_time() -> None:
    # Emulated [G] (register.py docstring): <sha1-hex>;tftp=<host>;timestamp=<unix>.
    assert format_itl_report("cucm1", "AB" * 20, 1700000000) == (
        "abababababababababababababababababababab;tftp=cucm1;timestamp=1700000000"
    )


def test_a_bad_itl_report_names_the_header_and_its_first_80_characters() -> None:
    value = "x" * 100
    with pytest.raises(ProtocolError) as raised:
        parse_itl_report(value)
    assert str(raised.value) == "bad X-Cisco-ITL-Hash '" + "x" * 80 + "'"

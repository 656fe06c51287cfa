"""SIP digest authentication (items 40-41) pinned to RFC 2617 / RFC 2069 texts and values.

Expected header texts and request-digests are literal: the RFC 2617 section 3.5 worked example
(challenge, credentials, response ``6629fae4...``), the RFC 2069 section 2.4 example without qop,
and the grammar of RFC 2617 section 3.2 for the rest. Error texts are compared whole: the phone
shows them in its registration outcome.
"""

from __future__ import annotations

import pytest

from phone.errors import ProtocolError
from phone.wire.sip.digest import (
    Challenge,
    Credentials,
    answer_challenge,
    parse_challenge,
    parse_credentials,
)

# RFC 2617 section 3.5: the server's challenge, on one line.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 2617 section 3.5: the client's answer (password "Circle Of Life", GET /dir/index.html).
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"  # RFC 2617 section 3.5
RFC2617_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
RFC2617_OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"


def _credentials(**changes: str) -> str:
    fields = {
        "username": '"a"',
        "realm": '"r"',
        "nonce": '"n"',
        "uri": '"sip:h"',
        "response": '"0123456789abcdef0123456789abcdef"',
    }
    fields.update(changes)
    return "Digest " + ", ".join(f"{k}={v}" for k, v in fields.items() if v)


# --- challenges (WWW-Authenticate / Proxy-Authenticate) --------------------------------------


def test_rfc2617_challenge_is_parsed_with_both_qop_options_and_md5_by_default() -> None:
    # RFC 2617 3.2.1: qop-options is a quoted, comma-separated list; algorithm absent = MD5.
    assert parse_challenge(RFC2617_CHALLENGE) == Challenge(
        "testrealm@host.com", RFC2617_NONCE, "MD5", ("auth", "auth-int"), RFC2617_OPAQUE, False
    )


def test_challenge_without_qop_offers_none_rfc2069() -> None:
    # RFC 2617 3.2.1: qop absent = an RFC 2069 server.
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    assert challenge.qop == () and challenge.algorithm == "MD5" and not challenge.stale


def test_challenge_names_its_algorithm_and_stale_flag() -> None:
    # RFC 2617 3.2.1: algorithm and stale (case-insensitive "true") as the server sends them.
    challenge = parse_challenge('Digest realm="r", nonce="n", algorithm=SHA-256, stale=TRUE')
    assert challenge.algorithm == "SHA-256" and challenge.stale


def test_challenge_nonce_may_hold_equals_signs() -> None:
    # RFC 2617 3.2.1: nonce is a quoted-string; registrars send base64 nonces ending in "=".
    challenge = parse_challenge('Digest realm="ccmsipline", nonce="MTIzNDU2Nzg5MA=="')
    assert challenge.nonce == "MTIzNDU2Nzg5MA=="


def test_challenge_renders_the_header_value_word_for_word() -> None:
    # RFC 2617 3.2.1 syntax: scheme "Digest", quoted realm/nonce/opaque/qop-options, token
    # algorithm and stale.
    challenge = Challenge("ccmsipline", "n1", qop=("auth", "auth-int"), opaque="o", stale=True)
    assert challenge.render() == (
        'Digest realm="ccmsipline", nonce="n1", opaque="o", stale=true, algorithm=MD5, '
        'qop="auth,auth-int"'
    )
    assert Challenge("r", "n", qop=()).render() == 'Digest realm="r", nonce="n", algorithm=MD5'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Basic realm="x"', "challenge uses scheme 'Basic'; only Digest is supported"),
        (
            "NotDigestButAVeryLongSchemeName realm=x",  # the first 20 characters
            "challenge uses scheme 'NotDigestButAVeryLon'; only Digest is supported",
        ),
        ('Digest realm="r", nonce="n", bogus', "bad challenge parameter 'bogus'"),
        (
            'Digest realm="r", "' + "x" * 50 + '"=1',
            "bad challenge parameter '\"" + "x" * 39 + "'",
        ),
        ('Digest realm="r", realm="s", nonce="n"', "challenge repeats the realm parameter"),
        ('Digest realm="r"', "digest challenge without realm or nonce"),
        ('Digest nonce="n"', "digest challenge without realm or nonce"),
    ],
)
def test_bad_challenges_are_refused_with_their_reason(value: str, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_challenge(value)
    assert str(raised.value) == message


# --- answering (Authorization / Proxy-Authorization) -----------------------------------------


def test_rfc2617_example_answer_word_for_word() -> None:
    # RFC 2617 3.5: the answer to its challenge; opaque is returned unchanged (3.2.2).
    credentials = answer_challenge(
        parse_challenge(RFC2617_CHALLENGE),
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert credentials == Credentials(
        "Mufasa",
        "testrealm@host.com",
        RFC2617_NONCE,
        "/dir/index.html",
        RFC2617_RESPONSE,
        "MD5",
        "auth",
        "00000001",
        "0a4f113b",
        RFC2617_OPAQUE,
    )
    # The same fields as RFC 2617 3.5's Authorization, in our order, qop and nc as tokens.
    assert credentials.render() == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", algorithm=MD5, qop=auth, nc=00000001, '
        'cnonce="0a4f113b", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


def test_rfc2069_answer_without_qop_has_no_nc_or_cnonce() -> None:
    # RFC 2069 2.4 example (Mufasa / CircleOfLife, GET /dir/index.html); its printed response
    # is wrong (erratum): MD5(HA1:nonce:HA2) = 1949323746fe6a43ef61f9606e7febea.
    credentials = answer_challenge(
        Challenge("testrealm@host.com", RFC2617_NONCE, qop=()),
        username="Mufasa",
        password="CircleOfLife",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert credentials == Credentials(
        "Mufasa",
        "testrealm@host.com",
        RFC2617_NONCE,
        "/dir/index.html",
        "1949323746fe6a43ef61f9606e7febea",
    )
    assert credentials.render() == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="1949323746fe6a43ef61f9606e7febea", algorithm=MD5'
    )


def test_answer_counts_nonce_uses_in_eight_hex_digits() -> None:
    # RFC 2617 3.2.2: nc-value is 8LHEX, the count of requests with this nonce.
    credentials = answer_challenge(
        parse_challenge(RFC2617_CHALLENGE),
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
        nc=26,
    )
    assert credentials.nc == "0000001a"


def test_answer_refuses_an_algorithm_other_than_md5() -> None:
    # RFC 7616's SHA-256 is not what phones use: the answer says which algorithm.
    with pytest.raises(ProtocolError) as raised:
        answer_challenge(
            Challenge("r", "n", algorithm="SHA-256"),
            username="a",
            password="p",
            method="REGISTER",
            uri="sip:h",
            cnonce="c",
        )
    assert str(raised.value) == "digest algorithm SHA-256 is not supported"


def test_credentials_render_exactly_the_fields_they_hold() -> None:
    # RFC 2617 3.2.2: cnonce is a quoted-string; an absent one renders as the empty string.
    credentials = Credentials("a", "r", "n", "sip:h", "0" * 32, qop="auth", nc="00000001")
    assert credentials.render() == (
        'Digest username="a", realm="r", nonce="n", uri="sip:h", '
        'response="00000000000000000000000000000000", algorithm=MD5, qop=auth, nc=00000001, '
        'cnonce=""'
    )


# --- parsing credentials (the registrar's side) ----------------------------------------------


def test_rfc2617_example_credentials_are_parsed() -> None:
    assert parse_credentials(RFC2617_AUTHORIZATION) == Credentials(
        "Mufasa",
        "testrealm@host.com",
        RFC2617_NONCE,
        "/dir/index.html",
        RFC2617_RESPONSE,
        "MD5",
        "auth",
        "00000001",
        "0a4f113b",
        RFC2617_OPAQUE,
    )


def test_credentials_keep_their_algorithm() -> None:
    parsed = parse_credentials(_credentials(algorithm="MD5-sess"))
    assert parsed.algorithm == "MD5-sess"


@pytest.mark.parametrize("nc", ["0000000a", "0000000A", "deadBEEF"])
def test_nc_is_eight_hex_digits_of_either_case(nc: str) -> None:
    # RFC 2617 3.2.2: nc-value = 8LHEX; hex digits in either case are accepted.
    parsed = parse_credentials(_credentials(qop="auth", nc=nc, cnonce='"c"'))
    assert parsed.nc == nc and parsed.qop == "auth" and parsed.cnonce == "c"


def test_response_in_upper_case_hex_is_read_as_lower_case() -> None:
    # RFC 2617 3.2.2: request-digest = 32LHEX; an upper-case one is the same digest.
    parsed = parse_credentials(_credentials(response='"0123456789ABCDEF0123456789ABCDEF"'))
    assert parsed.response == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Basic realm="x"', "authorization uses scheme 'Basic'; only Digest is supported"),
        ('Digest username="a", username="b"', "authorization repeats the username parameter"),
        (
            'Digest nonce="n", uri="u", response="0123456789abcdef0123456789abcdef"',
            "digest credentials without username, realm",
        ),
        (
            _credentials(qop="auth", nc="00000001"),
            "digest credentials with qop need an 8-hex-digit nc and a cnonce",
        ),
        (
            _credentials(qop="auth", nc="0000001", cnonce='"c"'),
            "digest credentials with qop need an 8-hex-digit nc and a cnonce",
        ),
        (
            _credentials(qop="auth", cnonce='"c"'),
            "digest credentials with qop need an 8-hex-digit nc and a cnonce",
        ),
        (_credentials(response='"zz"'), "digest response is not 32 hex digits (MD5)"),
    ],
)
def test_bad_credentials_are_refused_with_their_reason(value: str, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_credentials(value)
    assert str(raised.value) == message

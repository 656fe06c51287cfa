"""The SIP codec (issue 6 part 1): parsing, encoding, stream framing, digest (items 40-41)."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.errors import ProtocolError
from phone.wire.sip import (
    ITL_HEADER,
    MAX_MESSAGE,
    PING,
    Challenge,
    RegisterClient,
    RegisterOutcome,
    SipRequest,
    SipResponse,
    StreamReader,
    answer_challenge,
    digest_ha1,
    digest_response,
    encode_message,
    format_itl_report,
    instance_mac,
    make_response,
    parse_challenge,
    parse_credentials,
    parse_itl_report,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)

REGISTER = (
    b"REGISTER sip:cucm1.cluster1.lab SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Line 1" <sip:alice@cucm1.cluster1.lab>;tag=1928301774\r\n'
    b"To: <sip:alice@cucm1.cluster1.lab>\r\n"
    b"Call-ID: a84b4c76e66710@127.0.0.1\r\n"
    b"CSeq: 314159 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5070>;"
    b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122334455>"\r\n'
    b"Expires: 3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _rng(seed: int = 1) -> random.Random:
    return random.Random(seed)


def test_parse_register_headers_and_helpers() -> None:
    message = parse_message(REGISTER)
    assert isinstance(message, SipRequest)
    assert message.method == "REGISTER" and message.uri == "sip:cucm1.cluster1.lab"
    assert message.cseq == (314159, "REGISTER")
    assert message.call_id == "a84b4c76e66710@127.0.0.1"
    assert message.get("expires") == "3600"  # names compare case-insensitively
    assert parse_name_addr(message.header("From")).tag == "1928301774"
    assert parse_name_addr(message.header("From")).display == "Line 1"
    assert parse_via(message.header("Via")).branch == "z9hG4bK776asdhds"
    assert instance_mac(message.header("Contact")) == "001122334455"


def test_compact_forms_are_expanded() -> None:
    data = (
        b"OPTIONS sip:cucm1 SIP/2.0\r\nv: SIP/2.0/TCP h:5060;branch=z9hG4bKx\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data, stream=True)
    assert message.get("Call-ID") == "abc"
    assert message.get("From") == "<sip:a@h>;tag=1"
    assert [n for n, _ in message.headers][:3] == ["Via", "From", "To"]


def test_encode_round_trip_writes_content_length() -> None:
    message = parse_message(REGISTER)
    assert isinstance(message, SipRequest)
    with_body = SipRequest(message.method, message.uri, message.headers, b"hello")
    again = parse_message(encode_message(with_body), stream=True)
    assert again == SipRequest(
        message.method,
        message.uri,
        (
            *((n, v) for n, v in message.headers if n != "Content-Length"),
            ("Content-Length", "5"),
        ),
        b"hello",
    )


def test_folded_header_line_is_joined() -> None:
    data = REGISTER.replace(b"Expires: 3600\r\n", b"Subject: first\r\n  second\r\n")
    assert parse_message(data).get("Subject") == "first second"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"REGISTER sip:x SIP/2.0\r\n", "blank line"),
        (REGISTER.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"), "request line"),
        (REGISTER.replace(b"REGISTER sip:", b"REG(ISTER sip:"), "method"),
        (REGISTER.replace(b"CSeq: 314159 REGISTER", b"CSeq: 314159 INVITE"), "CSeq method"),
        (REGISTER.replace(b"CSeq: 314159", b"CSeq: 99999999999"), "CSeq"),
        (REGISTER.replace(b"Call-ID: a84b4c76e66710@127.0.0.1\r\n", b""), "Call-ID"),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: 10"), "Content-Length"),
        (REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"), "Content-Length"),
        (REGISTER.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), "header line"),
        (REGISTER.replace(b"Expires: 3600", b"Expires: soon"), "Expires"),
        (REGISTER.replace(b"To: <sip:alice", b"To: <sip alice"), "URI"),
        (REGISTER.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0"), "Via"),
        (REGISTER.replace(b"Line 1", b"Line \xff"), "UTF-8"),
        (REGISTER.replace(b"Expires: 3600", b"Expires: 3600\r\nExpires: 1"), "several"),
        (b"SIP/2.0 2000 OK\r\n\r\n", "status line"),
    ],
)
def test_malformed_messages_raise_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_message(data)


def test_oversized_message_is_refused_before_parsing() -> None:
    big = REGISTER[:-2] + b"X-Pad: " + b"a" * MAX_MESSAGE + b"\r\n\r\n"
    with pytest.raises(ProtocolError, match="exceeds"):
        parse_message(big)


def test_stream_requires_content_length() -> None:
    with pytest.raises(ProtocolError, match="Content-Length"):
        parse_message(REGISTER.replace(b"Content-Length: 0\r\n", b""), stream=True)
    # On a datagram it means "the rest of the datagram" (RFC 3261 18.3).
    assert parse_message(REGISTER.replace(b"Content-Length: 0\r\n", b"")).body == b""


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(data)
    reader = StreamReader(max_size=512)
    with contextlib.suppress(ProtocolError):
        list(reader.feed(data))


@given(st.integers(min_value=0, max_value=len(REGISTER)))
def test_truncated_register_never_crashes(cut: int) -> None:
    with contextlib.suppress(ProtocolError):
        parse_message(REGISTER[:cut])


def test_stream_reader_frames_split_messages_and_keepalives() -> None:
    reader = StreamReader()
    body = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 4") + b"abcd"
    stream = b"\r\n\r\n" + body + body + b"\r\n"
    out: list[object] = []
    for i in range(0, len(stream), 7):  # byte dribbles: framing must not depend on chunks
        out.extend(reader.feed(stream[i : i + 7]))
    assert out[0] is PING
    assert [m.body for m in out[1:] if isinstance(m, SipRequest)] == [b"abcd", b"abcd"]
    assert reader.pending == 2  # a lone CRLF may be the first half of a ping: kept
    assert list(reader.feed(b"OPTIONS")) == [] and reader.pending == 7  # the pong is skipped


def test_stream_reader_refuses_oversized_and_endless_headers() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        list(StreamReader(max_size=1000).feed(REGISTER.replace(b"Length: 0", b"Length: 5000")))
    with pytest.raises(ProtocolError, match="longer than"):
        list(StreamReader(max_size=100).feed(b"X" * 200))


def test_uri_parsing() -> None:
    uri = parse_uri("sip:alice:secret@CUCM1.lab:5061;transport=tls")
    assert (uri.user, uri.host, uri.port, uri.param("transport")) == (
        "alice",
        "cucm1.lab",
        5061,
        "tls",
    )
    with pytest.raises(ProtocolError):
        parse_uri("http://example")
    with pytest.raises(ProtocolError):
        parse_uri("sip:host:99999")


# --- digest ---------------------------------------------------------------------------------


def test_rfc2617_example_digest() -> None:
    """RFC 2617 section 3.5's worked example (HTTP, qop=auth)."""
    ha1 = digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = digest_response(
        ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_challenge_and_credentials_round_trip() -> None:
    challenge = Challenge("ccmsipline", "abc123", opaque="o", stale=True)
    assert parse_challenge(challenge.render()) == challenge
    credentials = answer_challenge(
        challenge, username="alice", password="pw", method="REGISTER", uri="sip:h", cnonce="c1"
    )
    assert credentials.qop == "auth" and credentials.nc == "00000001"
    assert parse_credentials(credentials.render()) == credentials


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="x"',
        'Digest realm="r", nonce="n", uri="u", response="0123456789abcdef0123456789abcdef"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="zz"',
        'Digest username="a", realm="r", nonce="n", uri="u", '
        'response="0123456789abcdef0123456789abcdef", qop=auth',
        'Digest username="a", username="b"',
        'Digest username="a, realm=r',
    ],
)
def test_bad_credentials_raise(value: str) -> None:
    with pytest.raises(ProtocolError):
        parse_credentials(value)


def test_itl_report_header_round_trip() -> None:
    value = format_itl_report("cucm1.cluster1.lab", "AB" * 20, 1700000000)
    assert parse_itl_report(value) == ("cucm1.cluster1.lab", "ab" * 20, 1700000000)
    with pytest.raises(ProtocolError):
        parse_itl_report("abc;tftp=x;timestamp=1")


# --- the phone's REGISTER client ------------------------------------------------------------


def _client(user: str | None = "alice", password: str | None = "pw") -> RegisterClient:
    return RegisterClient(
        registrar="cucm1.cluster1.lab",
        transport="tcp",
        local=("127.0.0.1", 5070),
        mac="001122334455",
        model="8841",
        user=user,
        password=password,
        extra_headers=((ITL_HEADER, format_itl_report("cucm1", "00" * 20, 5)),),
        random=_rng().randbytes,
    )


def _challenge(request: SipRequest, nonce: str = "n1", *, stale: bool = False) -> SipResponse:
    value = Challenge("ccmsipline", nonce, stale=stale).render()
    return make_response(request, 401, "Unauthorized", headers=(("WWW-Authenticate", value),))


def test_item40_client_answers_a_challenge_with_its_config_credentials() -> None:
    client = _client()
    first = client.start()
    assert first.get("Authorization") is None and first.get(ITL_HEADER) is not None
    second = client.receive(_challenge(first))
    assert isinstance(second, SipRequest)
    credentials = parse_credentials(second.header("Authorization"))
    assert credentials.username == "alice" and credentials.realm == "ccmsipline"
    assert second.cseq == (2, "REGISTER") and second.call_id == first.call_id
    ok = client.receive(make_response(second, 200, "OK", headers=(("Expires", "3600"),)))
    # Each exchange, for the phone's trace (issue 18 friction 7): the challenge, the answer
    # and what it got.
    exchanges = (
        (
            "challenged",
            "item 40",
            "REGISTER (CSeq 1) -> 401 Unauthorized: digest challenge, realm 'ccmsipline'",
        ),
        (
            "answered",
            "item 40",
            "REGISTER (CSeq 2) with Authorization for digest user 'alice' -> 200 OK",
        ),
    )
    assert ok == RegisterOutcome(True, 200, "OK", 3600, exchanges=exchanges)


def test_item40_client_without_a_challenge_reports_no_exchange() -> None:
    client = _client()
    first = client.start()
    ok = client.receive(make_response(first, 200, "OK", headers=(("Expires", "3600"),)))
    assert ok == RegisterOutcome(True, 200, "OK", 3600)


def test_item42_client_without_credentials_fails_on_a_challenge() -> None:
    client = _client(user=None, password=None)
    outcome = client.receive(_challenge(client.start()))
    assert isinstance(outcome, RegisterOutcome) and not outcome.ok
    assert outcome.rule == "item 42" and "no digest credentials" in outcome.reason


def test_item40_second_challenge_means_refused_but_stale_is_answered_again() -> None:
    client = _client()
    second = client.receive(_challenge(client.start()))
    assert isinstance(second, SipRequest)
    third = client.receive(_challenge(second, "n2", stale=True))  # item 41: fresh nonce
    assert isinstance(third, SipRequest)
    assert parse_credentials(third.header("Authorization")).nonce == "n2"
    refused = client.receive(_challenge(third, "n3"))
    assert isinstance(refused, RegisterOutcome) and refused.rule == "item 40"


def test_client_ignores_responses_to_other_transactions_and_provisionals() -> None:
    client = _client()
    first = client.start()
    assert client.receive(make_response(first, 100, "Trying")) is None
    other = make_response(first, 200, "OK").__class__(
        200, "OK", tuple((n, "999 REGISTER" if n == "CSeq" else v) for n, v in first.headers)
    )
    assert client.receive(other) is None


def test_client_reports_the_registrars_warning() -> None:
    client = _client()
    first = client.start()
    refused = make_response(
        first, 403, "Forbidden", headers=(("Warning", '399 cucm1 "no credentials (item 42)"'),)
    )
    outcome = client.receive(refused)
    assert isinstance(outcome, RegisterOutcome)
    assert outcome.reason == "Forbidden: no credentials (item 42)" and outcome.rule == "item 42"

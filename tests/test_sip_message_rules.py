"""Rules of the SIP message codec (RFC 3261 sections 7, 8.1.1.5, 8.2.6, 18.3, 20), word for word.

Every message below is literal bytes laid out as in RFC 3261's examples (section 24); every
failure is compared with its whole text, since the trace and the peer's log show it as is.
"""

from __future__ import annotations

import pytest

from phone.errors import ProtocolError
from phone.wire.sip import (
    PING,
    SipRequest,
    SipResponse,
    StreamReader,
    encode_message,
    make_response,
    parse_message,
    warning_text,
)
from phone.wire.sip import message as message_module

# The mandatory headers of a request (RFC 3261 8.1.1: To, From, CSeq, Call-ID, Max-Forwards, Via).
HEADERS = (
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 OPTIONS\r\n"
)
OPTIONS = b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n" + HEADERS + b"Content-Length: 0\r\n\r\n"


def _request(extra: bytes = b"", *, body: bytes = b"", length: bytes | None = None) -> bytes:
    """An OPTIONS with ``extra`` header lines (each ending in CRLF) and ``body``."""
    declared = str(len(body)).encode() if length is None else length
    return (
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        + HEADERS
        + extra
        + b"Content-Length: "
        + declared
        + b"\r\n\r\n"
        + body
    )


def _response(status_line: bytes, *, body: bytes = b"") -> bytes:
    return (
        status_line
        + b"\r\n"
        + HEADERS
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _refused(data: bytes, **kwargs: object) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_message(data, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# --- header names and look-ups (RFC 3261 7.3.1: field names are case-insensitive) ------------


@pytest.fixture(autouse=True)
def _cold_lookup_memo() -> None:
    # Header-name look-ups are remembered per process (message._lookups). Start every test
    # from an empty memo, as a fresh process does: a memo filled by earlier tests (or by the
    # process a mutation-testing worker is forked from) would answer without running the code.
    message_module._lookups.clear()


def test_rfc3261_7_3_1_an_extension_header_is_found_in_any_case() -> None:
    message = parse_message(_request(b"X-Cisco-Trace: one\r\nX-Cisco-Trace: two\r\n"))
    assert message.get("x-cisco-trace") == "one"
    assert message.get("X-CISCO-TRACE") == "one"
    assert message.get_all("x-cisco-trace") == ["one", "two"]


def test_rfc3261_7_3_1_list_headers_split_on_commas_and_others_do_not() -> None:
    # Via is a comma-separated list (RFC 3261 20.42); Subject is text, its comma is a comma.
    message = parse_message(
        _request(
            b"Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com\r\n"
            b"Subject: lunch, tomorrow\r\n"
        )
    )
    assert message.get_all("via") == [
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
        "SIP/2.0/TCP b.example.com",
    ]
    assert message.get_all("Subject") == ["lunch, tomorrow"]
    assert message.get_all("s") == ["lunch, tomorrow"]  # RFC 3261 7.3.3 compact form


def test_a_missing_mandatory_header_is_named_in_full() -> None:
    bare = SipResponse(200, "OK", ())
    with pytest.raises(ProtocolError) as info:
        bare.header("i")  # the compact form of Call-ID (RFC 3261 7.3.3)
    assert str(info.value) == "SIP message without a Call-ID header"


def test_rfc3261_7_3_1_a_header_value_with_a_control_character_is_refused() -> None:
    text = _refused(_request(b"Subject: ring\x07ring\r\n"))
    assert text == "SIP header Subject holds a control character"


def test_rfc3261_7_3_1_whitespace_before_the_colon_is_space_or_tab_only() -> None:
    # HCOLON = *( SP / HTAB ) ":" SWS (RFC 3261 25.1)
    message = parse_message(_request(b"Subject \t: hello\r\nX-Box-X: 1\r\n"))
    assert message.get("Subject") == "hello"
    assert message.get("X-Box-X") == "1"
    assert (
        _refused(_request(b"Subject\x0c: hello\r\n")) == "bad SIP header line 'Subject\\x0c: hello'"
    )


def test_a_bad_header_line_is_quoted_up_to_60_characters() -> None:
    line = "Bad Header " + "x" * 70
    text = _refused(_request(line.encode() + b": 1\r\n"))
    assert text == f"bad SIP header line {line[:60]!r}"


# --- folding (RFC 3261 7.3.1) ----------------------------------------------------------------


def test_rfc3261_7_3_1_a_folded_line_continues_the_header_above_it() -> None:
    message = parse_message(
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        + HEADERS
        + b"Subject: I know you're there,\r\n"
        + b"\tpick up the phone\r\n"
        + b"   and talk to me!\r\n"
        + b"Content-Length: 0\r\n\r\n"
    )
    assert message.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert message.headers[5] == ("CSeq", "314159 OPTIONS")
    assert message.headers[-1] == ("Content-Length", "0")


def test_rfc3261_7_3_1_a_fold_between_headers_keeps_the_headers_after_it() -> None:
    message = parse_message(
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.com\r\n"
        b"  ;branch=z9hG4bK776asdhds\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: Bob <sip:bob@biloxi.com>\r\n"
        b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        b"CSeq: 314159 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert message.get("Via") == "SIP/2.0/UDP pc33.atlanta.com ;branch=z9hG4bK776asdhds"
    assert message.get("Max-Forwards") == "70"


def test_rfc3261_7_3_1_a_header_section_cannot_start_with_a_fold() -> None:
    text = _refused(b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n folded\r\n" + HEADERS + b"\r\n")
    assert text == "SIP header section starts with a continuation line"


# --- header count, CSeq, Content-Length ------------------------------------------------------


def test_100_headers_are_accepted_and_101_refused() -> None:
    # 7 headers in _request (6 + Content-Length); the rest are extension headers.
    accepted = parse_message(_request(b"X-N: 1\r\n" * 93))
    assert len(accepted.headers) == 100
    assert _refused(_request(b"X-N: 1\r\n" * 94)) == "more than 100 SIP headers"


def test_rfc3261_8_1_1_5_the_cseq_number_is_below_2_to_the_31() -> None:
    # "MUST be less than 2**31" (RFC 3261 8.1.1.5)
    top = parse_message(OPTIONS.replace(b"314159 OPTIONS", b"2147483647 OPTIONS"))
    assert top.cseq == (2147483647, "OPTIONS")
    for number in (b"2147483648", b"4294967296"):
        text = _refused(OPTIONS.replace(b"314159 OPTIONS", number + b" OPTIONS"))
        assert text == f"CSeq number {number.decode()} is not below 2**31 (RFC 3261 8.1.1.5)"


def test_rfc3261_18_3_two_content_length_headers_are_refused() -> None:
    text = _refused(_request(b"Content-Length: 0\r\n"))
    assert text == "several Content-Length headers"


def test_content_length_has_at_most_9_digits() -> None:
    assert parse_message(_request(length=b"000000000")).body == b""
    assert _refused(_request(length=b"0000000000")) == "bad Content-Length '0000000000'"


def test_rfc3261_20_14_content_length_is_ascii_digits() -> None:
    # Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT; DIGIT is %x30-39 (RFC 5234).
    # A superscript two is a digit to Python's str.isdigit but not to the grammar.
    text = _refused(_request(length="\u00b2".encode()))
    assert text == "bad Content-Length '\u00b2'"


def test_rfc3261_20_19_expires_is_ascii_digits() -> None:
    # Expires = "Expires" HCOLON delta-seconds; delta-seconds = 1*DIGIT (RFC 3261 25.1)
    assert parse_message(_request(b"Expires: 3600\r\n")).get("Expires") == "3600"
    text = _refused(_request("Expires: \u0663\r\n".encode()))  # ARABIC-INDIC DIGIT THREE
    assert text == "bad Expires '\u0663'"


# --- the whole message: size, blank line, body -----------------------------------------------


def test_a_message_of_exactly_the_limit_is_accepted() -> None:
    assert parse_message(OPTIONS, max_size=len(OPTIONS)).cseq == (314159, "OPTIONS")
    text = _refused(OPTIONS, max_size=len(OPTIONS) - 1)
    assert text == f"SIP message of {len(OPTIONS)} bytes exceeds the {len(OPTIONS) - 1}-byte limit"


def test_rfc3261_7_5_the_first_blank_line_ends_the_headers() -> None:
    body = b"v=0\r\n\r\nnot a header: x\r\n"
    message = parse_message(_request(b"Content-Type: application/sdp\r\n", body=body))
    assert message.body == body
    assert message.get("Content-Type") == "application/sdp"


def test_a_message_without_a_blank_line_is_refused() -> None:
    text = _refused(OPTIONS[:-2])
    assert text == "SIP message without the blank line that ends its headers"


def test_rfc3261_18_3_a_stream_message_needs_content_length() -> None:
    data = b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n" + HEADERS + b"\r\n"
    assert parse_message(data).body == b""  # a datagram: the rest of the datagram is the body
    text = _refused(data, stream=True)
    assert text == "SIP message on a stream without Content-Length (RFC 3261 18.3)"


def test_a_request_and_a_response_keep_their_bodies() -> None:
    request = parse_message(_request(body=b"hello"))
    assert request.body == b"hello"
    response = parse_message(_response(b"SIP/2.0 200 OK", body=b"v=0\r\n"))
    assert isinstance(response, SipResponse)
    assert response.body == b"v=0\r\n"


# --- start lines (RFC 3261 7.1 and 7.2) ------------------------------------------------------


def test_rfc3261_7_2_the_reason_phrase_is_the_rest_of_the_status_line() -> None:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF; the phrase may hold SP.
    cases = {
        b"SIP/2.0 404 Not Found": "Not Found",
        b"SIP/2.0 180 Ringing": "Ringing",
        b"SIP/2.0 486 Busy Here  (really)": "Busy Here  (really)",
        b"SIP/2.0 200  OK": " OK",
        b"SIP/2.0 200 ": "",
        b"SIP/2.0 200": "",  # no SP and no phrase: taken as an empty phrase
    }
    for line, reason in cases.items():
        response = parse_message(_response(line))
        assert isinstance(response, SipResponse)
        assert (response.status, response.reason) == (int(line[8:11]), reason)


def test_a_bad_status_line_is_quoted_up_to_60_characters() -> None:
    line = "SIP/2.0 2000 " + "O" * 60
    assert _refused(_response(line.encode())) == f"bad SIP status line {line[:60]!r}"


def test_rfc3261_7_1_the_request_line_is_three_parts_separated_by_single_spaces() -> None:
    for line in (
        "OPTIONS  sip:bob@biloxi.com SIP/2.0",
        "OPTIONS\tsip:bob@biloxi.com SIP/2.0",
    ):
        data = _request().replace(b"OPTIONS sip:bob@biloxi.com SIP/2.0", line.encode())
        assert _refused(data) == f"bad SIP request line {line!r}"
    long_line = "OPTIONS sip:bob@biloxi.com SIP/2.0 " + "x" * 40
    data = _request().replace(b"OPTIONS sip:bob@biloxi.com SIP/2.0", long_line.encode())
    assert _refused(data) == f"bad SIP request line {long_line[:60]!r}"


def test_a_bad_method_is_quoted_up_to_20_characters() -> None:
    method = "OPTIONS(" + "X" * 30
    data = _request().replace(b"OPTIONS sip:", method.encode() + b" sip:", 1)
    assert _refused(data) == f"bad SIP method {method[:20]!r}"


def test_a_bad_request_uri_is_quoted_up_to_60_characters() -> None:
    uri = "sip:bob@biloxi.com;x=<" + "y" * 60
    data = _request().replace(b"sip:bob@biloxi.com SIP", uri.encode() + b" SIP", 1)
    assert _refused(data) == f"bad Request-URI {uri[:60]!r}"


# --- encoding --------------------------------------------------------------------------------


def test_encoding_replaces_a_given_content_length_and_keeps_the_headers_after_it() -> None:
    request = SipRequest(
        "OPTIONS",
        "sip:bob@biloxi.com",
        (("Content-Length", "99"), ("Call-ID", "a84b"), ("CSeq", "1 OPTIONS")),
        b"hi",
    )
    assert encode_message(request) == (
        b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n"
        b"Call-ID: a84b\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"Content-Length: 2\r\n\r\nhi"
    )


def test_a_header_that_would_break_the_framing_is_not_encoded() -> None:
    for name, value in (("Bad Name", "1"), ("Subject", "a\r\nVia: forged")):
        request = SipRequest("OPTIONS", "sip:bob@biloxi.com", ((name, value),))
        with pytest.raises(ValueError) as info:
            encode_message(request)
        assert str(info.value) == f"SIP header {name!r} cannot be encoded"


def test_replace_headers_keeps_the_body() -> None:
    request = SipRequest("MESSAGE", "sip:bob@biloxi.com", (("Subject", "a"),), b"text")
    changed = request.replace_headers(("Subject", "b"), drop=("s",))
    assert changed == SipRequest("MESSAGE", "sip:bob@biloxi.com", (("Subject", "b"),), b"text")


# --- stream framing (RFC 3261 18.3, RFC 5626 4.4.1) ------------------------------------------


def test_rfc5626_a_ping_then_a_message_in_one_read() -> None:
    out = list(StreamReader().feed(b"\r\n\r\n" + OPTIONS))
    assert out[0] is PING
    assert len(out) == 2
    assert isinstance(out[1], SipRequest)


def test_rfc5626_a_pong_before_a_message_is_skipped() -> None:
    out = list(StreamReader().feed(b"\r\n" + OPTIONS))
    assert len(out) == 1
    assert isinstance(out[0], SipRequest)


def test_a_crlf_before_the_start_of_a_message_is_consumed_at_once() -> None:
    reader = StreamReader()
    assert list(reader.feed(b"\r\nO")) == []
    assert reader.pending == 1  # only the "O": the CRLF cannot begin a ping any more
    partial = StreamReader()
    assert list(partial.feed(b"\r\n\r")) == []
    assert partial.pending == 3  # maybe the first three bytes of a ping


def test_rfc3261_18_3_two_messages_in_one_read_are_two_messages() -> None:
    second = OPTIONS.replace(b"314159", b"314160")
    out = list(StreamReader().feed(OPTIONS + second))
    assert [m.cseq for m in out if isinstance(m, SipRequest)] == [
        (314159, "OPTIONS"),
        (314160, "OPTIONS"),
    ]


def test_a_header_section_of_exactly_the_limit_waits_for_more() -> None:
    reader = StreamReader(max_size=100)
    assert list(reader.feed(b"x" * 100)) == []
    with pytest.raises(ProtocolError) as info:
        list(reader.feed(b"x"))
    assert str(info.value) == "SIP header section longer than 100 bytes"


def test_rfc3261_18_3_a_stream_message_without_a_valid_content_length_is_refused() -> None:
    data = b"OPTIONS sip:bob@biloxi.com SIP/2.0\r\n" + HEADERS + b"Content-Length: x\r\n\r\n"
    with pytest.raises(ProtocolError) as info:
        list(StreamReader().feed(data))
    assert str(info.value) == "SIP message on a stream without a valid Content-Length"


def test_a_stream_message_of_exactly_the_limit_is_accepted() -> None:
    data = _request(body=b"0123456789")
    out = list(StreamReader(max_size=len(data)).feed(data))
    assert [m.body for m in out if isinstance(m, SipRequest)] == [b"0123456789"]
    with pytest.raises(ProtocolError) as info:
        list(StreamReader(max_size=len(data) - 1).feed(data))
    assert (
        str(info.value)
        == f"SIP message of {len(data)} bytes exceeds the {len(data) - 1}-byte limit"
    )


def test_a_stream_reader_with_a_larger_limit_reads_larger_messages() -> None:
    body = b"a" * 20000  # above the 16 KB default of parse_message
    out = list(StreamReader(max_size=32768).feed(_request(body=body)))
    assert [m.body for m in out if isinstance(m, SipRequest)] == [body]


# --- responses (RFC 3261 8.2.6) --------------------------------------------------------------


def _invite(to: bytes = b"Bob <sip:bob@biloxi.com>") -> SipRequest:
    message = parse_message(
        b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
        b"Max-Forwards: 70\r\n"
        b"To: " + to + b"\r\n"
        b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(message, SipRequest)
    return message


def test_rfc3261_8_2_6_2_the_uas_adds_its_tag_to_to_only() -> None:
    response = make_response(_invite(), 180, "Ringing", to_tag="a6c85cf")
    assert encode_message(response) == (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
        b"To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
        b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )


def test_rfc3261_8_2_6_2_a_to_that_has_a_tag_keeps_it() -> None:
    request = _invite(b"Bob <sip:bob@biloxi.com>;tag=314159")
    response = make_response(request, 200, "OK", to_tag="a6c85cf")
    assert response.get("To") == "Bob <sip:bob@biloxi.com>;tag=314159"
    untagged = make_response(_invite(), 100, "Trying")
    assert untagged.get("To") == "Bob <sip:bob@biloxi.com>"
    assert untagged.body == b""


def test_a_response_carries_its_body() -> None:
    response = make_response(_invite(), 200, "OK", to_tag="1", body=b"v=0\r\n")
    assert response.body == b"v=0\r\n"


def test_warning_text_reads_the_quoted_warn_text() -> None:
    # Warning = "Warning" HCOLON warning-value; warning-value = warn-code SP warn-agent SP
    # warn-text (RFC 3261 20.43)
    refused = parse_message(
        _response(b"SIP/2.0 403 Forbidden").replace(
            b"Content-Length", b'warning: 399 cucm1 "ITL \\"stale\\""\r\nContent-Length'
        )
    )
    assert isinstance(refused, SipResponse)
    assert warning_text(refused) == 'ITL "stale"'

"""Rules of SIP header values (RFC 3261 sections 19.1 and 25.1): quoted-strings, parameters, URIs.

Expected values are literals from the RFC's grammar and examples; every failure is compared with
its whole text, since the trace and the peer's log show it as is.
"""

from __future__ import annotations

import pytest

from phone.errors import ProtocolError
from phone.wire.sip import parse_name_addr, parse_uri
from phone.wire.sip.values import SipUri, quote


def _refused_uri(text: str) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_uri(text)
    return str(info.value)


def _refused_name_addr(text: str) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_name_addr(text)
    return str(info.value)


# --- quoted-string (RFC 3261 25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)) ----------


def test_rfc3261_25_1_quote_escapes_backslash_and_double_quote() -> None:
    assert quote('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert quote("ccmsipline") == '"ccmsipline"'


def test_rfc3261_25_1_a_quoted_display_name_loses_its_quoted_pairs() -> None:
    assert parse_name_addr('"A \\"B\\" \\\\C" <sip:a@b.lab>').display == 'A "B" \\C'
    assert parse_name_addr('"Bob" <sip:bob@biloxi.com>').display == "Bob"


def test_rfc3261_25_1_an_empty_quoted_string_is_empty() -> None:
    assert parse_name_addr('"" <sip:a@b.lab>').display == ""
    assert parse_name_addr('<sip:a@b.lab>;x=""').param("x") == ""


# --- parameters (RFC 3261 25.1: generic-param = token [ EQUAL gen-value ]) -------------------


def test_rfc3261_19_1_1_a_flag_parameter_has_no_value_and_reads_as_empty() -> None:
    uri = parse_uri("sip:atlanta.com;lr;transport=TCP")
    assert uri.params == (("lr", None), ("transport", "TCP"))
    assert uri.param("LR") == ""
    assert uri.param("maddr") is None


def test_rfc3261_25_1_a_separator_inside_a_quoted_value_is_text() -> None:
    address = parse_name_addr('<sip:a@b.lab>;x="a;b";y="q\\";z";w')
    assert address.params == (("x", "a;b"), ("y", 'q";z'), ("w", None))
    uri = parse_uri('sip:a@b.lab;x;y="1;2"')
    assert uri.params == (("x", None), ("y", "1;2"))


def test_an_unterminated_quoted_parameter_is_refused() -> None:
    text = '<sip:a@b.lab>;x="' + "y" * 70
    assert _refused_name_addr(text) == f"unterminated quoted string in {text[13:][:60]!r}"


def test_a_bad_parameter_name_is_quoted_up_to_40_characters() -> None:
    piece = "bad name=" + "v" * 50
    assert _refused_uri("sip:a@b.lab;" + piece) == f"bad parameter {piece[:40]!r} in URI"


# --- SIP and SIPS URIs (RFC 3261 19.1.1) -----------------------------------------------------


def test_rfc3261_19_1_1_only_sip_and_sips_uris() -> None:
    assert parse_uri("SIPS:alice@atlanta.com") == SipUri("sips", "alice", "atlanta.com", None)
    assert parse_uri("sip:alice@atlanta.com") == SipUri("sip", "alice", "atlanta.com", None)
    assert _refused_uri("tel:+1-212-555-0101") == "not a SIP URI: 'tel:+1-212-555-0101'"
    long = "mailto:" + "a" * 70
    assert _refused_uri(long) == f"not a SIP URI: {long[:60]!r}"


def test_rfc3261_19_1_1_the_headers_part_is_dropped() -> None:
    # hvalue may hold "?" (hnv-unreserved); the headers part starts at the first "?".
    uri = parse_uri("sip:alice@atlanta.com?subject=project%20x&priority=urgent?")
    assert uri == SipUri("sip", "alice", "atlanta.com", None)


def test_rfc3261_19_1_1_parameters_start_at_the_first_semicolon() -> None:
    uri = parse_uri("sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15")
    assert (uri.host, uri.params) == ("atlanta.com", (("maddr", "239.255.255.1"), ("ttl", "15")))


def test_rfc3261_19_1_1_the_password_is_never_kept() -> None:
    assert parse_uri("sip:alice:secretword@atlanta.com;transport=tcp").user == "alice"
    # The user is everything before the first ":"; the host everything after the last "@".
    assert parse_uri("sip:a:b:c@atlanta.com").user == "a"
    assert parse_uri("sip:a@b@atlanta.com") == SipUri("sip", "a@b", "atlanta.com", None)


def test_a_bad_host_is_quoted_up_to_60_characters() -> None:
    text = "sip:alice@" + "a" * 40 + "/" + "b" * 30
    assert _refused_uri(text) == f"bad host in SIP URI {text[:60]!r}"


def test_a_port_is_1_to_65535() -> None:
    assert parse_uri("sip:a@b.lab:1").port == 1
    assert parse_uri("sip:a@b.lab:65535").port == 65535
    assert parse_uri("sip:a@b.lab").port is None
    for port in ("0", "65536", "99999"):
        text = f"sip:a@b.lab:{port}"
        assert _refused_uri(text) == f"bad port in SIP URI {text!r}"
    long = "sip:" + "u" * 60 + "@b.lab:0"
    assert _refused_uri(long) == f"bad port in SIP URI {long[:60]!r}"

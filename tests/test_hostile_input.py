"""No untrusted input escapes as anything but the project's error type (issue 13, item 1).

A config's XML declaration may name any encoding; a phone reads UTF-8, UTF-16, ISO-8859-1 and
US-ASCII (expat's own: no Python codec is ever looked up by a name a file chose) and refuses
every other name with a FormatError. And whatever a step of the boot runs into, the phone
ends the boot in a failure state with a reason: ``boot()`` never raises.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.device import step_config
from phone.device.machine import State
from phone.errors import FormatError, ValueFormatError
from phone.formats.configxml import parse_config
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.memory import MemoryBackend

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
BODY = b"<device><loadInformation>sip88xx.14-1-1</loadInformation></device>"


def _declared(encoding: str) -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode() + BODY


# The probes of issue 13 and their cousins: names Python's codecs know but that are no text
# encoding (rot13, hex), multi-byte encodings expat refuses (UTF-7, UTF-32), names nothing
# knows, and single-byte code pages a phone has no reason to read (cp1252, latin-1 by alias).
@pytest.mark.parametrize(
    "encoding",
    [
        "x-evil",
        "UTF-7",
        "rot13",
        "hex",
        "base64",
        "utf_32",
        "UTF-32",
        "cp1252",
        "latin-1",
        "ascii",
        "",
        " ",
        "utf-8\x00",
    ],
)
def test_a_declared_encoding_a_phone_does_not_read_is_refused(encoding: str) -> None:
    with pytest.raises(ValueFormatError, match="encoding"):
        parse_config(_declared(encoding))


@pytest.mark.parametrize("encoding", ["UTF-8", "utf-8", "ISO-8859-1", "iso-8859-1", "US-ASCII"])
def test_the_four_encodings_a_phone_reads_are_taken(encoding: str) -> None:
    assert parse_config(_declared(encoding)).load_information == "sip88xx.14-1-1"


def test_utf16_with_its_byte_order_mark_is_taken() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?>\n' + BODY.decode()
    assert parse_config(text.encode("utf-16")).load_information == "sip88xx.14-1-1"


def test_utf16_declaring_another_encoding_is_refused_not_raised() -> None:
    # Inside UTF-16 the declaration is not ASCII, so the name check cannot read it; expat asks
    # Python's codecs, and whatever they raise must come out as a FormatError.
    data = b"\xff\xfe" + '<?xml version="1.0" encoding="rot13"?><device/>'.encode("utf-16-le")
    with pytest.raises(FormatError):
        parse_config(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=24))
def test_any_declared_name_parses_or_is_a_format_error(encoding: str) -> None:
    data = f'<?xml version="1.0" encoding="{encoding}"?><device/>'.encode("utf-8", "surrogatepass")
    with contextlib.suppress(FormatError):
        parse_config(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-7"]))
def test_any_bytes_in_any_wrapping_parse_or_are_a_format_error(tail: bytes, codec: str) -> None:
    data = '<?xml version="1.0"?><device>'.encode(codec) + tail
    with contextlib.suppress(FormatError):
        parse_config(data)


def _phone_served(config: bytes, mac: str = "0011223344A0") -> object:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    # A phone with no trust list takes an unsigned config (item 5): the attacker's best case.
    faults = [
        Fault(FaultKind.DROP, "*.tlv"),
        Fault(FaultKind.DROP, "*.sgn"),
        Fault(FaultKind.REPLACE, "*.cnf.xml", config),
    ]
    backend = FaultyBackend(MemoryBackend(lab, clock=lambda: NOW), faults)
    return create_phone(lab, mac=mac, backend=backend, clock=lambda: NOW)


@pytest.mark.parametrize("encoding", ["x-evil", "UTF-7", "rot13"])
def test_a_phone_refuses_a_config_in_an_unknown_encoding_and_says_why(encoding: str) -> None:
    phone = _phone_served(_declared(encoding))
    state = phone.boot()  # type: ignore[attr-defined]
    assert state is State.NO_CONFIG
    refused = [e for e in phone.trace if e.step == "config" and e.decision == "rejected"]  # type: ignore[attr-defined]
    assert refused and all(encoding in e.reason for e in refused)


def test_a_step_that_breaks_fails_the_boot_with_the_reason_never_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("parser bug")

    # Any code a step calls may break; the config rule is the one every boot reaches.
    monkeypatch.setattr(step_config, "evaluate_config", broken)
    phone = _phone_served(_declared("UTF-8"))
    assert phone.boot() is State.NO_CONFIG  # type: ignore[attr-defined]
    last = phone.trace[-1]  # type: ignore[attr-defined]
    assert (last.step, last.decision, last.rule) == ("configuring", "failed", "item 13")
    assert "RuntimeError: parser bug" in last.reason
    # The phone is still a phone: the next boot runs (and breaks the same way, not worse).
    assert phone.boot() is State.NO_CONFIG  # type: ignore[attr-defined]


def test_a_break_while_booting_ends_in_registration_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    phone = _phone_served(_declared("UTF-8"))

    def broken() -> object:
        raise KeyError("flash")

    monkeypatch.setattr(phone, "_stored_config", broken)
    assert phone.boot() is State.REGISTRATION_FAILED  # type: ignore[attr-defined]
    assert phone.trace[-1].step == "booting"  # type: ignore[attr-defined]

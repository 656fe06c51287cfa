"""The config XML codec: ``SEP<MAC>.cnf.xml`` and ``XMLDefault.cnf.xml`` (items 5-6, 21, 42)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.errors import FormatError, LengthError, StructureError, ValueFormatError
from phone.formats import configxml
from phone.formats.configxml import MAX_CONFIG_BYTES, DeviceConfig, parse_config, render_config

FULL = DeviceConfig(
    device_security_mode=2,
    callmanagers=(("cucm1.c.lab", 5060, 5061), ("cucm2.c.lab", 5070, 5071)),
    tvs_members=(("cucm1.c.lab", 2445), ("cucm2.c.lab", 2446)),
    tftp_servers=("cucm1.c.lab",),
    load_information="sip88xx.14-1-1-0001-10",
    digest_user="alice",
    digest_password="p<&>'\"w",
    capf_host="cucm1.c.lab",
    mac="001122AABBCC",
    model="8841",
)


def test_round_trip_full_stub_and_default() -> None:
    assert parse_config(render_config(FULL)) == FULL
    stub = FULL.stub("0123456789abcdef0123456789abcdef")
    assert parse_config(render_config(stub)) == stub
    assert b"alice" not in render_config(stub)
    default = DeviceConfig(callmanagers=FULL.callmanagers, default=True)
    data = render_config(default)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<Default>')
    assert parse_config(data) == default


def test_real_cisco_element_names() -> None:
    text = render_config(FULL).decode()
    for fragment in (
        "<deviceSecurityMode>2</deviceSecurityMode>",
        '<member priority="0">',
        "<securedSipPort>5061</securedSipPort>",
        "<processNodeName>cucm1.c.lab</processNodeName>",
        "<TVS>",
        "<port>2445</port>",
        "<address>cucm1.c.lab</address>",
        "<authName>alice</authName>",
        "<loadInformation>sip88xx.14-1-1-0001-10</loadInformation>",
        "<encrConfig>false</encrConfig>",
        "<capfList>",
    ):
        assert fragment in text


def test_members_follow_priority_not_document_order() -> None:
    data = b"""<device><devicePool><callManagerGroup><members>
      <member priority="1"><callManager><name>second</name></callManager></member>
      <member priority="0"><callManager><processNodeName>first</processNodeName>
        <ports><sipPort>5080</sipPort></ports></callManager></member>
    </members></callManagerGroup></devicePool>
    <TVS><members><member priority="2"><address>t2</address></member>
      <member priority="1"><port>2446</port><address>t1</address></member></members></TVS>
    <unknownElement>ignored</unknownElement></device>"""
    config = parse_config(data)
    assert config.callmanagers == (("first", 5080, 5061), ("second", 5060, 5061))
    assert config.tvs_members == (("t1", 2446), ("t2", 2445))


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b'<!DOCTYPE d [<!ENTITY a "b">]><device>&a;</device>', ValueFormatError, "DOCTYPE"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE device SYSTEM "http://x/"><device/>',
            ValueFormatError,
            "DOCTYPE",
        ),
        (b"<device><fullConfig>true</device>", ValueFormatError, "well-formed"),
        (b"", ValueFormatError, "well-formed"),
        (b"<phone/>", StructureError, "root element"),
        (
            b"<device><deviceSecurityMode>4</deviceSecurityMode></device>",
            ValueFormatError,
            "1 (non",
        ),
        (
            b"<device><deviceSecurityMode>x</deviceSecurityMode></device>",
            ValueFormatError,
            "decimal",
        ),
        (b"<device><encrConfig>maybe</encrConfig></device>", ValueFormatError, "true or false"),
        (b"<device><macAddress>00:11</macAddress></device>", ValueFormatError, "12 hex"),
        (
            b"<device><TVS><members><member><port>99999</port><address>a</address></member>"
            b"</members></TVS></device>",
            ValueFormatError,
            "port",
        ),
        (
            b"<device><TVS><members><member><port>1</port></member></members></TVS></device>",
            StructureError,
            "address",
        ),
    ],
)
def test_malformed_configs_are_format_errors(
    data: bytes, error: type[FormatError], text: str
) -> None:
    with pytest.raises(error) as caught:
        parse_config(data)
    assert text in str(caught.value)
    assert 0 <= caught.value.offset <= len(data)


def test_doctype_offset_and_oversized_input() -> None:
    with pytest.raises(ValueFormatError) as caught:
        parse_config(b"<?xml version='1.0'?><!DOCTYPE x><device/>")
    assert caught.value.offset > 0
    with pytest.raises(LengthError):
        parse_config(b" " * (MAX_CONFIG_BYTES + 1))


def test_values_that_cannot_round_trip_are_refused() -> None:
    with pytest.raises(ValueError):
        DeviceConfig(digest_password="bell\x07")
    with pytest.raises(ValueError):
        DeviceConfig(digest_password=" padded")
    with pytest.raises(ValueError):
        DeviceConfig(device_security_mode=0)
    with pytest.raises(ValueError):
        DeviceConfig(tvs_members=(("", 2445),))


_TEXT = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Z", "C")),
    min_size=1,
    max_size=20,
)
_PORT = st.integers(min_value=1, max_value=65535)


_CONFIGS = st.builds(
    DeviceConfig,
    device_security_mode=st.sampled_from([1, 2, 3]),
    callmanagers=st.lists(st.tuples(_TEXT, _PORT, _PORT), max_size=3).map(tuple),
    tvs_members=st.lists(st.tuples(_TEXT, _PORT), max_size=3).map(tuple),
    tftp_servers=st.lists(_TEXT, max_size=2).map(tuple),
    digest_user=st.none() | _TEXT,
    digest_password=st.none() | _TEXT,
    encrypted_config=st.booleans(),
    full_config=st.just(True),
    mac=st.none() | st.from_regex(r"[0-9A-F]{12}", fullmatch=True),
    default=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(_CONFIGS)
def test_render_parse_round_trip(config: DeviceConfig) -> None:
    assert parse_config(render_config(config)) == config


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300) | st.text(max_size=200).map(lambda t: f"<device>{t}</device>".encode())
)
def test_parse_raises_only_format_errors(data: bytes) -> None:
    try:
        result = parse_config(data)
    except FormatError:
        return
    assert isinstance(result, DeviceConfig)


@settings(max_examples=150, deadline=None)
@given(
    _CONFIGS,
    st.none() | st.from_regex(r"[0-9A-F]{12}", fullmatch=True),
    st.none() | _TEXT,
)
def test_memoised_rendering_is_the_reference_rendering(
    config: DeviceConfig, mac: str | None, model: str | None
) -> None:
    # Issue 17: render_config keeps the lines around <macAddress>/<model> per value of the
    # other fields; two configs that differ only there share them, and each renders as the
    # unmemoised path does.
    assert render_config(config) == configxml._render(config)
    other = dataclasses.replace(config, mac=mac, model=model)
    assert render_config(other) == configxml._render(other)

"""The config XML codec rule by rule (phone/formats/configxml.py): bytes written, values read,
every refusal word for word.

Element names are the Cisco ones of ``SEP<MAC>.cnf.xml`` (usecallmanager.nz reference, certutils
``enccnf`` stub: trust-file-formats.md section 8; phone-behaviour items 21, 36, 40-42); the
default ports are SIP 5060/5061 (RFC 3261 section 19.1.2), TVS 2445 (item 21) and CAPF 3804
(trust-file-formats.md section 9b). A refusal is a FormatError whose text a user reads in the
trace ("at byte N: <problem> (expected <what>)", phone/errors.py): each is compared whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from phone.errors import FormatError, LengthError, StructureError
from phone.formats import configxml
from phone.formats.configxml import DeviceConfig, parse_config, render_config

PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# The encodings a phone reads a config in (configxml.ACCEPTED_ENCODINGS_TEXT, the refusal's text).
ENCODINGS = "a config in UTF-8, UTF-16, ISO-8859-1 or US-ASCII"

FULL = DeviceConfig(
    device_security_mode=3,
    callmanagers=(("cm1.lab", 5060, 5061), ("cm2.lab", 5070, 5071)),
    tvs_members=(("tvs1.lab", 2445), ("tvs2.lab", 2446)),
    tftp_servers=("tftp1.lab", "tftp2.lab"),
    load_information="sip88xx.14-1-1-0001-10",
    digest_user="alice",
    digest_password="s&cret",
    encrypted_config=True,
    cert_hash="0123456789abcdef0123456789abcdef",
    capf_host="capf.lab",
    capf_port=3805,
    capf_auth_mode=1,
    ip_address_mode=2,
    mac="001122AABBCC",
    model="8841",
)

# SEP<MAC>.cnf.xml as a phone reads it: the usecallmanager.nz element tree (devicePool /
# callManagerGroup / members / member priority / callManager / ports, TVS members, sipProfile
# sipLines line button="1" authName/authPassword, capfList/capf phonePort/processNodeName),
# two-space indented, one element a line, booleans as "true"/"false".
FULL_TEXT = """\
<?xml version="1.0" encoding="UTF-8"?>
<device>
  <fullConfig>true</fullConfig>
  <deviceProtocol>SIP</deviceProtocol>
  <macAddress>001122AABBCC</macAddress>
  <model>8841</model>
  <devicePool>
    <callManagerGroup>
      <members>
        <member priority="0">
          <callManager>
            <name>cm1.lab</name>
            <ports>
              <sipPort>5060</sipPort>
              <securedSipPort>5061</securedSipPort>
            </ports>
            <processNodeName>cm1.lab</processNodeName>
          </callManager>
        </member>
        <member priority="1">
          <callManager>
            <name>cm2.lab</name>
            <ports>
              <sipPort>5070</sipPort>
              <securedSipPort>5071</securedSipPort>
            </ports>
            <processNodeName>cm2.lab</processNodeName>
          </callManager>
        </member>
      </members>
    </callManagerGroup>
  </devicePool>
  <TVS>
    <members>
      <member priority="0">
        <port>2445</port>
        <address>tvs1.lab</address>
      </member>
      <member priority="1">
        <port>2446</port>
        <address>tvs2.lab</address>
      </member>
    </members>
  </TVS>
  <tftpServers>
    <server priority="0">tftp1.lab</server>
    <server priority="1">tftp2.lab</server>
  </tftpServers>
  <sipProfile>
    <sipLines>
      <line button="1">
        <authName>alice</authName>
        <authPassword>s&amp;cret</authPassword>
      </line>
    </sipLines>
  </sipProfile>
  <loadInformation>sip88xx.14-1-1-0001-10</loadInformation>
  <deviceSecurityMode>3</deviceSecurityMode>
  <ipAddressMode>2</ipAddressMode>
  <capfAuthMode>1</capfAuthMode>
  <capfList>
    <capf>
      <phonePort>3805</phonePort>
      <processNodeName>capf.lab</processNodeName>
    </capf>
  </capfList>
  <certHash>0123456789abcdef0123456789abcdef</certHash>
  <encrConfig>true</encrConfig>
</device>
"""

# The plain companion of an encrypted config (trust-file-formats.md section 8, certutils
# enccnf): fullConfig false, ipAddressMode, loadInformation, capfAuthMode, capfList copied,
# certHash, encrConfig true; no digest credentials (item 42).
STUB_TEXT = """\
<?xml version="1.0" encoding="UTF-8"?>
<device>
  <fullConfig>false</fullConfig>
  <loadInformation>sip88xx.14-1-1-0001-10</loadInformation>
  <ipAddressMode>2</ipAddressMode>
  <capfAuthMode>1</capfAuthMode>
  <capfList>
    <capf>
      <phonePort>3805</phonePort>
      <processNodeName>capf.lab</processNodeName>
    </capf>
  </capfList>
  <certHash>00ff00ff00ff00ff00ff00ff00ff00ff</certHash>
  <encrConfig>true</encrConfig>
</device>
"""


def refusal(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as caught:
        parse_config(data)
    return caught.value


# --- rendering -------------------------------------------------------------------------------


def test_section8_full_config_is_written_element_for_element() -> None:
    assert render_config(FULL).decode() == FULL_TEXT
    assert parse_config(FULL_TEXT.encode()) == FULL


def test_section8_stub_carries_only_what_fetching_the_encrypted_config_needs() -> None:
    stub = FULL.stub("00ff00ff00ff00ff00ff00ff00ff00ff")
    assert stub == DeviceConfig(
        full_config=False,
        encrypted_config=True,
        cert_hash="00ff00ff00ff00ff00ff00ff00ff00ff",
        load_information="sip88xx.14-1-1-0001-10",
        capf_host="capf.lab",
        capf_port=3805,
        capf_auth_mode=1,
        ip_address_mode=2,
    )
    assert render_config(stub).decode() == STUB_TEXT


def test_default_config_root_is_Default_with_empty_lists() -> None:
    text = render_config(DeviceConfig(default=True)).decode()
    assert text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Default>\n  <fullConfig>true</fullConfig>\n'
        "  <deviceProtocol>SIP</deviceProtocol>\n  <devicePool>\n    <callManagerGroup>\n"
        "      <members>\n      </members>\n    </callManagerGroup>\n  </devicePool>\n"
        "  <TVS>\n    <members>\n    </members>\n  </TVS>\n  <tftpServers>\n  </tftpServers>\n"
        '  <sipProfile>\n    <sipLines>\n      <line button="1">\n      </line>\n'
        "    </sipLines>\n  </sipProfile>\n  <loadInformation></loadInformation>\n"
        "  <deviceSecurityMode>1</deviceSecurityMode>\n  <ipAddressMode>0</ipAddressMode>\n"
        "  <capfAuthMode>0</capfAuthMode>\n  <capfList>\n  </capfList>\n"
        "  <certHash></certHash>\n  <encrConfig>false</encrConfig>\n</Default>\n"
    )


# --- what a config may hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device_security_mode": 4}, "device security mode must be 1, 2 or 3: 4"),
        ({"mac": "00112233445g"}, "MAC must be 12 upper-case hex digits: '00112233445g'"),
        ({"callmanagers": (("", 5060, 5061),)}, "a call manager or TVS member needs a host"),
        ({"tvs_members": (("", 2445),)}, "a call manager or TVS member needs a host"),
        ({"callmanagers": (("cm", 0, 5061),)}, "port out of range: 0"),
        ({"callmanagers": (("cm", 5060, 65536),)}, "port out of range: 65536"),
        ({"tvs_members": (("tvs", 0),)}, "port out of range: 0"),
        ({"capf_port": 65536}, "port out of range: 65536"),
        ({"model": "88\x0041"}, "config text must be XML-safe and unpadded: '88\\x0041'"),
    ],
)
def test_a_config_that_cannot_be_written_is_refused_by_name(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        DeviceConfig(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_ports_run_from_1_to_65535() -> None:
    # TCP/UDP ports are 16 bits, port 0 is reserved (RFC 793 / RFC 768).
    config = DeviceConfig(
        callmanagers=(("cm", 1, 65535),),
        tvs_members=(("tvs", 65535),),
        capf_host="capf",
        capf_port=1,
    )
    assert parse_config(render_config(config)) == config


# --- reading values --------------------------------------------------------------------------


def test_missing_elements_read_as_their_defaults() -> None:
    # No encrConfig: not encrypted; no fullConfig: a full config; no ipAddressMode/capfAuthMode:
    # 0; no deviceSecurityMode: 1 (non-secure); no phonePort: CAPF's 3804 (section 9b).
    config = parse_config(b"<device><capfList><capf/></capfList></device>")
    assert config == DeviceConfig()
    assert (config.encrypted_config, config.full_config) == (False, True)
    assert (config.ip_address_mode, config.capf_auth_mode, config.capf_port) == (0, 0, 3804)


@pytest.mark.parametrize("prolog", [b"", PROLOG], ids=["reference", "fast"])
def test_capf_and_address_modes_are_read(prolog: bytes) -> None:
    data = prolog + (
        b"<device><capfList><capf><phonePort>3900</phonePort>"
        b"<processNodeName>capf.lab</processNodeName></capf></capfList>"
        b"<capfAuthMode>2</capfAuthMode><ipAddressMode>1</ipAddressMode></device>"
    )
    config = parse_config(data)
    assert (config.capf_host, config.capf_port) == ("capf.lab", 3900)
    assert (config.capf_auth_mode, config.ip_address_mode) == (2, 1)


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("false", False), ("0", False)]
)
def test_booleans_are_true_false_1_or_0(text: str, value: bool) -> None:
    # xsd:boolean: "true", "false", "1", "0".
    data = f"<device><encrConfig>{text}</encrConfig><fullConfig>{text}</fullConfig></device>"
    config = parse_config(data.encode())
    assert (config.encrypted_config, config.full_config) == (value, value)


def test_numbers_have_at_most_nine_digits() -> None:
    config = parse_config(b"<device><capfAuthMode>123456789</capfAuthMode></device>")
    assert config.capf_auth_mode == 123456789
    data = b"<device><capfAuthMode>1234567890</capfAuthMode></device>"
    assert str(refusal(data)) == (
        "at byte 8: capfAuthMode is '1234567890' (expected a decimal number for capfAuthMode)"
    )


def test_a_value_is_the_text_around_its_children() -> None:
    # An element's character data is all of it, before, between and after child elements.
    assert parse_config(b"<device><model>88<b/>4<i/><u/>1</model></device>").model == "8841"
    assert parse_config(PROLOG + b"<device><model>8<b/>8<i/>41</model></device>").model == "8841"


def test_a_long_value_is_read_whole() -> None:
    # Longer than expat's 8 KiB text buffer, which then delivers it in several pieces.
    load = "sip88xx\n" * 3000
    data = f"<device><loadInformation>{load}</loadInformation><model>a<b/>{load}</model></device>"
    config = parse_config(data.encode())
    assert config.load_information == load.strip()
    assert config.model == "a" + load.strip()


def test_priorities_of_up_to_nine_digits_order_members() -> None:
    data = b"""<device><TVS><members>
      <member priority="999999999"><address>last</address></member>
      <member priority="000000001"><address>first</address></member></members></TVS></device>"""
    assert parse_config(data).tvs_members == (("first", 2445), ("last", 2445))


def test_a_config_of_exactly_the_size_limit_is_read() -> None:
    # MAX_CONFIG_BYTES, the documented limit: 1 MiB (1,048,576 bytes); one byte more is refused.
    body = b"<device><model>8841</model></device>"
    data = body + b" " * (1_048_576 - len(body))
    assert parse_config(data).model == "8841"
    assert str(refusal(data + b" ")) == (
        "at byte 1048576: config of 1048577 bytes (expected at most 1048576 bytes)"
    )
    assert isinstance(refusal(data + b" "), LengthError)


# --- refusals, word for word -----------------------------------------------------------------

LONG = "y" * 45  # a value longer than the 40 characters a refusal quotes
QUOTED = repr("y" * 40)


@pytest.mark.parametrize(
    ("body", "problem", "expected"),
    [
        (
            "<devicePool><callManagerGroup><members><member><callManager><ports/>"
            "</callManager></member></members></callManagerGroup></devicePool>",
            "call manager member without a host",
            "<processNodeName> or <name>",
        ),
        (
            "<TVS><members><member><port>2445</port></member></members></TVS>",
            "TVS member without an address",
            "<address>",
        ),
    ],
)
def test_item21_member_without_host_is_a_structure_error(
    body: str, problem: str, expected: str
) -> None:
    data = f"<device>{body}</device>".encode()
    error = refusal(data)
    assert isinstance(error, StructureError)
    offset = data.index(b"<member>")
    assert str(error) == f"at byte {offset}: {problem} (expected {expected})"


def test_root_must_be_device_or_Default() -> None:
    error = refusal(f"<{'r' * 45}/>".encode())
    assert isinstance(error, StructureError)
    assert str(error) == f"at byte 0: root element <{'r' * 40}> (expected <device> or <Default>)"


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("<devicePool><callManagerGroup><members><member><callManager><name>cm</name>"
         "<ports><sipPort>{v}</sipPort></ports></callManager></member></members>"
         "</callManagerGroup></devicePool>", "sipPort"),
        ("<devicePool><callManagerGroup><members><member><callManager><name>cm</name>"
         "<ports><securedSipPort>{v}</securedSipPort></ports></callManager></member>"
         "</members></callManagerGroup></devicePool>", "securedSipPort"),
        ("<TVS><members><member><address>t</address><port>{v}</port></member></members></TVS>",
         "TVS port"),
        ("<capfList><capf><phonePort>{v}</phonePort></capf></capfList>", "CAPF port"),
    ],
)  # fmt: skip
def test_ports_out_of_range_or_not_numbers_are_refused(body: str, what: str) -> None:
    tag = body.split("{v}", maxsplit=1)[0].rsplit("<", 1)[1]
    for value, problem, expected in [
        ("0", f"{what} 0 is out of range", "a port from 1 to 65535"),
        ("65536", f"{what} 65536 is out of range", "a port from 1 to 65535"),
        ("5o60", f"{what} is '5o60'", f"a decimal number for {what}"),
    ]:
        data = f"<device>{body.format(v=value)}</device>".encode()
        offset = data.index(f"<{tag}".encode())
        assert str(refusal(data)) == f"at byte {offset}: {problem} (expected {expected})"
        # the fast path (render_config's prolog) refuses it with the same offset
        assert str(refusal(PROLOG + data)) == (
            f"at byte {offset + len(PROLOG)}: {problem} (expected {expected})"
        )
    data = f"<device>{body.format(v='65535')}</device>".encode()
    parse_config(data)


@pytest.mark.parametrize(
    ("tag", "what", "expected"),
    [
        ("deviceSecurityMode", "deviceSecurityMode", "a decimal number for deviceSecurityMode"),
        ("capfAuthMode", "capfAuthMode", "a decimal number for capfAuthMode"),
        ("ipAddressMode", "ipAddressMode", "a decimal number for ipAddressMode"),
        ("encrConfig", "encrConfig", "true or false"),
        ("fullConfig", "fullConfig", "true or false"),
    ],
)
def test_values_that_are_not_numbers_or_booleans_are_refused(
    tag: str, what: str, expected: str
) -> None:
    for value, quoted in [("maybe", "'maybe'"), (LONG, QUOTED)]:
        data = f"<device><model>m</model><{tag}>{value}</{tag}></device>".encode()
        offset = data.index(f"<{tag}>".encode())
        assert str(refusal(data)) == f"at byte {offset}: {what} is {quoted} (expected {expected})"


def test_items_40_41_device_security_mode_is_1_2_or_3() -> None:
    data = b"<device><model>m</model><deviceSecurityMode>4</deviceSecurityMode></device>"
    assert str(refusal(data)) == (
        "at byte 24: deviceSecurityMode 4 "
        "(expected 1 (non-secure), 2 (authenticated) or 3 (encrypted))"
    )


def test_mac_address_is_12_hex_digits() -> None:
    assert parse_config(b"<device><macAddress>001122aabbcc</macAddress></device>").mac == (
        "001122AABBCC"
    )
    data = b"<device><model>m</model><macAddress>00:11</macAddress></device>"
    assert str(refusal(data)) == "at byte 24: macAddress '00:11' (expected 12 hex digits)"
    data = f"<device><model>m</model><macAddress>{LONG}</macAddress></device>".encode()
    assert str(refusal(data)) == (f"at byte 24: macAddress {'Y' * 40!r} (expected 12 hex digits)")


@pytest.mark.parametrize(
    ("priority", "quoted"), [("x", "'x'"), ("1234567890", "'1234567890'"), (LONG, QUOTED)]
)
def test_member_priority_is_a_number_of_up_to_nine_digits(priority: str, quoted: str) -> None:
    for prefix, member in [
        ("<TVS><members>", f'<member priority="{priority}"><address>t</address></member>'),
        ("<tftpServers>", f'<server priority="{priority}">t</server>'),
    ]:
        data = f"<device>{prefix}{member}</{prefix[1:].split('>')[0]}></device>".encode()
        data = data.replace(b"</TVS>", b"</members></TVS>")
        offset = data.index(member[:8].encode())
        assert str(refusal(data)) == (
            f"at byte {offset}: priority is {quoted} (expected a decimal priority)"
        )


# --- the XML itself --------------------------------------------------------------------------


def test_doctype_is_refused_word_for_word() -> None:
    # A DOCTYPE is the only way to define entities: refusing it refuses billion laughs and
    # external entities. expat reports it after the document type's name.
    data = b'<!DOCTYPE device [<!ENTITY a "8841">]><device><model>&a;</model></device>'
    assert str(refusal(data)) == (
        "at byte 17: DOCTYPE declarations are not allowed "
        "(expected a config without DOCTYPE or entities)"
    )
    # the same behind render_config's prolog (the fast parser would expand the entity)
    assert str(refusal(PROLOG + data)) == (
        "at byte 56: DOCTYPE declarations are not allowed "
        "(expected a config without DOCTYPE or entities)"
    )


def test_not_well_formed_xml_is_refused_word_for_word() -> None:
    assert str(refusal(b"<device><fullConfig>true</device>")) == (
        "at byte 26: not well-formed XML (mismatched tag, line 1) "
        "(expected a well-formed XML config file)"
    )


@pytest.mark.parametrize("name", ["UTF-8", "utf-8", "utf-16", "ISO-8859-1", "us-ascii"])
def test_the_four_expat_encodings_are_read(name: str) -> None:
    data = f"<?xml version='1.0' encoding='{name}'?><device><model>8841</model></device>"
    codec = "utf-16" if name == "utf-16" else "ascii"
    assert parse_config(data.encode(codec)).model == "8841"


@pytest.mark.parametrize("padding", [0, 600])
def test_other_declared_encodings_are_refused_wherever_the_name_is(padding: int) -> None:
    # XML allows any whitespace inside the declaration: the name is found however far in.
    head = b'<?xml version="1.0"' + b" " * padding + b' encoding="windows-1252"?>'
    data = head + b"<device><model>\xe9</model></device>"
    assert str(refusal(data)) == (
        f"at byte {len(head) - 15}: XML declaration names the encoding 'windows-1252' "
        f"(expected {ENCODINGS})"
    )
    bad = b'<?xml version="1.0" encoding="\xe9"?><device/>'
    assert str(refusal(bad)) == (
        f"at byte 30: XML declaration names the encoding '\ufffd' (expected {ENCODINGS})"
    )


def test_an_encoding_expat_must_ask_python_for_is_refused() -> None:
    # A UTF-16 file's declaration is read by expat itself; a name it does not know is refused.
    data = '<?xml version="1.0" encoding="x-evil"?><device/>'.encode("utf-16-le")
    assert str(refusal(data)) == (
        f"at byte 0: undecodable XML (LookupError: unknown encoding: x-evil) (expected {ENCODINGS})"
    )


# --- the fast parser ---------------------------------------------------------------------------


def test_rendered_configs_take_the_fast_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fleet parses thousands of rendered configs: those must not need the reference parser.
    def no_reference(data: bytes) -> object:
        raise AssertionError("the reference parser was used")

    monkeypatch.setattr(configxml, "_tree", no_reference)
    assert parse_config(render_config(FULL)) == FULL
    assert parse_config(render_config(FULL.stub(None))) == FULL.stub(None)


def test_namespaces_do_not_change_what_is_read() -> None:
    # The fast parser processes namespaces, the reference does not: a file with xmlns is read
    # by the reference, so a default namespace on an element does not hide it.
    data = PROLOG + b'<device><model xmlns="urn:x">8841</model></device>'
    assert parse_config(data).model == "8841"
    data = PROLOG + b'<device><model xmlns:a="urn:x" a:b="c">8841</model></device>'
    assert parse_config(data).model == "8841"


def test_processing_instructions_and_xml_attributes_read_as_without_them() -> None:
    # Either parser may read these (both ignore processing instructions, and the xml: prefix
    # names nothing a phone reads): the config is the one without them.
    plain = PROLOG + b"<device><model>8841</model><TVS><members><member priority='1'>"
    plain += b"<address>a</address></member></members></TVS></device>"
    marked = PROLOG + b"<device xml:lang='en'><model xml:space='preserve'>88<?pi x?>41</model>"
    marked += b"<?pi?><TVS><members><member xml:priority='3' priority='1'><address>a</address>"
    marked += b"</member></members></TVS></device>"
    assert parse_config(marked) == parse_config(plain)
    assert parse_config(plain).tvs_members == (("a", 2445),)


# --- the rendering memo (configxml._shared_parts) ---------------------------------------------
#
# render_config keeps the lines around <macAddress> and <model> once per value of every other
# field (issue 17: a fleet's configs differ in those two only). The memo must be invisible:
# each check below compares with the unmemoised rendering (configxml._render) and fails if the
# key misses a field or the cut falls on the wrong line.

# Another value for each field FULL sets, each one still a valid config.
_OTHER_VALUES: dict[str, Any] = {
    "device_security_mode": 2,
    "callmanagers": (("cm9.lab", 5060, 5061),),
    "tvs_members": (("tvs9.lab", 2445),),
    "tftp_servers": ("tftp9.lab",),
    "load_information": "sip88xx.14-2-1-0001-14",
    "digest_user": "bob",
    "digest_password": "other",
    "encrypted_config": False,
    "full_config": False,
    "cert_hash": "ffffffffffffffffffffffffffffffff",
    "capf_host": "capf9.lab",
    "capf_port": 3804,
    "capf_auth_mode": 2,
    "ip_address_mode": 0,
    "mac": "001122334455",
    "model": "7841",
    "default": True,
}


def test_every_field_has_another_value_here() -> None:
    assert set(_OTHER_VALUES) == {f.name for f in dataclasses.fields(DeviceConfig)}


def test_the_memo_key_is_every_field_but_mac_and_model() -> None:
    names = [f.name for f in dataclasses.fields(DeviceConfig) if f.name not in ("mac", "model")]
    assert list(configxml._SHARED_FIELDS) == names


@pytest.mark.parametrize("field", sorted(_OTHER_VALUES))
def test_a_config_differing_in_one_field_renders_as_without_the_memo(field: str) -> None:
    render_config(FULL)  # the memo holds FULL's parts first
    changed = dataclasses.replace(FULL, **{field: _OTHER_VALUES[field]})
    assert render_config(changed) == configxml._render(changed)
    assert render_config(changed) != render_config(FULL)


@pytest.mark.parametrize(
    ("mac", "model"),
    [("001122AABBCC", None), (None, "8841"), (None, None), ("AABBCCDDEEFF", "x&y")],
)
def test_mac_and_model_each_present_or_absent(mac: str | None, model: str | None) -> None:
    config = dataclasses.replace(FULL, mac=mac, model=model)
    assert render_config(config) == configxml._render(config)


def test_the_memo_is_bounded_and_stays_right_past_its_bound() -> None:
    configxml._shared_parts.cache_clear()
    configs = [
        dataclasses.replace(FULL, load_information=f"sip88xx.14-1-1-{i:04d}-10") for i in range(300)
    ]
    for config in configs:
        assert render_config(config) == configxml._render(config)
        assert configxml._shared_parts.cache_info().currsize <= 256
    assert render_config(configs[0]) == configxml._render(configs[0])


def test_configs_differing_only_in_mac_and_model_are_rendered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the memo is for (issue 17): a fleet's configs share their lines; the second phone's
    # config renders none of them again.
    calls: list[DeviceConfig] = []
    real = configxml._render_lines

    def counting(cfg: DeviceConfig) -> Iterator[str]:
        calls.append(cfg)
        return real(cfg)

    monkeypatch.setattr(configxml, "_render_lines", counting)
    configxml._shared_parts.cache_clear()
    first = render_config(FULL)
    second = render_config(dataclasses.replace(FULL, mac="001122334455", model="7841"))
    assert len(calls) == 1
    assert first != second

"""The fleet's config parse memo (phone/device/config_memo.py) is parse_config, byte for byte.

It shares the parse of configs that differ only in their ``<macAddress>``. Every test here
compares it with :func:`parse_config` on the same bytes: equal results, and the same error (text
and offset) where the bytes do not parse. The near-misses are the cases the shortcut must not
take: a MAC spelled with a reference, hidden in a comment, not the root's, a placeholder already
in the file, a template that fails.
"""

from __future__ import annotations

import pytest

from phone.device.config_memo import _parse_template, parse_config_memo
from phone.errors import FormatError
from phone.formats.configxml import DeviceConfig, parse_config, render_config

BASE = DeviceConfig(
    callmanagers=(("cucm1.old.lab", 5060, 5061),),
    tvs_members=(("cucm1.old.lab", 2445),),
    tftp_servers=("cucm1.old.lab",),
    capf_host="cucm1.old.lab",
    mac="020000000000",
    model="8841",
)


def _config(mac: str = "020000000000", **changes: object) -> bytes:
    fields = {**BASE.__dict__, "mac": mac, **changes}
    return render_config(DeviceConfig(**fields))


def _same(data: bytes) -> DeviceConfig:
    expected = parse_config(data)
    got = parse_config_memo(data)
    assert got == expected
    assert type(got) is DeviceConfig
    assert got.__dict__ == expected.__dict__
    return got


@pytest.fixture(autouse=True)
def _empty_memo() -> None:
    _parse_template.cache_clear()


def test_configs_differing_in_their_mac_share_one_parse() -> None:
    macs = ["020000000000", "020000000001", "0A1B2C3D4E5F", "FFFFFFFFFFFF"]
    results = [_same(_config(mac)) for mac in macs]
    assert [r.mac for r in results] == macs
    info = _parse_template.cache_info()
    assert (info.misses, info.hits) == (1, 3)


def test_a_lower_case_mac_is_read_upper_case_as_the_parser_does() -> None:
    data = _config().replace(b"020000000000", b"0a1b2c3d4e5f")
    assert _same(data).mac == "0A1B2C3D4E5F"


def test_configs_differing_elsewhere_are_parsed_apart() -> None:
    one = _same(_config(device_security_mode=2))
    two = _same(_config(device_security_mode=3))
    assert (one.device_security_mode, two.device_security_mode) == (2, 3)
    assert _parse_template.cache_info().misses == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # A character reference could spell a MAC (or the placeholder) outside the span.
        (b"<model>8841</model>", b"<model>&#56;841</model>"),
        # A comment could hide the span; the real MAC is then another element.
        (b"<macAddress>", b"<!-- <macAddress>0123456789AB</macAddress> --><macAddress>"),
        # The placeholder is already in the file: the span cut out could be the wrong one.
        (b"<model>8841</model>", b"<model>0123456789AB</model>"),
        # The first <macAddress> is not the root's: the root has none.
        (
            b"<macAddress>020000000000</macAddress>",
            b"<other><macAddress>020000000000</macAddress></other>",
        ),
        # The root's MAC split by a child element (its text is the placeholder's digits) after
        # a nested MAC: no reference, no comment, the placeholder once; only the second
        # <macAddress sends it to the parser.
        (
            b"<macAddress>020000000000</macAddress>",
            b"<other><macAddress>020000000000</macAddress></other>"
            b"<macAddress>01234567<x/>89AB</macAddress>",
        ),
        # The same with the root's MAC spelled with a reference.
        (
            b"<macAddress>020000000000</macAddress>",
            b"<other><macAddress>020000000000</macAddress></other>"
            b"<macAddress>&#48;123456789AB</macAddress>",
        ),
        # ... or split by a comment.
        (
            b"<macAddress>020000000000</macAddress>",
            b"<other><macAddress>020000000000</macAddress></other>"
            b"<macAddress>01234567<!-- -->89AB</macAddress>",
        ),
        # Padding: the parser strips it; the span is not 12 digits between the tags.
        (b"<macAddress>020000000000", b"<macAddress> 020000000000"),
        # Not hex.
        (b"<macAddress>020000000000", b"<macAddress>02000000000G"),
    ],
)
def test_near_misses_parse_as_parse_config_does(old: bytes, new: bytes) -> None:
    data = _config()
    assert old in data
    changed = data.replace(old, new, 1)
    try:
        expected: DeviceConfig | str = parse_config(changed)
    except FormatError as exc:
        expected = f"{type(exc).__name__}: {exc}"
    try:
        got: DeviceConfig | str = parse_config_memo(changed)
    except FormatError as exc:
        got = f"{type(exc).__name__}: {exc}"
    assert got == expected
    if isinstance(got, DeviceConfig):
        assert got.__dict__ == expected.__dict__


def test_a_split_root_mac_is_read_as_the_parser_reads_it() -> None:
    data = _config().replace(
        b"<macAddress>020000000000</macAddress>",
        b"<other><macAddress>020000000000</macAddress></other>"
        b"<macAddress>01234567<x/>89AB</macAddress>",
    )
    assert _same(data).mac == "0123456789AB"  # not the nested 020000000000


def test_the_nested_mac_is_not_taken_for_the_roots() -> None:
    data = _config().replace(
        b"<macAddress>020000000000</macAddress>",
        b"<other><macAddress>020000000000</macAddress></other>",
    )
    assert _same(data).mac is None


def test_a_config_that_does_not_parse_raises_its_own_error() -> None:
    # deviceSecurityMode 4 is refused (trust-file-formats: 1, 2 or 3); the error names the
    # bytes' own offset, which the template shares, and is raised again for the next phone.
    for mac in ("020000000000", "020000000001"):
        data = _config(mac).replace(
            b"<deviceSecurityMode>1</deviceSecurityMode>",
            b"<deviceSecurityMode>4</deviceSecurityMode>",
        )
        with pytest.raises(FormatError) as expected:
            parse_config(data)
        with pytest.raises(FormatError) as got:
            parse_config_memo(data)
        assert str(got.value) == str(expected.value)
        assert got.value.offset == expected.value.offset
    assert _parse_template.cache_info().currsize == 0  # a failed template is not remembered


def test_a_default_config_without_mac_is_parsed_whole() -> None:
    data = render_config(DeviceConfig(callmanagers=BASE.callmanagers, default=True))
    assert _same(data).default is True
    assert _parse_template.cache_info().misses == 0


def test_the_results_are_independent_objects() -> None:
    one = parse_config_memo(_config("020000000000"))
    two = parse_config_memo(_config("020000000001"))
    assert one is not two
    assert one.mac == "020000000000"  # giving the second phone its MAC left the first's alone

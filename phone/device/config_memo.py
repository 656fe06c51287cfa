"""A fleet's configs parsed once per template, not once per phone (issue 17 item 2).

The configs a cluster serves its phones differ from one phone to the next in one value: the
``<macAddress>`` (every other element comes from the device pool, the cluster's nodes and the
security profile, which the phones share). Parsing is a pure function of the bytes, so a config
that differs from one parsed before only in those 12 hex digits parses to the same
:class:`~phone.formats.configxml.DeviceConfig` with the other MAC.

:func:`parse_config_memo` cuts the MAC out of the bytes (a *template*: the bytes with a fixed
placeholder in its place), parses the template once, and gives each phone the shared result
with its own MAC. It takes the shortcut only where that is provably the same parse, and calls
:func:`~phone.formats.configxml.parse_config` on the bytes themselves everywhere else:

* the bytes hold one ``<macAddress`` only, so the span is the one element of that name there
  is (a second one, nested elsewhere or in a comment, could be the one the parser reads);
* the span is ``<macAddress>`` + 12 ASCII hex digits + ``</macAddress>``: the element holds
  nothing else (no child, comment or reference splitting its text), so the MAC the parser would
  read from it (stripped, upper-cased, checked against 12 hex digits) is those digits,
  upper-cased;
* belt and braces: the bytes hold no ``&`` and no ``<!`` (references, comments, CDATA), and the
  placeholder occurs once in the template;
* the template's parse reads the placeholder as the MAC: the element is the root's;
* a template that does not parse is not remembered: the bytes themselves are parsed, and raise
  their own error with their own offsets.

Every other value of the result is the template's: the bytes are the same everywhere else.
tests/test_config_memo.py compares it with ``parse_config`` on every library scenario's configs
and on crafted near-misses. In a fleet of 10,000 phones on two clusters it parses two templates
instead of 20,000 configs (a config's parse is 50-250 microseconds: the largest single cost of a
boot after RSA, docs/performance.md).
"""

from __future__ import annotations

import functools
import re

from phone.errors import FormatError
from phone.formats.configxml import DeviceConfig, parse_config

__all__ = ["parse_config_memo"]

_OPEN = b"<macAddress>"
_CLOSE = b"</macAddress>"
_HEX12 = re.compile(rb"[0-9A-Fa-f]{12}")
# Any 12 upper-case hex digits would do; this one is no real device's MAC (the 0x01 bit of its
# first byte marks a group address).
_PLACEHOLDER = b"0123456789AB"
_TEMPLATES = 16  # clusters x config variants a fleet has at once; a few KiB each


@functools.lru_cache(maxsize=_TEMPLATES)
def _parse_template(template: bytes) -> DeviceConfig:
    return parse_config(template)


def parse_config_memo(data: bytes) -> DeviceConfig:
    """:func:`~phone.formats.configxml.parse_config` of ``data``, sharing the parse of configs
    that differ only in their MAC (module docstring). Raises what ``parse_config`` raises."""
    start = data.find(_OPEN)
    if start < 0 or data.count(_OPEN[:-1]) != 1 or b"&" in data or b"<!" in data:
        return parse_config(data)
    start += len(_OPEN)
    end = start + len(_PLACEHOLDER)
    mac = data[start:end]
    if not data.startswith(_CLOSE, end) or not _HEX12.fullmatch(mac):
        return parse_config(data)
    template = data[:start] + _PLACEHOLDER + data[end:]
    if template.count(_PLACEHOLDER) != 1:
        return parse_config(data)
    try:
        shared = _parse_template(template)
    except (FormatError, ValueError):  # the bytes' own parse raises it, with its own offset
        return parse_config(data)
    if shared.mac != _PLACEHOLDER.decode("ascii"):
        return parse_config(data)
    # ``dataclasses.replace`` would check every field again (a third of the time saved); only
    # the MAC is new, and it is 12 hex digits upper-cased: what DeviceConfig checks of a MAC.
    config: DeviceConfig = object.__new__(DeviceConfig)
    config.__dict__.update(shared.__dict__)
    config.__dict__["mac"] = mac.decode("ascii").upper()
    return config

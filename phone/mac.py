"""MAC addresses, as phones, configs and the cluster spell them."""

from __future__ import annotations

import re

from phone.errors import UsageError

_MAC_HEX = re.compile(r"[0-9A-F]{12}")


def normalize_mac(text: str) -> str:
    """``AA:BB:CC:DD:EE:FF``, ``aabb.ccdd.eeff``, ``SEPAABBCCDDEEFF`` -> ``AABBCCDDEEFF``.

    Raises:
        UsageError: not 12 hex digits (exit code 2 on the CLI).
    """
    if _MAC_HEX.fullmatch(text):
        return text  # already normalized (the common case): every step below is a no-op
    raw = text.strip().upper().removeprefix("SEP")
    for sep in (":", "-", "."):
        raw = raw.replace(sep, "")
    if not _MAC_HEX.fullmatch(raw):
        raise UsageError(f"bad MAC address {text!r}: expected 12 hex digits, e.g. 001122AABBCC")
    return raw

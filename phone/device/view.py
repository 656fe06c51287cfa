"""What a phone's Security Settings screen shows, as plain data (item 31, item 48).

Reads only the flash, so it works for a phone that is off: ``vphone phone show --flash DIR``.
"""

from __future__ import annotations

import json
from typing import Any

from phone.device import flash as names
from phone.device.flash import Flash
from phone.errors import FormatError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.configxml import parse_config
from phone.formats.trustlist import parse_trust_list
from phone.formats.views import checksums, trust_list_view
from phone.pki import cert_from_pem

JSONDict = dict[str, Any]


def trust_list_summary(data: bytes | None) -> JSONDict | None:
    """A stored CTL or ITL: its checksums (item 31), signer and records; None when absent."""
    if data is None:
        return None
    sums = checksums(data)
    try:
        view = trust_list_view(parse_trust_list(data))
    except FormatError as exc:
        return {**sums, "error": str(exc), "signer": None, "records": []}
    header = view["header"]
    return {
        **sums,
        "version": header["version"],
        "digest": header["digest"],
        "filename": header["filename"],
        "signer": header["signer"],
        "records": view["records"],
    }


def _certificate(flash: Flash, name: str) -> JSONDict | None:
    pem = flash.read(name)
    if pem is None:
        return None
    cert = cert_from_pem(pem)
    return {
        "subject": cucm_name(cert.subject),
        "issuer": cucm_name(cert.issuer),
        "serial": serial_bytes(cert.serial_number).hex(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def flash_view(flash: Flash) -> JSONDict:
    """Everything a person checks on a phone's security screens, from its flash alone."""
    raw = flash.read(names.SETTINGS)
    settings: JSONDict = json.loads(raw) if raw else {}
    config_view: JSONDict | None = None
    config_raw = flash.read(names.CONFIG)
    if config_raw is not None:
        try:
            config = parse_config(config_raw)
            config_view = {
                "device_security_mode": config.device_security_mode,
                "load_information": config.load_information,
                "callmanagers": [list(cm) for cm in config.callmanagers],
                "tvs": [list(t) for t in config.tvs_members],
            }
        except FormatError as exc:
            config_view = {"error": str(exc)}
    return {
        "mac": settings.get("mac"),
        "model": settings.get("model"),
        "load": settings.get("load"),
        "known_image_keys": settings.get("known_image_keys", []),
        "ctl": trust_list_summary(flash.read(names.CTL)),
        "itl": trust_list_summary(flash.read(names.ITL)),
        "mic": _certificate(flash, names.MIC_CERT),
        "lsc": _certificate(flash, names.LSC_CERT),
        "config": config_view,
    }

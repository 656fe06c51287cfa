"""SCCP device type codes of the phone models (Wireshark's DeviceType table)."""

from __future__ import annotations

# Device types (Wireshark's DeviceType table; 7960 = 7 is "StationTelecasterMgr" there and
# SKINNY_DEVICE_7960 in Asterisk's chan_skinny, which agrees on 7940 = 8, 7941 = 115, 7971 = 119,
# 7911 = 307).
DEVICE_TYPES: dict[str, int] = {
    "7902": 30008,
    "7905": 20000,
    "7906": 369,
    "7910": 6,
    "7911": 307,
    "7912": 30007,
    "7920": 30002,
    "7921": 365,
    "7925": 484,
    "7931": 348,
    "7935": 9,
    "7936": 30019,
    "7937": 431,
    "7940": 8,
    "7941": 115,
    "7942": 434,
    "7945": 435,
    "7960": 7,
    "7961": 30018,
    "7962": 404,
    "7965": 436,
    "7970": 30006,
    "7971": 119,
    "7975": 437,
    "7985": 302,
    "6901": 547,
    "6911": 548,
    "6921": 495,
    "6941": 496,
    "6945": 564,
    "6961": 497,
    "8941": 586,
    "8945": 585,
    "IPCommunicator": 30016,
}


def device_type(model: str) -> int:
    """The StationRegister device type of ``model`` (``"7942"``).

    Raises:
        KeyError: a model without a known SCCP device type.
    """
    return DEVICE_TYPES[model]

"""The phone's settings on flash (``settings.json``): what a new phone writes, what a phone
made again on the same flash keeps, and the flash of another phone refused. The load names come
from docs/models.md (the 8841's factory load, sip88xx.12-0-1, and its image key)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from keypool import pooled_keys

from phone.api import create_lab
from phone.cluster.lab import Lab
from phone.device.flash import MemoryFlash
from phone.device.phone import VirtualPhone
from phone.errors import UsageError
from phone.net.memory import MemoryBackend

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"


def _clock() -> datetime:
    return NOW


@pytest.fixture(scope="module")
def lab() -> Lab:
    return create_lab("cluster1", now=NOW, keys=pooled_keys())


def _phone(lab: Lab, flash: MemoryFlash, mac: str = MAC) -> VirtualPhone:
    backend = MemoryBackend(lab, clock=_clock)
    return VirtualPhone(
        mac=mac, backend=backend, tftp="cucm1", flash=flash, clock=_clock, keys=pooled_keys()
    )


def test_a_new_phone_writes_its_factory_settings_and_image(lab: Lab) -> None:
    flash = MemoryFlash()
    _phone(lab, flash)
    raw = flash.read("settings.json")
    assert raw is not None
    assert json.loads(raw) == {
        "known_image_keys": ["image-key-2010"],
        "load": "sip88xx.12-0-1",
        "mac": MAC,
        "model": "8841",
    }
    assert raw == json.dumps(json.loads(raw), sort_keys=True).encode()  # keys sorted, stable
    assert flash.read("image.loads") is not None  # the resident image a new phone starts from


def test_a_phone_made_again_on_the_same_flash_keeps_its_settings(lab: Lab) -> None:
    flash = MemoryFlash()
    stored = {
        "known_image_keys": ["image-key-2010", "image-key-2025"],
        "load": "sip88xx.14-2-1",
        "mac": MAC,
        "model": "8841",
        "extra": 7,
    }
    text = json.dumps(stored, sort_keys=True).encode()
    flash.write("settings.json", text)
    phone = _phone(lab, flash)
    assert flash.read("settings.json") == text  # read, not rewritten with the defaults
    assert phone._settings["load"] == "sip88xx.14-2-1"
    assert phone._settings["known_image_keys"] == ["image-key-2010", "image-key-2025"]
    assert phone._settings["extra"] == 7


def test_settings_without_a_mac_or_load_get_the_factory_values_in_memory(lab: Lab) -> None:
    flash = MemoryFlash()
    flash.write("settings.json", b"{}")
    phone = _phone(lab, flash)
    assert {k: phone._settings[k] for k in ("mac", "model", "load", "known_image_keys")} == {
        "mac": MAC,
        "model": "8841",
        "load": "sip88xx.12-0-1",
        "known_image_keys": ["image-key-2010"],
    }
    assert flash.read("settings.json") == b"{}"  # existing settings are not rewritten here


def test_the_flash_of_another_phone_is_refused(lab: Lab) -> None:
    flash = MemoryFlash()
    _phone(lab, flash, mac="AABBCCDDEEFF")
    with pytest.raises(UsageError) as caught:
        _phone(lab, flash)
    assert str(caught.value) == (
        f"this flash belongs to phone AABBCCDDEEFF, not {MAC}; use another folder"
    )

"""What the phone does with damaged or partial trust material on its flash (item 13)."""

from __future__ import annotations

from datetime import UTC, datetime

from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.device import flash as names
from phone.device.machine import State

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"


def test_item13_a_damaged_stored_trust_list_is_recorded_and_ignored() -> None:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    phone = create_phone(lab, mac=MAC, clock=lambda: NOW)
    phone.flash.write(names.CTL, b"not a trust list")
    assert phone.boot() is State.REGISTERED
    (damaged,) = [t for t in phone.trace if t.step == "boot" and t.decision == "rejected"]
    assert damaged.rule == "item 13"
    assert damaged.reason.startswith(f"stored {names.CTL} is damaged: ")


def test_a_mic_certificate_without_its_key_is_replaced_by_a_new_mic() -> None:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    phone = create_phone(lab, mac=MAC, clock=lambda: NOW)
    old = phone.mic()
    phone.flash.delete(names.MIC_KEY)
    new = phone.mic()
    assert new.certificate != old.certificate
    assert phone.flash.read(names.MIC_KEY) is not None

"""The scenario library runs in CI, and its expectations fail when the rule behind them breaks.

Every library scenario (``phone/scenario/library/*.toml``, listed by ``vphone scenario list``)
must pass as shipped. Then, one rule at a time is broken in the phone's trust core and the
scenario that depends on it must fail - at the expectation that names that rule.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from keypool import pooled_keys

import phone.trust.config as config_module
import phone.trust.images as images_module
import phone.trust.lists as lists_module
import phone.trust.tvs as tvs_module
from phone.device.capf import CapfServerTrust
from phone.errors import DecryptionError
from phone.formats.signed import SignedFile
from phone.formats.signed import decrypt as real_decrypt
from phone.scenario import library_names, library_scenarios, load_scenario, run_scenario
from phone.scenario.report import Report

# The procedures and pitfalls issue 7 asks the library to hold.
REQUIRED = {
    "first-boot",
    "reboot-unchanged",
    "regenerate-callmanager-8x",
    "regenerate-callmanager-12x",
    "regenerate-callmanager-and-tvs-8x",
    "all-three-renewed",
    "migration-unprepared",
    "migration-rollback",
    "migration-rollback-mixed-mode",
    "migration-bulk-certificates",
    "offline-during-itl-change",
    "itl-reset-two-phases",
    "firmware-key-rollover",
    "tampered-config",
    # Issue 8: configuration file encryption and its CAPF prerequisite.
    "encrypted-config-lsc",
}


def run(name: str) -> Report:
    return run_scenario(load_scenario(name), keys=pooled_keys())


def test_the_library_holds_every_documented_procedure() -> None:
    assert set(library_names()) >= REQUIRED


@pytest.mark.parametrize("scenario", library_scenarios(), ids=lambda s: s.name)
def test_library_scenario_is_documented(scenario: object) -> None:
    from phone.scenario import Scenario

    assert isinstance(scenario, Scenario)
    assert scenario.sources, "every library scenario cites its sources"
    assert scenario.items, "every library scenario names the behaviour items it exercises"
    assert scenario.description
    assert scenario.all_expects(), "a scenario without expectations proves nothing"
    assert scenario.path == f"library/{scenario.name}.toml"


@pytest.mark.parametrize("name", library_names())
def test_library_scenario_passes(name: str) -> None:
    report = run(name)
    failed = [f"line {e.line}: {e.subject}: {e.expect} -> {e.outcome}" for e in report.failed]
    assert report.ok, failed
    assert report.expectations


def test_library_scenarios_hold_for_any_fleet_size() -> None:
    """Expectations speak of groups, not of absolute numbers: `--count N` keeps them valid."""
    for scenario in library_scenarios():
        report = run_scenario(scenario.with_count(2), keys=pooled_keys())
        assert report.ok, (scenario.name, [e.expect for e in report.failed])


class _TrustsEveryTvs(tuple[bytes, ...]):
    """A broken item 21: every TVS server certificate 'is' a TVS record of the ITL."""

    def __contains__(self, item: object) -> bool:
        return True


def _break_item16(monkeypatch: pytest.MonkeyPatch) -> None:
    # Item 16: the empty rollback ITL no longer lets the next ITL in.
    monkeypatch.setattr(lists_module, "is_empty_itl", lambda itl: False)


def _break_item21(monkeypatch: pytest.MonkeyPatch) -> None:
    def trusting(itl: object) -> tuple[bytes, ...]:
        return _TrustsEveryTvs((b"any",))

    monkeypatch.setattr(tvs_module, "tvs_records", trusting)


def _break_item38(monkeypatch: pytest.MonkeyPatch) -> None:
    # Items 37-38: any image verifies, whatever key the running firmware knows.
    monkeypatch.setattr(images_module, "_verifies", lambda image, key: True)


def _break_item24(monkeypatch: pytest.MonkeyPatch) -> None:
    # Item 24 turned upside down: an unreachable TVS is taken as "no TVS needed", so the
    # phone keeps the old ITL silently instead of failing closed with a reason.
    real = tvs_module.TvsClient.ask

    def fail_open(self: tvs_module.TvsClient, *args: object, **kwargs: object) -> object:
        outcome = real(self, *args, **kwargs)  # type: ignore[arg-type]
        if outcome.rule == "item 24":
            return tvs_module.TvsOutcome(False, frozenset(), None, None, "ignored", "item 20")
        return outcome

    monkeypatch.setattr(tvs_module.TvsClient, "ask", fail_open)


def _break_item20_capf(monkeypatch: pytest.MonkeyPatch) -> None:
    # Item 20 for CAPF: the phone trusts whatever certificate the CAPF server presents instead
    # of finding it in its CTL/ITL (or asking TVS). The enrollment still works against the
    # lab's honest CAPF; what the scenario catches is that nothing vouched for the server.
    def trusting(self: CapfServerTrust, certificate: x509.Certificate) -> str | None:
        self.certificate = certificate
        self.how = "the CAPF certificate was not checked"
        return None

    monkeypatch.setattr(CapfServerTrust, "__call__", trusting)


def _break_item14_encrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Section 8 / item 14: the phone unwraps the config key with RSA-OAEP instead of PKCS#1
    # v1.5, so no encrypted config can be read any more, LSC or not.
    def oaep(signed: SignedFile, private_key: rsa.RSAPrivateKey) -> bytes:
        info = signed.header.encryption
        assert info is not None
        oaep_padding = padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
        )
        try:
            private_key.decrypt(info.encrypted_key, oaep_padding)
        except ValueError:
            raise DecryptionError("the config key does not unwrap (RSA-OAEP)") from None
        return real_decrypt(signed, private_key)  # not reached: the lab wraps with PKCS#1 v1.5

    monkeypatch.setattr(config_module, "decrypt", oaep)


@pytest.mark.parametrize(
    ("scenario", "breaker", "failing_check"),
    [
        ("migration-rollback", _break_item16, "last_itl = accepted by item 16"),
        ("regenerate-callmanager-and-tvs-8x", _break_item21, "last_itl = rejected"),
        ("firmware-key-rollover", _break_item38, "last_image = rejected by item 38"),
        ("migration-bulk-old-tvs-down", _break_item24, "last_itl = rejected by item 24"),
        (
            "encrypted-config-lsc",
            _break_item20_capf,
            "trace_contains = is the CAPF record of the installed CTL",
        ),
        ("encrypted-config-lsc", _break_item14_encrypted, "last_config = accepted by item 14"),
    ],
)
def test_breaking_a_rule_fails_its_scenario(
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    breaker: Callable[[pytest.MonkeyPatch], None],
    failing_check: str,
) -> None:
    assert run(scenario).ok  # as shipped
    breaker(monkeypatch)
    report = run(scenario)
    assert not report.ok
    assert any(failing_check in e.expect for e in report.failed), [e.expect for e in report.failed]
    # The report explains the failure with example phones.
    assert all(e.examples for e in report.failed if e.matched is not None)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_library_index_lists_every_scenario() -> None:
    index = (DOCS / "scenarios" / "README.md").read_text()
    for scenario in library_scenarios():
        assert f"| `{scenario.name}` | {scenario.title} |" in index

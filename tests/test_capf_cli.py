"""``vphone lab capf`` and the CAPF outcome in ``vphone boot``, ``vphone lab show`` and
``vphone phone show``: the issue-8 scenario as a person runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from keypool import pooled_keys

import phone.cli.device as device_cli
import phone.device.phone as phone_module
from phone.cli import lab_edge, main
from phone.pki import KeySource

MAC = "001122334455"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=30)
        return self.now


@pytest.fixture(autouse=True)
def fast_edges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("VPHONE_HOME", str(tmp_path / "home"))
    clock = Clock()
    keys: KeySource = pooled_keys()
    monkeypatch.setattr(lab_edge, "now", clock)
    monkeypatch.setattr(lab_edge, "key_source", lambda: keys)
    monkeypatch.setattr(device_cli, "now", clock)
    # The phone's own CAPF key generation: pooled too (the CLI default is fresh keys).
    monkeypatch.setattr(phone_module, "FreshKeys", lambda: keys)
    yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, (argv, out, err)
    return out


def boot(capsys: pytest.CaptureFixture[str], lab: Path, flash: Path, *extra: str) -> dict[str, Any]:
    _, out, _ = run(capsys, "boot", "--lab", str(lab), "--flash", str(flash), "--json", *extra)
    document: dict[str, Any] = json.loads(out)
    return document


def device_row(capsys: pytest.CaptureFixture[str], lab: Path) -> dict[str, Any]:
    report = json.loads(ok(capsys, "lab", "show", str(lab), "--json"))
    (row,) = [d for d in report["clusters"][0]["devices"] if d["name"] == f"SEP{MAC}"]
    assert isinstance(row, dict)
    return row


def test_lsc_install_by_string_through_the_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "phone"
    ok(capsys, "lab", "init", str(lab), "--mixed-mode")
    ok(
        capsys,
        "lab",
        "add-device",
        str(lab),
        MAC,
        "--security-mode",
        "encrypted",
        "--encrypt-config",
    )
    first = boot(capsys, lab, flash)
    assert first["state"] == "no-config"
    assert any("cannot read its configuration" in t["reason"] for t in first["trace"])

    out = ok(
        capsys,
        "lab",
        "capf",
        str(lab),
        "--mac",
        MAC,
        "--operation",
        "install",
        "--auth",
        "string:2468",
    )
    assert "install (string, rsa-2048) pending" in out and "2468" not in out
    assert device_row(capsys, lab)["capf_pending"] == "install (string, rsa-2048)"
    text = ok(capsys, "lab", "show", str(lab))
    assert "CAPF pending: install (string, rsa-2048)" in text and "2468" not in text

    second = boot(capsys, lab, flash, "--capf-string", "2468")
    assert second["state"] == "registered", [t["reason"] for t in second["trace"]]
    capf_steps = [t for t in second["trace"] if t["step"] == "capf"]
    assert capf_steps and capf_steps[-1]["decision"] == "accepted"
    row = device_row(capsys, lab)
    assert row["capf_pending"] is None and "install succeeded" in row["capf_last"]
    assert row["certificate"] is not None
    assert "CAPF last: install succeeded" in ok(capsys, "lab", "show", str(lab))

    shown = json.loads(ok(capsys, "phone", "show", "--flash", str(flash), "--json"))
    for kind in ("mic", "lsc"):
        assert set(shown[kind]) >= {"subject", "issuer", "serial", "not_after"}
    assert shown["lsc"]["serial"] == row["certificate"]
    assert (
        shown["lsc"]["subject"] == f"CN=SEP{MAC};OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"
    )  # CUCM form


def test_wrong_string_in_the_boot_trace_and_in_lab_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "phone"
    ok(capsys, "lab", "init", str(lab))
    ok(capsys, "lab", "add-device", str(lab), MAC)
    ok(
        capsys,
        "lab",
        "capf",
        str(lab),
        "--mac",
        MAC,
        "--operation",
        "install",
        "--auth",
        "string:2468",
    )
    code, out, _ = run(
        capsys, "boot", "--lab", str(lab), "--flash", str(flash), "--capf-string", "1111"
    )
    assert code == 0  # a plain config: the phone registers, without an LSC
    assert "[capf    ] rejected" in out and "CAPF refused the session (reason 7)" in out
    row = device_row(capsys, lab)
    assert row["capf_pending"] == "install (string, rsa-2048)"
    assert (
        "install FAILED" in row["capf_last"] and "wrong authentication string" in row["capf_last"]
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--operation", "install", "--auth", "string:12"), "4 to 10 digits"),
        (("--operation", "install", "--auth", "token"), "unknown CAPF authentication"),
        (("--operation", "install"), "give the authentication mode"),
        (("--operation", "install", "--auth", "null", "--mac", "AABBCCDDEEFF"), "has no device"),
    ],
)
def test_lab_capf_refuses_bad_settings_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    lab = tmp_path / "lab"
    ok(capsys, "lab", "init", str(lab))
    ok(capsys, "lab", "add-device", str(lab), MAC)
    mac = () if "--mac" in argv else ("--mac", MAC)
    code, _, err = run(capsys, "lab", "capf", str(lab), *mac, *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_lab_capf_none_cancels(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    ok(capsys, "lab", "init", str(lab))
    ok(capsys, "lab", "add-device", str(lab), MAC)
    ok(capsys, "lab", "capf", str(lab), "--mac", MAC, "--operation", "delete", "--auth", "mic")
    assert device_row(capsys, lab)["capf_pending"] == "delete (mic)"
    assert "cancelled" in ok(capsys, "lab", "capf", str(lab), "--mac", MAC, "--operation", "none")
    assert device_row(capsys, lab)["capf_pending"] is None

"""The issue-4 stories again, through the CLI with a lab folder and a flash folder.

Each test runs ``vphone`` commands exactly as a person would (``phone.cli.main``), with the
clock and the key source replaced so the run is fast and repeatable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from keypool import pooled_keys

import phone.cli.device as device_cli
from phone.cli import lab_edge, main
from phone.pki import KeySource


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=30)  # every command happens a little later
        return self.now


@pytest.fixture(autouse=True)
def fast_edges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("VPHONE_HOME", str(tmp_path / "home"))  # never the user's real lab
    clock = Clock()
    keys: KeySource = pooled_keys()
    monkeypatch.setattr(lab_edge, "now", clock)
    monkeypatch.setattr(lab_edge, "key_source", lambda: keys)
    monkeypatch.setattr(device_cli, "now", clock)
    yield


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def boot(capsys: pytest.CaptureFixture[str], lab: Path, flash: Path, *extra: str) -> dict[str, Any]:
    code, out = run(capsys, "boot", "--lab", str(lab), "--flash", str(flash), "--json", *extra)
    document: dict[str, Any] = json.loads(out)
    assert code == (0 if document["state"] == "registered" else 1)
    return document


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The last decision about a file in step ``name``."""
    entries: list[dict[str, Any]] = [
        t for t in document["trace"] if t["step"] == name and t["file"]
    ]
    return entries[-1]


def test_first_boot_then_reboot_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    assert run(capsys, "lab", "init", str(lab))[0] == 0
    first = boot(capsys, lab, flash)
    assert first["state"] == "registered"
    assert "ITL installed" in first["status"]
    assert step(first, "itl")["rule"] == "item 9"
    second = boot(capsys, lab, flash)
    assert step(second, "itl")["decision"] == "unchanged"
    assert second["itl_hash"] == first["itl_hash"]
    code, out = run(capsys, "phone", "show", "--flash", str(flash), "--json")
    view = json.loads(out)
    assert code == 0
    assert view["ctl"] is None
    assert view["itl"]["sha1"] == first["itl_hash"]
    assert {r["role"] for r in view["itl"]["records"]} >= {"SAST", "TFTP", "TVS", "CAPF"}
    assert view["itl"]["signer"]["serial"]
    # The registration reached the lab's ITL File Status (item 30, 14.x).
    code, out = run(capsys, "lab", "itl-status", str(lab), "--json")
    assert code == 0


def test_callmanager_regenerated_8x(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    run(capsys, "lab", "init", str(lab), "--version", "8.x-11.5")
    boot(capsys, lab, flash)
    assert run(capsys, "lab", "regenerate", str(lab), "callmanager", "--yes")[0] == 0
    after = boot(capsys, lab, flash)
    assert after["state"] == "registered"
    assert step(after, "itl")["rule"] == "items 12, 20"
    assert "Trust List updated" in after["status"]


def test_callmanager_and_tvs_regenerated_8x_then_erase(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    run(capsys, "lab", "init", str(lab), "--version", "8.x-11.5")
    first = boot(capsys, lab, flash)
    run(capsys, "lab", "regenerate", str(lab), "callmanager", "--yes")
    run(capsys, "lab", "regenerate", str(lab), "tvs", "--yes")
    stuck = boot(capsys, lab, flash)
    assert step(stuck, "itl")["decision"] == "rejected"
    assert "not a TVS record of the installed ITL" in step(stuck, "itl")["reason"]
    assert stuck["itl_hash"] == first["itl_hash"]
    assert "Trust List update failed" in stuck["status"]
    # Item 46 [S13]: the 78xx/88xx "Reset security settings" shows this text, literally.
    assert run(capsys, "phone", "erase-trust", "--flash", str(flash)) == (
        0,
        "Erasing CTL and ITL files\n",
    )
    recovered = boot(capsys, lab, flash)
    assert step(recovered, "itl")["rule"] == "item 9"
    assert recovered["state"] == "registered"


def test_regeneration_on_12x_survives(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    run(capsys, "lab", "init", str(lab), "--version", "12.x")
    boot(capsys, lab, flash)
    run(capsys, "lab", "regenerate", str(lab), "callmanager", "--yes")
    run(capsys, "lab", "regenerate", str(lab), "tvs", "--yes")
    after = boot(capsys, lab, flash)
    assert after["state"] == "registered"
    assert step(after, "itl")["rule"] == "item 12"


def two_cluster_lab(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[Path, Path]:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    run(capsys, "lab", "init", str(lab), "--cluster", "old")
    run(capsys, "lab", "init", str(lab), "--cluster", "new")
    assert boot(capsys, lab, flash, "--tftp", "old")["state"] == "registered"
    return lab, flash


def test_moved_without_preparation_ignores_new_config_registers_to_tftp(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = two_cluster_lab(capsys, tmp_path)
    moved = boot(capsys, lab, flash, "--tftp", "new")
    assert step(moved, "itl")["decision"] == "rejected"
    assert step(moved, "config")["decision"] == "rejected"
    # C2 (community doc 3108501): it "registers to configured TFTP server by default".
    assert moved["registered_with"] == "cucm1.new.lab"


def test_moved_with_rollback_parameter(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab, flash = two_cluster_lab(capsys, tmp_path)
    args = ("lab", "set", str(lab), "prepare-cluster-for-rollback", "true", "--cluster", "old")
    assert run(capsys, *args)[0] == 0
    boot(capsys, lab, flash, "--tftp", "old")  # the empty ITL
    moved = boot(capsys, lab, flash, "--tftp", "new")
    assert step(moved, "itl")["rule"] == "item 16"
    assert moved["registered_with"] == "cucm1.new.lab"


def test_moved_with_bulk_certificates(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab, flash = two_cluster_lab(capsys, tmp_path)
    share = tmp_path / "sftp"
    for cluster in ("old", "new"):
        assert (
            run(
                capsys,
                "lab",
                "export-certs",
                str(lab),
                "--cluster",
                cluster,
                "--to",
                str(share),
                "--password",
                "pw",
            )[0]
            == 0
        )
    for cluster in ("old", "new"):
        assert (
            run(
                capsys,
                "lab",
                "import-certs",
                str(lab),
                "--cluster",
                cluster,
                "--from",
                str(share),
                "--password",
                "pw",
            )[0]
            == 0
        )
    moved = boot(capsys, lab, flash, "--tftp", "new")
    assert step(moved, "itl")["rule"] == "items 12, 20"
    assert moved["registered_with"] == "cucm1.new.lab"


def test_tampered_config_rejected_last_good_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lab, flash = tmp_path / "lab", tmp_path / "flash"
    run(capsys, "lab", "init", str(lab))
    run(capsys, "lab", "add-device", str(lab), "001122334455")
    boot(capsys, lab, flash)
    config_before = (flash / "config.xml").read_bytes()
    tampered = boot(capsys, lab, flash, "--fault", "tamper:SEP*.cnf.xml.sgn")
    assert step(tampered, "config")["decision"] == "rejected"
    assert "File auth error SEP001122334455.cnf.xml.sgn" in tampered["status"]
    assert tampered["state"] == "registered"
    assert (flash / "config.xml").read_bytes() == config_before


def test_boot_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = run(capsys, "boot", "--lab", str(tmp_path / "nothing"))
    assert code == 2 and "is not a vphone lab folder" in out
    run(capsys, "lab", "init", str(tmp_path / "lab"))
    code, out = run(capsys, "boot", "--lab", str(tmp_path / "lab"), "--mac", "xyz")
    assert code == 2 and "bad MAC address" in out
    with pytest.raises(SystemExit) as exc:
        main(["boot", "--model", "9999"])
    assert exc.value.code == 2
    code, out = run(capsys, "boot", "--fault", "explode:x")
    assert code == 2 and "unknown fault kind" in out

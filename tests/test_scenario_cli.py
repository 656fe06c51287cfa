"""``vphone scenario run|check|list|show``: exit codes, outputs and the quick start's path."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import phone.cli.scenario as scenario_cli
from phone.cli import main
from phone.scenario import library_names, library_text

pytestmark = pytest.mark.usefixtures("pooled_cli_keys")


def test_run_a_library_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "migration-rollback", "--count", "3", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "PASS: 3 of 3 expectations hold"
    assert "desk: 3 acted -> 3 registered" in out
    assert err == ""


def test_run_json_and_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "out.xml"
    code = main(["scenario", "run", "first-boot", "--count", "2", "--json", "--junit", str(junit)])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True and document["phones"] == 4
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "first-boot"
    assert suite.get("failures") == "0"


def _own_scenario(tmp_path: Path) -> Path:
    # The quick start: copy a library scenario, change it, run it.
    path = tmp_path / "mine.toml"
    path.write_text(library_text("migration-rollback").replace("count = 20", "count = 2"))
    return path


def test_run_own_file_and_a_failing_expectation_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _own_scenario(tmp_path)
    assert main(["scenario", "run", str(path)]) == 0
    capsys.readouterr()
    text = path.read_text()
    # Remove the rollback step: the migration is now unprepared and the expectations fail.
    start = text.index('[[step]]\ndo = "set-param"')
    end = text.index("[[step]]", start + 1)
    end = text.index("[[step]]", end + 1)  # the reset and its expectation go too
    path.write_text(text[:start] + text[end:])
    assert main(["scenario", "run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL line" in out
    assert out.splitlines()[-1].startswith("FAIL: ")
    assert "SEP020000000000: " in out  # an example phone with its reason


def test_malformed_file_exits_2_naming_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _own_scenario(tmp_path)
    text = path.read_text().replace('do = "move"', 'do = "mvoe"')
    path.write_text(text)
    line = text[: text.index('do = "mvoe"')].count("\n") + 1
    assert main(["scenario", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vphone: {path}:{line}: key 'do': unknown action 'mvoe'")
    assert "did you mean 'move'" in err
    assert "Traceback" not in err
    assert main(["scenario", "check", str(path)]) == 2


def test_check_list_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "check", "tampered-config"]) == 0
    assert "scenario tampered-config is valid" in capsys.readouterr().out
    assert main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    for name in library_names():
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert main(["scenario", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in listing} == set(library_names())
    assert all(s["sources"] for s in listing)
    assert main(["scenario", "show", "first-boot"]) == 0
    assert capsys.readouterr().out == library_text("first-boot")
    assert main(["scenario", "show", "nope"]) == 2
    assert "no library scenario called 'nope'" in capsys.readouterr().err


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "no/such/file.toml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_workers_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "first-boot", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_progress_bar() -> None:
    assert scenario_cli.render_bar(15, 60, 1.25, "demo") == (
        "demo [########......................]  25%  15/60 phone operations  1.2 s"
    )
    assert scenario_cli.render_bar(60, 60, 2, "").count("#") == 30
    stream = io.StringIO()
    bar = scenario_cli.ProgressBar(stream, "x")
    bar(0, 10)
    bar(5, 10)  # within the redraw interval: skipped
    bar(10, 10)  # the end is always drawn
    bar(10, 10)  # once
    bar.close()
    drawn = stream.getvalue()
    assert drawn.count("\r") == 2
    assert "100%  10/10 phone operations  " in drawn and drawn.endswith(" s\n")


def test_forced_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "first-boot", "--count", "1", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "phone operations" in err and "phone operations" not in out


QUICKSTART = Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def test_the_quickstart_scenario_passes_and_its_variant_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/quickstart.md sections 3 and 4, as a new user would type them."""
    text = QUICKSTART.read_text()
    start = text.index("```toml\n") + len("```toml\n")
    source = text[start : text.index("```", start)]
    path = tmp_path / "my-regeneration.toml"
    path.write_text(source)
    assert main(["scenario", "run", str(path), "--count", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "PASS: 1 of 1 expectations hold"
    # Section 4: "delete the first reset step and the wait step".
    same_day = source.replace(
        '[[step]]\ndo = "reset"\n\n[[step]]\ndo = "wait"\ndays = 7\n\n', "", 1
    )
    assert same_day != source
    path.write_text(same_day)
    assert main(["scenario", "run", str(path), "--count", "5"]) == 1
    out = capsys.readouterr().out
    assert "itl rejected by item 24" in out

"""Issue 18 item 4 (friction 4): every "item N" that output names is explained.

``vphone explain item N`` prints the entry of the behaviour table (what a real phone does, the
Cisco sources, where vphone implements and tests it); docs/behaviours.md is the same table, and
nothing a user reads sends them to ``shared/spec/phone-behaviour.md``, which they do not have.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from phone.catalog.behaviours import behaviour, behaviours, sources
from phone.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gen_behaviours  # noqa: E402


def test_explain_item_24_prints_the_phone_rule_its_sources_code_and_tests(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["explain", "item", "24"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("item 24: TVS fails closed\n  section C. Trust Verification Service")
    assert 'answers "invalid", the phone refuses the' in out
    assert "[S2] Cisco Community, Migrating IP Phones Between Clusters with CUCM 8 and ITL" in out
    assert (
        "https://www.cisco.com/c/en/us/td/docs/voice_ip_comm/cucm/security/12_5_1SU6/"
        "cucm_b_security-guide-1251su6/cucm_m_default-security-setup_su2_reorg.html"
    ) in out
    assert "code (under phone/): trust/tvs.py" in out
    assert "test_item24_*, test_bulk_migration_fails_closed_* (pytest -k item24)" in out
    assert "migration-bulk-old-tvs-down" in out


def test_explain_item_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "item", "item24", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["item"] == 24
    assert document["title"] == "TVS fails closed"
    assert [s["key"] for s in document["sources"]] == ["S2", "S3"]
    assert document["code"] == "trust/tvs.py"
    assert document["implemented"] is True


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("49", "there is no item 49: the items are 1 to 48"),
        ("0", "there is no item 0"),
        ("twelve", "'twelve' is not an item number"),
    ],
)
def test_explain_unknown_item_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argument: str, message: str
) -> None:
    assert main(["explain", "item", argument]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_explain_items_lists_all_48(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "items"]) == 0
    out = capsys.readouterr().out
    assert re.findall(r"^ +(\d+)  ", out, re.MULTILINE) == [str(n) for n in range(1, 49)]
    assert "  45  CUBE trusted list (contrast)  (not emulated)" in out


def test_the_table_has_every_item_with_sources_code_and_tests() -> None:
    assert [b.number for b in behaviours()] == list(range(1, 49))
    for item in behaviours():
        assert item.title and item.phone and item.sources, item.number
        assert item.code and item.tests, item.number
        assert all(s.title for s in item.sources), item.number
    cisco = [s for s in sources().values() if "cisco.com" in s.url]
    assert len(cisco) >= 15
    assert behaviour(16).sources[0].key == "S3"


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        names.update(re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    return names


def test_every_test_pointer_names_a_test_that_exists() -> None:
    """The "tests" column is only useful if it leads somewhere."""
    names = _test_names()
    files = {p.name for p in (ROOT / "tests").glob("test_*.py")}
    for item in behaviours():
        if not item.implemented:
            continue
        for pointer in re.findall(r"`([^`]+)`", item.tests):
            file, _, function = pointer.rpartition("::")
            pattern = function.split(" ")[0]
            if pattern.endswith(".py"):
                assert pattern in files, (item.number, pointer)
                continue
            if file:
                assert file in files, (item.number, pointer)
            regex = re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$")
            assert any(regex.match(name) for name in names), (item.number, pointer)


def test_docs_behaviours_md_is_generated_from_the_table() -> None:
    assert gen_behaviours.main(["--check"]) == 0


def test_no_doc_sends_a_user_to_the_spec_they_do_not_have() -> None:
    """Friction 4: docs cited shared/spec/phone-behaviour.md, which ships with nothing."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    offenders = [
        str(p.relative_to(ROOT))
        for p in pages
        if "spec/phone-behaviour.md" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
    assert "vphone explain item" in (ROOT / "README.md").read_text(encoding="utf-8")

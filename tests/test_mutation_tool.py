"""tools/mutation.py, the mutation check CI runs (issue 16, docs/mutation.md): what it counts,
which tests it runs for a module, and when it fails. No mutmut run here (minutes): the rules
of the verdict on results as mutmut records them."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "tools" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _result(tool: ModuleType, module: str, survivors: list[str], **counts: int) -> Any:
    result = tool.ModuleResult(module)
    result.counts.update(Counter({k.replace("_", " "): v for k, v in counts.items()}))
    result.survivors.extend(survivors)
    return result


def test_the_score_leaves_out_mutants_mypy_rejects(tool: ModuleType) -> None:
    # (killed + timed out) / (mutants - type errors): 8 + 1 of 20 - 10 valid = 90%.
    r = _result(tool, "phone/x.py", [], killed=8, timeout=1, survived=1, type_error=10)
    assert r.total == 20
    assert r.valid == 10
    assert r.score == 90.0


def test_a_mutant_no_test_reaches_counts_as_alive(tool: ModuleType) -> None:
    r = _result(tool, "phone/x.py", [], killed=9, no_tests=1)
    assert r.score == 90.0


def test_mutmut_exit_codes_are_read_as_documented(tool: ModuleType) -> None:
    # mutmut 3.8.1's codes: 1/3 a test failed, 0 all passed, 33/5 no test, 37 caught by the
    # type checker, 36/-24/24/152/255 a time limit.
    status = tool._STATUS
    assert [status[c] for c in (1, 3, 0, 33, 5, 37)] == [
        "killed",
        "killed",
        "survived",
        "no tests",
        "no tests",
        "type error",
    ]
    assert {status[c] for c in (36, -24, 24, 152, 255)} == {"timeout"}


def test_check_fails_on_an_unlisted_survivor_of_a_gated_module(tool: ModuleType) -> None:
    gated = {"phone/trust/lists.py"}
    r = _result(tool, "phone/trust/lists.py", ["phone.trust.lists.x_f__mutmut_3"], survived=1)
    ok, lines = tool.check([r], gated, set())
    assert not ok
    assert lines[-1] == "mutation check FAILED: 1 surviving mutants not in mutation.md"
    assert "- phone.trust.lists.x_f__mutmut_3" in lines


def test_check_passes_when_every_survivor_is_listed(tool: ModuleType) -> None:
    name = "phone.trust.lists.x_f__mutmut_3"
    r = _result(tool, "phone/trust/lists.py", [name], survived=1, killed=40)
    ok, lines = tool.check([r], {"phone/trust/lists.py"}, {name})
    assert ok
    assert lines == ["mutation check passed: every survivor of a gated module is listed"]


def test_check_fails_on_a_gated_run_that_did_not_complete(tool: ModuleType) -> None:
    r = _result(tool, "phone/trust/lists.py", [], killed=40, not_run=1)
    ok, lines = tool.check([r], {"phone/trust/lists.py"}, set())
    assert not ok
    assert lines[-1] == "mutation check FAILED: the run did not complete"


def test_check_names_but_does_not_judge_a_module_not_gated_yet(tool: ModuleType) -> None:
    r = _result(tool, "phone/cluster/files.py", ["phone.cluster.files.x_g__mutmut_1"], survived=1)
    ok, lines = tool.check([r], {"phone/trust/lists.py"}, set())
    assert ok
    assert lines[0] == (
        "mutation: not yet gated (measured, not accounted for): phone/cluster/files.py"
    )


def test_the_record_gates_the_trust_core_and_lists_its_equivalents(tool: ModuleType) -> None:
    # docs/mutation.md is the record CI reads: the ten modules measured whole, and the names
    # written in backticks there.
    gated = tool.gated_modules()
    assert {"phone/trust/config.py", "phone/formats/header.py", "phone/formats/tlv.py"} <= gated
    assert all(m in tool.configured_modules() for m in gated)
    assert "phone.formats.tlv.x_cstring__mutmut_4" in tool.listed_equivalents()


def test_every_configured_module_is_gated(tool: ModuleType) -> None:
    # Issue 16: every module where a wrong rule means a wrong decision is measured whole and
    # gated, so a new survivor anywhere in them fails CI unless docs/mutation.md explains it.
    assert set(tool.configured_modules()) == tool.gated_modules()
    assert len(tool.configured_modules()) == 36  # with phone/formats/frozen.py (issue 17)


def test_a_module_meets_its_own_suites_besides_the_base(tool: ModuleType) -> None:
    base = tool.suite_for([])
    assert "tests/test_trust_lists.py" in base
    sip = tool.suite_for(["phone/wire/sip/digest.py"])
    assert sip[: len(base)] == base
    assert "tests/test_wire_sip.py" in sip and "tests/test_wire_sip.py" not in base
    assert "tests/test_capf_stories.py" in tool.suite_for(["phone/device/step_capf.py"])
    assert all((ROOT / t).is_file() for t in tool.suite_for(tool.configured_modules()))

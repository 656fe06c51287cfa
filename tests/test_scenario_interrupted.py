"""Ctrl-C during a scenario run (issue 18 item 2): the report of the steps every phone
finished, marked interrupted, in every output format, and never a pass."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from interrupts import interrupt_runs_after, interrupted_shard
from keypool import pooled_keys

from phone.scenario import load_scenario
from phone.scenario.fleet import FleetInterrupted, run_scenario
from phone.scenario.report import Report, junit_xml, merge, render_text
from phone.scenario.report_html import render_html
from phone.scenario.runner import ScenarioRunner, ShardResult

# migration-rollback's steps (library/migration-rollback.toml): 1 set-param, 2 reset, 3 set
# option 150, 4 reset; its setup powers on the desk group.
PHONES = 6


def _partial(shard: int, shards: int, operations: int) -> ShardResult:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    return interrupted_shard(scenario, shard, shards, operations)


def test_an_interrupted_runner_returns_the_steps_it_finished() -> None:
    # 6 phones: the setup powers on 6, step 2 resets 6; interrupting after 8 operations lands
    # inside step 2, so the setup and step 1 are whole.
    partial = _partial(0, 1, 8)
    assert isinstance(partial, ShardResult)
    assert [s.action for s in partial.steps] == ["setup", "set-param"]
    assert partial.final is None and partial.reasons == {}
    assert partial.phone_operations == 9


def test_interrupted_during_the_setup_reports_no_step() -> None:
    partial = _partial(0, 1, 2)
    assert partial.steps == ()
    report = merge(load_scenario("migration-rollback").with_count(PHONES), [partial])
    assert report.interrupted == "during the setup"
    assert report.steps == () and not report.ok


@pytest.fixture(scope="module")
def report() -> Report:
    # Two shards cut at different places: the merged report keeps what both finished.
    # Shard 0 (3 phones) is cut after 4 operations, inside step 2: its setup and step 1 are
    # whole. Shard 1 had finished (a worker that was done when Ctrl-C came sends it all).
    first = _partial(0, 2, 4)
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    second = ScenarioRunner(scenario, keys=pooled_keys(), shard=(1, 2)).run()
    assert len(first.steps) == 2 and second.final is not None
    return merge(load_scenario("migration-rollback").with_count(PHONES), [first, second])


def test_the_merged_report_holds_the_steps_every_shard_finished(report: Report) -> None:
    assert [s.action for s in report.steps] == ["setup", "set-param"]
    assert report.interrupted == "after step 1 of 4"
    assert report.summary == ()
    assert not report.ok  # an interrupted run never passes, even with no failed expectation
    assert report.failed == ()


def test_the_text_report_ends_with_what_was_not_checked(report: Report) -> None:
    text = render_text(report)
    assert text.endswith(
        "INTERRUPTED after step 1 of 4: the final expectations were not checked; "
        "no expectation was checked before it\n"
    )
    assert "final states by cause" not in text and "PASS" not in text


def test_the_json_report_says_interrupted_and_not_ok(report: Report) -> None:
    document = json.loads(report.to_json())
    assert document["ok"] is False
    assert document["interrupted"] == "after step 1 of 4"
    assert [s["action"] for s in document["steps"]] == ["setup", "set-param"]


def test_a_whole_report_has_no_interrupted_field() -> None:
    # Reports of finished runs stay byte for byte what they were (tests/test_golden.py).
    scenario = load_scenario("migration-rollback").with_count(2)
    whole = run_scenario(scenario, keys=pooled_keys())
    assert "interrupted" not in whole.as_dict() and whole.interrupted == ""


def test_junit_counts_the_interruption_as_an_error(report: Report) -> None:
    root = ET.fromstring(junit_xml([report]))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    error = suite.find("testcase[@name='run']/error")
    assert error is not None and error.get("type") == "interrupted"
    assert error.get("message") == (
        "interrupted after step 1 of 4: the final expectations were not checked; "
        "no expectation was checked before it"
    )


def test_html_verdict_is_interrupted(report: Report) -> None:
    page = render_html(report)
    assert '<span id="verdict" class="verdict fail">INTERRUPTED</span> after step 1 of 4:' in page
    assert ">PASS<" not in page


def test_run_scenario_in_process_raises_fleet_interrupted_with_the_partial_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    interrupt_runs_after(monkeypatch, 8)
    with pytest.raises(FleetInterrupted) as cut:
        run_scenario(scenario, keys=pooled_keys())
    assert cut.value.report is not None
    assert cut.value.report.interrupted == "after step 1 of 4"
    # 18 operations planned: 6 phones powered on, then reset twice (steps 2 and 4).
    assert cut.value.summary() == (
        "interrupted after 8 of 18 phone operations (44%); the report shows what every phone "
        "finished: after step 1 of 4"
    )


def test_html_chart_draws_the_steps_that_finished(report: Report) -> None:
    # One bar per finished step (the setup and step 1), every phone registered after each:
    # the chart of an interrupted run is drawn from what ran, not left empty.
    page = render_html(report)
    bars = re.findall(r'<rect class="segment" data-state="([^"]+)" data-phones="(\d+)"', page)
    assert bars == [("registered", str(PHONES))] * 2

"""A fleet cut into more shards than workers (issue 17 item 3: memory per worker bounded).

A worker keeps every phone of the shard it runs until the shard's last step, so
``run_scenario(shard_phones=K)`` cuts the fleet into shards of at most K phones and each worker
runs its shards one after the other. What these tests pin: the report does not depend on the
shard size, in this process or on workers; the shard count is what the docstring says; and an
interrupted run names the phones of shards no worker had started, instead of counting them.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
from pathlib import Path

import pytest
from interrupts import interrupt_runs_after, interrupted_shard
from keypool import pooled_keys

from phone.cli import main
from phone.cluster.store import save_lab
from phone.errors import UsageError
from phone.scenario import load_scenario, run_scenario
from phone.scenario.fleet import (
    SHARD_PHONES,
    FleetInterrupted,
    _jobs,
    _run_shard,
    not_started,
    shard_count,
    shard_phone_count,
)
from phone.scenario.library import library_names
from phone.scenario.report import merge
from phone.scenario.runner import ScenarioRunner, build_lab

PHONES = 11


@pytest.fixture(scope="module")
def whole() -> str:
    """The report of one shard in this process: what every other cut must give."""
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    return run_scenario(scenario, keys=pooled_keys(), workers=1).to_json()


@pytest.mark.parametrize("shard_phones", [1, 3, 5, 10])
def test_the_report_does_not_depend_on_the_shard_size_in_process(
    whole: str, shard_phones: int
) -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    report = run_scenario(scenario, keys=pooled_keys(), workers=1, shard_phones=shard_phones)
    assert report.to_json() == whole


def test_the_report_does_not_depend_on_the_shard_size_on_workers(whole: str) -> None:
    # 11 phones in shards of at most 3: 4 shards on 2 workers, 2 each, run one after the other.
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    report = run_scenario(scenario, keys=pooled_keys(), workers=2, shard_phones=3)
    assert report.to_json() == whole
    assert not multiprocessing.active_children()


def test_shard_count() -> None:
    scenario = load_scenario("migration-rollback")
    assert SHARD_PHONES == 5_000  # docs/performance.md sizes a worker by it
    assert shard_count(scenario.with_count(10_000), 2) == 2
    # No shard over 5,000 phones, and as many shards for every worker: 10,001 phones need 3
    # shards, and 2 workers run 4 (2,501 phones at most each), not 3 (one worker running two).
    assert shard_count(scenario.with_count(10_001), 2) == 4
    assert shard_count(scenario.with_count(12_000), 2) == 4
    assert shard_count(scenario.with_count(40_000), 2) == 8
    assert shard_count(scenario.with_count(15_000), 4) == 4
    assert shard_count(scenario.with_count(25_000), 3) == 6
    assert shard_count(scenario.with_count(3), 2) == 2  # one per worker at least
    assert shard_count(scenario.with_count(11), 1, 3) == 4
    assert shard_count(scenario.with_count(11), 2, 3) == 4
    with pytest.raises(UsageError, match="at least one phone, not 0"):
        shard_count(scenario, 1, 0)


@pytest.mark.parametrize(
    ("phones", "workers"), [(10_001, 2), (12_000, 2), (40_000, 2), (25_000, 3), (7, 4), (99, 8)]
)
def test_workers_get_the_same_number_of_phones_give_or_take_their_shards(
    phones: int, workers: int
) -> None:
    # A worker runs shards w, w + N, w + 2N... (module docstring): the run lasts as long as its
    # busiest worker, so no worker may hold more than one phone a shard over any other.
    scenario = load_scenario("migration-rollback").with_count(phones)
    shards = shard_count(scenario, workers)
    assert shards % workers == 0
    per_worker = [
        sum(shard_phone_count(scenario, s, shards) for s in range(w, shards, workers))
        for w in range(workers)
    ]
    assert sum(per_worker) == phones
    assert max(per_worker) - min(per_worker) <= shards // workers
    assert max(shard_phone_count(scenario, s, shards) for s in range(shards)) <= SHARD_PHONES


def test_shard_phone_count_is_every_kth_phone() -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    # Phones 0, 4, 8 / 1, 5, 9 / 2, 6, 10 / 3, 7.
    assert [shard_phone_count(scenario, s, 4) for s in range(4)] == [3, 3, 3, 2]


def test_without_a_finished_shard_the_report_is_what_every_started_phone_finished() -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    # Shards 0 and 1 of 4 (3 phones each) cut in step 2 (after their 3 power-ons and 1 or 2
    # resets), shards 2 and 3 never started.
    parts = [interrupted_shard(scenario, 0, 4, 4), interrupted_shard(scenario, 1, 4, 5)]
    report = merge(scenario, [*parts, not_started(scenario, 2, 4), not_started(scenario, 3, 4)])
    assert report.interrupted == "after step 1 of 4 (5 phones had not started)"
    # The setup's counts are those of the 6 phones that ran (shards 0 and 1), not of 11.
    assert report.steps[0].groups["desk"].states == {"registered": 6}


def test_finished_shards_give_every_step_and_name_the_phones_that_had_not_finished() -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    # Shard 0 ran whole; shard 1 was cut in step 2; shards 2 and 3 never started. Shard 0's
    # phones ran every step: the report shows all four for them, and names the other 8.
    done = ScenarioRunner(scenario, keys=pooled_keys(), shard=(0, 4)).run()
    parts = [done, interrupted_shard(scenario, 1, 4, 4), not_started(scenario, 2, 4)]
    report = merge(scenario, [*parts, not_started(scenario, 3, 4)])
    assert report.interrupted == "after step 4 of 4 (8 phones had not finished)"
    assert [s.index for s in report.steps] == [0, 1, 2, 3, 4]
    assert report.steps[4].groups["desk"].states == {"registered": 3}
    assert not report.ok  # the final expectations were not checked: never a pass


def test_ctrl_c_between_shards_in_process_reports_the_shards_that_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    # Shard 0 (3 phones: 9 operations) done; shard 1 powers on its 3, runs step 1 (set-param,
    # no phone operation) and is cut at its first reset.
    interrupt_runs_after(monkeypatch, 12)
    with pytest.raises(FleetInterrupted) as cut:
        run_scenario(scenario, keys=pooled_keys(), shard_phones=3)
    assert cut.value.report is not None
    # Shard 0 finished: its 3 phones' four steps, and the other 8 named.
    assert cut.value.report.interrupted == "after step 4 of 4 (8 phones had not finished)"
    assert cut.value.summary().endswith(
        "the report shows what the phones it counts finished: after step 4 of 4 "
        "(8 phones had not finished)"
    )
    assert cut.value.report.steps[0].groups["desk"].states == {"registered": 3}


@pytest.mark.usefixtures("pooled_cli_keys")
def test_the_cli_option_cuts_shards_and_the_report_stays(
    whole: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ["scenario", "run", "migration-rollback", "--count", str(PHONES), "--json"]
    assert main([*run, "--no-progress", "--shard-phones", "3"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(whole)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "argument --shard-phones: a shard holds at least 1 phone, not 0"),
        ("many", "argument --shard-phones: not a number of phones: 'many'"),
    ],
)
def test_the_cli_refuses_a_shard_of_no_phones(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["scenario", "run", "migration-rollback", "--shard-phones", value])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_shard_collects_in_batches_and_leaves_the_collector_as_it_found_it(
    tmp_path: Path,
) -> None:
    # A shard raises the collector's thresholds while it runs (batches of 10,000, not the
    # default 700: docs/performance.md), but they are the process's, and a Dask worker runs
    # other people's tasks after ours: they come back as they were, and the shard's garbage is
    # collected (a full collection) before the next shard's phones are made.
    scenario = load_scenario("migration-rollback").with_count(PHONES)
    save_lab(build_lab(scenario, pooled_keys()), tmp_path / "lab")
    job = _jobs(scenario, pooled_keys(), 2, tmp_path / "lab")[0]
    events: list[tuple[str, int]] = []

    def progress(done: int) -> None:
        events.append(("progress", gc.get_threshold()[0]))

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            events.append(("collected", info["generation"]))

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.callbacks.append(collected)
    try:
        status, _ = _run_shard(job, progress)
        after = gc.get_threshold()
    finally:
        gc.callbacks.remove(collected)
        gc.set_threshold(*saved)
    assert status == "ok"
    assert after == (700, 10, 10)
    during = [value for kind, value in events if kind == "progress"]
    assert during and all(threshold == 10_000 for threshold in during)
    last_progress = max(i for i, (kind, _) in enumerate(events) if kind == "progress")
    assert ("collected", 2) in events[last_progress:]


@pytest.mark.parametrize("name", library_names())
def test_every_library_scenario_reports_the_same_in_shards(name: str) -> None:
    # Each shard runs on the lab saved and loaded again: the loaded lab must be the same lab,
    # clusters in the same order included (three library scenarios create "old" before "new"
    # at one instant and once came back in name order: their lab-step lines swapped).
    scenario = load_scenario(name)
    whole = run_scenario(scenario, keys=pooled_keys(), workers=1)
    sharded = run_scenario(scenario, keys=pooled_keys(), workers=1, shard_phones=2)
    assert sharded.to_json() == whole.to_json()

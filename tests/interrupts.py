"""Ctrl-C in the middle of a scenario run, at a chosen phone operation (not a test module).

A runner counts every phone operation (a power-on, a reset) through its progress callback and
``ScenarioRunner._count``; raising KeyboardInterrupt there is what Ctrl-C does to the running
process.
"""

from __future__ import annotations

import pytest
from keypool import pooled_keys

from phone.scenario.model import Scenario
from phone.scenario.runner import RunInterrupted, ScenarioRunner, ShardResult


def interrupted_shard(scenario: Scenario, shard: int, shards: int, operations: int) -> ShardResult:
    """What shard ``shard`` of ``shards`` finished when Ctrl-C came after ``operations`` phone
    operations (the partial result its runner returns)."""
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if done > operations:
            raise KeyboardInterrupt

    runner = ScenarioRunner(scenario, keys=pooled_keys(), shard=(shard, shards), progress=progress)
    with pytest.raises(RunInterrupted) as cut:
        runner.run()
    return cut.value.partial


def interrupt_runs_after(monkeypatch: pytest.MonkeyPatch, operations: int) -> None:
    """Ctrl-C after ``operations`` phone operations of every runner in this process, however
    the run is cut into shards."""
    calls = 0
    original = ScenarioRunner._count

    def count(self: ScenarioRunner) -> None:
        nonlocal calls
        calls += 1
        if calls > operations:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(ScenarioRunner, "_count", count)

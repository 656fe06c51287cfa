"""What one shard of a scenario run reports: counts per step, group and expectation.

Results are counts, never phones, so that they pickle small (a fleet worker sends them back to
the parent process) and merge by addition (:func:`phone.scenario.report.merge`); the examples
they keep name a phone by its global index, so the merge can sort them. The runner
(:mod:`phone.scenario.runner`) fills them in; the report reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "EXAMPLES",
    "ClusterTally",
    "Example",
    "ExpectTally",
    "GroupTally",
    "ShardResult",
    "StepTally",
]

EXAMPLES = 3
"""How many example phones an expectation keeps, on each side (matching / not matching)."""


@dataclass(frozen=True, slots=True)
class Example:
    """A phone shown in a report: its global index, MAC and what was found."""

    index: int
    mac: str
    detail: str


@dataclass(frozen=True, slots=True)
class ExpectTally:
    """How many phones met an expectation (phone expectations) in one shard."""

    line: int
    matched: int = 0
    total: int = 0
    matching: tuple[Example, ...] = ()
    failing: tuple[Example, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterTally:
    """The value of one cluster check in one shard (a count, or 1/0 for ``log_contains``)."""

    line: int
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class GroupTally:
    """What a step did to one group: phones acted on, skipped, and the states afterwards."""

    acted: int = 0
    skipped: int = 0
    states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepTally:
    """One step's outcome in one shard (step 0 is the setup)."""

    index: int
    line: int
    action: str
    description: str
    notes: tuple[str, ...] = ()
    groups: dict[str, GroupTally] = field(default_factory=dict)
    expects: tuple[ExpectTally, ...] = ()
    clusters: tuple[ClusterTally, ...] = ()
    at: str = ""


@dataclass(frozen=True, slots=True)
class ShardResult:
    """Everything one shard reports: per-step tallies, final tallies and the reason table."""

    shard: int
    shards: int
    steps: tuple[StepTally, ...]
    final: StepTally | None  # None: the run was interrupted after ``steps`` (a partial result)
    # (group, state, cluster the phone is registered with or "", reason) -> phones
    reasons: dict[tuple[str, str, str, str], int]
    phone_operations: int = 0
    # A shard a worker never started because the run was interrupted first: how many phones it
    # holds (they are in no tally). 0 for every shard that ran, even partly.
    not_started: int = 0

"""Merge shard tallies into one report, and write it as text, JSON or JUnit XML.

Pure: tallies in, a frozen :class:`Report` and strings out. Merging is addition (counts of
phones) and a sort by phone index (examples), so a report does not depend on how many worker
processes ran the fleet. The JSON and JUnit layouts are documented in ``docs/harness.md``;
``REPORT_FORMAT``/``REPORT_VERSION`` name the JSON layout, which changes only with a new version.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from phone.scenario.model import ExpectDef, Quantity, Scenario
from phone.scenario.runner import (
    EXAMPLES,
    ClusterTally,
    Example,
    ExpectTally,
    GroupTally,
    ShardResult,
    StepTally,
)

__all__ = [
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "ExpectResult",
    "Report",
    "StepResult",
    "SummaryRow",
    "cause",
    "junit_xml",
    "merge",
    "render_text",
]

REPORT_FORMAT = "vphone-scenario-report"
REPORT_VERSION = 1
CAUSE_WIDTH = 160  # a summary line that names a cause fits this many columns

# A distinguished name in a reason ('CN=x;OU=VTG;O=vphone lab;...' or CN=x,OU=..., quoted or
# not) and the "(serial <hex>, issuer '...')" that follows a certificate: a cause keeps the CN.
# Unquoted, a value may hold spaces ("O=vphone lab") only before another separator: the last
# one ends at a space, so the words after a DN stay.
_DN = re.compile(
    r"'CN=([^;,']+?)(?:[;,] ?[A-Za-z]+=[^;,']*)*'"
    r"|CN=([^;,'() ]+)(?:[;,] ?[A-Za-z]+=[^;,'()]*(?=[;,]))*(?:[;,] ?[A-Za-z]+=[^;,'() ]*)?"
)
_SERIAL = re.compile(r" \(serial <hex>(?:, issuer [^)]*)?\)")


def cause(reason: str, width: int = CAUSE_WIDTH) -> str:
    """``reason`` as one line of at most ``width`` characters, the cause first.

    Reasons start with what decided ("itl rejected by item 24: ..."), then name certificates
    by their whole DN, serial and issuer: about 600 characters with the same DN three times
    (issue 18 friction 3). The cause keeps each certificate's CN and drops serials and
    issuers; while still too long it says the same in fewer words (:data:`_SHORTER`, what
    follows from the rejection such as "kept the old ITL", the file name) and at last cuts at
    a word with "...". The full reason stays in ``-v`` and in the JSON.
    """
    text = _DN.sub(lambda m: f"CN={m[1] or m[2]}", _SERIAL.sub("", reason))
    text = _TVS_TLS.sub(r"TLS to TVS \1 refused", text)
    for pattern, shorter in _SHORTER:
        if len(text) <= width:
            return text
        text = pattern.sub(shorter, text)
    if len(text) <= width:
        return text
    cut = text[: max(width - 3, 1)]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ;,:(") + "..."


# "TVS h:2445: TLS to h:2445 refused" names the TVS twice.
_TVS_TLS = re.compile(r"TVS (\S+): TLS to \1 refused")
# Applied one after the other while a cause is too long: each keeps what decided.
_SHORTER: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"; kept the old (ITL|CTL|config\w*|image)$"), ""),
    (re.compile(r" is not a SAST record of the installed (ITL|CTL)"), r" not in the \1"),
    (
        re.compile(r"server certificate (CN=\S+) is not a TVS record of the installed ITL"),
        r"\1 not a TVS of the ITL",
    ),
    (re.compile(r"(by (?:item \d+|seed): )[\w<>.-]+\.(?:tlv|sgn|xml|loads): "), r"\1"),
)


@dataclass(frozen=True, slots=True)
class ExpectResult:
    """One expectation's verdict over the whole fleet."""

    line: int
    step: int  # 0: a final expectation
    subject: str  # "group desk", "cluster old"
    expect: str  # "all with state = registered", "itl_mismatches exactly 0"
    ok: bool
    text: str = ""
    matched: int | None = None  # phone expectations: phones that meet every check
    total: int | None = None
    examples: tuple[Example, ...] = ()  # phones that explain a failure (or a pass)
    values: dict[str, int] = field(default_factory=dict)  # cluster expectations

    @property
    def outcome(self) -> str:
        """``20/20``, ``0/20`` for phones; ``itl_mismatches=3`` for a cluster."""
        if self.matched is not None:
            return f"{self.matched}/{self.total}"
        return ", ".join(f"{k}={v}" for k, v in self.values.items())

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        document: dict[str, object] = {
            "line": self.line,
            "step": self.step,
            "subject": self.subject,
            "expect": self.expect,
            "text": self.text,
            "ok": self.ok,
        }
        if self.matched is not None:
            document["matched"] = self.matched
            document["total"] = self.total
        else:
            document["values"] = dict(self.values)
        document["examples"] = [
            {"index": e.index, "mac": e.mac, "detail": e.detail} for e in self.examples
        ]
        return document


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step over the whole fleet (index 0 is the setup)."""

    index: int
    line: int
    action: str
    description: str
    at: str
    notes: tuple[str, ...]
    groups: dict[str, GroupTally]
    expectations: tuple[ExpectResult, ...]

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        return {
            "index": self.index,
            "line": self.line,
            "action": self.action,
            "description": self.description,
            "at": self.at,
            "notes": list(self.notes),
            "groups": {
                name: {"acted": g.acted, "skipped": g.skipped, "states": dict(g.states)}
                for name, g in self.groups.items()
            },
            "expectations": [e.as_dict() for e in self.expectations],
        }


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """How many phones of a group ended in a state for one reason."""

    group: str
    state: str  # the phone's state: "registered", "failed" ...
    reason: str  # the whole reason (-v, JSON)
    phones: int
    cluster: str = ""  # the cluster a registered phone is registered with

    @property
    def label(self) -> str:
        """The state as the summary prints it: ``registered with new`` for a registered phone,
        so that phones stuck with the old cluster do not read as migrated."""
        return f"{self.state} with {self.cluster}" if self.cluster else self.state

    @property
    def cause(self) -> str:
        """The reason in one line of at most :data:`CAUSE_WIDTH` characters (:func:`cause`)."""
        return cause(self.reason)


@dataclass(frozen=True, slots=True)
class Report:
    """A scenario run over the whole fleet: what each step did and which expectations held."""

    scenario: Scenario
    steps: tuple[StepResult, ...]  # setup, every step, then "final"
    summary: tuple[SummaryRow, ...]
    phone_operations: int = 0
    # Set when Ctrl-C cut the run: where ("after step 3 of 7", "during the setup"); ``steps`` holds
    # only the steps every shard finished, no "final" step and no summary (issue 18 item 2).
    interrupted: str = ""
    # Of an interrupted run cut into shards: the phones no step count includes (their shards had
    # not started, or had not finished while others had); 0 when every phone is counted.
    uncounted: int = 0

    @property
    def expectations(self) -> tuple[ExpectResult, ...]:
        """Every expectation in file order of evaluation (steps', then final)."""
        return tuple(e for s in self.steps for e in s.expectations)

    @property
    def failed(self) -> tuple[ExpectResult, ...]:
        """The expectations that do not hold."""
        return tuple(e for e in self.expectations if not e.ok)

    @property
    def ok(self) -> bool:
        """True when the run finished and every expectation holds."""
        return not self.failed and not self.interrupted

    def as_dict(self) -> dict[str, object]:
        """The JSON document (``docs/harness.md``); deterministic for a given scenario."""
        scenario = self.scenario
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "scenario": {
                "name": scenario.name,
                "title": scenario.title,
                "path": scenario.path,
                "items": list(scenario.items),
                "sources": list(scenario.sources),
                "clusters": [
                    {
                        "name": c.name,
                        "release": c.release,
                        "tvs_nodes": c.tvs_nodes,
                        "tftp_nodes": c.tftp_nodes,
                        "mode": "mixed" if c.mixed_mode else "non-secure",
                    }
                    for c in scenario.clusters
                ],
                "groups": [
                    {"name": g.name, "count": g.count, "model": g.model, "cluster": g.cluster}
                    for g in scenario.groups
                ],
            },
            "ok": self.ok,
            **({"interrupted": self.interrupted} if self.interrupted else {}),
            "phones": scenario.phone_count,
            "expectations": {"total": len(self.expectations), "failed": len(self.failed)},
            "steps": [s.as_dict() for s in self.steps],
            "summary": [
                {
                    "group": r.group,
                    "state": r.state,
                    "cluster": r.cluster or None,
                    "cause": r.cause,
                    "reason": r.reason,
                    "phones": r.phones,
                }
                for r in self.summary
            ],
        }

    def to_json(self) -> str:
        """:meth:`as_dict` as indented JSON text."""
        return json.dumps(self.as_dict(), indent=2) + "\n"


# --- merging -------------------------------------------------------------------------------------


def _merge_examples(parts: Sequence[tuple[Example, ...]]) -> tuple[Example, ...]:
    return tuple(sorted((e for part in parts for e in part), key=lambda e: e.index)[:EXAMPLES])


def _phone_result(expect: ExpectDef, tallies: Sequence[ExpectTally]) -> ExpectResult:
    matched = sum(t.matched for t in tallies)
    total = sum(t.total for t in tallies)
    quantity: Quantity = expect.count
    ok = quantity.holds(matched, total)
    # Show the phones that explain the verdict: on a failure, those missing a check when too
    # few match and those meeting it when too many do; on a pass, the phones that behaved.
    show_matching = quantity.wants_matches() == ok
    side = [t.matching if show_matching else t.failing for t in tallies]
    return ExpectResult(
        line=expect.line,
        step=expect.step,
        subject=expect.subject,
        expect=f"{quantity} with " + "; ".join(str(c) for c in expect.checks),
        ok=ok,
        text=expect.text,
        matched=matched,
        total=total,
        examples=_merge_examples(side),
    )


def _cluster_result(expect: ExpectDef, tallies: Sequence[ClusterTally]) -> ExpectResult:
    values: dict[str, int] = {}
    ok = True
    for check in expect.cluster_checks:
        mine = [t.value for t in tallies if t.line == check.line and t.key == check.key]
        if check.key == "itl_mismatches":
            value = sum(mine)  # device rows of disjoint phones: they add up
            reports = sum(
                t.value for t in tallies if t.line == check.line and t.key == "itl_reports"
            )
            assert check.quantity is not None
            # No phone reported its ITL to this cluster: "0 mismatches" would pass while every
            # phone is stuck elsewhere (issue 18 friction 3). An author who counts mismatches
            # means "the phones' ITLs match", so no report at all is a failure, said as such.
            ok = ok and check.quantity.holds(value, 0) and reports > 0
            values[check.key] = value
            values["itl_reports"] = reports
            continue
        else:
            value = max(mine, default=0)  # found in any shard's copy of the log
            ok = ok and value == 1
        values[check.key] = value
    return ExpectResult(
        line=expect.line,
        step=expect.step,
        subject=expect.subject,
        expect="; ".join(str(c) for c in expect.cluster_checks),
        ok=ok,
        text=expect.text,
        values=values,
    )


def _merge_step(parts: Sequence[StepTally], expects: Sequence[ExpectDef]) -> StepResult:
    first = parts[0]
    groups: dict[str, GroupTally] = {}
    for name in first.groups:
        states: Counter[str] = Counter()
        for part in parts:
            states.update(part.groups[name].states)
        groups[name] = GroupTally(
            acted=sum(p.groups[name].acted for p in parts),
            skipped=sum(p.groups[name].skipped for p in parts),
            states=dict(sorted(states.items())),
        )
    phone_expects = [e for e in expects if not e.cluster]
    results: list[ExpectResult] = []
    phone_index = 0
    for expect in expects:
        if expect.cluster:
            results.append(_cluster_result(expect, [t for p in parts for t in p.clusters]))
        else:
            results.append(_phone_result(expect, [p.expects[phone_index] for p in parts]))
            phone_index += 1
    assert phone_index == len(phone_expects)
    return StepResult(
        index=first.index,
        line=first.line,
        action=first.action,
        description=first.description,
        at=first.at,
        notes=first.notes,  # lab notes are the same in every shard: each replays the lab steps
        groups=groups,
        expectations=tuple(results),
    )


def merge(scenario: Scenario, shards: Sequence[ShardResult]) -> Report:
    """One report from the shards of a run (any number, any order).

    Raises:
        ValueError: no shards, or shards of different runs.
    """
    if not shards:
        raise ValueError("no shard results to merge")
    ordered = sorted(shards, key=lambda s: s.shard)
    if {s.shards for s in ordered} != {len(ordered)} or [s.shard for s in ordered] != list(
        range(len(ordered))
    ):
        raise ValueError("the shard results are not one complete run")
    steps: list[StepResult] = []
    step_defs = {s.index: s for s in scenario.steps}
    # An interrupted run (a shard without its final tallies) reports the steps every shard
    # finished: a step some shards had not finished has no fleet-wide count.
    # Shards a worker never started (it runs its shards one after the other: fleet.py) are left
    # out, and the cut says how many phones they hold. No report covers every phone then, so
    # when some shards finished and those cut short had done fewer steps, the finished shards
    # alone give the longer report: their phones ran every step; the others are named, not
    # counted. (With every shard started, the report stays what every phone finished.)
    finished = [s for s in ordered if s.final is not None]
    finals = [s.final for s in finished if s.final is not None]
    ran = [s for s in ordered if not s.not_started]
    whole = min((len(s.steps) for s in ran), default=0)
    if finished and len(ran) < len(ordered) and len(finished[0].steps) > whole:
        ran, whole = finished, len(finished[0].steps)
        uncounted = _phones_outside(scenario, ordered, finished)
        left = f"{uncounted:,} phones had not finished"
    else:
        uncounted = sum(s.not_started for s in ordered)
        left = f"{uncounted:,} phones had not started" if uncounted else ""
    for position in range(whole):
        parts = [s.steps[position] for s in ran]
        index = parts[0].index
        expects = step_defs[index].expects if index in step_defs else ()
        steps.append(_merge_step(parts, expects))
    operations = sum(s.phone_operations for s in ordered)
    if len(finals) < len(ordered):
        # The setup is step 0 and not one of the scenario's steps.
        done = max(whole - 1, 0)
        cut = "during the setup" if whole == 0 else f"after step {done} of {len(scenario.steps)}"
        if left:
            cut += f" ({left})"
        return Report(
            scenario=scenario,
            steps=tuple(steps),
            summary=(),
            phone_operations=operations,
            interrupted=cut,
            uncounted=uncounted,
        )
    steps.append(_merge_step(finals, scenario.expects))
    reasons: Counter[tuple[str, str, str, str]] = Counter()
    for shard in ordered:
        reasons.update(shard.reasons)
    order = {g.name: i for i, g in enumerate(scenario.groups)}
    summary = tuple(
        SummaryRow(group, state, reason, count, cluster)
        for (group, state, cluster, reason), count in sorted(
            reasons.items(), key=lambda kv: (order[kv[0][0]], -kv[1], *kv[0][1:])
        )
    )
    return Report(
        scenario=scenario,
        steps=tuple(steps),
        summary=summary,
        phone_operations=operations,
    )


def _phones_outside(
    scenario: Scenario, shards: Sequence[ShardResult], kept: Sequence[ShardResult]
) -> int:
    """How many phones the shards not ``kept`` hold (shard k of n: every nth phone from k)."""
    taken = {s.shard for s in kept}
    return sum(
        len(range(s.shard, scenario.phone_count, s.shards)) for s in shards if s.shard not in taken
    )


# --- text ----------------------------------------------------------------------------------------


def _states(tally: GroupTally) -> str:
    return ", ".join(f"{n} {state}" for state, n in tally.states.items()) or "no phones"


def _expect_lines(result: ExpectResult, *, verbose: bool) -> list[str]:
    mark = "ok  " if result.ok else "FAIL"
    text = f" ({result.text})" if result.text else ""
    lines = [
        f"      {mark} line {result.line:<4} {result.subject}: {result.expect} -> "
        f"{result.outcome}{text}"
    ]
    if not result.ok or verbose:
        for example in result.examples:
            head = f"             SEP{example.mac}: "
            detail = example.detail if verbose else cause(example.detail, CAUSE_WIDTH - len(head))
            lines.append(head + detail)
    if not result.ok and result.values.get("itl_reports", 1) == 0:
        lines.append(
            f"             no phone reported its ITL to {result.subject}: its ITL File Status "
            "is empty, so a mismatch count says nothing"
        )
    return lines


def render_text(report: Report, *, verbose: bool = False) -> str:
    """The per-step, per-group summary a person reads (``vphone scenario run``)."""
    scenario = report.scenario
    clusters = ", ".join(
        f"{c.name} ({c.release}{', mixed mode' if c.mixed_mode else ''})" for c in scenario.clusters
    )
    out = [f"scenario {scenario.name}: {scenario.title}"]
    items = f"; items {', '.join(map(str, scenario.items))}" if scenario.items else ""
    out.append(f"  clusters {clusters}; {scenario.phone_count} phones{items}")
    for step in report.steps:
        where = f"line {step.line}" if step.line else "       "
        label = "final" if step.action == "final" else f"step {step.index:>2}"
        out.append(f"{label}  {where:<9} {step.description}")
        if step.action != "final" and step.groups:
            for name, tally in step.groups.items():
                if step.action == "setup":
                    out.append(f"      {name}: {_states(tally)}")
                elif tally.acted or tally.skipped:
                    did = f"{tally.acted} acted" + (
                        f", {tally.skipped} skipped" if tally.skipped else ""
                    )
                    out.append(f"      {name}: {did} -> {_states(tally)}")
        for note in step.notes:
            out.append(f"      . {note}")
        for result in step.expectations:
            out.extend(_expect_lines(result, verbose=verbose))
    if report.interrupted:
        out.append(f"INTERRUPTED {report.interrupted}: {interrupted_verdict(report)}")
        return "\n".join(out) + "\n"
    out.append(
        "final states by reason:" if verbose else "final states by cause (-v: whole reasons):"
    )
    width = max((len(r.group) for r in report.summary), default=5)
    state_width = max((len(r.label) for r in report.summary), default=5)
    for row in report.summary:
        head = f"  {row.group:<{width}}  {row.label:<{state_width}}  {row.phones:>7}  "
        out.append(head + (row.reason if verbose else cause(row.reason, CAUSE_WIDTH - len(head))))
    total = len(report.expectations)
    failed = len(report.failed)
    verdict = "PASS" if report.ok else "FAIL"
    out.append(
        f"{verdict}: {total - failed} of {total} expectations hold"
        + (f", {failed} failed" if failed else "")
    )
    return "\n".join(out) + "\n"


def interrupted_verdict(report: Report) -> str:
    """What an interrupted run can still say: the expectations of the steps it finished."""
    total = len(report.expectations)
    failed = len(report.failed)
    checked = (
        "no expectation was checked before it"
        if not total
        else f"{total - failed} of the {total} expectations checked before it hold"
        + (f", {failed} failed" if failed else "")
    )
    return f"the final expectations were not checked; {checked}"


# --- JUnit ---------------------------------------------------------------------------------------


def junit_xml(reports: Sequence[Report]) -> str:
    """A JUnit XML document: one ``testsuite`` per scenario, one ``testcase`` per expectation."""
    root = ET.Element(
        "testsuites",
        name="vphone scenarios",
        tests=str(sum(len(r.expectations) for r in reports)),
        failures=str(sum(len(r.failed) for r in reports)),
    )
    for report in reports:
        scenario = report.scenario
        suite = ET.SubElement(
            root,
            "testsuite",
            name=scenario.name,
            tests=str(len(report.expectations)),
            failures=str(len(report.failed)),
            errors="1" if report.interrupted else "0",
            skipped="0",
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("title", scenario.title),
            ("path", scenario.path),
            ("phones", str(scenario.phone_count)),
            ("items", ", ".join(map(str, scenario.items))),
        ):
            ET.SubElement(properties, "property", name=name, value=value)
        if report.interrupted:
            # The run did not finish: one error a CI dashboard shows, beside what was checked.
            case = ET.SubElement(
                suite, "testcase", classname=f"vphone.scenario.{scenario.name}", name="run"
            )
            ET.SubElement(
                case,
                "error",
                message=f"interrupted {report.interrupted}: {interrupted_verdict(report)}",
                type="interrupted",
            )
        for result in report.expectations:
            where = f"step {result.step}" if result.step else "final"
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"vphone.scenario.{scenario.name}",
                name=f"line {result.line} ({where}): {result.subject}: {result.expect}",
            )
            if not result.ok:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{result.subject}: {result.expect} -> {result.outcome}",
                )
                failure.text = (
                    "\n".join(f"SEP{e.mac}: {e.detail}" for e in result.examples) or result.outcome
                )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

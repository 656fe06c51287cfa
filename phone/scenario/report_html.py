"""A scenario report as one self-contained HTML page (``vphone scenario run --html FILE``).

Pure: a :class:`~phone.scenario.report.Report` in, HTML text out. The page is for people who
were not at the terminal (a change board reading a migration rehearsal), so it must open
anywhere, offline and years later: no script, no style sheet, font or image fetched from
anywhere, the charts drawn as inline SVG. Every string taken from the scenario or the run
(names, descriptions, reasons, sources) is escaped, since a scenario file is anyone's text.

Sections: the verdict; per step, the phones of each group by state as a stacked bar chart;
the phones that ended with a problem, grouped by cause; every expectation with its verdict
and the example phones behind it; the scenario's sources.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from phone.scenario.report import ExpectResult, Report, StepResult, interrupted_verdict

__all__ = ["CLEAN_REASON", "STATE_COLOURS", "render_html", "state_colour"]

# What phone.scenario.checks names the cause of a phone whose latest boot had no problem; a
# registered phone with this reason is not stuck (tests/test_html_report.py pins the wording).
CLEAN_REASON = "no problem in the latest boot"

# One colour per phone state (phone.device.machine.State), chosen to read at a glance: green
# registered, red and orange the failure states, greys for phones not (yet) booted.
STATE_COLOURS: dict[str, str] = {
    "registered": "#2e7d32",
    "registering": "#81c784",
    "configuring": "#4fc3f7",
    "trust-lists": "#0288d1",
    "upgrading": "#7e57c2",
    "capf": "#ba68c8",
    "booting": "#90a4ae",
    "no-config": "#ef6c00",
    "registration-failed": "#c62828",
    "off": "#bdbdbd",
}
# States this module does not know yet (a newer runner) still get a distinct colour.
_SPARE_COLOURS = ("#6d4c41", "#00897b", "#f9a825", "#5c6bc0", "#d81b60", "#455a64")

_PROBLEM_COLOUR = "#ef6c00"
_CHART_WIDTH = 960
_LABEL_WIDTH = 330
_BAR_WIDTH = 560
_ROW_HEIGHT = 24
_BAR_HEIGHT = 16
_LABEL_CHARS = 46

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #212121;
       margin: 24px auto; max-width: 1000px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
           font-weight: 600; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left;
        vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #e0e0e0; }
th { background: #f5f5f5; } td.num { text-align: right; white-space: nowrap; }
tr.failed td { background: #ffebee; } .muted { color: #616161; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.legend span { display: inline-block; margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
          vertical-align: -1px; border-radius: 2px; }
svg text { font: 12px system-ui, sans-serif; fill: #212121; }
svg text.inbar { fill: #fff; font-weight: 600; }
details summary { cursor: pointer; color: #1565c0; }
"""


def state_colour(state: str, known: dict[str, str] | None = None) -> str:
    """The colour a state is drawn in; states without one of their own take a spare colour,
    the same one for the same state within a page (``known`` remembers the choices)."""
    if state in STATE_COLOURS:
        return STATE_COLOURS[state]
    if known is None:
        return _SPARE_COLOURS[0]
    if state not in known:
        known[state] = _SPARE_COLOURS[len(known) % len(_SPARE_COLOURS)]
    return known[state]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _step_label(step: StepResult) -> str:
    if step.action == "setup":
        return "setup"
    if step.action == "final":
        return "final"
    return f"step {step.index}: {step.description}"


def _chart_rows(report: Report) -> list[tuple[str, str, dict[str, int]]]:
    """(step label, group, states) for every step that has phone tallies, in order."""
    rows: list[tuple[str, str, dict[str, int]]] = []
    for step in report.steps:
        if step.action == "final":
            continue  # the final step reports no tallies of its own: the last step's hold
        for group, tally in step.groups.items():
            rows.append((_step_label(step), group, dict(tally.states)))
    return rows


def _ticks(largest: int) -> list[int]:
    """Axis marks from 0 to ``largest``: a round step apart (1, 2 or 5 times a power of ten),
    at most six of them."""
    magnitude = 1
    while True:
        for step in (magnitude, 2 * magnitude, 5 * magnitude):
            if largest // step <= 5:
                return list(range(0, largest + 1, step))
        magnitude *= 10


def _chart(report: Report, spare: dict[str, str]) -> str:
    """The stacked bar chart: one bar per step and group, segments the phones by state."""
    rows = _chart_rows(report)
    groups = {g.name for g in report.scenario.groups}
    several = len(groups) > 1
    largest = max((sum(states.values()) for _, _, states in rows), default=0) or 1
    top = 28
    height = top + _ROW_HEIGHT * len(rows) + 8
    out = [
        f'<svg id="states-chart" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}" width="{_CHART_WIDTH}" height="{height}" '
        f'aria-label="phones by state after each step">'
    ]
    # The axis: phones, at round numbers (1, 2 or 5 times a power of ten) up to the largest.
    for phones in _ticks(largest):
        x = _LABEL_WIDTH + _BAR_WIDTH * phones / largest
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 8}" '
            f'stroke="#e0e0e0" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{phones:,}</text>'
        )
    out.append(f'<text x="{_LABEL_WIDTH - 8}" y="{top - 10}" text-anchor="end">phones</text>')
    for row, (label, group, states) in enumerate(rows):
        y = top + row * _ROW_HEIGHT
        text = f"{label} \u00b7 {group}" if several else label
        out.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + _BAR_HEIGHT - 3}" text-anchor="end">'
            f"<title>{_e(text)}</title>{_e(_short(text, _LABEL_CHARS))}</text>"
        )
        x = float(_LABEL_WIDTH)
        for state, phones in states.items():
            if phones <= 0:
                continue
            width = _BAR_WIDTH * phones / largest
            colour = state_colour(state, spare)
            out.append(
                f'<rect class="segment" data-state="{_e(state)}" data-phones="{phones}" '
                f'data-group="{_e(group)}" x="{x:.2f}" y="{y}" width="{width:.2f}" '
                f'height="{_BAR_HEIGHT}" fill="{colour}">'
                f"<title>{_e(group)}: {phones:,} {_e(state)}</title></rect>"
            )
            label_text = f"{phones:,}"
            if width > 8 * len(label_text) + 6:
                out.append(
                    f'<text class="inbar" x="{x + width / 2:.2f}" y="{y + _BAR_HEIGHT - 4}" '
                    f'text-anchor="middle">{label_text}</text>'
                )
            x += width
        total = sum(states.values())
        out.append(
            f'<text x="{x + 6:.2f}" y="{y + _BAR_HEIGHT - 3}" class="muted">{total:,}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend(report: Report, spare: dict[str, str]) -> str:
    seen: dict[str, None] = {}
    for _, _, states in _chart_rows(report):
        for state in states:
            seen.setdefault(state, None)
    spans = [
        f'<span><i class="swatch" style="background:{state_colour(s, spare)}"></i>{_e(s)}</span>'
        for s in seen
    ]
    return f'<p class="legend">{"".join(spans)}</p>'


def _clean(state: str, reason: str) -> bool:
    # "registered", or "registered with new" where summaries name the cluster: either way a
    # phone whose latest boot met no problem is where the procedure put it, not stuck.
    return reason == CLEAN_REASON and (state == "registered" or state.startswith("registered "))


def _stuck(report: Report, spare: dict[str, str]) -> str:
    """The phones that ended with a problem, grouped by cause (largest first), with a bar."""
    causes: Counter[tuple[str, str]] = Counter()
    groups: dict[tuple[str, str], list[str]] = {}
    for row in report.summary:
        if _clean(row.state, row.reason):
            continue
        key = (row.state, row.reason)
        causes[key] += row.phones
        groups.setdefault(key, []).append(f"{row.group} ({row.phones:,})")
    phones = report.scenario.phone_count
    if not causes:
        return (
            f'<p id="no-stuck">None: all {phones:,} phones ended registered with no problem '
            "in their latest boot.</p>"
        )
    stuck = sum(causes.values())
    out = [
        f'<p id="stuck-total">{stuck:,} of {phones:,} phones ended with a problem, '
        f"in {len(causes)} cause(s):</p>",
        '<table id="stuck"><tr><th>phones</th><th></th><th>state</th><th>cause</th>'
        "<th>groups</th></tr>",
    ]
    for (state, reason), count in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])):
        width = 120 * min(count / max(phones, 1), 1.0)
        bar = (
            f'<svg width="124" height="12" xmlns="http://www.w3.org/2000/svg">'
            f'<rect class="cause" x="0" y="0" width="{width:.2f}" height="12" '
            f'fill="{_PROBLEM_COLOUR}"/></svg>'
        )
        out.append(
            f'<tr><td class="num">{count:,}</td><td>{bar}</td><td>{_e(state)}</td>'
            f'<td class="mono">{_e(reason)}</td><td>{_e(", ".join(groups[(state, reason)]))}</td>'
            "</tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _expectation_row(step: StepResult, result: ExpectResult) -> str:
    where = "final" if step.action == "final" else f"step {step.index}"
    verdict = (
        '<span class="verdict pass">ok</span>'
        if result.ok
        else '<span class="verdict fail">FAIL</span>'
    )
    examples = ""
    if result.examples:
        items = "".join(
            f"<li><code>SEP{_e(e.mac)}</code> {_e(e.detail)}</li>" for e in result.examples
        )
        examples = (
            f"<details><summary>{len(result.examples)} example phone(s)</summary>"
            f"<ul>{items}</ul></details>"
        )
    text = f'<div class="muted">{_e(result.text)}</div>' if result.text else ""
    return (
        f'<tr class="{"ok" if result.ok else "failed"}"><td>{verdict}</td><td>{where}</td>'
        f'<td class="num">{result.line}</td><td>{_e(result.subject)}: '
        f"<code>{_e(result.expect)}</code>{text}{examples}</td>"
        f'<td class="num">{_e(result.outcome)}</td></tr>'
    )


def _expectations(report: Report) -> str:
    rows = [_expectation_row(step, result) for step in report.steps for result in step.expectations]
    if not rows:
        return "<p>The scenario has no expectations.</p>"
    return (
        '<table id="expectations"><tr><th>verdict</th><th>after</th><th>line</th>'
        "<th>expectation</th><th>outcome</th></tr>\n" + "\n".join(rows) + "\n</table>"
    )


def _steps_table(report: Report) -> str:
    rows = []
    for step in report.steps:
        notes = "".join(f"<li>{_e(n)}</li>" for n in step.notes)
        acted = ", ".join(
            f"{_e(g)}: {t.acted:,} acted" + (f", {t.skipped:,} skipped" if t.skipped else "")
            for g, t in step.groups.items()
            if t.acted or t.skipped
        )
        rows.append(
            f"<tr><td>{_e(_step_label(step).split(':')[0])}</td>"
            f'<td class="num">{step.line or ""}</td><td>{_e(step.description)}'
            f"{f'<ul>{notes}</ul>' if notes else ''}</td><td>{acted}</td>"
            f'<td class="mono">{_e(step.at)}</td></tr>'
        )
    return (
        '<table id="steps"><tr><th>step</th><th>line</th><th>what</th><th>phones</th>'
        "<th>lab clock</th></tr>\n" + "\n".join(rows) + "\n</table>"
    )


def _sources(report: Report) -> str:
    scenario = report.scenario
    parts = []
    if scenario.sources:
        items = "".join(f"<li>{_e(s)}</li>" for s in scenario.sources)
        parts.append(f'<ul id="sources">{items}</ul>')
    else:
        parts.append('<p id="sources">The scenario names no sources.</p>')
    if scenario.items:
        items = ", ".join(str(i) for i in scenario.items)
        parts.append(
            f"<p>Behaviour items: {_e(items)} (<code>vphone explain item N</code>, "
            "docs/behaviours.md).</p>"
        )
    if scenario.path:
        parts.append(f"<p>Scenario file: <code>{_e(scenario.path)}</code></p>")
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """The report as one HTML document that fetches nothing (inline SVG charts, no script)."""
    scenario = report.scenario
    spare: dict[str, str] = {}
    total = len(report.expectations)
    failed = len(report.failed)
    verdict = (
        f'<span id="verdict" class="verdict fail">INTERRUPTED</span> {_e(report.interrupted)}: '
        f"{_e(interrupted_verdict(report))}"
        if report.interrupted
        else f'<span id="verdict" class="verdict pass">PASS</span> {total} of {total} '
        "expectations hold"
        if report.ok
        else f'<span id="verdict" class="verdict fail">FAIL</span> {failed} of {total} '
        "expectations failed"
    )
    clusters = "; ".join(
        f"{c.name}: release {c.release}, {c.tftp_nodes} TFTP / {c.tvs_nodes} TVS node(s)"
        + (", mixed mode" if c.mixed_mode else "")
        for c in scenario.clusters
    )
    groups = "; ".join(
        f"{g.name}: {g.count:,} \u00d7 {g.model} on {g.cluster}" for g in scenario.groups
    )
    description = (
        f'<p class="muted">{_e(" ".join(scenario.description.split()))}</p>'
        if scenario.description
        else ""
    )
    chart = _chart(report, spare)  # before the legend: it assigns the spare colours
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No fetch of any kind, even if a future edit adds one by mistake.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>vphone scenario {_e(scenario.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(scenario.name)}</h1>",
        f"<p>{_e(scenario.title)}</p>",
        f"<p>{verdict}; {scenario.phone_count:,} phones.</p>",
        f'<p class="muted">Clusters {_e(clusters)}.<br>Groups {_e(groups)}.</p>',
        description,
        "<h2>Phones by state after each step</h2>",
        _legend(report, spare),
        chart,
        "<h2>Phones that ended with a problem, by cause</h2>",
        _stuck(report, spare),
        "<h2>Expectations</h2>",
        _expectations(report),
        "<h2>Steps</h2>",
        _steps_table(report),
        "<h2>Sources</h2>",
        _sources(report),
        '<p class="muted">Written by <code>vphone scenario run --html</code>.</p>',
        "</body></html>",
    ]
    return "\n".join(part for part in body if part) + "\n"

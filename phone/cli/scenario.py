"""``vphone scenario run|check|list|show``: rehearse a procedure on a fleet of virtual phones.

``run`` prints a per-step, per-group summary (or ``--json``, or a JUnit file with ``--junit``)
and exits 0 only when every expectation holds, 1 when one does not, 2 when the scenario is
malformed (the message names the line and the key). See ``docs/scenarios.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO, TypeAlias

from phone.cli.paths import output_file
from phone.errors import UsageError
from phone.pki import FreshKeys, KeySource
from phone.scenario import (
    library_scenarios,
    library_text,
    load_scenario,
    render_text,
    run_scenario,
)
from phone.scenario.fleet import MAX_WORKERS, SHARD_PHONES, FleetInterrupted
from phone.scenario.report import Report, junit_xml
from phone.scenario.report_html import render_html

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

_BAR_WIDTH = 30
_REDRAW_SECONDS = 0.2


def key_source() -> KeySource:
    """Where the lab's RSA keys come from: fresh keys (the test suite replaces this)."""
    return FreshKeys()


class ProgressBar:
    """A one-line progress bar on a terminal (stderr), redrawn at most five times a second."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.started = time.monotonic()
        self.drawn = 0.0
        self.last = -1
        self.visible = False

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` phone operations."""
        now = time.monotonic()
        if done == self.last or (done < total and now - self.drawn < _REDRAW_SECONDS):
            return
        self.drawn = now
        self.last = done
        self.stream.write("\r" + render_bar(done, total, now - self.started, self.label))
        self.stream.flush()
        self.visible = True

    def close(self) -> None:
        """End the bar's line."""
        if self.visible:
            self.stream.write("\n")
            self.stream.flush()


def render_bar(done: int, total: int, elapsed: float, label: str = "") -> str:
    """``label [#######.......]  45%  13,500/30,000 phone operations  12.3 s``."""
    fraction = min(max(done / total, 0.0), 1.0) if total else 1.0
    filled = round(fraction * _BAR_WIDTH)
    bar = "#" * filled + "." * (_BAR_WIDTH - filled)
    return (
        f"{label} [{bar}] {fraction * 100:3.0f}%  {done:,}/{total:,} phone operations  "
        f"{elapsed:.1f} s"
    )


def _shard_phones(text: str) -> int:
    """``--shard-phones``: a whole number of phones, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of phones: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a shard holds at least 1 phone, not {value}")
    return value


def _show_progress(args: argparse.Namespace) -> bool:
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written, before a run spends minutes on it.

    Raises:
        UsageError: ``path`` is a directory, its folder does not exist, or either is not
            writable.
    """
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise UsageError(f"cannot write {path}: permission denied")


def cmd_run(args: argparse.Namespace) -> int:
    """``vphone scenario run FILE|NAME``."""
    if args.html is not None:
        check_writable(args.html)
    scenario = load_scenario(args.scenario)
    if args.count is not None:
        scenario = scenario.with_count(args.count)
    bar = ProgressBar(sys.stderr, scenario.name) if _show_progress(args) else None
    try:
        scheduler = args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        if scheduler is not None:
            # Dask is an optional extra: imported only when a scheduler is named.
            from phone.scenario.fleet_dask import run_scenario_on_dask  # noqa: PLC0415

            report = run_scenario_on_dask(
                scenario,
                scheduler,
                keys=key_source(),
                workers=args.workers,
                progress=bar,
                shard_phones=args.shard_phones,
            )
        else:
            report = run_scenario(
                scenario,
                keys=key_source(),
                workers=args.workers,
                progress=bar,
                shard_phones=args.shard_phones,
            )
    except FleetInterrupted as exc:
        if bar is not None:
            bar.close()
            bar = None
        if exc.report is not None:
            # Ctrl-C: the steps every phone finished go where the whole report would have gone
            # (issue 18 item 2); the CLI then prints the one line and exits 130.
            _write_report(exc.report, args)
        raise
    finally:
        if bar is not None:
            bar.close()
    return _write_report(report, args)


def _write_report(report: Report, args: argparse.Namespace) -> int:
    """Write ``report`` to the files asked for and to stdout; the exit code it calls for."""
    if args.junit is not None:
        junit: Path = args.junit
        try:
            junit.write_text(junit_xml([report]), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {junit}: {exc}") from None
    if args.html is not None:
        try:
            args.html.write_text(render_html(report), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.html}: {exc}") from None
    if args.json:
        sys.stdout.write(report.to_json())
    else:
        sys.stdout.write(render_text(report, verbose=args.verbose))
    return 0 if report.ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    """``vphone scenario check FILE``: parse and validate without running."""
    scenario = load_scenario(args.scenario)
    if getattr(args, "json", False):
        document = {
            "path": str(scenario.path),
            "name": scenario.name,
            "valid": True,
            "clusters": len(scenario.clusters),
            "phones": scenario.phone_count,
            "steps": len(scenario.steps),
            "expectations": len(scenario.all_expects()),
        }
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{scenario.path}: scenario {scenario.name} is valid: {len(scenario.clusters)} "
        f"cluster(s), {scenario.phone_count} phones, {len(scenario.steps)} steps, "
        f"{len(scenario.all_expects())} expectations"
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``vphone scenario list``: the library."""
    scenarios = library_scenarios()
    if args.json:
        document = [
            {"name": s.name, "title": s.title, "items": list(s.items), "sources": list(s.sources)}
            for s in scenarios
        ]
        json.dump(document, sys.stdout, indent=2)
        print()
        return 0
    width = max(len(s.name) for s in scenarios)
    for scenario in scenarios:
        items = f" (items {', '.join(map(str, scenario.items))})" if scenario.items else ""
        print(f"{scenario.name:<{width}}  {scenario.title}{items}")
    print(
        f"\n{len(scenarios)} scenarios; run one with `vphone scenario run NAME`, "
        "copy one with `vphone scenario show NAME > mine.toml`"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``vphone scenario show NAME``: print a library scenario's TOML."""
    sys.stdout.write(library_text(args.name))
    return 0


def register(sub: Sub) -> None:
    """Add the ``scenario`` command group."""
    group = sub.add_parser(
        "scenario",
        help="rehearse a procedure on a fleet of virtual phones (docs/scenarios.md)",
        description="Run scripted scenarios: clusters, phone groups, steps and expectations. "
        "Which phones end up stuck, and why?",
    )
    commands = group.add_subparsers(dest="scenario_command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run a scenario file (or a library scenario by name)",
        description="Run a scenario and print a per-step, per-group summary. Exit 0 when every "
        "expectation holds, 1 when one does not, 2 when the scenario is malformed.",
    )
    run.add_argument("scenario", metavar="FILE", help="a scenario file, or a library name")
    run.add_argument("--json", action="store_true", help="print the JSON report instead")
    run.add_argument(
        "--junit", type=output_file, metavar="OUT", help="also write a JUnit XML report"
    )
    run.add_argument(
        "--html",
        type=Path,
        metavar="OUT",
        help="also write a self-contained HTML report with charts (opens offline)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help=f"spread the phones over N processes (1 to {MAX_WORKERS}; default 1)",
    )
    run.add_argument(
        "--shard-phones",
        type=_shard_phones,
        default=SHARD_PHONES,
        metavar="N",
        help=f"at most N phones in memory per worker at once: a larger fleet is cut into shards "
        f"each worker runs one after the other (default {SHARD_PHONES:,}; about 20 KiB per "
        "phone: docs/scaling.md). The report does not depend on it",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the shards on the Dask cluster of this scheduler (tcp://HOST:8786; default "
        "$DASK_SCHEDULER_ADDRESS, else local processes; needs vphone[dask]: docs/scaling.md)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    run.add_argument("--count", type=int, metavar="N", help="run N phones in every group instead")
    run.add_argument(
        "-v", "--verbose", action="store_true", help="show example phones of passing checks too"
    )
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="validate a scenario file without running it")
    check.add_argument("scenario", metavar="FILE", help="a scenario file, or a library name")
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.set_defaults(handler=cmd_check)

    listing = commands.add_parser("list", help="the library of documented procedures")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    show = commands.add_parser("show", help="print a library scenario (a starting point)")
    show.add_argument("name", metavar="NAME", help="a name from `vphone scenario list`")
    show.set_defaults(handler=cmd_show)

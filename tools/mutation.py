"""Mutation testing of the trust core with mutmut (issue 16, docs/mutation.md).

Runs mutmut over one module, a package folder or every configured module (``[tool.mutmut]
only_mutate`` of pyproject.toml), two mutants at a time (``--jobs 2``: the machine has two
cores), and writes a summary -- mutants, killed, survived, timed out, no tests, score, per
module, and each surviving mutant with its diff -- to stdout and to a file.

mutmut works in a copy: this tool lays a snapshot of the repository (``--source head``: the
committed HEAD, unaffected by edits others make in the work tree meanwhile; ``--source
worktree``: the files as they are now, tracked and new) under ``.mutation/tree``, and mutmut
copies its ``phone/`` into ``.mutation/tree/mutants``, maps every test to the functions it
reaches (one run of the suite) and runs, for each mutant, only the tests that reach it.

    python tools/mutation.py phone/trust/                 # one package
    python tools/mutation.py phone/formats/header.py      # one module
    python tools/mutation.py --all                        # every configured module
    python tools/mutation.py --changed --check            # CI: modules changed since the record

``--check`` exits 1 when a mutant survives (or has no test) that docs/mutation.md does not list
as equivalent. ``--changed`` takes the configured modules changed since the commit that last
updated docs/mutation.md (the record of the last measured run), or since ``--base REF``; with
none changed it checks ``--fallback`` (a small fixed module), so the machinery is always run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"  # --workdir
TREE = WORK / "tree"
RECORD = ROOT / "docs" / "mutation.md"
SNAPSHOT = (".",)  # every tracked file: tests read docs/, firmware_images/, tools/

# mutmut 3.8.1's exit-code classes (mutmut/stats.py), folded into the columns of the summary.
KILLED, SURVIVED, TIMEOUT, NO_TESTS = "killed", "survived", "timeout", "no tests"
# Rejected by mypy --strict (``type_check_command``): CI runs it, so such a change could never
# land. Not a valid program, so -- as Stryker counts compile errors -- outside the score.
TYPE_ERROR = "type error"
OTHER, NOT_RUN = "other", "not run"  # suspicious, segfault, skipped; not checked (interrupted)
_STATUS = {1: KILLED, 3: KILLED, 37: TYPE_ERROR, 0: SURVIVED, 5: NO_TESTS, 33: NO_TESTS}
_STATUS.update(dict.fromkeys((36, -24, 24, 152, 255), TIMEOUT))

DIFFS = 60  # survivors shown with their diff in the summary

# Which changed modules CI checks first when more changed than its budget allows.
PRIORITY = ("trust", "formats", "device", "wire", "cluster")

MUTANT_NAME = re.compile(r"`(phone\.[^`\s]+__mutmut_\d+)`")


def configured_patterns() -> list[str]:
    """The ``only_mutate`` globs of pyproject.toml's ``[tool.mutmut]``."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    patterns: list[str] = data["tool"]["mutmut"]["only_mutate"]
    return patterns


def configured_modules() -> list[str]:
    """Every module mutmut mutates, as repository-relative paths, sorted."""
    patterns = configured_patterns()
    found = []
    for path in sorted((ROOT / "phone").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path.name != "__init__.py" and any(fnmatch.fnmatch(rel, p) for p in patterns):
            found.append(rel)
    return found


def select(arguments: Iterable[str], modules: Sequence[str]) -> list[str]:
    """The configured modules named by paths (files or folders) or dotted names."""
    chosen: list[str] = []
    for argument in arguments:
        text = argument.strip().rstrip("/")
        if not text.endswith(".py") and "/" not in text:
            text = text.replace(".", "/")
        hits = [m for m in modules if m in (text, f"{text}.py") or m.startswith(f"{text}/")]
        if not hits:
            raise SystemExit(f"mutation: {argument!r} names no configured module (pyproject.toml)")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def changed_modules(base: str | None, modules: Sequence[str]) -> tuple[str, list[str]]:
    """(base commit, configured modules changed between it and HEAD)."""
    try:
        if base is None:
            record = RECORD.relative_to(ROOT).as_posix()
            base = git("log", "-1", "--format=%H", "--", record).strip() or "HEAD~1"
        names = set(git("diff", "--name-only", base, "HEAD", "--", "phone").split())
    except subprocess.CalledProcessError as exc:  # a shallow clone, no such commit
        print(f"mutation: cannot tell what changed ({exc.stderr.strip()})")
        return base or "?", []
    changed = [m for m in modules if m in names]
    return base, sorted(changed, key=lambda m: (PRIORITY.index(m.split("/")[1]), m))


def mutant_prefix(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".") + "."


def lay_tree(source: str, *, reuse: bool) -> None:
    """A snapshot of the repository under ``.mutation/tree``.

    With ``reuse`` an earlier snapshot is updated in place (only files whose bytes changed are
    rewritten), so mutmut keeps its test-to-function map and regenerates only changed modules.
    """
    if reuse and TREE.is_dir():
        fresh = WORK / "fresh"
        if fresh.exists():
            shutil.rmtree(fresh)
        _extract(source, fresh)
        for origin in fresh.rglob("*"):
            target = TREE / origin.relative_to(fresh)
            if origin.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            elif not target.is_file() or target.read_bytes() != origin.read_bytes():
                shutil.copyfile(origin, target)
        shutil.rmtree(fresh)
        return
    if TREE.exists():
        shutil.rmtree(TREE)
    _extract(source, TREE)


def _extract(source: str, into: Path) -> None:
    into.mkdir(parents=True)
    if source == "head":
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *SNAPSHOT],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        tar = WORK / "head.tar"
        tar.write_bytes(archive)
        with tarfile.open(tar) as bundle:
            bundle.extractall(into, filter="data")
        tar.unlink()
        return
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", *SNAPSHOT)
    for rel in filter(None, listed.split("\0")):
        origin = ROOT / rel
        if origin.is_file():
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def suite_for(modules: Sequence[str]) -> list[str]:
    """The tests mutmut runs for ``modules``: ``[tool.mutmut]``'s own selection (the trust core's
    rule tests and stories) plus, for each module, the suites ``[tool.vphone.mutation.suites]``
    names for it (a SIP codec's mutants meet the SIP tests, not only the trust stories)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    tests: list[str] = list(data["tool"]["mutmut"]["pytest_add_cli_args_test_selection"])
    suites: dict[str, list[str]] = (
        data["tool"].get("vphone", {}).get("mutation", {}).get("suites", {})
    )
    for pattern, extra in suites.items():
        if any(fnmatch.fnmatch(m, pattern) for m in modules):
            tests.extend(t for t in extra if t not in tests)
    return tests


def narrow_config(modules: Sequence[str]) -> None:
    """Let mutmut in the snapshot mutate only ``modules`` (its ``only_mutate``), so it does not
    spend time generating mutants of files this run does not test, and run the suite chosen for
    them (``suite_for``)."""
    path = TREE / "pyproject.toml"
    text = path.read_text("utf-8")
    wanted = {"only_mutate": modules, "pytest_add_cli_args_test_selection": suite_for(modules)}
    for key, values in wanted.items():
        start = text.index(f"{key} = [")
        end = text.index("]", start) + 1
        listed = "".join(f'\n    "{v}",' for v in values)
        text = f"{text[:start]}{key} = [{listed}\n]{text[end:]}"
    path.write_text(text, "utf-8")


def previous_survivors(modules: Sequence[str]) -> list[str]:
    """The mutants of ``modules`` that survived (or had no test) in the run kept in the tree."""
    return [name for r in read_results(modules) for name in r.survivors]


def run_mutmut(names: Sequence[str], jobs: int, timeout: float, log: Path) -> int:
    """``mutmut run`` over the named mutants (globs: ``phone.trust.tvs.*``), bounded in time;
    its exit code."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
    # The venv's bin/ on PATH: tests that run the ``vphone`` console script find it.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PATH=path)
    shared = ROOT.parent / "shared"
    if "VPHONE_SHARED" not in env and shared.is_dir():
        env["VPHONE_SHARED"] = str(shared)  # tests/samples.shared_dir(), wherever the snapshot
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=TREE, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        previous = signal.signal(signal.SIGTERM, _interrupted)
        try:
            return process.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return -1
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM ends mutmut's process group too (it runs in a session of its own)."""
    raise KeyboardInterrupt


@dataclass
class ModuleResult:
    module: str
    counts: Counter[str] = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def valid(self) -> int:
        """Mutants that are programs CI would accept: all but those mypy rejects."""
        return self.total - self.counts[TYPE_ERROR]

    @property
    def score(self) -> float:
        """Killed or timed out, over the valid mutants (one no test reaches counts as alive)."""
        detected = self.counts[KILLED] + self.counts[TIMEOUT]
        return 100.0 * detected / self.valid if self.valid else 100.0


def read_results(modules: Sequence[str]) -> list[ModuleResult]:
    results = []
    for module in modules:
        result = ModuleResult(module)
        meta = TREE / "mutants" / f"{module}.meta"
        if meta.is_file():
            codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
            for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
                status = _STATUS.get(code, OTHER) if code is not None else NOT_RUN
                result.counts[status] += 1
                if status in (SURVIVED, NO_TESTS, OTHER):
                    result.survivors.append(name)
        results.append(result)
    return results


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("__mutmut_")
    return stem, int(number) if number.isdigit() else 0


GATED = re.compile(r"<!-- gated: ([^>]*) -->")


def gated_modules() -> set[str]:
    """Modules whose every survivor docs/mutation.md accounts for (``<!-- gated: a.py b.py -->``):
    ``--check`` fails on their unlisted survivors only; other modules' are reported."""
    if not RECORD.is_file():
        return set()
    return {m for found in GATED.findall(RECORD.read_text("utf-8")) for m in found.split()}


def listed_equivalents() -> set[str]:
    """Mutant names docs/mutation.md lists (``phone.x.y.x_f__mutmut_3`` in backticks)."""
    if not RECORD.is_file():
        return set()
    return set(MUTANT_NAME.findall(RECORD.read_text("utf-8")))


def check(
    results: Sequence[ModuleResult], gated: set[str], listed: set[str]
) -> tuple[bool, list[str]]:
    """CI's verdict: in a gated module, every mutant run and every survivor (survived, no
    tests, other) listed in docs/mutation.md; modules not gated yet are named, not judged."""
    lines = []
    judged = [r for r in results if r.module in gated]
    ungated = [r.module for r in results if r.module not in gated]
    if ungated:
        lines.append(f"mutation: not yet gated (measured, not accounted for): {', '.join(ungated)}")
    if any(r.counts[NOT_RUN] for r in judged):
        return False, [*lines, "mutation check FAILED: the run did not complete"]
    unlisted = [s for r in judged for s in r.survivors if s not in listed]
    if unlisted:
        lines += [f"- {name}" for name in unlisted]
        count = len(unlisted)
        return False, [
            *lines,
            f"mutation check FAILED: {count} surviving mutants not in {RECORD.name}",
        ]
    return True, [*lines, "mutation check passed: every survivor of a gated module is listed"]


def diff_of(name: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name],
        cwd=TREE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    lines = [
        line
        for line in shown.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return " / ".join(line.strip() for line in lines)[:300]


def summary(results: Sequence[ModuleResult], listed: set[str], seconds: float, note: str) -> str:
    rows = [
        f"mutation run: {note}, {seconds:.0f} s",
        "",
        "| module | mutants | type errors | killed | survived | timed out | no tests | other"
        " | not run"
        " | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = ModuleResult("total")
    for r in results:
        total.counts.update(r.counts)
        rows.append(_row(r))
    rows.append(_row(total, bold=True))
    rows.append("")
    survivors = [(r.module, s) for r in results for s in r.survivors]
    if survivors:
        rows.append("surviving mutants ([listed] = equivalent in docs/mutation.md):")
        for index, (_, name) in enumerate(survivors):
            mark = "[listed]" if name in listed else "[NEW]"
            # `mutmut show` takes a second each: diffs for the first DIFFS survivors only.
            shown = f": {diff_of(name)}" if index < DIFFS else ""
            rows.append(f"- {mark} `{name}`{shown}")
    else:
        rows.append("no surviving mutants")
    return "\n".join(rows) + "\n"


def _row(r: ModuleResult, *, bold: bool = False) -> str:
    c = r.counts
    name = f"**{r.module}**" if bold else f"`{r.module}`"
    cells = [
        r.total,
        c[TYPE_ERROR],
        c[KILLED],
        c[SURVIVED],
        c[TIMEOUT],
        c[NO_TESTS],
        c[OTHER],
        c[NOT_RUN],
    ]
    return f"| {name} | " + " | ".join(map(str, cells)) + f" | {r.score:.1f}% |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths (phone/trust/, phone/formats/tlv.py)")
    parser.add_argument("--all", action="store_true", help="every configured module")
    parser.add_argument("--changed", action="store_true", help="modules changed since the record")
    parser.add_argument("--base", help="with --changed: compare with this commit instead")
    parser.add_argument("--fallback", default="phone/trust/decision.py")
    parser.add_argument("--max-modules", type=int, default=0, help="with --changed: at most N")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run")
    parser.add_argument("--source", choices=("head", "worktree"), default="head")
    parser.add_argument("--reuse", action="store_true", help="keep mutmut's test map and results")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="with --reuse: re-run only the mutants that survived the kept run (after new tests)",
    )
    parser.add_argument("--summary", type=Path, help="file for the summary")
    parser.add_argument("--workdir", type=Path, help="instead of .mutation/ (runs side by side)")
    parser.add_argument("--check", action="store_true", help="fail on an unlisted survivor")
    args = parser.parse_args(argv)

    global WORK, TREE  # one run per process
    if args.workdir is not None:
        WORK, TREE = args.workdir.resolve(), args.workdir.resolve() / "tree"
    modules = configured_modules()
    if args.all:
        chosen, note = modules, "all configured modules"
    elif args.changed:
        base, chosen = changed_modules(args.base, modules)
        note = f"modules changed since {base[:12]}"
        if not chosen:
            chosen, note = select([args.fallback], modules), f"{note}: none; fallback"
        if args.max_modules and len(chosen) > args.max_modules:
            left = ", ".join(chosen[args.max_modules :])
            print(f"mutation: {len(chosen)} modules changed; over budget, not checked: {left}")
            chosen = chosen[: args.max_modules]
    elif args.modules:
        chosen, note = select(args.modules, modules), "selected modules"
    else:
        parser.error("name modules, or --all, or --changed")
    print(f"mutation: {note}: {', '.join(chosen)}", flush=True)

    WORK.mkdir(exist_ok=True)
    started = time.monotonic()
    lay_tree(args.source, reuse=args.reuse)
    # Generate mutants of the chosen modules only (--reuse: re-run the same modules after
    # adding tests; mutmut's test map covers only the functions of the modules it mutated).
    narrow_config(chosen)
    log = WORK / "mutmut.log"
    names = [f"{mutant_prefix(m)}*" for m in chosen]
    if args.survivors:
        if not args.reuse:
            parser.error("--survivors re-runs the survivors of a kept run: add --reuse")
        names = previous_survivors(chosen)
        print(f"mutation: re-running {len(names)} survivors of the kept run", flush=True)
    code = run_mutmut(names, args.jobs, args.timeout, log) if names else 0
    seconds = time.monotonic() - started
    if code != 0:
        print(f"mutation: mutmut ended with {code} (log: {log}); results so far:")
    results = read_results(chosen)
    listed = listed_equivalents()
    text = summary(results, listed, seconds, f"{note} ({args.source})")
    print(text, end="")
    target = args.summary or WORK / "summary.md"
    target.write_text(text)
    print(f"mutation: summary written to {target}")
    if args.check:
        ok, lines = check(results, gated_modules(), listed)
        print("\n".join(lines))
        return 0 if ok else 1
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The CLI's conventions (issue 18 items 2-3, frictions 2, 5, 6) and its start (issue 17 item 4).

Each test fails on the code before these issues: no --version, no ``python -m phone``, no
completion, commands without a description or -q/-v, the top-level usage on a sub-command's
error, a traceback on ``--json > /dev/full``, an unwritable ``--junit`` found after the run,
tracebacks per worker on Ctrl-C, ``boot`` exiting 0 when the phone registered elsewhere,
``--version 12.5`` refused, key size 4096 refused, ``export-certs`` needing ``--cluster``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phone.cli import build_parser, main

PYTHON = sys.executable
HEAVY = ("phone.cluster", "phone.net", "phone.scenario", "phone.device", "cryptography")


def _vphone(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [PYTHON, "-m", "phone", *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _loaded_after(code: str) -> set[str]:
    """The modules of ``HEAVY`` loaded in a fresh interpreter after running ``code``."""
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, check=True)
    return {m for m in out.stdout.split() if m.startswith(HEAVY)}


def _leaves(parser: argparse.ArgumentParser, path: str = "vphone") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    for action in subs:
        for name, child in action.choices.items():
            found += _leaves(child, f"{path} {name}")
    return found


# --- issue 17 item 4: the parser imports no heavy module -----------------------------------


def test_building_the_parser_imports_no_command_group() -> None:
    assert _loaded_after("import phone.cli; phone.cli.build_parser()") == set()


def test_tlv_show_parser_imports_no_codec_lab_or_network() -> None:
    code = "import phone.cli; phone.cli.build_parser(['tlv', 'show', 'x'])"
    assert _loaded_after(code) == set()


def test_tlv_show_imports_no_dataclasses_json_or_key_serialization() -> None:
    # The codecs' value classes are no dataclasses (phone.formats.frozen); --json imports json
    # and building a record cryptography's serialization package, where they are used.
    probe = (
        "import sys, phone.cli.files_tlv, phone.formats.views\n"
        "heavy = ('dataclasses', 'json', 'cryptography.hazmat.primitives.serialization')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_files_group_still_exports_its_handlers() -> None:
    from phone.cli import files, files_input, files_tlv

    assert files.tlv_show is files_tlv.tlv_show
    assert set(files.DIGEST_NAMES) == set(files_input.DIGESTS)


# --- friction 5: conventions --------------------------------------------------------------


def test_version_and_python_dash_m() -> None:
    result = _vphone("--version")
    assert (result.returncode, result.stdout) == (0, "vphone 0.1.0\n")


def test_every_command_has_a_description_and_quiet_and_verbose() -> None:
    leaves = _leaves(build_parser(full=True))
    assert len(leaves) > 40
    for path, parser in leaves:
        assert isinstance(parser, argparse.ArgumentParser)
        assert parser.description, path
        options = parser._option_string_actions
        assert "-q" in options and "-v" in options, path


def test_unknown_option_prints_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["tlv", "show", "--jsn", "x.tlv"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: vphone tlv show ")
    assert "vphone tlv show: error: unrecognized arguments: --jsn" in err


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "list", "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_bash_completion_completes_sub_commands(tmp_path: Path) -> None:
    script = tmp_path / "vphone.bash"
    script.write_text(_vphone("completion", "bash").stdout)
    probe = (
        f"source {script}; COMP_WORDS=(vphone lab exp); COMP_CWORD=2; _vphone; "
        'echo "${COMPREPLY[@]}"; COMP_WORDS=(vphone boot --expect); COMP_CWORD=2; _vphone; '
        'echo "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["export-certs", "--expect-cluster"]


def test_json_to_a_full_device_is_one_line_and_exit_1() -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [PYTHON, "-m", "phone", "model", "list", "--json"],
            check=False,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == "vphone: cannot write the output: No space left on device\n"


def test_json_on_every_reporting_command() -> None:
    parser = build_parser(full=True)
    leaves = dict(_leaves(parser))
    for path in (
        "vphone lab log",
        "vphone lab init",
        "vphone lab regenerate",
        "vphone lab export-certs",
        "vphone lab import-certs",
        "vphone scenario check",
    ):
        command = leaves[path]
        assert isinstance(command, argparse.ArgumentParser)
        assert "--json" in command._option_string_actions, path


def test_scenario_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "check", "migration-rollback", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["name"], document["valid"]) == ("migration-rollback", True)


# --- friction 2: outputs checked before the run; Ctrl-C ------------------------------------


def test_unwritable_junit_is_refused_before_the_run(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _vphone(
        "scenario", "run", "migration-rollback", "--junit", str(tmp_path / "no" / "r.xml")
    )
    assert result.returncode == 2
    assert f"no folder {tmp_path / 'no'}" in result.stderr
    assert result.stderr.startswith("usage: vphone scenario run")
    assert time.monotonic() - started < 30  # the scenario did not run


FLEET = ("--count", "20000", "--workers", "2", "--progress")


def test_ctrl_c_on_a_fleet_is_one_line_and_exit_130() -> None:
    # A job in a terminal gets Ctrl-C with SIGINT's default disposition. A suite run in the
    # background of a non-interactive shell ignores SIGINT, and a child would inherit that
    # (Python installs no KeyboardInterrupt handler then, and the run would finish with 0): a
    # handler here is reset to the default in the child at exec.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [*(PYTHON, "-m", "phone", "scenario", "run", "migration-rollback"), *FLEET],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's job is
        )
    finally:
        signal.signal(signal.SIGINT, saved)
    assert process.stderr is not None
    # Signal once the bar counts phone operations the workers finished: then the workers are
    # mid-run whatever the machine's load (a fixed sleep after the first bar once let a loaded
    # CI run's signal land elsewhere).
    seen = ""
    deadline = time.monotonic() + 120
    while not re.search(r"  [1-9][0-9,]*/60,000 phone operations", seen):
        assert time.monotonic() < deadline, seen[-500:]
        char = process.stderr.read(1)
        assert char, f"the run ended before any progress: {seen[-500:]}"
        seen += char
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: every process of the group
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().split("\n")[-1].split("\r")[-1]
    assert last.startswith("vphone: interrupted after ")
    assert "of 60,000 phone operations" in last or " phone operations (" in last
    # A partial report of what ran (issue 18 item 2): the steps every worker finished, on
    # stdout where the whole report would have gone, and the verdict says it was cut.
    # A worker runs its shards (5,000 phones each) one after the other: phones of shards it had
    # not started (or not finished, while others had) are named, not counted.
    assert re.search(
        r"(during the setup|of 4)( \([0-9,]+ phones had not (started|finished)\))?$", last
    ), last
    assert out.startswith("scenario migration-rollback: ")
    assert "\nINTERRUPTED " in out and "the final expectations were not checked" in out


# --- friction 3 (the CLI's part): boot --expect-cluster ------------------------------------


def test_boot_expect_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "init", str(lab), "--key-size", "1024", "-q"]) == 0
    assert main(["boot", "--lab", str(lab), "--expect-cluster", "cluster1", "-q"]) == 0
    capsys.readouterr()
    assert main(["boot", "--lab", str(lab), "--expect-cluster", "new", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["registered_with"] == "cucm1.cluster1.lab"
    assert document["registered_cluster"] == "cluster1"
    assert document["expected_cluster"] == "new"
    assert document["expectation_met"] is False


# --- friction 6: one name for one thing ----------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "profile"),
    [("11.5", "8.x-11.5"), ("12.5", "12.x"), ("14", "14.x"), ("15", "14.x"), ("12.x", "12.x")],
)
def test_release_spellings(spelling: str, profile: str) -> None:
    parser = build_parser(["lab"])
    args = parser.parse_args(["lab", "init", "d", "--release", spelling])
    assert args.version == profile
    old = parser.parse_args(["lab", "init", "d", "--version", spelling])  # deprecated spelling
    assert old.version == profile


def test_the_python_api_says_release_too() -> None:
    # Friction 6: the API said `profile` where the CLI and scenario files say `release`.
    import warnings

    from keypool import pooled_keys

    from phone.api import API_VERSION, ClusterSpec, create_lab

    assert API_VERSION == (1, 1)  # a name added to the promised surface (docs/harness.md)
    spec = ClusterSpec("old", release="11.5", key_size=1024)
    assert spec.release == "11.5"
    lab = create_lab(spec, now=datetime(2026, 6, 1, tzinfo=UTC), keys=pooled_keys())
    assert lab.cluster("old").release == "8.x-11.5"  # the common spelling, resolved
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        old = ClusterSpec("old", profile="12.5")  # API 1.0's name still works in major 1
        assert old.release == "12.5"
        assert old.profile == "12.5"
    # The warnings say which name replaces which, word for word (docs/harness.md, API 1.1).
    assert [(w.category, str(w.message)) for w in seen] == [
        (DeprecationWarning, "ClusterSpec(profile=...) is now ClusterSpec(release=...)"),
        (DeprecationWarning, "ClusterSpec.profile is now ClusterSpec.release"),
    ]


def test_key_sizes_are_the_scenarios() -> None:
    parser = build_parser(["lab"])
    assert parser.parse_args(["lab", "init", "d", "--key-size", "4096"]).key_size == 4096


def test_export_certs_without_cluster_exports_every_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = tmp_path / "lab"
    assert main(["lab", "init", str(lab), "--key-size", "1024", "-q"]) == 0
    assert main(["lab", "init", str(lab), "--cluster", "b", "--key-size", "1024", "-q"]) == 0
    monkeypatch.setenv("VPHONE_PKCS12_PASSWORD", "secret")
    capsys.readouterr()
    assert main(["lab", "export-certs", str(lab), "--to", str(tmp_path / "x"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(e["cluster"] for e in document["exported"]) == ["b", "cluster1"]
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["b", "cluster1"]


def test_ctrl_c_while_a_command_group_is_imported_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Ctrl-C in the first second of `vphone scenario run` lands while the scenario group and the
    # cluster are still being imported, before main()'s handler: it printed a traceback.
    import phone.cli

    def interrupted(words: object, full: bool = False) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(phone.cli, "build_parser", interrupted)
    monkeypatch.setattr(sys, "argv", ["vphone", "scenario", "run", "migration-rollback"])
    with pytest.raises(SystemExit) as ended:
        phone.cli.run()
    assert ended.value.code == 130
    captured = capsys.readouterr()
    assert captured.err == "vphone: interrupted\n" and captured.out == ""

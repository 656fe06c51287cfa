"""HTML reports (issue 18 item 6): ``scenario run --html`` and ``lab show --html``.

Structure tests always run. The browser tests render the pages with Debian's ``chromium``
(installed by ``.ci/run``) headless, and are skipped, saying why, where it is absent: they
check that a real browser draws the chart (the bars' colour fills the screenshot where the
page puts them), not just that the markup is there.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from keypool import pooled_keys

import phone.cli.scenario as scenario_cli
from phone.api import create_lab
from phone.cli import main
from phone.cluster.diagram import lab_html, picture
from phone.cluster.records import ClusterSpec
from phone.scenario import library_text, load_scenario, parse_scenario, run_scenario
from phone.scenario.report import Report, SummaryRow
from phone.scenario.report_html import CLEAN_REASON, STATE_COLOURS, render_html

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium")
# Headless Chromium as root in a container: no sandbox (needs user namespaces), no GPU, no
# calls home, a fresh profile per run.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


pytestmark = pytest.mark.usefixtures("pooled_cli_keys")


def _rollback(count: int) -> Report:
    return run_scenario(load_scenario("migration-rollback").with_count(count), keys=pooled_keys())


def _unprepared(count: int) -> Report:
    # The rollback scenario without its rollback step: the phones keep the old ITL, refuse the
    # new one and its configs, and the final expectations fail.
    text = library_text("migration-rollback").replace("count = 20", f"count = {count}")
    start = text.index('[[step]]\ndo = "set-param"')
    end = text.index('[[step]]\ndo = "move"')
    return run_scenario(parse_scenario(text[:start] + text[end:]), keys=pooled_keys())


def _segments(page: str) -> list[tuple[str, int, float]]:
    """(state, phones, width) of every bar segment, in order."""
    return [
        (m[1], int(m[2]), float(m[3]))
        for m in re.finditer(
            r'<rect class="segment" data-state="([^"]+)" data-phones="(\d+)" '
            r'data-group="[^"]*" x="[\d.]+" y="\d+" width="([\d.]+)"',
            page,
        )
    ]


def test_the_chart_has_one_bar_per_step_with_its_phones_by_state() -> None:
    page = render_html(_rollback(4))
    # setup and four steps; every phone registered after each: one full-width segment each.
    assert _segments(page) == [("registered", 4, 560.0)] * 5
    assert '<span id="verdict" class="verdict pass">PASS</span> 3 of 3 expectations hold' in page
    assert '<p id="no-stuck">None: all 4 phones ended registered' in page
    assert "step 1: set-param old prepare-cluster-for-rollback = true" in page


def test_the_clean_reason_is_the_one_the_runner_gives() -> None:
    report = _rollback(2)
    assert [r.reason for r in report.summary] == [CLEAN_REASON]
    assert report.summary[0].state.startswith("registered")


def test_stuck_means_a_problem_or_not_registered() -> None:
    report = _rollback(15)
    rows = (
        SummaryRow("desk", "registered with new", CLEAN_REASON, 5),
        SummaryRow("desk", "registered", CLEAN_REASON, 4),
        SummaryRow("desk", "registered with old", "itl rejected by item 24: <x>", 3),
        SummaryRow("lobby", "registered with old", "itl rejected by item 24: <x>", 2),
        SummaryRow("lobby", "no-config", CLEAN_REASON, 1),
    )
    page = render_html(dataclasses.replace(report, summary=rows))
    assert '<p id="stuck-total">6 of 15 phones ended with a problem, in 2 cause(s):</p>' in page
    assert 'class="cause" x="0" y="0" width="40.00"' in page  # 5 of 15 phones: a third of 120
    table = re.findall(r'<table id="stuck">.*?</table>', page, re.S)[0]
    cells = re.findall(
        r'<td class="num">(\d+)</td>.*?<td>([^<]+)</td><td class="mono">([^<]*)</td>'
        r"<td>([^<]+)</td>",
        table,
        re.S,
    )
    assert cells == [
        ("5", "registered with old", "itl rejected by item 24: &lt;x&gt;", "desk (3), lobby (2)"),
        ("1", "no-config", CLEAN_REASON, "lobby (1)"),
    ]


def test_a_failing_run_shows_stuck_phones_by_cause_and_failed_expectations() -> None:
    report = _unprepared(3)
    assert not report.ok
    page = render_html(report)
    assert '<span id="verdict" class="verdict fail">FAIL</span>' in page
    assert '<p id="stuck-total">3 of 3 phones ended with a problem, in 1 cause(s):</p>' in page
    [row] = re.findall(r'<table id="stuck">.*?</table>', page, re.S)
    assert "itl rejected by item 24: ITLSEP&lt;MAC&gt;.tlv: signer" in row
    assert "<td>desk (3)</td>" in row
    expectations = re.findall(r'<tr class="(ok|failed)">', page)
    assert expectations == [
        "ok" if e.ok else "failed" for s in report.steps for e in s.expectations
    ]
    assert expectations.count("failed") == len(report.failed) > 0
    with_examples = [e for e in report.expectations if e.examples]
    assert page.count("example phone(s)</summary>") == len(with_examples) > 0


def test_scenario_text_is_escaped_and_sources_listed() -> None:
    text = library_text("migration-rollback").replace("count = 20", "count = 1")
    text = text.replace(
        'title = "Migration', 'title = "<script>alert(1)</script> & Migration'
    ).replace("sources = [\n", 'sources = [\n  "<img src=x onerror=alert(2)>",\n')
    page = render_html(run_scenario(parse_scenario(text), keys=pooled_keys()))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Migration" in page
    assert "<li>&lt;img src=x onerror=alert(2)&gt;</li>" in page
    assert "<li>item 16 ([S3], [S6]): an ITL with empty TFTP and TVS sections" in page


def _fetches(page: str) -> list[str]:
    """Everything in a page that could make a browser fetch something."""
    found = re.findall(r"(?:src|href)\s*=|<script|<link|@import|<iframe|<object", page, re.I)
    found += [u for u in re.findall(r"url\(([^)]*)\)", page) if not u.startswith("#")]
    found += [
        u for u in re.findall(r"https?://[^\s\"'<]+", page) if u != "http://www.w3.org/2000/svg"
    ]
    return found


def test_pages_fetch_nothing() -> None:
    assert _fetches(render_html(_unprepared(2))) == []
    lab = create_lab(
        ClusterSpec("old", tvs_nodes=2, tftp_nodes=2, mixed_mode=True, key_size=1024),
        now=NOW,
        keys=pooled_keys(),
    )
    assert _fetches(lab_html(lab.clusters)) == []
    # The check itself catches a fetch.
    assert _fetches('<img src="https://example.com/x.png">') != []


def _lab_rows(page: str) -> list[tuple[str, str, str]]:
    return re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", page)


def test_lab_diagram_names_who_signs_what_14x_mixed_mode() -> None:
    lab = create_lab(
        ClusterSpec("old", tvs_nodes=3, tftp_nodes=2, mixed_mode=True, key_size=1024),
        now=NOW,
        keys=pooled_keys(),
    )
    page = lab_html(lab.clusters)
    signs = [r for r in _lab_rows(page) if r[1] == "signs"]
    assert signs == [
        ("cucm1.old.lab ITLRecovery", "signs", "ITLFile.tlv on cucm1.old.lab"),
        ("cucm1.old.lab CallManager", "signs", "SEP&lt;MAC&gt;.cnf.xml.sgn on cucm1.old.lab"),
        ("cucm1.old.lab ITLRecovery", "signs", "ITLFile.tlv on cucm2.old.lab"),
        ("cucm2.old.lab CallManager", "signs", "SEP&lt;MAC&gt;.cnf.xml.sgn on cucm2.old.lab"),
        ("cucm1.old.lab ITLRecovery", "signs", "CTLFile.tlv (every TFTP node)"),
    ]
    members = [r[0] for r in _lab_rows(page) if r[1] == "tvs member"]
    assert members[:3] == ["cucm1.old.lab TVS", "cucm2.old.lab TVS", "cucm3.old.lab TVS"]
    assert page.count('<path class="edge" data-kind="signs"') == 5
    [itl] = [f for f in picture(lab.clusters[0]).files if f.key == "itl:cucm2.old.lab"]
    assert itl.lines[:2] == ("SAST: cucm1.old.lab ITLRecovery", "SAST: cucm2.old.lab CallManager")


def test_lab_diagram_8x_itl_signed_by_the_tftp_node_and_no_ctl() -> None:
    lab = create_lab(
        ClusterSpec("legacy", release="8.x-11.5", key_size=1024), now=NOW, keys=pooled_keys()
    )
    signs = [r for r in _lab_rows(lab_html(lab.clusters)) if r[1] == "signs"]
    assert signs == [
        ("cucm1.legacy.lab CallManager", "signs", "ITLFile.tlv on cucm1.legacy.lab"),
        ("cucm1.legacy.lab CallManager", "signs", "SEP&lt;MAC&gt;.cnf.xml.sgn on cucm1.legacy.lab"),
    ]


def test_cli_writes_the_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code = main(["scenario", "run", "migration-rollback", "--count", "2", "--html", str(out)])
    assert code == 0
    assert capsys.readouterr().out.endswith("PASS: 3 of 3 expectations hold\n")
    assert _segments(out.read_text(encoding="utf-8")) == [("registered", 2, 560.0)] * 5


def test_cli_refuses_an_unwritable_html_path_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(*args: object, **kwargs: object) -> Report:
        raise AssertionError("the run started")

    monkeypatch.setattr(scenario_cli, "run_scenario", no_run)
    missing = tmp_path / "no-such-folder" / "report.html"
    assert main(["scenario", "run", "migration-rollback", "--html", str(missing)]) == 2
    assert f"cannot write {missing}: folder {missing.parent} does not exist" in (
        capsys.readouterr().err
    )
    assert main(["scenario", "run", "migration-rollback", "--html", str(tmp_path)]) == 2
    assert "it is a directory" in capsys.readouterr().err


# --- a real browser ------------------------------------------------------------------------------


def _chromium(tmp: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *argv]
    # run() kills the browser when the time is up; its helpers die with it (same group).
    return subprocess.run(command, capture_output=True, timeout=90, check=False)


def _png_pixels(data: bytes) -> Iterator[bytes]:
    """The rows of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if filter_type == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif filter_type == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif filter_type == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif filter_type == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = previous[i], previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        previous = line
        yield (
            bytes(line)
            if channels == 3
            else bytes(b for i in range(0, stride, 4) for b in line[i : i + 3])
        )


def _count_colour(png: bytes, colour: str) -> int:
    rgb = bytes.fromhex(colour.lstrip("#"))
    count = 0
    for row in _png_pixels(png):
        start = row.find(rgb)
        while start >= 0:
            if start % 3 == 0:
                count += 1
            start = row.find(rgb, start + 1)
    return count


@needs_chromium
def test_chromium_draws_the_rollback_report_at_2000_phones(tmp_path: Path) -> None:
    report_2000 = _rollback(2000)
    assert report_2000.scenario.phone_count == 2000 and report_2000.ok
    page = tmp_path / "report.html"
    page.write_text(render_html(report_2000), encoding="utf-8")
    url = page.as_uri()

    dom = _chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The browser parsed the SVG into the document: five full bars of 2,000 phones.
    assert _segments(dom.stdout.decode()) == [("registered", 2000, 560.0)] * 5

    shot = tmp_path / "report.png"
    result = _chromium(tmp_path, "--window-size=1200,900", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    # Drawn, not just present: the bars' green covers about 5 bars x 560 x 16 pixels (the
    # text inside a bar and anti-aliased edges take a little), far more than the legend's
    # swatch and the verdict badge, which share the colour.
    green = _count_colour(shot.read_bytes(), STATE_COLOURS["registered"])
    assert 5 * 540 * 14 < green < 5 * 560 * 16 + 3000, green


@needs_chromium
def test_chromium_draws_the_lab_diagram(tmp_path: Path) -> None:
    lab = create_lab(ClusterSpec("old", tftp_nodes=1, key_size=1024), now=NOW, keys=pooled_keys())
    page = tmp_path / "lab.html"
    page.write_text(lab_html(lab.clusters), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.decode().count('<path class="edge" data-kind="signs"') == 2

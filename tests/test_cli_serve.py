"""``vphone lab serve`` in a subprocess, and ``vphone boot --server`` against it (issue 5).

The server runs as a user runs it (a separate process on port 0); the test reads the printed
addresses, boots phones over TFTP and HTTP with the host map it wrote, then stops it with
SIGTERM (or SIGINT, Ctrl-C) and expects exit 0, every server closed and the lab folder saved.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from keypool import pooled_keys
from subprocs import read_until

from phone.cli import main
from phone.cluster.files import ClientInfo
from phone.cluster.records import ClusterSpec
from phone.cluster.store import init_lab, load_lab
from phone.vendor import manufacturing_cas

MAC = "001122334455"
START_TIMEOUT = 20.0  # seconds for the subprocess to import, load the lab and listen


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    lines: list[str]
    host_map: Path
    lab: Path
    stderr: Path

    def url(self, service: str) -> str:
        """``tftp://127.0.0.1:PORT`` of the first node's ``service`` as printed."""
        label = {"tftp": "TFTP", "http": "HTTP"}[service]
        for line in self.lines:
            match = re.search(rf"\b{label}\s+\S+\s+(127\.0\.0\.1:\d+)", line)
            if match:
                return f"{service}://{match[1]}"
        raise AssertionError(f"no {label} line in {self.lines}")


def make_lab(path: Path) -> Path:
    # Wall-clock dates: the served lab runs on the wall clock.
    init_lab(
        path,
        ClusterSpec("cluster1", key_size=1024),
        now=datetime.now(UTC),
        keys=pooled_keys(),
        capf_trust=manufacturing_cas(),
    )
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    lab = make_lab(tmp_path / "lab")
    host_map = tmp_path / "hosts.json"
    stderr = tmp_path / "serve.log"
    with stderr.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from phone.cli import run; run()",
                "lab",
                "serve",
                str(lab),
                "--host-map-out",
                str(host_map),
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        lines = read_until(process, "stops the servers", time.monotonic() + START_TIMEOUT)
        yield Served(process, lines, host_map, lab, stderr)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def stop(served: Served, sig: signal.Signals) -> tuple[int, str]:
    served.process.send_signal(sig)
    assert served.process.stdout is not None
    rest = served.process.stdout.read()  # to the end: the process closes it when it exits
    return served.process.wait(10), rest.decode()


def boot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["boot", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_lab_serve_prints_where_it_listens_and_writes_the_host_map(served: Served) -> None:
    text = "\n".join(served.lines)
    assert "serving lab" in text
    for label in ("TFTP", "HTTP", "TVS", "SIP"):
        assert re.search(rf"cucm1\.cluster1\.lab\s+{label}\s+\S+\s+127\.0\.0\.1:\d+", text), label
    hosts = json.loads(served.host_map.read_text())["hosts"]
    # The publisher also serves CAPF (issue 8, phone/net/capf_tls.py).
    assert {"ip", "tftp", "http", "tvs", "sip"} <= set(hosts["cucm1.cluster1.lab"])
    assert "boot a phone: vphone boot --server tftp://127.0.0.1:" in text
    code, rest = stop(served, signal.SIGTERM)
    assert code == 0
    assert "stopped on SIGTERM" in rest


def test_boot_over_tftp_and_http_against_lab_serve_then_sigterm(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flash = tmp_path / "flash"
    maps = ["--host-map", str(served.host_map)]
    code, first = boot(capsys, "--server", served.url("tftp"), *maps, "--flash", str(flash))
    assert code == 0, first["trace"]
    assert first["state"] == "registered"
    assert first["registered_with"] == "cucm1.cluster1.lab"
    assert "ITL installed" in first["status"]
    # The trace names the lab node behind the URL, found through the host map.
    assert first["trace"][0]["reason"].endswith("TFTP server cucm1.cluster1.lab")
    code, second = boot(capsys, "--server", served.url("http"), *maps, "--flash", str(flash))
    assert code == 0
    itl = [t for t in second["trace"] if t["step"] == "itl" and t["file"]][-1]
    assert itl["decision"] == "unchanged"  # item 3, now over HTTP
    code, rest = stop(served, signal.SIGTERM)
    assert code == 0, served.stderr.read_text()
    assert "every server closed" in rest
    log = served.stderr.read_text()
    assert "GET ITLSEP001122334455.tlv" in log and "TFTP RRQ" in log  # requests are logged
    # What the registrar changed was saved to the lab folder.
    assert MAC in load_lab(served.lab).cluster().registrations


def test_ctrl_c_stops_lab_serve_cleanly(served: Served) -> None:
    code, rest = stop(served, signal.SIGINT)
    assert code == 0
    assert "stopped on SIGINT" in rest


def test_lab_serve_on_a_taken_port_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = make_lab(tmp_path / "lab")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code = main(["lab", "serve", str(lab), "--http-port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]  # after the log lines of what had started
    assert last_line.startswith("vphone: ") and "HTTP" in last_line


def test_boot_dir_url_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ "Would my phones accept these files?" from the command line."""
    lab = load_lab(make_lab(tmp_path / "lab"))
    folder = tmp_path / "pulled"
    folder.mkdir()
    files = lab.file_service(lab.cluster().tftp_hosts[0])
    assert files is not None
    for name in ("ITLFile.tlv", "XMLDefault.cnf.xml.sgn"):
        data = files.get(name, ClientInfo(address="127.0.0.1"))
        assert data is not None
        (folder / name.lower()).write_bytes(data)  # case does not matter
    code, document = boot(capsys, "--server", f"dir:{folder}", "--flash", str(tmp_path / "f"))
    assert code == 1
    assert document["state"] == "registration-failed"
    decisions = {t["file"]: t["decision"] for t in document["trace"] if t["file"]}
    assert decisions["ITLFile.tlv"] == "accepted"
    assert decisions["XMLDefault.cnf.xml.sgn"] == "accepted"
    assert "offline folder" in document["trace"][-1]["reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "ftp://x"], "bad server URL"),
        (["--server", "tftp://127.0.0.1:1", "--lab", "x"], "replaces --lab"),
        (["--host-map", "a=127.0.0.1"], "--server URL boots only"),
        (["--server", "http://127.0.0.1:1", "--model", "7962"], "item 4"),
        (["--server", "tftp://127.0.0.1:1", "--host-map", "bad"], "cannot read"),
    ],
)
def test_boot_server_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["boot", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1

"""Issue 18 friction 7: ``vphone lab serve`` that a phone can just use.

One served lab (a subprocess, as a user runs it) with a phone whose profile enables digest
authentication:

* ``--capf-port`` puts CAPF where the user said (it landed on a random port before);
* HTTP 6970 answers HEAD as GET without the body (it answered 405);
* ``vphone boot --lab-serve DIR`` boots against it without copying the printed host map
  (it needed ``--server`` and ``--host-map`` by hand);
* the phone's trace shows each registration exchange: the challenge, the answer, the result
  (the challenge appeared in the server's log only).
"""

from __future__ import annotations

import http.client
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
from subprocs import read_until
from test_cli_serve import START_TIMEOUT, make_lab

from phone.cli import main
from phone.cluster.records import Device
from phone.cluster.store import edit_lab

MAC = "00AA00BB00CC"


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    lines: list[str]
    lab: Path
    capf_port: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    lab = make_lab(tmp_path / "lab")
    with edit_lab(lab) as opened:
        opened.cluster().add_device(
            Device(
                MAC,
                digest_user="alice",
                digest_password="s3cret",
                digest_authentication=True,
            ),
            now=datetime.now(UTC),
        )
    capf_port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from phone.cli import run; run()",
            "lab",
            "serve",
            str(lab),
            "--capf-port",
            str(capf_port),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = read_until(process, "stops the servers", time.monotonic() + START_TIMEOUT)
        yield Served(process, lines, lab, capf_port)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _boot(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["boot", "--json", "--mac", MAC, *argv])
    return code, json.loads(capsys.readouterr().out)


def test_served_lab_capf_port_head_boot_and_registration_trace(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "\n".join(served.lines)
    # --capf-port: CAPF listens where asked.
    assert re.search(
        rf"cucm1\.cluster1\.lab\s+CAPF\s+\S+\s+127\.0\.0\.1:{served.capf_port}\b", text
    ), text
    assert f"or simply:  vphone boot --lab-serve {served.lab}" in text
    state = json.loads((served.lab / "lab-serve.json").read_text())
    assert state["pid"] == served.process.pid
    assert state["host_map"]["hosts"]["cucm1.cluster1.lab"]["capf"] == served.capf_port

    # HEAD on HTTP 6970: GET's status and Content-Length, no body.
    http_port = state["host_map"]["hosts"]["cucm1.cluster1.lab"]["http"]
    connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    try:
        connection.request("HEAD", "/ITLFile.tlv")
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        length = int(head.headers["Content-Length"])
        connection.request("GET", "/ITLFile.tlv")
        get = connection.getresponse()
        assert get.status == 200 and len(get.read()) == length > 0
    finally:
        connection.close()

    # boot --lab-serve: no --server, no --host-map.
    code, document = _boot(capsys, "--lab-serve", str(served.lab))
    assert code == 0, document["trace"][-1]
    assert document["registered_with"] == "cucm1.cluster1.lab"
    register = [t for t in document["trace"] if t["step"] == "register"]
    # The trace names the CallManager as the config does (port 5060); the host map moved the
    # connection to the served port.
    assert [(t["decision"], t["rule"], t["reason"]) for t in register] == [
        (
            "challenged",
            "item 40",
            "cucm1.cluster1.lab:5060/tcp: REGISTER (CSeq 1) -> 401 Unauthorized: digest "
            "challenge, realm 'ccmsipline'",
        ),
        (
            "answered",
            "item 40",
            "cucm1.cluster1.lab:5060/tcp: REGISTER (CSeq 2) with Authorization for digest "
            "user 'alice' -> 200 OK",
        ),
        ("accepted", "item 1", "registered with cucm1.cluster1.lab:5060/tcp"),
    ]
    # A cluster the server does not serve is named.
    assert main(["boot", "--lab-serve", str(served.lab), "--tftp", "nope"]) == 2
    assert "serves no TFTP node of cluster 'nope' (clusters: cluster1)" in capsys.readouterr().err

    # Stopped: the file goes, and a boot says nothing runs.
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(20) == 0
    assert not (served.lab / "lab-serve.json").exists()
    assert main(["boot", "--lab-serve", str(served.lab)]) == 2
    err = capsys.readouterr().err
    assert f"no `vphone lab serve` is running for {served.lab}" in err
    assert "Traceback" not in err


def test_boot_lab_serve_refuses_a_file_left_by_a_dead_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)  # its pid is not running any more
    (tmp_path / "lab-serve.json").write_text(
        json.dumps(
            {
                "format": "vphone-lab-serve",
                "version": 1,
                "pid": dead.pid,
                "host": "127.0.0.1",
                "tftp": {"cluster1": "tftp://127.0.0.1:9"},
                "host_map": {"format": "vphone-host-map", "version": 1, "hosts": {}},
            }
        )
    )
    assert main(["boot", "--lab-serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"(pid {dead.pid}) is not running; start one: vphone lab serve {tmp_path}" in err
    assert main(["boot", "--lab-serve", str(tmp_path), "--server", "tftp://x"]) == 2
    assert "--lab-serve DIR replaces --server and --lab" in capsys.readouterr().err

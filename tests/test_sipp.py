"""External clients against ``vphone lab serve`` (issue 6, "Done when").

* SIPp (Debian's ``sip-tester``, installed by ``.ci/run``) registers with digest credentials:
  the right password gets the 200, a wrong one never does (items 40-41).
* ``vphone boot --server`` over real sockets ends registered with digest, and ``vphone lab
  itl-status`` then lists the phone with a matching hash; a phone still holding an old ITL
  shows as mismatched (item 30).

Everything runs as separate processes, as a user would run them, on 127.0.0.1 with free ports.
Skipped (with the reason) only where ``sipp`` is not installed.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterlab import NOW
from keypool import pooled_keys

from phone.cluster.records import ClusterSpec, Device
from phone.cluster.store import edit_lab, init_lab
from phone.vendor import manufacturing_cas

SCENARIO = Path(__file__).resolve().parent / "data" / "sipp" / "register-digest.xml"
MAC = "001122334455"
USER, PASSWORD = "alice", "correct-horse"
HOST = "cucm1.cluster1.lab"
_CLI = ("-c", "from phone.cli import run; run()")


def vphone(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``vphone`` command in a child process (the CI venv's interpreter)."""
    return subprocess.run(
        [sys.executable, *_CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Served:
    """A ``vphone lab serve`` child process and the host map it wrote."""

    def __init__(self, folder: Path, host_map: Path) -> None:
        self.folder = folder
        self.host_map = host_map
        self.output = ""
        self.process = subprocess.Popen(
            [
                sys.executable,
                *_CLI,
                "lab",
                "serve",
                str(folder),
                "--quiet",
                "--host-map-out",
                str(host_map),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not host_map.exists() or not host_map.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"lab serve did not start: {self.output}")
            time.sleep(0.05)
        self.ports: dict[str, Any] = json.loads(host_map.read_text())["hosts"][HOST]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.output = self.process.stdout.read() if self.process.stdout else ""
        if self.process.stdout:
            self.process.stdout.close()
        assert self.process.returncode == 0, self.output


@pytest.fixture
def lab_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lab"
    init_lab(folder, ClusterSpec(), now=NOW, keys=pooled_keys(), capf_trust=manufacturing_cas())
    with edit_lab(folder) as lab:
        lab.cluster().add_device(
            Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
            now=NOW,
        )
    return folder


@pytest.fixture
def served(lab_folder: Path, tmp_path: Path) -> Iterator[Served]:
    server = Served(lab_folder, tmp_path / "hosts.json")
    try:
        yield server
    finally:
        server.stop()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sipp(port: int, password: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("sipp")
    assert binary is not None
    return subprocess.run(
        [
            binary,
            f"127.0.0.1:{port}",
            "-sf",
            str(SCENARIO),
            "-s",
            USER,
            "-au",
            USER,
            "-ap",
            password,
            "-m",
            "1",
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
            "-p",
            str(_free_udp_port()),
            "-timeout",
            "10s",
            "-timeout_error",
            "-nostdin",
            "-recv_timeout",
            "3000",
            "-trace_msg",
            "-message_file",
            str(tmp_path / "msg.log"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )


needs_sipp = pytest.mark.skipif(
    shutil.which("sipp") is None, reason="sipp is not installed (Debian package sip-tester)"
)


@needs_sipp
def test_item40_sipp_registers_with_digest_and_a_wrong_password_gets_no_200(
    served: Served, tmp_path: Path
) -> None:
    good = sipp(int(served.ports["sip"]), PASSWORD, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    log = (tmp_path / "msg.log").read_text(errors="replace")
    assert "SIP/2.0 401 Unauthorized" in log and 'realm="ccmsipline"' in log
    assert "SIP/2.0 200 OK" in log
    (tmp_path / "msg.log").unlink()
    bad = sipp(int(served.ports["sip"]), "wrong-password", tmp_path)
    assert bad.returncode != 0
    log = (tmp_path / "msg.log").read_text(errors="replace")
    assert "SIP/2.0 401 Unauthorized" in log
    assert "SIP/2.0 200 OK" not in log
    assert "wrong digest credentials" in log


def _itl_status(folder: Path, mac: str, *, timeout: float = 5) -> dict[str, Any]:
    """The itl-status row of ``mac`` once the serving process saved it."""
    deadline = time.monotonic() + timeout
    while True:
        result = vphone("lab", "itl-status", str(folder), "--json")
        assert result.returncode == 0, result.stderr
        rows = {d["device"]: d for d in json.loads(result.stdout)["devices"]}
        if f"SEP{mac}" in rows or time.monotonic() > deadline:
            found: dict[str, Any] = rows.get(f"SEP{mac}", {})
            return found
        time.sleep(0.2)


def test_item30_boot_over_sockets_registers_with_digest_and_itl_status_matches(
    lab_folder: Path, tmp_path: Path
) -> None:
    flash = tmp_path / "flash"
    server = Served(lab_folder, tmp_path / "hosts.json")
    try:
        url = f"tftp://127.0.0.1:{server.ports['tftp']}"
        boot = vphone(
            "boot",
            "--server",
            url,
            "--host-map",
            str(server.host_map),
            "--flash",
            str(flash),
            "--mac",
            MAC,
            "--timeout",
            "1",
            "--json",
        )
        assert boot.returncode == 0, boot.stdout + boot.stderr
        document = json.loads(boot.stdout)
        assert document["state"] == "registered"
        row = _itl_status(lab_folder, MAC)
        assert row["matches"] is True and row["reported_hash"] == document["itl_hash"]
    finally:
        server.stop()
    # The cluster's ITL changes (a new TVS certificate); the phone keeps its old one because
    # its ITL downloads fail, registers, and reports the old hash: a mismatch (item 30).
    assert vphone("lab", "regenerate", str(lab_folder), "tvs", "--yes").returncode == 0
    server = Served(lab_folder, tmp_path / "hosts2.json")
    try:
        url = f"tftp://127.0.0.1:{server.ports['tftp']}"
        boot = vphone(
            "boot",
            "--server",
            url,
            "--host-map",
            str(server.host_map),
            "--flash",
            str(flash),
            "--mac",
            MAC,
            "--timeout",
            "1",
            "--json",
            "--fault",
            "drop:ITL*.tlv",
        )
        assert boot.returncode == 0, boot.stdout + boot.stderr
        deadline = time.monotonic() + 5
        while True:
            row = _itl_status(lab_folder, MAC)
            if row.get("matches") is False or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert row["matches"] is False
        text = vphone("lab", "itl-status", str(lab_folder)).stdout
        assert f"SEP{MAC}" in text and "1 of 1 reporting phones have an ITL that does not" in text
    finally:
        server.stop()

"""``vphone lab serve`` follows its lab folder while serving.

Users rehearse procedures against real clients with the lab served in one terminal and changed
from another: the served lab must be the folder's, the servers' own changes (registrations,
ITL reports) must survive those changes, and a request must see one lab or the other.

* End to end: ``lab serve`` in a subprocess on port 0 (as in tests/test_cli_serve.py); the
  test process boots phones over TFTP with a flash folder and changes the folder with the
  ordinary CLI commands (pooled keys), waiting (bounded) for the server to log each reload.
* In process: the carry-over rule (:func:`phone.cluster.rebase.rebase`), the switch
  (:meth:`phone.net.servers.LabServer.swap`: ports kept, no server left on the old lab,
  requests never failing or mixing labs) and the follower's handling of a damaged folder and
  of a session finishing on a replaced lab.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from keypool import pooled_keys
from subprocs import read_until

from phone.cli import lab_edge, main
from phone.cli.serve import _Follower
from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.itl import itl_hash
from phone.cluster.lab import Lab
from phone.cluster.rebase import baseline, rebase
from phone.cluster.records import ClusterSpec, Device
from phone.cluster.store import edit_lab, init_lab, lab_version, load_lab, read_lab, save_lab
from phone.formats.trustlist import parse_trust_list
from phone.net.http import HttpFetcher
from phone.net.servers import LabServer
from phone.net.sip import SipRegistrar
from phone.net.tvs_tls import TvsTlsServer
from phone.pki import CertKind
from phone.trust.lists import is_empty_itl
from phone.vendor import manufacturing_cas

MAC = "001122334455"
OTHER = "00AABBCCDDEE"
START_TIMEOUT = 20.0  # seconds for the subprocess to import, load the lab and listen
RELOAD_TIMEOUT = 15.0  # seconds for a reload to be logged (it looks once a second)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_lab(path: Path, profile: str, *, now: datetime | None = None) -> Path:
    """A one-node lab with pooled keys (wall-clock dates by default: the served lab runs on
    the wall clock)."""
    init_lab(
        path,
        ClusterSpec("cluster1", release=profile, key_size=1024),
        now=now or datetime.now(UTC),
        keys=pooled_keys(),
        capf_trust=manufacturing_cas(),
    )
    return path


@pytest.fixture(autouse=True)
def pooled_cli_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab commands run in this process regenerate with pooled keys (fast)."""
    keys = pooled_keys()
    monkeypatch.setattr(lab_edge, "key_source", lambda: keys)


# --- lab serve in a subprocess ----------------------------------------------------------------


@dataclass
class Served:
    """A running ``vphone lab serve`` and where it told us it listens."""

    process: subprocess.Popen[bytes]
    lines: list[str]
    lab: Path
    host_map: Path
    log: Path

    def url(self) -> str:
        """``tftp://127.0.0.1:PORT`` of the node's TFTP server as printed."""
        for line in self.lines:
            match = re.search(r"\bTFTP\s+\S+\s+(127\.0\.0\.1:\d+)", line)
            if match:
                return f"tftp://{match[1]}"
        raise AssertionError(f"no TFTP line in {self.lines}")

    def port(self, host: str, service: str) -> int:
        """``service``'s port of ``host`` in the host map the server wrote."""
        document = json.loads(self.host_map.read_text())
        return int(document["hosts"][host][service])

    def wait_reloads(self, count: int) -> str:
        """The server's log once it logged ``count`` reloads in all (bounded wait)."""
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if text.count(": reloaded ") >= count:
                return text
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no reload #{count} logged:\n{self.log.read_text()}")

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit code and the rest of stdout."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.stdout is not None
        rest = self.process.stdout.read()  # to the end: the process closes it when it exits
        return self.process.wait(10), rest.decode()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Served]]:
    """Start ``vphone lab serve LAB`` in a subprocess; killed at teardown if still running."""
    started: list[subprocess.Popen[bytes]] = []

    def start(lab: Path) -> Served:
        host_map, log = tmp_path / "hosts.json", tmp_path / "serve.log"
        with log.open("w") as stderr:
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
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        started.append(process)
        lines = read_until(process, "stops the servers", time.monotonic() + START_TIMEOUT)
        return Served(process, lines, lab, host_map, log)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run a vphone command in this process; its stdout (it must succeed)."""
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, (argv, out.out, out.err)
    return out.out


def boot(capsys: pytest.CaptureFixture[str], served: Served, flash: Path) -> dict[str, Any]:
    """Boot the phone with ``flash`` over TFTP against ``served``; its JSON report."""
    main(
        [
            "boot",
            "--json",
            "--server",
            served.url(),
            "--host-map",
            str(served.host_map),
            "--flash",
            str(flash),
        ]
    )
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def itl_step(document: dict[str, Any]) -> dict[str, Any]:
    """The boot's decision about the ITL file it fetched."""
    steps = [t for t in document["trace"] if t["step"] == "itl" and t["file"]]
    assert steps, document["trace"]
    step: dict[str, Any] = steps[-1]
    return step


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


# --- end to end ---------------------------------------------------------------------------------


def test_served_lab_follows_regenerate_and_rollback(
    serve: Callable[[Path], Served], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """8.x-11.5: the ITL is signed by CallManager, so a regenerated CallManager certificate
    reaches phones through TVS (items 12, 20), and the rollback parameter serves the empty
    ITL (item 16); both while ``lab serve`` keeps running."""
    served = serve(make_lab(tmp_path / "lab", "8.x-11.5"))
    flash = tmp_path / "flash"
    first = boot(capsys, served, flash)
    assert first["state"] == "registered", first["trace"]
    assert itl_step(first)["rule"] == "item 9"  # trusted on first use
    tvs_port = served.port("cucm1.cluster1.lab", "tvs")

    cli(capsys, "lab", "regenerate", str(served.lab), "callmanager", "--yes")
    log = served.wait_reloads(1)
    assert "CallManager certificate of cucm1.cluster1.lab replaced" in log
    assert re.search(r"ITL of cucm1\.cluster1\.lab [0-9a-f]{12} -> [0-9a-f]{12}", log)
    second = boot(capsys, served, flash)
    step = itl_step(second)
    assert (step["decision"], step["rule"]) == ("accepted", "items 12, 20"), step
    assert "Trust List updated" in second["status"]
    assert second["state"] == "registered"
    assert served.port("cucm1.cluster1.lab", "tvs") == tvs_port  # the same ports

    cli(capsys, "lab", "set", str(served.lab), "prepare-cluster-for-rollback", "true")
    log = served.wait_reloads(2)
    assert "prepare_cluster_for_rollback False -> True" in log
    third = boot(capsys, served, flash)
    assert itl_step(third)["decision"] == "accepted"
    assert is_empty_itl(parse_trust_list((flash / "ITLFile.tlv").read_bytes()))

    code, rest = served.stop()
    assert code == 0, served.log.read_text()
    assert "every server closed" in rest
    # The folder's changes survived the server's last save.
    saved = load_lab(served.lab).cluster()
    assert saved.parameters.prepare_cluster_for_rollback
    assert MAC in saved.registrations


def test_registrations_survive_reloads_and_nodes_stop_and_start(
    serve: Callable[[Path], Served], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """14.x: the phone's ITL report, made to the served registrar, is in ``lab itl-status``
    after another command changed the folder (most runs change it before the server saved the
    registration: the carry-over path); a node stopped and started keeps its ports."""
    served = serve(make_lab(tmp_path / "lab", "14.x"))
    flash = tmp_path / "flash"
    assert boot(capsys, served, flash)["state"] == "registered"
    cli(capsys, "lab", "add-device", str(served.lab), OTHER)  # at once: likely before a save
    served.wait_reloads(1)
    status = json.loads(cli(capsys, "lab", "itl-status", str(served.lab), "--json"))
    rows = {row["device"]: row for row in status["devices"]}
    assert rows[f"SEP{MAC}"]["matches"], status
    registered_at = load_lab(served.lab).cluster().registrations[MAC]

    # The registrar now works on the reloaded lab: later registrations land in the folder.
    host = "cucm1.cluster1.lab"
    tvs = served.port(host, "tvs")
    assert boot(capsys, served, flash)["state"] == "registered"
    cli(capsys, "lab", "node", "stop", str(served.lab), host)
    served.wait_reloads(2)
    assert not _connects(tvs)  # nothing listens on a stopped node's ports ...
    assert served.port(host, "tvs") == tvs  # ... which stay in the host map
    cli(capsys, "lab", "node", "start", str(served.lab), host)
    log = served.wait_reloads(3)
    assert f"node {host} stopped" in log and f"node {host} started" in log
    assert _connects(tvs)
    assert boot(capsys, served, flash)["state"] == "registered"

    code, _ = served.stop()
    assert code == 0, served.log.read_text()
    cluster = load_lab(served.lab).cluster()
    assert {MAC, OTHER} <= set(cluster.devices)  # the folder's device and the served one
    assert cluster.registrations[MAC] > registered_at  # seconds later: the last boot's
    assert MAC in cluster.hashes.devices
    assert "not kept" not in served.log.read_text()


# --- the carry-over rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A phone's ITL report (item 30)."""

    tftp_host: str
    itl_hash: str
    timestamp: int


def _register(cluster: Cluster, mac: str, when: datetime) -> None:
    host = cluster.tftp_hosts[0]
    itl = cluster.stored_itl(host)
    assert itl is not None
    report = Report(host, itl_hash(itl), int(when.timestamp()))
    assert cluster.register(mac, now=when, itl_report=report).accepted


def test_rebase_carries_registrations_onto_the_folders_changes(tmp_path: Path) -> None:
    path = make_lab(tmp_path / "lab", "14.x", now=NOW)
    ours = load_lab(path)
    base = baseline(ours)
    _register(ours.cluster(), MAC, NOW + timedelta(minutes=1))  # auto-registers
    with edit_lab(path) as lab:  # meanwhile, another command
        lab.cluster().set_parameter("prepare-cluster-for-rollback", "true", now=NOW)
    theirs = load_lab(path)
    folder_seq = theirs.cluster().next_log_seq

    report = rebase(ours, base, theirs)

    assert report.dropped == []
    assert report.carried == [
        "cluster1: 1 device, 1 registration, 1 ITL report, 2 log lines"  # report and register
    ]
    cluster = theirs.cluster()
    assert cluster.parameters.prepare_cluster_for_rollback  # the folder's change
    assert cluster.devices[MAC].autoregistered
    assert MAC in cluster.registrations and MAC in cluster.hashes.devices
    new = cluster.log_since(folder_seq)
    assert [e.seq for e in new] == [folder_seq, folder_seq + 1]  # numbered after the folder's
    assert new[-1].message == f"SEP{MAC} registered (auto-registered)"
    assert save_lab(theirs) == ["cluster1"]
    again = load_lab(path).cluster()
    assert MAC in again.registrations and again.parameters.prepare_cluster_for_rollback


def test_rebase_the_folder_wins_conflicts_and_removals(tmp_path: Path) -> None:
    path = make_lab(tmp_path / "lab", "14.x", now=NOW)
    with edit_lab(path) as lab:
        for mac in (MAC, OTHER):
            lab.cluster().add_device(Device(mac, load="LOAD-0"), now=NOW)
    ours = load_lab(path)
    base = baseline(ours)
    later = NOW + timedelta(minutes=5)
    ours.cluster().update_device(MAC, now=later, load="LOAD-OURS", digest_user="alice")
    _register(ours.cluster(), OTHER, later)
    with edit_lab(path) as lab:
        lab.cluster().update_device(MAC, now=NOW, load="LOAD-FOLDER")
        lab.cluster().remove_device(OTHER, now=NOW)
    theirs = load_lab(path)

    report = rebase(ours, base, theirs)

    device = theirs.cluster().devices[MAC]
    assert device.load == "LOAD-FOLDER"  # changed on both sides: the folder's
    assert device.digest_user == "alice"  # changed here only: carried
    assert device.changed_at == int(later.timestamp())  # the newer change dates the config
    assert OTHER not in theirs.cluster().devices  # removed from the folder: stays removed
    assert OTHER not in theirs.cluster().registrations
    assert report.dropped == [
        f"cluster1: SEP{MAC} load was changed here and in the folder: the folder's is kept",
        f"cluster1: SEP{OTHER} is gone from the folder: its registration is dropped",
    ]


# --- the switch ------------------------------------------------------------------------------


def _labs_reachable(root: object) -> list[object]:
    """Every Lab and Cluster reachable from ``root`` through the attributes of phone objects
    (and containers), not looking inside labs and clusters themselves."""
    found: list[object] = []
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(root, 0)]
    while todo:
        value, depth = todo.pop()
        if id(value) in seen or depth > 4:
            continue
        seen.add(id(value))
        if isinstance(value, Lab | Cluster):
            found.append(value)
        elif isinstance(value, dict):
            todo += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            todo += [(v, depth + 1) for v in value]
        elif type(value).__module__.startswith("phone.") and hasattr(value, "__dict__"):
            todo += [(v, depth + 1) for v in vars(value).values()]
    return found


def _threads(server: object) -> list[threading.Thread]:
    if isinstance(server, SipRegistrar):
        return list(server.threads)
    assert isinstance(server, TvsTlsServer) and server.thread is not None
    return [server.thread]


def test_swap_keeps_ports_rebinds_every_server_and_follows_the_new_lab(tmp_path: Path) -> None:
    path = make_lab(tmp_path / "lab", "14.x", now=NOW)
    old = load_lab(path)
    with LabServer(old, clock=lambda: NOW) as server:
        before = {(x.node, x.service): x.address for x in server.listeners}
        with edit_lab(path) as lab:
            lab.cluster().set_mixed_mode(True, now=NOW)
            lab.add_cluster(ClusterSpec("cluster2", key_size=1024), now=NOW, keys=pooled_keys())
        new = load_lab(path)
        server.swap(new)

        after = {(x.node, x.service): x.address for x in server.listeners}
        assert {k: after[k] for k in before} == before  # every port kept
        added = set(after) - set(before)
        assert ("cucm1.cluster1.lab", "sips") in added  # mixed mode: SIP over TLS now
        assert ("cucm1.cluster2.lab", "tvs") in added  # the new cluster is served
        registrar = server.server_for("cucm1.cluster1.lab", "sip")
        assert isinstance(registrar, SipRegistrar) and registrar.tls_address is not None
        stale = {id(old), *(id(c) for c in old.clusters)}
        for key in after:
            running = server.server_for(*key)
            if running is not None:
                assert not [x for x in _labs_reachable(running) if id(x) in stale], key
        # The host map has the new cluster's node, and the TLS port of the old one.
        host_map = server.host_map()
        assert host_map.resolve("cucm1.cluster2.lab", "tvs") == after[("cucm1.cluster2.lab", "tvs")]
        assert host_map.resolve("cucm1.cluster1.lab", "sips") == registrar.tls_address

        # Back: cluster2's nodes are gone (stopped), cluster1 leaves mixed mode (no TLS).
        cluster2 = [server.server_for("cucm1.cluster2.lab", s) for s in ("tvs", "sip")]
        server.swap(old)
        assert {(x.node, x.service): x.address for x in server.listeners} == before
        assert all(isinstance(s, SipRegistrar | TvsTlsServer) for s in cluster2)
        assert [t for s in cluster2 for t in _threads(s) if t.is_alive()] == []
        registrar = server.server_for("cucm1.cluster1.lab", "sip")
        assert isinstance(registrar, SipRegistrar) and registrar.tls_address is None


def test_requests_during_swaps_see_one_lab_or_the_other(tmp_path: Path) -> None:
    """A file fetched while the lab is switched back and forth is always one lab's, and no
    request fails: the servers are never restarted by a swap."""
    path = make_lab(tmp_path / "lab", "8.x-11.5", now=NOW)
    first = load_lab(path)
    with edit_lab(path) as lab:
        certops.regenerate(lab.cluster(), CertKind.CALLMANAGER, now=NOW, keys=pooled_keys())
    second = load_lab(path)
    expected = {
        lab.cluster().stored_itl("cucm1.cluster1.lab"): name
        for lab, name in ((first, "first"), (second, "second"))
    }
    assert len(expected) == 2
    with LabServer(first, clock=lambda: NOW) as server:
        _, port = server.address("cucm1.cluster1.lab", "http")
        stop = threading.Event()
        fetched: list[bytes] = []
        errors: list[BaseException] = []

        def hammer() -> None:
            with HttpFetcher() as http:
                while not stop.is_set():
                    try:
                        fetched.append(http.fetch("127.0.0.1", port, "ITLFile.tlv"))
                    except BaseException as exc:  # every failure is the test's
                        errors.append(exc)
                        return

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            with HttpFetcher() as http:
                for round_ in range(20):
                    lab = second if round_ % 2 == 0 else first
                    count = len(fetched)
                    server.swap(lab)
                    # Right after the switch, the new lab answers.
                    data = http.fetch("127.0.0.1", port, "ITLFile.tlv")
                    assert data == lab.cluster().stored_itl("cucm1.cluster1.lab")
                    # Let the other client fetch from this lab too before the next switch.
                    deadline = time.monotonic() + 5
                    while len(fetched) <= count + 1 and not errors:
                        assert time.monotonic() < deadline, "the fetching thread is stuck"
                        time.sleep(0.001)
        finally:
            stop.set()
            worker.join(10)
    assert errors == []
    assert {expected.get(data, "neither") for data in fetched} == {"first", "second"}


# --- the follower ------------------------------------------------------------------------------


def _follower(path: Path) -> tuple[_Follower, LabServer]:
    lab, version = read_lab(path)
    server = LabServer(lab, clock=lambda: NOW)  # not started: the switch needs no sockets
    return _Follower(server, path, lab, version, clock=lambda: NOW), server


def test_follower_saves_reloads_and_skips_a_damaged_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="phone.cli.serve")
    path = make_lab(tmp_path / "lab", "14.x", now=NOW)
    follower, server = _follower(path)
    with server.lock:  # as the registrar does
        _register(follower.lab.cluster(), MAC, NOW)
    follower.step()  # the folder did not change: saved in place, no reload
    assert follower.reloads == 0 and MAC in load_lab(path).cluster().registrations

    cluster_file = path / "clusters" / "cluster1" / "cluster.json"
    good = cluster_file.read_bytes()
    cluster_file.write_bytes(b"{not json")
    with server.lock:
        _register(follower.lab.cluster(), OTHER, NOW)
    served = follower.lab
    for _ in range(2):  # reported once, not saved over, the old lab still served
        follower.step()
    assert server.lab is served and follower.reloads == 0
    assert cluster_file.read_bytes() == b"{not json"
    assert caplog.text.count("cannot be loaded") == 1

    # Repaired, and changed (the same bytes as before would be no change: saved in place).
    cluster_file.write_bytes(good)
    with edit_lab(path) as lab:
        lab.cluster().set_parameter("autoregistration", "false", now=NOW)
    follower.step()
    assert follower.reloads == 1 and server.lab is follower.lab is not served
    cluster = load_lab(path).cluster()
    assert {MAC, OTHER} <= set(cluster.registrations)  # the registration made meanwhile
    assert not cluster.parameters.autoregistration
    assert lab_version(path) == follower.version


def test_follower_carries_changes_made_to_a_replaced_lab(tmp_path: Path) -> None:
    """A CAPF session in progress at a reload finishes on the replaced lab: what it records
    there still reaches the folder (and the served lab) at the next step."""
    path = make_lab(tmp_path / "lab", "14.x", now=NOW)
    with edit_lab(path) as lab:
        lab.cluster().add_device(Device(MAC), now=NOW)
    follower, server = _follower(path)
    replaced = follower.lab
    with edit_lab(path) as lab:
        lab.cluster().set_parameter("autoregistration", "false", now=NOW)
    follower.step()
    assert follower.reloads == 1 and follower.lab is not replaced
    with server.lock:  # the session's last frame, on the lab it started with
        replaced.cluster().update_device(MAC, now=NOW, load="LOAD-LSC")
        replaced.cluster().note(NOW, "session 7: done", service="CAPF")
    follower.step()
    assert follower.reloads == 2
    for cluster in (load_lab(path).cluster(), follower.lab.cluster()):
        assert cluster.devices[MAC].load == "LOAD-LSC"
        assert not cluster.parameters.autoregistration
        assert cluster.log[-1].message == "session 7: done"
    follower.step()  # carried once: nothing left to do
    assert follower.reloads == 2 and not follower.pending()

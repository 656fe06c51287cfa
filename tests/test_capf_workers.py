"""CAPF on several processes (phone/net/capf_workers.py): enrollments through worker processes
change the parent's lab exactly as one process does, concurrent ones all land, and a worker
that dies leaves the parent serving and stoppable. Loopback, ephemeral ports, every pool
stopped; timings are bounds against a hang, never assertions on speed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys
from waiting import eventually

from phone.api import create_lab
from phone.cli import main
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfOperation
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device.capf import CapfClient, CapfServerTrust
from phone.net.capf_tls import CapfTlsServer, capf_exchange_tls
from phone.net.capf_workers import CapfWorkerPool
from phone.net.servers import LabServer
from phone.net.service import BackgroundService
from phone.net.tvs_tls import client_context
from phone.pki import Identity, issue
from phone.trust.lists import parse_shared
from phone.trust.tvs import TvsOutcome
from phone.vendor import manufacturing_ca
from phone.wire.capf import AuthType, Command, Frame, FrameReader, Tag, encode_frame, u8_element

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MACS = [f"00AA000000{i:02X}" for i in range(6)]


def _clock() -> datetime:
    return NOW


def _lab() -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    for index, mac in enumerate(MACS):
        cluster.add_device(Device(mac), now=NOW)
        if index % 3 == 2:  # a third of them by authentication string, one with a wrong one
            capf.set_pending(
                cluster, mac, CapfOperation.INSTALL, CapfAuth.STRING, secret="4321", now=NOW
            )
        else:
            capf.set_pending(cluster, mac, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    return lab


def _no_tvs(issuer: str, serial: bytes, certificate: object = None) -> TvsOutcome:
    raise AssertionError("the ITL has a CAPF record: TVS is not asked")


def _enroll(lab: Lab, address: tuple[str, int], mac: str, lock: threading.RLock) -> CapfClient:
    with lock:
        cluster = lab.cluster()
        data = cluster.itl_file(cluster.tftp_hosts[0])
    assert data is not None
    trust = CapfServerTrust(None, parse_shared(data), _no_tvs)
    key = ec.generate_private_key(ec.SECP256R1())
    mic = Identity(
        issue(manufacturing_ca("88xx"), f"CP-8841-SEP{mac}", key.public_key(), now=NOW), key
    )
    wrong = mac == MACS[5]
    client = CapfClient(
        device_name=f"SEP{mac}",
        auth=AuthType.PASSWORD if mac in (MACS[2], MACS[5]) else AuthType.NO_PASSWORD,
        mic=mic,
        lsc=None,
        keys=pooled_keys(),
        trust=trust,
        store=lambda identity: None,
        delete=lambda: False,
        now=NOW,
        secret="0000" if wrong else "4321",
    )
    capf_exchange_tls(address, client, trust, timeout=10.0)
    assert client.finished
    return client


def _state(lab: Lab) -> list[str]:
    """What CAPF left in the lab, LSC serials (random) replaced by their order of issue."""
    cluster = lab.cluster()
    lines = [
        f"{entry}" for entry in cluster.state.log if "CAPF" in str(entry) or "capf" in str(entry)
    ]
    for mac in MACS:
        device = cluster.device(mac)
        assert device is not None
        lsc = device.certificate
        lines.append(
            f"{mac} pending={device.capf} result={device.capf_result} "
            f"lsc={lsc.subject.rfc4514_string() if lsc else None} "
            f"by={lsc.issuer.rfc4514_string() if lsc else None}"
        )
    serials: dict[str, str] = {}
    text = "\n".join(lines)
    for serial in re.findall(r"\b[0-9a-f]{32,40}\b", text):
        serials.setdefault(serial, f"<serial {len(serials) + 1}>")
    for serial, name in serials.items():
        text = text.replace(serial, name)
    return text.splitlines()


def _serve(server: BackgroundService, lab: Lab, lock: threading.RLock) -> list[bool]:
    with server:
        return [
            _enroll(lab, server.address, mac, lock).outcome.ok  # type: ignore[union-attr]
            for mac in MACS
        ]


def test_enrollments_through_two_workers_change_the_lab_as_one_process() -> None:
    one, two = _lab(), _lab()
    host = one.cluster().publisher.hostname
    lock_one, lock_two = threading.RLock(), threading.RLock()
    single = CapfTlsServer(one, host, clock=_clock, lock=lock_one)
    pool = CapfWorkerPool(two, host, processes=2, clock=_clock, lock=lock_two)
    assert _serve(single, one, lock_one) == [True, True, True, True, True, False]
    assert _serve(pool, two, lock_two) == [True, True, True, True, True, False]
    assert _state(two) == _state(one)
    assert "reason='authentication failed: wrong authentication string'" in _state(two)[-1]
    assert (pool.sessions, single.sessions) == (6, 6)
    assert pool.open_sessions == 0


def test_concurrent_enrollments_of_distinct_devices_on_two_workers_all_land() -> None:
    lab = _lab()
    lock = threading.RLock()
    pool = CapfWorkerPool(
        lab, lab.cluster().publisher.hostname, processes=2, clock=_clock, lock=lock
    )
    outcomes: dict[str, bool] = {}
    with pool:
        threads = [
            threading.Thread(
                target=lambda mac=mac: outcomes.__setitem__(
                    mac,
                    _enroll(lab, pool.address, mac, lock).outcome.ok,  # type: ignore[union-attr]
                )
            )
            for mac in MACS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert pool.sessions == 6 and pool.dropped == 0
        pids = pool.pids
    assert outcomes == {mac: mac != MACS[5] for mac in MACS}
    for mac in MACS[:5]:
        device = lab.cluster().device(mac)
        assert device is not None and device.certificate is not None and device.capf is None
    assert all(_gone(pid) for pid in pids)


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left (a child not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_worker_that_dies_leaves_the_parent_serving_and_stoppable() -> None:
    lab = _lab()
    lock = threading.RLock()
    pool = CapfWorkerPool(
        lab, lab.cluster().publisher.hostname, processes=2, clock=_clock, lock=lock
    )
    pool.start()
    held: socket.socket | None = None
    try:
        # A session opened and left waiting for the phone's AUTH_RESPONSE.
        held = client_context(None).wrap_socket(socket.create_connection(pool.address, timeout=5))
        reader = FrameReader()
        while not reader.feed(held.recv(65536)):
            pass
        assert pool.open_sessions == 1
        victim, survivor = pool.pids
        os.kill(victim, signal.SIGKILL)
        assert eventually(lambda: _gone(victim), timeout=10.0)
        # New connections reach the surviving worker; the parent still runs every session.
        assert _enroll(lab, pool.address, MACS[0], lock).outcome.ok  # type: ignore[union-attr]
        held.close()  # its session ends either way: with the dead worker, or as a phone gone
        assert eventually(lambda: pool.open_sessions == 0, timeout=10.0)
        assert any("dropped" in str(entry) for entry in lab.cluster().state.log)
    finally:
        if held is not None:
            held.close()
        stopper = threading.Thread(target=pool.stop)
        stopper.start()
        stopper.join(30)
    assert not stopper.is_alive()  # a hang, not a speed: stop() returned
    assert _gone(survivor)


def test_lab_server_runs_capf_on_worker_processes() -> None:
    lab = _lab()
    server = LabServer(lab, capf_workers=2, clock=_clock)
    with server:
        host = lab.cluster().publisher.hostname
        pool = server.server_for(host, "capf")
        assert isinstance(pool, CapfWorkerPool)
        client = _enroll(lab, server.address(host, "capf"), MACS[1], server.lock)
        assert client.outcome is not None and client.outcome.ok
        device = lab.cluster().device(MACS[1])
        assert device is not None and device.certificate is not None
        pids = pool.pids
    assert all(_gone(pid) for pid in pids)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--capf-workers must be between 1 and 64, not 0"),
        ("65", "--capf-workers must be between 1 and 64, not 65"),
    ],
)
def test_lab_serve_refuses_a_bad_number_of_capf_workers(
    tmp_path: Path, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["lab", "serve", str(tmp_path), "--capf-workers", value])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def _served_certificate(address: tuple[str, int]) -> bytes:
    with client_context(None).wrap_socket(socket.create_connection(address, timeout=5)) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_a_swap_returns_once_every_worker_serves_the_new_capf_certificate() -> None:
    first, second = _lab(), _lab()
    old = first.cluster().capf.certificate.public_bytes(Encoding.DER)
    new = second.cluster().capf.certificate.public_bytes(Encoding.DER)
    assert old != new
    server = LabServer(first, capf_workers=2, clock=_clock)
    with server:
        host = first.cluster().publisher.hostname
        address = server.address(host, "capf")
        assert _served_certificate(address) == old
        server.swap(second)
        # No wait: the swap returned after every worker had the new certificate.
        assert [_served_certificate(address) for _ in range(4)] == [new] * 4
        client = _enroll(second, address, MACS[0], server.lock)
        assert client.outcome is not None and client.outcome.ok
    device = second.cluster().device(MACS[0])
    assert device is not None and device.certificate is not None
    untouched = first.cluster().device(MACS[0])
    assert untouched is not None and untouched.certificate is None


def _breach(server: BackgroundService, garbage: bytes) -> bytes:
    """Every byte the server sends a phone that answers AUTH_REQUEST with ``garbage``."""
    raw = socket.create_connection(server.address, timeout=5)
    with client_context(None).wrap_socket(raw) as tls:
        got, reader = b"", FrameReader()
        while not reader.feed(data := tls.recv(65536)):
            got += data
        got += data
        tls.sendall(garbage)
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            while data := tls.recv(65536):
                got += data
    return got


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x57\x01\x01\x00\x00\x00\x00\x01\x00",  # a TVS header: the worker's framing refuses it
        # AUTH_RESPONSE to session 1 without a device name: the session refuses it
        encode_frame(Frame(Command.AUTH_RESP, 1, (u8_element(Tag.VERSION, 3),))),
    ],
    ids=["framing", "session"],
)
def test_a_breach_gets_the_same_bytes_and_log_from_two_workers_as_from_one_process(
    garbage: bytes,
) -> None:
    one, two = _lab(), _lab()
    host = one.cluster().publisher.hostname
    single = CapfTlsServer(one, host, clock=_clock)
    pool = CapfWorkerPool(two, host, processes=2, clock=_clock)
    with single:
        expected = _breach(single, garbage)
        assert eventually(lambda: single.dropped == 1, timeout=10.0)
    with pool:
        assert _breach(pool, garbage) == expected
        assert eventually(lambda: pool.dropped == 1, timeout=10.0)
        assert pool.open_sessions == 0
    # AUTH_REQUEST {VERSION 3, AUTH_TYPE 0}, then END_SESSION {REASON 7} (tvs-capf-wire.md 2.7)
    assert expected == (
        b"\x55\x01\x00\x00\x00\x01\x00\x08\x07\x00\x01\x03\x08\x00\x01\x00"
        b"\x55\x0f\x00\x00\x00\x01\x00\x04\x01\x00\x01\x07"
    )
    assert one.cluster().log[-1].message == two.cluster().log[-1].message
    assert "dropped" in two.cluster().log[-1].message

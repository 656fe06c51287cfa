"""SCCP registration (issue 15 items 2-3): the station service, the 7942 over SCCP in memory
and over real loopback sockets (TCP 2000 / TLS 2443 of ``LabServer``), secure modes, and
Wireshark's skinny dissector on a captured registration."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from clusterlab import NOW, make_lab
from keypool import pooled_keys

from phone.api import create_phone
from phone.cluster.certops import regenerate
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, SecurityMode
from phone.cluster.sccp import REJECT_UNKNOWN, SccpStation, reject_text
from phone.cluster.signaling import Source
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.device.port import RegisterRequest, RegisterResult, Requester
from phone.device.sccp import SccpClient
from phone.errors import UsageError
from phone.net.faults import FaultyBackend, parse_fault
from phone.net.memory import MemoryBackend
from phone.net.servers import LabServer
from phone.net.sockets import SocketBackend
from phone.pki import CertKind
from phone.scenario import load_scenario, parse_scenario, run_scenario
from phone.wire.sccp import (
    DEVICE_TYPES,
    CapabilitiesReq,
    CapabilitiesRes,
    KeepAlive,
    KeepAliveAck,
    RegisterAck,
    RegisterReject,
    StationRegister,
    Unregister,
    UnregisterAck,
)
from phone.wire.sccp.emulated import itl_report_message, read_itl_report

MAC = "001122334455"
SECURE = "00AABBCCDDEE"
UNKNOWN = "0011223344FF"


def clock() -> datetime:
    return NOW


def _lab(*, mixed: bool = False, autoregistration: bool = False) -> Lab:
    lab = make_lab(ClusterSpec("c1", mixed_mode=mixed))
    cluster = lab.cluster()
    cluster.add_device(Device(MAC, model="7942"), now=NOW)
    cluster.add_device(Device(SECURE, model="7942", security_mode=SecurityMode.ENCRYPTED), now=NOW)
    cluster.set_parameter("autoregistration", "on" if autoregistration else "off", now=NOW)
    return lab


def _phone(lab: Lab, mac: str = MAC, **kw: object) -> VirtualPhone:
    return create_phone(lab, mac=mac, model="7942", protocol="sccp", clock=clock, **kw)  # type: ignore[arg-type]


def _last(phone: VirtualPhone) -> str:
    return phone.trace[-1].reason


# --- the station service (pure) ---------------------------------------------------------------


def test_station_registers_after_capabilities_res_and_answers_keepalive() -> None:
    lab = _lab()
    cluster = lab.cluster()
    station = SccpStation(cluster, cluster.publisher.hostname, Source("10.0.0.2", 51000, "tcp"))
    register = StationRegister(
        device_name=f"SEP{MAC}", device_type=DEVICE_TYPES["7942"], protocol_version=20
    )
    ack, request = station.receive(register, NOW)
    assert isinstance(ack, RegisterAck) and isinstance(request, CapabilitiesReq)
    assert (ack.keepalive, ack.protocol_version) == (30, 17)
    assert MAC not in cluster.registrations  # not before CapabilitiesRes (docs/sccp.md [G])
    assert station.receive(CapabilitiesRes(), NOW) == []
    assert MAC in cluster.registrations and station.registered
    assert station.receive(KeepAlive(), NOW) == [KeepAliveAck()]
    assert station.receive(Unregister(), NOW) == [UnregisterAck(0)]
    assert MAC not in cluster.registrations and station.finished


def test_station_rejects_unknown_device_with_error_dbconfig() -> None:
    lab = _lab()
    cluster = lab.cluster()
    station = SccpStation(cluster, cluster.publisher.hostname, Source("10.0.0.2", 1, "tcp"))
    answers = station.receive(StationRegister(device_name=f"SEP{UNKNOWN}"), NOW)
    assert answers == [RegisterReject(text="Error DBConfig")]
    assert REJECT_UNKNOWN == "Error DBConfig" and station.finished


def test_station_refuses_secure_device_over_tcp_with_no_authority() -> None:
    lab = _lab(mixed=True)
    cluster = lab.cluster()
    station = SccpStation(cluster, cluster.publisher.hostname, Source("10.0.0.2", 1, "tcp"))
    answers = station.receive(StationRegister(device_name=f"SEP{SECURE}"), NOW)
    assert answers == [RegisterReject(text=f"No Authority: SEP{SECURE}")]
    assert reject_text(f"SEP{SECURE}") == "No Authority: SEP00AABBCCDDEE"
    assert "must register over TLS" in cluster.log[-1].message


def test_emulated_itl_report_round_trip() -> None:
    message = itl_report_message("cucm1.c1.lab", "ab" * 20, 1_767_268_800)
    assert message.message_id == 0x7F01 and len(message.raw) == 88
    assert read_itl_report(message) == ("cucm1.c1.lab", "ab" * 20, 1_767_268_800)


# --- the phone in memory ----------------------------------------------------------------------


def test_7942_registers_over_sccp_in_memory_and_reports_its_itl() -> None:
    lab = _lab()
    phone = _phone(lab)
    assert phone.boot() is State.REGISTERED
    assert _last(phone) == "registered with cucm1.c1.lab:2000/tcp (SCCP)"
    # The emulated ITL report [G] reached the ITL File Status table (item 30).
    row = lab.cluster().hashes.devices[MAC]
    assert (row.hash, row.tftp_host) == (phone.itl_hash(), "cucm1.c1.lab")


def test_protocol_defaults_and_refusals() -> None:
    lab = _lab()
    assert create_phone(lab, mac=MAC, model="7942").protocol == "SIP"  # runs both: SIP
    assert create_phone(lab, mac=MAC, model="7905").protocol == "SCCP"  # SCCP only
    with pytest.raises(UsageError, match="the 8841 does not run SCCP"):
        create_phone(lab, mac=MAC, model="8841", protocol="sccp")


def test_unknown_7942_is_rejected_and_autoregisters_when_allowed() -> None:
    # Autoregistration off: XMLDefault names no CallManager, so a phone's boot never gets
    # this far; a station that reaches the CallManager anyway is rejected.
    request = RegisterRequest(
        callmanager="cucm1.c1.lab",
        port=2000,
        transport="tcp",
        requester=Requester(mac=UNKNOWN, model="7942"),
        load="SCCP42.9-4-2SR3-1S",
    )
    client = SccpClient(request.requester, load=request.load)
    MemoryBackend(_lab(), clock=clock).sccp_exchange(request, client)
    assert client.result == RegisterResult(False, 403, "Error DBConfig")
    lab = _lab(autoregistration=True)
    assert _phone(lab, UNKNOWN).boot() is State.REGISTERED
    device = lab.cluster().device(UNKNOWN)
    assert device is not None and device.autoregistered and device.model == "7942"


def test_encrypted_7942_registers_over_tls_2443_only_with_a_ctl() -> None:
    lab = _lab(mixed=True)
    phone = _phone(lab, SECURE)
    assert phone.boot() is State.REGISTERED
    assert _last(phone) == "registered with cucm1.c1.lab:2443/tls (SCCP)"
    # Without a CTL (the file dropped on the path) the phone does not register (item 7).
    backend = FaultyBackend(MemoryBackend(lab, clock=clock), [parse_fault("drop:CTL*")])
    bare = _phone(lab, SECURE, backend=backend)
    assert bare.boot() is State.REGISTRATION_FAILED
    assert "needs a CTL and none was installed after 4 attempts" in _last(bare)


def test_regenerated_callmanager_certificate_without_ctl_update_fails() -> None:
    lab = _lab(mixed=True)
    phone = _phone(lab, SECURE)
    assert phone.boot() is State.REGISTERED
    cluster = lab.cluster()
    regenerate(cluster, CertKind.CALLMANAGER, now=NOW, keys=pooled_keys(), host="cucm1.c1.lab")
    assert phone.reset() is State.REGISTRATION_FAILED
    reason = _last(phone)
    assert "cucm1.c1.lab:2443" in reason
    assert "the CallManager certificate is not a CCM record of the installed CTL" in reason


# --- real sockets -----------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[Lab, LabServer]]:
    lab = _lab(mixed=True)
    server = LabServer(lab, clock=clock)
    server.start()
    threads = server.threads()
    try:
        yield lab, server
    finally:
        server.stop()
        assert all(not t.is_alive() for t in threads)


def _socket_phone(lab: Lab, server: LabServer, mac: str) -> tuple[VirtualPhone, SocketBackend]:
    backend = SocketBackend(server.host_map(), timeout=2.0, tvs_timeout=2.0, sip_timeout=2.0)
    return _phone(lab, mac, backend=backend), backend


def test_lab_server_lists_sccp_listeners(served: tuple[Lab, LabServer]) -> None:
    server = served[1]
    lines = [line for line in server.describe() if "SCCP" in line]
    assert len(lines) == 2
    assert "tcp" in lines[0] and "tls" in lines[1]
    assert set(server.host_map().entries["cucm1.c1.lab"].ports) >= {"sccp", "sccps"}


def test_7942_registers_over_tcp_and_tls_with_lab_server(served: tuple[Lab, LabServer]) -> None:
    lab, server = served
    phone, backend = _socket_phone(lab, server, MAC)
    try:
        assert phone.boot() is State.REGISTERED
        port = server.address("cucm1.c1.lab", "sccp")[1]
        assert _last(phone) == "registered with cucm1.c1.lab:2000/tcp (SCCP)"
        assert port != 0
        secure, backend2 = _socket_phone(lab, server, SECURE)
        try:
            assert secure.boot() is State.REGISTERED
            assert _last(secure) == "registered with cucm1.c1.lab:2443/tls (SCCP)"
        finally:
            backend2.close()
    finally:
        backend.close()
    with server.lock:
        assert {MAC, SECURE} <= set(lab.cluster().registrations)


# --- Wireshark --------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Debian package) not on PATH")
def test_tshark_decodes_a_registration_captured_from_lab_server(
    served: tuple[Lab, LabServer], tmp_path: Path
) -> None:
    lab, server = served
    port = server.address("cucm1.c1.lab", "sccp")[1]
    capture = tmp_path / "sccp.pcap"
    tshark = subprocess.Popen(
        ["tshark", "-i", "lo", "-f", f"tcp port {port}", "-w", str(capture), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not capture.exists() or capture.stat().st_size == 0:
            if tshark.poll() is not None or time.monotonic() > deadline:
                # Stop it before reading its stderr: a live tshark never closes the pipe, so
                # reading it would wait for ever (seen under load, when it starts slowly).
                tshark.terminate()
                _, err = tshark.communicate(timeout=10)
                pytest.skip(f"tshark cannot capture on lo here: {err!r}")
            time.sleep(0.05)
        time.sleep(0.3)
        phone, backend = _socket_phone(lab, server, MAC)
        try:
            assert phone.boot() is State.REGISTERED
        finally:
            backend.close()
        time.sleep(0.5)
    finally:
        tshark.terminate()
        tshark.wait(10)
        if tshark.stderr is not None:
            tshark.stderr.close()
    result = subprocess.run(
        ["tshark", "-r", str(capture), "-d", f"tcp.port=={port},skinny", "-V"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    text = result.stdout
    assert "Malformed" not in text and "Expert Info (Error" not in text, text
    names = [
        line.split(":", 1)[1].strip().split(" (")[0]
        for line in text.splitlines()
        if line.strip().startswith("Message ID:")
    ]
    # The emulated ITL report (0x7F01) is a message id Wireshark does not name: "Unknown".
    assert names == [
        "RegisterReq",
        "Unknown",
        "RegisterAck",
        "CapabilitiesReq",
        "CapabilitiesRes",
        "KeepAliveReq",
        "KeepAliveAck",
    ], names
    for fact in (
        f"DeviceName: SEP{MAC}",
        "Device Type: 7942 (0x000001b2)",
        "firmwareLoadName: SCCP42.",
        "keepAliveInterval: 30",
    ):
        assert fact in text, fact


# --- scenarios ----------------------------------------------------------------------------------


def test_scenario_groups_pick_the_protocol_and_refuse_one_the_model_lacks() -> None:
    base = (
        '[scenario]\nname = "p"\ntitle = "t"\n[[cluster]]\nname = "c"\n'
        '[[group]]\nname = "g"\ncount = 1\n'
    )
    good = parse_scenario(base + 'cluster = "c"\nmodel = "7942"\nprotocol = "sccp"\n')
    assert good.groups[0].protocol == "sccp"
    with pytest.raises(UsageError, match="the 8841 does not run sccp"):
        parse_scenario(base + 'cluster = "c"\nmodel = "8841"\nprotocol = "sccp"\n')


def test_sccp_migration_scenario_runs_on_a_2000_phone_fleet() -> None:
    scenario = load_scenario("migration-sccp-79xx").with_count(1000)  # two groups: 2,000
    assert sum(g.count for g in scenario.groups) == 2000
    report = run_scenario(scenario, keys=pooled_keys())
    assert report.ok, [e.expect for e in report.failed]

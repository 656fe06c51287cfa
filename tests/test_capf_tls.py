"""CAPF over loopback TLS (phone/net/capf_tls.py): enrollment, and a server that drops a broken
connection and keeps serving (trust-file-formats.md section 9b)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from keypool import pooled_keys

from phone.api import State, create_lab, create_phone
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfOperation
from phone.cluster.lab import Lab
from phone.cluster.records import Device, SecurityMode
from phone.device.capf import CapfClient, CapfServerTrust
from phone.errors import NetworkError
from phone.net.capf_tls import CapfTlsServer, capf_exchange_tls
from phone.net.servers import LabServer
from phone.net.sockets import SocketBackend
from phone.pki import Identity, issue
from phone.trust.lists import parse_shared
from phone.trust.tvs import TlsRefused, TvsOutcome
from phone.vendor import manufacturing_ca
from phone.wire.capf import (
    AuthType,
    Command,
    Frame,
    FrameReader,
    Tag,
    cstring_element,
    encode_frame,
    u8_element,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
NAME = f"SEP{MAC}"


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    lab.cluster().add_device(Device(MAC), now=NOW)
    return lab


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[CapfTlsServer]:
    server = CapfTlsServer(
        lab, lab.cluster().publisher.hostname, clock=lambda: NOW, read_timeout=1.0
    )
    server.start()
    yield server
    server.stop()
    assert server.thread is not None and not server.thread.is_alive()


def no_tvs(issuer: str, serial: bytes, certificate: object = None) -> TvsOutcome:
    raise AssertionError("the ITL has a CAPF record: TVS is not asked")


def trust(lab: Lab) -> CapfServerTrust:
    cluster = lab.cluster()
    data = cluster.itl_file(cluster.tftp_hosts[0])
    assert data is not None
    return CapfServerTrust(None, parse_shared(data), no_tvs)


def mic() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(manufacturing_ca("88xx"), f"CP-8841-{NAME}", key.public_key(), now=NOW)
    return Identity(cert, key)


def enroll(
    lab: Lab, server: CapfTlsServer, auth: AuthType, secret: str | None = None
) -> CapfClient:
    stored: list[Identity] = []
    checker = trust(lab)
    session = CapfClient(
        device_name=NAME,
        auth=auth,
        mic=mic(),
        lsc=None,
        keys=pooled_keys(),
        trust=checker,
        store=stored.append,
        delete=lambda: False,
        now=NOW,
        secret=secret,
    )
    capf_exchange_tls(server.address, session, checker, timeout=1.0)
    assert session.finished
    return session


def test_lsc_enrollment_over_tls_by_authentication_string(lab: Lab, server: CapfTlsServer) -> None:
    capf.set_pending(
        lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="5555", now=NOW
    )
    session = enroll(lab, server, AuthType.PASSWORD, "5555")
    assert session.outcome is not None and session.outcome.ok and session.outcome.stored
    device = lab.cluster().device(MAC)
    assert device is not None and device.certificate == session.outcome.stored.certificate


def test_wrong_string_over_tls(lab: Lab, server: CapfTlsServer) -> None:
    capf.set_pending(
        lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="5555", now=NOW
    )
    session = enroll(lab, server, AuthType.PASSWORD, "0000")
    assert session.outcome is not None and not session.outcome.ok
    assert session.outcome.reason == "CAPF refused the session (reason 7)"
    result = lab.cluster().device(MAC).capf_result  # type: ignore[union-attr]
    assert result is not None and "wrong authentication string" in result.reason


def _tls(server: CapfTlsServer) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(server.address, timeout=1.0)
    return context.wrap_socket(raw)


def _read_auth_req(tls: ssl.SSLSocket) -> int:
    reader = FrameReader()
    while True:
        frames = list(reader.feed(tls.recv(4096)))
        if frames:
            assert frames[0].command is Command.AUTH_REQ
            return frames[0].session


def _closed_by_server(tls: ssl.SSLSocket) -> list[Frame]:
    """The frames the server sent until it closed (tvs-capf-wire.md 2.7: END_SESSION{7})."""
    reader = FrameReader()
    frames: list[Frame] = []
    try:
        while data := tls.recv(4096):
            frames += reader.feed(data)
    except (ssl.SSLError, ConnectionError):
        pass
    return frames


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x57\x01\x01\x00\x00\x00\x00\x01\x00",  # a TVS header: protocol id 0x57
        b"\x55\x63\x00\x00\x00\x01\x00\x00",  # command 99
        "auth-without-device",
    ],
)
def test_malformed_message_drops_that_connection_and_the_server_keeps_serving(
    lab: Lab, server: CapfTlsServer, garbage: bytes | str
) -> None:
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    dropped = server.dropped
    with _tls(server) as tls:
        session = _read_auth_req(tls)
        if isinstance(garbage, str):
            data = encode_frame(Frame(Command.AUTH_RESP, session, (u8_element(Tag.VERSION, 3),)))
        else:
            data = garbage
        tls.sendall(data)
        (end,) = _closed_by_server(tls)
        assert end.command is Command.END_SESSION and end.session == session
        assert end.elements == ((1, b"\x07"),)
    assert server.dropped == dropped + 1
    device = lab.cluster().device(MAC)
    assert device is not None and device.capf is not None  # nothing decided on garbage
    assert "dropped" in lab.cluster().log[-1].message
    # ... and the next phone is served.
    assert enroll(lab, server, AuthType.NO_PASSWORD).outcome.ok  # type: ignore[union-attr]


def test_truncated_message_then_close_is_dropped(lab: Lab, server: CapfTlsServer) -> None:
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    dropped = server.dropped
    with _tls(server) as tls:
        session = _read_auth_req(tls)
        frame = encode_frame(
            Frame(Command.AUTH_RESP, session, (cstring_element(Tag.DEVICE_NAME, NAME),))
        )
        tls.sendall(frame[: len(frame) // 2])
    # The phone went away mid-frame: the server notices the EOF and drops the session.
    for _ in range(50):
        if server.dropped > dropped:
            break
        time.sleep(0.02)
    assert server.dropped == dropped + 1
    assert "closed the connection mid-frame" in lab.cluster().log[-1].message
    assert enroll(lab, server, AuthType.NO_PASSWORD).outcome.ok  # type: ignore[union-attr]


def test_silent_peer_is_dropped_after_the_read_timeout(lab: Lab) -> None:
    quick = CapfTlsServer(
        lab, lab.cluster().publisher.hostname, clock=lambda: NOW, read_timeout=0.2
    )
    with quick:
        with socket.create_connection(quick.address, timeout=1.0) as raw:
            raw.settimeout(1.0)
            assert raw.recv(1) == b""  # no TLS handshake from us: the server gives up
        assert quick.dropped == 1
    assert quick.thread is not None and not quick.thread.is_alive()


def test_phone_refuses_a_server_its_itl_does_not_name(lab: Lab, server: CapfTlsServer) -> None:
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)

    def refuse(certificate: x509.Certificate) -> str | None:
        return "not the CAPF record of the installed ITL"

    session = CapfClient(
        device_name=NAME,
        auth=AuthType.NO_PASSWORD,
        mic=mic(),
        lsc=None,
        keys=pooled_keys(),
        trust=trust(lab),
        store=lambda identity: None,
        delete=lambda: False,
        now=NOW,
    )
    with pytest.raises(TlsRefused, match="not the CAPF record"):
        capf_exchange_tls(server.address, session, refuse, timeout=1.0)
    assert not session.finished
    device = lab.cluster().device(MAC)
    assert device is not None and device.capf is not None


def test_nothing_listening_is_a_network_error(lab: Lab) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = CapfClient(
        device_name=NAME,
        auth=AuthType.NO_PASSWORD,
        mic=mic(),
        lsc=None,
        keys=pooled_keys(),
        trust=trust(lab),
        store=lambda identity: None,
        delete=lambda: False,
        now=NOW,
    )
    with pytest.raises(NetworkError, match=r"CAPF 127\.0\.0\.1"):
        capf_exchange_tls(("127.0.0.1", port), session, trust(lab), timeout=1.0)


def test_server_only_where_capf_runs(lab: Lab) -> None:
    with pytest.raises(NetworkError, match="no CAPF runs"):
        CapfTlsServer(lab, "nowhere.lab").start()


def test_encrypted_config_end_to_end_over_sockets() -> None:
    """The issue-8 scenario with every service on loopback: TFTP/HTTP files, CAPF and TVS over
    TLS, SIP over TLS for the encrypted device (phone/net/servers.py serves CAPF on the
    publisher)."""
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    cluster.set_mixed_mode(True, now=NOW)
    cluster.add_device(
        Device(MAC, security_mode=SecurityMode.ENCRYPTED, encrypt_config=True), now=NOW
    )
    served = LabServer(lab, clock=lambda: NOW)
    served.start()
    try:
        threads = served.threads()
        assert served.address(cluster.publisher.hostname, "capf")[1] > 0
        with SocketBackend(served.host_map(), timeout=0.5, tvs_timeout=1.0) as backend:
            phone = create_phone(lab, mac=MAC, clock=lambda: NOW, backend=backend)
            phone.keys = pooled_keys()
            assert phone.boot() is State.NO_CONFIG
            with served.lock:
                capf.set_pending(
                    cluster, MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="8642", now=NOW
                )
            phone.capf_string = "8642"
            mark = len(phone.trace)
            assert phone.reset() is State.REGISTERED, [t.reason for t in phone.trace[mark:]]
            steps = [t for t in phone.trace[mark:] if t.step == "capf"]
            assert [t.decision for t in steps] == ["accepted", "accepted"]
            lsc = phone.lsc()
            assert lsc is not None and phone.registered_with == cluster.publisher.hostname
            device = cluster.device(MAC)
            assert device is not None and device.certificate == lsc.certificate
    finally:
        threads += served.threads()
        served.stop()
    assert not [t for t in threads if t.is_alive()]


def test_phone_silent_after_auth_request_gets_end_session_7_and_others_are_served(
    lab: Lab,
) -> None:
    # capf-raw-silent-phone: capfd waits forever; vphone's server gives up after read_timeout
    # with END_SESSION{7} (tvs-capf-wire.md 2.7), and serves other phones meanwhile.
    quick = CapfTlsServer(
        lab, lab.cluster().publisher.hostname, clock=lambda: NOW, read_timeout=0.5
    )
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    with quick, _tls(quick) as silent:
        session = _read_auth_req(silent)
        assert enroll(lab, quick, AuthType.NO_PASSWORD).outcome.ok  # type: ignore[union-attr]
        silent.settimeout(3.0)
        (end,) = _closed_by_server(silent)
        assert end.command is Command.END_SESSION and end.session == session
        assert end.elements == ((1, b"\x07"),)
        assert quick.dropped == 1

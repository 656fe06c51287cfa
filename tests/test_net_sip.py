"""SIP over real loopback sockets (issues 5 and 6): REGISTER over UDP, TCP and TLS with digest,
the ITL report (item 30), secure registration (item 7), and registrar hardening."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from clusterlab import NOW, make_lab, phone_mic
from cryptography.hazmat.primitives.serialization import Encoding

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, SecurityMode
from phone.device.port import (
    ItlReport,
    RegisterRequest,
    Requester,
    certificate_check_for,
)
from phone.errors import NetworkError
from phone.net.sip import SipRegistrar, sip_register
from phone.pki import CertKind, Identity
from phone.trust.tvs import TlsRefused
from phone.wire.sip import PONG, SipResponse, StreamReader, parse_message

MAC = "001122334455"
SECURE_MAC = "00AABBCCDDEE"
USER, PASSWORD = "alice", "pw-1"


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = make_lab(ClusterSpec(name="sip", mixed_mode=True))
    cluster = lab.cluster()
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
    )
    cluster.add_device(Device(SECURE_MAC, security_mode=SecurityMode.ENCRYPTED), now=NOW)
    return lab


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Cluster:
    return lab.cluster()


@pytest.fixture(scope="module")
def registrar(lab: Lab, cluster: Cluster) -> Iterator[SipRegistrar]:
    server = SipRegistrar(lab, cluster.publisher.hostname, clock=lambda: NOW, idle_timeout=1.0)
    server.start()
    yield server
    server.stop()
    assert all(not t.is_alive() for t in server.threads)


def request(
    cluster: Cluster,
    transport: str,
    *,
    mac: str = MAC,
    password: str | None = PASSWORD,
    user: str | None = USER,
    report: ItlReport | None = None,
    check: bool = True,
    client: Identity | None = None,
) -> RegisterRequest:
    callmanager = cluster.identity(CertKind.CALLMANAGER, cluster.publisher.hostname).certificate
    return RegisterRequest(
        callmanager=cluster.publisher.hostname,
        port=5060,
        transport=transport,
        requester=Requester(mac=mac, model="8841"),
        digest_user=user,
        digest_password=password,
        itl_report=report,
        check_server=certificate_check_for(
            (callmanager.public_bytes(Encoding.DER),) if check else (), "CallManager"
        ),
        client_identity=client,
    )


def test_udp_and_tcp_share_one_port(registrar: SipRegistrar) -> None:
    assert registrar.udp_address == registrar.tcp_address
    assert registrar.tls_address is not None  # mixed mode: SIP over TLS too


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_item40_register_with_digest_over_sockets(
    registrar: SipRegistrar, cluster: Cluster, transport: str
) -> None:
    before = registrar.registrar.challenges
    address = registrar.udp_address if transport == "udp" else registrar.tcp_address
    result = sip_register(address, request(cluster, transport), timeout=1.0)
    assert result.ok and result.code == 200
    assert registrar.registrar.challenges == before + 1
    assert MAC in cluster.registrations


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_item40_wrong_password_over_sockets_is_refused(
    registrar: SipRegistrar, cluster: Cluster, transport: str
) -> None:
    address = registrar.udp_address if transport == "udp" else registrar.tcp_address
    result = sip_register(address, request(cluster, transport, password="nope"), timeout=1.0)
    assert not result.ok and result.code == 403
    assert "wrong digest credentials" in result.reason


def test_item42_missing_credentials_over_sockets(registrar: SipRegistrar, cluster: Cluster) -> None:
    result = sip_register(
        registrar.tcp_address, request(cluster, "tcp", user=None, password=None), timeout=1.0
    )
    assert not result.ok and result.code == 401 and result.rule == "item 42"


def test_item30_itl_report_travels_in_the_register(
    registrar: SipRegistrar, cluster: Cluster
) -> None:
    host = cluster.tftp_hosts[0]
    current = cluster.hashes.tftp[host].hash
    report = ItlReport(host, current, 1767268800)
    result = sip_register(registrar.tcp_address, request(cluster, "tcp", report=report))
    assert result.ok
    assert cluster.hashes.devices[MAC].hash == current
    assert cluster.hashes.mismatches() == []


def test_item7_secure_device_registers_over_tls_with_its_mic(
    registrar: SipRegistrar, cluster: Cluster
) -> None:
    assert registrar.tls_address is not None
    mic = phone_mic(SECURE_MAC)
    secure = request(cluster, "tls", mac=SECURE_MAC, user=None, password=None, client=mic)
    result = sip_register(registrar.tls_address, secure, timeout=1.0)
    assert result.ok, result.reason
    # The same device over TCP is refused: its mode needs TLS.
    plain = request(cluster, "tcp", mac=SECURE_MAC, user=None, password=None)
    result = sip_register(registrar.tcp_address, plain, timeout=1.0)
    assert result.code == 403 and "must register over TLS" in result.reason


def test_item7_phone_refuses_a_callmanager_certificate_not_in_its_ctl(
    registrar: SipRegistrar, cluster: Cluster
) -> None:
    assert registrar.tls_address is not None
    untrusted = request(cluster, "tls", mac=SECURE_MAC, check=False, client=phone_mic(SECURE_MAC))
    before = registrar.requests
    with pytest.raises(TlsRefused, match="not trusted"):
        sip_register(registrar.tls_address, untrusted, timeout=1.0)
    time.sleep(0.05)
    assert registrar.requests == before  # nothing was sent


def test_unreachable_registrar_is_a_network_error_within_the_timeout(cluster: Cluster) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # bound, never answers
        started = time.monotonic()
        with pytest.raises(NetworkError, match="no answer"):
            sip_register(hole.getsockname(), request(cluster, "udp"), timeout=0.6)
        assert time.monotonic() - started < 2
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError):
        sip_register(("127.0.0.1", port), request(cluster, "tcp"), timeout=0.5)


def test_malformed_datagrams_are_dropped_and_serving_goes_on(
    registrar: SipRegistrar, cluster: Cluster
) -> None:
    before = registrar.dropped
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"\x00" * 50, b"REGISTER nothing\r\n\r\n", b"X" * 70000):
            with contextlib.suppress(OSError):  # 70,000 bytes exceed a datagram
                sock.sendto(junk, registrar.udp_address)
    deadline = time.monotonic() + 2
    while registrar.dropped < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert registrar.dropped >= before + 2
    assert sip_register(registrar.udp_address, request(cluster, "udp"), timeout=1.0).ok


def test_stream_keepalive_ping_gets_a_pong_and_garbage_closes(
    registrar: SipRegistrar,
) -> None:
    with socket.create_connection(registrar.tcp_address, timeout=1) as conn:
        conn.sendall(b"\r\n\r\n")
        assert conn.recv(16) == PONG
        conn.sendall(b"GARBAGE / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert conn.recv(16) == b""  # malformed: connection closed


def test_oversized_stream_message_closes_the_connection(registrar: SipRegistrar) -> None:
    with socket.create_connection(registrar.tcp_address, timeout=2) as conn:
        conn.sendall(b"REGISTER sip:x SIP/2.0\r\nContent-Length: 999999\r\n\r\n")
        assert conn.recv(16) == b""


def test_options_keepalive_over_udp_is_not_challenged(registrar: SipRegistrar) -> None:
    message = (
        b"OPTIONS sip:cucm1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKk1\r\n"
        b"From: <sip:alice@cucm1>;tag=1\r\nTo: <sip:cucm1>\r\nCall-ID: ka-1\r\n"
        b"CSeq: 1 OPTIONS\r\nContact: <sip:alice@127.0.0.1:9>;"
        b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122334455>"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(message, registrar.udp_address)
        response = parse_message(sock.recv(65535))
    assert isinstance(response, SipResponse) and response.status == 200


def test_idle_connection_is_closed(registrar: SipRegistrar) -> None:
    with socket.create_connection(registrar.tcp_address, timeout=3) as conn:
        started = time.monotonic()
        assert conn.recv(16) == b""
        assert time.monotonic() - started < 2.5


def test_registrar_stop_ends_every_thread(lab: Lab, cluster: Cluster) -> None:
    server = SipRegistrar(lab, cluster.publisher.hostname, clock=lambda: NOW, idle_timeout=30)
    server.start()
    conn = socket.create_connection(server.tcp_address)
    time.sleep(0.05)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert all(not t.is_alive() for t in server.threads)
    conn.close()


def test_on_change_hook_sees_registrations(lab: Lab, cluster: Cluster) -> None:
    changes: list[datetime] = []
    server = SipRegistrar(
        lab, cluster.publisher.hostname, clock=lambda: NOW, on_change=lambda: changes.append(NOW)
    )
    with server:
        assert sip_register(server.tcp_address, request(cluster, "tcp"), timeout=1.0).ok
    assert changes
    assert all(not t.is_alive() for t in server.threads)


def test_non_mixed_cluster_serves_no_tls() -> None:
    lab = make_lab()
    with SipRegistrar(lab, lab.cluster().publisher.hostname) as server:
        assert server.tls_address is None
        reader = StreamReader()
        assert list(reader.feed(b"")) == []

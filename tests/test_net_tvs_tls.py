"""TVS over TLS on loopback (issue 5 part 2; items 21-22, 24): client checks, server hardening."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from clusterlab import NOW, make_lab, phone_mic
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from waiting import eventually

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.device.port import certificate_check_for
from phone.errors import NetworkError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.net.tvs_tls import TvsTlsServer, client_context, tvs_query_tls
from phone.pki import CertKind, Identity, self_signed
from phone.trust.tvs import ServerCheck, TlsRefused
from phone.wire.tvs import (
    HEADER,
    MAX_BODY,
    Command,
    Frame,
    FrameReader,
    decode_answer,
    encode_frame,
    query_request,
    verify_request,
)

DEVICE = "CP-8841-SEP001122334455"


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab()


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Cluster:
    return lab.cluster()


@pytest.fixture(scope="module")
def mic() -> Identity:
    return phone_mic("001122334455")


@pytest.fixture
def server(lab: Lab, cluster: Cluster) -> Iterator[TvsTlsServer]:
    tvs = TvsTlsServer(lab, cluster.publisher.hostname, clock=lambda: NOW, read_timeout=0.5)
    tvs.start()
    yield tvs
    tvs.stop()
    assert tvs.thread is not None and not tvs.thread.is_alive()


@pytest.fixture
def required(cluster: Cluster) -> Iterator[None]:
    """The cluster requires a TVS client certificate for one test (vphone's former default;
    tvsd requests none, tvs-capf-wire.md 1.1)."""
    cluster.set_parameter("tvs-client-certificate", "required", now=NOW)
    yield
    cluster.set_parameter("tvs-client-certificate", "off", now=NOW)


def trusts_tvs(cluster: Cluster) -> ServerCheck:
    tvs = cluster.identity(CertKind.TVS, cluster.publisher.hostname).certificate
    return certificate_check_for((tvs.public_bytes(Encoding.DER),), "TVS")


def callmanager(cluster: Cluster) -> x509.Certificate:
    return cluster.identity(CertKind.CALLMANAGER, cluster.publisher.hostname).certificate


def query(server: TvsTlsServer, cluster: Cluster, client: Identity) -> tuple[bool, tuple[int, ...]]:
    cm = callmanager(cluster)
    answer = tvs_query_tls(
        server.address,
        issuer=cucm_name(cm.issuer),
        serial=serial_bytes(cm.serial_number),
        check_server=trusts_tvs(cluster),
        client=client,
        device_name=DEVICE,
        timeout=1.0,
    )
    if answer.valid:
        assert answer.certificates == (cm.public_bytes(Encoding.DER),)
    return answer.valid, answer.roles


def test_item22_query_over_tls_returns_the_certificate_and_roles(
    server: TvsTlsServer, cluster: Cluster, mic: Identity
) -> None:
    valid, roles = query(server, cluster, mic)
    assert valid and roles == (0, 1, 3)  # SAST, CCM, TFTP (non-secure TFTP node + CallManager)
    assert server.requests == 1


def test_item21_ec_mic_client_authenticates(server: TvsTlsServer, cluster: Cluster) -> None:
    from phone.api import create_phone

    phone = create_phone(make_lab(), mac="00AABBCCDDEE", clock=lambda: NOW)
    valid, _ = query(server, cluster, phone.mic())  # P-256 MIC from the emulated vendor
    assert valid


def test_item21_server_certificate_not_in_itl_refuses_before_sending(
    server: TvsTlsServer, cluster: Cluster, mic: Identity
) -> None:
    with pytest.raises(TlsRefused, match="not trusted"):
        tvs_query_tls(
            server.address,
            issuer="CN=x",
            serial=b"\x01",
            check_server=certificate_check_for((), "TVS"),
            client=mic,
            device_name=DEVICE,
            timeout=1.0,
        )
    time.sleep(0.05)
    assert server.requests == 0  # nothing reached TVS


def test_item22_verify_request_is_answered(
    server: TvsTlsServer, cluster: Cluster, mic: Identity
) -> None:
    der = callmanager(cluster).public_bytes(Encoding.DER)
    with (
        socket.create_connection(server.address, timeout=1) as raw,
        client_context(mic).wrap_socket(raw) as tls,
    ):
        tls.sendall(encode_frame(verify_request(7, DEVICE, der)))
        frame = _read_frame(tls)
    assert frame.command is Command.VERIFY_RESPONSE and frame.session == 7
    assert decode_answer(frame).valid


def test_client_without_certificate_gets_an_invalid_answer(
    server: TvsTlsServer, cluster: Cluster, required: None
) -> None:
    cm = callmanager(cluster)
    with (
        socket.create_connection(server.address, timeout=1) as raw,
        client_context(None).wrap_socket(raw) as tls,
    ):
        request = query_request(3, DEVICE, cucm_name(cm.issuer), serial_bytes(cm.serial_number))
        tls.sendall(encode_frame(request))
        answer = decode_answer(_read_frame(tls))
    assert not answer.valid


def test_client_certificate_from_an_unknown_ca_is_dropped_at_the_handshake(
    server: TvsTlsServer, cluster: Cluster, required: None
) -> None:
    stranger = self_signed("SEP001122334455", now=NOW, key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(NetworkError):
        query(server, cluster, stranger)
    assert eventually(lambda: server.dropped >= 1)


def test_item24_nothing_listening_is_a_network_error(cluster: Cluster, mic: Identity) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NetworkError):
        tvs_query_tls(
            ("127.0.0.1", port),
            issuer="CN=x",
            serial=b"\x01",
            check_server=trusts_tvs(cluster),
            client=mic,
            device_name=DEVICE,
            timeout=0.5,
        )


def test_item24_silent_server_times_out_within_budget(cluster: Cluster, mic: Identity) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks TLS
        started = time.monotonic()
        with pytest.raises(NetworkError):
            tvs_query_tls(
                silent.getsockname()[:2],
                issuer="CN=x",
                serial=b"\x01",
                check_server=trusts_tvs(cluster),
                client=mic,
                device_name=DEVICE,
                timeout=0.3,
            )
        assert time.monotonic() - started < 2


# --- server hardening ------------------------------------------------------------------------


def _read_frame(tls: ssl.SSLSocket) -> Frame:
    reader = FrameReader()
    while True:
        data = tls.recv(65536)
        assert data, "server closed the connection"
        for frame in reader.feed(data):
            return frame


MALFORMED: list[bytes] = [
    b"\x00" * 10,  # protocol id 0
    HEADER.pack(0x57, 2, 3, 0, 1, 0),  # version 2
    HEADER.pack(0x57, 1, 99, 0, 1, 0),  # unknown command
    HEADER.pack(0x57, 1, 3, 0, 1, MAX_BODY + 1),  # oversized length
    encode_frame(Frame(Command.QUERY_RESPONSE, 1, ())),  # a response sent as a request
    HEADER.pack(0x57, 1, 3, 0, 1, 2) + b"\x01\x00",  # element header cut off
    HEADER.pack(0x57, 1, 3, 0, 1, 3) + b"\x01\x00\x09",  # element overruns the body
    encode_frame(Frame(Command.QUERY_REQUEST, 1, ((1, b"\x01x"),))),  # no issuer/serial
    encode_frame(Frame(Command.VERIFY_REQUEST, 1, ())),  # verify without certificate
]


def _send_malformed(address: tuple[str, int], client: Identity, payload: bytes) -> None:
    with (
        socket.create_connection(address, timeout=2) as raw,
        client_context(client).wrap_socket(raw) as tls,
    ):
        tls.sendall(payload)
        try:
            while tls.recv(1024):
                pass
        except (OSError, ssl.SSLError):
            pass


def test_server_survives_1000_malformed_frames_and_answers_a_good_request(
    server: TvsTlsServer, cluster: Cluster, mic: Identity
) -> None:
    payloads = [MALFORMED[i % len(MALFORMED)] for i in range(1000)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda p: _send_malformed(server.address, mic, p), payloads))
    assert eventually(lambda: server.dropped >= 1000)
    assert server.requests == 0
    valid, _ = query(server, cluster, mic)
    assert valid


def test_silent_and_slow_peers_are_dropped_while_others_are_served(
    server: TvsTlsServer, cluster: Cluster, mic: Identity
) -> None:
    silent = socket.create_connection(server.address)  # never starts TLS
    slow_raw = socket.create_connection(server.address, timeout=2)
    slow = client_context(mic).wrap_socket(slow_raw)
    slow.sendall(HEADER.pack(0x57, 1, 3, 0, 1, 40)[:6])  # half a header, then nothing
    try:
        valid, _ = query(server, cluster, mic)  # served meanwhile
        assert valid
        assert eventually(lambda: server.dropped >= 2, timeout=3)
    finally:
        silent.close()
        slow.close()


def test_connection_limit_evicts_an_idle_connection_for_a_new_one(
    lab: Lab, cluster: Cluster, mic: Identity
) -> None:
    tvs = TvsTlsServer(
        lab, cluster.publisher.hostname, clock=lambda: NOW, read_timeout=0.3, max_connections=1
    )
    with tvs:
        hog = socket.create_connection(tvs.address)  # idle: no byte sent
        try:
            assert eventually(lambda: tvs.open_connections == 1)
            valid, _ = query(tvs, cluster, mic)  # the hog makes room
            assert valid
            assert hog.recv(1) == b""
            assert tvs.evicted == 1
        finally:
            hog.close()
    assert tvs.thread is not None and not tvs.thread.is_alive()


def test_stop_ends_open_connections(lab: Lab, cluster: Cluster, mic: Identity) -> None:
    tvs = TvsTlsServer(lab, cluster.publisher.hostname, clock=lambda: NOW, read_timeout=30)
    tvs.start()
    raw = socket.create_connection(tvs.address, timeout=2)
    tls = client_context(mic).wrap_socket(raw)
    assert eventually(lambda: tvs.open_connections == 1)
    started = time.monotonic()
    tvs.stop()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("tvs-")]
    assert tvs.thread is not None and not tvs.thread.is_alive()
    tls.close()


def test_stopped_tvs_node_drops_requests(lab: Lab, mic: Identity) -> None:
    other = make_lab()
    cluster = other.cluster()
    host = cluster.publisher.hostname
    with TvsTlsServer(other, host, clock=lambda: NOW, read_timeout=0.5) as tvs:
        cluster.stop_node(host, now=NOW)
        with pytest.raises(NetworkError, match="closed the connection"):
            query(tvs, cluster, mic)


def test_session_id_is_echoed(server: TvsTlsServer, cluster: Cluster, mic: Identity) -> None:
    cm = callmanager(cluster)
    with (
        socket.create_connection(server.address, timeout=1) as raw,
        client_context(mic).wrap_socket(raw) as tls,
    ):
        for session in (1, 0xFFFFFFFF):
            request = query_request(
                session, DEVICE, cucm_name(cm.issuer), serial_bytes(cm.serial_number)
            )
            tls.sendall(encode_frame(request))
            assert _read_frame(tls).session == session
    assert struct.calcsize(">I") == 4
    assert threading.active_count() >= 1

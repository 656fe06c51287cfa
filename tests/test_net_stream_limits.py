"""The limits of the stream services (issue 13 item 2, phone.net.service.StreamService):
deadlines for the whole TLS handshake and the whole request (not per read), per-source and
total caps with eviction of idle connections before refusing, the listen backlog, and idle
sockets costing no thread. Loopback, ephemeral ports, every server stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterlab import NOW, make_lab
from waiting import eventually

from phone.cluster.files import ClientInfo
from phone.cluster.lab import Lab
from phone.net import service
from phone.net.capf_tls import CapfTlsServer
from phone.net.http import HttpFileServer
from phone.net.sip import SipRegistrar
from phone.net.tvs_tls import TvsTlsServer, client_context
from phone.wire.tvs import HEADER

ROOT = Path(__file__).resolve().parents[1]
BODY = b"itl" * 100


def _provider(name: str, info: ClientInfo) -> bytes | None:
    return BODY if name == "ITLFile.tlv" else None


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab()


def _closed_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed ``sock`` (reading and discarding), at most ``limit``."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def _get(address: tuple[str, int], sock: socket.socket | None = None) -> bytes:
    own = sock is None
    sock = sock or socket.create_connection(address, timeout=2)
    try:
        sock.sendall(b"GET /ITLFile.tlv HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(BODY):
            data = sock.recv(65536)
            if not data:
                break
            got += data
        return got
    finally:
        if own:
            sock.close()


@pytest.fixture
def http() -> Iterator[HttpFileServer]:
    server = HttpFileServer(
        _provider, idle_timeout=5.0, request_timeout=0.5, max_connections=6, max_per_source=4
    )
    with server:
        yield server
    assert server.thread is not None and not server.thread.is_alive()


def test_tls_handshake_has_one_deadline_not_one_per_read(lab: Lab) -> None:
    host = lab.cluster().publisher.hostname
    with TvsTlsServer(lab, host, clock=lambda: NOW, read_timeout=5.0, handshake_timeout=0.3) as tvs:
        raw = socket.create_connection(tvs.address, timeout=2)
        with raw:
            for byte in b"\x16\x03\x01":  # a ClientHello that trickles: a byte every 0.1 s
                raw.sendall(bytes([byte]))
                time.sleep(0.1)
            elapsed = _closed_within(raw, 3.0)
        assert elapsed < 1.0  # 0.3 s from the accept, not 5 s after the last byte
        assert eventually(lambda: tvs.dropped == 1)


def test_tvs_request_has_one_deadline_not_one_per_read(lab: Lab) -> None:
    host = lab.cluster().publisher.hostname
    with TvsTlsServer(lab, host, clock=lambda: NOW, read_timeout=5.0, request_timeout=0.5) as tvs:
        raw = socket.create_connection(tvs.address, timeout=3)
        with client_context(None).wrap_socket(raw) as tls:
            header = HEADER.pack(0x57, 1, 3, 0, 1, 40)
            start = time.monotonic()
            closed = False
            for byte in header:  # a byte every 0.15 s: each read is quick, the request is not
                try:
                    tls.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.15)
            if not closed:
                _closed_within(tls, 3.0)
            assert time.monotonic() - start < 1.8  # 0.5 s after the first byte, + the sweep
        assert eventually(lambda: tvs.dropped == 1)


def test_http_slowloris_is_dropped_at_the_request_deadline_and_others_are_served(
    http: HttpFileServer,
) -> None:
    slow = socket.create_connection(http.address, timeout=3)
    with slow:
        slow.sendall(b"GET /ITLFile.tlv HTTP/1.1\r\n")
        start = time.monotonic()
        with pytest.raises(OSError):
            for line in range(20):
                slow.sendall(f"X-Slow-{line}: a\r\n".encode())  # a header line per 0.1 s
                time.sleep(0.1)
                if _peer_closed(slow):
                    raise ConnectionResetError
        assert time.monotonic() - start < 1.2  # request_timeout 0.5 s
    started = time.monotonic()
    assert _get(http.address).endswith(BODY)
    assert time.monotonic() - started < 0.2


def _peer_closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_per_source_cap_evicts_the_least_recent_idle_connection(http: HttpFileServer) -> None:
    idle = [socket.create_connection(http.address, timeout=2) for _ in range(4)]
    try:
        assert eventually(lambda: http.open_connections == 4)
        fifth = socket.create_connection(http.address, timeout=2)  # max_per_source = 4
        with fifth:
            assert _closed_within(idle[0], 2.0) < 1.0  # the oldest idle one made room
            assert _get(http.address, fifth).endswith(BODY)
        assert http.evicted >= 1 and http.refused == 0
    finally:
        for sock in idle:
            sock.close()


def test_new_connections_are_refused_only_when_every_slot_is_busy(
    http: HttpFileServer,
) -> None:
    busy = [socket.create_connection(http.address, timeout=2) for _ in range(4)]
    try:
        for sock in busy:  # a request in progress: not evictable (until its deadline)
            sock.sendall(b"GET /ITLFile.tlv HTTP/1.1\r\n")
        assert eventually(lambda: http.open_connections == 4)
        time.sleep(0.1)  # the loop read the partial requests
        extra = socket.create_connection(http.address, timeout=2)
        with extra:
            assert _closed_within(extra, 1.0) < 0.5  # refused at once
        assert http.refused == 1 and http.evicted == 0
    finally:
        for sock in busy:
            sock.close()


def test_total_cap_evicts_idle_connections(lab: Lab) -> None:
    host = lab.cluster().publisher.hostname
    with TvsTlsServer(lab, host, clock=lambda: NOW, read_timeout=5.0, max_connections=3) as tvs:
        idle = [socket.create_connection(tvs.address, timeout=2) for _ in range(3)]
        try:
            assert eventually(lambda: tvs.open_connections == 3)
            with client_context(None).wrap_socket(
                socket.create_connection(tvs.address, timeout=2)
            ) as tls:
                assert tls.version() is not None  # the handshake went through
            assert tvs.evicted == 1 and tvs.refused == 0
        finally:
            for sock in idle:
                sock.close()


def test_listen_backlog_is_512_everywhere(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int | None] = []
    create = socket.create_server

    def spy(address: Any, **kwargs: Any) -> socket.socket:
        seen.append(kwargs.get("backlog"))
        return create(address, **kwargs)

    monkeypatch.setattr(socket, "create_server", spy)
    host = lab.cluster().publisher.hostname
    servers = [
        TvsTlsServer(lab, host, clock=lambda: NOW),
        CapfTlsServer(lab, host, clock=lambda: NOW),
        HttpFileServer(_provider),
        SipRegistrar(lab, host, clock=lambda: NOW),
    ]
    for server in servers:
        server.start()
    for server in servers:
        server.stop()
    assert seen and all(b == 512 for b in seen)
    assert service.BACKLOG >= 128


def test_idle_sockets_cost_no_thread(lab: Lab) -> None:
    host = lab.cluster().publisher.hostname
    with TvsTlsServer(lab, host, clock=lambda: NOW, read_timeout=5.0) as tvs:
        before = threading.active_count()
        idle = [socket.create_connection(tvs.address, timeout=2) for _ in range(200)]
        try:
            assert eventually(lambda: tvs.open_connections == 200)
            assert threading.active_count() == before  # 200 idle sockets, no new thread
            with client_context(None).wrap_socket(
                socket.create_connection(tvs.address, timeout=2)
            ) as tls:
                assert tls.version() is not None
            assert threading.active_count() <= before + 8  # the bounded pool, at most
        finally:
            for sock in idle:
                sock.close()


def test_stop_closes_idle_and_busy_connections_and_joins_every_thread(lab: Lab) -> None:
    host = lab.cluster().publisher.hostname
    tvs = TvsTlsServer(lab, host, clock=lambda: NOW, read_timeout=30)
    tvs.start()
    idle = socket.create_connection(tvs.address, timeout=2)
    tls = client_context(None).wrap_socket(socket.create_connection(tvs.address, timeout=2))
    assert eventually(lambda: tvs.open_connections == 2)
    started = time.monotonic()
    tvs.stop()
    assert time.monotonic() - started < 2
    assert tvs.thread is not None and not tvs.thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("tvs-")]
    assert _closed_within(idle, 1.0) < 1.0
    idle.close()
    tls.close()


def test_short_abuse_probe_meets_the_targets() -> None:
    """tools/abuse_services.py with small counts (a few seconds)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "abuse_services.py"),
            "--idle",
            "64",
            "--seconds",
            "1",
            "--requests",
            "5",
            "--http-idle",
            "50",
            "--slowloris",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert any(x.startswith("idle-tvs 64: 5 of 5") for x in lines), lines
    assert any(x.startswith("idle-capf 64: 5 of 5") for x in lines), lines
    assert any("5 of 5 under 200 ms" in x for x in lines), lines

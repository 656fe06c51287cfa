"""The TFTP and HTTP transports on loopback: client/server round trips, provider failures,
hardening (path traversal, writes, malformed packets) and bounded timeouts (the TFTP server's
own protocol and abuse tests are in test_net_tftp_server.py). Item 4: phones fetch over HTTP
6970 and TFTP 69.

Every server a test starts is stopped by its fixture, which asserts the serving thread ended.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus

import pytest
import tftpy

from phone.cluster.files import ClientInfo
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.directory import unsafe_name_reason
from phone.net.http import FileRequestHandler, HttpFetcher, HttpFileServer
from phone.net.tftp import TftpFileServer, fetch_tftp

BIG = os.urandom(10_000)  # seven 1428-byte blocks and a short one
FILES = {
    "ITLFile.tlv": b"itl bytes",
    "big.bin": BIG,
    "exact.bin": b"x" * 1428 * 2,  # ends with an empty DATA block
    "empty.bin": b"",
    "Desktops/320x212x12/List.xml": b"<list/>",
}


class Provider:
    """A dict of files that remembers every name it was asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: list[tuple[str, ClientInfo]] = []
        self.fail_on: set[str] = set()

    def __call__(self, name: str, client: ClientInfo) -> bytes | None:
        self.asked.append((name, client))
        if name in self.fail_on:
            raise ValueError(f"provider broke on {name}")
        return self.files.get(name)


@pytest.fixture
def provider() -> Provider:
    return Provider(dict(FILES))


@pytest.fixture
def tftp(provider: Provider) -> Iterator[TftpFileServer]:
    server = TftpFileServer(provider, listen=("127.0.0.1", 0), timeout=0.2, label="test")
    server.start()
    thread = server.thread
    assert thread is not None and thread.is_alive()
    yield server
    server.stop()
    assert not thread.is_alive()


@pytest.fixture
def http(provider: Provider) -> Iterator[HttpFileServer]:
    server = HttpFileServer(provider, label="test")
    server.start()
    thread = server.thread
    assert thread is not None and thread.is_alive()
    yield server
    server.stop()
    assert not thread.is_alive()


@pytest.fixture
def fetcher() -> Iterator[HttpFetcher]:
    with HttpFetcher(timeout=1.0) as client:
        yield client


def get(server: TftpFileServer, name: str) -> bytes:
    host, port = server.address
    return fetch_tftp(host, port, name, timeout=0.5, retries=2)


# --- TFTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ITLFile.tlv", "big.bin", "exact.bin", "empty.bin"])
def test_item4_tftp_round_trip(tftp: TftpFileServer, name: str) -> None:
    assert get(tftp, name) == FILES[name]


def test_tftp_two_downloads_in_a_row_server_survives_session_cleanup(
    tftp: TftpFileServer, provider: Provider
) -> None:
    """tftpy's server died after the first transfer when the provider's bytes were a BytesIO."""
    assert get(tftp, "ITLFile.tlv") == FILES["ITLFile.tlv"]
    assert get(tftp, "big.bin") == BIG
    assert tftp.thread is not None and tftp.thread.is_alive()
    deadline = time.monotonic() + 2  # the server counts a transfer at its last ACK
    while tftp.stats.served < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tftp.stats.served == 2 and tftp.transfers == 0
    assert [n for n, _ in provider.asked] == ["ITLFile.tlv", "big.bin"]
    assert provider.asked[0][1].address == "127.0.0.1"


def test_tftp_provider_exception_is_not_found_and_server_keeps_serving(
    tftp: TftpFileServer, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Under tftpy, any exception in the provider killed the server thread."""
    provider.fail_on.add("ITLFile.tlv")
    with caplog.at_level(logging.ERROR, "phone.net.tftp"), pytest.raises(FileNotFoundOnServer):
        get(tftp, "ITLFile.tlv")
    assert "provider broke" in caplog.text
    assert get(tftp, "big.bin") == BIG
    assert tftp.thread is not None and tftp.thread.is_alive()


def test_tftp_not_found(tftp: TftpFileServer) -> None:
    start = time.monotonic()
    with pytest.raises(FileNotFoundOnServer) as info:
        get(tftp, "SEP001122334455.cnf.xml.sgn")
    assert info.value.name == "SEP001122334455.cnf.xml.sgn"
    assert time.monotonic() - start < 0.5  # an answer, not a timeout


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",  # leaves the root
        "/etc/passwd",  # absolute
        "a/../ITLFile.tlv",  # stays inside the root but climbs: still refused
        "./ITLFile.tlv",
        "C:ITLFile.tlv",
        "..\\ITLFile.tlv",
    ],
)
def test_tftp_path_traversal_refused_with_a_logged_reason(
    tftp: TftpFileServer,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    with (
        caplog.at_level(logging.WARNING, "phone.net.tftp"),
        pytest.raises(NetworkError, match="Access violation") as info,
    ):
        get(tftp, name)
    assert not isinstance(info.value, FileNotFoundOnServer)
    assert provider.asked == []  # the provider never sees an unsafe name
    assert "refused" in caplog.text
    assert unsafe_name_reason(name) is not None
    assert get(tftp, "ITLFile.tlv") == FILES["ITLFile.tlv"]


def test_tftp_subfolder_names_reach_the_provider(tftp: TftpFileServer) -> None:
    """Real phones ask for Desktops/<size>/List.xml: sub-folders are not traversal."""
    assert get(tftp, "Desktops/320x212x12/List.xml") == b"<list/>"


def test_tftp_write_request_refused(tftp: TftpFileServer, caplog: pytest.LogCaptureFixture) -> None:
    host, port = tftp.address
    # flock=False: tftpy's upload from BytesIO crashes in its own cleanup otherwise (#155).
    client = tftpy.TftpClient(host, port, flock=False)
    with (
        caplog.at_level(logging.WARNING, "phone.net.tftp"),
        pytest.raises(tftpy.TftpException, match="Access violation"),
    ):
        client.upload("ITLFile.tlv", io.BytesIO(b"evil"), timeout=0.5, retries=1)
    assert "read-only" in caplog.text
    assert get(tftp, "ITLFile.tlv") == FILES["ITLFile.tlv"]


@pytest.mark.parametrize(
    "datagram",
    [
        b"\x00\x01\xff\xfe\x00octet\x00",  # a non-ASCII file name (killed tftpy's loop)
        b"\x00\x01a\x00octet\x00blksize\x00zz\x00",  # a non-numeric option (ditto)
        b"\x00\x03\x00",  # a DATA packet cut short (ditto)
        b"\x00\x09hello",  # an unknown opcode
        b"\x00",  # one byte
    ],
)
def test_tftp_malformed_datagram_does_not_stop_the_server(
    tftp: TftpFileServer, datagram: bytes
) -> None:
    host, port = tftp.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.sendto(datagram, (host, port))
    time.sleep(0.05)
    assert get(tftp, "big.bin") == BIG
    assert tftp.thread is not None and tftp.thread.is_alive()
    assert tftp.address[1] == port


def test_tftp_timeout_is_bounded_by_the_retry_budget() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes requests, never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(TransferTimeout, match="no TFTP answer"):
            fetch_tftp("127.0.0.1", port, "ITLFile.tlv", timeout=0.2, retries=2)
        elapsed = time.monotonic() - start
    assert 0.3 < elapsed < 1.5


def test_tftp_unknown_host_is_a_network_error() -> None:
    with pytest.raises(NetworkError):
        fetch_tftp("no-such-host.invalid", 69, "ITLFile.tlv", timeout=0.2, retries=1)


def test_tftp_server_on_a_taken_port_says_so(tftp: TftpFileServer) -> None:
    other = TftpFileServer(lambda n, c: None, listen=tftp.address)
    with pytest.raises(NetworkError, match="cannot listen"):
        other.start()
    assert other.thread is None


def test_tftp_serves_nothing_from_disk(tftp: TftpFileServer, provider: Provider) -> None:
    """Only the provider serves: there is no root folder on disk."""
    provider.files.clear()
    with pytest.raises(FileNotFoundOnServer):
        get(tftp, "ITLFile.tlv")


# --- HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ITLFile.tlv", "big.bin", "empty.bin"])
def test_item4_http_round_trip(http: HttpFileServer, fetcher: HttpFetcher, name: str) -> None:
    host, port = http.address
    assert fetcher.fetch(host, port, name) == FILES[name]


def test_http_keep_alive_and_user_agent(
    http: HttpFileServer, fetcher: HttpFetcher, provider: Provider
) -> None:
    host, port = http.address
    agent = "vphone CP-8841 SEP001122334455"
    for _ in range(3):
        assert fetcher.fetch(host, port, "big.bin", user_agent=agent) == BIG
    client = provider.asked[-1][1]
    assert client.model == "8841" and client.mac == "001122334455"
    assert fetcher.fetch(host, port, "Desktops/320x212x12/List.xml") == b"<list/>"


def test_http_not_found_is_404(http: HttpFileServer, fetcher: HttpFetcher) -> None:
    host, port = http.address
    with pytest.raises(FileNotFoundOnServer):
        fetcher.fetch(host, port, "CTLFile.tlv")


def raw_request(address: tuple[str, int], request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client-side path normalization); return status and reply."""
    with socket.create_connection(address, timeout=2) as conn:
        conn.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply


@pytest.mark.parametrize(
    "target",
    [
        b"/../etc/passwd",
        b"/%2e%2e/%2e%2e/etc/passwd",
        b"/a/../ITLFile.tlv",
        b"/ITLFile.tlv%00.png",
        b"/..%5cITLFile.tlv",
        b"/%ff",
    ],
)
def test_http_path_traversal_refused(
    http: HttpFileServer,
    provider: Provider,
    caplog: pytest.LogCaptureFixture,
    target: bytes,
) -> None:
    with caplog.at_level(logging.WARNING, "phone.net.http"):
        status, _ = raw_request(http.address, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (HTTPStatus.FORBIDDEN, HTTPStatus.BAD_REQUEST)
    assert provider.asked == []
    assert "refused" in caplog.text or "bad request" in caplog.text


def test_http_leading_double_slash_stays_inside_the_root(
    http: HttpFileServer, provider: Provider
) -> None:
    """http.server collapses a leading "//" (an open-redirect guard), so "//etc/passwd" is the
    root-relative name "etc/passwd": looked up among the served files, never on the disk."""
    status, _ = raw_request(http.address, b"GET //etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == HTTPStatus.NOT_FOUND
    assert [name for name, _ in provider.asked] == ["etc/passwd"]


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"])
def test_http_only_get_write_methods_refused(
    http: HttpFileServer, provider: Provider, method: bytes
) -> None:
    status, reply = raw_request(
        http.address,
        method + b" /ITLFile.tlv HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil",
    )
    assert status == HTTPStatus.METHOD_NOT_ALLOWED
    assert b"Allow: GET" in reply
    assert provider.files["ITLFile.tlv"] == FILES["ITLFile.tlv"]


def _read_response(conn: socket.socket, body: bool) -> tuple[bytes, bytes]:
    """One response's head, and its body when ``body`` (Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
    while body and len(rest) < length:
        rest += conn.recv(4096)
    return head, rest


def test_http_head_answers_what_get_answers_without_the_body(
    http: HttpFileServer, provider: Provider
) -> None:
    """Issue 18 friction 7: HEAD got 405. It gets GET's status and headers, and no body, on a
    connection that stays usable (the next GET's body is not taken for HEAD's)."""
    with socket.create_connection(http.address, timeout=2) as conn:
        conn.sendall(b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        head, rest = _read_response(conn, body=False)
        assert rest == b""
        conn.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        get_head, get_body = _read_response(conn, body=True)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 10000\r\n" in head + b"\r\n"

    # Every header but Date is the same.
    def lines(h: bytes) -> list[bytes]:
        return [line for line in h.split(b"\r\n") if not line.startswith(b"Date:")]

    assert lines(head) == lines(get_head)
    assert get_body == BIG
    status, reply = raw_request(http.address, b"HEAD /CTLFile.tlv HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == HTTPStatus.NOT_FOUND
    assert reply.endswith(b"\r\n\r\n")  # the 404's text body is not sent either
    status, _ = raw_request(http.address, b"HEAD /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == HTTPStatus.FORBIDDEN


def test_http_unknown_method_is_501(http: HttpFileServer) -> None:
    status, _ = raw_request(http.address, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == HTTPStatus.NOT_IMPLEMENTED


def test_http_provider_exception_is_500_and_server_keeps_serving(
    http: HttpFileServer, fetcher: HttpFetcher, provider: Provider
) -> None:
    host, port = http.address
    provider.fail_on.add("ITLFile.tlv")
    with pytest.raises(NetworkError, match="500") as info:
        fetcher.fetch(host, port, "ITLFile.tlv")
    assert not isinstance(info.value, FileNotFoundOnServer)  # the phone may fall back (item 4)
    assert fetcher.fetch(host, port, "big.bin") == BIG


class TruncatingHandler(FileRequestHandler):
    """Announces the whole file and sends half of it, then hangs up."""

    def send_file(self, data: bytes) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


def test_http_truncated_body_is_an_error_not_a_short_file(
    provider: Provider, fetcher: HttpFetcher
) -> None:
    with HttpFileServer(provider, handler=TruncatingHandler) as server:
        host, port = server.address
        with pytest.raises(NetworkError, match="truncated") as info:
            fetcher.fetch(host, port, "big.bin")
        assert not isinstance(info.value, FileNotFoundOnServer)
        thread = server.thread
    assert thread is not None and not thread.is_alive()


def test_http_silent_server_times_out_within_the_budget() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (in the kernel backlog) and never answers
        port = listener.getsockname()[1]
        with HttpFetcher(timeout=0.3) as client:
            start = time.monotonic()
            with pytest.raises(TransferTimeout):
                client.fetch("127.0.0.1", port, "ITLFile.tlv")
            assert time.monotonic() - start < 1.5


def test_http_refused_connection_is_a_network_error_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with HttpFetcher(timeout=1.0) as client:
        start = time.monotonic()
        with pytest.raises(NetworkError) as info:
            client.fetch("127.0.0.1", port, "ITLFile.tlv")
        assert not isinstance(info.value, FileNotFoundOnServer | TransferTimeout)
        assert time.monotonic() - start < 0.5


def test_http_stop_closes_kept_alive_connections(provider: Provider) -> None:
    before = threading.active_count()
    server = HttpFileServer(provider)
    server.start()
    with HttpFetcher(timeout=1.0) as client:
        host, port = server.address
        assert client.fetch(host, port, "ITLFile.tlv") == FILES["ITLFile.tlv"]
        thread = server.thread
        server.stop()  # the client still holds its keep-alive connection
        assert thread is not None and not thread.is_alive()
        deadline = time.monotonic() + 2
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threading.active_count() <= before
        with pytest.raises(NetworkError):
            client.fetch(host, port, "ITLFile.tlv")


# --- the shared name rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a" * 256, "longer than 255"),
        ("ITL\x00File.tlv", "NUL"),
        ("ITL\nFile.tlv", "control"),
        ("/ITLFile.tlv", "absolute"),
        ("a\\b", "backslash"),
        ("c:/windows", "drive"),
        ("../x", "traversal"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
    ],
)
def test_unsafe_names(name: str, reason: str) -> None:
    found = unsafe_name_reason(name)
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "name", ["ITLFile.tlv", "SEP001122334455.cnf.xml.sgn", "a/b/c.xml", "a..b"]
)
def test_safe_names(name: str) -> None:
    assert unsafe_name_reason(name) is None

"""HTTP on the TFTP server's port 6970: the phone's client (httpx) and the lab's file server.

Item 4: phones with newer firmware fetch their files over HTTP on port 6970 of the TFTP
server and fall back to TFTP when that fails. The client here raises the errors the phone's
fallback loop understands (:mod:`phone.errors`); the server answers ``GET /<name>`` with what
the cluster's file service produces.

Client (:class:`HttpFetcher`): one ``httpx.Client`` reused for every request (building one
costs about 18 ms, python-libraries.md 3.3), ``trust_env=False`` so that a proxy variable in
the environment can never redirect lab traffic, bounded timeouts, no redirects. A body shorter
than its ``Content-Length`` is an error, never a short file.

Server (:class:`HttpFileServer`): the standard library's ``ThreadingHTTPServer`` with
``protocol_version = "HTTP/1.1"`` (keep-alive) and daemon threads; GET only (other known
methods get 405, unknown ones 501); unsafe names (:func:`phone.net.directory.unsafe_name_reason`)
get 403 with the logged reason; ``Content-Length`` is always exact. Idle keep-alive connections
time out, and :meth:`HttpFileServer.stop` closes the open ones so every thread ends.

The phone identifies itself in ``User-Agent`` as ``vphone CP-<model> SEP<MAC>`` (emulated: the
lab's file service may answer per model, as CUCM does from its device table).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from phone.cluster.files import ClientInfo
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.directory import unsafe_name_reason
from phone.net.service import BackgroundService

__all__ = [
    "DEFAULT_HTTP_PORT",
    "MAX_BODY",
    "FileProvider",
    "FileRequestHandler",
    "HttpFetcher",
    "HttpFileServer",
]

DEFAULT_HTTP_PORT = 6970  # item 4
MAX_BODY = 256 * 1024 * 1024  # far above any firmware load; a bigger body is refused
FileProvider = Callable[[str, ClientInfo], bytes | None]

log = logging.getLogger("phone.net.http")
_MODEL = re.compile(r"\bCP-([A-Za-z0-9-]{1,16})\b")
_MAC = re.compile(r"\bSEP([0-9A-Fa-f]{12})\b")


# --- client ------------------------------------------------------------------------------------


class HttpFetcher:
    """Fetches files over HTTP with one reused ``httpx.Client`` (module docstring).

    Args:
        timeout: seconds for connecting and for each read.
        transport: an ``httpx`` transport to use instead of the network (tests).
    """

    def __init__(
        self, *, timeout: float = 2.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            trust_env=False,
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, host: str, port: int, name: str, *, user_agent: str = "vphone") -> bytes:
        """``GET http://host:port/<name>``.

        Raises:
            FileNotFoundOnServer: 404.
            TransferTimeout: no connection or no data within ``timeout``.
            NetworkError: refused, another status, a body cut short or too large.
        """
        where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        url = f"http://{where}/{quote(name.lstrip('/'), safe='/')}"
        try:
            with self._client.stream("GET", url, headers={"User-Agent": user_agent}) as response:
                if response.status_code == HTTPStatus.NOT_FOUND:
                    length = response.headers.get("Content-Length", "")
                    if length.isdigit() and int(length) <= 4096:
                        response.read()  # a short body read keeps the connection reusable
                    raise FileNotFoundOnServer(name)
                if response.status_code != HTTPStatus.OK:
                    raise NetworkError(
                        f"HTTP {where} {name}: {response.status_code} {response.reason_phrase}"
                    )
                declared = response.headers.get("Content-Length")
                if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
                    raise NetworkError(f"HTTP {where} {name}: bad Content-Length {declared!r}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise NetworkError(f"HTTP {where} {name}: body over {MAX_BODY} bytes")
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise TransferTimeout(
                f"no HTTP answer from {where} for {name} ({self.timeout:g} s)"
            ) from None
        except httpx.RemoteProtocolError as exc:
            # Typically "peer closed connection without sending complete message body".
            raise NetworkError(
                f"HTTP {where} {name}: truncated or broken response ({exc})"
            ) from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"HTTP {where} {name}: {exc or type(exc).__name__}") from None
        data = b"".join(chunks)
        if declared is not None and len(data) != int(declared):
            raise NetworkError(
                f"HTTP {where} {name}: body of {len(data)} bytes, Content-Length {declared}"
            )
        return data


# --- server ------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps the process alive
    allow_reuse_address = True  # restart on the same port (LabServer.sync)

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        provider: FileProvider,
        label: str,
    ) -> None:
        self.provider = provider
        self.label = label
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK hold the body back ~40 ms on every kept-alive request.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.connections_lock:
            self.connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self.connections_lock:
                self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_ = list(self.connections)
        for conn in open_:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)


class FileRequestHandler(BaseHTTPRequestHandler):
    """Serves ``GET /<name>`` from the server's provider. Subclass to misbehave in tests
    (override :meth:`send_file`)."""

    protocol_version = "HTTP/1.1"
    server_version = "vphone-http"
    sys_version = ""
    timeout = 5.0  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def do_GET(self) -> None:
        """Answer one GET."""
        client = f"{self.client_address[0]}:{self.client_address[1]}"
        label = self.server.label
        target = self.path
        if target.lower().startswith("http://"):  # absolute-form (RFC 9112 3.2.2)
            target = urlsplit(target).path
        try:
            # Not urlsplit for the origin form: it reads "//etc/passwd" as a host name.
            path = unquote(target.partition("?")[0].partition("#")[0], errors="strict")
        except UnicodeDecodeError:
            path = None
        if path is None or not path.startswith("/"):
            self._refuse(HTTPStatus.BAD_REQUEST, f"bad request target {self.path[:80]!r}")
            return
        name = path[1:]
        reason = unsafe_name_reason(name)
        if reason is not None:
            self._refuse(HTTPStatus.FORBIDDEN, f"GET {name[:80]!r} refused: {reason}")
            return
        agent = self.headers.get("User-Agent", "")
        model = _MODEL.search(agent)
        mac = _MAC.search(agent)
        info = ClientInfo(
            address=self.client_address[0],
            mac=mac[1].upper() if mac else None,
            model=model[1] if model else None,
        )
        try:
            data = self.server.provider(name, info)
        except Exception as exc:  # one bad request must not break the server
            log.error("%s: HTTP GET %s from %s failed: %r", label, name, client, exc)
            self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
            return
        if data is None:
            log.info("%s: HTTP GET %s from %s: not found", label, name, client)
            self._plain(HTTPStatus.NOT_FOUND, f"File not found {name}\n")
            return
        log.info("%s: HTTP GET %s from %s: %d bytes", label, name, client, len(data))
        self.send_file(data)

    def send_file(self, data: bytes) -> None:
        """Send ``data`` as a 200 response with an exact ``Content-Length``."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_allowed(self) -> None:
        log.warning(
            "%s: HTTP %s %s from %s refused: the server is read-only (GET only)",
            self.server.label,
            self.command,
            self.path[:80],
            self.client_address[0],
        )
        self.close_connection = True  # the request body, if any, is not read
        body = b"only GET is allowed\n"
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        log.warning("%s: HTTP from %s: %s", self.server.label, self.client_address[0], reason)
        self._plain(status, f"{status.phrase}\n")

    def _plain(self, status: HTTPStatus, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by :meth:`do_GET` with their outcome; nothing more here."""

    def log_message(self, format: str, *args: object) -> None:
        """Route the standard library's messages (bad requests, timeouts) to logging."""
        log.debug("%s: HTTP %s: %s", self.server.label, self.address_string(), format % args)


class HttpFileServer(BackgroundService):
    """An HTTP file server over a :data:`FileProvider` (module docstring).

    Args:
        provider: called with the requested name (no leading ``/``) and the client.
        listen: address and port to bind; port 0 picks a free port.
        label: a name for log lines (the lab node it serves).
        handler: the request handler class (tests pass a misbehaving subclass).
    """

    def __init__(
        self,
        provider: FileProvider,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        label: str = "http",
        handler: type[FileRequestHandler] = FileRequestHandler,
    ) -> None:
        self.provider = provider
        self.label = label
        self._listen = listen
        self._handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._address = listen

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port)."""
        return self._address

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            NetworkError: the address cannot be bound.
        """
        if self._server is not None:
            return
        try:
            server = _Server(self._listen, self._handler, self.provider, self.label)
        except OSError as exc:
            raise NetworkError(
                f"HTTP cannot listen on {self._listen[0]}:{self._listen[1]}: {exc.strerror}"
            ) from None
        self._server = server
        host, port = server.server_address[:2]
        self._address = (str(host), int(port))
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http {self.label}",
            daemon=True,
        )
        self._thread.start()
        log.info("%s: HTTP listening on %s:%d", self.label, *self._address)

    def stop(self) -> None:
        """Stop accepting, close open connections, and wait for the serving thread."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

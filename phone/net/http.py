"""HTTP on the TFTP server's port 6970: the phone's client (httpx) and the lab's file server.

Item 4: phones with newer firmware fetch their files over HTTP on port 6970 of the TFTP
server and fall back to TFTP when that fails. The client here raises the errors the phone's
fallback loop understands (:mod:`phone.errors`); the server answers ``GET /<name>`` with what
the cluster's file service produces.

Client (:class:`HttpFetcher`): one ``httpx.Client`` reused for every request (building one
costs about 18 ms, python-libraries.md 3.3), ``trust_env=False`` so that a proxy variable in
the environment can never redirect lab traffic, bounded timeouts, no redirects. A body shorter
than its ``Content-Length`` is an error, never a short file.

Server (:class:`HttpFileServer`): a :class:`phone.net.service.StreamService` (one selector
loop holds every connection, a bounded pool of workers answers): the loop reads a whole request
head (at most :data:`MAX_HEAD` bytes, within ``request_timeout`` of its first byte, so a client
sending a header line a second is dropped and holds no thread meanwhile), and a worker answers
it with the standard library's ``BaseHTTPRequestHandler`` (HTTP/1.1, keep-alive); GET and HEAD
(the same status and headers as GET, no body: ``curl -I`` works), other known methods get 405,
unknown ones 501; unsafe names
(:func:`phone.net.directory.unsafe_name_reason`) get 403 with the logged reason;
``Content-Length`` is always exact. Idle keep-alive connections time out (``idle_timeout``) or
are evicted first when the connection limits are reached; :meth:`HttpFileServer.stop` closes
the open ones and joins every thread.

The phone identifies itself in ``User-Agent`` as ``vphone CP-<model> SEP<MAC>`` (emulated: the
lab's file service may answer per model, as CUCM does from its device table).
"""

from __future__ import annotations

import io
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote, unquote, urlsplit

import httpx

from phone.cluster.files import ClientInfo
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.directory import unsafe_name_reason
from phone.net.service import (
    MAX_CONNECTIONS,
    MAX_PER_SOURCE,
    WORKERS,
    Conversation,
    StreamService,
)

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

MAX_HEAD = 16 * 1024  # a request line and headers; a phone's GET is about 200 bytes


@dataclass(frozen=True)
class _Request:
    """What a :class:`FileRequestHandler` is built on: one request's head, already read."""

    head: bytes


@dataclass(frozen=True)
class _Site:
    """The handler's ``server``: what it serves and how it logs."""

    provider: FileProvider
    label: str


class FileRequestHandler(BaseHTTPRequestHandler):
    """Serves ``GET /<name>`` from the server's provider. Subclass to misbehave in tests
    (override :meth:`send_file`).

    Runs in a worker of :class:`HttpFileServer` on one request head read whole by the server's
    loop; what it writes is collected and sent in one write.
    """

    protocol_version = "HTTP/1.1"
    server_version = "vphone-http"
    sys_version = ""
    server: _Site  # type: ignore[assignment]
    request: _Request

    def setup(self) -> None:
        """Read from the request head, write into a buffer (no socket here)."""
        self.rfile = io.BytesIO(self.request.head)
        self.wfile = io.BytesIO()

    def handle(self) -> None:
        """One request per handler: the connection is the server's."""
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        """Nothing to flush: the server sends :attr:`wfile`."""

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
            self._refuse(HTTPStatus.FORBIDDEN, f"{self.command} {name[:80]!r} refused: {reason}")
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
            log.error("%s: HTTP %s %s from %s failed: %r", label, self.command, name, client, exc)
            self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")
            return
        if data is None:
            log.info("%s: HTTP %s %s from %s: not found", label, self.command, name, client)
            self._plain(HTTPStatus.NOT_FOUND, f"File not found {name}\n")
            return
        log.info("%s: HTTP %s %s from %s: %d bytes", label, self.command, name, client, len(data))
        self.send_file(data)

    def do_HEAD(self) -> None:
        """Answer one HEAD: what GET would answer (status, Content-Length ...), without the
        body (RFC 9110 9.3.2)."""
        self.do_GET()
        written = self.wfile
        assert isinstance(written, io.BytesIO)  # setup() made it one: nothing went out yet
        response = written.getvalue()
        end = response.find(b"\r\n\r\n")
        if end >= 0:
            self.wfile = io.BytesIO(response[: end + 4])

    def send_file(self, data: bytes) -> None:
        """Send ``data`` as a 200 response with an exact ``Content-Length``."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_allowed(self) -> None:
        log.warning(
            "%s: HTTP %s %s from %s refused: the server is read-only (GET and HEAD only)",
            self.server.label,
            self.command,
            self.path[:80],
            self.client_address[0],
        )
        self.close_connection = True  # the request body, if any, is not read
        body = b"only GET and HEAD are allowed\n"
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

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


class _HttpConversation(Conversation):
    """One HTTP connection: request heads read whole (at most :data:`MAX_HEAD` bytes), each
    answered by a new handler; keep-alive until the client or the handler closes."""

    def __init__(self, server: HttpFileServer, peer: tuple[str, int]) -> None:
        self._server = server
        self._peer = peer
        self._buffer = bytearray()
        self._finished = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while not self._finished:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    log.warning(
                        "%s: HTTP from %s: request head over %d bytes",
                        self._server.label,
                        self._peer[0],
                        MAX_HEAD,
                    )
                    out.append(_TOO_LARGE)
                    self._finished = True
                break
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            handler = self._server.handler(_Request(head), self._peer, self._server.site)  # type: ignore[arg-type]
            out.append(handler.wfile.getvalue())  # type: ignore[attr-defined]
            self._finished = handler.close_connection
        return [b"".join(out)] if out else []

    @property
    def partial(self) -> bool:
        return bool(self._buffer)

    @property
    def finished(self) -> bool:
        return self._finished


_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class HttpFileServer(StreamService):
    """An HTTP file server over a :data:`FileProvider` (module docstring).

    Args:
        provider: called with the requested name (no leading ``/``) and the client.
        listen: address and port to bind; port 0 picks a free port.
        label: a name for log lines (the lab node it serves).
        handler: the request handler class (tests pass a misbehaving subclass).
        idle_timeout: seconds a kept-alive connection may wait for its next request.
        request_timeout: seconds a whole request head may take from its first byte.
        max_connections, max_per_source: connections held at once, in all and from one
            address; at the limit the least recently active idle connection is evicted.
        workers: threads that answer requests.
    """

    _log = log
    _protocol = "HTTP"
    _unit = "HTTP request"

    def __init__(
        self,
        provider: FileProvider,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        label: str = "http",
        handler: type[FileRequestHandler] = FileRequestHandler,
        idle_timeout: float = 5.0,
        request_timeout: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
        workers: int = WORKERS,
    ) -> None:
        super().__init__(
            node=label,
            listen=listen,
            idle_timeout=idle_timeout,
            request_timeout=request_timeout,
            max_connections=max_connections,
            max_per_source=max_per_source,
            workers=workers,
            # A firmware load is megabytes: a phone on a slow link gets time to read it.
            write_timeout=30.0,
            name="http",
        )
        self.provider = provider
        self.label = label
        self.handler = handler
        self.site = _Site(provider, label)
        self._label = f"{label}: HTTP"

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port); the configured one before :meth:`start`."""
        if self._sock is None:
            return self.listen
        return super().address

    def start(self) -> None:
        """Bind and serve in a background thread (again: nothing).

        Raises:
            NetworkError: the address cannot be bound.
        """
        if self._sock is None:
            super().start()

    def stop(self) -> None:
        """Stop accepting, close open connections, and wait for the threads."""
        if self._sock is not None and not self._stopping.is_set():
            super().stop()

    def _announce(self) -> None:
        log.info("%s: HTTP listening on %s:%d", self.label, *self.address)

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        return _HttpConversation(self, peer)

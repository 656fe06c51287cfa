"""What the lab's socket servers and clients share: life cycle, the threaded TCP/TLS server, and
the TLS client prologue.

* :class:`Service` is anything started and stopped that can be used as ``with service: ...``
  (:class:`phone.net.servers.LabServer`, :class:`phone.net.sip.SipRegistrar`);
  :class:`BackgroundService` adds the listening address and the thread that serves it (the file
  servers of :mod:`phone.net.tftp` and :mod:`phone.net.http`, and every
  :class:`ThreadedTcpService`).
* :class:`ThreadedTcpService` is the skeleton of TVS, CAPF and the SIP stream listeners: bind
  with :func:`socket.create_server`, one accept thread that polls a stop event, at most
  ``max_connections`` connections at once (more are closed at once, logged), one worker thread
  per connection, tracked so that :meth:`~ThreadedTcpService.stop` can shut every live
  connection down and join every thread. A worker sets ``TCP_NODELAY``, runs the TLS handshake
  (bounded by ``handshake_timeout``), then hands the stream to the subclass's ``_handle`` with
  ``read_timeout`` set per read. Whatever ends a connection early (a timeout, a malformed
  frame, a TLS failure, a peer gone, a bug) ends *that* connection only, counted in
  ``dropped`` and logged with a reason; other connections are unaffected.
* :func:`tcp_connect` and :func:`tls_connect` are the phone's side: a TCP connection with
  ``TCP_NODELAY``, and a TLS session whose server certificate the caller checks *before*
  anything is sent, with every failure turned into :class:`phone.errors.NetworkError`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import ClassVar, Self

from cryptography import x509

from phone.errors import NetworkError, ProtocolError
from phone.trust.tvs import ServerCheck, TlsRefused

__all__ = [
    "STOP_POLL",
    "BackgroundService",
    "DropConnection",
    "Service",
    "ThreadedTcpService",
    "peer_certificate",
    "tcp_connect",
    "tls_connect",
]

# How often a serving loop (accept, or a UDP receive) looks at its stop event: the latency of
# stop(), not of serving.
STOP_POLL = 0.1


# --- life cycle ----------------------------------------------------------------------------------


class Service(abc.ABC):
    """Something that is started and stopped, and used as ``with service: ...``."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start serving (in background threads)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and wait for the threads to end."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BackgroundService(Service):
    """A :class:`Service` listening on one address, served by one background thread."""

    _thread: threading.Thread | None = None

    @property
    @abc.abstractmethod
    def address(self) -> tuple[str, int]:
        """Where the service listens."""

    @property
    def thread(self) -> threading.Thread | None:
        """The serving thread, None before :meth:`start` (tests assert it ended after
        :meth:`stop`)."""
        return self._thread


def peer_certificate(connection: socket.socket) -> x509.Certificate | None:
    """The certificate the TLS peer presented; None when it presented none or the connection
    is plain TCP."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    der = connection.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


# --- the server ----------------------------------------------------------------------------------


class DropConnection(Exception):
    """Raised by a connection handler to end its connection; the message is the logged reason."""


class ThreadedTcpService(BackgroundService):
    """A TCP server with one worker thread per connection, optionally TLS (module docstring).

    Subclasses set the class attributes and implement :meth:`_handle` (and
    :meth:`_tls_context` to serve TLS); :meth:`_handle` may raise :class:`DropConnection` (or
    let any error escape) to end the connection with a logged reason.

    Args:
        node: the lab node served, for log lines (``"TVS <node>: dropped ..."``).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        read_timeout: seconds a connection may stay silent.
        handshake_timeout: seconds the TLS handshake may take (default ``read_timeout``).
        max_connections: connections served at once.
        slots: a semaphore shared with other listeners of one server, so that their
            connections count against one limit (overrides ``max_connections``).
        name: the stem of the thread names (default: the protocol, lower case).
    """

    _log: ClassVar[logging.Logger]
    _protocol: ClassVar[str]  # "TVS": log lines and errors
    _unit: ClassVar[str]  # what the protocol's messages are called: "malformed <unit>: ..."
    _silent: ClassVar[str] = "silent"  # the drop reason of a timeout: "<silent> for 2.0 s"
    _dropped_verb: ClassVar[str] = "dropped"  # "<protocol> <node>: <dropped> <peer>: <reason>"
    _backlog: ClassVar[int | None] = None  # listen() backlog; None is Python's default
    _bind_kind: ClassVar[str] = ""  # "TCP ": "<protocol> cannot listen on TCP <address>"

    def __init__(
        self,
        *,
        node: str,
        listen: tuple[str, int],
        read_timeout: float,
        handshake_timeout: float | None = None,
        max_connections: int = 64,
        slots: threading.BoundedSemaphore | None = None,
        name: str | None = None,
    ) -> None:
        self.listen = listen
        self.read_timeout = read_timeout
        self.handshake_timeout = read_timeout if handshake_timeout is None else handshake_timeout
        self.max_connections = max_connections
        self.dropped = 0  # connections ended early, or refused for lack of a slot
        self._label = f"{self._protocol} {node}"
        self._name = name or self._protocol.lower()
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._slots = slots or threading.BoundedSemaphore(max_connections)
        self._workers: set[threading.Thread] = set()
        # Raw and TLS sockets of live connections: stop() shuts them down to end blocked reads.
        self._connections: set[socket.socket] = set()
        self._state_lock = threading.Lock()

    # --- what subclasses provide --------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS server context for a new connection; None serves plain TCP.

        Called once by :meth:`start` so that a missing node or identity fails there, and then
        for every connection (so a regenerated certificate is served at once).
        """
        return None

    @abc.abstractmethod
    def _handle(self, stream: socket.socket, peer: tuple[str, int]) -> None:
        """Serve one connection until it ends (the TLS handshake is done, the timeout set)."""

    def _where(self, peer: tuple[str, int]) -> str:
        """How log lines name a connection."""
        return f"{peer[0]}:{peer[1]}"

    def _announce(self) -> None:
        """Log that the service listens (once :meth:`start` bound the address)."""
        self._log.info("%s listening on %s:%d", self._label, *self.address)

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens.

        Raises:
            NetworkError: the server is not started.
        """
        if self._sock is None:
            raise NetworkError(f"the {self._protocol} server is not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind, then serve in a background thread.

        Raises:
            NetworkError: the address cannot be bound, or the service has no TLS identity
                (for example, its node is not in the lab).
        """
        self._tls_context()  # fail early: a wrong node is the caller's error, not a drop
        host, port = self.listen
        try:
            sock = socket.create_server(self.listen, backlog=self._backlog)
        except OSError as exc:
            raise NetworkError(
                f"{self._protocol} cannot listen on {self._bind_kind}{host}:{port}: {exc}"
            ) from None
        sock.settimeout(STOP_POLL)  # so that the accept loop sees the stop event
        self._sock = sock
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"{self._name}-accept", daemon=True
        )
        self._thread.start()
        self._announce()

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to end."""
        self._stopping.set()
        with self._state_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):  # already closed by the peer
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        with self._state_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(5)
        if self._sock is not None:
            self._sock.close()

    # --- serving ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # the listening socket was closed
                break
            if not self._slots.acquire(blocking=False):
                self._log.warning(
                    "%s: dropping %s:%d: too many connections", self._label, *peer[:2]
                )
                self._count_drop()
                conn.close()
                continue
            worker = threading.Thread(
                target=self._serve, args=(conn, peer), name=f"{self._name}-conn", daemon=True
            )
            with self._state_lock:
                self._workers.add(worker)
                self._connections.add(conn)
            worker.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        """A worker thread: set the connection up, run :meth:`_handle`, log why it ended."""
        stream: socket.socket = conn
        try:
            # Requests and answers are small frames in a ping-pong: without TCP_NODELAY, Nagle
            # and the peer's delayed ACK add about 40 ms to every round trip.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            context = self._tls_context()
            if context is not None:
                conn.settimeout(self.handshake_timeout)  # a silent client must not hold a slot
                tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
                stream = tls
                with self._state_lock:
                    self._connections.add(tls)  # stop() must reach a handshake in progress
                tls.do_handshake()
            stream.settimeout(self.read_timeout)
            self._handle(stream, peer)
        except Exception as exc:  # a worker must never take the server down with it
            reason = self._drop_reason(exc)
            if reason is not None:
                self._log.warning(
                    "%s: %s %s: %s", self._label, self._dropped_verb, self._where(peer), reason
                )
                self._count_drop()
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            with contextlib.suppress(OSError):
                conn.close()
            with self._state_lock:
                self._connections.discard(conn)
                self._connections.discard(stream)
                self._workers.discard(threading.current_thread())
            self._slots.release()

    def _drop_reason(self, exc: Exception) -> str | None:
        """Why ``exc`` ended a connection, for the log; None when it needs no word (a
        connection broken by :meth:`stop` itself)."""
        if isinstance(exc, DropConnection):
            return str(exc)
        if isinstance(exc, TimeoutError):
            return f"{self._silent} for {self.read_timeout} s"
        if isinstance(exc, ProtocolError):
            return f"malformed {self._unit}: {exc}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {exc.reason or exc}"
        if self._stopping.is_set():
            return None
        if isinstance(exc, OSError | ValueError | NetworkError):
            return f"connection error: {exc}"
        return f"internal error: {exc!r}"

    def _count_drop(self) -> None:
        with self._state_lock:  # workers drop concurrently: += is not atomic across threads
            self.dropped += 1


# --- the client ----------------------------------------------------------------------------------


def tcp_connect(address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection to ``address`` with ``TCP_NODELAY`` set (the caller closes it).

    Raises:
        TimeoutError, OSError: as :func:`socket.create_connection`.
    """
    sock = socket.create_connection(address, timeout=timeout)
    try:
        # Small request, small answer: Nagle plus delayed ACKs would add 40 ms per exchange.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def tls_connect(
    address: tuple[str, int],
    context: ssl.SSLContext,
    *,
    timeout: float,
    service: str,
    check_server: ServerCheck,
) -> Iterator[ssl.SSLSocket]:
    """A TLS session with ``service`` at ``address`` whose certificate ``check_server``
    accepted, for a ``with`` block; errors inside the block are mapped too.

    Raises:
        TlsRefused: the server presented no certificate, or ``check_server`` refused it (before
            the block runs: nothing was sent).
        NetworkError: refused, timed out, or TLS failed (``NetworkError`` subclasses raised in
            the block, such as :class:`phone.errors.ProtocolError`, pass unchanged).
    """
    where = f"{address[0]}:{address[1]}"
    try:
        raw = tcp_connect(address, timeout)
    except TimeoutError:
        raise NetworkError(f"{service} {where}: connection timed out after {timeout} s") from None
    except OSError as exc:
        raise NetworkError(f"{service} {where}: {exc.strerror or exc}") from None
    try:
        with context.wrap_socket(raw) as tls:
            server = peer_certificate(tls)
            if server is None:
                raise TlsRefused(f"{service} {where} presented no certificate")
            problem = check_server(server)
            if problem is not None:
                raise TlsRefused(f"TLS to {service} {where} refused: {problem}")
            yield tls
    except TimeoutError:
        raise NetworkError(f"{service} {where}: no answer within {timeout} s") from None
    except ssl.SSLError as exc:
        raise NetworkError(f"{service} {where}: TLS failed: {exc.reason or exc}") from None
    except NetworkError:  # TlsRefused, and what the block raised on purpose
        raise
    except OSError as exc:
        raise NetworkError(f"{service} {where}: {exc.strerror or exc}") from None
    finally:
        raw.close()

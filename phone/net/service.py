"""What the lab's socket servers and clients share: life cycle, the threaded TCP/TLS server, and
the TLS client prologue.

Why this module is longer than 600 lines: the stream service is one connection state machine
(accept, non-blocking handshake, whole-request and idle deadlines, per-source caps, eviction,
the worker hand-off) whose parts share its bookkeeping; splitting it would spread the limits
over modules that must agree on them.

* :class:`Service` is anything started and stopped that can be used as ``with service: ...``
  (:class:`phone.net.servers.LabServer`, :class:`phone.net.sip.SipRegistrar`);
  :class:`BackgroundService` adds the listening address and the thread that serves it (the file
  servers of :mod:`phone.net.tftp` and :mod:`phone.net.http`, and every
  :class:`StreamService`).
* :class:`StreamService` is the skeleton of TVS, CAPF, the SIP stream listeners and the HTTP
  file server, built so that idle clients cannot starve it (issue 13; docs/networks.md "Stream
  services that idle clients cannot starve"). One loop thread holds every connection in a
  selector, so an idle socket costs a file descriptor and no thread; the TLS handshake runs
  non-blocking, step by step, and what a connection sends is fed to its sans-IO
  :class:`Conversation` by a bounded pool of worker threads (RSA work and calls into the lab
  run there, never in the loop; except in a server that is one of several processes on one
  port, :mod:`phone.net.tvs_workers`, whose loop runs those steps itself while its sibling
  processes accept, and leaves to a worker only a send that would block). Deadlines are per phase,
  not per read: the whole TLS handshake (``handshake_timeout`` from the accept), a whole message
  (``request_timeout`` from its first byte, or for the peer's answer while a session is in
  progress), and the wait between messages (``idle_timeout``). At ``max_connections`` (or
  ``max_per_source`` from one address) the least recently active *idle* connection (no handshake
  byte yet, or between messages) is evicted; a new connection is refused only when every slot is
  busy. The listen backlog is :data:`BACKLOG`. Whatever ends a connection early (a deadline, a
  malformed frame, a TLS failure, a peer gone, a bug) ends *that* connection only, counted in
  ``dropped`` and logged with a reason; :meth:`~StreamService.stop` closes every connection and
  joins every thread.
* :func:`tcp_connect` and :func:`tls_connect` are the phone's side: a TCP connection with
  ``TCP_NODELAY``, and a TLS session whose server certificate the caller checks *before*
  anything is sent, with every failure turned into :class:`phone.errors.NetworkError`.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import logging
import queue
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar, Self

from cryptography import x509

from phone.errors import NetworkError, ProtocolError
from phone.trust.tvs import ServerCheck, TlsRefused

__all__ = [
    "BACKLOG",
    "MAX_CONNECTIONS",
    "MAX_PER_SOURCE",
    "STOP_POLL",
    "WORKERS",
    "BackgroundService",
    "Conversation",
    "DropConnection",
    "Service",
    "StreamService",
    "peer_certificate",
    "tcp_connect",
    "tls_connect",
]

# How often a serving loop (accept, or a UDP receive) looks at its stop event: the latency of
# stop(), not of serving.
STOP_POLL = 0.1

# The limits of every stream service (docs/networks.md says why these values).
BACKLOG = 512  # a boot storm's connections wait in the kernel, not refused (at least 128)
MAX_CONNECTIONS = 1024  # held at once per listener: a descriptor each, no thread
MAX_PER_SOURCE = 256  # from one address, so that one host cannot take every slot
WORKERS = 8  # threads per listener that run handshakes and requests (RSA is CPU work)


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


def listening_address(sock: socket.socket | None, protocol: str) -> tuple[str, int]:
    """The (host, port) ``sock`` listens on.

    Raises:
        NetworkError: no socket: the ``protocol`` server is not started.
    """
    if sock is None:
        raise NetworkError(f"the {protocol} server is not started")
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def peer_certificate(connection: socket.socket) -> x509.Certificate | None:
    """The certificate the TLS peer presented; None when it presented none or the connection
    is plain TCP."""
    if not isinstance(connection, ssl.SSLSocket):
        return None
    der = connection.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


# --- the server ----------------------------------------------------------------------------------


class DropConnection(Exception):
    """Raised by a conversation to end its connection; the message is the logged reason."""


class Conversation:
    """One connection's protocol, driven by a :class:`StreamService` (sans-IO: bytes in, bytes
    out). Subclasses implement :meth:`feed` and say, after each call, whether part of a message
    is buffered (:attr:`partial`), whether the server waits for the peer's next message
    (:attr:`expecting`: a session in progress) and whether the connection is to end
    (:attr:`finished`). Any exception from :meth:`feed` or :meth:`end` ends the connection with
    a logged reason."""

    def start(self) -> list[bytes]:
        """What the server says first, right after the TLS handshake (nothing by default)."""
        return []

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[bytes]:
        """Take bytes from the peer; the writes to send back, one TLS record each."""

    @property
    def partial(self) -> bool:
        """Part of a message is buffered: the request deadline runs."""
        return False

    @property
    def expecting(self) -> bool:
        """The server waits for the peer's next message (never evicted, request deadline)."""
        return False

    @property
    def finished(self) -> bool:
        """Close the connection once the last writes are sent."""
        return False

    @property
    def failure(self) -> str | None:
        """Once :attr:`finished`: why the conversation failed (the connection counts as
        dropped, after the last writes are sent), None when it ended well."""
        return None

    def end(self) -> None:
        """The peer closed the connection (raise :class:`DropConnection` if that is a breach)."""

    def abort(self, reason: str) -> list[bytes]:
        """The connection is dropped for ``reason``: last words to send, best effort."""
        return []


_HANDSHAKE, _OPEN = "handshake", "open"


@dataclass(eq=False)
class _Connection:
    raw: socket.socket
    peer: tuple[str, int]
    deadline: float
    last: float  # last activity (eviction takes the least recent idle connection)
    stream: socket.socket | None = None  # the TLS socket once wrapped, else ``raw``
    phase: str = _HANDSHAKE
    conversation: Conversation | None = None
    busy: bool = False  # a worker owns the connection (not in the selector)
    touched: bool = False  # the peer sent something (a handshake in progress is not idle)
    request_started: float | None = None  # first byte of the message being read
    want_write: bool = False  # the TLS handshake waits for the socket to be writable
    why: str = "silent"  # the drop reason when the deadline passes
    closed: bool = False
    unsent: list[bytes] | None = None  # writes an inline step could not send without blocking

    @property
    def source(self) -> str:
        return self.peer[0]


class StreamService(BackgroundService):
    """A TCP (optionally TLS) server that idle clients cannot starve (module docstring).

    One loop thread holds every connection in a selector; a connection costs a thread only
    while a worker of the bounded pool (``workers``) runs its handshake step or its complete
    reads. Subclasses set the class attributes, implement :meth:`_open` (a
    :class:`Conversation` per connection) and, to serve TLS, :meth:`_tls_context`.

    Args:
        node: the lab node served, for log lines (``"TVS <node>: dropped ..."``).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        idle_timeout: seconds a connection may wait between messages.
        request_timeout: seconds a whole message may take from its first byte (and that the
            peer has to answer when :attr:`Conversation.expecting`).
        handshake_timeout: seconds the whole TLS handshake may take from the accept.
        max_connections: connections held at once; at the limit the least recently active
            idle connection is evicted, and a new one refused only when none is idle.
        max_per_source: the same, per client address.
        workers: threads that run handshakes and conversations.
        write_timeout: seconds a worker may block sending one answer.
        name: the stem of the thread names (default: the protocol, lower case).
    """

    _log: ClassVar[logging.Logger]
    _protocol: ClassVar[str]  # "TVS": log lines and errors
    _unit: ClassVar[str]  # what the protocol's messages are called: "malformed <unit>: ..."
    _silent: ClassVar[str] = "silent"  # the drop reason of an idle timeout: "<silent> for 2.0 s"
    _dropped_verb: ClassVar[str] = "dropped"  # "<protocol> <node>: <dropped> <peer>: <reason>"
    _backlog: ClassVar[int] = BACKLOG
    _accept_batch: ClassVar[int] = 64  # connections taken from the backlog per wake-up
    # Inline steps: the loop thread runs the handshake steps and the reads itself instead of
    # handing them to the pool (see _dispatch). Only for a server that is one of several
    # processes on one port (phone.net.tvs_workers): while its loop runs a step, its siblings
    # accept. Each hand-off to the pool and back costs two thread wake-ups, a wake-socket
    # write and two epoll_ctl calls; a new TLS connection needs three or four steps, which was
    # about a third of a TVS worker's CPU per connection.
    _inline: ClassVar[bool] = False
    # The listener is shared with sibling processes: wake one of them per connection
    # (EPOLLEXCLUSIVE), not all, of which all but one then find nothing to accept.
    _exclusive_accept: ClassVar[bool] = False
    _bind_kind: ClassVar[str] = ""  # "TCP ": "<protocol> cannot listen on TCP <address>"

    def __init__(
        self,
        *,
        node: str,
        listen: tuple[str, int],
        idle_timeout: float,
        request_timeout: float,
        handshake_timeout: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
        workers: int = WORKERS,
        write_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        self.listen = listen
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.workers = workers
        self.write_timeout = write_timeout
        self.dropped = 0  # connections ended early, or refused
        self.evicted = 0  # idle connections closed to make room for a new one
        self.refused = 0  # new connections closed because every slot was busy
        self._label = f"{self._protocol} {node}"
        self._name = name or self._protocol.lower()
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        # Owned by the loop thread: every connection, the idle ones in LRU order, per source.
        self._connections: dict[_Connection, None] = {}
        self._idle: dict[_Connection, None] = {}
        self._per_source: dict[str, int] = {}
        self._returned: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        # The loop's wake-up: a worker gives a connection back, stop() is called.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._tls = False
        self._pool: ThreadPoolExecutor | None = None
        self._selector: selectors.BaseSelector | None = None
        self._loop_ident: int | None = None  # the loop thread (inline steps run there)

    # --- what subclasses provide --------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS server context for a new connection; None serves plain TCP.

        Called once by :meth:`start` so that a missing node or identity fails there, and then
        for every connection (so a regenerated certificate is served at once).
        """
        return None

    @abc.abstractmethod
    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        """A conversation for a new connection (TLS handshake done; in a worker)."""

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
        return listening_address(self._sock, self._protocol)

    @property
    def open_connections(self) -> int:
        """Connections held now (tests, probes)."""
        return len(self._connections)

    def start(self) -> None:
        """Bind, then serve in a background thread.

        Raises:
            NetworkError: the address cannot be bound, or the service has no TLS identity
                (for example, its node is not in the lab).
        """
        # Fail early: a wrong node is the caller's error, not a drop.
        self._tls = self._tls_context() is not None
        sock = self._bind()
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._listen_on(sock)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"{self._name}-worker")
        self._thread = threading.Thread(target=self._loop, name=f"{self._name}-loop", daemon=True)
        self._thread.start()
        self._announce()

    def _bind(self) -> socket.socket:
        """The listening socket: bound to :attr:`listen` here (a worker process of
        :mod:`phone.net.tvs_workers` is handed the one its parent bound instead).

        Raises:
            NetworkError: the address cannot be bound.
        """
        host, port = self.listen
        try:
            return socket.create_server(self.listen, backlog=self._backlog)
        except OSError as exc:
            raise NetworkError(
                f"{self._protocol} cannot listen on {self._bind_kind}{host}:{port}: {exc}"
            ) from None

    def _listen_on(self, listener: socket.socket) -> None:
        """Put the listener in the selector (exclusively, see ``_exclusive_accept``)."""
        selector = self._selector
        assert selector is not None
        selector.register(listener, selectors.EVENT_READ, None)
        exclusive = getattr(select, "EPOLLEXCLUSIVE", None)
        # selectors cannot pass EPOLLEXCLUSIVE, and epoll cannot add it by a modify: the fd is
        # registered again on the selector's own epoll object (a private attribute: without
        # it, every worker is woken as before), its key kept.
        epoll = getattr(selector, "_selector", None)
        if self._exclusive_accept and exclusive and isinstance(epoll, select.epoll):
            epoll.unregister(listener.fileno())
            epoll.register(listener.fileno(), select.EPOLLIN | exclusive)

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to end."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        for wake in (self._wake_r, self._wake_w):
            if wake is not None:
                wake.close()

    # --- the loop (one thread) ----------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w is None:
            return
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._wake_w.send(b"\0")

    def _loop(self) -> None:
        selector, listener, wake = self._selector, self._sock, self._wake_r
        assert selector is not None and listener is not None and wake is not None
        paused_until = 0.0  # accept paused (out of file descriptors, nothing to evict)
        self._loop_ident = threading.get_ident()
        next_sweep = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if paused_until and now >= paused_until:
                    paused_until = 0.0
                    self._listen_on(listener)
                for key, _mask in selector.select(STOP_POLL / 2):
                    if key.data is None:
                        paused_until = self._accept_or_pause(listener)
                    elif key.data is wake:
                        with contextlib.suppress(OSError):
                            while wake.recv(4096):
                                pass
                    else:
                        self._dispatch(key.data, self._work, inline=self._inline)
                while True:
                    try:
                        conn = self._returned.get_nowait()
                    except queue.Empty:
                        break
                    self._returned_to_loop(conn)
                now = time.monotonic()
                if now >= next_sweep:  # deadlines: a few times per second is precise enough
                    next_sweep = now + STOP_POLL / 2
                    if self._exclusive_accept and not paused_until:
                        # EPOLLEXCLUSIVE wakes one sibling per connection. A sibling killed
                        # between its wake-up and its accept takes that wake-up with it, and
                        # nobody else is woken for the connection until another one arrives
                        # (a client alone would wait out its handshake timeout). Looking at
                        # the shared backlog on every sweep bounds that wait to a sweep.
                        paused_until = self._accept_or_pause(listener)
                    for conn in [c for c in self._connections if not c.busy and c.deadline <= now]:
                        self._dispatch(conn, self._expire)
        finally:
            self._shutdown()

    def _accept_or_pause(self, listener: socket.socket) -> float:
        """Accept what the backlog holds; out of descriptors, stop listening for a while and
        return when to listen again (0.0: listening)."""
        if self._accept(listener):
            return 0.0
        selector = self._selector
        assert selector is not None
        selector.unregister(listener)
        return time.monotonic() + STOP_POLL

    def _accept(self, listener: socket.socket) -> bool:
        """Accept what the backlog holds (a bounded batch); False when out of descriptors."""
        for _ in range(self._accept_batch):
            try:
                raw, peer = listener.accept()
            except BlockingIOError:
                return True
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    victim = next(iter(self._idle), None)
                    if victim is None:
                        self._log.warning("%s: cannot accept: %s", self._label, exc)
                        return False
                    self._evict(victim, "out of file descriptors")
                    continue
                return True  # ECONNABORTED and friends: that client is gone
            source = str(peer[0])
            if not self._make_room(source):
                self._log.warning(
                    "%s: refusing %s:%d: every connection is busy", self._label, *peer[:2]
                )
                self._count("refused")
                raw.close()
                continue
            now = time.monotonic()
            raw.setblocking(False)
            with contextlib.suppress(OSError):
                # Small frames in a ping-pong: without TCP_NODELAY, Nagle and the peer's
                # delayed ACK add about 40 ms to every round trip.
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(
                raw=raw,
                peer=(source, int(peer[1])),
                deadline=now + (self.handshake_timeout if self._tls else self.idle_timeout),
                last=now,
                why=(
                    f"TLS handshake not done within {self.handshake_timeout:g} s"
                    if self._tls
                    else f"{self._silent} for {self.idle_timeout:g} s"
                ),
            )
            self._connections[conn] = None
            self._per_source[source] = self._per_source.get(source, 0) + 1
            self._wait(conn)
        return True

    def _make_room(self, source: str) -> bool:
        """Evict the least recently active idle connection when a limit is reached; False when
        every connection that counts against the limit is busy."""
        if self._per_source.get(source, 0) >= self.max_per_source:
            victim = next((c for c in self._idle if c.source == source), None)
            if victim is None:
                return False
            self._evict(victim, f"over {self.max_per_source} connections from {source}")
        if len(self._connections) >= self.max_connections:
            victim = next(iter(self._idle), None)
            if victim is None:
                return False
            self._evict(victim, f"over {self.max_connections} connections")
        return True

    def _evict(self, conn: _Connection, why: str) -> None:
        self._log.info(
            "%s: evicted idle %s to make room (%s)", self._label, self._where(conn.peer), why
        )
        self._count("evicted")
        self._forget(conn)
        _close(conn)

    def _wait(self, conn: _Connection) -> None:
        """Hand a connection to the selector (loop thread)."""
        assert self._selector is not None
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.want_write else 0)
        self._selector.register(conn.stream or conn.raw, events, conn)
        idle = conn.phase == _HANDSHAKE and not conn.touched
        if conn.phase == _OPEN and conn.conversation is not None:
            idle = not (conn.conversation.partial or conn.conversation.expecting)
        if idle:
            self._idle[conn] = None

    def _dispatch(
        self, conn: _Connection, job: Callable[[_Connection], None], *, inline: bool = False
    ) -> None:
        """Give a connection to a worker, or run ``job`` here when ``inline`` (loop thread).

        An inline step is the same step a worker would run (the same deadlines, limits and
        counts); only a send that would block is left to a worker (:meth:`_flush`).
        """
        assert self._selector is not None and self._pool is not None
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.stream or conn.raw)
        self._idle.pop(conn, None)
        conn.busy = True
        if inline:
            job(conn)
        else:
            self._pool.submit(job, conn)

    def _returned_to_loop(self, conn: _Connection) -> None:
        conn.busy = False
        if conn.closed:  # the worker closed it
            self._forget(conn)
        elif conn.unsent and not self._stopping.is_set():
            self._dispatch(conn, self._flush)
        elif self._stopping.is_set():
            _close(conn)
        else:
            self._wait(conn)

    def _forget(self, conn: _Connection) -> None:
        if self._connections.pop(conn, 0) is None:
            count = self._per_source[conn.source] - 1
            if count:
                self._per_source[conn.source] = count
            else:
                del self._per_source[conn.source]
        self._idle.pop(conn, None)
        if self._selector is not None and not conn.busy:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.stream or conn.raw)

    def _shutdown(self) -> None:
        """End every connection (unblocking workers), wait for the workers, close."""
        for conn in list(self._connections):
            with contextlib.suppress(OSError, ValueError):
                (conn.stream or conn.raw).shutdown(socket.SHUT_RDWR)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for conn in list(self._connections):
            _close(conn)
        self._connections.clear()
        self._idle.clear()
        self._per_source.clear()
        if self._selector is not None:
            self._selector.close()
        if self._sock is not None:
            self._sock.close()

    # --- the workers ----------------------------------------------------------------------------

    def _work(self, conn: _Connection) -> None:
        """A worker: advance the handshake, or read what arrived and answer it."""
        try:
            conn.touched = True
            conn.last = time.monotonic()
            if conn.phase == _HANDSHAKE and not self._handshake(conn):
                return
            self._pump(conn)
        except Exception as exc:  # a connection's failure is that connection's only
            self._drop(conn, exc)
        finally:
            self._give_back(conn)

    def _handshake(self, conn: _Connection) -> bool:
        """One step of the TLS handshake; True once the conversation is open."""
        conn.want_write = False
        if conn.stream is None:
            context = self._tls_context()
            if context is not None:
                conn.stream = context.wrap_socket(
                    conn.raw, server_side=True, do_handshake_on_connect=False
                )
            else:
                conn.stream = conn.raw
        stream = conn.stream
        if isinstance(stream, ssl.SSLSocket):
            try:
                stream.do_handshake()
            except ssl.SSLWantReadError:
                return False
            except ssl.SSLWantWriteError:
                conn.want_write = True
                return False
        conn.conversation = self._open(stream, conn.peer)
        conn.phase = _OPEN
        self._send(conn, conn.conversation.start())
        self._rearm(conn, time.monotonic())
        return True

    def _flush(self, conn: _Connection) -> None:
        """A worker: send what an inline step could not (blocking at most ``write_timeout``),
        then go on reading as :meth:`_work` does."""
        try:
            writes, conn.unsent = conn.unsent or [], None
            self._send(conn, writes)
            self._pump(conn)
        except Exception as exc:  # a connection's failure is that connection's only
            self._drop(conn, exc)
        finally:
            self._give_back(conn)

    def _pump(self, conn: _Connection) -> None:
        """Read everything available, feed it, send the answers (the socket is non-blocking)."""
        stream, conversation = conn.stream, conn.conversation
        assert stream is not None and conversation is not None
        while not conn.unsent and not self._stopping.is_set() and not conversation.finished:
            try:
                data = stream.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            if not data:
                conversation.end()
                if isinstance(stream, ssl.SSLSocket):  # answer the peer's close_notify
                    with contextlib.suppress(OSError, ValueError):
                        stream.unwrap()
                _close(conn)
                return
            now = time.monotonic()
            if not conversation.partial:
                conn.request_started = now
            self._send(conn, conversation.feed(data))
            self._rearm(conn, now)
        if conn.unsent:  # a worker sends the rest, then reads on (_flush)
            return
        if conversation.finished:
            if conversation.failure is not None:
                raise DropConnection(conversation.failure)
            _close(conn)

    def _rearm(self, conn: _Connection, now: float) -> None:
        """Set the deadline after the conversation moved (module docstring)."""
        conversation = conn.conversation
        assert conversation is not None
        if conversation.partial:
            started = conn.request_started or now
            conn.deadline = started + self.request_timeout
            conn.why = f"{self._unit} not complete within {self.request_timeout:g} s"
        elif conversation.expecting:
            conn.request_started = None
            conn.deadline = now + self.request_timeout
            conn.why = f"{self._silent} for {self.request_timeout:g} s"
        else:
            conn.request_started = None
            conn.deadline = now + self.idle_timeout
            conn.why = f"{self._silent} for {self.idle_timeout:g} s"

    def _send(self, conn: _Connection, writes: list[bytes]) -> None:
        """Send each write whole (one TLS record each), blocking at most ``write_timeout``."""
        if not writes:
            return
        stream = conn.stream
        assert stream is not None
        if threading.get_ident() == self._loop_ident:
            # An inline step must not block the loop: what the socket does not take now is
            # left to a worker, which waits up to ``write_timeout`` for it (_flush).
            for index, data in enumerate(writes):
                try:
                    sent = stream.send(data)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    sent = 0  # OpenSSL wants the same bytes again: the worker sends them whole
                if sent < len(data):
                    conn.unsent = [data[sent:], *writes[index + 1 :]]
                    return
            return
        stream.settimeout(self.write_timeout)
        try:
            for data in writes:
                stream.sendall(data)
        finally:
            with contextlib.suppress(OSError):
                stream.setblocking(False)

    def _expire(self, conn: _Connection) -> None:
        """A worker: the connection's deadline passed."""
        try:
            self._drop(conn, DropConnection(conn.why))
        finally:
            self._give_back(conn)

    def _drop(self, conn: _Connection, exc: Exception) -> None:
        """End a connection early: last words, a log line, the count."""
        reason = self._drop_reason(exc)
        if reason is not None and conn.conversation is not None and conn.stream is not None:
            try:
                farewell = conn.conversation.abort(reason)
                conn.stream.settimeout(0.5)
                for data in farewell:
                    conn.stream.sendall(data)
            except Exception as gone:  # the peer may be gone: there is nobody to tell
                self._log.debug("%s: no last words to %s: %r", self._label, conn.peer, gone)
        if reason is not None:
            self._log.warning(
                "%s: %s %s: %s", self._label, self._dropped_verb, self._where(conn.peer), reason
            )
            self._count("dropped")
        _close(conn)

    def _give_back(self, conn: _Connection) -> None:
        self._returned.put(conn)
        if threading.get_ident() != self._loop_ident:  # the loop drains the queue after a step
            self._wake()

    def _drop_reason(self, exc: Exception) -> str | None:
        """Why ``exc`` ended a connection, for the log; None when it needs no word (a
        connection broken by :meth:`stop` itself)."""
        if isinstance(exc, DropConnection):
            return str(exc)
        if isinstance(exc, TimeoutError):
            return f"could not send within {self.write_timeout} s"
        if isinstance(exc, ProtocolError):
            return f"malformed {self._unit}: {exc}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {exc.reason or exc}"
        if self._stopping.is_set():
            return None
        if isinstance(exc, OSError | ValueError | NetworkError):
            return f"connection error: {exc}"
        return f"internal error: {exc!r}"

    def _count(self, what: str) -> None:
        with self._state_lock:  # workers and the loop count concurrently
            setattr(self, what, getattr(self, what) + 1)
            if what == "refused":
                self.dropped += 1


def _close(conn: _Connection) -> None:
    conn.closed = True
    for sock in (conn.stream, conn.raw):
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


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

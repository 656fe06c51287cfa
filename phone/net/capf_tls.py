"""CAPF over TLS on TCP (trust-file-formats.md section 9b, TCP 3804): the server and the client.

:class:`CapfTlsServer` serves the CAPF of a lab cluster (on its publisher). TLS uses the
cluster's CAPF certificate and key; no client certificate is asked for, because CAPF
authenticates phones inside the protocol (null string, authentication string, or a signed
LSC/MIC in AUTH_RESP: :mod:`phone.cluster.capf`). Every connection gets a
:class:`phone.cluster.capf.CapfSession` from the cluster's :class:`~phone.cluster.capf.CapfService`
(server-chosen session ids that increase per connection); the session speaks first.

A malformed or truncated frame, a frame out of order, a silent peer (``read_timeout`` per read,
handshake included) or a peer that leaves mid-session ends *that* connection: the session is
dropped (logged in the cluster's service log, nothing recorded on the device) and the server
keeps serving. Connections are served one thread each, at most ``max_connections`` at once.
Calls into the lab are serialized by ``lock`` (share :attr:`phone.net.servers.LabServer.lock`).

:func:`capf_exchange_tls` is the phone's side: TLS without a client certificate, the server
certificate handed to the caller's ``check_server`` (item 20: the CAPF record of the ITL, or
TVS) *before* any frame is read or sent, then the phone's session answers the server's frames
until it ends.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509

from phone.cluster.capf import CapfSession
from phone.cluster.model import Lab
from phone.errors import NetworkError, ProtocolError
from phone.net.backend import CapfConversation
from phone.net.tvs_tls import client_context, server_context
from phone.trust.tvs import ServerCheck, TlsRefused
from phone.wire.capf import FrameReader, encode_frame

__all__ = ["CAPF_PORT", "CapfTlsServer", "capf_exchange_tls"]

CAPF_PORT = 3804  # section 9b
log = logging.getLogger("vphone.capf")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _peer(connection: ssl.SSLSocket) -> x509.Certificate | None:
    der = connection.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


class CapfTlsServer:
    """The CAPF of the cluster whose publisher is ``host``, over TLS (module docstring).

    Args:
        lab: the lab (read on every connection: a regenerated CAPF certificate is served at
            once, and pending operations set while serving are seen).
        host: the publisher's host name (or any name the lab resolves to it).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the time CAPF issues LSCs and checks certificates at (default: the lab's clock,
            else the wall clock).
        read_timeout: seconds a connection may stay silent (handshake included).
        max_connections: connections served at once.
        lock: held around every call into the lab.
    """

    def __init__(
        self,
        lab: Lab,
        host: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        read_timeout: float = 2.0,
        max_connections: int = 64,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        self.lab = lab
        self.host = host
        self.listen = listen
        self.clock: Callable[[], datetime] = clock or lab.clock or _utc_now
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.sessions = 0  # connections that completed a session (END_SESSION sent)
        self.dropped = 0  # connections ended early: malformed, silent, TLS failure, peer gone
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._workers: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._state_lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens.

        Raises:
            NetworkError: the server is not started.
        """
        if self._sock is None:
            raise NetworkError("the CAPF server is not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def thread(self) -> threading.Thread | None:
        """The accept-loop thread (None before :meth:`start`)."""
        return self._thread

    def start(self) -> None:
        """Bind, then serve in a background thread.

        Raises:
            NetworkError: no CAPF runs at ``host``, or the address cannot be bound.
        """
        self._context()  # fail early: no CAPF there
        try:
            sock = socket.create_server(self.listen)
        except OSError as exc:
            raise NetworkError(
                f"CAPF cannot listen on {self.listen[0]}:{self.listen[1]}: {exc}"
            ) from None
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="capf-accept", daemon=True)
        self._thread.start()
        log.info("CAPF %s listening on %s:%d", self.host, *self.address)

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to end."""
        self._stopping.set()
        with self._state_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        with self._state_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> CapfTlsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _context(self) -> ssl.SSLContext:
        with self.lock:
            service = self.lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"no CAPF runs at {self.host!r} (it runs on the publisher)")
            identity = service.cluster.capf
        # No anchors: no client certificate is requested (module docstring).
        return server_context(identity, ())

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if not self._slots.acquire(blocking=False):
                log.warning("CAPF %s: dropping %s:%d: too many connections", self.host, *peer)
                self.dropped += 1
                conn.close()
                continue
            worker = threading.Thread(
                target=self._serve, args=(conn, peer), name="capf-conn", daemon=True
            )
            with self._state_lock:
                self._workers.add(worker)
                self._connections.add(conn)
            worker.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        where = f"{peer[0]}:{peer[1]}"
        stream: socket.socket = conn
        session: CapfSession | None = None
        try:
            conn.settimeout(self.read_timeout)
            # A session is a ping-pong of small frames: without TCP_NODELAY, Nagle and the
            # peer's delayed ACK add about 40 ms to every round trip.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self._context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            stream = tls
            with self._state_lock:
                self._connections.add(tls)
            tls.do_handshake()
            with self.lock:
                service = self.lab.capf_service(self.host)
                if service is None:
                    raise NetworkError(f"CAPF on {self.host} is not running")
                session = service.open(now=self.clock(), peer=peer[0])
                opening = session.start()
            for frame in opening:
                tls.sendall(encode_frame(frame))
            reader = FrameReader()
            while not session.finished and not self._stopping.is_set():
                data = tls.recv(65536)
                if not data:
                    self._drop(session, where, "the phone closed the connection mid-session")
                    return
                for frame in reader.feed(data):
                    with self.lock:
                        replies = session.receive(frame)
                    for reply in replies:
                        tls.sendall(encode_frame(reply))
                    if session.finished:
                        break
            if session.finished:
                with self._state_lock:
                    self.sessions += 1
        except TimeoutError:
            self._drop(session, where, f"silent for {self.read_timeout} s")
        except ProtocolError as exc:
            self._drop(session, where, f"malformed CAPF message: {exc}")
        except ssl.SSLError as exc:
            self._drop(session, where, f"TLS failed: {exc.reason or exc}")
        except (OSError, ValueError, NetworkError) as exc:
            if not self._stopping.is_set():
                self._drop(session, where, f"connection error: {exc}")
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

    def _drop(self, session: CapfSession | None, where: str, reason: str) -> None:
        with self._state_lock:
            self.dropped += 1
        log.warning("CAPF %s: dropped %s: %s", self.host, where, reason)
        if session is not None:
            with self.lock:
                session.drop(reason)


# --- the client ----------------------------------------------------------------------------------


def capf_exchange_tls(
    address: tuple[str, int],
    conversation: CapfConversation,
    check_server: ServerCheck,
    *,
    timeout: float = 2.0,
) -> None:
    """Run the phone's CAPF session with the server at ``address`` (module docstring).

    Raises:
        TlsRefused: ``check_server`` refused the server certificate (nothing was exchanged).
        ProtocolError: the server sent a frame the phone cannot take (the connection is closed).
        NetworkError: refused, timed out, TLS failed, or closed before the session ended.
    """
    where = f"{address[0]}:{address[1]}"
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except TimeoutError:
        raise NetworkError(f"CAPF {where}: connection timed out after {timeout} s") from None
    except OSError as exc:
        raise NetworkError(f"CAPF {where}: {exc.strerror or exc}") from None
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see CapfTlsServer._serve
        with client_context(None).wrap_socket(raw) as tls:
            server = _peer(tls)
            if server is None:
                raise TlsRefused(f"CAPF {where} presented no certificate")
            problem = check_server(server)
            if problem is not None:
                raise TlsRefused(f"TLS to CAPF {where} refused: {problem}")
            reader = FrameReader()
            while not conversation.finished:
                data = tls.recv(65536)
                if not data:
                    raise NetworkError(f"CAPF {where} closed the connection mid-session")
                for frame in reader.feed(data):
                    for reply in conversation.receive(frame):
                        tls.sendall(encode_frame(reply))
                    if conversation.finished:
                        break
    except TimeoutError:
        raise NetworkError(f"CAPF {where}: no answer within {timeout} s") from None
    except ssl.SSLError as exc:
        raise NetworkError(f"CAPF {where}: TLS failed: {exc.reason or exc}") from None
    except (ConnectionError, BrokenPipeError) as exc:
        raise NetworkError(f"CAPF {where}: {exc}") from None
    finally:
        raw.close()

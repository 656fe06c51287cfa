"""TVS over TLS on TCP (items 21-22; trust-file-formats.md section 9a): the server and the client.

:class:`TvsTlsServer` serves one TVS node of a lab. TLS uses the node's TVS certificate and
key; the server asks for a client certificate and hands it to the cluster's
:class:`phone.cluster.tvs.TvsService`, which authenticates it at the lab clock (the phone's
MIC or LSC must come from a CAPF-trust anchor). How an unauthenticated client is treated:

* a client that presents **no** certificate completes the handshake and gets an *invalid*
  answer whose reason says why (the TvsService's "no client certificate");
* a client whose certificate does **not chain to a CAPF-trust anchor** fails the TLS handshake
  (OpenSSL checks the chain; validity dates are left to the TvsService, which judges them at
  the lab clock rather than the wall clock): the connection is dropped with a logged reason.

Malformed frames, oversized lengths, a response sent as a request, and slow or silent peers
(``read_timeout`` per read, the handshake included) end *that* connection with a logged reason;
other connections are unaffected. Connections are served one thread each, at most
``max_connections`` at once (more are closed at once, logged).

:func:`tvs_query_tls` is the phone's side: TLS presenting the phone's certificate, the server
certificate checked by the caller's ``check_server`` (item 21: it must be a TVS record of the
installed ITL) *before* any request is sent.

The TLS helpers :func:`client_context` and :func:`server_context` are shared with
:mod:`phone.net.sip`. Python's ``ssl`` only loads keys from files: each identity is written to
a private temporary folder (0700, files 0600), loaded, and the folder deleted at once; contexts
are cached per certificate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from phone.cluster.model import Lab, TrustStore
from phone.errors import NetworkError, ProtocolError
from phone.pki import CertKind, Identity, cert_to_pem, key_to_pem
from phone.trust.tvs import ServerCheck, TlsRefused, TvsAnswer
from phone.wire.tvs import (
    Command,
    Frame,
    FrameReader,
    Tag,
    decode_answer,
    encode_frame,
    query_request,
    response,
)

__all__ = [
    "TvsTlsServer",
    "client_context",
    "server_context",
    "tvs_query_tls",
]

log = logging.getLogger("vphone.tvs")

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the lab clock, not the wall clock, dates certificates.
_NO_CHECK_TIME = 0x200000
# Lab clusters may use RSA-1024 keys, as old CUCM releases did; OpenSSL 3's default security
# level 2 would refuse them.
_CIPHERS = "DEFAULT:@SECLEVEL=1"
_CACHE_SIZE = 256
_cache_lock = threading.Lock()
_client_cache: OrderedDict[bytes, ssl.SSLContext] = OrderedDict()
_server_cache: OrderedDict[tuple[bytes, ...], ssl.SSLContext] = OrderedDict()


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def _load_identity(context: ssl.SSLContext, identity: Identity) -> None:
    with tempfile.TemporaryDirectory(prefix="vphone-tls-") as folder:  # created 0700
        cert_path = Path(folder) / "cert.pem"
        key_path = Path(folder) / "key.pem"
        for path, data in (
            (cert_path, cert_to_pem(identity.certificate)),
            (key_path, key_to_pem(identity.key, None, allow_unencrypted=True)),
        ):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
        context.load_cert_chain(cert_path, key_path)


_K = TypeVar("_K")


def _remember(cache: OrderedDict[_K, ssl.SSLContext], key: _K, ctx: ssl.SSLContext) -> None:
    cache[key] = ctx
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)


def client_context(identity: Identity | None) -> ssl.SSLContext:
    """A TLS client context presenting ``identity`` that does not verify the server itself.

    The caller checks the server certificate against its trust list (CERT_NONE here: a phone
    pins certificates from its ITL/CTL, it does not build chains to a public CA).
    """
    key = _fingerprint(identity.certificate) if identity is not None else b""
    with _cache_lock:
        cached = _client_cache.get(key)
        if cached is not None:
            _client_cache.move_to_end(key)
            return cached
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(_CIPHERS)
    if identity is not None:
        _load_identity(context, identity)
    with _cache_lock:
        _remember(_client_cache, key, context)
    return context


def server_context(identity: Identity, anchors: tuple[x509.Certificate, ...]) -> ssl.SSLContext:
    """A TLS server context for ``identity`` asking for an optional client certificate.

    A presented client certificate must chain to one of ``anchors`` (the CAPF-trust store);
    its dates are not checked here (see the module docstring).
    """
    key = (_fingerprint(identity.certificate), *(_fingerprint(a) for a in anchors))
    with _cache_lock:
        cached = _server_cache.get(key)
        if cached is not None:
            _server_cache.move_to_end(key)
            return cached
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers(_CIPHERS)
    _load_identity(context, identity)
    if anchors:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(
            cadata="".join(cert_to_pem(a).decode("ascii") for a in anchors)
        )
        context.verify_flags = context.verify_flags | ssl.VerifyFlags(_NO_CHECK_TIME)
    with _cache_lock:
        _remember(_server_cache, key, context)
    return context


def peer_certificate(connection: ssl.SSLSocket) -> x509.Certificate | None:
    """The certificate the TLS peer presented, or None."""
    der = connection.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


# --- the server ----------------------------------------------------------------------------------


class TvsTlsServer:
    """TVS over TLS for node ``tvs_host`` of ``lab`` (module docstring).

    Args:
        lab: the lab whose cluster answers (read on every request, so trust-store changes and
            certificate regenerations take effect at once).
        tvs_host: the TVS node's host name.
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the lab clock that dates client certificates (default: the wall clock).
        read_timeout: seconds a connection may stay silent (handshake included).
        max_connections: connections served at once.
        lock: held around every call into the lab (share one with the other servers of a lab).
    """

    def __init__(
        self,
        lab: Lab,
        tvs_host: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        read_timeout: float = 2.0,
        max_connections: int = 64,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        self.lab = lab
        self.tvs_host = tvs_host
        self.listen = listen
        self.clock: Callable[[], datetime] = clock or lab.clock or _utc_now
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.requests = 0
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._workers: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._state_lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """Where the server listens."""
        if self._sock is None:
            raise NetworkError("the TVS server is not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def thread(self) -> threading.Thread | None:
        """The accept-loop thread (None before :meth:`start`)."""
        return self._thread

    def start(self) -> None:
        """Bind, then serve in a background thread.

        Raises:
            NetworkError: the address cannot be bound, or no TVS runs at ``tvs_host``.
        """
        if self.lab.resolve(self.tvs_host) is None:
            raise NetworkError(f"the lab has no node {self.tvs_host!r}")
        self._context()  # fail early on a bad identity
        try:
            sock = socket.create_server(self.listen)
        except OSError as exc:
            raise NetworkError(
                f"TVS cannot listen on {self.listen[0]}:{self.listen[1]}: {exc}"
            ) from None
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="tvs-accept", daemon=True)
        self._thread.start()
        log.info("TVS %s listening on %s:%d", self.tvs_host, *self.address)

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

    def __enter__(self) -> TvsTlsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _context(self) -> ssl.SSLContext:
        with self.lock:
            endpoint = self.lab.resolve(self.tvs_host)
            if endpoint is None:
                raise NetworkError(f"the lab has no node {self.tvs_host!r}")
            cluster = endpoint.cluster
            identity = cluster.identity(CertKind.TVS, endpoint.node.hostname)
            anchors = tuple(e.certificate for e in cluster.trust(TrustStore.CAPF))
        return server_context(identity, anchors)

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
                log.warning("TVS %s: dropping %s:%d: too many connections", self.tvs_host, *peer)
                self.dropped += 1
                conn.close()
                continue
            worker = threading.Thread(
                target=self._serve, args=(conn, peer), name="tvs-conn", daemon=True
            )
            with self._state_lock:
                self._workers.add(worker)
                self._connections.add(conn)
            worker.start()

    def _serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        where = f"{peer[0]}:{peer[1]}"
        stream: socket.socket = conn
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self.read_timeout)
            tls = self._context().wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            stream = tls
            with self._state_lock:
                self._connections.add(tls)
            tls.do_handshake()
            client = peer_certificate(tls)
            reader = FrameReader()
            while not self._stopping.is_set():
                data = tls.recv(65536)
                if not data:
                    return
                for frame in reader.feed(data):
                    tls.sendall(encode_frame(self._answer(frame, client)))
        except TimeoutError:
            self._drop(where, f"silent for {self.read_timeout} s")
        except ProtocolError as exc:
            self._drop(where, f"malformed TVS frame: {exc}")
        except ssl.SSLError as exc:
            self._drop(where, f"TLS failed: {exc.reason or exc}")
        except (OSError, ValueError) as exc:
            if not self._stopping.is_set():
                self._drop(where, f"connection error: {exc}")
        except Exception as exc:  # a worker must never take the server down with it
            if not self._stopping.is_set():
                self._drop(where, f"internal error: {exc!r}")
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

    def _drop(self, where: str, reason: str) -> None:
        self.dropped += 1
        log.warning("TVS %s: dropped %s: %s", self.tvs_host, where, reason)

    def _answer(self, frame: Frame, client: x509.Certificate | None) -> Frame:
        if frame.command not in (Command.QUERY_REQUEST, Command.VERIFY_REQUEST):
            raise ProtocolError(f"a client sent {frame.command.name}")
        reply = (
            Command.QUERY_RESPONSE
            if frame.command is Command.QUERY_REQUEST
            else Command.VERIFY_RESPONSE
        )
        with self.lock:
            service = self.lab.tvs_service(self.tvs_host)
            now = self.clock()
            if service is None:
                raise ProtocolError(f"TVS on {self.tvs_host} is not running")
            if frame.command is Command.QUERY_REQUEST:
                issuer_raw = frame.get(Tag.ISSUER_NAME)
                serial = frame.get(Tag.SERIAL_NUMBER)
                if issuer_raw is None or serial is None:
                    raise ProtocolError("TVS query without issuer or serial")
                verdict = service.query(
                    issuer_raw.decode("latin-1"), serial, client=client, now=now
                )
            else:
                certificate = frame.get(Tag.CERTIFICATE)
                if certificate is None:
                    raise ProtocolError("TVS verify request without a certificate")
                verdict = service.verify(certificate, client=client, now=now)
        self.requests += 1
        log.info(
            "TVS %s: %s -> %s (%s)",
            self.tvs_host,
            frame.command.name,
            "valid" if verdict.valid else "invalid",
            verdict.reason,
        )
        return response(
            reply,
            frame.session,
            valid=verdict.valid,
            roles=verdict.roles,
            ttl=verdict.ttl,
            certificates=verdict.certificates,
        )


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- the client --------------------------------------------------------------------------------


def tvs_query_tls(
    address: tuple[str, int],
    *,
    issuer: str,
    serial: bytes,
    check_server: ServerCheck,
    client: Identity,
    device_name: str,
    timeout: float = 2.0,
) -> TvsAnswer:
    """Ask the TVS at ``address`` about ``issuer``/``serial`` over TLS (items 21-22).

    Raises:
        TlsRefused: ``check_server`` refused the server certificate (nothing was sent).
        NetworkError: refused, timed out, TLS failed, or the server broke the protocol.
    """
    where = f"{address[0]}:{address[1]}"
    session = struct.unpack(">I", os.urandom(4))[0]
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except TimeoutError:
        raise NetworkError(f"TVS {where}: connection timed out after {timeout} s") from None
    except OSError as exc:
        raise NetworkError(f"TVS {where}: {exc.strerror or exc}") from None
    try:
        # Small request, small answer: Nagle plus delayed ACKs would add 40 ms per exchange.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with client_context(client).wrap_socket(raw) as tls:
            server = peer_certificate(tls)
            if server is None:
                raise TlsRefused(f"TVS {where} presented no certificate")
            problem = check_server(server)
            if problem is not None:
                raise TlsRefused(f"TLS to TVS {where} refused: {problem}")
            tls.sendall(encode_frame(query_request(session, device_name, issuer, serial)))
            reader = FrameReader()
            while True:
                data = tls.recv(65536)
                if not data:
                    raise NetworkError(f"TVS {where} closed the connection without answering")
                for frame in reader.feed(data):
                    if frame.session != session:
                        raise ProtocolError(
                            f"TVS {where} answered session {frame.session}, not {session}"
                        )
                    answer = decode_answer(frame)
                    return TvsAnswer(
                        answer.valid, answer.roles, answer.ttl, answer.certificates, ""
                    )
    except TimeoutError:
        raise NetworkError(f"TVS {where}: no answer within {timeout} s") from None
    except ssl.SSLError as exc:
        raise NetworkError(f"TVS {where}: TLS failed: {exc.reason or exc}") from None
    except (TlsRefused, NetworkError):
        raise
    except OSError as exc:
        raise NetworkError(f"TVS {where}: {exc.strerror or exc}") from None
    finally:
        raw.close()

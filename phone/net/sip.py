"""SIP over real sockets: the lab's registrar (UDP, TCP, TLS) and the phone's REGISTER client.

:class:`SipRegistrar` serves the pure :class:`phone.cluster.registrar.Registrar` of one
CallManager node on UDP and TCP (the same port number when the system allows it) and, when the
cluster is in mixed mode, on TLS with the node's CallManager certificate (seed, Signaling
Authentication; item 7). TLS asks for an optional client certificate that must chain to a
CAPF-trust anchor (its dates are judged by the registrar at the lab clock).

Streams: messages are framed by Content-Length; a double-CRLF keepalive is answered with a
CRLF (RFC 5626) and never reaches the registrar; a malformed or oversized message closes that
connection with a logged reason; an idle connection is closed after ``idle_timeout``. A
malformed datagram is logged and dropped. Every request is logged with its answer.

:func:`sip_register` is what :class:`phone.net.sockets.SocketBackend` (and
:func:`register_with`, the in-memory path) uses: one REGISTER transaction, answering one
digest challenge with the credentials of the phone's config (:class:`RegisterClient`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from phone.cluster.lab import Lab
from phone.cluster.records import TrustStore
from phone.cluster.registrar import Registrar, Source
from phone.cluster.trunk import ApplicationUser, SipTrunk
from phone.device.port import RegisterRequest, RegisterResult
from phone.device.trace import utc_now
from phone.errors import NetworkError, ProtocolError
from phone.net.service import (
    MAX_CONNECTIONS,
    MAX_PER_SOURCE,
    STOP_POLL,
    Conversation,
    Service,
    StreamService,
    peer_certificate,
    tcp_connect,
)
from phone.net.tvs_tls import client_context, server_context
from phone.pki import CertKind
from phone.trust.tvs import TlsRefused
from phone.wire.sip import (
    ITL_HEADER,
    PING,
    PONG,
    RegisterClient,
    RegisterOutcome,
    SipRequest,
    SipResponse,
    StreamReader,
    encode_message,
    format_itl_report,
    parse_message,
)

__all__ = ["SipRegistrar", "register_client", "register_result", "sip_register"]

log = logging.getLogger("vphone.sip")

T1 = 0.5  # RFC 3261 timer T1: the first UDP retransmission interval
_DATAGRAM = 65535


# --- the phone's side ------------------------------------------------------------------------


def register_client(
    request: RegisterRequest,
    local: tuple[str, int],
    *,
    random: Callable[[int], bytes] = os.urandom,
) -> RegisterClient:
    """The sans-IO REGISTER client for a backend's :class:`RegisterRequest`."""
    extra: tuple[tuple[str, str], ...] = ()
    report = request.itl_report
    if report is not None:
        extra = (
            (ITL_HEADER, format_itl_report(report.tftp_host, report.itl_hash, report.timestamp)),
        )
    return RegisterClient(
        registrar=request.callmanager,
        transport=request.transport,
        local=local,
        mac=request.requester.mac,
        model=request.requester.model,
        user=request.digest_user,
        password=request.digest_password,
        extra_headers=extra,
        random=random,
    )


def register_result(outcome: RegisterOutcome, cluster: str | None = None) -> RegisterResult:
    """The backend's :class:`RegisterResult` for a client outcome."""
    return RegisterResult(
        outcome.ok, outcome.code, outcome.reason, cluster, outcome.rule, outcome.exchanges
    )


def register_with(
    handle: Callable[[SipRequest], SipResponse | None],
    request: RegisterRequest,
    *,
    local: tuple[str, int],
    cluster: str | None = None,
) -> RegisterResult:
    """Run a registration against ``handle`` (a registrar called in memory)."""
    client = register_client(request, local)
    step: SipRequest | RegisterOutcome | None = client.start()
    for _ in range(RegisterClient.MAX_CHALLENGES + 2):
        if not isinstance(step, SipRequest):
            break
        response = handle(step)
        if response is None:
            raise NetworkError(f"{request.callmanager} did not answer the REGISTER")
        step = client.receive(response)
    if not isinstance(step, RegisterOutcome):
        raise NetworkError(f"{request.callmanager}: the registration did not conclude")
    return register_result(step, cluster)


def sip_register(
    address: tuple[str, int], request: RegisterRequest, *, timeout: float = 2.0
) -> RegisterResult:
    """REGISTER with the registrar at ``address`` over ``request.transport`` (udp, tcp, tls).

    Over TLS the CallManager certificate is checked with ``request.check_server`` before
    anything is sent (item 7), and the phone presents ``request.client_identity``.

    Raises:
        TlsRefused: the phone does not trust the CallManager certificate.
        NetworkError: refused, timed out, TLS failed, or the registrar broke the protocol.
    """
    where = f"{address[0]}:{address[1]}/{request.transport}"
    deadline = time.monotonic() + timeout
    try:
        if request.transport == "udp":
            outcome = _register_udp(address, request, deadline, where)
        elif request.transport in ("tcp", "tls"):
            outcome = _register_stream(address, request, deadline, where)
        else:
            raise NetworkError(f"unknown SIP transport {request.transport!r}")
    except TimeoutError:
        raise NetworkError(f"SIP {where}: no answer within {timeout} s") from None
    except ssl.SSLError as exc:
        raise NetworkError(f"SIP {where}: TLS failed: {exc.reason or exc}") from None
    except (TlsRefused, NetworkError):
        raise
    except OSError as exc:
        raise NetworkError(f"SIP {where}: {exc.strerror or exc}") from None
    return register_result(outcome)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _register_udp(
    address: tuple[str, int], request: RegisterRequest, deadline: float, where: str
) -> RegisterOutcome:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        host, port = sock.getsockname()[:2]
        client = register_client(request, (str(host), int(port)))
        message = encode_message(client.start())
        interval = T1
        while True:
            sock.send(message)
            resend_at = time.monotonic() + interval
            interval = min(interval * 2, 4.0)  # timer T2
            while True:
                wait = min(resend_at - time.monotonic(), _remaining(deadline))
                if wait <= 0:
                    break
                sock.settimeout(wait)
                try:
                    data = sock.recv(_DATAGRAM)
                except TimeoutError:
                    break
                try:
                    parsed = parse_message(data)
                except ProtocolError as exc:
                    log.warning("SIP %s: dropped a malformed datagram: %s", where, exc)
                    continue
                if not isinstance(parsed, SipResponse):
                    continue
                step = client.receive(parsed)
                if isinstance(step, RegisterOutcome):
                    return step
                if isinstance(step, SipRequest):
                    message = encode_message(step)
                    interval = T1
                    break


def _register_stream(
    address: tuple[str, int], request: RegisterRequest, deadline: float, where: str
) -> RegisterOutcome:
    raw = tcp_connect(address, _remaining(deadline))
    conn: socket.socket = raw
    try:
        if request.transport == "tls":
            tls = client_context(request.client_identity).wrap_socket(raw)
            conn = tls
            server = peer_certificate(tls)
            if request.check_server is not None:
                problem = (
                    request.check_server(server)
                    if server is not None
                    else "the CallManager presented no certificate"
                )
                if problem is not None:
                    raise TlsRefused(f"TLS to {request.callmanager} ({where}) refused: {problem}")
        host, port = conn.getsockname()[:2]
        client = register_client(request, (str(host), int(port)))
        conn.sendall(encode_message(client.start()))
        reader = StreamReader()
        while True:
            conn.settimeout(_remaining(deadline))
            data = conn.recv(65536)
            if not data:
                raise NetworkError(f"SIP {where}: the registrar closed the connection")
            for message in reader.feed(data):
                if not isinstance(message, SipResponse):
                    continue
                step = client.receive(message)
                if isinstance(step, RegisterOutcome):
                    return step
                if isinstance(step, SipRequest):
                    conn.sendall(encode_message(step))
    finally:
        conn.close()
        raw.close()


# --- the registrar -----------------------------------------------------------------------------


class SipRegistrar(Service):
    """The SIP registrar of CallManager node ``callmanager_host`` of ``lab`` (module docstring).

    Args:
        lab: the lab; registrations change its cluster (:meth:`Cluster.register`).
        callmanager_host: the node's host name.
        listen: UDP and TCP address; port 0 picks a free port used by both when possible.
        clock: the lab clock (nonce ages, certificate dates); default the wall clock.
        tls_listen: the TLS address (mixed mode only); default the same host, port 0 when
            ``listen`` has port 0, else ``listen`` port + 1 (5060 -> 5061).
        trunks, application_users: SIP trunks and their users (items 43-44) on top of the
            cluster's, which the registrar reads itself (an explicit entry replaces the
            cluster's of the same name; :mod:`phone.cluster.registrar`).
        lock: held around every call into the lab (share one with a lab's other servers).
        on_change: called (under ``lock``) after a request changed the lab, e.g. to save it.
        idle_timeout: seconds a TCP/TLS connection may stay silent between messages.
        request_timeout: seconds a whole message may take from its first byte.
        handshake_timeout: seconds the whole TLS handshake may take.
        max_connections, max_per_source: stream connections held at once per transport, in
            all and from one address; at the limit the least recently active idle connection
            is evicted.
    """

    def __init__(
        self,
        lab: Lab,
        callmanager_host: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        tls_listen: tuple[str, int] | None = None,
        trunks: Sequence[SipTrunk] = (),
        application_users: Sequence[ApplicationUser] = (),
        lock: threading.Lock | threading.RLock | None = None,
        on_change: Callable[[], None] | None = None,
        idle_timeout: float = 30.0,
        request_timeout: float = 5.0,
        handshake_timeout: float = 5.0,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
    ) -> None:
        endpoint = lab.resolve(callmanager_host)
        if endpoint is None:
            raise NetworkError(f"the lab has no node {callmanager_host!r}")
        self.lab = lab
        self.cluster = endpoint.cluster
        self.host = endpoint.node.hostname
        self.listen = listen
        self.clock: Callable[[], datetime] = clock or lab.clock or utc_now
        self.tls_listen = tls_listen
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.on_change = on_change
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.registrar = Registrar(
            self.cluster,
            self.host,
            random=os.urandom,
            trunks=trunks,
            application_users=application_users,
        )
        self.requests = 0
        self._udp: socket.socket | None = None
        self._udp_thread: threading.Thread | None = None
        self._udp_dropped = 0
        self._tcp: _SipStream | None = None
        self._tls: _SipStream | None = None
        self._stopping = threading.Event()

    # --- addresses ---------------------------------------------------------------------------

    @property
    def udp_address(self) -> tuple[str, int]:
        """Where SIP over UDP is served."""
        if self._udp is None:
            raise NetworkError("the SIP registrar is not started")
        host, port = self._udp.getsockname()[:2]
        return str(host), int(port)

    @property
    def tcp_address(self) -> tuple[str, int]:
        """Where SIP over TCP is served."""
        if self._tcp is None:
            raise NetworkError("the SIP registrar is not started")
        return self._tcp.address

    @property
    def tls_address(self) -> tuple[str, int] | None:
        """Where SIP over TLS is served; None when the cluster is not in mixed mode."""
        return None if self._tls is None else self._tls.address

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The server's loop threads (for tests asserting a clean stop)."""
        loops = (self._udp_thread, *(s.thread for s in (self._tcp, self._tls) if s is not None))
        return tuple(t for t in loops if t is not None)

    @property
    def dropped(self) -> int:
        """Datagrams and stream connections dropped (malformed, idle, refused, ...)."""
        streams = (s for s in (self._tcp, self._tls) if s is not None)
        return self._udp_dropped + sum(s.dropped for s in streams)

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Bind UDP, TCP (and TLS in mixed mode) and serve in background threads.

        Raises:
            NetworkError: an address cannot be bound (nothing is left listening).
        """
        try:
            self._bind()
            if self.cluster.mixed_mode:
                host, port = self.listen
                address = self.tls_listen or (host, 0 if port == 0 else port + 1)
                self._tls = _SipStream(self, "tls", address)
                self._tls.start()  # checks the TLS identity first
        except BaseException:
            # Leave nothing bound, so that the caller may retry (LabServer does).
            self._close()
            self._udp = self._tcp = self._tls = None
            raise
        self._udp_thread = threading.Thread(target=self._udp_loop, name="sip-udp", daemon=True)
        self._udp_thread.start()
        tls = f", TLS {self.tls_address[0]}:{self.tls_address[1]}" if self.tls_address else ""
        log.info(
            "SIP registrar %s listening on UDP %s:%d, TCP %s:%d%s",
            self.host,
            *self.udp_address,
            *self.tcp_address,
            tls,
        )

    def _bind(self) -> None:
        host, port = self.listen
        for _attempt in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
            except OSError as exc:
                udp.close()
                raise NetworkError(f"SIP cannot listen on UDP {host}:{port}: {exc}") from None
            chosen = udp.getsockname()[1]
            tcp = _SipStream(self, "tcp", (host, chosen))
            try:
                tcp.start()
            except NetworkError:
                udp.close()
                if port != 0:
                    raise
                continue  # that port is taken for TCP: try another free UDP port
            udp.settimeout(STOP_POLL)
            self._udp, self._tcp = udp, tcp
            return
        raise NetworkError(f"SIP found no port free for both UDP and TCP on {host}")

    def stop(self) -> None:
        """Stop serving, close every connection, and wait for the threads to end."""
        self._stopping.set()  # ends the UDP loop while the stream listeners stop
        self._close()

    def _close(self) -> None:
        for stream in (self._tcp, self._tls):
            if stream is not None:
                stream.stop()
        if self._udp_thread is not None:
            self._udp_thread.join(5)
        if self._udp is not None:
            self._udp.close()

    # --- serving -----------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        with self.lock:
            identity = self.cluster.identity(CertKind.CALLMANAGER, self.host)
            anchors = tuple(e.certificate for e in self.cluster.trust(TrustStore.CAPF))
        return server_context(identity, anchors)

    def handle(self, request: SipRequest, source: Source) -> SipResponse | None:
        """Answer one request through the registrar (under the lab lock), and log it."""
        with self.lock:
            before = self.cluster.revision
            response = self.registrar.handle(request, source, self.clock())
            if self.on_change is not None and self.cluster.revision != before:
                self.on_change()
        self.requests += 1
        if response is not None:
            warning = response.get("Warning")
            log.info(
                "SIP %s %s from %s:%d/%s -> %d %s%s",
                self.host,
                request.method,
                source.host,
                source.port,
                source.transport,
                response.status,
                response.reason,
                f" ({warning})" if warning else "",
            )
        return response

    def _udp_loop(self) -> None:
        sock = self._udp
        assert sock is not None
        while not self._stopping.is_set():
            try:
                data, peer = sock.recvfrom(_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                break
            if data.strip(b"\r\n") == b"":
                continue  # a CRLF keepalive on UDP: nothing to answer
            try:
                message = parse_message(data)
            except ProtocolError as exc:
                self._udp_dropped += 1
                log.warning("SIP %s: dropped a datagram from %s:%d: %s", self.host, *peer, exc)
                continue
            if not isinstance(message, SipRequest):
                continue
            try:
                response = self.handle(message, Source(peer[0], peer[1], "udp"))
            except Exception as exc:  # the UDP loop serves everyone: never let it die
                self._udp_dropped += 1
                log.warning("SIP %s: closed %s:%d/udp: internal error: %r", self.host, *peer, exc)
                continue
            if response is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(encode_message(response), peer)


class _SipConversation(Conversation):
    """One SIP stream connection: Content-Length framing, CRLF keepalives answered with a CRLF,
    every request answered through the registrar."""

    def __init__(self, registrar: SipRegistrar, source: Source) -> None:
        self._registrar = registrar
        self._source = source
        self._reader = StreamReader()

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for message in self._reader.feed(data):
            if message is PING:
                out.append(PONG)
                continue
            if not isinstance(message, SipRequest):
                continue
            response = self._registrar.handle(message, self._source)
            if response is not None:
                out.append(encode_message(response))
        return out

    @property
    def partial(self) -> bool:
        return self._reader.pending > 0


class _SipStream(StreamService):
    """SIP over TCP or TLS for a :class:`SipRegistrar` (:class:`_SipConversation`)."""

    _log = log
    _protocol = "SIP"
    _unit = "SIP message"
    _silent = "idle"
    _dropped_verb = "closed"
    _bind_kind = "TCP "  # tells a failed stream bind from a failed UDP bind

    def __init__(self, registrar: SipRegistrar, transport: str, listen: tuple[str, int]) -> None:
        super().__init__(
            node=registrar.host,
            listen=listen,
            idle_timeout=registrar.idle_timeout,
            request_timeout=min(registrar.idle_timeout, registrar.request_timeout),
            handshake_timeout=min(registrar.idle_timeout, registrar.handshake_timeout),
            max_connections=registrar.max_connections,
            max_per_source=registrar.max_per_source,
            name=f"sip-{transport}",
        )
        self.registrar = registrar
        self.transport = transport

    def _tls_context(self) -> ssl.SSLContext | None:
        return self.registrar._context() if self.transport == "tls" else None

    def _where(self, peer: tuple[str, int]) -> str:
        return f"{peer[0]}:{peer[1]}/{self.transport}"

    def _announce(self) -> None:
        """Nothing: the registrar logs one line for all its transports."""

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        source = Source(peer[0], peer[1], self.transport, peer_certificate(stream))
        return _SipConversation(self.registrar, source)

"""CAPF over TLS on TCP (tvs-capf-wire.md section 2.1, TCP 3804): the server and the client.

:class:`CapfTlsServer` serves the CAPF of a lab cluster (on its publisher). TLS uses the
cluster's CAPF certificate and key; no client certificate is asked for, because CAPF
authenticates phones inside the protocol (null string, authentication string, or a signed
LSC/MIC in AUTH_RESP: :mod:`phone.cluster.capf`). Every connection gets a
:class:`phone.cluster.capf.CapfSession` from the cluster's :class:`~phone.cluster.capf.CapfService`
(server-chosen session ids that increase per connection); the session speaks first.

A malformed or truncated frame, a frame out of order, a silent peer (the TLS handshake, and
each answer the server waits for, bounded by ``read_timeout`` as a whole, not per read; capfd
has no timeout, vphone does so that a silent phone cannot hold a slot) or a peer that leaves
mid-session ends *that* connection with END_SESSION{7}, as capfd ends it: the session is
dropped (logged in the cluster's service log, nothing recorded on the device) and the server
keeps serving. Connections are held by one selector loop and served by a bounded pool of
workers (:class:`phone.net.service.StreamService`); a connection whose session has begun is
never evicted. Calls into the lab are serialized by ``lock`` (share
:attr:`phone.net.servers.LabServer.lock`).

:func:`capf_exchange_tls` is the phone's side: TLS without a client certificate, the server
certificate handed to the caller's ``check_server`` (item 20: the CAPF record of the ITL, or
TVS) *before* any frame is read or sent, then the phone's session answers the server's frames
until it ends.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import datetime

from phone.cluster.capf import CapfSession
from phone.cluster.lab import Lab
from phone.device.port import CapfConversation
from phone.device.trace import utc_now
from phone.errors import NetworkError
from phone.net.service import (
    MAX_CONNECTIONS,
    MAX_PER_SOURCE,
    WORKERS,
    Conversation,
    DropConnection,
    StreamService,
    tls_connect,
)
from phone.net.tvs_tls import client_context, server_context
from phone.trust.tvs import ServerCheck
from phone.wire.capf import Frame, FrameReader, encode_frame

__all__ = ["CAPF_PORT", "CapfTlsServer", "capf_exchange_tls"]

CAPF_PORT = 3804  # section 9b
log = logging.getLogger("vphone.capf")


class _CapfConversation(Conversation):
    """A CAPF connection: the cluster's :class:`CapfSession`, the server speaking first."""

    def __init__(self, server: CapfTlsServer, session: CapfSession, opening: list[Frame]) -> None:
        self._server = server
        self._session = session
        self._opening = opening
        self._reader = FrameReader()

    def start(self) -> list[bytes]:
        # One write per message: capfd notes that a phone's CAPF client stalls when a message
        # is split across writes (tvs-capf-wire.md section 0).
        return [encode_frame(frame) for frame in self._opening]

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for frame in self._reader.feed(data):
            with self._server.lock:
                replies = self._session.receive(frame)
            out += [encode_frame(reply) for reply in replies]
            if self._session.finished:
                break
        if self._session.finished and not self._session.dropped:
            with self._server._state_lock:
                self._server.sessions += 1
        return out

    @property
    def failure(self) -> str | None:
        if self._session.finished and self._session.dropped:
            return self._session.problem or "protocol breach"
        return None

    @property
    def partial(self) -> bool:
        return self._reader.pending > 0

    @property
    def expecting(self) -> bool:
        return not self._session.finished

    @property
    def finished(self) -> bool:
        return self._session.finished

    def end(self) -> None:
        if not self._session.finished:
            cut = " mid-frame" if self._reader.pending else ""
            raise DropConnection(f"the phone closed the connection{cut} mid-session")

    def abort(self, reason: str) -> list[bytes]:
        # Answered as capfd answers, END_SESSION{7} (best effort: the peer may be gone), logged
        # in the cluster's service log, nothing recorded on the device.
        if self._session.finished:  # ended by the session itself: already logged
            return []
        with self._server.lock:
            return [encode_frame(frame) for frame in self._session.abort(reason)]


class CapfTlsServer(StreamService):
    """The CAPF of the cluster whose publisher is ``host``, over TLS (module docstring).

    Args:
        lab: the lab (read on every connection: a regenerated CAPF certificate is served at
            once, and pending operations set while serving are seen).
        host: the publisher's host name (or any name the lab resolves to it).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the time CAPF issues LSCs and checks certificates at (default: the lab's clock,
            else the wall clock).
        read_timeout: seconds the TLS handshake may take, and the phone has for each answer.
        max_connections, max_per_source: connections held at once, in all and from one
            address; at the limit the least recently active idle connection is evicted.
        workers: threads that run handshakes and sessions.
        lock: held around every call into the lab.
    """

    _log = log
    _protocol = "CAPF"
    _unit = "CAPF message"

    def __init__(
        self,
        lab: Lab,
        host: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        read_timeout: float = 2.0,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
        workers: int = WORKERS,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        super().__init__(
            node=host,
            listen=listen,
            idle_timeout=read_timeout,
            request_timeout=read_timeout,
            handshake_timeout=read_timeout,
            max_connections=max_connections,
            max_per_source=max_per_source,
            workers=workers,
        )
        self.lab = lab
        self.host = host
        self.clock: Callable[[], datetime] = clock or lab.clock or utc_now
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.sessions = 0  # connections that completed a session (END_SESSION sent)
        # ``dropped`` (StreamService) counts the connections ended early: malformed,
        # silent, TLS failure, peer gone.

    def _tls_context(self) -> ssl.SSLContext:
        with self.lock:
            service = self.lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"no CAPF runs at {self.host!r} (it runs on the publisher)")
            identity = service.cluster.capf
        # No anchors: no client certificate is requested (module docstring).
        return server_context(identity, ())

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        with self.lock:
            service = self.lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"CAPF on {self.host} is not running")
            session = service.open(now=self.clock(), peer=peer[0])
            opening = session.start()
        return _CapfConversation(self, session, opening)


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
    with tls_connect(
        address, client_context(None), timeout=timeout, service="CAPF", check_server=check_server
    ) as tls:
        reader = FrameReader()
        while not conversation.finished:
            data = tls.recv(65536)
            if not data:
                raise NetworkError(
                    f"CAPF {address[0]}:{address[1]} closed the connection mid-session"
                )
            for frame in reader.feed(data):
                for reply in conversation.receive(frame):
                    tls.sendall(encode_frame(reply))
                if conversation.finished:
                    break

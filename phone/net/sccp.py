"""SCCP (Skinny) over real sockets: the CallManager's station listener and the phone's client.

:class:`SccpListener` serves the pure :class:`phone.cluster.sccp.SccpStation` of one CallManager
node (issue 15 item 2): on TCP (``transport="tcp"``, port 2000 on a real cluster) or, when the
cluster is in mixed mode, on TLS (``"tls"``, port 2443) with the node's CallManager certificate,
asking for an optional client certificate that must chain to a CAPF-trust anchor (the
station service judges it, dates at the lab clock, and refuses a secure device without one).
One station per connection; frames are reassembled by :class:`phone.wire.sccp.FrameReader`, a
malformed frame ends that connection with a logged reason, an idle connection is closed after
``idle_timeout`` (a registered phone sends KeepAlive every 30 s). Connections are held by the
selector loop of :class:`phone.net.service.StreamService`; calls into the lab are serialized by
``lock`` (share :attr:`phone.net.servers.LabServer.lock`).

:func:`sccp_exchange_socket` is the phone's side (:class:`phone.net.sockets.SocketBackend`):
TCP, or TLS whose CallManager certificate ``request.check_server`` sees before StationRegister
is sent, presenting ``request.client_identity``; then the phone's conversation until it ends.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import datetime

from phone.cluster.lab import Lab
from phone.cluster.records import TrustStore
from phone.cluster.sccp import SccpStation
from phone.cluster.signaling import Source
from phone.device.port import RegisterRequest, SccpConversation
from phone.device.trace import utc_now
from phone.errors import NetworkError
from phone.net.service import (
    MAX_CONNECTIONS,
    MAX_PER_SOURCE,
    Conversation,
    StreamService,
    peer_certificate,
    tcp_connect,
    tls_connect,
)
from phone.net.tvs_tls import client_context, server_context
from phone.pki import CertKind
from phone.trust.tvs import TlsRefused
from phone.wire.sccp import FrameReader, Message, Unknown, decode, encode

__all__ = ["SccpListener", "sccp_exchange_socket"]

log = logging.getLogger("vphone.sccp")


class _SccpConversation(Conversation):
    """One station connection: frames in, the station's answers out."""

    def __init__(self, listener: SccpListener, station: SccpStation) -> None:
        self._listener = listener
        self._station = station
        self._reader = FrameReader()

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = self._reader.offset
        for frame in self._reader.feed(data):
            message = decode(frame, start)
            start = self._reader.offset
            for answer in self._listener.handle(self._station, message):
                out.append(encode(answer))
        return out

    @property
    def partial(self) -> bool:
        return self._reader.pending > 0

    @property
    def expecting(self) -> bool:
        # Acked, waiting for CapabilitiesRes: a registration in progress is never evicted.
        return self._station.mac is not None and not self._station.registered

    @property
    def finished(self) -> bool:
        return self._station.finished


class SccpListener(StreamService):
    """SCCP over ``transport`` ("tcp" or "tls") for CallManager node ``host`` of ``lab``.

    Args:
        lab: the lab (read at every message: :meth:`phone.net.servers.LabServer.swap` rebinds
            it under ``lock``).
        host: the node's host name.
        transport: "tcp" (2000) or "tls" (2443, mixed mode).
        listen: address to bind; port 0 picks a free port.
        clock: the lab clock (certificate dates, registration times); default the wall clock.
        lock: held around every call into the lab.
        on_change: called (under ``lock``) after a message changed the lab (``lab serve``
            saves the lab folder then).
        idle_timeout: seconds a connection may stay silent between messages.
        request_timeout, handshake_timeout, max_connections, max_per_source: as
            :class:`phone.net.service.StreamService`.
    """

    _log = log
    _protocol = "SCCP"
    _unit = "SCCP message"
    _silent = "idle"
    _dropped_verb = "closed"

    def __init__(
        self,
        lab: Lab,
        host: str,
        *,
        transport: str = "tcp",
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        lock: threading.Lock | threading.RLock | None = None,
        on_change: Callable[[], None] | None = None,
        idle_timeout: float = 90.0,
        request_timeout: float = 5.0,
        handshake_timeout: float = 5.0,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
    ) -> None:
        if transport not in ("tcp", "tls"):
            raise ValueError(f"SCCP runs over tcp or tls, not {transport!r}")
        endpoint = lab.resolve(host)
        if endpoint is None:
            raise NetworkError(f"the lab has no node {host!r}")
        super().__init__(
            node=endpoint.node.hostname,
            listen=listen,
            idle_timeout=idle_timeout,
            request_timeout=min(idle_timeout, request_timeout),
            handshake_timeout=min(idle_timeout, handshake_timeout),
            max_connections=max_connections,
            max_per_source=max_per_source,
            name=f"sccp-{transport}",
        )
        self.lab = lab
        self.host = endpoint.node.hostname
        self.transport = transport
        self.clock: Callable[[], datetime] = clock or lab.clock or utc_now
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.on_change = on_change
        self.messages = 0

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.transport != "tls":
            return None
        with self.lock:
            endpoint = self.lab.resolve(self.host)
            if endpoint is None:
                raise NetworkError(f"the lab has no node {self.host!r}")
            cluster = endpoint.cluster
            identity = cluster.identity(CertKind.CALLMANAGER, self.host)
            anchors = tuple(e.certificate for e in cluster.trust(TrustStore.CAPF))
        return server_context(identity, anchors)

    def _where(self, peer: tuple[str, int]) -> str:
        return f"{peer[0]}:{peer[1]}/{self.transport}"

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        source = Source(peer[0], peer[1], self.transport, peer_certificate(stream))
        with self.lock:
            endpoint = self.lab.resolve(self.host)
            if endpoint is None or not endpoint.node.running:
                raise NetworkError(f"the CallManager on {self.host} is not running")
            station = SccpStation(endpoint.cluster, self.host, source)
        return _SccpConversation(self, station)

    def handle(self, station: SccpStation, message: Message | Unknown) -> list[Message]:
        """The station's answers to ``message`` (under the lab lock), logged."""
        with self.lock:
            endpoint = self.lab.resolve(self.host)
            if endpoint is not None:
                station.cluster = endpoint.cluster  # the lab may have been swapped
            cluster = station.cluster
            before = cluster.revision
            answers = station.receive(message, self.clock())
            if self.on_change is not None and cluster.revision != before:
                self.on_change()
        self.messages += 1
        name = type(message).__name__
        if isinstance(message, Unknown):
            name = f"message {message.message_id:#06x}"
        replies = ", ".join(type(a).__name__ for a in answers) or "nothing"
        src = station.source
        log.info(
            "SCCP %s %s from %s:%d/%s -> %s",
            self.host,
            name,
            src.host,
            src.port,
            src.transport,
            replies,
        )
        return answers


# --- the phone's side ----------------------------------------------------------------------------


def _converse(conn: socket.socket, conversation: SccpConversation, where: str) -> None:
    conn.sendall(b"".join(encode(m) for m in conversation.start()))
    reader = FrameReader()
    while not conversation.finished:
        data = conn.recv(65536)
        if not data:
            raise NetworkError(f"SCCP {where}: the CallManager closed the connection")
        start = reader.offset
        for frame in reader.feed(data):
            message = decode(frame, start)
            start = reader.offset
            replies = conversation.receive(message)
            if replies:
                conn.sendall(b"".join(encode(m) for m in replies))
            if conversation.finished:
                break


def sccp_exchange_socket(
    address: tuple[str, int],
    request: RegisterRequest,
    conversation: SccpConversation,
    *,
    timeout: float = 2.0,
) -> None:
    """Register over SCCP with the CallManager at ``address`` (module docstring).

    Raises:
        TlsRefused: the phone does not trust the CallManager certificate (nothing was sent).
        NetworkError: refused, timed out, TLS failed, or the connection ended early.
    """
    where = f"{address[0]}:{address[1]}/{request.transport}"
    if request.transport == "tls":
        check = request.check_server or (lambda _certificate: None)
        with tls_connect(
            address,
            client_context(request.client_identity),
            timeout=timeout,
            service="SCCP",
            check_server=check,
        ) as tls:
            _converse(tls, conversation, where)
        return
    try:
        conn = tcp_connect(address, timeout)
    except TimeoutError:
        raise NetworkError(f"SCCP {where}: connection timed out after {timeout} s") from None
    except OSError as exc:
        raise NetworkError(f"SCCP {where}: {exc.strerror or exc}") from None
    try:
        conn.settimeout(timeout)
        _converse(conn, conversation, where)
    except TimeoutError:
        raise NetworkError(f"SCCP {where}: no answer within {timeout} s") from None
    except (TlsRefused, NetworkError):
        raise
    except OSError as exc:
        raise NetworkError(f"SCCP {where}: {exc.strerror or exc}") from None
    finally:
        conn.close()

"""CAPF over TLS on TCP (tvs-capf-wire.md section 2.1, TCP 3804): the server and the client.

:class:`CapfTlsServer` serves the CAPF of a lab cluster (on its publisher). TLS uses the
cluster's CAPF certificate and key; no client certificate is asked for, because CAPF
authenticates phones inside the protocol (null string, authentication string, or a signed
LSC/MIC in AUTH_RESP: :mod:`phone.cluster.capf`). Every connection gets a
:class:`phone.cluster.capf.CapfSession` from the cluster's :class:`~phone.cluster.capf.CapfService`
(server-chosen session ids that increase per connection); the session speaks first.

A malformed or truncated frame, a frame out of order, a silent peer (``read_timeout`` per read,
handshake included; capfd has no timeout, vphone does so that a silent phone cannot hold a
worker) or a peer that leaves mid-session ends *that* connection with END_SESSION{7}, as capfd
ends it: the session is dropped (logged in the cluster's service log, nothing recorded on the
device) and the server keeps serving. Connections are served one thread each, at most
``max_connections`` at once. Calls into the lab are serialized by ``lock`` (share
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
from datetime import UTC, datetime

from phone.cluster.lab import Lab
from phone.device.port import CapfConversation
from phone.errors import NetworkError
from phone.net.service import DropConnection, ThreadedTcpService, tls_connect
from phone.net.tvs_tls import client_context, server_context
from phone.trust.tvs import ServerCheck
from phone.wire.capf import Frame, FrameReader, encode_frame

__all__ = ["CAPF_PORT", "CapfTlsServer", "capf_exchange_tls"]

CAPF_PORT = 3804  # section 9b
log = logging.getLogger("vphone.capf")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CapfTlsServer(ThreadedTcpService):
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
        max_connections: int = 64,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        super().__init__(
            node=host, listen=listen, read_timeout=read_timeout, max_connections=max_connections
        )
        self.lab = lab
        self.host = host
        self.clock: Callable[[], datetime] = clock or lab.clock or _utc_now
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.sessions = 0  # connections that completed a session (END_SESSION sent)
        # ``dropped`` (ThreadedTcpService) counts the connections ended early: malformed,
        # silent, TLS failure, peer gone.

    def _tls_context(self) -> ssl.SSLContext:
        with self.lock:
            service = self.lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"no CAPF runs at {self.host!r} (it runs on the publisher)")
            identity = service.cluster.capf
        # No anchors: no client certificate is requested (module docstring).
        return server_context(identity, ())

    def _handle(self, stream: socket.socket, peer: tuple[str, int]) -> None:
        with self.lock:
            service = self.lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"CAPF on {self.host} is not running")
            session = service.open(now=self.clock(), peer=peer[0])
            opening = session.start()
        try:
            # One write per message: capfd notes that a phone's CAPF client stalls when a
            # message is split across writes (tvs-capf-wire.md section 0).
            for frame in opening:
                stream.sendall(encode_frame(frame))
            reader = FrameReader()
            while not session.finished and not self._stopping.is_set():
                data = stream.recv(65536)
                if not data:
                    cut = " mid-frame" if reader.pending else ""
                    raise DropConnection(f"the phone closed the connection{cut} mid-session")
                for frame in reader.feed(data):
                    with self.lock:
                        replies = session.receive(frame)
                    for reply in replies:
                        stream.sendall(encode_frame(reply))
                    if session.finished:
                        break
        except Exception as exc:
            # A frame the codec refuses (unknown tag, bad length), a silent phone or one that
            # leaves: answered as capfd answers, END_SESSION{7} (best effort: the peer may be
            # gone), logged in the cluster's service log, nothing recorded on the device.
            reason = self._drop_reason(exc)
            if reason is None:
                raise
            with self.lock:
                farewell = session.abort(reason)
            _send_quietly(stream, farewell)
            raise DropConnection(reason) from exc
        if session.dropped:
            raise DropConnection(session.problem or "protocol breach")
        if session.finished:
            with self._state_lock:
                self.sessions += 1


def _send_quietly(stream: socket.socket, frames: list[Frame]) -> None:
    try:
        for frame in frames:
            stream.sendall(encode_frame(frame))
    except (OSError, ValueError):
        pass  # the phone is gone: there is nobody to tell


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

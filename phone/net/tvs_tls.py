"""TVS over TLS on TCP (items 21-22; tvs-capf-wire.md section 1): the server and the client.

:class:`TvsTlsServer` serves one TVS node of a lab, speaking as tvsd does. TLS uses the node's
TVS certificate and key. Client certificates follow the cluster parameter
``tvs-client-certificate``: ``off`` (default) sends no CertificateRequest, as tvsd (1.1,
``tls-probes.json``); ``required`` asks for one and hands it to the cluster's
:class:`phone.cluster.tvs.TvsService`, which authenticates it at the lab clock:

* a client that presents **no** certificate completes the handshake and gets an *invalid*
  answer (STATUS = 1);
* a client whose certificate does **not chain to a CAPF-trust anchor** fails the TLS handshake
  (OpenSSL checks the chain; validity dates are left to the TvsService, which judges them at
  the lab clock rather than the wall clock): the connection is dropped with a logged reason.

Requests tvsd would drop (1.7: bad version or protocol id, a command other than a request, an
unknown element tag, a bad or missing device name, a missing or non-DER certificate) get
nothing: the connection is closed with a logged reason and other connections carry on. Each
answer is one write (one TLS record). vphone differs from tvsd where being liberal costs a real
client nothing: a header split across records is reassembled (tvsd drops it), a connection the
client keeps open is answered request after request (tvsd closes after one answer; a one-shot
client such as tvsc closes after its answer and the server ends the connection cleanly on that
EOF), and QUERY is answered (vphone's emulation [G]). Deadlines (tvsd has none:
``tvs-raw-truncated-body-held-open``): the whole TLS handshake, a whole request from its first
byte, and the wait between requests on a kept connection are each bounded by ``read_timeout``
(2 s, a phone's own TVS timeout) unless set apart. Connections are held by one selector loop
and served by a bounded pool of workers (:class:`phone.net.service.StreamService`): idle ones
cost no thread, and at the limits the least recently active idle one is evicted.

:func:`tvs_query_tls` is the phone's side: TLS presenting the phone's certificate (sent only if
the server asks), the server certificate checked by the caller's ``check_server`` (item 21: it
must be a TVS record of the installed ITL) *before* any request is sent; then VERIFY with the
certificate, or the emulated QUERY by issuer and serial. A QUERY the server drops unanswered
raises :class:`phone.trust.tvs.QueryNotAnswered` (a VERIFY-only server, such as tvsd).

The TLS helpers :func:`client_context` and :func:`server_context` are shared with
:mod:`phone.net.sip`. Python's ``ssl`` only loads keys from files: each identity is written to
a private temporary folder (0700, files 0600), loaded, and the folder deleted at once; contexts
are cached per certificate.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from phone.cluster.lab import Lab
from phone.cluster.records import TrustStore
from phone.cluster.tvs import TvsServerSession, TvsVerdict
from phone.device.trace import utc_now
from phone.errors import NetworkError, ProtocolError
from phone.net.service import (
    MAX_CONNECTIONS,
    MAX_PER_SOURCE,
    WORKERS,
    Conversation,
    StreamService,
    peer_certificate,
    tls_connect,
)
from phone.pki import CertKind, Identity, cert_to_pem, key_to_pem
from phone.trust.tvs import QueryNotAnswered, ServerCheck, TvsAnswer
from phone.wire.tvs import (
    Command,
    Frame,
    FrameReader,
    decode_answer,
    encode_frame,
    query_request,
    verify_request,
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
# The same contexts found by the certificate objects themselves: a server asks for its context
# on every connection, and fingerprinting its certificate and anchors each time (DER encoding
# and SHA-256) was about a sixth of a TVS worker's Python time per new connection. An entry
# keeps its objects alive, so no other object can take their ids while it is cached: equal ids
# are the same objects. A regenerated certificate is a new object and takes the fingerprint path.
_server_by_object: OrderedDict[
    tuple[int, ...], tuple[tuple[x509.Certificate, ...], ssl.SSLContext]
] = OrderedDict()


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
    """A TLS server context for ``identity``; with ``anchors`` it asks for an optional client
    certificate, without it sends no CertificateRequest (as tvsd, 1.1).

    A presented client certificate must chain to one of ``anchors`` (the CAPF-trust store);
    its dates are not checked here (see the module docstring).
    """
    objects = (identity.certificate, *anchors)
    fast = tuple(map(id, objects))
    with _cache_lock:
        seen = _server_by_object.get(fast)
        if seen is not None:
            _server_by_object.move_to_end(fast)
            return seen[1]
    key = (_fingerprint(identity.certificate), *(_fingerprint(a) for a in anchors))
    with _cache_lock:
        cached = _server_cache.get(key)
        if cached is not None:
            _server_cache.move_to_end(key)
            _remember_objects(fast, objects, cached)
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
        _remember_objects(fast, objects, context)
    return context


def _remember_objects(
    fast: tuple[int, ...], objects: tuple[x509.Certificate, ...], context: ssl.SSLContext
) -> None:
    """Under ``_cache_lock``: remember ``context`` for these very certificate objects."""
    _server_by_object[fast] = (objects, context)
    while len(_server_by_object) > _CACHE_SIZE:
        _server_by_object.popitem(last=False)


# --- the server ----------------------------------------------------------------------------------


class _TvsConversation(Conversation):
    """A TVS connection: the pure :class:`TvsServerSession` (requests answered in order)."""

    def __init__(self, session: TvsServerSession) -> None:
        self._session = session

    def feed(self, data: bytes) -> list[bytes]:
        # One write per answer: one TLS record (section 0).
        return list(self._session.feed(data))

    @property
    def partial(self) -> bool:
        return self._session.pending > 0


class TvsTlsServer(StreamService):
    """TVS over TLS for node ``tvs_host`` of ``lab`` (module docstring).

    Args:
        lab: the lab whose cluster answers (read on every request, so trust-store changes and
            certificate regenerations take effect at once).
        tvs_host: the TVS node's host name.
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the lab clock that dates client certificates (default: the wall clock).
        read_timeout: seconds the TLS handshake, a whole request, and the wait between two
            requests may each take (a phone's TVS timeout is 2 s).
        handshake_timeout, request_timeout: those deadlines apart (default ``read_timeout``).
        max_connections, max_per_source: connections held at once, in all and from one
            address; at the limit the least recently active idle connection is evicted.
        workers: threads that run handshakes and answers.
        lock: held around every call into the lab (share one with the other servers of a lab).
    """

    _log = log
    _protocol = "TVS"
    _unit = "TVS frame"

    def __init__(
        self,
        lab: Lab,
        tvs_host: str,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        read_timeout: float = 2.0,
        handshake_timeout: float | None = None,
        request_timeout: float | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_per_source: int = MAX_PER_SOURCE,
        workers: int = WORKERS,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        super().__init__(
            node=tvs_host,
            listen=listen,
            idle_timeout=read_timeout,
            request_timeout=read_timeout if request_timeout is None else request_timeout,
            handshake_timeout=read_timeout if handshake_timeout is None else handshake_timeout,
            max_connections=max_connections,
            max_per_source=max_per_source,
            workers=workers,
        )
        self.lab = lab
        self.tvs_host = tvs_host
        self.clock: Callable[[], datetime] = clock or lab.clock or utc_now
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.requests = 0
        self._counter_lock = threading.Lock()  # workers count concurrently

    def _tls_context(self) -> ssl.SSLContext:
        with self.lock:
            endpoint = self.lab.resolve(self.tvs_host)
            if endpoint is None:
                raise NetworkError(f"the lab has no node {self.tvs_host!r}")
            cluster = endpoint.cluster
            identity = cluster.identity(CertKind.TVS, endpoint.node.hostname)
            anchors: tuple[x509.Certificate, ...] = ()
            if cluster.parameters.tvs_client_certificate == "required":
                anchors = tuple(e.certificate for e in cluster.trust(TrustStore.CAPF))
        return server_context(identity, anchors)

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        client = peer_certificate(stream)
        return _TvsConversation(TvsServerSession(lambda frame: self._judge(frame, client)))

    def _judge(self, frame: Frame, client: x509.Certificate | None) -> TvsVerdict:
        with self.lock:
            service = self.lab.tvs_service(self.tvs_host)
            if service is None:
                raise ProtocolError(f"TVS on {self.tvs_host} is not running")
            verdict = service.judge(frame, client=client, now=self.clock())
        with self._counter_lock:
            self.requests += 1
        log.info(
            "TVS %s: %s -> %s (%s)",
            self.tvs_host,
            frame.command.name,
            "valid" if verdict.valid else "invalid",
            verdict.reason,
        )
        return verdict


# --- the client --------------------------------------------------------------------------------


def tvs_query_tls(
    address: tuple[str, int],
    *,
    issuer: str,
    serial: bytes,
    check_server: ServerCheck,
    client: Identity | None,
    device_name: str,
    certificate: bytes | None = None,
    timeout: float = 2.0,
    session: int | None = None,
) -> TvsAnswer:
    """Ask the TVS at ``address`` over TLS (items 21-22): VERIFY ``certificate`` (DER) when it
    is given, else QUERY ``issuer``/``serial`` (emulated [G]).

    ``device_name`` is ``CP-MMMM-SEP<MAC>`` (see :func:`phone.wire.tvs.tvs_device_name`);
    ``session`` defaults to a random id, which the answer must echo (1.2).

    Raises:
        TlsRefused: ``check_server`` refused the server certificate (nothing was sent).
        QueryNotAnswered: the server closed the connection on a QUERY without answering.
        NetworkError: refused, timed out, TLS failed, or the server broke the protocol.
    """
    where = f"{address[0]}:{address[1]}"
    if session is None:
        session = struct.unpack(">I", os.urandom(4))[0]
    request = (
        verify_request(session, device_name, certificate)
        if certificate is not None
        else query_request(session, device_name, issuer, serial)
    )
    context = client_context(client)
    with tls_connect(
        address, context, timeout=timeout, service="TVS", check_server=check_server
    ) as tls:
        tls.sendall(encode_frame(request))  # one write: one TLS record (section 0)
        reader = FrameReader()
        while True:
            try:
                data = tls.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                data = b""
            if not data:
                if request.command is Command.QUERY_REQUEST:
                    raise QueryNotAnswered(
                        f"TVS {where} closed the connection on a QUERY without answering"
                    )
                raise NetworkError(f"TVS {where} closed the connection without answering")
            for frame in reader.feed(data):
                if frame.session != session:
                    raise ProtocolError(
                        f"TVS {where} answered session {frame.session}, not {session}"
                    )
                answer = decode_answer(frame)
                return TvsAnswer(answer.valid, answer.roles, answer.ttl, answer.certificates, "")

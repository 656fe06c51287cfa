"""The in-memory backend: a phone talking to an emulated lab with no sockets (the default).

Host names resolve through the lab. A host that no running node answers behaves like a silent
network: TFTP times out, TVS and the registrar refuse the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from phone.catalog.models import Transport
from phone.cluster.cluster import Cluster
from phone.cluster.files import ClientInfo
from phone.cluster.lab import Lab
from phone.cluster.registrar import Registrar, Source
from phone.cluster.registrar_direct import register_direct
from phone.cluster.sccp import SccpService
from phone.device.port import (
    CapfConversation,
    RegisterRequest,
    RegisterResult,
    Requester,
    SccpConversation,
)
from phone.errors import FileNotFoundOnServer, NetworkError, ProtocolError, TransferTimeout
from phone.formats.configxml import SIP_PORT
from phone.net.sip import register_result, register_with
from phone.pki import CertKind, Identity
from phone.trust.tvs import ServerCheck, TlsRefused, TvsAnswer, TvsServer
from phone.wire.capf import Frame as CapfFrame
from phone.wire.capf import decode_frame, encode_frame
from phone.wire.sccp import FrameReader, Message, Unknown
from phone.wire.sccp import decode as sccp_decode
from phone.wire.sccp import encode as sccp_encode
from phone.wire.sip.register import final_outcome


class MemoryBackend:
    """A :class:`phone.device.port.Backend` over a :class:`phone.cluster.lab.Lab`."""

    def __init__(self, lab: Lab, *, clock: Callable[[], datetime]) -> None:
        self.lab = lab
        self.clock = clock
        self._registrars: dict[tuple[str, str], Registrar] = {}
        self._clients: dict[Requester, ClientInfo] = {}

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """The file the lab's TFTP service at ``server`` sends for ``name``."""
        del transport  # the lab serves the same bytes over TFTP and HTTP 6970
        service = self.lab.file_service(server)
        if service is None:
            raise TransferTimeout(f"no TFTP server answers at {server}")
        client = self._clients.get(requester)
        if client is None:  # one per phone, not one per request (Requester is frozen)
            client = ClientInfo(address=requester.address, mac=requester.mac, model=requester.model)
            self._clients[requester] = client
        data = service.get(name, client)
        if data is None:
            raise FileNotFoundOnServer(name)
        return data

    def tvs_query(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        *,
        client: Identity,
        requester: Requester,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        """Ask the lab's TVS at ``server`` (TLS emulated: the server certificate is checked)."""
        del requester
        service = self.lab.tvs_service(server.host)
        if service is None:
            raise NetworkError(f"connection to {server} refused (no TVS running there)")
        problem = check_server(service.certificate)
        if problem is not None:
            raise TlsRefused(f"TLS to {server} refused: {problem}")
        if certificate is not None:
            verdict = service.verify(certificate, client=client.certificate, now=self.clock())
        else:
            verdict = service.query(issuer, serial, client=client.certificate, now=self.clock())
        return TvsAnswer(
            verdict.valid, verdict.roles, verdict.ttl, verdict.certificates, verdict.reason
        )

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: CapfConversation,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        """Run a CAPF session with the lab's CAPF at ``host`` (TLS emulated: the server
        certificate is checked). Every frame goes through the wire codec both ways, so the
        in-memory session is byte for byte the one a socket carries."""
        service = self.lab.capf_service(host)
        if service is None:
            raise NetworkError(f"connection to {host}:{port} refused (no CAPF running there)")
        problem = check_server(service.certificate)
        if problem is not None:
            raise TlsRefused(f"TLS to CAPF {host}:{port} refused: {problem}")
        session = service.open(now=self.clock(), peer=requester.address)

        def wire(frame: CapfFrame) -> CapfFrame:
            return decode_frame(encode_frame(frame))

        to_phone = [wire(f) for f in session.start()]
        try:
            while to_phone and not conversation.finished:
                to_server = [wire(r) for f in to_phone for r in conversation.receive(f)]
                to_phone = [wire(r) for f in to_server for r in session.receive(f)]
        except ProtocolError as exc:
            session.drop(str(exc))
            raise
        if not conversation.finished:
            session.drop("the phone stopped answering")
            raise NetworkError(f"CAPF {host}:{port} session ended without END_SESSION")

    def _callmanager(self, request: RegisterRequest) -> tuple[Cluster, str]:
        """The cluster and node answering ``request`` (TLS emulated: the CallManager
        certificate is checked first)."""
        endpoint = self.lab.resolve(request.callmanager)
        # A node that runs no CallManager service answers no REGISTER (C2: "The phone likely
        # will not register if the new TFTP server is not running the CallManager service").
        if endpoint is None or not endpoint.node.running or not endpoint.node.runs_callmanager:
            raise NetworkError(f"no CallManager answers at {request.callmanager}:{request.port}")
        cluster = endpoint.cluster
        if request.transport == "tls" and request.check_server is not None:
            certificate: x509.Certificate = cluster.identity(
                CertKind.CALLMANAGER, endpoint.node.hostname
            ).certificate
            problem = request.check_server(certificate)
            if problem is not None:
                raise TlsRefused(f"TLS to {request.callmanager} refused: {problem}")
        return cluster, endpoint.node.hostname

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        """Register over SCCP with the lab's CallManager (issue 15): every message goes
        through the wire codec both ways, as a socket carries it."""
        cluster, host = self._callmanager(request)
        presented = None
        if request.transport == "tls" and request.client_identity is not None:
            presented = request.client_identity.certificate
        source = Source(request.requester.address, request.port, request.transport, presented)
        station = SccpService(cluster, host).open(source)

        def wire(messages: list[Message] | list[Message | Unknown]) -> list[Message | Unknown]:
            data = b"".join(sccp_encode(m) for m in messages)
            return [sccp_decode(frame) for frame in FrameReader().feed(data)]

        to_cm = wire(conversation.start())
        for _ in range(16):  # a registration is three round trips
            to_phone = wire([r for m in to_cm for r in station.receive(m, self.clock())])
            to_cm = wire([r for m in to_phone for r in conversation.receive(m)])
            if conversation.finished or not to_cm:
                break
        if not conversation.finished:
            raise NetworkError(
                f"SCCP {request.callmanager}:{request.port}: the CallManager stopped answering"
            )

    def register(self, request: RegisterRequest) -> RegisterResult:
        """Register with the lab's CallManager at ``request.callmanager``."""
        cluster, host = self._callmanager(request)
        # Issue 6: the same SIP exchange as over sockets (REGISTER, 401, digest answer),
        # through the pure registrar of that node, only without the sockets.
        key = (cluster.name, host)
        registrar = self._registrars.get(key)
        if registrar is None or registrar.cluster is not cluster:
            registrar = Registrar(cluster, host)
            self._registrars[key] = registrar
        presented = None
        if request.transport == "tls" and request.client_identity is not None:
            presented = request.client_identity.certificate
        source = Source(request.requester.address, SIP_PORT, request.transport, presented)
        # Issue 17: where the answer cannot depend on the messages (no digest, no trunk, no
        # throttle record), the registrar answers without them; the outcome, the lab's state
        # and every random draw are those of the full exchange (tests/test_registrar_direct.py).
        report = request.itl_report
        answer = register_direct(
            registrar,
            mac=request.requester.mac,
            model=request.requester.model,
            itl_report=(
                None if report is None else (report.tftp_host, report.itl_hash, report.timestamp)
            ),
            source=source,
            now=self.clock(),
        )
        if answer is not None:
            outcome = final_outcome(
                answer.status, answer.phrase, answer.why, expires=answer.expires
            )
            return register_result(outcome, cluster.name)
        return register_with(
            lambda message: registrar.handle(message, source, self.clock()),
            request,
            local=(request.requester.address, SIP_PORT),
            cluster=cluster.name,
        )

"""The in-memory backend: a phone talking to an emulated lab with no sockets (the default).

Host names resolve through the lab. A host that no running node answers behaves like a silent
network: TFTP times out, TVS and the registrar refuse the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from cryptography import x509

from phone.cluster.files import ClientInfo
from phone.cluster.model import Lab
from phone.device.models import Transport
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.backend import RegisterRequest, RegisterResult, Requester
from phone.pki import CertKind, Identity
from phone.trust.tvs import ServerCheck, TlsRefused, TvsAnswer, TvsServer


class MemoryBackend:
    """A :class:`phone.net.backend.Backend` over a :class:`phone.cluster.model.Lab`."""

    def __init__(self, lab: Lab, *, clock: Callable[[], datetime]) -> None:
        self.lab = lab
        self.clock = clock

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """The file the lab's TFTP service at ``server`` sends for ``name``."""
        del transport  # the lab serves the same bytes over TFTP and HTTP 6970
        service = self.lab.file_service(server)
        if service is None:
            raise TransferTimeout(f"no TFTP server answers at {server}")
        data = service.get(
            name, ClientInfo(address=requester.address, mac=requester.mac, model=requester.model)
        )
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
    ) -> TvsAnswer:
        """Ask the lab's TVS at ``server`` (TLS emulated: the server certificate is checked)."""
        del requester
        service = self.lab.tvs_service(server.host)
        if service is None:
            raise NetworkError(f"connection to {server} refused (no TVS running there)")
        problem = check_server(service.certificate)
        if problem is not None:
            raise TlsRefused(f"TLS to {server} refused: {problem}")
        verdict = service.query(issuer, serial, client=client.certificate, now=self.clock())
        return TvsAnswer(
            verdict.valid, verdict.roles, verdict.ttl, verdict.certificates, verdict.reason
        )

    def register(self, request: RegisterRequest) -> RegisterResult:
        """Register with the lab's CallManager at ``request.callmanager``."""
        endpoint = self.lab.resolve(request.callmanager)
        if endpoint is None or not endpoint.node.running:
            raise NetworkError(f"no CallManager answers at {request.callmanager}:{request.port}")
        cluster = endpoint.cluster
        if request.transport == "tls" and request.check_server is not None:
            certificate: x509.Certificate = cluster.identity(
                CertKind.CALLMANAGER, endpoint.node.hostname
            ).certificate
            problem = request.check_server(certificate)
            if problem is not None:
                raise TlsRefused(f"TLS to {request.callmanager} refused: {problem}")
        outcome = cluster.register(
            request.requester.mac,
            now=self.clock(),
            model=request.requester.model,
            itl_report=request.itl_report,
        )
        return RegisterResult(
            outcome.accepted, 200 if outcome.accepted else 403, outcome.reason, cluster.name
        )

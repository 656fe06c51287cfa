"""The one small interface between a phone and the network.

Every backend (the in-memory lab, TFTP, HTTP, a folder of files, a fault injector) implements
:class:`Backend`. The phone never imports a socket library; backends never decide trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from phone.catalog.models import Transport
from phone.formats.certfields import cucm_name
from phone.pki import Identity
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsServer
from phone.wire.capf import Frame as CapfFrame
from phone.wire.sccp import Message as SccpMessage
from phone.wire.sccp import Unknown as SccpUnknown


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is asking: what a server may learn about the phone from a request."""

    mac: str
    model: str
    address: str = "127.0.0.1"

    @property
    def device_name(self) -> str:
        """``SEP<MAC>``."""
        return f"SEP{self.mac}"


@dataclass(frozen=True, slots=True)
class ItlReport:
    """What a 14.x phone reports about its ITL when it registers (item 30, seed ITLRecovery)."""

    tftp_host: str
    itl_hash: str  # lowercase hex SHA-1 of the installed ITL
    timestamp: int  # Unix time the phone applied it


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A registration attempt with the CallManager named in the config."""

    callmanager: str
    port: int
    transport: str  # "udp", "tcp" or "tls"
    requester: Requester
    digest_user: str | None = None
    digest_password: str | None = None
    itl_report: ItlReport | None = None
    # For TLS (secure modes, item 7): the phone checks the CallManager certificate with this.
    check_server: ServerCheck | None = None
    client_identity: Identity | None = None
    load: str = ""  # the running firmware load (SCCP's StationRegister names it)


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """The registrar's answer."""

    ok: bool
    code: int
    reason: str
    cluster: str | None = None
    rule: str = "item 1"  # the behaviour item behind a failure (item 40/42: digest)
    # After a digest challenge: each exchange as (kind, rule, text), kind "challenged" or
    # "answered" (phone.wire.sip.RegisterOutcome.exchanges); the phone's trace shows them.
    exchanges: tuple[tuple[str, str, str], ...] = ()


class CapfConversation(Protocol):
    """The phone's side of a CAPF session (:class:`phone.device.capf.CapfClient`).

    A backend hands it every frame the CAPF server sends and sends back what it returns,
    until ``finished``.
    """

    @property
    def finished(self) -> bool:
        """True once the server ended the session."""
        ...

    def receive(self, frame: CapfFrame) -> list[CapfFrame]:
        """Answer one server frame (raises ProtocolError for a frame it cannot take)."""
        ...


class SccpConversation(Protocol):
    """The phone's side of an SCCP registration (:class:`phone.device.sccp.SccpClient`).

    A backend sends what :meth:`start` returns, then hands it every message the CallManager
    sends and sends back what it returns, until ``finished``.
    """

    @property
    def finished(self) -> bool:
        """True once the registration concluded (registered or rejected)."""
        ...

    def start(self) -> list[SccpMessage | SccpUnknown]:
        """The phone's first messages (StationRegister, and the emulated ITL report)."""
        ...

    def receive(self, message: SccpMessage | SccpUnknown) -> list[SccpMessage | SccpUnknown]:
        """Answer one CallManager message."""
        ...


class Backend(Protocol):
    """Everything a phone asks of the network."""

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """The bytes of file ``name`` on TFTP server ``server`` over ``transport``.

        Raises:
            FileNotFoundOnServer: the server has no such file.
            TransferTimeout: the server did not answer within the phone's retry budget.
            NetworkError: any other transfer failure (unknown host, refused, truncated).
        """
        ...

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
        """Ask TVS ``server`` about a certificate (item 22), over TLS authenticated as ``client``.

        With ``certificate`` (DER, the phone holds it) the request is a VERIFY as tvsd speaks
        it; without, the emulated QUERY by ``issuer``/``serial`` [G] (tvs-capf-wire.md 1.3).

        Raises:
            TlsRefused: ``check_server`` refused the server's certificate.
            QueryNotAnswered: a QUERY was dropped unanswered (a VERIFY-only server).
            NetworkError: the server cannot be reached or broke the protocol.
        """
        ...

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: CapfConversation,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        """Run one CAPF session with the CAPF at ``host``:``port`` (section 9b, TLS on 3804).

        ``check_server`` sees the server certificate before any frame is exchanged; the
        session ends when ``conversation.finished``.

        Raises:
            TlsRefused: ``check_server`` refused the server's certificate.
            ProtocolError: a frame broke the protocol (the connection is dropped).
            NetworkError: the server cannot be reached or closed the connection mid-session.
        """
        ...

    def register(self, request: RegisterRequest) -> RegisterResult:
        """Register with a CallManager.

        Raises:
            NetworkError: the CallManager cannot be reached.
        """
        ...

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        """Run an SCCP registration with ``request.callmanager`` (issue 15; TCP 2000, or TLS
        2443 with ``request.check_server`` seeing the CallManager certificate first and
        ``request.client_identity`` presented), until ``conversation.finished``.

        Raises:
            TlsRefused: ``check_server`` refused the CallManager certificate.
            NetworkError: the CallManager cannot be reached, or closed the connection or broke
                the protocol before the registration concluded.
        """
        ...


def certificate_check_for(trusted_der: tuple[bytes, ...], what: str) -> ServerCheck:
    """A server check accepting exactly the certificates in ``trusted_der``."""

    def check(certificate: x509.Certificate) -> str | None:
        if certificate.public_bytes(Encoding.DER) in trusted_der:
            return None
        return f"{what}: server certificate {cucm_name(certificate.subject)} is not trusted"

    return check

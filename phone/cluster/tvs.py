"""The Trust Verification Service of a cluster node (seed, Trust Verification Service).

Pure logic; a TLS server on TCP 2445 (later issue) wraps it. A phone asks TVS about a
certificate it cannot decide from its CTL/ITL (item 20): either by the certificate itself
(:meth:`TvsService.verify`, usecallmanager's ``tvsd``) or by issuer and serial
(:meth:`TvsService.query`, what CUCM logs show, item 22). TVS answers from what it knows
(item 25): the cluster's own certificates plus its CallManager-trust and Phone-SAST-trust
stores. It caches nothing: trust-store changes are effective at once, which is why the lab
needs no "restart TVS" step after a bulk import (item 34).

Roles returned (our mapping; codes from trust-file-formats.md section 5):

=====================================  =========================================================
certificate                            roles
=====================================  =========================================================
CallManager of a TFTP node             SAST and TFTP (CCM+TFTP in mixed mode), as in its ITL;
                                       plus CCM if the node runs CallManager in non-secure mode
CallManager of a non-TFTP node         CCM
TVS of a node                          TVS
ITLRecovery                            SAST
CAPF                                   CAPF
Phone-SAST-trust entry                 SAST
CallManager-trust entry                CCM
=====================================  =========================================================

A certificate in several places gets the union, sorted by code. Tomcat and the tomcat-trust
and CAPF-trust stores are never vouched for (item 25 does not list them).

Client authentication follows the cluster parameter ``tvs-client-certificate``:

* ``off`` (the default): no client certificate is asked for or judged, as the public tvsd
  does (tvs-capf-wire.md 1.1: no CertificateRequest in TLS 1.2 or 1.3, ``tls-probes.json``);
  this is what lets tvsc and other real clients get answers.
* ``required`` (vphone's behaviour before issue 12): a client must present a certificate issued
  by a certificate in the cluster's CAPF-trust store (the manufacturing CAs that issue MICs, and
  the cluster's own CAPF that issues LSCs): issuer name equal to the anchor's subject,
  signature verified with the anchor's key, and validity at ``now``. Anything else gets
  ``valid=False`` with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from phone.cluster.records import TrustStore
from phone.errors import ProtocolError
from phone.formats.certfields import cucm_name
from phone.formats.trustlist import Role
from phone.wire.tvs import (
    Command,
    Frame,
    FrameReader,
    Tag,
    check_request,
    encode_frame,
    response,
)

if TYPE_CHECKING:
    from phone.cluster.cluster import Cluster

__all__ = [
    "DEFAULT_TTL",
    "Judge",
    "TvsServerSession",
    "TvsService",
    "TvsVerdict",
    "answer_request",
    "authenticate_client",
]

DEFAULT_TTL = 86400  # item 23: CUCM answered 86 400 s, the phone logged "expires in 24 hours"


@dataclass(frozen=True)
class TvsVerdict:
    """TVS's answer: ``valid`` with the certificate's ``roles`` and a cache ``ttl`` in seconds.

    ``certificates`` are the DER certificates that matched (a query returns them so the phone
    can check the signature it is verifying); ``reason`` explains an invalid answer.
    """

    valid: bool
    roles: tuple[int, ...]
    ttl: int
    certificates: tuple[bytes, ...] = ()
    reason: str = ""


def _invalid(reason: str) -> TvsVerdict:
    return TvsVerdict(False, (), 0, (), reason)


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    algorithm = certificate.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            # By hand rather than verify_directly_issued_by: that one refuses SHA-1
            # (python-libraries.md 4.2), and old phone certificates are SHA-1 signed.
            key.verify(
                certificate.signature,
                certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                algorithm,
            )
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(
                certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm)
            )
            return True
    except InvalidSignature:
        return False
    return False


def authenticate_client(
    client: x509.Certificate | None,
    anchors: tuple[x509.Certificate, ...],
    now: datetime,
) -> str | None:
    """None if ``client`` was issued by one of ``anchors`` and is valid at ``now``; else why not."""
    if client is None:
        return "no client certificate: TVS authenticates phones by their LSC or MIC"
    if not client.not_valid_before_utc <= now <= client.not_valid_after_utc:
        return (
            f"client certificate {cucm_name(client.subject)} is not valid at "
            f"{now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        )
    for anchor in anchors:
        if _signed_by(client, anchor):
            return None
    return (
        f"client certificate {cucm_name(client.subject)} was not issued by a certificate "
        "in the CAPF-trust store"
    )


def _norm_issuer(text: str) -> str:
    return text.rstrip("\x00").strip().lower()


class TvsService:
    """The TVS of node ``host`` of ``cluster`` (module docstring). Obtain it with
    ``lab.tvs_service(host)``."""

    def __init__(self, cluster: Cluster, host: str) -> None:
        self.cluster = cluster
        self.host = host

    @property
    def certificate(self) -> x509.Certificate:
        """The TVS server certificate the phone checks against its ITL's TVS records (item 21)."""
        return self.cluster.node(self.host).tvs.certificate

    def _now(self, now: datetime | None) -> datetime:
        if now is not None:
            return now
        if self.cluster.clock is not None:
            return self.cluster.clock()
        return datetime.fromtimestamp(self.cluster.state.updated_at, UTC)

    @property
    def client_certificate_required(self) -> bool:
        """Whether clients must present a CAPF-trust-issued certificate (module docstring)."""
        return self.cluster.parameters.tvs_client_certificate == "required"

    def _refuse(self, client: x509.Certificate | None, now: datetime | None) -> str | None:
        node = self.cluster.find_node(self.host)
        if node is None or not node.running or not node.runs_tvs:
            return f"TVS on {self.host} is not running"
        if not self.client_certificate_required:
            return None  # as tvsd: the client is not authenticated (module docstring)
        anchors = tuple(e.certificate for e in self.cluster.trust(TrustStore.CAPF))
        return authenticate_client(client, anchors, self._now(now))

    def known(self) -> Iterator[tuple[x509.Certificate, tuple[int, ...]]]:
        """Every certificate this TVS vouches for, with its roles (unmerged)."""
        cluster = self.cluster
        tftp_role = Role.CCM_TFTP if cluster.mixed_mode else Role.TFTP
        for node in cluster.nodes:
            roles: list[int] = []
            if node.runs_tftp:
                roles += [Role.SAST, tftp_role]
            if node.runs_callmanager and not (node.runs_tftp and cluster.mixed_mode):
                roles.append(Role.CCM)
            if roles:
                yield node.callmanager.certificate, tuple(roles)
            if node.runs_tvs:
                yield node.tvs.certificate, (Role.TVS,)
        yield cluster.itlrecovery.certificate, (Role.SAST,)
        yield cluster.capf.certificate, (Role.CAPF,)
        for entry in cluster.trust(TrustStore.PHONE_SAST):
            yield entry.certificate, (Role.SAST,)
        for entry in cluster.trust(TrustStore.CALLMANAGER):
            yield entry.certificate, (Role.CCM,)

    def roles_for(self, certificate_der: bytes) -> tuple[int, ...]:
        """The roles TVS returns for this DER certificate; empty if it does not know it."""
        roles: set[int] = set()
        for certificate, found in self.known():
            if certificate.public_bytes(Encoding.DER) == certificate_der:
                roles.update(found)
        return tuple(sorted(roles))

    def _ttl(self) -> int:
        return self.cluster.parameters.tvs_ttl

    def verify(
        self,
        certificate_der: bytes,
        *,
        client: x509.Certificate | None,
        now: datetime | None = None,
    ) -> TvsVerdict:
        """Is this certificate trusted, and for which roles? (tvsd's verify request, item 22).

        ``now`` dates the client check; without it the lab clock (or the time of the cluster's
        last change) is used. Never raises.
        """
        refused = self._refuse(client, now)
        if refused is not None:
            return _invalid(refused)
        roles = self.roles_for(certificate_der)
        if not roles:
            return _invalid("certificate not found in the TVS certificate store")
        # tvsd answers only status, roles and TTL (1.4); the phone holds the certificate.
        return TvsVerdict(True, roles, self._ttl(), (), "found")

    def query(
        self,
        issuer: str,
        serial: bytes,
        *,
        client: x509.Certificate | None,
        now: datetime | None = None,
    ) -> TvsVerdict:
        """Find certificates by issuer name and serial (CUCM's query request, item 22).

        ``issuer`` may be CUCM's ``CN=..;OU=..`` form (as trust-list headers carry it) or an
        RFC 4514 string; case is ignored. ``serial`` is the raw magnitude bytes. Never raises.
        """
        refused = self._refuse(client, now)
        if refused is not None:
            return _invalid(refused)
        wanted = _norm_issuer(issuer)
        number = int.from_bytes(serial, "big")
        roles: set[int] = set()
        found: list[bytes] = []
        for certificate, cert_roles in self.known():
            if certificate.serial_number != number:
                continue
            names = (cucm_name(certificate.issuer), certificate.issuer.rfc4514_string())
            if wanted not in {_norm_issuer(n) for n in names}:
                continue
            roles.update(cert_roles)
            der = certificate.public_bytes(Encoding.DER)
            if der not in found:
                found.append(der)
        if not found:
            return _invalid(
                f"no certificate with serial {serial.hex()} and issuer {issuer!r} in the "
                "TVS certificate store"
            )
        return TvsVerdict(True, tuple(sorted(roles)), self._ttl(), tuple(found), "found")

    def judge(
        self, frame: Frame, *, client: x509.Certificate | None, now: datetime | None = None
    ) -> TvsVerdict:
        """The verdict on a request :func:`answer_request` has checked: VERIFY or QUERY."""
        if frame.command is Command.QUERY_REQUEST:
            issuer = (frame.get(Tag.ISSUER_NAME) or b"").decode("latin-1")
            return self.query(issuer, frame.get(Tag.SERIAL_NUMBER) or b"", client=client, now=now)
        return self.verify(frame.get(Tag.CERTIFICATE) or b"", client=client, now=now)


# --- the server side of one connection, sans-IO -------------------------------------------------

Judge = Callable[[Frame], TvsVerdict]
"""Decides a checked request (``TvsService.judge`` with the connection's client and clock)."""


def answer_request(frame: Frame, judge: Judge) -> Frame:
    """The answer to ``frame``, echoing its session id (tvs-capf-wire.md 1.2, 1.4).

    Raises:
        ProtocolError: a request tvsd drops without answering (1.7): the caller sends nothing
            and closes the connection.
    """
    check_request(frame)
    if frame.command is Command.VERIFY_REQUEST:
        try:
            x509.load_der_x509_certificate(frame.get(Tag.CERTIFICATE) or b"")
        except ValueError:
            raise ProtocolError("the certificate element is not a DER certificate") from None
    verdict = judge(frame)
    reply = (
        Command.QUERY_RESPONSE
        if frame.command is Command.QUERY_REQUEST
        else Command.VERIFY_RESPONSE
    )
    return response(
        reply,
        frame.session,
        valid=verdict.valid,
        roles=verdict.roles,
        ttl=verdict.ttl,
        certificates=verdict.certificates,
    )


class TvsServerSession:
    """The server side of one TVS connection without the socket: feed what the client sent,
    get each answer as the bytes of one write (one TLS record, section 0).

    Liberal where a real client gains from it (docs/networks.md "TVS"): a header split across
    reads is reassembled, and every request on the connection is answered (tvsd answers one and
    closes). A request tvsd would drop raises :class:`ProtocolError`: send nothing more, close.
    """

    def __init__(self, judge: Judge) -> None:
        self._judge = judge
        self._reader = FrameReader()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield the answer to every request ``data`` completes, in order.

        Raises:
            ProtocolError: the request just completed (or its header) is one tvsd drops.
        """
        for frame in self._reader.feed(data):
            yield encode_frame(answer_request(frame, self._judge))

    @property
    def pending(self) -> int:
        """Bytes of an incomplete request (a truncated body waits here)."""
        return self._reader.pending

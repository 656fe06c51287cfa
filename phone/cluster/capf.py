"""The cluster's Certificate Authority Proxy Function: pending operations and the server side
of a CAPF session, as capfd speaks it (tvs-capf-wire.md section 2; seed, "Certificate Authority
Proxy Function, for authenticating phones").

Why this module is longer than 600 lines: a session is one state machine (authentication, then
each operation's exchange) whose steps share the session's fields; the operations it carries
out, and their JSON in the lab folder, are data in :mod:`phone.cluster.capf_ops`.

Pure: frames and ``now`` in, frames and cluster changes out. A TLS server on TCP 3804
(:mod:`phone.net.capf_tls`) or the in-memory backend (:mod:`phone.net.memory`) carries the
frames; both drive the same :class:`CapfSession`.

Theory of operation. An administrator sets a *pending operation* on a device
(:func:`set_pending`, ``vphone lab capf``): install, upgrade, delete or troubleshoot, with an
authentication mode and, for install and upgrade, a key type. The device's config then carries
``capfAuthMode`` (non-zero) and ``capfList``, so at its next boot the phone connects to CAPF.
The server speaks first (AUTH_REQUEST {VERSION 3, AUTH_TYPE 0}), authenticates the phone from
its AUTH_RESPONSE, runs the operation, and ends the session with END_SESSION carrying capfd's
reason code. The outcome is recorded on the device (:class:`CapfResult`, shown by
``vphone lab show``); success clears the pending operation (so ``capfAuthMode`` returns to 0
and the phone stops asking), failure keeps it for the next boot.

===============  =========================================================================
operation        commands after authentication (wire 2.7), END_SESSION reason
===============  =========================================================================
install          KEY_GENERATE_REQUEST -> [REQUEST_IN_PROGRESS] -> KEY_GENERATE_RESPONSE
                 (public key) -> STORE_CERTIFICATE_REQUEST (the new LSC) -> STORE response;
                 END_SESSION{1}
upgrade          as install, for a device CAPF has issued an LSC to [G]
delete           DELETE_CERTIFICATE_REQUEST -> response {1 | 7}; END_SESSION{1}
troubleshoot     FETCH_CERTIFICATE_REQUEST -> response {1 + certificate | 7}; END_SESSION{0}
(none pending)   END_SESSION{0}; an unknown device END_SESSION{9}; any error END_SESSION{7}
===============  =========================================================================

Authentication modes: null string (nothing checked, as capfd's "no password"), authentication
string (a 4-10 digit string compared in constant time), existing certificate with precedence
to the LSC or to the MIC (capfd's "certificate": which one to present is the phone's choice).
For the certificate modes the phone sends the certificate and two signatures of ``device name +
NUL + certificate DER`` (SHA-1 in element 6, SHA-512 in element 20) and optionally SUDI data;
the certificate must be issued by a certificate of the CAPF-trust store (the manufacturing CAs
and this CAPF: capfd's issuer and ``-v`` certificates) and, beyond capfd, be valid at ``now``
and name the device (docs/capf.md).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from phone.cluster.capf_ops import (
    CapfAuth,
    CapfKeyType,
    CapfOperation,
    CapfPending,
    CapfResult,
)
from phone.cluster.records import TrustStore
from phone.cluster.tvs import authenticate_client
from phone.errors import LabError, ProtocolError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.pki import issue
from phone.wire.capf import (
    SHA512_CODE,
    VERSION,
    AuthType,
    CertType,
    Command,
    Curve,
    Frame,
    KeyType,
    Reason,
    Tag,
    certificate_element,
    proof_data,
    sudi_data,
    u8_element,
    u16_element,
)

if TYPE_CHECKING:
    from phone.cluster.cluster import Cluster
    from phone.cluster.records import Device

__all__ = [
    "LSC_BACKDATE",
    "LSC_DAYS",
    "LSC_EKU",
    "CapfAuth",
    "CapfKeyType",
    "CapfOperation",
    "CapfPending",
    "CapfResult",
    "CapfService",
    "CapfSession",
    "clear_pending",
    "proof_data",
    "set_pending",
    "verify_proof",
]

LSC_DAYS = 1826  # five years, as certops.issue_lsc (capfd's default is 365: docs/capf.md)
LSC_BACKDATE = timedelta(hours=1)
# The EKUs of capfd's LSC (wire 2.7): serverAuth, clientAuth, IPsec end system.
LSC_EKU = (
    ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsageOID.CLIENT_AUTH,
    ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
)
_SERVICE = "CAPF"


def set_pending(
    cluster: Cluster,
    mac: str,
    operation: CapfOperation,
    auth: CapfAuth,
    *,
    now: datetime,
    secret: str | None = None,
    key_type: CapfKeyType = CapfKeyType.RSA_2048,
) -> CapfPending:
    """Set a pending certificate operation on device ``mac`` (CUCM's "Certificate Operation").

    The device's config changes (``capfAuthMode``), so its signed config is re-signed.

    Raises:
        LabError: no such device, or invalid settings (see :class:`CapfPending`).
    """
    device = _device(cluster, mac)
    pending = CapfPending(operation, auth, secret, key_type, _stamp(now))
    cluster.update_device(device.mac, now=now, capf=pending)
    cluster.note(now, f"{device.name}: pending {pending.describe()}", service=_SERVICE)
    return pending


def clear_pending(cluster: Cluster, mac: str, *, now: datetime) -> bool:
    """Cancel device ``mac``'s pending operation; False if there was none.

    Raises:
        LabError: no such device.
    """
    device = _device(cluster, mac)
    if device.capf is None:
        return False
    cluster.update_device(device.mac, now=now, capf=None)
    cluster.note(now, f"{device.name}: pending operation cancelled", service=_SERVICE)
    return True


def _device(cluster: Cluster, mac: str) -> Device:
    device = cluster.device(mac)
    if device is None:
        raise LabError(f"cluster {cluster.name} has no device {mac!r}")
    return device


def _stamp(now: datetime) -> int:
    if now.tzinfo is None or now.utcoffset() is None:
        raise LabError(f"now must be timezone-aware, got the naive {now.isoformat()}")
    return int(now.timestamp())


# --- proofs of possession ------------------------------------------------------------------------


def verify_proof(
    certificate: x509.Certificate, data: bytes, signature: bytes, algorithm: hashes.HashAlgorithm
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``certificate``'s RSA or EC key.

    RSA: the PKCS#1 v1.5 type-1 block carries the bare digest, no DigestInfo, as capfc and
    (per capfd's comparison of the trailing digest bytes) real phones sign (wire 2.6); the
    standard form with a DigestInfo is accepted too, as capfd accepts it. EC: ECDSA.
    """
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            digest = hashes.Hash(algorithm)
            digest.update(data)
            try:
                payload = key.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            except (InvalidSignature, ValueError):
                return False
            if payload == digest.finalize():
                return True
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
            return True
    except InvalidSignature:
        return False
    return False


# --- the service and its sessions ----------------------------------------------------------------


class CapfService:
    """The CAPF of ``cluster``, on its publisher. Get it with ``lab.capf_service(host)``.

    Session ids are assigned by the server: a counter that starts at 1 and increases per
    connection, as capfd's (tvs-capf-wire.md 2.2; the lab keeps one service per cluster, so the
    counter runs per ``vphone lab serve``).
    """

    def __init__(self, cluster: Cluster, host: str) -> None:
        self.cluster = cluster
        self.host = host
        self._next_session = 1

    @property
    def certificate(self) -> x509.Certificate:
        """The CAPF server certificate the phone checks (ITL CAPF record, or TVS: item 20)."""
        return self.cluster.capf.certificate

    def open(self, *, now: datetime, peer: str = "127.0.0.1") -> CapfSession:
        """A new session for a connection from ``peer`` (the server speaks first: :meth:`start`)."""
        session = CapfSession(self, self._next_session, now=now, peer=peer)
        self._next_session = self._next_session % 0xFFFFFFFF + 1
        return session


class _Stage(Enum):
    NEW = "new"
    AUTH = "waiting for AUTH_RESPONSE"
    KEYGEN = "waiting for KEY_GENERATE_RESPONSE"
    STORE = "waiting for STORE_CERTIFICATE_RESPONSE"
    FETCH = "waiting for FETCH_CERTIFICATE_RESPONSE"
    DELETE = "waiting for DELETE_CERTIFICATE_RESPONSE"
    DONE = "done"


_EXPECTED = {
    _Stage.AUTH: Command.AUTH_RESP,
    _Stage.KEYGEN: Command.KEYGEN_RESP,
    _Stage.STORE: Command.STORE_CERT_RESP,
    _Stage.FETCH: Command.FETCH_CERT_RESP,
    _Stage.DELETE: Command.DELETE_CERT_RESP,
}


@dataclass
class _Work:
    device: Device
    pending: CapfPending
    lsc: x509.Certificate | None = None
    waited: bool = False  # one REQUEST_IN_PROGRESS seen (capfd tolerates exactly one)


class CapfSession:
    """The server side of one CAPF connection (module docstring).

    Drive it with :meth:`start` (the AUTH_REQUEST the server sends first) and :meth:`receive`
    (the frames it answers a phone frame with). Every breach of the protocol (wrong session id,
    a command out of order, a missing or malformed element, VERSION not 3) is answered as capfd
    answers it, END_SESSION{7}, and ends the session; the caller closes the connection once
    :attr:`finished`. A frame the codec cannot even parse (unknown tag, cut off) is the
    transport's to report with :meth:`abort`, which answers the same way. Breaches before
    authentication record nothing on the device, so a garbled connection cannot fail or
    complete an operation; :attr:`problem` says why the session ended badly.
    """

    def __init__(self, service: CapfService, session_id: int, *, now: datetime, peer: str) -> None:
        self.service = service
        self.cluster = service.cluster
        self.session_id = session_id
        self.now = now
        self.peer = peer
        self.result: CapfResult | None = None
        self.device_name: str | None = None
        self.problem: str | None = None
        self.dropped = False  # ended by a breach or a lost connection, not by a verdict
        self._stage = _Stage.NEW
        self._work: _Work | None = None

    @property
    def finished(self) -> bool:
        """True once END_SESSION was sent (or the connection was dropped)."""
        return self._stage is _Stage.DONE

    def start(self) -> list[Frame]:
        """The server's opening frame: AUTH_REQUEST {VERSION 3, AUTH_TYPE 0}.

        AUTH_TYPE is always 0 (none), as capfd sends it (tvs-capf-wire.md 2.5): the server speaks
        before it knows which device is calling, and the phone learns its mode from its config
        (``capfAuthMode``), not from this element.
        """
        if self._stage is not _Stage.NEW:
            raise ProtocolError("CAPF session already started")
        self._stage = _Stage.AUTH
        return [
            self._frame(
                Command.AUTH_REQ,
                u8_element(Tag.VERSION, VERSION),
                u8_element(Tag.AUTH_TYPE, AuthType.NONE),
            )
        ]

    def abort(self, reason: str) -> list[Frame]:
        """End the session for a protocol breach: END_SESSION{7} (wire 2.7), nothing recorded
        on the device. Returns no frame when the session had already ended."""
        if self._stage in (_Stage.NEW, _Stage.DONE):
            self.drop(reason)
            return []
        self.drop(reason)
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, Reason.INVALID))]

    def drop(self, reason: str) -> None:
        """The session ended without a verdict (malformed frame, timeout, peer gone): logged in
        the service log as "dropped"."""
        if self._stage is _Stage.DONE:
            return
        self._stage = _Stage.DONE
        self.problem = reason
        self.dropped = True
        who = self.device_name or "unidentified phone"
        self.cluster.note(
            self.now,
            f"session {self.session_id} from {self.peer} ({who}) dropped: {reason}",
            service=_SERVICE,
        )

    def receive(self, frame: Frame) -> list[Frame]:
        """Answer one phone frame (the class docstring says how breaches are answered)."""
        if self._stage is _Stage.DONE:
            return []
        try:
            return self._receive(frame)
        except ProtocolError as exc:
            return self.abort(str(exc))

    def _receive(self, frame: Frame) -> list[Frame]:
        if self._stage is _Stage.NEW:
            raise ProtocolError(f"CAPF {frame.command.name} before the server's AUTH_REQUEST")
        if frame.session != self.session_id:
            raise ProtocolError(
                f"CAPF session id {frame.session} does not match this session ({self.session_id})"
            )
        expected = _EXPECTED[self._stage]
        if (
            self._stage is _Stage.KEYGEN
            and frame.command is Command.REQUEST_IN_PROGRESS
            and self._work is not None
            and not self._work.waited
        ):
            # The phone says it is generating the key (capfc always does): wait, once.
            self._work.waited = True
            return []
        if frame.command is not expected:
            raise ProtocolError(
                f"CAPF {frame.command.name} while {self._stage.value} (expected {expected.name})"
            )
        if self._stage is _Stage.AUTH:
            return self._on_auth(frame)
        work = self._work
        assert work is not None  # set by _on_auth before any later stage
        if self._stage is _Stage.KEYGEN:
            return self._on_keygen(frame, work)
        if self._stage is _Stage.STORE:
            return self._on_store(frame, work)
        if self._stage is _Stage.DELETE:
            return self._on_delete(frame, work)
        return self._on_fetch(frame, work)

    # --- stages -------------------------------------------------------------------------------

    def _on_auth(self, frame: Frame) -> list[Frame]:
        # capfd's order (wire 2.7): VERSION 3, DEVICE_NAME present, the device known (else 9).
        # The REASON element is ignored (capf-raw-minimal-auth); an AUTH_TYPE from the phone,
        # which no public phone side sends, is ignored too: the operation decides the mode.
        version = frame.u8(Tag.VERSION)
        if version != VERSION:
            raise ProtocolError(f"CAPF AUTH_RESPONSE with VERSION {version}, not {VERSION}")
        name = frame.cstring(Tag.DEVICE_NAME)
        if name is None:
            raise ProtocolError("CAPF AUTH_RESPONSE without a device name")
        self.device_name = name
        device = self.cluster.device(name) if name.upper().startswith("SEP") else None
        if device is None:
            return self._end(Reason.UNKNOWN_DEVICE, f"{name} is not a device of this cluster")
        pending = device.capf
        if pending is None:
            return self._end(Reason.NO_ACTION, f"no certificate operation pending for {name}")
        work = _Work(device, pending)
        self._work = work
        problem = self._authenticate(frame, name, pending)
        if problem is not None:
            return self._fail(work, f"authentication failed: {problem}")
        operation = pending.operation
        if operation is CapfOperation.UPGRADE and device.certificate is None:
            # vphone's upgrade [G]: an install that CAPF runs only for a device it issued an LSC
            # to. It decides from its own record, so the wire is the install's (capfc-compatible).
            return self._fail(work, "upgrade needs an installed LSC and CAPF knows none")
        if operation in (CapfOperation.INSTALL, CapfOperation.UPGRADE):
            return self._keygen(work)
        if operation is CapfOperation.DELETE:
            self._stage = _Stage.DELETE
            return [self._frame(Command.DELETE_CERT_REQ)]
        self._stage = _Stage.FETCH
        return [self._frame(Command.FETCH_CERT_REQ)]

    def _authenticate(self, frame: Frame, name: str, pending: CapfPending) -> str | None:
        if pending.auth is CapfAuth.NULL:
            return None  # "no password": whatever the phone sends is ignored (wire 2.6)
        if pending.auth is CapfAuth.STRING:
            given = frame.cstring(Tag.PASSWORD)
            if given is None:
                return "no authentication string sent"
            assert pending.secret is not None  # CapfPending guarantees it
            if not hmac.compare_digest(given.encode(), pending.secret.encode()):
                return "wrong authentication string"
            return None
        return self._authenticate_certificate(frame, name)

    def _authenticate_certificate(self, frame: Frame, name: str) -> str | None:
        presented = frame.certificate()
        sha1_signature = frame.raw(Tag.SIGNED_DATA)
        sha2 = frame.sha2_signed()
        if presented is None or sha1_signature is None or sha2 is None:
            return "certificate authentication needs the certificate and both signatures"
        try:
            certificate = x509.load_der_x509_certificate(presented[1])
        except ValueError:
            return "the certificate sent does not parse"
        kind = self._kind(certificate)
        common_names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(common_names[0].value) if common_names else ""
        if not cn.upper().endswith(name.upper()):
            return f"the {kind} names {cn!r}, not {name}"
        anchors = tuple(e.certificate for e in self.cluster.trust(TrustStore.CAPF))
        problem = authenticate_client(certificate, anchors, self.now)
        if problem is not None:
            return f"{kind}: {problem}"
        algorithm, sha2_signature = sha2
        if algorithm != SHA512_CODE:
            return f"SHA-2 signed data uses hash code {algorithm}, not 3 (SHA-512)"
        data = proof_data(name, presented[1])
        if not verify_proof(certificate, data, sha1_signature, hashes.SHA1()):
            return f"the SHA-1 signature does not verify with the {kind}'s key"
        if not verify_proof(certificate, data, sha2_signature, hashes.SHA512()):
            return f"the SHA-512 signature does not verify with the {kind}'s key"
        return self._check_sudi(frame, anchors)

    def _check_sudi(self, frame: Frame, anchors: tuple[x509.Certificate, ...]) -> str | None:
        # Optional (wire 2.6, step 3): when present, its certificate chains like the proof's
        # and signs the session id (u32 little-endian) + its DER with SHA-1 and SHA-512.
        sudi = frame.sudi()
        if sudi is None:
            return None
        try:
            certificate = x509.load_der_x509_certificate(sudi.certificate)
        except ValueError:
            return "the SUDI certificate does not parse"
        problem = authenticate_client(certificate, anchors, self.now)
        if problem is not None:
            return f"SUDI: {problem}"
        if sudi.sha2_algorithm != SHA512_CODE:
            return f"SUDI data's second signature uses hash code {sudi.sha2_algorithm}, not 3"
        data = sudi_data(self.session_id, sudi.certificate)
        if not verify_proof(certificate, data, sudi.sha1_signature, hashes.SHA1()):
            return "the SUDI SHA-1 signature does not verify"
        if not verify_proof(certificate, data, sudi.sha2_signature, hashes.SHA512()):
            return "the SUDI SHA-512 signature does not verify"
        return None

    def _kind(self, certificate: x509.Certificate) -> str:
        # The wrapper's type byte says nothing (capfc puts 01 there for a MIC too): an LSC is
        # what this CAPF issued.
        return "LSC" if certificate.issuer == self.cluster.capf.certificate.subject else "MIC"

    def _keygen(self, work: _Work) -> list[Frame]:
        self._stage = _Stage.KEYGEN
        if work.pending.key_type in _CURVE_OF:
            curve = _CURVE_OF[work.pending.key_type]
            elements = (u8_element(Tag.KEY_TYPE, KeyType.EC), u8_element(Tag.CURVE, curve))
        else:
            # capfd's order: KEY_SIZE, then KEY_TYPE (wire 2.4).
            elements = (u16_element(Tag.KEY_SIZE, 2048), u8_element(Tag.KEY_TYPE, KeyType.RSA))
        return [self._frame(Command.KEYGEN_REQ, *elements)]

    def _on_keygen(self, frame: Frame, work: _Work) -> list[Frame]:
        spki = frame.raw(Tag.PUBLIC_KEY)
        if spki is None:
            # capfc sends PUBLIC_KEY alone; a phone that cannot make the key sends REASON 7.
            return self._fail(
                work, f"the phone did not generate a key (reason {frame.u8(Tag.REASON)})"
            )
        try:
            public_key = load_der_public_key(spki)
        except (ValueError, TypeError):
            return self._fail(work, "the public key is not a SubjectPublicKeyInfo")
        problem = _key_problem(public_key, work.pending.key_type)
        if problem is not None:
            return self._fail(work, problem)
        assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        # CN = SEP<MAC> and the EKUs capfd gives (serverAuth, clientAuth, IPsec end system); it
        # reaches the device record only when the phone reports it stored (STORE response).
        work.lsc = issue(
            self.cluster.capf,
            work.device.name,
            public_key,
            # Backdated, as CAs do, so that a phone whose clock is a little behind the
            # server's does not find its new LSC "not yet valid".
            now=self.now - LSC_BACKDATE,
            days=LSC_DAYS,
            extended_key_usage=LSC_EKU,
        )
        self._stage = _Stage.STORE
        return [
            self._frame(
                Command.STORE_CERT_REQ,
                u8_element(Tag.CERTIFICATE_TYPE, CertType.LSC),
                certificate_element(CertType.LSC, work.lsc.public_bytes(Encoding.DER)),
            )
        ]

    def _on_store(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        assert work.lsc is not None
        if reason != Reason.OK:
            # capfd only logs this; vphone keeps the operation pending, since the phone says it
            # does not hold the LSC [G] (END_SESSION{7}).
            return self._fail(work, f"the phone did not store the LSC (reason {reason})")
        serial = serial_bytes(work.lsc.serial_number).hex()
        expires = work.lsc.not_valid_after_utc.strftime("%Y-%m-%d")
        return self._succeed(
            work,
            f"LSC serial {serial} issued by {self.cluster.capf.common_name}, expires {expires}",
            Reason.OK,
            record_certificate=True,
            certificate=work.lsc,
        )

    def _on_delete(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        # END_SESSION{1} whether or not the phone had an LSC (capf-delete-no-certificate).
        # CAPF no longer knows a certificate for the device: no .enc.sgn is served until the
        # next install (trust-file-formats.md section 8).
        said = "LSC deleted" if reason == Reason.OK else "the phone had no LSC to delete"
        return self._succeed(work, said, Reason.OK, record_certificate=True, certificate=None)

    def _on_fetch(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        presented = frame.certificate() if reason == Reason.OK else None
        line = "LSC: none"
        if presented is not None:
            try:
                certificate = x509.load_der_x509_certificate(presented[1])
            except ValueError:
                raise ProtocolError(
                    "CAPF FETCH_CERTIFICATE_RESPONSE certificate does not parse"
                ) from None
            line = (
                f"{self._kind(certificate)}: {cucm_name(certificate.subject)} issued by "
                f"{cucm_name(certificate.issuer)}, serial "
                f"{serial_bytes(certificate.serial_number).hex()}, expires "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        # END_SESSION{0} in both cases (capf-fetch, capf-fetch-no-certificate).
        return self._succeed(work, line, Reason.NO_ACTION, record_certificate=False, found=(line,))

    # --- endings ------------------------------------------------------------------------------

    def _end(self, reason: Reason, info: str) -> list[Frame]:
        self._stage = _Stage.DONE
        self.problem = info
        self.cluster.note(
            self.now, f"session {self.session_id} from {self.peer}: {info}", service=_SERVICE
        )
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, reason))]

    def _fail(self, work: _Work, reason: str) -> list[Frame]:
        result = CapfResult(work.pending.operation, False, reason, _stamp(self.now))
        self.result = result
        self.problem = reason
        # The pending operation stays: the phone tries again at its next boot.
        self.cluster.update_device(work.device.mac, now=self.now, capf_result=result)
        self.cluster.note(
            self.now,
            f"{work.device.name}: {work.pending.operation.value} failed: {reason}",
            service=_SERVICE,
        )
        self._stage = _Stage.DONE
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, Reason.INVALID))]

    def _succeed(
        self,
        work: _Work,
        reason: str,
        code: Reason,
        *,
        record_certificate: bool,
        certificate: x509.Certificate | None = None,
        found: tuple[str, ...] = (),
    ) -> list[Frame]:
        result = CapfResult(work.pending.operation, True, reason, _stamp(self.now), found)
        self.result = result
        changes: dict[str, object] = {"capf": None, "capf_result": result}
        if record_certificate:
            # Install and upgrade record the new LSC (encrypted configs are encrypted to it);
            # delete forgets it. Troubleshoot leaves the device's certificate as it is.
            changes["certificate"] = certificate
        self.cluster.update_device(work.device.mac, now=self.now, **changes)
        self.cluster.note(
            self.now,
            f"{work.device.name}: {work.pending.operation.value} succeeded: {reason}",
            service=_SERVICE,
        )
        self._stage = _Stage.DONE
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, code))]

    def _frame(self, command: Command, *elements: tuple[int, bytes]) -> Frame:
        return Frame(command, self.session_id, elements)


_CURVE_OF = {CapfKeyType.EC_P256: Curve.P256, CapfKeyType.EC_P384: Curve.P384}


def _key_problem(public_key: object, key_type: CapfKeyType) -> str | None:
    if key_type is CapfKeyType.RSA_2048:
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size != 2048:
            return "the phone sent a key that is not the RSA-2048 key CAPF asked for"
        return None
    curve = ec.SECP256R1 if key_type is CapfKeyType.EC_P256 else ec.SECP384R1
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, curve
    ):
        return f"the phone sent a key that is not the {key_type.value} key CAPF asked for"
    return None

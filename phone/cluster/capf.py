"""The cluster's Certificate Authority Proxy Function: pending operations and the server side
of a CAPF session (trust-file-formats.md section 9b; seed, "Certificate Authority Proxy
Function, for authenticating phones").

Why this module is longer than 600 lines: a session is one state machine (authentication, then
each operation's exchange) whose steps share the session's fields; the operations it carries
out are data in :mod:`phone.cluster.capf_ops`.

Pure: frames and ``now`` in, frames and cluster changes out. A TLS server on TCP 3804
(:mod:`phone.net.capf_tls`) or the in-memory backend (:mod:`phone.net.memory`) carries the
frames; both drive the same :class:`CapfSession`.

Theory of operation. An administrator sets a *pending operation* on a device
(:func:`set_pending`, ``vphone lab capf``): install, upgrade, delete or troubleshoot, with an
authentication mode and, for install and upgrade, a key type. The device's config then carries
``capfAuthMode`` (non-zero) and ``capfList``, so at its next boot the phone connects to CAPF.
The server speaks first (AUTH_REQ), authenticates the phone from its AUTH_RESP, runs the
operation, and ends the session with END_SESSION carrying the outcome. The outcome is recorded
on the device (:class:`CapfResult`, shown by ``vphone lab show``); success clears the pending
operation (so ``capfAuthMode`` returns to 0 and the phone stops asking), failure keeps it for
the next boot. The order of commands in a session is our emulation (docs/capf.md): the public
sources give the framing and the elements, not a full session.

===============  =========================================================================
operation        commands after authentication
===============  =========================================================================
install          KEYGEN_REQ -> KEYGEN_RESP (public key) -> STORE_CERT_REQ (the new LSC)
                 -> STORE_CERT_RESP
upgrade          FETCH_CERT_REQ (LSC) -> FETCH_CERT_RESP: the phone must hold an LSC; then
                 as install
delete           DELETE_CERT_REQ (LSC) -> DELETE_CERT_RESP
troubleshoot     FETCH_CERT_REQ (LSC), FETCH_CERT_REQ (MIC): what the phone holds is recorded
===============  =========================================================================

Authentication modes (element 8 codes, which are also what ``capfAuthMode`` carries [G]):
null string (2, no password), authentication string (1, a 4-10 digit string compared in
constant time), existing certificate with precedence to the LSC (3) or to the MIC (4). For
certificate modes the phone sends the certificate (element 4) and two signatures of
``device name + NUL + certificate DER`` (SHA-1 in element 6, SHA-512 in element 20, as capfd
requires); the certificate must name the device and chain to the CAPF-trust store (the
manufacturing CAs and this CAPF), valid at ``now``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, load_der_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from phone.cluster.capf_ops import CapfAuth, CapfKeyType, CapfOperation, CapfPending, CapfResult
from phone.cluster.records import TrustStore
from phone.cluster.tvs import authenticate_client
from phone.errors import LabError, ProtocolError
from phone.formats.certfields import serial_bytes
from phone.pki import issue
from phone.wire.capf import (
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
    u8_element,
    u16_element,
)

if TYPE_CHECKING:
    from phone.cluster.cluster import Cluster
    from phone.cluster.records import Device

__all__ = [
    "LSC_BACKDATE",
    "LSC_DAYS",
    "CapfAuth",
    "CapfKeyType",
    "CapfOperation",
    "CapfPending",
    "CapfResult",
    "CapfService",
    "CapfSession",
    "clear_pending",
    "pending_from_json",
    "pending_to_json",
    "proof_data",
    "result_from_json",
    "result_to_json",
    "set_pending",
    "verify_proof",
]

LSC_DAYS = 1826  # five years, as certops.issue_lsc
LSC_BACKDATE = timedelta(hours=1)
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


def proof_data(device_name: str, certificate_der: bytes) -> bytes:
    """What a phone signs to authenticate by certificate: ``device name + NUL + DER`` (9b)."""
    return device_name.encode("ascii") + b"\0" + certificate_der


def verify_proof(
    certificate: x509.Certificate, data: bytes, signature: bytes, algorithm: hashes.HashAlgorithm
) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``certificate``'s RSA or EC key."""
    key = certificate.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
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

    Session ids are chosen by the server and increase per connection, as on CUCM (9b).
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
    AUTH = "waiting for AUTH_RESP"
    KEYGEN = "waiting for KEYGEN_RESP"
    STORE = "waiting for STORE_CERT_RESP"
    FETCH_FOR_UPGRADE = "waiting for FETCH_CERT_RESP (LSC, upgrade)"
    FETCH_LSC = "waiting for FETCH_CERT_RESP (LSC)"
    FETCH_MIC = "waiting for FETCH_CERT_RESP (MIC)"
    DELETE = "waiting for DELETE_CERT_RESP"
    DONE = "done"


_EXPECTED = {
    _Stage.AUTH: Command.AUTH_RESP,
    _Stage.KEYGEN: Command.KEYGEN_RESP,
    _Stage.STORE: Command.STORE_CERT_RESP,
    _Stage.FETCH_FOR_UPGRADE: Command.FETCH_CERT_RESP,
    _Stage.FETCH_LSC: Command.FETCH_CERT_RESP,
    _Stage.FETCH_MIC: Command.FETCH_CERT_RESP,
    _Stage.DELETE: Command.DELETE_CERT_RESP,
}


@dataclass
class _Work:
    device: Device
    pending: CapfPending
    found: list[str] = field(default_factory=list)
    lsc: x509.Certificate | None = None


class CapfSession:
    """The server side of one CAPF connection (module docstring).

    Drive it with :meth:`start` (the frames the server sends first) and :meth:`receive` (the
    frames it answers a phone frame with). A frame that breaks the protocol (wrong command for
    the stage, wrong session id, missing or malformed element) raises
    :class:`phone.errors.ProtocolError`: the caller calls :meth:`drop` and closes the
    connection; nothing is recorded on the device then, so a garbled connection cannot fail or
    complete an operation.
    """

    def __init__(self, service: CapfService, session_id: int, *, now: datetime, peer: str) -> None:
        self.service = service
        self.cluster = service.cluster
        self.session_id = session_id
        self.now = now
        self.peer = peer
        self.result: CapfResult | None = None
        self.device_name: str | None = None
        self._stage = _Stage.NEW
        self._work: _Work | None = None

    @property
    def finished(self) -> bool:
        """True once END_SESSION was sent (or the connection was dropped)."""
        return self._stage is _Stage.DONE

    def start(self) -> list[Frame]:
        """The server's opening frame: AUTH_REQ with the protocol version."""
        if self._stage is not _Stage.NEW:
            raise ProtocolError("CAPF session already started")
        self._stage = _Stage.AUTH
        return [self._frame(Command.AUTH_REQ, u8_element(Tag.VERSION, VERSION))]

    def drop(self, reason: str) -> None:
        """The connection ended before END_SESSION (malformed frame, timeout, peer gone)."""
        if self._stage is _Stage.DONE:
            return
        self._stage = _Stage.DONE
        who = self.device_name or "unidentified phone"
        self.cluster.note(
            self.now,
            f"session {self.session_id} from {self.peer} ({who}) dropped: {reason}",
            service=_SERVICE,
        )

    def receive(self, frame: Frame) -> list[Frame]:
        """Answer one phone frame.

        Raises:
            ProtocolError: the frame breaks the protocol (see the class docstring).
        """
        if self._stage in (_Stage.NEW, _Stage.DONE):
            raise ProtocolError(f"CAPF frame {frame.command.name} outside a session")
        if frame.session != self.session_id:
            raise ProtocolError(
                f"CAPF session id {frame.session} does not match this session ({self.session_id})"
            )
        expected = _EXPECTED[self._stage]
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
        name = frame.cstring(Tag.DEVICE_NAME)
        auth_code = frame.u8(Tag.AUTH_TYPE)
        if name is None or auth_code is None:
            raise ProtocolError("CAPF AUTH_RESP without a device name or an auth type")
        version = frame.u8(Tag.VERSION)
        self.device_name = name
        device = self.cluster.device(name) if name.upper().startswith("SEP") else None
        if device is None:
            return self._end(Reason.UNKNOWN_DEVICE, f"{name} is not a device of this cluster")
        pending = device.capf
        if pending is None:
            return self._end(Reason.NO_ACTION, f"no certificate operation pending for {name}")
        work = _Work(device, pending)
        self._work = work
        if version is not None and version != VERSION:
            return self._fail(work, f"{name} speaks CAPF version {version}, not {VERSION}")
        problem = self._authenticate(frame, name, auth_code, pending)
        if problem is not None:
            return self._fail(work, f"authentication failed: {problem}")
        operation = pending.operation
        if operation is CapfOperation.INSTALL:
            return self._keygen(work)
        if operation is CapfOperation.DELETE:
            self._stage = _Stage.DELETE
            return [
                self._frame(Command.DELETE_CERT_REQ, u8_element(Tag.CERTIFICATE_TYPE, CertType.LSC))
            ]
        self._stage = (
            _Stage.FETCH_FOR_UPGRADE if operation is CapfOperation.UPGRADE else _Stage.FETCH_LSC
        )
        return [self._frame(Command.FETCH_CERT_REQ, u8_element(Tag.CERTIFICATE_TYPE, CertType.LSC))]

    def _authenticate(
        self, frame: Frame, name: str, auth_code: int, pending: CapfPending
    ) -> str | None:
        wanted = pending.auth.code
        if auth_code != wanted:
            try:
                label = AuthType(auth_code).name
            except ValueError:
                label = str(auth_code)
            return f"the phone used auth type {label}, the operation requires {wanted.name}"
        if pending.auth is CapfAuth.NULL:
            return None
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
        kind, der = presented
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return f"the {kind.name} sent does not parse as a certificate"
        common_names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(common_names[0].value) if common_names else ""
        if not cn.upper().endswith(name.upper()):
            return f"the {kind.name} names {cn!r}, not {name}"
        anchors = tuple(e.certificate for e in self.cluster.trust(TrustStore.CAPF))
        problem = authenticate_client(certificate, anchors, self.now)
        if problem is not None:
            return f"{kind.name}: {problem}"
        algorithm, sha2_signature = sha2
        if algorithm != 3:
            return f"SHA-2 signed data uses hash code {algorithm}, not 3 (SHA-512)"
        data = proof_data(name, der)
        if not verify_proof(certificate, data, sha1_signature, hashes.SHA1()):
            return f"the SHA-1 signature does not verify with the {kind.name}'s key"
        if not verify_proof(certificate, data, sha2_signature, hashes.SHA512()):
            return f"the SHA-512 signature does not verify with the {kind.name}'s key"
        return None

    def _keygen(self, work: _Work) -> list[Frame]:
        self._stage = _Stage.KEYGEN
        if work.pending.key_type is CapfKeyType.EC_P256:
            elements = (
                u8_element(Tag.KEY_TYPE, KeyType.EC),
                u8_element(Tag.CURVE, Curve.P256),
            )
        else:
            elements = (u8_element(Tag.KEY_TYPE, KeyType.RSA), u16_element(Tag.KEY_SIZE, 2048))
        return [self._frame(Command.KEYGEN_REQ, *elements)]

    def _on_keygen(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        if reason != Reason.OK:
            why = frame.text(Tag.REASON_INFO) or f"reason {reason}"
            return self._fail(work, f"the phone did not generate a key: {why}")
        spki = frame.raw(Tag.PUBLIC_KEY)
        if spki is None:
            raise ProtocolError("CAPF KEYGEN_RESP reports OK without a public key")
        try:
            public_key = load_der_public_key(spki)
        except (ValueError, TypeError):
            raise ProtocolError(
                "CAPF KEYGEN_RESP public key is not a SubjectPublicKeyInfo"
            ) from None
        problem = _key_problem(public_key, work.pending.key_type)
        if problem is not None:
            return self._fail(work, problem)
        assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        # The LSC as certops.issue_lsc makes it: CN=SEP<MAC>, clientAuth, issued by CAPF. It
        # reaches the device record only when the phone reports it stored (STORE_CERT_RESP).
        work.lsc = issue(
            self.cluster.capf,
            work.device.name,
            public_key,
            # Backdated, as CAs do, so that a phone whose clock is a little behind the
            # server's does not find its new LSC "not yet valid".
            now=self.now - LSC_BACKDATE,
            days=LSC_DAYS,
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
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
            why = frame.text(Tag.REASON_INFO) or f"reason {reason}"
            return self._fail(work, f"the phone did not store the LSC: {why}")
        serial = serial_bytes(work.lsc.serial_number).hex()
        expires = work.lsc.not_valid_after_utc.strftime("%Y-%m-%d")
        return self._succeed(
            work,
            f"LSC serial {serial} issued by {self.cluster.capf.common_name}, expires {expires}",
            record_certificate=True,
            certificate=work.lsc,
        )

    def _on_delete(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        if reason != Reason.OK:
            why = frame.text(Tag.REASON_INFO) or f"reason {reason}"
            return self._fail(work, f"the phone did not delete its LSC: {why}")
        # CAPF no longer knows a certificate for the device: no .enc.sgn is served until the
        # next install (trust-file-formats.md section 8).
        return self._succeed(work, "LSC deleted", record_certificate=True, certificate=None)

    def _on_fetch(self, frame: Frame, work: _Work) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        presented = frame.certificate() if reason == Reason.OK else None
        if reason == Reason.OK and presented is None:
            raise ProtocolError("CAPF FETCH_CERT_RESP reports OK without a certificate")
        line = "none"
        if presented is not None:
            kind, der = presented
            try:
                certificate = x509.load_der_x509_certificate(der)
            except ValueError:
                raise ProtocolError(f"CAPF FETCH_CERT_RESP {kind.name} does not parse") from None
            line = (
                f"{certificate.subject.rfc4514_string()} issued by "
                f"{certificate.issuer.rfc4514_string()}, serial "
                f"{serial_bytes(certificate.serial_number).hex()}, expires "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        if self._stage is _Stage.FETCH_FOR_UPGRADE:
            if presented is None:
                return self._fail(work, "upgrade needs an installed LSC and the phone has none")
            return self._keygen(work)
        if self._stage is _Stage.FETCH_LSC:
            work.found.append(f"LSC: {line}")
            self._stage = _Stage.FETCH_MIC
            return [
                self._frame(Command.FETCH_CERT_REQ, u8_element(Tag.CERTIFICATE_TYPE, CertType.MIC))
            ]
        work.found.append(f"MIC: {line}")
        return self._succeed(work, "; ".join(work.found), record_certificate=False)

    # --- endings ------------------------------------------------------------------------------

    def _end(self, reason: Reason, info: str) -> list[Frame]:
        self._stage = _Stage.DONE
        self.cluster.note(
            self.now, f"session {self.session_id} from {self.peer}: {info}", service=_SERVICE
        )
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, reason), _info(info))]

    def _fail(self, work: _Work, reason: str) -> list[Frame]:
        result = CapfResult(work.pending.operation, False, reason, _stamp(self.now))
        self.result = result
        # The pending operation stays: the phone tries again at its next boot.
        self.cluster.update_device(work.device.mac, now=self.now, capf_result=result)
        self.cluster.note(
            self.now,
            f"{work.device.name}: {work.pending.operation.value} failed: {reason}",
            service=_SERVICE,
        )
        self._stage = _Stage.DONE
        return [
            self._frame(Command.END_SESSION, u8_element(Tag.REASON, Reason.INVALID), _info(reason))
        ]

    def _succeed(
        self,
        work: _Work,
        reason: str,
        *,
        record_certificate: bool,
        certificate: x509.Certificate | None = None,
    ) -> list[Frame]:
        found = tuple(work.found) if work.pending.operation is CapfOperation.TROUBLESHOOT else ()
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
        return [self._frame(Command.END_SESSION, u8_element(Tag.REASON, Reason.OK), _info(reason))]

    def _frame(self, command: Command, *elements: tuple[int, bytes]) -> Frame:
        return Frame(command, self.session_id, elements)


def _info(text: str) -> tuple[int, bytes]:
    # Reason info is free text; keep it ASCII and within one element.
    clean = text.encode("ascii", errors="replace")[:1000]
    return (Tag.REASON_INFO, clean + b"\0")


def _key_problem(public_key: object, key_type: CapfKeyType) -> str | None:
    if key_type is CapfKeyType.RSA_2048:
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size != 2048:
            return "the phone sent a key that is not the RSA-2048 key CAPF asked for"
        return None
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return "the phone sent a key that is not the EC P-256 key CAPF asked for"
    return None


# --- the lab folder (phone.cluster.store) --------------------------------------------------------


def pending_to_json(pending: CapfPending | None) -> dict[str, object] | None:
    """A pending operation as JSON-ready data (the lab folder keeps the string: it is a lab)."""
    if pending is None:
        return None
    return {
        "operation": pending.operation.value,
        "auth": pending.auth.value,
        "secret": pending.secret,
        "key_type": pending.key_type.value,
        "set_at": pending.set_at,
    }


def pending_from_json(value: object) -> CapfPending | None:
    """The inverse of :func:`pending_to_json`.

    Raises:
        LabError: not a pending operation.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LabError("a device's pending CAPF operation is not an object")
    try:
        secret = value.get("secret")
        return CapfPending(
            CapfOperation(str(value["operation"])),
            CapfAuth(str(value["auth"])),
            None if secret is None else str(secret),
            CapfKeyType(str(value.get("key_type", CapfKeyType.RSA_2048.value))),
            int(value.get("set_at", 0)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(f"bad pending CAPF operation: {exc}") from None


def result_to_json(result: CapfResult | None) -> dict[str, object] | None:
    """The last CAPF outcome as JSON-ready data."""
    if result is None:
        return None
    return {
        "operation": result.operation.value,
        "ok": result.ok,
        "reason": result.reason,
        "at": result.at,
        "certificates": list(result.certificates),
    }


def result_from_json(value: object) -> CapfResult | None:
    """The inverse of :func:`result_to_json`.

    Raises:
        LabError: not a CAPF outcome.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LabError("a device's CAPF outcome is not an object")
    try:
        return CapfResult(
            CapfOperation(str(value["operation"])),
            bool(value["ok"]),
            str(value["reason"]),
            int(value["at"]),
            tuple(str(c) for c in value.get("certificates", ())),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(f"bad CAPF outcome: {exc}") from None

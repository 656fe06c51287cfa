"""The phone's side of CAPF: whether to run a certificate operation, whom to trust, and the
client session (trust-file-formats.md section 9b; phone-behaviour item 20).

Pure: frames in, frames out. The phone's key generation comes from an injected
:class:`phone.pki.KeySource` (RSA; tests hand in pooled keys) and the flash writes from injected
callbacks, so nothing here touches a socket, a file or the clock.

* :func:`pending_auth` reads the config: a non-zero ``capfAuthMode`` with a ``capfList`` means
  CAPF has an operation for this phone (docs/capf.md: the value is the element 8 auth type [G]).
* :class:`CapfServerTrust` is the server check: the CAPF certificate must be a CAPF record of the
  installed CTL or ITL; when neither list has a CAPF record the phone asks TVS, which must vouch
  for that very certificate with the CAPF role (item 20: "CAPF if not in the ITL"). A CAPF
  record that does not match is a refusal: the lists decide, TVS is not asked.
* :class:`CapfClient` answers the server's frames: it authenticates as the config says
  (null string, authentication string, or its LSC/MIC with the precedence asked), generates the
  key CAPF asks for (EC P-256 only when the installed ITL has signer version 1.1, section 5
  note), checks the LSC it is given (its key, its name, issued by the CAPF server it trusted)
  and hands it to ``store``; ``delete`` removes the LSC.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from phone.errors import ProtocolError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.configxml import DeviceConfig
from phone.formats.trustlist import Role, TrustList
from phone.pki import Identity, KeySource, PrivateKey
from phone.trust.lists import TvsAsk
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
    cstring_element,
    sha2_signed_element,
    u8_element,
)

__all__ = [
    "CapfClient",
    "CapfClientOutcome",
    "CapfServerTrust",
    "ec_keys_allowed",
    "pending_auth",
    "sign_proof",
]


def pending_auth(config: DeviceConfig | None) -> AuthType | None:
    """The auth type of the operation CAPF holds for this phone, or None when there is none.

    A value outside element 8's codes is treated as no operation: the phone cannot know how to
    authenticate [G].
    """
    if config is None or config.capf_host is None or config.capf_auth_mode == 0:
        return None
    try:
        auth = AuthType(config.capf_auth_mode)
    except ValueError:
        return None
    return None if auth is AuthType.NONE else auth


def ec_keys_allowed(itl: TrustList | None) -> bool:
    """Whether the phone may generate an EC key for CAPF: its ITL has signer version >= 1.1.

    trust-file-formats.md section 5 (certutils note, [C1]): an ITL with signer version 1.1
    (header tag 28) is needed for phones "to generate EC keys via CAPF".
    """
    if itl is None or itl.header.signer_version is None:
        return False
    return itl.header.signer_version >= (1, 1)


# --- whom to trust -------------------------------------------------------------------------------


@dataclass
class CapfServerTrust:
    """The phone's check of the CAPF server certificate (module docstring; item 20).

    Call it with the certificate the TLS handshake presented: it returns None when trusted,
    else the reason. ``certificate`` and ``how`` record what was decided, for the trace and
    for checking that the issued LSC comes from this server.
    """

    ctl: TrustList | None
    itl: TrustList | None
    tvs: TvsAsk
    certificate: x509.Certificate | None = None
    how: str = ""

    def __call__(self, certificate: x509.Certificate) -> str | None:
        self.certificate = certificate
        der = certificate.public_bytes(Encoding.DER)
        named = (
            f"{cucm_name(certificate.subject)} (serial "
            f"{serial_bytes(certificate.serial_number).hex()})"
        )
        records = [
            (tl.kind, r.certificate_der)
            for tl in (self.ctl, self.itl)
            if tl is not None
            for r in tl.with_role(Role.CAPF)
            if r.certificate_der is not None
        ]
        for kind, record_der in records:
            if record_der == der:
                self.how = (
                    f"the CAPF certificate {named} is the CAPF record of the installed {kind}"
                )
                return None
        if records:
            kinds = " and ".join(sorted({kind for kind, _ in records}))
            return f"the CAPF certificate {named} is not the CAPF record of the installed {kinds}"
        # Item 20: CAPF is not in the lists, so TVS decides (and fails closed, item 24).
        outcome = self.tvs(cucm_name(certificate.issuer), serial_bytes(certificate.serial_number))
        if not outcome.valid:
            return (
                f"no CAPF record in the installed lists and TVS did not vouch for {named}: "
                f"{outcome.reason}"
            )
        if Role.CAPF not in outcome.roles:
            return f"TVS knows {named} but not as CAPF (roles {sorted(outcome.roles)})"
        vouched = outcome.certificate
        if vouched is None or vouched.public_bytes(Encoding.DER) != der:
            return f"TVS vouched for another certificate than the one CAPF presented ({named})"
        self.how = f"no CAPF record in the installed lists; {outcome.reason} for {named} as CAPF"
        return None


# --- proofs --------------------------------------------------------------------------------------


def sign_proof(key: PrivateKey, device_name: str, certificate_der: bytes) -> tuple[bytes, bytes]:
    """Sign ``device name + NUL + certificate DER`` with SHA-1 and SHA-512 (section 9b).

    Raises:
        TypeError: ``key`` is neither RSA nor EC.
    """
    data = device_name.encode("ascii") + b"\0" + certificate_der
    if isinstance(key, rsa.RSAPrivateKey):
        return (
            key.sign(data, padding.PKCS1v15(), hashes.SHA1()),
            key.sign(data, padding.PKCS1v15(), hashes.SHA512()),
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return (
            key.sign(data, ec.ECDSA(hashes.SHA1())),
            key.sign(data, ec.ECDSA(hashes.SHA512())),
        )
    raise TypeError(f"cannot sign with a {type(key).__name__}")


# --- the client session --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapfClientOutcome:
    """How a CAPF session ended, from the phone's side.

    ``ok`` is the server's verdict in END_SESSION; ``reason`` its words (or the phone's own,
    when the phone ended the session); ``actions`` what the phone did on the way.
    """

    ok: bool
    reason: str
    actions: tuple[str, ...]
    stored: Identity | None = None
    deleted: bool = False
    no_action: bool = False


@dataclass
class CapfClient:
    """The phone's side of one CAPF session (module docstring).

    Feed every server frame to :meth:`receive` and send back what it returns, until
    :attr:`finished`. ``store`` is called with the new LSC (certificate and key) before the
    phone reports it stored; ``delete`` removes the LSC and says whether there was one.

    Raises (from :meth:`receive`):
        ProtocolError: a frame the phone cannot take in this session.
    """

    device_name: str
    auth: AuthType
    mic: Identity
    lsc: Identity | None
    keys: KeySource
    trust: CapfServerTrust
    store: Callable[[Identity], None]
    delete: Callable[[], bool]
    now: datetime
    secret: str | None = None
    ec_allowed: bool = False
    outcome: CapfClientOutcome | None = None
    _session: int | None = None
    _key: PrivateKey | None = None
    _stored: Identity | None = None
    _deleted: bool = False
    _actions: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """True once the server ended the session."""
        return self.outcome is not None

    def receive(self, frame: Frame) -> list[Frame]:
        """Answer one server frame."""
        if self.finished:
            raise ProtocolError(f"CAPF {frame.command.name} after the session ended")
        if self._session is None:
            if frame.command is not Command.AUTH_REQ:
                raise ProtocolError(f"CAPF session opened with {frame.command.name}, not AUTH_REQ")
            self._session = frame.session  # section 9b: the server chooses the session id
        elif frame.session != self._session:
            raise ProtocolError(f"CAPF session id changed from {self._session} to {frame.session}")
        handler = {
            Command.AUTH_REQ: self._on_auth,
            Command.KEYGEN_REQ: self._on_keygen,
            Command.STORE_CERT_REQ: self._on_store,
            Command.FETCH_CERT_REQ: self._on_fetch,
            Command.DELETE_CERT_REQ: self._on_delete,
            Command.END_SESSION: self._on_end,
            Command.RETRY_LATER: self._on_retry,
        }.get(frame.command)
        if handler is None:
            raise ProtocolError(f"the phone does not take CAPF {frame.command.name}")
        return handler(frame)

    # --- handlers ------------------------------------------------------------------------------

    def _on_auth(self, frame: Frame) -> list[Frame]:
        if self._key is not None or self._actions:
            raise ProtocolError("CAPF AUTH_REQ repeated within a session")
        elements: list[tuple[int, bytes]] = [
            u8_element(Tag.VERSION, VERSION),
            cstring_element(Tag.DEVICE_NAME, self.device_name),
            u8_element(Tag.AUTH_TYPE, self.auth),
        ]
        if self.auth is AuthType.PASSWORD:
            elements.append(cstring_element(Tag.PASSWORD, self.secret or ""))
            self._actions.append("authenticated with the authentication string")
        elif self.auth is AuthType.NO_PASSWORD:
            self._actions.append("authenticated with the null string")
        elif self.auth in (AuthType.LSC, AuthType.MIC):
            kind, identity = self._proof_identity()
            der = identity.certificate.public_bytes(Encoding.DER)
            sha1_signature, sha512_signature = sign_proof(identity.key, self.device_name, der)
            elements += [
                certificate_element(kind, der),
                (Tag.SIGNED_DATA, sha1_signature),
                sha2_signed_element(sha512_signature, SHA512_CODE),
            ]
            self._actions.append(
                f"authenticated with its {kind.name} (serial "
                f"{serial_bytes(identity.certificate.serial_number).hex()})"
            )
        return [self._frame(Command.AUTH_RESP, *elements)]

    def _proof_identity(self) -> tuple[CertType, Identity]:
        # "By existing certificate": the preferred certificate if the phone has it, else the
        # other one. Every phone has a MIC, so MIC precedence always uses the MIC.
        if self.auth is AuthType.LSC and self.lsc is not None:
            return CertType.LSC, self.lsc
        return CertType.MIC, self.mic

    def _on_keygen(self, frame: Frame) -> list[Frame]:
        key_type = frame.u8(Tag.KEY_TYPE)
        refusal: str | None = None
        key: PrivateKey | None = None
        if key_type == KeyType.RSA:
            size = frame.u16(Tag.KEY_SIZE) or 2048
            if size != 2048:
                refusal = f"the phone generates RSA-2048 keys, not RSA-{size}"
            else:
                key = self.keys.rsa(2048)
                self._actions.append("generated an RSA-2048 key")
        elif key_type == KeyType.EC:
            curve = frame.u8(Tag.CURVE)
            if curve not in (None, Curve.P256):
                refusal = f"the phone generates EC P-256 keys, not curve {curve}"
            elif not self.ec_allowed:
                refusal = (
                    "EC keys need an ITL with signer version 1.1 (trust-file-formats.md "
                    "section 5); the installed ITL has none"
                )
            else:
                key = ec.generate_private_key(ec.SECP256R1())
                self._actions.append("generated an EC P-256 key")
        else:
            refusal = f"unknown key type {key_type}"
        if key is None:
            assert refusal is not None
            self._actions.append(f"refused to generate a key: {refusal}")
            return [
                self._frame(
                    Command.KEYGEN_RESP, u8_element(Tag.REASON, Reason.INVALID), _info(refusal)
                )
            ]
        self._key = key
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return [
            self._frame(
                Command.KEYGEN_RESP, u8_element(Tag.REASON, Reason.OK), (Tag.PUBLIC_KEY, spki)
            )
        ]

    def _on_store(self, frame: Frame) -> list[Frame]:
        presented = frame.certificate()
        if presented is None or presented[0] is not CertType.LSC:
            raise ProtocolError("CAPF STORE_CERT_REQ without an LSC")
        problem = self._lsc_problem(presented[1])
        if problem is not None:
            self._actions.append(f"refused the LSC: {problem}")
            return [
                self._frame(
                    Command.STORE_CERT_RESP, u8_element(Tag.REASON, Reason.INVALID), _info(problem)
                )
            ]
        assert self._key is not None  # _lsc_problem checked it
        identity = Identity(x509.load_der_x509_certificate(presented[1]), self._key)
        self.store(identity)
        self._stored = identity
        self._actions.append(
            f"stored LSC serial {serial_bytes(identity.certificate.serial_number).hex()} "
            f"(expires {identity.certificate.not_valid_after_utc:%Y-%m-%d})"
        )
        return [self._frame(Command.STORE_CERT_RESP, u8_element(Tag.REASON, Reason.OK))]

    def _lsc_problem(self, der: bytes) -> str | None:
        if self._key is None:
            return "no key was generated in this session"
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            return "the LSC does not parse"
        if certificate.public_key() != self._key.public_key():
            return "the LSC is not for the key the phone generated"
        names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if cn.upper() != self.device_name.upper():
            return f"the LSC names {cn!r}, not {self.device_name}"
        now = self.now.astimezone(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return "the LSC is not valid now"
        server = self.trust.certificate
        if server is None or certificate.issuer != server.subject:
            return "the LSC was not issued by the CAPF server the phone trusted"
        if not _signed_by(certificate, server):
            return "the LSC's signature does not verify with the CAPF server's key"
        return None

    def _on_fetch(self, frame: Frame) -> list[Frame]:
        kind = frame.u8(Tag.CERTIFICATE_TYPE)
        identity = self.mic if kind == CertType.MIC else self.lsc if kind == CertType.LSC else None
        if identity is None:
            label = "LSC" if kind == CertType.LSC else f"certificate type {kind}"
            self._actions.append(f"has no {label} to send")
            return [
                self._frame(
                    Command.FETCH_CERT_RESP,
                    u8_element(Tag.REASON, Reason.INVALID),
                    _info(f"no {label} installed"),
                )
            ]
        cert_type = CertType(kind) if kind is not None else CertType.MIC
        self._actions.append(f"sent its {cert_type.name}")
        return [
            self._frame(
                Command.FETCH_CERT_RESP,
                u8_element(Tag.REASON, Reason.OK),
                certificate_element(cert_type, identity.certificate.public_bytes(Encoding.DER)),
            )
        ]

    def _on_delete(self, frame: Frame) -> list[Frame]:
        kind = frame.u8(Tag.CERTIFICATE_TYPE)
        if kind not in (None, CertType.LSC):
            # The MIC is the manufacturer's: CAPF can only delete what it issued.
            self._actions.append("refused to delete its MIC")
            return [
                self._frame(
                    Command.DELETE_CERT_RESP,
                    u8_element(Tag.REASON, Reason.INVALID),
                    _info("the MIC cannot be deleted"),
                )
            ]
        had = self.delete()
        self._deleted = True
        self._actions.append("deleted its LSC" if had else "had no LSC to delete")
        return [self._frame(Command.DELETE_CERT_RESP, u8_element(Tag.REASON, Reason.OK))]

    def _on_end(self, frame: Frame) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        info = frame.text(Tag.REASON_INFO) or ""
        self.outcome = CapfClientOutcome(
            ok=reason == Reason.OK,
            reason=info or f"reason {reason}",
            actions=tuple(self._actions),
            stored=self._stored,
            deleted=self._deleted,
            no_action=reason == Reason.NO_ACTION,
        )
        return []

    def _on_retry(self, frame: Frame) -> list[Frame]:
        delay = frame.raw(Tag.RETRY_DELAY)
        when = f" in {int.from_bytes(delay, 'big')} s" if delay else ""
        self.outcome = CapfClientOutcome(
            False, f"CAPF asked the phone to retry later{when}", tuple(self._actions)
        )
        return []

    def _frame(self, command: Command, *elements: tuple[int, bytes]) -> Frame:
        assert self._session is not None
        return Frame(command, self._session, elements)


def _info(text: str) -> tuple[int, bytes]:
    return (Tag.REASON_INFO, text.encode("ascii", errors="replace")[:1000] + b"\0")


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                certificate.signature,
                certificate.tbs_certificate_bytes,
                padding.PKCS1v15(),
                algorithm,
            )
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(
                certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm)
            )
            return True
    except InvalidSignature:
        return False
    return False

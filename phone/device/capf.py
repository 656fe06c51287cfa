"""The phone's side of CAPF: whether to run a certificate operation, whom to trust, and the
client session as capfc speaks it (tvs-capf-wire.md section 2.8; phone-behaviour item 20).

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
  (null string, authentication string, or its LSC/MIC with the precedence asked), never sending
  an AUTH_TYPE (the server's element; capfd rejects it from a phone), generates the key CAPF
  asks for (EC only when the installed ITL has signer version 1.1, section 5 note), checks the
  LSC it is given (its key, its name, issued by the CAPF server it trusted) and hands it to
  ``store``; ``delete`` removes the LSC.
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
    proof_data,
    sha2_signed_element,
    sudi_data,
    sudi_element,
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
        # The phone holds the CAPF certificate: VERIFY, as tvsd implements it (wire 1.3).
        outcome = self.tvs(
            cucm_name(certificate.issuer), serial_bytes(certificate.serial_number), certificate
        )
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
    """Sign ``device name + NUL + certificate DER`` with SHA-1 and SHA-512 (wire 2.6).

    Raises:
        TypeError: ``key`` is neither RSA nor EC.
    """
    return sign_both(key, proof_data(device_name, certificate_der))


def sign_both(key: PrivateKey, data: bytes) -> tuple[bytes, bytes]:
    """``data`` signed with SHA-1 and with SHA-512, in CAPF's form (wire 2.6).

    RSA: a PKCS#1 v1.5 type-1 block over the *bare* digest (no DigestInfo), as the transcripts
    show (``0001 ff..ff 00 <digest>``); EC: ECDSA, DER-encoded.

    Raises:
        TypeError: ``key`` is neither RSA nor EC.
    """
    if isinstance(key, rsa.RSAPrivateKey):
        return (
            _rsa_sign_digest(key, _digest(hashes.SHA1(), data)),
            _rsa_sign_digest(key, _digest(hashes.SHA512(), data)),
        )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return (
            key.sign(data, ec.ECDSA(hashes.SHA1())),
            key.sign(data, ec.ECDSA(hashes.SHA512())),
        )
    raise TypeError(f"cannot sign with a {type(key).__name__}")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _rsa_sign_digest(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    # The library signs only with a DigestInfo; CAPF's block has none, so the private-key
    # operation is done here (with the CRT, about four times faster than one big pow).
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    size = (n.bit_length() + 7) // 8
    block = b"\x00\x01" + b"\xff" * (size - 3 - len(digest)) + b"\x00" + digest
    m = int.from_bytes(block, "big")
    s1 = pow(m, numbers.dmp1, numbers.p)
    s2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (s1 - s2)) % numbers.p
    return (s2 + h * numbers.q).to_bytes(size, "big")


_RSA_SIZES = (512, 1024, 2048, 3072, 4096)  # what capfc accepts (wire 2.8)
_CURVES: dict[int, tuple[ec.EllipticCurve, str]] = {
    Curve.P256: (ec.SECP256R1(), "P-256"),
    Curve.P384: (ec.SECP384R1(), "P-384"),
    Curve.P521: (ec.SECP521R1(), "P-521"),
}
_END_REASONS: dict[int | None, str] = {
    Reason.NO_ACTION: "CAPF had nothing to do (reason 0)",
    Reason.OK: "CAPF completed the operation (reason 1)",
    Reason.INVALID: "CAPF refused the session (reason 7)",
    Reason.UNKNOWN_DEVICE: "CAPF does not know this device (reason 9)",
}

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
            raise ProtocolError("CAPF AUTH_REQUEST repeated within a session")
        version = frame.u8(Tag.VERSION)
        if version != VERSION:
            # capfc requires VERSION 3 in AUTH_REQUEST (wire 2.8); so does the phone.
            raise ProtocolError(f"CAPF AUTH_REQUEST with VERSION {version}, not {VERSION}")
        # The server's AUTH_TYPE (capfd always sends 0) is not read: the config's capfAuthMode
        # says how to authenticate. capfc's element order (wire 2.4): REASON, CERTIFICATE,
        # SIGNED_DATA, VERSION, PASSWORD, DEVICE_NAME, SUDI_DATA, SHA2_SIGNED_DATA.
        head: list[tuple[int, bytes]] = [u8_element(Tag.REASON, Reason.OK)]
        proof: list[tuple[int, bytes]] = []
        tail: list[tuple[int, bytes]] = []
        password = ""
        if self.auth is AuthType.PASSWORD:
            password = self.secret or ""
            self._actions.append("authenticated with the authentication string")
        elif self.auth is AuthType.NO_PASSWORD:
            self._actions.append("authenticated with the null string")
        elif self.auth in (AuthType.LSC, AuthType.MIC):
            kind, identity = self._proof_identity()
            der = identity.certificate.public_bytes(Encoding.DER)
            sha1_signature, sha512_signature = sign_proof(identity.key, self.device_name, der)
            # The wrapper's type byte is 01 even for a MIC, as capfc writes it (wire 2.4).
            proof = [certificate_element(CertType.LSC, der), (Tag.SIGNED_DATA, sha1_signature)]
            # SUDI data: the MIC stands in for the phone's SUDI certificate, signing the
            # session id (little-endian) + its DER, as capfc sends it with every certificate
            # authentication.
            mic_der = self.mic.certificate.public_bytes(Encoding.DER)
            sudi_sha1, sudi_sha512 = sign_both(self.mic.key, sudi_data(frame.session, mic_der))
            tail = [
                sudi_element(mic_der, sudi_sha1, sudi_sha512),
                sha2_signed_element(sha512_signature, SHA512_CODE),
            ]
            self._actions.append(
                f"authenticated with its {kind.name} (serial "
                f"{serial_bytes(identity.certificate.serial_number).hex()})"
            )
        elements = [
            *head,
            *proof,
            u8_element(Tag.VERSION, version),
            # Always present: the text + NUL, or the single NUL of "no password" (wire 2.4).
            cstring_element(Tag.PASSWORD, password),
            cstring_element(Tag.DEVICE_NAME, self.device_name),
        ]
        if tail:
            elements += tail
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
            if size not in _RSA_SIZES:
                refusal = f"the phone does not generate RSA-{size} keys"
            else:
                key = self.keys.rsa(size)
                self._actions.append(f"generated an RSA-{size} key")
        elif key_type == KeyType.EC:
            curve = frame.u8(Tag.CURVE)
            if curve not in _CURVES:
                refusal = f"unknown curve {curve}"
            elif not self.ec_allowed:
                refusal = (
                    "EC keys need an ITL with signer version 1.1 (trust-file-formats.md "
                    "section 5); the installed ITL has none"
                )
            else:
                key = ec.generate_private_key(_CURVES[curve][0])
                self._actions.append(f"generated an EC {_CURVES[curve][1]} key")
        else:
            refusal = f"unknown key type {key_type}"
        if key is None:
            assert refusal is not None
            self._actions.append(f"refused to generate a key: {refusal}")
            # A phone that cannot make the key answers REASON 7 alone (capf-raw-minimal-auth).
            return [self._frame(Command.KEYGEN_RESP, u8_element(Tag.REASON, Reason.INVALID))]
        self._key = key
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        # REQUEST_IN_PROGRESS (empty) first, then the key alone, as capfc does (wire 2.7).
        return [
            self._frame(Command.REQUEST_IN_PROGRESS),
            self._frame(Command.KEYGEN_RESP, (Tag.PUBLIC_KEY, spki)),
        ]

    def _on_store(self, frame: Frame) -> list[Frame]:
        # The certificate type (element 3 and the wrapper byte) is not checked, as capfc does not.
        presented = frame.certificate()
        if presented is None:
            raise ProtocolError("CAPF STORE_CERTIFICATE_REQUEST without a certificate")
        problem = self._lsc_problem(presented[1])
        if problem is not None:
            self._actions.append(f"refused the LSC: {problem}")
            return [self._frame(Command.STORE_CERT_RESP, u8_element(Tag.REASON, Reason.INVALID))]
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
        # capfd's request is empty and means the LSC (wire 2.7); a CERTIFICATE_TYPE 2 asks for
        # the MIC, which no public server sends [G].
        kind = frame.u8(Tag.CERTIFICATE_TYPE)
        cert_type = CertType.MIC if kind == CertType.MIC else CertType.LSC
        identity = self.mic if cert_type is CertType.MIC else self.lsc
        if identity is None:
            self._actions.append(f"has no {cert_type.name} to send")
            return [self._frame(Command.FETCH_CERT_RESP, u8_element(Tag.REASON, Reason.INVALID))]
        self._actions.append(f"sent its {cert_type.name}")
        return [
            self._frame(
                Command.FETCH_CERT_RESP,
                u8_element(Tag.REASON, Reason.OK),
                certificate_element(CertType.LSC, identity.certificate.public_bytes(Encoding.DER)),
            )
        ]

    def _on_delete(self, frame: Frame) -> list[Frame]:
        kind = frame.u8(Tag.CERTIFICATE_TYPE)
        if kind == CertType.MIC:
            # The MIC is the manufacturer's: CAPF can only delete what it issued [G].
            self._actions.append("refused to delete its MIC")
            return [self._frame(Command.DELETE_CERT_RESP, u8_element(Tag.REASON, Reason.INVALID))]
        had = self.delete()
        self._deleted = True
        self._actions.append("deleted its LSC" if had else "had no LSC to delete")
        # REASON 1, or 7 when there was nothing to delete (capf-delete-no-certificate).
        code = Reason.OK if had else Reason.INVALID
        return [self._frame(Command.DELETE_CERT_RESP, u8_element(Tag.REASON, code))]

    def _on_end(self, frame: Frame) -> list[Frame]:
        reason = frame.u8(Tag.REASON)
        info = frame.text(Tag.REASON_INFO)
        # capfd's reasons (wire 2.5): 1 done (install, delete), 0 nothing to do, or done after
        # a fetch; 7 refused; 9 unknown device. Only the operations the phone carried out tell
        # "nothing to do" from "fetched".
        worked = bool(self._actions[1:])
        ok = reason == Reason.OK or (reason == Reason.NO_ACTION and worked)
        self.outcome = CapfClientOutcome(
            ok=ok,
            reason=info or _END_REASONS.get(reason, f"CAPF ended with reason {reason}"),
            actions=tuple(self._actions),
            stored=self._stored,
            deleted=self._deleted,
            no_action=reason == Reason.NO_ACTION and not worked,
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

"""CAPF sessions without a phone or sockets: the cluster's server (phone/cluster/capf.py) against
the phone's client logic (phone/device/capf.py), over the in-memory backend.

Every operation and authentication mode, with their failures (trust-file-formats.md section 9b;
the session order is vphone's emulation, docs/capf.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from clusterlab import NOW, file_service, make_lab, phone_mic
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)
from keypool import pooled_keys

from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation, CapfPending
from phone.cluster.cluster import Cluster
from phone.cluster.files import ClientInfo
from phone.cluster.lab import Lab
from phone.cluster.records import Device, TrustStore
from phone.device.capf import (
    CapfClient,
    CapfServerTrust,
    ec_keys_allowed,
    pending_auth,
    sign_proof,
)
from phone.device.port import Requester
from phone.errors import LabError, ProtocolError
from phone.formats import Signer
from phone.formats.configxml import DeviceConfig, parse_config
from phone.formats.trustlist import Role, TrustList, build_trust_list, record_from_certificate
from phone.net.memory import MemoryBackend
from phone.pki import Identity, issue, make_ca, self_signed
from phone.trust.lists import parse_shared
from phone.trust.tvs import TvsOutcome
from phone.vendor import manufacturing_ca
from phone.wire.capf import (
    AuthType,
    CertType,
    Command,
    Frame,
    KeyType,
    Reason,
    Tag,
    certificate_element,
    cstring_element,
    sha2_signed_element,
    u8_element,
    u16_element,
)

MAC = "001122334455"
NAME = f"SEP{MAC}"


def ec_mic(mac: str = MAC, family: str = "88xx") -> Identity:
    """A MIC as vphone phones carry it: EC P-256, issued by the emulated manufacturing CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(manufacturing_ca(family), f"CP-8841-SEP{mac}", key.public_key(), now=NOW)
    return Identity(cert, key)


@pytest.fixture
def lab() -> Lab:
    lab = make_lab()
    lab.cluster().add_device(Device(MAC), now=NOW)
    return lab


def cluster_of(lab: Lab) -> Cluster:
    return lab.cluster()


def itl_of(cluster: Cluster) -> TrustList:
    data = cluster.itl_file(cluster.tftp_hosts[0])
    assert data is not None
    return parse_shared(data)


def no_tvs(issuer: str, serial: bytes, certificate: object = None) -> TvsOutcome:
    raise AssertionError(f"TVS must not be asked here ({issuer}, {serial.hex()})")


@dataclass
class Phone:
    """What the client session needs of a phone: its certificates and a flash of one LSC."""

    mic: Identity = field(default_factory=ec_mic)
    lsc: Identity | None = None
    stores: int = 0

    def store(self, identity: Identity) -> None:
        self.lsc = identity
        self.stores += 1

    def delete(self) -> bool:
        had = self.lsc is not None
        self.lsc = None
        return had


def client(
    phone: Phone,
    auth: AuthType,
    trust: CapfServerTrust,
    *,
    secret: str | None = None,
    ec_allowed: bool = False,
    name: str = NAME,
) -> CapfClient:
    return CapfClient(
        device_name=name,
        auth=auth,
        mic=phone.mic,
        lsc=phone.lsc,
        keys=pooled_keys(),
        trust=trust,
        store=phone.store,
        delete=phone.delete,
        now=NOW,
        secret=secret,
        ec_allowed=ec_allowed,
    )


def run(
    lab: Lab,
    phone: Phone,
    auth: AuthType,
    *,
    secret: str | None = None,
    ec_allowed: bool = False,
    name: str = NAME,
) -> CapfClient:
    """One CAPF session through the in-memory backend (frames go through the codec)."""
    cluster = cluster_of(lab)
    trust = CapfServerTrust(None, itl_of(cluster), no_tvs)
    session = client(phone, auth, trust, secret=secret, ec_allowed=ec_allowed, name=name)
    MemoryBackend(lab, clock=lambda: NOW).capf_exchange(
        cluster.publisher.hostname, 3804, session, trust, requester=Requester(MAC, "8841")
    )
    assert session.finished
    return session


def pending(lab: Lab, operation: CapfOperation, auth: CapfAuth, **kw: object) -> CapfPending:
    return capf.set_pending(cluster_of(lab), MAC, operation, auth, now=NOW, **kw)  # type: ignore[arg-type]


def device(lab: Lab) -> Device:
    found = cluster_of(lab).device(MAC)
    assert found is not None
    return found


def why(lab: Lab) -> str:
    """The server's words for the last session: the device's CAPF outcome, else the service
    log (the phone hears only capfd's reason code, tvs-capf-wire.md 2.5)."""
    result = device(lab).capf_result
    log = " | ".join(e.message for e in cluster_of(lab).log if e.service == "CAPF")
    return (result.reason if result is not None else "") + " | " + log


def config(lab: Lab) -> DeviceConfig:
    cluster = cluster_of(lab)
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    data = service.get(f"{NAME}.cnf.xml", ClientInfo("127.0.0.1"))
    assert data is not None
    return parse_config(data)


# --- install, by each authentication mode --------------------------------------------------------


def test_install_by_null_string_issues_an_lsc_the_phone_stores(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    assert config(lab).capf_auth_mode == AuthType.NO_PASSWORD  # the config announces it
    phone = Phone()
    session = run(lab, phone, AuthType.NO_PASSWORD)
    assert session.outcome is not None and session.outcome.ok
    assert phone.lsc is not None and phone.stores == 1
    lsc = phone.lsc.certificate
    cluster = cluster_of(lab)
    assert lsc.issuer == cluster.capf.certificate.subject
    assert lsc.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == NAME
    assert isinstance(lsc.public_key(), rsa.RSAPublicKey)
    record = device(lab)
    assert record.certificate == lsc  # encrypted configs are now encrypted to it
    assert record.capf is None and record.capf_result is not None and record.capf_result.ok
    assert config(lab).capf_auth_mode == 0  # nothing pending: the phone stops asking
    assert any("install succeeded" in e.message for e in cluster.log)


def test_install_by_authentication_string(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.STRING, secret="246810")
    assert config(lab).capf_auth_mode == AuthType.PASSWORD
    phone = Phone()
    session = run(lab, phone, AuthType.PASSWORD, secret="246810")
    assert session.outcome is not None and session.outcome.ok and phone.lsc is not None
    assert "authenticated with the authentication string" in session.outcome.actions


def test_wrong_authentication_string_fails_and_keeps_the_operation_pending(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.STRING, secret="246810")
    phone = Phone()
    session = run(lab, phone, AuthType.PASSWORD, secret="246811")
    assert session.outcome is not None and not session.outcome.ok
    assert "wrong authentication string" in why(lab)
    assert phone.lsc is None and phone.stores == 0
    record = device(lab)
    assert record.capf is not None  # still pending: the phone tries again at its next boot
    assert record.certificate is None
    assert record.capf_result is not None and not record.capf_result.ok
    assert "wrong authentication string" in record.capf_result.reason
    # The right string at the next attempt works.
    assert run(lab, phone, AuthType.PASSWORD, secret="246810").outcome.ok  # type: ignore[union-attr]


def test_phone_using_another_mode_than_the_operation_fails(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.STRING, secret="1234")
    session = run(lab, Phone(), AuthType.NO_PASSWORD)
    assert session.outcome is not None and not session.outcome.ok
    assert "wrong authentication string" in why(lab)  # a NUL password: the phone sends no type


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_install_by_mic(lab: Lab, kind: str) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    phone = Phone(mic=ec_mic() if kind == "ec" else phone_mic(MAC))
    session = run(lab, phone, AuthType.MIC)
    assert session.outcome is not None and session.outcome.ok, session.outcome
    assert any(a.startswith("authenticated with its MIC") for a in session.outcome.actions)
    assert phone.lsc is not None


def test_mic_from_an_untrusted_ca_is_refused(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    rogue_ca = make_ca(
        "Rogue Manufacturing CA", now=NOW, key=ec.generate_private_key(ec.SECP256R1())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    rogue = Identity(issue(rogue_ca, f"CP-8841-{NAME}", key.public_key(), now=NOW), key)
    phone = Phone(mic=rogue)
    session = run(lab, phone, AuthType.MIC)
    assert session.outcome is not None and not session.outcome.ok
    assert "not issued by a certificate in the CAPF-trust store" in why(lab)
    assert phone.lsc is None and device(lab).capf is not None


def test_mic_of_a_family_whose_ca_left_capf_trust_is_refused(lab: Lab) -> None:
    cluster = cluster_of(lab)
    ca = manufacturing_ca("88xx").certificate
    assert cluster.remove_trusted(TrustStore.CAPF, ca.fingerprint(hashes.SHA256()).hex(), now=NOW)
    pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    session = run(lab, Phone(), AuthType.MIC)
    assert session.outcome is not None and not session.outcome.ok
    assert "CAPF-trust" in why(lab)


def test_mic_naming_another_device_is_refused(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    session = run(lab, Phone(mic=ec_mic("AABBCCDDEEFF")), AuthType.MIC)
    assert session.outcome is not None and not session.outcome.ok
    assert "names 'CP-8841-SEPAABBCCDDEEFF', not SEP001122334455" in why(lab)


def test_lsc_precedence_uses_the_lsc_when_the_phone_has_one(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    phone = Phone()
    run(lab, phone, AuthType.NO_PASSWORD)
    first = phone.lsc
    assert first is not None
    pending(lab, CapfOperation.INSTALL, CapfAuth.LSC)
    session = run(lab, phone, AuthType.LSC)
    assert session.outcome is not None and session.outcome.ok
    assert any(a.startswith("authenticated with its LSC") for a in session.outcome.actions)
    assert phone.lsc is not None and phone.lsc.certificate != first.certificate


def test_lsc_precedence_falls_back_to_the_mic(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.LSC)
    session = run(lab, Phone(), AuthType.LSC)
    assert session.outcome is not None and session.outcome.ok
    assert any(a.startswith("authenticated with its MIC") for a in session.outcome.actions)


def test_lsc_from_another_cluster_does_not_authenticate(lab: Lab) -> None:
    other = make_lab()
    other.cluster().add_device(Device(MAC), now=NOW)
    capf.set_pending(other.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = Phone()
    run(other, phone, AuthType.NO_PASSWORD)
    assert phone.lsc is not None
    pending(lab, CapfOperation.INSTALL, CapfAuth.LSC)
    session = run(lab, phone, AuthType.LSC)
    assert session.outcome is not None and not session.outcome.ok
    assert "LSC" in why(lab) and "CAPF-trust" in why(lab)


# --- upgrade, delete, troubleshoot ---------------------------------------------------------------


def test_upgrade_replaces_the_lsc(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    phone = Phone()
    run(lab, phone, AuthType.NO_PASSWORD)
    old = phone.lsc
    pending(lab, CapfOperation.UPGRADE, CapfAuth.LSC)
    session = run(lab, phone, AuthType.LSC)
    assert session.outcome is not None and session.outcome.ok
    assert phone.lsc is not None and old is not None
    assert phone.lsc.certificate.serial_number != old.certificate.serial_number
    assert device(lab).certificate == phone.lsc.certificate
    assert device(lab).capf_result.operation is CapfOperation.UPGRADE  # type: ignore[union-attr]


def test_upgrade_without_an_lsc_fails(lab: Lab) -> None:
    pending(lab, CapfOperation.UPGRADE, CapfAuth.NULL)
    phone = Phone()
    session = run(lab, phone, AuthType.NO_PASSWORD)
    assert session.outcome is not None and not session.outcome.ok
    assert "upgrade needs an installed LSC" in why(lab)
    assert phone.lsc is None


def test_delete_removes_the_lsc_and_capf_forgets_it(lab: Lab) -> None:
    cluster = cluster_of(lab)
    cluster.update_device(MAC, now=NOW, encrypt_config=True)
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    phone = Phone()
    run(lab, phone, AuthType.NO_PASSWORD)
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None and service.get(f"{NAME}.cnf.xml.enc.sgn") is not None
    pending(lab, CapfOperation.DELETE, CapfAuth.MIC)
    session = run(lab, phone, AuthType.MIC)
    assert session.outcome is not None and session.outcome.ok and session.outcome.deleted
    assert phone.lsc is None
    assert device(lab).certificate is None
    assert service.get(f"{NAME}.cnf.xml.enc.sgn") is None  # nothing to encrypt to any more


def test_troubleshoot_records_what_the_phone_holds(lab: Lab) -> None:
    pending(lab, CapfOperation.TROUBLESHOOT, CapfAuth.NULL)
    phone = Phone()
    session = run(lab, phone, AuthType.NO_PASSWORD)
    assert session.outcome is not None and session.outcome.ok
    result = device(lab).capf_result
    assert result is not None and result.ok
    # One empty FETCH, as capfd's (tvs-capf-wire.md 2.7): the phone has no LSC.
    assert result.certificates == ("LSC: none",)
    assert device(lab).certificate is None  # troubleshooting changes nothing


# --- key types ------------------------------------------------------------------------------------


def test_ec_key_needs_an_itl_with_signer_version_1_1(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL, key_type=CapfKeyType.EC_P256)
    refused = run(lab, Phone(), AuthType.NO_PASSWORD, ec_allowed=False)
    assert refused.outcome is not None and not refused.outcome.ok
    assert any("signer version 1.1" in a for a in refused.outcome.actions)
    phone = Phone()
    allowed = run(lab, phone, AuthType.NO_PASSWORD, ec_allowed=True)
    assert allowed.outcome is not None and allowed.outcome.ok
    assert phone.lsc is not None
    assert isinstance(phone.lsc.certificate.public_key(), ec.EllipticCurvePublicKey)


def test_ec_keys_allowed_reads_the_itl_signer_version() -> None:
    ident = self_signed("ITLRECOVERY", now=NOW, key=pooled_keys().rsa(2048))
    assert isinstance(ident.key, rsa.RSAPrivateKey)
    signer = Signer(ident.certificate, ident.key)
    records = [record_from_certificate(ident.certificate, Role.SAST)]
    stamp = int(NOW.timestamp())
    assert not ec_keys_allowed(None)
    assert not ec_keys_allowed(build_trust_list(records, signer, timestamp=stamp))
    for version, allowed in (((1, 0), False), ((1, 1), True), ((1, 2), True)):
        itl = build_trust_list(records, signer, timestamp=stamp, signer_version=version)
        assert ec_keys_allowed(itl) is allowed


# --- no operation, unknown device -----------------------------------------------------------------


def test_no_pending_operation_ends_with_no_action(lab: Lab) -> None:
    session = run(lab, Phone(), AuthType.NO_PASSWORD)
    assert session.outcome is not None and session.outcome.no_action
    assert device(lab).capf_result is None  # nothing happened, nothing recorded


def test_unknown_device_is_told_so(lab: Lab) -> None:
    session = run(lab, Phone(), AuthType.NO_PASSWORD, name="SEPFFFFFFFFFFFF")
    assert session.outcome is not None and not session.outcome.ok
    assert "not a device of this cluster" in why(lab)


# --- the server's strictness, frame by frame ------------------------------------------------------


def _open(lab: Lab) -> tuple[capf.CapfSession, int]:
    service = lab.capf_service(cluster_of(lab).publisher.hostname)
    assert service is not None
    session = service.open(now=NOW)
    (auth_req,) = session.start()
    assert auth_req.command is Command.AUTH_REQ and auth_req.u8(Tag.VERSION) == 3
    return session, auth_req.session


def _auth(session_id: int, *extra: tuple[int, bytes], name: str = NAME) -> Frame:
    return Frame(
        Command.AUTH_RESP,
        session_id,
        (cstring_element(Tag.DEVICE_NAME, name), u8_element(Tag.VERSION, 3), *extra),
    )


def test_session_ids_are_chosen_by_the_server_and_increase_per_connection(lab: Lab) -> None:
    service = lab.capf_service(cluster_of(lab).publisher.hostname)
    assert service is not None
    ids = [service.open(now=NOW).session_id for _ in range(3)]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert lab.capf_service(cluster_of(lab).tftp_hosts[0]) is service
    other = make_lab().cluster()
    assert lab.capf_service(other.publisher.hostname) is None or other.name == "cluster1"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda s: Frame(Command.KEYGEN_RESP, s), "KEYGEN_RESP while waiting for AUTH_RESP"),
        (lambda s: _auth(s + 1), "does not match this session"),
        (lambda s: Frame(Command.AUTH_RESP, s, (u8_element(Tag.VERSION, 3),)), "without a device"),
        (lambda s: _auth(s, u8_element(Tag.VERSION, 3)), "repeated"),
        (
            lambda s: Frame(Command.AUTH_RESP, s, (cstring_element(Tag.DEVICE_NAME, NAME),)),
            "VERSION None",
        ),
    ],
)
def test_protocol_violations_end_the_session_with_reason_7_and_record_nothing(
    lab: Lab, make: Callable[[int], Frame], match: str
) -> None:
    # tvs-capf-wire.md 2.7: every protocol error is answered END_SESSION{REASON 7}.
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    (end,) = session.receive(make(sid))
    assert end.command is Command.END_SESSION and end.session == sid
    assert end.elements == ((1, b"\x07"),)
    assert session.finished and session.dropped
    assert match in (session.problem or "")
    assert device(lab).capf_result is None and device(lab).capf is not None
    assert "dropped" in cluster_of(lab).log[-1].message


def test_keygen_answer_with_the_wrong_key_fails_the_operation(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    (keygen,) = session.receive(_auth(sid))
    assert keygen.command is Command.KEYGEN_REQ
    assert keygen.u8(Tag.KEY_TYPE) == KeyType.RSA and keygen.u16(Tag.KEY_SIZE) == 2048
    small = (
        pooled_keys()
        .rsa(1024)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    assert session.receive(Frame(Command.REQUEST_IN_PROGRESS, sid)) == []
    (end,) = session.receive(Frame(Command.KEYGEN_RESP, sid, ((Tag.PUBLIC_KEY, small),)))
    assert end.command is Command.END_SESSION and end.u8(Tag.REASON) == Reason.INVALID
    assert "not the RSA-2048 key" in why(lab)


def test_keygen_response_without_a_key_fails(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    (end,) = session.receive(Frame(Command.KEYGEN_RESP, sid, (u8_element(Tag.REASON, 7),)))
    assert end.elements == ((1, b"\x07"),)  # capf-raw-minimal-auth
    assert "did not generate a key" in why(lab)


def test_a_second_request_in_progress_is_a_breach(lab: Lab) -> None:
    # capfd tolerates exactly one REQUEST_IN_PROGRESS (tvs-capf-wire.md 2.3).
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    assert session.receive(Frame(Command.REQUEST_IN_PROGRESS, sid)) == []
    (end,) = session.receive(Frame(Command.REQUEST_IN_PROGRESS, sid))
    assert end.elements == ((1, b"\x07"),)


@pytest.mark.parametrize("broken", ["sha1", "sha512", "hash-code"])
def test_certificate_proof_must_verify_both_signatures(lab: Lab, broken: str) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    mic = ec_mic()
    der = mic.certificate.public_bytes(Encoding.DER)
    sig1, sig512 = sign_proof(mic.key, NAME, der)
    if broken == "sha1":
        sig1 = sign_proof(ec_mic().key, NAME, der)[0]
    if broken == "sha512":
        sig512 = sign_proof(mic.key, "SEPAABBCCDDEEFF", der)[1]
    session, sid = _open(lab)
    (end,) = session.receive(
        _auth(
            sid,
            certificate_element(CertType.LSC, der),
            (Tag.SIGNED_DATA, sig1),
            sha2_signed_element(sig512, 2 if broken == "hash-code" else 3),
        )
    )
    assert end.command is Command.END_SESSION and end.u8(Tag.REASON) == Reason.INVALID
    expected = {
        "sha1": "SHA-1 signature does not verify",
        "sha512": "SHA-512 signature does not verify",
        "hash-code": "not 3 (SHA-512)",
    }[broken]
    assert expected in why(lab)


# --- the phone's strictness -----------------------------------------------------------------------


def test_phone_refuses_an_lsc_not_issued_by_the_capf_it_trusted(lab: Lab) -> None:
    cluster = cluster_of(lab)
    trust = CapfServerTrust(None, itl_of(cluster), no_tvs)
    assert trust(cluster.capf.certificate) is None
    phone = Phone()
    session = client(phone, AuthType.NO_PASSWORD, trust)
    session.receive(Frame(Command.AUTH_REQ, 5, (u8_element(Tag.VERSION, 3),)))
    (_in_progress, keygen_resp) = session.receive(
        Frame(
            Command.KEYGEN_REQ,
            5,
            (u8_element(Tag.KEY_TYPE, KeyType.RSA), u16_element(Tag.KEY_SIZE, 2048)),
        )
    )
    spki = keygen_resp.raw(Tag.PUBLIC_KEY)
    assert spki is not None
    public = load_der_public_key(spki)
    assert isinstance(public, rsa.RSAPublicKey)
    rogue_ca = make_ca("rogue CAPF", now=NOW, key=ec.generate_private_key(ec.SECP256R1()))
    forged = issue(rogue_ca, NAME, public, now=NOW)
    (store_resp,) = session.receive(
        Frame(
            Command.STORE_CERT_REQ,
            5,
            (certificate_element(CertType.LSC, forged.public_bytes(Encoding.DER)),),
        )
    )
    assert store_resp.u8(Tag.REASON) == Reason.INVALID
    assert any("not issued by the CAPF server the phone trusted" in a for a in session._actions)
    assert phone.lsc is None and phone.stores == 0


def test_phone_takes_the_session_id_from_the_server_and_holds_it() -> None:
    trust = CapfServerTrust(None, None, no_tvs)
    session = client(Phone(), AuthType.NO_PASSWORD, trust)
    with pytest.raises(ProtocolError, match="not AUTH_REQ"):
        session.receive(Frame(Command.KEYGEN_REQ, 1))
    with pytest.raises(ProtocolError, match="VERSION None"):
        client(Phone(), AuthType.NO_PASSWORD, trust).receive(Frame(Command.AUTH_REQ, 77))
    (reply,) = session.receive(Frame(Command.AUTH_REQ, 77, (u8_element(Tag.VERSION, 3),)))
    assert reply.session == 77 and reply.cstring(Tag.DEVICE_NAME) == NAME
    with pytest.raises(ProtocolError, match="changed from 77 to 78"):
        session.receive(Frame(Command.END_SESSION, 78))
    with pytest.raises(ProtocolError, match="does not take CAPF STATUS_REQ"):
        session.receive(Frame(Command.STATUS_REQ, 77))


# --- whom the phone trusts (item 20) --------------------------------------------------------------


def _outcome(valid: bool, roles: set[int], certificate: x509.Certificate | None) -> TvsOutcome:
    return TvsOutcome(
        valid, frozenset(roles), certificate, "tvs1:2445", "TVS tvs1:2445 vouched", "item 22"
    )


def _itl(*certs: tuple[x509.Certificate, Role]) -> TrustList:
    ident = self_signed("ITLRECOVERY", now=NOW, key=pooled_keys().rsa(2048))
    assert isinstance(ident.key, rsa.RSAPrivateKey)
    signer = Signer(ident.certificate, ident.key)
    records = [record_from_certificate(ident.certificate, Role.SAST)]
    records += [record_from_certificate(c, role) for c, role in certs]
    return build_trust_list(records, signer, timestamp=int(NOW.timestamp()))


def test_item20_capf_record_of_the_itl_is_trusted_without_tvs(lab: Lab) -> None:
    server = cluster_of(lab).capf.certificate
    trust = CapfServerTrust(None, _itl((server, Role.CAPF)), no_tvs)
    assert trust(server) is None and "CAPF record of the installed ITL" in trust.how


def test_item20_a_capf_record_that_does_not_match_is_refused_without_asking_tvs(lab: Lab) -> None:
    stranger = self_signed("stranger", now=NOW, key=ec.generate_private_key(ec.SECP256R1()))
    trust = CapfServerTrust(None, _itl((stranger.certificate, Role.CAPF)), no_tvs)
    problem = trust(cluster_of(lab).capf.certificate)
    assert problem is not None and "is not the CAPF record of the installed ITL" in problem


def test_item20_without_a_capf_record_tvs_decides(lab: Lab) -> None:
    server = cluster_of(lab).capf.certificate
    asked: list[bytes] = []

    def tvs(issuer: str, serial: bytes, certificate: object = None) -> TvsOutcome:
        asked.append(serial)
        return _outcome(True, {Role.CAPF}, server)

    trust = CapfServerTrust(None, _itl(), tvs)
    assert trust(server) is None and asked and "as CAPF" in trust.how


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ("invalid", "TVS did not vouch"),
        ("not-capf", "but not as CAPF"),
        ("other-cert", "vouched for another certificate"),
    ],
)
def test_item20_tvs_must_vouch_for_this_very_certificate_as_capf(
    lab: Lab, answer: str, match: str
) -> None:
    server = cluster_of(lab).capf.certificate
    other = self_signed("other", now=NOW, key=ec.generate_private_key(ec.SECP256R1())).certificate
    outcome = {
        "invalid": TvsOutcome(False, frozenset(), None, None, "no TVS answered", "item 24"),
        "not-capf": _outcome(True, {Role.TVS}, server),
        "other-cert": _outcome(True, {Role.CAPF}, other),
    }[answer]
    trust = CapfServerTrust(None, _itl(), lambda issuer, serial, certificate=None: outcome)
    problem = trust(server)
    assert problem is not None and match in problem


# --- settings ------------------------------------------------------------------------------------


def test_pending_operation_validation() -> None:
    assert CapfAuth.parse("string:1234") == (CapfAuth.STRING, "1234")
    assert CapfAuth.parse("MIC") == (CapfAuth.MIC, None)
    for bad in ("string", "string:12", "string:12345678901", "string:12ab", "null:1", "token"):
        with pytest.raises(LabError):
            auth, secret = CapfAuth.parse(bad)
            CapfPending(CapfOperation.INSTALL, auth, secret)
    with pytest.raises(LabError, match="takes no string"):
        CapfPending(CapfOperation.INSTALL, CapfAuth.NULL, "1234")
    assert CapfKeyType.parse("ec") is CapfKeyType.EC_P256
    with pytest.raises(LabError):
        CapfKeyType.parse("dsa")
    assert "1234" not in CapfPending(CapfOperation.INSTALL, CapfAuth.STRING, "1234").describe()


def test_pending_auth_reads_capf_auth_mode_and_capf_list() -> None:
    assert pending_auth(None) is None
    assert pending_auth(DeviceConfig(capf_host="cucm1", capf_auth_mode=0)) is None
    assert pending_auth(DeviceConfig(capf_host=None, capf_auth_mode=1)) is None
    assert pending_auth(DeviceConfig(capf_host="cucm1", capf_auth_mode=9)) is None
    assert pending_auth(DeviceConfig(capf_host="cucm1", capf_auth_mode=4)) is AuthType.MIC


def test_set_pending_needs_a_device(lab: Lab) -> None:
    with pytest.raises(LabError, match="has no device"):
        capf.set_pending(
            cluster_of(lab), "AABBCCDDEEFF", CapfOperation.INSTALL, CapfAuth.NULL, now=NOW
        )
    assert not capf.clear_pending(cluster_of(lab), MAC, now=NOW)
    pending(lab, CapfOperation.DELETE, CapfAuth.NULL)
    assert capf.clear_pending(cluster_of(lab), MAC, now=NOW)
    assert device(lab).capf is None


def test_lsc_is_backdated_so_a_phone_clock_a_little_behind_still_takes_it(lab: Lab) -> None:
    pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    cluster = cluster_of(lab)
    trust = CapfServerTrust(None, itl_of(cluster), no_tvs)
    phone = Phone()
    session = client(phone, AuthType.NO_PASSWORD, trust)
    session.now = NOW - timedelta(minutes=30)  # the phone's clock is behind the server's
    MemoryBackend(lab, clock=lambda: NOW).capf_exchange(
        cluster.publisher.hostname, 3804, session, trust, requester=Requester(MAC, "8841")
    )
    assert session.outcome is not None and session.outcome.ok, session.outcome
    assert phone.lsc is not None
    assert phone.lsc.certificate.not_valid_before_utc == NOW - capf.LSC_BACKDATE

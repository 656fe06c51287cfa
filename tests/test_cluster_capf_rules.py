"""The CAPF server's rules, frame by frame (phone/cluster/capf.py; tvs-capf-wire.md section 2,
docs/capf.md).

The phone's side is played by hand-made frames, so each test pins one server rule: the reason
code it answers with (wire 2.5/2.7), and the words it records on the device and in the cluster's
service log (service "CAPF", docs/capf.md "The outcome of the last session"), compared whole:
they are what ``vphone lab show`` and the log show an administrator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, tzinfo

import pytest
from clusterlab import NOW, make_lab
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from keypool import pooled_keys
from samples import shared_dir

from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfOperation, CapfService, CapfSession
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device.capf import sign_both, sign_proof
from phone.errors import LabError, ProtocolError
from phone.pki import Identity, issue
from phone.vendor import manufacturing_ca
from phone.wire.capf import (
    CertType,
    Command,
    Frame,
    Tag,
    certificate_element,
    cstring_element,
    decode_frame,
    sha2_signed_element,
    sudi_data,
    sudi_element,
    u8_element,
)

MAC = "001122334455"
NAME = f"SEP{MAC}"
PEER = "10.0.0.5"
END_7 = ((1, b"\x07"),)  # END_SESSION{REASON 7}: wire 2.5 INVALID_ELEMENT
TRANSCRIPTS = shared_dir() / "interop" / "transcripts"


@pytest.fixture
def lab() -> Lab:
    lab = make_lab()
    lab.cluster().add_device(Device(MAC), now=NOW)
    return lab


def _cluster(lab: Lab) -> Cluster:
    return lab.cluster()


def _device(lab: Lab) -> Device:
    found = _cluster(lab).device(MAC)
    assert found is not None
    return found


def _pending(lab: Lab, operation: CapfOperation, auth: CapfAuth, secret: str | None = None) -> None:
    capf.set_pending(_cluster(lab), MAC, operation, auth, now=NOW, secret=secret)


def _open(lab: Lab) -> tuple[CapfSession, int]:
    service = lab.capf_service(_cluster(lab).publisher.hostname)
    assert service is not None
    session = service.open(now=NOW, peer=PEER)
    (auth_req,) = session.start()
    return session, auth_req.session


def _auth(sid: int, *extra: tuple[int, bytes], name: str = NAME) -> Frame:
    # capfc's AUTH_RESPONSE (wire 2.7 step 2): VERSION 3, DEVICE_NAME + NUL, and the extras.
    return Frame(
        Command.AUTH_RESP,
        sid,
        (u8_element(Tag.VERSION, 3), cstring_element(Tag.DEVICE_NAME, name), *extra),
    )


def _last_log(lab: Lab) -> tuple[str, str]:
    entry = _cluster(lab).log[-1]
    return entry.service, entry.message


def _mic(name: str = NAME) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    return Identity(
        issue(manufacturing_ca("88xx"), f"CP-8841-{name}", key.public_key(), now=NOW), key
    )


def _proof(identity: Identity, name: str = NAME) -> tuple[tuple[int, bytes], ...]:
    der = identity.certificate.public_bytes(Encoding.DER)
    sha1, sha512 = sign_proof(identity.key, name, der)
    return (
        certificate_element(CertType.LSC, der),
        (Tag.SIGNED_DATA, sha1),
        sha2_signed_element(sha512),
    )


def _failed(lab: Lab, session: CapfSession, end: list[Frame], reason: str) -> None:
    """The operation failed with ``reason``: END_SESSION{7}, recorded on the device and the
    session, logged as "<device>: <operation> failed: <reason>", and still pending."""
    (frame,) = end
    assert frame.command is Command.END_SESSION and frame.elements == END_7
    result = _device(lab).capf_result
    assert result is not None and not result.ok and result.reason == reason
    assert session.result == result and session.problem == reason and not session.dropped
    operation = result.operation.value
    assert _last_log(lab) == ("CAPF", f"{NAME}: {operation} failed: {reason}")
    assert _device(lab).capf is not None


def _dropped(lab: Lab, session: CapfSession, problem: str) -> None:
    assert session.finished and session.dropped and session.problem == problem
    assert _device(lab).capf_result is None


# --- pending operations (docs/capf.md "Certificate operations") -----------------------------------


def test_a_pending_operation_is_stamped_with_now_and_logged_as_capf(lab: Lab) -> None:
    pending = capf.set_pending(_cluster(lab), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    assert pending.set_at == 1767268800  # 2026-01-01T12:00:00Z
    assert _last_log(lab) == ("CAPF", f"{NAME}: pending install (null, rsa-2048)")
    assert capf.clear_pending(_cluster(lab), MAC, now=NOW) is True
    assert _last_log(lab) == ("CAPF", f"{NAME}: pending operation cancelled")
    assert capf.clear_pending(_cluster(lab), MAC, now=NOW) is False


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: such a datetime is naive (Python's datetime docs)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_now_must_be_timezone_aware(lab: Lab) -> None:
    with pytest.raises(LabError) as naive:
        capf.set_pending(
            _cluster(lab), MAC, CapfOperation.DELETE, CapfAuth.NULL, now=datetime(2026, 1, 1)
        )
    assert str(naive.value) == "now must be timezone-aware, got the naive 2026-01-01T00:00:00"
    with pytest.raises(LabError) as offsetless:
        capf.set_pending(
            _cluster(lab),
            MAC,
            CapfOperation.DELETE,
            CapfAuth.NULL,
            now=datetime(2026, 1, 1, tzinfo=_NoOffset()),
        )
    assert str(offsetless.value) == (
        "now must be timezone-aware, got the naive 2026-01-01T00:00:00"
    )


# --- proofs of possession (wire 2.6 step 2) -------------------------------------------------------


@pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason=f"no transcripts at {TRANSCRIPTS}")
def test_capfc_bare_digest_signatures_verify() -> None:
    # capf-upgrade-lsc-auth: capfc signs "SEP0011223344A1" + NUL + the LSC's DER with its RSA key,
    # PKCS#1 type-1 blocks over the bare SHA-1 / SHA-512 digest.
    transcript = json.loads((TRANSCRIPTS / "capf-upgrade-lsc-auth.json").read_text())
    frame = decode_frame(bytes.fromhex(transcript["messages"][1]["hex"]))
    presented, sha1, sha2 = frame.certificate(), frame.raw(Tag.SIGNED_DATA), frame.sha2_signed()
    assert presented is not None and sha1 is not None and sha2 is not None
    certificate = x509.load_der_x509_certificate(presented[1])
    data = b"SEP0011223344A1\0" + presented[1]
    assert capf.verify_proof(certificate, data, sha1, hashes.SHA1())
    assert capf.verify_proof(certificate, data, sha2[1], hashes.SHA512())
    assert not capf.verify_proof(certificate, data + b"x", sha1, hashes.SHA1())
    # Not an RSA block at all (a value over the modulus): refused, not an error.
    assert not capf.verify_proof(certificate, data, b"\xff" * 256, hashes.SHA1())


def test_a_standard_pkcs1_signature_verifies_too() -> None:
    # wire 2.6: capfd compares only the trailing digest bytes, so DigestInfo signatures pass.
    key = pooled_keys().rsa(2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    certificate = issue(
        manufacturing_ca("88xx"), "CP-8841-SEP001122334455", key.public_key(), now=NOW
    )
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA1())
    assert capf.verify_proof(certificate, b"data", signature, hashes.SHA1())
    assert not capf.verify_proof(certificate, b"other", signature, hashes.SHA1())


def test_a_key_neither_rsa_nor_ec_proves_nothing() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    certificate = x509.load_der_x509_certificate(_self_signed_der(key, "CP-8841-SEP001122334455"))
    assert not capf.verify_proof(certificate, b"data", key.sign(b"data"), hashes.SHA1())


# --- session ids (wire 2.2) -----------------------------------------------------------------------


def test_session_ids_start_at_1_and_wrap_within_32_bits(lab: Lab) -> None:
    # wire 2.2: a counter that starts at 1 and increments per connection; a u32 in the header.
    service = CapfService(_cluster(lab), _cluster(lab).publisher.hostname)
    assert [service.open(now=NOW, peer=PEER).session_id for _ in range(2)] == [1, 2]
    service._next_session = 0xFFFFFFFF
    assert service.open(now=NOW, peer=PEER).session_id == 0xFFFFFFFF
    assert service.open(now=NOW, peer=PEER).session_id == 1


# --- breaches: END_SESSION{7}, logged as dropped (wire 2.7, docs/capf.md "Errors") ----------------


def test_the_server_speaks_once_first(lab: Lab) -> None:
    session, _ = _open(lab)
    with pytest.raises(ProtocolError) as caught:
        session.start()
    assert str(caught.value) == "CAPF session already started"


def test_a_frame_before_the_auth_request_drops_the_session(lab: Lab) -> None:
    service = lab.capf_service(_cluster(lab).publisher.hostname)
    assert service is not None
    session = service.open(now=NOW, peer=PEER)
    assert session.device_name is None and session.problem is None
    assert session.receive(_auth(session.session_id)) == []
    _dropped(lab, session, "CAPF AUTH_RESP before the server's AUTH_REQUEST")
    assert _last_log(lab) == (
        "CAPF",
        f"session {session.session_id} from {PEER} (unidentified phone) dropped: "
        "CAPF AUTH_RESP before the server's AUTH_REQUEST",
    )


def test_an_auth_response_without_a_device_name_drops_the_session(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    frame = Frame(Command.AUTH_RESP, sid, (u8_element(Tag.VERSION, 3),))
    assert session.receive(frame)[0].elements == END_7
    _dropped(lab, session, "CAPF AUTH_RESPONSE without a device name")


def test_a_breach_after_the_device_named_itself_is_logged_with_its_name(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    assert session.device_name == NAME
    (end,) = session.receive(Frame(Command.STORE_CERT_RESP, sid, (u8_element(Tag.REASON, 1),)))
    assert end.elements == END_7
    assert _last_log(lab) == (
        "CAPF",
        f"session {sid} from {PEER} ({NAME}) dropped: CAPF STORE_CERT_RESP while waiting for "
        "KEY_GENERATE_RESPONSE (expected KEYGEN_RESP)",
    )


# --- who is calling (wire 2.7: unknown device -> END_SESSION{9}) ----------------------------------


def test_a_device_name_is_sep_and_the_mac(lab: Lab) -> None:
    # wire 2.4 DEVICE_NAME: "SEP" + 12 hex digits; the bare MAC names no device.
    _pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    (end,) = session.receive(_auth(sid, name=MAC))
    assert end.command is Command.END_SESSION and end.elements == ((1, b"\x09"),)
    assert session.problem == f"{MAC} is not a device of this cluster"
    assert _last_log(lab) == (
        "CAPF",
        f"session {sid} from {PEER}: {MAC} is not a device of this cluster",
    )
    assert _device(lab).capf_result is None


# --- authentication (wire 2.6) --------------------------------------------------------------------


def test_authentication_string_missing_or_wrong(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.STRING, "123456")
    session, sid = _open(lab)
    end = session.receive(_auth(sid))
    _failed(lab, session, end, "authentication failed: no authentication string sent")
    session, sid = _open(lab)
    end = session.receive(_auth(sid, cstring_element(Tag.PASSWORD, "123457")))
    _failed(lab, session, end, "authentication failed: wrong authentication string")


def test_certificate_authentication_needs_all_three_elements(lab: Lab) -> None:
    # capf-cert-auth-no-certificate: CERTIFICATE, SIGNED_DATA and SHA2_SIGNED_DATA all present.
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    certificate, sha1, _sha2 = _proof(_mic())
    session, sid = _open(lab)
    end = session.receive(_auth(sid, certificate, sha1))
    _failed(
        lab,
        session,
        end,
        "authentication failed: certificate authentication needs the certificate and both "
        "signatures",
    )


def test_a_certificate_that_does_not_parse_fails_authentication(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    _certificate, sha1, sha2 = _proof(_mic())
    session, sid = _open(lab)
    end = session.receive(_auth(sid, certificate_element(CertType.MIC, b"\x30\x03abc"), sha1, sha2))
    _failed(lab, session, end, "authentication failed: the certificate sent does not parse")


def test_a_certificate_without_a_common_name_names_no_device(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    ca = manufacturing_ca("88xx")
    key = ec.generate_private_key(ec.SECP256R1())
    nameless = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Cisco")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(ca.key, hashes.SHA256())
    )
    session, sid = _open(lab)
    end = session.receive(_auth(sid, *_proof(Identity(nameless, key))))
    _failed(lab, session, end, f"authentication failed: the MIC names '', not {NAME}")


def test_a_mic_whose_signature_does_not_verify_is_named_a_mic(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    mic = _mic()
    certificate, _sha1, sha2 = _proof(mic)
    _c, forged, _s = _proof(_mic())
    session, sid = _open(lab)
    end = session.receive(_auth(sid, certificate, forged, sha2))
    _failed(
        lab,
        session,
        end,
        "authentication failed: the SHA-1 signature does not verify with the MIC's key",
    )


def _sudi(mic: Identity, sid: int) -> tuple[int, bytes]:
    # wire 2.6 step 3: the SUDI signatures cover the session id (u32 LE) + the SUDI DER.
    mic_der = mic.certificate.public_bytes(Encoding.DER)
    sha1, sha512 = sign_both(mic.key, sudi_data(sid, mic_der))
    return sudi_element(mic_der, sha1, sha512)


def test_good_sudi_data_authenticates(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    mic = _mic()
    session, sid = _open(lab)
    (keygen,) = session.receive(_auth(sid, *_proof(mic), _sudi(mic, sid)))
    assert keygen.command is Command.KEYGEN_REQ


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        ("certificate", "the SUDI certificate does not parse"),
        ("sha1", "the SUDI SHA-1 signature does not verify"),
        ("sha512", "the SUDI SHA-512 signature does not verify"),
    ],
)
def test_sudi_data_is_checked_when_present(lab: Lab, broken: str, said: str) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    mic = _mic()
    session, sid = _open(lab)
    mic_der = mic.certificate.public_bytes(Encoding.DER)
    sha1, sha512 = sign_both(mic.key, sudi_data(sid, mic_der))
    other_sha1, other_sha512 = sign_both(_mic().key, sudi_data(sid, mic_der))
    if broken == "certificate":
        sudi = sudi_element(b"\x30\x03abc", sha1, sha512)
    elif broken == "sha1":
        sudi = sudi_element(mic_der, other_sha1, sha512)
    else:
        sudi = sudi_element(mic_der, sha1, other_sha512)
    end = session.receive(_auth(sid, *_proof(mic), sudi))
    _failed(lab, session, end, f"authentication failed: {said}")


def test_a_sudi_certificate_must_chain_to_capf_trust(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.MIC)
    mic = _mic()
    key = ec.generate_private_key(ec.SECP256R1())
    rogue = Identity(x509.load_der_x509_certificate(_self_signed_der(key, f"CP-8841-{NAME}")), key)
    session, sid = _open(lab)
    end = session.receive(_auth(sid, *_proof(mic), _sudi(rogue, sid)))
    (frame,) = end
    assert frame.elements == END_7
    result = _device(lab).capf_result
    # The CAPF-trust anchors are the manufacturing CAs and this CAPF (module docstring).
    assert result is not None and result.reason == (
        f"authentication failed: SUDI: client certificate CN=CP-8841-{NAME} was not issued by a "
        "certificate in the CAPF-trust store"
    )


def _self_signed_der(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, cn: str) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(9)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


# --- operations (wire 2.7) ------------------------------------------------------------------------


def test_upgrade_needs_an_lsc_capf_issued(lab: Lab) -> None:
    _pending(lab, CapfOperation.UPGRADE, CapfAuth.NULL)
    session, sid = _open(lab)
    end = session.receive(_auth(sid))
    _failed(lab, session, end, "upgrade needs an installed LSC and CAPF knows none")


def _spki(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_keygen_response_must_carry_the_key_asked_for(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    end = session.receive(Frame(Command.KEYGEN_RESP, sid, ((Tag.PUBLIC_KEY, b"\x30\x00"),)))
    _failed(lab, session, end, "the public key is not a SubjectPublicKeyInfo")
    session, sid = _open(lab)
    session.receive(_auth(sid))
    small = pooled_keys().rsa(1024)
    assert isinstance(small, rsa.RSAPrivateKey)
    end = session.receive(Frame(Command.KEYGEN_RESP, sid, ((Tag.PUBLIC_KEY, _spki(small)),)))
    _failed(lab, session, end, "the phone sent a key that is not the RSA-2048 key CAPF asked for")


def test_install_records_the_lsc_with_its_serial_issuer_and_expiry(lab: Lab) -> None:
    _pending(lab, CapfOperation.INSTALL, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    key = pooled_keys().rsa(2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    (store,) = session.receive(Frame(Command.KEYGEN_RESP, sid, ((Tag.PUBLIC_KEY, _spki(key)),)))
    presented = store.certificate()
    assert presented is not None
    lsc = x509.load_der_x509_certificate(presented[1])
    # docs/capf.md: five years (1826 days with 2028's leap day), backdated one hour.
    assert lsc.not_valid_before_utc == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    assert lsc.not_valid_after_utc - lsc.not_valid_before_utc == timedelta(days=1826)
    (end,) = session.receive(Frame(Command.STORE_CERT_RESP, sid, (u8_element(Tag.REASON, 1),)))
    assert end.command is Command.END_SESSION and end.elements == ((1, b"\x01"),)
    serial = f"{lsc.serial_number:x}"
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    issuer = lsc.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    said = f"LSC serial {serial} issued by {issuer!s}, expires 2031-01-01"
    result = _device(lab).capf_result
    assert result is not None and result.ok and result.reason == said
    assert session.result == result and session.problem is None
    assert _last_log(lab) == ("CAPF", f"{NAME}: install succeeded: {said}")
    assert _device(lab).certificate == lsc and _device(lab).capf is None


@pytest.mark.parametrize(
    ("reason", "said"), [(1, "LSC deleted"), (7, "the phone had no LSC to delete")]
)
def test_delete_ends_with_1_either_way_and_forgets_the_lsc(
    lab: Lab, reason: int, said: str
) -> None:
    # capf-delete / capf-delete-no-certificate: END_SESSION{1} in both cases.
    _cluster(lab).update_device(MAC, now=NOW, certificate=_mic().certificate)
    _pending(lab, CapfOperation.DELETE, CapfAuth.NULL)
    session, sid = _open(lab)
    (request,) = session.receive(_auth(sid))
    assert request.command is Command.DELETE_CERT_REQ
    (end,) = session.receive(
        Frame(Command.DELETE_CERT_RESP, sid, (u8_element(Tag.REASON, reason),))
    )
    assert end.command is Command.END_SESSION and end.elements == ((1, b"\x01"),)
    result = _device(lab).capf_result
    assert result is not None and result.ok and result.reason == said
    assert _last_log(lab) == ("CAPF", f"{NAME}: delete succeeded: {said}")
    assert _device(lab).certificate is None


def test_troubleshoot_keeps_the_certificate_capf_knows(lab: Lab) -> None:
    # capf-fetch-no-certificate: REASON 7 (a certificate beside it is not read); END_SESSION{0}.
    known = _mic().certificate
    _cluster(lab).update_device(MAC, now=NOW, certificate=known)
    _pending(lab, CapfOperation.TROUBLESHOOT, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    der = _mic().certificate.public_bytes(Encoding.DER)
    (end,) = session.receive(
        Frame(
            Command.FETCH_CERT_RESP,
            sid,
            (u8_element(Tag.REASON, 7), certificate_element(CertType.LSC, der)),
        )
    )
    assert end.command is Command.END_SESSION and end.elements == ((1, b"\x00"),)
    result = _device(lab).capf_result
    assert result is not None and result.ok and result.reason == "LSC: none"
    assert result.certificates == ("LSC: none",)
    assert _device(lab).certificate == known


def test_a_fetched_certificate_that_does_not_parse_drops_the_session(lab: Lab) -> None:
    _pending(lab, CapfOperation.TROUBLESHOOT, CapfAuth.NULL)
    session, sid = _open(lab)
    session.receive(_auth(sid))
    (end,) = session.receive(
        Frame(
            Command.FETCH_CERT_RESP,
            sid,
            (u8_element(Tag.REASON, 1), certificate_element(CertType.LSC, b"\x30\x03abc")),
        )
    )
    assert end.elements == END_7
    _dropped(lab, session, "CAPF FETCH_CERTIFICATE_RESPONSE certificate does not parse")

"""CAPF conformance with the public implementation: every captured capfd/capfc session
(``shared/interop/transcripts/capf-*.json``, tvs-capf-wire.md section 2) replayed against vphone.

* the codec decodes each captured message into the captured command and elements;
* vphone's server (the pure :class:`phone.cluster.capf.CapfSession`, and over TLS for some),
  fed the captured client half *byte for byte*, answers with the captured commands and elements
  (the issued certificate compared by shape: it is vphone's CAPF that signs it);
* vphone's phone (:class:`phone.device.capf.CapfClient`), talking to a scripted peer replaying
  the captured server half, sends the captured commands and elements (signatures, keys and
  certificates compared by shape).

The transcripts are test data read in place; the tests skip when the folder is absent.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clusterlab import make_lab
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    load_der_public_key,
    load_pem_private_key,
)
from keypool import pooled_keys
from samples import shared_dir

from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation
from phone.cluster.lab import Lab
from phone.cluster.records import Device, TrustStore
from phone.device.capf import CapfClient
from phone.errors import ProtocolError
from phone.net.capf_tls import CapfTlsServer
from phone.pki import Identity, issue
from phone.wire.capf import AuthType, Command, Frame, FrameReader, decode_frame, encode_frame

TRANSCRIPTS = shared_dir() / "interop" / "transcripts"
NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("capf-*.json")) if TRANSCRIPTS.is_dir() else []
pytestmark = pytest.mark.skipif(
    not NAMES, reason=f"the interop transcripts are not at {TRANSCRIPTS}"
)

# What capfctl had scheduled for each scenario (the transcripts' "setup"), as vphone pending
# operations; None: no pending operation; "unknown": no such device.
_STRING = (CapfAuth.STRING, "123456")
SETUP: dict[str, tuple[Any, ...] | str | None] = {
    "capf-install-password-wrong": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-install-password-rsa2048": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-no-operation": None,
    "capf-install-no-password-ec256": (
        CapfOperation.INSTALL,
        CapfAuth.NULL,
        None,
        CapfKeyType.EC_P256,
    ),
    "capf-install-mic-auth": (CapfOperation.INSTALL, CapfAuth.MIC, None, CapfKeyType.RSA_2048),
    "capf-upgrade-lsc-auth": (CapfOperation.INSTALL, CapfAuth.LSC, None, CapfKeyType.RSA_2048),
    "capf-upgrade-ec-lsc-auth": (CapfOperation.INSTALL, CapfAuth.LSC, None, CapfKeyType.EC_P384),
    "capf-cert-auth-unknown-issuer": (
        CapfOperation.INSTALL,
        CapfAuth.MIC,
        None,
        CapfKeyType.RSA_2048,
    ),
    "capf-cert-auth-no-certificate": (
        CapfOperation.INSTALL,
        CapfAuth.MIC,
        None,
        CapfKeyType.RSA_2048,
    ),
    "capf-fetch": (CapfOperation.TROUBLESHOOT, CapfAuth.NULL, None, CapfKeyType.RSA_2048),
    "capf-fetch-no-certificate": (
        CapfOperation.TROUBLESHOOT,
        CapfAuth.NULL,
        None,
        CapfKeyType.RSA_2048,
    ),
    "capf-delete": (CapfOperation.DELETE, *_STRING, CapfKeyType.RSA_2048),
    "capf-delete-no-certificate": (CapfOperation.DELETE, CapfAuth.NULL, None, CapfKeyType.RSA_2048),
    "capf-unknown-device": "unknown",
    "capf-raw-bad-session-id": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-raw-minimal-auth": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-raw-silent-phone": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-raw-unknown-tag": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
    "capf-raw-version-2": (CapfOperation.INSTALL, *_STRING, CapfKeyType.RSA_2048),
}
CERTIFICATE_TAGS = {4}  # compared by shape: issued (server) or chosen (phone) per run
SHAPE_TAGS = {4, 6, 9, 16, 20}  # the phone's certificate, signatures, key, SUDI data


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TRANSCRIPTS / f"{name}.json").read_text())
    return data


def frames_of(transcript: dict[str, Any], side: str) -> list[dict[str, Any]]:
    return [m for m in transcript["messages"] if m["from"] == side]


def _pem_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _identity(name: str) -> Identity:
    data = (TRANSCRIPTS / "certs" / f"{name}.pem").read_bytes()
    key = load_pem_private_key(data, None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return Identity(x509.load_pem_x509_certificate(data), key)


def _now() -> Any:
    # Inside the validity of every certificate of the capture (all made within minutes).
    starts = [
        c.not_valid_before_utc for p in (TRANSCRIPTS / "certs").glob("*.pem") for c in _pem_certs(p)
    ]
    return max(starts) + timedelta(minutes=1)


# --- 1. the codec ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_codec_decodes_every_captured_message(name: str) -> None:
    for message in load(name)["messages"]:
        data = bytes.fromhex(message["hex"])
        decoded = message["decoded"]
        tags = [e["tag"] for e in decoded["elements"]]
        if 99 in tags:
            # capf-raw-unknown-tag: capfd abandons the message, and so does vphone's codec.
            with pytest.raises(ProtocolError, match="unknown element tag 99"):
                decode_frame(data)
            continue
        frame = decode_frame(data)
        assert frame.command == decoded["header"]["command_code"]
        assert frame.session == decoded["header"]["session_id"]
        assert [(t, v.hex()) for t, v in frame.elements] == [
            (e["tag"], e["value"]) for e in decoded["elements"]
        ]
        assert encode_frame(frame) == data  # and encodes it back byte for byte
        if frame.raw(4) is not None:
            presented = frame.certificate()
            assert presented is not None
            x509.load_der_x509_certificate(presented[1])  # the wrapper is 5 bytes


# --- 2. vphone's server, fed the captured client half ----------------------------------------


@dataclass
class Served:
    lab: Lab
    session_id: int


def serve_lab(name: str, transcript: dict[str, Any]) -> Served:
    now = _now()
    lab = make_lab(now=now)
    cluster = lab.cluster()
    # capfd's issuer (capf.pem) and its -v manufacturing CA are what vphone's CAPF-trust
    # store holds in its place.
    for ca in ("capf", "mic-ca"):
        for cert in _pem_certs(TRANSCRIPTS / "certs" / f"{ca}.pem"):
            cluster.add_trusted(TrustStore.CAPF, cert, source="transcript", now=now)
    auth = next(
        (m for m in frames_of(transcript, "client") if m["decoded"]["command"] == "AUTH_RESPONSE"),
        None,
    )
    device_name = "SEP0011223344E5"
    if auth is not None:
        for e in auth["decoded"]["elements"]:
            if e["tag"] == 13:
                device_name = bytes.fromhex(e["value"]).rstrip(b"\0").decode()
    setup = SETUP[name]
    if setup != "unknown":
        cluster.add_device(Device(device_name[3:]), now=now)
        if isinstance(setup, tuple):
            operation, mode, secret, key_type = setup
            capf.set_pending(
                cluster, device_name[3:], operation, mode, secret=secret, key_type=key_type, now=now
            )
    first = frames_of(transcript, "server")[0]
    session_id = first["decoded"]["header"]["session_id"]
    service = lab.capf_service(cluster.publisher.hostname)
    assert service is not None
    # capfd's counter had reached this id; the SUDI signatures cover it (wire 2.6).
    service._next_session = session_id
    return Served(lab, session_id)


def assert_same(expected: dict[str, Any], got: Frame, shape: set[int]) -> None:
    decoded = expected["decoded"]
    assert got.command == decoded["header"]["command_code"], (decoded["command"], got)
    assert got.session == decoded["header"]["session_id"]
    assert got.tags() == tuple(e["tag"] for e in decoded["elements"]), decoded["command"]
    for (tag, value), e in zip(got.elements, decoded["elements"], strict=True):
        if tag in shape:
            continue
        assert value.hex() == e["value"], (decoded["command"], tag)
    if 4 in got.tags():
        assert got.raw(4)[:1] == b"\x01" and got.raw(4)[3:5] == b"\x00\x01"  # type: ignore[index]
        x509.load_der_x509_certificate(got.raw(4)[5:])  # type: ignore[index]


def server_replies(name: str) -> tuple[Served, list[Frame]]:
    transcript = load(name)
    served = serve_lab(name, transcript)
    service = served.lab.capf_service(served.lab.cluster().publisher.hostname)
    assert service is not None
    session = service.open(now=_now())
    replies = session.start()
    for message in frames_of(transcript, "client"):
        try:
            frames = list(FrameReader().feed(bytes.fromhex(message["hex"])))
        except ProtocolError as exc:
            replies += session.abort(str(exc))
            continue
        for frame in frames:
            replies += session.receive(frame)
    if not frames_of(transcript, "client"):
        replies += session.abort("the phone said nothing")  # the silent phone, timed out
    return served, replies


@pytest.mark.parametrize("name", NAMES)
def test_server_answers_the_captured_client_half_as_capfd(name: str) -> None:
    transcript = load(name)
    _served, replies = server_replies(name)
    expected = frames_of(transcript, "server")
    if name == "capf-raw-silent-phone":
        # capfd has no read timeout; vphone's ends the silent session with END_SESSION{7}.
        assert replies[-1].command is Command.END_SESSION and replies[-1].elements == (
            (1, b"\x07"),
        )
        replies = replies[:-1]
    assert len(replies) == len(expected), [r.command.name for r in replies]
    for message, reply in zip(expected, replies, strict=True):
        assert_same(message, reply, CERTIFICATE_TAGS)


def test_issued_lsc_is_for_the_captured_key_and_names_the_device() -> None:
    _served, replies = server_replies("capf-install-password-rsa2048")
    store = next(r for r in replies if r.command is Command.STORE_CERT_REQ)
    presented = store.certificate()
    assert presented is not None
    lsc = x509.load_der_x509_certificate(presented[1])
    keygen = next(
        m
        for m in frames_of(load("capf-install-password-rsa2048"), "client")
        if m["decoded"]["command"] == "KEY_GENERATE_RESPONSE"
    )
    spki = bytes.fromhex(keygen["decoded"]["elements"][0]["value"])
    assert lsc.public_key() == load_der_public_key(spki)
    cn = lsc.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "SEP0011223344A1"
    eku = lsc.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {o.dotted_string for o in eku} == {
        "1.3.6.1.5.5.7.3.1",
        "1.3.6.1.5.5.7.3.2",
        "1.3.6.1.5.5.7.3.5",
    }


# --- over TLS on loopback ----------------------------------------------------------------------


def _tls_replay(server: CapfTlsServer, transcript: dict[str, Any]) -> list[Frame]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    got: list[Frame] = []
    reader = FrameReader()
    server_count = len(frames_of(transcript, "server"))
    with context.wrap_socket(socket.create_connection(server.address, timeout=2.0)) as tls:
        for message in transcript["messages"]:
            if message["from"] == "client":
                tls.sendall(bytes.fromhex(message["hex"]))  # one write, as the capture's
                continue
            while len(got) < len(
                [
                    m
                    for m in transcript["messages"][: transcript["messages"].index(message) + 1]
                    if m["from"] == "server"
                ]
            ):
                data = tls.recv(65536)
                assert data, "the server closed early"
                got += reader.feed(data)
        try:
            while data := tls.recv(65536):
                got += reader.feed(data)
        except (ssl.SSLError, ConnectionError, TimeoutError):
            pass
    assert len(got) >= server_count
    return got


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in (
            "capf-install-mic-auth",
            "capf-install-password-rsa2048",
            "capf-raw-unknown-tag",
            "capf-raw-bad-session-id",
            "capf-unknown-device",
        )
        if n in NAMES
    ],
)
def test_server_over_tls_answers_as_capfd(name: str) -> None:
    transcript = load(name)
    served = serve_lab(name, transcript)
    with CapfTlsServer(
        served.lab, served.lab.cluster().publisher.hostname, clock=_now, read_timeout=1.0
    ) as server:
        got = _tls_replay(server, transcript)
    for message, reply in zip(frames_of(transcript, "server"), got, strict=True):
        assert_same(message, reply, CERTIFICATE_TAGS)


# --- 3. vphone's phone, against the captured server half -------------------------------------

# How capfc was run (client_command), as the vphone phone's settings: auth, secret, the
# certificate it authenticates with, whether it holds an LSC.
CLIENTS: dict[str, tuple[AuthType, str | None, str | None, bool]] = {
    "capf-install-password-wrong": (AuthType.PASSWORD, "999999", None, False),
    "capf-install-password-rsa2048": (AuthType.PASSWORD, "123456", None, False),
    "capf-no-operation": (AuthType.PASSWORD, "123456", None, True),
    "capf-install-no-password-ec256": (AuthType.NO_PASSWORD, None, None, False),
    "capf-install-mic-auth": (AuthType.MIC, None, "mic-C3", False),
    "capf-upgrade-lsc-auth": (AuthType.LSC, None, "phone-A1-lsc", True),
    "capf-upgrade-ec-lsc-auth": (AuthType.LSC, None, "phone-B2-lsc", True),
    "capf-cert-auth-unknown-issuer": (AuthType.MIC, None, "unknown-device", False),
    "capf-cert-auth-no-certificate": (AuthType.PASSWORD, "123456", None, False),
    "capf-fetch": (AuthType.NO_PASSWORD, None, None, True),
    "capf-fetch-no-certificate": (AuthType.NO_PASSWORD, None, None, False),
    "capf-delete": (AuthType.PASSWORD, "123456", None, True),
    "capf-delete-no-certificate": (AuthType.NO_PASSWORD, None, None, False),
    "capf-unknown-device": (AuthType.NO_PASSWORD, None, None, False),
}


@dataclass
class _Trust:
    """The phone trusts capfd's certificate (the scripted peer presents it)."""

    certificate: x509.Certificate


@pytest.mark.parametrize("name", [n for n in NAMES if n in CLIENTS])
def test_phone_sends_what_capfc_sent(name: str) -> None:
    transcript = load(name)
    auth, secret, proof, has_lsc = CLIENTS[name]
    server_id = _identity("capf")
    sent = frames_of(transcript, "client")
    device_name = next(
        bytes.fromhex(e["value"]).rstrip(b"\0").decode()
        for e in sent[0]["decoded"]["elements"]
        if e["tag"] == 13
    )
    mic_name = "mic-" + device_name[-2:]
    mic = (
        _identity(mic_name)
        if (TRANSCRIPTS / "certs" / f"{mic_name}.pem").exists()
        else _identity("mic-A1")
    )
    lsc = (
        _identity(proof)
        if proof and proof.startswith("phone-")
        else (_identity("phone-A1-lsc") if has_lsc else None)
    )
    if proof and not proof.startswith("phone-"):
        mic = _identity(proof)
    stored: list[Identity] = []
    client = CapfClient(
        device_name=device_name,
        auth=auth,
        mic=mic,
        lsc=lsc,
        keys=pooled_keys(),
        trust=_Trust(server_id.certificate),  # type: ignore[arg-type]
        store=stored.append,
        delete=lambda: lsc is not None,
        now=_now(),
        secret=secret,
        ec_allowed=True,
    )
    got: list[Frame] = []
    for message in frames_of(transcript, "server"):
        frame = decode_frame(bytes.fromhex(message["hex"]))
        if frame.command is Command.STORE_CERT_REQ:
            # The scripted peer re-issues the LSC for the key this phone generated, with
            # capfd's own key from the capture (its signature must verify on the phone).
            spki = got[-1].raw(9)
            assert spki is not None
            key = load_der_public_key(spki)
            assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
            lsc_cert = issue(server_id, device_name, key, now=_now() - timedelta(minutes=1))
            frame = Frame(
                frame.command,
                frame.session,
                tuple(
                    (t, v[:5] + lsc_cert.public_bytes(_der()) if t == 4 else v)
                    for t, v in frame.elements
                ),
            )
        got += client.receive(frame)
    assert client.finished
    assert len(got) == len(sent), [f.command.name for f in got]
    for message, frame in zip(sent, got, strict=True):
        assert_same(message, frame, SHAPE_TAGS)
    if name in ("capf-install-password-rsa2048", "capf-install-mic-auth"):
        assert stored and client.outcome is not None and client.outcome.ok


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER

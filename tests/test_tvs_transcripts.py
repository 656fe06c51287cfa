"""TVS conformance against the captured sessions of the public tvsd/tvsc (issue 12).

Every ``tvs-*.json`` of ``<repo>/../shared/interop/transcripts`` (read in place, skipped when
absent, like the samples) is checked three ways (tvs-capf-wire.md section 1):

* **codec**: vphone decodes each captured message into the same command, session and elements;
* **server**: vphone's server, fed the client half, answers with the same messages, or with
  nothing and a close where tvsd does. The pure session (:class:`TvsServerSession`) is judged
  from the transcripts' DB (``setup``: ccm.pem with roles CCM,TFTP and TTL 3600, allroles.pem
  with all seven roles and the default TTL 86400), so its answers must be byte-identical; over
  real TLS on loopback the lab answers (roles from the cluster, item 25), compared by shape;
* **client**: vphone's client, talking to a scripted TLS peer that replays the server half,
  sends the same request bytes and reads the same answer.

vphone is liberal where tvsd is strict and a real client gains from it (docs/networks.md
"TVS"): a second request on one connection is answered too, a header split across records is
reassembled. Those transcripts check the first answer exactly and the extension separately.
Error behaviours (1.7) each have a test in which another client is served throughout.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from clusterlab import NOW, make_lab
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from samples import shared_dir

from phone.cluster.lab import Lab
from phone.cluster.records import TrustStore
from phone.cluster.tvs import TvsServerSession, TvsVerdict
from phone.errors import ProtocolError
from phone.net.tvs_tls import TvsTlsServer, client_context, tvs_query_tls
from phone.trust.tvs import QueryNotAnswered, TvsAnswer, TvsClient, TvsServer
from phone.wire.tvs import Frame, FrameReader

TRANSCRIPTS = shared_dir() / "interop" / "transcripts"
SKIP_REASON = "../shared/interop/transcripts not found"
needs_transcripts = pytest.mark.skipif(not TRANSCRIPTS.is_dir(), reason=SKIP_REASON)

# The captures' DB (each transcript's ``setup``; roles as codes of tvs-capf-wire.md 1.5).
DB = {"ccm.pem": ((1, 3), 3600), "allroles.pem": ((0, 1, 2, 3, 4, 7, 21), 86400)}

# Requests tvsd drops without a word (1.7); vphone's server must do the same.
DROPPED = {
    "tvs-raw-bad-device-name",
    "tvs-raw-bad-version",
    "tvs-raw-device-name-no-leading-byte",
    "tvs-raw-lowercase-mac",
    "tvs-raw-missing-certificate",
    "tvs-raw-not-a-certificate",
    "tvs-raw-query-request",
    "tvs-raw-unknown-tag",
}
# The client sent less than one request; nobody answers.
INCOMPLETE = {
    "tvs-raw-header-split",
    "tvs-raw-truncated-body-held-open",
    "tvs-raw-truncated-body-then-close",
}
# tvsd answers the first request and closes; vphone also answers the second (persistent).
SECOND_ANSWERED = {"tvs-raw-two-requests-one-connection", "tvs-raw-pipelined-same-session"}


def _names() -> list[str]:
    if not TRANSCRIPTS.is_dir():
        return []
    return sorted(p.stem for p in TRANSCRIPTS.glob("tvs-*.json"))


@dataclass(frozen=True)
class Transcript:
    """One captured session."""

    name: str
    data: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.data["messages"])

    def half(self, side: str) -> list[bytes]:
        return [bytes.fromhex(m["hex"]) for m in self.messages if m["from"] == side]


def load(name: str) -> Transcript:
    return Transcript(name, json.loads((TRANSCRIPTS / f"{name}.json").read_text()))


def certificate(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((TRANSCRIPTS / "certs" / name).read_bytes())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def db_judge(frame: Frame) -> TvsVerdict:
    """The captures' tvsd DB: lookup by the whole DER certificate (1.6)."""
    der = frame.get(2) or b""
    for file, (roles, ttl) in DB.items():
        if _der(certificate(file)) == der:
            return TvsVerdict(True, roles, ttl)
    return TvsVerdict(False, (), 0)


def serve(data: bytes, *, chunks: int = 1) -> tuple[list[bytes], bool]:
    """Feed ``data`` to a fresh pure server session; (answers, dropped)."""
    session = TvsServerSession(db_judge)
    answers: list[bytes] = []
    step = max(1, -(-len(data) // chunks))
    try:
        for start in range(0, len(data), step):
            answers.extend(session.feed(data[start : start + step]))
    except ProtocolError:
        return answers, True
    return answers, False


# --- codec ---------------------------------------------------------------------------------------


@needs_transcripts
@pytest.mark.parametrize("name", _names())
def test_codec_decodes_every_message_as_captured(name: str) -> None:
    for message in load(name).messages:
        raw = bytes.fromhex(message["hex"])
        decoded = message.get("decoded") or {}
        reader = FrameReader()
        if message.get("incomplete") or not decoded.get("header"):
            assert list(reader.feed(raw)) == [] and reader.pending == len(raw)
            continue
        header = decoded["header"]
        if header["version"] != 1:
            with pytest.raises(ProtocolError):  # 1.2: tvsd rejects anything else; so do we
                list(reader.feed(raw))
            continue
        (frame,) = reader.feed(raw)
        assert int(frame.command) == header["command_code"]
        assert frame.session == header["session_id"]
        assert [(t, v.hex()) for t, v in frame.elements] == [
            (e["tag"], e["value"]) for e in decoded["elements"]
        ]


# --- the pure server -----------------------------------------------------------------------------


@needs_transcripts
@pytest.mark.parametrize("name", _names())
def test_pure_server_answers_the_client_half_as_tvsd(name: str) -> None:
    transcript = load(name)
    client = b"".join(transcript.half("client"))
    expected = transcript.half("server")
    for chunks in (1, 7):  # all at once, and in pieces (the body may span records, section 0)
        answers, dropped = serve(client, chunks=chunks)
        if name in DROPPED:
            assert (answers, dropped) == ([], True)
        elif name in INCOMPLETE:
            assert (answers, dropped) == ([], False)  # waits for the rest; closed by the peer
        elif name in SECOND_ANSWERED:
            # Every captured request is answered (the second one of tvs-raw-two-requests-...
            # was never captured: tvsd had closed already).
            assert answers[0] == expected[0] and not dropped
            assert len(answers) == len(transcript.half("client"))
        else:
            assert (answers, dropped) == (expected, False)


@needs_transcripts
def test_verify_response_bytes_are_the_literal_ones_of_the_spec() -> None:
    # tvs-capf-wire.md 1.4, captured examples (session 1).
    valid, _ = serve(load("tvs-verify-valid").half("client")[0])
    assert valid == [
        bytes.fromhex("5701020000000001" + "0010" + "070001000800020103090004" + "00000e10")
    ]
    unknown, _ = serve(load("tvs-verify-unknown").half("client")[0])
    assert unknown == [bytes.fromhex("5701020000000001" + "0004" + "07000101")]
    roles, _ = serve(load("tvs-verify-valid-all-roles").half("client")[0])
    assert roles[0][10:] == bytes.fromhex("070001000800070001020304071509000400015180")


@needs_transcripts
def test_header_split_across_records_is_reassembled_by_vphone() -> None:
    # tvsd drops a header written as 5 + 5 bytes (section 0); vphone is liberal and answers.
    request = load("tvs-verify-valid").half("client")[0]
    session = TvsServerSession(db_judge)
    assert list(session.feed(request[:5])) == [] and list(session.feed(request[5:10])) == []
    assert list(session.feed(request[10:])) == load("tvs-verify-valid").half("server")


# --- over TLS on loopback: the lab's server ------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = make_lab()
    if TRANSCRIPTS.is_dir():
        cluster = lab.cluster()
        # The captures' DB mapped onto the lab: ccm.pem is a CallManager-trust entry (CCM).
        cluster.add_trusted(
            TrustStore.CALLMANAGER, certificate("ccm.pem"), source="transcript", now=NOW
        )
    return lab


@pytest.fixture
def server(lab: Lab) -> Iterator[TvsTlsServer]:
    tvs = TvsTlsServer(lab, lab.cluster().publisher.hostname, clock=lambda: NOW, read_timeout=0.5)
    tvs.start()
    yield tvs
    tvs.stop()


def _connect(server: TvsTlsServer) -> ssl.SSLSocket:
    raw = socket.create_connection(server.address, timeout=2)
    return client_context(None).wrap_socket(raw)


def _read_until_close(tls: ssl.SSLSocket) -> tuple[list[bytes], bool]:
    """(the TLS records read, whether the server closed) within the socket timeout."""
    records: list[bytes] = []
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                return records, True
            records.append(data)
    except TimeoutError:
        return records, False
    except (ConnectionResetError, ssl.SSLError):
        return records, True


def _shape(frame: bytes) -> tuple[int, int, list[int]]:
    (parsed,) = FrameReader().feed(frame)
    return int(parsed.command), parsed.session, [t for t, _ in parsed.elements]


def _valid_request(session: int = 1) -> bytes:
    raw = bytearray(load("tvs-verify-valid").half("client")[0])
    raw[4:8] = session.to_bytes(4, "big")
    return bytes(raw)


def _other_client_is_served(server: TvsTlsServer) -> None:
    with _connect(server) as tls:
        tls.sendall(_valid_request(42))
        answer = tls.recv(65536)
    assert _shape(answer) == (2, 42, [7, 8, 9]) and answer[13] == 0


@needs_transcripts
@pytest.mark.parametrize(
    "name",
    [
        "tvs-verify-valid",
        "tvs-verify-unknown",
        "tvs-raw-session-id-echo",
        "tvs-raw-elements-reversed",
        "tvs-raw-device-name-leading-byte-00",
    ],
)
def test_tls_server_answers_with_the_same_shape(server: TvsTlsServer, name: str) -> None:
    transcript = load(name)
    (request,) = transcript.half("client")
    (expected,) = transcript.half("server")
    with _connect(server) as tls:
        tls.settimeout(2)
        tls.sendall(request)
        answer = tls.recv(65536)  # one TLS record holds the whole answer (section 0)
    # Roles come from the cluster (item 25: ccm.pem is CallManager-trust, so CCM only) and
    # the TTL from tvs-ttl: compared by shape; command, session echo, tags and status exactly.
    assert _shape(answer) == _shape(expected)
    assert answer[13] == expected[13]  # STATUS
    if answer[13] == 0:
        assert answer[14:19] == bytes.fromhex("0800010109")  # ROLES = CCM (code 1)


@needs_transcripts
@pytest.mark.parametrize("name", sorted(DROPPED))
def test_tls_server_drops_what_tvsd_drops_and_serves_others(
    server: TvsTlsServer, name: str
) -> None:
    with _connect(server) as bad:
        bad.settimeout(2)
        for message in load(name).half("client"):
            bad.sendall(message)
        _other_client_is_served(server)
        assert _read_until_close(bad) == ([], True)


@needs_transcripts
def test_silent_and_truncated_clients_are_closed_and_do_not_starve_others(
    server: TvsTlsServer,
) -> None:
    # tvsd waits for ever on a held-open truncated body (1.7); vphone bounds each read by
    # read_timeout (0.5 s here), so a silent client cannot hold its slot.
    truncated = load("tvs-raw-truncated-body-held-open").half("client")[0]
    with _connect(server) as silent, _connect(server) as held:
        silent.settimeout(3)
        held.settimeout(3)
        held.sendall(truncated)
        _other_client_is_served(server)
        assert _read_until_close(silent) == ([], True)
        assert _read_until_close(held) == ([], True)
    _other_client_is_served(server)


@needs_transcripts
@pytest.mark.parametrize("name", sorted(SECOND_ANSWERED))
def test_tls_server_answers_every_request_on_a_kept_connection(
    server: TvsTlsServer, name: str
) -> None:
    transcript = load(name)
    requests = transcript.half("client")
    with _connect(server) as tls:
        tls.settimeout(2)
        tls.sendall(b"".join(requests))
        answers = [tls.recv(65536) for _ in requests]  # one record per answer
        tls.sendall(_valid_request(9))  # and it keeps answering, whatever the session id
        answers.append(tls.recv(65536))
    sessions = [int.from_bytes(r[4:8], "big") for r in requests] + [9]
    assert [_shape(a)[:2] for a in answers] == [(2, s) for s in sessions]
    assert _shape(answers[0]) == _shape(transcript.half("server")[0])


@needs_transcripts
def test_header_split_over_tls_is_answered(server: TvsTlsServer) -> None:
    request = _valid_request()
    with _connect(server) as tls:
        tls.settimeout(2)
        tls.sendall(request[:5])
        time.sleep(0.05)  # separate TLS records, as in tvs-raw-header-split
        tls.sendall(request[5:10])
        time.sleep(0.05)
        tls.sendall(request[10:])
        answer = tls.recv(65536)
    assert _shape(answer) == (2, 1, [7, 8, 9])


@needs_transcripts
def test_one_shot_client_closing_ends_the_connection_cleanly(server: TvsTlsServer) -> None:
    # tvsc reads its one answer and closes: the server sees EOF and ends without a drop.
    with _connect(server) as tls:
        tls.sendall(_valid_request())
        assert tls.recv(65536)
    deadline = time.monotonic() + 2
    while server.requests < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    _other_client_is_served(server)
    assert server.dropped == 0


# --- vphone's client against a scripted peer replaying the server half ---------------------------


class ScriptedPeer:
    """A TLS server with the captures' tvs.pem that reads one request and replays an answer (or
    closes without one), recording what the client sent."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.received: list[bytes] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TRANSCRIPTS / "certs" / "tvs.pem")
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with self.context.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(3)
            reader = FrameReader()
            while not list(reader.feed(self._recv(tls))):
                pass
            if self.answer is not None:
                tls.sendall(self.answer)

    def _recv(self, tls: ssl.SSLSocket) -> bytes:
        data = tls.recv(65536)
        if not data:
            raise EOFError
        self.received.append(data)
        return data

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


def _trust_peer(cert: x509.Certificate) -> str | None:
    return None if cert == certificate("tvs.pem") else "not the captures' tvs.pem"


@needs_transcripts
@pytest.mark.parametrize(
    "name",
    [
        "tvs-verify-valid",
        "tvs-verify-valid-all-roles",
        "tvs-verify-unknown",
        "tvs-verify-default-device-name",
    ],
)
def test_client_sends_what_tvsc_sent_and_reads_the_answer(name: str) -> None:
    transcript = load(name)
    (request,) = transcript.half("client")
    (reply,) = transcript.half("server")
    (frame,) = FrameReader().feed(request)
    peer = ScriptedPeer(reply)
    try:
        answer = tvs_query_tls(
            peer.address,
            issuer="",
            serial=b"",
            certificate=frame.get(2),
            check_server=_trust_peer,
            client=None,
            device_name=(frame.get(1) or b"")[1:].decode("ascii"),
            session=1,  # tvsc's first session id (1.2)
        )
    finally:
        peer.close()
    assert peer.received == [request]  # the same bytes, in one record (section 0)
    expected = {
        "tvs-verify-valid": TvsAnswer(True, (1, 3), 3600),
        "tvs-verify-valid-all-roles": TvsAnswer(True, (0, 1, 2, 3, 4, 7, 21), 86400),
        "tvs-verify-unknown": TvsAnswer(False, (), 0),
        "tvs-verify-default-device-name": TvsAnswer(True, (1, 3), 3600),
    }[name]
    assert answer == expected


@needs_transcripts
def test_query_to_a_verify_only_server_is_reported_as_such() -> None:
    # tvs-raw-query-request: tvsd closes on a QUERY without answering (1.3, 1.7).
    peer = ScriptedPeer(None)
    try:
        with pytest.raises(QueryNotAnswered):
            tvs_query_tls(
                peer.address,
                issuer="CN=CCM Test;OU=CCM;O=Wire Test",
                serial=bytes.fromhex("973c87ba0dbb6efa8c3eb97e0ce4682a"),
                check_server=_trust_peer,
                client=None,
                device_name="CP-8845-SEP0011223344A1",
                timeout=2,
            )
    finally:
        peer.close()
    assert peer.received and peer.received[0][2] == 3  # it was a QUERY


@needs_transcripts
def test_phone_marks_a_verify_only_server_and_still_verifies_with_it() -> None:
    # The fallback (phone.trust.tvs): a dropped QUERY fails closed (item 24) and that server is
    # asked no more QUERYs until reboot; VERIFY questions still go to it.
    from trustkit import Kit

    kit = Kit.make("c1")
    held = certificate("ccm.pem")
    calls: list[bytes | None] = []

    def exchange(
        server: TvsServer, issuer: str, serial: bytes, check: Any, cert: bytes | None
    ) -> TvsAnswer:
        calls.append(cert)
        if cert is None:
            raise QueryNotAnswered("closed the connection on a QUERY without answering")
        return TvsAnswer(True, (1, 3), 3600)

    client = TvsClient()
    now = datetime(2026, 1, 1)
    args: dict[str, Any] = {"itl": kit.itl(), "servers": [TvsServer("tvs1")], "exchange": exchange}
    first = client.ask("CN=x", b"\x01", now=now, **args)
    assert not first.valid and first.rule == "item 24" and "VERIFY only" in first.reason
    second = client.ask("CN=x", b"\x02", now=now, **args)
    assert not second.valid and calls == [None]  # not asked again
    verified = client.ask("CN=y", b"\x03", now=now, certificate=held, **args)
    assert verified.valid and verified.certificate == held and calls == [None, _der(held)]
    client.clear()  # a reboot forgets it
    client.ask("CN=x", b"\x01", now=now, **args)
    assert calls[-1] is None and len(calls) == 3

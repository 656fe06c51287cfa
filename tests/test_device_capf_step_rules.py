"""The CAPF step's records and the TVS questions a phone asks (docs/capf.md, items 20-21).

docs/capf.md, "What the phone does", 4: the trace has a ``capf`` entry for the trust decision
(rule item 20) and one for the outcome (rule seed), naming the server, what the phone did and
what CAPF answered. After CAPF, success or not, the phone reads its config again (the machine
table's ``capf_done`` / ``capf_failed`` rows). Item 21: the phone asks the TVS members of its
current config, on their port, and sends VERIFY with the certificate in hand, else QUERY.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfOperation
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device.capf import CapfClientOutcome
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.device.port import Requester
from phone.device.trace import PhoneEvent, StateChanged, TraceEntry
from phone.errors import NetworkError
from phone.net.memory import MemoryBackend
from phone.pki import Identity
from phone.trust.tvs import ServerCheck, TlsRefused, TvsAnswer, TvsServer

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
CAPF_PORT = 3804  # tvs-capf-wire.md 2: CAPF listens on TCP 3804


def clock() -> datetime:
    return NOW


Exchange = Callable[[str, int, object, ServerCheck], None]


class Scripted(MemoryBackend):
    """The lab, with CAPF sessions replaced by ``exchange`` (when given) and every TVS question
    noted: which server, and whether the certificate was sent (VERIFY) or not (QUERY)."""

    def __init__(self, lab: Lab, exchange: Exchange | None = None) -> None:
        super().__init__(lab, clock=clock)
        self.exchange = exchange
        self.tvs_asked: list[tuple[TvsServer, bytes | None]] = []

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: object,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        if self.exchange is None:
            super().capf_exchange(host, port, conversation, check_server, requester=requester)  # type: ignore[arg-type]
        else:
            self.exchange(host, port, conversation, check_server)

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
        self.tvs_asked.append((server, certificate))
        return super().tvs_query(
            server,
            issuer,
            serial,
            check_server,
            client=client,
            requester=requester,
            certificate=certificate,
        )


def new_lab(auth: CapfAuth = CapfAuth.NULL) -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    lab.cluster().add_device(Device(MAC), now=NOW)
    secret = "7391" if auth is CapfAuth.STRING else None
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, auth, secret=secret, now=NOW)
    return lab


def booted(lab: Lab, backend: Scripted) -> tuple[VirtualPhone, list[str]]:
    """Boot a phone; return it and the triggers that left the CAPF state."""
    phone = create_phone(lab, mac=MAC, clock=clock, backend=backend)
    phone.keys = pooled_keys()
    triggers: list[str] = []

    def hook(event: PhoneEvent) -> None:
        if isinstance(event, StateChanged) and event.old is State.CAPF:
            triggers.append(event.trigger)

    phone.subscribe(hook)
    assert phone.boot() is State.REGISTERED
    return phone, triggers


def capf_entries(phone: VirtualPhone) -> list[tuple[str, str, str, str | None, str | None]]:
    return [
        (t.decision, t.rule, t.reason, t.file, t.server) for t in phone.trace if t.step == "capf"
    ]


def capf_host(lab: Lab) -> str:
    return lab.cluster().publisher.hostname


def ended_with(outcome: CapfClientOutcome) -> Exchange:
    """A CAPF server the phone trusts (the lab's), whose session ends with ``outcome``."""

    def exchange(host: str, port: int, conversation: object, check: ServerCheck) -> None:
        certificate = lab_capf[0]
        assert check(certificate) is None
        conversation.outcome = outcome  # type: ignore[attr-defined]

    lab_capf: list[x509.Certificate] = []
    exchange.lab_capf = lab_capf  # type: ignore[attr-defined]
    return exchange


def scripted(lab: Lab, outcome: CapfClientOutcome) -> Scripted:
    exchange = ended_with(outcome)
    exchange.lab_capf.append(lab.cluster().capf.certificate)  # type: ignore[attr-defined]
    return Scripted(lab, exchange)


# --- no string, no session (docs/capf.md 1) ------------------------------------------------------


def test_capf_operation_by_string_without_a_typed_string_fails_naming_the_server() -> None:
    lab = new_lab(CapfAuth.STRING)
    host = capf_host(lab)
    phone, triggers = booted(lab, Scripted(lab))
    reason = (
        f"CAPF {host}:{CAPF_PORT} has an operation that needs the authentication string, "
        "and none was entered on the phone"
    )
    assert capf_entries(phone) == [("failed", "seed", reason, None, host)]
    assert triggers == ["capf_failed"]


# --- whom the phone trusts (item 20) and the outcome (seed) ---------------------------------------


def test_item20_capf_trust_and_the_install_outcome_are_recorded_naming_the_server() -> None:
    lab = new_lab()
    host = capf_host(lab)
    phone, triggers = booted(lab, Scripted(lab))
    (trusted, done) = capf_entries(phone)
    assert trusted[:2] == ("accepted", "item 20") and trusted[3:] == (None, host)
    assert trusted[2].startswith("the CAPF certificate CN=CAPF-")
    assert trusted[2].endswith(") is the CAPF record of the installed ITL")
    assert done[:2] == ("accepted", "seed") and done[3:] == (None, host)
    # What the phone did, each action separated by "; " (docs/capf.md 4).
    assert done[2].startswith(
        f"CAPF {host}:{CAPF_PORT} completed: CAPF completed the operation (reason 1) "
        "(the phone authenticated with the null string; generated an RSA-2048 key; "
        "stored LSC serial "
    )
    assert done[2].endswith(" (expires 2031-06-01))")  # 5 years from NOW
    assert triggers == ["capf_done"]


def test_item20_capf_server_refused_in_tls_is_recorded_naming_the_server() -> None:
    lab = new_lab()
    host = capf_host(lab)

    def refuse(h: str, port: int, conversation: object, check: ServerCheck) -> None:
        raise TlsRefused(f"TLS to CAPF {h}:{port} refused: a stranger")

    phone, triggers = booted(lab, Scripted(lab, refuse))
    assert capf_entries(phone) == [
        ("rejected", "item 20", f"TLS to CAPF {host}:{CAPF_PORT} refused: a stranger", None, host)
    ]
    assert triggers == ["capf_failed"]


def test_capf_that_cannot_be_reached_is_a_failure_under_the_seed_rule() -> None:
    lab = new_lab()
    host = capf_host(lab)

    def drop(h: str, port: int, conversation: object, check: ServerCheck) -> None:
        raise NetworkError("connection reset")

    phone, triggers = booted(lab, Scripted(lab, drop))
    assert capf_entries(phone) == [
        ("failed", "seed", f"CAPF {host}:{CAPF_PORT}: connection reset", None, host)
    ]
    assert triggers == ["capf_failed"]


def test_capf_with_nothing_to_do_is_skipped_and_done() -> None:
    # END_SESSION {0} before any operation: nothing pending (docs/capf.md, the session).
    lab = new_lab()
    host = capf_host(lab)
    nothing = CapfClientOutcome(
        ok=False,
        reason="CAPF had nothing to do (reason 0)",
        actions=("authenticated with the null string",),
        no_action=True,
    )
    phone, triggers = booted(lab, scripted(lab, nothing))
    (trusted, skipped) = capf_entries(phone)
    assert trusted[:2] == ("accepted", "item 20") and trusted[4] == host
    assert skipped == (
        "skipped",
        "seed",
        f"CAPF {host}:{CAPF_PORT}: CAPF had nothing to do (reason 0)",
        None,
        host,
    )
    assert triggers == ["capf_done"]


def test_capf_refusal_before_any_action_is_a_rejection_where_the_phone_did_nothing() -> None:
    lab = new_lab()
    host = capf_host(lab)
    refused = CapfClientOutcome(
        ok=False, reason="CAPF does not know this device (reason 9)", actions=()
    )
    phone, triggers = booted(lab, scripted(lab, refused))
    (_, outcome) = capf_entries(phone)
    assert outcome == (
        "rejected",
        "seed",
        f"CAPF {host}:{CAPF_PORT} failed: CAPF does not know this device (reason 9) "
        "(the phone nothing)",
        None,
        host,
    )
    assert triggers == ["capf_failed"]


def test_capf_completed_outcome_lists_every_action_and_is_done() -> None:
    lab = new_lab()
    host = capf_host(lab)
    completed = CapfClientOutcome(
        ok=True,
        reason="CAPF completed the operation (reason 1)",
        actions=("authenticated with the null string", "deleted its LSC"),
    )
    phone, triggers = booted(lab, scripted(lab, completed))
    (_, outcome) = capf_entries(phone)
    assert outcome == (
        "accepted",
        "seed",
        f"CAPF {host}:{CAPF_PORT} completed: CAPF completed the operation (reason 1) "
        "(the phone authenticated with the null string; deleted its LSC)",
        None,
        host,
    )
    assert triggers == ["capf_done"]


# --- which TVS, and what the phone sends it (items 21-22) -----------------------------------------


def tvs_entries(phone: VirtualPhone, since: int) -> list[TraceEntry]:
    return [t for t in phone.trace[since:] if t.step == "tvs"]


def test_item22_phone_sends_verify_with_the_certificate_and_query_without() -> None:
    lab = new_lab()
    backend = Scripted(lab)
    phone, _ = booted(lab, backend)
    certificate = lab.cluster().capf.certificate
    issuer = certificate.issuer.rfc4514_string()
    serial = certificate.serial_number.to_bytes(20, "big").lstrip(b"\0")
    assert phone.config is not None and phone.config.tvs_members

    mark, asked = len(phone.trace), len(backend.tvs_asked)
    verified = phone._ask_tvs(issuer, serial, certificate)
    (entry,) = tvs_entries(phone, mark)
    assert entry.reason == (
        f"asked (verify) about serial {serial.hex()} ({issuer!r}): {verified.reason}"
    )
    assert entry.decision == ("accepted" if verified.valid else "rejected")
    assert entry.rule == verified.rule and entry.server == verified.server
    ((_, sent),) = backend.tvs_asked[asked:]
    assert sent is not None and sent == certificate.public_bytes(Encoding.DER)

    phone.power_off()  # item 23: the TVS cache is volatile
    phone.boot()
    mark, asked = len(phone.trace), len(backend.tvs_asked)
    queried = phone._ask_tvs(issuer, serial)
    (entry,) = tvs_entries(phone, mark)
    assert entry.reason == (
        f"asked (query) about serial {serial.hex()} ({issuer!r}): {queried.reason}"
    )
    ((_, sent),) = backend.tvs_asked[asked:]
    assert sent is None


def test_item24_a_tvs_answer_of_invalid_is_recorded_as_rejected() -> None:
    lab = new_lab()
    backend = Scripted(lab)
    phone, _ = booted(lab, backend)
    mark = len(phone.trace)
    outcome = phone._ask_tvs("CN=nobody", b"\x01\x02")
    assert not outcome.valid
    (entry,) = tvs_entries(phone, mark)
    assert entry.decision == "rejected"
    assert entry.reason.startswith("asked (query) about serial 0102 ('CN=nobody'): ")


def test_item21_phone_asks_the_tvs_members_of_its_config_on_their_port() -> None:
    lab = new_lab()
    backend = Scripted(lab)
    phone, _ = booted(lab, backend)
    assert phone.config is not None
    (host, _port), *_ = phone.config.tvs_members
    phone.config = dataclasses.replace(phone.config, tvs_members=((host, 2446),))
    asked = len(backend.tvs_asked)
    phone._ask_tvs("CN=nobody", b"\x01\x02")
    assert [s for s, _ in backend.tvs_asked[asked:]] == [TvsServer(host, 2446)]

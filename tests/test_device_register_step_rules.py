"""The REGISTERING step against a scripted registrar: which CallManagers, ports and credentials
the phone uses (item 1, issue 15), how each answer is recorded, and the item-32 fallback."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.device.port import RegisterRequest, RegisterResult, SccpConversation
from phone.device.sccp import SccpClient
from phone.errors import NetworkError
from phone.net.memory import MemoryBackend

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"

Answer = RegisterResult | NetworkError


class Registrar(MemoryBackend):
    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, clock=lambda: NOW)
        self.answers: dict[str, Answer] = {}
        self.requests: list[RegisterRequest] = []

    def register(self, request: RegisterRequest) -> RegisterResult:
        answer = self.answers.get(request.callmanager)
        if answer is None:
            return super().register(request)
        self.requests.append(request)
        if isinstance(answer, NetworkError):
            raise answer
        return answer


def phone_with(
    callmanagers: tuple[tuple[str, int, int], ...], **config: object
) -> tuple[VirtualPhone, Registrar]:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    lab.cluster().add_device(Device(MAC), now=NOW)
    backend = Registrar(lab)
    phone = create_phone(lab, mac=MAC, clock=lambda: NOW, backend=backend)
    assert phone.boot() is State.REGISTERED
    assert phone.config is not None
    phone.config = dataclasses.replace(phone.config, callmanagers=callmanagers, **config)  # type: ignore[arg-type]
    return phone, backend


def registered(phone: VirtualPhone, since: int) -> list[tuple[str, str, str, str | None]]:
    return [(t.step, t.decision, t.rule, t.server) for t in phone.trace[since:]]


def test_item1_first_callmanager_down_the_next_one_registers_on_its_sip_port() -> None:
    phone, backend = phone_with(
        (("cm-a", 5070, 5071), ("cm-b", 5080, 5081)), digest_user="alice", digest_password="pw"
    )
    backend.answers = {
        "cm-a": NetworkError("connection refused"),
        "cm-b": RegisterResult(True, 200, "OK", exchanges=(("challenged", "item 40", "401"),)),
    }
    mark = len(phone.trace)
    assert phone._step_register() == "registered"
    assert [(r.callmanager, r.port, r.transport) for r in backend.requests] == [
        ("cm-a", 5070, "tcp"),
        ("cm-b", 5080, "tcp"),
    ]
    assert all(r.check_server is None and r.client_identity is None for r in backend.requests)
    assert {(r.digest_user, r.digest_password) for r in backend.requests} == {("alice", "pw")}
    assert registered(phone, mark) == [
        ("register", "challenged", "item 40", "cm-b"),
        ("register", "accepted", "item 1", "cm-b"),
    ]
    assert [t.reason for t in phone.trace[mark:]] == [
        "cm-b:5080/tcp: 401",
        "registered with cm-b:5080/tcp",
    ]
    assert phone.registered_with == "cm-b"


def test_item1_every_callmanager_failing_names_each_failure_under_the_last_rule() -> None:
    phone, backend = phone_with((("cm-a", 5060, 5061), ("cm-b", 5060, 5061)))
    backend.answers = {
        "cm-a": RegisterResult(False, 503, "Service Unavailable"),
        "cm-b": RegisterResult(False, 403, "Forbidden", rule="item 42"),
    }
    mark = len(phone.trace)
    assert phone._step_register() == "register_failed"
    (entry,) = phone.trace[mark:]
    assert (entry.step, entry.decision, entry.rule, entry.server) == (
        "register",
        "failed",
        "item 42",
        None,
    )
    assert (
        entry.reason
        == "cm-a:5060/tcp answered 503 Service Unavailable; cm-b:5060/tcp answered 403 Forbidden"
    )
    assert phone.status[-1] == "Registration failed"
    assert not any(s.startswith("Registration Rejected") for s in phone.status)


def test_item1_a_refusal_without_a_rule_is_item_1() -> None:
    phone, backend = phone_with((("cm-a", 5060, 5061),))
    backend.answers = {"cm-a": NetworkError("connection refused")}
    mark = len(phone.trace)
    assert phone._step_register() == "register_failed"
    (entry,) = phone.trace[mark:]
    assert (entry.rule, entry.reason) == ("item 1", "cm-a:5060: connection refused")


def test_item1_a_configuration_without_callmanagers_cannot_register() -> None:
    phone, _ = phone_with(())
    mark = len(phone.trace)
    assert phone._step_register() == "register_failed"
    (entry,) = phone.trace[mark:]
    assert (entry.step, entry.decision, entry.rule, entry.reason) == (
        "register",
        "failed",
        "item 1",
        "the configuration names no CallManager",
    )


def test_item32_a_refused_config_from_another_tftp_server_registers_to_this_tftp_server() -> None:
    phone, backend = phone_with((("cm-old", 5060, 5061),), tftp_servers=("old-tftp",))
    backend.answers = {phone.tftp: RegisterResult(True, 200, "OK")}
    phone._volatile.config_refused = True
    mark = len(phone.trace)
    assert phone._step_register() == "registered"
    assert [(r.callmanager, r.port) for r in backend.requests] == [(phone.tftp, 5060)]
    skipped = phone.trace[mark]
    assert (skipped.step, skipped.decision, skipped.rule) == ("register", "skipped", "item 32")
    assert skipped.reason == (
        "the configuration in use came from another TFTP server and this one's was refused: "
        f"registering to the configured TFTP server {phone.tftp} (C2)"
    )


def test_item32_a_refused_config_of_this_tftp_server_keeps_its_callmanagers() -> None:
    phone, backend = phone_with((("cm-a", 5060, 5061),))
    assert phone.config is not None
    phone.config = dataclasses.replace(phone.config, tftp_servers=(phone.tftp,))
    backend.answers = {"cm-a": RegisterResult(True, 200, "OK")}
    for refused in (True, False):
        phone._volatile.config_refused = refused
        mark = len(phone.trace)
        assert phone._step_register() == "registered"
        assert [t.rule for t in phone.trace[mark:]] == ["item 1"]


class SccpRejecting(MemoryBackend):
    """A CallManager that answers every SCCP registration with RegisterReject ``text``."""

    def __init__(self, lab: Lab, text: str) -> None:
        super().__init__(lab, clock=lambda: NOW)
        self.text = text

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        assert isinstance(conversation, SccpClient)
        conversation.result = RegisterResult(False, 0, self.text)


def test_sccp_register_reject_is_shown_with_the_callmanagers_text() -> None:
    # Cisco TechNote 112068: a 7900 shows "Registration Rejected: <the CM's text>".
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    lab.cluster().add_device(Device(MAC), now=NOW)
    phone = create_phone(
        lab,
        mac=MAC,
        model="7942",
        protocol="sccp",
        clock=lambda: NOW,
        backend=SccpRejecting(lab, "Unknown Device"),
    )
    assert phone.boot() is State.REGISTRATION_FAILED
    host = lab.cluster().publisher.hostname
    assert phone.status[-2:] == ["Registration Rejected: Unknown Device", "Registration failed"]
    (failed,) = [t for t in phone.trace if t.step == "register"]
    assert failed.reason == f"{host}:2000/tcp (SCCP) answered RegisterReject 'Unknown Device'"

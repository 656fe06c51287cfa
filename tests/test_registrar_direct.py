"""Differential test: the in-memory registration without messages against the full exchange.

:func:`phone.cluster.registrar_direct.register_direct` answers a first REGISTER without
building or parsing SIP (issue 17). Each case runs on two identical labs, one through the
full exchange (``register_with`` over ``Registrar.handle``), one through the direct path,
and compares everything either can change: the phone's result, the cluster's log,
registrations, devices and ITL hash reports, the registrar's counters and the bytes drawn
from its random source. Cases where the direct path must decline (digest, auto-registration,
a throttle record, an ITL report the header cannot carry) assert that it does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import golden
import pytest
from keypool import pooled_key_lists

from phone.api import create_lab, create_phone
from phone.cluster.authguard import AuthFailures
from phone.cluster.cluster import Cluster
from phone.cluster.records import Device, SecurityMode
from phone.cluster.registrar import Registrar, Source
from phone.cluster.registrar_direct import register_direct
from phone.device.port import ItlReport, RegisterRequest, RegisterResult, Requester
from phone.net import memory
from phone.net.sip import register_result, register_with
from phone.pki import PooledKeys
from phone.wire.sip.register import final_outcome

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
MAC = "001122334455"
HASH = "0123456789abcdef0123456789abcdef01234567"

Setup = Callable[[Cluster], None]
_SERIALS = re.compile(r"\b[0-9a-f]{16,}\b")
_REPORTED = re.compile(r"ITL report [0-9a-f]{12}")


def _lab_cluster(setup: Setup) -> Cluster:
    lab = create_lab("cluster1", now=NOW, keys=PooledKeys(pooled_key_lists()))
    cluster = lab.cluster()
    cluster.add_device(Device(MAC, "8841"), now=NOW)
    setup(cluster)
    return cluster


def _run(
    setup: Setup,
    *,
    direct: bool,
    transport: str = "udp",
    report: ItlReport | None = None,
    call: bool = True,
) -> tuple[object, ...]:
    """The outcome and everything it changed; ``call=False``: nothing registers (a baseline)."""
    cluster = _lab_cluster(setup)
    drawn: list[int] = []
    counter = iter(range(1, 1_000_000))

    def random(n: int) -> bytes:
        drawn.append(n)
        return bytes([next(counter) % 256]) * n

    host = cluster.publisher.hostname
    registrar = Registrar(cluster, host, random=random)
    source = Source("10.1.2.3", 5060, transport, None)
    now = NOW + timedelta(minutes=5)
    seq = cluster.next_log_seq
    request = RegisterRequest(
        host, 5060, transport, Requester(MAC, "8841", "10.1.2.3"), itl_report=report
    )
    result: RegisterResult | None = None
    if not call:
        pass
    elif direct:
        answer = register_direct(
            registrar,
            mac=MAC,
            model="8841",
            itl_report=None
            if report is None
            else (report.tftp_host, report.itl_hash, report.timestamp),
            source=source,
            now=now,
        )
        result = (
            None
            if answer is None
            else register_result(
                final_outcome(answer.status, answer.phrase, answer.why, expires=answer.expires),
                cluster.name,
            )
        )
    else:
        result = register_with(
            lambda m: registrar.handle(m, source, now),
            request,
            local=("10.1.2.3", 5060),
            cluster=cluster.name,
        )
    log = list(cluster.log_since(seq))
    return (
        result,
        log,
        dict(cluster.registrations),
        dict(cluster.devices),
        dict(cluster.hashes.devices),  # the TFTP rows hash lab-specific certificates
        (registrar.accepted, registrar.refused, registrar.challenges),
        drawn,
    )


def _mixed_secure(cluster: Cluster) -> None:
    cluster.set_mixed_mode(True, now=NOW)
    cluster.update_device(MAC, now=NOW, security_mode=SecurityMode.AUTHENTICATED)


def _nothing(cluster: Cluster) -> None:
    del cluster


@pytest.mark.parametrize(
    ("setup", "transport"),
    [(_nothing, "udp"), (_nothing, "tls"), (_mixed_secure, "tcp"), (_mixed_secure, "tls")],
    ids=["plain-udp", "plain-tls", "secure-over-tcp-refused", "secure-without-cert-refused"],
)
def test_direct_equals_full_exchange(setup: Setup, transport: str) -> None:
    full = _run(setup, direct=False, transport=transport)
    fast = _run(setup, direct=True, transport=transport)
    assert fast[0] is not None, "the direct path declined a case it should answer"
    assert fast == full


def test_direct_equals_full_exchange_refusal_texts() -> None:
    full = _run(_mixed_secure, direct=False, transport="tcp")
    assert full[0] == RegisterResult(
        False,
        403,
        "Forbidden: SEP001122334455 is in authenticated mode: it must register over TLS",
        "cluster1",
    )
    assert _run(_mixed_secure, direct=True, transport="tcp") == full


def test_direct_equals_full_exchange_with_itl_report() -> None:
    report = ItlReport("cucm-pub", HASH, 99)
    full = _run(_nothing, direct=False, report=report)
    fast = _run(_nothing, direct=True, report=report)
    assert fast[0] is not None and fast[0] == full[0]
    assert fast == full


def _digest(cluster: Cluster) -> None:
    cluster.update_device(
        MAC, now=NOW, digest_authentication=True, digest_user="u1", digest_password="p1"
    )


def _unknown(cluster: Cluster) -> None:
    cluster.remove_device(MAC, now=NOW)


def _throttle_record(cluster: Cluster) -> None:
    # One failure counted, not throttled: the full path may still log or forget the record.
    cluster.state.auth_failures["10.1.2.3"] = AuthFailures("10.1.2.3", 1, 0)


@pytest.mark.parametrize("setup", [_digest, _unknown, _throttle_record])
def test_direct_declines_where_the_messages_matter(setup: Setup) -> None:
    fast = _run(setup, direct=True)
    assert fast[0] is None
    assert fast == _run(setup, direct=True, call=False)  # declining changed nothing


def test_direct_declines_an_itl_report_the_header_cannot_carry() -> None:
    assert _run(_nothing, direct=True, report=ItlReport("cucm-pub", "not-hex", 99))[0] is None


def test_boot_traces_identical_with_and_without_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole boot and reboot: the phone's trace, state and status, and the lab's log."""

    def boot() -> str:
        lab = create_lab("cluster1", now=NOW, keys=PooledKeys(pooled_key_lists()))
        phone = create_phone(lab, mac=MAC, clock=lambda: NOW + timedelta(minutes=5))
        phone.boot()
        phone.boot()
        # Each lab has certificates of its own (random serials, so ITL hashes): masked.
        text = "\n".join([*map(str, phone.trace), str(phone.state), *phone.status])
        text += "\n".join(map(str, lab.cluster().log))
        return _SERIALS.sub("<hex>", _REPORTED.sub("ITL report <hex>", text))

    taken: list[object] = []
    real = register_direct

    def spy(*args: object, **kwargs: object) -> object:
        answer = real(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(answer)
        return answer

    monkeypatch.setattr(memory, "register_direct", spy)  # what MemoryBackend calls
    fast = boot()
    # The first boot auto-registers the phone (the full exchange); the reboot goes direct.
    assert len(taken) == 2 and taken[0] is None and taken[1] is not None
    monkeypatch.setattr(memory, "register_direct", lambda *a, **k: None)
    assert boot() == fast


def test_library_snapshots_identical_with_and_without_direct_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every library scenario's report and the golden boot traces, both ways (issue 17)."""
    fast = golden.snapshots()
    monkeypatch.setattr(memory, "register_direct", lambda *a, **k: None)
    full = golden.snapshots()
    assert sorted(fast) == sorted(full) and len(full) >= 23
    for name in full:
        assert fast[name] == full[name], name

"""Issue 13 item 4: SIP digest that resists guessing.

Identical answers for an unknown user and a wrong password, every failure in the cluster log
with source, user and time, and the per-source throttle (``sip-auth-failures``,
``sip-auth-lockout``): its boundary, its expiry under the simulated clock, its off switch,
other sources unaffected, and its state saved in the lab folder and shown by ``lab show``.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from clusterlab import NOW, make_lab

from phone.cli import main
from phone.cli.lab_show import cluster_report
from phone.cluster.authguard import AuthFailures, after_failure, source_key
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.rebase import baseline, rebase
from phone.cluster.records import Device, unix_time
from phone.cluster.registrar import Registrar, Source
from phone.cluster.store import load_lab, save_lab
from phone.wire.sip import (
    RegisterClient,
    SipRequest,
    SipResponse,
    answer_challenge,
    encode_message,
    parse_challenge,
)

MAC = "001122334455"
USER, PASSWORD = "alice", "s3cret-pw"
ATTACKER = Source("192.0.2.66", 5070, "udp")
PHONE = Source("192.0.2.10", 5060, "udp")
T0 = unix_time(NOW)


@pytest.fixture
def cluster() -> Cluster:
    cluster = make_lab().cluster()
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
    )
    return cluster


def registrar(cluster: Cluster) -> Registrar:
    return Registrar(cluster, cluster.publisher.hostname, random=random.Random(7).randbytes)


_CALLS = iter(range(1, 1_000_000))


def plain_register(cluster: Cluster, *, mac: str | None = None) -> SipRequest:
    """A REGISTER without credentials: a third-party client (no MAC) unless ``mac`` is given."""
    ua = RegisterClient(
        registrar=cluster.publisher.hostname,
        transport="udp",
        local=("192.0.2.66", 5070),
        mac=mac or MAC,
        model="8841",
        user=USER,
        password=PASSWORD,
        random=random.Random(next(_CALLS)).randbytes,
    )
    request = ua.start()
    if mac is None:
        contact = "<sip:alice@192.0.2.66:5070>"
        request = request.replace_headers(("Contact", contact), drop=("Contact",))
    return request


def with_credentials(
    request: SipRequest, response: SipResponse, *, user: str, password: str, branch: str
) -> SipRequest:
    """``request`` answering the 401 ``response``, as a new transaction ``branch``."""
    challenge = parse_challenge(response.header("WWW-Authenticate"))
    credentials = answer_challenge(
        challenge,
        username=user,
        password=password,
        method=request.method,
        uri=request.uri,
        cnonce="0a4f113b",
        nc=1,
    )
    return request.replace_headers(
        ("Via", f"SIP/2.0/UDP 192.0.2.66:5070;branch=z9hG4bK{branch}"),
        ("CSeq", "2 REGISTER"),
        ("Authorization", credentials.render()),
        drop=("Via", "CSeq", "Authorization"),
    )


def attempt(
    reg: Registrar,
    cluster: Cluster,
    source: Source,
    *,
    user: str = USER,
    password: str = PASSWORD,
    at: datetime = NOW,
    mac: str | None = None,
) -> SipResponse:
    """One whole guess: REGISTER, 401, REGISTER with credentials; the last answer."""
    request = plain_register(cluster, mac=mac)
    first = reg.handle(request, source, at)
    assert first is not None
    if first.status != 401:
        return first
    answer = reg.handle(
        with_credentials(request, first, user=user, password=password, branch=f"{next(_CALLS)}"),
        source,
        at,
    )
    assert answer is not None
    return answer


def comparable(response: SipResponse) -> bytes:
    """The response's bytes with its per-response To tag blanked: what must be identical."""
    headers = tuple(
        (name, value.split(";tag=")[0] + ";tag=X" if name == "To" else value)
        for name, value in response.headers
    )
    return encode_message(SipResponse(response.status, response.reason, headers, response.body))


def twins(cluster: Cluster, reg: Registrar, *, mac: str | None = None) -> tuple[bytes, bytes]:
    """The answers to a wrong password and to an unknown user, for the *same* request bytes
    but the credentials (same Call-ID, From tag, Via branch, CSeq), from two source ports."""
    request = plain_register(cluster, mac=mac)
    answers = []
    for port, user, password in ((6001, USER, "wrong"), (6002, "nobody", "wrong")):
        source = Source("192.0.2.66", port, "udp")
        first = reg.handle(request, source, NOW)
        assert first is not None and first.status == 401
        second = reg.handle(
            with_credentials(request, first, user=user, password=password, branch="same"),
            source,
            NOW,
        )
        assert second is not None
        answers.append(comparable(second))
    return answers[0], answers[1]


# --- identical answers --------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_get_byte_identical_answers(cluster: Cluster) -> None:
    # A third-party client, identified by its digest user: yesterday 404 against 403.
    wrong, unknown = twins(cluster, registrar(cluster))
    assert wrong == unknown
    assert wrong.startswith(b"SIP/2.0 403 Forbidden\r\n")
    assert b'Warning: 399 cucm1.cluster1.lab "wrong digest credentials"\r\n' in wrong


def test_a_cisco_phone_with_another_digest_user_gets_the_wrong_password_answer(
    cluster: Cluster,
) -> None:
    # Identified by its MAC, the device's user was named in the answer; now it is not.
    wrong, unknown = twins(cluster, registrar(cluster), mac=MAC)
    assert wrong == unknown
    assert b"alice" not in wrong.split(b"\r\n\r\n")[0].split(b"Warning:")[1]


def test_unknown_user_follows_the_same_nonce_rules(cluster: Cluster) -> None:
    reg = registrar(cluster)
    # A nonce the registrar never issued: a fresh 401 for both, never a 403 or 404.
    for user in (USER, "nobody"):
        request = plain_register(cluster)
        fake = SipResponse(
            401,
            "Unauthorized",
            (("WWW-Authenticate", 'Digest realm="ccmsipline", nonce="00ff", qop="auth"'),),
        )
        answer = reg.handle(
            with_credentials(request, fake, user=user, password="x", branch=f"n{user}"),
            ATTACKER,
            NOW,
        )
        assert answer is not None and answer.status == 401
    # An expired nonce (item 41): stale=false for a wrong password and an unknown user alike.
    for user in (USER, "nobody"):
        request = plain_register(cluster)
        first = reg.handle(request, ATTACKER, NOW)
        assert first is not None
        late = NOW + timedelta(seconds=601)
        answer = reg.handle(
            with_credentials(request, first, user=user, password="x", branch=f"s{user}"),
            ATTACKER,
            late,
        )
        assert answer is not None and answer.status == 401
        assert parse_challenge(answer.header("WWW-Authenticate")).stale is False


# --- the log --------------------------------------------------------------------------------------


def test_every_failure_is_in_the_cluster_log_with_source_user_and_time(cluster: Cluster) -> None:
    reg = registrar(cluster)
    since = cluster.next_log_seq
    attempt(reg, cluster, ATTACKER, password="wrong")
    attempt(reg, cluster, Source("192.0.2.66", 5071, "tcp"), user="nobody", password="x")
    lines = [str(e) for e in cluster.log_since(since) if "failed" in e.message]
    assert lines == [
        "2026-01-01T12:00:00Z cucm1.cluster1.lab CallManager: SIP digest authentication "
        "failed: source 192.0.2.66:5070/udp, user 'alice': wrong password "
        "(failure 1 of 10 from this source)",
        "2026-01-01T12:00:00Z cucm1.cluster1.lab CallManager: SIP digest authentication "
        "failed: source 192.0.2.66:5071/tcp, user 'nobody': no device has this digest user "
        "(failure 2 of 10 from this source)",
    ]
    assert all(PASSWORD not in str(e) and 'wrong"' not in str(e) for e in cluster.log)


def test_lab_log_prints_the_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = make_lab()
    lab.path = tmp_path / "lab"
    cluster = lab.cluster()
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
    )
    save_lab(lab, tmp_path / "lab")
    again = load_lab(tmp_path / "lab")
    attempt(registrar(again.cluster()), again.cluster(), ATTACKER, password="wrong")
    save_lab(again, tmp_path / "lab")
    capsys.readouterr()
    assert main(["lab", "log", str(tmp_path / "lab")]) == 0
    out = capsys.readouterr().out
    assert (
        "2026-01-01T12:00:00Z cucm1.cluster1.lab CallManager: SIP digest authentication failed: "
        "source 192.0.2.66:5070/udp, user 'alice': wrong password" in out
    )


# --- the throttle ---------------------------------------------------------------------------------


def set_throttle(cluster: Cluster, failures: int, lockout: int) -> None:
    cluster.set_parameter("sip-auth-failures", str(failures), now=NOW)
    cluster.set_parameter("sip-auth-lockout", str(lockout), now=NOW)


def test_defaults_are_10_failures_and_300_seconds(cluster: Cluster) -> None:
    params = cluster.parameters
    assert (params.sip_auth_failures, params.sip_auth_lockout) == (10, 300)


def test_threshold_boundary_n_minus_1_free_n_throttled(cluster: Cluster) -> None:
    set_throttle(cluster, 3, 60)
    reg = registrar(cluster)
    for _ in range(2):
        assert attempt(reg, cluster, ATTACKER, password="wrong").status == 403
    # After N-1 = 2 failures the right password still registers (and forgets the failures).
    assert attempt(reg, cluster, ATTACKER).status == 200
    assert cluster.sip_auth_sources() == []
    for _ in range(3):
        assert attempt(reg, cluster, ATTACKER, password="wrong").status == 403
    # After N = 3: refused unread, even with the right password, with Retry-After.
    refused = attempt(reg, cluster, ATTACKER)
    assert refused.status == 403 and refused.header("Retry-After") == "60"
    assert refused.header("Warning") == (
        '399 cucm1.cluster1.lab "too many failed digest authentications from 192.0.2.66; '
        'retry in 60 s"'
    )
    assert cluster.sip_auth_sources() == [
        AuthFailures("192.0.2.66", 3, T0, USER, until=T0 + 60, refused=1)
    ]


def test_lockout_expires_under_the_simulated_clock(cluster: Cluster) -> None:
    set_throttle(cluster, 3, 60)
    reg = registrar(cluster)
    for _ in range(3):
        attempt(reg, cluster, ATTACKER, password="wrong")
    almost = attempt(reg, cluster, ATTACKER, at=NOW + timedelta(seconds=59))
    assert almost.status == 403 and almost.header("Retry-After") == "1"
    since = cluster.next_log_seq
    assert attempt(reg, cluster, ATTACKER, at=NOW + timedelta(seconds=60)).status == 200
    assert next(e.message for e in cluster.log_since(since)) == (
        "SIP source 192.0.2.66 no longer throttled (it ended 2026-01-01T12:01:00Z; "
        "1 requests refused)"
    )


def test_failures_further_apart_than_the_window_do_not_add_up() -> None:
    record = after_failure(None, "192.0.2.66", "a", T0, threshold=3, lockout=60)
    record = after_failure(record, "192.0.2.66", "a", T0 + 60, threshold=3, lockout=60)
    assert record.failures == 2
    record = after_failure(record, "192.0.2.66", "a", T0 + 121, threshold=3, lockout=60)
    assert (record.failures, record.until) == (1, 0)


def test_zero_switches_the_throttle_off(cluster: Cluster) -> None:
    for failures, lockout in ((0, 300), (10, 0)):
        set_throttle(cluster, failures, lockout)
        reg = registrar(cluster)
        for _ in range(30):
            assert attempt(reg, cluster, ATTACKER, password="wrong").status == 403
        assert attempt(reg, cluster, ATTACKER).status == 200
        assert cluster.sip_auth_sources() == []
        assert "failure" not in cluster.log[-2].message.split(":")[-1]  # no count when off


def test_another_source_is_unaffected_while_one_is_throttled(cluster: Cluster) -> None:
    set_throttle(cluster, 3, 60)
    reg = registrar(cluster)
    for _ in range(50):
        attempt(reg, cluster, ATTACKER, password="wrong")
    assert attempt(reg, cluster, ATTACKER).status == 403
    # The phone at another address registers at its first try, the attacker still refused.
    assert attempt(reg, cluster, PHONE, mac=MAC).status == 200
    assert attempt(reg, cluster, ATTACKER).status == 403
    # The source is the address: another port of it, or IPv4-mapped IPv6, is the same source.
    assert attempt(reg, cluster, Source("::ffff:192.0.2.66", 9, "tcp")).status == 403
    assert source_key("::ffff:192.0.2.66") == "192.0.2.66"
    (record,) = cluster.sip_auth_sources()
    assert (record.failures, record.refused) == (3, 50)  # 47 + 3 attempts, each refused


def test_keepalives_are_answered_and_reset_nothing(cluster: Cluster) -> None:
    set_throttle(cluster, 3, 60)
    reg = registrar(cluster)
    for _ in range(2):
        attempt(reg, cluster, ATTACKER, password="wrong")
    options = plain_register(cluster).replace_headers(("CSeq", "9 OPTIONS"), drop=("CSeq",))
    options = SipRequest("OPTIONS", options.uri, options.headers, b"")
    answer = reg.handle(options, ATTACKER, NOW)
    assert answer is not None and answer.status == 200
    assert cluster.sip_auth_sources()[0].failures == 2  # not reset by a keepalive
    attempt(reg, cluster, ATTACKER, password="wrong")
    answer = reg.handle(
        SipRequest("OPTIONS", options.uri, options.headers, b""),
        Source("192.0.2.66", 1, "udp"),
        NOW,
    )
    assert answer is not None and answer.status == 200  # keepalives pass a throttle


def test_the_throttle_is_saved_and_shown_by_lab_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "lab"
    lab = make_lab()
    cluster = lab.cluster()
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
    )
    save_lab(lab, folder)
    lab = load_lab(folder)
    cluster = lab.cluster()
    set_throttle(cluster, 3, 600)
    reg = registrar(cluster)
    for _ in range(5):
        attempt(reg, cluster, ATTACKER, password="wrong")
    save_lab(lab, folder)
    again: Lab = load_lab(folder)
    (record,) = again.cluster().sip_auth_sources()
    assert record == AuthFailures("192.0.2.66", 3, T0, USER, until=T0 + 600, refused=2)
    # A request arriving after a reload is still refused: the state survives a restart.
    assert attempt(registrar(again.cluster()), again.cluster(), ATTACKER).status == 403
    throttle = cluster_report(again.cluster(), at=T0 + 100)["sip_throttle"]
    assert throttle == {
        "enabled": True,
        "failures": 3,
        "lockout": 600,
        "sources": [
            {
                "source": "192.0.2.66",
                "failures": 3,
                "last": T0,
                "user": USER,
                "until": T0 + 600,
                "refused": 3,
                "throttled": True,
                "retry_after": 500,
            }
        ],
    }
    capsys.readouterr()
    assert main(["lab", "show", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["clusters"][0]
    assert shown["parameters"]["sip-auth-failures"] == 3
    assert shown["sip_throttle"]["sources"][0]["source"] == "192.0.2.66"
    assert main(["lab", "show", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "  SIP digest throttle: 3 failures within 600 s; " in text
    assert "    192.0.2.66  3 failures, last 2026-01-01T12:00:00Z (user 'alice'): " in text


def test_lab_set_accepts_and_checks_the_throttle_parameters(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    save_lab(make_lab(), folder)
    assert main(["lab", "set", str(folder), "sip-auth-failures", "0"]) == 0
    assert main(["lab", "set", str(folder), "sip-auth-lockout", "86400"]) == 0
    assert main(["lab", "set", str(folder), "sip-auth-lockout", "86401"]) == 2
    assert main(["lab", "set", str(folder), "sip-auth-failures", "-1"]) == 2
    params = load_lab(folder).cluster().parameters
    assert (params.sip_auth_failures, params.sip_auth_lockout) == (0, 86400)


def test_lab_serve_carries_throttle_records_onto_a_reloaded_folder(tmp_path: Path) -> None:
    # `lab serve` reloads the folder when another command changes it (rebase): the throttle
    # its registrar recorded since the last save must survive that.
    folder = tmp_path / "lab"
    save_lab(make_lab(), folder)
    served = load_lab(folder)
    base = baseline(served)
    cluster = served.cluster()
    set_throttle(cluster, 2, 60)
    reg = registrar(cluster)
    for _ in range(2):
        attempt(reg, cluster, ATTACKER, password="nobody-has-it", user="nobody")
    fresh = load_lab(folder)  # the folder as another command left it
    report = rebase(served, base, fresh)
    assert any("1 throttle record" in line for line in report.carried)
    (record,) = fresh.cluster().sip_auth_sources()
    assert (record.source, record.failures, record.until) == ("192.0.2.66", 2, T0 + 60)

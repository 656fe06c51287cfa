"""The pure registrar: line-side digest (items 40-42), signaling authentication (item 7),
the ITL report (item 30), keepalives, and trunk authorization (items 43-44)."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from clusterlab import NOW, make_lab, phone_mic

from phone.api import create_phone
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, SecurityMode
from phone.cluster.registrar import Registrar, Source
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    SipTrunk,
    TrunkSecurityProfile,
    answer_as_uac,
    request_type,
)
from phone.device.machine import State
from phone.errors import LabError
from phone.wire.sip import (
    ITL_HEADER,
    Challenge,
    RegisterClient,
    RegisterOutcome,
    SipRequest,
    SipResponse,
    answer_challenge,
    digest_ha1,
    format_itl_report,
    make_response,
    parse_challenge,
    parse_credentials,
    warning_text,
)

MAC = "001122334455"
USER, PASSWORD = "alice", "s3cret-pw"
_SEEDS = itertools.count(1)
TCP = Source("127.0.0.1", 5070, "tcp")


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab()


@pytest.fixture
def cluster(lab: Lab) -> Iterator[Cluster]:
    cluster = lab.cluster()
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
        replace=True,
    )
    yield cluster
    cluster.sip_auth_reset()  # the lab is shared by the module: no throttle carries over
    for mac in list(cluster.devices):
        cluster.remove_device(mac, now=NOW)
    cluster.set_parameter("autoregistration", "true", now=NOW)
    cluster.set_parameter("sip-station-realm", "ccmsipline", now=NOW)
    if cluster.mixed_mode:
        cluster.set_mixed_mode(False, now=NOW)


def registrar(cluster: Cluster) -> Registrar:
    return Registrar(cluster, cluster.publisher.hostname, random=random.Random(7).randbytes)


def client(
    cluster: Cluster,
    *,
    mac: str = MAC,
    user: str | None = USER,
    password: str | None = PASSWORD,
    extra: tuple[tuple[str, str], ...] = (),
    expires: int = 3600,
) -> RegisterClient:
    return RegisterClient(
        registrar=cluster.publisher.hostname,
        transport="tcp",
        local=("127.0.0.1", 5070),
        mac=mac,
        model="8841",
        user=user,
        password=password,
        expires=expires,
        extra_headers=extra,
        random=random.Random(next(_SEEDS)).randbytes,  # a new Call-ID and branch each time
    )


def run(
    reg: Registrar, ua: RegisterClient, *, source: Source = TCP, now: datetime = NOW
) -> tuple[RegisterOutcome, list[SipResponse]]:
    """Drive a whole registration; return the outcome and every response seen."""
    seen: list[SipResponse] = []
    step: SipRequest | RegisterOutcome | None = ua.start()
    while isinstance(step, SipRequest):
        response = reg.handle(step, source, now)
        assert response is not None
        seen.append(response)
        step = ua.receive(response)
    assert isinstance(step, RegisterOutcome)
    return step, seen


def first_challenge(reg: Registrar, request: SipRequest, now: datetime = NOW) -> Challenge:
    response = reg.handle(request, TCP, now)
    assert response is not None and response.status == 401
    return parse_challenge(response.header("WWW-Authenticate"))


def authorized(
    request: SipRequest,
    challenge: Challenge,
    *,
    user: str = USER,
    password: str = PASSWORD,
    nc: int = 1,
    realm: str | None = None,
    cseq: int = 2,
) -> SipRequest:
    if realm is not None:
        challenge = dataclasses.replace(challenge, realm=realm)
    credentials = answer_challenge(
        challenge,
        username=user,
        password=password,
        method=request.method,
        uri=request.uri,
        cnonce="0a4f113b",
        nc=nc,
    )
    branch = f"z9hG4bK{cseq}x{nc}"
    return request.replace_headers(
        ("Via", f"SIP/2.0/TCP 127.0.0.1:5070;branch={branch}"),
        ("CSeq", f"{cseq} {request.method}"),
        ("Authorization", credentials.render()),
        drop=("Via", "CSeq", "Authorization"),
    )


# --- item 40: line-side digest -------------------------------------------------------------------


def test_item40_register_is_challenged_then_accepted(cluster: Cluster) -> None:
    outcome, seen = run(registrar(cluster), client(cluster))
    assert outcome.ok and outcome.code == 200 and outcome.expires == 3600
    assert [r.status for r in seen] == [401, 200]
    challenge = parse_challenge(seen[0].header("WWW-Authenticate"))
    assert challenge.realm == "ccmsipline"  # the SIP Station Realm default
    assert challenge.qop == ("auth",) and challenge.algorithm == "MD5" and not challenge.stale
    assert MAC in cluster.registrations


def test_item40_realm_is_the_sip_station_realm_parameter(cluster: Cluster) -> None:
    cluster.set_parameter("sip-station-realm", "lab-realm", now=NOW)
    outcome, seen = run(registrar(cluster), client(cluster))
    assert outcome.ok
    assert parse_challenge(seen[0].header("WWW-Authenticate")).realm == "lab-realm"


def test_item40_wrong_password_is_forbidden_and_not_registered(cluster: Cluster) -> None:
    outcome, _seen = run(registrar(cluster), client(cluster, password="wrong"))
    assert not outcome.ok and outcome.code == 403
    assert "wrong digest credentials" in outcome.reason
    assert MAC not in cluster.registrations


def test_item40_wrong_user_is_forbidden_as_a_wrong_password(cluster: Cluster) -> None:
    # Issue 13: the answer names no user (it would tell the device's digest user); the log does.
    since = cluster.next_log_seq
    outcome, _ = run(registrar(cluster), client(cluster, user="mallory"))
    assert outcome.code == 403 and outcome.reason == "Forbidden: wrong digest credentials"
    (line,) = [e.message for e in cluster.log_since(since) if "failed" in e.message]
    assert "user 'mallory': not the digest user of this device ('alice')" in line


def test_item40_wrong_realm_gets_a_fresh_challenge(cluster: Cluster) -> None:
    reg = registrar(cluster)
    request = client(cluster).start()
    challenge = first_challenge(reg, request)
    response = reg.handle(authorized(request, challenge, realm="other-realm"), TCP, NOW)
    assert response is not None and response.status == 401
    fresh = parse_challenge(response.header("WWW-Authenticate"))
    assert fresh.realm == "ccmsipline" and fresh.nonce != challenge.nonce
    assert MAC not in cluster.registrations


def test_item40_unknown_nonce_gets_a_fresh_challenge(cluster: Cluster) -> None:
    reg = registrar(cluster)
    request = client(cluster).start()
    forged = Challenge("ccmsipline", "f" * 32)
    response = reg.handle(authorized(request, forged), TCP, NOW)
    assert response is not None and response.status == 401


def test_item40_every_request_but_keepalives_is_challenged(cluster: Cluster) -> None:
    reg = registrar(cluster)
    register = client(cluster).start()
    invite = SipRequest(
        "INVITE",
        register.uri,
        tuple((n, "1 INVITE" if n == "CSeq" else v) for n, v in register.headers),
    )
    response = reg.handle(invite, TCP, NOW)
    assert response is not None and response.status == 401
    # OPTIONS is the keepalive: answered without a challenge.
    options = SipRequest(
        "OPTIONS",
        register.uri,
        tuple((n, "1 OPTIONS" if n == "CSeq" else v) for n, v in register.headers),
    )
    response = reg.handle(options, TCP, NOW)
    assert response is not None and response.status == 200
    assert response.get("WWW-Authenticate") is None


def test_item40_credentials_are_compared_in_constant_time(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    import phone.cluster.registrar as module

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(module, "hmac", type("H", (), {"compare_digest": staticmethod(spy)}))
    outcome, _ = run(registrar(cluster), client(cluster))
    assert outcome.ok and len(calls) == 1


def test_item40_the_registrar_stores_ha1_never_the_password(cluster: Cluster) -> None:
    reg = registrar(cluster)
    run(reg, client(cluster))
    stored = list(reg._ha1.values())
    assert stored == [digest_ha1(USER, "ccmsipline", PASSWORD)]
    assert PASSWORD not in repr(vars(reg))


# --- item 41: nonce validity; replays ------------------------------------------------------------


def test_item41_nonce_valid_up_to_nonce_validity_then_stale(cluster: Cluster) -> None:
    reg = registrar(cluster)
    request = client(cluster).start()
    challenge = first_challenge(reg, request)
    late = NOW + timedelta(seconds=601)
    response = reg.handle(authorized(request, challenge), TCP, late)
    assert response is not None and response.status == 401
    fresh = parse_challenge(response.header("WWW-Authenticate"))
    assert fresh.stale and fresh.nonce != challenge.nonce
    # The boundary: exactly nonce-validity (600 s) old is still valid.
    challenge = first_challenge(reg, request)
    on_time = NOW + timedelta(seconds=600)
    response = reg.handle(authorized(request, challenge, cseq=3), TCP, on_time)
    assert response is not None and response.status == 200


def test_item41_nonce_validity_parameter_is_used(cluster: Cluster) -> None:
    cluster.set_parameter("nonce-validity", "30", now=NOW)
    try:
        reg = registrar(cluster)
        request = client(cluster).start()
        challenge = first_challenge(reg, request)
        response = reg.handle(authorized(request, challenge), TCP, NOW + timedelta(seconds=31))
        assert response is not None and response.status == 401
    finally:
        cluster.set_parameter("nonce-validity", "600", now=NOW)


def test_item41_client_retries_a_stale_nonce_and_registers(cluster: Cluster) -> None:
    reg = registrar(cluster)
    ua = client(cluster)
    first = ua.start()
    challenge_response = reg.handle(first, TCP, NOW)
    assert challenge_response is not None
    second = ua.receive(challenge_response)
    assert isinstance(second, SipRequest)
    stale = reg.handle(second, TCP, NOW + timedelta(seconds=700))
    assert stale is not None and stale.status == 401
    third = ua.receive(stale)
    assert isinstance(third, SipRequest)
    ok = reg.handle(third, TCP, NOW + timedelta(seconds=700))
    assert ok is not None and ok.status == 200


def test_replayed_nonce_count_is_refused(cluster: Cluster) -> None:
    reg = registrar(cluster)
    request = client(cluster).start()
    challenge = first_challenge(reg, request)
    good = authorized(request, challenge, nc=1)
    response = reg.handle(good, TCP, NOW)
    assert response is not None and response.status == 200
    # A retransmission (same branch) gets the same answer, not a replay verdict.
    again = reg.handle(good, TCP, NOW)
    assert again == response
    # The same nc in a new transaction is a replay.
    replay = authorized(request, challenge, nc=1, cseq=3)
    refused = reg.handle(replay, TCP, NOW)
    assert refused is not None and refused.status == 403
    assert "replayed" in (warning_text(refused) or "")
    # A higher nc on the same nonce is fine.
    later = reg.handle(authorized(request, challenge, nc=2, cseq=4), TCP, NOW)
    assert later is not None and later.status == 200


# --- item 42: missing credentials ----------------------------------------------------------------


def test_item42_digest_on_without_credentials_on_the_device_fails(cluster: Cluster) -> None:
    cluster.update_device(MAC, now=NOW, digest_user=None, digest_password=None)
    outcome, seen = run(registrar(cluster), client(cluster))
    assert not outcome.ok and outcome.code == 403 and outcome.rule == "item 42"
    assert [r.status for r in seen] == [403]


def test_item42_phone_without_credentials_in_its_config_fails(cluster: Cluster) -> None:
    outcome, _ = run(registrar(cluster), client(cluster, user=None, password=None))
    assert not outcome.ok and outcome.code == 401 and outcome.rule == "item 42"
    assert MAC not in cluster.registrations


def test_digest_off_registers_without_a_challenge(cluster: Cluster) -> None:
    cluster.update_device(MAC, now=NOW, digest_authentication=False)
    outcome, seen = run(registrar(cluster), client(cluster, user=None, password=None))
    assert outcome.ok and [r.status for r in seen] == [200]


# --- identification, auto-registration, unregister, ITL report -----------------------------------


def test_item6_unknown_phone_autoregisters_or_gets_404(cluster: Cluster) -> None:
    stranger = "AABBCCDDEEFF"
    outcome, _ = run(registrar(cluster), client(cluster, mac=stranger, user=None, password=None))
    assert outcome.ok and cluster.devices[stranger].autoregistered
    cluster.remove_device(stranger, now=NOW)
    cluster.set_parameter("autoregistration", "false", now=NOW)
    outcome, _ = run(registrar(cluster), client(cluster, mac=stranger, user=None, password=None))
    assert outcome.code == 404 and "auto-registration is disabled" in outcome.reason


def test_third_party_client_is_identified_by_its_digest_user(cluster: Cluster) -> None:
    reg = registrar(cluster)
    request = client(cluster).start()
    plain = request.replace_headers(("Contact", "<sip:alice@127.0.0.1:5070>"), drop=("Contact",))
    challenge = first_challenge(reg, plain)  # no MAC: credentials first
    response = reg.handle(authorized(plain, challenge), TCP, NOW)
    assert response is not None and response.status == 200
    assert MAC in cluster.registrations
    stranger = reg.handle(
        authorized(plain, first_challenge(reg, plain), user="nobody", cseq=5), TCP, NOW
    )
    # Issue 13: an unknown digest user is answered as a wrong password (no enumeration).
    assert stranger is not None and stranger.status == 403
    assert warning_text(stranger) == "wrong digest credentials"


def test_item30_itl_report_is_stored_and_unregister_deletes_it(cluster: Cluster) -> None:
    host = cluster.tftp_hosts[0]
    current = cluster.hashes.tftp[host].hash
    extra = ((ITL_HEADER, format_itl_report(host, current, 1767268800)),)
    outcome, _ = run(registrar(cluster), client(cluster, extra=extra))
    assert outcome.ok
    row = cluster.hashes.devices[MAC]
    assert (row.hash, row.tftp_host, row.timestamp) == (current, host, 1767268800)
    assert cluster.hashes.mismatches() == []
    outcome, _ = run(registrar(cluster), client(cluster, expires=0))
    assert outcome.ok and outcome.expires == 0
    assert MAC not in cluster.hashes.devices and MAC not in cluster.registrations


def test_item30_old_itl_shows_as_mismatch(cluster: Cluster) -> None:
    host = cluster.tftp_hosts[0]
    extra = ((ITL_HEADER, format_itl_report(host, "ab" * 20, 5)),)
    outcome, _ = run(registrar(cluster), client(cluster, extra=extra))
    assert outcome.ok
    assert [m.device.mac for m in cluster.hashes.mismatches()] == [MAC]


def test_malformed_itl_report_is_a_bad_request(cluster: Cluster) -> None:
    cluster.update_device(MAC, now=NOW, digest_authentication=False)
    outcome, _ = run(registrar(cluster), client(cluster, extra=((ITL_HEADER, "nonsense"),)))
    assert outcome.code == 400


# --- item 7 / seed Signaling Authentication: secure devices over TLS -----------------------------


def test_item7_secure_device_must_use_tls_with_its_own_certificate(cluster: Cluster) -> None:
    cluster.set_mixed_mode(True, now=NOW)
    cluster.update_device(
        MAC, now=NOW, security_mode=SecurityMode.AUTHENTICATED, digest_authentication=False
    )
    reg = registrar(cluster)
    outcome, _ = run(reg, client(cluster))
    assert outcome.code == 403 and "must register over TLS" in outcome.reason
    mic = phone_mic(MAC)
    outcome, _ = run(reg, client(cluster), source=Source("127.0.0.1", 5071, "tls", mic.certificate))
    assert outcome.ok
    other = phone_mic("AABBCCDDEEFF")
    outcome, _ = run(
        reg, client(cluster), source=Source("127.0.0.1", 5071, "tls", other.certificate)
    )
    assert outcome.code == 403 and "does not name SEP001122334455" in outcome.reason
    outcome, _ = run(reg, client(cluster), source=Source("127.0.0.1", 5071, "tls", None))
    assert outcome.code == 403 and "no client certificate" in outcome.reason


# --- the virtual phone through the in-memory backend ---------------------------------------------


def _phone_lab() -> Lab:
    lab = make_lab(ClusterSpec(name="digest"))
    lab.cluster().add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
    )
    return lab


def test_item40_phone_registers_with_digest_in_memory() -> None:
    lab = _phone_lab()
    phone = create_phone(lab, mac=MAC, clock=lambda: NOW)
    assert phone.boot() is State.REGISTERED
    assert MAC in lab.cluster().registrations


def test_item42_phone_whose_config_excludes_digest_credentials_fails() -> None:
    lab = _phone_lab()
    lab.cluster().update_device(MAC, now=NOW, exclude_digest_credentials=True)
    phone = create_phone(lab, mac=MAC, clock=lambda: NOW)
    assert phone.boot() is State.REGISTRATION_FAILED
    failed = [t for t in phone.trace if t.step == "register"][-1]
    assert failed.rule == "item 42" and "no digest credentials" in failed.reason
    assert phone.status[-1] == "Registration failed"  # vphone's text


# --- items 43-44: trunks -------------------------------------------------------------------------


TRUNK_PEER = Source("192.0.2.10", 5060, "tcp")


def trunk_request(cluster: Cluster, method: str, *, event: str | None = None) -> SipRequest:
    headers: list[tuple[str, str]] = [
        ("Via", "SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtrunk1"),
        ("From", "<sip:app@192.0.2.10>;tag=t1"),
        ("To", f"<sip:1000@{cluster.publisher.hostname}>"),
        ("Call-ID", "trunk-call-1"),
        ("CSeq", f"1 {method}"),
    ]
    if event is not None:
        headers.append(("Event", event))
    return SipRequest(method, f"sip:1000@{cluster.publisher.hostname}", tuple(headers))


def trunk_registrar(cluster: Cluster, profile: TrunkSecurityProfile) -> Registrar:
    realm = cluster.parameters.cluster_id
    user = ApplicationUser.create(
        "app", "app-pw", realm=realm, allowed=frozenset({RequestType.OUT_OF_DIALOG_REFER})
    )
    trunk = SipTrunk("to-cube", frozenset({TRUNK_PEER.host}), profile)
    return Registrar(
        cluster,
        cluster.publisher.hostname,
        random=random.Random(9).randbytes,
        trunks=(trunk,),
        application_users=(user,),
    )


def answer(request: SipRequest, response: SipResponse, password: str = "app-pw") -> SipRequest:
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    challenge = parse_challenge(response.header(name))
    credentials = answer_challenge(
        challenge,
        username="app",
        password=password,
        method=request.method,
        uri=request.uri,
        cnonce="c",
    )
    header = "Authorization" if response.status == 401 else "Proxy-Authorization"
    return request.replace_headers(
        ("Via", "SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtrunk2"),
        ("CSeq", f"2 {request.method}"),
        (header, credentials.render()),
        drop=("Via", "CSeq"),
    )


def test_request_types_are_classified() -> None:
    lab_cluster = make_lab().cluster()
    assert request_type(trunk_request(lab_cluster, "REFER")) is RequestType.OUT_OF_DIALOG_REFER
    assert request_type(trunk_request(lab_cluster, "NOTIFY")) is RequestType.UNSOLICITED_NOTIFY
    presence = trunk_request(lab_cluster, "SUBSCRIBE", event="presence")
    assert request_type(presence) is RequestType.PRESENCE_SUBSCRIBE
    assert request_type(trunk_request(lab_cluster, "SUBSCRIBE", event="dialog")) is None
    invite = trunk_request(lab_cluster, "INVITE").replace_headers(("Replaces", "x;to-tag=1"))
    assert request_type(invite) is RequestType.REPLACES


def test_item44_acl_403_comes_before_the_digest_401(cluster: Cluster) -> None:
    profile = TrunkSecurityProfile("secure-trunk", digest=True)  # allows no controlled type
    reg = trunk_registrar(cluster, profile)
    refer = trunk_request(cluster, "REFER")
    response = reg.handle(refer, TRUNK_PEER, NOW)
    assert response is not None and response.status == 403
    assert "does not accept out-of-dialog-refer" in (warning_text(response) or "")
    # An ordinary request on the same trunk gets the digest challenge instead.
    response = reg.handle(trunk_request(cluster, "OPTIONS"), TRUNK_PEER, NOW)
    assert response is not None and response.status == 401


def test_item43_trunk_challenge_realm_is_the_cluster_id(cluster: Cluster) -> None:
    profile = TrunkSecurityProfile(
        "p", allowed=frozenset({RequestType.OUT_OF_DIALOG_REFER}), digest=True
    )
    reg = trunk_registrar(cluster, profile)
    refer = trunk_request(cluster, "REFER")
    challenged = reg.handle(refer, TRUNK_PEER, NOW)
    assert challenged is not None and challenged.status == 401
    realm = parse_challenge(challenged.header("WWW-Authenticate")).realm
    assert realm == cluster.parameters.cluster_id == "StandAloneCluster"
    accepted = reg.handle(answer(refer, challenged), TRUNK_PEER, NOW)
    assert accepted is not None and accepted.status == 202
    wrong = reg.handle(
        answer(refer, reg.handle(refer, TRUNK_PEER, NOW) or challenged, "bad").replace_headers(
            ("Via", "SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtrunk3"), drop=("Via",)
        ),
        TRUNK_PEER,
        NOW,
    )
    assert wrong is not None and wrong.status == 403


def test_item43_trunk_profile_may_challenge_with_407(cluster: Cluster) -> None:
    profile = TrunkSecurityProfile("p407", digest=True, challenge=407)
    reg = trunk_registrar(cluster, profile)
    options = trunk_request(cluster, "OPTIONS")
    challenged = reg.handle(options, TRUNK_PEER, NOW)
    assert challenged is not None and challenged.status == 407
    assert challenged.get("Proxy-Authenticate") is not None
    accepted = reg.handle(answer(options, challenged), TRUNK_PEER, NOW)
    assert accepted is not None and accepted.status == 200


def test_item44_application_level_authorization_after_trunk_level(cluster: Cluster) -> None:
    profile = TrunkSecurityProfile(
        "app-auth",
        allowed=frozenset({RequestType.PRESENCE_SUBSCRIBE, RequestType.OUT_OF_DIALOG_REFER}),
        digest=True,
        application_authorization=True,
    )
    reg = trunk_registrar(cluster, profile)
    # Presence is allowed on the trunk but not for the application user: 403 after digest.
    subscribe = trunk_request(cluster, "SUBSCRIBE", event="presence")
    challenged = reg.handle(subscribe, TRUNK_PEER, NOW)
    assert challenged is not None and challenged.status == 401
    refused = reg.handle(answer(subscribe, challenged), TRUNK_PEER, NOW)
    assert refused is not None and refused.status == 403
    assert "application user app is not authorized" in (warning_text(refused) or "")
    refer = trunk_request(cluster, "REFER")
    challenged = reg.handle(refer, TRUNK_PEER, NOW)
    assert challenged is not None
    accepted = reg.handle(answer(refer, challenged), TRUNK_PEER, NOW)
    assert accepted is not None and accepted.status == 202


def test_item44_application_level_authorization_without_digest_is_refused() -> None:
    with pytest.raises(LabError, match="requires digest"):
        TrunkSecurityProfile("bad", application_authorization=True, digest=False)
    with pytest.raises(LabError, match="401 or 407"):
        TrunkSecurityProfile("bad", challenge=403)


def test_item43_cluster_as_uac_answers_trunk_challenges_but_never_line_ones() -> None:
    request = SipRequest(
        "INVITE",
        "sip:2000@cube.lab",
        (
            ("Via", "SIP/2.0/TCP cucm1:5060;branch=z9hG4bKuac"),
            ("From", "<sip:1000@cucm1>;tag=a"),
            ("To", "<sip:2000@cube.lab>"),
            ("Call-ID", "uac-1"),
            ("CSeq", "7 INVITE"),
        ),
    )
    challenge = Challenge("cube-realm", "n0nce")
    response = make_response(
        request,
        407,
        "Proxy Authentication Required",
        headers=(("Proxy-Authenticate", challenge.render()),),
    )
    realms = (SipRealm("cube-realm", "cucm", "trunk-pw"),)
    resent = answer_as_uac(request, response, peer="trunk", realms=realms, cnonce="cc")
    assert resent is not None and resent.cseq == (8, "INVITE")
    credentials = parse_credentials(resent.header("Proxy-Authorization"))
    expected = answer_challenge(
        challenge,
        username="cucm",
        password="trunk-pw",
        method="INVITE",
        uri=request.uri,
        cnonce="cc",
    )
    assert credentials == expected
    # Item 40: CUCM never answers challenges from line-side phones.
    assert answer_as_uac(request, response, peer="line", realms=realms, cnonce="cc") is None
    # No SIP Realm entry for that realm: nothing to answer with.
    assert answer_as_uac(request, response, peer="trunk", realms=(), cnonce="cc") is None

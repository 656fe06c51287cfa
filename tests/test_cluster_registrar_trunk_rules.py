"""The trunk side of the registrar and the throttle, rule by rule (items 43-44; seed, "Digest
Authentication for Trunks" and "Authorization"; RFC 3261 21.x reason phrases, 20.27/20.28
Proxy-Authenticate/-Authorization, 20.33 Retry-After), with trunks given to the constructor so
the shared lab is not changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from clusterlab import NOW, make_lab
from registrarkit import (
    MAC,
    PASSWORD,
    PHONE,
    USER,
    Draws,
    answer,
    names,
    request,
    reset,
    to_tag,
)

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.cluster.registrar import Registrar, Source
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    SipTrunk,
    TrunkSecurityProfile,
)
from phone.wire.sip import (
    SipRequest,
    SipResponse,
    make_response,
    parse_challenge,
    parse_credentials,
    warning_text,
)

APP, APP_PASSWORD = "app", "app-pw-1"
PEER = Source("192.0.2.10", 5060, "udp")  # RFC 5737 documentation address
ALL = frozenset(RequestType)
OPEN = TrunkSecurityProfile("open", allowed=ALL)
LOCKED = TrunkSecurityProfile("locked", digest=True)
PROXY = TrunkSecurityProfile(
    "proxy",
    allowed=frozenset({RequestType.PRESENCE_SUBSCRIBE, RequestType.OUT_OF_DIALOG_REFER}),
    digest=True,
    application_authorization=True,
    challenge=407,
)


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab()


@pytest.fixture
def cluster(lab: Lab) -> Iterator[Cluster]:
    yield from reset(lab.cluster())


def registrar(cluster: Cluster, *trunks: SipTrunk, draws: Draws | None = None) -> Registrar:
    user = ApplicationUser.create(
        APP,
        APP_PASSWORD,
        realm=cluster.parameters.cluster_id,
        allowed=frozenset({RequestType.OUT_OF_DIALOG_REFER}),
    )
    return Registrar(
        cluster,
        cluster.publisher.hostname,
        random=draws or Draws(),
        trunks=trunks,
        application_users=(user,),
        sip_realms=(SipRealm("cube.example", "cucm-uac", "uac-secret-9"),),
    )


def trunk(profile: TrunkSecurityProfile, *addresses: str, name: str | None = None) -> SipTrunk:
    return SipTrunk(name or profile.name, frozenset(addresses or (PEER.host,)), profile)


def trunk_request(
    cluster: Cluster, method: str, *, n: int = 1, event: str | None = None
) -> SipRequest:
    host = cluster.publisher.hostname
    headers = [
        ("Via", f"SIP/2.0/UDP {PEER.host}:5060;branch=z9hG4bKrules{n}"),
        ("From", f"<sip:app@{PEER.host}>;tag=f{n}"),
        ("To", f"<sip:1000@{host}>"),
        ("Call-ID", f"trunk-{method}@{PEER.host}"),
        ("CSeq", f"{n} {method}"),
    ]
    if event is not None:
        headers.append(("Event", event))
    return SipRequest(method, f"sip:1000@{host}", tuple(headers))


def send(reg: Registrar, req: SipRequest, *, at: int = 0, source: Source = PEER) -> SipResponse:
    response = reg.handle(req, source, NOW + timedelta(seconds=at))
    assert response is not None
    return response


def proxy_answer(req: SipRequest, challenge: SipResponse, *, n: int, **kw: str) -> SipRequest:
    return answer(
        req,
        challenge,
        n=n,
        user=kw.get("user", APP),
        password=kw.get("password", APP_PASSWORD),
        header="Proxy-Authorization",
    )


# --- item 44: the trunk ACL, then the request types the emulation answers ----------------------


def test_item44_acl_refusal_is_403_forbidden(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(LOCKED))
    response = send(reg, trunk_request(cluster, "REFER"))
    assert (response.status, response.reason) == (403, "Forbidden")
    assert warning_text(response) == (
        "trunk locked (profile locked) does not accept out-of-dialog-refer"
    )


def test_item44_allowed_requests_get_their_success_answers(cluster: Cluster) -> None:
    # RFC 3515 2.4.2: REFER is answered 202 Accepted; OPTIONS, NOTIFY, SUBSCRIBE 200 OK; each
    # with a To tag (RFC 3261 8.2.6.2).
    reg = registrar(cluster, trunk(OPEN))
    for n, (method, event, line) in enumerate(
        [
            ("OPTIONS", None, (200, "OK")),
            ("REFER", None, (202, "Accepted")),
            ("NOTIFY", "dialog", (200, "OK")),
            ("SUBSCRIBE", "presence", (200, "OK")),
        ],
        start=1,
    ):
        response = send(reg, trunk_request(cluster, method, n=n, event=event))
        assert (method, response.status, response.reason) == (method, *line)
        assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq"]
        assert to_tag(response), method


def test_item44_a_trunk_call_is_501_not_implemented(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(OPEN))
    response = send(reg, trunk_request(cluster, "INVITE"))
    assert (response.status, response.reason) == (501, "Not Implemented")
    assert warning_text(response) == "the emulated cluster does not route calls"


def test_item44_application_authorization_refusal_is_403_forbidden(cluster: Cluster) -> None:
    # Presence allowed by the trunk but not for the application user -> 403 (item 44).
    reg = registrar(cluster, trunk(PROXY))
    req = trunk_request(cluster, "SUBSCRIBE", event="presence")
    response = send(reg, proxy_answer(req, send(reg, req), n=2))
    assert (response.status, response.reason) == (403, "Forbidden")
    assert warning_text(response) == "application user app is not authorized for presence-subscribe"


# --- item 43: 407 challenges ---------------------------------------------------------------------


def test_item43_407_challenge_is_proxy_authentication_required(cluster: Cluster) -> None:
    # RFC 3261 21.4.8 "407 Proxy Authentication Required", 20.27 Proxy-Authenticate.
    reg = registrar(cluster, trunk(PROXY))
    response = send(reg, trunk_request(cluster, "REFER"))
    assert (response.status, response.reason) == (407, "Proxy Authentication Required")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "Proxy-Authenticate"]
    assert to_tag(response)
    challenge = parse_challenge(response.header("Proxy-Authenticate"))
    assert challenge.realm == cluster.parameters.cluster_id
    assert reg.challenges == 1 and reg.refused == 0


def test_item43_407_answered_rightly_is_accepted(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(PROXY))
    req = trunk_request(cluster, "REFER")
    response = send(reg, proxy_answer(req, send(reg, req), n=2))
    assert (response.status, response.reason) == (202, "Accepted")


def repeat_407(cluster: Cluster, change: str) -> SipResponse:
    reg = registrar(cluster, trunk(PROXY))
    req = trunk_request(cluster, "REFER")
    challenge = send(reg, req)
    at = 0
    if change == "realm":
        value = challenge.header("Proxy-Authenticate").replace(
            cluster.parameters.cluster_id, "other-realm"
        )
        challenge = make_response(req, 407, "x", headers=(("Proxy-Authenticate", value),))
    elif change == "nonce":
        value = challenge.header("Proxy-Authenticate")
        nonce = parse_challenge(value).nonce
        challenge = make_response(
            req, 407, "x", headers=(("Proxy-Authenticate", value.replace(nonce, "f" * 32)),)
        )
    elif change == "expired":
        at = 601
    return send(reg, proxy_answer(req, challenge, n=2), at=at)


@pytest.mark.parametrize("change", ["realm", "nonce", "expired"])
def test_item43_a_trunk_rechallenge_is_407_again(cluster: Cluster, change: str) -> None:
    # Credentials for another realm, an unknown nonce, an expired nonce (item 41, stale=true):
    # a fresh challenge of the trunk's kind, 407.
    response = repeat_407(cluster, change)
    assert (response.status, response.reason) == (407, "Proxy Authentication Required")
    stale = parse_challenge(response.header("Proxy-Authenticate")).stale
    assert stale is (change == "expired")


def test_item43_unknown_application_user_is_403_as_a_wrong_password(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(PROXY))
    req = trunk_request(cluster, "REFER")
    response = send(reg, proxy_answer(req, send(reg, req), n=2, user="mallory"))
    assert (response.status, response.reason) == (403, "Forbidden")
    assert warning_text(response) == "wrong digest credentials"


# --- which trunk: the longest prefix, then configuration order ---------------------------------


def test_trunk_for_a_catch_all_network_matches(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(OPEN, "0.0.0.0/0", name="any"))
    match = reg.trunk_for("198.51.100.1")
    assert match is not None and match.name == "any"


def test_trunk_for_a_tie_goes_to_the_first_configured(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(OPEN, name="first"), trunk(LOCKED, name="second"))
    match = reg.trunk_for(PEER.host)
    assert match is not None and match.name == "first"
    assert send(reg, trunk_request(cluster, "REFER")).status == 202


def test_trunk_for_the_longest_prefix_wins(cluster: Cluster) -> None:
    reg = registrar(cluster, trunk(OPEN, "192.0.2.0/24", name="wide"), trunk(LOCKED, name="narrow"))
    match = reg.trunk_for(PEER.host)
    assert match is not None and match.name == "narrow"


# --- item 43: the node as UAC answers a trunk's challenge ---------------------------------------


def test_item43_uac_answer_uses_a_fresh_64_bit_cnonce(cluster: Cluster) -> None:
    draws = Draws()
    reg = registrar(cluster, draws=draws)
    req = trunk_request(cluster, "OPTIONS")
    challenge = make_response(
        req,
        401,
        "Unauthorized",
        headers=(("WWW-Authenticate", 'Digest realm="cube.example", nonce="abc", qop="auth"'),),
    )
    again = reg.answer_as_uac(req, challenge, peer="trunk")
    assert again is not None
    credentials = parse_credentials(again.header("Authorization"))
    assert credentials.username == "cucm-uac"
    assert draws.sizes[-1] == 8 and credentials.cnonce == draws.values[-1].hex()


# --- the throttle (issue 13) -------------------------------------------------------------------


def test_throttled_source_is_403_with_retry_after(cluster: Cluster) -> None:
    # RFC 3261 20.33 Retry-After; the Warning names the source and the wait.
    cluster.set_parameter("sip-auth-failures", "1", now=NOW)
    cluster.add_device(
        Device(MAC, digest_user=USER, digest_password=PASSWORD, digest_authentication=True),
        now=NOW,
        replace=True,
    )
    reg = registrar(cluster)
    req = request(cluster)
    failed = send(reg, answer(req, send(reg, req, source=PHONE), n=2, password="x"), source=PHONE)
    assert failed.status == 403
    response = send(reg, request(cluster, n=3), at=10, source=PHONE)
    assert (response.status, response.reason) == (403, "Forbidden")
    assert names(response) == ["Via", "From", "To", "Call-ID", "CSeq", "Retry-After", "Warning"]
    wait = cluster.parameters.sip_auth_lockout - 10
    assert response.header("Retry-After") == str(wait)
    assert warning_text(response) == (
        f"too many failed digest authentications from {PHONE.host}; retry in {wait} s"
    )
    assert to_tag(response)

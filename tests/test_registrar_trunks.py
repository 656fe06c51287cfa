"""The SIP trunk side as cluster state (items 43-44): trunk security profiles, trunks,
application users and SIP realms kept by :class:`Cluster`, saved in the lab folder, and read by
the registrar (seed, "Digest Authentication for Trunks" and "Authorization")."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from clusterlab import NOW, make_lab, seeded_random

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.registrar import Registrar, Source
from phone.cluster.store import CLUSTER_FILE, edit_lab, load_lab, save_lab
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    SipTrunk,
    TrunkConfig,
    TrunkSecurityProfile,
    parse_address,
)
from phone.errors import LabError
from phone.wire.sip import (
    Challenge,
    SipRequest,
    SipResponse,
    answer_challenge,
    digest_ha1,
    make_response,
    parse_challenge,
    parse_credentials,
    warning_text,
)

CLUSTER_ID = "LabCluster-7"
APP, APP_PASSWORD = "app", "app-pw-1"
REALM_PASSWORD = "uac-secret-9"
ALL = frozenset(RequestType)

# Trunk peers (documentation addresses, RFC 5737).
LOCKED = Source("192.0.2.10", 5060, "tcp")  # trunk "locked": profile allows nothing, digest on
SECURE = Source("198.51.100.7", 5060, "tcp")  # trunk "secure": refer+presence, digest, app auth
OPEN = Source("203.0.113.99", 5060, "udp")  # trunk "open": 203.0.113.0/24, everything, no digest
LINE = Source("10.1.0.200", 5060, "tcp")  # no trunk: line side


def configure(cluster: Cluster) -> None:
    """The trunk side every test here starts from (through the cluster's methods)."""
    cluster.set_parameter("cluster-id", CLUSTER_ID, now=NOW)
    cluster.add_trunk_profile(TrunkSecurityProfile("locked", digest=True), now=NOW)
    cluster.add_trunk_profile(
        TrunkSecurityProfile(
            "secure",
            allowed=frozenset({RequestType.OUT_OF_DIALOG_REFER, RequestType.PRESENCE_SUBSCRIBE}),
            digest=True,
            application_authorization=True,
        ),
        now=NOW,
    )
    cluster.add_trunk_profile(TrunkSecurityProfile("open", allowed=ALL), now=NOW)
    cluster.add_trunk(TrunkConfig("locked", frozenset({LOCKED.host}), "locked"), now=NOW)
    cluster.add_trunk(TrunkConfig("secure", frozenset({SECURE.host}), "secure"), now=NOW)
    cluster.add_trunk(TrunkConfig("open", frozenset({"203.0.113.0/24"}), "open"), now=NOW)
    user = ApplicationUser.create(
        APP,
        APP_PASSWORD,
        realm=cluster.parameters.cluster_id,
        allowed=frozenset({RequestType.OUT_OF_DIALOG_REFER}),
    )
    cluster.add_application_user(user, now=NOW)
    cluster.add_sip_realm(SipRealm("cube.example", "cucm-uac", REALM_PASSWORD), now=NOW)


@pytest.fixture
def lab() -> Lab:
    lab = make_lab()
    configure(lab.cluster())
    return lab


def trunk_request(
    cluster: Cluster, method: str, source: Source, *, event: str | None = None, n: int = 1
) -> SipRequest:
    headers = [
        ("Via", f"SIP/2.0/{source.transport.upper()} {source.host}:5060;branch=z9hG4bKt{n}"),
        ("From", f"<sip:app@{source.host}>;tag=f{n}"),
        ("To", f"<sip:1000@{cluster.publisher.hostname}>"),
        ("Call-ID", f"trunk-{method}-{n}@{source.host}"),
        ("CSeq", f"{n} {method}"),
    ]
    if event is not None:
        headers.append(("Event", event))
    return SipRequest(method, f"sip:1000@{cluster.publisher.hostname}", tuple(headers))


def authorize(
    request: SipRequest, challenge: SipResponse, *, user: str = APP, password: str = APP_PASSWORD
) -> SipRequest:
    """``request`` again with the digest answer to ``challenge`` (a new transaction)."""
    name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
    credentials = answer_challenge(
        parse_challenge(challenge.header(name)),
        username=user,
        password=password,
        method=request.method,
        uri=request.uri,
        cnonce="cn",
    )
    number, method = request.cseq
    via = request.header("Via").replace(";branch=z9hG4bK", ";branch=z9hG4bKauth")
    header = "Authorization" if challenge.status == 401 else "Proxy-Authorization"
    return request.replace_headers(
        ("Via", via),
        ("CSeq", f"{number + 1} {method}"),
        (header, credentials.render()),
        drop=("Via", "CSeq"),
    )


def handle(reg: Registrar, request: SipRequest, source: Source) -> SipResponse:
    response = reg.handle(request, source, NOW)
    assert response is not None
    return response


def behaviour(cluster: Cluster) -> list[tuple[int, str | None, str | None]]:
    """A fixed script of trunk and line requests through a fresh, seeded registrar: every
    answer's status, Warning text and challenge realm."""
    reg = Registrar(cluster, cluster.publisher.hostname, random=random.Random(3).randbytes)
    seen: list[SipResponse] = []

    def send(request: SipRequest, source: Source) -> SipResponse:
        response = handle(reg, request, source)
        seen.append(response)
        return response

    send(trunk_request(cluster, "REFER", LOCKED, n=1), LOCKED)
    send(trunk_request(cluster, "OPTIONS", LOCKED, n=2), LOCKED)
    subscribe = trunk_request(cluster, "SUBSCRIBE", SECURE, event="presence", n=3)
    send(authorize(subscribe, send(subscribe, SECURE)), SECURE)
    refer = trunk_request(cluster, "REFER", SECURE, n=5)
    send(authorize(refer, send(refer, SECURE)), SECURE)
    send(trunk_request(cluster, "NOTIFY", SECURE, n=7), SECURE)
    send(trunk_request(cluster, "REFER", OPEN, n=8), OPEN)
    send(trunk_request(cluster, "OPTIONS", LINE, n=9), LINE)
    out: list[tuple[int, str | None, str | None]] = []
    for response in seen:
        value = response.get("WWW-Authenticate") or response.get("Proxy-Authenticate")
        realm = parse_challenge(value).realm if value is not None else None
        out.append((response.status, warning_text(response), realm))
    return out


def test_items43_44_the_cluster_state_drives_the_registrar(lab: Lab) -> None:
    cluster = lab.cluster()
    script = behaviour(cluster)
    statuses = [status for status, _, _ in script]
    # REFER on the locked trunk: 403 before any challenge (item 44: the ACL runs first);
    # OPTIONS on it: 401 with realm = Cluster ID (item 43); presence SUBSCRIBE: allowed on the
    # trunk, challenged, then 403 for the application user (app-level, item 44); REFER: 401
    # then 202; unsolicited NOTIFY: not allowed on the trunk, 403; REFER on the open trunk:
    # 202 without a challenge; OPTIONS from a line-side address: 200 (a keepalive).
    assert statuses == [403, 401, 401, 403, 401, 202, 403, 202, 200]
    assert "does not accept out-of-dialog-refer" in (script[0][1] or "")
    assert script[0][2] is None  # no challenge with the ACL's 403
    assert {realm for _, _, realm in script if realm is not None} == {CLUSTER_ID}
    assert "application user app is not authorized for presence-subscribe" in (script[3][1] or "")
    assert "does not accept unsolicited-notify" in (script[6][1] or "")


def test_persistence_round_trip_keeps_the_state_and_the_behaviour(lab: Lab, tmp_path: Path) -> None:
    cluster = lab.cluster()
    save_lab(lab, tmp_path)
    again = load_lab(tmp_path, random=seeded_random()).cluster()
    a, b = cluster.state, again.state
    assert list(b.trunk_profiles) == ["locked", "secure", "open"]
    assert a.trunk_profiles == b.trunk_profiles and a.trunks == b.trunks
    assert a.application_users == b.application_users and a.sip_realms == b.sip_realms
    assert again.sip_trunks() == cluster.sip_trunks()
    assert behaviour(again) == behaviour(cluster)
    # And the cluster as UAC (item 43) answers with the reloaded SIP realm.
    reg = Registrar(again, again.publisher.hostname)
    request, challenge = uac_exchange("cube.example")
    resent = reg.answer_as_uac(request, challenge, peer="trunk")
    assert resent is not None
    credentials = parse_credentials(resent.header("Authorization"))
    assert credentials.username == "cucm-uac" and credentials.realm == "cube.example"


def test_the_lab_folder_keeps_ha1_never_the_application_password(lab: Lab, tmp_path: Path) -> None:
    save_lab(lab, tmp_path)
    text = (tmp_path / "clusters" / "cluster1" / CLUSTER_FILE).read_text()
    document = json.loads(text)
    assert APP_PASSWORD not in text
    [user] = document["application_users"]
    assert user == {
        "name": APP,
        "realm": CLUSTER_ID,
        "ha1": digest_ha1(APP, CLUSTER_ID, APP_PASSWORD),
        "allowed": ["out-of-dialog-refer"],
    }
    # The SIP realm password is kept (CUCM keeps it encrypted): the file is owner-only.
    assert document["sip_realms"] == [
        {"realm": "cube.example", "user": "cucm-uac", "password": REALM_PASSWORD}
    ]
    assert document["trunks"][2] == {
        "name": "open",
        "addresses": ["203.0.113.0/24"],
        "profile": "open",
    }


def test_an_older_lab_folder_without_trunks_still_loads(lab: Lab, tmp_path: Path) -> None:
    save_lab(lab, tmp_path)
    path = tmp_path / "clusters" / "cluster1" / CLUSTER_FILE
    document = json.loads(path.read_text())
    for key in ("trunk_profiles", "trunks", "application_users", "sip_realms"):
        del document[key]
    path.write_text(json.dumps(document))
    cluster = load_lab(tmp_path).cluster()
    assert not cluster.trunk_profiles and not cluster.trunks
    assert not cluster.application_users and not cluster.sip_realms
    reg = Registrar(cluster, cluster.publisher.hostname)
    # No trunk: the locked trunk's peer is an ordinary line-side client now.
    assert handle(reg, trunk_request(cluster, "OPTIONS", LOCKED), LOCKED).status == 200
    # Saving it again writes the (empty) sections.
    with edit_lab(tmp_path) as edited:
        edited.cluster().add_trunk_profile(TrunkSecurityProfile("p"), now=NOW)
    assert json.loads(path.read_text())["trunks"] == []


@pytest.mark.parametrize(
    ("section", "entry", "message"),
    [
        (
            "trunk_profiles",
            {
                "name": "bad",
                "allowed": [],
                "digest": False,
                "application_authorization": True,
                "challenge": 401,
            },
            "requires digest",
        ),
        ("trunks", {"name": "t9", "addresses": ["192.0.2.99"], "profile": "gone"}, "missing"),
        ("trunks", {"name": "t9", "addresses": ["not-an-ip"], "profile": "open"}, "address"),
        (
            "application_users",
            {"name": "x", "realm": "r", "ha1": "password!", "allowed": []},
            "MD5",
        ),
        ("application_users", {"name": APP, "realm": "r", "ha1": "0" * 32, "allowed": []}, "more"),
        (
            "trunk_profiles",
            {
                "name": "p",
                "allowed": ["teleport"],
                "digest": True,
                "application_authorization": False,
                "challenge": 401,
            },
            "request type",
        ),
    ],
)
def test_a_damaged_trunk_section_is_refused_at_load(
    lab: Lab, tmp_path: Path, section: str, entry: dict[str, object], message: str
) -> None:
    save_lab(lab, tmp_path)
    path = tmp_path / "clusters" / "cluster1" / CLUSTER_FILE
    document = json.loads(path.read_text())
    document[section].append(entry)
    path.write_text(json.dumps(document))
    with pytest.raises(LabError, match=message):
        load_lab(tmp_path)


def test_the_registrar_reads_changes_of_the_cluster_at_once(lab: Lab) -> None:
    cluster = lab.cluster()
    reg = Registrar(cluster, cluster.publisher.hostname)  # as memory.py and net/sip.py do
    refer = trunk_request(cluster, "REFER", OPEN)
    assert handle(reg, refer, OPEN).status == 202
    # Changing the profile changes every trunk using it (a trunk names its profile).
    cluster.add_trunk_profile(TrunkSecurityProfile("open"), now=NOW, replace=True)
    assert handle(reg, trunk_request(cluster, "REFER", OPEN, n=2), OPEN).status == 403
    cluster.remove_trunk("open", now=NOW)
    # No trunk any more: a REFER from that address is a line-side request, from a client
    # without a Cisco instance ID, which must identify itself by digest first: 401.
    line = handle(reg, trunk_request(cluster, "REFER", OPEN, n=3), OPEN)
    assert line.status == 401
    assert parse_challenge(line.header("WWW-Authenticate")).realm == "ccmsipline"
    assert reg.trunk_for(OPEN.host) is None


def test_item43_changing_the_cluster_id_invalidates_application_users(lab: Lab) -> None:
    cluster = lab.cluster()
    since = cluster.next_log_seq
    cluster.set_parameter("cluster-id", "Renamed", now=NOW)
    assert any("WARNING application users app" in e.message for e in cluster.log_since(since))
    reg = Registrar(cluster, cluster.publisher.hostname)
    refer = trunk_request(cluster, "REFER", SECURE)
    challenged = handle(reg, refer, SECURE)
    assert parse_challenge(challenged.header("WWW-Authenticate")).realm == "Renamed"
    refused = handle(reg, authorize(refer, challenged), SECURE)
    # Issue 13: answered as a wrong password; the log says why.
    assert refused.status == 403
    assert warning_text(refused) == "wrong digest credentials"
    assert any(
        "user 'app': no application user with digest credentials for realm 'Renamed'" in e.message
        for e in cluster.log_since(since)
    )


def test_the_most_specific_trunk_address_wins(lab: Lab) -> None:
    cluster = lab.cluster()
    # 203.0.113.5 inside the open /24, with a /32 trunk of its own on the locked profile.
    cluster.add_trunk(TrunkConfig("pinned", frozenset({"203.0.113.5/32"}), "locked"), now=NOW)
    reg = Registrar(cluster, cluster.publisher.hostname)
    pinned = Source("203.0.113.5", 5060, "udp")
    assert reg.trunk_for("203.0.113.5") is not None
    assert [t.name for t in cluster.sip_trunks()][-1] == "pinned"
    assert handle(reg, trunk_request(cluster, "REFER", pinned), pinned).status == 403
    assert handle(reg, trunk_request(cluster, "REFER", OPEN), OPEN).status == 202
    # A dual-stack socket reports the IPv4 peer as an IPv4-mapped IPv6 address.
    mapped = reg.trunk_for("::ffff:203.0.113.5")
    assert mapped is not None and mapped.name == "pinned"
    assert reg.trunk_for("2001:db8::1") is None and reg.trunk_for("not-an-ip") is None


def test_explicit_constructor_arguments_override_or_extend_the_cluster(lab: Lab) -> None:
    cluster = lab.cluster()
    # Same name as the cluster's "open" trunk: replaces it (now locked down, no digest).
    override = SipTrunk("open", frozenset({"203.0.113.0/24"}), TrunkSecurityProfile("strict"))
    # A new name: extends the cluster's trunks.
    extra = SipTrunk("extra", frozenset({"192.0.2.200"}), TrunkSecurityProfile("x", allowed=ALL))
    # Same name as the cluster's application user: replaces it (another password, all types).
    app = ApplicationUser.create(APP, "other-pw", realm=CLUSTER_ID, allowed=ALL)
    reg = Registrar(
        cluster,
        cluster.publisher.hostname,
        trunks=(override, extra),
        application_users=(app,),
        sip_realms=(SipRealm("cube.example", "explicit", "pw2"),),
    )
    assert [t.name for t in reg.trunks] == ["open", "extra", "locked", "secure"]
    assert handle(reg, trunk_request(cluster, "REFER", OPEN), OPEN).status == 403
    source = Source("192.0.2.200", 5060, "tcp")
    assert handle(reg, trunk_request(cluster, "REFER", source), source).status == 202
    # The overriding user's credentials (and its allowed types) are the ones that count.
    subscribe = trunk_request(cluster, "SUBSCRIBE", SECURE, event="presence")
    challenged = handle(reg, subscribe, SECURE)
    answered = authorize(subscribe, challenged, password="other-pw")
    assert handle(reg, answered, SECURE).status == 200
    assert reg.sip_realms["cube.example"].user == "explicit"
    # The cluster itself is unchanged.
    assert cluster.application_users[APP].allowed == {RequestType.OUT_OF_DIALOG_REFER}
    assert Registrar(cluster, cluster.publisher.hostname).sip_realms["cube.example"].user == (
        "cucm-uac"
    )


def uac_exchange(realm: str) -> tuple[SipRequest, SipResponse]:
    """An INVITE the cluster sends to a trunk, and the trunk's 401 for ``realm``."""
    request = SipRequest(
        "INVITE",
        "sip:2000@cube.example",
        (
            ("Via", "SIP/2.0/TCP cucm1:5060;branch=z9hG4bKuac"),
            ("From", "<sip:1000@cucm1>;tag=a"),
            ("To", "<sip:2000@cube.example>"),
            ("Call-ID", "uac-1"),
            ("CSeq", "7 INVITE"),
        ),
    )
    challenge = Challenge(realm, "n0nce")
    response = make_response(
        request, 401, "Unauthorized", headers=(("WWW-Authenticate", challenge.render()),)
    )
    return request, response


def test_item43_the_cluster_as_uac_uses_its_configured_sip_realms(lab: Lab) -> None:
    cluster = lab.cluster()
    reg = Registrar(cluster, cluster.publisher.hostname, random=random.Random(1).randbytes)
    request, challenge = uac_exchange("cube.example")
    resent = reg.answer_as_uac(request, challenge, peer="trunk")
    assert resent is not None and resent.cseq == (8, "INVITE")
    credentials = parse_credentials(resent.header("Authorization"))
    expected = answer_challenge(
        parse_challenge(challenge.header("WWW-Authenticate")),
        username="cucm-uac",
        password=REALM_PASSWORD,
        method="INVITE",
        uri=request.uri,
        cnonce=credentials.cnonce or "",
    )
    assert credentials == expected
    assert reg.answer_as_uac(request, challenge, peer="line") is None  # item 40
    assert reg.answer_as_uac(*uac_exchange("elsewhere"), peer="trunk") is None
    cluster.remove_sip_realm("cube.example", now=NOW)
    assert reg.answer_as_uac(request, challenge, peer="trunk") is None


Change = Callable[[Cluster], object]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c.add_trunk_profile(TrunkSecurityProfile("open"), now=NOW),
            "already exists",
        ),
        (lambda c: c.remove_trunk_profile("secure", now=NOW), "used by trunk secure"),
        (lambda c: c.remove_trunk_profile("nope", now=NOW), "no trunk security profile"),
        (
            lambda c: c.add_trunk(TrunkConfig("t", frozenset({"10.9.9.9"}), "nope"), now=NOW),
            "no trunk security profile 'nope'",
        ),
        (
            lambda c: c.add_trunk(TrunkConfig("t", frozenset({LOCKED.host}), "open"), now=NOW),
            "trunk locked already has address 192.0.2.10",
        ),
        (
            lambda c: c.add_trunk(TrunkConfig("open", frozenset({"10.9.9.9"}), "open"), now=NOW),
            "already exists",
        ),
        (lambda c: c.remove_trunk("nope", now=NOW), "no trunk 'nope'"),
        (
            lambda c: c.add_application_user(
                ApplicationUser.create(APP, "x", realm=CLUSTER_ID), now=NOW
            ),
            "already exists",
        ),
        (lambda c: c.remove_application_user("nope", now=NOW), "no application user"),
        (
            lambda c: c.add_sip_realm(SipRealm("cube.example", "u", "p"), now=NOW),
            "already exists",
        ),
        (lambda c: c.remove_sip_realm("nope", now=NOW), "no SIP realm"),
    ],
)
def test_cluster_methods_refuse_conflicts(lab: Lab, change: Change, message: str) -> None:
    cluster = lab.cluster()
    revision = cluster.revision
    with pytest.raises(LabError, match=message):
        change(cluster)
    assert cluster.revision == revision  # nothing committed


def test_replace_and_remove_are_committed_and_logged(lab: Lab) -> None:
    cluster = lab.cluster()
    since = cluster.next_log_seq
    cluster.add_trunk(
        TrunkConfig("open", frozenset({"10.9.9.0/24"}), "secure"), now=NOW, replace=True
    )
    assert cluster.trunks["open"].profile == "secure"
    cluster.remove_trunk("open", now=NOW)
    cluster.remove_trunk_profile("open", now=NOW)
    cluster.remove_application_user(APP, now=NOW)
    messages = [e.message for e in cluster.log_since(since)]
    assert messages == [
        "SIP trunk open saved: 10.9.9.0/24, profile secure",
        "SIP trunk open removed",
        "SIP trunk security profile open removed",
        f"application user {APP} removed",
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrunkSecurityProfile("bad name"), "invalid trunk security profile name"),
        (lambda: TrunkConfig("t", frozenset(), "p"), "at least one address"),
        (lambda: TrunkConfig("t", frozenset({"192.0.2.1/24"}), "p"), "did you mean 192.0.2.0/24"),
        (lambda: ApplicationUser.create('a"b', "pw", realm="r"), "invalid application user"),
        (lambda: ApplicationUser.create("a", "", realm="r"), "password must be"),
        (lambda: ApplicationUser("a", "r", "XYZ"), "MD5"),
        (lambda: SipRealm("r", "u", "pw\n"), "SIP realm password must be"),
        (lambda: SipRealm("r", "u", " pw"), "SIP realm password must be"),
        (lambda: SipRealm("r", "u\\", "pw"), "SIP realm user must be"),
        (lambda: SipRealm('r"', "u", "pw"), "realm must be"),
    ],
)
def test_entries_are_validated_when_built(build: Callable[[], object], message: str) -> None:
    with pytest.raises(LabError, match=message) as caught:
        build()
    assert "pw\n" not in str(caught.value)  # a password is never echoed


def test_addresses_are_canonical_and_secrets_stay_out_of_repr() -> None:
    assert parse_address(" 192.0.2.7/32 ") == "192.0.2.7"
    assert parse_address("2001:db8::/32") == "2001:db8::/32"
    trunk = TrunkConfig("t", frozenset({"192.0.2.7/32", "198.51.100.0/24"}), "p")
    assert trunk.addresses == {"192.0.2.7", "198.51.100.0/24"}
    # Passwords only feed digests: quotes and backslashes are fine in them.
    assert SipRealm("r", "u", 'p"\\w').password == 'p"\\w'
    user = ApplicationUser.create("app", "hunter2", realm="r")
    realm = SipRealm("r", "u", "hunter2")
    assert user.ha1 not in repr(user) and "hunter2" not in repr(realm)
    assert RequestType.parse_list("refer, SUBSCRIBE") == {
        RequestType.OUT_OF_DIALOG_REFER,
        RequestType.PRESENCE_SUBSCRIBE,
    }
    assert RequestType.parse_list("all") == ALL and RequestType.parse_list("") == frozenset()
    with pytest.raises(LabError, match="unknown request type"):
        RequestType.parse_list("refer,teleport")

"""``vphone lab trunk-profile|trunk|app-user|sip-realm`` (items 43-44), and a lab configured
through them served on loopback sockets by :class:`LabServer`."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clusterlab import NOW
from keypool import pooled_keys

from phone.cli import lab as lab_cli
from phone.cli import lab_edge, main
from phone.cluster.store import load_lab
from phone.net.servers import LabServer
from phone.pki import KeySource
from phone.wire.sip import (
    SipRequest,
    SipResponse,
    StreamReader,
    answer_challenge,
    digest_ha1,
    encode_message,
    parse_challenge,
    parse_message,
    warning_text,
)

APP_PASSWORD = "app-Secret-1"
REALM_PASSWORD = "realm-Secret-2"
TIMEOUT = 3.0  # seconds any one socket exchange may take


class Clock:
    """The CLI's clock, one second further at every reading."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(autouse=True)
def edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pooled keys and a test clock instead of fresh keys and the wall clock."""

    def keys() -> KeySource:
        return pooled_keys()

    monkeypatch.setattr(lab_edge, "now", Clock())
    monkeypatch.setattr(lab_edge, "key_source", keys)
    monkeypatch.delenv(lab_cli.APP_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(lab_cli.REALM_PASSWORD_ENV, raising=False)


class Cli:
    """Runs ``vphone lab ...`` on one lab folder and keeps every line it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str], folder: Path) -> None:
        self.capsys = capsys
        self.dir = str(folder / "lab")
        self.printed: list[str] = []

    def __call__(self, command: str, *argv: str) -> tuple[int, str, str]:
        code = main(["lab", *command.split(), self.dir, *argv])
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        return code, out, err

    def ok(self, command: str, *argv: str) -> str:
        code, out, err = self(command, *argv)
        assert code == 0, (command, argv, out, err)
        return out

    def fails(self, command: str, *argv: str, code: int = 2) -> str:
        """Run a command that must fail with ``code`` and one line on stderr."""
        got, out, err = self(command, *argv)
        assert got == code, (command, argv, out, err)
        assert err.startswith("vphone: ") and err.count("\n") == 1, err
        return err

    def usage(self, command: str, *argv: str) -> str:
        """Run a command argparse refuses: exit 2 and a usage message."""
        with pytest.raises(SystemExit) as caught:
            main(["lab", *command.split(), self.dir, *argv])
        _, err = self.capsys.readouterr()
        assert caught.value.code == 2
        return err

    def json(self, command: str, *argv: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.ok(command, *argv, "--json"))
        return shown


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """A CLI runner over a fresh lab folder ``tmp_path/lab``."""
    runner = Cli(capsys, tmp_path)
    runner.ok("init")
    return runner


def test_cli_configures_profiles_trunks_users_and_realms(cli: Cli) -> None:
    out = cli.ok(
        "trunk-profile add", "secure", "--allow", "refer,subscribe", "--digest", "--app-auth"
    )
    assert "trunk security profile secure saved (allows refer, subscribe)" in out
    assert "CLI: SIP trunk security profile secure saved" in out  # the log line
    cli.ok("trunk-profile add", "open", "--allow", "all", "--challenge", "407")
    addresses = ("--address", "192.0.2.0/24", "--address", "198.51.100.7/32")
    out = cli.ok("trunk add", "cube", *addresses, "--profile", "secure")
    assert "SIP trunk cube saved: 192.0.2.0/24, 198.51.100.7, profile secure" in out
    out = cli.ok("app-user add", "app", "--password", APP_PASSWORD, "--allow", "refer")
    assert "application user app saved (digest realm StandAloneCluster)" in out
    out = cli.ok("sip-realm add", "cube.example", "--user", "cucm", "--password", REALM_PASSWORD)
    assert "SIP realm cube.example saved (user cucm)" in out

    [report] = cli.json("show")["clusters"]
    assert report["trunk_profiles"] == [
        {
            "name": "secure",
            "allowed": ["refer", "subscribe"],
            "digest": True,
            "application_authorization": True,
            "challenge": 401,
            "trunks": ["cube"],
        },
        {
            "name": "open",
            "allowed": ["refer", "notify", "replaces", "subscribe"],
            "digest": False,
            "application_authorization": False,
            "challenge": 407,
            "trunks": [],
        },
    ]
    assert report["trunks"] == [
        {"name": "cube", "addresses": ["192.0.2.0/24", "198.51.100.7"], "profile": "secure"}
    ]
    assert report["application_users"] == [
        {
            "name": "app",
            "realm": "StandAloneCluster",
            "credentials_valid": True,
            "allowed": ["refer"],
        }
    ]
    assert report["sip_realms"] == [{"realm": "cube.example", "user": "cucm"}]
    text = cli.ok("show")
    assert "SIP trunk security profiles: 2" in text
    assert "secure  allows refer, subscribe; digest 401, application-level authorization" in text
    assert "cube  192.0.2.0/24, 198.51.100.7  profile secure" in text
    assert "app  realm StandAloneCluster  allows refer" in text
    assert "cube.example  user cucm  (password stored, not shown)" in text

    assert cli.ok("trunk list") == "cluster1: cube  192.0.2.0/24, 198.51.100.7  profile secure\n"
    assert cli.json("sip-realm list") == {
        "cluster": "cluster1",
        "sip_realms": [{"realm": "cube.example", "user": "cucm"}],
    }
    assert [u["name"] for u in cli.json("app-user list")["application_users"]] == ["app"]
    assert len(cli.json("trunk-profile list")["trunk_profiles"]) == 2

    # The Cluster ID is the trunk realm (item 43): changing it makes the stored HA1 stale.
    out = cli.ok("set", "cluster-id", "Renamed")
    assert "WARNING application users app have digest credentials for another realm" in out
    assert "STALE: cluster-id changed" in cli.ok("app-user list")
    out = cli.ok("app-user add", "app", "--password", APP_PASSWORD, "--replace")
    assert "digest realm Renamed" in out
    assert cli.json("app-user list")["application_users"][0]["credentials_valid"] is True

    # Never a password or a hash in full, anywhere the CLI printed.
    secrets = (
        APP_PASSWORD,
        REALM_PASSWORD,
        digest_ha1("app", "Renamed", APP_PASSWORD),
        digest_ha1("app", "StandAloneCluster", APP_PASSWORD),
    )
    printed = "".join(cli.printed)
    assert not [s for s in secrets if s in printed]
    assert not [s for s in secrets if s in cli.ok("log")]

    cli.fails("trunk-profile remove", "secure")  # still used by trunk cube
    cli.ok("trunk remove", "cube")
    cli.ok("trunk-profile remove", "secure")
    cli.ok("app-user remove", "app")
    cli.ok("sip-realm remove", "cube.example")
    assert cli.ok("trunk list") == "cluster1: none\n"
    assert cli.ok("app-user list") == "cluster1: none\n"
    assert [p["name"] for p in cli.json("trunk-profile list")["trunk_profiles"]] == ["open"]


def test_cli_passwords_may_come_from_the_environment(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = cli.fails("app-user add", "app")
    assert "$VPHONE_APP_PASSWORD" in err
    err = cli.fails("sip-realm add", "cube.example", "--user", "cucm")
    assert "$VPHONE_REALM_PASSWORD" in err
    monkeypatch.setenv("VPHONE_APP_PASSWORD", APP_PASSWORD)
    monkeypatch.setenv("VPHONE_REALM_PASSWORD", REALM_PASSWORD)
    cli.ok("app-user add", "app")
    cli.ok("sip-realm add", "cube.example", "--user", "cucm")
    cluster = load_lab(Path(cli.dir)).cluster()
    assert cluster.application_users["app"].ha1 == digest_ha1(
        "app", "StandAloneCluster", APP_PASSWORD
    )
    assert cluster.sip_realms["cube.example"].password == REALM_PASSWORD


def test_cli_errors_are_one_line_and_exit_2(cli: Cli) -> None:
    cli.ok("trunk-profile add", "p", "--digest")
    cli.ok("trunk add", "t", "--address", "192.0.2.10", "--profile", "p")
    checks = [
        # Item 44: application-level authorization needs digest.
        (("trunk-profile add", "bad", "--app-auth"), "requires digest authentication (item 44)"),
        (("trunk-profile add", "q", "--allow", "refer,teleport"), "unknown request type"),
        (("trunk-profile add", "p"), "already exists"),
        (("trunk-profile add", "bad name"), "invalid trunk security profile name"),
        (("trunk-profile remove", "nope"), "no trunk security profile"),
        (("trunk add", "u", "--address", "192.0.2.1/24", "--profile", "p"), "did you mean"),
        (("trunk add", "u", "--address", "cube.example", "--profile", "p"), "invalid trunk"),
        (("trunk add", "u", "--address", "10.0.0.1", "--profile", "nope"), "no trunk security"),
        (("trunk add", "u", "--address", "192.0.2.10", "--profile", "p"), "already has address"),
        (("trunk remove", "nope"), "no trunk 'nope'"),
        (("app-user add", "a", "--password", "x y "), "password must be"),
        (("app-user remove", "nope"), "no application user"),
        (("sip-realm add", "r", "--user", "u", "--password", "p\tw"), "password must be"),
        (("sip-realm add", "r", "--user", 'u"', "--password", "pw"), "user must be"),
        (("sip-realm remove", "nope"), "no SIP realm"),
        (("trunk list", "--cluster", "nope"), "no cluster 'nope'"),
    ]
    for (command, *argv), message in checks:
        err = cli.fails(command, *argv)
        assert message in err, (command, err)
        assert "p\tw" not in err and "x y" not in err  # passwords are never echoed
    # argparse refusals: usage and exit 2.
    assert "--profile" in cli.usage("trunk add", "u", "--address", "192.0.2.11")
    assert "--address" in cli.usage("trunk add", "u", "--profile", "p")
    assert "--user" in cli.usage("sip-realm add", "r", "--password", "x")
    assert "invalid choice" in cli.usage("trunk-profile add", "c", "--challenge", "403")
    with pytest.raises(SystemExit) as caught:
        main(["lab", "trunk"])
    assert caught.value.code == 2
    # A folder that is not a lab.
    code, _, err = Cli(cli.capsys, Path(cli.dir) / "nowhere")("trunk list")
    assert code == 2 and "not a vphone lab folder" in err


def test_cli_several_clusters_use_cluster(cli: Cli) -> None:
    cli.ok("init", "--cluster", "other")
    cli.fails("trunk-profile add", "p")  # which cluster?
    cli.ok("trunk-profile add", "p", "--cluster", "other")
    assert cli.json("trunk-profile list", "--cluster", "other")["trunk_profiles"][0]["name"] == "p"
    assert cli.json("trunk-profile list", "--cluster", "cluster1")["trunk_profiles"] == []


# --- end to end over loopback sockets --------------------------------------------------------


def refer(registrar: str, local: tuple[str, int], transport: str, n: int) -> SipRequest:
    """An out-of-dialog REFER (no To tag) from a trunk peer at ``local``."""
    return SipRequest(
        "REFER",
        f"sip:1000@{registrar}",
        (
            ("Via", f"SIP/2.0/{transport.upper()} {local[0]}:{local[1]};branch=z9hG4bKe2e{n}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:app@{local[0]}>;tag=e2e{n}"),
            ("To", f"<sip:1000@{registrar}>"),
            ("Call-ID", f"e2e-{transport}-{n}@{local[0]}"),
            ("CSeq", f"{n} REFER"),
            ("Refer-To", f"<sip:2000@{registrar}>"),
        ),
    )


@contextmanager
def peer(address: tuple[str, int], transport: str) -> Iterator[socket.socket]:
    """A trunk peer's socket on 127.0.0.1, connected to ``address``, bounded by TIMEOUT."""
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind(("127.0.0.1", 0))
        sock.connect(address)
        yield sock


def exchange(sock: socket.socket, transport: str, request: SipRequest) -> SipResponse:
    """Send ``request`` and read its response (one datagram, or one framed stream message)."""
    sock.sendall(encode_message(request))
    if transport == "udp":
        message = parse_message(sock.recv(65535))
        assert isinstance(message, SipResponse)
        return message
    reader = StreamReader()
    while True:
        data = sock.recv(65535)
        assert data, "the registrar closed the connection"
        for framed in reader.feed(data):
            assert isinstance(framed, SipResponse)
            return framed


def authorized(request: SipRequest, challenge: SipResponse, password: str) -> SipRequest:
    credentials = answer_challenge(
        parse_challenge(challenge.header("WWW-Authenticate")),
        username="app",
        password=password,
        method=request.method,
        uri=request.uri,
        cnonce="e2e",
    )
    number, method = request.cseq
    return request.replace_headers(
        ("Via", request.header("Via") + "x"),  # a new branch: a new transaction
        ("CSeq", f"{number + 1} {method}"),
        ("Authorization", credentials.render()),
        drop=("Via", "CSeq"),
    )


@contextmanager
def served(folder: str) -> Iterator[tuple[LabServer, str]]:
    """``LabServer`` over the lab folder as saved by the CLI; every server stopped after."""
    lab = load_lab(Path(folder))
    server = LabServer(lab, clock=lambda: NOW + timedelta(minutes=5))
    server.start()
    try:
        yield server, lab.cluster().publisher.hostname
    finally:
        server.stop()
        assert not [t for t in server.threads() if t.is_alive()]


def test_items43_44_lab_server_applies_trunks_configured_through_the_cli(cli: Cli) -> None:
    cli.ok("set", "cluster-id", "E2E-Cluster")
    cli.ok("trunk-profile add", "no-refer", "--digest")  # allows no controlled request type
    cli.ok("trunk-profile add", "refer-digest", "--allow", "refer", "--digest")
    cli.ok("trunk add", "loopback", "--address", "127.0.0.1", "--profile", "no-refer")
    cli.ok("app-user add", "app", "--password", APP_PASSWORD, "--allow", "refer")

    # The profile does not allow out-of-dialog REFER: 403 from the ACL, before any challenge
    # (item 44), on UDP and on TCP alike.
    with served(cli.dir) as (server, host):
        address = server.address(host, "sip")
        for n, transport in enumerate(("udp", "tcp"), start=1):
            with peer(address, transport) as sock:
                local = sock.getsockname()
                response = exchange(sock, transport, refer(host, local, transport, n))
            assert response.status == 403, (transport, response)
            assert response.get("WWW-Authenticate") is None
            assert "trunk loopback (profile no-refer) does not accept out-of-dialog-refer" in (
                warning_text(response) or ""
            )

    # Allowed with digest on: challenged with realm = Cluster ID (item 43), then accepted with
    # the application user's credentials; a wrong password is refused.
    replace = ("--profile", "refer-digest", "--replace")
    cli.ok("trunk add", "loopback", "--address", "127.0.0.1", *replace)
    with served(cli.dir) as (server, host):
        address = server.address(host, "sip")
        for n, transport in enumerate(("udp", "tcp"), start=3):
            with peer(address, transport) as sock:
                request = refer(host, sock.getsockname(), transport, n)
                challenge = exchange(sock, transport, request)
                assert challenge.status == 401, (transport, challenge)
                realm = parse_challenge(challenge.header("WWW-Authenticate")).realm
                assert realm == "E2E-Cluster"
                accepted = exchange(sock, transport, authorized(request, challenge, APP_PASSWORD))
                assert accepted.status == 202, (transport, accepted)
                wrong = authorized(request, exchange(sock, transport, request), "wrong")
                wrong = wrong.replace_headers(
                    ("Via", wrong.header("Via") + "w"),
                    ("CSeq", f"{n + 10} REFER"),
                    drop=("Via", "CSeq"),
                )
                refused = exchange(sock, transport, wrong)
                assert refused.status == 403 and "wrong digest credentials" in (
                    warning_text(refused) or ""
                )

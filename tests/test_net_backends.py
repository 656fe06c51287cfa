"""Backend selection (URLs), host maps, the ``dir:`` backend, the socket backend's routing and
the lab server's bookkeeping (issue 5). The end-to-end stories over sockets are in
``test_net_stories.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from keypool import pooled_keys

import phone.net.sockets as sockets_module
from phone.api import ClusterSpec, Lab, State, create_lab, create_phone
from phone.catalog.models import Transport, get_model
from phone.cluster.files import ClientInfo
from phone.device.port import RegisterRequest, RegisterResult, Requester
from phone.errors import FileNotFoundOnServer, NetworkError, UsageError
from phone.net.directory import DirectoryBackend
from phone.net.hostmap import HostEntry, HostMap, parse_host_maps
from phone.net.servers import LabServer
from phone.net.sockets import SocketBackend
from phone.net.urls import ServerUrl, open_target, parse_server_url, restrict_transports
from phone.pki import Identity
from phone.trust.tvs import TvsAnswer, TvsServer

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
REQUESTER = Requester(mac=MAC, model="8841")
NO_CLIENT = cast(Identity, None)  # these backends never look at the client identity


def clock() -> datetime:
    return NOW


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tftp://127.0.0.1:6969", ServerUrl("tftp", "127.0.0.1", 6969)),
        ("tftp://cucm1.lab", ServerUrl("tftp", "cucm1.lab", 69)),
        ("http://127.0.0.1:6970", ServerUrl("http", "127.0.0.1", 6970)),
        ("HTTP://CUCM1.Lab/", ServerUrl("http", "cucm1.lab", 6970)),
        ("dir:./pulled", ServerUrl("dir", path=Path("./pulled"))),
    ],
)
def test_item4_server_urls(text: str, expected: ServerUrl) -> None:
    assert parse_server_url(text) == expected


def test_server_url_transport_and_text() -> None:
    assert parse_server_url("tftp://h").transport is Transport.TFTP
    assert parse_server_url("http://h").transport is Transport.HTTP
    assert parse_server_url("dir:x").transport is None
    assert str(parse_server_url("http://h")) == "http://h:6970"


@pytest.mark.parametrize(
    "text",
    ["ftp://h", "tftp://", "tftp://h:99999", "tftp://h/files", "tftp://u@h", "dir:", "cucm1.lab"],
)
def test_bad_server_urls(text: str) -> None:
    with pytest.raises(UsageError):
        parse_server_url(text)


def test_item4_tftp_url_restricts_to_tftp_and_http_url_to_http() -> None:
    model = get_model("8841")
    assert model.transports == (Transport.HTTP, Transport.TFTP)  # HTTP first, then TFTP
    assert restrict_transports(model, Transport.TFTP).transports == (Transport.TFTP,)
    assert restrict_transports(model, Transport.HTTP).transports == (Transport.HTTP,)
    assert restrict_transports(model, None) is model


def test_item4_older_79xx_cannot_use_an_http_url() -> None:
    with pytest.raises(UsageError, match="item 4"):
        restrict_transports(get_model("7962"), Transport.HTTP)


# --- host maps ---------------------------------------------------------------------------------


def test_host_map_ip_and_port_moves_every_service() -> None:
    """The issue's example: ``tvs1.lab=127.0.0.1:2445``."""
    hosts = parse_host_maps(["tvs1.lab=127.0.0.1:2445"])
    assert hosts.resolve("tvs1.lab", "tvs", 2445) == ("127.0.0.1", 2445)
    assert hosts.resolve("TVS1.LAB.", "sip", 5060) == ("127.0.0.1", 2445)


def test_host_map_ip_only_keeps_the_phones_ports() -> None:
    hosts = parse_host_maps(["cucm1.lab=10.0.0.5"])
    assert hosts.resolve("cucm1.lab", "tvs", 3000) == ("10.0.0.5", 3000)  # the config's port
    assert hosts.resolve("cucm1.lab", "tftp") == ("10.0.0.5", 69)
    assert hosts.resolve("cucm1.lab", "http") == ("10.0.0.5", 6970)


def test_host_map_per_service_ports_and_override() -> None:
    hosts = parse_host_maps(["a.lab=127.0.0.1:7000,tvs=2445", "b.lab=127.0.0.1,tftp=6969"])
    assert hosts.resolve("a.lab", "tvs") == ("127.0.0.1", 2445)
    assert hosts.resolve("a.lab", "sip") == ("127.0.0.1", 7000)
    assert hosts.resolve("b.lab", "tftp") == ("127.0.0.1", 6969)
    assert hosts.resolve("b.lab", "http") == ("127.0.0.1", 6970)


def test_host_map_unknown_name_resolves_to_itself() -> None:
    assert HostMap().resolve("cucm9.lab", "tvs", 2445) == ("cucm9.lab", 2445)


@pytest.mark.parametrize(
    "spec",
    [
        "a.lab",
        "=127.0.0.1",
        "a.lab=",
        "a.lab=127.0.0.1:0",
        "a.lab=127.0.0.1:http",
        "a.lab=127.0.0.1,ftp=21",
        "a.lab=127.0.0.1,tvs",
        "a.lab=bad host!",
    ],
)
def test_bad_host_map_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        HostMap.parse_spec(spec)


def test_host_map_json_round_trip_and_files(tmp_path: Path) -> None:
    hosts = parse_host_maps(["cucm1.c1.lab=127.0.0.1,tftp=40001,http=40002,tvs=40003,sip=40004"])
    path = tmp_path / "hosts.json"
    path.write_text(hosts.to_json())
    loaded = HostMap.load(path)
    assert loaded == hosts
    assert json.loads(path.read_text())["hosts"]["cucm1.c1.lab"]["tvs"] == 40003
    # A file and a spec together: the later one wins for that name.
    combined = parse_host_maps([str(path), "cucm1.c1.lab=127.0.0.1,tvs=2445"])
    assert combined.resolve("cucm1.c1.lab", "tvs") == ("127.0.0.1", 2445)
    assert combined.resolve("cucm1.c1.lab", "tftp") == ("127.0.0.1", 40001)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "other"}',
        '{"format": "vphone-host-map", "version": 9, "hosts": {}}',
        '{"format": "vphone-host-map", "version": 1, "hosts": {"a": {"tvs": 1}}}',
        '{"format": "vphone-host-map", "version": 1, "hosts": {"a": {"ip": "1.2.3.4", "tvs": 0}}}',
    ],
)
def test_bad_host_map_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(text)
    with pytest.raises(UsageError):
        parse_host_maps([str(path)])


def test_missing_host_map_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        parse_host_maps([str(tmp_path / "nope.json")])


def test_host_map_reverse_lookup_names_the_tftp_server() -> None:
    entry = HostEntry("127.0.0.1", {"tftp": 40001, "http": 40002})
    hosts = HostMap({"cucm1.c1.lab": entry, "10.1.0.10": entry})
    assert hosts.find("127.0.0.1", "tftp", 40001) == "cucm1.c1.lab"  # not the IP alias
    assert hosts.find("127.0.0.1", "tftp", 40002) is None
    assert hosts.find("127.0.0.2", "tftp", 40001) is None


# --- open_target -------------------------------------------------------------------------------


def test_open_target_names_the_lab_node_behind_the_url() -> None:
    hosts = HostMap({"cucm1.c1.lab": HostEntry("127.0.0.1", {"tftp": 40001, "tvs": 40003})})
    target = open_target(parse_server_url("tftp://127.0.0.1:40001"), hosts)
    try:
        assert target.tftp == "cucm1.c1.lab"
        assert target.transport is Transport.TFTP
        assert isinstance(target.backend, SocketBackend)
        assert target.backend.hosts.resolve("cucm1.c1.lab", "tvs") == ("127.0.0.1", 40003)
    finally:
        target.close()


def test_open_target_without_a_map_uses_the_url_host_and_port() -> None:
    target = open_target(parse_server_url("http://127.0.0.1:16970"))
    try:
        assert target.tftp == "127.0.0.1"
        assert target.transport is Transport.HTTP
        assert isinstance(target.backend, SocketBackend)
        assert target.backend.hosts.resolve("127.0.0.1", "http") == ("127.0.0.1", 16970)
    finally:
        target.close()


def test_open_target_dir(tmp_path: Path) -> None:
    target = open_target(parse_server_url(f"dir:{tmp_path}"))
    assert isinstance(target.backend, DirectoryBackend)
    assert target.transport is None
    with pytest.raises(UsageError):
        open_target(parse_server_url(f"dir:{tmp_path / 'missing'}"))


# --- the socket backend's routing ----------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def fake_tftp(host: str, port: int, name: str, **kw: Any) -> bytes:
        seen.append(("tftp", (host, port, name, kw)))
        return b"tftp"

    def fake_tvs(address: tuple[str, int], **kw: Any) -> TvsAnswer:
        seen.append(("tvs", (address, kw)))
        return TvsAnswer(True, (), 0)

    def fake_sip(address: tuple[str, int], request: RegisterRequest, **kw: Any) -> RegisterResult:
        seen.append(("sip", (address, request.transport, kw)))
        return RegisterResult(True, 200, "OK")

    monkeypatch.setattr(sockets_module, "fetch_tftp", fake_tftp)
    monkeypatch.setattr(sockets_module, "tvs_query_tls", fake_tvs)
    monkeypatch.setattr(sockets_module, "sip_register", fake_sip)
    yield seen


def test_socket_backend_routes_every_service_through_the_host_map(
    calls: list[tuple[str, Any]],
) -> None:
    entry = HostEntry("127.0.0.1", {"tftp": 1001, "tvs": 1003, "sip": 1004, "sips": 1005})
    with SocketBackend(HostMap({"cucm1.lab": entry}), timeout=0.5) as backend:
        assert (
            backend.fetch("cucm1.lab", "ITLFile.tlv", transport=Transport.TFTP, requester=REQUESTER)
            == b"tftp"
        )
        backend.tvs_query(
            TvsServer("cucm1.lab"),
            "CN=x",
            b"\x01",
            lambda c: None,
            client=NO_CLIENT,
            requester=REQUESTER,
        )
        for transport in ("tcp", "tls"):
            backend.register(RegisterRequest("cucm1.lab", 5060, transport, REQUESTER))
    tftp, tvs, sip, sips = calls
    # TFTP attempts per file come from the model (Model.tftp_retries), the timeout from us.
    assert tftp[1] == (
        "127.0.0.1",
        1001,
        "ITLFile.tlv",
        {"blksize": 1428, "timeout": 0.5, "retries": 3},
    )
    assert tvs[1][0] == ("127.0.0.1", 1003)
    assert tvs[1][1]["device_name"] == "CP-8841-SEP001122334455"  # section 9a
    assert sip[1][:2] == (("127.0.0.1", 1004), "tcp")
    assert sips[1][:2] == (("127.0.0.1", 1005), "tls")


def test_socket_backend_refuses_a_silly_timeout() -> None:
    with pytest.raises(UsageError):
        SocketBackend(timeout=0)


# --- the dir: backend ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Lab:
    return create_lab(ClusterSpec("c1"), ClusterSpec("c2"), now=NOW, keys=pooled_keys())


def pull(lab: Lab, cluster: str, folder: Path, names: list[str]) -> Path:
    """Copy files as a user would from a real cluster's TFTP server."""
    folder.mkdir(parents=True, exist_ok=True)
    service = lab.file_service(lab.cluster(cluster).tftp_hosts[0])
    assert service is not None
    for name in names:
        data = service.get(name, ClientInfo(address="127.0.0.1"))
        assert data is not None, name
        (folder / name).write_bytes(data)
    return folder


def test_dir_backend_finds_names_case_insensitively(tmp_path: Path) -> None:
    (tmp_path / "itlfile.tlv").write_bytes(b"itl")
    (tmp_path / "Desktops").mkdir()
    (tmp_path / "Desktops" / "list.XML").write_bytes(b"<l/>")
    backend = DirectoryBackend(tmp_path)
    fetch = backend.fetch
    assert fetch("x", "ITLFile.tlv", transport=Transport.TFTP, requester=REQUESTER) == b"itl"
    assert fetch("x", "desktops/LIST.xml", transport=Transport.HTTP, requester=REQUESTER) == b"<l/>"
    with pytest.raises(FileNotFoundOnServer):
        fetch("x", "CTLFile.tlv", transport=Transport.TFTP, requester=REQUESTER)
    with pytest.raises(FileNotFoundOnServer):
        fetch("x", "Desktops", transport=Transport.TFTP, requester=REQUESTER)  # a folder


def test_dir_backend_never_leaves_its_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_bytes(b"secret")
    folder = tmp_path / "pulled"
    folder.mkdir()
    (folder / "link.tlv").symlink_to(tmp_path / "secret.txt")
    backend = DirectoryBackend(folder)
    for name in ("../secret.txt", "/etc/passwd", str(tmp_path / "secret.txt"), "link.tlv"):
        with pytest.raises(FileNotFoundOnServer):
            backend.fetch("x", name, transport=Transport.TFTP, requester=REQUESTER)


def test_dir_backend_has_no_tvs_and_no_registrar(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    with pytest.raises(NetworkError, match="offline folder"):
        backend.tvs_query(
            TvsServer("cucm1.lab"),
            "CN=x",
            b"\x01",
            lambda c: None,
            client=NO_CLIENT,
            requester=REQUESTER,
        )
    with pytest.raises(NetworkError, match="offline folder"):
        backend.register(RegisterRequest("cucm1.lab", 5060, "tcp", REQUESTER))


def test_dir_backend_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        DirectoryBackend(tmp_path / "nope")


def test_would_my_phones_accept_these_files_offline(lab: Lab, tmp_path: Path) -> None:
    """The dir: workflow: a new phone trusts the pulled ITL (item 9) and the signed default
    config (item 14); the boot shows every decision and ends registration-failed offline."""
    folder = pull(lab, "c1", tmp_path / "pulled", ["ITLFile.tlv", "XMLDefault.cnf.xml.sgn"])
    phone = create_phone(lab, mac=MAC, clock=clock, backend=DirectoryBackend(folder))
    assert phone.boot() is State.REGISTRATION_FAILED
    decisions = {(t.step, t.file): (t.decision, t.rule) for t in phone.trace if t.file}
    assert decisions[("itl", "ITLSEP001122334455.tlv")] == ("not-found", "item 2")
    assert decisions[("itl", "ITLFile.tlv")] == ("accepted", "item 9")
    assert decisions[("config", "XMLDefault.cnf.xml.sgn")] == ("accepted", "item 14")
    assert "offline folder" in phone.trace[-1].reason
    assert phone.status[-1] == "Registration failed"  # vphone's text


def test_offline_folder_from_another_cluster_is_refused_fail_closed(
    lab: Lab, tmp_path: Path
) -> None:
    """Items 12, 24: a phone of c1 shown c2's files: the new ITL needs TVS, which an offline
    folder cannot reach, so the phone keeps its ITL (item 13)."""
    phone = create_phone(lab, mac=MAC, clock=clock)
    assert phone.boot() is State.REGISTERED
    itl = phone.itl_hash()
    folder = pull(lab, "c2", tmp_path / "c2", ["ITLFile.tlv", "XMLDefault.cnf.xml.sgn"])
    phone.backend = DirectoryBackend(folder)
    phone.reset()
    rejected = [t for t in phone.trace if t.step == "itl" and t.decision == "rejected"]
    assert rejected and "fail closed" in rejected[-1].reason
    assert "offline folder" in rejected[-1].reason
    assert phone.itl_hash() == itl


def test_tampered_file_in_the_folder_is_rejected(lab: Lab, tmp_path: Path) -> None:
    """Item 14: a config edited after it was pulled fails its signature offline too."""
    folder = pull(lab, "c1", tmp_path / "t", ["ITLFile.tlv", "XMLDefault.cnf.xml.sgn"])
    config = folder / "XMLDefault.cnf.xml.sgn"
    data = bytearray(config.read_bytes())
    data[-5] ^= 0x01
    config.write_bytes(bytes(data))
    phone = create_phone(lab, mac="00112233AA01", clock=clock, backend=DirectoryBackend(folder))
    assert phone.boot() is State.NO_CONFIG
    assert "File auth error XMLDefault.cnf.xml.sgn" in phone.status  # 79xx admin guides


# --- the lab server's bookkeeping ----------------------------------------------------------------


def test_lab_server_listens_describes_and_maps_every_node() -> None:
    lab = create_lab(ClusterSpec("c3", tvs_nodes=2, tftp_nodes=2), now=NOW, keys=pooled_keys())
    with LabServer(lab, clock=clock) as server:
        hosts = server.host_map()
        lines = server.describe()
        threads = server.threads()
        cluster = lab.cluster()
        for node in cluster.nodes:
            entry = hosts.get(node.hostname)
            assert entry is not None and entry.address == "127.0.0.1"
            assert {"tftp", "http", "tvs", "sip"} <= set(entry.ports)
            assert hosts.get(node.ip) == entry  # the lab IP is an alias
        assert len(lines) >= 8 and all("127.0.0.1:" in line for line in lines)
        ports = [
            p for e in (hosts.get(n.hostname) for n in cluster.nodes) if e for p in e.ports.values()
        ]
        assert len(set(ports)) == len(ports)  # one port per service per node
        assert all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads)


def test_lab_server_fixed_port_goes_to_the_first_node() -> None:
    lab = create_lab(ClusterSpec("c4", tvs_nodes=2, tftp_nodes=2), now=NOW, keys=pooled_keys())
    probe = LabServer(lab)
    probe.start()
    first = probe.host_map().resolve("cucm1.c4.lab", "http")[1]
    probe.stop()  # the port is free again: ask for it
    with LabServer(lab, ports={"http": first}) as server:
        hosts = server.host_map()
        assert hosts.resolve("cucm1.c4.lab", "http")[1] == first
        assert hosts.resolve("cucm2.c4.lab", "http")[1] not in (first, 0)


def test_lab_server_sync_follows_node_power_on_the_same_ports() -> None:
    lab = create_lab(ClusterSpec("c5"), now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    host = cluster.nodes[0].hostname
    with LabServer(lab, clock=clock) as server:
        before = server.host_map()
        cluster.stop_node(host, now=NOW)
        server.sync()
        assert not any(listener.running for listener in server.listeners)
        assert server.threads() == []
        assert server.host_map() == before  # the ports stay mapped: nothing listens there
        cluster.start_node(host, now=NOW)
        server.sync()
        assert all(listener.running for listener in server.listeners)
        assert server.host_map() == before


def test_lab_server_port_taken_is_a_network_error() -> None:
    lab = create_lab(ClusterSpec("c6"), now=NOW, keys=pooled_keys())
    with LabServer(lab) as first:
        port = first.host_map().resolve("cucm1.c6.lab", "http")[1]
        second = LabServer(lab, ports={"http": port})
        with pytest.raises(NetworkError, match="HTTP"):
            second.start()
        assert second.threads() == []

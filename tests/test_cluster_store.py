"""The lab folder on disk: round trips, private files, crash safety."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from clusterlab import NOW, file_service, make_lab, phone_mic, seeded_random
from keypool import pooled_keys

from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, Node, SecurityMode
from phone.cluster.store import CLUSTER_FILE, edit_lab, init_lab, load_lab, save_lab
from phone.errors import LabError, UsageError
from phone.pki import CertKind, write_private_file

LATER = NOW + timedelta(hours=1)
MAC = "001122AABBCC"


@dataclass(frozen=True)
class _Report:
    tftp_host: str
    itl_hash: str
    timestamp: int


def _served(cluster: Cluster) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for host in cluster.tftp_hosts:
        service = file_service(cluster, host)
        if service is None:
            assert not cluster.node(host).running
            continue
        for name in service.names():
            if not name.endswith(".enc.sgn"):  # encrypted with a fresh AES key every time
                out[f"{host}/{name}"] = service.get(name)
    return out


def _node_view(node: Node) -> tuple[object, ...]:
    # Private key objects do not compare by value; their public halves do.
    identities = (node.callmanager, node.tvs, node.tomcat)
    return (
        node.hostname,
        node.ip,
        node.services,
        node.running,
        tuple(i.certificate for i in identities),
        tuple(i.key.public_key() for i in identities),
    )


def _busy_lab() -> Lab:
    lab = make_lab(
        ClusterSpec("alpha", tvs_nodes=2, tftp_nodes=2, mixed_mode=True),
        ClusterSpec("beta", release="8.x-11.5"),
    )
    alpha, beta = lab.cluster("alpha"), lab.cluster("beta")
    alpha.add_device(
        Device(
            MAC,
            security_mode=SecurityMode.ENCRYPTED,
            digest_user="alice",
            digest_password="pw",
            encrypt_config=True,
            certificate=phone_mic(MAC).certificate,
        ),
        now=NOW,
    )
    exports = {c.name: certops.export_certificates(c, password=b"pw") for c in lab.clusters}
    certops.import_certificates(alpha, exports, password=b"pw", now=NOW)
    retired = certops.regenerate(beta, CertKind.ITLRECOVERY, now=NOW, keys=pooled_keys())
    certops.itl_reset(beta, "remotekey", now=LATER, remote=retired.old)
    host = alpha.tftp_hosts[0]
    alpha.register(MAC, now=LATER, itl_report=_Report(host, "00" * 20, 7))
    alpha.set_parameter("sip-station-realm", "lab.example", now=LATER)
    alpha.stop_node(alpha.nodes[1].hostname, now=LATER)
    return lab


def test_save_load_round_trip_serves_identical_bytes(tmp_path: Path) -> None:
    lab = _busy_lab()
    save_lab(lab, tmp_path / "lab")
    loaded = load_lab(tmp_path / "lab", random=seeded_random())
    assert [c.name for c in loaded.clusters] == ["alpha", "beta"]
    for original in lab.clusters:
        again = loaded.cluster(original.name)
        assert _served(again) == _served(original)
        a, b = original.state, again.state
        assert [_node_view(n) for n in a.nodes] == [_node_view(n) for n in b.nodes]
        assert a.devices == b.devices
        assert a.parameters == b.parameters and a.trust == b.trust
        assert a.hashes.snapshot() == b.hashes.snapshot()
        assert a.log == b.log
        if a.itl_reset is None:
            assert b.itl_reset is None
        else:
            assert b.itl_reset is not None
            assert (a.itl_reset.mode, a.itl_reset.hosts) == (b.itl_reset.mode, b.itl_reset.hosts)
            remote_a, remote_b = a.itl_reset.remote, b.itl_reset.remote
            assert remote_a is not None and remote_b is not None
            assert remote_a.certificate == remote_b.certificate
        assert a.registrations == b.registrations and a.ctl_file == b.ctl_file
    assert loaded.resolve("cucm1.beta.lab") is not None


def test_private_files_are_owner_only(tmp_path: Path) -> None:
    lab = make_lab()
    save_lab(lab, tmp_path)
    folder = tmp_path / "clusters" / "cluster1"
    files = [folder / CLUSTER_FILE, *sorted((folder / "keys").glob("*.pem"))]
    assert len(files) == 6  # the document + five keys
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert b"PRIVATE KEY" in files[1].read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


def test_retired_key_files_are_removed_after_the_commit(tmp_path: Path) -> None:
    save_lab(make_lab(), tmp_path)
    keys = tmp_path / "clusters" / "cluster1" / "keys"
    before = {p.name for p in keys.glob("*.pem")}
    with edit_lab(tmp_path) as lab:
        certops.regenerate(lab.cluster(), CertKind.TVS, now=LATER, keys=pooled_keys())
    after = {p.name for p in keys.glob("*.pem")}
    assert len(after) == 5 and len(before & after) == 4


def test_crash_before_the_commit_point_keeps_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_lab(make_lab(), tmp_path)
    document = (tmp_path / "clusters" / "cluster1" / CLUSTER_FILE).read_bytes()

    def crash_on_commit(path: Path, data: bytes) -> None:
        if path.name == CLUSTER_FILE:
            raise OSError("disk full")
        write_private_file(path, data)

    monkeypatch.setattr("phone.cluster.store.write_private_file", crash_on_commit)
    with pytest.raises(OSError, match="disk full"), edit_lab(tmp_path) as lab:
        certops.regenerate(lab.cluster(), CertKind.CALLMANAGER, now=LATER, keys=pooled_keys())
    monkeypatch.undo()
    assert (tmp_path / "clusters" / "cluster1" / CLUSTER_FILE).read_bytes() == document
    assert load_lab(tmp_path).cluster().device(MAC) is None  # and it still loads


def test_nothing_saved_when_the_change_fails(tmp_path: Path) -> None:
    save_lab(make_lab(), tmp_path)
    path = tmp_path / "clusters" / "cluster1" / CLUSTER_FILE
    document = path.read_bytes()
    with pytest.raises(LabError), edit_lab(tmp_path) as lab:
        lab.cluster().add_device(Device(MAC), now=LATER)
        lab.cluster().set_parameter("nonce-validity", "-5", now=LATER)
    assert path.read_bytes() == document


def test_interrupted_init_is_ignored_and_damage_is_reported(tmp_path: Path) -> None:
    save_lab(make_lab(), tmp_path)
    ghost = tmp_path / "clusters" / "ghost" / "keys"
    ghost.mkdir(parents=True)
    (ghost / "half.pem").write_bytes(b"partial")
    assert [c.name for c in load_lab(tmp_path).clusters] == ["cluster1"]
    path = tmp_path / "clusters" / "cluster1" / CLUSTER_FILE
    document = json.loads(path.read_text())
    document["nodes"][0]["certificates"]["TVS"]["certificate"] = "garbage"
    path.write_text(json.dumps(document))
    with pytest.raises(LabError, match="damaged"):
        load_lab(tmp_path)
    path.write_text("{not json")
    with pytest.raises(LabError, match="damaged"):
        load_lab(tmp_path)


def test_init_adds_clusters_and_refuses_foreign_folders(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    init_lab(lab_dir, ClusterSpec("one"), now=NOW, keys=pooled_keys())
    lab = init_lab(lab_dir, ClusterSpec("two", release="12.x"), now=NOW, keys=pooled_keys())
    assert [c.name for c in lab.clusters] == ["one", "two"]
    assert lab.cluster("two").publisher.ip.startswith("10.2.")
    with pytest.raises(LabError, match="already has a cluster"):
        init_lab(lab_dir, ClusterSpec("one"), now=NOW, keys=pooled_keys())
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        init_lab(other, ClusterSpec(), now=NOW, keys=pooled_keys())
    with pytest.raises(UsageError, match="not a vphone lab"):
        load_lab(other)


def test_firmware_folder_is_served(tmp_path: Path) -> None:
    init_lab(tmp_path / "lab", ClusterSpec(), now=NOW, keys=pooled_keys())
    (tmp_path / "lab" / "firmware" / "sip88xx.14-1-1.loads").write_bytes(b"LOADS")
    lab = load_lab(tmp_path / "lab")
    service = lab.file_service("cucm1.cluster1.lab")
    assert service is not None
    assert service.get("SIP88XX.14-1-1.loads") == b"LOADS"
    assert service.get("../lab.json") is None


def test_clusters_come_back_in_the_labs_order_not_their_names(tmp_path: Path) -> None:
    # A scenario's lab creates its clusters at one instant, in the scenario's order ("old"
    # before "new"). Creation time cannot order them, and name order would turn every saved
    # and loaded copy of the lab (each fleet shard's) into another lab: lab steps over "every
    # cluster" would then report in another order than the lab run in memory.
    lab = make_lab(ClusterSpec("old"), ClusterSpec("new"))
    assert [c.name for c in lab.clusters] == ["old", "new"]
    save_lab(lab, tmp_path / "lab")
    marker = json.loads((tmp_path / "lab" / "lab.json").read_text())
    assert marker == {"format": "vphone-lab", "version": 1, "clusters": ["old", "new"]}
    loaded = load_lab(tmp_path / "lab", random=seeded_random())
    assert [c.name for c in loaded.clusters] == ["old", "new"]
    save_lab(loaded)  # saving the loaded lab keeps the order
    again = load_lab(tmp_path / "lab", random=seeded_random())
    assert [c.name for c in again.clusters] == ["old", "new"]


def test_a_marker_without_the_order_loads_by_creation_time_then_name(tmp_path: Path) -> None:
    # Folders written before the marker listed its clusters, and clusters it does not list (a
    # save interrupted between a new cluster's commit and the marker's): after the listed
    # ones, by creation time, then name.
    lab = make_lab(ClusterSpec("old"), ClusterSpec("new"))
    lab.add_cluster(ClusterSpec("added"), now=LATER, keys=pooled_keys())
    save_lab(lab, tmp_path / "lab")
    marker = tmp_path / "lab" / "lab.json"
    marker.write_text(json.dumps({"format": "vphone-lab", "version": 1}))
    assert [c.name for c in load_lab(tmp_path / "lab").clusters] == ["new", "old", "added"]
    marker.write_text(json.dumps({"format": "vphone-lab", "version": 1, "clusters": ["old"]}))
    assert [c.name for c in load_lab(tmp_path / "lab").clusters] == ["old", "new", "added"]
    listed = {"format": "vphone-lab", "version": 1, "clusters": ["gone", 7, "new", "old", "new"]}
    marker.write_text(json.dumps(listed))
    assert [c.name for c in load_lab(tmp_path / "lab").clusters] == ["new", "old", "added"]

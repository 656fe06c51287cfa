"""``vphone lab ...`` end to end on a lab folder (clock and keys injected at the edge)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clusterlab import NOW, phone_mic
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys

from phone.cli import lab_edge, main
from phone.cluster.records import TrustStore
from phone.cluster.store import load_lab
from phone.formats.configxml import parse_config
from phone.formats.signed import parse_signed
from phone.formats.trustlist import parse_trust_list, verify_with_certificate
from phone.pki import KeySource, identity_to_pkcs12
from phone.trust.lists import is_empty_itl

MAC = "001122AABBCC"


class Clock:
    """The CLI's clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(autouse=True)
def edge(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Pooled keys and a test clock instead of fresh keys and the wall clock."""
    clock = Clock()

    def keys() -> KeySource:
        return pooled_keys()

    monkeypatch.setattr(lab_edge, "now", clock)
    monkeypatch.setattr(lab_edge, "key_source", keys)
    return clock


class Cli:
    """Runs ``vphone`` and captures its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str], folder: Path) -> None:
        self.capsys = capsys
        self.dir = str(folder / "lab")
        self.tmp = folder

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, (argv, out, err)
        return out

    def lab(self, command: str, *argv: str) -> str:
        return self.ok("lab", command, self.dir, *argv)

    def get(self, name: str, *argv: str) -> bytes:
        out = self.tmp / "download.bin"
        self.lab("get", name, "-o", str(out), *argv)
        return out.read_bytes()

    def show(self, *argv: str) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.lab("show", "--json", *argv))
        return report

    def tlv_show(self, data: bytes) -> dict[str, Any]:
        path = self.tmp / "show.tlv"
        path.write_bytes(data)
        shown: dict[str, Any] = json.loads(self.ok("tlv", "show", str(path), "--json"))
        return shown


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """A CLI runner over ``tmp_path/lab``."""
    return Cli(capsys, tmp_path)


def test_cli_init_show_get_and_tlv_show(cli: Cli) -> None:
    out = cli.lab("init")
    assert "cluster cluster1 (release 14.x) installed" in out
    assert "Tftp Itl hash stored" in out
    [report] = cli.show()["clusters"]
    assert report["release"] == "14.x" and report["mode"] == "non-secure"
    [node] = report["nodes"]
    assert node["hostname"] == "cucm1.cluster1.lab" and node["services"] == [
        "CallManager",
        "TFTP",
        "TVS",
    ]
    kinds = [c["kind"] for c in node["certificates"] + report["cluster_certificates"]]
    assert kinds == ["CallManager", "TVS", "Tomcat", "ITLRecovery", "CAPF"]
    assert report["parameters"]["prepare-cluster-for-rollback"] is False
    assert report["parameters"]["sip-station-realm"] == "ccmsipline"
    assert len(report["trust_stores"]["capf-trust"]) == 3  # own CAPF + 2 manufacturing CAs
    itl = cli.get("ITLFile.tlv")
    assert report["itl"]["cucm1.cluster1.lab"]["sha1"] == cli.tlv_show(itl)["file"]["sha1"]
    shown = cli.tlv_show(itl)
    assert [r["role"] for r in shown["records"]] == ["SAST", "SAST", "TFTP", "CAPF", "TVS"]
    assert shown["signature"]["valid"] is True
    assert shown["header"]["signer"]["name"].startswith("CN=ITLRECOVERY_cucm1.cluster1.lab")
    text = cli.lab("show")
    assert "ITL files:" in text and "CTL file: none" in text


def test_cli_get_writes_stdout_and_reports_file_not_found(cli: Cli) -> None:
    cli.lab("init")
    assert cli.lab("get", "RingList.xml").startswith('<?xml version="1.0"')
    code, _, err = cli("lab", "get", cli.dir, "CTLFile.tlv")
    assert code == 1 and "File not found CTLFile.tlv" in err
    code, _, err = cli("lab", "get", cli.dir, "ITLFile.tlv", "--node", "cucm9")
    assert code == 2 and "no node" in err


def test_cli_several_clusters_need_cluster_option(cli: Cli) -> None:
    cli.lab("init")
    assert "cluster2 (release 12.x)" in cli.lab("init", "--version", "12.x")
    assert len(cli.show()["clusters"]) == 2
    code, _, err = cli("lab", "get", cli.dir, "ITLFile.tlv")
    assert code == 2 and "--cluster" in err
    itl = parse_trust_list(cli.get("ITLFile.tlv", "--cluster", "cluster2"))
    assert itl.records[0].dns_name == "cucm1.cluster2.lab"
    code, _, err = cli("lab", "init", cli.dir, "--cluster", "cluster2")
    assert code == 2 and "already has a cluster" in err


def test_cli_rollback_parameter_and_tftp_hash_log(cli: Cli) -> None:
    cli.lab("init")
    out = cli.lab("set", "prepare-cluster-for-rollback", "true")
    assert "Tftp Itl hash updated" in out
    assert is_empty_itl(parse_trust_list(cli.get("ITLFile.tlv")))
    out = cli.ok("lab", "node", "restart", cli.dir, "cucm1.cluster1.lab")
    assert "Tftp Itl hash not changed" in out
    code, _, err = cli("lab", "set", cli.dir, "nonce-validity", "soon")
    assert code == 2 and "whole number" in err
    with pytest.raises(SystemExit):
        main(["lab", "set", cli.dir, "no-such-parameter", "1"])
    assert "Tftp Itl hash not changed" in cli.lab("log", "--tail", "3")


def test_cli_mixed_mode_ctl(cli: Cli) -> None:
    cli.lab("init", "--tvs-nodes", "2", "--version", "8.x-11.5")
    cli.lab("set-mode", "mixed")
    shown = cli.tlv_show(cli.get("CTLFile.tlv"))
    assert [r["role"] for r in shown["records"]] == ["SAST", "CCM+TFTP", "CCM+TFTP", "CAPF", "SAST"]
    assert shown["signature"]["valid"] is True
    assert shown["header"]["signer"]["name"].startswith("CN=cucm1.cluster1.lab")
    assert cli.show()["clusters"][0]["ctl"]["records"][0] == "SAST"
    cli.lab("ctl-update")
    cli.lab("set-mode", "non-secure")
    code, _, err = cli("lab", "get", cli.dir, "CTLSEP001122AABBCC.tlv")
    assert code == 1 and "File not found" in err


def test_cli_devices_and_signed_configs(cli: Cli) -> None:
    cli.lab("init")
    cli.lab("add-device", MAC, "--digest-user", "alice", "--digest-password", "pw")
    signed = parse_signed(cli.get(f"SEP{MAC}.cnf.xml.sgn"))
    lab = load_lab(Path(cli.dir))
    signed.verify(lab.cluster().publisher.callmanager.certificate)
    assert parse_config(signed.payload).digest_user == "alice"
    assert cli.get(f"SEP{MAC}.cnf.xml.sgn") == signed.encode()  # same state, same bytes
    code, _, err = cli("lab", "add-device", cli.dir, MAC)
    assert code == 2 and "already exists" in err

    mic = cli.tmp / "mic.pem"
    mic.write_bytes(phone_mic("AABBCCDDEEFF").certificate.public_bytes(Encoding.PEM))
    cli.lab(
        "add-device",
        "aa:bb:cc:dd:ee:ff",
        "--encrypt-config",
        "--certificate",
        str(mic),
        "--security-mode",
        "encrypted",
    )
    assert parse_signed(cli.get("SEPAABBCCDDEEFF.cnf.xml.enc.sgn")).encrypted
    cli.lab("remove-device", MAC)
    code, _, err = cli("lab", "get", cli.dir, f"SEP{MAC}.cnf.xml")
    assert code == 1 and "File not found" in err
    assert "SEPAABBCCDDEEFF" in cli.lab("show")


def test_cli_regenerate_itlrecovery_shows_the_seed_warning(cli: Cli) -> None:
    cli.lab("init")
    before = cli.get("ITLFile.tlv")
    code, _, err = cli("lab", "regenerate", cli.dir, "itlrecovery")
    assert code == 2 and "--yes" in err
    assert "ensure that the CTL file has the updated CallManager certificate" in err
    assert cli.get("ITLFile.tlv") == before
    out = cli.lab("regenerate", "itlrecovery", "--yes")
    assert "ITLRecovery certificate of cucm1.cluster1.lab regenerated" in out
    assert cli.get("ITLFile.tlv") != before
    code, _, err = cli("lab", "regenerate", cli.dir, "nonsense")
    assert code == 2 and "unknown certificate kind" in err


def test_cli_bulk_certificate_management(cli: Cli) -> None:
    cli.lab("init", "--cluster", "old", "--version", "12.x")
    cli.lab("init", "--cluster", "new")
    shared = str(cli.tmp / "sftp")
    for name in ("old", "new"):
        cli.lab("export-certs", "--cluster", name, "--to", shared, "--password", "pw")
    assert sorted(p.name for p in (cli.tmp / "sftp" / "old").iterdir()) == [
        "CAPF.p12",
        "CallManager.p12",
        "ITLRecovery.p12",
        "Tomcat.p12",
    ]
    out = cli.lab("import-certs", "--cluster", "old", "--from", shared, "--password", "pw")
    assert "6 trust-store entries added" in out  # CM x2, ITLRecovery x2, CAPF, Tomcat
    report = cli.show("--cluster", "old")["clusters"][0]
    sast = [e["subject"] for e in report["trust_stores"]["phone-sast-trust"]]
    assert any("ITLRECOVERY_cucm1.new.lab" in s for s in sast)
    lab = load_lab(Path(cli.dir))
    old, new = lab.cluster("old"), lab.cluster("new")
    assert [e.source for e in old.trust(TrustStore.PHONE_SAST)] == [
        "new CallManager (bulk import)",
        "new ITLRecovery (bulk import)",
    ]
    assert new.trust(TrustStore.PHONE_SAST) == ()  # not before its own import
    code, _, err = cli("lab", "import-certs", cli.dir, "--cluster", "new", "--from", shared)
    assert code == 2 and "password" in err


def test_cli_itl_reset_localkey_until_tftp_restart(cli: Cli) -> None:
    cli.lab("init")
    cli.lab("itl-reset", "localkey")
    shown = cli.tlv_show(cli.get("ITLFile.tlv"))
    assert shown["header"]["signer"]["name"].startswith("CN=cucm1.cluster1.lab")  # CallManager
    assert cli.show()["clusters"][0]["itl_reset"]["mode"] == "localkey"
    cli.ok("lab", "node", "restart", cli.dir, "cucm1")
    shown = cli.tlv_show(cli.get("ITLFile.tlv"))
    assert shown["header"]["signer"]["name"].startswith("CN=ITLRECOVERY_")
    code, _, err = cli("lab", "itl-reset", cli.dir, "remotekey")
    assert code == 2 and "--pkcs12" in err


def test_cli_itl_reset_remotekey_with_a_saved_itlrecovery_key(cli: Cli) -> None:
    cli.lab("init")
    saved = load_lab(Path(cli.dir)).cluster().itlrecovery
    backup = cli.tmp / "itlrecovery.p12"
    backup.write_bytes(identity_to_pkcs12(saved, b"ITLRecovery", b"pw"))
    cli.lab("regenerate", "itlrecovery", "--yes")
    cli.lab("itl-reset", "remotekey", "--pkcs12", str(backup), "--password", "pw")
    itl = parse_trust_list(cli.get("ITLFile.tlv"))
    verify_with_certificate(itl, saved.certificate)  # what phones still trust
    assert itl.records[0].certificate() != saved.certificate  # the new ITLRecovery inside


def test_cli_itl_file_status(cli: Cli) -> None:
    cli.lab("init")
    current = cli.show()["clusters"][0]["itl"]["cucm1.cluster1.lab"]["sha1"]
    out = cli.lab("register", MAC, "--itl-hash", current)
    assert "ITL report inserted" in out
    cli.lab("register", "AABBCCDDEEFF", "--itl-hash", "ff" * 20)
    status = json.loads(cli.lab("itl-status", "--json"))
    assert status["reported"] == 2
    assert [m["device"] for m in status["mismatches"]] == ["SEPAABBCCDDEEFF"]
    cli.lab("regenerate", "tvs")  # the ITL changes: the first phone now holds a stale one
    status = json.loads(cli.lab("itl-status", "--json"))
    assert [m["device"] for m in status["mismatches"]] == [f"SEP{MAC}", "SEPAABBCCDDEEFF"]
    assert status["mismatches"][0]["expected_hash"] != current
    cli.lab("unregister", MAC)
    assert "1 of 1 reporting phones" in cli.lab("itl-status")


def test_cli_itl_file_status_needs_14x(cli: Cli) -> None:
    cli.lab("init", "--version", "12.x")
    cli.lab("register", MAC, "--itl-hash", "00" * 20)
    assert "has no ITL File Status" in cli.lab("itl-status")


def test_cli_node_stop_and_start(cli: Cli) -> None:
    cli.lab("init")
    cli.ok("lab", "node", "stop", cli.dir, "cucm1.cluster1.lab")
    assert cli.show()["clusters"][0]["nodes"][0]["running"] is False
    code, _, err = cli("lab", "get", cli.dir, "ITLFile.tlv")
    assert code == 2 and "running" in err
    cli.ok("lab", "node", "start", cli.dir, "10.1.0.10")
    assert cli.get("ITLFile.tlv")
    code, _, err = cli("lab", "node", "stop", cli.dir, "nowhere")
    assert code == 2
    cli.lab("init")  # cluster2: "cucm1" is now ambiguous
    code, _, err = cli("lab", "node", "stop", cli.dir, "cucm1")
    assert code == 2 and "--cluster" in err
    cli.ok("lab", "node", "stop", cli.dir, "cucm1", "--cluster", "cluster2")
    states = {c["name"]: c["nodes"][0]["running"] for c in cli.show()["clusters"]}
    assert states == {"cluster1": True, "cluster2": False}


def test_cli_refuses_a_folder_that_is_not_a_lab(cli: Cli) -> None:
    code, _, err = cli("lab", "show", str(cli.tmp))
    assert code == 2 and "not a vphone lab folder" in err


def test_cli_cert_prints_the_pem_an_independent_peer_trusts(cli: Cli) -> None:
    # tvsc -T and capfc -A take the server's certificate as a PEM file (tvs-capf-wire.md 1.1,
    # 2.1): `lab cert` gives exactly the certificate the served node presents, never a key.
    cli.lab("init", "--tvs-nodes", "2")
    lab = load_lab(Path(cli.dir))
    cluster = lab.cluster()
    out = cli.lab("cert", "tvs", "--node", "cucm2.cluster1.lab")
    assert "PRIVATE KEY" not in out
    served = x509.load_pem_x509_certificate(out.encode())
    assert served == cluster.node("cucm2.cluster1.lab").tvs.certificate
    target = cli.tmp / "capf.pem"
    assert "written to" in cli.lab("cert", "CAPF", "-o", str(target))
    assert x509.load_pem_x509_certificate(target.read_bytes()) == cluster.capf.certificate
    code, _, err = cli("lab", "cert", cli.dir, "bogus")
    assert code == 2 and "unknown certificate kind 'bogus'" in err


def test_one_dn_format_in_all_output_cucms(cli: Cli) -> None:
    # Issue 18: DNs were printed both as CN=..,OU=.. and CN=..;OU=..; CUCM writes the second
    # (its ITL records and certificate pages), so every output uses it.
    cli.lab("init")
    text = cli.lab("show")
    report = cli.show()
    cluster = report["clusters"][0]
    subjects = [e["subject"] for entries in cluster["trust_stores"].values() for e in entries]
    subjects += [c["subject"] for node in cluster["nodes"] for c in node["certificates"]]
    assert subjects and all(";OU=" in s and ",OU=" not in s for s in subjects)
    assert ",OU=VTG" not in text
    target = cli.tmp / "ccm.pem"
    written = cli.lab("cert", "callmanager", "-o", str(target))
    assert "(CN=cucm1.cluster1.lab;OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US)" in written

"""Rules of the TFTP file service, one at a time (seed; items 2, 6; sections 2, 8, 9b).

What a node lists and serves, the names and dates signed into each ``.sgn`` header, the
digest the cluster signs with, the encrypted config's recipient, the service's counters and
what it forgets with a deleted device.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from clusterlab import NOW, file_service, make_lab, phone_mic
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from phone.cluster.capf_ops import CapfAuth, CapfOperation, CapfPending
from phone.cluster.cluster import Cluster
from phone.cluster.files import FileService, FileStats
from phone.cluster.records import ClusterSpec, Device
from phone.formats.configxml import parse_config
from phone.formats.header import Digest
from phone.formats.signed import decrypt, parse_signed

LATER = NOW + timedelta(hours=1)
MAC = "001122AABBCC"
MAC2 = "AABBCCDDEEFF"


def _setup(spec: ClusterSpec | None = None) -> tuple[Cluster, FileService]:
    cluster = make_lab(spec or ClusterSpec()).cluster()
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    return cluster, service


def _get(service: FileService, name: str) -> bytes:
    data = service.get(name)
    assert data is not None, name
    return data


# --- what a node lists ------------------------------------------------------------------------


def test_names_lists_every_file_once_in_serving_order() -> None:
    # Module docstring table (item 2, seed): ITL, CTL (mixed mode), the default config and its
    # .sgn, the ring list and its .sgn (mixed mode), per device .cnf.xml/.sgn (.enc.sgn with
    # config encryption and a known certificate), firmware sorted, then served-only files.
    lab = make_lab(ClusterSpec(mixed_mode=True))
    cluster = lab.cluster()
    cluster.add_device(Device(MAC), now=NOW)
    cluster.add_device(
        Device(MAC2, encrypt_config=True, certificate=phone_mic(MAC2).certificate), now=NOW
    )
    cluster.firmware = {"b.loads": b"B", "a.loads": b"A"}
    lab.serve_file(cluster, "ITLFile.tlv", b"served itl")  # replaces a generated name
    lab.serve_file(cluster, "extra.txt", b"extra")  # adds one
    service = lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    assert service.names() == (
        "ITLFile.tlv",
        "CTLFile.tlv",
        "XMLDefault.cnf.xml",
        "XMLDefault.cnf.xml.sgn",
        "RingList.xml",
        "RingList.xml.sgn",
        "SEP001122AABBCC.cnf.xml",
        "SEP001122AABBCC.cnf.xml.sgn",
        "SEPAABBCCDDEEFF.cnf.xml",
        "SEPAABBCCDDEEFF.cnf.xml.sgn",
        "SEPAABBCCDDEEFF.cnf.xml.enc.sgn",
        "a.loads",
        "b.loads",
        "extra.txt",
    )


def test_item2_names_in_non_secure_mode_have_no_ctl_and_no_signed_ring_list() -> None:
    # item 2: no CTL outside mixed mode; seed (File Authentication): static files are signed
    # in mixed mode only.
    cluster, service = _setup()
    cluster.firmware = {}
    assert service.names() == (
        "ITLFile.tlv",
        "XMLDefault.cnf.xml",
        "XMLDefault.cnf.xml.sgn",
        "RingList.xml",
    )


def test_item2_served_itl_and_ctl_answer_the_per_phone_names_too() -> None:
    # item 2: the phone asks for ITLSEP<MAC>.tlv (CTLSEP<MAC>.tlv) first; CUCM serves the same
    # file under both names, and so does a served ITLFile.tlv (CTLFile.tlv).
    lab = make_lab()
    cluster = lab.cluster()
    lab.serve_file(cluster, "ITLFile.tlv", b"served itl")
    lab.serve_file(cluster, "CTLFile.tlv", b"served ctl")
    service = lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    assert service.get(f"ITLSEP{MAC}.tlv") == b"served itl"
    assert service.get(f"CTLSEP{MAC}.tlv") == b"served ctl"


def test_names_of_1_to_255_characters_are_answered() -> None:
    # Lab.serve_file: "a served file needs a name of 1 to 255 characters" -- the longest name
    # the file service answers; a longer one is "File not found" even if a load has it.
    cluster, service = _setup()
    cluster.firmware = {"f" * 255: b"255", "g" * 256: b"256"}
    assert service.get("f" * 255) == b"255"
    assert service.get("g" * 256) is None


def test_firmware_names_follow_the_current_catalogue_case_insensitively() -> None:
    # Module docstring: any name in cluster.firmware, case-insensitive like CUCM's TFTP; the
    # catalogue may be replaced (same size or not) between requests.
    cluster, service = _setup()
    cluster.firmware = {"A.loads": b"A"}
    assert service.get("a.LOADS") == b"A"
    cluster.firmware = {"B.loads": b"B"}  # same size, other name
    assert service.get("b.LOADS") == b"B"
    assert service.get("a.LOADS") is None
    cluster.firmware = {"B.loads": b"B", "C.loads": b"C"}  # grown
    assert service.get("c.LOADS") == b"C"


# --- configs: fields ---------------------------------------------------------------------------


def test_section9b_capf_auth_mode_is_the_pending_operations_auth_type() -> None:
    # tvs-capf-wire.md section 9b AUTH_TYPE: 0 none, 1 password (authentication string),
    # 3 LSC. No pending CAPF operation: 0.
    cluster, service = _setup()
    cluster.add_device(Device(MAC), now=NOW)
    pending = CapfPending(CapfOperation.INSTALL, CapfAuth.STRING, "1234")
    cluster.add_device(Device(MAC2, capf=pending), now=NOW)
    assert parse_config(_get(service, f"SEP{MAC}.cnf.xml")).capf_auth_mode == 0
    assert parse_config(_get(service, f"SEP{MAC2}.cnf.xml")).capf_auth_mode == 1
    cluster.update_device(MAC, now=LATER, capf=CapfPending(CapfOperation.INSTALL, CapfAuth.LSC))
    assert parse_config(_get(service, f"SEP{MAC}.cnf.xml")).capf_auth_mode == 3


def test_seed_default_config_names_the_tftp_servers_and_capf() -> None:
    # Seed (Autoregistration): XMLDefault.cnf.xml is what an unknown phone boots with; it lists
    # the cluster's TFTP servers and the CAPF (the publisher), like a device config.
    cluster, service = _setup(ClusterSpec(tvs_nodes=2, tftp_nodes=2))
    first, second = cluster.nodes[0].hostname, cluster.nodes[1].hostname
    for name in ("XMLDefault.cnf.xml", "XMLDefault.cnf.xml.sgn"):
        data = _get(service, name)
        config = parse_config(parse_signed(data).payload if name.endswith(".sgn") else data)
        assert config.tftp_servers == (first, second)
        assert config.capf_host == cluster.publisher.hostname


# --- .sgn headers: file name, date, digest -----------------------------------------------------


def test_section2_signed_static_files_carry_their_served_names() -> None:
    # trust-file-formats.md section 2, tag FILENAME: the name the file is served as.
    _, service = _setup(ClusterSpec(mixed_mode=True))
    default = parse_signed(_get(service, "xmldefault.cnf.xml.sgn")).header
    assert default.filename == "XMLDefault.cnf.xml.sgn"
    ring = parse_signed(_get(service, "ringlist.xml.sgn")).header
    assert ring.filename == "RingList.xml.sgn"


def test_section8_encrypted_config_files_carry_their_names_and_the_device_change_date() -> None:
    # trust-file-formats.md section 8: SEP<MAC>.cnf.xml.sgn (the stub) and
    # SEP<MAC>.cnf.xml.enc.sgn, each named as served and dated when the device last changed.
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    mic = phone_mic(MAC)
    cluster.add_device(Device(MAC, encrypt_config=True, certificate=mic.certificate), now=NOW)
    cluster.update_device(MAC, now=LATER, load="sip88xx.14-2-1")
    stub = parse_signed(_get(service, f"sep{MAC.lower()}.cnf.xml.sgn")).header
    assert (stub.filename, stub.timestamp) == (f"SEP{MAC}.cnf.xml.sgn", int(LATER.timestamp()))
    enc = parse_signed(_get(service, f"sep{MAC.lower()}.cnf.xml.enc.sgn")).header
    assert (enc.filename, enc.timestamp) == (f"SEP{MAC}.cnf.xml.enc.sgn", int(LATER.timestamp()))


def test_section2_every_config_signature_uses_the_release_digest() -> None:
    # trust-file-formats.md section 2 tag 8 (3 = SHA-512); ReleaseProfile.digest: "Hash of
    # every signature the cluster makes (trust lists, .sgn)".
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    cluster._profile = dataclasses.replace(cluster.profile, digest=Digest.SHA512)
    mic = phone_mic(MAC)
    cluster.add_device(Device(MAC, encrypt_config=True, certificate=mic.certificate), now=NOW)
    cluster.add_device(Device(MAC2), now=NOW)
    for name in (
        "XMLDefault.cnf.xml.sgn",
        "RingList.xml.sgn",
        f"SEP{MAC}.cnf.xml.sgn",
        f"SEP{MAC}.cnf.xml.enc.sgn",
        f"SEP{MAC2}.cnf.xml.sgn",
    ):
        assert parse_signed(_get(service, name)).header.digest_code == 3, name


# --- encrypted configs: the recipient ----------------------------------------------------------


def test_section8_encrypted_config_follows_a_new_phone_certificate() -> None:
    # trust-file-formats.md section 8: the config key is wrapped with the phone's certificate;
    # a new certificate (same instant, same config) means a file only the new key opens.
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    old, new = phone_mic(MAC), phone_mic(MAC)
    cluster.add_device(Device(MAC, encrypt_config=True, certificate=old.certificate), now=NOW)
    _get(service, f"SEP{MAC}.cnf.xml.enc.sgn")
    cluster.update_device(MAC, now=NOW, certificate=new.certificate)
    assert isinstance(new.key, RSAPrivateKey)
    enc = parse_signed(_get(service, f"SEP{MAC}.cnf.xml.enc.sgn"))
    assert parse_config(decrypt(enc, new.key)).mac == MAC


# --- counters ----------------------------------------------------------------------------------


def test_stats_count_requests_misses_signatures_encryptions_and_cache_hits() -> None:
    # FileStats ("a second request costs no signature", seed: re-signed only when changed).
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    mic = phone_mic(MAC)
    cluster.add_device(Device(MAC, encrypt_config=True, certificate=mic.certificate), now=NOW)
    assert service.get("nothing.txt") is None
    assert service.get("RingList.xml") is not None
    assert service.get("SEP000000000000.cnf.xml") is None
    assert service.stats == FileStats(requests=3, not_found=2)
    for _ in range(3):
        _get(service, "RingList.xml.sgn")
    assert service.stats == FileStats(requests=6, not_found=2, signatures=1, cache_hits=2)
    for _ in range(3):
        _get(service, f"SEP{MAC}.cnf.xml.enc.sgn")
    assert service.stats == FileStats(
        requests=9, not_found=2, signatures=2, encryptions=1, cache_hits=4
    )
    cluster.update_device(MAC, now=LATER, load="sip88xx.14-2-1")
    _get(service, f"SEP{MAC}.cnf.xml.enc.sgn")
    assert service.stats == FileStats(
        requests=10, not_found=2, signatures=3, encryptions=2, cache_hits=4
    )


# --- a deleted device --------------------------------------------------------------------------


def test_deleted_device_is_forgotten_by_the_file_service() -> None:
    # FileService.forget_device (Lab: on every device removal): the device's cached signed
    # files and rendered config are dropped; a device never asked for is removed quietly.
    lab = make_lab()
    cluster = lab.cluster()
    service = lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    cluster.add_device(Device(MAC), now=NOW)
    cluster.add_device(Device(MAC2), now=NOW)
    _get(service, f"SEP{MAC}.cnf.xml.sgn")
    _get(service, f"SEP{MAC2}.cnf.xml.sgn")
    cluster.remove_device(MAC, now=LATER)
    assert sorted(service._cache) == [f"sep{MAC2.lower()}.cnf.xml.sgn"]
    assert list(service._rendered) == [MAC2]
    cluster.add_device(Device("0000AAAABBBB"), now=LATER)
    cluster.remove_device("0000AAAABBBB", now=LATER)  # never rendered, never signed
    assert list(service._rendered) == [MAC2]

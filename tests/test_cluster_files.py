"""The TFTP file service: names, signed configs and the sign cache (seed; items 2, 5-8, 42)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clusterlab import NOW, file_service, make_lab, phone_mic
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from keypool import pooled_keys

from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.files import RING_LIST, ClientInfo, FileService
from phone.cluster.lab import Endpoint
from phone.cluster.records import ClusterSpec, Device, SecurityMode, TrustStore
from phone.errors import SignatureError
from phone.formats.configxml import DeviceConfig, parse_config
from phone.formats.signed import decrypt, md5_hex, parse_signed
from phone.pki import CertKind

LATER = NOW + timedelta(hours=1)
MAC = "001122AABBCC"


def _setup(spec: ClusterSpec | None = None) -> tuple[Cluster, FileService]:
    cluster = make_lab(spec or ClusterSpec()).cluster()
    service = file_service(cluster, cluster.tftp_hosts[0])
    assert service is not None
    return cluster, service


def _get(service: FileService, name: str, client: ClientInfo | None = None) -> bytes:
    data = service.get(name, client)
    assert data is not None, name
    return data


def _config(data: bytes, cluster: Cluster, host: str | None = None) -> DeviceConfig:
    signed = parse_signed(data)
    signed.verify(cluster.node(host or cluster.tftp_hosts[0]).callmanager.certificate)
    return parse_config(signed.payload)


# --- names -----------------------------------------------------------------------------------


def test_case_insensitive_names_and_leading_slash() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC), now=NOW)
    assert service.get("/itlfile.TLV") == service.get("ITLFile.tlv") is not None
    assert service.get(f"//sep{MAC.lower()}.CNF.xml") == service.get(f"SEP{MAC}.cnf.xml")
    assert service.get("RINGLIST.XML") == RING_LIST


@pytest.mark.parametrize(
    "name",
    ["", "/", "nothing.txt", "SEP001122AABBCC.cnf.xml.sgn", "SEPXYZ.cnf.xml", "x" * 300],
)
def test_unknown_names_are_not_found(name: str) -> None:
    _, service = _setup()
    assert service.get(name) is None


@pytest.fixture(scope="module")
def busy_service() -> FileService:
    """A mixed-mode node with a plain and an encrypted-config device."""
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    cluster.add_device(Device(MAC, encrypt_config=True), now=NOW)
    cluster.add_device(Device("AABBCCDDEEFF"), now=NOW)
    cluster.firmware = {"load.sbn": b"x"}
    return service


_NAMES = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"/*(SEP|sep|ITLSEP|CTLSEP)[0-9A-Fa-f]{0,13}(\.cnf\.xml)?(\.enc)?(\.sgn)?"),
    st.sampled_from(["ITLFile.tlv", "XMLDefault.cnf.xml.sgn", "RingList.xml.sgn", "load.sbn"]),
)


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, model=st.none() | st.text(max_size=10))
def test_get_never_raises(busy_service: FileService, name: str, model: str | None) -> None:
    result = busy_service.get(name, ClientInfo("10.0.0.1", model=model))
    assert result is None or isinstance(result, bytes)


def test_names_listing_matches_what_is_served() -> None:
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    cluster.add_device(Device(MAC), now=NOW)
    for name in service.names():
        assert service.get(name) is not None, name


def test_stopped_node_serves_nothing() -> None:
    cluster, service = _setup()
    cluster.stop_node(cluster.tftp_hosts[0], now=LATER)
    assert file_service(cluster, cluster.tftp_hosts[0]) is None
    assert service.get("ITLFile.tlv") is None  # a service obtained earlier goes quiet too
    cluster.start_node(cluster.tftp_hosts[0], now=LATER)
    assert service.get("ITLFile.tlv") is not None


def test_firmware_hook_serves_loads_case_insensitively() -> None:
    cluster, service = _setup()
    cluster.firmware = {"sip88xx.14-1-1.loads": b"LOADS"}
    assert service.get("SIP88XX.14-1-1.LOADS") == b"LOADS"
    assert service.get("sip88xx.14-1-2.loads") is None


# --- configs ---------------------------------------------------------------------------------


def test_seed_config_fields_and_signature_by_tftp_callmanager() -> None:
    cluster, service = _setup(ClusterSpec(tvs_nodes=2, tftp_nodes=2))
    cluster.add_device(
        Device(MAC, digest_user="alice", digest_password="s3cret", load="sip88xx.14-1-1"),
        now=NOW,
    )
    first, second = cluster.nodes
    config = _config(_get(service, f"SEP{MAC}.cnf.xml.sgn"), cluster)
    assert config.mac == MAC and config.model == "8841"
    assert config.device_security_mode == 1
    assert config.callmanagers == ((first.hostname, 5060, 5061), (second.hostname, 5060, 5061))
    assert config.tvs_members == ((first.hostname, 2445), (second.hostname, 2445))
    assert config.tftp_servers == (first.hostname, second.hostname)
    assert config.load_information == "sip88xx.14-1-1"
    assert (config.digest_user, config.digest_password) == ("alice", "s3cret")
    assert config.capf_host == first.hostname and not config.encrypted_config
    # Each TFTP node signs with its own CallManager key.
    other = file_service(cluster, second.hostname)
    assert other is not None
    signed = parse_signed(_get(other, f"SEP{MAC}.cnf.xml.sgn"))
    signed.verify(second.callmanager.certificate)
    with pytest.raises(SignatureError):
        signed.verify(first.callmanager.certificate)
    assert signed.header.filename == f"SEP{MAC}.cnf.xml.sgn"
    assert (
        _get(service, f"SEP{MAC}.cnf.xml")
        == parse_signed(_get(service, f"SEP{MAC}.cnf.xml.sgn")).payload
    )


def test_item42_exclude_digest_credentials() -> None:
    cluster, service = _setup()
    cluster.add_device(
        Device(MAC, digest_user="alice", digest_password="pw", exclude_digest_credentials=True),
        now=NOW,
    )
    config = parse_config(_get(service, f"SEP{MAC}.cnf.xml"))
    assert config.digest_user == "alice" and config.digest_password is None


def test_security_mode_is_secure_only_in_mixed_mode() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC, security_mode=SecurityMode.ENCRYPTED), now=NOW)
    assert parse_config(_get(service, f"SEP{MAC}.cnf.xml")).device_security_mode == 1
    cluster.set_mixed_mode(True, now=LATER)
    assert parse_config(_get(service, f"SEP{MAC}.cnf.xml")).device_security_mode == 3


def test_seed_resign_only_when_content_changed() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC), now=NOW)
    first = _get(service, f"SEP{MAC}.cnf.xml.sgn")
    assert service.stats.signatures == 1
    # Unchanged: served from the cache, no signature.
    assert _get(service, f"SEP{MAC}.cnf.xml.sgn") == first
    assert service.stats.signatures == 1 and service.stats.cache_hits == 1
    # Changes that do not touch the config: still no signature.
    cluster.add_trusted(
        TrustStore.TOMCAT, cluster.publisher.tomcat.certificate, source="test", now=LATER
    )
    cluster.add_device(Device("AABBCCDDEEFF"), now=LATER)
    assert _get(service, f"SEP{MAC}.cnf.xml.sgn") == first
    assert service.stats.signatures == 1
    # A change of the device record: re-signed, dated at the change.
    cluster.update_device(MAC, now=LATER, load="sip88xx.14-2-1")
    second = _get(service, f"SEP{MAC}.cnf.xml.sgn")
    assert second != first and service.stats.signatures == 2
    assert parse_signed(second).header.timestamp == int(LATER.timestamp())
    # A cluster change that every config carries (a new signer): re-signed again.
    certops.regenerate(cluster, CertKind.CALLMANAGER, now=LATER, keys=pooled_keys())
    third = _get(service, f"SEP{MAC}.cnf.xml.sgn")
    assert service.stats.signatures == 3
    parse_signed(third).verify(cluster.publisher.callmanager.certificate)


def test_signed_bytes_are_a_function_of_state() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC), now=NOW)
    fresh = FileService(cluster, cluster.tftp_hosts[0])  # an empty cache, as after a restart
    assert fresh.get(f"SEP{MAC}.cnf.xml.sgn") == service.get(f"SEP{MAC}.cnf.xml.sgn")


# --- default config, static files ------------------------------------------------------------


def test_seed_autoregistration_default_config_signed() -> None:
    cluster, service = _setup()
    config = _config(_get(service, "XMLDefault.cnf.xml.sgn"), cluster)
    assert config.default and config.mac is None
    assert config.callmanagers[0][0] == cluster.publisher.hostname
    assert parse_config(_get(service, "XMLDefault.cnf.xml")) == config


def test_seed_default_config_is_served_by_name_not_by_model() -> None:
    """Seed: "The default configuration file will also be signed." A TFTP server cannot know
    a phone's model: a pre-SBD phone gets the nonsigned file because it asks for that name."""
    _, service = _setup()
    old_phone = ClientInfo("10.1.1.5", model="7940")
    assert service.get("XMLDefault.cnf.xml.sgn", old_phone) is not None
    assert service.get("XMLDefault.cnf.xml", old_phone) is not None
    assert service.get("XMLDefault.cnf.xml.sgn", ClientInfo("10.1.1.6", model="8841"))


def test_item6_autoregistration_off_default_config_lists_no_callmanager() -> None:
    cluster, service = _setup()
    cluster.set_parameter("autoregistration", "off", now=LATER)
    assert parse_config(_get(service, "XMLDefault.cnf.xml")).callmanagers == ()


def test_unknown_mac_gets_no_device_config() -> None:
    _, service = _setup()
    assert service.get(f"SEP{MAC}.cnf.xml.sgn") is None
    assert service.get(f"SEP{MAC}.cnf.xml") is None


def test_seed_static_files_signed_in_mixed_mode_only() -> None:
    cluster, service = _setup()
    assert service.get("RingList.xml.sgn") is None
    cluster.set_mixed_mode(True, now=LATER)
    signed = parse_signed(_get(service, "RingList.xml.sgn"))
    signed.verify(cluster.publisher.callmanager.certificate)
    assert signed.payload == RING_LIST


# --- encrypted configs (trust-file-formats.md section 8) -------------------------------------


def test_encrypted_config_and_stub() -> None:
    cluster, service = _setup(ClusterSpec(mixed_mode=True))
    mic = phone_mic(MAC)
    cluster.add_device(
        Device(
            MAC,
            security_mode=SecurityMode.ENCRYPTED,
            digest_user="alice",
            digest_password="pw",
            encrypt_config=True,
            certificate=mic.certificate,
        ),
        now=NOW,
    )
    enc = parse_signed(_get(service, f"SEP{MAC}.cnf.xml.enc.sgn"))
    assert enc.encrypted
    enc.verify(cluster.publisher.callmanager.certificate)
    assert isinstance(mic.key, RSAPrivateKey)
    full = parse_config(decrypt(enc, mic.key))
    assert full.digest_password == "pw" and full.device_security_mode == 3
    # The plain .sgn is the stub: no credentials, the certificate's MD5, encrConfig true.
    stub = _config(_get(service, f"SEP{MAC}.cnf.xml.sgn"), cluster)
    assert not stub.full_config and stub.encrypted_config
    assert stub.digest_user is None and stub.digest_password is None
    assert stub.cert_hash == md5_hex(mic.certificate.public_bytes(Encoding.DER))
    assert b"pw" not in _get(service, f"SEP{MAC}.cnf.xml")
    # Cached like the other signed files.
    count = service.stats.signatures
    assert service.get(f"SEP{MAC}.cnf.xml.enc.sgn") == enc.encode()
    assert service.stats.signatures == count


def test_encrypted_config_needs_a_known_phone_certificate() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC, encrypt_config=True), now=NOW)
    assert service.get(f"SEP{MAC}.cnf.xml.enc.sgn") is None
    stub = parse_config(_get(service, f"SEP{MAC}.cnf.xml"))
    assert not stub.full_config and stub.cert_hash is None
    # No .enc.sgn for devices without config encryption.
    cluster.add_device(Device("AABBCCDDEEFF"), now=NOW)
    assert service.get("SEPAABBCCDDEEFF.cnf.xml.enc.sgn") is None


def test_lsc_from_capf_enables_encrypted_config() -> None:
    cluster, service = _setup()
    cluster.add_device(Device(MAC, encrypt_config=True), now=NOW)
    key = pooled_keys().rsa(2048)
    lsc = certops.issue_lsc(cluster, MAC, key.public_key(), now=LATER)
    device = cluster.device(MAC)
    assert device is not None and device.certificate == lsc
    enc = parse_signed(_get(service, f"SEP{MAC}.cnf.xml.enc.sgn"))
    assert parse_config(decrypt(enc, key)).mac == MAC


def test_lab_resolves_full_names_ips_and_unambiguous_short_names() -> None:
    lab = make_lab(ClusterSpec("one"), ClusterSpec("two", tvs_nodes=2))
    assert lab.file_service("cucm1.two.lab") is not None
    endpoint = lab.resolve("10.2.0.11")
    assert endpoint is not None and endpoint.node.hostname == "cucm2.two.lab"
    assert lab.resolve("cucm1") is None  # both clusters have a cucm1
    endpoint = lab.resolve("CUCM2.")
    assert endpoint is not None and endpoint.cluster.name == "two"
    assert lab.tvs_service("cucm2") is not None


def test_a_resolved_name_follows_a_node_that_changed() -> None:
    # The lab reuses the Endpoint of a (cluster, node) pair: a node replaced by a stop (nodes
    # are frozen) must resolve to the new record, whose running flag the file service reads.
    lab = make_lab(ClusterSpec("one"))
    before = lab.resolve("cucm1.one.lab")
    assert before is not None and before.node.running
    assert lab.resolve(" CUCM1.ONE.LAB. ") is before
    stopped = lab.cluster("one").stop_node("cucm1.one.lab", now=NOW)
    after = lab.resolve("cucm1.one.lab")
    assert after is not None and after.node is stopped and not after.node.running
    assert lab.file_service("cucm1.one.lab") is None


def test_the_endpoints_a_lab_keeps_are_bounded() -> None:
    lab = make_lab(ClusterSpec("one"))
    cluster = lab.cluster("one")
    for _ in range(1100):  # each stop or start replaces the node record
        node = cluster.stop_node("cucm1.one.lab", now=NOW)
        assert lab.resolve("cucm1.one.lab") == Endpoint(cluster, node)
        cluster.start_node("cucm1.one.lab", now=NOW)
        assert len(lab._endpoints) <= 1024


def test_registration_of_an_odd_model_still_creates_a_record() -> None:
    cluster = make_lab().cluster()
    result = cluster.register(MAC, now=NOW, model="Cisco 7960 (SIP)")
    device = cluster.device(MAC)
    assert result.accepted and device is not None and device.autoregistered
    assert device.model == "8841"

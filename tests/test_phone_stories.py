"""End-to-end stories of issue 4 through the public Python API (phone.api), in memory.

Each story names the behaviour items it exercises. The lab uses the committed key pool, and a
fixed clock, so every run is the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from keypool import pooled_keys

from phone.api import ClusterSpec, Lab, State, VirtualPhone, create_lab, create_phone
from phone.cluster.certops import export_certificates, import_certificates, regenerate
from phone.device.machine import TERMINAL
from phone.device.phone import StateChanged, TraceEntry
from phone.device.port import Requester
from phone.errors import FileNotFoundOnServer, TransferTimeout
from phone.formats import parse_trust_list
from phone.net.memory import MemoryBackend
from phone.pki import CertKind

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"


class Clock:
    """A hand-driven clock shared by the lab and its phones."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 60) -> None:
        self.now += timedelta(seconds=seconds)


def lab_of(*specs: ClusterSpec) -> Lab:
    return create_lab(*specs, now=NOW, keys=pooled_keys())


def phone_on(lab: Lab, clock: Clock, cluster: str | None = None, **kw: object) -> VirtualPhone:
    return create_phone(lab, mac=MAC, cluster=cluster, clock=clock, **kw)  # type: ignore[arg-type]


def itl_signer(phone: VirtualPhone) -> str:
    assert phone.itl is not None
    return phone.itl.header.signer_name


def last(phone: VirtualPhone, step: str) -> TraceEntry:
    """The last decision about a file in ``step`` (the last entry for file-less steps)."""
    entries = [t for t in phone.trace if t.step == step]
    with_file = [t for t in entries if t.file is not None]
    return (with_file or entries)[-1]


def test_first_boot_installs_itl_and_registers() -> None:
    """Items 1, 2, 9: CTL not found (non-secure), ITL trusted on first use, config, register."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    events: list[object] = []
    phone.subscribe(events.append)
    assert phone.boot() is State.REGISTERED
    assert phone.registered_with == lab.cluster().tftp_hosts[0]
    assert "ITL installed" in phone.status  # item 9 [S3][S4]
    assert "File not found CTLFile.tlv" in phone.status
    assert phone.ctl is None and phone.itl is not None
    assert "ITLRECOVERY" in itl_signer(phone)  # 14.x: signed by ITLRecovery (item 28)
    # The hook saw every trace entry and the state changes, in order.
    assert [e for e in events if isinstance(e, TraceEntry)] == phone.trace
    states = [e.new for e in events if isinstance(e, StateChanged)]
    assert states[0] is State.BOOTING and states[-1] is State.REGISTERED


def test_reboot_with_unchanged_cluster_changes_nothing() -> None:
    """Item 3: trust lists are fetched again on reset; the same ITL is 'unchanged'."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    phone.boot()
    before = phone.itl_hash()
    status_before = len(phone.status)
    clock.tick()
    assert phone.reset() is State.REGISTERED
    assert phone.itl_hash() == before
    assert last(phone, "itl").decision == "unchanged"
    new_status = phone.status[status_before:]
    assert "Trust List updated" not in new_status  # item 13 [S13]
    assert "ITL installed" not in new_status  # item 9 [S3][S4]


def test_callmanager_regenerated_on_8x_new_itl_accepted_through_tvs() -> None:
    """Item 26: 8.x-11.5 signs the ITL with CallManager; TVS (unchanged) vouches for the new one."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", release="8.x-11.5"))
    cluster = lab.cluster()
    phone = phone_on(lab, clock)
    phone.boot()
    old_signer = phone.itl.header.serial_hex if phone.itl else ""
    clock.tick()
    regenerate(cluster, CertKind.CALLMANAGER, now=clock(), keys=pooled_keys())
    assert phone.reset() is State.REGISTERED
    itl = last(phone, "itl")
    assert itl.decision == "accepted" and itl.rule == "items 12, 20"
    assert "vouched" in itl.reason
    assert phone.itl is not None and phone.itl.header.serial_hex != old_signer
    assert "Trust List updated" in phone.status  # item 13 [S13]
    assert last(phone, "config").decision == "accepted"


def test_item46_erase_trust_shows_the_erasing_text_and_empties_both_lists() -> None:
    """Item 46 [S13]: Reset security settings erases CTL+ITL, status 'Erasing CTL and ITL files'."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", mixed_mode=True))
    phone = create_phone(lab, mac=MAC, clock=clock)
    assert phone.boot() is State.REGISTERED
    assert phone.ctl is not None and phone.itl is not None
    phone.erase_trust()
    assert phone.status[-1] == "Erasing CTL and ITL files"
    assert phone.ctl is None and phone.itl is None
    assert phone.flash.read("CTLFile.tlv") is None and phone.flash.read("ITLFile.tlv") is None
    erased = phone.trace[-1]
    assert (erased.step, erased.rule) == ("erase", "item 46")


def test_callmanager_and_tvs_regenerated_together_on_8x_bricks_until_erase() -> None:
    """Item 27: neither the new ITL nor the TVS can be trusted; only an erase recovers."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", release="8.x-11.5"))
    cluster = lab.cluster()
    phone = phone_on(lab, clock)
    phone.boot()
    old_hash = phone.itl_hash()
    clock.tick()
    regenerate(cluster, CertKind.CALLMANAGER, now=clock(), keys=pooled_keys())
    regenerate(cluster, CertKind.TVS, now=clock(), keys=pooled_keys())
    phone.reset()
    itl = last(phone, "itl")
    assert itl.decision == "rejected"
    assert "is not a TVS record of the installed ITL" in itl.reason
    assert phone.itl_hash() == old_hash  # item 13: the old ITL is kept
    assert "Trust List update failed" in phone.status  # item 13 [S13]
    config = last(phone, "config")
    assert config.decision == "rejected"
    assert "is not a TFTP record of the installed ITL" in config.reason
    # It cannot update, reboot after reboot.
    clock.tick()
    phone.reset()
    assert phone.itl_hash() == old_hash
    # Only erasing the ITL recovers it (item 46).
    phone.erase_trust()
    assert phone.reset() is State.REGISTERED
    assert last(phone, "itl").rule == "item 9"
    assert phone.itl_hash() != old_hash


def test_same_regeneration_on_12x_survives() -> None:
    """Item 28: from 12.0 ITLRecovery signs the ITL, so CallManager+TVS regeneration is safe."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", release="12.x"))
    cluster = lab.cluster()
    phone = phone_on(lab, clock)
    phone.boot()
    clock.tick()
    regenerate(cluster, CertKind.CALLMANAGER, now=clock(), keys=pooled_keys())
    regenerate(cluster, CertKind.TVS, now=clock(), keys=pooled_keys())
    assert phone.reset() is State.REGISTERED
    itl = last(phone, "itl")
    assert itl.decision == "accepted" and itl.rule == "item 12"
    assert last(phone, "config").decision == "accepted"


def two_clusters(clock: Clock) -> tuple[Lab, VirtualPhone]:
    lab = lab_of(ClusterSpec("old"), ClusterSpec("new"))
    phone = phone_on(lab, clock, cluster="old")
    assert phone.boot() is State.REGISTERED
    return lab, phone


def test_moved_without_preparation_ignores_new_config_registers_to_tftp() -> None:
    """Item 32 (a, c): the new ITL's signer is unknown and the old TVS does not know it."""
    clock = Clock()
    lab, phone = two_clusters(clock)
    old_hash = phone.itl_hash()
    phone.tftp = lab.cluster("new").tftp_hosts[0]  # re-point option 150
    phone.reset()
    assert last(phone, "itl").decision == "rejected"
    assert "TVS" in last(phone, "itl").reason
    assert phone.itl_hash() == old_hash
    assert last(phone, "config").decision == "rejected"
    # C2 (community doc 3108501): it "registers to configured TFTP server by default".
    assert phone.registered_with == lab.cluster("new").tftp_hosts[0]


def test_moved_with_prepare_cluster_for_rollback() -> None:
    """Items 16, 33: the old cluster serves the empty ITL, then any new ITL is accepted."""
    clock = Clock()
    lab, phone = two_clusters(clock)
    clock.tick()
    lab.cluster("old").set_parameter("prepare-cluster-for-rollback", "true", now=clock())
    phone.reset()  # downloads the empty ITL from the old cluster
    assert last(phone, "itl").decision == "accepted"
    assert phone.itl is not None
    assert not phone.itl.with_role(21) or all(
        r.certificate_der is None for r in phone.itl.with_role(21)
    )
    phone.tftp = lab.cluster("new").tftp_hosts[0]
    clock.tick()
    assert phone.reset() is State.REGISTERED
    assert last(phone, "itl").rule == "item 16"
    assert phone.registered_with == lab.cluster("new").tftp_hosts[0]


def test_moved_with_bulk_certificate_import_through_old_tvs() -> None:
    """Items 34, 35: the old cluster's TVS vouches for the new ITLRecovery after the import."""
    clock = Clock()
    lab, phone = two_clusters(clock)
    old, new = lab.cluster("old"), lab.cluster("new")
    bundles = {c.name: export_certificates(c, password=b"pw") for c in (old, new)}
    for cluster in (old, new):
        import_certificates(cluster, bundles, password=b"pw", now=clock())
    phone.tftp = new.tftp_hosts[0]
    clock.tick()
    assert phone.reset() is State.REGISTERED
    itl = last(phone, "itl")
    assert itl.decision == "accepted" and itl.rule == "items 12, 20"
    assert old.tvs_hosts[0] in itl.reason or any(
        t.step == "tvs" and t.server and old.tvs_hosts[0] in t.server for t in phone.trace
    )
    assert phone.registered_with == new.tftp_hosts[0]


def test_bulk_migration_fails_closed_when_old_tvs_is_down() -> None:
    """Items 24, 32 (b): the old TVS unreachable, the phone keeps its ITL and says so."""
    clock = Clock()
    lab, phone = two_clusters(clock)
    old, new = lab.cluster("old"), lab.cluster("new")
    bundles = {c.name: export_certificates(c, password=b"pw") for c in (old, new)}
    import_certificates(old, bundles, password=b"pw", now=clock())
    old.stop_node(old.tvs_hosts[0], now=clock())
    phone.tftp = new.tftp_hosts[0]
    phone.reset()
    itl = last(phone, "itl")
    assert itl.decision == "rejected"
    assert "fail closed" in itl.reason


class TamperingBackend(MemoryBackend):
    """A man in the middle that flips one byte of the signed config."""

    def fetch(self, server: str, name: str, *, transport: object, requester: Requester) -> bytes:
        data = super().fetch(server, name, transport=transport, requester=requester)  # type: ignore[arg-type]
        if name.endswith(".cnf.xml.sgn"):
            tampered = bytearray(data)
            tampered[-5] ^= 0x01
            return bytes(tampered)
        return data


def test_tampered_config_byte_rejected_and_last_good_config_kept() -> None:
    """Items 13, 14: the phone refuses the file, shows the failure, keeps its last config."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    phone.boot()
    phone.reset()  # now a configured device: it has its own SEP<MAC>.cnf.xml.sgn
    good = phone.config
    assert good is not None
    phone.backend = TamperingBackend(lab, clock=clock)
    clock.tick()
    assert phone.reset() is State.REGISTERED  # registered with the last good config
    config = last(phone, "config")
    assert config.decision == "rejected"
    assert "signature" in config.reason
    assert f"File auth error SEP{MAC}.cnf.xml.sgn" in phone.status  # 79xx admin guides
    assert phone.config == good


def test_tampered_config_on_a_phone_with_no_previous_config_cannot_register() -> None:
    """Item 14: without a last good config there is nothing to fall back to."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    cluster = lab.cluster()
    from phone.cluster.records import Device

    cluster.add_device(Device(MAC), now=clock())
    phone = create_phone(lab, mac=MAC, clock=clock, backend=TamperingBackend(lab, clock=clock))
    assert phone.boot() is State.NO_CONFIG


class DeadTftp(MemoryBackend):
    def fetch(self, server: str, name: str, *, transport: object, requester: Requester) -> bytes:
        raise TransferTimeout(f"no answer from {server}")


def test_tftp_down_keeps_everything_and_says_tftp_timeout() -> None:
    """Item 13: a fetch failure leaves the installed lists alone."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    phone.boot()
    itl = phone.itl_hash()
    phone.backend = DeadTftp(lab, clock=clock)
    assert phone.reset() is State.REGISTERED  # last good config, as a real phone would
    assert phone.itl_hash() == itl
    assert "TFTP timeout" in phone.status  # vphone's text (docs/networks.md)


def test_status_log_keeps_the_last_30_messages() -> None:
    """Item 47."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    for _ in range(40):
        phone.boot() if phone.state is State.OFF else phone.reset()
    assert len(phone.status) == 30
    assert phone.status[-1] == "File not found CTLFile.tlv"


def test_power_cycle_clears_tvs_cache_but_keeps_flash() -> None:
    """Item 23: the TVS cache is volatile; trust lists survive on flash."""
    clock = Clock()
    lab, phone = two_clusters(clock)
    old, new = lab.cluster("old"), lab.cluster("new")
    bundles = {c.name: export_certificates(c, password=b"pw") for c in (old, new)}
    import_certificates(old, bundles, password=b"pw", now=clock())
    phone.tftp = new.tftp_hosts[0]
    phone.reset()
    phone.power_off()
    assert phone.state is State.OFF
    assert phone.itl is not None
    assert phone.power_on() in TERMINAL


class NoCtl(MemoryBackend):
    """A path that loses every CTL download (the CTL never reaches the phone)."""

    def fetch(self, server: str, name: str, *, transport: object, requester: Requester) -> bytes:
        if name.upper().startswith("CTL"):
            raise FileNotFoundOnServer(name)
        return super().fetch(server, name, transport=transport, requester=requester)  # type: ignore[arg-type]


def test_secure_mode_without_ctl_never_registers_insecurely() -> None:
    """Item 7: device security mode 2 with no CTL: retry the CTL, then give up."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", mixed_mode=True))
    cluster = lab.cluster()
    from phone.cluster.records import Device, SecurityMode

    cluster.add_device(Device(MAC, security_mode=SecurityMode.AUTHENTICATED), now=clock())
    phone = create_phone(lab, mac=MAC, clock=clock, backend=NoCtl(lab, clock=clock))
    assert phone.boot() is State.REGISTRATION_FAILED
    retries = [t for t in phone.trace if t.step == "register" and t.rule == "item 7"]
    # The 8841 takes the four attempts of 9.x 7900 firmware (item 7 [S18]; [G] for 88xx,
    # docs/models.md): a literal, so changing the catalog's number fails here.
    assert len(retries) == 4
    assert "does not register insecurely" in retries[-1].reason
    assert "after 4 attempts" in retries[-1].reason


@pytest.mark.parametrize("model", ["7942", "7962"])
def test_item7_java_79xx_tries_the_ctl_four_times_then_gives_up(model: str) -> None:
    """Item 7 [S18] (7945-7975 admin guide 9.0): secure mode, no CTL: four CTL attempts."""
    from phone.cluster.records import Device, SecurityMode

    clock = Clock()
    lab = lab_of(ClusterSpec("c1", mixed_mode=True))
    device = Device(MAC, model=model, security_mode=SecurityMode.AUTHENTICATED)
    lab.cluster().add_device(device, now=clock())
    phone = create_phone(lab, mac=MAC, model=model, clock=clock, backend=NoCtl(lab, clock=clock))
    assert phone.boot() is State.REGISTRATION_FAILED
    retries = [t for t in phone.trace if t.step == "register" and t.rule == "item 7"]
    assert [t.reason.split("(")[-1] for t in retries[:-1]] == [
        "attempt 1 of 4)",
        "attempt 2 of 4)",
        "attempt 3 of 4)",
    ]
    assert "after 4 attempts" in retries[-1].reason
    assert phone.registered_with is None


def test_secure_mode_with_ctl_registers_over_tls() -> None:
    """Items 10, 11, 7: mixed mode: CTL imprinted, ITL checked against it, TLS registration."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", mixed_mode=True))
    cluster = lab.cluster()
    from phone.cluster.records import Device, SecurityMode

    cluster.add_device(Device(MAC, security_mode=SecurityMode.AUTHENTICATED), now=clock())
    phone = phone_on(lab, clock)
    assert phone.boot() is State.REGISTERED
    # Item 10 [S13]: an 8800's first boot that installs both lists shows one text.
    assert "CTL and ITL installed" in phone.status
    assert last(phone, "itl").rule == "item 11"
    assert "/tls" in last(phone, "register").reason


def test_itl_hash_is_what_the_cluster_serves() -> None:
    """Item 31: the phone's ITL hash equals the SHA-1 of the file the TFTP serves."""
    import hashlib

    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    phone.boot()
    served = lab.file_service(lab.cluster().tftp_hosts[0])
    assert served is not None
    data = served.get("ITLFile.tlv")
    assert data is not None
    assert phone.itl_hash() == hashlib.sha1(data).hexdigest()
    assert parse_trust_list(data).header.filename == "ITLFile.tlv"


@pytest.mark.parametrize("model", ["7962", "8841"])
def test_models_boot(model: str) -> None:
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = create_phone(lab, mac=MAC, clock=clock, model=model)
    assert phone.boot() is State.REGISTERED


# --- firmware (items 36-39) -----------------------------------------------------------------


def phone_with_load(load: str, model: str, clock: Clock) -> tuple[Lab, VirtualPhone]:
    from phone.cluster.records import Device

    lab = lab_of(ClusterSpec("c1"))
    lab.cluster().add_device(Device(MAC, model=model, load=load), now=clock())
    return lab, create_phone(lab, mac=MAC, model=model, clock=clock)


def test_item36_new_load_installed_and_booted() -> None:
    clock = Clock()
    _, phone = phone_with_load("sip88xx.14-1-1", "8841", clock)
    assert phone.running_load == "sip88xx.12-0-1"
    assert phone.boot() is State.REGISTERED
    assert phone.running_load == "sip88xx.14-1-1"
    assert "Upgrade in Progress" in phone.status  # item 36 [S13]
    assert [t.decision for t in phone.trace if t.step == "image"] == ["accepted"]
    # The upgrade rebooted the phone: trust lists were fetched twice (item 3).
    assert len([t for t in phone.trace if t.step == "itl"]) == 2


def test_item38_signing_key_rollover_needs_the_intermediate_load() -> None:
    clock = Clock()
    lab, phone = phone_with_load("SCCP42.9-4-2SR3-1S", "7962", clock)
    assert phone.running_load == "SCCP42.8-3-1S"
    assert phone.boot() is State.REGISTERED  # item 37: keeps booting the resident image
    assert phone.running_load == "SCCP42.8-3-1S"
    assert "Auth Fail" in phone.status  # items 37/38 [S28]
    image = last(phone, "image")
    assert image.decision == "rejected" and "SCCP42.8-5-2S" in image.reason
    # The intermediate load first, then the target.
    cluster = lab.cluster()
    cluster.update_device(MAC, now=clock(), load="SCCP42.8-5-2S")
    phone.reset()
    assert phone.running_load == "SCCP42.8-5-2S"
    cluster.update_device(MAC, now=clock(), load="SCCP42.9-4-2SR3-1S")
    phone.reset()
    assert phone.running_load == "SCCP42.9-4-2SR3-1S"


def test_item39_hardware_incompatible_load_rejected() -> None:
    clock = Clock()
    _, phone = phone_with_load("sip78xx.11-0-1-11", "8841", clock)
    assert phone.boot() is State.REGISTERED
    assert "Load rejected HC" in phone.status  # item 39 [S13]
    assert phone.running_load == "sip88xx.12-0-1"


def test_item37_tampered_image_rejected_resident_image_kept() -> None:
    class TamperImage(MemoryBackend):
        def fetch(
            self, server: str, name: str, *, transport: object, requester: Requester
        ) -> bytes:
            data = super().fetch(server, name, transport=transport, requester=requester)  # type: ignore[arg-type]
            if name.endswith(".loads"):
                return data[:-1] + bytes([data[-1] ^ 0xFF])
            return data

    clock = Clock()
    lab, _ = phone_with_load("sip88xx.14-1-1", "8841", clock)
    phone = create_phone(lab, mac=MAC, clock=clock, backend=TamperImage(lab, clock=clock))
    assert phone.boot() is State.REGISTERED
    assert "Checksum Error" in phone.status  # item 39 [S13]
    assert phone.running_load == "sip88xx.12-0-1"


def test_item36_missing_load_file_reported_and_resident_kept() -> None:
    clock = Clock()
    _, phone = phone_with_load("sip88xx.99-9-9", "8841", clock)
    assert phone.boot() is State.REGISTERED
    assert "File not found sip88xx.99-9-9.loads" in phone.status
    assert "Upgrade Failed" in phone.status  # item 36 [S13]


def test_seed_model_without_security_by_default_ignores_the_itl() -> None:
    """Seed (Autoregistration): pre-SBD phones get an unsigned default config and no ITL."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = create_phone(lab, mac=MAC, clock=clock, model="7940")
    assert phone.boot() is State.REGISTERED
    assert phone.itl is None
    assert last(phone, "itl").decision == "skipped"
    assert last(phone, "config").file == "XMLDefault.cnf.xml"


def test_item8_signed_ring_list_verified_in_mixed_mode_and_tamper_rejected() -> None:
    """Item 8 (seed, File Authentication): static files are signed in mixed mode and verified."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", mixed_mode=True))
    phone = phone_on(lab, clock)
    assert phone.boot() is State.REGISTERED
    ring = last(phone, "ringlist")
    assert ring.decision == "accepted" and ring.file == "RingList.xml.sgn"
    stored = phone.flash.read("RingList.xml")
    assert stored is not None and b"<CiscoIPPhoneRingList" in stored

    from phone.net.faults import Fault, FaultKind, FaultyBackend

    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.TAMPER, "RingList.xml.sgn")]
    )
    assert phone.reset() is State.REGISTERED  # non-fatal
    assert last(phone, "ringlist").decision == "rejected"
    assert "File auth error RingList.xml.sgn" in phone.status
    assert phone.flash.read("RingList.xml") == stored


def test_item8_no_ring_list_fetched_without_a_ctl() -> None:
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = phone_on(lab, clock)
    phone.boot()
    assert not [t for t in phone.trace if t.step == "ringlist"]

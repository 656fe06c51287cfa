"""Rules of the phone's boot steps, whole boots in memory: trust lists (items 2, 30), the
configuration (item 14, encrypted configs of trust-file-formats.md section 8) and firmware
(item 36).

The decisions themselves are tested next to ``phone.trust``; these tests pin what the steps do
with them: which names are fetched quietly, what the trace says and under which step and file,
what is remembered for the registration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys
from trustkit import TIMESTAMP, identity, signer

from phone.api import create_lab, create_phone
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfOperation
from phone.cluster.certops import regenerate
from phone.cluster.lab import Lab
from phone.cluster.records import Device, SecurityMode
from phone.device import flash as names
from phone.device.flash import MemoryFlash
from phone.device.machine import State
from phone.device.phone import TraceEntry, VirtualPhone
from phone.device.port import Backend, RegisterRequest, RegisterResult
from phone.formats import Role, build_signed, build_trust_list, record_from_certificate
from phone.formats.signed import md5_hex
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.memory import MemoryBackend
from phone.pki import CertKind, issue

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
NAME = f"SEP{MAC}"


def clock() -> datetime:
    return NOW


class Recorder(MemoryBackend):
    """The in-memory backend, keeping every registration request."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, clock=clock)
        self.registrations: list[RegisterRequest] = []

    def register(self, request: RegisterRequest) -> RegisterResult:
        self.registrations.append(request)
        return super().register(request)


def new_lab(*, mixed: bool = False, device: Device | None = None) -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    if mixed:
        lab.cluster().set_mixed_mode(True, now=NOW)
    lab.cluster().add_device(device or Device(MAC), now=NOW)
    return lab


def new_phone(lab: Lab, backend: Backend | None = None, **kw: object) -> VirtualPhone:
    phone = create_phone(lab, mac=MAC, clock=clock, backend=backend, **kw)  # type: ignore[arg-type]
    phone.keys = pooled_keys()
    return phone


def entries(phone: VirtualPhone, step: str, since: int = 0) -> list[TraceEntry]:
    return [t for t in phone.trace[since:] if t.step == step]


def the_failure(phone: VirtualPhone, since: int = 0) -> TraceEntry:
    """The config step's first failure: why the encrypted config cannot be read."""
    failed = [t for t in entries(phone, "config", since) if t.decision == "failed"]
    assert failed, phone.trace
    return failed[0]


# item 14, phone-behaviour.md: with no config accepted and none kept, the phone cannot register.
NOTHING_KEPT = (
    "item 14",
    "no configuration accepted and none kept from before: the phone cannot register",
)


# --- item 2: per-MAC names first, quietly; the cluster-wide name's absence is said ----------------


def test_item2_only_the_cluster_wide_ctl_is_reported_not_found_outside_mixed_mode() -> None:
    phone = new_phone(new_lab())
    assert phone.boot() is State.REGISTERED
    # item 2, phone-behaviour.md: "Emit 'File Not Found <CTLFile.tlv>' status when the cluster
    # is not in mixed mode" [S13]; the per-MAC name asked first is not a status of its own.
    assert "File not found CTLFile.tlv" in phone.status
    assert f"File not found CTLSEP{MAC}.tlv" not in phone.status
    assert f"File not found ITLSEP{MAC}.tlv" not in phone.status
    # Both names were asked for, in item 2's order, and both answers are in the trace.
    ctl = [(t.decision, t.file) for t in entries(phone, "ctl")]
    assert ctl == [("not-found", f"CTLSEP{MAC}.tlv"), ("not-found", "CTLFile.tlv")]


# --- item 30: the ITL report at registration carries when the ITL was applied ---------------------


def test_item30_itl_report_carries_the_time_the_itl_was_applied() -> None:
    lab = new_lab()
    backend = Recorder(lab)
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    report = backend.registrations[-1].itl_report
    assert report is not None
    # item 30, phone-behaviour.md: "the phone sends ... the ITL it applied (server hostname,
    # hash, timestamp)": the phone applied it at this boot, 2026-06-01 09:00 UTC.
    assert report.timestamp == 1780304400
    assert report.itl_hash == phone.itl_hash()


# --- item 14, section 8: an encrypted config the phone cannot read says why -----------------------

# The texts of the trace (docs/capf.md; the golden scenario-encrypted-config-lsc.txt shows the
# first one word for word): which certificate the config is encrypted to, which one the phone
# holds, and the fix.
CANNOT_READ = (
    "the configuration is encrypted (encrConfig) {why} ({holds}): the phone cannot read its "
    "configuration (enroll an LSC through CAPF)"
)


def test_item14_encrypted_config_with_no_certificate_at_capf_says_so_word_for_word() -> None:
    lab = new_lab(
        mixed=True, device=Device(MAC, security_mode=SecurityMode.ENCRYPTED, encrypt_config=True)
    )
    phone = new_phone(lab)
    assert phone.boot() is State.NO_CONFIG
    failed = [(t.rule, t.reason) for t in entries(phone, "config") if t.decision == "failed"]
    assert failed == [
        (
            "item 14",
            CANNOT_READ.format(
                why="to no certificate: CAPF knows none for this phone",
                holds="this phone has no LSC",
            ),
        ),
        NOTHING_KEPT,
    ]
    # The stub is not a configuration to keep (item 14): nothing reaches the flash.
    assert phone.flash.read(names.CONFIG) is None


def test_item14_encrypted_config_for_a_certificate_while_the_phone_has_no_lsc() -> None:
    lab = new_lab(device=Device(MAC, encrypt_config=True))
    other = issue(lab.cluster().capf, NAME, pooled_keys().rsa(2048).public_key(), now=NOW)
    lab.cluster().update_device(MAC, now=NOW, certificate=other)
    phone = new_phone(lab)
    assert phone.boot() is State.NO_CONFIG
    failure = the_failure(phone)
    # The stub's certHash is the MD5 of the certificate (section 8); with no LSC of its own the
    # phone cannot tell whether it is its own: it names the certificate only.
    digest = md5_hex(other.public_bytes(Encoding.DER))
    assert failure.rule == "item 14"
    assert failure.reason == CANNOT_READ.format(
        why=f"to the certificate with MD5 {digest}", holds="this phone has no LSC"
    )
    assert (phone.trace[-1].rule, phone.trace[-1].reason) == NOTHING_KEPT


def test_item14_encrypted_config_to_the_phones_own_lsc_but_unreadable() -> None:
    lab = new_lab(device=Device(MAC, encrypt_config=True))
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED  # enrolled an LSC, read the encrypted config
    lsc = phone.lsc()
    assert lsc is not None
    mine = md5_hex(lsc.certificate.public_bytes(Encoding.DER))
    # The encrypted file is damaged on the way: encrypted to this phone's LSC, yet unreadable.
    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.TAMPER, f"{NAME}.cnf.xml.enc.sgn")]
    )
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED  # with the configuration it kept (item 14)
    # Section 8: every boot reads the stub first, then the encrypted file it announces.
    assert [(t.decision, t.file) for t in entries(phone, "config", mark)][:2] == [
        ("accepted", f"{NAME}.cnf.xml.sgn"),
        ("rejected", f"{NAME}.cnf.xml.enc.sgn"),
    ]
    failure = the_failure(phone, mark)
    assert failure.rule == "item 14"
    assert failure.reason == CANNOT_READ.format(
        why=f"to the certificate with MD5 {mine}", holds=f"its LSC has MD5 {mine}"
    )
    # Re-enrolled elsewhere: the config is now encrypted to another certificate.
    other = issue(lab.cluster().capf, NAME, pooled_keys().rsa(2048).public_key(), now=NOW)
    lab.cluster().update_device(MAC, now=NOW, certificate=other)
    phone.backend = MemoryBackend(lab, clock=clock)
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    theirs = md5_hex(other.public_bytes(Encoding.DER))
    assert the_failure(phone, mark).reason == CANNOT_READ.format(
        why=f"to the certificate with MD5 {theirs}, not to this phone's LSC",
        holds=f"its LSC has MD5 {mine}",
    )


# --- item 36: the image step's trace names the load file ------------------------------------------


def phone_with_load(load: str, model: str = "8841") -> VirtualPhone:
    lab = create_lab("c1", now=NOW, keys=pooled_keys())
    lab.cluster().add_device(Device(MAC, model=model, load=load), now=NOW)
    return create_phone(lab, mac=MAC, model=model, clock=clock)


def test_item36_the_image_decision_names_the_load_file() -> None:
    phone = phone_with_load("sip88xx.14-1-1")
    assert phone.boot() is State.REGISTERED
    # item 36, phone-behaviour.md: "fetch <load>.loads".
    image = entries(phone, "image")
    assert [(t.decision, t.file) for t in image] == [("accepted", "sip88xx.14-1-1.loads")]


def test_item36_a_missing_load_file_is_traced_under_the_image_step() -> None:
    phone = phone_with_load("sip88xx.99-9-9")
    assert phone.boot() is State.REGISTERED  # item 37: the resident image is kept
    image = entries(phone, "image")
    assert [(t.decision, t.rule, t.reason, t.file) for t in image] == [
        (
            "not-found",
            "item 2",
            "sip88xx.99-9-9.loads is not on the server",
            "sip88xx.99-9-9.loads",
        )
    ]


# --- item 5: the config name follows the trust lists ----------------------------------------------


def test_item5_a_phone_holding_only_a_ctl_asks_for_the_signed_config() -> None:
    # The 7940 takes a CTL but no ITL (seed: it predates Security by Default); its CTL holds
    # the TFTP-role certificate, so item 5 has it ask for SEP<MAC>.cnf.xml.sgn.
    phone = new_phone(new_lab(mixed=True), model="7940")
    assert phone.boot() is State.REGISTERED
    assert phone.itl is None and phone.ctl is not None
    assert [t.file for t in entries(phone, "config")] == [f"{NAME}.cnf.xml.sgn"]


# --- item 6: the default config of a device the cluster does not know ----------------------------


def mixed_lab_without_devices() -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    lab.cluster().set_mixed_mode(True, now=NOW)
    return lab


def test_item6_a_phone_without_sbd_takes_the_unsigned_default_config_even_with_a_ctl() -> None:
    phone = new_phone(mixed_lab_without_devices(), model="7940")
    assert phone.boot() is State.REGISTERED
    assert phone.ctl is not None
    # item 6, phone-behaviour.md: "phones without SBD get an unsigned one"; the seed's
    # Autoregistration text: "served a nonsigned default configuration file".
    assert [(t.decision, t.file, t.rule, t.reason) for t in entries(phone, "config")] == [
        ("not-found", f"{NAME}.cnf.xml.sgn", "item 2", f"{NAME}.cnf.xml.sgn is not on the server"),
        (
            "accepted",
            "XMLDefault.cnf.xml",
            "seed",
            "XMLDefault.cnf.xml: a phone without Security by Default is served a nonsigned "
            "default configuration file (seed, Autoregistration)",
        ),
    ]


def test_item6_an_sbd_phone_holding_only_a_ctl_asks_for_the_signed_default_config() -> None:
    lab = mixed_lab_without_devices()
    no_itl = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")])
    phone = new_phone(lab, no_itl)
    assert phone.boot() is State.REGISTERED
    assert phone.itl is None and phone.ctl is not None
    # item 6: "In SBD the default config is itself signed"; item 5: the CTL's TFTP-role
    # certificate alone makes the phone ask for the signed names.
    assert [(t.decision, t.file) for t in entries(phone, "config")] == [
        ("not-found", f"{NAME}.cnf.xml.sgn"),
        ("accepted", "XMLDefault.cnf.xml.sgn"),
    ]


# --- items 10 and 13: the first-boot text is for a phone that held no list at all ----------------


def test_item13_a_phone_holding_a_ctl_says_trust_list_updated_for_each_list() -> None:
    lab = new_lab(mixed=True)
    no_itl = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")])
    phone = new_phone(lab, no_itl)
    assert phone.boot() is State.REGISTERED
    # item 2: the cluster-wide ITL's absence is said; item 10: "CTL installed".
    assert phone.status[-2:] == ["File not found ITLFile.tlv", "CTL installed"]
    assert phone.ctl is not None and phone.itl is None
    # The cluster's CallManager certificate changes and its CTL is rebuilt; the ITL is served.
    regenerate(lab.cluster(), CertKind.CALLMANAGER, now=NOW, keys=pooled_keys())
    lab.cluster().update_ctl(now=NOW)
    phone.backend = MemoryBackend(lab, clock=clock)
    mark = len(phone.status)
    assert phone.reset() is State.REGISTERED
    assert [t.decision for t in entries(phone, "ctl")][-1:] == ["accepted"]
    assert [t.decision for t in entries(phone, "itl")][-1:] == ["accepted"]
    # item 13: "success -> 'Trust List updated'", once per list; item 10's "CTL and ITL
    # installed" is the text of a phone that held neither list.
    assert phone.status[mark:] == ["Trust List updated", "Trust List updated"]


def test_item10_outside_the_88xx_each_list_is_announced_when_it_is_installed() -> None:
    # Only the 88xx family holds its texts back for one "CTL and ITL installed" (item 10, [S13]);
    # a 7962 says "CTL installed" when it installs the CTL, before it asks for the ITL (item 2:
    # CTL first, then ITL; item 47: the status log keeps the messages in order).
    lab = new_lab(mixed=True)
    no_itl = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")])
    phone = new_phone(lab, no_itl, model="7962")
    phone.boot()
    assert phone.ctl is not None and phone.itl is None
    lists = [s for s in phone.status if "CTL" in s or "ITL" in s]
    assert lists == ["CTL installed", "File not found ITLFile.tlv"]


def list_texts(phone: VirtualPhone, since: int = 0) -> list[str]:
    return [s for s in phone.status[since:] if "CTL" in s or "ITL" in s or "Trust List" in s]


def test_item10_an_88xx_installing_both_lists_at_once_shows_one_text() -> None:
    phone = new_phone(new_lab(mixed=True))  # CP-8841
    assert phone.boot() is State.REGISTERED
    # item 10 / item 47, phone-behaviour.md: "CTL and ITL installed" [S13].
    assert list_texts(phone) == ["CTL and ITL installed"]


def test_item10_an_88xx_holds_its_first_ctl_text_until_the_itl_is_asked_for() -> None:
    lab = new_lab(mixed=True)
    no_itl = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")])
    phone = new_phone(lab, no_itl)
    phone.boot()
    # A first boot: the CTL's text waits for the ITL's outcome (item 10's combined text); with
    # no ITL it is said after the ITL's "File not found" (item 2).
    assert list_texts(phone) == ["File not found ITLFile.tlv", "CTL installed"]
    # Not a first boot any more (a CTL is held): the CTL's update is said when it happens.
    regenerate(lab.cluster(), CertKind.CALLMANAGER, now=NOW, keys=pooled_keys())
    lab.cluster().update_ctl(now=NOW)
    mark = len(phone.status)
    phone.reset()
    assert list_texts(phone, mark) == ["Trust List updated", "File not found ITLFile.tlv"]


# --- item 47: the 8945 words a config it cannot authenticate its own way --------------------------


def test_item47_the_8945_says_reason_14_for_a_tampered_config_and_nothing_for_a_good_one() -> None:
    lab = new_lab()
    phone = new_phone(lab, model="8945")
    assert phone.boot() is State.REGISTERED
    assert not [s for s in phone.status if "authenticated fail" in s or "auth error" in s]
    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.TAMPER, f"{NAME}.cnf.xml.sgn")]
    )
    mark = len(phone.status)
    assert phone.reset() is State.REGISTERED  # item 14: the last good config is kept
    # item 47 / item 14, phone-behaviour.md [S21]: the 8945 logs "invalid file
    # SEP....cnf.xml.sgn, authenticated fail. Reason:14" where others say "File auth error".
    said = [s for s in phone.status[mark:] if "authenticated fail" in s or "auth error" in s]
    assert said == [f"invalid file {NAME}.cnf.xml.sgn, authenticated fail. Reason:14"]


# --- CAPF first when the (plain) config announces a certificate operation (docs/capf.md) --------


def test_capf_runs_before_registration_when_a_plain_config_announces_an_operation() -> None:
    lab = new_lab()  # the config is not encrypted: the full config itself carries capfAuthMode
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    assert [t.decision for t in entries(phone, "capf")] == ["accepted", "accepted"]
    steps = [t.step for t in phone.trace]
    assert steps.index("capf") < steps.index("register")
    assert phone.lsc() is not None


def test_item5_an_encrypted_config_is_asked_for_by_a_phone_holding_only_a_ctl() -> None:
    # item 5, phone-behaviour.md: a CTL with a TFTP-role certificate -> ".cnf.xml.enc.sgn if
    # encrypted config is enabled"; the ITL is missing here, the CTL alone decides.
    lab = new_lab(
        mixed=True, device=Device(MAC, security_mode=SecurityMode.ENCRYPTED, encrypt_config=True)
    )
    no_itl = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")])
    phone = new_phone(lab, no_itl)
    assert phone.boot() is State.NO_CONFIG
    assert [t.file for t in entries(phone, "config") if t.file] == [
        f"{NAME}.cnf.xml.sgn",
        f"{NAME}.cnf.xml.enc.sgn",
    ]


# --- item 14: a refused config on a phone that has one keeps it, and says so ---------------------


def test_item14_a_tampered_config_is_refused_and_the_kept_one_is_traced() -> None:
    lab = new_lab()
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.TAMPER, f"{NAME}.cnf.xml.sgn")]
    )
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    # item 14, phone-behaviour.md: the last known configuration is kept and changed settings
    # are ignored.
    kept = [t for t in phone.trace[mark:] if t.decision == "skipped"]
    assert [(t.step, t.rule, t.reason, t.file) for t in kept] == [
        (
            "config",
            "item 14",
            "keeping the last good configuration; changed settings are ignored",
            None,
        )
    ]


# --- the model table: a phone without CTL support skips the CTL -----------------------------------


def test_a_phone_without_ctl_support_skips_both_lists_and_says_why() -> None:
    phone = new_phone(new_lab(mixed=True), model="7910")
    assert phone.boot() is State.REGISTERED
    skipped = [(t.step, t.decision, t.rule, t.reason) for t in phone.trace[1:3]]
    assert skipped == [
        ("ctl", "skipped", "model table", "CP-7910 takes no CTL (docs/models.md)"),
        (
            "itl",
            "skipped",
            "seed",
            "CP-7910 predates Security by Default: it does not use an ITL",
        ),
    ]
    assert phone.ctl is None and phone.itl is None
    # item 47, phone-behaviour.md: the status log's "No Trust List installed".
    assert "No Trust List installed" in phone.status
    # item 5: with no trust list the phone takes the plain config, unsigned.
    config = [(t.decision, t.rule, t.reason) for t in entries(phone, "config")]
    assert config == [
        (
            "accepted",
            "item 5",
            f"{NAME}.cnf.xml: no trust list installed, so the phone takes an unsigned config",
        )
    ]


def test_item14_a_config_whose_xml_is_malformed_is_refused() -> None:
    lab = new_lab()
    broken = FaultyBackend(
        MemoryBackend(lab, clock=clock),
        [Fault(FaultKind.REPLACE, f"{NAME}.cnf.xml", b"<device><unclosed>")],
    )
    phone = new_phone(lab, broken, model="7910")  # no trust lists: the plain file is taken
    assert phone.boot() is State.NO_CONFIG
    refused = [t for t in entries(phone, "config") if t.decision == "rejected"]
    assert [(t.rule, t.reason.split(": ")[0]) for t in refused] == [
        ("item 14", "config XML is malformed")
    ]
    assert phone.flash.read(names.CONFIG) is None


# --- item 8: other signed files (the ring list) are verified like the config ---------------------

RING = "RingList.xml.sgn"


def ring_entries(phone: VirtualPhone, since: int = 0) -> list[tuple[str, str, str | None]]:
    return [(t.decision, t.rule, t.file) for t in entries(phone, "ringlist", since)]


def test_item8_a_signed_ring_list_is_verified_stored_and_its_absence_is_quiet() -> None:
    lab = new_lab(mixed=True)
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    assert ring_entries(phone) == [("accepted", "item 14", RING)]
    stored = phone.flash.read("RingList.xml")
    assert stored is not None and b"<CiscoIPPhoneRingList>" in stored
    # Not served any more: non-fatal and not a status of its own (item 13's rule for lists:
    # the phone keeps what it had); the trace still says so.
    phone.backend = FaultyBackend(MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, RING)])
    mark, said = len(phone.trace), len(phone.status)
    assert phone.reset() is State.REGISTERED
    assert ring_entries(phone, mark) == [("not-found", "item 2", RING)]
    assert not [s for s in phone.status[said:] if RING in s]
    assert phone.flash.read("RingList.xml") == stored


def test_item8_a_ring_list_signed_by_an_unknown_key_is_refused_after_asking_tvs() -> None:
    lab = new_lab(mixed=True)
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    stored = phone.flash.read("RingList.xml")
    rogue = build_signed(
        b"<CiscoIPPhoneRingList/>", signer(identity("rogue")), filename=RING, timestamp=TIMESTAMP
    ).encode()
    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.REPLACE, RING, rogue)]
    )
    mark, said = len(phone.trace), len(phone.status)
    assert phone.reset() is State.REGISTERED  # non-fatal
    # items 14 and 24: the signer is in neither list and TVS does not know it.
    assert ring_entries(phone, mark) == [("rejected", "items 14, 24", RING)]
    reason = entries(phone, "ringlist", mark)[0].reason
    assert reason.startswith("file rejected: signer serial "), reason
    assert "is not a TFTP record of the installed CTL or ITL; TVS " in reason
    assert f"File auth error {RING}" in phone.status[said:]
    assert phone.flash.read("RingList.xml") == stored


def test_item8_a_ring_list_from_a_regenerated_callmanager_is_checked_in_the_itl_then_tvs() -> None:
    lab = new_lab(mixed=True)
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    # The CallManager certificate is regenerated; the CTL is not rebuilt, the ITL is.
    regenerate(lab.cluster(), CertKind.CALLMANAGER, now=NOW, keys=pooled_keys())
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    assert ring_entries(phone, mark) == [("accepted", "item 14", RING)]
    reason = entries(phone, "ringlist", mark)[0].reason
    assert reason.endswith("is the CCM+TFTP record of the installed ITL"), reason
    # Regenerated again and the ITL not reachable: neither list knows the signer; TVS vouches
    # (item 20).
    regenerate(lab.cluster(), CertKind.CALLMANAGER, now=NOW, keys=pooled_keys())
    phone.backend = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.DROP, "ITL*.tlv")]
    )
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    assert ring_entries(phone, mark) == [("accepted", "items 14, 20", RING)]


class CountingFlash(MemoryFlash):
    """Flash that counts the writes of each file."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: dict[str, int] = {}

    def write(self, name: str, data: bytes) -> None:
        self.writes[name] = self.writes.get(name, 0) + 1
        super().write(name, data)


def test_an_unchanged_config_and_ring_list_are_not_written_to_flash_again() -> None:
    flash = CountingFlash()
    phone = new_phone(new_lab(mixed=True), flash=flash)
    assert phone.boot() is State.REGISTERED
    assert phone.reset() is State.REGISTERED
    assert (flash.writes[names.CONFIG], flash.writes[names.RING_LIST]) == (1, 1)


# --- item 18: an ITL the phone cannot load fails the registration ------------------------------


def test_item18_an_itl_of_forty_certificates_stops_the_boot_before_the_config() -> None:
    lab = new_lab()
    ident = identity("itl-signer")
    records = [record_from_certificate(ident.certificate, Role.SAST)]
    records += [record_from_certificate(ident.certificate, Role.TVS) for _ in range(39)]
    big = build_trust_list(records, signer(ident), timestamp=TIMESTAMP).encode()
    served = FaultyBackend(
        MemoryBackend(lab, clock=clock), [Fault(FaultKind.REPLACE, "ITL*.tlv", big)]
    )
    phone = new_phone(lab, served)
    # item 18, phone-behaviour.md: "the phone cannot load it and registration fails".
    assert phone.boot() is State.REGISTRATION_FAILED
    assert [t.rule for t in entries(phone, "itl") if t.decision == "rejected"] == ["item 18"]
    assert entries(phone, "config") == []
    assert "No Trust List installed" in phone.status

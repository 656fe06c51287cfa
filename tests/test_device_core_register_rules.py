"""The phone's state before its first boot, what it keeps on flash, and what it sends when it
registers: the ITL report (item 30), the CallManager check of secure modes (item 7), SCCP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.catalog.rows import Transport
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device import flash as names
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.device.port import RegisterRequest, RegisterResult, Requester
from phone.device.sccp import SccpClient
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.formats.trustlist import Role
from phone.net.memory import MemoryBackend
from phone.pki import cert_to_pem, issue, key_to_pem

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"


def clock() -> datetime:
    return NOW


class Recorder(MemoryBackend):
    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, clock=clock)
        self.registrations: list[RegisterRequest] = []

    def register(self, request: RegisterRequest) -> RegisterResult:
        self.registrations.append(request)
        return super().register(request)


def new_lab(*, mixed: bool = False) -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    if mixed:
        lab.cluster().set_mixed_mode(True, now=NOW)
    lab.cluster().add_device(Device(MAC), now=NOW)
    return lab


def new_phone(lab: Lab, backend: MemoryBackend, **kw: object) -> VirtualPhone:
    phone = create_phone(lab, mac=MAC, clock=clock, backend=backend, **kw)  # type: ignore[arg-type]
    phone.keys = pooled_keys()
    return phone


# --- before the first boot ------------------------------------------------------------------------


def test_a_new_phone_has_no_trust_list_no_config_and_no_registration() -> None:
    lab = new_lab()
    phone = new_phone(lab, Recorder(lab))
    assert phone.state is State.OFF
    assert phone.ctl is None and phone.itl is None
    assert phone.config is None and phone.registered_with is None
    assert phone.capf_string is None  # no authentication string typed (docs/capf.md 1)


def test_the_phone_takes_its_keys_from_the_key_source_it_is_given() -> None:
    lab = new_lab()
    keys = pooled_keys()
    phone = VirtualPhone(mac=MAC, backend=Recorder(lab), tftp="cucm1", clock=clock, keys=keys)
    assert phone.keys is keys


def test_the_mic_is_valid_twenty_years_from_first_use() -> None:
    # vphone's MIC (docs/capf.md): created on first use, 20 years of 365 days.
    lab = new_lab()
    phone = new_phone(lab, Recorder(lab))
    mic = phone.mic().certificate
    assert mic.not_valid_before_utc == NOW
    assert mic.not_valid_after_utc == NOW + timedelta(days=7300)


def test_settings_on_flash_are_written_with_sorted_keys() -> None:
    # Flash content is reproducible: the same settings give the same bytes.
    lab = new_lab()
    phone = new_phone(lab, Recorder(lab))
    assert phone.boot() is State.REGISTERED
    phone.erase_trust()  # rewrites the settings (item 46)
    raw = phone.flash.read(names.SETTINGS)
    assert raw is not None
    assert raw == json.dumps(json.loads(raw), sort_keys=True).encode()
    assert list(json.loads(raw)) == sorted(json.loads(raw))


# --- item 30: the ITL report ----------------------------------------------------------------------


def test_item30_registration_reports_the_itl_hash_and_when_it_was_applied() -> None:
    lab = new_lab()
    backend = Recorder(lab)
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    report = backend.registrations[-1].itl_report
    assert report is not None
    assert report.itl_hash == phone.itl_hash() and report.tftp_host == phone.tftp
    assert report.timestamp == int(NOW.timestamp())  # applied at this boot


def test_item30_an_itl_of_unknown_apply_time_is_reported_with_timestamp_zero() -> None:
    # An ITL on flash whose apply time is not recorded (or is damaged) reports time 0.
    lab = new_lab()
    backend = Recorder(lab)
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    for damaged in (None, "yesterday"):
        if damaged is None:
            phone._settings.pop("itl_applied_at", None)
        else:
            phone._settings["itl_applied_at"] = damaged
        report = phone._itl_report()
        assert report is not None and report.timestamp == 0


# --- item 7: TLS to the CallManager is checked against the CTL's CCM records ----------------------


def test_item7_callmanager_certificate_must_be_a_ccm_record_of_the_ctl() -> None:
    lab = new_lab(mixed=True)
    phone = new_phone(lab, Recorder(lab))
    phone.boot()
    assert phone.ctl is not None
    check = phone._callmanager_check()
    ccm = {r.certificate_der for r in phone.ctl.records if r.role in (Role.CCM, Role.CCM_TFTP)}
    others = {
        r.certificate_der
        for r in phone.ctl.records
        if r.certificate_der is not None and r.certificate_der not in ccm
    }
    assert ccm and others  # e.g. the CAPF and the SAST records
    for der in ccm:
        assert der is not None
        assert check(x509.load_der_x509_certificate(der)) is None
    for der in others:
        assert check(x509.load_der_x509_certificate(der)) == (
            "the CallManager certificate is not a CCM record of the installed CTL"
        )


# --- SCCP -----------------------------------------------------------------------------------------


class SilentSccp(MemoryBackend):
    """A CallManager that accepts the connection and never concludes the registration."""

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpClient) -> None:  # type: ignore[override]
        return None


def test_sccp_registration_that_never_concludes_fails_naming_the_callmanager() -> None:
    lab = new_lab()
    phone = new_phone(lab, SilentSccp(lab, clock=clock), model="7942", protocol="sccp")
    assert phone.boot() is State.REGISTRATION_FAILED
    host = lab.cluster().publisher.hostname
    (failed,) = [t for t in phone.trace if t.step == "register" and t.decision == "failed"]
    assert failed.reason == f"{host}:2000: SCCP {host}: the registration did not conclude"


# --- the LSC on flash (docs/capf.md) ------------------------------------------------------------


def test_an_lsc_certificate_renewed_on_flash_for_the_same_key_is_the_one_read() -> None:
    # lsc.pem and a separate lsc.key (flash written before the one-file layout): the phone
    # presents the certificate that is on flash now, not one it read before.
    lab = new_lab()
    phone = new_phone(lab, Recorder(lab))
    key = pooled_keys().rsa(2048)
    capf = lab.cluster().capf
    first = issue(capf, f"SEP{MAC}", key.public_key(), now=NOW)
    renewed = issue(capf, f"SEP{MAC}", key.public_key(), now=NOW + timedelta(days=1))
    phone.flash.write(names.LSC_KEY, key_to_pem(key, None, allow_unencrypted=True))
    phone.flash.write(names.LSC_CERT, cert_to_pem(first))
    found = phone.lsc()
    assert found is not None and found.certificate == first
    phone.flash.write(names.LSC_CERT, cert_to_pem(renewed))
    found = phone.lsc()
    assert found is not None and found.certificate == renewed


# --- items 2, 4 and 13: fetching a file over the model's transports -----------------------------


class Transfers(MemoryBackend):
    """Every fetch answered per transport: bytes, or the error to raise."""

    def __init__(self, lab: Lab, answers: dict[Transport, bytes | NetworkError]) -> None:
        super().__init__(lab, clock=clock)
        self.answers = answers
        self.tried: list[Transport] = []

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        self.tried.append(transport)
        answer = self.answers[transport]
        if isinstance(answer, NetworkError):
            raise answer
        return answer


def fetching(answers: dict[Transport, bytes | NetworkError]) -> tuple[VirtualPhone, Transfers]:
    lab = new_lab()
    backend = Transfers(lab, answers)
    phone = new_phone(lab, backend)  # an 8841: HTTP 6970 first, then TFTP (item 4)
    return phone, backend


HTTP, TFTP = Transport.HTTP, Transport.TFTP


def test_item4_a_file_not_on_http_is_fetched_over_tftp() -> None:
    phone, backend = fetching({HTTP: FileNotFoundOnServer("x.cnf.xml"), TFTP: b"data"})
    assert phone._fetch("config", "x.cnf.xml") == b"data"
    assert backend.tried == [HTTP, TFTP] and phone.trace == [] and phone.status == []


def test_item4_http_that_times_out_or_fails_falls_back_to_tftp() -> None:
    for error in (TransferTimeout("no answer"), NetworkError("connection refused")):
        phone, backend = fetching({HTTP: error, TFTP: b"data"})
        assert phone._fetch("config", "x.cnf.xml") == b"data"
        assert backend.tried == [HTTP, TFTP] and phone.trace == []


def test_item2_a_file_on_neither_transport_is_not_found_and_shown() -> None:
    phone, backend = fetching({HTTP: TransferTimeout("no answer"), TFTP: FileNotFoundOnServer("f")})
    assert phone._fetch("ctl", "CTLSEP001122334455.tlv") is None
    assert backend.tried == [HTTP, TFTP]
    (entry,) = phone.trace
    assert (entry.step, entry.decision, entry.rule, entry.reason, entry.file, entry.server) == (
        "ctl",
        "not-found",
        "item 2",
        "CTLSEP001122334455.tlv is not on the server",
        "CTLSEP001122334455.tlv",
        phone.tftp,
    )
    assert phone.status == ["File not found CTLSEP001122334455.tlv"]  # item 2, [S13]


def test_item2_a_quiet_not_found_is_recorded_but_not_shown() -> None:
    phone, _ = fetching({HTTP: FileNotFoundOnServer("f"), TFTP: FileNotFoundOnServer("f")})
    assert phone._fetch("itl", "ITLSEP001122334455.tlv", quiet_not_found=True) is None
    assert [t.decision for t in phone.trace] == ["not-found"] and phone.status == []


def test_item13_a_file_no_transport_delivers_is_a_timeout_naming_each_failure() -> None:
    phone, _ = fetching({HTTP: TransferTimeout("no answer"), TFTP: NetworkError("unreachable")})
    assert phone._fetch("config", "x.cnf.xml") is None
    (entry,) = phone.trace
    assert (entry.step, entry.decision, entry.rule, entry.reason, entry.file, entry.server) == (
        "config",
        "timeout",
        "item 13",
        "http: no answer; tftp: unreachable",
        "x.cnf.xml",
        phone.tftp,
    )
    assert phone.status == ["TFTP timeout"]

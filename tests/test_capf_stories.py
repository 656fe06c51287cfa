"""Phones and CAPF, whole boots in memory: LSC enrollment, encrypted configs end to end, whom
the phone trusts for CAPF (item 20), and what reaches the flash.

The first test is the issue-8 scenario (docs/capf.md gives it as a scenario for the library):
enable encryption for a device, boot (no LSC: the phone cannot read its config and says so),
run an LSC install with an authentication string, boot again: the phone decrypts its config and
registers over TLS with its LSC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from keypool import pooled_keys

from phone.api import create_lab, create_phone
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device, SecurityMode
from phone.device import flash as names
from phone.device.flash import DirectoryFlash, MemoryFlash
from phone.device.machine import State
from phone.device.phone import TraceEntry, VirtualPhone
from phone.device.port import Backend, RegisterRequest, RegisterResult, Requester
from phone.device.view import flash_view
from phone.errors import NetworkError
from phone.formats.signed import md5_hex
from phone.formats.trustlist import Role, build_trust_list, record_from_certificate
from phone.net.directory import DirectoryBackend
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.memory import MemoryBackend
from phone.pki import Identity, cert_to_pem, issue, key_to_pem, self_signed
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsServer
from phone.wire.capf import Frame as CapfFrame

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
NAME = f"SEP{MAC}"


def clock() -> datetime:
    return NOW


class Recorder(MemoryBackend):
    """The in-memory backend, noting which certificate the phone presents to TVS and CCM."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, clock=clock)
        self.registrations: list[RegisterRequest] = []
        self.tvs_clients: list[x509.Certificate] = []

    def register(self, request: RegisterRequest) -> RegisterResult:
        self.registrations.append(request)
        return super().register(request)

    def tvs_query(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        *,
        client: Identity,
        requester: Requester,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        self.tvs_clients.append(client.certificate)
        return super().tvs_query(
            server,
            issuer,
            serial,
            check_server,
            client=client,
            requester=requester,
            certificate=certificate,
        )


def new_lab(*, mixed: bool = False, device: Device | None = None) -> Lab:
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    if mixed:
        cluster.set_mixed_mode(True, now=NOW)
    cluster.add_device(device or Device(MAC), now=NOW)
    return lab


def new_phone(lab: Lab, backend: Backend | None = None, **kw: object) -> VirtualPhone:
    phone = create_phone(lab, mac=MAC, clock=clock, backend=backend, **kw)  # type: ignore[arg-type]
    phone.keys = pooled_keys()
    return phone


def entries(phone: VirtualPhone, step: str, since: int = 0) -> list[TraceEntry]:
    return [t for t in phone.trace[since:] if t.step == step]


def record(lab: Lab) -> Device:
    found = lab.cluster().device(MAC)
    assert found is not None
    return found


def served_itl(
    cluster: Cluster,
    *,
    capf_record: x509.Certificate | str | None = "keep",
    signer_version: tuple[int, int] | None = None,
) -> bytes:
    """The cluster's ITL rebuilt: without its CAPF record (None), with another certificate as
    CAPF, or with a signer version (header tag 28); signed by the cluster's own ITL signer."""
    plan = cluster.itl_plan(cluster.tftp_hosts[0])
    records = []
    for r in plan.records:
        if r.role == Role.CAPF and capf_record != "keep":
            if isinstance(capf_record, x509.Certificate):
                records.append(record_from_certificate(capf_record, Role.CAPF))
            continue
        records.append(r)
    itl = build_trust_list(
        records,
        plan.signer,
        filename="ITLFile.tlv",
        timestamp=int(NOW.timestamp()),
        digest=plan.digest,
        signer_version=signer_version,
    )
    return itl.encode()


def serving_itl(lab: Lab, data: bytes, **extra: object) -> FaultyBackend:
    """The lab, with every ITL download answered by ``data`` (first boot: trusted on first use)."""
    return FaultyBackend(Recorder(lab), [Fault(FaultKind.REPLACE, "itl*.tlv", data)], **extra)  # type: ignore[arg-type]


# --- the scenario ---------------------------------------------------------------------------------


def test_encrypted_config_end_to_end_after_an_lsc_install_by_string() -> None:
    lab = new_lab(
        mixed=True,
        device=Device(MAC, security_mode=SecurityMode.ENCRYPTED, encrypt_config=True),
    )
    backend = Recorder(lab)
    phone = new_phone(lab, backend)

    # 1. Encryption on, no LSC: the stub says encrConfig, the encrypted file does not exist
    # for this phone (CAPF knows no certificate to encrypt to). The phone says so and has no
    # configuration to register with.
    assert phone.boot() is State.NO_CONFIG
    failed = [t for t in entries(phone, "config") if t.decision == "failed"]
    assert "cannot read its configuration" in failed[0].reason
    assert "this phone has no LSC" in failed[0].reason
    assert f"File not found {NAME}.cnf.xml.enc.sgn" in phone.status
    assert phone.lsc() is None and entries(phone, "capf") == []

    # 2. The administrator sets an LSC install by authentication string; the string is typed
    # on the phone.
    capf.set_pending(
        lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="7391", now=NOW
    )
    phone.capf_string = "7391"
    phone.power_off()
    mark = len(phone.trace)

    # 3. Next boot: the stub announces the operation, the phone enrolls, reads the encrypted
    # config with its new key and registers over TLS presenting the LSC.
    assert phone.boot() is State.REGISTERED
    capf_entries = entries(phone, "capf", mark)
    assert [e.decision for e in capf_entries] == ["accepted", "accepted"]
    assert "CAPF record of the installed CTL" in capf_entries[0].reason
    assert (
        "completed" in capf_entries[1].reason
        and "generated an RSA-2048 key" in capf_entries[1].reason
    )
    lsc = phone.lsc()
    assert lsc is not None and isinstance(lsc.key, rsa.RSAPrivateKey)
    decrypted = [t for t in entries(phone, "config", mark) if t.file == f"{NAME}.cnf.xml.enc.sgn"]
    assert decrypted[-1].decision == "accepted"
    assert phone.config is not None and phone.config.full_config
    assert phone.config.device_security_mode == 3
    last = backend.registrations[-1]
    assert last.transport == "tls" and last.client_identity is not None
    assert last.client_identity.certificate == lsc.certificate
    assert phone.identity().certificate == lsc.certificate
    device = record(lab)
    assert device.certificate == lsc.certificate and device.capf is None
    assert device.capf_result is not None and device.capf_result.ok

    # 4. And from then on: no CAPF step, the encrypted config is read directly after the stub.
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    assert entries(phone, "capf", mark) == []


def test_phone_without_the_matching_key_reports_it_and_keeps_its_last_good_config() -> None:
    lab = new_lab(device=Device(MAC, encrypt_config=True))
    phone = new_phone(lab)
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    assert phone.boot() is State.REGISTERED
    good = phone.flash.read(names.CONFIG)
    assert good is not None and b"<fullConfig>false" not in good  # the real config, not the stub
    # CAPF now encrypts to another key (a re-enrollment this phone never got).
    other_key = pooled_keys().rsa(2048)
    other = issue(lab.cluster().capf, NAME, other_key.public_key(), now=NOW)
    lab.cluster().update_device(MAC, now=NOW, certificate=other)
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED  # with the configuration it kept
    rejected = [t for t in entries(phone, "config", mark) if t.decision == "rejected"]
    assert rejected and rejected[0].file == f"{NAME}.cnf.xml.enc.sgn"
    # The real failure: the config is encrypted to another certificate than this phone's LSC.
    lsc = phone.lsc()
    assert lsc is not None
    why = next(t.reason for t in entries(phone, "config", mark) if t.decision == "failed")
    assert f"MD5 {md5_hex(other.public_bytes(Encoding.DER))}, not to this phone's LSC" in why
    assert f"its LSC has MD5 {md5_hex(lsc.certificate.public_bytes(Encoding.DER))}" in why
    assert f"File auth error {NAME}.cnf.xml.enc.sgn" in phone.status
    assert any("keeping the last good configuration" in t.reason for t in phone.trace[mark:])
    assert phone.flash.read(names.CONFIG) == good


# --- authentication strings at the phone ----------------------------------------------------------


def test_wrong_string_fails_the_operation_and_the_right_one_next_boot_succeeds() -> None:
    lab = new_lab()
    capf.set_pending(
        lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="1234", now=NOW
    )
    phone = new_phone(lab)
    phone.capf_string = "4321"
    assert phone.boot() is State.REGISTERED  # a plain config: the phone registers anyway
    (_, failed) = entries(phone, "capf")
    assert failed.decision == "rejected" and "reason 7" in failed.reason
    assert phone.lsc() is None and record(lab).capf is not None
    phone.capf_string = "1234"
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED
    assert entries(phone, "capf", mark)[-1].decision == "accepted"
    assert phone.lsc() is not None and record(lab).capf is None


def test_no_string_typed_means_no_session() -> None:
    lab = new_lab()
    capf.set_pending(
        lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.STRING, secret="1234", now=NOW
    )
    sessions_before = lab.cluster().next_log_seq
    phone = new_phone(lab)
    assert phone.boot() is State.REGISTERED
    (failed,) = entries(phone, "capf")
    assert failed.decision == "failed" and "none was entered on the phone" in failed.reason
    assert not any(e.service == "CAPF" for e in lab.cluster().log_since(sessions_before))
    assert record(lab).capf_result is None


# --- whom the phone trusts (item 20) --------------------------------------------------------------


def test_item20_capf_trusted_through_tvs_when_the_itl_has_no_capf_record() -> None:
    lab = new_lab()
    cluster = lab.cluster()
    backend = serving_itl(lab, served_itl(cluster, capf_record=None))
    recorder = backend.inner
    assert isinstance(recorder, Recorder)
    capf.set_pending(cluster, MAC, CapfOperation.INSTALL, CapfAuth.MIC, now=NOW)
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    tvs = entries(phone, "tvs")
    assert tvs and tvs[0].decision == "accepted"
    trusted = entries(phone, "capf")[0]
    assert (
        trusted.decision == "accepted" and "no CAPF record in the installed lists" in trusted.reason
    )
    lsc = phone.lsc()
    assert lsc is not None
    assert recorder.tvs_clients[-1] == phone.mic().certificate  # before enrollment: the MIC
    # Later sessions authenticate to TVS with the LSC (item 21).
    capf.set_pending(cluster, MAC, CapfOperation.TROUBLESHOOT, CapfAuth.LSC, now=NOW)
    assert phone.reset() is State.REGISTERED
    assert recorder.tvs_clients[-1] == lsc.certificate
    result = record(lab).capf_result
    assert result is not None and result.ok and result.certificates[0].startswith("LSC: CN=SEP")


@pytest.mark.parametrize("how", ["other-capf-record", "no-record-and-tvs-down"])
def test_item20_capf_server_matching_neither_the_itl_nor_tvs_is_refused(how: str) -> None:
    lab = new_lab()
    cluster = lab.cluster()
    if how == "other-capf-record":
        stranger = self_signed(
            "CAPF-stranger", now=NOW, key=ec.generate_private_key(ec.SECP256R1())
        )
        backend = serving_itl(lab, served_itl(cluster, capf_record=stranger.certificate))
        expected = "is not the CAPF record of the installed ITL"
    else:
        backend = serving_itl(
            lab, served_itl(cluster, capf_record=None), tvs_down=set(cluster.tvs_hosts)
        )
        expected = "TVS did not vouch"
    capf.set_pending(cluster, MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    (refused,) = entries(phone, "capf")
    assert refused.decision == "rejected" and refused.rule == "item 20"
    assert expected in refused.reason
    assert phone.lsc() is None
    assert record(lab).capf is not None and record(lab).capf_result is None  # nothing exchanged


# --- key types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer_version", [None, (1, 1)])
def test_ec_lsc_needs_an_itl_signed_with_signer_version_1_1(
    signer_version: tuple[int, int] | None,
) -> None:
    lab = new_lab()
    cluster = lab.cluster()
    backend = serving_itl(lab, served_itl(cluster, signer_version=signer_version))
    capf.set_pending(
        cluster, MAC, CapfOperation.INSTALL, CapfAuth.NULL, key_type=CapfKeyType.EC_P256, now=NOW
    )
    phone = new_phone(lab, backend)
    assert phone.boot() is State.REGISTERED
    outcome = entries(phone, "capf")[-1]
    lsc = phone.lsc()
    if signer_version is None:
        assert outcome.decision == "rejected" and "signer version 1.1" in outcome.reason
        assert lsc is None and record(lab).capf is not None
    else:
        assert outcome.decision == "accepted" and "generated an EC P-256 key" in outcome.reason
        assert lsc is not None and isinstance(lsc.key, ec.EllipticCurvePrivateKey)


# --- delete ---------------------------------------------------------------------------------------


def test_delete_removes_the_lsc_and_the_encrypted_config_becomes_unreadable() -> None:
    lab = new_lab(device=Device(MAC, encrypt_config=True))
    phone = new_phone(lab)
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    assert phone.boot() is State.REGISTERED and phone.lsc() is not None
    capf.set_pending(lab.cluster(), MAC, CapfOperation.DELETE, CapfAuth.LSC, now=NOW)
    mark = len(phone.trace)
    assert phone.reset() is State.REGISTERED  # on the configuration it kept
    assert "deleted its LSC" in entries(phone, "capf", mark)[-1].reason
    assert phone.lsc() is None and phone.flash.read(names.LSC_CERT) is None
    assert record(lab).certificate is None
    assert any("cannot read its configuration" in t.reason for t in phone.trace[mark:])


# --- what reaches the flash -----------------------------------------------------------------------


class CountingFlash(MemoryFlash):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, name: str, data: bytes) -> None:
        self.writes.append(name)
        super().write(name, data)


def test_lsc_is_stored_in_one_atomic_write_with_its_key() -> None:
    lab = new_lab()
    flash = CountingFlash()
    phone = new_phone(lab, flash=flash)
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    assert phone.boot() is State.REGISTERED
    assert flash.writes.count(names.LSC_CERT) == 1 and names.LSC_KEY not in flash.writes
    blob = flash.read(names.LSC_CERT)
    assert blob is not None and b"BEGIN CERTIFICATE" in blob and b"PRIVATE KEY" in blob


def test_lsc_survives_on_a_flash_folder_and_phone_show_lists_mic_and_lsc(tmp_path: Path) -> None:
    lab = new_lab()
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = new_phone(lab, flash=DirectoryFlash(tmp_path))
    assert phone.boot() is State.REGISTERED
    lsc = phone.lsc()
    assert lsc is not None
    again = new_phone(lab, flash=DirectoryFlash(tmp_path))
    assert again.identity().certificate == lsc.certificate
    view = flash_view(DirectoryFlash(tmp_path))
    # One DN format in all output (issue 18): CUCM's, as in its ITL and certificate pages.
    capf_cn = lab.cluster().capf.certificate.subject.rfc4514_string().split(",")[0]
    assert view["lsc"]["subject"] == f"CN={NAME};OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"
    assert view["lsc"]["issuer"] == f"{capf_cn};OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"
    assert view["lsc"]["serial"] and view["lsc"]["not_after"].startswith("2031-")
    assert view["mic"]["subject"].startswith(f"CN=CP-8841-{NAME};")
    assert "Manufacturing" in view["mic"]["issuer"] or view["mic"]["issuer"]


def test_an_lsc_written_as_two_files_is_still_read() -> None:
    lab = new_lab()
    phone = new_phone(lab)
    key = pooled_keys().rsa(2048)
    certificate = issue(lab.cluster().capf, NAME, key.public_key(), now=NOW)
    phone.flash.write(names.LSC_CERT, cert_to_pem(certificate))
    assert phone.lsc() is None  # no key anywhere: not an identity
    phone.flash.write(names.LSC_KEY, key_to_pem(key, None, allow_unencrypted=True))
    found = phone.lsc()
    assert found is not None and found.certificate == certificate
    phone.flash.write(
        names.LSC_KEY, key_to_pem(pooled_keys().rsa(2048), None, allow_unencrypted=True)
    )
    assert phone.lsc() is None  # a key of another certificate: the phone falls back to its MIC
    assert phone.identity().certificate == phone.mic().certificate


class NoCapf(MemoryBackend):
    def capf_exchange(self, host: str, port: int, *args: object, **kw: object) -> None:
        raise NetworkError(f"connection to {host}:{port} refused")


def test_capf_that_does_not_answer_leaves_the_operation_pending() -> None:
    lab = new_lab()
    capf.set_pending(lab.cluster(), MAC, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW)
    phone = new_phone(lab, NoCapf(lab, clock=clock))
    assert phone.boot() is State.REGISTERED
    (failed,) = entries(phone, "capf")
    assert failed.decision == "failed" and "refused" in failed.reason
    assert failed.server == lab.cluster().publisher.hostname
    assert phone.lsc() is None and record(lab).capf is not None


def test_an_offline_folder_has_no_capf(tmp_path: Path) -> None:
    def refuse(certificate: x509.Certificate) -> str | None:
        raise AssertionError("nothing to check: no server")

    with pytest.raises(NetworkError, match="CAPF cucm1:3804 cannot be reached"):
        DirectoryBackend(tmp_path).capf_exchange(
            "cucm1", 3804, NoConversation(), refuse, requester=Requester(MAC, "8841")
        )


class NoConversation:
    finished = False

    def receive(self, frame: CapfFrame) -> list[CapfFrame]:
        raise AssertionError("no frame arrives from an offline folder")

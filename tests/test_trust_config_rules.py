"""Config file names and acceptance (items 5, 6, 14-16, 20), decision by decision, word for word.

Every rule, reason and status a user reads in the trace is compared whole: the rule names come
from phone-behaviour.md, the status text from the 79xx admin guides ("File auth error <file>",
item 13/47), the pre-SBD default-config rule from the Cisco seed text (Autoregistration).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from keypool import pooled_keys
from trustkit import TIMESTAMP, FakeTvs, Kit, key_of, no_tvs, signer

from phone.formats import Role, TrustList, build_signed, build_trust_list, record_from_certificate
from phone.formats.signed import build_encrypted
from phone.formats.tlv import leaf
from phone.formats.trustlist import Record, RecordTag, _record
from phone.pki import Identity, self_signed
from phone.trust.config import config_names, default_config_names, evaluate_config
from phone.trust.decision import accepted, rejected

MAC = "001122334455"
NAME = f"SEP{MAC}.cnf.xml.sgn"
ENC_NAME = f"SEP{MAC}.cnf.xml.enc.sgn"
# 79xx admin guides: "File auth error" followed by the file name (item 13, item 47).
AUTH_ERROR = f"File auth error {NAME}"
# The subject attributes of every vphone lab certificate (phone.pki defaults), CUCM-style.
LAB = "OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"
# The signature error of a .sgn whose bytes changed after signing (phone.formats.signature).
BAD_SIGNATURE = (
    "SHA-1 RSA signature does not match the file's contents: the file was changed after "
    "signing, or signed by another key"
)


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.make("rules1")


@pytest.fixture(scope="module")
def other() -> Kit:
    return Kit.make("rules2")


@pytest.fixture(scope="module")
def phone_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The phone's LSC key and another phone's key."""
    return pooled_keys().rsa(2048), pooled_keys().rsa(2048)


def signer_text(ident: Identity, cn: str) -> str:
    """How a reason names a .sgn signer: serial and the header's signer name."""
    return f"signer serial {key_of(ident)[1].hex()} ('CN={cn};{LAB}')"


def sast_only_ctl(kit: Kit) -> TrustList:
    """A CTL holding only the ITLRecovery SAST record: no TFTP certificate, no CAPF."""
    return build_trust_list(
        [record_from_certificate(kit.itlrecovery.certificate, Role.SAST)],
        signer(kit.itlrecovery),
        filename="CTLFile.tlv",
        timestamp=TIMESTAMP,
    )


def itl_with(kit: Kit, *extra: Record) -> TrustList:
    """An ITL of the SAST and TVS records plus ``extra`` records (no TFTP record of its own)."""
    records = [
        record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
        record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
        *extra,
    ]
    return build_trust_list(records, signer(kit.itlrecovery), timestamp=TIMESTAMP)


def record_with_certificate_bytes(
    certificate: x509.Certificate, role: int, der: bytes | None
) -> Record:
    """A record naming ``certificate`` (issuer, serial) whose tag 9 holds ``der`` (or nothing)."""
    elements = [
        e
        for e in record_from_certificate(certificate, role).elements
        if e.tag not in (RecordTag.RECORD_LENGTH, RecordTag.CERTIFICATE)
    ]
    if der is not None:
        elements.append(leaf(RecordTag.CERTIFICATE, der))
    return _record(elements)


# --- item 5: which name the phone asks for ----------------------------------------------------


def test_item5_config_name_carries_the_mac_in_upper_case(kit: Kit) -> None:
    # Item 2/5: MAC AABBCCDDEEFF -> SEPAABBCCDDEEFF...; the phone names itself in upper case.
    assert config_names("aabbccddeeff", ctl=None, itl=None, encrypted=False) == (
        "SEPAABBCCDDEEFF.cnf.xml",
    )
    assert config_names("aabbccddeeff", ctl=None, itl=kit.itl(), encrypted=False) == (
        "SEPAABBCCDDEEFF.cnf.xml.sgn",
    )


def test_item5_a_ctl_alone_with_a_tftp_certificate_asks_for_the_signed_config(kit: Kit) -> None:
    # Item 5: "an installed CTL or ITL containing a TFTP-role certificate" -> .sgn / .enc.sgn.
    assert config_names(MAC, ctl=kit.ctl(), itl=None, encrypted=False) == (NAME,)
    assert config_names(MAC, ctl=kit.ctl(), itl=None, encrypted=True) == (ENC_NAME,)
    assert config_names(MAC, ctl=sast_only_ctl(kit), itl=None, encrypted=False) == (
        f"SEP{MAC}.cnf.xml",
    )


def test_item6_default_config_signed_with_a_ctl_alone(kit: Kit) -> None:
    # Item 6 / seed: "The default configuration file will also be signed" (SBD phones) ...
    assert default_config_names(ctl=kit.ctl(), itl=None, security_by_default=True) == (
        "XMLDefault.cnf.xml.sgn",
    )
    assert default_config_names(ctl=None, itl=kit.itl(), security_by_default=True) == (
        "XMLDefault.cnf.xml.sgn",
    )
    # ... "phones that do not support Security by Default will be served a nonsigned" one.
    assert default_config_names(ctl=kit.ctl(), itl=kit.itl(), security_by_default=False) == (
        "XMLDefault.cnf.xml",
    )
    assert default_config_names(ctl=None, itl=None, security_by_default=True) == (
        "XMLDefault.cnf.xml",
    )


# --- item 6 / seed: the unsigned default config of a phone without SBD -----------------------


def test_item6_phone_without_sbd_takes_the_nonsigned_default_config_word_for_word(
    kit: Kit,
) -> None:
    # Seed (Autoregistration): "Cisco IP Phones that do not support Security by Default will be
    # served a nonsigned default configuration file" -- even with both lists installed.
    outcome = evaluate_config(
        b"<device/>",
        name="XMLDefault.cnf.xml",
        ctl=kit.ctl(),
        itl=kit.itl(),
        tvs=no_tvs,
        pre_sbd_default=True,
    )
    assert outcome.decision == accepted(
        "seed",
        "XMLDefault.cnf.xml: a phone without Security by Default is served a nonsigned "
        "default configuration file (seed, Autoregistration)",
    )
    assert outcome.xml == b"<device/>"


def test_item14_signed_default_config_of_a_phone_without_sbd_is_still_verified(kit: Kit) -> None:
    # The seed exception is for the nonsigned file only: a .sgn is verified (item 14).
    name = "XMLDefault.cnf.xml.sgn"
    outcome = evaluate_config(
        b"<device/>", name=name, ctl=None, itl=kit.itl(), tvs=no_tvs, pre_sbd_default=True
    )
    assert outcome.decision.verdict == "rejected"
    assert outcome.decision.rule == "item 14"
    assert outcome.decision.status == f"File auth error {name}"
    assert outcome.xml is None


# --- items 14, 15: rejections carry the rule and the "File auth error" status ----------------


def test_item15_refused_unsigned_config_shows_file_auth_error(kit: Kit) -> None:
    name = f"SEP{MAC}.cnf.xml"
    outcome = evaluate_config(b"<device/>", name=name, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision == rejected(
        "item 15",
        f"{name}: a trust list with a TFTP certificate is installed: unsigned configs are refused",
        f"File auth error {name}",
    )
    assert outcome.xml is None


def test_item14_signed_config_that_does_not_parse_is_rejected_word_for_word(kit: Kit) -> None:
    outcome = evaluate_config(b"\x01\x00", name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    decision = outcome.decision
    assert (decision.verdict, decision.rule, decision.status) == (
        "rejected",
        "item 14",
        AUTH_ERROR,
    )
    assert decision.reason.startswith(f"{NAME} does not parse: at byte ")
    assert outcome.xml is None


def test_item14_config_signed_as_another_phones_file_is_rejected_word_for_word(kit: Kit) -> None:
    outcome = evaluate_config(
        kit.config("AABBCCDDEEFF"), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs
    )
    assert outcome.decision == rejected(
        "item 14",
        f"{NAME} was signed as 'SEPAABBCCDDEEFF.cnf.xml.sgn': it is another file",
        AUTH_ERROR,
    )


def test_item14_name_asked_with_a_leading_slash_is_the_same_file(kit: Kit) -> None:
    # A TFTP path "/SEP....cnf.xml.sgn" names the file the header calls "SEP....cnf.xml.sgn".
    outcome = evaluate_config(kit.config(MAC), name=f"/{NAME}", ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.verdict == "accepted"
    assert outcome.xml == b"<device/>"


def test_item14_tftp_record_of_the_itl_accepts_word_for_word(kit: Kit) -> None:
    outcome = evaluate_config(kit.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision == accepted(
        "item 14",
        f"{NAME}: {signer_text(kit.callmanager, 'cucm1.rules1.lab')} is the TFTP record of the "
        "installed ITL",
    )


def test_item14_tampered_config_names_the_record_and_the_signature_error(kit: Kit) -> None:
    data = bytearray(kit.config(MAC))
    data[-3] ^= 0x20
    outcome = evaluate_config(bytes(data), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision == rejected(
        "item 14",
        f"{NAME}: {signer_text(kit.callmanager, 'cucm1.rules1.lab')} is the TFTP record of the "
        f"installed ITL, but {BAD_SIGNATURE}",
        AUTH_ERROR,
    )


def test_item14_tftp_record_without_a_certificate_rejects(kit: Kit) -> None:
    # A TFTP record naming the signer (issuer, serial) but carrying no certificate (tag 9).
    bare = record_with_certificate_bytes(kit.callmanager.certificate, Role.TFTP, None)
    outcome = evaluate_config(
        kit.config(MAC), name=NAME, ctl=None, itl=itl_with(kit, bare), tvs=no_tvs
    )
    assert outcome.decision == rejected(
        "item 14", f"{NAME}: ITL record for the signer has no certificate", AUTH_ERROR
    )


def test_item14_itl_tftp_record_is_found_past_a_ctl_without_one(kit: Kit) -> None:
    # The CTL holds no TFTP record for the signer: the ITL's TFTP record still decides.
    outcome = evaluate_config(
        kit.config(MAC), name=NAME, ctl=sast_only_ctl(kit), itl=kit.itl(), tvs=no_tvs
    )
    assert outcome.decision.verdict == "accepted"
    assert outcome.decision.rule == "item 14"


# --- items 14, 20, 24: a signer the lists do not hold as TFTP --------------------------------


def test_items14_24_unknown_signer_with_ctl_and_itl_fails_closed_word_for_word(
    kit: Kit, other: Kit
) -> None:
    outcome = evaluate_config(
        other.config(MAC), name=NAME, ctl=kit.ctl(), itl=kit.itl(), tvs=no_tvs
    )
    assert outcome.decision == rejected(
        "items 14, 24",
        f"config rejected: {signer_text(other.callmanager, 'cucm1.rules2.lab')} is not a TFTP "
        "record of the installed CTL or ITL; TVS unreachable (fail closed)",
        AUTH_ERROR,
    )


def test_items14_24_unknown_signer_with_itl_only_names_the_itl(kit: Kit, other: Kit) -> None:
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=no_tvs)
    assert outcome.decision.reason == (
        f"config rejected: {signer_text(other.callmanager, 'cucm1.rules2.lab')} is not a TFTP "
        "record of the installed ITL; TVS unreachable (fail closed)"
    )


def test_item14_tvs_roles_without_a_tftp_role_reject_word_for_word(kit: Kit, other: Kit) -> None:
    # Role code 4 is CAPF (trust-file-formats.md section 5): not a role that signs TFTP files.
    tvs = FakeTvs({key_of(other.callmanager): (other.callmanager, frozenset({4}))})
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision == rejected(
        "item 14",
        f"config rejected: {signer_text(other.callmanager, 'cucm1.rules2.lab')} is not a TFTP "
        "record of the installed ITL; TVS vouched, but not for a TFTP role (roles [4])",
        AUTH_ERROR,
    )


def test_item14_tvs_vouched_certificate_that_does_not_verify_rejects(kit: Kit, other: Kit) -> None:
    # TVS answers for the signer's issuer/serial with a certificate whose key did not sign.
    tvs = FakeTvs({key_of(other.callmanager): (kit.tvs, frozenset({Role.TFTP}))})
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs)
    assert outcome.decision == rejected(
        "item 14",
        f"config rejected: {signer_text(other.callmanager, 'cucm1.rules2.lab')} is not a TFTP "
        f"record of the installed ITL; TVS vouched for the signer but {BAD_SIGNATURE}",
        AUTH_ERROR,
    )


def test_items14_20_file_vouched_by_tvs_says_why_word_for_word(kit: Kit, other: Kit) -> None:
    tvs = FakeTvs.knowing((other.callmanager, frozenset({Role.CCM})))
    outcome = evaluate_config(
        other.config(MAC), name=NAME, ctl=None, itl=kit.itl(), tvs=tvs, what="file"
    )
    assert outcome.decision == accepted(
        "items 14, 20",
        f"{NAME}: {signer_text(other.callmanager, 'cucm1.rules2.lab')} is not a TFTP record of "
        "the installed ITL, but TVS vouched",
    )
    assert outcome.xml == b"<device/>"


def test_item20_signer_held_only_in_the_ctl_is_sent_as_verify(kit: Kit) -> None:
    # Signed by the CAPF certificate, which only the CTL holds (CAPF record): VERIFY with it.
    data = build_signed(b"<device/>", signer(kit.capf), filename=NAME, timestamp=TIMESTAMP)
    tvs = FakeTvs.knowing((kit.capf, frozenset({Role.TFTP})))
    outcome = evaluate_config(data.encode(), name=NAME, ctl=kit.ctl(), itl=None, tvs=tvs)
    assert outcome.decision.verdict == "accepted"
    assert tvs.held == [kit.capf.certificate]


def test_item20_a_namesake_certificate_in_the_lists_is_not_the_signer(kit: Kit, other: Kit) -> None:
    # Same issuer as the signer, another serial: the phone does not hold the signer, so it asks
    # with issuer and serial only (QUERY), never with the namesake's certificate.
    wanted = other.callmanager.certificate
    namesake = self_signed(
        "cucm1.rules2.lab",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        key=kit.capf.key,
        serial=wanted.serial_number + 1,
    ).certificate
    assert namesake.issuer == wanted.issuer
    itl = itl_with(kit, record_from_certificate(namesake, Role.CAPF))
    tvs = FakeTvs.knowing((other.callmanager, frozenset({Role.CCM})))
    outcome = evaluate_config(other.config(MAC), name=NAME, ctl=None, itl=itl, tvs=tvs)
    assert tvs.held == [None]
    assert outcome.decision.verdict == "accepted"


def test_item20_unreadable_record_of_the_signer_is_skipped_for_a_later_one(kit: Kit) -> None:
    # Two records name the TVS certificate (issuer, serial); the first one's tag 9 is not DER
    # X.509: the phone takes the certificate of the second and sends it in a VERIFY.
    broken = record_with_certificate_bytes(kit.tvs.certificate, Role.CAPF, b"\x30\x03\x02\x01\x00")
    records = [
        record_from_certificate(kit.itlrecovery.certificate, Role.SAST),
        broken,
        record_from_certificate(kit.tvs.certificate, Role.TVS, dns_name="tvs1"),
    ]
    itl = build_trust_list(records, signer(kit.itlrecovery), timestamp=TIMESTAMP)
    data = build_signed(b"<device/>", signer(kit.tvs), filename=NAME, timestamp=TIMESTAMP)
    tvs = FakeTvs.knowing((kit.tvs, frozenset({Role.TFTP})))
    evaluate_config(data.encode(), name=NAME, ctl=None, itl=itl, tvs=tvs)
    assert tvs.held == [kit.tvs.certificate]


# --- item 14: encrypted configs (trust-file-formats.md section 8) ----------------------------


def _encrypted(kit: Kit, recipient: rsa.RSAPrivateKey) -> bytes:
    return build_encrypted(
        b"<device><full/></device>",
        signer(kit.callmanager),
        recipient.public_key(),
        filename=ENC_NAME,
        timestamp=TIMESTAMP,
        aes_key=bytes(range(16)),
        iv=bytes(range(16, 32)),
    ).encode()


def test_item14_encrypted_config_is_decrypted_with_the_phone_key(
    kit: Kit, phone_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    mine, _ = phone_keys
    outcome = evaluate_config(
        _encrypted(kit, mine), name=ENC_NAME, ctl=None, itl=kit.itl(), tvs=no_tvs, private_key=mine
    )
    assert outcome.decision == accepted(
        "item 14",
        f"{ENC_NAME}: {signer_text(kit.callmanager, 'cucm1.rules1.lab')} is the TFTP record of "
        "the installed ITL",
    )
    assert outcome.xml == b"<device><full/></device>"


def test_item14_encrypted_config_without_a_phone_key_is_rejected_word_for_word(
    kit: Kit, phone_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    mine, _ = phone_keys
    outcome = evaluate_config(
        _encrypted(kit, mine), name=ENC_NAME, ctl=None, itl=kit.itl(), tvs=no_tvs
    )
    assert outcome.decision == rejected(
        "item 14",
        f"{ENC_NAME} is encrypted but the phone has no certificate key to decrypt it "
        "(enroll an LSC through CAPF)",
        f"File auth error {ENC_NAME}",
    )
    assert outcome.xml is None


def test_item14_encrypted_config_for_another_key_is_rejected_word_for_word(
    kit: Kit, phone_keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]
) -> None:
    mine, another = phone_keys
    outcome = evaluate_config(
        _encrypted(kit, another),
        name=ENC_NAME,
        ctl=None,
        itl=kit.itl(),
        tvs=no_tvs,
        private_key=mine,
    )
    decision = outcome.decision
    assert (decision.verdict, decision.rule, decision.status) == (
        "rejected",
        "item 14",
        f"File auth error {ENC_NAME}",
    )
    # RSA PKCS#1 v1.5 with implicit rejection (OpenSSL 3.2+) unwraps a wrong key into random
    # bytes of a random length rather than failing: any length but 16 reads as "wrapped for
    # another certificate"; a random 16 (about 1 in 200) fails the plaintext digest instead.
    assert decision.reason in (
        f"{ENC_NAME}: the config key is wrapped for another certificate: this phone's key "
        "cannot unwrap it to a 16-byte AES key (re-enroll the phone's LSC or fix the device's "
        "encryption key)",
        f"{ENC_NAME}: decrypted config does not match its digest: wrong key or tampered",
    ), decision.reason
    assert outcome.xml is None

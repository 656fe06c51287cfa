"""Which configuration file a phone asks for, and whether it accepts it (items 5, 6, 14-16).

Pure: bytes, the installed lists, a TVS oracle and the phone's own key in; a decision and the
verified XML bytes out. The device layer parses the XML and keeps the last good config.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.errors import DecryptionError, FormatError, SignatureError
from phone.formats.header import Header as SignedHeader
from phone.formats.signed import SignedFile, decrypt, parse_signed
from phone.formats.trustlist import Role, TrustList, find_by_signer
from phone.trust.decision import Decision, Status, accepted, rejected
from phone.trust.lists import TvsAsk, has_tftp_certificate, is_empty_itl

# Roles whose certificate may sign TFTP files (items 14 and 19). CCM is accepted from TVS only:
# TVS answers CCM for certificates in its CallManager-trust store, which is how a migrated
# phone learns the other cluster's CallManager (item 34/35).
_LOCAL_SIGNER_ROLES = (Role.TFTP, Role.CCM_TFTP)
_TVS_SIGNER_ROLES = frozenset({Role.TFTP, Role.CCM_TFTP, Role.CCM})


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    """A decision about a downloaded config file, with its verified XML when accepted."""

    decision: Decision
    xml: bytes | None = None


def config_names(
    mac: str, *, ctl: TrustList | None, itl: TrustList | None, encrypted: bool
) -> tuple[str, ...]:
    """The names a phone asks for, in order (item 5).

    With a TFTP-role certificate in the CTL or ITL the phone asks for the signed file (or the
    encrypted one once its config says ``encrConfig``); without one, for the plain XML. A phone
    with a non-empty ITL never falls back to the unsigned file (item 15).
    """
    base = f"SEP{mac.upper()}.cnf.xml"
    if has_tftp_certificate(ctl, itl):
        return (f"{base}.enc.sgn",) if encrypted else (f"{base}.sgn",)
    return (base,)


def default_config_names(
    *, ctl: TrustList | None, itl: TrustList | None, security_by_default: bool
) -> tuple[str, ...]:
    """Autoregistration fallback (item 6): signed when the phone checks signatures.

    Seed (Autoregistration): "Cisco IP Phones that do not support Security by Default will be
    served a nonsigned default configuration file": such a phone asks for the plain name even
    with a CTL installed, and so gets the plain file from a server that cannot know its model.
    """
    if security_by_default and has_tftp_certificate(ctl, itl):
        return ("XMLDefault.cnf.xml.sgn",)
    return ("XMLDefault.cnf.xml",)


def _unsigned_allowed(ctl: TrustList | None, itl: TrustList | None) -> tuple[bool, str, str]:
    if ctl is None and itl is None:
        return True, "item 5", "no trust list installed, so the phone takes an unsigned config"
    if ctl is None and itl is not None and is_empty_itl(itl):
        return (
            True,
            "item 16",
            "the installed ITL is the empty rollback ITL: any unsigned config is accepted",
        )
    if not has_tftp_certificate(ctl, itl):
        return (
            True,
            "item 5",
            "no TFTP certificate in the installed lists: unsigned config accepted",
        )
    return (
        False,
        "item 15",
        "a trust list with a TFTP certificate is installed: unsigned configs are refused",
    )


def evaluate_config(
    data: bytes,
    *,
    name: str,
    ctl: TrustList | None,
    itl: TrustList | None,
    tvs: TvsAsk,
    private_key: rsa.RSAPrivateKey | None = None,
    what: str = "config",
    pre_sbd_default: bool = False,
) -> ConfigOutcome:
    """Decide whether to accept ``data``, downloaded as ``name``.

    The same rule serves the other signed TFTP files of item 8 (ring lists, locales):
    ``what`` names the kind of file in the reasons. ``pre_sbd_default`` is set for the default
    config of a phone without Security by Default, which takes it unsigned (seed).
    """
    failed = f"{Status.FILE_AUTH_ERROR} {name}"
    if pre_sbd_default and not name.endswith(".sgn"):
        return ConfigOutcome(
            accepted(
                "seed",
                f"{name}: a phone without Security by Default is served a nonsigned default "
                "configuration file (seed, Autoregistration)",
            ),
            data,
        )
    if not name.endswith(".sgn"):
        allowed, rule, why = _unsigned_allowed(ctl, itl)
        if allowed:
            return ConfigOutcome(accepted(rule, f"{name}: {why}"), data)
        return ConfigOutcome(rejected(rule, f"{name}: {why}", failed))
    try:
        signed = parse_signed(data)
    except FormatError as exc:
        return ConfigOutcome(rejected("item 14", f"{name} does not parse: {exc}", failed))
    # The signed header names the file it was signed as; a file signed for another name (say
    # another phone's config) must not be accepted in place of this one [G: not documented,
    # but otherwise any signed config of the cluster could be substituted on the path].
    if signed.header.filename.lower() != name.lower().lstrip("/"):
        return ConfigOutcome(
            rejected(
                "item 14",
                f"{name} was signed as {signed.header.filename!r}: it is another file",
                failed,
            )
        )
    problem, rule, how = _authenticate(signed, name, ctl, itl, tvs, what=what)
    if problem is not None:
        return ConfigOutcome(rejected(rule, problem, failed))
    payload = signed.payload
    if signed.encrypted:
        if private_key is None:
            return ConfigOutcome(
                rejected(
                    "item 14",
                    f"{name} is encrypted but the phone has no certificate key to decrypt it "
                    "(enroll an LSC through CAPF)",
                    failed,
                )
            )
        try:
            payload = decrypt(signed, private_key)
        except (DecryptionError, FormatError) as exc:
            return ConfigOutcome(rejected("item 14", f"{name}: {exc}", failed))
    return ConfigOutcome(accepted(rule, f"{name}: {how}"), payload)


def _held_certificate(
    header: SignedHeader, ctl: TrustList | None, itl: TrustList | None
) -> x509.Certificate | None:
    """A certificate of the installed lists, whatever its role, that is the ``.sgn`` signer."""
    for tl in (ctl, itl):
        if tl is None:
            continue
        for record in tl.records:
            if record.serial != header.signer_serial or record.issuer != header.signer_issuer:
                continue
            try:
                certificate = record.certificate()
            except FormatError:
                continue
            if certificate is not None:
                return certificate
    return None


def _authenticate(
    signed: SignedFile,
    name: str,
    ctl: TrustList | None,
    itl: TrustList | None,
    tvs: TvsAsk,
    *,
    what: str,
) -> tuple[str | None, str, str]:
    """(problem or None, rule, how it was authenticated)."""
    header = signed.header
    signer = f"signer serial {header.serial_hex} ({header.signer_name!r})"
    for tl in (ctl, itl):
        if tl is None:
            continue
        record = find_by_signer(tl.records, header, _LOCAL_SIGNER_ROLES)
        if record is None:
            continue
        try:
            certificate = record.certificate()
            if certificate is None:
                return f"{name}: {tl.kind} record for the signer has no certificate", "item 14", ""
            signed.verify(certificate)
        except (SignatureError, FormatError) as exc:
            return (
                f"{name}: {signer} is the {record.role_label} record of the installed {tl.kind}, "
                f"but {exc}",
                "item 14",
                "",
            )
        return (
            None,
            "item 14",
            f"{signer} is the {record.role_label} record of the installed {tl.kind}",
        )
    local = f"{signer} is not a TFTP record of the installed {'CTL or ITL' if ctl else 'ITL'}"
    held = _held_certificate(header, ctl, itl)
    # Holding the signer's certificate (a record of another role), the phone asks with VERIFY
    # as tvsd implements it; knowing only issuer and serial, with the emulated QUERY [G]
    # (phone.trust.tvs, tvs-capf-wire.md 1.3).
    outcome = (
        tvs(header.signer_issuer, header.signer_serial, held)
        if held is not None
        else tvs(header.signer_issuer, header.signer_serial)
    )
    if not outcome.valid:
        return f"{what} rejected: {local}; {outcome.reason}", "items 14, 24", ""
    if not outcome.roles & _TVS_SIGNER_ROLES:
        return (
            f"{what} rejected: {local}; {outcome.reason}, but not for a TFTP role "
            f"(roles {sorted(outcome.roles)})",
            "item 14",
            "",
        )
    try:
        assert outcome.certificate is not None  # a valid outcome always carries it
        signed.verify(outcome.certificate)
    except SignatureError as exc:
        return f"{what} rejected: {local}; TVS vouched for the signer but {exc}", "item 14", ""
    return None, "items 14, 20", f"{local}, but {outcome.reason}"

"""Which CTL and ITL a phone installs (phone-behaviour items 9-13, 16-18, 20, 26-28, 35).

Pure: bytes, the lists already on the phone and a TVS oracle in; a decision and the list to
install out. The phone never installs anything this module did not accept, and a rejection
never touches the installed lists (item 13).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cryptography import x509

from phone.errors import FormatError, SignatureError
from phone.formats.trustlist import (
    Record,
    Role,
    TrustList,
    find_by_signer,
    parse_trust_list,
    verify_self_signed,
    verify_with_certificate,
)
from phone.trust.decision import Decision, Status, Verdict, accepted, rejected
from phone.trust.tvs import TvsOutcome

MAX_CERTIFICATES = 39  # seed, Interactions and Restrictions; item 18
MAX_BYTES = 64 * 1024  # "exceeds 64 kilobytes" (seed)
MAX_SAST = 2  # item 12
SUPPORTED_MAJOR = (
    1  # item 17: versions 1.0-1.2 parse; a 10.3 phone verified a 1.2 it "knew only upto 1.1"
)


@functools.lru_cache(maxsize=64)
def parse_shared(data: bytes) -> TrustList:
    """Parse a trust list, sharing the (immutable) result between phones that hold the same
    bytes: a fleet of 10,000 phones on one cluster keeps one parsed ITL, not 10,000."""
    return parse_trust_list(data)


class TvsAsk(Protocol):
    """Ask TVS about the certificate ``issuer``/``serial``; pass ``certificate`` when the phone
    holds it, so that the question is a VERIFY as tvsd implements it (phone.trust.tvs)."""

    def __call__(
        self, issuer: str, serial: bytes, certificate: x509.Certificate | None = None
    ) -> TvsOutcome: ...


"""Ask TVS about the certificate with (issuer name, serial bytes)."""

_TFTP_ROLES = frozenset({Role.TFTP, Role.CCM_TFTP})


class ListKind(StrEnum):
    """Which of the two trust lists a file is."""

    CTL = "CTL"
    ITL = "ITL"


@dataclass(frozen=True, slots=True)
class ListOutcome:
    """A decision about a downloaded trust list, with the list to install when accepted."""

    decision: Decision
    trust_list: TrustList | None = None
    tvs: TvsOutcome | None = None
    fatal: bool = False  # item 18: the phone cannot load this list and registration fails


def is_empty_itl(itl: TrustList) -> bool:
    """True for the rollback ITL: no TFTP or TVS certificates at all (item 16, seed).

    The seed calls it an ITL "that contains empty TVS and TFTP certificate sections"; whatever
    else it holds, a phone with it installed accepts any config and any next ITL.
    """
    return not any(
        r.certificate_der is not None and (r.role in _TFTP_ROLES or r.role == Role.TVS)
        for r in itl.records
    )


def has_tftp_certificate(ctl: TrustList | None, itl: TrustList | None) -> bool:
    """Whether the installed lists hold a TFTP-role certificate (item 5: ask for ``.sgn``)."""
    return any(
        r.certificate_der is not None and r.role in _TFTP_ROLES
        for tl in (ctl, itl)
        if tl is not None
        for r in tl.records
    )


def _failure_status(kind: ListKind) -> str:
    return Status.CTL_UPDATE_FAILED if kind is ListKind.CTL else Status.TRUST_LIST_UPDATE_FAILED


def _check_signature(
    new: TrustList, certificate: x509.Certificate | None, record_text: str
) -> str | None:
    """None when ``new`` verifies with ``certificate``, else the reason."""
    if certificate is None:
        return f"{record_text} carries no certificate to check the signature with"
    try:
        verify_with_certificate(new, certificate)
    except SignatureError as exc:
        return f"signature check with {record_text} failed: {exc}"
    return None


def _record_certificate(record: Record) -> x509.Certificate | None:
    try:
        return record.certificate()
    except FormatError:
        return None


def evaluate_trust_list(
    data: bytes,
    *,
    name: str,
    kind: ListKind,
    installed_ctl: TrustList | None,
    installed_itl: TrustList | None,
    tvs: TvsAsk,
) -> ListOutcome:
    """Decide whether to install ``data`` (downloaded as ``name``) as the phone's CTL or ITL."""
    failed = _failure_status(kind)
    try:
        new = parse_shared(data)
    except FormatError as exc:
        return ListOutcome(rejected("item 17", f"{name} does not parse: {exc}", failed))
    if new.is_ctl != (kind is ListKind.CTL):
        return ListOutcome(
            rejected(
                "item 2",
                f"{name} was requested as the {kind} but its header names {new.header.filename!r}",
                failed,
            )
        )
    if new.header.version[0] != SUPPORTED_MAJOR:
        return ListOutcome(
            rejected(
                "item 17",
                f"header version {new.header.version_text} is not a 1.x trust list",
                failed,
            )
        )
    count = new.certificate_count()
    if count > MAX_CERTIFICATES or len(data) > MAX_BYTES:
        return ListOutcome(
            rejected(
                "item 18",
                f"{name} holds {count} certificates in {len(data)} bytes; a phone loads at most "
                f"{MAX_CERTIFICATES} certificates / 64 KB, so registration will fail",
                failed,
            ),
            fatal=True,
        )
    sast = len(new.with_role(Role.SAST))
    if sast > MAX_SAST:
        return ListOutcome(
            rejected("item 12", f"{name} holds {sast} SAST records; at most {MAX_SAST}", failed)
        )
    installed = installed_ctl if kind is ListKind.CTL else installed_itl
    if installed is not None and installed.encode() == data:
        return ListOutcome(
            Decision(Verdict.UNCHANGED, "item 3", f"{name} is the {kind} already installed"),
            installed,
        )
    if kind is ListKind.CTL:
        return _evaluate_ctl(new, name, installed_ctl, tvs)
    return _evaluate_itl(new, name, installed_ctl, installed_itl, tvs)


def _signer_text(new: TrustList) -> str:
    h = new.header
    return f"signer {h.signer_name!r} (serial {h.serial_hex}, issuer {h.signer_issuer!r})"


def _evaluate_ctl(
    new: TrustList, name: str, installed: TrustList | None, tvs: TvsAsk
) -> ListOutcome:
    if installed is None:
        # Item 10: leap of faith for the first CTL.
        return ListOutcome(
            accepted(
                "item 10",
                f"no CTL on the phone: {name} imprinted (leap of faith)",
                Status.CTL_INSTALLED,
            ),
            new,
        )
    return _update(
        new, name, installed, kind=ListKind.CTL, roles=(Role.SAST,), tvs=tvs, via_tvs=True
    )


def _evaluate_itl(
    new: TrustList,
    name: str,
    ctl: TrustList | None,
    itl: TrustList | None,
    tvs: TvsAsk,
) -> ListOutcome:
    if ctl is not None:
        # Item 11: with a CTL the ITL must verify against the CTL, never on first use; item 35:
        # "verify new ITL against new CTL without TVS".
        return _update(
            new,
            name,
            ctl,
            kind=ListKind.ITL,
            roles=(Role.SAST, Role.CCM_TFTP, Role.TFTP),
            tvs=tvs,
            via_tvs=False,
        )
    if itl is None:
        check = verify_self_signed(new)
        return ListOutcome(
            accepted(
                "item 9",
                f"no CTL and no ITL on the phone: {name} trusted on first use "
                f"(self-check: {check.reason})",
                Status.ITL_INSTALLED,
            ),
            new,
        )
    if is_empty_itl(itl):
        return ListOutcome(
            accepted(
                "item 16",
                f"the installed ITL is the empty rollback ITL, so any new ITL is accepted: "
                f"{name} installed",
                Status.TRUST_LIST_UPDATED,
            ),
            new,
        )
    return _update(new, name, itl, kind=ListKind.ITL, roles=(Role.SAST,), tvs=tvs, via_tvs=True)


def _update(
    new: TrustList,
    name: str,
    authority: TrustList,
    *,
    kind: ListKind,
    roles: tuple[int, ...],
    tvs: TvsAsk,
    via_tvs: bool,
) -> ListOutcome:
    """Item 12: accept iff the signer matches a trusted record of ``authority``, else TVS."""
    failed = _failure_status(kind)
    header = new.header
    record = find_by_signer(authority.records, header, roles)
    if record is not None:
        text = f"{authority.kind} record {record.role_label} {record.subject!r}"
        problem = _check_signature(new, _record_certificate(record), text)
        if problem is not None:
            return ListOutcome(
                rejected("item 13", f"{name}: {problem}; kept the old {kind}", failed)
            )
        rule = "item 11" if authority.is_ctl and kind is ListKind.ITL else "item 12"
        return ListOutcome(
            accepted(rule, f"{name}: {_signer_text(new)} is {text}", Status.TRUST_LIST_UPDATED),
            new,
        )
    not_local = f"{_signer_text(new)} is not a SAST record of the installed {authority.kind}"
    if not via_tvs:
        return ListOutcome(rejected("item 11", f"{name}: {not_local}; kept the old {kind}", failed))
    # The new list carries its signer's certificate in its own SAST record: the phone holds it,
    # so it asks with VERIFY (tvs-capf-wire.md 1.3), not with the emulated QUERY.
    carried = find_by_signer(new.records, header, (Role.SAST,))
    held = _record_certificate(carried) if carried is not None else None
    outcome = (
        tvs(header.signer_issuer, header.signer_serial, held)
        if held is not None
        else tvs(header.signer_issuer, header.signer_serial)
    )
    if not outcome.valid:
        return ListOutcome(
            rejected(
                "item 24", f"{name}: {not_local}; {outcome.reason}; kept the old {kind}", failed
            ),
            tvs=outcome,
        )
    if Role.SAST not in outcome.roles:
        return ListOutcome(
            rejected(
                "item 12",
                f"{name}: {not_local}; {outcome.reason} but not for a trust-list signer role "
                f"(roles {sorted(int(r) for r in outcome.roles)}); kept the old {kind}",
                failed,
            ),
            tvs=outcome,
        )
    problem = _check_signature(new, outcome.certificate, "the certificate TVS returned")
    if problem is not None:
        return ListOutcome(
            rejected("item 13", f"{name}: {problem}; kept the old {kind}", failed), tvs=outcome
        )
    return ListOutcome(
        accepted(
            "items 12, 20", f"{name}: {not_local}, but {outcome.reason}", Status.TRUST_LIST_UPDATED
        ),
        new,
        tvs=outcome,
    )

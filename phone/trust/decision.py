"""What every trust rule returns: a verdict, the rule that decided, and a reason in words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """The outcome of one step, as the trace and the JSON output name it."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNCHANGED = "unchanged"  # the same bytes as already installed: nothing to do
    NOT_FOUND = "not-found"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    FAILED = "failed"  # a step that is not about one file (registration, a retry budget)
    # One exchange of a registration the registrar challenged (its 401/407; the phone's
    # REGISTER with credentials and the answer): shown in the trace, decides nothing.
    CHALLENGED = "challenged"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision of a trust rule.

    ``rule`` names where the rule comes from ("item 12" of phone-behaviour.md, or "seed"), so a
    person can look it up; ``reason`` says in words why, naming serials, hosts and files;
    ``status`` is the text the phone's status-message log shows for it, if any (item 47).
    """

    verdict: Verdict
    rule: str
    reason: str
    status: str | None = None

    @property
    def accepted(self) -> bool:
        """True for an accepted or unchanged file."""
        return self.verdict in (Verdict.ACCEPTED, Verdict.UNCHANGED)


def accepted(rule: str, reason: str, status: str | None = None) -> Decision:
    """An accepting decision."""
    return Decision(Verdict.ACCEPTED, rule, reason, status)


def rejected(rule: str, reason: str, status: str | None = None) -> Decision:
    """A rejecting decision."""
    return Decision(Verdict.REJECTED, rule, reason, status)


# Status texts (item 47, item 13, item 2; [S13] 8800 admin guide). Kept in one place so a test
# can check the phone never invents a spelling.
class Status:
    """The phone's status-message texts."""

    ITL_INSTALLED = "ITL installed"
    CTL_INSTALLED = "CTL installed"
    TRUST_LIST_UPDATED = "Trust List updated"
    TRUST_LIST_UPDATE_FAILED = "Trust List update failed"
    CTL_UPDATE_FAILED = "CTL update failed"
    NO_TRUST_LIST = "No Trust List installed"
    FILE_NOT_FOUND = "File not found"  # followed by the file name
    # 79xx admin guides: "File auth error" names a signed file whose signature failed; the 8945
    # logs the same event as "authenticated fail. Reason:14" [S21].
    FILE_AUTH_ERROR = "File auth error"
    TFTP_TIMEOUT = "TFTP timeout"
    AUTH_FAIL = "Auth Fail"  # item 37/38
    CHECKSUM_ERROR = "Checksum Error"  # item 39
    LOAD_REJECTED_HC = "Load rejected HC"  # item 39
    VERSION_ERROR = "Version error"  # item 39
    UPGRADE_IN_PROGRESS = "Upgrade in Progress"  # item 36
    UPGRADE_FAILED = "Upgrade Failed"  # item 36
    ERASING_TRUST = "Erasing CTL and ITL files"  # item 46
    REGISTERED = "Registered"
    REGISTRATION_FAILED = "Registration failed"

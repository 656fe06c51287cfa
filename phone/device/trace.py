"""What a phone tells the world: the trace entries and state changes it reports, and its clock.

A :class:`TraceEntry` records one trust decision (which step, which rule, why); a
:class:`StateChanged` records one move of the state machine. Both go to the hooks that
``VirtualPhone.subscribe`` registers (the CLI's live output, the scenario runner). The clock is
here because every entry is stamped with it: the wall clock is read only at the edge, tests and
scenarios pass their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from phone.device.machine import State

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, read only at the edge (the CLI and default phones)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One step of a phone's life: what was fetched from where, which rule decided, and why."""

    step: str  # "boot", "ctl", "itl", "config", "image", "register", "erase", "tvs"
    decision: str  # a Verdict value: accepted, rejected, unchanged, not-found, timeout, ...
    rule: str
    reason: str
    file: str | None = None
    server: str | None = None
    at: datetime | None = None

    def as_dict(self) -> dict[str, str | None]:
        """The JSON form (``vphone boot --json``)."""
        return {
            "step": self.step,
            "file": self.file,
            "server": self.server,
            "decision": self.decision,
            "rule": self.rule,
            "reason": self.reason,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The phone moved from ``old`` to ``new`` on ``trigger``."""

    old: State
    new: State
    trigger: str


PhoneEvent = TraceEntry | StateChanged
EventHook = Callable[[PhoneEvent], None]

"""The TRUST_LISTS step: fetch the CTL, then the ITL, and install what the rules accept.

Item 2: per-MAC names first, then the cluster-wide file; item 3: fetched again on every boot.
What a list must satisfy is decided in ``phone.trust.lists``; this step does the fetching and
the installing, and only an accepted list reaches the flash (item 13).
"""

from __future__ import annotations

from dataclasses import replace

from phone.catalog.models import StatusKey
from phone.device import flash as names
from phone.device.core import PhoneCore
from phone.formats.trustlist import TrustList
from phone.trust.decision import Status, Verdict
from phone.trust.lists import ListKind, ListOutcome, evaluate_trust_list


class TrustListStep(PhoneCore):
    """The phone's TRUST_LISTS state (a part of ``VirtualPhone``)."""

    def _step_trust_lists(self) -> str:
        # Item 2: per-MAC names first, then the cluster-wide file; both stored under the
        # cluster-wide name. Item 3: fetched again on every boot.
        combined = self.model.status(StatusKey.BOTH_LISTS)
        # Item 10: a first boot that installs both lists shows one text where the family's
        # documentation shows it ("CTL and ITL installed", 8800 [S13]); so hold the two texts.
        first = combined is not None and self.ctl is None and self.itl is None
        held: list[str] = []
        ctl_outcome: ListOutcome | None = None
        if self.model.ctl:
            ctl_outcome = self._fetch_list(
                ListKind.CTL, (f"CTLSEP{self.mac}.tlv", "CTLFile.tlv"), held if first else None
            )
        else:
            self._record(
                "ctl",
                Verdict.SKIPPED,
                "model table",
                f"CP-{self.model.name} takes no CTL (docs/models.md)",
            )
        itl_outcome: ListOutcome | None = None
        if self.model.security_by_default:
            itl_outcome = self._fetch_list(
                ListKind.ITL, (f"ITLSEP{self.mac}.tlv", "ITLFile.tlv"), held if first else None
            )
        else:
            # Seed, Autoregistration: phones that do not support Security by Default know no
            # ITL (they still take a CTL, which predates 8.0).
            self._record(
                "itl",
                Verdict.SKIPPED,
                "seed",
                f"CP-{self.model.name} predates Security by Default: it does not use an ITL",
            )
        both = (
            first
            and ctl_outcome is not None
            and itl_outcome is not None
            and ctl_outcome.decision.verdict is Verdict.ACCEPTED
            and itl_outcome.decision.verdict is Verdict.ACCEPTED
        )
        for text in [combined] if both and combined else held:
            self._say(text)
        if self.ctl is None and self.itl is None:
            self._say(Status.NO_TRUST_LIST)
        if (ctl_outcome and ctl_outcome.fatal) or (itl_outcome and itl_outcome.fatal):
            return "trust_fatal"
        return "trust_done"

    def _fetch_list(
        self, kind: ListKind, candidates: tuple[str, ...], held: list[str] | None = None
    ) -> ListOutcome | None:
        """Fetch and decide one list; its status text goes to ``held`` when one is given."""
        step = kind.value.lower()
        for index, name in enumerate(candidates):
            data = self._fetch(step, name, quiet_not_found=index < len(candidates) - 1)
            if data is None:
                continue
            outcome = evaluate_trust_list(
                data,
                name=name,
                kind=kind,
                installed_ctl=self.ctl,
                installed_itl=self.itl,
                tvs=self._ask_tvs,
            )
            decision = outcome.decision
            if held is not None and decision.status:
                held.append(decision.status)
                decision = replace(decision, status=None)
            self._decide(step, decision, name)
            if outcome.decision.verdict is Verdict.ACCEPTED and outcome.trust_list is not None:
                self._install(kind, outcome.trust_list, data)
            return outcome
        return None

    def _install(self, kind: ListKind, trust_list: TrustList, data: bytes) -> None:
        if kind is ListKind.CTL:
            self.flash.write(names.CTL, data)
            self.ctl = trust_list
        else:
            self.flash.write(names.ITL, data)
            self.itl = trust_list
            self._settings["itl_applied_at"] = int(self.clock().timestamp())
            self._save_settings()

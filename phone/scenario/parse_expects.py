"""The expectations of a scenario: ``[[expect]]`` and ``[[step.expect]]`` tables.

An expectation is about groups of phones (a count and checks each phone must pass) or about a
cluster (cluster checks); the checks are validated here as far as the file allows (a verdict,
a cluster or certificate name), so that a typo fails at load time with its line, not at the
end of a long run.
"""

from __future__ import annotations

from phone.scenario.model import Check, ClusterCheck, ExpectDef, Quantity
from phone.scenario.parse_tables import Definitions
from phone.scenario.schema import (
    BOOL_CHECKS,
    CERT_KINDS,
    CLUSTER_CHECKS,
    LAST_CHECKS,
    OPERATIONS,
    PHONE_CHECKS,
    STATES,
    VERDICTS,
    parse_quantity,
)
from phone.scenario.toml_reader import Reader, suggest

__all__ = ["ExpectParser"]


class ExpectParser:
    """Parses expectation tables against the clusters and groups defined so far."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs

    def expect(self, r: Reader, step: int) -> ExpectDef:
        """An expectation table; ``step`` is the step it follows (0: the final ones)."""
        text = r.text("text", "")
        if r.has("cluster"):
            if r.has("group") or r.has("groups"):
                raise r.error(
                    "an expectation is about a cluster or about groups, not both", "cluster"
                )
            cluster = self.defs.cluster_ref(r)
            checks: list[ClusterCheck] = []
            for key in [k for k in r.table if k in CLUSTER_CHECKS]:
                value = r.raw(key)
                if key == "itl_mismatches":
                    try:
                        quantity = parse_quantity(value, phones=False)
                    except ValueError as exc:
                        raise r.error(str(exc), key) from None
                    checks.append(ClusterCheck(key, quantity=quantity, line=r.line(key)))
                else:
                    checks.append(ClusterCheck(key, text=r.text(key), line=r.line(key)))
            r.finish({"cluster", "text", *CLUSTER_CHECKS})
            if not checks:
                raise r.error(
                    f"a cluster expectation needs one of {', '.join(CLUSTER_CHECKS)}", "cluster"
                )
            return ExpectDef(
                r.line(), cluster=cluster, cluster_checks=tuple(checks), step=step, text=text
            )
        groups = self.defs.group_refs(r)
        count = Quantity()
        if r.has("count"):
            try:
                count = parse_quantity(r.raw("count"))
            except ValueError as exc:
                raise r.error(str(exc), "count") from None
        # In the order written: a report lists the checks as the author did.
        phone_checks = [self._check(r, key) for key in r.table if key in PHONE_CHECKS]
        r.finish({"group", "groups", "count", "text", *PHONE_CHECKS})
        if not phone_checks:
            raise r.error(
                "an expectation needs at least one check ("
                + ", ".join(PHONE_CHECKS)
                + ") or a cluster"
            )
        return ExpectDef(
            r.line(), groups=groups, count=count, checks=tuple(phone_checks), step=step, text=text
        )

    def _check(self, r: Reader, key: str) -> Check:
        line = r.line(key)
        if key in BOOL_CHECKS:
            return Check(key, r.boolean(key, False), line)
        if key == "state":
            return Check(key, r.choice(key, STATES), line)
        if key == "itl_status":
            return Check(key, r.choice(key, ("match", "mismatch", "none")), line)
        if key == "registered_over":
            return Check(key, r.choice(key, ("tls", "tcp")), line)
        if key == "capf_pending":
            return Check(key, r.choice(key, (*OPERATIONS, "none")), line)
        if key == "capf_result":
            return Check(key, self._capf_result(r), line)
        if key in ("registered_with", "itl_matches"):
            name = r.text(key)
            if not (key == "registered_with" and name == "none"):
                self.defs.cluster_ref(r, key)
            return Check(key, name, line)
        if key == "itl_signer":
            return Check(key, self._signer(r), line)
        if key in LAST_CHECKS:
            values = r.strings(key) or ()
            if not values:
                raise r.error("name at least one verdict", key)
            for value in values:
                verdict = value.split(" by ", 1)[0].strip()
                if verdict not in VERDICTS:
                    raise r.error(
                        f"{verdict!r} is not a verdict ({', '.join(VERDICTS)}), "
                        "optionally followed by 'by RULE' (e.g. 'accepted by item 16')"
                        + suggest(verdict, VERDICTS),
                        key,
                    )
            return Check(key, values if len(values) > 1 else values[0], line)
        return Check(key, r.text(key), line)

    def _capf_result(self, r: Reader) -> str:
        """``none``, ``succeeded``, ``failed`` or ``OPERATION succeeded|failed``."""
        value = " ".join(r.text("capf_result").lower().split())
        outcomes = ("succeeded", "failed")
        accepted = ["none", *outcomes, *(f"{o} {w}" for o in OPERATIONS for w in outcomes)]
        if value not in accepted:
            raise r.error(
                f"{value!r} is not a CAPF outcome: none, succeeded, failed, or an operation "
                f"and an outcome ('install succeeded'){suggest(value, accepted)}",
                "capf_result",
            )
        return value

    def _signer(self, r: Reader) -> str:
        value = r.text("itl_signer")
        if ":" not in value:
            return value
        parts = value.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "previous"):
            raise r.error(
                "write CLUSTER:CERT or CLUSTER:CERT:previous (e.g. 'new:itlrecovery')",
                "itl_signer",
            )
        if parts[0] not in self.defs.clusters:
            raise r.error(
                f"no cluster called {parts[0]!r}{suggest(parts[0], self.defs.clusters)}",
                "itl_signer",
            )
        if parts[1] not in CERT_KINDS:
            raise r.error(
                f"{parts[1]!r} is not a certificate ({', '.join(CERT_KINDS)})"
                + suggest(parts[1], CERT_KINDS),
                "itl_signer",
            )
        return value

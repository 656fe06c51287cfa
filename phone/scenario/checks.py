"""The expectations of a scenario, evaluated against the phones and clusters of one shard.

For a phone check the answer is None (met) or what is true instead, and why: the problem a
report shows next to an example phone. The *why* is :meth:`Checks.reason`, the first problem of
the phone's latest boot cycle, with its MAC and long hex strings masked (:func:`mask`) so that
phones failing for the same cause share one line of the report's reason table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from phone.cluster.certops import PER_NODE
from phone.cluster.lab import Lab
from phone.device.machine import State
from phone.device.phone import TraceEntry, VirtualPhone
from phone.formats.certfields import serial_bytes
from phone.formats.trustlist import Role, TrustList
from phone.pki import CertKind, Identity
from phone.scenario.lab import cluster_of, registered_cluster
from phone.scenario.model import ExpectDef, GroupDef
from phone.scenario.schema import CERT_KINDS
from phone.scenario.tallies import EXAMPLES, ClusterTally, Example, ExpectTally

__all__ = ["Checks", "Slot", "mask"]

_HEX = re.compile(r"\b[0-9a-fA-F]{16,}\b")


def mask(reason: str, mac: str) -> str:
    """``reason`` with the phone's MAC and long hex strings (serials, hashes) masked.

    Phones that fail for the same cause then share one reason text in the summary table, and
    the table does not depend on the random serials a lab was built with.
    """
    return _HEX.sub("<hex>", reason.replace(mac, "<MAC>"))


class Slot:
    """One phone of the fleet and the bookkeeping the runner keeps about it.

    Defined here, below the runner, because the checks read it (the reasons need where the
    phone's latest boot cycle starts).
    """

    __slots__ = ("cycle_start", "group", "index", "phone")

    def __init__(self, index: int, group: GroupDef, phone: VirtualPhone) -> None:
        self.index = index
        self.group = group
        self.phone = phone
        self.cycle_start = -1  # where the current boot cycle's trace starts; -1: never booted


_PROBLEMS = frozenset({"rejected", "failed", "timeout"})
_TRANSPORT = re.compile(r"/(tls|tcp|udp)\b")
_FILE_STEPS = frozenset({"ctl", "itl", "config", "image"})
_TFTP_ROLES = frozenset({Role.TFTP, Role.CCM_TFTP})


class Checks:
    """Evaluates expectations over a lab and the phones a runner keeps (:class:`Slot`).

    Args:
        lab: the shard's lab.
        previous: the certificates ``regenerate`` steps replaced, by (cluster, certificate
            name, host): the runner's :class:`~phone.scenario.lab.LabSteps` fills the same
            dictionary as the steps run.
    """

    def __init__(self, lab: Lab, previous: Mapping[tuple[str, str, str], Identity]) -> None:
        self.lab = lab
        self._previous = previous
        # host -> (the ITL bytes it served, their SHA-1): a reference, not an id(), so a
        # rebuilt file can never be mistaken for the old one.
        self._itl_hashes: dict[str, tuple[bytes, str]] = {}

    def tally(self, expect: ExpectDef, slots: Mapping[str, Sequence[Slot]]) -> ExpectTally:
        """How many of the expectation's phones (of this shard) meet it, with examples."""
        matched = total = 0
        matching: list[Example] = []
        failing: list[Example] = []
        ordered = sorted((s for g in expect.groups for s in slots[g]), key=lambda s: s.index)
        for slot in ordered:
            total += 1
            problem = self._check_phone(expect, slot)
            if problem is None:
                matched += 1
                if len(matching) < EXAMPLES:
                    matching.append(self._example(slot, self._brief(slot)))
            elif len(failing) < EXAMPLES:
                failing.append(self._example(slot, problem))
        return ExpectTally(expect.line, matched, total, tuple(matching), tuple(failing))

    def _example(self, slot: Slot, detail: str) -> Example:
        return Example(slot.index, slot.phone.mac, detail)

    def _brief(self, slot: Slot) -> str:
        return f"{slot.phone.state.value}; {self.reason(slot)}"

    def cluster(self, expect: ExpectDef) -> list[ClusterTally]:
        """The values of a cluster expectation's checks."""
        cluster = self.lab.cluster(expect.cluster)
        tallies: list[ClusterTally] = []
        for check in expect.cluster_checks:
            if check.key == "itl_mismatches":
                value = len(cluster.hashes.mismatches())
                # How many phones reported an ITL to this cluster at all: "0 mismatches" out of
                # 0 reports is no evidence (issue 18 friction 3; report.py fails it).
                reports = len(cluster.hashes.devices)
                tallies.append(ClusterTally(check.line, "itl_reports", reports))
            else:
                value = int(any(check.text in str(entry) for entry in cluster.log))
            tallies.append(ClusterTally(check.line, check.key, value))
        return tallies

    def _check_phone(self, expect: ExpectDef, slot: Slot) -> str | None:
        for check in expect.checks:
            problem = self._check(check.key, check.value, slot)
            if problem is not None:
                return problem
        return None

    def _check(self, key: str, value: str | bool | tuple[str, ...], slot: Slot) -> str | None:
        phone = slot.phone
        match key:
            case "state":
                actual = phone.state.value
                return None if actual == value else f"state is {actual} ({self.reason(slot)})"
            case "registered_with":
                cluster = registered_cluster(self.lab, phone)
                actual = cluster or "none"
                return None if actual == value else f"registered with {actual}"
            case "itl_signer":
                return self._check_signer(phone, str(value))
            case "has_itl":
                return _bool_problem(("has an ITL", "has no ITL"), phone.itl is not None, value)
            case "has_ctl":
                return _bool_problem(("has a CTL", "has no CTL"), phone.ctl is not None, value)
            case "itl_empty":
                empty = phone.itl is not None and _empty(phone.itl)
                texts = ("holds the empty rollback ITL", "does not hold the empty rollback ITL")
                return _bool_problem(texts, empty, value, self.reason(slot))
            case "itl_matches_cluster":
                match = self._itl_matches(phone, [phone.tftp])
                texts = (
                    f"its ITL is the one {phone.tftp} serves",
                    f"its ITL is not the one {phone.tftp} serves",
                )
                return _bool_problem(texts, match, value, self.reason(slot))
            case "itl_matches":
                hosts = list(self.lab.cluster(str(value)).tftp_hosts)
                if self._itl_matches(phone, hosts):
                    return None
                return f"ITL is not one cluster {value} serves ({self.reason(slot)})"
            case "itl_status":
                actual = self._itl_status(phone)
                if actual == value:
                    return None
                return f"ITL File Status: {actual} ({self.reason(slot)})"
            case "status_contains":
                if any(str(value) in text for text in phone.status):
                    return None
                return f"no status message contains {value!r} (last: {phone.status[-1:]})"
            case "trace_contains":
                if any(str(value) in entry.reason for entry in phone.trace):
                    return None
                return f"no decision reason contains {value!r}"
            case "load":
                actual = phone.running_load
                return None if actual == value else f"runs {actual}"
            case "lsc":
                texts = ("holds an LSC", "holds no LSC")
                return _bool_problem(texts, phone.lsc() is not None, value, self.reason(slot))
            case "registered_over":
                transport = self._transport(phone)
                if transport == value:
                    return None
                return f"registered over {transport or 'nothing'} ({self.reason(slot)})"
            case "capf_pending":
                device = cluster_of(self.lab, phone).device(phone.mac)
                pending = device.capf if device is not None else None
                actual = pending.operation.value if pending is not None else "none"
                return None if actual == value else f"CAPF pending: {actual}"
            case "capf_result":
                return self._check_capf_result(phone, str(value))
        # last_ctl, last_itl, last_config, last_image, last_register
        step = key.removeprefix("last_")
        entry = _last(phone.trace, step)
        wanted = value if isinstance(value, tuple) else (str(value),)
        if entry is None:
            return f"made no {step} decision"
        for option in wanted:
            verdict, _, rule = option.partition(" by ")
            if entry.decision == verdict.strip() and (
                not rule or entry.rule.lower() == rule.strip().lower()
            ):
                return None
        return f"last {step} {entry.decision} by {entry.rule}: {mask(entry.reason, phone.mac)}"

    def _transport(self, phone: VirtualPhone) -> str | None:
        """How a registered phone registered (``tls``, ``tcp``); None when it is not.

        Read from the phone's latest accepted registration, whose reason names
        ``host:port/transport`` (phone.device.phone): the transport the phone actually used,
        not the one its security mode implies.
        """
        if phone.state is not State.REGISTERED:
            return None
        for entry in reversed(phone.trace):
            if entry.step == "register" and entry.decision == "accepted":
                found = _TRANSPORT.search(entry.reason)
                return found[1] if found else None
        return None

    def _check_capf_result(self, phone: VirtualPhone, value: str) -> str | None:
        """The last CAPF outcome on the device record of the cluster the phone's TFTP option
        names (the cluster whose config announced the operation)."""
        device = cluster_of(self.lab, phone).device(phone.mac)
        result = device.capf_result if device is not None else None
        if result is None:
            return None if value == "none" else "no CAPF outcome recorded for the device"
        outcome = "succeeded" if result.ok else "failed"
        if value in (outcome, f"{result.operation.value} {outcome}"):
            return None
        return f"CAPF last: {result.operation.value} {outcome}: {mask(result.reason, phone.mac)}"

    def _registered_cluster(self, phone: VirtualPhone) -> str | None:
        if phone.state is not State.REGISTERED or phone.registered_with is None:
            return None
        endpoint = self.lab.resolve(phone.registered_with)
        return endpoint.cluster.name if endpoint is not None else phone.registered_with

    def _itl_status(self, phone: VirtualPhone) -> str:
        """The phone's row in the ITL File Status report of the cluster it is registered with
        (else the one its TFTP option names): ``match``, ``mismatch`` or ``none`` (item 30)."""
        name = registered_cluster(self.lab, phone)
        cluster = self.lab.cluster(name) if name is not None else cluster_of(self.lab, phone)
        row = cluster.hashes.devices.get(phone.mac)
        if row is None:
            return "none"
        return "match" if cluster.hashes.matches(row) else "mismatch"

    def _check_signer(self, phone: VirtualPhone, value: str) -> str | None:
        itl = phone.itl
        if value == "none":
            return None if itl is None else f"holds an ITL signed by {itl.header.signer_name}"
        if itl is None:
            return "has no ITL"
        header = itl.header
        if ":" not in value:
            if value.lower() in header.signer_name.lower():
                return None
            return f"ITL signed by {header.signer_name}"
        cluster_name, cert, *previous = value.split(":")
        cluster = self.lab.cluster(cluster_name)
        kind = CertKind(CERT_KINDS[cert])
        if previous:
            candidates = [
                identity
                for (name, label, _), identity in self._previous.items()
                if name == cluster_name and label == cert
            ]
        else:
            hosts = [n.hostname for n in cluster.nodes] if kind in PER_NODE else [None]
            candidates = [cluster.identity(kind, host) for host in hosts]
        # Serials are random 159-bit numbers: equal serials are the same certificate.
        if any(
            serial_bytes(i.certificate.serial_number) == header.signer_serial for i in candidates
        ):
            return None
        which = "the previous" if previous else "the current"
        return f"ITL signed by {header.signer_name}, not {which} {cert} of {cluster_name}"

    def _itl_matches(self, phone: VirtualPhone, hosts: Sequence[str]) -> bool:
        digest = phone.itl_hash()
        if digest is None:
            return False
        for host in hosts:
            endpoint = self.lab.resolve(host)
            if endpoint is None:
                continue
            data = endpoint.cluster.itl_file(endpoint.node.hostname)
            if data is None:
                continue
            cached = self._itl_hashes.get(endpoint.node.hostname)
            if cached is None or cached[0] is not data:
                cached = (data, hashlib.sha1(data).hexdigest())
                self._itl_hashes[endpoint.node.hostname] = cached
            if cached[1] == digest:
                return True
        return False

    # --- reasons -------------------------------------------------------------------------

    def reason(self, slot: Slot) -> str:
        """Why the phone is where it is: the first problem of its latest boot cycle."""
        phone = slot.phone
        if phone.state is State.OFF:
            return "never powered on" if slot.cycle_start < 0 else "powered off"
        cycle = phone.trace[max(slot.cycle_start, 0) :]
        # After a CAPF session the phone reads its config again from the stub, whatever the
        # outcome (docs/capf.md): a config it could not read before the session (no LSC yet)
        # is not why it ends where it is. Start at the session, so a CAPF failure is named
        # and a successful enrollment leaves only what came after it.
        first_capf = next((i for i, e in enumerate(cycle) if e.step == "capf"), 0)
        problems = [
            entry
            for entry in cycle[first_capf:]
            if entry.decision in _PROBLEMS
            or (entry.decision == "not-found" and entry.step == "image")
        ]
        # A TVS answer is logged before the decision it fed: name the decision, which also
        # carries the TVS reason.
        decisive = [e for e in problems if e.step != "tvs"] or problems
        if decisive:
            entry = decisive[0]
            return f"{entry.step} {entry.decision} by {entry.rule}: {mask(entry.reason, phone.mac)}"
        if phone.state is State.REGISTERED:
            return "no problem in the latest boot"
        return str(phone.state.value)


def _bool_problem(
    texts: tuple[str, str],
    actual: bool,
    wanted: str | bool | tuple[str, ...],
    reason: str = "",
) -> str | None:
    """None when ``actual`` is what was wanted, else what is true instead (and why)."""
    if actual == wanted:
        return None
    text = texts[0] if actual else texts[1]
    return f"{text} ({reason})" if reason else text


def _empty(itl: TrustList) -> bool:
    """An independent reading of item 16: no TFTP or TVS record carries a certificate."""
    return not any(
        r.certificate_der is not None and (r.role in _TFTP_ROLES or r.role == Role.TVS)
        for r in itl.records
    )


def _last(trace: Sequence[TraceEntry], step: str) -> TraceEntry | None:
    """The latest decision of ``step``; for file steps the latest one about a file."""
    fallback: TraceEntry | None = None
    for entry in reversed(trace):
        if entry.step != step:
            continue
        if step not in _FILE_STEPS or entry.file is not None:
            return entry
        if fallback is None:
            fallback = entry
    return fallback

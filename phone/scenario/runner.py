"""Run a scenario over an in-memory lab: the steps, on a simulated clock, then the verdicts.

Pure-ish: no sockets, files, threads or wall clock. The lab and the phones live in memory; the
clock is simulated (every step moves it by ``step_seconds``, a ``wait`` step by its duration),
so a run is the same every time.

Theory of operation
-------------------
A phone's outcome depends only on the lab steps and on its own history: phones never talk to
each other, and what one phone does to the lab (its registration, its ITL File Status row, its
autoregistered device record, its CAPF operation and outcome, the LSC CAPF records for it)
concerns that phone alone; steps that change device records (``set-device``, ``capf``) change
those of the shard's own phones. So a fleet can be cut into *shards*
(phones whose global index ``i`` has ``i % shards == shard``) that each replay every lab step
on their own copy of the lab and run only their phones. Each shard returns counts, never
phones (:class:`ShardResult`); :func:`phone.scenario.report.merge` adds them up. Counts that
come from the lab are per-phone too (the ITL File Status mismatch count is a count of device
rows), so they add up as well. That is the design choice for fleets: expectations are computed
from per-phone results in each shard, and merged by addition, sorted by phone index.

The phones share everything immutable: one state machine (``phone.device.machine``), one
parsed copy of each trust list (``phone.trust.lists.parse_shared``), the lab's signed files and
the firmware images (served as the same ``bytes`` objects), and one backend object per
process (one per tampered group).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random

from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation, clear_pending, set_pending
from phone.cluster.certops import (
    PER_NODE,
    export_certificates,
    import_certificates,
    itl_reset,
    regenerate,
)
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, SecurityMode
from phone.device.machine import State
from phone.device.phone import TraceEntry, VirtualPhone
from phone.device.port import Backend
from phone.errors import UsageError, VphoneError
from phone.formats.certfields import serial_bytes
from phone.formats.trustlist import Role, TrustList
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.memory import MemoryBackend
from phone.pki import CertKind, Identity, KeySource
from phone.scenario.model import (
    ExpectDef,
    GroupDef,
    Scenario,
    ScenarioError,
    StepDef,
)
from phone.scenario.parse import CERT_KINDS
from phone.vendor import manufacturing_cas

__all__ = [
    "EXAMPLES",
    "ClusterTally",
    "Example",
    "ExpectTally",
    "GroupTally",
    "ScenarioRunner",
    "ShardResult",
    "SimClock",
    "StepTally",
    "build_lab",
    "mask",
]

EXAMPLES = 3
"""How many example phones an expectation keeps, on each side (matching / not matching)."""

Progress = Callable[[int], None]
"""Called with the number of phone operations done since the last call."""


class SimClock:
    """The scenario's clock: shared by the lab and every phone, moved only by the runner."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


# --- results (picklable, merged by addition) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Example:
    """A phone shown in a report: its global index, MAC and what was found."""

    index: int
    mac: str
    detail: str


@dataclass(frozen=True, slots=True)
class ExpectTally:
    """How many phones met an expectation (phone expectations) in one shard."""

    line: int
    matched: int = 0
    total: int = 0
    matching: tuple[Example, ...] = ()
    failing: tuple[Example, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterTally:
    """The value of one cluster check in one shard (a count, or 1/0 for ``log_contains``)."""

    line: int
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class GroupTally:
    """What a step did to one group: phones acted on, skipped, and the states afterwards."""

    acted: int = 0
    skipped: int = 0
    states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepTally:
    """One step's outcome in one shard (step 0 is the setup)."""

    index: int
    line: int
    action: str
    description: str
    notes: tuple[str, ...] = ()
    groups: dict[str, GroupTally] = field(default_factory=dict)
    expects: tuple[ExpectTally, ...] = ()
    clusters: tuple[ClusterTally, ...] = ()
    at: str = ""


@dataclass(frozen=True, slots=True)
class ShardResult:
    """Everything one shard reports: per-step tallies, final tallies and the reason table."""

    shard: int
    shards: int
    steps: tuple[StepTally, ...]
    final: StepTally
    reasons: dict[tuple[str, str, str], int]
    phone_operations: int = 0


# --- the lab -------------------------------------------------------------------------------------


def build_lab(
    scenario: Scenario, keys: KeySource, *, random: Callable[[int], bytes] | None = None
) -> Lab:
    """The scenario's lab, installed at the scenario's start time.

    ``random`` (the AES keys of encrypted configs) defaults to a source seeded from the
    scenario's name, so that two runs serve the same bytes.
    """
    specs = [
        ClusterSpec(
            name=c.name,
            profile=c.release,
            tvs_nodes=c.tvs_nodes,
            tftp_nodes=c.tftp_nodes,
            mixed_mode=c.mixed_mode,
            key_size=c.key_size,
        )
        for c in scenario.clusters
    ]
    try:
        return Lab.create(
            specs,
            now=scenario.start,
            keys=keys,
            capf_trust=manufacturing_cas(),
            random=random or seeded_random(scenario.name),
        )
    except VphoneError as exc:
        raise ScenarioError(f"cannot build the lab: {exc}", path=scenario.path) from None


def seeded_random(seed: str) -> Callable[[int], bytes]:
    """A deterministic byte source (never for real secrets: the lab's keys protect a lab)."""
    generator = Random(seed)
    return generator.randbytes


# --- masking reasons -----------------------------------------------------------------------------

_HEX = re.compile(r"\b[0-9a-fA-F]{16,}\b")


def mask(reason: str, mac: str) -> str:
    """``reason`` with the phone's MAC and long hex strings (serials, hashes) masked.

    Phones that fail for the same cause then share one reason text in the summary table, and
    the table does not depend on the random serials a lab was built with.
    """
    return _HEX.sub("<hex>", reason.replace(mac, "<MAC>"))


# --- the runner ----------------------------------------------------------------------------------


class _Slot:
    """One phone of the fleet and the bookkeeping the runner keeps about it."""

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


class ScenarioRunner:
    """Runs one shard of a scenario (the whole fleet by default) over an in-memory lab.

    Args:
        scenario: what to run.
        keys: where the RSA keys of the lab and of ``regenerate`` steps come from.
        phone_keys: where the phones' own RSA keys (an LSC enrolled through CAPF) come from;
            ``keys`` when omitted. A fleet worker passes its own source, so that the phones'
            draws do not move the cursor of the pre-drawn ``regenerate`` keys.
        lab: a lab built by :func:`build_lab` (or loaded from its folder); built when omitted.
        shard: ``(k, n)``: run the phones whose global index is ``k`` modulo ``n``.
        progress: called with the number of phone operations done, as they happen.
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        keys: KeySource,
        phone_keys: KeySource | None = None,
        lab: Lab | None = None,
        shard: tuple[int, int] = (0, 1),
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.keys = keys
        self.phone_keys = phone_keys if phone_keys is not None else keys
        self.clock = SimClock(scenario.start)
        self.lab = lab if lab is not None else build_lab(scenario, keys)
        self.lab.clock = self.clock
        self.shard = shard
        self._progress = progress
        self._backend = MemoryBackend(self.lab, clock=self.clock)
        self._faults: dict[str, list[Fault]] = {}
        self._exports: dict[str, dict[str, bytes]] = {}
        self._previous: dict[tuple[str, str, str], Identity] = {}
        self._slots: dict[str, list[_Slot]] = {}
        self._operations = 0
        # host -> (the ITL bytes it served, their SHA-1): a reference, not an id(), so a
        # rebuilt file can never be mistaken for the old one.
        self._itl_hashes: dict[str, tuple[bytes, str]] = {}

    # --- public --------------------------------------------------------------------------

    def phones(self, group: str) -> list[VirtualPhone]:
        """The phones of ``group`` this runner runs, in index order (after :meth:`run`)."""
        return [slot.phone for slot in self._slots.get(group, [])]

    def run(self) -> ShardResult:
        """Set up, run every step and evaluate every expectation; return this shard's tallies.

        Raises:
            ScenarioError: a step the lab refuses (an unknown node, a wrong password ...).
            UsageError: the runner already ran (build a new one: a lab is used once).
        """
        if self._slots:
            raise UsageError("this runner already ran its scenario; build a new ScenarioRunner")
        steps = [self._setup()]
        for step in self.scenario.steps:
            if step.action == "wait":
                self.clock.advance(int(step.params["seconds"]))
            else:
                self.clock.advance(self.scenario.step_seconds)
            steps.append(self._step(step))
        final = StepTally(
            index=len(self.scenario.steps) + 1,
            line=0,
            action="final",
            description="final expectations",
            groups=self._group_tallies({}),
            expects=tuple(self._tally(e) for e in self.scenario.expects if not e.cluster),
            clusters=tuple(t for e in self.scenario.expects if e.cluster for t in self._cluster(e)),
            at=self.clock.now.isoformat(),
        )
        reasons: Counter[tuple[str, str, str]] = Counter()
        for group, slots in self._slots.items():
            for slot in slots:
                reasons[(group, slot.phone.state.value, self._reason(slot))] += 1
        return ShardResult(
            shard=self.shard[0],
            shards=self.shard[1],
            steps=tuple(steps),
            final=final,
            reasons=dict(reasons),
            phone_operations=self._operations,
        )

    # --- setup ---------------------------------------------------------------------------

    def _mine(self, index: int) -> bool:
        return index % self.shard[1] == self.shard[0]

    def _setup(self) -> StepTally:
        acted: dict[str, tuple[int, int]] = {}
        for group in self.scenario.groups:
            cluster = self.lab.cluster(group.cluster)
            host = cluster.tftp_hosts[0]
            offset = self.scenario.group_offset(group.name)
            slots: list[_Slot] = []
            for number in range(group.count):
                index = offset + number
                if not self._mine(index):
                    continue
                mac = group.mac(number)
                if group.configured:
                    cluster.add_device(self._device(group, mac), now=self.clock.now)
                phone = VirtualPhone(
                    mac=mac,
                    model=group.model,
                    backend=self._backend,
                    tftp=host,
                    clock=self.clock,
                    keys=self.phone_keys,
                )
                slots.append(_Slot(index, group, phone))
            self._slots[group.name] = slots
            booted = 0
            if group.powered:
                for slot in slots:
                    slot.cycle_start = len(slot.phone.trace)
                    slot.phone.power_on()
                    booted += 1
                    self._count()
            acted[group.name] = (booted, len(slots) - booted)
        description = "setup: " + "; ".join(
            f"{g.name}: {g.count} x CP-{g.model} on {g.cluster}"
            + ("" if g.powered else " (powered off)")
            for g in self.scenario.groups
        )
        return StepTally(
            index=0,
            line=0,
            action="setup",
            description=description,
            groups=self._group_tallies(acted),
            at=self.clock.now.isoformat(),
        )

    def _device(self, group: GroupDef, mac: str) -> Device:
        return Device(
            mac,
            model=group.model,
            security_mode=SecurityMode.parse(group.security_mode),
            load=group.load,
            encrypt_config=group.encrypts_config,
        )

    # --- steps ---------------------------------------------------------------------------

    def _count(self) -> None:
        self._operations += 1
        if self._progress is not None:
            self._progress(1)

    def _step(self, step: StepDef) -> StepTally:
        notes: list[str] = []
        acted: dict[str, tuple[int, int]] = {}
        try:
            if step.is_phone_action:
                for name in step.groups:
                    acted[name] = self._phone_step(step, name)
            else:
                notes = self._lab_step(step)
        except ScenarioError:
            raise
        except VphoneError as exc:
            raise ScenarioError(
                f"step {step.index} ({step.describe()}) failed: {exc}",
                path=self.scenario.path,
                line=step.line,
                key="do",
            ) from None
        return StepTally(
            index=step.index,
            line=step.line,
            action=step.action,
            description=step.describe() + (f" - {step.text}" if step.text else ""),
            notes=tuple(notes),
            groups=self._group_tallies(acted),
            expects=tuple(self._tally(e) for e in step.expects if not e.cluster),
            clusters=tuple(t for e in step.expects if e.cluster for t in self._cluster(e)),
            at=self.clock.now.isoformat(),
        )

    def _phone_step(self, step: StepDef, group_name: str) -> tuple[int, int]:
        slots = self._slots[group_name]
        action = step.action
        acted = skipped = 0
        if action == "tamper":
            fault = Fault(
                FaultKind(step.param("fault", "tamper")),
                step.param("file"),
                step.param("data").encode(),
            )
            faults = [*self._faults.get(group_name, []), fault]
            self._faults[group_name] = faults
            backend: Backend = FaultyBackend(self._backend, faults)
            for slot in slots:
                slot.phone.backend = backend
            return len(slots), 0
        if action == "heal":
            self._faults.pop(group_name, None)
            for slot in slots:
                slot.phone.backend = self._backend
            return len(slots), 0
        if action == "move":
            target = self.lab.cluster(step.param("cluster"))
            host = target.tftp_hosts[0]
            for slot in slots:
                slot.phone.tftp = host
                if slot.group.configured and target.device(slot.phone.mac) is None:
                    target.add_device(self._device(slot.group, slot.phone.mac), now=self.clock.now)
            return len(slots), 0
        if action == "upgrade-firmware":
            load = step.param("load")
            for slot in slots:
                cluster = self._cluster_of(slot.phone)
                if cluster.device(slot.phone.mac) is None:
                    device = Device(slot.phone.mac, model=slot.group.model, load=load)
                    cluster.add_device(device, now=self.clock.now)
                else:
                    cluster.update_device(slot.phone.mac, now=self.clock.now, load=load)
            return len(slots), 0
        if action == "set-device":
            changes = _device_changes(step)
            for slot in slots:
                cluster = self._ensure_device(slot)
                cluster.update_device(slot.phone.mac, now=self.clock.now, **changes)
            return len(slots), 0
        if action == "capf":
            self._capf(step, slots)
            return len(slots), 0
        for slot in slots:
            phone = slot.phone
            off = phone.state is State.OFF
            if (
                action == "boot"
                or (action == "reset" and not off)
                or (action == "power-on" and off)
            ):
                slot.cycle_start = len(phone.trace)
                phone.boot()
            elif action == "power-off" and not off:
                self._power_off(phone)
            elif action == "erase-trust":
                phone.erase_trust()
            elif action == "factory-reset":
                phone.factory_reset()
            else:
                # A reset does not reach a phone that is off; power-on of a running phone and
                # power-off of a phone that is off change nothing.
                skipped += 1
                continue
            acted += 1
            self._count()
        return acted, skipped

    def _ensure_device(self, slot: _Slot) -> Cluster:
        """The cluster the phone's TFTP option names, with a device record for the phone.

        A record is added (as the group's ``[[group]]`` table describes it) when there is none:
        the administrator adds the device in order to configure it, as ``upgrade-firmware``
        does.
        """
        cluster = self._cluster_of(slot.phone)
        if cluster.device(slot.phone.mac) is None:
            cluster.add_device(self._device(slot.group, slot.phone.mac), now=self.clock.now)
        return cluster

    def _capf(self, step: StepDef, slots: Sequence[_Slot]) -> None:
        """Set (or cancel) the CAPF operation of each phone's device record; type the string.

        The operation goes on the record of the cluster each phone's TFTP option names: that
        cluster's config announces it (``capfAuthMode``, ``capfList``) at the phone's next
        boot. Only this shard's phones are touched, and the records are theirs alone, so every
        shard ends with the same per-phone CAPF state.
        """
        operation = step.param("operation")
        typed = step.params.get("capf_string")
        now = self.clock.now
        for slot in slots:
            if typed is not None:
                slot.phone.capf_string = str(typed)  # typed on the phone's keypad
            cluster = self._ensure_device(slot)
            if operation == "none":
                clear_pending(cluster, slot.phone.mac, now=now)
                continue
            auth, secret = CapfAuth.parse(step.param("auth"))
            set_pending(
                cluster,
                slot.phone.mac,
                CapfOperation(operation),
                auth,
                now=now,
                secret=secret,
                key_type=CapfKeyType(step.param("key_type", CapfKeyType.RSA_2048.value)),
            )

    def _power_off(self, phone: VirtualPhone) -> None:
        """Cut a phone's power; the cluster it was registered with notices it is gone.

        Seed (ITLRecovery Certificate): "When the phone unregisters, the trust hash information
        of that device is deleted", so a phone that is off is not in the ITL File Status report
        until it registers again (with whatever ITL it then holds).
        """
        registered = self._registered_cluster(phone)
        phone.power_off()
        if registered is not None:
            self.lab.cluster(registered).unregister(phone.mac, now=self.clock.now)

    def _cluster_of(self, phone: VirtualPhone) -> Cluster:
        endpoint = self.lab.resolve(phone.tftp)
        if endpoint is None:
            raise ScenarioError(f"phone SEP{phone.mac} points at {phone.tftp}, which is no node")
        return endpoint.cluster

    def _lab_step(self, step: StepDef) -> list[str]:
        now = self.clock.now
        action = step.action
        if action == "wait":
            return [f"clock now {now.isoformat()}"]
        if action in ("export-certs", "import-certs") and "cluster" not in step.params:
            clusters = list(self.lab.clusters)
        else:
            clusters = [self.lab.cluster(step.param("cluster"))]
        cluster = clusters[0]
        notes: list[str] = []
        match action:
            case "set-param":
                cluster.set_parameter(step.param("name"), step.param("value"), now=now)
                notes.append(f"{cluster.name}: {step.param('name')} = {step.param('value')}")
            case "regenerate":
                notes.extend(self._regenerate(cluster, step))
            case "export-certs":
                password = step.param("password", "scenario").encode()
                for source in clusters:
                    self._exports[source.name] = export_certificates(source, password=password)
                    notes.append(f"{source.name}: certificates exported (PKCS#12, item 34)")
            case "import-certs":
                password = step.param("password", "scenario").encode()
                for target in clusters:
                    result = import_certificates(target, self._exports, password=password, now=now)
                    sources = sorted(n for n in self._exports if n != target.name)
                    notes.append(
                        f"{target.name}: {len(result.added)} trust-store entries imported from "
                        f"{', '.join(sources) or 'nothing'}"
                    )
                    notes.extend(f"{target.name}: {w}" for w in result.warnings)
            case "itl-reset":
                mode = step.param("mode")
                remote = None
                if mode == "remotekey":
                    remote = self._previous[
                        (cluster.name, "itlrecovery", cluster.publisher.hostname)
                    ]
                itl_reset(cluster, mode, now=now, remote=remote)
                notes.append(
                    f"{cluster.name}: utils itl reset {mode}: ITLs re-signed until TFTP restarts "
                    "(item 29)"
                )
            case "restart-tftp":
                node = step.params.get("node")
                cluster.restart_tftp(now=now, host=str(node) if node else None)
                notes.append(f"{cluster.name}: TFTP restarted on {node or 'every TFTP node'}")
            case "stop-node" | "start-node":
                host = step.param("node", cluster.publisher.hostname)
                if action == "stop-node":
                    cluster.stop_node(host, now=now)
                else:
                    cluster.start_node(host, now=now)
                notes.append(f"{cluster.name}: {host} {action.removesuffix('-node')}ed")
            case "set-mode":
                mixed = step.param("mode") == "mixed"
                cluster.set_mixed_mode(mixed, now=now)
                notes.append(f"{cluster.name}: cluster security mode {step.param('mode')}")
            case "ctl-update":
                cluster.update_ctl(now=now)
                notes.append(f"{cluster.name}: CTL rebuilt")
        return notes

    def _regenerate(self, cluster: Cluster, step: StepDef) -> list[str]:
        cert = step.param("cert")
        kind = CertKind(CERT_KINDS[cert])
        node = step.params.get("node")
        if node is not None:
            hosts = [str(node)]
        elif kind in PER_NODE:
            hosts = [n.hostname for n in cluster.nodes]  # every node's own certificate
        else:
            hosts = [cluster.publisher.hostname]
        notes: list[str] = []
        for host in hosts:
            self._previous[(cluster.name, cert, host)] = cluster.identity(kind, host)
            result = regenerate(cluster, kind, now=self.clock.now, keys=self.keys, host=host)
            notes.append(f"{cluster.name}: {kind} certificate of {result.host} regenerated")
            notes.extend(f"{cluster.name}: WARNING {w}" for w in result.warnings)
        return notes

    def _group_tallies(self, acted: dict[str, tuple[int, int]]) -> dict[str, GroupTally]:
        tallies: dict[str, GroupTally] = {}
        for group, slots in self._slots.items():
            states = Counter(slot.phone.state.value for slot in slots)
            done, skipped = acted.get(group, (0, 0))
            tallies[group] = GroupTally(done, skipped, dict(sorted(states.items())))
        return tallies

    # --- expectations --------------------------------------------------------------------

    def _tally(self, expect: ExpectDef) -> ExpectTally:
        matched = total = 0
        matching: list[Example] = []
        failing: list[Example] = []
        slots = sorted((s for g in expect.groups for s in self._slots[g]), key=lambda s: s.index)
        for slot in slots:
            total += 1
            problem = self._check_phone(expect, slot)
            if problem is None:
                matched += 1
                if len(matching) < EXAMPLES:
                    matching.append(self._example(slot, self._brief(slot)))
            elif len(failing) < EXAMPLES:
                failing.append(self._example(slot, problem))
        return ExpectTally(expect.line, matched, total, tuple(matching), tuple(failing))

    def _example(self, slot: _Slot, detail: str) -> Example:
        return Example(slot.index, slot.phone.mac, detail)

    def _brief(self, slot: _Slot) -> str:
        return f"{slot.phone.state.value}; {self._reason(slot)}"

    def _cluster(self, expect: ExpectDef) -> list[ClusterTally]:
        cluster = self.lab.cluster(expect.cluster)
        tallies: list[ClusterTally] = []
        for check in expect.cluster_checks:
            if check.key == "itl_mismatches":
                value = len(cluster.hashes.mismatches())
            else:
                value = int(any(check.text in str(entry) for entry in cluster.log))
            tallies.append(ClusterTally(check.line, check.key, value))
        return tallies

    def _check_phone(self, expect: ExpectDef, slot: _Slot) -> str | None:
        for check in expect.checks:
            problem = self._check(check.key, check.value, slot)
            if problem is not None:
                return problem
        return None

    def _check(self, key: str, value: str | bool | tuple[str, ...], slot: _Slot) -> str | None:
        phone = slot.phone
        match key:
            case "state":
                actual = phone.state.value
                return None if actual == value else f"state is {actual} ({self._reason(slot)})"
            case "registered_with":
                cluster = self._registered_cluster(phone)
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
                return _bool_problem(texts, empty, value, self._reason(slot))
            case "itl_matches_cluster":
                match = self._itl_matches(phone, [phone.tftp])
                texts = (
                    f"its ITL is the one {phone.tftp} serves",
                    f"its ITL is not the one {phone.tftp} serves",
                )
                return _bool_problem(texts, match, value, self._reason(slot))
            case "itl_matches":
                hosts = list(self.lab.cluster(str(value)).tftp_hosts)
                if self._itl_matches(phone, hosts):
                    return None
                return f"ITL is not one cluster {value} serves ({self._reason(slot)})"
            case "itl_status":
                actual = self._itl_status(phone)
                if actual == value:
                    return None
                return f"ITL File Status: {actual} ({self._reason(slot)})"
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
                return _bool_problem(texts, phone.lsc() is not None, value, self._reason(slot))
            case "registered_over":
                transport = self._transport(phone)
                if transport == value:
                    return None
                return f"registered over {transport or 'nothing'} ({self._reason(slot)})"
            case "capf_pending":
                device = self._cluster_of(phone).device(phone.mac)
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
        device = self._cluster_of(phone).device(phone.mac)
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
        name = self._registered_cluster(phone)
        cluster = self.lab.cluster(name) if name is not None else self._cluster_of(phone)
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

    def _reason(self, slot: _Slot) -> str:
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


def _device_changes(step: StepDef) -> dict[str, object]:
    """A ``set-device`` step's keys as :class:`~phone.cluster.records.Device` field changes."""
    changes: dict[str, object] = {}
    for key, value in step.params.items():
        match key:
            case "security_mode":
                changes[key] = SecurityMode.parse(str(value))
            case "digest_auth":
                changes["digest_authentication"] = bool(value)
            case "digest_user" | "digest_password":
                changes[key] = str(value) or None  # an empty text clears the credential
            case _:  # encrypt_config, exclude_digest_credentials, load: the field itself
                changes[key] = value
    return changes


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

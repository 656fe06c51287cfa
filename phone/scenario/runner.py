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

This module runs the phone steps and keeps the fleet; the lab steps, the clock and the lab
builder are :mod:`phone.scenario.lab`, the expectation checks and the reasons
:mod:`phone.scenario.checks`, the result types :mod:`phone.scenario.tallies`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation, clear_pending, set_pending
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import Device, SecurityMode
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.device.port import Backend
from phone.errors import UsageError, VphoneError
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.memory import MemoryBackend
from phone.pki import KeySource
from phone.scenario.checks import Checks, Slot, mask
from phone.scenario.lab import (
    LabSteps,
    SimClock,
    build_lab,
    cluster_of,
    registered_cluster,
    seeded_random,
)
from phone.scenario.model import GroupDef, Scenario, ScenarioError, StepDef
from phone.scenario.tallies import (
    EXAMPLES,
    ClusterTally,
    Example,
    ExpectTally,
    GroupTally,
    ShardResult,
    StepTally,
)

# Re-exported: the result types (phone.scenario.tallies), the clock and the lab builder
# (phone.scenario.lab) and mask (phone.scenario.checks) are imported from here by
# phone.scenario.report, phone.scenario.fleet and the pytest plugin.
__all__ = [
    "EXAMPLES",
    "ClusterTally",
    "Example",
    "ExpectTally",
    "GroupTally",
    "RunInterrupted",
    "ScenarioRunner",
    "ShardResult",
    "SimClock",
    "StepTally",
    "build_lab",
    "mask",
    "seeded_random",
]

Progress = Callable[[int], None]
"""Called with the number of phone operations done since the last call."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a fleet's stop request) ended :meth:`ScenarioRunner.run` between two steps'
    tallies: ``partial`` holds the steps that finished (``final`` None, no reason table).

    A :class:`KeyboardInterrupt` still, so a caller that does not look for it stops as before.
    """

    def __init__(self, partial: ShardResult) -> None:
        super().__init__(len(partial.steps))
        self.partial = partial


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
        self._lab_steps = LabSteps(self.lab, self.clock, keys)
        self._checks = Checks(self.lab, self._lab_steps.previous)
        self._slots: dict[str, list[Slot]] = {}
        self._operations = 0

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
        steps: list[StepTally] = []
        try:
            steps.append(self._setup())
            for step in self.scenario.steps:
                if step.action == "wait":
                    self.clock.advance(int(step.params["seconds"]))
                else:
                    self.clock.advance(self.scenario.step_seconds)
                steps.append(self._step(step))
        except KeyboardInterrupt:
            # A step's tally is made only once the step is over, so ``steps`` holds whole steps
            # wherever the interrupt landed; the phones of the step it cut are left as they are.
            raise RunInterrupted(
                ShardResult(
                    shard=self.shard[0],
                    shards=self.shard[1],
                    steps=tuple(steps),
                    final=None,
                    reasons={},
                    phone_operations=self._operations,
                )
            ) from None
        final = StepTally(
            index=len(self.scenario.steps) + 1,
            line=0,
            action="final",
            description="final expectations",
            groups=self._group_tallies({}),
            expects=tuple(
                self._checks.tally(e, self._slots) for e in self.scenario.expects if not e.cluster
            ),
            clusters=tuple(
                t for e in self.scenario.expects if e.cluster for t in self._checks.cluster(e)
            ),
            at=self.clock.now.isoformat(),
        )
        reasons: Counter[tuple[str, str, str, str]] = Counter()
        for group, slots in self._slots.items():
            for slot in slots:
                # Which cluster a registered phone is with: "registered" alone cannot tell a
                # phone stuck on the old cluster from a migrated one (issue 18 friction 3).
                cluster = registered_cluster(self.lab, slot.phone) or ""
                key = (group, slot.phone.state.value, cluster, self._checks.reason(slot))
                reasons[key] += 1
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
            slots: list[Slot] = []
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
                    protocol=group.protocol or None,
                )
                slots.append(Slot(index, group, phone))
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
            + (f" over {g.protocol.upper()}" if g.protocol else "")
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
                notes = self._lab_steps.run(step)
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
            expects=tuple(
                self._checks.tally(e, self._slots) for e in step.expects if not e.cluster
            ),
            clusters=tuple(t for e in step.expects if e.cluster for t in self._checks.cluster(e)),
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
                cluster = cluster_of(self.lab, slot.phone)
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

    def _ensure_device(self, slot: Slot) -> Cluster:
        """The cluster the phone's TFTP option names, with a device record for the phone.

        A record is added (as the group's ``[[group]]`` table describes it) when there is none:
        the administrator adds the device in order to configure it, as ``upgrade-firmware``
        does.
        """
        cluster = cluster_of(self.lab, slot.phone)
        if cluster.device(slot.phone.mac) is None:
            cluster.add_device(self._device(slot.group, slot.phone.mac), now=self.clock.now)
        return cluster

    def _capf(self, step: StepDef, slots: Sequence[Slot]) -> None:
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
        registered = registered_cluster(self.lab, phone)
        phone.power_off()
        if registered is not None:
            self.lab.cluster(registered).unregister(phone.mac, now=self.clock.now)

    def _group_tallies(self, acted: dict[str, tuple[int, int]]) -> dict[str, GroupTally]:
        tallies: dict[str, GroupTally] = {}
        for group, slots in self._slots.items():
            states = Counter(slot.phone.state.value for slot in slots)
            done, skipped = acted.get(group, (0, 0))
            tallies[group] = GroupTally(done, skipped, dict(sorted(states.items())))
        return tallies


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

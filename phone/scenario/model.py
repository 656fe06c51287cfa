"""What a scenario file says, as frozen data: clusters, phone groups, steps and expectations.

Produced by :mod:`phone.scenario.parse` from TOML (or built in Python), consumed by the runner
(:mod:`phone.scenario.runner`). Every element remembers the line of the file it came from, so a
report and an error can point at it. Everything here is picklable: a fleet run ships the
scenario to its worker processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from phone.errors import UsageError

__all__ = [
    "DEFAULT_START",
    "DEFAULT_STEP_SECONDS",
    "LAB_ACTIONS",
    "PHONE_ACTIONS",
    "Check",
    "ClusterCheck",
    "ClusterDef",
    "ExpectDef",
    "GroupDef",
    "Quantity",
    "QuantityKind",
    "Scenario",
    "ScenarioError",
    "StepDef",
]

DEFAULT_START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
"""When a scenario's simulated clock starts unless ``[scenario] start`` says otherwise."""

DEFAULT_STEP_SECONDS = 60
"""How far the simulated clock moves before each step unless ``step_seconds`` says otherwise."""

PHONE_ACTIONS = frozenset(
    {
        "boot",
        "reset",
        "power-off",
        "power-on",
        "erase-trust",
        "factory-reset",
        "move",
        "upgrade-firmware",
        "set-device",
        "capf",
        "tamper",
        "heal",
    }
)
"""Steps that act on the phones of some groups (``groups``, default every group).

``upgrade-firmware``, ``set-device`` and ``capf`` change the *device records* of the groups'
phones rather than the phones themselves; they are phone actions all the same, because a device
record concerns one phone alone: a fleet shard changes the records of its own phones only,
which is what keeps the shards independent (``phone.scenario.runner``).
"""

LAB_ACTIONS = frozenset(
    {
        "set-param",
        "regenerate",
        "export-certs",
        "import-certs",
        "itl-reset",
        "restart-tftp",
        "stop-node",
        "start-node",
        "set-mode",
        "ctl-update",
        "wait",
    }
)
"""Steps that act on the lab (a cluster, or the clock)."""


class ScenarioError(UsageError):
    """A scenario file that is malformed or asks for something impossible (exit 2).

    Names the file, the line and the key, so the message alone says what to fix.
    """

    def __init__(self, problem: str, *, path: str = "", line: int = 0, key: str = "") -> None:
        self.problem = problem
        self.path = path
        self.line = line
        self.key = key
        where = path or "scenario"
        if line:
            where += f":{line}"
        what = f" key {key!r}:" if key else ""
        super().__init__(f"{where}:{what} {problem}")


class QuantityKind(StrEnum):
    """How many phones (or how large a count) an expectation asks for."""

    ALL = "all"
    NONE = "none"
    AT_LEAST = "at least"
    AT_MOST = "at most"
    EXACTLY = "exactly"


@dataclass(frozen=True, slots=True)
class Quantity:
    """``all``, ``none``, ``at least N``, ``at most N``, ``exactly N`` (N may be a percentage)."""

    kind: QuantityKind = QuantityKind.ALL
    number: int = 0
    percent: bool = False

    def holds(self, matched: int, total: int) -> bool:
        """Whether ``matched`` out of ``total`` satisfies the quantity."""
        if self.kind is QuantityKind.ALL:
            return matched == total
        if self.kind is QuantityKind.NONE:
            return matched == 0
        # Percentages compare without rounding: matched/total >= n/100 <=> 100*matched >= n*total.
        left, right = (
            (100 * matched, self.number * total) if self.percent else (matched, self.number)
        )
        if self.kind is QuantityKind.AT_LEAST:
            return left >= right
        if self.kind is QuantityKind.AT_MOST:
            return left <= right
        return left == right

    def wants_matches(self) -> bool:
        """True when the quantity is failed by too *few* matches (show non-matching phones)."""
        return self.kind in (QuantityKind.ALL, QuantityKind.AT_LEAST, QuantityKind.EXACTLY)

    def __str__(self) -> str:
        if self.kind in (QuantityKind.ALL, QuantityKind.NONE):
            return self.kind.value
        return f"{self.kind.value} {self.number}{'%' if self.percent else ''}"


@dataclass(frozen=True, slots=True)
class ClusterDef:
    """A ``[[cluster]]`` table: one emulated Unified CM cluster."""

    name: str
    release: str = "14.x"
    tvs_nodes: int = 1
    tftp_nodes: int = 1
    mixed_mode: bool = False
    key_size: int = 2048
    line: int = 0

    def hostnames(self, domain: str = "lab") -> tuple[str, ...]:
        """The node host names the lab gives this cluster (``cucm1.<name>.lab`` ...)."""
        return tuple(f"cucm{i + 1}.{self.name}.{domain}" for i in range(self.tvs_nodes))


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A ``[[group]]`` table: ``count`` phones of one model that start on one cluster.

    ``powered`` phones are in service when the scenario starts: the runner boots them once
    against ``cluster`` before the first step. ``configured`` phones have a device record (the
    admin added them) on their starting cluster and on any cluster a ``move`` sends them to;
    the others autoregister (item 6).
    """

    name: str
    count: int
    cluster: str
    model: str = "8841"
    powered: bool = True
    configured: bool = True
    security_mode: str = "non-secure"
    load: str = ""
    # The security profile's "Encrypted TFTP Configuration". None: as the security mode says
    # (on for "encrypted"), which is what scenarios written before the key existed get.
    encrypt_config: bool | None = None
    # "sip" or "sccp" (issue 15); "": the model's default (SIP where it runs both).
    protocol: str = ""
    index: int = 0  # position among the scenario's groups (MACs are derived from it)
    line: int = 0

    def mac(self, number: int) -> str:
        """The MAC of phone ``number`` (0-based) of this group: ``02`` + group + number.

        ``02`` marks a locally administered address, so no real vendor prefix is borrowed.
        """
        return f"02{self.index:02X}{number:08X}"

    @property
    def encrypts_config(self) -> bool:
        """Whether the group's device records start with config encryption on."""
        if self.encrypt_config is None:
            return self.security_mode == "encrypted"
        return self.encrypt_config


@dataclass(frozen=True, slots=True)
class Check:
    """One condition on a phone: ``key`` (``state``, ``itl_signer`` ...) and its value."""

    key: str
    value: str | bool | tuple[str, ...]
    line: int = 0

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, tuple):
            text = " or ".join(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = value
        return f"{self.key} = {text}"


@dataclass(frozen=True, slots=True)
class ClusterCheck:
    """One condition on a cluster: ``itl_mismatches`` (a quantity) or ``log_contains`` (text)."""

    key: str
    quantity: Quantity | None = None
    text: str = ""
    line: int = 0

    def __str__(self) -> str:
        if self.quantity is not None:
            return f"{self.key} {self.quantity}"
        return f"{self.key} {self.text!r}"


@dataclass(frozen=True, slots=True)
class ExpectDef:
    """An ``[[expect]]`` (final) or ``[[step.expect]]`` (after that step) table.

    Either a phone expectation (``groups`` with ``checks`` and a ``count``) or a cluster
    expectation (``cluster`` with ``cluster_checks``).
    """

    line: int
    groups: tuple[str, ...] = ()
    count: Quantity = Quantity()
    checks: tuple[Check, ...] = ()
    cluster: str = ""
    cluster_checks: tuple[ClusterCheck, ...] = ()
    step: int = 0  # the step it follows; 0 for a final expectation
    text: str = ""  # an optional description shown in reports

    @property
    def subject(self) -> str:
        """``group desk``, ``groups a, b`` or ``cluster old``."""
        if self.cluster:
            return f"cluster {self.cluster}"
        label = "group" if len(self.groups) == 1 else "groups"
        return f"{label} {', '.join(self.groups)}"

    def describe(self) -> str:
        """One line: subject, quantity and checks (``group desk: all state = registered``)."""
        if self.cluster:
            body = "; ".join(str(c) for c in self.cluster_checks)
            return f"{self.subject}: {body}"
        body = "; ".join(str(c) for c in self.checks)
        return f"{self.subject}: {self.count} with {body}"


@dataclass(frozen=True, slots=True)
class StepDef:
    """A ``[[step]]`` table: ``action`` (the ``do`` key) with its parameters.

    ``params`` holds the validated keys of the action (``cluster``, ``cert``, ``seconds`` ...);
    ``groups`` the phone groups a phone action applies to.
    """

    index: int
    action: str
    line: int
    groups: tuple[str, ...] = ()
    params: dict[str, str | int | bool] = field(default_factory=dict)
    expects: tuple[ExpectDef, ...] = ()
    text: str = ""

    def param(self, key: str, default: str = "") -> str:
        """A text parameter (``default`` when absent)."""
        value = self.params.get(key, default)
        return str(value) if not isinstance(value, bool) else ("true" if value else "false")

    @property
    def is_phone_action(self) -> bool:
        """Whether the step acts on phones."""
        return self.action in PHONE_ACTIONS

    def describe(self) -> str:
        """The step as one line: ``regenerate old callmanager``, ``move -> new`` ..."""
        p = self.params
        match self.action:
            case "set-param":
                return f"set-param {p['cluster']} {p['name']} = {self.param('value')}"
            case "regenerate":
                node = f" on {p['node']}" if "node" in p else ""
                return f"regenerate {p['cluster']} {p['cert']}{node}"
            case "move":
                return f"move -> {p['cluster']}"
            case "upgrade-firmware":
                return f"upgrade-firmware -> {p['load']}"
            case "set-device":
                # The digest password is a secret: reports say it was set, not what it is.
                settings = ", ".join(
                    f"{key} = {'***' if key == 'digest_password' else self.param(key)}"
                    for key in sorted(p)
                )
                return f"set-device {settings}"
            case "capf":
                if p["operation"] == "none":
                    return "capf: cancel the pending operation"
                # The authentication string stays out of reports: "string", not its digits.
                auth = str(p["auth"]).partition(":")[0]
                key = f", {p['key_type']}" if "key_type" in p else ""
                typed = ", string typed on the phones" if "capf_string" in p else ""
                return f"capf {p['operation']} ({auth}{key}){typed}"
            case "tamper":
                return f"tamper {p.get('fault', 'tamper')}:{p['file']}"
            case "wait":
                return f"wait {_duration(int(p['seconds']))}"
            case "itl-reset":
                return f"itl-reset {p['cluster']} {p['mode']}"
            case "set-mode":
                return f"set-mode {p['cluster']} {p['mode']}"
            case "export-certs" | "import-certs":
                return f"{self.action} {p.get('cluster', 'every cluster')}"
            case "restart-tftp" | "stop-node" | "start-node" | "ctl-update":
                node = f" {p['node']}" if "node" in p else ""
                return f"{self.action} {p['cluster']}{node}"
        return self.action


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario: the ``[scenario]`` table plus clusters, groups, steps, expectations."""

    name: str
    title: str
    clusters: tuple[ClusterDef, ...]
    groups: tuple[GroupDef, ...]
    steps: tuple[StepDef, ...] = ()
    expects: tuple[ExpectDef, ...] = ()
    description: str = ""
    sources: tuple[str, ...] = ()
    items: tuple[int, ...] = ()
    start: datetime = DEFAULT_START
    step_seconds: int = DEFAULT_STEP_SECONDS
    path: str = ""

    @property
    def phone_count(self) -> int:
        """How many phones the scenario runs."""
        return sum(g.count for g in self.groups)

    def cluster(self, name: str) -> ClusterDef:
        """The cluster definition called ``name``.

        Raises:
            ScenarioError: no such cluster.
        """
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise ScenarioError(f"no cluster called {name!r}", path=self.path)

    def group(self, name: str) -> GroupDef:
        """The group called ``name``.

        Raises:
            ScenarioError: no such group.
        """
        for group in self.groups:
            if group.name == name:
                return group
        raise ScenarioError(f"no group called {name!r}", path=self.path)

    def group_offset(self, name: str) -> int:
        """The global index of the first phone of group ``name`` (groups in file order)."""
        offset = 0
        for group in self.groups:
            if group.name == name:
                return offset
            offset += group.count
        raise ScenarioError(f"no group called {name!r}", path=self.path)

    def all_expects(self) -> tuple[ExpectDef, ...]:
        """Every expectation: the steps' (in step order), then the final ones."""
        return tuple(e for s in self.steps for e in s.expects) + self.expects

    def with_count(self, count: int) -> Scenario:
        """The same scenario with ``count`` phones in every group (fleet sizes for benchmarks).

        Raises:
            ScenarioError: ``count`` is not positive.
        """
        if count < 1:
            raise ScenarioError(f"a group needs at least one phone, not {count}", path=self.path)
        groups = tuple(dataclasses.replace(g, count=count) for g in self.groups)
        return dataclasses.replace(self, groups=groups)


def _duration(seconds: int) -> str:
    """``1825 days``, ``2 hours``, ``90 s``: the largest unit that divides ``seconds``."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"

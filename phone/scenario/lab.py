"""The scenario's lab: its simulated clock, how it is built, and the steps that act on it.

The steps here are the *lab* actions of a scenario (``set-param``, ``regenerate``,
``export-certs``, ``itl-reset``, ``restart-tftp`` ...): they change clusters, never phones, and
every shard of a fleet replays them on its own copy of the lab (``phone.scenario.runner``
explains why that keeps the shards independent). The phone actions are the runner's; the two
look-ups of which cluster a phone belongs to (:func:`cluster_of`, :func:`registered_cluster`)
are here, for the runner and the checks alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from random import Random

from phone.cluster.certops import (
    PER_NODE,
    export_certificates,
    import_certificates,
    itl_reset,
    regenerate,
)
from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec
from phone.device.machine import State
from phone.device.phone import VirtualPhone
from phone.errors import VphoneError
from phone.pki import CertKind, Identity, KeySource
from phone.scenario.model import Scenario, ScenarioError, StepDef
from phone.scenario.schema import CERT_KINDS
from phone.vendor import manufacturing_cas

__all__ = [
    "LabSteps",
    "SimClock",
    "build_lab",
    "cluster_of",
    "registered_cluster",
    "seeded_random",
]


class SimClock:
    """The scenario's clock: shared by the lab and every phone, moved only by the runner."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


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
            release=c.release,
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


def cluster_of(lab: Lab, phone: VirtualPhone) -> Cluster:
    """The cluster the phone's TFTP option names (whose config and device record it reads)."""
    endpoint = lab.resolve(phone.tftp)
    if endpoint is None:
        raise ScenarioError(f"phone SEP{phone.mac} points at {phone.tftp}, which is no node")
    return endpoint.cluster


def registered_cluster(lab: Lab, phone: VirtualPhone) -> str | None:
    """The name of the cluster a registered phone is registered with; None when it is not."""
    if phone.state is not State.REGISTERED or phone.registered_with is None:
        return None
    endpoint = lab.resolve(phone.registered_with)
    return endpoint.cluster.name if endpoint is not None else phone.registered_with


class LabSteps:
    """Carries out a scenario's lab steps on one lab, at the time of the shared clock.

    Keeps what later steps and checks need: the exported certificates (``import-certs``) and
    the certificates each ``regenerate`` replaced (``itl-reset remotekey`` signs with the
    previous ITLRecovery key; an ``itl_signer = "c:cert:previous"`` check looks them up).
    """

    def __init__(self, lab: Lab, clock: SimClock, keys: KeySource) -> None:
        self.lab = lab
        self.clock = clock
        self.keys = keys
        self.exports: dict[str, dict[str, bytes]] = {}
        self.previous: dict[tuple[str, str, str], Identity] = {}

    def run(self, step: StepDef) -> list[str]:
        """Carry out a lab step; return the notes the report shows under it."""
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
                    self.exports[source.name] = export_certificates(source, password=password)
                    notes.append(f"{source.name}: certificates exported (PKCS#12, item 34)")
            case "import-certs":
                password = step.param("password", "scenario").encode()
                for target in clusters:
                    result = import_certificates(target, self.exports, password=password, now=now)
                    sources = sorted(n for n in self.exports if n != target.name)
                    notes.append(
                        f"{target.name}: {len(result.added)} trust-store entries imported from "
                        f"{', '.join(sources) or 'nothing'}"
                    )
                    notes.extend(f"{target.name}: {w}" for w in result.warnings)
            case "itl-reset":
                mode = step.param("mode")
                remote = None
                if mode == "remotekey":
                    remote = self.previous[
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
            self.previous[(cluster.name, cert, host)] = cluster.identity(kind, host)
            result = regenerate(cluster, kind, now=self.clock.now, keys=self.keys, host=host)
            notes.append(f"{cluster.name}: {kind} certificate of {result.host} regenerated")
            notes.extend(f"{cluster.name}: WARNING {w}" for w in result.warnings)
        return notes

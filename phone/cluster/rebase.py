"""What a long-running process changed in a lab, carried onto a fresh load of its folder.

``vphone lab serve`` keeps a lab in memory while other commands change its folder; the rule of
what it carries over (and what the folder wins) is in :mod:`phone.cluster.store`'s docstring,
"Following a folder from a long-running process".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

from phone.cluster.authguard import AuthFailures
from phone.cluster.cluster import Cluster
from phone.cluster.itl import DeviceHashRow
from phone.cluster.lab import Lab
from phone.cluster.records import (
    LOG_LIMIT,
    Device,
)
from phone.cluster.store import save_cluster
from phone.errors import UsageError

__all__ = [
    "Baseline",
    "ClusterBaseline",
    "Rebased",
    "baseline",
    "changed_since",
    "rebase",
    "save_changes",
]


@dataclass(frozen=True)
class ClusterBaseline:
    """The parts of one cluster a long-running process may change, as they were at a moment
    (a load or a save): what :func:`rebase` compares against to tell that process's changes.

    The mappings are copies; their values are frozen records, so sharing them is safe.
    """

    revision: int
    next_seq: int  # log lines numbered from here on were added after the moment
    devices: Mapping[str, Device]
    registrations: Mapping[str, int]
    reports: Mapping[str, DeviceHashRow]  # the ITL File Status rows (item 30), by MAC
    auth: Mapping[str, AuthFailures] = field(default_factory=dict)  # SIP throttle, by source


_Event = TypeVar("_Event", int, DeviceHashRow)  # a registration time, or an ITL report row

Baseline: TypeAlias = Mapping[str, ClusterBaseline]
"""A :class:`ClusterBaseline` per cluster name: :func:`baseline` of a whole lab."""


def baseline(lab: Lab) -> dict[str, ClusterBaseline]:
    """Remember what ``lab``'s clusters hold now (take it while nothing changes the lab)."""
    return {
        cluster.name: ClusterBaseline(
            revision=cluster.revision,
            next_seq=cluster.state.next_seq,
            devices=dict(cluster.state.devices),
            registrations=dict(cluster.state.registrations),
            reports=dict(cluster.state.hashes.devices),
            auth=dict(cluster.state.auth_failures),
        )
        for cluster in lab.clusters
    }


def _moved(cluster: Cluster, base: ClusterBaseline | None) -> bool:
    # The log counts too: a dropped CAPF session adds a line without a new revision.
    return (
        base is None or cluster.revision != base.revision or cluster.state.next_seq != base.next_seq
    )


def changed_since(lab: Lab, base: Baseline) -> bool:
    """Whether anything changed ``lab`` since ``base`` was taken."""
    return any(_moved(cluster, base.get(cluster.name)) for cluster in lab.clusters)


def save_changes(lab: Lab, base: Baseline) -> list[str]:
    """Save every cluster of ``lab`` changed since ``base`` (a log line is a change, unlike
    for :func:`save_lab`); return their names. Hold :func:`lab_lock`.

    Raises:
        UsageError: the lab was not loaded from a folder.
    """
    if lab.path is None:
        raise UsageError("this lab lives in memory only; give a folder to save it to")
    saved: list[str] = []
    for cluster in lab.clusters:
        if cluster.saved_revision != cluster.revision or _moved(cluster, base.get(cluster.name)):
            save_cluster(lab.path, cluster)
            saved.append(cluster.name)
    return saved


@dataclass
class Rebased:
    """What :func:`rebase` did: summaries of what it carried over, and of what it dropped
    (with the reason), one line per cluster or conflict, for the log."""

    carried: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def extend(self, other: Rebased) -> None:
        """Add ``other``'s lines to these."""
        self.carried += other.carried
        self.dropped += other.dropped


def rebase(ours: Lab, base: Baseline, onto: Lab) -> Rebased:
    """Re-apply what changed in ``ours`` since ``base`` onto ``onto`` (module docstring: the
    rule); clusters of ``onto`` that received something are marked changed, for
    :func:`save_lab`.

    ``onto`` must be freshly loaded and not yet in use: its state is changed directly (the file
    service's caches of a lab in use would not see it). Hold whatever keeps ``ours`` still.
    """
    report = Rebased()
    targets = {cluster.name: cluster for cluster in onto.clusters}
    for cluster in ours.clusters:
        before = base.get(cluster.name)
        if before is None or not _moved(cluster, before):
            continue  # a cluster ours gained itself would be new to the folder: never happens
        target = targets.get(cluster.name)
        if target is None:
            report.dropped.append(
                f"cluster {cluster.name} is gone from the folder: what was served to its "
                "phones since the last save is dropped"
            )
            continue
        report.extend(_rebase_cluster(cluster, before, target))
    return report


def _rebase_cluster(ours: Cluster, base: ClusterBaseline, onto: Cluster) -> Rebased:
    report = Rebased()
    state, target = ours.state, onto.state
    counts = dict.fromkeys(
        ("device", "registration", "ITL report", "throttle record", "log line"), 0
    )

    # Device records first: registrations and reports follow the device.
    for mac in sorted(set(state.devices) | set(base.devices)):
        mine, was = state.devices.get(mac), base.devices.get(mac)
        if mine == was:
            continue
        merged, conflicts = _merge_device(mine, was, target.devices.get(mac))
        for name in conflicts:
            report.dropped.append(
                f"{onto.name}: SEP{mac} {name} was changed here and in the folder: the "
                "folder's is kept"
            )
        if merged is not target.devices.get(mac):
            counts["device"] += 1
            if merged is None:
                del target.devices[mac]
            else:
                target.devices[mac] = merged

    # Registrations and ITL reports: events that happened, kept while their device exists.
    gone: set[str] = set()
    counts["registration"] = _carry_events(
        target.registrations, state.registrations, base.registrations, target.devices, gone
    )
    counts["ITL report"] = _carry_events(
        target.hashes.devices, state.hashes.devices, base.reports, target.devices, gone
    )
    for mac in sorted(gone):
        report.dropped.append(
            f"{onto.name}: SEP{mac} is gone from the folder: its registration is dropped"
        )

    # SIP throttle records (phone.cluster.authguard): only the servers change them, so ours win.
    for source in set(state.auth_failures) | set(base.auth):
        record = state.auth_failures.get(source)
        if record == base.auth.get(source):
            continue
        counts["throttle record"] += 1
        if record is None:
            target.auth_failures.pop(source, None)
        else:
            target.auth_failures[source] = record

    # Log lines, after the folder's own and numbered after them.
    for entry in state.log:
        if entry.seq >= base.next_seq:
            target.log.append(dataclasses.replace(entry, seq=target.next_seq))
            target.next_seq += 1
            counts["log line"] += 1
    if len(target.log) > LOG_LIMIT:
        del target.log[: len(target.log) - LOG_LIMIT]

    if any(counts.values()):
        target.updated_at = max(target.updated_at, state.updated_at)
        onto.revision += 1  # changed: save_lab writes it
        done = ", ".join(_count_of(n, what) for what, n in counts.items() if n)
        report.carried.append(f"{onto.name}: {done}")
    return report


def _count_of(count: int, noun: str) -> str:
    """``"1 device"``, ``"2 devices"``: a count for a log line."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _carry_events(
    table: dict[str, _Event],
    mine: Mapping[str, _Event],
    was: Mapping[str, _Event],
    devices: Mapping[str, Device],
    gone: set[str],
) -> int:
    """Apply to ``table`` the entries ``mine`` set or removed since ``was``, for devices that
    exist; add the MACs of those that do not to ``gone``. Return how many were applied."""
    applied = 0
    for mac in set(mine) | set(was):
        value = mine.get(mac)
        if value == was.get(mac):
            continue
        if mac not in devices:
            gone.add(mac)
            continue
        applied += 1
        if value is None:
            table.pop(mac, None)
        else:
            table[mac] = value
    return applied


def _merge_device(
    mine: Device | None, was: Device | None, theirs: Device | None
) -> tuple[Device | None, list[str]]:
    """Three-way merge of one device record (the rule in the module docstring): the record to
    keep in the folder's lab (``theirs`` itself when nothing is carried over), and the names of
    fields both sides changed."""
    if was is None:  # created here (auto-registration): unless the folder has one now
        return (mine if theirs is None else theirs), []
    if theirs is None:  # removed from the folder: stays removed
        return None, []
    if mine is None:  # removed here (the servers never do): only if the folder kept it as is
        return (None if theirs == was else theirs), []
    changes: dict[str, object] = {}
    conflicts: list[str] = []
    for spec in dataclasses.fields(Device):
        if spec.name == "changed_at":
            continue  # every change moves it: taken from the newer side below
        value = getattr(mine, spec.name)
        if value == getattr(was, spec.name):
            continue
        if getattr(theirs, spec.name) == getattr(was, spec.name):
            changes[spec.name] = value
        elif getattr(theirs, spec.name) != value:
            conflicts.append(spec.name)
    if not changes:
        return theirs, conflicts
    # The newer date of the two: the phone's signed config must show the change.
    changes["changed_at"] = max(mine.changed_at, theirs.changed_at)
    return dataclasses.replace(theirs, **changes), conflicts  # type: ignore[arg-type]

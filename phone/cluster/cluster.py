"""One emulated Unified CM cluster: its state and every change to it.

Why this module is longer than 600 lines: it is one class whose every change ends in
:meth:`Cluster._commit`, which keeps the derived data (the config context, each node's ITL, the
hash database, the CTL) consistent with the state. Its installation (:mod:`.install`) and its
SIP trunk side (:mod:`.trunkadmin`) touch none of that and live apart; what remains reads and
changes the phone-side state and is kept together so the invariant can be checked in one place.

Pure and in memory: every operation that changes state takes ``now`` (a timezone-aware
``datetime``) and nothing here reads the clock, opens a file or a socket. The on-disk lab
folder is :mod:`phone.cluster.store`; serving files is :mod:`phone.cluster.files`; the Trust
Verification Service is :mod:`phone.cluster.tvs`; certificate operations are
:mod:`phone.cluster.certops`.

Theory of operation. A :class:`Cluster` holds a :class:`ClusterState` (everything that is
persisted) and mutates it through methods that end in :meth:`Cluster._commit`. The commit

* stamps the change time,
* recomputes the *config context* (what every device config depends on) and moves
  ``context_changed_at`` only when it really changed, so that signed configs are re-signed
  exactly when their content changes (seed, File Authentication), and
* when the change can touch the ITL, regenerates the ITL of every running TFTP node: a node
  whose ITL content is unchanged keeps its file byte for byte and the TFTP log says
  "Tftp Itl hash not changed" (seed, ITLRecovery: TFTP Service Activation).

The ITL and CTL files are kept as bytes in the state, like the files CUCM's TFTP holds, so that
a CTL that was not updated after a certificate change stays stale (seed warning before
ITLRecovery regeneration; ``ctl-update`` rebuilds it), and a lab reloaded from disk serves the
very same bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.catalog.loads import catalogue_images
from phone.cluster.authadmin import SipAuthGuard
from phone.cluster.install import new_cluster_state
from phone.cluster.itl import (
    CTL_FILENAME,
    ITL_FILENAME,
    HashOutcome,
    ItlHashDatabase,
    Member,
    TrustListPlan,
    content_key_of,
    ctl_records,
    itl_hash,
    itl_records,
)
from phone.cluster.profiles import ReleaseProfile, get_profile
from phone.cluster.records import (
    CALLMANAGER_GROUP_SIZE,
    DEFAULT_MODEL,
    LOG_LIMIT,
    MODEL_RE,
    ClusterSpec,
    ClusterState,
    ConfigContext,
    Device,
    ItlReport,
    ItlReset,
    LogEntry,
    Node,
    Parameters,
    RandomBytes,
    Registration,
    TrustEntry,
    TrustStore,
    der,
    parse_parameter,
    sha256_hex,
    unix_time,
)
from phone.cluster.trunk import (
    SipTrunk,
)
from phone.cluster.trunkadmin import TrunkAdmin
from phone.errors import LabError
from phone.formats.configxml import SIP_PORT, SIP_TLS_PORT, TVS_PORT
from phone.formats.signature import Signer
from phone.mac import normalize_mac
from phone.pki import CertKind, Identity, KeySource


class Cluster(TrunkAdmin, SipAuthGuard):
    """One emulated Unified CM cluster (see the module docstring).

    Build one with :meth:`create` (or :meth:`Lab.create`), or from a persisted
    :class:`ClusterState`. ``random`` feeds the AES keys of encrypted configs; ``firmware`` maps
    file names to the bytes of firmware loads its TFTP nodes serve.
    """

    def __init__(
        self,
        state: ClusterState,
        *,
        random: RandomBytes = os.urandom,
        firmware: Mapping[str, bytes] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.state = state
        self.random = random
        # Without a firmware folder a lab serves the built-in load catalogue (item 36).
        self.firmware: Mapping[str, bytes] = (
            firmware if firmware is not None else catalogue_images()
        )
        self.clock = clock
        self.revision = 0
        self.saved_revision: int | None = None  # maintained by phone.cluster.store
        self._profile = get_profile(state.profile)
        # Derived data, each cached with the inputs it was computed from (see config_context,
        # _commit and _nodes_by_name for why each key is complete).
        self._context: tuple[tuple[list[Node], bool, bool], ConfigContext] | None = None
        self._context_key: tuple[ConfigContext, str] | None = None
        self._node_index: tuple[list[Node], dict[str, Node]] | None = None
        # Called with a MAC when that device's record is removed (the lab's file services
        # drop what they cached for it); the cluster knows no service, only this hook.
        self.device_removed: list[Callable[[str], None]] = []
        self._signers: dict[str, tuple[Identity, Signer]] = {}
        self._itl_problems: dict[str, tuple[bytes, str | None]] = {}
        self._sip_trunks: tuple[int, tuple[SipTrunk, ...]] | None = None
        if not state.context_key:
            state.context_key = self.config_context().key()

    @classmethod
    def create(
        cls,
        spec: ClusterSpec,
        *,
        now: datetime,
        keys: KeySource,
        ip_prefix: str = "10.1",
        capf_trust: Sequence[x509.Certificate] = (),
        random: RandomBytes = os.urandom,
        firmware: Mapping[str, bytes] | None = None,
    ) -> Cluster:
        """Install a new cluster: nodes, certificates, trust stores, the first ITLs.

        ``capf_trust`` seeds the CAPF-trust store (the manufacturing CAs that issue phone
        MICs, :func:`phone.vendor.manufacturing_cas`); the cluster's own CAPF certificate is
        added too, so LSCs it issues authenticate to TVS.

        Raises:
            LabError: bad name, node counts, profile, key size or ITLRecovery validity.
        """
        state = new_cluster_state(
            spec, now=now, keys=keys, ip_prefix=ip_prefix, capf_trust=capf_trust
        )
        publisher = state.nodes[0].hostname
        profile = get_profile(spec.release)
        cluster = cls(state, random=random, firmware=firmware)
        cluster._log(
            now, publisher, "CLI", f"cluster {spec.name} installed, release {profile.name}"
        )
        if spec.mixed_mode:
            cluster._build_ctl(now)
            cluster.note(now, "cluster security mode: mixed (tokenless CTL)")
        # Seed: "The ITL file is automatically created when the TFTP service is activated and
        # the cluster is installed."
        cluster._commit(now, itl=True)
        return cluster

    # --- read side ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The cluster's name."""
        return self.state.name

    @property
    def profile(self) -> ReleaseProfile:
        """The release profile (its rules: digest, ITL reset signer, ITL File Status ...)."""
        return self._profile

    @property
    def release(self) -> str:
        """The release profile's name (``"14.x"``): the word the CLI and scenarios use."""
        return self._profile.name

    @property
    def nodes(self) -> tuple[Node, ...]:
        """All nodes, publisher first."""
        return tuple(self.state.nodes)

    @property
    def publisher(self) -> Node:
        """The first node: it holds ITLRecovery and CAPF and signs the 8.x-11.5 CTL."""
        return self.state.nodes[0]

    @property
    def tftp_hosts(self) -> tuple[str, ...]:
        """Host names of the nodes running TFTP (running or not)."""
        return tuple(n.hostname for n in self.state.nodes if n.runs_tftp)

    @property
    def tvs_hosts(self) -> tuple[str, ...]:
        """Host names of the nodes running TVS (running or not)."""
        return tuple(n.hostname for n in self.state.nodes if n.runs_tvs)

    @property
    def mixed_mode(self) -> bool:
        """True once ``utils ctl set-cluster mixed-mode`` ran."""
        return self.state.mixed_mode

    @property
    def parameters(self) -> Parameters:
        """Enterprise and service parameters."""
        return self.state.parameters

    @property
    def itlrecovery(self) -> Identity:
        """The cluster's ITLRecovery certificate and key."""
        return self.state.itlrecovery

    @property
    def capf(self) -> Identity:
        """The cluster's CAPF certificate and key."""
        return self.state.capf

    @property
    def devices(self) -> Mapping[str, Device]:
        """Devices by MAC (read-only view)."""
        return MappingProxyType(self.state.devices)

    @property
    def hashes(self) -> ItlHashDatabase:
        """The ITL hash database (item 30). Change it only through the cluster's methods."""
        return self.state.hashes

    @property
    def log(self) -> tuple[LogEntry, ...]:
        """The most recent service-log entries, oldest first."""
        return tuple(self.state.log)

    def log_since(self, seq: int) -> tuple[LogEntry, ...]:
        """Log entries with a sequence number of at least ``seq``."""
        return tuple(e for e in self.state.log if e.seq >= seq)

    @property
    def next_log_seq(self) -> int:
        """The sequence number the next log entry will get."""
        return self.state.next_seq

    def find_node(self, host: str) -> Node | None:
        """The node called ``host`` (full or short host name, or IP address), or None."""
        return self._nodes_by_name().get(host.strip().lower().rstrip("."))

    def _nodes_by_name(self) -> dict[str, Node]:
        """Every node by host name, IP address and short name; the first node (publisher
        first) wins a name several nodes answer to, as a scan of the nodes in order would.

        Asked about 30 times per phone boot. Nodes are frozen, so the index gives the answers
        of a scan for as long as ``state.nodes`` holds the same (or equal) nodes in the same
        order: checked on every call, by one list comparison (the identity of each node
        first, as list equality does).
        """
        nodes = self.state.nodes
        cached = self._node_index
        if cached is not None and cached[0] == nodes:
            return cached[1]
        index: dict[str, Node] = {}
        for node in nodes:
            for name in (node.hostname, node.ip, node.hostname.split(".", 1)[0]):
                index.setdefault(name, node)
        self._node_index = (list(nodes), index)
        return index

    def node(self, host: str) -> Node:
        """The node called ``host``.

        Raises:
            LabError: no such node in this cluster.
        """
        node = self.find_node(host)
        if node is None:
            known = ", ".join(n.hostname for n in self.state.nodes)
            raise LabError(f"cluster {self.name} has no node {host!r} (nodes: {known})")
        return node

    def device(self, mac: str) -> Device | None:
        """The device with ``mac`` (any MAC spelling), or None."""
        try:
            return self.state.devices.get(normalize_mac(mac))
        except LabError:
            return None

    def trust(self, store: TrustStore) -> tuple[TrustEntry, ...]:
        """The entries of one trust store."""
        return tuple(self.state.trust.get(store, ()))

    def identity(self, kind: CertKind, host: str | None = None) -> Identity:
        """A certificate of the cluster: per node for CallManager/TVS/Tomcat (``host``),
        cluster-wide for ITLRecovery and CAPF.

        Raises:
            LabError: a per-node kind without a known ``host``.
        """
        if kind is CertKind.ITLRECOVERY:
            return self.state.itlrecovery
        if kind is CertKind.CAPF:
            return self.state.capf
        node = self.node(host) if host is not None else self.publisher
        if kind is CertKind.CALLMANAGER:
            return node.callmanager
        if kind is CertKind.TVS:
            return node.tvs
        return node.tomcat

    def config_context(self) -> ConfigContext:
        """The cluster-wide inputs of every device config (cached with its own inputs).

        The context is a function of the nodes (frozen: host names, services, CallManager
        certificates), the cluster security mode and the autoregistration parameter, and of
        nothing else; so it is recomputed only when one of those changed, not after every
        commit (every phone registration commits).
        """
        state = self.state
        cached = self._context
        if (
            cached is not None
            and cached[0][0] == state.nodes
            and cached[0][1] == state.mixed_mode
            and cached[0][2] == state.parameters.autoregistration
        ):
            return cached[1]
        inputs = (list(state.nodes), state.mixed_mode, state.parameters.autoregistration)
        cm_nodes = [n for n in self.state.nodes if n.runs_callmanager][:CALLMANAGER_GROUP_SIZE]
        context = ConfigContext(
            callmanagers=tuple((n.hostname, SIP_PORT, SIP_TLS_PORT) for n in cm_nodes),
            # CUCM lists the phone's CallManager-group nodes as its TVS members (item 21).
            tvs_members=tuple((n.hostname, TVS_PORT) for n in cm_nodes if n.runs_tvs),
            tftp_servers=self.tftp_hosts,
            capf_host=self.publisher.hostname,
            mixed_mode=self.state.mixed_mode,
            autoregistration=self.state.parameters.autoregistration,
            signers=tuple(
                (n.hostname, sha256_hex(n.callmanager.certificate))
                for n in self.state.nodes
                if n.runs_tftp
            ),
        )
        self._context = (inputs, context)
        return context

    def config_timestamp(self, device: Device | None) -> int:
        """When a config's content last changed: what its ``.sgn`` header is dated."""
        stamp = self.state.context_changed_at
        return stamp if device is None else max(stamp, device.changed_at)

    def config_signer(self, host: str) -> Signer:
        """The key that signs TFTP node ``host``'s config files: its CallManager key (seed)."""
        identity = self.node(host).callmanager
        cached = self._signers.get(host)
        if cached is None or cached[0] is not identity:
            cached = (identity, _signer(identity))
            self._signers[host] = cached
        return cached[1]

    # --- trust lists -------------------------------------------------------------------------

    def _member(self, node: Node, identity: Identity) -> Member:
        return Member(node.hostname, node.ip, identity.certificate)

    def itl_signer(self, host: str) -> Identity:
        """Who signs ``host``'s ITL now: the profile's signer, or the ``itl reset`` key."""
        node = self.node(host)
        reset = self.state.itl_reset
        if reset is not None and node.hostname in reset.hosts:
            if reset.remote is not None:
                return reset.remote
            kind = self._profile.itl_reset_signer
        else:
            kind = self._profile.itl_signer
        return node.callmanager if kind is CertKind.CALLMANAGER else self.state.itlrecovery

    def itl_plan(self, host: str) -> TrustListPlan:
        """The content of TFTP node ``host``'s ITL as of now (item 19; rollback, item 16).

        Raises:
            LabError: ``host`` is not a TFTP node of this cluster.
        """
        node = self.node(host)
        if not node.runs_tftp:
            raise LabError(f"{node.hostname} does not run TFTP: it has no ITL")
        publisher = self.publisher
        records = itl_records(
            itlrecovery=self._member(publisher, self.state.itlrecovery),
            tftp=self._member(node, node.callmanager),
            tvs=[self._member(n, n.tvs) for n in self.state.nodes if n.runs_tvs],
            capf=self._member(publisher, self.state.capf),
            mixed_mode=self.state.mixed_mode,
            rollback=self.state.parameters.prepare_cluster_for_rollback,
        )
        return TrustListPlan(
            records, _signer(self.itl_signer(host)), ITL_FILENAME, self._profile.digest
        )

    def ctl_plan(self) -> TrustListPlan:
        """The content of the tokenless CTL as of now."""
        publisher = self.publisher
        signer = (
            publisher.callmanager
            if self._profile.ctl_signer is CertKind.CALLMANAGER
            else self.state.itlrecovery
        )
        records = ctl_records(
            publisher=self._member(publisher, publisher.callmanager),
            nodes=[
                (self._member(n, n.callmanager), n.runs_callmanager)
                for n in self.state.nodes
                if n.runs_callmanager or n.runs_tftp
            ],
            capf=self._member(publisher, self.state.capf),
            itlrecovery=self._member(publisher, self.state.itlrecovery),
        )
        return TrustListPlan(records, _signer(signer), CTL_FILENAME, self._profile.digest)

    def itl_file(self, host: str) -> bytes | None:
        """The ITL TFTP node ``host`` serves, or None (not a TFTP node, never activated, or
        too large to serve: item 18)."""
        node = self.find_node(host)
        if node is None or not node.runs_tftp:
            return None
        data = self.state.itl_files.get(node.hostname)
        if data is None or self.itl_problem(node.hostname) is not None:
            return None
        return data

    def itl_problem(self, host: str) -> str | None:
        """Why ``host``'s ITL is not served (item 18), or None."""
        data = self.state.itl_files.get(host)
        if data is None:
            return None
        # Asked on every ITL download: remembered per stored file, which is rebuilt (a new
        # bytes object) whenever the plan's content changes.
        cached = self._itl_problems.get(host)
        if cached is not None and cached[0] is data:
            return cached[1]
        problem = self.itl_plan(host).size_problem(len(data))
        self._itl_problems[host] = (data, problem)
        return problem

    def stored_itl(self, host: str) -> bytes | None:
        """The ITL bytes held for ``host``, served or not."""
        return self.state.itl_files.get(host)

    @property
    def ctl_file(self) -> bytes | None:
        """The CTL the TFTP nodes serve: only in mixed mode (item 2: otherwise not found)."""
        return self.state.ctl_file if self.state.mixed_mode else None

    # --- changes -----------------------------------------------------------------------------

    def _log(self, now: datetime | int, host: str, service: str, message: str) -> LogEntry:
        stamp = now if isinstance(now, int) else unix_time(now)
        entry = LogEntry(self.state.next_seq, stamp, host, service, message)
        self.state.next_seq += 1
        self.state.log.append(entry)
        if len(self.state.log) > LOG_LIMIT:
            del self.state.log[: len(self.state.log) - LOG_LIMIT]
        return entry

    def note(self, now: datetime, message: str, *, service: str = "CLI") -> None:
        """Add a line to the publisher's log (used by certificate operations)."""
        self._log(now, self.publisher.hostname, service, message)

    def _commit(self, now: datetime, *, itl: bool = False) -> None:
        stamp = unix_time(now)
        self.state.updated_at = stamp
        self.revision += 1
        context = self.config_context()
        # key() hashes the context's repr; the same (frozen) context object has the same key.
        cached = self._context_key
        if cached is not None and cached[0] is context:
            key = cached[1]
        else:
            key = context.key()
            self._context_key = (context, key)
        if key != self.state.context_key:
            self.state.context_key = key
            self.state.context_changed_at = stamp
        if itl:
            self._refresh_itls(now)

    def _refresh_itls(self, now: datetime) -> None:
        """Regenerate the ITL of every running TFTP node (seed, TFTP Service Activation)."""
        for node in self.state.nodes:
            if node.runs_tftp and node.running:
                self._refresh_itl(node.hostname, now)

    def _refresh_itl(self, host: str, now: datetime) -> None:
        stamp = unix_time(now)
        plan = self.itl_plan(host)
        existing = self.state.itl_files.get(host)
        if existing is not None and content_key_of(existing) == plan.content_key():
            data = existing  # same content: same file, same hash
        else:
            data = plan.build(stamp)
            self.state.itl_files[host] = data
        problem = plan.size_problem(len(data))
        if problem is not None:
            self._log(stamp, host, "TFTP", f"WARNING {problem}; ITLFile.tlv is not served")
            return
        digest = itl_hash(data)
        outcome = self.state.hashes.store_tftp(host, digest, stamp)
        if outcome is HashOutcome.UNCHANGED:
            self._log(stamp, host, "TFTP", "Tftp Itl hash not changed")
        elif outcome is HashOutcome.INSERTED:
            self._log(stamp, host, "TFTP", f"Tftp Itl hash stored: {digest}")
        else:
            self._log(stamp, host, "TFTP", f"Tftp Itl hash updated: {digest}")

    def set_parameter(self, name: str, value: str, *, now: datetime) -> Parameters:
        """Set an enterprise or service parameter from its text form (``vphone lab set``).

        Raises:
            LabError: unknown parameter or invalid value.
        """
        field_name, typed = parse_parameter(name, value, self._profile)
        changes: dict[str, Any] = {field_name: typed}
        self.state.parameters = dataclasses.replace(self.state.parameters, **changes)
        self.note(now, f"parameter {name} = {value}")
        if field_name == "cluster_id":
            # Item 43: the Cluster ID is the trunk realm, and the realm is part of HA1.
            stale = sorted(
                u.name for u in self.state.application_users.values() if u.realm != typed
            )
            if stale:
                self.note(
                    now,
                    f"WARNING application users {', '.join(stale)} have digest credentials for "
                    "another realm: set their passwords again (item 43)",
                )
        # The rollback parameter changes the ITL (item 16); the others do not.
        self._commit(now, itl=field_name == "prepare_cluster_for_rollback")
        return self.state.parameters

    def set_mixed_mode(self, enabled: bool, *, now: datetime) -> None:
        """``utils ctl set-cluster mixed-mode`` (builds the tokenless CTL) or non-secure mode.

        In non-secure mode no CTL is served (phones log "File Not Found <CTLFile.tlv>", item 2).
        """
        if enabled:
            self.state.mixed_mode = True
            self._build_ctl(now)
            self.note(now, "cluster security mode: mixed (tokenless CTL)")
        else:
            self.state.mixed_mode = False
            self.state.ctl_file = None
            self.note(now, "cluster security mode: non-secure (no CTL served)")
        # The ITL's TFTP record role follows the mode (TFTP vs CCM+TFTP, section 5).
        self._commit(now, itl=True)

    def update_ctl(self, *, now: datetime) -> None:
        """``utils ctl update CTLFile``: rebuild the CTL from the current certificates.

        Raises:
            LabError: the cluster is not in mixed mode.
        """
        if not self.state.mixed_mode:
            raise LabError(f"cluster {self.name} is not in mixed mode: it has no CTL")
        self._build_ctl(now)
        self._commit(now)

    def _build_ctl(self, now: datetime) -> None:
        plan = self.ctl_plan()
        existing = self.state.ctl_file
        if existing is not None and content_key_of(existing) == plan.content_key():
            self.note(now, "CTL file not changed", service="TFTP")
            return
        self.state.ctl_file = plan.build(unix_time(now))
        self.note(now, f"CTL file built, hash {itl_hash(self.state.ctl_file)}", service="TFTP")

    def add_device(self, device: Device, *, now: datetime, replace: bool = False) -> Device:
        """Add (or with ``replace`` overwrite) a device record; returns it dated ``now``.

        Raises:
            LabError: the MAC exists and ``replace`` is false.
        """
        if device.mac in self.state.devices and not replace:
            raise LabError(f"device SEP{device.mac} already exists in cluster {self.name}")
        stored = dataclasses.replace(device, changed_at=unix_time(now))
        self.state.devices[device.mac] = stored
        self._commit(now)
        return stored

    def update_device(self, mac: str, *, now: datetime, **changes: object) -> Device:
        """Change fields of an existing device record.

        Raises:
            LabError: no such device, or an invalid field.
        """
        device = self.device(mac)
        if device is None:
            raise LabError(f"cluster {self.name} has no device {mac!r}")
        try:
            updated = dataclasses.replace(device, **changes)  # type: ignore[arg-type]
        except TypeError as exc:
            raise LabError(f"cannot change device SEP{device.mac}: {exc}") from None
        return self.add_device(updated, now=now, replace=True)

    def remove_device(self, mac: str, *, now: datetime) -> None:
        """Delete a device record (and its registration and ITL status row).

        Raises:
            LabError: no such device.
        """
        device = self.device(mac)
        if device is None:
            raise LabError(f"cluster {self.name} has no device {mac!r}")
        del self.state.devices[device.mac]
        self.state.registrations.pop(device.mac, None)
        self.state.hashes.delete_device(device.mac)
        for listener in self.device_removed:
            listener(device.mac)
        self._commit(now)

    def register(
        self,
        mac: str,
        *,
        now: datetime,
        model: str | None = None,
        itl_report: ItlReport | None = None,
    ) -> Registration:
        """A phone registers; applies its ITL report (item 30) when the release has one.

        Unknown phones are auto-registered when the ``autoregistration`` parameter is on
        (item 6; seed, Autoregistration), and refused otherwise. SIP signalling (digest,
        items 40-42) is :mod:`phone.cluster.registrar`'s, which calls this once it accepted.
        """
        stamp = unix_time(now)
        key = normalize_mac(mac)
        created = False
        if key not in self.state.devices:
            if not self.state.parameters.autoregistration:
                self._log(stamp, self.publisher.hostname, "CallManager", f"SEP{key} rejected")
                self._commit(now)
                return Registration(
                    False, f"SEP{key} is not configured and auto-registration is disabled"
                )
            clean_model = (model or DEFAULT_MODEL).upper().removeprefix("CP-")
            if not MODEL_RE.fullmatch(clean_model):
                clean_model = DEFAULT_MODEL  # whatever the phone sent, it gets a record
            self.state.devices[key] = Device(
                key, clean_model, autoregistered=True, changed_at=stamp
            )
            created = True
        self.state.registrations[key] = stamp
        outcome: HashOutcome | None = None
        if itl_report is not None and self._profile.itl_hash_report:
            # The phone names its TFTP server as it knows it (short name or IP address);
            # the table is keyed by the node's host name.
            node = self.find_node(itl_report.tftp_host)
            tftp_host = node.hostname if node is not None else itl_report.tftp_host
            outcome = self.state.hashes.report(
                key, tftp_host, itl_report.itl_hash, itl_report.timestamp
            )
            self._log(
                stamp,
                self.publisher.hostname,
                "CallManager",
                f"SEP{key} ITL report {itl_report.itl_hash[:12]} from "
                f"{itl_report.tftp_host}: {outcome.value}",
            )
        self._log(
            stamp,
            self.publisher.hostname,
            "CallManager",
            f"SEP{key} registered" + (" (auto-registered)" if created else ""),
        )
        self._commit(now)
        return Registration(True, "registered", created, outcome)

    def unregister(self, mac: str, *, now: datetime) -> bool:
        """A phone unregisters: its ITL status row is deleted (seed). True if it was registered."""
        key = normalize_mac(mac)
        was = self.state.registrations.pop(key, None) is not None
        deleted = self.state.hashes.delete_device(key)
        if was or deleted:
            self._log(now, self.publisher.hostname, "CallManager", f"SEP{key} unregistered")
        self._commit(now)
        return was

    @property
    def registrations(self) -> Mapping[str, int]:
        """Registered MACs and when they registered."""
        return MappingProxyType(self.state.registrations)

    def stop_node(self, host: str, *, now: datetime) -> Node:
        """Power a node off: its TFTP and TVS services become unreachable."""
        node = self._set_node(host, running=False)
        self.note(now, f"node {node.hostname} stopped")
        self._commit(now)
        return node

    def start_node(self, host: str, *, now: datetime) -> Node:
        """Power a node on (or restart its services).

        Starting TFTP regenerates the node's ITL (seed, TFTP Service Activation) and ends an
        ``itl reset`` on that node: "a TFTP restart restores normal signing" (item 29).
        """
        node = self._set_node(host, running=True)
        reset = self.state.itl_reset
        if reset is not None and node.hostname in reset.hosts:
            remaining = reset.hosts - {node.hostname}
            self.state.itl_reset = (
                dataclasses.replace(reset, hosts=remaining) if remaining else None
            )
        self.note(now, f"node {node.hostname} started")
        self._commit(now, itl=True)
        return node

    def _set_node(self, host: str, **changes: object) -> Node:
        node = self.node(host)
        updated = dataclasses.replace(node, **changes)  # type: ignore[arg-type]
        self.state.nodes = [updated if n.hostname == node.hostname else n for n in self.state.nodes]
        return updated

    def replace_identity(
        self, kind: CertKind, identity: Identity, *, now: datetime, host: str | None = None
    ) -> None:
        """Install a new certificate and key (certificate regeneration, item 26-29).

        The ITLs are regenerated; the CTL is *not* (CUCM needs ``utils ctl update CTLFile``,
        whence the seed's warning before regeneration).
        """
        if kind is CertKind.ITLRECOVERY:
            self.state.itlrecovery = identity
        elif kind is CertKind.CAPF:
            self.state.capf = identity
            self._add_trusted(TrustStore.CAPF, identity.certificate, "own CAPF")
        else:
            field_name = {
                CertKind.CALLMANAGER: "callmanager",
                CertKind.TVS: "tvs",
                CertKind.TOMCAT: "tomcat",
            }[kind]
            self._set_node(host or self.publisher.hostname, **{field_name: identity})
        self._commit(now, itl=kind is not CertKind.TOMCAT)

    def _add_trusted(self, store: TrustStore, certificate: x509.Certificate, source: str) -> bool:
        entries = self.state.trust.setdefault(store, [])
        new = der(certificate)
        if any(der(e.certificate) == new for e in entries):
            return False
        entries.append(TrustEntry(certificate, source))
        return True

    def add_trusted(
        self, store: TrustStore, certificate: x509.Certificate, *, source: str, now: datetime
    ) -> bool:
        """Add a certificate to a trust store; False if it is already there.

        TVS reads the stores on every request, so the change is effective at once: the
        "restart TVS" step of item 34 needs no counterpart in the lab.
        """
        added = self._add_trusted(store, certificate, source)
        if added:
            self._commit(now)
        return added

    def remove_trusted(self, store: TrustStore, sha256_hex: str, *, now: datetime) -> bool:
        """Remove the certificate with this SHA-256 from a store; False if absent."""
        entries = self.state.trust.get(store, [])
        kept = [e for e in entries if e.sha256 != sha256_hex.lower()]
        if len(kept) == len(entries):
            return False
        self.state.trust[store] = kept
        self._commit(now)
        return True

    def begin_itl_reset(self, reset: ItlReset, *, now: datetime) -> None:
        """Start ``utils itl reset`` (item 29): ITLs re-signed with the reset key."""
        self.state.itl_reset = reset
        self._commit(now, itl=True)

    def restart_tftp(self, *, now: datetime, host: str | None = None) -> None:
        """Restart the TFTP service of ``host`` (default: every TFTP node)."""
        hosts = [host] if host is not None else list(self.tftp_hosts)
        for name in hosts:
            node = self.node(name)
            if node.runs_tftp:
                self.start_node(node.hostname, now=now)


class CachedSigner(Signer):
    """A :class:`Signer` whose name strings are computed once.

    The TFTP service signs thousands of configs with one key; recomputing the CUCM name
    strings for every header costs more than a quarter of an RSA signature.
    """

    @functools.cached_property
    def name(self) -> str:
        """Subject in CUCM's name-string form (header tag 4)."""
        return super().name

    @functools.cached_property
    def issuer(self) -> str:
        """Issuer in CUCM's name-string form (header tag 6)."""
        return super().issuer

    @functools.cached_property
    def serial(self) -> bytes:
        """Serial as raw magnitude bytes (header tag 5)."""
        return super().serial


def _signer(identity: Identity) -> CachedSigner:
    if not isinstance(identity.key, rsa.RSAPrivateKey):
        raise LabError(
            f"{identity.subject_string} has a non-RSA key; Cisco signed files are RSA only"
        )
    return CachedSigner(identity.certificate, identity.key)


# --- the lab ---------------------------------------------------------------------------------

"""The lab: the clusters of one emulated network, host-name resolution, and their services.

The top of :mod:`phone.cluster`: the data (:mod:`~phone.cluster.records`) and the clusters that
change it (:mod:`~phone.cluster.cluster`) know no service; each service (files, TVS, CAPF)
takes a cluster and a host; the :class:`Lab` owns the clusters and wires each to its services.
Loading and saving a lab folder is :mod:`phone.cluster.store`, beside this module.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from phone.catalog.loads import catalogue_images
from phone.cluster.capf import CapfService
from phone.cluster.cluster import Cluster
from phone.cluster.files import FileService
from phone.cluster.records import ClusterSpec, Node, RandomBytes
from phone.cluster.tvs import TvsService
from phone.errors import LabError
from phone.pki import KeySource

_MAX_NAME = 255  # the longest name the file service answers (phone.cluster.files)
_MAX_ENDPOINTS = 1024  # (cluster, node) pairs whose Endpoint a lab keeps (Lab._endpoint)


@functools.lru_cache(maxsize=1024)
def _host_key(host: str) -> str:
    """A host name as the lab's indexes hold it (a phone asks for the same few names)."""
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class Endpoint:
    """What a lab host name resolves to."""

    cluster: Cluster
    node: Node


class Lab:
    """A lab network: one or more clusters whose nodes resolve by host name.

    ``clock``, when set, is what TVS uses for client-certificate validity when a caller passes
    no ``now`` (a scenario runner sets it to its simulated clock); unset, TVS uses the time of
    the cluster's last change.
    """

    def __init__(
        self,
        clusters: Iterable[Cluster] = (),
        *,
        random: RandomBytes = os.urandom,
        firmware: Mapping[str, bytes] | None = None,
        path: Path | None = None,
    ) -> None:
        self._clusters: dict[str, Cluster] = {}
        self.random = random
        # Without a firmware folder a lab serves the built-in load catalogue (item 36).
        self.firmware: Mapping[str, bytes] = (
            firmware if firmware is not None else catalogue_images()
        )
        self.path = path
        self._clock: Callable[[], datetime] | None = None
        self._file_services: dict[Cluster, dict[str, FileService]] = {}
        self._capf_services: dict[Cluster, CapfService] = {}
        # Files a harness serves (serve_file): per cluster name and per node host name. The
        # file services hold these very dicts, so a change reaches a running server at once.
        self._served: dict[tuple[str, str | None], dict[str, tuple[str, bytes]]] = {}
        self._endpoints: dict[tuple[int, int], Endpoint] = {}
        for cluster in clusters:
            self._attach(cluster)

    def _attach(self, cluster: Cluster) -> None:
        if cluster.name in self._clusters:
            raise LabError(f"the lab already has a cluster called {cluster.name}")
        cluster.random = self.random
        cluster.firmware = self.firmware
        cluster.clock = self._clock
        self._clusters[cluster.name] = cluster
        cluster.device_removed.append(functools.partial(self._forget_device, cluster))

    @property
    def clock(self) -> Callable[[], datetime] | None:
        """The clock TVS falls back on (see the class docstring)."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime] | None) -> None:
        self._clock = clock
        for cluster in self._clusters.values():
            cluster.clock = clock

    @classmethod
    def create(
        cls,
        clusters: Sequence[ClusterSpec] = (ClusterSpec(),),
        *,
        now: datetime,
        keys: KeySource,
        capf_trust: Sequence[x509.Certificate] = (),
        firmware: Mapping[str, bytes] | None = None,
        random: RandomBytes = os.urandom,
    ) -> Lab:
        """An in-memory lab with ``clusters`` installed at ``now`` (fast with pooled keys)."""
        lab = cls(random=random, firmware=firmware)
        for spec in clusters:
            lab.add_cluster(spec, now=now, keys=keys, capf_trust=capf_trust)
        return lab

    def add_cluster(
        self,
        spec: ClusterSpec,
        *,
        now: datetime,
        keys: KeySource,
        capf_trust: Sequence[x509.Certificate] = (),
    ) -> Cluster:
        """Install another cluster in the lab (for migrations); it gets the next /16.

        Raises:
            LabError: the name is taken, or the spec is invalid.
        """
        if spec.name in self._clusters:
            raise LabError(f"the lab already has a cluster called {spec.name}")
        used = {int(c.publisher.ip.split(".")[1]) for c in self._clusters.values()}
        second = next(i for i in range(1, 255) if i not in used)
        cluster = Cluster.create(
            spec,
            now=now,
            keys=keys,
            ip_prefix=f"10.{second}",
            capf_trust=capf_trust,
            random=self.random,
            firmware=self.firmware,
        )
        self._attach(cluster)
        return cluster

    @property
    def clusters(self) -> tuple[Cluster, ...]:
        """Every cluster, in creation order."""
        return tuple(self._clusters.values())

    def cluster(self, name: str | None = None) -> Cluster:
        """The cluster called ``name``; without a name, the only cluster.

        Raises:
            LabError: no such cluster, or no name given while the lab holds several.
        """
        if name is None:
            if len(self._clusters) == 1:
                return next(iter(self._clusters.values()))
            if not self._clusters:
                raise LabError("the lab holds no cluster")
            names = ", ".join(self._clusters)
            raise LabError(f"the lab holds several clusters ({names}): name one with --cluster")
        cluster = self._clusters.get(name)
        if cluster is None:
            names = ", ".join(self._clusters) or "none"
            raise LabError(f"the lab has no cluster {name!r} (clusters: {names})")
        return cluster

    def resolve(self, host: str) -> Endpoint | None:
        """Which cluster and node answer at ``host``, or None.

        ``host`` is a full host name or an IP address; a short name (``cucm1``) resolves only
        when a single cluster has a node by that name, as a DNS search domain would not pick
        one of several.
        """
        # One pass: the first cluster whose node answers to ``host`` exactly wins; otherwise
        # the only cluster with a node answering to it (by short name), if there is one.
        key = _host_key(host)
        found: Endpoint | None = None
        count = 0
        for cluster in self._clusters.values():
            node = cluster._nodes_by_name().get(key)
            if node is None:
                continue
            if key in (node.hostname, node.ip):
                return self._endpoint(cluster, node)
            count += 1
            if found is None:
                found = self._endpoint(cluster, node)
        return found if count == 1 else None

    def _endpoint(self, cluster: Cluster, node: Node) -> Endpoint:
        # A fleet phone resolves about 25 names a boot, the same few: the Endpoint of a
        # (cluster, node) pair is made once. Kept by the objects' ids: an entry holds its
        # objects, so no other object can have those ids while it lives.
        ids = (id(cluster), id(node))
        endpoint = self._endpoints.get(ids)
        if endpoint is None:
            if len(self._endpoints) >= _MAX_ENDPOINTS:
                self._endpoints.clear()
            endpoint = Endpoint(cluster, node)
            self._endpoints[ids] = endpoint
        return endpoint

    # --- services -------------------------------------------------------------------------
    # The lab wires each cluster to its services: one file service per running TFTP node (it
    # caches signed files), one CAPF per cluster (it holds sessions and operation state), and
    # a TVS built per question (it keeps nothing between questions).

    def file_service(self, host: str) -> FileService | None:
        """The TFTP service at ``host``, or None if nothing serves files there."""
        endpoint = self.resolve(host)
        if endpoint is None:
            return None
        node = endpoint.node
        if not node.runs_tftp or not node.running:
            return None
        services = self._file_services.setdefault(endpoint.cluster, {})
        service = services.get(node.hostname)
        if service is None:
            cluster_name = endpoint.cluster.name
            served = (
                self._served.setdefault((cluster_name, node.hostname), {}),
                self._served.setdefault((cluster_name, None), {}),
            )
            service = FileService(endpoint.cluster, node.hostname, served)
            services[node.hostname] = service
        return service

    def serve_file(
        self, cluster: str | Cluster, name: str, data: bytes, *, host: str | None = None
    ) -> None:
        """Serve ``data`` as ``name`` from every TFTP node of ``cluster`` (or only ``host``).

        The file is added, or replaces the one the node would generate (a signed config, the
        ITL, a firmware image...), byte for byte and case-insensitively by name, over memory,
        TFTP and HTTP alike, until :meth:`unserve_file`. A node's own served file wins over
        the cluster's. Served files live in memory only: a lab folder does not keep them.

        Raises:
            LabError: no such cluster, ``host`` is not one of its TFTP nodes, or the name is
                empty or longer than a TFTP name can be.
        """
        key = self._served_key(cluster, name, host)
        if not isinstance(data, bytes | bytearray):
            raise LabError(f"serve_file needs the file's bytes, got {type(data).__name__}")
        self._served.setdefault(key, {})[name.lstrip("/").lower()] = (name.lstrip("/"), bytes(data))

    def unserve_file(self, cluster: str | Cluster, name: str, *, host: str | None = None) -> bool:
        """Stop serving ``name`` (as given to :meth:`serve_file`); False if it was not served.

        Raises:
            LabError: as :meth:`serve_file`.
        """
        key = self._served_key(cluster, name, host)
        return self._served.get(key, {}).pop(name.lstrip("/").lower(), None) is not None

    def _served_key(
        self, cluster: str | Cluster, name: str, host: str | None
    ) -> tuple[str, str | None]:
        target = self.cluster(cluster if isinstance(cluster, str) else cluster.name)
        if isinstance(cluster, Cluster) and cluster is not target:
            raise LabError(f"cluster {cluster.name} is not this lab's")
        stripped = name.lstrip("/")
        if not stripped or len(stripped) > _MAX_NAME:
            raise LabError(f"a served file needs a name of 1 to {_MAX_NAME} characters: {name!r}")
        if host is None:
            return (target.name, None)
        node = target.find_node(host)
        if node is None or not node.runs_tftp:
            hosts = ", ".join(target.tftp_hosts)
            raise LabError(f"{host} is not a TFTP node of cluster {target.name} ({hosts})")
        return (target.name, node.hostname)

    def capf_service(self, host: str) -> CapfService | None:
        """The CAPF at ``host`` (a cluster's publisher), or None if none answers there."""
        endpoint = self.resolve(host)
        if endpoint is None:
            return None
        cluster, node = endpoint.cluster, endpoint.node
        if node.hostname != cluster.publisher.hostname or not node.running:
            return None
        service = self._capf_services.get(cluster)
        if service is None:
            service = CapfService(cluster, node.hostname)
            self._capf_services[cluster] = service
        return service

    def tvs_service(self, host: str) -> TvsService | None:
        """The TVS at ``host``, or None if no running TVS answers there."""
        endpoint = self.resolve(host)
        if endpoint is None or not endpoint.node.runs_tvs or not endpoint.node.running:
            return None
        return TvsService(endpoint.cluster, endpoint.node.hostname)

    def _forget_device(self, cluster: Cluster, mac: str) -> None:
        for service in self._file_services.get(cluster, {}).values():
            service.forget_device(mac)

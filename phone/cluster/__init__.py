"""The emulated Unified CM lab: clusters that build, sign and serve what phones download.

Pure core (clock, randomness and keys come in as parameters), layered one way
(``docs/architecture.md``): the data (:mod:`~phone.cluster.records`, nodes, devices,
parameters, trust stores; :mod:`~phone.cluster.profiles`, :mod:`~phone.cluster.itl`,
:mod:`~phone.cluster.trunk`), the :class:`Cluster` that changes it
(:mod:`~phone.cluster.cluster`), the services that take a cluster and a host
(:mod:`~phone.cluster.files`, :mod:`~phone.cluster.tvs`, :mod:`~phone.cluster.capf`,
:mod:`~phone.cluster.registrar`, :mod:`~phone.cluster.certops`), and the :class:`Lab` that owns
clusters and wires their services (:mod:`~phone.cluster.lab`). :mod:`~phone.cluster.store` is
the lab folder on disk, the only module here that does I/O. See ``docs/cluster.md``.
"""

from __future__ import annotations

from phone.cluster.cluster import Cluster
from phone.cluster.files import ClientInfo, FileService, FileStats
from phone.cluster.itl import ItlHashDatabase, itl_hash
from phone.cluster.lab import Endpoint, Lab
from phone.cluster.profiles import DEFAULT_PROFILE, PROFILES, ReleaseProfile, get_profile
from phone.cluster.records import (
    PARAMETERS,
    ClusterSpec,
    Device,
    ItlReset,
    LogEntry,
    Node,
    Parameters,
    Registration,
    SecurityMode,
    TrustEntry,
    TrustStore,
)
from phone.cluster.tvs import DEFAULT_TTL, TvsService, TvsVerdict
from phone.mac import normalize_mac

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_TTL",
    "PARAMETERS",
    "PROFILES",
    "ClientInfo",
    "Cluster",
    "ClusterSpec",
    "Device",
    "Endpoint",
    "FileService",
    "FileStats",
    "ItlHashDatabase",
    "ItlReset",
    "Lab",
    "LogEntry",
    "Node",
    "Parameters",
    "Registration",
    "ReleaseProfile",
    "SecurityMode",
    "TrustEntry",
    "TrustStore",
    "TvsService",
    "TvsVerdict",
    "get_profile",
    "itl_hash",
    "normalize_mac",
]

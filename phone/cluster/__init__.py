"""The emulated Unified CM lab: clusters that build, sign and serve what phones download.

Pure core (clock, randomness and keys come in as parameters): :mod:`~phone.cluster.model`
(:class:`Lab`, :class:`Cluster`, nodes, devices, parameters, trust stores),
:mod:`~phone.cluster.profiles` (release profiles), :mod:`~phone.cluster.itl` (ITL/CTL content
and the ITL hash database), :mod:`~phone.cluster.files` (the TFTP file service),
:mod:`~phone.cluster.tvs` (the Trust Verification Service) and :mod:`~phone.cluster.certops`
(regeneration, bulk certificates, ITL reset). :mod:`~phone.cluster.store` is the lab folder on
disk, the only module here that does I/O. See ``docs/cluster.md``.
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

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

from datetime import datetime

from phone.cluster.files import ClientInfo, FileService, FileStats
from phone.cluster.itl import ItlHashDatabase, itl_hash
from phone.cluster.model import (
    PARAMETERS,
    Cluster,
    ClusterSpec,
    Device,
    Endpoint,
    ItlReset,
    Lab,
    LogEntry,
    Node,
    Parameters,
    Registration,
    SecurityMode,
    TrustEntry,
    TrustStore,
    normalize_mac,
)
from phone.cluster.profiles import DEFAULT_PROFILE, PROFILES, ReleaseProfile, get_profile
from phone.cluster.tvs import DEFAULT_TTL, TvsService, TvsVerdict
from phone.pki import FreshKeys, KeySource
from phone.vendor import manufacturing_cas

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
    "default_lab",
    "get_profile",
    "itl_hash",
    "normalize_mac",
]


def default_lab(now: datetime, *, keys: KeySource | None = None) -> Lab:
    """The embedded lab ``vphone boot`` uses when no server is named.

    One cluster ``cluster1`` on the default release (14.x), one node running CallManager, TFTP
    and TVS (``cucm1.cluster1.lab``), non-secure mode, autoregistration on, and the emulated
    manufacturing CAs in its CAPF-trust store. ``keys`` defaults to fresh RSA keys.
    """
    return Lab.create(
        [ClusterSpec()],
        now=now,
        keys=keys if keys is not None else FreshKeys(),
        capf_trust=manufacturing_cas(),
    )

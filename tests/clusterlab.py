"""Helpers for the cluster tests (not a test module): fast labs and phone identities."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from keypool import pooled_keys

from phone.cluster.cluster import Cluster
from phone.cluster.files import FileService
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, RandomBytes
from phone.cluster.tvs import TvsService
from phone.pki import Identity, issue
from phone.vendor import manufacturing_ca, manufacturing_cas

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def seeded_random(seed: int = 0) -> RandomBytes:
    """A deterministic stand-in for ``os.urandom``."""
    return random.Random(seed).randbytes


def make_lab(*specs: ClusterSpec, now: datetime = NOW) -> Lab:
    """An in-memory lab over the pooled test keys (default: one 14.x cluster)."""
    return Lab.create(
        list(specs) or [ClusterSpec()],
        now=now,
        keys=pooled_keys(),
        capf_trust=manufacturing_cas(),
        random=seeded_random(),
    )


def phone_mic(mac: str, *, family: str = "88xx", now: datetime = NOW) -> Identity:
    """A phone's manufacturer-installed certificate and key (issued by the emulated vendor)."""
    key = pooled_keys().rsa(2048)
    assert isinstance(key, RSAPrivateKey)
    certificate = issue(manufacturing_ca(family), f"CP-8841-SEP{mac}", key.public_key(), now=now)
    return Identity(certificate, key)


def file_service(cluster: Cluster, host: str) -> FileService | None:
    """A file service for ``host`` of ``cluster`` alone (the lab's ``file_service`` caches one
    per node; a test that holds only a cluster builds its own, with the same None rules)."""
    node = cluster.find_node(host)
    if node is None or not node.runs_tftp or not node.running:
        return None
    return FileService(cluster, node.hostname)


def tvs_service(cluster: Cluster, host: str) -> TvsService | None:
    """The TVS of ``host`` in ``cluster``, or None where no TVS runs (as ``Lab.tvs_service``)."""
    node = cluster.find_node(host)
    if node is None or not node.runs_tvs or not node.running:
        return None
    return TvsService(cluster, node.hostname)

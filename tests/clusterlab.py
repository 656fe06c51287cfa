"""Helpers for the cluster tests (not a test module): fast labs and phone identities."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from keypool import pooled_keys

from phone.cluster.model import ClusterSpec, Lab, RandomBytes
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

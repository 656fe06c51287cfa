"""The Python API for test harnesses: labs, phones, and what happened to them.

A small surface, in the style of trustme::

    from phone.api import create_lab, create_phone

    lab = create_lab("cluster1")                   # one 14.x cluster, in memory
    phone = create_phone(lab, mac="001122334455")  # an 8841 whose TFTP option names cluster1
    phone.subscribe(print)                         # see every decision as it happens
    assert phone.boot() is State.REGISTERED
    print(phone.status, phone.trace[-1].reason)

Everything runs in memory; nothing touches the network or the disk unless you pass a
``DirectoryFlash`` or load a lab folder with :meth:`Lab.load`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from phone.catalog.models import DEFAULT_MODEL
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec
from phone.device.flash import Flash
from phone.device.machine import State
from phone.device.phone import VirtualPhone, utc_now
from phone.device.port import Backend
from phone.net.memory import MemoryBackend
from phone.pki import FreshKeys, KeySource
from phone.vendor import manufacturing_cas

__all__ = ["ClusterSpec", "Lab", "State", "VirtualPhone", "create_lab", "create_phone"]


def create_lab(
    *clusters: ClusterSpec | str,
    now: datetime | None = None,
    keys: KeySource | None = None,
) -> Lab:
    """An in-memory lab with ``clusters`` (names or full specs; default one 14.x cluster).

    Pass ``keys`` (a :class:`phone.pki.PooledKeys`) to skip RSA key generation in tests.
    """
    specs = [ClusterSpec(name=c) if isinstance(c, str) else c for c in clusters] or [ClusterSpec()]
    return Lab.create(
        specs,
        now=now or datetime.now(UTC),
        keys=keys or FreshKeys(),
        capf_trust=manufacturing_cas(),
    )


def create_phone(
    lab: Lab,
    *,
    mac: str,
    cluster: str | None = None,
    model: str = DEFAULT_MODEL,
    flash: Flash | None = None,
    clock: Callable[[], datetime] = utc_now,
    backend: Backend | None = None,
    protocol: str | None = None,
) -> VirtualPhone:
    """A phone whose TFTP option points at ``cluster`` (default: the lab's first cluster).

    Its backend is the lab in memory unless ``backend`` is given (for instance a fault
    injector wrapping the memory backend). ``protocol`` is ``"sip"`` or ``"sccp"`` (default:
    the model's, SIP where it runs both; docs/sccp.md).
    """
    target = lab.cluster(cluster) if cluster is not None else lab.clusters[0]
    return VirtualPhone(
        mac=mac,
        model=model,
        backend=backend or MemoryBackend(lab, clock=clock),
        tftp=target.tftp_hosts[0],
        flash=flash,
        clock=clock,
        protocol=protocol,
    )

"""The Python API for test harnesses: labs, phones, your own files, and what happened to them.

A small surface, in the style of trustme::

    from phone.api import create_lab, create_phone, decision_on

    lab = create_lab("cluster1")                   # one 14.x cluster, in memory
    phone = create_phone(lab, mac="001122334455", provision=True)  # an 8841, a device of cluster1
    lab.serve_file("cluster1", "SEP001122334455.cnf.xml.sgn", my_signed_config)
    phone.subscribe(print)                         # see every decision as it happens
    phone.boot()
    print(decision_on(phone, "SEP001122334455.cnf.xml.sgn").decision)   # accepted / rejected

Everything runs in memory; nothing touches the network or the disk unless you pass a
``DirectoryFlash`` or load a lab folder with :meth:`Lab.load`.

What this module promises (``docs/harness.md``, "The stable surface") is versioned by
:data:`API_VERSION`; everything else in ``phone`` may change without notice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from phone.catalog.models import DEFAULT_MODEL
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device, TrustStore
from phone.device.flash import Flash
from phone.device.machine import State
from phone.device.phone import TraceEntry, VirtualPhone, utc_now
from phone.device.port import Backend
from phone.net.memory import MemoryBackend
from phone.pki import FreshKeys, KeySource
from phone.vendor import image_signing_key as _vendor_image_key
from phone.vendor import manufacturing_cas

__all__ = [
    "API_VERSION",
    "ClusterSpec",
    "Device",
    "Lab",
    "State",
    "TraceEntry",
    "TrustStore",
    "VirtualPhone",
    "create_lab",
    "create_phone",
    "decision_on",
    "image_signing_key",
]

API_VERSION: Final = (1, 1)
"""The version of the promised surface (docs/harness.md): (major, minor). The major number
changes when a promised name goes or changes meaning; the minor one when names are added."""

# ITLSEP<MAC>.tlv is the ITLFile.tlv a phone asks for first (item 2): one file, two names.
_TRUST_NAME = re.compile(r"(itl|ctl)(?:file|sep[0-9a-f]{12})\.tlv")


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
    provision: bool = False,
) -> VirtualPhone:
    """A phone whose TFTP option points at ``cluster`` (default: the lab's first cluster).

    Its backend is the lab in memory unless ``backend`` is given (for instance a fault
    injector wrapping the memory backend). ``protocol`` is ``"sip"`` or ``"sccp"`` (default:
    the model's, SIP where it runs both; docs/sccp.md). With ``provision`` the cluster gets a
    device record for the phone (its MAC and model) unless it has one, so the phone fetches
    ``SEP<MAC>.cnf.xml(.sgn)``; without, an unknown phone falls back to ``XMLDefault.cnf.xml``
    (item 6).
    """
    target = lab.cluster(cluster) if cluster is not None else lab.clusters[0]
    phone = VirtualPhone(
        mac=mac,
        model=model,
        backend=backend or MemoryBackend(lab, clock=clock),
        tftp=target.tftp_hosts[0],
        flash=flash,
        clock=clock,
        protocol=protocol,
    )
    if provision and target.device(phone.mac) is None:
        target.add_device(Device(phone.mac, model=phone.model.name), now=clock())
    return phone


def decision_on(phone: VirtualPhone, name: str) -> TraceEntry:
    """The phone's latest decision about the file ``name`` (case-insensitive).

    ``ITLFile.tlv`` also matches the ``ITLSEP<MAC>.tlv`` a phone asks for first (and
    ``CTLFile.tlv`` its ``CTLSEP<MAC>.tlv``). Ask this rather than the phone's state: a phone
    that refused a new config keeps registering with the last good one.

    Raises:
        LookupError: the phone never decided about that file (it asked for another one, for
            instance ``XMLDefault.cnf.xml.sgn`` because the cluster has no device for it);
            the message names the files it did decide about.
    """

    def key(text: str) -> str:
        lower = text.lstrip("/").lower()
        trust = _TRUST_NAME.fullmatch(lower)
        return f"{trust[1]}file.tlv" if trust is not None else lower

    wanted = key(name)
    for entry in reversed(phone.trace):
        if entry.file is not None and key(entry.file) == wanted:
            return entry
    seen = sorted({e.file for e in phone.trace if e.file is not None})
    raise LookupError(
        f"phone {phone.mac} made no decision about {name}; it decided about: "
        f"{', '.join(seen) or 'no file'}"
    )


def image_signing_key(key_id: str) -> RSAPrivateKey:
    """The emulated vendor's image-signing key ``key_id`` (``phone.known_image_keys`` lists
    those a phone's running firmware accepts): sign your own test image with it to have it
    accepted (docs/harness.md, docs/firmware.md). Lab keys: they protect nothing.

    Raises:
        KeyError: no such key.
    """
    return _vendor_image_key(key_id)

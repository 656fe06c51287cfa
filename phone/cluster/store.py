"""The lab folder on disk: the only module of :mod:`phone.cluster` that does file I/O.

Layout::

    DIR/
      lab.json                      marker: {"format": "vphone-lab", "version": 1}
      clusters/<name>/cluster.json  everything about one cluster except private keys
      clusters/<name>/keys/*.pem    private keys (PEM PKCS#8, unencrypted, mode 0600)
      firmware/                     optional: firmware files every TFTP node serves
      .lock                         advisory lock held while a command changes the lab

A lab folder is a user's data and is never left half-written:

* every file is written to a temporary file in the same folder, fsynced and renamed over the
  old one (:func:`phone.pki.write_private_file`);
* a cluster's key files are named after their certificate's serial and written *before*
  ``cluster.json``, which references them; a crash leaves at most unreferenced key files,
  removed by the next save. ``cluster.json`` is the commit point of every change;
* a cluster folder without ``cluster.json`` (an interrupted ``lab init``) is ignored;
* commands that change the lab hold ``.lock`` (``fcntl.flock``) from load to save.

Private keys are stored unencrypted, the explicit ``allow_unencrypted`` case of
:func:`phone.pki.key_to_pem`: the lab's keys protect nothing but the lab. ``cluster.json`` holds
digest passwords, so it is mode 0600 as well.

The SIP trunk side (items 43-44) lives in ``cluster.json`` too, so it is saved by the same
atomic rename: ``trunk_profiles``, ``trunks`` (each naming its profile), ``application_users``
(name, realm, HA1 and allowed request types: never a password, seed "Digest Authentication")
and ``sip_realms`` (realm, user and password: what the cluster answers a trunk's challenge
with; CUCM stores that password encrypted, the lab keeps it as it is). A file written before
they existed loads with none; a trunk naming a profile the file does not hold is damage.

**Following a folder from a long-running process** (``vphone lab serve``). A process that
keeps a lab in memory while other commands change the folder uses three things:

* :func:`lab_version`: the SHA-256 of every ``cluster.json`` (the commit point), so "did
  another command commit something?" is a cheap comparison; :func:`read_lab` loads the lab and
  returns the version of the very bytes it parsed.
* :func:`lab_lock`: the lock every command holds from load to save.
* :func:`baseline` and :func:`rebase`: what the process changed since it loaded or saved,
  re-applied onto a fresh load of the folder. **The rule**: a long-running process changes
  only what phones do to a cluster: registrations, ITL File Status rows (item 30), device
  records (auto-registration creates one, CAPF records its outcome and the new LSC) and log
  lines. Registrations and ITL reports are events that happened: they are carried over
  unless the device is gone from the folder. A device record the process created is added
  unless the folder now holds one with that MAC; a device field the process changed is
  carried over unless the folder changed that field too (the folder wins: it is the user's
  configuration). Log lines are appended after the folder's, renumbered. Everything else
  (nodes, certificates, parameters, trust stores, ITLs, trunks) comes from the folder.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phone.catalog.loads import catalogue_images
from phone.cluster import capf
from phone.cluster.cluster import Cluster
from phone.cluster.itl import DeviceHashRow, ItlHashDatabase, TftpHashRow
from phone.cluster.lab import Lab
from phone.cluster.records import (
    LOG_LIMIT,
    ClusterSpec,
    ClusterState,
    Device,
    ItlReset,
    LogEntry,
    Node,
    Parameters,
    RandomBytes,
    SecurityMode,
    TrustEntry,
    TrustStore,
)
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    TrunkConfig,
    TrunkSecurityProfile,
)
from phone.errors import FormatError, LabError, UsageError, VphoneError
from phone.pki import (
    Identity,
    KeySource,
    PrivateKey,
    cert_from_pem,
    cert_to_pem,
    key_from_pem,
    key_to_pem,
    write_private_file,
)

__all__ = [
    "CLUSTER_FILE",
    "LAB_FILE",
    "Baseline",
    "ClusterBaseline",
    "DirectoryFirmware",
    "LabVersion",
    "Rebased",
    "baseline",
    "changed_since",
    "edit_lab",
    "init_lab",
    "is_lab",
    "lab_lock",
    "lab_version",
    "load_lab",
    "read_lab",
    "rebase",
    "save_changes",
    "save_lab",
]

LAB_FILE = "lab.json"
CLUSTER_FILE = "cluster.json"
_FORMAT = "vphone-lab"
_CLUSTER_FORMAT = "vphone-cluster"
_VERSION = 1


def is_lab(path: Path) -> bool:
    """True if ``path`` is a lab folder."""
    return (path / LAB_FILE).is_file()


class DirectoryFirmware(Mapping[str, bytes]):
    """Firmware files in a folder, read when a phone asks for one (not loaded up front).

    Names the folder does not hold come from ``fallback`` (the built-in load catalogue), so a
    lab serves every catalogue load and a file dropped in the folder overrides one.
    """

    def __init__(self, folder: Path, fallback: Mapping[str, bytes] | None = None) -> None:
        self.folder = folder
        self.fallback: Mapping[str, bytes] = fallback if fallback is not None else {}

    def _names(self) -> list[str]:
        own = [p.name for p in self.folder.iterdir() if p.is_file()] if self.folder.is_dir() else []
        return sorted(set(own) | set(self.fallback))

    def __getitem__(self, name: str) -> bytes:
        if "/" in name or "\\" in name or name.startswith(".") or not name:
            raise KeyError(name)  # never leave the folder
        path = self.folder / name
        try:
            return path.read_bytes()
        except OSError:
            return self.fallback[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._names()


@contextlib.contextmanager
def lab_lock(path: Path) -> Iterator[None]:
    """Hold the lab folder's lock (``DIR/.lock``, an exclusive ``flock``) for the block.

    Every command that changes the lab holds it from load to save (:func:`edit_lab`), so a
    process holding it sees no half-finished change and makes none visible.
    """
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _json_bytes(value: object) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=False) + "\n").encode()


# --- encoding --------------------------------------------------------------------------------


def _key_name(label: str, identity: Identity) -> str:
    return f"{label}-{identity.serial_hex}.pem"


class _Writer:
    """Collects the key files a cluster document references."""

    def __init__(self) -> None:
        self.keys: dict[str, Identity] = {}

    def identity(self, label: str, identity: Identity) -> dict[str, str]:
        name = _key_name(label, identity)
        self.keys[name] = identity
        return {"certificate": cert_to_pem(identity.certificate).decode(), "key": name}


def _cert_text(certificate: x509.Certificate | None) -> str | None:
    return None if certificate is None else cert_to_pem(certificate).decode()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _kinds(kinds: frozenset[RequestType]) -> list[str]:
    return [k.value for k in RequestType if k in kinds]


def _encode_sip(state: ClusterState) -> dict[str, Any]:
    """The SIP trunk side of a cluster document (items 43-44; module docstring)."""
    return {
        "trunk_profiles": [
            {
                "name": p.name,
                "allowed": _kinds(p.allowed),
                "digest": p.digest,
                "application_authorization": p.application_authorization,
                "challenge": p.challenge,
            }
            for p in state.trunk_profiles.values()
        ],
        "trunks": [
            {"name": t.name, "addresses": sorted(t.addresses), "profile": t.profile}
            for t in state.trunks.values()
        ],
        "application_users": [
            {"name": u.name, "realm": u.realm, "ha1": u.ha1, "allowed": _kinds(u.allowed)}
            for u in state.application_users.values()
        ],
        "sip_realms": [
            {"realm": r.realm, "user": r.user, "password": r.password}
            for r in state.sip_realms.values()
        ],
    }


def _decode_kinds(value: object) -> frozenset[RequestType]:
    if not isinstance(value, list):
        raise LabError(f"expected a list of request types, got {value!r}")
    return frozenset(RequestType.parse(str(v)) for v in value)


def _decode_sip(
    document: Mapping[str, Any],
) -> tuple[
    dict[str, TrunkSecurityProfile],
    dict[str, TrunkConfig],
    dict[str, ApplicationUser],
    dict[str, SipRealm],
]:
    """The SIP trunk side of a cluster document; absent keys (older files) mean none.

    Raises:
        LabError: an invalid entry, a name given twice, or a trunk naming a missing profile.
    """

    def unique(kind: str, names: list[str]) -> None:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise LabError(f"{kind} {', '.join(repeated)} appears more than once")

    profiles = [
        TrunkSecurityProfile(
            name=str(p["name"]),
            allowed=_decode_kinds(p["allowed"]),
            digest=bool(p["digest"]),
            application_authorization=bool(p["application_authorization"]),
            challenge=int(p["challenge"]),
        )
        for p in document.get("trunk_profiles", [])
    ]
    trunks = [
        TrunkConfig(str(t["name"]), frozenset(str(a) for a in t["addresses"]), str(t["profile"]))
        for t in document.get("trunks", [])
    ]
    users = [
        ApplicationUser(str(u["name"]), str(u["realm"]), str(u["ha1"]), _decode_kinds(u["allowed"]))
        for u in document.get("application_users", [])
    ]
    realms = [
        SipRealm(str(r["realm"]), str(r["user"]), str(r["password"]))
        for r in document.get("sip_realms", [])
    ]
    unique("trunk security profile", [p.name for p in profiles])
    unique("trunk", [t.name for t in trunks])
    unique("application user", [u.name for u in users])
    unique("SIP realm", [r.realm for r in realms])
    known = {p.name for p in profiles}
    for trunk in trunks:
        if trunk.profile not in known:
            raise LabError(f"trunk {trunk.name} names the missing profile {trunk.profile!r}")
    return (
        {p.name: p for p in profiles},
        {t.name: t for t in trunks},
        {u.name: u for u in users},
        {r.realm: r for r in realms},
    )


def _encode_cluster(state: ClusterState) -> tuple[dict[str, Any], dict[str, Identity]]:
    w = _Writer()
    nodes = [
        {
            "hostname": n.hostname,
            "ip": n.ip,
            "runs_callmanager": n.runs_callmanager,
            "runs_tftp": n.runs_tftp,
            "runs_tvs": n.runs_tvs,
            "running": n.running,
            "certificates": {
                "CallManager": w.identity(f"{n.hostname}-CallManager", n.callmanager),
                "TVS": w.identity(f"{n.hostname}-TVS", n.tvs),
                "Tomcat": w.identity(f"{n.hostname}-Tomcat", n.tomcat),
            },
        }
        for n in state.nodes
    ]
    devices = [
        {
            "mac": d.mac,
            "model": d.model,
            "security_mode": d.security_mode.label,
            "digest_user": d.digest_user,
            "digest_password": d.digest_password,
            "exclude_digest_credentials": d.exclude_digest_credentials,
            "load": d.load,
            "encrypt_config": d.encrypt_config,
            "certificate": _cert_text(d.certificate),
            "autoregistered": d.autoregistered,
            "changed_at": d.changed_at,
            "digest_authentication": d.digest_authentication,
            "capf": capf.pending_to_json(d.capf),
            "capf_result": capf.result_to_json(d.capf_result),
        }
        for d in state.devices.values()
    ]
    reset = state.itl_reset
    document: dict[str, Any] = {
        "format": _CLUSTER_FORMAT,
        "version": _VERSION,
        "name": state.name,
        "profile": state.profile,
        "domain": state.domain,
        "mixed_mode": state.mixed_mode,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "context_changed_at": state.context_changed_at,
        "context_key": state.context_key,
        "next_seq": state.next_seq,
        "parameters": dataclasses.asdict(state.parameters),
        "nodes": nodes,
        "itlrecovery": w.identity("ITLRecovery", state.itlrecovery),
        "capf": w.identity("CAPF", state.capf),
        "devices": devices,
        "trust_stores": {
            store.value: [
                {"certificate": cert_to_pem(e.certificate).decode(), "source": e.source}
                for e in state.trust.get(store, [])
            ]
            for store in TrustStore
        },
        "itl_files": {host: _b64(data) for host, data in state.itl_files.items()},
        "ctl_file": _b64(state.ctl_file),
        "itl_hashes": {
            "tftp": [dataclasses.asdict(r) for r in state.hashes.tftp.values()],
            "devices": [dataclasses.asdict(r) for r in state.hashes.devices.values()],
        },
        "itl_reset": None
        if reset is None
        else {
            "mode": reset.mode,
            "hosts": sorted(reset.hosts),
            "remote": None if reset.remote is None else w.identity("itl-reset", reset.remote),
        },
        "registrations": dict(state.registrations),
        "log": [dataclasses.asdict(e) for e in state.log],
        **_encode_sip(state),
    }
    return document, w.keys


class _Reader:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.keys = folder / "keys"

    def identity(self, value: Mapping[str, Any]) -> Identity:
        certificate = cert_from_pem(str(value["certificate"]).encode())
        name = str(value["key"])
        if "/" in name or name.startswith("."):
            raise LabError(f"{self.folder}: bad key file name {name!r}")
        return Identity(certificate, _load_key((self.keys / name).read_bytes()))


def _load_key(data: bytes) -> PrivateKey:
    """Load a key the lab wrote itself.

    The RSA consistency check costs about 40 ms per key, which would dominate every CLI
    command; the key is matched against its certificate by :class:`Identity` instead, and a
    broken key can only produce signatures nobody accepts. Encrypted or foreign keys go
    through :func:`phone.pki.key_from_pem`.
    """
    if b"ENCRYPTED" in data:
        return key_from_pem(data, None)  # raises DecryptionError: the lab never encrypts
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        return key_from_pem(data, None)  # raises the typed error
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key_from_pem(data, None)
    return key


def _cert(value: object) -> x509.Certificate | None:
    return None if value is None else cert_from_pem(str(value).encode())


def _unb64(value: object) -> bytes | None:
    return None if value is None else base64.b64decode(str(value), validate=True)


def _decode_cluster(folder: Path, document: object) -> ClusterState:
    if not isinstance(document, dict) or document.get("format") != _CLUSTER_FORMAT:
        raise LabError(f"{folder / CLUSTER_FILE} is not a vphone cluster file")
    if document.get("version") != _VERSION:
        raise LabError(f"{folder / CLUSTER_FILE}: unsupported version {document.get('version')!r}")
    r = _Reader(folder)
    nodes = [
        Node(
            hostname=n["hostname"],
            ip=n["ip"],
            callmanager=r.identity(n["certificates"]["CallManager"]),
            tvs=r.identity(n["certificates"]["TVS"]),
            tomcat=r.identity(n["certificates"]["Tomcat"]),
            runs_callmanager=bool(n["runs_callmanager"]),
            runs_tftp=bool(n["runs_tftp"]),
            runs_tvs=bool(n["runs_tvs"]),
            running=bool(n["running"]),
        )
        for n in document["nodes"]
    ]
    devices = {
        d["mac"]: Device(
            mac=d["mac"],
            model=d["model"],
            security_mode=SecurityMode.parse(d["security_mode"]),
            digest_user=d["digest_user"],
            digest_password=d["digest_password"],
            exclude_digest_credentials=bool(d["exclude_digest_credentials"]),
            load=d["load"],
            encrypt_config=bool(d["encrypt_config"]),
            certificate=_cert(d["certificate"]),
            autoregistered=bool(d["autoregistered"]),
            changed_at=int(d["changed_at"]),
            digest_authentication=bool(d.get("digest_authentication", False)),
            capf=capf.pending_from_json(d.get("capf")),
            capf_result=capf.result_from_json(d.get("capf_result")),
        )
        for d in document["devices"]
    }
    trust = {
        TrustStore.parse(name): [
            TrustEntry(cert_from_pem(str(e["certificate"]).encode()), str(e["source"]))
            for e in entries
        ]
        for name, entries in document["trust_stores"].items()
    }
    hashes = ItlHashDatabase(
        (TftpHashRow(**row) for row in document["itl_hashes"]["tftp"]),
        (DeviceHashRow(**row) for row in document["itl_hashes"]["devices"]),
    )
    reset_doc = document["itl_reset"]
    reset = (
        None
        if reset_doc is None
        else ItlReset(
            str(reset_doc["mode"]),
            frozenset(reset_doc["hosts"]),
            None if reset_doc["remote"] is None else r.identity(reset_doc["remote"]),
        )
    )
    trunk_profiles, trunks, application_users, sip_realms = _decode_sip(document)
    itl_files: dict[str, bytes] = {}
    for host, text in document["itl_files"].items():
        data = _unb64(text)
        if data is not None:
            itl_files[host] = data
    return ClusterState(
        name=str(document["name"]),
        profile=str(document["profile"]),
        domain=str(document["domain"]),
        nodes=nodes,
        itlrecovery=r.identity(document["itlrecovery"]),
        capf=r.identity(document["capf"]),
        parameters=Parameters(**document["parameters"]),
        mixed_mode=bool(document["mixed_mode"]),
        devices=devices,
        trust=trust,
        itl_files=itl_files,
        ctl_file=_unb64(document["ctl_file"]),
        hashes=hashes,
        itl_reset=reset,
        registrations={str(k): int(v) for k, v in document["registrations"].items()},
        log=[LogEntry(**e) for e in document["log"]],
        created_at=int(document["created_at"]),
        updated_at=int(document["updated_at"]),
        context_changed_at=int(document["context_changed_at"]),
        context_key=str(document["context_key"]),
        next_seq=int(document["next_seq"]),
        trunk_profiles=trunk_profiles,
        trunks=trunks,
        application_users=application_users,
        sip_realms=sip_realms,
    )


# --- loading and saving ----------------------------------------------------------------------


def _cluster_folders(path: Path) -> list[Path]:
    root = path / "clusters"
    if not root.is_dir():
        return []
    return [p for p in sorted(root.iterdir()) if (p / CLUSTER_FILE).is_file()]


LabVersion: TypeAlias = Mapping[str, str]
"""What a lab folder holds: cluster folder name -> SHA-256 (hex) of its ``cluster.json``."""


def lab_version(path: Path) -> dict[str, str]:
    """The version of the lab folder at ``path`` now (:data:`LabVersion`).

    ``cluster.json`` is the commit point of every change (module docstring), so two versions
    differ exactly when a command committed something, or added or removed a cluster, in
    between; content hashes do not depend on the file system's time stamp resolution. Reading
    without :func:`lab_lock` is safe (files are replaced by atomic renames) but only a version
    read under the lock is certain to describe one finished change.
    """
    version: dict[str, str] = {}
    for folder in _cluster_folders(path):
        with contextlib.suppress(FileNotFoundError):  # removed since the folder was listed
            version[folder.name] = hashlib.sha256((folder / CLUSTER_FILE).read_bytes()).hexdigest()
    return version


def load_lab(path: Path, *, random: RandomBytes = os.urandom) -> Lab:
    """Load the lab folder at ``path``.

    Raises:
        UsageError: ``path`` is not a lab folder.
        LabError: a cluster file is corrupt or from an unknown version.
    """
    return read_lab(path, random=random)[0]


def read_lab(path: Path, *, random: RandomBytes = os.urandom) -> tuple[Lab, dict[str, str]]:
    """Load the lab folder at ``path`` and return it with the version of the bytes it parsed
    (:func:`lab_version`; hold :func:`lab_lock` to compare it with the folder's).

    Raises:
        UsageError: ``path`` is not a lab folder.
        LabError: a cluster file is corrupt or from an unknown version.
    """
    if not is_lab(path):
        raise UsageError(f"{path} is not a vphone lab folder (create one with `vphone lab init`)")
    try:
        marker = json.loads((path / LAB_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{path / LAB_FILE} cannot be read: {exc}") from None
    if not isinstance(marker, dict) or marker.get("format") != _FORMAT:
        raise LabError(f"{path / LAB_FILE} is not a vphone lab marker")
    states: list[ClusterState] = []
    version: dict[str, str] = {}
    for folder in _cluster_folders(path):
        try:
            raw = (folder / CLUSTER_FILE).read_bytes()
            version[folder.name] = hashlib.sha256(raw).hexdigest()
            states.append(_decode_cluster(folder, json.loads(raw)))
        except (OSError, ValueError, KeyError, TypeError, FormatError) as exc:
            raise LabError(f"{folder / CLUSTER_FILE} is damaged: {exc}") from None
        except VphoneError as exc:
            raise LabError(f"{folder / CLUSTER_FILE}: {exc}") from None
    states.sort(key=lambda s: (s.created_at, s.name))
    lab = Lab(
        random=random,
        firmware=DirectoryFirmware(path / "firmware", catalogue_images()),
        path=path,
    )
    for state in states:
        cluster = Cluster(state, random=random)
        cluster.saved_revision = cluster.revision
        lab._attach(cluster)
    return lab, version


def _save_cluster(path: Path, cluster: Cluster) -> None:
    folder = path / "clusters" / cluster.name
    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    document, identities = _encode_cluster(cluster.state)
    for name, identity in identities.items():
        target = keys / name
        if not target.exists():
            write_private_file(target, key_to_pem(identity.key, None, allow_unencrypted=True))
    # The commit point: the document referencing the keys written above.
    write_private_file(folder / CLUSTER_FILE, _json_bytes(document))
    for stale in keys.glob("*.pem"):
        if stale.name not in identities:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    cluster.saved_revision = cluster.revision


def save_lab(lab: Lab, path: Path | None = None) -> list[str]:
    """Write every cluster changed since it was loaded or saved; return their names.

    Raises:
        UsageError: no ``path`` and the lab was not loaded from a folder.
    """
    target = path or lab.path
    if target is None:
        raise UsageError("this lab lives in memory only; give a folder to save it to")
    target.mkdir(parents=True, exist_ok=True)
    if not is_lab(target):
        write_private_file(target / LAB_FILE, _json_bytes({"format": _FORMAT, "version": _VERSION}))
    saved: list[str] = []
    for cluster in lab.clusters:
        if cluster.saved_revision != cluster.revision or path is not None:
            _save_cluster(target, cluster)
            saved.append(cluster.name)
    lab.path = target
    return saved


@contextlib.contextmanager
def edit_lab(path: Path, *, random: RandomBytes = os.urandom) -> Iterator[Lab]:
    """Lock the lab, load it, let the caller change it, and save what changed.

    Nothing is saved if the body raises.
    """
    if not is_lab(path):
        raise UsageError(f"{path} is not a vphone lab folder (create one with `vphone lab init`)")
    with lab_lock(path):
        lab = load_lab(path, random=random)
        yield lab
        save_lab(lab)


def init_lab(
    path: Path,
    spec: ClusterSpec,
    *,
    now: datetime,
    keys: KeySource,
    capf_trust: Sequence[x509.Certificate] = (),
    random: RandomBytes = os.urandom,
) -> Lab:
    """Create the lab folder ``path`` (if needed) and install a cluster in it.

    Raises:
        UsageError: ``path`` exists and is neither empty nor a lab folder.
        LabError: the cluster name is taken or the spec is invalid.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder")
    if path.is_dir() and not is_lab(path) and any(path.iterdir()):
        raise UsageError(f"{path} is not empty and not a lab folder; pick another folder")
    path.mkdir(parents=True, exist_ok=True)
    (path / "firmware").mkdir(exist_ok=True)
    if not is_lab(path):
        write_private_file(path / LAB_FILE, _json_bytes({"format": _FORMAT, "version": _VERSION}))
    with lab_lock(path):
        lab = load_lab(path, random=random)
        lab.add_cluster(spec, now=now, keys=keys, capf_trust=capf_trust)
        save_lab(lab)
    return lab


# --- what a long-running process changed, carried onto a fresh load (module docstring) --------


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
            _save_cluster(lab.path, cluster)
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
    counts = dict.fromkeys(("device", "registration", "ITL report", "log line"), 0)

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

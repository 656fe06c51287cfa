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
  configuration). SIP digest throttle records (:mod:`phone.cluster.authguard`) changed by the
  process are carried over as they are (only servers change them). Log lines are appended
  after the folder's, renumbered. Everything else
  (nodes, certificates, parameters, trust stores, ITLs, trunks) comes from the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeAlias

from cryptography import x509

from phone.catalog.loads import catalogue_images
from phone.cluster.cluster import Cluster
from phone.cluster.codec import (
    CLUSTER_FILE,
    FORMAT,
    LAB_FILE,
    VERSION,
    decode_cluster,
    encode_cluster,
    json_bytes,
)
from phone.cluster.lab import Lab
from phone.cluster.records import (
    ClusterSpec,
    ClusterState,
    RandomBytes,
)
from phone.errors import FormatError, LabError, UsageError, VphoneError
from phone.pki import (
    KeySource,
    key_to_pem,
    private_folder,
    sweep_temporaries,
    write_private_file,
)

__all__ = [
    "CLUSTER_FILE",
    "LAB_FILE",
    "DirectoryFirmware",
    "LabVersion",
    "edit_lab",
    "init_lab",
    "is_lab",
    "lab_lock",
    "lab_version",
    "load_lab",
    "read_lab",
    "save_cluster",
    "save_lab",
]


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
        # Every write into the folder happens under this lock, so a temporary file found now
        # is one a killed writer left behind (issue 13): gone at the next change of the lab.
        _sweep(path)
        yield
    finally:
        os.close(fd)


# --- loading and saving ----------------------------------------------------------------------


def _sweep(path: Path) -> None:
    sweep_temporaries(path)
    for cluster in _cluster_folders(path, committed=False):
        sweep_temporaries(cluster)
        sweep_temporaries(cluster / "keys")


def _key_reader(keys: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (keys / name).read_bytes()

    return read


def _cluster_folders(path: Path, *, committed: bool = True) -> list[Path]:
    # ``committed``: only folders holding cluster.json (an interrupted `lab init` is ignored).
    root = path / "clusters"
    if not root.is_dir():
        return []
    return [
        p
        for p in sorted(root.iterdir())
        if p.is_dir() and (not committed or (p / CLUSTER_FILE).is_file())
    ]


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
    if not isinstance(marker, dict) or marker.get("format") != FORMAT:
        raise LabError(f"{path / LAB_FILE} is not a vphone lab marker")
    states: list[ClusterState] = []
    version: dict[str, str] = {}
    for folder in _cluster_folders(path):
        try:
            raw = (folder / CLUSTER_FILE).read_bytes()
            version[folder.name] = hashlib.sha256(raw).hexdigest()
            states.append(decode_cluster(folder, json.loads(raw), _key_reader(folder / "keys")))
        except (OSError, ValueError, KeyError, TypeError, FormatError) as exc:
            raise LabError(f"{folder / CLUSTER_FILE} is damaged: {exc}") from None
        except VphoneError as exc:
            raise LabError(f"{folder / CLUSTER_FILE}: {exc}") from None
    # The lab's clusters in the order the lab held them when it was saved (the marker's list);
    # clusters it does not name (an older marker, a save interrupted before the marker) after
    # them, by creation time and name. A list, because clusters created at the same instant
    # (every cluster of a scenario's lab) would otherwise come back in name order, not the lab's.
    listed = marker.get("clusters")
    names = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    rank = {name: index for index, name in enumerate(dict.fromkeys(names))}  # first one counts
    states.sort(key=lambda s: (rank.get(s.name, len(rank)), s.created_at, s.name))
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


def save_cluster(path: Path, cluster: Cluster) -> None:
    folder = path / "clusters" / cluster.name
    keys = private_folder(folder / "keys")  # 0o700 whatever the umask (issue 13)
    document, identities = encode_cluster(cluster.state)
    for name, identity in identities.items():
        target = keys / name
        if not target.exists():
            write_private_file(target, key_to_pem(identity.key, None, allow_unencrypted=True))
    # The commit point: the document referencing the keys written above.
    write_private_file(folder / CLUSTER_FILE, json_bytes(document))
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
        write_private_file(target / LAB_FILE, _marker(()))
    saved: list[str] = []
    for cluster in lab.clusters:
        if cluster.saved_revision != cluster.revision or path is not None:
            save_cluster(target, cluster)
            saved.append(cluster.name)
    # After the clusters: a cluster the marker does not list yet still loads (read_lab).
    marker = _marker(c.name for c in lab.clusters)
    if (target / LAB_FILE).read_bytes() != marker:
        write_private_file(target / LAB_FILE, marker)
    lab.path = target
    return saved


def _marker(clusters: Iterable[str]) -> bytes:
    """``lab.json``: the folder's format, and its clusters in the lab's order (read_lab)."""
    return json_bytes({"format": FORMAT, "version": VERSION, "clusters": list(clusters)})


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
        write_private_file(path / LAB_FILE, _marker(()))
    with lab_lock(path):
        lab = load_lab(path, random=random)
        lab.add_cluster(spec, now=now, keys=keys, capf_trust=capf_trust)
        save_lab(lab)
    return lab

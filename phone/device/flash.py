"""The phone's persistent storage: trust lists, firmware, last good config, settings.

Two implementations of one small interface: in memory (fleets, tests) and a folder (a phone
that survives across CLI invocations, ``--flash DIR``). Folder writes are atomic (write to a
temporary file, fsync, rename, fsync the folder): a crash or a rejected download never loses or
damages what was there, because nothing is written until a download has been accepted.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from phone.errors import UsageError
from phone.pki import sweep_temporaries

# Names the phone stores. Keeping them here documents the flash layout in one place.
ITL = "ITLFile.tlv"
CTL = "CTLFile.tlv"
CONFIG = "config.xml"  # the last configuration the phone accepted (verified XML)
RING_LIST = "RingList.xml"  # the last ring list the phone accepted (item 8)
SETTINGS = "settings.json"  # MAC, model, TFTP option, running load
IMAGE = "image.loads"  # the resident firmware image
MIC_CERT = "mic.pem"
MIC_KEY = "mic.key"
LSC_CERT = "lsc.pem"
LSC_KEY = "lsc.key"

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Flash(Protocol):
    """What the phone needs from its storage."""

    def read(self, name: str) -> bytes | None:
        """The stored bytes, or None when absent."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` atomically: afterwards ``read`` returns either all of it or the old."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; no error when absent."""
        ...

    def names(self) -> list[str]:
        """Stored names, sorted."""
        ...


def _check(name: str) -> str:
    if not _SAFE.match(name):
        raise UsageError(f"bad flash file name {name!r}")
    return name


class MemoryFlash:
    """Flash kept in a dict: for fleets and tests."""

    __slots__ = ("_files",)

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        """The stored bytes, or None."""
        return self._files.get(name)

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` (a dict assignment is atomic)."""
        self._files[_check(name)] = bytes(data)

    def delete(self, name: str) -> None:
        """Remove ``name`` if present."""
        self._files.pop(name, None)

    def names(self) -> list[str]:
        """Stored names, sorted."""
        return sorted(self._files)


class DirectoryFlash:
    """Flash kept in a folder, one file per name."""

    def __init__(self, path: Path) -> None:
        if path.exists() and not path.is_dir():
            raise UsageError(f"flash folder {path} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        # A flash folder belongs to one phone, so at open no write of ours is in flight: a
        # temporary file here is one a killed write left (issue 13). The phone's flash
        # holds its LSC key, so the folder is closed to others whatever the umask.
        os.chmod(path, 0o700)
        sweep_temporaries(path)

    def read(self, name: str) -> bytes | None:
        """The stored bytes, or None."""
        try:
            return (self.path / _check(name)).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` via a temporary file, fsync and rename, then fsync the folder."""
        target = self.path / _check(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self, name: str) -> None:
        """Remove ``name`` if present."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / _check(name)).unlink()

    def names(self) -> list[str]:
        """Stored names, sorted (temporary files excluded)."""
        return sorted(p.name for p in self.path.iterdir() if _SAFE.match(p.name))

"""The ``dir:PATH`` backend: a folder of files pulled from a real cluster's TFTP server.

A user who copied ``ITLFile.tlv``, ``CTLFile.tlv``, ``SEP<MAC>.cnf.xml.sgn`` and friends off a
real Unified CM (``tftp -g``, SeeYouCM Thief, a browser on port 6970) can ask, offline, "would
my phones accept these files?": ``vphone boot --server dir:PATH --flash PHONE``. The phone
makes every trust decision it would make on the wire.

What the folder cannot do, and what the phone then shows:

* **TVS** (items 20-24): there is no server to ask, so :meth:`DirectoryBackend.tvs_query`
  raises :class:`phone.errors.NetworkError` with an "offline folder" reason; the phone fails
  closed (item 24) and the trace says why. A file that only TVS could vouch for is therefore
  rejected offline, exactly as it would be with TVS unreachable.
* **Registration**: no CallManager either; :meth:`DirectoryBackend.register` raises
  ``NetworkError`` and the boot ends ``registration-failed`` after every trust decision has
  been shown. That end state is expected: it says nothing about the files.

Names are looked up case-insensitively (CUCM's TFTP is case-insensitive, and files copied
through Windows shares often change case), one path component at a time, and never outside
the folder: the name rule of :func:`unsafe_name_reason` applies, the same rule the lab's TFTP
and HTTP servers enforce.
"""

from __future__ import annotations

import re
from pathlib import Path

from phone.catalog.models import Transport
from phone.device.port import (
    CapfConversation,
    RegisterRequest,
    RegisterResult,
    Requester,
    SccpConversation,
)
from phone.errors import FileNotFoundOnServer, NetworkError, UsageError
from phone.pki import Identity
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsServer

__all__ = ["MAX_NAME", "DirectoryBackend", "unsafe_name_reason"]

MAX_NAME = 255  # longer names are refused before any lookup (TFTP names fit one datagram)
_DRIVE = re.compile(r"[A-Za-z]:")


def unsafe_name_reason(name: str) -> str | None:
    """Why a requested file name must be refused, or None when it is safe to look up.

    The rule shared by the TFTP server, the HTTP server and the ``dir:`` backend: a name is
    relative to the served root (TFTP names are, by convention), so refused are

    * an empty name and names longer than :data:`MAX_NAME` characters;
    * NUL and other control characters (a NUL truncates C strings on other servers);
    * absolute paths: a leading ``/``, any ``\\`` (Windows separators), a drive letter;
    * path traversal and oddities: ``..``, ``.`` or empty components (``a//b``).

    Sub-folders (``Desktops/320x212x12/List.xml``, which real phones request) are allowed;
    they simply are not found on a lab node.
    """
    if not name:
        return "empty file name"
    if len(name) > MAX_NAME:
        return f"file name longer than {MAX_NAME} characters"
    if "\x00" in name:
        return "NUL byte in the file name"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "control character in the file name"
    if name.startswith("/"):
        return "absolute path"
    if "\\" in name:
        return "backslash in the file name (a Windows path)"
    if _DRIVE.match(name):
        return "drive letter (an absolute Windows path)"
    parts = name.split("/")
    if ".." in parts:
        return "path traversal ('..')"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


class DirectoryBackend:
    """A :class:`phone.device.port.Backend` over a folder of files (module docstring).

    Raises:
        UsageError: ``folder`` is not a folder.
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder of files pulled from a TFTP server")
        self.folder = folder
        self._root = folder.resolve()

    def __str__(self) -> str:
        return f"dir:{self.folder}"

    def find(self, name: str) -> Path | None:
        """The file served for ``name`` (case-insensitive), or None."""
        if unsafe_name_reason(name) is not None:
            return None
        current = self._root
        for part in name.split("/"):
            match = current / part
            if not match.exists():
                lowered = part.lower()
                try:
                    candidates = sorted(p for p in current.iterdir() if p.name.lower() == lowered)
                except OSError:
                    return None
                if not candidates:
                    return None
                match = candidates[0]
            current = match
        # A symbolic link may point anywhere: serve only what really lies inside the folder.
        resolved = current.resolve()
        if not resolved.is_file() or not resolved.is_relative_to(self._root):
            return None
        return resolved

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """The bytes of ``name`` in the folder, whatever the server and transport.

        Raises:
            FileNotFoundOnServer: the folder holds no such file (or the name is refused).
            NetworkError: the file exists but cannot be read.
        """
        del server, transport, requester  # one folder stands for every server and transport
        path = self.find(name)
        if path is None:
            raise FileNotFoundOnServer(name)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise NetworkError(f"{name}: cannot read {path}: {exc.strerror}") from None

    def tvs_query(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        *,
        client: Identity,
        requester: Requester,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        """Always fails: an offline folder has no TVS (the phone fails closed, item 24)."""
        del issuer, serial, check_server, client, requester, certificate
        raise NetworkError(
            f"offline folder {self.folder}: TVS {server} cannot be asked (no network)"
        )

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: CapfConversation,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        """Always fails: an offline folder has no CAPF (the certificate operation waits)."""
        del conversation, check_server, requester
        raise NetworkError(f"offline folder {self.folder}: CAPF {host}:{port} cannot be reached")

    def register(self, request: RegisterRequest) -> RegisterResult:
        """Always fails: an offline folder has no CallManager."""
        raise NetworkError(
            f"offline folder {self.folder}: no CallManager to register with "
            f"({request.callmanager}:{request.port}); every trust decision above stands"
        )

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        """Always fails: an offline folder has no CallManager."""
        del conversation
        raise NetworkError(
            f"offline folder {self.folder}: no CallManager to register with over SCCP "
            f"({request.callmanager}:{request.port}); every trust decision above stands"
        )

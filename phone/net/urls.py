"""Choosing a backend from a URL: what ``vphone boot --server URL`` accepts.

=========================  ===================================================================
``tftp://HOST[:PORT]``     a TFTP server (port 69 by default); the phone fetches over TFTP only
``http://HOST[:PORT]``     HTTP on the TFTP server's port (6970 by default, item 4); the phone
                           fetches over HTTP only
``dir:PATH``               a folder of files pulled from a real cluster (offline, no TVS, no
                           registration: see :mod:`phone.net.directory`)
=========================  ===================================================================

Without ``--server`` the phone boots against a lab in memory (``--lab DIR``, the default).

The URL names the phone's TFTP server (its DHCP option 150). When a host map (from
``vphone lab serve``) says which lab node listens at that address and port, the phone's TFTP
server is that node's host name, as it would be on a real network; otherwise it is the URL's
host. TVS and CallManager hosts come from the config files and resolve through the host map.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from phone.catalog.models import Model, Transport
from phone.device.port import Backend
from phone.errors import UsageError
from phone.net.directory import DirectoryBackend
from phone.net.hostmap import DEFAULT_PORTS, HostEntry, HostMap
from phone.net.sockets import SocketBackend

__all__ = ["ServerUrl", "Target", "open_target", "parse_server_url", "restrict_transports"]


@dataclass(frozen=True, slots=True)
class ServerUrl:
    """A parsed ``--server`` URL."""

    scheme: str  # "tftp", "http" or "dir"
    host: str = ""
    port: int = 0
    path: Path | None = None

    @property
    def transport(self) -> Transport | None:
        """The one transport the phone may use (None for ``dir:``, which serves both)."""
        return {"tftp": Transport.TFTP, "http": Transport.HTTP}.get(self.scheme)

    def __str__(self) -> str:
        if self.scheme == "dir":
            return f"dir:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_server_url(text: str) -> ServerUrl:
    """Parse ``tftp://HOST[:PORT]``, ``http://HOST[:PORT]`` or ``dir:PATH``.

    Raises:
        UsageError: anything else.
    """
    value = text.strip()
    if value.lower().startswith("dir:"):
        folder = value[4:]
        if not folder:
            raise UsageError("dir: needs a folder, e.g. dir:./pulled-files")
        return ServerUrl("dir", path=Path(folder))
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad server URL {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("tftp", "http"):
        raise UsageError(
            f"bad server URL {text!r}: use tftp://HOST[:PORT], http://HOST[:PORT] or dir:PATH"
        )
    if not parts.hostname:
        raise UsageError(f"bad server URL {text!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise UsageError(f"bad server URL {text!r}: only a host and a port are allowed")
    default = DEFAULT_PORTS[scheme]
    return ServerUrl(scheme, parts.hostname.lower(), port if port else default)


def restrict_transports(model: Model, allowed: Transport | None) -> Model:
    """``model`` fetching over ``allowed`` only (item 4 order otherwise kept).

    Raises:
        UsageError: the model cannot use that transport (older 79xx fetch over TFTP only).
    """
    if allowed is None:
        return model
    if allowed not in model.transports:
        supported = ", ".join(t.value for t in model.transports)
        raise UsageError(
            f"CP-{model.name} fetches its files over {supported} only (item 4); "
            f"a {allowed.value}:// server cannot serve it"
        )
    return dataclasses.replace(model, transports=(allowed,))


@dataclass(frozen=True)
class Target:
    """What a URL gives a phone: a backend, the name of its TFTP server, and the one transport
    it may use (None: the model's own list)."""

    backend: Backend
    tftp: str
    transport: Transport | None
    description: str

    def close(self) -> None:
        """Release sockets held by the backend."""
        if isinstance(self.backend, SocketBackend):
            self.backend.close()


def open_target(url: ServerUrl, hosts: HostMap | None = None, *, timeout: float = 2.0) -> Target:
    """The backend and TFTP host name for ``url`` (module docstring).

    Raises:
        UsageError: a ``dir:`` path that is not a folder.
    """
    if url.scheme == "dir":
        assert url.path is not None
        return Target(DirectoryBackend(url.path), f"dir:{url.path}", None, str(url))
    hosts = hosts if hosts is not None else HostMap()
    name = hosts.find(url.host, url.scheme, url.port)
    if name is None:
        # Nothing in the map stands at that address: the URL's host is the TFTP server, and
        # the URL's port is where its files are.
        name = url.host
        entry = hosts.get(name)
        address = entry.address if entry is not None else url.host
        hosts = hosts.with_entry(name, HostEntry(address, MappingProxyType({url.scheme: url.port})))
    return Target(SocketBackend(hosts, timeout=timeout), name, url.transport, str(url))

"""Host maps: where the host names of a lab's config files are reached on a real network.

Config files name TFTP, TVS and CallManager hosts (``cucm1.cluster1.lab``); a lab served by
``vphone lab serve`` listens for all of them on one address and many ports. A
:class:`HostMap` says, per host name, which IP address to use and which port each service
listens on. A name it does not know resolves to itself (the system resolver) with the port the
phone would use anyway (the config's, or the service default).

Services and their default ports: ``tftp`` 69, ``http`` 6970 (item 4), ``tvs`` 2445 (item 21),
``sip`` 5060 (SIP over UDP and TCP), ``sips`` 5061 (SIP over TLS, the secure device modes),
``capf`` 3804 (CAPF over TLS, trust-file-formats.md 9b), ``sccp`` 2000 (SCCP over TCP) and
``sccps`` 2443 (SCCP over TLS, the secure device modes; issue 15).

On the command line (``--host-map``, repeatable):

* ``NAME=IP`` maps the name to an address; every service keeps its usual port;
* ``NAME=IP:PORT`` also moves **every** service of that name to PORT: the common case is a name
  that stands for one service (the issue's ``tvs1.lab=127.0.0.1:2445``);
* ``NAME=IP,tftp=6969,http=6970,tvs=2445,sip=5060,sips=5061,sccp=2000`` (any subset) sets ports per
  service, and
  may follow ``IP:PORT`` to override single services;
* anything without ``=`` is a JSON file written by ``vphone lab serve --host-map-out``.

The JSON form::

    {"format": "vphone-host-map", "version": 1,
     "hosts": {"cucm1.cluster1.lab": {"ip": "127.0.0.1", "tftp": 40001, "http": 40002,
                                      "tvs": 40003, "sip": 40004}}}
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from phone.errors import UsageError

__all__ = [
    "DEFAULT_PORTS",
    "SERVICES",
    "HostEntry",
    "HostMap",
    "normalize_host",
    "parse_host_maps",
]

DEFAULT_PORTS: Mapping[str, int] = MappingProxyType(
    {
        "tftp": 69,
        "http": 6970,
        "tvs": 2445,
        "sip": 5060,
        "sips": 5061,
        "capf": 3804,
        "sccp": 2000,
        "sccps": 2443,
    }
)
"""The port each service listens on when nothing says otherwise."""

SERVICES = tuple(DEFAULT_PORTS)
_FORMAT = "vphone-host-map"
_VERSION = 1


def normalize_host(name: str) -> str:
    """Host names compare case-insensitively and without a trailing dot (DNS rules)."""
    return name.strip().lower().rstrip(".")


def _port(text: object, what: str) -> int:
    try:
        value = int(str(text), 10)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise UsageError(f"{what}: port {value} is out of range (1 to 65535)")
    return value


def _address(text: str, what: str) -> str:
    value = text.strip()
    if not value:
        raise UsageError(f"{what}: no address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        # A host name is fine too (the system resolver will look it up), but not junk.
        if not all(c.isalnum() or c in "-._" for c in value):
            raise UsageError(
                f"{what}: {value!r} is neither an IP address nor a host name"
            ) from None
        return value.lower()


@dataclass(frozen=True, slots=True)
class HostEntry:
    """Where one host name is reached: an address and the ports of its services."""

    address: str
    ports: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def port(self, service: str) -> int | None:
        """The port of ``service``, or None when this entry does not say."""
        return self.ports.get(service)

    def with_ports(self, ports: Mapping[str, int]) -> HostEntry:
        """A copy with ``ports`` added (they win over the entry's own)."""
        return HostEntry(self.address, MappingProxyType({**self.ports, **ports}))

    def as_json(self) -> dict[str, Any]:
        """The JSON form: ``{"ip": ..., "<service>": port, ...}``."""
        return {"ip": self.address, **dict(sorted(self.ports.items()))}


@dataclass(frozen=True)
class HostMap:
    """An immutable map from host names to :class:`HostEntry` (module docstring)."""

    entries: Mapping[str, HostEntry] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        normalized = {normalize_host(k): v for k, v in self.entries.items()}
        object.__setattr__(self, "entries", MappingProxyType(normalized))

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> HostEntry | None:
        """The entry for ``name``, or None."""
        return self.entries.get(normalize_host(name))

    def resolve(self, name: str, service: str, default_port: int | None = None) -> tuple[str, int]:
        """The (address, port) at which ``service`` of host ``name`` is reached.

        An unknown name resolves to itself; a service without a mapped port uses
        ``default_port`` (the port the config names), else the service default.
        """
        fallback = default_port if default_port is not None else DEFAULT_PORTS.get(service, 0)
        entry = self.get(name)
        if entry is None:
            return name, fallback
        port = entry.port(service)
        return entry.address, port if port is not None else fallback

    def find(self, address: str, service: str, port: int) -> str | None:
        """The one host name whose ``service`` listens at ``address``:``port``, or None.

        Used to name a phone's TFTP server after the lab node a URL points at, so that the
        trace, and the ITL report the phone sends at registration (item 30), show the lab's
        host name rather than ``127.0.0.1``.
        """
        names = sorted(
            name
            for name, entry in self.entries.items()
            if entry.address == address
            and entry.port(service) == port
            and "." in name
            and not _is_ip(name)
        )
        return names[0] if len(names) == 1 else None

    def with_entry(self, name: str, entry: HostEntry) -> HostMap:
        """A copy where ``name`` maps to ``entry`` (merged with an existing entry's ports
        when the address is the same)."""
        old = self.get(name)
        if old is not None and old.address == entry.address:
            entry = old.with_ports(entry.ports)
        return HostMap({**self.entries, normalize_host(name): entry})

    def merged(self, other: HostMap) -> HostMap:
        """A copy with every entry of ``other`` added (``other`` wins)."""
        result = self
        for name, entry in other.entries.items():
            result = result.with_entry(name, entry)
        return result

    # --- text forms ------------------------------------------------------------------------

    @staticmethod
    def parse_spec(text: str) -> tuple[str, HostEntry]:
        """``NAME=IP[:PORT][,SERVICE=PORT...]`` (module docstring).

        Raises:
            UsageError: a malformed spec.
        """
        what = f"--host-map {text!r}"
        name, sep, rest = text.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise UsageError(f"{what}: use NAME=IP[:PORT][,SERVICE=PORT...]")
        head, *extras = rest.split(",")
        ports: dict[str, int] = {}
        address = head
        if head.count(":") == 1:  # IP:PORT (an IPv6 address has several colons)
            address, port_text = head.split(":")
            port = _port(port_text, what)
            ports = dict.fromkeys(SERVICES, port)
        for extra in extras:
            service, eq, port_text = extra.partition("=")
            service = service.strip().lower()
            if not eq or service not in SERVICES:
                raise UsageError(f"{what}: {extra!r} is not SERVICE=PORT ({', '.join(SERVICES)})")
            ports[service] = _port(port_text, what)
        return normalize_host(name), HostEntry(_address(address, what), MappingProxyType(ports))

    def to_json(self) -> str:
        """The JSON file form (module docstring)."""
        document = {
            "format": _FORMAT,
            "version": _VERSION,
            "hosts": {name: entry.as_json() for name, entry in sorted(self.entries.items())},
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "host map") -> HostMap:
        """Parse the JSON file form.

        Raises:
            UsageError: not a host map, or a bad entry.
        """
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{source} is not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise UsageError(f"{source} is not a vphone host map (written by `lab serve`)")
        if document.get("version") != _VERSION:
            raise UsageError(f"{source}: unknown host map version {document.get('version')!r}")
        hosts = document.get("hosts")
        if not isinstance(hosts, dict):
            raise UsageError(f"{source}: 'hosts' must be an object")
        entries: dict[str, HostEntry] = {}
        for name, value in hosts.items():
            if not isinstance(value, dict) or not isinstance(value.get("ip"), str):
                raise UsageError(f"{source}: host {name!r} needs an 'ip'")
            ports = {
                str(k): _port(v, f"{source}: {name} {k}") for k, v in value.items() if k != "ip"
            }
            entries[str(name)] = HostEntry(
                _address(value["ip"], f"{source}: {name}"), MappingProxyType(ports)
            )
        return cls(entries)

    @classmethod
    def load(cls, path: Path) -> HostMap:
        """Read a JSON host map file.

        Raises:
            UsageError: the file cannot be read or is not a host map.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the host map {path}: {exc.strerror}") from None
        return cls.from_json(text, source=str(path))

    def lines(self) -> list[str]:
        """One ``--host-map`` spec per host, e.g. for printing."""
        out = []
        for name, entry in sorted(self.entries.items()):
            ports = ",".join(f"{s}={p}" for s, p in sorted(entry.ports.items()))
            out.append(f"{name}={entry.address}" + (f",{ports}" if ports else ""))
        return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_host_maps(values: Iterable[str]) -> HostMap:
    """Combine ``--host-map`` values: specs (``NAME=...``) and JSON files, later ones winning.

    Raises:
        UsageError: a malformed spec or an unreadable file.
    """
    result = HostMap()
    for value in values:
        if "=" in value:
            name, entry = HostMap.parse_spec(value)
            result = result.with_entry(name, entry)
        else:
            result = result.merged(HostMap.load(Path(value)))
    return result

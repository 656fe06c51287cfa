"""Serving a lab on real sockets: ``vphone lab serve`` and the socket-backend tests.

:class:`LabServer` serves every running node of every cluster of a :class:`Lab`:

=========  =============================================  =====================================
service    on nodes that run                              server (``phone.net.``)
=========  =============================================  =====================================
``tftp``   TFTP (files, read-only, item 4)                ``tftp.TftpFileServer``
``http``   TFTP (the same files on HTTP, item 4)          ``http.HttpFileServer``
``tvs``    TVS (TLS, items 21-22)                         ``tvs_tls.TvsTlsServer``
``sip``    CallManager (SIP registrar, UDP and TCP)       ``sip.SipRegistrar``
``sips``   CallManager, mixed-mode cluster (SIP on TLS)   the same registrar
``capf``   the publisher (CAPF, TLS, formats 9b)          ``capf_tls.CapfTlsServer``
``sccp``   CallManager (SCCP/Skinny over TCP, 2000)       ``sccp.SccpListener``
``sccps``  CallManager, mixed-mode cluster (SCCP on TLS)  ``sccp.SccpListener`` (2443)
=========  =============================================  =====================================

Every service of every node listens on the same address (``127.0.0.1`` by default) and its own
port; :meth:`LabServer.host_map` says which, so a phone whose config names
``cucm1.cluster1.lab`` reaches that node's TVS and registrar (:mod:`phone.net.hostmap`). Port 0
picks free ports. A fixed port for a service goes to the first node that runs it; the other
nodes get free ports (a real cluster has one address per node; one loopback address cannot).

Files are produced on request by the cluster's file service (signed, and cached by it): the
server holds no copies, so a certificate regenerated in the lab is served at the next request.
Calls into the lab are serialized by :attr:`LabServer.lock` (the cluster model is not
thread-safe); hold it to change the lab while serving.

Nodes powered off in the lab (``cluster.stop_node``) are reflected by :meth:`LabServer.sync`,
which stops their services and restarts those of nodes powered on, on the same ports. A
stopped node's ports stay in the host map with nothing listening, like a server that is off.

:meth:`LabServer.swap` serves another :class:`Lab` (``vphone lab serve`` reloading its folder)
on the same ports. The lab is held in one place per server, each read at every request under
:attr:`LabServer.lock`: the file servers' providers read :attr:`LabServer.lab`, and the TVS,
CAPF and SIP servers read their own ``lab`` (and the registrar its ``cluster``) attribute,
which the swap rebinds under the same lock. A request therefore sees the old lab or the new
one, never a mix; connections stay open (a TVS or SIP connection's next request is answered
by the new lab). Services the new lab does not run are stopped first, while the old lab is
still served, and those it adds are started after, so nothing ever answers for a node from
the wrong lab.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from phone.cluster.files import ClientInfo
from phone.cluster.lab import Lab
from phone.cluster.records import Node
from phone.errors import NetworkError
from phone.net.capf_tls import CapfTlsServer
from phone.net.capf_workers import CapfWorkerPool
from phone.net.hostmap import HostEntry, HostMap
from phone.net.http import FileRequestHandler, HttpFileServer
from phone.net.sccp import SccpListener
from phone.net.service import BackgroundService, Service
from phone.net.sip import SipRegistrar
from phone.net.tftp import FileProvider, TftpFileServer
from phone.net.tvs_tls import TvsTlsServer
from phone.net.tvs_workers import TvsWorkerPool

__all__ = ["SERVICES", "Intercept", "LabServer", "Listener"]

log = logging.getLogger("phone.net.servers")

SERVICES = ("tftp", "http", "tvs", "sip", "sips", "capf", "sccp", "sccps")
_LABELS = {
    "tftp": "TFTP",
    "http": "HTTP",
    "tvs": "TVS",
    "sip": "SIP",
    "sips": "SIP",
    "capf": "CAPF",
    "sccp": "SCCP",
    "sccps": "SCCP",
}
_PROTOCOLS = {
    "tftp": "udp",
    "http": "tcp",
    "tvs": "tls",
    "sip": "udp+tcp",
    "sips": "tls",
    "capf": "tls",
    "sccp": "tcp",
    "sccps": "tls",
}

Intercept = Callable[[str, str, bytes | None], bytes | None]
"""``(node host, file name, bytes or None) -> bytes or None``: a hook between the file service
and the wire, for tests and rehearsals of a man in the middle (a replaced config)."""


@dataclass(frozen=True, slots=True)
class Listener:
    """Where one service of one node listens."""

    node: str
    service: str
    address: tuple[str, int]
    running: bool = True

    def __str__(self) -> str:
        state = "" if self.running else "  (node stopped: nothing listens)"
        label, proto = _LABELS[self.service], _PROTOCOLS[self.service]
        return f"{self.node:<28} {label:<5} {proto:<8} {self.address[0]}:{self.address[1]}{state}"


def _wanted(node: Node, publisher: bool = False, mixed_mode: bool = False) -> tuple[str, ...]:
    if not node.running:
        return ()
    out: list[str] = []
    if node.runs_tftp:
        out += ["tftp", "http"]
    if node.runs_tvs:
        out.append("tvs")
    if node.runs_callmanager:
        out.append("sip")
    if publisher:
        out.append("capf")  # CAPF runs on the publisher (phone.cluster.capf)
    if node.runs_callmanager:
        out.append("sccp")
        if mixed_mode:
            out.append("sccps")  # SCCP over TLS 2443 for the secure device modes
    return tuple(out)


def _offered(node: Node, publisher: bool = False, mixed_mode: bool = False) -> tuple[str, ...]:
    """Every service the node runs when powered on."""
    return _wanted(dataclasses.replace(node, running=True), publisher, mixed_mode)


def _wanted_keys(lab: Lab) -> set[tuple[str, str]]:
    """Every (node, service) ``lab`` runs now."""
    return {
        (node.hostname, service)
        for cluster in lab.clusters
        for node in cluster.nodes
        for service in _wanted(
            node, node.hostname == cluster.publisher.hostname, cluster.mixed_mode
        )
    }


def _stale(server: Service) -> bool:
    """Whether a running server no longer matches its node and must restart: a registrar
    with SIP over TLS in a cluster that left mixed mode, or without it in one that entered."""
    if isinstance(server, SipRegistrar):
        return (server.tls_address is not None) != server.cluster.mixed_mode
    return False


class LabServer(Service):
    """Serves a lab's nodes on real sockets (module docstring).

    Args:
        lab: the lab to serve.
        host: the address every service binds.
        ports: a fixed port per service (any of :data:`SERVICES`: ``tftp``, ``http``, ``tvs``,
            ``sip``, ``capf`` ...) for the first node offering it; missing or 0 picks free
            ports (``vphone lab serve --capf-port`` and the like).
        clock: the time TVS and the registrar use (default: theirs).
        intercept: see :data:`Intercept`.
        tftp_timeout: the TFTP server's retransmit timeout (and stop latency).
        http_handler: the HTTP request handler class (tests pass misbehaving ones).
        on_change: called by the registrar, under :attr:`lock`, after a request changed the
            lab (``lab serve`` saves the lab folder then).
        tvs_workers: worker processes answering each node's TVS on its port (1: threads in
            this process; more: :class:`phone.net.tvs_workers.TvsWorkerPool`, whose clock
            must be a module-level function).
        capf_workers: worker processes answering each CAPF port (1: threads in this process;
            more: :class:`phone.net.capf_workers.CapfWorkerPool`, every session step still
            run here on :attr:`lab`).
    """

    def __init__(
        self,
        lab: Lab,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] | None = None,
        intercept: Intercept | None = None,
        tftp_timeout: float = 0.2,
        http_handler: type[FileRequestHandler] = FileRequestHandler,
        on_change: Callable[[], None] | None = None,
        tvs_workers: int = 1,
        capf_workers: int = 1,
    ) -> None:
        self.lab = lab
        self.tvs_workers = tvs_workers
        self.capf_workers = capf_workers
        self.on_change = on_change
        self.host = host
        self.clock = clock
        self.intercept = intercept
        self.tftp_timeout = tftp_timeout
        self.http_handler = http_handler
        self.lock = threading.RLock()
        self._fixed = {s: p for s, p in (ports or {}).items() if p}
        self._ports: dict[tuple[str, str], int] = {}
        self._running: dict[tuple[str, str], Service] = {}
        self._started = False

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the services of every running node.

        Raises:
            NetworkError: a port cannot be bound (everything started is stopped again).
        """
        self._started = True
        try:
            self.sync()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every service; wait for their threads."""
        self._started = False
        for key in list(self._running):
            self._stop(key)

    def sync(self) -> None:
        """Start and stop services to match the nodes' power state (same ports as before).

        A registrar whose cluster went in or out of mixed mode is restarted on the same ports,
        so that SIP over TLS starts or stops with it.
        """
        if not self._started:
            return
        with self.lock:
            nodes = [n for c in self.lab.clusters for n in c.nodes]
            publishers = {c.publisher.hostname for c in self.lab.clusters}
            mixed = {n.hostname for c in self.lab.clusters if c.mixed_mode for n in c.nodes}
            wanted = _wanted_keys(self.lab)
            stale = {key for key, server in self._running.items() if _stale(server)}
        for key in list(self._running):
            if key not in wanted or key in stale:
                self._stop(key)
        for node in nodes:
            for service in SERVICES:
                key = (node.hostname, service)
                if key in wanted and key not in self._running:
                    self._start(key)
        # Nodes off since the start still get a port where nothing listens (host map).
        for node in nodes:
            for service in _offered(node, node.hostname in publishers, node.hostname in mixed):
                key = (node.hostname, service)
                if key not in self._ports:
                    self._ports[key] = self._port_for(service) or _free_port(self.host, service)

    def swap(self, lab: Lab, *, merge: Callable[[], None] | None = None) -> None:
        """Serve ``lab`` from now on, on the same ports (module docstring).

        1. Services ``lab`` does not run (node gone, stopped, service dropped) are stopped,
           while the current lab is still served.
        2. Under :attr:`lock`: ``merge`` is called (the last moment of the current lab: no
           request runs, so what requests changed in it can be carried into ``lab``), then
           every running server is rebound to ``lab``.
        3. :meth:`sync` starts what ``lab`` runs and the current lab did not.

        Raises:
            NetworkError: a service of ``lab`` cannot bind its port (the others run).
        """
        if self._started:
            wanted = _wanted_keys(lab)
            for key in list(self._running):
                if key not in wanted:
                    self._stop(key)
        with self.lock:
            if merge is not None:
                merge()
            for (host, _service), server in self._running.items():
                self._rebind(server, lab, host)
            self.lab = lab
        self.sync()

    # --- what runs where -------------------------------------------------------------------

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Every (node, service) with a port, in lab order."""
        with self.lock:
            nodes = [(n, c.mixed_mode) for c in self.lab.clusters for n in c.nodes]
        out = []
        for node, mixed_mode in nodes:
            for service in SERVICES:
                key = (node.hostname, service)
                # A TLS port kept from a time the cluster was in mixed mode: not listening.
                if key in self._ports and (service not in ("sips", "sccps") or mixed_mode):
                    # SIP over TLS runs inside the node's registrar.
                    owner = (node.hostname, "sip") if service == "sips" else key
                    address = (self.host, self._ports[key])
                    out.append(Listener(node.hostname, service, address, owner in self._running))
        return tuple(out)

    def address(self, host: str, service: str) -> tuple[str, int]:
        """Where ``service`` of node ``host`` listens.

        Raises:
            KeyError: the node does not offer that service.
        """
        endpoint = self.lab.resolve(host)
        name = endpoint.node.hostname if endpoint is not None else host
        return self.host, self._ports[(name, service)]

    def server_for(self, host: str, service: str) -> object | None:
        """The running server of ``service`` on node ``host`` (for tests and tools), or None."""
        endpoint = self.lab.resolve(host)
        name = endpoint.node.hostname if endpoint is not None else host
        return self._running.get((name, service))

    def host_map(self) -> HostMap:
        """Host name (and lab IP) of every node -> this server's address and its ports."""
        ports: dict[str, dict[str, int]] = {}
        for listener in self.listeners:  # the lab's nodes only, whatever ports were kept
            ports.setdefault(listener.node, {})[listener.service] = listener.address[1]
        entries: dict[str, HostEntry] = {}
        with self.lock:
            nodes = [n for c in self.lab.clusters for n in c.nodes]
        for node in nodes:
            if node.hostname in ports:
                entry = HostEntry(self.host, MappingProxyType(ports[node.hostname]))
                entries[node.hostname] = entry
                entries[node.ip] = entry  # configs and ITL records may name the lab IP
        return HostMap(entries)

    def describe(self) -> list[str]:
        """One line per listener: node, service, protocol and address."""
        return [str(listener) for listener in self.listeners]

    def threads(self) -> list[threading.Thread]:
        """The serving threads of every running service (tests assert they end after stop)."""
        out: list[threading.Thread] = []
        for service in self._running.values():
            if isinstance(service, SipRegistrar):
                out += service.threads
            elif isinstance(service, BackgroundService) and service.thread is not None:
                out.append(service.thread)
        return out

    # --- internals ---------------------------------------------------------------------------

    def _port_for(self, service: str) -> int:
        fixed = self._fixed.get(service, 0)
        if fixed and fixed not in {p for (_, s), p in self._ports.items() if s == service}:
            return fixed
        return 0

    def _start(self, key: tuple[str, str]) -> None:
        host, service = key
        port = self._ports.get(key)
        if port is None:
            port = self._port_for(service)
        server = self._make(host, service, port)
        for attempt in range(20):
            try:
                server.start()
                break
            except (NetworkError, OSError) as exc:
                if not self._ports.get(key) or attempt == 19:
                    raise NetworkError(f"{host} {_LABELS[service]}: {exc}") from None
                time.sleep(0.05)  # the old socket of a restarted service may linger briefly
        self._running[key] = server
        self._ports[key] = self._bound_port(server, service)
        if isinstance(server, SipRegistrar) and server.tls_address is not None:
            # Mixed mode: SIP over TLS for the secure device modes (item 7).
            self._ports[(host, "sips")] = int(server.tls_address[1])

    def _rebind(self, server: Service, lab: Lab, host: str) -> None:
        """Point a running server at ``lab`` (under :attr:`lock`; see :meth:`swap`).

        TFTP and HTTP need nothing: their providers read :attr:`lab` at every request.
        """
        if isinstance(
            server, TvsTlsServer | CapfTlsServer | SccpListener | TvsWorkerPool | CapfWorkerPool
        ):
            server.lab = lab  # a worker pool returns once every worker serves ``lab``
        elif isinstance(server, SipRegistrar):
            endpoint = lab.resolve(host)
            if endpoint is None:  # swap() stopped every server of a node ``lab`` lacks
                raise NetworkError(f"the new lab has no node {host!r}")
            server.lab = lab
            # The registrar's nonces and transactions stay: a phone in the middle of a digest
            # challenge is not challenged again because the lab was reloaded.
            server.cluster = endpoint.cluster
            server.registrar.cluster = endpoint.cluster
        else:
            return
        if self.clock is None and lab.clock is not None:
            server.clock = lab.clock  # they took the old lab's clock when none was given

    def _stop(self, key: tuple[str, str]) -> None:
        server = self._running.pop(key, None)
        if server is not None:
            server.stop()
            log.info("%s %s stopped", *key)

    def _make(self, host: str, service: str, port: int) -> Service:
        listen = (self.host, port)
        if service == "tftp":
            return TftpFileServer(
                self._provider(host), listen=listen, timeout=self.tftp_timeout, label=host
            )
        if service == "http":
            return HttpFileServer(
                self._provider(host), listen=listen, label=host, handler=self.http_handler
            )
        if service in ("tvs", "capf"):
            # One process, or a pool of worker processes on the port (docs/scaling.md).
            single, pool, processes = (
                (TvsTlsServer, TvsWorkerPool, self.tvs_workers)
                if service == "tvs"
                else (CapfTlsServer, CapfWorkerPool, self.capf_workers)
            )
            if processes > 1:
                return pool(
                    self.lab,
                    host,
                    processes=processes,
                    listen=listen,
                    clock=self.clock,
                    lock=self.lock,
                )
            return single(self.lab, host, listen=listen, clock=self.clock, lock=self.lock)
        if service in ("sccp", "sccps"):
            return SccpListener(
                self.lab,
                host,
                transport="tls" if service == "sccps" else "tcp",
                listen=listen,
                clock=self.clock,
                lock=self.lock,
                on_change=self.on_change,
            )
        tls_port = self._ports.get((host, "sips"))
        if tls_port is None and (host, "sip") in self._ports:
            # A registrar restarted into mixed mode (sync): its default TLS port, the SIP
            # port + 1, may be another service's port here. (A first start keeps the
            # default: --sip-port 5060 gives TLS 5061, as on a real cluster.)
            tls_port = _free_port(self.host, "sips")
        return SipRegistrar(
            self.lab,
            host,
            listen=listen,
            clock=self.clock,
            lock=self.lock,
            on_change=self.on_change,
            tls_listen=(self.host, tls_port) if tls_port else None,
        )

    @staticmethod
    def _bound_port(server: Service, service: str) -> int:
        if isinstance(server, SipRegistrar):
            # Phones register over TCP in the non-secure mode (device.phone); the registrar
            # binds UDP on the same port number when it can.
            return int(server.tcp_address[1])
        if isinstance(server, BackgroundService):  # TFTP, HTTP, TVS, CAPF, SCCP
            return int(server.address[1])
        raise TypeError(f"unknown {service} server {server!r}")

    def _provider(self, host: str) -> FileProvider:
        def provide(name: str, client: ClientInfo) -> bytes | None:
            with self.lock:
                service = self.lab.file_service(host)
                data = None if service is None else service.get(name, client)
            if self.intercept is not None:
                data = self.intercept(host, name, data)
            return data

        return provide


def _free_port(host: str, service: str) -> int:
    kind = socket.SOCK_DGRAM if service == "tftp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])

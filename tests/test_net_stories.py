"""The end-to-end stories of the phone issue over real loopback sockets (issue 5).

Each story body runs three times: against the lab in memory, and against the same lab served
by :class:`phone.net.servers.LabServer` with the phone fetching over TFTP only or over HTTP
only; in the socket variants TVS is asked over TLS and the phone registers over SIP. Then
fault tests that only make sense on a wire: a dropped TFTP block, a truncated HTTP body, a
replaced config and a TVS that never answers. Each ends in the right state with the right
status text, the flash unchanged where the phone refused, within the retry budget.
"""

from __future__ import annotations

import dataclasses
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import MappingProxyType

import pytest
from keypool import pooled_keys

from phone.api import ClusterSpec, Lab, State, VirtualPhone, create_lab, create_phone
from phone.catalog.models import Transport
from phone.cluster.certops import export_certificates, import_certificates, regenerate
from phone.cluster.files import ClientInfo
from phone.cluster.records import Device
from phone.device import flash as flash_names
from phone.device.machine import TERMINAL
from phone.device.phone import TraceEntry
from phone.device.port import Backend
from phone.net.faults import Fault, FaultKind, FaultyBackend
from phone.net.hostmap import HostEntry, HostMap
from phone.net.http import FileRequestHandler
from phone.net.memory import MemoryBackend
from phone.net.servers import Intercept, LabServer
from phone.net.sockets import SocketBackend
from phone.net.tvs_tls import TvsTlsServer
from phone.pki import CertKind

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
MAC = "001122334455"
TIMEOUT = 0.3  # seconds per TFTP packet / HTTP read in these tests
TVS_TIMEOUT = 0.5


class Clock:
    """A hand-driven clock shared by the lab, its servers and its phones."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 60) -> None:
        self.now += timedelta(seconds=seconds)


class Net:
    """How a story's phones reach its lab: ``memory``, or a :class:`LabServer` over ``tftp`` or
    ``http`` (the phone's model restricted to that transport)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.servers: list[LabServer] = []
        self.backends: list[SocketBackend] = []
        self.threads: list[threading.Thread] = []

    def server(self, lab: Lab, clock: Clock, **kw: object) -> LabServer:
        for server in self.servers:
            if server.lab is lab:
                return server
        server = LabServer(lab, clock=clock, **kw)  # type: ignore[arg-type]
        server.start()
        self.servers.append(server)
        self.threads += server.threads()
        return server

    def backend(self, lab: Lab, clock: Clock, hosts: HostMap | None = None) -> Backend:
        if self.kind == "memory":
            return MemoryBackend(lab, clock=clock)
        server = self.server(lab, clock)
        backend = SocketBackend(
            hosts if hosts is not None else server.host_map(),
            timeout=TIMEOUT,
            tvs_timeout=TVS_TIMEOUT,
            sip_timeout=1.0,
        )
        self.backends.append(backend)
        return backend

    def phone(
        self, lab: Lab, clock: Clock, *, cluster: str | None = None, mac: str = MAC
    ) -> VirtualPhone:
        phone = create_phone(
            lab, mac=mac, cluster=cluster, clock=clock, backend=self.backend(lab, clock)
        )
        self.restrict(phone)
        return phone

    def restrict(self, phone: VirtualPhone) -> None:
        if self.kind in ("tftp", "http"):
            transport = Transport(self.kind)
            phone.model = dataclasses.replace(phone.model, transports=(transport,))

    def sync(self) -> None:
        """Reflect nodes powered off or on in the lab (no-op in memory)."""
        for server in self.servers:
            server.sync()

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        for server in self.servers:
            self.threads += server.threads()
            server.stop()
        assert not [t for t in self.threads if t.is_alive()], "a server thread outlived stop()"


@pytest.fixture(params=["memory", "tftp", "http"])
def net(request: pytest.FixtureRequest) -> Iterator[Net]:
    network = Net(request.param)
    yield network
    network.close()


@pytest.fixture
def sockets() -> Iterator[Net]:
    """For the fault tests: sockets, the phone free to use its model's transports."""
    network = Net("sockets")
    yield network
    network.close()


def lab_of(*specs: ClusterSpec) -> Lab:
    return create_lab(*specs, now=NOW, keys=pooled_keys())


def last(phone: VirtualPhone, step: str) -> TraceEntry:
    entries = [t for t in phone.trace if t.step == step]
    with_file = [t for t in entries if t.file is not None]
    return (with_file or entries)[-1]


def flash_of(phone: VirtualPhone) -> dict[str, bytes | None]:
    """The flash, but the MIC: the phone makes that on first use of TLS (its factory identity)."""
    return {
        name: phone.flash.read(name)
        for name in sorted(phone.flash.names())
        if name not in (flash_names.MIC_CERT, flash_names.MIC_KEY)
    }


# --- the stories, on every backend ------------------------------------------------------------


def test_first_boot_installs_itl_and_registers(net: Net) -> None:
    """Items 1, 2, 9 (and 4: over the one transport of the variant)."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = net.phone(lab, clock)
    assert phone.boot() is State.REGISTERED
    assert phone.registered_with == lab.cluster().tftp_hosts[0]
    assert "ITL installed" in phone.status  # item 9 [S3][S4]
    assert "File not found CTLFile.tlv" in phone.status
    assert "ITLRECOVERY" in (phone.itl.header.signer_name if phone.itl else "")
    assert lab.cluster().registrations.get(MAC) is not None  # the registrar really saw it


def test_item26_callmanager_regenerated_on_8x_accepted_through_tvs(net: Net) -> None:
    """Item 26: 8.x-11.5 signs the ITL with CallManager; TVS (over TLS) vouches for the new one."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", release="8.x-11.5"))
    cluster = lab.cluster()
    phone = net.phone(lab, clock)
    assert phone.boot() is State.REGISTERED
    clock.tick()
    regenerate(cluster, CertKind.CALLMANAGER, now=clock(), keys=pooled_keys())
    assert phone.reset() is State.REGISTERED
    itl = last(phone, "itl")
    assert itl.decision == "accepted" and itl.rule == "items 12, 20"
    assert "vouched" in itl.reason
    assert "Trust List updated" in phone.status  # item 13 [S13]
    assert last(phone, "config").decision == "accepted"


def two_clusters(net: Net, clock: Clock) -> tuple[Lab, VirtualPhone]:
    lab = lab_of(ClusterSpec("old"), ClusterSpec("new"))
    phone = net.phone(lab, clock, cluster="old")
    assert phone.boot() is State.REGISTERED
    return lab, phone


def bulk_import(lab: Lab, clock: Clock, *into: str) -> None:
    old, new = lab.cluster("old"), lab.cluster("new")
    bundles = {c.name: export_certificates(c, password=b"pw") for c in (old, new)}
    for name in into:
        import_certificates(lab.cluster(name), bundles, password=b"pw", now=clock())


def tvs_requests(net: Net, host: str) -> int:
    """Queries the TVS server of ``host`` answered (0 in memory: no server)."""
    for server in net.servers:
        tvs = server.server_for(host, "tvs")
        if isinstance(tvs, TvsTlsServer):
            return tvs.requests
    return 0


def test_items34_35_moved_with_bulk_import_reaches_the_old_tvs(net: Net) -> None:
    """The phone, re-pointed at the new cluster, asks the OLD cluster's TVS (over TLS in the
    socket variants) about the new ITL's signer, and installs the new ITL."""
    clock = Clock()
    lab, phone = two_clusters(net, clock)
    old, new = lab.cluster("old"), lab.cluster("new")
    bulk_import(lab, clock, "old", "new")
    phone.tftp = new.tftp_hosts[0]  # option 150 now names the new cluster
    clock.tick()
    asked_before = tvs_requests(net, old.tvs_hosts[0])
    assert phone.reset() is State.REGISTERED
    itl = last(phone, "itl")
    assert itl.decision == "accepted" and itl.rule == "items 12, 20"
    assert any(t.step == "tvs" and t.server and old.tvs_hosts[0] in t.server for t in phone.trace)
    assert phone.itl is not None and "new" in phone.itl.header.signer_name
    assert phone.registered_with == new.tftp_hosts[0]
    if net.kind != "memory":
        assert tvs_requests(net, old.tvs_hosts[0]) > asked_before  # a real TLS exchange


def test_items24_32_old_tvs_stopped_fails_closed_and_says_so(net: Net) -> None:
    clock = Clock()
    lab, phone = two_clusters(net, clock)
    old, new = lab.cluster("old"), lab.cluster("new")
    bulk_import(lab, clock, "old")
    old.stop_node(old.tvs_hosts[0], now=clock())
    net.sync()  # the old node's servers go quiet too
    before = flash_of(phone)
    phone.tftp = new.tftp_hosts[0]
    start = time.monotonic()
    phone.reset()
    itl = last(phone, "itl")
    assert itl.decision == "rejected"
    assert "fail closed" in itl.reason
    assert "Trust List update failed" in phone.status  # item 13 [S13]
    assert flash_of(phone) == before  # item 13: nothing the phone refused reached the flash
    assert time.monotonic() - start < 5  # a refused connection, no waiting


def test_items13_14_tampered_config_rejected_last_good_config_kept(net: Net) -> None:
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    phone = net.phone(lab, clock)
    phone.boot()
    phone.reset()  # now a configured device with its own SEP<MAC>.cnf.xml.sgn
    good = phone.config
    stored = flash_of(phone)
    assert good is not None
    # A man in the middle flips one byte of the signed config on the way.
    phone.backend = FaultyBackend(phone.backend, [Fault(FaultKind.TAMPER, "SEP*.cnf.xml.sgn")])
    clock.tick()
    assert phone.reset() is State.REGISTERED  # with the last good config
    config = last(phone, "config")
    assert config.decision == "rejected"
    assert "signature" in config.reason
    assert f"File auth error SEP{MAC}.cnf.xml.sgn" in phone.status  # 79xx admin guides
    assert phone.config == good
    assert flash_of(phone) == stored


# --- faults on the wire ----------------------------------------------------------------------


class UdpProxy:
    """A UDP relay between a TFTP client and server that can drop DATA packets.

    ``drop(file name, block number)`` decides per DATA packet (server to client). Each read
    request gets a fresh upstream socket, so the server sees each transfer as a new client.
    """

    def __init__(self, upstream: tuple[str, int], drop: Callable[[str, int], bool]) -> None:
        self.upstream = upstream
        self.drop = drop
        self.dropped: list[tuple[str, int]] = []
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back: socket.socket | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] = upstream
        self.current = ""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.front.getsockname()[1])

    def _run(self) -> None:
        while not self.stopping.is_set():
            sockets = [self.front] + ([self.back] if self.back else [])
            ready, _, _ = select.select(sockets, [], [], 0.05)
            for sock in ready:
                data, peer = sock.recvfrom(65536)
                if sock is self.front:
                    self._from_client(data, peer)
                else:
                    self._from_server(data, peer)

    def _from_client(self, data: bytes, peer: tuple[str, int]) -> None:
        self.client = peer
        if data[:2] == b"\x00\x01":  # RRQ: a new transfer
            self.current = data[2:].split(b"\x00", 1)[0].decode()
            if self.back is not None:
                self.back.close()
            self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.server = self.upstream
        if self.back is not None:
            self.back.sendto(data, self.server)

    def _from_server(self, data: bytes, peer: tuple[str, int]) -> None:
        self.server = peer  # the server's transfer port (TID)
        if data[:2] == b"\x00\x03":
            block = int.from_bytes(data[2:4], "big")
            if self.drop(self.current, block):
                self.dropped.append((self.current, block))
                return
        if self.client is not None:
            self.front.sendto(data, self.client)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        assert not self.thread.is_alive()
        self.front.close()
        if self.back is not None:
            self.back.close()


def via_proxy(server: LabServer, host: str, proxy: UdpProxy) -> HostMap:
    """The lab's host map, with ``host``'s TFTP reached through ``proxy``."""
    return server.host_map().with_entry(
        host, HostEntry("127.0.0.1", MappingProxyType({"tftp": proxy.port}))
    )


def tftp_phone(net: Net, lab: Lab, clock: Clock) -> VirtualPhone:
    phone = net.phone(lab, clock)
    phone.model = dataclasses.replace(phone.model, transports=(Transport.TFTP,))
    return phone


def test_dropped_tftp_block_is_resent_and_the_boot_succeeds(sockets: Net) -> None:
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    server = sockets.server(lab, clock)
    host = lab.cluster().tftp_hosts[0]
    once: set[tuple[str, int]] = set()

    def drop_block_2_once(name: str, block: int) -> bool:
        if name.startswith("ITL") and block == 2 and (name, block) not in once:
            once.add((name, block))
            return True
        return False

    proxy = UdpProxy(server.address(host, "tftp"), drop_block_2_once)
    try:
        phone = tftp_phone(sockets, lab, clock)
        phone.backend = sockets.backend(lab, clock, via_proxy(server, host, proxy))
        start = time.monotonic()
        assert phone.boot() is State.REGISTERED
        assert time.monotonic() - start < 3
        assert proxy.dropped == [("ITLSEP001122334455.tlv", 2)]
        assert "ITL installed" in phone.status  # item 9 [S3][S4]
        assert "TFTP timeout" not in phone.status  # vphone's text (networks.md)
    finally:
        proxy.close()


def test_lossy_tftp_path_keeps_the_old_itl_and_says_tftp_timeout(sockets: Net) -> None:
    """Item 13: every ITL transfer loses its blocks: 'TFTP timeout', ITL unchanged, within the
    retry budget (timeout x attempts per file)."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    server = sockets.server(lab, clock)
    host = lab.cluster().tftp_hosts[0]
    phone = tftp_phone(sockets, lab, clock)
    assert phone.boot() is State.REGISTERED
    phone.reset()  # a known device now: its own config from here on
    before = flash_of(phone)
    proxy = UdpProxy(server.address(host, "tftp"), lambda name, block: name.startswith("ITL"))
    try:
        phone.backend = sockets.backend(lab, clock, via_proxy(server, host, proxy))
        clock.tick()
        start = time.monotonic()
        assert phone.reset() is State.REGISTERED  # with the config it keeps
        elapsed = time.monotonic() - start
    finally:
        proxy.close()
    itl_fetches = [t for t in phone.trace if t.step == "itl" and t.decision == "timeout"]
    assert [t.file for t in itl_fetches[-2:]] == ["ITLSEP001122334455.tlv", "ITLFile.tlv"]
    assert "TFTP timeout" in phone.status  # vphone's text (docs/networks.md)
    assert flash_of(phone) == before
    budget = 2 * phone.model.tftp_retries * TIMEOUT  # two ITL names, each its attempts
    assert elapsed < budget + 2.0


class TruncateTrustLists(FileRequestHandler):
    """An HTTP path that cuts trust lists in half (Content-Length announces the whole file)."""

    def send_file(self, data: bytes) -> None:
        if ".tlv" not in self.path:
            super().send_file(data)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


def test_item4_truncated_http_body_falls_back_to_tftp(sockets: Net) -> None:
    """A model that tries HTTP first (8841) falls back to TFTP when the HTTP body is cut."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    sockets.server(lab, clock, http_handler=TruncateTrustLists)
    phone = create_phone(lab, mac=MAC, clock=clock, backend=sockets.backend(lab, clock))
    assert phone.model.transports == (Transport.HTTP, Transport.TFTP)
    assert phone.boot() is State.REGISTERED
    assert last(phone, "itl").decision == "accepted"
    assert "ITL installed" in phone.status  # item 9 [S3][S4]


def test_truncated_http_body_with_http_only_keeps_the_itl(sockets: Net) -> None:
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"))
    good_lab_phone = create_phone(lab, mac=MAC, clock=clock)  # a phone that booted before
    assert good_lab_phone.boot() is State.REGISTERED
    good_lab_phone.reset()  # a known device now: its own config from here on
    sockets.server(lab, clock, http_handler=TruncateTrustLists)
    phone = create_phone(
        lab, mac=MAC, clock=clock, backend=sockets.backend(lab, clock), flash=good_lab_phone.flash
    )
    phone.model = dataclasses.replace(phone.model, transports=(Transport.HTTP,))
    before = flash_of(phone)
    start = time.monotonic()
    assert phone.boot() is State.REGISTERED
    assert time.monotonic() - start < 3
    failed = [t for t in phone.trace if t.step == "itl" and t.decision == "timeout"]
    assert failed and "truncated" in failed[-1].reason
    assert "TFTP timeout" in phone.status  # vphone's text (docs/networks.md)
    assert flash_of(phone) == before


def test_items13_14_replaced_config_from_a_rogue_cluster_is_refused(sockets: Net) -> None:
    """A man in the middle substitutes a config validly signed by ANOTHER cluster: its signer
    is no TFTP record of the ITL and the phone's TVS does not know it (items 14, 24)."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1"), ClusterSpec("rogue"))
    rogue = lab.cluster("rogue")
    rogue.add_device(Device(MAC), now=clock())
    rogue_files = lab.file_service(rogue.tftp_hosts[0])
    assert rogue_files is not None
    substitute = rogue_files.get(f"SEP{MAC}.cnf.xml.sgn", ClientInfo(address="127.0.0.1"))
    assert substitute is not None
    replacing = threading.Event()

    def man_in_the_middle(host: str, name: str, data: bytes | None) -> bytes | None:
        if replacing.is_set() and name.endswith(".cnf.xml.sgn"):
            return substitute
        return data

    intercept: Intercept = man_in_the_middle
    sockets.server(lab, clock, intercept=intercept)
    phone = sockets.phone(lab, clock, cluster="c1")
    assert phone.boot() is State.REGISTERED
    phone.reset()  # its own config, now that it is a known device
    good, before = phone.config, flash_of(phone)
    replacing.set()
    clock.tick()
    assert phone.reset() is State.REGISTERED  # last good config
    config = last(phone, "config")
    assert config.decision == "rejected"
    assert f"File auth error SEP{MAC}.cnf.xml.sgn" in phone.status  # 79xx admin guides
    assert phone.config == good
    assert flash_of(phone) == before


class SilentListener:
    """A TCP server that accepts connections and never says anything."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.conns: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        assert not self.thread.is_alive()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_items24_tvs_that_never_answers_fails_closed_within_its_budget(sockets: Net) -> None:
    """8.x, CallManager regenerated: the phone must ask TVS; TVS accepts and stays silent."""
    clock = Clock()
    lab = lab_of(ClusterSpec("c1", release="8.x-11.5"))
    cluster = lab.cluster()
    server = sockets.server(lab, clock)
    phone = sockets.phone(lab, clock)
    assert phone.boot() is State.REGISTERED
    phone.reset()
    before = flash_of(phone)
    silent = SilentListener()
    try:
        tvs_host = cluster.tvs_hosts[0]
        hosts = server.host_map().with_entry(
            tvs_host, HostEntry("127.0.0.1", MappingProxyType({"tvs": silent.port}))
        )
        phone.backend = sockets.backend(lab, clock, hosts)
        clock.tick()
        regenerate(cluster, CertKind.CALLMANAGER, now=clock(), keys=pooled_keys())
        start = time.monotonic()
        state = phone.reset()
        elapsed = time.monotonic() - start
        assert silent.conns  # the phone did connect; the server never answered
    finally:
        silent.close()
    assert state in TERMINAL
    itl = last(phone, "itl")
    assert itl.decision == "rejected" and "fail closed" in itl.reason
    assert "no answer" in itl.reason or "timed out" in itl.reason
    assert "Trust List update failed" in phone.status  # item 13 [S13]
    assert last(phone, "config").decision == "rejected"  # signed by the new key: TVS again
    assert flash_of(phone) == before
    # Two TVS questions (ITL, config), one server each, TVS_TIMEOUT apiece, plus slack.
    assert elapsed < 2 * TVS_TIMEOUT + 2.0

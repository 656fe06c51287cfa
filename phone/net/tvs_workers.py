"""TVS on every core: several worker processes answering on one port (issue 17 item 5).

One CPython process answers TVS on one core: the TLS handshake (an RSA signature with the TVS
key per new connection) holds the GIL. :class:`TvsWorkerPool` binds the port once in this
process (a *pre-forked listener*, :mod:`phone.net.prefork`, which CAPF's pool shares: no
``SO_REUSEPORT``, so port 0 works and nothing else can join the port) and starts
``processes`` worker processes (``spawn``: safe in a process that
already runs threads, such as ``vphone lab serve``). Each worker accepts on the inherited
listening socket in its own :class:`phone.net.tvs_tls.TvsTlsServer` (the selector loop, the
limits and the deadlines of :class:`phone.net.service.StreamService`, per worker), so the
kernel hands each new connection to whichever worker is free to accept it. A worker ignores
SIGINT (Ctrl-C reaches the whole process group; the parent decides), and ends when the parent
says so or when the pipe to it closes (the parent is gone): no worker outlives its parent.

**The workers follow the lab.** TVS only reads the lab, and only a small part of it: a
cluster's nodes (their certificates and whether they run TVS), trust stores and parameters.
The parent keeps that *TVS view* of every cluster (:func:`tvs_view`: the cluster's state
without devices, registrations, logs or files) and hands it to every worker as bytes
(``cluster.json`` documents and their key files, :mod:`phone.cluster.codec`):

* when the served lab is replaced (:meth:`phone.net.servers.LabServer.swap`, the reload of
  ``vphone lab serve``): setting :attr:`TvsWorkerPool.lab` sends the new view and waits until
  every worker has switched, so once the swap returns no worker answers from the old lab;
* when the lab changes in place (a CAPF or SIP server of the same ``lab serve``, a test holding
  the lock): a watcher thread compares every cluster's revision each :data:`WATCH_INTERVAL`
  seconds and sends the view again when the TVS part of it changed (registrations and logs,
  which change all the time in a boot storm, do not cause a send).

Each worker reloads its lab from the view (RSA keys parsed again: a few milliseconds per
cluster). A request a worker is answering while a view arrives finishes on the view it began
with, as in one process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import pickle
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import cast

from phone.cluster.cluster import Cluster
from phone.cluster.codec import decode_cluster, encode_cluster, json_bytes
from phone.cluster.itl import ItlHashDatabase
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterState
from phone.device.trace import utc_now
from phone.errors import NetworkError
from phone.net.prefork import (
    MAX_PROCESSES,
    PreforkedPool,
    Worker,
    parent_log_level,
    serve_parent,
    worker_setup,
)
from phone.net.service import WORKERS
from phone.net.tvs_tls import TvsTlsServer
from phone.pki import Identity, key_to_pem

__all__ = ["MAX_PROCESSES", "WATCH_INTERVAL", "TvsWorkerPool", "tvs_view"]

log = logging.getLogger("vphone.tvs")

WATCH_INTERVAL = 0.25  # seconds between looks at the clusters' revisions (in-place changes)
_ANSWER_TIMEOUT = 10.0  # a worker's answer to a new view or a count request

View = list[tuple[str, bytes, dict[str, bytes]]]
"""Per cluster, in lab order: its name, its reduced ``cluster.json`` and its key files."""


def _documents(lab: Lab) -> list[tuple[str, bytes, dict[str, Identity]]]:
    """Per cluster: its name, its reduced ``cluster.json`` and the identities it names."""
    out = []
    for cluster in lab.clusters:
        state = dataclasses.replace(
            cluster.state,
            devices={},
            registrations={},
            log=[],
            itl_files={},
            ctl_file=None,
            hashes=ItlHashDatabase(),
            auth_failures={},
        )
        document, identities = encode_cluster(state)
        out.append((cluster.name, json_bytes(document), identities))
    return out


def _with_keys(documents: list[tuple[str, bytes, dict[str, Identity]]]) -> View:
    return [
        (
            name,
            document,
            {n: key_to_pem(i.key, None, allow_unencrypted=True) for n, i in identities.items()},
        )
        for name, document, identities in documents
    ]


def tvs_view(lab: Lab) -> View:
    """What TVS reads of ``lab``, as picklable bytes (module docstring)."""
    return _with_keys(_documents(lab))


def _view_key(documents: list[tuple[str, bytes, dict[str, Identity]]]) -> bytes:
    """What decides whether a view changed (documents name their key files)."""
    return b"\0".join(document for _, document, _ in documents)


def lab_from_view(view: View) -> Lab:
    """The lab a worker serves from ``view`` (no firmware: TVS reads none)."""
    clusters = []
    for name, document, keys in view:
        state: ClusterState = decode_cluster(Path(name), json.loads(document), keys.__getitem__)
        clusters.append(Cluster(state))
    return Lab(clusters, firmware={})


class _InheritedTvs(TvsTlsServer):
    """A worker's TVS server: it accepts on the socket its parent bound."""

    # One connection per wake-up: the workers share one backlog, and a worker taking a batch
    # would hold handshakes that an idle worker could run now.
    _accept_batch = 1
    # Steps run on the loop thread (StreamService._inline): the sibling processes accept while
    # this one runs a handshake, and one wakes per connection (EPOLLEXCLUSIVE).
    _inline = True
    _exclusive_accept = True

    def __init__(self, sock: socket.socket, lab: Lab, host: str, **kwargs: object) -> None:
        super().__init__(lab, host, **kwargs)  # type: ignore[arg-type]
        self._inherited = sock

    def _bind(self) -> socket.socket:
        return self._inherited


@dataclasses.dataclass(frozen=True, slots=True)
class _Settings:
    """What every worker is started with (picklable)."""

    host: str
    clock: Callable[[], datetime] | None
    read_timeout: float
    threads: int
    log_level: int | None  # log to stderr at this level (the parent logs), or not at all


def _worker(sock: socket.socket, conn: Connection, settings: _Settings, view: View) -> None:
    """A worker process: serve TVS on ``sock`` until told to stop or the parent is gone."""
    worker_setup(log, settings.log_level)
    server = _InheritedTvs(
        sock,
        lab_from_view(view),
        settings.host,
        clock=settings.clock or utc_now,
        read_timeout=settings.read_timeout,
        workers=settings.threads,
    )

    def switch(payload: object) -> None:
        lab = lab_from_view(cast(View, payload))
        with server.lock:  # a request in progress finishes on the lab it began with
            server.lab = lab

    serve_parent(
        server, conn, {"view": switch, "counts": lambda _: (server.requests, server.dropped)}
    )


class TvsWorkerPool(PreforkedPool):
    """TVS for node ``tvs_host`` of ``lab`` answered by ``processes`` worker processes on one
    port (module docstring). Used like :class:`phone.net.tvs_tls.TvsTlsServer`.

    Args:
        lab: the lab served (its TVS view is sent to the workers; see :attr:`lab`).
        tvs_host: the TVS node's host name.
        processes: worker processes (each with its own selector loop and ``threads``).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the lab clock; it must be picklable (a module-level function), since the
            workers call it in their own process. Default: the wall clock.
        read_timeout: as :class:`~phone.net.tvs_tls.TvsTlsServer`.
        threads: worker threads per process.
        lock: held while the TVS view of the lab is taken (share the servers' lock).
    """

    service = "TVS"

    def __init__(
        self,
        lab: Lab,
        tvs_host: str,
        *,
        processes: int,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        clock: Callable[[], datetime] | None = None,
        read_timeout: float = 2.0,
        threads: int = WORKERS,
        lock: threading.Lock | threading.RLock | None = None,
    ) -> None:
        super().__init__(
            lab, processes=processes, listen=listen, watch_interval=WATCH_INTERVAL, log=log
        )
        if clock is not None:
            try:
                pickle.dumps(clock)
            except (pickle.PicklingError, AttributeError, TypeError):
                raise NetworkError(
                    "TVS worker processes need a clock they can import (a module-level "
                    f"function), not {clock!r}"
                ) from None
        self.tvs_host = tvs_host
        self.clock = clock
        self.read_timeout = read_timeout
        self.threads = threads
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.views_sent = 0  # views sent after the start (tests: in-place changes reach workers)
        self._boot: tuple[_Settings, View] | None = None  # what start hands every worker
        self._revisions: tuple[tuple[str, int], ...] = ()
        self._view_key = b""

    # --- the lab ---------------------------------------------------------------------------

    def _take_view(self) -> View:
        with self.lock:
            lab = self._lab
            if lab.resolve(self.tvs_host) is None:
                raise NetworkError(f"the lab has no node {self.tvs_host!r}")
            self._revisions = tuple((c.name, c.revision) for c in lab.clusters)
            documents = _documents(lab)
        self._view_key = _view_key(documents)
        return _with_keys(documents)

    def _push(self, *, force: bool) -> None:
        """Send the lab's TVS view to every worker if it changed (or ``force``).

        Locks are taken in one order, the servers' lock then the pipes': the setter of
        :attr:`lab` runs under the servers' lock (``LabServer.swap``).
        """
        with self.lock, self._pipe_lock:
            revisions = tuple((c.name, c.revision) for c in self._lab.clusters)
            if not force and revisions == self._revisions:
                return
            self._revisions = revisions
            documents = _documents(self._lab)
            key = _view_key(documents)
            if not force and key == self._view_key:
                return  # only devices, registrations or logs changed
            self._view_key = key
            view = _with_keys(documents)
            for worker in self._workers:
                worker.control.send(("view", view))
            for index, worker in enumerate(self._workers):
                self._answer(worker.control, index)
            self.views_sent += 1

    def _answer(self, conn: Connection, index: int) -> object:
        if not conn.poll(_ANSWER_TIMEOUT):
            raise NetworkError(f"TVS worker {index} did not answer within {_ANSWER_TIMEOUT} s")
        kind, payload = conn.recv()
        if kind != "ok":
            raise NetworkError(f"TVS worker {index}: {payload}")
        return payload

    # --- life cycle ------------------------------------------------------------------------

    def _spawn(
        self, index: int, sock: socket.socket, context: multiprocessing.context.SpawnContext
    ) -> Worker:
        assert self._boot is not None
        mine, theirs = context.Pipe()
        process = context.Process(
            target=_worker,
            args=(sock, theirs, *self._boot),
            name=f"vphone-tvs-{index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        return Worker(process, mine)

    def start(self) -> None:
        """Bind the port, start the workers and wait until each accepts.

        Raises:
            NetworkError: the address cannot be bound, the lab has no such node, or a worker
                failed to start (every worker started is stopped again).
        """
        view = self._take_view()
        settings = _Settings(
            host=self.tvs_host,
            clock=self.clock,
            read_timeout=self.read_timeout,
            threads=self.threads,
            log_level=parent_log_level(),
        )
        self._boot = (settings, view)
        try:
            self._start_workers()
        finally:
            self._boot = None  # the view holds key files: not kept past the start
        log.info(
            "TVS %s listening on %s:%d (%d worker processes)",
            self.tvs_host,
            *self.address,
            self.processes,
        )

    def counts(self) -> tuple[int, int]:
        """(requests answered, connections dropped), summed over the live workers.

        A worker that died (killed, out of memory) took its counts with it; the others still
        answer, and so does this (it raised a broken pipe before, failing the status of a
        server whose other workers were serving).
        """
        requests = dropped = 0
        with self._pipe_lock:
            for index, worker in enumerate(self._workers):
                if not worker.process.is_alive():
                    continue
                try:
                    worker.control.send(("counts", None))
                    answer = self._answer(worker.control, index)
                except (OSError, EOFError):  # it died between the check and the answer
                    continue
                assert isinstance(answer, tuple)
                requests += int(answer[0])
                dropped += int(answer[1])
        return requests, dropped

    @property
    def requests(self) -> int:
        """Requests answered by every worker (as :attr:`TvsTlsServer.requests`)."""
        return self.counts()[0]

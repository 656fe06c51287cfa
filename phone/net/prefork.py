"""Worker processes answering on one port: the pre-forked listener TVS and CAPF share
(issue 17 item 5; :mod:`phone.net.tvs_workers`, :mod:`phone.net.capf_workers`).

:class:`PreforkedPool` binds the port once in this process (no ``SO_REUSEPORT``, so port 0
works and nothing else can join the port), starts worker processes (``spawn``: safe in a
process that already runs threads, such as ``vphone lab serve``) that accept on the inherited
socket, waits until each says it is ready, watches the lab for changes the workers must follow
(:meth:`PreforkedPool._push`, every ``watch_interval`` seconds), and stops them all. What a
worker runs and what it is sent are the subclass's: the pool only owns the processes' life.

A worker's control pipe carries ``("stop", None)`` from here; its first message is
``("ready", ...)`` or ``("failed", why)``. A worker that dies is skipped by whatever asks the
live workers (:meth:`PreforkedPool.live`); :meth:`PreforkedPool.stop` ends every worker,
killing one stuck in a request after 5 seconds, so none outlives the pool.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from phone.cluster.lab import Lab
from phone.errors import NetworkError
from phone.net.service import BACKLOG, BackgroundService, StreamService, listening_address

__all__ = [
    "MAX_PROCESSES",
    "PreforkedPool",
    "Worker",
    "parent_log_level",
    "serve_parent",
    "worker_setup",
]

MAX_PROCESSES = 64
_READY_TIMEOUT = 60.0  # a spawned worker imports the package and loads its state (~0.5 s idle)
_STOP_SECONDS = 5.0  # how long a worker has to end after "stop" before it is killed


def parent_log_level() -> int | None:
    """The level a worker logs at to stderr: the parent's, when the parent logs at all."""
    parent = logging.getLogger("vphone")
    return parent.getEffectiveLevel() if parent.handlers else None


def worker_setup(log: logging.Logger, level: int | None) -> None:
    """First thing in a worker process: leave Ctrl-C to the parent (it reaches the whole process
    group; the parent decides), and log to stderr at ``level`` with the process id, or not at
    all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if level is None:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s[%(process)d]: %(message)s", "%H:%M:%S")
    )
    log.addHandler(handler)
    log.setLevel(level)


def serve_parent(
    server: StreamService,
    control: Connection,
    handlers: Mapping[str, Callable[[object], object]],
) -> None:
    """In a worker process: start ``server`` on the inherited socket and say ``ready`` (or
    ``failed`` and why), then answer each message of the parent with ``("ok", handler(payload))``
    until ``stop``, any message without a handler, or the parent gone; then stop the server."""
    try:
        server.start()
    except Exception as exc:  # reported to the parent, which raises it
        control.send(("failed", str(exc)))
        return
    try:
        control.send(("ready", os.getpid()))
        while True:
            try:
                kind, payload = control.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            handler = handlers.get(kind)
            if handler is None:  # "stop"
                break
            control.send(("ok", handler(payload)))
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            control.close()


@dataclass(eq=False)
class Worker:
    """One worker process: its control pipe, and the pool's own extras (a second pipe and the
    thread serving it, for CAPF's session steps)."""

    process: BaseProcess
    control: Connection
    rpc: Connection | None = None
    thread: threading.Thread | None = None


class PreforkedPool(BackgroundService):
    """The life of ``processes`` worker processes accepting on one port (module docstring).

    Subclasses set :attr:`service` (the name in messages and logs), implement :meth:`_spawn`
    (one worker started on the listening socket) and :meth:`_push` (send the workers what
    changed; ``force`` after a lab swap), and call :meth:`_start_workers` from ``start``.
    """

    service = "server"

    def __init__(
        self,
        lab: Lab,
        *,
        processes: int,
        listen: tuple[str, int],
        watch_interval: float,
        log: logging.Logger,
    ) -> None:
        if not 1 <= processes <= MAX_PROCESSES:
            raise NetworkError(
                f"{self.service} worker processes must be between 1 and {MAX_PROCESSES}, "
                f"not {processes}"
            )
        self._lab = lab
        self.processes = processes
        self.listen = listen
        self._watch_interval = watch_interval
        self._log = log
        self._sock: socket.socket | None = None
        self._workers: list[Worker] = []
        self._pipe_lock = threading.Lock()  # one control exchange with the workers at a time
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what a subclass provides --------------------------------------------------------------

    @abc.abstractmethod
    def _spawn(
        self, index: int, sock: socket.socket, context: multiprocessing.context.SpawnContext
    ) -> Worker:
        """Start worker ``index`` accepting on ``sock`` (not yet ready)."""

    @abc.abstractmethod
    def _push(self, *, force: bool) -> None:
        """Send the workers what changed in the lab (everything when ``force``)."""

    # --- the lab -------------------------------------------------------------------------------

    @property
    def lab(self) -> Lab:
        """The lab served. Setting it (under the servers' lock, as ``LabServer.swap`` does)
        sends the workers what they serve of it and returns once each has it."""
        return self._lab

    @lab.setter
    def lab(self, lab: Lab) -> None:
        self._lab = lab
        if self._workers:
            self._push(force=True)

    # --- life cycle ----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """Where the workers listen.

        Raises:
            NetworkError: the pool is not started.
        """
        return listening_address(self._sock, self.service)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (tests assert they are gone after :meth:`stop`)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def live(self) -> list[Worker]:
        """The workers still running (a worker that died took its state with it)."""
        return [w for w in self._workers if w.process.is_alive()]

    def _start_workers(self) -> None:
        """Bind the port, start the workers, wait until each accepts, start the watcher.

        Raises:
            NetworkError: the address cannot be bound, or a worker failed to start (every
                worker started is stopped again).
        """
        host, port = self.listen
        try:
            self._sock = socket.create_server(self.listen, backlog=BACKLOG)
        except OSError as exc:
            raise NetworkError(f"{self.service} cannot listen on {host}:{port}: {exc}") from None
        self._sock.setblocking(False)
        context = multiprocessing.get_context("spawn")
        self._stopping.clear()
        try:
            for index in range(self.processes):
                self._workers.append(self._spawn(index, self._sock, context))
            for index, worker in enumerate(self._workers):
                if not worker.control.poll(_READY_TIMEOUT):
                    raise NetworkError(
                        f"{self.service} worker {index} did not start within {_READY_TIMEOUT} s"
                    )
                try:
                    kind, payload = worker.control.recv()
                except EOFError:  # it died before it could say why (its stderr does)
                    kind, payload = "failed", "the process ended"
                if kind != "ready":
                    raise NetworkError(f"{self.service} worker {index} failed to start: {payload}")
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(
            target=self._watch, name=f"{self.service.lower()}-watch", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        """Send the workers what changed in place, every watch interval."""
        while not self._stopping.wait(self._watch_interval):
            try:
                self._push(force=False)
            except (NetworkError, OSError, EOFError) as exc:
                self._log.warning("%s: could not update the workers: %s", self.service, exc)

    def stop(self) -> None:
        """Stop the watcher and every worker process (each closes its connections), and close
        the port."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(_STOP_SECONDS)
        with self._pipe_lock:
            for worker in self._workers:
                with contextlib.suppress(OSError, ValueError):
                    worker.control.send(("stop", None))
            for worker in self._workers:
                worker.process.join(_STOP_SECONDS)
                if worker.process.is_alive():  # stuck in a request: do not leave it behind
                    worker.process.kill()
                    worker.process.join()
                worker.control.close()
                if worker.thread is not None:  # its pipe ended with the process
                    worker.thread.join(_STOP_SECONDS)
                if worker.rpc is not None:
                    worker.rpc.close()
            self._workers = []
        if self._sock is not None:
            self._sock.close()

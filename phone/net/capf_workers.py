"""CAPF on several processes: worker processes on one port, the lab's state in the parent
(issue 17 item 5).

CAPF differs from TVS (:mod:`phone.net.tvs_workers`): it *writes* to the lab. A session
consumes the device's pending operation, records the issued LSC and the operation's result,
notes every step in the cluster's service log, and draws its session id from the cluster's
:class:`phone.cluster.capf.CapfService` (a counter per ``lab serve``). :class:`CapfWorkerPool`
therefore splits a connection at the session's edge:

* the **workers** (``spawn`` processes accepting on the port the parent bound, as TVS's) run
  what costs CPU and touches no state: the TLS handshake (an RSA signature with the CAPF key
  per connection), the socket, the framing (:class:`phone.wire.capf.FrameReader`) and the
  deadlines, limits and counts of :class:`phone.net.service.StreamService`;
* the **parent** holds every :class:`phone.cluster.capf.CapfSession` and runs each step of it
  under the servers' lock, on its own lab, when a worker asks over a pipe: ``open`` (a new
  session: its id and opening AUTH_REQUEST), ``receive`` (one parsed phone frame: the frames
  that answer it and whether the session ended) and ``abort`` (the connection ends early:
  END_SESSION{7} as capfd, the session dropped and logged).

Why not let workers run whole sessions on copies of the lab and send the device updates back:
two workers could then take the same pending operation, session ids would repeat across
workers, and merging service-log notes and device records written on different copies would
have to reproduce exactly what one process writes. With one writer, the lab after any mix of
sessions is what one process leaves: the same ids, notes, LSCs and results, in the order the
steps reached the lock (``tests/test_capf_workers.py`` compares the two). The cost is a pipe
round trip per session step (about 0.1 ms, against milliseconds of RSA per enrollment), and
the LSC is signed in the parent (under the lock, as in one process).

A worker that dies leaves the parent serving: its pipe ends, the sessions it held are dropped
(logged as a lost connection would be) and the thread that served it ends; the kernel hands
new connections to the workers still accepting. The workers follow the CAPF certificate: a
lab swap sends the new one at once, a regenerated one is sent within :data:`WATCH_INTERVAL`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import cast

from phone.cluster.capf import CapfSession
from phone.cluster.lab import Lab
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
from phone.net.service import (
    WORKERS,
    Conversation,
    DropConnection,
    StreamService,
)
from phone.net.tvs_tls import server_context
from phone.pki import Identity, cert_from_pem, cert_to_pem, key_from_pem, key_to_pem
from phone.wire.capf import Frame, FrameReader, encode_frame

__all__ = ["MAX_PROCESSES", "WATCH_INTERVAL", "CapfWorkerPool"]

log = logging.getLogger("vphone.capf")

WATCH_INTERVAL = 0.25  # seconds between looks at the CAPF certificate (regenerated in place)
_ANSWER_TIMEOUT = 10.0  # a worker's answer to a control message

Pems = tuple[bytes, bytes]  # the CAPF certificate and key, PEM


# --- the worker side ---------------------------------------------------------------------------


class _Rpc:
    """A worker's calls to the parent (one at a time: the pool threads share the pipe)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def call(self, *message: object) -> object:
        """Send ``message``, return the parent's answer.

        No timeout: the parent answers once it holds the servers' lock, and a parent that is
        gone closes the pipe (EOFError, which ends the connection).

        Raises:
            NetworkError: the parent refused (no CAPF runs at the host), or is gone.
        """
        with self._lock:
            try:
                self._conn.send(message)
                kind, payload = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise NetworkError(f"CAPF: the serving process is gone ({exc!r})") from None
        if kind != "ok":
            raise NetworkError(str(payload))
        return payload


class _RemoteConversation(Conversation):
    """A CAPF connection in a worker: the session itself lives in the parent (module
    docstring); what :class:`phone.net.capf_tls._CapfConversation` does, over the pipe."""

    def __init__(self, rpc: _Rpc, token: int, opening: list[bytes]) -> None:
        self._rpc = rpc
        self._token = token
        self._opening = opening
        self._reader = FrameReader()
        self._finished = False
        self._problem: str | None = None  # set when the session ended dropped

    def start(self) -> list[bytes]:
        return self._opening  # one write per message (tvs-capf-wire.md section 0)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for frame in self._reader.feed(data):
            answer = self._rpc.call("receive", self._token, frame)
            replies, finished, problem = cast(tuple[list[bytes], bool, str | None], answer)
            out += replies
            if finished:
                self._finished = True
                self._problem = problem
                break
        return out

    @property
    def failure(self) -> str | None:
        return self._problem if self._finished else None

    @property
    def partial(self) -> bool:
        return self._reader.pending > 0

    @property
    def expecting(self) -> bool:
        return not self._finished

    @property
    def finished(self) -> bool:
        return self._finished

    def end(self) -> None:
        if not self._finished:
            cut = " mid-frame" if self._reader.pending else ""
            raise DropConnection(f"the phone closed the connection{cut} mid-session")

    def abort(self, reason: str) -> list[bytes]:
        if self._finished:  # ended by the session itself: already logged
            return []
        self._finished = True
        return cast(list[bytes], self._rpc.call("abort", self._token, reason))


class _WorkerCapf(StreamService):
    """A worker's CAPF server: TLS and framing here, the session in the parent."""

    _log = log
    _protocol = "CAPF"
    _unit = "CAPF message"
    _accept_batch = 1  # the workers share one backlog (as TVS's)
    _exclusive_accept = True

    def __init__(
        self, sock: socket.socket, host: str, identity: Identity, rpc: _Rpc, settings: _Settings
    ) -> None:
        super().__init__(
            node=host,
            listen=("", 0),
            idle_timeout=settings.read_timeout,
            request_timeout=settings.read_timeout,
            handshake_timeout=settings.read_timeout,
            workers=settings.threads,
        )
        self._inherited = sock
        self.identity = identity
        self._rpc = rpc

    def _bind(self) -> socket.socket:
        return self._inherited

    def _tls_context(self) -> ssl.SSLContext:
        return server_context(self.identity, ())  # no client certificate (capf_tls docstring)

    def _open(self, stream: socket.socket, peer: tuple[str, int]) -> Conversation:
        token, opening = cast(tuple[int, list[bytes]], self._rpc.call("open", peer[0]))
        return _RemoteConversation(self._rpc, token, opening)


@dataclasses.dataclass(frozen=True, slots=True)
class _Settings:
    """What every worker is started with (picklable)."""

    host: str
    read_timeout: float
    threads: int
    log_level: int | None  # log to stderr at this level (the parent logs), or not at all


def _from_pems(pems: Pems) -> Identity:
    return Identity(cert_from_pem(pems[0]), key_from_pem(pems[1], None))


def _worker(
    sock: socket.socket, control: Connection, rpc: Connection, settings: _Settings, pems: Pems
) -> None:
    """A worker process: serve CAPF on ``sock`` until told to stop or the parent is gone."""
    worker_setup(log, settings.log_level)
    server = _WorkerCapf(sock, settings.host, _from_pems(pems), _Rpc(rpc), settings)

    def switch(payload: object) -> None:
        server.identity = _from_pems(cast(Pems, payload))

    try:
        serve_parent(server, control, {"identity": switch, "counts": lambda _: server.dropped})
    finally:
        with contextlib.suppress(OSError):
            rpc.close()


# --- the parent --------------------------------------------------------------------------------


class CapfWorkerPool(PreforkedPool):
    """The CAPF of the cluster whose publisher is ``host``, answered by ``processes`` worker
    processes on one port, every session step run here (module docstring). Used like
    :class:`phone.net.capf_tls.CapfTlsServer`.

    Args:
        lab: the lab (read at every session step, here; see :attr:`lab`).
        host: the publisher's host name.
        processes: worker processes (each with its own selector loop and ``threads``).
        listen: address to bind; port 0 picks a free port (see :attr:`address`).
        clock: the time sessions run at (called here: any callable). Default: the lab's clock,
            else the wall clock.
        read_timeout: as :class:`~phone.net.capf_tls.CapfTlsServer`.
        threads: worker threads per process.
        lock: held around every session step (share the servers' lock).
    """

    service = "CAPF"

    def __init__(
        self,
        lab: Lab,
        host: str,
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
        self.host = host
        self.clock: Callable[[], datetime] = clock or lab.clock or utc_now
        self.read_timeout = read_timeout
        self.threads = threads
        self.lock: threading.Lock | threading.RLock = lock or threading.RLock()
        self.sessions = 0  # connections that completed a session (as CapfTlsServer's)
        self.identities_sent = 0  # certificates sent after the start (tests)
        self._sessions: dict[int, tuple[int, CapfSession]] = {}  # token: (worker, session)
        self._tokens = itertools.count(1)
        self._boot: tuple[_Settings, Pems] | None = None  # what start hands every worker
        self._certificate: bytes = b""  # the PEM the workers serve

    # --- the lab ---------------------------------------------------------------------------

    def _identity(self) -> Identity:
        with self.lock:
            service = self._lab.capf_service(self.host)
            if service is None:
                raise NetworkError(f"no CAPF runs at {self.host!r} (it runs on the publisher)")
            return service.cluster.capf

    def _push(self, *, force: bool) -> None:
        """Send the CAPF certificate to every live worker if it changed (or ``force``)."""
        with self.lock, self._pipe_lock:
            identity = self._identity()
            certificate = cert_to_pem(identity.certificate)
            if not force and certificate == self._certificate:
                return  # the key is serialized only for a new certificate
            self._certificate = certificate
            pems = (certificate, key_to_pem(identity.key, None, allow_unencrypted=True))
            live = self.live()
            for worker in live:
                worker.control.send(("identity", pems))
            for worker in live:
                self._answer(worker)
            self.identities_sent += 1

    def _answer(self, worker: Worker) -> object:
        name = worker.process.name
        if not worker.control.poll(_ANSWER_TIMEOUT):
            raise NetworkError(f"CAPF worker {name} did not answer within {_ANSWER_TIMEOUT} s")
        kind, payload = worker.control.recv()
        if kind != "ok":
            raise NetworkError(f"CAPF worker {name}: {payload}")
        return payload

    # --- the session steps (one thread per worker) -------------------------------------------

    def _serve(self, index: int, worker: Worker) -> None:
        """Answer one worker's session steps until its pipe ends (stopped, or it died)."""
        while True:
            assert worker.rpc is not None
            try:
                message = worker.rpc.recv()
            except (EOFError, OSError):
                break
            try:
                answer: tuple[str, object] = ("ok", self._step(index, message))
            except NetworkError as exc:
                answer = ("error", str(exc))
            except Exception as exc:  # a bug in a step ends that connection, not this thread
                log.exception("CAPF %s: a session step failed", self.host)
                answer = ("error", f"internal error: {exc!r}")
            try:
                worker.rpc.send(answer)
            except OSError:
                break
        with self.lock:  # what the worker held ends as a lost connection would
            for token, (owner, session) in list(self._sessions.items()):
                if owner == index:
                    del self._sessions[token]
                    session.drop("the CAPF worker process serving the connection ended")
        if not self._stopping.is_set():
            log.warning("CAPF %s: worker process %s ended", self.host, worker.process.name)

    def _step(self, index: int, message: tuple[object, ...]) -> object:
        kind = message[0]
        with self.lock:
            if kind == "open":
                service = self._lab.capf_service(self.host)
                if service is None:
                    raise NetworkError(f"CAPF on {self.host} is not running")
                session = service.open(now=self.clock(), peer=str(message[1]))
                opening = [encode_frame(frame) for frame in session.start()]
                token = next(self._tokens)
                self._sessions[token] = (index, session)
                return token, opening
            held = message[1]
            assert isinstance(held, int)
            token = held
            session = self._sessions[token][1]
            if kind == "abort":
                del self._sessions[token]
                return [encode_frame(frame) for frame in session.abort(str(message[2]))]
            frame = message[2]
            assert isinstance(frame, Frame)
            replies = [encode_frame(reply) for reply in session.receive(frame)]
            if not session.finished:
                return replies, False, None
            del self._sessions[token]
            if not session.dropped:
                self.sessions += 1
            problem = (session.problem or "protocol breach") if session.dropped else None
            return replies, True, problem

    # --- life cycle ------------------------------------------------------------------------

    @property
    def open_sessions(self) -> int:
        """Sessions begun and not yet ended (tests: none is left behind)."""
        with self.lock:
            return len(self._sessions)

    def _spawn(
        self, index: int, sock: socket.socket, context: multiprocessing.context.SpawnContext
    ) -> Worker:
        assert self._boot is not None
        control, control_child = context.Pipe()
        rpc, rpc_child = context.Pipe()
        process = context.Process(
            target=_worker,
            args=(sock, control_child, rpc_child, *self._boot),
            name=f"vphone-capf-{index}",
            daemon=True,
        )
        process.start()
        control_child.close()
        rpc_child.close()
        return Worker(process, control, rpc)

    def start(self) -> None:
        """Bind the port, start the workers and wait until each accepts.

        Raises:
            NetworkError: the address cannot be bound, no CAPF runs at the host, or a worker
                failed to start (every worker started is stopped again).
        """
        identity = self._identity()
        self._certificate = cert_to_pem(identity.certificate)
        pems = (self._certificate, key_to_pem(identity.key, None, allow_unencrypted=True))
        settings = _Settings(
            host=self.host,
            read_timeout=self.read_timeout,
            threads=self.threads,
            log_level=parent_log_level(),
        )
        self._boot = (settings, pems)
        try:
            self._start_workers()
            for index, worker in enumerate(self._workers):
                worker.thread = threading.Thread(
                    target=self._serve, args=(index, worker), name=f"capf-rpc-{index}", daemon=True
                )
                worker.thread.start()
        except BaseException:
            self.stop()
            raise
        finally:
            self._boot = None  # the key: not kept past the start
        log.info(
            "CAPF %s listening on %s:%d (%d worker processes)",
            self.host,
            *self.address,
            self.processes,
        )

    @property
    def dropped(self) -> int:
        """Connections the live workers ended early or refused (as
        :attr:`StreamService.dropped`; a worker that died takes its count with it)."""
        total = 0
        with self._pipe_lock:
            live = self.live()
            for worker in live:
                with contextlib.suppress(OSError):
                    worker.control.send(("counts", None))
            for worker in live:
                with contextlib.suppress(NetworkError, OSError, EOFError):
                    total += cast(int, self._answer(worker))
        return total

"""TFTP on tftpy: the phone's client and the lab's read-only server (item 4: TFTP/69).

Client: :func:`fetch_tftp` downloads one file the way a phone does: the ``blksize`` option
(1428, what modern phones ask for so a block fits an Ethernet frame), a per-packet timeout and
a number of attempts, and maps tftpy's exceptions onto :mod:`phone.errors`.

Server: :class:`TftpFileServer` serves the bytes a provider returns (the cluster's file
service) and nothing else. tftpy 0.8.7 has threads that die on ordinary input
(python-libraries.md 2.4, plus what we found on top); each is worked around here:

1. a provider returning ``io.BytesIO`` kills ``listen()`` when the session ends: we hand tftpy
   a real temporary file (:func:`tempfile.TemporaryFile`), which it closes and so deletes;
2. any exception other than ``TftpException`` raised by the provider kills it: the provider
   call is wrapped, logged, and turned into "File not found";
3. malformed datagrams kill it too (a non-ASCII file name, a non-numeric ``blksize``, a DATA or
   ACK packet cut short raise ``UnicodeDecodeError``, ``ValueError`` or ``struct.error`` from
   inside ``listen()``): a supervisor loop logs the reason, closes the dead loop's sockets and
   listens again on the same port. Transfers in flight at that moment are lost; their clients
   retry, as phones do.

The server is read-only (a write request gets TFTP error 2, "Access violation"), serves from
an empty private root folder so nothing on disk is ever served, and refuses unsafe names (see
:func:`phone.net.directory.unsafe_name_reason`) with a logged reason. It is IPv4 only, like
tftpy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import tftpy

from phone.cluster.files import ClientInfo
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.directory import unsafe_name_reason
from phone.net.service import BackgroundService

__all__ = [
    "DEFAULT_BLKSIZE",
    "DEFAULT_TFTP_PORT",
    "FileProvider",
    "TftpFileServer",
    "fetch_tftp",
]

DEFAULT_TFTP_PORT = 69
DEFAULT_BLKSIZE = 1428  # 1500-byte Ethernet MTU minus IP, UDP and TFTP headers

FileProvider = Callable[[str, ClientInfo], bytes | None]
"""What a file server serves: the bytes for a (safe) name, or None for "not found"."""

log = logging.getLogger("phone.net.tftp")
# tftpy logs every transfer at INFO and every not-found at ERROR. A library must not print
# through logging's last-resort handler; applications that configure logging still see it.
logging.getLogger("tftpy").addHandler(logging.NullHandler())


def fetch_tftp(
    host: str,
    port: int,
    name: str,
    *,
    blksize: int = DEFAULT_BLKSIZE,
    timeout: float = 2.0,
    retries: int = 3,
) -> bytes:
    """Download ``name`` from the TFTP server at ``host``:``port``.

    ``timeout`` is how long to wait for each packet; ``retries`` how many timeouts in a row
    end the transfer (tftpy resends the last packet in between), so a silent server costs about
    ``timeout * retries`` seconds.

    Raises:
        FileNotFoundOnServer: the server answered TFTP error 1.
        TransferTimeout: no answer within the retry budget.
        NetworkError: any other failure (an error packet, an unknown host, a broken packet).
    """
    buffer = io.BytesIO()  # a download target may be BytesIO (python-libraries.md 2.2)
    try:
        # Resolve first: tftpy opens its socket before resolving and leaks it on failure.
        address = socket.gethostbyname(host)
    except OSError as exc:
        raise NetworkError(f"TFTP server {host} cannot be resolved: {exc}") from None
    try:
        client = tftpy.TftpClient(address, port, options={"blksize": blksize})
        client.download(name, buffer, timeout=timeout, retries=max(1, retries))
    except tftpy.TftpFileNotFoundError:
        raise FileNotFoundOnServer(name) from None
    except tftpy.TftpTimeout:
        raise TransferTimeout(
            f"no TFTP answer from {host}:{port} for {name} ({max(1, retries)} x {timeout:g} s)"
        ) from None
    except tftpy.TftpException as exc:
        raise NetworkError(f"TFTP {host}:{port} {name}: {exc}") from None
    except OSError as exc:  # unknown host, unreachable network
        raise NetworkError(f"TFTP {host}:{port}: {exc}") from None
    except Exception as exc:  # tftpy raises untyped errors (struct, unicode) on broken packets
        raise NetworkError(f"TFTP {host}:{port} {name}: broken transfer ({exc!r})") from None
    return buffer.getvalue()


class TftpFileServer(BackgroundService):
    """A read-only TFTP server over a :data:`FileProvider` (module docstring).

    Args:
        provider: called with the requested name (without a leading ``/``) and the client.
        listen: address and port to bind; port 0 picks a free port.
        timeout: tftpy's select and retransmit timeout; also how soon :meth:`stop` takes
            effect (python-libraries.md 2.3).
        retries: retransmissions before the server gives a session up.
        label: a name for log lines (the lab node it serves).
    """

    def __init__(
        self,
        provider: FileProvider,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        timeout: float = 0.2,
        retries: int = 5,
        label: str = "tftp",
    ) -> None:
        self.provider = provider
        self.label = label
        self._listen = listen
        self._timeout = timeout
        self._retries = retries
        self._root: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._bind_error: OSError | None = None
        self._port = listen[1]
        self.restarts = 0  # how often the supervisor revived a crashed loop

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port)."""
        return self._listen[0], self._port

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            NetworkError: the address cannot be bound.
        """
        if self._thread is not None:
            return
        self._root = tempfile.mkdtemp(prefix="vphone-tftp-")
        server = tftpy.TftpServer(
            self._root, dyn_file_func=self._open, upload_open=self._refuse_write
        )
        self._server = server
        self._stopping.clear()
        self._bind_error = None
        thread = threading.Thread(target=self._supervise, name=f"tftp {self.label}", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + 5.0
        # tftpy sets is_running right after binding (and listenport before it).
        while not server.is_running.wait(0.02):
            if not thread.is_alive() or time.monotonic() > deadline:
                break
        if not server.is_running.is_set():
            error = self._bind_error
            self.stop()
            raise NetworkError(f"TFTP cannot listen on {self._listen[0]}:{self._port}: {error}")
        self._port = int(server.listenport)
        log.info("%s: TFTP listening on %s:%d", self.label, self._listen[0], self._port)

    def stop(self) -> None:
        """Stop serving and wait for the thread to end (within about ``timeout``)."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop(now=True)
        if self._thread is not None:
            self._thread.join(5.0)
        self._thread = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # --- the supervised loop ---------------------------------------------------------------

    def _supervise(self) -> None:
        server = self._server
        while not self._stopping.is_set():
            try:
                server.listen(
                    self._listen[0], self._port, timeout=self._timeout, retries=self._retries
                )
                return  # stop() ended the loop
            except Exception as exc:  # workaround 3 (module docstring): revive the loop
                if not server.is_running.is_set():  # the bind itself failed
                    if server.sock is not None:
                        server.sock.close()  # tftpy leaves the unbound socket open
                    self._bind_error = exc if isinstance(exc, OSError) else OSError(str(exc))
                    log.error("%s: TFTP cannot listen: %s", self.label, exc)
                    return
                self._crashed(server, exc)

    def _crashed(self, server: Any, exc: BaseException) -> None:  # noqa: ANN401 - untyped tftpy
        self.restarts += 1
        if server.listenport:
            self._port = int(server.listenport)
        log.warning(
            "%s: TFTP loop died on a malformed request (%r); listening again on port %d",
            self.label,
            exc,
            self._port,
        )
        if server.sock is not None:
            server.sock.close()
        for session in list(server.sessions.values()):
            with contextlib.suppress(Exception):  # best-effort cleanup of a dead session
                session.end()
        server.sessions = {}
        server.is_running.clear()

    # --- tftpy callbacks ---------------------------------------------------------------------

    def _open(
        self, filename: str, raddress: str = "", rport: int = 0, **_: object
    ) -> IO[bytes] | None:
        """tftpy's ``dyn_file_func``: never raises (workaround 2), never returns BytesIO (1)."""
        client = f"{raddress}:{rport}"
        try:
            reason = unsafe_name_reason(filename)
            if reason is not None:
                log.warning(
                    "%s: TFTP RRQ %r from %s refused: %s", self.label, filename, client, reason
                )
                return None
            data = self.provider(filename, ClientInfo(address=raddress))
            if data is None:
                log.info("%s: TFTP RRQ %s from %s: not found", self.label, filename, client)
                return None
            handle = tempfile.TemporaryFile()  # noqa: SIM115 - tftpy closes (and so deletes) it
            handle.write(data)
            handle.seek(0)
            log.info("%s: TFTP RRQ %s from %s: %d bytes", self.label, filename, client, len(data))
            return handle
        except Exception as exc:  # workaround 2: an exception here would kill the server
            log.error("%s: TFTP RRQ %r from %s failed: %r", self.label, filename, client, exc)
            return None

    def _refuse_write(self, path: str, context: object) -> None:
        """tftpy's ``upload_open``: every write request is refused (error 2)."""
        log.warning(
            "%s: TFTP write request for %r from %s refused: the server is read-only",
            self.label,
            getattr(context, "file_to_transfer", path),
            getattr(context, "host", "?"),
        )

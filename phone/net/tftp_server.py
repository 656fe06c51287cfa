"""The lab's read-only TFTP server: one thread, one selector, and every transfer isolated.

Why our own loop and not tftpy's (docs/networks.md, "The TFTP server"): tftpy 0.8.7 parses
each datagram inside ``TftpServer.listen()`` itself, so a non-ASCII name, a non-numeric
``blksize`` or a DATA/ACK cut short raises out of the loop and ends *every* transfer in flight
(measured: 10 of 100 downloads lost under 200 malformed packets/s, 640 restarts). A subclass
would have to replace ``listen()`` whole, with tftpy's session classes underneath it (which
also lack RFC 2349 ``timeout`` and RFC 7440 ``windowsize``); an upstream patch would help us
only once released. A read-only server is small, so it is written here against the RFCs, and
tftpy stays the phone's client (:func:`phone.net.tftp.fetch_tftp`), the user's choice.

The design rule: **a datagram can affect at most its own transfer**.

* The request port (69) only parses requests (:mod:`phone.net.tftp_packets`: strict, bounded,
  raising nothing but ``PacketError``). A malformed request is answered with an ERROR packet
  (or dropped: DATA, ACK, OACK and ERROR packets, which have no transfer there, and
  datagrams too short to have an opcode) and costs nothing else.
* Each transfer has its own socket (its TID, RFC 1350). A datagram from another address or
  port gets ERROR 5 "Unknown transfer ID" and leaves the transfer alone; a malformed one from
  the client ends that transfer only. Any unexpected exception while handling one datagram is
  logged and ends at most that transfer.
* Bounded: each transfer retransmits at most ``retries`` times ``timeout`` apart (the client's
  RFC 2349 ``timeout`` if accepted) and lasts at most ``max_duration``; at most
  ``max_transfers`` run at once and ``max_per_source`` per client address. When a limit is
  reached, the oldest transfer that never received an ACK (a flood of requests nobody
  acknowledges) is evicted before a new one is refused, so a flood from one address cannot
  push out transfers that are making progress. Memory per transfer is the served file (a
  reference to the provider's bytes) and one socket.

Served: RRQ in ``octet`` or ``netascii`` mode, options ``blksize`` (8..65464), ``tsize``,
``timeout`` (1..10 s accepted) and ``windowsize`` (up to 32). Write requests get ERROR 2
"Access violation"; names refused by :func:`phone.net.directory.unsafe_name_reason` too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from phone.cluster.files import ClientInfo
from phone.errors import NetworkError
from phone.net import tftp_packets as tp
from phone.net.directory import unsafe_name_reason
from phone.net.service import STOP_POLL, BackgroundService

__all__ = ["FileProvider", "TftpFileServer", "TftpStats"]

FileProvider = Callable[[str, ClientInfo], bytes | None]
"""What a file server serves: the bytes for a (safe) name, or None for "not found"."""

log = logging.getLogger("phone.net.tftp")

_RECV = 65536  # read whole datagrams, so an oversized one is seen as such
_BURST = 64  # datagrams read from one socket before the others get their turn
Peer = tuple[str, int]


@dataclasses.dataclass
class TftpStats:
    """What the server did, counted (``vphone``'s abuse probe prints it)."""

    served: int = 0  # transfers completed
    failed: int = 0  # transfers ended by a timeout, a client ERROR or a malformed packet
    refused: int = 0  # requests answered with an ERROR (not found, write, unsafe, malformed)
    dropped: int = 0  # datagrams ignored (no opcode, no transfer for them)
    evicted: int = 0  # unacknowledged transfers pushed out by newer requests
    busy: int = 0  # requests refused because every slot held a transfer making progress

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(self).items())


class _Transfer:
    """One read transfer: its socket (TID), what it sends, and where it stands.

    Blocks are numbered 1..``count`` (absolute; the wire carries them modulo 65536), block 0
    stands for the OACK. ``base`` is the first block not yet acknowledged, ``sent`` the last
    block sent; a timeout resends ``base..sent`` (the window, RFC 7440).
    """

    def __init__(
        self,
        peer: Peer,
        sock: socket.socket,
        data: bytes,
        options: dict[str, int],
        *,
        timeout: float,
        name: str,
    ) -> None:
        self.peer = peer
        self.sock = sock
        self.data = data
        self.name = name
        self.options = options
        self.blksize = options.get("blksize", 512)
        self.window = options.get("windowsize", 1)
        self.timeout = float(options.get("timeout", timeout))
        self.count = len(data) // self.blksize + 1  # the last block is short, maybe empty
        self.base = 0 if options else 1
        self.sent = self.base - 1
        self.tries = 0
        self.started = time.monotonic()
        self.deadline = self.started
        self.progressed = False  # an ACK arrived: a real client is at the other end

    def send_window(self) -> None:
        """(Re)send every block from ``base`` up to the window."""
        if self.base == 0:
            self.sock.sendto(tp.oack_packet(self.options), self.peer)
            self.sent = 0
        else:
            last = min(self.base + self.window - 1, self.count)
            for block in range(self.base, last + 1):
                start = (block - 1) * self.blksize
                payload = memoryview(self.data)[start : start + self.blksize]
                self.sock.sendto(tp.data_packet(block, payload), self.peer)
            self.sent = last
        self.deadline = time.monotonic() + self.timeout

    def acknowledged(self, wire: int) -> bool:
        """Apply an ACK; True when the whole file is acknowledged.

        A duplicate ACK (of ``base - 1``) is ignored, not answered with a resend: the
        Sorcerer's Apprentice rule (RFC 1123 4.2.3.1). An ACK beyond what was sent too.
        """
        previous = self.base - 1
        block = previous + ((wire - previous) & 0xFFFF)
        if block == previous or block > self.sent:
            return False
        self.progressed = True
        self.base = block + 1
        self.tries = 0
        if self.base > self.count:
            return True
        if self.base > self.sent:  # the window is acknowledged (or its prefix, RFC 7440)
            self.send_window()
        return False

    def error(self, code: int, message: str) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(tp.error_packet(code, message), self.peer)


class TftpFileServer(BackgroundService):
    """A read-only TFTP server over a :data:`FileProvider` (module docstring).

    Args:
        provider: called with the requested name and the client; returns bytes or None.
        listen: address and port to bind; port 0 picks a free port.
        timeout: seconds between retransmissions of an unacknowledged window.
        retries: retransmissions before a silent transfer is given up.
        label: a name for log lines (the lab node it serves).
        max_transfers: transfers at once, all clients together.
        max_per_source: transfers at once from one client address.
        max_duration: seconds a transfer may last, however it is acknowledged.
        limits: what is accepted of the client's options.
    """

    def __init__(
        self,
        provider: FileProvider,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        timeout: float = 0.2,
        retries: int = 5,
        label: str = "tftp",
        max_transfers: int = 256,
        max_per_source: int = 64,
        max_duration: float = 600.0,
        limits: tp.Limits | None = None,
    ) -> None:
        self.provider = provider
        self.label = label
        self.timeout = timeout
        self.retries = retries
        self.max_transfers = max_transfers
        self.max_per_source = max_per_source
        self.max_duration = max_duration
        self.limits = limits or tp.Limits()
        self.stats = TftpStats()
        self._listen = listen
        self._port = listen[1]
        self._family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self._sock: socket.socket | None = None
        self._transfers: dict[Peer, _Transfer] = {}
        self._selector: selectors.BaseSelector | None = None
        self._stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port)."""
        return self._listen[0], self._port

    @property
    def transfers(self) -> int:
        """Transfers in flight."""
        return len(self._transfers)

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            NetworkError: the address cannot be bound.
        """
        if self._thread is not None:
            return
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._listen[0], self._port))
        except OSError as exc:
            sock.close()
            raise NetworkError(
                f"TFTP cannot listen on {self._listen[0]}:{self._port}: {exc}"
            ) from None
        sock.setblocking(False)
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ, None)
        self._stopping.clear()
        thread = threading.Thread(target=self._serve, name=f"tftp {self.label}", daemon=True)
        self._thread = thread
        thread.start()
        log.info("%s: TFTP listening on %s:%d", self.label, self._listen[0], self._port)

    def stop(self) -> None:
        """Stop serving (within :data:`STOP_POLL`), end every transfer, close every socket."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._thread = None
        for transfer in list(self._transfers.values()):
            self._end(transfer)
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # --- the loop --------------------------------------------------------------------------

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        while not self._stopping.is_set():
            wait = STOP_POLL
            if self._transfers:
                soonest = min(t.deadline for t in self._transfers.values())
                wait = max(0.0, min(wait, soonest - time.monotonic()))
            try:
                events = selector.select(wait)
            except (OSError, ValueError):  # a socket closed under us: only stop() does that
                break
            for key, _ in events:
                transfer = key.data
                if transfer is None:
                    self._read_requests()
                elif transfer.peer in self._transfers:
                    self._read_transfer(transfer)
            self._tick()

    def _read_requests(self) -> None:
        sock = self._sock
        assert sock is not None
        for _ in range(_BURST):
            try:
                datagram, peer = sock.recvfrom(_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error reported on the socket: nothing to do
                log.debug("%s: TFTP request port: %s", self.label, exc)
                continue
            try:
                self._on_request(datagram, (peer[0], peer[1]))
            except Exception:  # a bug must cost one request, not the server
                log.exception("%s: TFTP request from %s:%d failed", self.label, *peer[:2])

    def _read_transfer(self, transfer: _Transfer) -> None:
        for _ in range(_BURST):
            try:
                datagram, peer = transfer.sock.recvfrom(_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. the client's port is closed (ICMP): it is gone
                self._fail(transfer, f"socket error: {exc}")
                return
            try:
                if self._on_datagram(transfer, datagram, (peer[0], peer[1])):
                    return  # the transfer ended
            except Exception:  # a bug must cost this transfer at most
                log.exception("%s: TFTP transfer to %s:%d failed", self.label, *transfer.peer)
                transfer.error(tp.ERR_UNDEFINED, "internal error")
                self._fail(transfer, "internal error")
                return

    def _tick(self) -> None:
        now = time.monotonic()
        for transfer in list(self._transfers.values()):
            if now - transfer.started > self.max_duration:
                transfer.error(tp.ERR_UNDEFINED, "transfer took too long")
                self._fail(transfer, f"longer than {self.max_duration:g} s")
            elif now >= transfer.deadline:
                transfer.tries += 1
                if transfer.tries > self.retries:
                    self._fail(transfer, f"no ACK after {self.retries} retransmissions")
                    continue
                try:
                    transfer.send_window()
                except OSError as exc:
                    self._fail(transfer, f"socket error: {exc}")

    # --- requests --------------------------------------------------------------------------

    def _on_request(self, datagram: bytes, peer: Peer) -> None:
        code = tp.opcode(datagram)
        if code is None or code in (tp.DATA, tp.ACK, tp.OACK, tp.ERROR):
            self.stats.dropped += 1  # no transfer here; an ERROR is never answered (RFC 1350)
            log.debug(
                "%s: TFTP dropped a %d-byte datagram from %s:%d", self.label, len(datagram), *peer
            )
            return
        if code not in (tp.RRQ, tp.WRQ):
            self._refuse(peer, tp.ERR_ILLEGAL, f"unknown opcode {code}")
            return
        try:
            request = tp.parse_request(datagram)
        except tp.PacketError as exc:
            self._refuse(peer, exc.code, str(exc))
            return
        if request.opcode == tp.WRQ:
            log.warning(
                "%s: TFTP write request for %s from %s:%d refused: the server is read-only",
                self.label,
                tp.show(request.name),
                *peer,
            )
            self._refuse(
                peer, tp.ERR_ACCESS, "Access violation: the server is read-only", quiet=True
            )
            return
        if peer in self._transfers:
            self.stats.dropped += 1  # the client resent its request: the transfer resends
            return
        reason = unsafe_name_reason(request.name)
        if reason is not None:
            log.warning(
                "%s: TFTP RRQ %s from %s:%d refused: %s",
                self.label,
                tp.show(request.name),
                *peer,
                reason,
            )
            self._refuse(peer, tp.ERR_ACCESS, f"Access violation: {reason}", quiet=True)
            return
        if not self._make_room(peer[0]):
            self.stats.busy += 1
            self._refuse(peer, tp.ERR_UNDEFINED, "server busy: too many transfers")
            return
        data = self._provide(request.name, peer)
        if data is None:
            self._refuse(peer, tp.ERR_NOT_FOUND, "File not found", quiet=True)
            return
        if request.mode == "netascii":  # RFC 764: CR -> CR NUL, LF -> CR LF
            data = data.replace(b"\r", b"\r\x00").replace(b"\n", b"\r\n")
        options, ignored = tp.negotiate(request.options, len(data), self.limits)
        if ignored:
            log.info(
                "%s: TFTP RRQ from %s:%d: options ignored: %s",
                self.label,
                *peer,
                ", ".join(ignored),
            )
        self._begin(peer, request.name, data, options)

    def _refuse(self, peer: Peer, code: int, message: str, *, quiet: bool = False) -> None:
        self.stats.refused += 1
        if not quiet:
            log.info("%s: TFTP request from %s:%d refused: %s", self.label, *peer, message)
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendto(tp.error_packet(code, message), peer)

    def _provide(self, name: str, peer: Peer) -> bytes | None:
        try:
            data = self.provider(name, ClientInfo(address=peer[0]))
        except Exception as exc:  # the provider's failure is this request's, answered not found
            log.error(
                "%s: TFTP RRQ %s from %s:%d failed: %r", self.label, tp.show(name), *peer, exc
            )
            return None
        if data is None:
            log.info("%s: TFTP RRQ %s from %s:%d: not found", self.label, tp.show(name), *peer)
        return data

    def _make_room(self, address: str) -> bool:
        """Room for one more transfer from ``address``: evict the oldest transfer that never
        progressed if a limit is reached (module docstring); False when none can go."""
        mine = [t for t in self._transfers.values() if t.peer[0] == address]
        for pool, limit in (
            (mine, self.max_per_source),
            (list(self._transfers.values()), self.max_transfers),
        ):
            if len(pool) < limit:
                continue
            stalled = [t for t in pool if not t.progressed]
            if not stalled:
                return False
            victim = min(stalled, key=lambda t: t.started)
            victim.error(tp.ERR_UNDEFINED, "server busy: transfer evicted")
            self.stats.evicted += 1
            log.info(
                "%s: TFTP transfer to %s:%d evicted (never acknowledged)", self.label, *victim.peer
            )
            self._end(victim)
        return True

    def _begin(self, peer: Peer, name: str, data: bytes, options: dict[str, int]) -> None:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._listen[0], 0))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.warning("%s: TFTP RRQ from %s:%d: cannot start: %s", self.label, *peer, exc)
            self.stats.failed += 1
            return
        transfer = _Transfer(peer, sock, data, options, timeout=self.timeout, name=name)
        self._transfers[peer] = transfer  # counted before the client can see its first packet
        assert self._selector is not None
        self._selector.register(sock, selectors.EVENT_READ, transfer)
        try:
            transfer.send_window()
        except OSError as exc:
            self._fail(transfer, f"socket error: {exc}")

    # --- a transfer's datagrams --------------------------------------------------------------

    def _on_datagram(self, transfer: _Transfer, datagram: bytes, peer: Peer) -> bool:
        """Handle one datagram on a transfer's port; True when the transfer ended."""
        code = tp.opcode(datagram)
        if peer != transfer.peer:  # RFC 1350: answer error 5, leave the transfer alone
            self.stats.dropped += 1
            if code != tp.ERROR:
                with contextlib.suppress(OSError):
                    transfer.sock.sendto(
                        tp.error_packet(tp.ERR_UNKNOWN_TID, "Unknown transfer ID"), peer
                    )
            return False
        if code == tp.ACK:
            try:
                block = tp.ack_block(datagram)
            except tp.PacketError as exc:
                transfer.error(exc.code, str(exc))
                self._fail(transfer, str(exc))
                return True
            if transfer.acknowledged(block):
                self.stats.served += 1
                log.info(
                    "%s: TFTP RRQ %s from %s:%d: %d bytes sent",
                    self.label,
                    tp.show(transfer.name),
                    *peer,
                    len(transfer.data),
                )
                self._end(transfer)
                return True
            return False
        if code == tp.ERROR:  # the client gave up (or refused our options): never answered
            message = datagram[4:].split(b"\x00", 1)[0]
            self._fail(transfer, f"client sent ERROR {tp.show(message)}")
            return True
        if code in (tp.RRQ, tp.WRQ):
            return False  # a resent request reaching the transfer's port: the window resends
        transfer.error(tp.ERR_ILLEGAL, "Illegal TFTP operation")
        self._fail(transfer, f"unexpected packet (opcode {code})")
        return True

    def _fail(self, transfer: _Transfer, reason: str) -> None:
        self.stats.failed += 1
        log.info("%s: TFTP transfer to %s:%d ended: %s", self.label, *transfer.peer, reason)
        self._end(transfer)

    def _end(self, transfer: _Transfer) -> None:
        if self._transfers.get(transfer.peer) is transfer:
            del self._transfers[transfer.peer]
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(transfer.sock)
        transfer.sock.close()

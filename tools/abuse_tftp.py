"""Abuse probe: phones download over TFTP while an attacker sends malformed packets.

Starts a :class:`phone.net.tftp.TftpFileServer` on loopback (or aims at ``--target``, a TFTP
server already listening on a loopback address, e.g. one of ``vphone lab serve``'s, with
``--file NAME`` the names it serves; ``tools/abuse.py`` does), then runs ``--phones`` phone
threads downloading with the phone's own client
(:func:`phone.net.tftp.fetch_tftp`: blksize 1428, 2 s per packet, 3 attempts) until
``--downloads`` downloads were attempted, while one attacker thread sends ``--rate``
malformed or hostile packets a second to the server port, cycling through every kind the
tests cover (short, unknown opcode, non-ASCII or unterminated name, bad mode, bad blksize,
DATA/ACK/ERROR/OACK to the request port, an oversized datagram, write requests, and read
requests that are never acknowledged). Bounded: downloads start spread over ``--seconds``,
none after it, and each is bounded by the phone's 3 x 2 s; loopback only. Prints one line:

    tftp abuse: 200 malformed packets/s (2400 sent): 100 of 100 downloads completed (100.0%) ...

    python tools/abuse_tftp.py [--rate 200] [--downloads 100] [--phones 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import itertools
import logging
import os
import socket
import sys
import threading
import time

from phone.cluster.files import ClientInfo
from phone.errors import NetworkError
from phone.net.tftp import TftpFileServer, fetch_tftp

FILES = {"SEP001122334455.cnf.xml": os.urandom(12_000), "ITLFile.tlv": os.urandom(3_000)}

MALFORMED: list[bytes] = [
    b"\x00",  # shorter than an opcode
    b"\x00\x09hello\x00",  # unknown opcode
    b"\x00\x01\xff\xfe\x00octet\x00",  # non-ASCII file name
    b"\x00\x01ITLFile.tlv",  # unterminated file name
    b"\x00\x01ITLFile.tlv\x00mail\x00",  # a mode the server does not serve
    b"\x00\x01ITLFile.tlv\x00octet\x00blksize\x00zz\x00",  # non-numeric blksize
    b"\x00\x01ITLFile.tlv\x00octet\x00blksize\x00" + b"9" * 40 + b"\x00",  # out of range
    b"\x00\x03\x00",  # a DATA packet cut short
    b"\x00\x03\x00\x01data",  # DATA to the request port (no transfer)
    b"\x00\x04\x00\x01",  # ACK from an unknown TID
    b"\x00\x05\x00\x01boom\x00",  # ERROR
    b"\x00\x06blksize\x001428\x00",  # OACK to a server
    b"\x00\x01" + b"A" * 65_000 + b"\x00octet\x00",  # oversized datagram
    b"\x00\x02ITLFile.tlv\x00octet\x00",  # write request
    b"\x00\x01../../etc/passwd\x00octet\x00",  # traversal
    b"\x00\x01SEP001122334455.cnf.xml\x00octet\x00",  # a read request never acknowledged
    b"\x00\x01ITLFile.tlv\x00octet\x00windowsize\x0064\x00",  # ditto, with a window
]


def attack(address: tuple[str, int], rate: float, stop: threading.Event) -> int:
    """Send MALFORMED round-robin at ``rate`` packets/s from a few source ports."""
    sent = 0
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    try:
        for s in sockets:
            s.bind((address[0], 0))
            s.setblocking(False)
        start = time.monotonic()
        for packet, sock in zip(itertools.cycle(MALFORMED), itertools.cycle(sockets), strict=False):
            if stop.is_set():
                break
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            with contextlib.suppress(OSError):  # a full buffer, an ICMP error: packet lost
                sock.sendto(packet, address)
            sent += 1
            for s in sockets:  # drain error replies so the buffers never fill
                try:
                    while s.recv(70_000):
                        pass
                except OSError:
                    pass
    finally:
        for s in sockets:
            s.close()
    return sent


@dataclasses.dataclass
class Result:
    """What a probe saw: downloads attempted and completed, packets sent, failures by kind."""

    tried: int
    done: int
    sent: int
    elapsed: float
    errors: dict[str, int]

    @property
    def share(self) -> float:
        return 100.0 * self.done / self.tried if self.tried else 0.0

    def figure(self, rate: float) -> str:
        failures = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{rate:g} malformed packets/s ({self.sent} sent in {self.elapsed:.1f} s): "
            f"{self.done} of {self.tried} downloads completed ({self.share:.1f}%); "
            f"failures: {failures}"
        )


def probe(
    address: tuple[str, int],
    names: list[str],
    expected: dict[str, bytes] | None,
    *,
    rate: float,
    downloads: int,
    phones: int,
    seconds: float,
) -> Result:
    """Phones download ``names`` round-robin from ``address`` while ``attack`` runs."""
    counter = itertools.count()
    lock = threading.Lock()
    results = {"attempted": 0, "completed": 0}
    errors: dict[str, int] = {}
    spacing = seconds / max(1, downloads)
    start = time.monotonic() + 0.2  # the attack is under way before the first download
    deadline = start + seconds + 1.0

    def phone() -> None:
        while True:
            with lock:
                n = next(counter)
                if n >= downloads:
                    return
            begin = start + n * spacing  # downloads spread evenly over the attack
            delay = begin - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() > deadline:
                return
            with lock:
                results["attempted"] += 1
            name = names[n % len(names)]
            try:
                data = fetch_tftp(address[0], address[1], name, timeout=2.0, retries=3)
            except NetworkError as exc:
                with lock:
                    kind = type(exc).__name__
                    errors[kind] = errors.get(kind, 0) + 1
                continue
            if expected is None or data == expected[name]:
                with lock:
                    results["completed"] += 1

    stop = threading.Event()
    sent = [0]
    attacker = threading.Thread(target=lambda: sent.__setitem__(0, attack(address, rate, stop)))
    attacker.start()
    threads = [threading.Thread(target=phone) for _ in range(phones)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    attacker.join()
    elapsed = time.monotonic() - start + 0.2
    return Result(results["attempted"], results["completed"], sent[0], elapsed, errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="malformed packets per second")
    parser.add_argument("--downloads", type=int, default=100)
    parser.add_argument("--phones", type=int, default=5, help="downloads at once")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="the attack's length; downloads spread over it"
    )
    parser.add_argument("--target", help="HOST:PORT of a running server (loopback only)")
    parser.add_argument(
        "--file", action="append", help="a name to download from --target (repeatable)"
    )
    parser.add_argument("--verbose", action="store_true", help="show the server's log")
    args = parser.parse_args(argv)
    if not args.verbose:
        logging.getLogger("phone.net").setLevel(logging.CRITICAL)

    server: TftpFileServer | None = None
    if args.target:
        host, _, port = args.target.rpartition(":")
        if not ipaddress.ip_address(host).is_loopback:
            parser.error("--target must be a loopback address")
        address = (host, int(port))
        names = args.file or ["ITLFile.tlv"]
        expected: dict[str, bytes] | None = None
    else:

        def provide(name: str, client: ClientInfo) -> bytes | None:
            return FILES.get(name)

        server = TftpFileServer(provide, label="abuse")
        server.start()
        address = server.address
        names = list(FILES)
        expected = FILES

    result = probe(
        address,
        names,
        expected,
        rate=args.rate,
        downloads=args.downloads,
        phones=args.phones,
        seconds=args.seconds,
    )
    extra = ""
    if server is not None:
        server.stop()
        restarts = getattr(server, "restarts", None)  # the tftpy server before issue 13
        stats = getattr(server, "stats", None)
        extra = f"; server: {stats if stats is not None else f'{restarts} restarts'}"
    print(f"tftp abuse: {result.figure(args.rate)}{extra}")
    return 0 if result.tried and result.done == result.tried else 1


if __name__ == "__main__":
    sys.exit(main())

"""Abuse probe: idle and slow clients against the lab's TCP/TLS services (issue 13 item 2).

Starts TVS, CAPF and the HTTP file server of a lab on 127.0.0.1 in a child process (its own
GIL, as ``vphone lab serve``), then runs each probe from this process and prints one line per
probe with its figure:

* ``idle-tvs N``: N idle TCP connections to TVS (no byte sent), each reopened as soon as the
  server drops it, while good clients send VERIFY requests, each on a new TLS connection as a
  phone does; the figure is the share answered within 1 s (a phone gives up at 2 s);
* ``idle-capf N``: the same against CAPF; a good request is a new TLS connection that gets
  the server's opening AUTH_REQUEST (the session starts);
* ``http-slowloris``: ``--http-idle`` idle connections plus ``--slowloris`` clients sending a
  header line a second (reopened when dropped), while good GETs of a 3 kB file run one after
  another; the figure is the slowest good request.

Bounded: every probe runs ``--seconds`` and good requests are at most ``--requests`` per
probe, each bounded by a 2 s timeout; loopback only. ``--code DIR`` serves from another copy
of the ``phone`` package (``git archive HEAD phone | tar -x -C DIR``: the figures before a
change). The soft file-descriptor limit is raised to the hard one (1,000 idle sockets).

    python tools/abuse_services.py [--idle 64,1000] [--seconds 10] [--requests 40]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "CP-8845-SEP001122334455"
FILE = os.urandom(3000)
WITHIN = 1.0  # a good TVS/CAPF request counts when answered within this many seconds
HTTP_TARGET = 0.2


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- the served side (child process) -------------------------------------------------------------


def serve() -> None:
    """Start the services, print their ports as one JSON line, serve until stdin closes."""
    raise_fd_limit()
    sys.path.insert(0, str(ROOT / "tests"))
    import logging  # noqa: PLC0415

    from keypool import pooled_keys  # noqa: PLC0415 (tests' key pool: fast, deterministic)

    import phone  # noqa: PLC0415
    from phone.api import create_lab  # noqa: PLC0415
    from phone.net.capf_tls import CapfTlsServer  # noqa: PLC0415
    from phone.net.http import HttpFileServer  # noqa: PLC0415
    from phone.net.tvs_tls import TvsTlsServer  # noqa: PLC0415

    logging.disable(logging.WARNING)  # thousands of drops: not the figure
    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    host = lab.cluster().publisher.hostname
    tvs = TvsTlsServer(lab, host, clock=lambda: NOW)
    capf = CapfTlsServer(lab, host, clock=lambda: NOW)
    http = HttpFileServer(lambda name, info: FILE if name == "ITLFile.tlv" else None)
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    der = lab.cluster().publisher.callmanager.certificate.public_bytes(Encoding.DER)
    with tvs, capf, http:
        print(
            json.dumps(
                {
                    "tvs": tvs.address[1],
                    "capf": capf.address[1],
                    "http": http.address[1],
                    "der": der.hex(),
                    "code": str(Path(phone.__file__).parent),
                }
            ),
            flush=True,
        )
        sys.stdin.read()


# --- the attacker -------------------------------------------------------------------------------


class IdleHolder:
    """Hold ``count`` idle TCP connections to ``address``; reopen each the server closes."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.address = address
        self.count = count
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> IdleHolder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _connect(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError, OSError):
            sock.connect(self.address)
        selector.register(sock, selectors.EVENT_READ)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            self._connect(selector)
        while not self._stop.is_set():
            for key, _ in selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # dropped (or refused): reopen at once
                    selector.unregister(sock)
                    sock.close()
                    self.reopened += 1
                    self._connect(selector)
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


class Slowloris:
    """``count`` clients sending a header line a second, reopened when dropped."""

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.address = address
        self.count = count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=1)
            sock.sendall(b"GET /ITLFile.tlv HTTP/1.1\r\n")
        except OSError:
            return None
        return sock

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        line = 0
        while not self._stop.wait(1.0):
            line += 1
            for i, sock in enumerate(socks):
                try:
                    if sock is None:
                        raise OSError
                    sock.sendall(f"X-Slow-{line}: {'a' * 20}\r\n".encode())
                except OSError:
                    if sock is not None:
                        sock.close()
                    socks[i] = self._open()
        for sock in socks:
            if sock is not None:
                sock.close()


# --- good clients --------------------------------------------------------------------------------


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers("DEFAULT:@SECLEVEL=1")
    return context


def _recv_some(tls: ssl.SSLSocket, need: int) -> None:
    got = 0
    while got < need:
        data = tls.recv(65536)
        if not data:
            raise ConnectionError("closed")
        got += len(data)


def good_tvs(address: tuple[str, int], request: bytes) -> float:
    """One VERIFY on a new TLS connection; seconds (inf when it failed)."""
    start = time.perf_counter()
    try:
        with (
            socket.create_connection(address, timeout=2) as raw,
            _context().wrap_socket(raw) as tls,
        ):
            tls.settimeout(2)
            tls.sendall(request)
            _recv_some(tls, 10)  # the answer's header at least
    except OSError:
        return float("inf")
    return time.perf_counter() - start


def good_capf(address: tuple[str, int]) -> float:
    """A new CAPF TLS connection up to the server's AUTH_REQUEST; seconds (inf: failed)."""
    start = time.perf_counter()
    try:
        with (
            socket.create_connection(address, timeout=2) as raw,
            _context().wrap_socket(raw) as tls,
        ):
            tls.settimeout(2)
            _recv_some(tls, 8)
    except OSError:
        return float("inf")
    return time.perf_counter() - start


def good_http(address: tuple[str, int]) -> float:
    """GET /ITLFile.tlv on a new connection; seconds (inf: failed)."""
    start = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(b"GET /ITLFile.tlv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while len(got) < len(FILE):
                data = sock.recv(65536)
                if not data:
                    break
                got += data
            if not got.startswith(b"HTTP/1.1 200") or len(got) < len(FILE):
                return float("inf")
    except OSError:
        return float("inf")
    return time.perf_counter() - start


def server_threads(pid: int) -> int:
    """Threads of the serving process now (Linux /proc; 0 elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:")), 0)


def _good_run(probe: object, seconds: float, requests: int) -> list[float]:
    """Run good requests spread over ``seconds``, at most ``requests``."""
    out: list[float] = []
    start = time.monotonic()
    for i in range(requests):
        wait = start + i * seconds / requests - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out.append(probe())  # type: ignore[operator]
    return out


# --- the probes ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[str]:
    """Every probe; its lines."""
    raise_fd_limit()
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join([args.code, env.get("PYTHONPATH", "")])
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    lines: list[str] = []
    try:
        ports = json.loads(child.stdout.readline())
        print(f"serving from {ports['code']}", file=sys.stderr)
        sys.path.insert(0, str(ROOT))
        from phone.wire.tvs import encode_frame, verify_request  # noqa: PLC0415

        request = encode_frame(verify_request(1, DEVICE, bytes.fromhex(ports["der"])))
        tvs = ("127.0.0.1", ports["tvs"])
        capf = ("127.0.0.1", ports["capf"])
        http = ("127.0.0.1", ports["http"])
        for idle in args.idle:
            for name, address, probe in (
                ("idle-tvs", tvs, lambda: good_tvs(tvs, request)),
                ("idle-capf", capf, lambda: good_capf(capf)),
            ):
                with IdleHolder(address, idle) as holder:
                    time.sleep(0.5)  # let the idle connections land
                    threads = server_threads(child.pid)
                    times = _good_run(probe, args.seconds, args.requests)
                ok = sum(t <= WITHIN for t in times)
                answered = [t for t in times if t != float("inf")]
                worst = f"{max(answered) * 1000:.0f} ms" if answered else "-"
                lines.append(
                    f"{name} {idle}: {ok} of {len(times)} good requests answered within "
                    f"{WITHIN:g} s ({100 * ok / len(times):.1f}%), slowest answered {worst}, "
                    f"idle connections reopened {holder.reopened}, server threads {threads}"
                )
                print(lines[-1], flush=True)
        with IdleHolder(http, args.http_idle), Slowloris(http, args.slowloris):
            time.sleep(1.5)
            threads = server_threads(child.pid)
            times = _good_run(lambda: good_http(http), args.seconds, args.requests)
        ok = sum(t <= HTTP_TARGET for t in times)
        slowest = max(times)
        lines.append(
            f"http-slowloris: {args.http_idle} idle + {args.slowloris} slowloris: slowest good "
            f"request {'failed' if slowest == float('inf') else f'{slowest * 1000:.0f} ms'}, "
            f"{ok} of {len(times)} under {HTTP_TARGET * 1000:.0f} ms, "
            f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms, server threads {threads}"
        )
        print(lines[-1], flush=True)
    finally:
        child.stdin.close()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return lines


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the probes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--idle", default="64,1000", help="idle connection counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each probe")
    parser.add_argument("--requests", type=int, default=40, help="good requests per probe")
    parser.add_argument("--http-idle", type=int, default=200, help="idle HTTP connections")
    parser.add_argument("--slowloris", type=int, default=20, help="slowloris HTTP clients")
    parser.add_argument("--code", help="a folder holding another copy of the phone package")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    args.idle = [int(n) for n in args.idle.split(",") if n.strip()]
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

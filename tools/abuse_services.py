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

``--tvs``, ``--capf`` and ``--http`` (``HOST:PORT``, loopback only) aim the probes at servers
already listening, e.g. those ``vphone lab serve`` prints, instead of starting a child: only
the probes given a target run. ``--cert PEM`` is the certificate the good TVS clients VERIFY
(``vphone lab cert DIR callmanager``), ``--http-path`` the file the good GETs fetch,
``--server-pid`` the serving process whose threads are counted. ``tools/abuse.py`` runs them
so against a served lab. Exit 1 when a probe misses its target (99% within 1 s; every good
GET under 200 ms).

    python tools/abuse_services.py [--idle 64,1000] [--seconds 10] [--requests 40]
    python tools/abuse_services.py --tvs 127.0.0.1:PORT --cert cm.pem --capf 127.0.0.1:PORT \
        --http 127.0.0.1:PORT --http-path /ITLFile.tlv --server-pid PID
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
from collections.abc import Callable
from dataclasses import dataclass
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

    def __init__(self, address: tuple[str, int], count: int, path: str = "/ITLFile.tlv") -> None:
        self.address = address
        self.count = count
        self.path = path
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
            sock.sendall(f"GET {self.path} HTTP/1.1\r\n".encode())
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


def good_http(address: tuple[str, int], path: str = "/ITLFile.tlv") -> float:
    """GET ``path`` on a new connection, the whole body read; seconds (inf: failed)."""
    start = time.perf_counter()
    try:
        with socket.create_connection(address, timeout=2) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            got = b""
            while b"\r\n\r\n" not in got:
                data = sock.recv(65536)
                if not data:
                    return float("inf")
                got += data
            head, _, body = got.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return float("inf")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                -1,
            )
            while len(body) < length:
                data = sock.recv(65536)
                if not data:
                    return float("inf")
                body += data
            if length < 0 or len(body) < length:
                return float("inf")
    except (OSError, ValueError):
        return float("inf")
    return time.perf_counter() - start


def server_threads(pid: int) -> int:
    """Threads of the serving process now (Linux /proc; 0 elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(x.split()[1]) for x in status.splitlines() if x.startswith("Threads:")), 0)


def _good_run(probe: Callable[[], float], seconds: float, requests: int) -> list[float]:
    """Run good requests spread over ``seconds``, at most ``requests``."""
    out: list[float] = []
    start = time.monotonic()
    for i in range(requests):
        wait = start + i * seconds / requests - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out.append(probe())
    return out


# --- the probes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A probe's result: its name, the figure (one line) and whether it met the target."""

    name: str
    figure: str
    passed: bool


def probe_idle(
    name: str,
    address: tuple[str, int],
    idle: int,
    good: Callable[[], float],
    *,
    seconds: float,
    requests: int,
    server_pid: int | None = None,
) -> Outcome:
    """``idle`` idle connections to ``address`` held and reopened while ``good`` runs."""
    with IdleHolder(address, idle) as holder:
        time.sleep(0.5)  # let the idle connections land
        threads = server_threads(server_pid) if server_pid else 0
        times = _good_run(good, seconds, requests)
    ok = sum(t <= WITHIN for t in times)
    answered = [t for t in times if t != float("inf")]
    worst = f"{max(answered) * 1000:.0f} ms" if answered else "-"
    figure = (
        f"{ok} of {len(times)} good requests answered within {WITHIN:g} s "
        f"({100 * ok / len(times):.1f}%), slowest answered {worst}, "
        f"idle connections reopened {holder.reopened}, server threads {threads}"
    )
    return Outcome(f"{name} {idle}", figure, ok >= 0.99 * len(times))


def probe_http(
    address: tuple[str, int],
    *,
    idle: int,
    slowloris: int,
    seconds: float,
    requests: int,
    path: str = "/ITLFile.tlv",
    server_pid: int | None = None,
) -> Outcome:
    """``idle`` idle and ``slowloris`` slow HTTP clients while good GETs of ``path`` run."""
    with IdleHolder(address, idle), Slowloris(address, slowloris, path):
        time.sleep(1.5)  # the idle connections land, every slowloris client sent a line
        threads = server_threads(server_pid) if server_pid else 0
        times = _good_run(lambda: good_http(address, path), seconds, requests)
    ok = sum(t <= HTTP_TARGET for t in times)
    slowest = max(times)
    figure = (
        f"{idle} idle + {slowloris} slowloris: slowest good request "
        f"{'failed' if slowest == float('inf') else f'{slowest * 1000:.0f} ms'}, "
        f"{ok} of {len(times)} under {HTTP_TARGET * 1000:.0f} ms, "
        f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms, server threads {threads}"
    )
    return Outcome("http-slowloris", figure, ok == len(times))


def tvs_verify(certificate_der: bytes) -> bytes:
    """The bytes of one good VERIFY of ``certificate_der``."""
    sys.path.insert(0, str(ROOT))
    from phone.wire.tvs import encode_frame, verify_request  # noqa: PLC0415

    return encode_frame(verify_request(1, DEVICE, certificate_der))


def run(args: argparse.Namespace) -> list[str]:
    """Every probe against a child serving them (the standalone mode); its lines."""
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
    try:
        ports = json.loads(child.stdout.readline())
        print(f"serving from {ports['code']}", file=sys.stderr)
        args.tvs = ("127.0.0.1", ports["tvs"])
        args.capf = ("127.0.0.1", ports["capf"])
        args.http = ("127.0.0.1", ports["http"])
        args.der = bytes.fromhex(ports["der"])
        args.server_pid = child.pid
        return run_targets(args)
    finally:
        child.stdin.close()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_targets(args: argparse.Namespace) -> list[str]:
    """The probes whose targets ``args`` names; their lines (printed as they come)."""
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        print(f"{outcome.name}: {outcome.figure}", flush=True)

    request = tvs_verify(args.der) if args.tvs else b""
    tvs: tuple[str, int] = args.tvs
    capf: tuple[str, int] = args.capf
    for idle in args.idle:
        if tvs:
            report(
                probe_idle(
                    "idle-tvs",
                    tvs,
                    idle,
                    lambda: good_tvs(tvs, request),
                    seconds=args.seconds,
                    requests=args.requests,
                    server_pid=args.server_pid,
                )
            )
        if capf:
            report(
                probe_idle(
                    "idle-capf",
                    capf,
                    idle,
                    lambda: good_capf(capf),
                    seconds=args.seconds,
                    requests=args.requests,
                    server_pid=args.server_pid,
                )
            )
    if args.http:
        report(
            probe_http(
                args.http,
                idle=args.http_idle,
                slowloris=args.slowloris,
                seconds=args.seconds,
                requests=args.requests,
                path=args.http_path,
                server_pid=args.server_pid,
            )
        )
    args.failed = [o.name for o in outcomes if not o.passed]
    return [f"{o.name}: {o.figure}" for o in outcomes]


def loopback(text: str) -> tuple[str, int]:
    """``HOST:PORT`` on a loopback address (argparse type)."""
    host, _, port = text.rpartition(":")
    try:
        import ipaddress  # noqa: PLC0415

        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(host)
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a loopback HOST:PORT") from None


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the probes; 1 when one missed its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--idle", default="64,1000", help="idle connection counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each probe")
    parser.add_argument("--requests", type=int, default=40, help="good requests per probe")
    parser.add_argument("--http-idle", type=int, default=200, help="idle HTTP connections")
    parser.add_argument("--slowloris", type=int, default=20, help="slowloris HTTP clients")
    parser.add_argument("--code", help="a folder holding another copy of the phone package")
    parser.add_argument("--tvs", type=loopback, help="HOST:PORT of a running TVS")
    parser.add_argument("--capf", type=loopback, help="HOST:PORT of a running CAPF")
    parser.add_argument("--http", type=loopback, help="HOST:PORT of a running HTTP file server")
    parser.add_argument("--cert", type=Path, help="PEM certificate the good TVS clients VERIFY")
    parser.add_argument("--http-path", default="/ITLFile.tlv", help="the file good GETs fetch")
    parser.add_argument("--server-pid", type=int, help="the serving process (threads counted)")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    args.idle = [int(n) for n in args.idle.split(",") if n.strip()]
    if args.tvs or args.capf or args.http:
        if args.tvs and not args.cert:
            parser.error("--tvs needs --cert (the certificate to VERIFY)")
        if args.cert:
            from cryptography import x509  # noqa: PLC0415
            from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

            pem = args.cert.read_bytes()
            args.der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        raise_fd_limit()
        run_targets(args)
    else:
        run(args)
    return 1 if args.failed else 0


if __name__ == "__main__":
    sys.exit(main())

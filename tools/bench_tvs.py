"""Benchmark: TVS verify requests per second and latency over loopback TLS.

One 14.x lab cluster serves TVS on 127.0.0.1 (:class:`phone.net.tvs_tls.TvsTlsServer`, default
settings: no client certificate, as tvsd). Every request is a VERIFY of the cluster's
CallManager certificate (known: STATUS, ROLES, TTL come back) with the device name
``CP-8845-SEP<MAC>``, the form tvsc sends (tvs-capf-wire.md 1.4). Two ways of connecting:

* ``new``: a new TCP + TLS connection per request (what tvsd allows and tvsc does): handshake,
  one request, one answer, close;
* ``persistent``: one TLS connection per client, requests one after the other on it (vphone's
  extension; tvsd would close after the first answer).

"Clients" are threads in this process (1, 4 and 16 by default), each sending requests as fast
as answers come back, for ``--seconds`` per run. Latency is per request from the first byte
written (the connect, for ``new``) to the whole answer read. Client and server share one
CPython process and its GIL, so the figures are a floor for the server, not a ceiling.

    python tools/bench_tvs.py [--seconds 3] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from phone.api import create_lab
from phone.net.tvs_tls import TvsTlsServer, client_context
from phone.wire.tvs import FrameReader, decode_answer, encode_frame, verify_request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEVICE = "CP-8845-SEP001122334455"


def _exchange(tls: ssl.SSLSocket, request: bytes) -> None:
    tls.sendall(request)
    reader = FrameReader()
    while True:
        data = tls.recv(65536)
        if not data:
            raise ConnectionError("the server closed without answering")
        for frame in reader.feed(data):
            if not decode_answer(frame).valid:
                raise RuntimeError("the CallManager certificate was not vouched for")
            return


def _worker(
    mode: str,
    address: tuple[str, int],
    request: bytes,
    deadline: float,
    out: list[float],
) -> None:
    context = client_context(None)
    if mode == "persistent":
        with context.wrap_socket(socket.create_connection(address, timeout=5)) as tls:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                _exchange(tls, request)
                out.append(time.perf_counter() - start)
        return
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        with context.wrap_socket(socket.create_connection(address, timeout=5)) as tls:
            _exchange(tls, request)
        out.append(time.perf_counter() - start)


def run(mode: str, clients: int, seconds: float, address: tuple[str, int], request: bytes) -> str:
    """One run; its result line."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = time.perf_counter()
    deadline = start + seconds
    threads = [
        threading.Thread(target=_worker, args=(mode, address, request, deadline, latencies[i]))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    every = sorted(x for per in latencies for x in per)
    if not every:
        return f"{mode:<10} {clients:>3} clients: no request completed"
    p50 = statistics.median(every) * 1000
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))] * 1000
    return (
        f"{mode:<10} {clients:>3} clients: {len(every) / elapsed:8.0f} verify/s   "
        f"p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   ({len(every)} requests in {elapsed:.1f} s)"
    )


def main() -> int:
    """Run the benchmark and print what it assumes and measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--clients", default="1,4,16", help="comma-separated client counts")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c.strip()]

    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    der = cluster.publisher.callmanager.certificate.public_bytes(Encoding.DER)
    request = encode_frame(verify_request(1, DEVICE, der))
    server = TvsTlsServer(lab, cluster.publisher.hostname, clock=lambda: NOW, max_connections=64)
    server.start()
    try:
        with client_context(None).wrap_socket(
            socket.create_connection(server.address, timeout=5)
        ) as probe:
            _exchange(probe, request)
            tls_version, cipher = probe.version(), probe.cipher()
        key_bits = cluster.publisher.tvs.certificate.public_key().key_size  # type: ignore[union-attr]
        print("assumptions:")
        print(f"  Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
        print(f"  TLS: {tls_version} {cipher[0] if cipher else '?'}; server key RSA-{key_bits}")
        print("  loopback 127.0.0.1; clients are threads in the server's process (one GIL)")
        print(f"  request: VERIFY of a known certificate, {len(request)} bytes; answer 26 bytes")
        print(f"  {args.seconds:g} s per run; no client certificate (tvs-client-certificate off)")
        print()
        for mode in ("new", "persistent"):
            for clients in counts:
                print(run(mode, clients, args.seconds, server.address, request), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

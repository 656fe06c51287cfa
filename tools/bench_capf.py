"""Benchmark: LSC enrollments per second over loopback TLS, with 1 and 4 concurrent phones.

One 14.x lab cluster serves CAPF on 127.0.0.1 (:class:`phone.net.capf_tls.CapfTlsServer`).
Every enrollment is a whole CAPF session on its own TLS connection: handshake, the phone's
check of the CAPF certificate against its ITL, AUTH_REQ/AUTH_RESP (null string), KEYGEN,
the LSC issued and signed by the cluster's CAPF key, STORE_CERT, END_SESSION, and the device
record updated. "Phones" are processes of their own (never sharing this process's GIL with the
server), each enrolling its share of devices one after the other.

The phone's RSA-2048 key generation is real work on a phone but would dominate the figure
(30-100 ms per key, python-libraries.md 4.4), so keys come from the test key pool by default;
``--fresh-keys`` generates them, ``--key-type ec`` enrolls EC P-256 keys instead. The in-memory
backend runs the same sessions without sockets, for comparison.

``--capf-workers N`` (default 2) adds :class:`phone.net.capf_workers.CapfWorkerPool` rows
with 1 and N worker processes in the same run: TLS and framing in the workers, every session
step (and the LSC signature) in this process under the lab lock, where the phone threads also
run. Every device is checked afterwards: its LSC is recorded and its pending operation gone.

    python tools/bench_capf.py [--enrollments 200] [--fresh-keys] [--key-type rsa|ec]
                               [--capf-workers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from phone.api import create_lab
from phone.cluster import capf
from phone.cluster.capf import CapfAuth, CapfKeyType, CapfOperation
from phone.cluster.lab import Lab
from phone.cluster.records import Device
from phone.device.capf import CapfClient, CapfServerTrust
from phone.device.port import Requester
from phone.net.capf_tls import CapfTlsServer, capf_exchange_tls
from phone.net.capf_workers import CapfWorkerPool
from phone.net.memory import MemoryBackend
from phone.pki import FreshKeys, Identity, KeySource, issue
from phone.trust.lists import parse_shared
from phone.trust.tvs import TvsOutcome
from phone.vendor import manufacturing_ca
from phone.wire.capf import AuthType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_key_lists, pooled_keys

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def no_tvs(issuer: str, serial: bytes, certificate: object = None) -> TvsOutcome:
    raise AssertionError("the ITL holds the CAPF record: TVS is never asked")


def macs(start: int, count: int) -> list[str]:
    return [f"{start + i:012X}" for i in range(count)]


def prepare(lab: Lab, devices: list[str], key_type: CapfKeyType) -> None:
    cluster = lab.cluster()
    for mac in devices:
        if cluster.device(mac) is None:
            cluster.add_device(Device(mac), now=NOW)
        capf.set_pending(
            cluster, mac, CapfOperation.INSTALL, CapfAuth.NULL, now=NOW, key_type=key_type
        )


def session(lab: Lab, mac: str, keys: KeySource) -> tuple[CapfClient, CapfServerTrust]:
    cluster = lab.cluster()
    data = cluster.itl_file(cluster.tftp_hosts[0])
    assert data is not None
    return _client(data, mac, keys)


def _client(itl: bytes, mac: str, keys: KeySource) -> tuple[CapfClient, CapfServerTrust]:
    trust = CapfServerTrust(None, parse_shared(itl), no_tvs)
    key = ec.generate_private_key(ec.SECP256R1())
    mic = Identity(
        issue(manufacturing_ca("88xx"), f"CP-8841-SEP{mac}", key.public_key(), now=NOW), key
    )
    client = CapfClient(
        device_name=f"SEP{mac}",
        auth=AuthType.NO_PASSWORD,
        mic=mic,
        lsc=None,
        keys=keys,
        trust=trust,
        store=lambda identity: None,
        delete=lambda: False,
        now=NOW,
        ec_allowed=True,
    )
    return client, trust


def run_tls(
    lab: Lab,
    server: CapfTlsServer | CapfWorkerPool,
    devices: list[str],
    phones: int,
    keys: KeySource,
) -> float:
    shares = [devices[i::phones] for i in range(phones)]
    failures: list[str] = []
    with server.lock:
        cluster = lab.cluster()
        itl = cluster.itl_file(cluster.tftp_hosts[0])
    assert itl is not None
    context = multiprocessing.get_context("spawn")
    procs = []
    for share in shares:
        mine, theirs = context.Pipe()
        fresh = isinstance(keys, FreshKeys)
        proc = context.Process(target=_phone, args=(server.address, itl, share, fresh, theirs))
        proc.start()
        theirs.close()
        procs.append((proc, mine))
    for _, conn in procs:
        if conn.recv() != "ready":
            raise SystemExit("a phone process failed to start")
    start = time.perf_counter()
    for _, conn in procs:
        conn.send("go")
    for proc, conn in procs:
        failures += conn.recv()
        proc.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} enrollments failed, e.g. {failures[0]}")
    with server.lock:  # checked, not assumed: the lab recorded every enrollment
        for mac in devices:
            device = lab.cluster().device(mac)
            if device is None or device.certificate is None or device.capf is not None:
                raise SystemExit(f"{mac}: the enrollment did not land in the lab")
    return elapsed


def _phone(
    address: tuple[str, int], itl: bytes, share: list[str], fresh: bool, conn: Connection
) -> None:
    """A phone process: enroll each device of ``share`` in turn once told to go."""
    keys: KeySource = FreshKeys() if fresh else pooled_keys()
    failures = []
    # Warm-up outside the timed part: the manufacturing CA and the key pool load on first use.
    manufacturing_ca("88xx")
    pooled_key_lists()
    conn.send("ready")
    conn.recv()
    for mac in share:
        client, trust = _client(itl, mac, keys)
        capf_exchange_tls(address, client, trust, timeout=10.0)
        if client.outcome is None or not client.outcome.ok:
            failures.append(f"{mac}: {client.outcome}")
    conn.send(failures)
    conn.close()


def run_memory(lab: Lab, devices: list[str], keys: KeySource) -> float:
    backend = MemoryBackend(lab, clock=lambda: NOW)
    host = lab.cluster().publisher.hostname
    start = time.perf_counter()
    for mac in devices:
        client, trust = session(lab, mac, keys)
        backend.capf_exchange(host, 3804, client, trust, requester=Requester(mac, "8841"))
        assert client.outcome is not None and client.outcome.ok
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--enrollments", type=int, default=200, help="per measurement")
    parser.add_argument("--fresh-keys", action="store_true", help="generate each RSA key")
    parser.add_argument("--key-type", choices=("rsa", "ec"), default="rsa")
    parser.add_argument(
        "--capf-workers", type=int, default=2, help="worker processes to compare with 1"
    )
    args = parser.parse_args()
    n: int = args.enrollments
    keys: KeySource = FreshKeys() if args.fresh_keys else pooled_keys()
    key_type = CapfKeyType.EC_P256 if args.key_type == "ec" else CapfKeyType.RSA_2048

    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    # Warm-up: contexts, caches, the first ITL.
    warm = macs(0xF00000000000, 4)
    prepare(lab, warm, key_type)
    run_memory(lab, warm, keys)

    rows: list[tuple[str, int, float]] = []
    devices = macs(0x100000000000, n)
    prepare(lab, devices, key_type)
    rows.append(("in memory (no sockets)", 1, run_memory(lab, devices, keys)))
    with CapfTlsServer(lab, lab.cluster().publisher.hostname, clock=lambda: NOW) as server:
        for phones in (1, 4):
            devices = macs(0x200000000000 + phones * 0x10000000, n)
            prepare(lab, devices, key_type)
            rows.append(
                (
                    f"loopback TLS, {phones} phone(s)",
                    phones,
                    run_tls(lab, server, devices, phones, keys),
                )
            )
        dropped = server.dropped
    host = lab.cluster().publisher.hostname
    for workers in sorted({1, args.capf_workers}):
        with CapfWorkerPool(lab, host, processes=workers, clock=lambda: NOW) as pool:
            for phones in (1, 4):
                devices = macs(0x300000000000 + workers * 0x1000000 + phones * 0x10000, n)
                prepare(lab, devices, key_type)
                label = f"{workers} worker process(es), {phones} phone(s)"
                rows.append((label, phones, run_tls(lab, pool, devices, phones, keys)))
            dropped += pool.dropped
    keys_text = "fresh" if args.fresh_keys else "pooled"
    print(f"LSC enrollments ({key_type.value} keys, {keys_text}), {n} per row")
    print(f"load: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min, at the end)")
    print(f"{'path':<36} {'phones':>6} {'seconds':>8} {'enrollments/s':>14} {'ms each':>8}")
    for label, phones, elapsed in rows:
        print(
            f"{label:<36} {phones:>6} {elapsed:>8.3f} {n / elapsed:>14.1f} "
            f"{elapsed / n * 1000 * phones:>8.2f}"
        )
    print(f"connections dropped by the server: {dropped}")


if __name__ == "__main__":
    main()

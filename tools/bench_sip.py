"""Benchmark: SIP REGISTER transactions per second with digest on (issue 6).

Creates a lab folder with ``--phones`` devices whose security profile enables digest, serves it
with ``vphone lab serve`` in a child process on 127.0.0.1 (free ports), and registers the
phones over UDP and over TCP from 1 and from ``--concurrency`` client threads. Each
registration is two REGISTER transactions (the challenged one and the answered one, items
40-41); the table gives both rates, next to the in-memory figure from the same run (the pure
registrar called directly, no sockets).

    python tools/bench_sip.py [--phones 200] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from phone.cluster.records import ClusterSpec, Device
from phone.cluster.registrar import Registrar, Source
from phone.cluster.store import edit_lab, init_lab
from phone.device.port import RegisterRequest, Requester
from phone.net.sip import register_with, sip_register
from phone.vendor import manufacturing_cas

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HOST = "cucm1.cluster1.lab"


def mac(i: int) -> str:
    """The MAC of phone ``i``."""
    return f"0000AA{i:06X}"


def request(i: int, transport: str) -> RegisterRequest:
    """Phone ``i``'s REGISTER request (digest user ``user<i>``)."""
    return RegisterRequest(
        callmanager=HOST,
        port=5060,
        transport=transport,
        requester=Requester(mac=mac(i), model="8841"),
        digest_user=f"user{i}",
        digest_password=f"pw{i}",
    )


def make_lab(folder: Path, phones: int) -> None:
    """A lab folder whose devices all have digest on."""
    init_lab(folder, ClusterSpec(), now=NOW, keys=pooled_keys(), capf_trust=manufacturing_cas())
    with edit_lab(folder) as lab:
        cluster = lab.cluster()
        for i in range(phones):
            cluster.add_device(
                Device(
                    mac(i),
                    digest_user=f"user{i}",
                    digest_password=f"pw{i}",
                    digest_authentication=True,
                ),
                now=NOW,
            )


def in_memory(folder: Path, phones: int) -> float:
    """Registrations per second through the pure registrar (no sockets)."""
    from phone.cluster.store import load_lab  # noqa: PLC0415

    lab = load_lab(folder)
    cluster = lab.cluster()
    registrar = Registrar(cluster, HOST, random=random.Random(1).randbytes)
    source = Source("127.0.0.1", 5060, "udp")
    started = time.perf_counter()
    for i in range(phones):
        result = register_with(
            lambda m: registrar.handle(m, source, NOW),
            request(i, "udp"),
            local=("127.0.0.1", 5060),
        )
        assert result.ok, result.reason
    return phones / (time.perf_counter() - started)


def over_sockets(address: tuple[str, int], phones: int, transport: str, workers: int) -> float:
    """Registrations per second over ``transport`` from ``workers`` client threads."""

    def one(i: int) -> None:
        result = sip_register(address, request(i, transport), timeout=5.0)
        assert result.ok, result.reason

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(phones)))
    return phones / (time.perf_counter() - started)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sip-") as tmp:
        folder = Path(tmp) / "lab"
        make_lab(folder, args.phones)
        host_map = Path(tmp) / "hosts.json"
        serve = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from phone.cli import run; run()",
                "lab",
                "serve",
                str(folder),
                "--quiet",
                "--host-map-out",
                str(host_map),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        try:
            deadline = time.monotonic() + 30
            while not host_map.exists() or not host_map.read_text():
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("vphone lab serve did not start")
                time.sleep(0.05)
            port = int(json.loads(host_map.read_text())["hosts"][HOST]["sip"])
            address = ("127.0.0.1", port)
            rows: list[tuple[str, float]] = [
                ("in memory (pure registrar)", in_memory(folder, args.phones))
            ]
            for transport in ("udp", "tcp"):
                for workers in (1, args.concurrency):
                    rate = over_sockets(address, args.phones, transport, workers)
                    rows.append((f"{transport.upper()}, {workers} client thread(s)", rate))
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(10)
    print(f"SIP REGISTER with digest, {args.phones} phones, lab served on 127.0.0.1")
    print(f"{'path':<34} {'registrations/s':>16} {'transactions/s':>15}")
    for name, rate in rows:
        print(f"{name:<34} {rate:>16.0f} {2 * rate:>15.0f}")


if __name__ == "__main__":
    main()

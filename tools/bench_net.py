"""Benchmark: phone boots per second over TFTP and over HTTP against ``vphone lab serve``.

Creates a one-cluster lab folder, starts ``vphone lab serve`` on it in a subprocess (the way a
user runs it; ``--in-process`` serves it from a :class:`phone.net.servers.LabServer` in this
process instead), and boots fresh phones (first boot: CTL not found, ITL trusted on first use,
signed default config, SIP registration over TCP) through a
:class:`phone.net.sockets.SocketBackend` restricted to TFTP, then to HTTP, with 1 phone at a
time and with 50 phones at once (threads). The in-memory figure of the same run (the same lab
loaded in this process, no sockets) is the baseline.

    python tools/bench_net.py [--boots 200] [--parallel 50] [--in-process]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from phone.api import State, create_phone
from phone.catalog.models import Transport
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec
from phone.cluster.store import init_lab, load_lab
from phone.device.port import Backend
from phone.net.hostmap import HostMap
from phone.net.memory import MemoryBackend
from phone.net.servers import LabServer
from phone.net.sockets import SocketBackend
from phone.vendor import manufacturing_cas

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys


def now() -> datetime:
    """The wall clock: the served lab runs on it."""
    return datetime.now(UTC)


@contextmanager
def served_subprocess(lab_dir: Path, host_map: Path) -> Iterator[None]:
    """``vphone lab serve`` in a subprocess, until the block ends (SIGTERM)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from phone.cli import run; run()",
            "lab",
            "serve",
            str(lab_dir),
            "--quiet",
            "--host-map-out",
            str(host_map),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + 30
    while b"stops the servers" not in seen:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"lab serve did not start: {seen.decode()!r}")
        if select.select([fd], [], [], 0.1)[0]:
            seen += os.read(fd, 65536)
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


@contextmanager
def serving(lab_dir: Path, host_map: Path, *, in_process: bool) -> Iterator[None]:
    """The lab folder served (and its host map written) for the duration of the block."""
    if in_process:
        with LabServer(load_lab(lab_dir), clock=now) as server:
            host_map.write_text(server.host_map().to_json())
            yield
    else:
        with served_subprocess(lab_dir, host_map):
            yield


def run_boots(
    backend: Backend, lab: Lab, transport: Transport | None, macs: list[str], parallel: int
) -> float:
    """Boot a fresh phone per MAC, ``parallel`` at a time; return the seconds taken."""

    def boot(mac: str) -> None:
        phone = create_phone(lab, mac=mac, clock=now, backend=backend)
        if transport is not None:
            phone.model = dataclasses.replace(phone.model, transports=(transport,))
        state = phone.boot()
        if state is not State.REGISTERED:
            raise SystemExit(f"boot of {mac} over {transport} ended {state}: {phone.trace[-1]}")

    start = time.perf_counter()
    if parallel == 1:
        for mac in macs:
            boot(mac)
    else:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(boot, macs))
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boots", type=int, default=200, help="phones booted per row")
    parser.add_argument("--parallel", type=int, default=50, help="phones at once (row 2)")
    parser.add_argument("--in-process", action="store_true", help="serve from this process")
    args = parser.parse_args()
    boots: int = args.boots

    with tempfile.TemporaryDirectory(prefix="vphone-bench-") as tmp:
        lab_dir, host_map_file = Path(tmp) / "lab", Path(tmp) / "hosts.json"
        init_lab(
            lab_dir,
            ClusterSpec("cluster1"),
            now=now(),
            keys=pooled_keys(),
            capf_trust=manufacturing_cas(),
        )
        # This process's copy of the lab: phones read their factory settings from it, and the
        # in-memory row boots against it.
        lab = load_lab(lab_dir)
        lab.clock = now
        counter = iter(range(1, 1 << 40))

        def macs() -> list[str]:
            return [f"{next(counter):012X}" for _ in range(boots)]

        rows: list[tuple[str, int, float]] = []
        memory = MemoryBackend(lab, clock=now)
        run_boots(memory, lab, None, macs()[:5], 1)  # warm the cluster's signing caches
        rows.append(("memory", 1, run_boots(memory, lab, None, macs(), 1)))

        with serving(lab_dir, host_map_file, in_process=args.in_process):
            hosts = HostMap.load(host_map_file)
            with SocketBackend(hosts, timeout=2.0) as backend:
                for transport in (Transport.TFTP, Transport.HTTP):
                    run_boots(backend, lab, transport, macs()[:5], 1)  # warm up
                    for parallel in (1, args.parallel):
                        seconds = run_boots(backend, lab, transport, macs(), parallel)
                        rows.append((transport.value, parallel, seconds))

    where = "in this process" if args.in_process else "in a `vphone lab serve` subprocess"
    print(f"first boots of fresh CP-8841 phones, {boots} per row; lab served {where}")
    print(
        f"{'backend':<8} {'at once':>7} {'boots':>6} {'seconds':>8} {'boots/s':>8} {'vs memory':>9}"
    )
    base = boots / rows[0][2]
    for name, parallel, seconds in rows:
        rate = boots / seconds
        print(
            f"{name:<8} {parallel:>7} {boots:>6} {seconds:>8.2f} {rate:>8.1f} {rate / base:>8.2f}x"
        )


if __name__ == "__main__":
    main()

"""Benchmark: one fleet on local worker processes and on a Dask LocalCluster; the reports'
SHA-256 and the per-phone CPU and worker memory a Dask cluster is sized from (issue 17 item 6,
docs/scaling.md).

Runs a library scenario (default ``migration-rollback``) three ways in one run, with the
test key pool (no key generation): in this process (1 worker), on 2 local worker processes,
and on a ``distributed.LocalCluster`` of 2 worker processes with 1 thread each. For each it
prints the wall time and the report's SHA-256 (JSON and text: they must be identical); for the
Dask run it also prints what the workers used: CPU time (user + system of the worker processes,
read in them before and after) per phone, and each worker's peak resident memory.

    python tools/bench_fleet_dask.py [--phones 4000] [--scenario migration-rollback]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import sys
import time
from pathlib import Path

import distributed

from phone.scenario import load_scenario, render_text, run_scenario
from phone.scenario.fleet_dask import run_scenario_on_dask
from phone.scenario.report import Report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys


def _digest(report: Report) -> str:
    text = report.to_json() + render_text(report, verbose=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _usage() -> tuple[float, int, int]:
    """In a Dask worker: (CPU seconds of this process so far, peak and current resident
    memory in KiB). The peak is reset first when asked (:func:`_reset_peak`)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (
        usage.ru_utime + usage.ru_stime,
        int(status["VmHWM"].split()[0]),
        int(status["VmRSS"].split()[0]),
    )


def _reset_peak() -> None:
    """In a Dask worker: start the peak resident memory (VmHWM) from the current size."""
    Path("/proc/self/clear_refs").write_text("5")


def main() -> int:
    """Run the fleet three ways and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=4000, help="phones per group")
    parser.add_argument("--scenario", default="migration-rollback", help="a library scenario")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario).with_count(args.phones)
    print("setup:")
    print(f"  {args.scenario}, {scenario.phone_count} phones; {os.cpu_count()} cores")
    print(f"  load before: {Path('/proc/loadavg').read_text().split()[:3]} (1, 5, 15 min)")
    print("  keys: the test pool (no RSA key generation); Dask: LocalCluster, 2 worker")
    print("  processes x 1 thread, processes=True")
    print()
    rows = []
    start = time.perf_counter()
    one = run_scenario(scenario, keys=pooled_keys(), workers=1)
    rows.append(("local, 1 worker (in process)", time.perf_counter() - start, _digest(one)))
    start = time.perf_counter()
    two = run_scenario(scenario, keys=pooled_keys(), workers=2)
    rows.append(("local, 2 worker processes", time.perf_counter() - start, _digest(two)))
    with (
        distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        client.run(_reset_peak)
        before = client.run(_usage)
        start = time.perf_counter()
        dask = run_scenario_on_dask(scenario, str(cluster.scheduler_address), keys=pooled_keys())
        wall = time.perf_counter() - start
        after = client.run(_usage)
    rows.append(("Dask LocalCluster, 2 workers", wall, _digest(dask)))
    for label, seconds, digest in rows:
        print(f"  {label:<30} {seconds:7.1f} s   report SHA-256 {digest}")
    same = len({digest for _, _, digest in rows}) == 1
    print(f"  reports identical: {'yes' if same else 'NO'}")
    cpu = sum(after[w][0] - before[w][0] for w in after)
    print()
    print("Dask workers (what a cluster is sized from):")
    print(
        f"  CPU: {cpu:.1f} s over {scenario.phone_count} phones = "
        f"{cpu / scenario.phone_count * 1000:.2f} ms per phone (both workers, user + system)"
    )
    for worker, (_, peak, _rss) in sorted(after.items()):
        idle = before[worker][2]
        print(
            f"  {worker}: peak resident {peak / 1024:.0f} MiB during the run "
            f"({idle / 1024:.0f} MiB before it: the Dask worker itself, vphone not imported)"
        )
    print(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

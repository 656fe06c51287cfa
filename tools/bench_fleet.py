"""Benchmark: the rollback migration for a fleet, next to the crypto floor of the same work.

Runs the library scenario ``migration-rollback`` (items 16, 33: set Prepare Cluster for
Rollback, reset, re-point option 150, reset) with ``--phones`` phones, first on ``--workers``
processes, then in this process. The in-process run counts the RSA work actually done: the
signature verifications the phones made (every ``verify_signature`` call) and the signatures
the lab's TFTP services made (their ``stats.signatures``). The floor is the time those
operations take as bare ``cryptography`` calls on the same keys, measured in the same run.

Reports wall time, phone boots per second, the ratio to the floor (serial floor, and the
floor divided by the number of workers, the ideal parallel run), and peak memory (RSS of this
process and of the largest worker).

    python tools/bench_fleet.py [--phones 10000] [--workers 2] [--floor-sample 4000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import phone.formats.signature as signature_module
import phone.formats.signed as signed_module
import phone.formats.trustlist as trustlist_module
import phone.trust.images as images_module
from phone.formats import parse_signed
from phone.pki import CertKind
from phone.scenario import ScenarioRunner, load_scenario, run_scenario
from phone.scenario.fleet import planned_operations
from phone.scenario.report import merge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

SCENARIO = "migration-rollback"


@dataclass
class Counted:
    """RSA operations counted during the in-process run."""

    verifies: int = 0
    signatures: int = 0


def _max_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def run_in_process(phones: int) -> tuple[float, Counted, ScenarioRunner, bool]:
    """Run the fleet in this process, counting verifications and lab signatures."""
    scenario = load_scenario(SCENARIO).with_count(phones)
    counted = Counted()
    real_verify = signature_module.verify_signature

    def counting(*args: object, **kwargs: object) -> None:
        counted.verifies += 1
        real_verify(*args, **kwargs)  # type: ignore[arg-type]

    modules = (signature_module, signed_module, trustlist_module, images_module)
    for module in modules:
        setattr(module, "verify_signature", counting)  # noqa: B010 - mypy cannot see it
    try:
        runner = ScenarioRunner(scenario, keys=pooled_keys())
        start = time.perf_counter()
        result = runner.run()
        elapsed = time.perf_counter() - start
    finally:
        for module in modules:
            setattr(module, "verify_signature", real_verify)  # noqa: B010
    for cluster in runner.lab.clusters:
        for host in cluster.tftp_hosts:
            service = runner.lab.file_service(host)
            if service is not None:
                counted.signatures += service.stats.signatures
    ok = merge(scenario, [result]).ok
    return elapsed, counted, runner, ok


def floor_seconds(runner: ScenarioRunner, counted: Counted, sample: int) -> tuple[float, float]:
    """Seconds for ``counted`` bare verifications and signatures (timed on up to ``sample``
    of each, scaled): the verify of a served signed config, the sign of its payload."""
    cluster = runner.lab.cluster("old")
    service = runner.lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    data = service.get("XMLDefault.cnf.xml.sgn")
    assert data is not None
    signed = parse_signed(data)
    identity = cluster.identity(CertKind.CALLMANAGER)
    public = identity.certificate.public_key()
    private = identity.key
    assert isinstance(public, rsa.RSAPublicKey) and isinstance(private, rsa.RSAPrivateKey)
    payload = signed.signed_data()
    digest = signed.header.digest
    assert digest is not None

    def timed(count: int, operation: str) -> float:
        n = min(count, sample)
        if n == 0:
            return 0.0
        start = time.perf_counter()
        for _ in range(n):
            if operation == "verify":
                public.verify(
                    signed.header.signature, payload, padding.PKCS1v15(), digest.algorithm()
                )
            else:
                private.sign(payload, padding.PKCS1v15(), hashes.SHA1())
        return (time.perf_counter() - start) * count / n

    return timed(counted.verifies, "verify"), timed(counted.signatures, "sign")


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--floor-sample", type=int, default=4000, help="bare operations timed per kind"
    )
    args = parser.parse_args()
    phones: int = args.phones
    workers: int = args.workers
    scenario = load_scenario(SCENARIO).with_count(phones)
    boots = planned_operations(scenario)  # every phone operation of this scenario boots

    # Workers first: this process stays small until the in-process run.
    start = time.perf_counter()
    report = run_scenario(scenario, keys=pooled_keys(), workers=workers)
    parallel = time.perf_counter() - start
    parent_rss = _max_rss_mib(resource.RUSAGE_SELF)
    worker_rss = _max_rss_mib(resource.RUSAGE_CHILDREN)

    serial, counted, runner, ok_serial = run_in_process(phones)
    serial_rss = _max_rss_mib(resource.RUSAGE_SELF)
    verify_floor, sign_floor = floor_seconds(runner, counted, args.floor_sample)
    floor = verify_floor + sign_floor

    print(f"scenario:                 {SCENARIO}, {phones:,} phones, {boots:,} boots")
    print(f"expectations hold:        {workers} workers: {report.ok}; in process: {ok_serial}")
    print(
        f"RSA work counted:         {counted.verifies:,} verifications "
        f"({counted.verifies / boots:.2f} per boot), {counted.signatures:,} lab signatures"
    )
    print(
        f"bare crypto floor:        {floor:.2f} s  (verify {verify_floor:.2f} s + sign "
        f"{sign_floor:.2f} s; {boots / floor:,.0f} boots/s)"
    )
    print(
        f"in process (1 worker):    {serial:.2f} s  ({boots / serial:,.0f} boots/s)  "
        f"ratio to floor {serial / floor:.2f}x"
    )
    print(
        f"{workers} workers:                {parallel:.2f} s  ({boots / parallel:,.0f} boots/s, "
        f"process start and lab load included)  ratio to floor {parallel / floor:.2f}x, to "
        f"floor/{workers} {parallel / (floor / workers):.2f}x"
    )
    print(
        f"peak memory (RSS):        in process {serial_rss:,.0f} MiB "
        f"({serial_rss * 1024 / phones:.1f} KiB per phone); "
        f"with {workers} workers: parent {parent_rss:,.0f} MiB, largest worker "
        f"{worker_rss:,.0f} MiB"
    )


if __name__ == "__main__":
    main()

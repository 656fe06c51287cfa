"""Benchmark: phone boots against the in-memory lab, next to the crypto floor of those boots.

Boots fresh phones (first boot: CTL not found, ITL trusted on first use, signed config
verified, registration) against one in-memory 14.x cluster, in ``--rounds`` rounds. Each
round boots ``--phones / --rounds`` phones and, right after, times the bare RSA work those
boots did (the verifications they made, counted, and the signatures the lab's TFTP made,
from its counter) as ``cryptography`` calls on the lab's own key and a served signed config.
Work and floor alternate, so a change of load on a shared machine touches both alike; both
are CPU time of this process. The ratio is taken over all rounds, with the per-round spread.

The operation counts the floor uses are printed next to what a boot is assumed to need
(``VERIFIES_PER_BOOT``, ``SIGNS_PER_BOOT``); a mismatch exits 1. A memory pass (tracemalloc,
phones kept alive) follows.

    python tools/bench_boot.py [--phones 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import padding, rsa

import phone.formats.signature as signature_module
import phone.formats.signed as signed_module
import phone.formats.trustlist as trustlist_module
from phone.api import State, create_lab, create_phone
from phone.cluster.files import ClientInfo
from phone.formats import parse_signed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# A first boot of an unknown phone verifies the ITL's own signature and the signed default
# config (auto-registration: no device record, so no per-phone config to sign); the ITL and
# XMLDefault.cnf.xml.sgn are signed once per lab, by the warm-up boot: no signature per boot.
VERIFIES_PER_BOOT = 2
SIGNS_PER_BOOT = 0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rounds: int = args.rounds
    if args.phones < 1 or not 1 <= rounds <= args.phones:
        parser.error("--phones must be at least 1 and --rounds between 1 and --phones")
    per_round = args.phones // rounds
    n = per_round * rounds

    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    cluster = lab.cluster()
    service = lab.file_service(cluster.tftp_hosts[0])
    assert service is not None
    clock = lambda: NOW  # noqa: E731
    # Warm the cluster's caches (the ITL and the default config are signed once, on first
    # request) and take the floor's bytes: the signed default config every boot verifies.
    warm = create_phone(lab, mac="FFFFFFFFFFFF", clock=clock)
    warm.boot()
    data = service.get("XMLDefault.cnf.xml.sgn", ClientInfo("10.0.0.1", "FFFFFFFFFFFF"))
    assert data is not None
    signed = parse_signed(data)
    private = cluster.config_signer(cluster.tftp_hosts[0]).key
    public = private.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    payload, signature = signed.signed_data(), signed.header.signature
    digest = signed.header.digest
    assert digest is not None
    algorithm = digest.algorithm()

    verifies = 0
    real_verify = signature_module.verify_signature

    def counting(*a: object, **k: object) -> None:
        nonlocal verifies
        verifies += 1
        real_verify(*a, **k)  # type: ignore[arg-type]

    # Count every signature check the boots make, wherever the codecs call it from.
    for module in (signature_module, signed_module, trustlist_module):
        setattr(module, "verify_signature", counting)  # noqa: B010 - mypy cannot see it

    work_s: list[float] = []
    floor_s: list[float] = []
    total_verifies = total_signs = 0
    for r in range(rounds):
        verifies, signs_before = 0, service.stats.signatures
        start = time.process_time()
        for i in range(per_round):
            phone = create_phone(lab, mac=f"{r * per_round + i:012X}", clock=clock)
            assert phone.boot() is State.REGISTERED
        work_s.append(time.process_time() - start)
        counted_v, counted_s = verifies, service.stats.signatures - signs_before
        total_verifies += counted_v
        total_signs += counted_s
        start = time.process_time()
        for _ in range(counted_v):
            public.verify(signature, payload, padding.PKCS1v15(), algorithm)
        for _ in range(counted_s):
            private.sign(payload, padding.PKCS1v15(), algorithm)
        floor_s.append(time.process_time() - start)
    for module in (signature_module, signed_module, trustlist_module):
        setattr(module, "verify_signature", real_verify)  # noqa: B010
    load_after = _load()

    # Memory pass: new phones, all kept alive, peak traced (tracemalloc slows allocation-heavy
    # code several times over, so it is off while timing).
    phones = []
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(n):
        phone = create_phone(lab, mac=f"{n + i:012X}", clock=clock)
        phone.boot()
        phones.append(phone)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak -= base

    work, floor = sum(work_s), sum(floor_s)
    ratios = [w / f for w, f in zip(work_s, floor_s, strict=True)]
    counts_ok = (total_verifies, total_signs) == (VERIFIES_PER_BOOT * n, SIGNS_PER_BOOT * n)
    print(f"phones booted:     {n:,} in {rounds} rounds of {per_round:,}; load {load_after}")
    print(
        f"RSA work counted:  {total_verifies:,} verifications, {total_signs:,} lab signatures; "
        f"assumed {VERIFIES_PER_BOOT}+{SIGNS_PER_BOOT} per boot: "
        f"{'as assumed' if counts_ok else 'MISMATCH'}"
    )
    print(f"boots (CPU):       {work:.3f} s  ({work / n * 1000:.3f} ms/boot)")
    print(
        f"floor (CPU):       {floor:.3f} s  ({floor / n * 1000:.3f} ms/boot), timed after each "
        f"round on the RSA-{private.key_size} key of the TFTP node"
    )
    print(
        f"ratio boots/floor: {work / floor:.2f}x  (per round: min {min(ratios):.2f}x, median "
        f"{statistics.median(ratios):.2f}x, max {max(ratios):.2f}x)"
    )
    print(f"peak memory/phone: {peak / n / 1024:.1f} KiB (tracemalloc, phones kept alive)")
    if not counts_ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

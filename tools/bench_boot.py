"""Benchmark: phone boots per second against the in-memory lab, next to the crypto floor.

Boots N fresh phones (first boot: CTL not found, ITL trusted on first use, signed config
verified, registration) against one in-memory 14.x cluster, then measures in the same run the
bare cost of the RSA verifications those boots performed (counted, not assumed). Reports the
ratio boot time / crypto floor and the peak memory per phone (tracemalloc, phones kept alive).

    python tools/bench_boot.py [--phones 1000]
"""

from __future__ import annotations

import argparse
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
from phone.formats import parse_signed
from phone.pki import CertKind

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=1000)
    args = parser.parse_args()
    n: int = args.phones

    lab = create_lab("cluster1", now=NOW, keys=pooled_keys())
    clock = lambda: NOW  # noqa: E731
    # Warm the cluster's caches (ITL and default config are signed once, on first request).
    create_phone(lab, mac="FFFFFFFFFFFF", clock=clock).boot()

    verifies = 0
    real_verify = signature_module.verify_signature

    def counting(*a: object, **k: object) -> None:
        nonlocal verifies
        verifies += 1
        real_verify(*a, **k)  # type: ignore[arg-type]

    # Count every signature check the boots make, wherever the codecs call it from.
    for module in (signature_module, signed_module, trustlist_module):
        setattr(module, "verify_signature", counting)  # noqa: B010 - mypy cannot see it

    # Timed pass (tracemalloc off: it slows allocation-heavy code several times over).
    start = time.perf_counter()
    for i in range(n):
        phone = create_phone(lab, mac=f"{i:012X}", clock=clock)
        assert phone.boot() is State.REGISTERED
    elapsed = time.perf_counter() - start
    counted = verifies

    # Memory pass: new phones, all kept alive, peak traced.
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
    verifies = counted

    # The floor: the same number of bare RSA PKCS#1 v1.5 verifications over a served config.
    service = lab.file_service(lab.cluster().tftp_hosts[0])
    assert service is not None
    data = service.get("XMLDefault.cnf.xml.sgn")
    assert data is not None
    signed = parse_signed(data)
    key = lab.cluster().identity(CertKind.CALLMANAGER).certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    payload = signed.signed_data()
    digest = signed.header.digest
    assert digest is not None
    start = time.perf_counter()
    for _ in range(verifies):
        key.verify(signed.header.signature, payload, padding.PKCS1v15(), digest.algorithm())
    floor = time.perf_counter() - start

    print(f"phones booted:            {n}")
    print(f"wall time:                {elapsed:.3f} s  ({n / elapsed:,.0f} boots/s)")
    print(f"RSA verifies performed:   {verifies} ({verifies / n:.1f} per boot)")
    print(f"bare crypto floor:        {floor:.3f} s  ({n / floor:,.0f} boots/s)")
    print(f"ratio wall / floor:       {elapsed / floor:.1f}x")
    print(f"peak memory per phone:    {peak / n / 1024:.1f} KiB (tracemalloc, phones kept alive)")


if __name__ == "__main__":
    main()

"""Benchmark the emulated cluster's TFTP service: signed configs per second, and the sign cache.

Usage: python tools/bench_cluster.py [--devices N] [--key-size 2048] [--json]

It measures, in one run and with the same RSA key:

1. the bare cost of an RSA PKCS#1 v1.5 signature over a config-sized payload;
2. ``SEP<MAC>.cnf.xml.sgn`` for N devices requested once (every file is built and signed):
   configs signed per second, and the ratio to bare signatures per second;
3. the same N files requested again with nothing changed: the number of signatures made
   (must be 0, seed: the TFTP server re-signs a file only when it changed) and the rate;
4. one device changed, all N requested again: exactly one signature.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import padding

from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device
from phone.pki import FreshKeys


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run(devices: int, key_size: int) -> dict[str, float | int]:
    """Run the benchmark and return its numbers."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    lab = Lab.create([ClusterSpec(key_size=key_size)], now=now, keys=FreshKeys())
    cluster = lab.cluster()
    host = cluster.tftp_hosts[0]
    service = lab.file_service(host)
    assert service is not None
    macs = [f"{index:012X}" for index in range(devices)]
    started = time.perf_counter()
    for mac in macs:
        cluster.add_device(
            Device(mac, digest_user=f"user{mac}", digest_password="pw", load="sip88xx.14-1-1"),
            now=now,
        )
    add_seconds = time.perf_counter() - started

    # 1. Bare RSA signatures over a real config payload, same key and digest.
    payload = service.get(f"SEP{macs[0]}.cnf.xml") or b""
    signer = cluster.config_signer(host)
    algorithm = cluster.profile.digest.algorithm()
    bare_count = max(200, min(devices, 2000))
    started = time.perf_counter()
    for _ in range(bare_count):
        signer.key.sign(payload, padding.PKCS1v15(), algorithm)
    bare_rate = _rate(bare_count, time.perf_counter() - started)

    # 2. First request of every signed config: built and signed.
    names = [f"SEP{mac}.cnf.xml.sgn" for mac in macs]
    before = service.stats.signatures
    started = time.perf_counter()
    for name in names:
        service.get(name)
    first_seconds = time.perf_counter() - started
    first_signatures = service.stats.signatures - before

    # 3. Second request, nothing changed: served from the cache, no signature.
    before = service.stats.signatures
    started = time.perf_counter()
    for name in names:
        service.get(name)
    second_seconds = time.perf_counter() - started
    second_signatures = service.stats.signatures - before

    # 4. One device changed: exactly one file re-signed.
    cluster.update_device(macs[0], now=now + timedelta(minutes=1), load="sip88xx.14-2-1")
    before = service.stats.signatures
    for name in names:
        service.get(name)
    third_signatures = service.stats.signatures - before

    first_rate = _rate(devices, first_seconds)
    return {
        "devices": devices,
        "key_size": key_size,
        "payload_bytes": len(payload),
        "add_devices_seconds": round(add_seconds, 3),
        "bare_rsa_signs_per_second": round(bare_rate, 1),
        "configs_signed_per_second": round(first_rate, 1),
        "ratio_to_bare_sign": round(first_rate / bare_rate, 3),
        "first_pass_signatures": first_signatures,
        "second_pass_signatures": second_signatures,
        "second_pass_configs_per_second": round(_rate(devices, second_seconds), 1),
        "after_one_change_signatures": third_signatures,
    }


def main() -> None:
    """Parse the command line, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--key-size", type=int, default=2048, choices=(1024, 2048))
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    result = run(args.devices, args.key_size)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"devices                         {result['devices']}")
    print(
        f"RSA key                         {result['key_size']} bits, config of "
        f"{result['payload_bytes']} bytes"
    )
    print(f"bare RSA sign                   {result['bare_rsa_signs_per_second']:>10} /s")
    print(
        f"configs signed (first request)  {result['configs_signed_per_second']:>10} /s  "
        f"= {result['ratio_to_bare_sign']} x bare sign, "
        f"{result['first_pass_signatures']} signatures"
    )
    print(
        f"second request, unchanged       {result['second_pass_configs_per_second']:>10} /s  "
        f"{result['second_pass_signatures']} signatures"
    )
    print(f"after changing one device       {result['after_one_change_signatures']} signature(s)")


if __name__ == "__main__":
    main()

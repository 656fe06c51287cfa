"""Parse and verify throughput of a full 39-record ITL, next to the bare RSA verify it contains.

Usage: python tools/bench_formats.py [--seconds 1.0] [--digest sha1|sha512] [--keys 4]

Builds a CUCM-style ITL of 39 records with RSA-2048 certificates (two SAST, then CCM+TFTP, TVS
and CAPF records with DNS names and IPs: about the size phones accept), then measures in the
same run, each for ``--seconds`` of wall time with ``time.perf_counter``:

* ``parse``: ``parse_trust_list`` of the file's bytes;
* ``self-verify``: ``verify_self_signed`` of an already parsed list (find the SAST record, load
  its certificate, re-encode the signed bytes, RSA verify);
* ``parse + self-verify``: both, from bytes, as a phone does with a downloaded ITL;
* ``bare RSA verify``: ``public_key.verify`` over the precomputed signed bytes, nothing else.

The ratio ``(parse + self-verify) / bare RSA verify`` is what vphone's format layer costs on
top of the cryptography a phone cannot avoid. ``--keys`` distinct RSA-2048 keys are generated
and shared round-robin by the 39 certificates (key generation is not what is measured).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from phone.formats import (
    Digest,
    Record,
    Role,
    Signer,
    TrustList,
    build_trust_list,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
)
from phone.pki import FreshKeys, self_signed

RECORDS = 39
NOW = datetime(2024, 5, 7, 3, 10, 47, tzinfo=UTC)


@dataclass(frozen=True)
class Result:
    """One measured operation."""

    name: str
    iterations: int
    seconds: float

    @property
    def per_op(self) -> float:
        """Seconds per operation."""
        return self.seconds / self.iterations

    @property
    def per_second(self) -> float:
        """Operations per second."""
        return self.iterations / self.seconds


def measure(name: str, fn: Callable[[], object], budget: float) -> Result:
    """Run ``fn`` repeatedly for about ``budget`` seconds (after a short warm-up)."""
    for _ in range(3):
        fn()
    # Calibrate a batch size that takes about 1/20 of the budget, so the clock is read rarely.
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        if time.perf_counter() - start >= budget / 20 or batch >= 1 << 20:
            break
        batch *= 2
    iterations = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < budget:
        for _ in range(batch):
            fn()
        iterations += batch
        elapsed = time.perf_counter() - start
    return Result(name, iterations, elapsed)


def build_itl(digest: Digest, key_count: int) -> tuple[TrustList, Signer]:
    """A 39-record RSA-2048 ITL signed by its first SAST record."""
    keys = [FreshKeys().rsa(2048) for _ in range(max(1, key_count))]
    layout: list[tuple[int, str]] = [(Role.SAST, "ITLRECOVERY_cucm-pub"), (Role.SAST, "cucm-pub")]
    roles = (Role.CCM_TFTP, Role.TVS, Role.CAPF)
    layout += [(roles[i % 3], f"cucm-sub{i:02d}") for i in range(RECORDS - len(layout))]
    records: list[Record] = []
    signer: Signer | None = None
    for index, (role, name) in enumerate(layout):
        key = keys[index % len(keys)]
        identity = self_signed(name, now=NOW, key=key, ca=role == Role.CAPF)
        if signer is None:
            signer = Signer(identity.certificate, key)
        ip = None if role == Role.SAST else f"10.1.{index // 250}.{index % 250 + 1}"
        records.append(
            record_from_certificate(
                identity.certificate, role, dns_name="" if ip is None else name, ip=ip
            )
        )
    assert signer is not None
    itl = build_trust_list(records, signer, timestamp=int(NOW.timestamp()), digest=digest)
    return itl, signer


def main() -> None:
    """Build the ITL, measure, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--digest", choices=("sha1", "sha512"), default="sha1")
    parser.add_argument("--keys", type=int, default=4, help="distinct RSA-2048 keys to generate")
    args = parser.parse_args()
    digest = Digest.parse(args.digest)

    itl, signer = build_itl(digest, args.keys)
    data = itl.encode()
    parsed = parse_trust_list(data)
    check = verify_self_signed(parsed)
    assert check.valid is True, check.reason
    public_key = signer.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    signed = parsed.signed_data()
    signature = parsed.header.signature
    algorithm = digest.algorithm()

    def bare_verify() -> None:
        public_key.verify(signature, signed, padding.PKCS1v15(), algorithm)

    def parse_and_verify() -> None:
        if verify_self_signed(parse_trust_list(data)).valid is not True:
            raise AssertionError("the benchmark ITL stopped verifying")

    results = [
        measure("parse", lambda: parse_trust_list(data), args.seconds),
        measure("self-verify (parsed)", lambda: verify_self_signed(parsed), args.seconds),
        measure("parse + self-verify", parse_and_verify, args.seconds),
        measure("bare RSA verify", bare_verify, args.seconds),
    ]

    print(
        f"ITL: {len(parsed.records)} records, {parsed.certificate_count()} RSA-2048 "
        f"certificates, {len(data)} bytes ({len(data) / 1024:.1f} KiB; "
        f"{'within' if len(data) <= 65535 else 'OVER'} 64 KiB), {digest.label}, "
        f"{len(signed)} signed bytes"
    )
    print()
    print(f"{'operation':<22} {'iterations':>10} {'us/op':>10} {'ops/s':>10} {'MB/s':>8}")
    for result in results:
        megabytes = len(data) * result.per_second / 1e6
        print(
            f"{result.name:<22} {result.iterations:>10} {result.per_op * 1e6:>10.1f} "
            f"{result.per_second:>10.0f} {megabytes:>8.1f}"
        )
    bare = results[3].per_op
    print()
    print(f"ratio (parse + self-verify) / bare RSA verify: {results[2].per_op / bare:.2f}x")
    print(f"ratio self-verify / bare RSA verify:           {results[1].per_op / bare:.2f}x")


if __name__ == "__main__":
    main()

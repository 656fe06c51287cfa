"""What the same RSA signature costs after other work has run (issue 17: the floor's caveat).

The fleet floor (tools/bench_fleet.py) times bare ``cryptography`` signatures in a tight loop,
where the key, OpenSSL's tables and the interpreter stay in the CPU's caches. In a fleet each
signature follows a phone's other work. This signs the lab's own served config with the TFTP
key ``--signs`` times, CPU time per signature, three ways: back to back; after 20 config
parses each; after reading 8 MiB of other memory each.

    python tools/bench_sign_cache.py [--signs 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import padding

from phone.formats.configxml import parse_config
from phone.scenario import ScenarioRunner, load_scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys


def main() -> None:
    """Print CPU microseconds per signature, three ways."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signs", type=int, default=300)
    signs: int = parser.parse_args().signs
    runner = ScenarioRunner(load_scenario("migration-rollback").with_count(1), keys=pooled_keys())
    runner.run()
    cluster = runner.lab.clusters[0]
    host = cluster.tftp_hosts[0]
    device = next(iter(cluster.devices.values()))
    service = runner.lab.file_service(host)
    assert service is not None
    payload = service.get(f"{device.name}.cnf.xml")
    assert payload is not None
    key = cluster.config_signer(host).key
    algorithm = cluster.profile.digest.algorithm()
    other = bytearray(64 * 1024 * 1024)
    ways: dict[str, Callable[[], object] | None] = {
        "back to back": None,
        "after 20 config parses each": lambda: [parse_config(payload) for _ in range(20)],
        "after reading 8 MiB of other memory each": lambda: bytes(other[: 8 * 1024 * 1024]),
    }
    print(
        f"RSA-{key.key_size} PKCS#1 v1.5 SHA-256 over {len(payload)} bytes; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for label, between in ways.items():
        total = 0.0
        for _ in range(signs):
            if between is not None:
                between()
            start = time.process_time()
            key.sign(payload, padding.PKCS1v15(), algorithm)
            total += time.process_time() - start
        print(f"{total / signs * 1e6:7.1f} us CPU per signature, {label}")


if __name__ == "__main__":
    main()

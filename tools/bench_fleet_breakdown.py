"""Where a fleet phone's time goes, measured in the run (issue 17 item 2).

Runs ``migration-rollback`` with ``--phones`` phones in this process and times the pipeline's
stages where they are called (``time.perf_counter`` around the outermost call of each; nested
calls of the same stage are inside it), then prints microseconds per phone, calls per phone
and microseconds per call, largest first. The stages overlap (a fetch holds the signing it
caused): the table is read top-down, as a tree flattened. Figures include the timers' own cost
(about 1 microsecond per call) and are inflated by the machine's load: compare rows of one run,
not runs.

    python tools/bench_fleet_breakdown.py [--phones 3000]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from keypool import pooled_keys

# (module, class or None, function): the stages timed.
STAGES = [
    ("phone.device.phone", "VirtualPhone", "_run"),
    ("phone.device.phone", "VirtualPhone", "__init__"),
    ("phone.device.core", "PhoneCore", "_fetch"),
    ("phone.device.core", "PhoneCore", "_record"),
    ("phone.device.core", "PhoneCore", "_save_settings"),
    ("phone.device.step_config", "ConfigStep", "_fetch_config"),
    ("phone.device.step_config", "ConfigStep", "_accept_config"),
    ("phone.device.step_trust_lists", "TrustListStep", "_step_trust_lists"),
    ("phone.device.step_trust_lists", "TrustListStep", "_install"),
    ("phone.device.step_register", "RegisterStep", "_step_register"),
    ("phone.net.memory", "MemoryBackend", "fetch"),
    ("phone.net.memory", "MemoryBackend", "register"),
    ("phone.cluster.files", "FileService", "get"),
    ("phone.cluster.files", "FileService", "_signed"),
    ("phone.cluster.files", "FileService", "_render"),
    ("phone.cluster.cluster", "Cluster", "add_device"),
    ("phone.formats.signature", "Signer", "sign"),
    ("phone.formats.signature", None, "verify_signature"),
    ("phone.formats.signed", None, "parse_signed"),
    ("phone.trust.config", None, "evaluate_config"),
    ("phone.trust.lists", None, "evaluate_trust_list"),
    ("phone.scenario.runner", "ScenarioRunner", "_device"),
    ("phone.scenario.checks", "Checks", "tally"),
]


def _timed(key: str, function: Callable[..., Any], totals: dict[str, list[float]]) -> Any:  # noqa: ANN401
    entry = totals.setdefault(key, [0.0, 0, 0])

    def timed(*args: object, **kwargs: object) -> object:
        entry[2] += 1
        if entry[2] > 1:  # nested: counted in the outer call
            try:
                return function(*args, **kwargs)
            finally:
                entry[2] -= 1
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            entry[0] += time.perf_counter() - start
            entry[1] += 1
            entry[2] -= 1

    return timed


def instrument(totals: dict[str, list[float]]) -> None:
    """Wrap every stage (and every module-level name bound to a wrapped function)."""
    for module_name, owner_name, name in STAGES:
        module = importlib.import_module(module_name)
        owner: Any = getattr(module, owner_name) if owner_name else module
        function = getattr(owner, name)
        key = f"{owner_name}.{name}" if owner_name else name
        wrapped = _timed(key, function, totals)
        setattr(owner, name, wrapped)
        if owner_name is None:  # importers hold the function under its own name
            for other in list(sys.modules.values()):
                if getattr(other, "__name__", "").startswith("phone.") and (
                    getattr(other, name, None) is function
                ):
                    setattr(other, name, wrapped)


def main() -> None:
    """Run the fleet and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=3000)
    args = parser.parse_args()
    phones: int = args.phones
    totals: dict[str, list[float]] = {}
    instrument(totals)
    from phone.scenario import ScenarioRunner, load_scenario  # noqa: PLC0415 (after wrapping)

    runner = ScenarioRunner(
        load_scenario("migration-rollback").with_count(phones), keys=pooled_keys()
    )
    cpu = time.process_time()
    runner.run()
    cpu = time.process_time() - cpu
    print(
        f"migration-rollback, {phones:,} phones in process: CPU {cpu / phones * 1e3:.3f} ms per "
        f"phone (timers included); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'us/phone':>9} {'calls/phone':>12} {'us/call':>9}  stage")
    for key, (seconds, calls, _) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        if calls:
            print(
                f"{seconds / phones * 1e6:9.1f} {calls / phones:12.1f} "
                f"{seconds / calls * 1e6:9.1f}  {key}"
            )


if __name__ == "__main__":
    main()

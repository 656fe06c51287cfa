"""Behaviour snapshots: library scenario reports and boot traces (not a test module).

Issue 11 moved most modules of the package; these snapshots, taken before the move, prove it
changed no behaviour. ``tests/test_golden.py`` compares them; after a deliberate change of
behaviour, rewrite them with ``python tests/golden.py --write`` and review the diff.

Certificates get random serials, so every run of 16 or more hex digits is masked; everything
else (texts, rules, files, hosts, order) must match byte for byte.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from keypool import pooled_key_lists

from phone.api import create_lab, create_phone
from phone.device.flash import MemoryFlash
from phone.net.faults import FaultyBackend, parse_fault
from phone.net.memory import MemoryBackend
from phone.pki import PooledKeys
from phone.scenario import library_names, load_scenario, render_text, run_scenario

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
_HEX = re.compile(r"\b[0-9A-Fa-f]{16,}\b")
_SERIAL_COLON = re.compile(r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){7,}\b")


def _keys() -> PooledKeys:
    # A fresh pool each time, so the keys a snapshot draws do not depend on what ran before.
    return PooledKeys(pooled_key_lists())


def _mask(text: str) -> str:
    return _HEX.sub("<hex>", _SERIAL_COLON.sub("<hex>", text))


def _trace(phone: object) -> str:
    lines = []
    for entry in phone.trace:  # type: ignore[attr-defined]
        lines.append(
            f"[{entry.step}] {entry.decision} {entry.rule} {entry.file} {entry.server}\n"
            f"    {entry.reason}"
        )
    lines.append(f"state {phone.state}")  # type: ignore[attr-defined]
    lines.append("status " + " | ".join(phone.status))  # type: ignore[attr-defined]
    return _mask("\n".join(lines)) + "\n"


def boot_stories() -> dict[str, str]:
    """Boot traces of a few phones through the Python API, on a fixed clock."""
    out: dict[str, str] = {}

    def clock() -> datetime:
        return NOW + timedelta(minutes=5)

    for model in ("8841", "7940", "7962", "8945"):
        lab = create_lab("cluster1", now=NOW, keys=_keys())
        flash = MemoryFlash()
        phone = create_phone(lab, mac="001122334455", model=model, flash=flash, clock=clock)
        phone.boot()
        phone.boot()  # the reboot: everything unchanged
        out[f"boot-{model}"] = _trace(phone)
    lab = create_lab("cluster1", now=NOW, keys=_keys())
    phone = create_phone(lab, mac="001122334466", clock=clock)
    phone.boot()
    tampered = FaultyBackend(
        MemoryBackend(lab, clock=clock), [parse_fault("tamper:SEP*.cnf.xml.sgn")]
    )
    phone2 = create_phone(lab, mac="001122334466", clock=clock, backend=tampered)
    phone2.boot()
    out["boot-tampered-config"] = _trace(phone2)
    return out


def scenario_reports() -> dict[str, str]:
    """Every library scenario's verbose text report and JSON document."""
    out: dict[str, str] = {}
    for name in library_names():
        report = run_scenario(load_scenario(name), keys=_keys())
        out[f"scenario-{name}"] = _mask(render_text(report, verbose=True) + report.to_json())
    return out


def snapshots() -> dict[str, str]:
    """Every snapshot by name."""
    return {**boot_stories(), **scenario_reports()}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/golden.py --write")
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for old in GOLDEN.glob("*.txt"):
        old.unlink()
    for name, text in snapshots().items():
        (GOLDEN / f"{name}.txt").write_text(text)
    print(f"wrote {len(list(GOLDEN.glob('*.txt')))} snapshots to {GOLDEN}")

"""The abuse suite of issue 13 (``tools/abuse.py --short``) runs in CI: every probe of the
issue's table against a served lab, with small counts (about 20 s), each line PASS.

The latency targets (1 s for TVS/CAPF, 200 ms for HTTP) are the full run's, measured on a quiet
machine and recorded in docs/security.md; here they get a slack of 5 so the test checks what
must hold on any machine (every good request answered, throttled, refused, swept) and never
becomes a timed assertion that fails because the CI machine is busy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "abuse.py"
PROBES = (
    "keys-umask",
    "config-encoding",
    "idle-tvs 64",
    "idle-capf 64",
    "idle-tvs 1000",
    "idle-capf 1000",
    "http-slowloris",
    "tftp-malformed",
    "sip-guessing",
    "sip-enumeration",
    "flash-kill",
)


def test_the_short_abuse_suite_passes_every_probe() -> None:
    # Its own session: should the suite overrun, it goes down with lab serve and every boot.
    process = subprocess.Popen(
        [sys.executable, str(TOOL), "--short", "--slack", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    lines = out.splitlines()
    for name in PROBES:
        line = next((x for x in lines if x.startswith(f"{name} ")), None)
        assert line is not None, f"no line for {name}:\n{out}"
        assert line.endswith("| PASS"), line
    assert process.returncode == 0, out
    assert f"{len(PROBES)} of {len(PROBES)} probes passed" in out
    assert "Traceback" not in out

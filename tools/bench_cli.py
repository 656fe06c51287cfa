"""How fast the ``vphone`` command line starts, as whole processes (issue 17 item 4).

Times, interleaved round by round so machine load hits every command alike:

* the floor: ``python -c "import cryptography.x509"`` (what any tool reading a certificate
  pays before its first line of work);
* ``vphone tlv show ITL`` on a 39-record ITL this tool builds (with ``vphone tlv build``);
* ``vphone --help``;
* with ``--tlvfile PATH``: certutils' ``tlvfile -p ITL`` on the same file (its script run by
  hand; nothing of it is copied here, and no test depends on it).

Each figure is the median over ``--runs`` runs of the process's wall time and of its CPU time
(user + system, from ``wait4``): CPU is compared with CPU and wall with wall. The ratios are
against the floor (target: at most 1.5x) and against ``tlvfile -p`` (target: at most 1x).
The commands run with the venv's interpreter (``sys.executable``) so every row pays the same
interpreter start, with byte-code caching on (as an installed package has it; a script run by
path, like ``tlvfile``, is compiled on every run by Python's design).

The ``phone`` package timed is the one ``python -m phone`` finds: the current directory's
``phone/`` first (``-m`` puts the working directory on ``sys.path``), then ``PYTHONPATH``,
then the venv's (editable) install. ``--python-path DIR`` times the tree at ``DIR`` instead:
the commands run in the bench's temporary folder with ``DIR`` first on ``PYTHONPATH``. The
first line printed names the ``phone/__init__.py`` the commands import.

    .venv/bin/python tools/bench_cli.py [--runs 30] [--tlvfile /path/to/certutils/tlvfile]
        [--python-path /path/to/another/tree]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

RECORDS = 39
# An installed package has its .pyc files (pip compiles at install); so do the commands here:
# the warm-up run writes them. PYTHONDONTWRITEBYTECODE would make every run compile vphone
# from source while cryptography's .pyc were compiled at install: not like with like.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
KEY = Path(__file__).resolve().parent.parent / "tests" / "data" / "keys" / "rsa2048-00.pem"


def _certificate(key: rsa.RSAPrivateKey, name: str) -> bytes:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VTG"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vphone"),
        ]
    )
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _environment(python_path: Path | None) -> dict[str, str]:
    """The commands' environment: ``python_path`` (when given) first on ``PYTHONPATH``."""
    if python_path is None:
        return dict(_ENV)
    paths = [str(python_path.resolve()), *filter(None, [_ENV.get("PYTHONPATH")])]
    return {**_ENV, "PYTHONPATH": os.pathsep.join(paths)}


def imported_phone(env: dict[str, str], cwd: Path | None) -> str:
    """The ``phone/__init__.py`` that ``python -m phone`` imports with ``env`` in ``cwd``."""
    probe = [sys.executable, "-c", "import phone; print(phone.__file__)"]
    found = subprocess.run(probe, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return found.stdout.strip()


def build_itl(folder: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Path:
    """A 39-record ITL signed by its first (SAST) record, written by ``vphone tlv build``."""
    loaded = serialization.load_pem_private_key(KEY.read_bytes(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    roles = ["SAST", *(["CCM+TFTP", "TVS", "CAPF"] * 13)][:RECORDS]
    argv = [sys.executable, "-m", "phone", "tlv", "build"]
    for index, role in enumerate(roles):
        pem = folder / f"cert{index:02}.pem"
        pem.write_bytes(_certificate(loaded, f"node{index:02}.bench.lab"))
        argv += ["--record", f"{role}:{pem}:node{index:02}.bench.lab:10.0.0.{index + 1}"]
    out = folder / "ITLFile.tlv"
    argv += ["--signer-cert", str(folder / "cert00.pem"), "--signer-key", str(KEY)]
    argv += ["--timestamp", "1700000000", "-o", str(out)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
    return out


def _once(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """Wall and CPU seconds of one whole process (its output thrown away)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_ENV if env is None else env,
        cwd=cwd,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read() if process.stderr else b""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}): {error.decode()}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(
    commands: dict[str, list[str]],
    runs: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each command, the commands interleaved run by run."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache and .pyc files first
        _once(argv, env, cwd)
    for _ in range(runs):
        for name, argv in commands.items():
            wall, cpu = _once(argv, env, cwd)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in commands}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--tlvfile", type=Path, help="certutils' tlvfile script, to compare")
    parser.add_argument(
        "--python-path",
        type=Path,
        metavar="DIR",
        help="time the phone package of the tree at DIR (run with DIR first on PYTHONPATH, "
        "outside the current directory)",
    )
    args = parser.parse_args(argv)
    python = sys.executable
    env = _environment(args.python_path)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        cwd = Path(folder) if args.python_path is not None else None
        timed = imported_phone(env, cwd)
        itl = build_itl(Path(folder), env, cwd)
        commands = {
            "floor: python -c 'import cryptography.x509'": [
                python,
                "-c",
                "import cryptography.x509",
            ],
            f"vphone tlv show ({RECORDS}-record ITL)": [
                python,
                "-m",
                "phone",
                "tlv",
                "show",
                str(itl),
            ],
            "vphone --help": [python, "-m", "phone", "--help"],
        }
        if args.tlvfile is not None:
            commands["certutils tlvfile -p (same ITL)"] = [
                python,
                str(args.tlvfile),
                "-p",
                str(itl),
            ]
        load = os.getloadavg()
        figures = measure(commands, args.runs, env, cwd)
    print(f"vphone: {timed}")
    print(f"{args.runs} runs each, interleaved; median per process; load {load[0]:.2f} (1 min)")
    floor_wall, floor_cpu = next(iter(figures.values()))
    peer = figures.get("certutils tlvfile -p (same ITL)")
    width = max(map(len, figures))
    print(
        f"{'command':<{width}}  {'wall ms':>8}  {'CPU ms':>7}  {'CPU/floor':>9}  "
        f"{'CPU/tlvfile':>11}"
    )
    for name, (wall, cpu) in figures.items():
        versus_peer = f"{cpu / peer[1]:.2f}x" if peer else "-"
        print(
            f"{name:<{width}}  {wall * 1000:8.1f}  {cpu * 1000:7.1f}  {cpu / floor_cpu:8.2f}x  "
            f"{versus_peer:>11}"
        )
    show_wall, show_cpu = figures[f"vphone tlv show ({RECORDS}-record ITL)"]
    print(
        f"tlv show: wall {show_wall / floor_wall:.2f}x the floor's wall, CPU "
        f"{show_cpu / floor_cpu:.2f}x the floor's CPU (target 1.5x)"
    )
    if peer:
        print(
            f"tlv show vs tlvfile -p: wall {show_wall / peer[0]:.2f}x, "
            f"CPU {show_cpu / peer[1]:.2f}x (target 1x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

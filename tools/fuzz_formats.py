"""Fuzz the trust-file parsers: only a FormatError (or success) is allowed.

Usage:
    python tools/fuzz_formats.py [--seconds 60] [--seed N] [--corpus DIR ...] [--crashes DIR]
    python tools/fuzz_formats.py --atheris [atheris/libFuzzer options ...]

The default mode is a self-contained random-mutation loop with a time budget: it takes valid
files (freshly built ITL/CTL, .sgn, .enc.sgn and container images, the shared samples in
``../shared/samples`` when present, and any ``--corpus`` files), mutates them (bit flips, byte
sets, inserts, deletes, truncations, lying 16-bit lengths, copied ranges, DER-targeted edits) and
feeds each result to ``parse_trust_list``, ``parse_signed``, ``parse_image``,
``parse_container``, the SCCP stream reader (``sccp.parse_stream``, seeded with a registration
exchange) and, for what parses, ``Record.certificate()``, the self-verification, the
signature check and decryption. Any exception (or warning) other than a documented FormatError
subclass (or, after a successful parse, SignatureError/DecryptionError) is a crash: its input is
written to ``--crashes`` and the run exits 1.

``--atheris`` runs the same check under atheris (coverage-guided), only if atheris is
importable; everything after ``--atheris`` goes to libFuzzer.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import importlib
import os
import random
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from phone.errors import (
    DecryptionError,
    FormatError,
    LengthError,
    SignatureError,
    StructureError,
    TruncatedError,
    ValueFormatError,
)
from phone.formats import (
    ContainerImage,
    Role,
    SignedFile,
    Signer,
    TrustList,
    build_container,
    build_encrypted,
    build_signed,
    build_trust_list,
    certificateless_record,
    decrypt,
    parse_container,
    parse_image,
    parse_signed,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
)
from phone.pki import FreshKeys, self_signed
from phone.wire import sccp

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
DOCUMENTED = (TruncatedError, LengthError, StructureError, ValueFormatError)
INTERESTING_U16 = (0, 1, 2, 3, 4, 5, 0x0D, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
DER_MARKERS = (b"\xa0\x03\x02\x01", b"\x06\x09", b"\x06\x03\x55\x1d", b"\x30\x82")

PARSERS: dict[str, Callable[[bytes], object]] = {
    "parse_trust_list": parse_trust_list,
    "parse_signed": parse_signed,
    "parse_image": parse_image,
    "parse_container": parse_container,
    "sccp.parse_stream": sccp.parse_stream,
}


class Target:
    """The check run on every input, with the keys its post-parse steps need."""

    def __init__(self, signer: Signer, phone_key: rsa.RSAPrivateKey) -> None:
        self.signer = signer
        self.phone_key = phone_key
        self.outcomes: collections.Counter[str] = collections.Counter()

    def __call__(self, data: bytes) -> None:
        """Run every parser on ``data``; raise AssertionError or the stray exception on a bug."""
        for name, parse in PARSERS.items():
            try:
                result = parse(data)
            except FormatError as exc:
                self._check(exc, data)
                self.outcomes[f"{name}: {type(exc).__name__}"] += 1
                continue
            self.outcomes[f"{name}: ok"] += 1
            if isinstance(result, TrustList):
                self._trust_list(result, data)
            elif isinstance(result, SignedFile):
                self._signed(result)
            elif isinstance(result, ContainerImage):
                result.hash_matches()
                with contextlib.suppress(SignatureError):
                    result.verify(self.signer.key.public_key())

    @staticmethod
    def _check(exc: FormatError, data: bytes) -> None:
        if type(exc) not in DOCUMENTED:
            raise AssertionError(f"undocumented FormatError subclass {type(exc).__name__}")
        if not 0 <= exc.offset <= len(data):
            raise AssertionError(f"offset {exc.offset} outside the {len(data)}-byte input")
        if not exc.expected:
            raise AssertionError("FormatError without 'expected'")

    def _trust_list(self, trust_list: TrustList, data: bytes) -> None:
        if trust_list.encode() != data:
            raise AssertionError("a trust list that parses does not encode back to its bytes")
        for record in trust_list.records:
            try:
                record.certificate()
            except FormatError as exc:
                self._check(exc, data)
        verify_self_signed(trust_list)

    def _signed(self, signed: SignedFile) -> None:
        with contextlib.suppress(SignatureError):
            signed.verify(self.signer.certificate)
        if signed.encrypted:
            with contextlib.suppress(DecryptionError):
                decrypt(signed, self.phone_key)


# --- seeds -------------------------------------------------------------------------------------


def build_seeds() -> tuple[list[bytes], Target]:
    """Fresh valid files of every kind, and the target holding their keys."""
    keys = FreshKeys()
    now = datetime.now(UTC)
    big, other, small = keys.rsa(2048), keys.rsa(2048), keys.rsa(1024)
    sast = self_signed("ITLRECOVERY_fuzz", now=now, key=big)
    tvs = self_signed("fuzz-tvs", now=now, key=other)
    tiny = self_signed("fuzz-small", now=now, key=small)
    signer = Signer(sast.certificate, big)
    small_signer = Signer(tiny.certificate, small)
    stamp = int(now.timestamp())
    itl = build_trust_list(
        [
            record_from_certificate(sast.certificate, Role.SAST),
            record_from_certificate(tvs.certificate, Role.TVS, dns_name="tvs", ip="10.0.0.2"),
            certificateless_record(Role.CCM_TFTP, dns_name="10.0.0.1", ip="10.0.0.1"),
            certificateless_record(6, dns_name="unknown-role"),
        ],
        signer,
        timestamp=stamp,
    )
    seeds = [
        itl.encode(),
        build_signed(
            b"<device/>\n", small_signer, filename="a.cnf.xml.sgn", timestamp=stamp
        ).encode(),
        build_encrypted(
            b"<device><x/></device>\n",
            signer,
            other.public_key(),
            filename="a.cnf.xml.enc.sgn",
            timestamp=stamp,
            aes_key=os.urandom(16),
            iv=os.urandom(16),
        ).encode(),
        build_container(b"[CISCO-ID]\nfuzz\n" * 8, "fuzz.loads", big).encode(),
        sccp_seed(),
    ]
    return seeds, Target(signer, other)


def sccp_seed() -> bytes:
    """A registration exchange as one SCCP byte stream (both directions concatenated)."""
    register = sccp.StationRegister(
        device_name="SEP001122334455",
        device_type=sccp.DEVICE_TYPES["7942"],
        protocol_version=17,
        extension=sccp.RegisterExtension(max_lines=2, firmware_load="SCCP42.9-4-2SR3-1S"),
    )
    messages: list[sccp.Message | sccp.Unknown] = [
        register,
        sccp.RegisterAck(),
        sccp.CapabilitiesReq(),
        sccp.CapabilitiesRes(capabilities=(sccp.Capability(4),)),
        sccp.ButtonTemplateRes(buttons=(sccp.Button(1, 9),), total=1),
        sccp.LineStatRes(number="1001"),
        sccp.RegisterReject(text="Unknown device"),
        sccp.KeepAlive(),
        sccp.Unknown(0x9F, b"\x01\0\0\0"),
    ]
    return b"".join(sccp.encode(m) for m in messages)


def corpus_files(folders: Sequence[Path]) -> list[bytes]:
    """Every file under ``folders`` (and the shared samples, when present)."""
    found: list[bytes] = []
    for folder in [SAMPLES, *folders]:
        if folder.is_dir():
            found.extend(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())
    return [data for data in found if data]


# --- mutation ----------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to six random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(9)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[at % len(out)] = rng.randrange(256)
        elif op == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            del out[at : at + rng.randint(1, 64)]
        elif op == 4:
            del out[at:]
        elif op == 5 and len(out) >= 2:
            at = min(at, len(out) - 2)
            value = rng.choice(
                (
                    *INTERESTING_U16,
                    len(out) & 0xFFFF,
                    (len(out) - at) & 0xFFFF,
                    rng.randrange(65536),
                )
            )
            out[at : at + 2] = value.to_bytes(2, "big")
        elif op == 6 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)]
        elif op == 7:
            out += rng.randbytes(rng.randint(1, 64))
        elif op == 8:
            marker = rng.choice(DER_MARKERS)
            spots = [i for i in range(len(out)) if out.startswith(marker, i)]
            if spots:
                target = rng.choice(spots) + len(marker) + rng.randrange(8)
                if target < len(out):
                    out[target] = rng.randrange(256)
    return bytes(out)


def save_crash(folder: Path, data: bytes) -> Path:
    """Write a crashing input to ``folder`` under its SHA-1 and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


def run_loop(args: argparse.Namespace) -> int:
    """The random-mutation loop; return the exit code (1 if anything crashed)."""
    warnings.simplefilter("error")  # as the test suite does: a warning is a crash too
    seeds, target = build_seeds()
    seeds += corpus_files(args.corpus)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    runs = crashes = 0
    slowest = 0.0
    while time.monotonic() < deadline:
        data = mutate(rng.choice(seeds), rng)
        started = time.perf_counter()
        try:
            target(data)
        except Exception:
            crashes += 1
            path = save_crash(args.crashes, data)
            print(f"CRASH ({path}):", file=sys.stderr)
            traceback.print_exc()
        slowest = max(slowest, time.perf_counter() - started)
        runs += 1
    print(f"{runs} inputs from {len(seeds)} seeds in {args.seconds:g}s (seed {args.seed})")
    print(f"slowest input: {slowest * 1000:.1f} ms; crashes: {crashes}")
    for outcome, count in sorted(target.outcomes.items()):
        print(f"  {outcome:40} {count}")
    return 1 if crashes else 0


def run_atheris(argv: list[str]) -> int:
    """Run the target under atheris (coverage-guided) if it is installed."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    warnings.simplefilter("error")
    seeds, target = build_seeds()
    del seeds  # libFuzzer takes its corpus from the command line

    def one_input(data: bytes) -> None:
        target(bytes(data))

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and fuzz."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--atheris":
        return run_atheris(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="RNG seed")
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[], help="extra seed files (a folder)"
    )
    parser.add_argument(
        "--crashes",
        type=Path,
        default=Path("fuzz-crashes"),
        help="folder for crashing inputs (default ./fuzz-crashes)",
    )
    return run_loop(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

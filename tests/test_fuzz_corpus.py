"""The committed fuzz corpus (tests/data/fuzz) through every parser ``tools/fuzz_formats.py``
covers (issue 13, done-when: "a fuzz corpus of every parser run in the test suite with nothing
but the project's error type escaping").

Every file goes to every parser, whatever folder it sits in: the trust-file and firmware
parsers, the TLV reader, config XML, SCCP, and the network codecs (TVS, CAPF, SIP, TFTP). The
check is fuzz_formats' own: a format parser may raise only a documented FormatError subclass
with an offset inside the input and an "expected" (then, after a parse, only SignatureError or
DecryptionError); a codec only its own error (ProtocolError; PacketError for TFTP); a warning
is a failure too.

Growing the corpus (docs/security.md, "The fuzz corpus"): ``python tools/fuzz_formats.py
--seconds 60 --corpus tests/data/fuzz --save-corpus tests/data/fuzz``, and keep a crashing
input found elsewhere as ``tests/data/fuzz/<kind>/<sha1>.bin`` once it is fixed.
"""

from __future__ import annotations

import collections
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "fuzz"
sys.path.insert(0, str(ROOT / "tools"))

import fuzz_formats  # noqa: E402

FILES = sorted(p for p in CORPUS.rglob("*.bin") if p.is_file())
KINDS = (*fuzz_formats.SEED_KINDS, *fuzz_formats.WIRE_KINDS)


@pytest.fixture(scope="module")
def target() -> fuzz_formats.Target:
    _seeds, built = fuzz_formats.build_seeds()
    return built


def test_the_corpus_is_small_and_holds_every_kind() -> None:
    assert sum(p.stat().st_size for p in FILES) < 400_000
    assert {p.parent.name for p in FILES} == set(KINDS)


def test_every_corpus_file_through_every_parser(target: fuzz_formats.Target) -> None:
    failures: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in FILES:
            try:
                target(path.read_bytes())
            except Exception as exc:  # the very thing this test looks for
                failures.append(f"{path.relative_to(ROOT)}: {type(exc).__name__}: {exc}")
    assert failures == []


def test_the_corpus_reaches_both_sides_of_every_parser(target: fuzz_formats.Target) -> None:
    # Not only garbage: every parser accepts some corpus file and refuses others.
    target.outcomes.clear()
    for path in FILES:
        target(path.read_bytes())
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for outcome in target.outcomes:
        name, _, kind = outcome.partition(": ")
        seen[name].add("ok" if kind == "ok" else "error")
    parsers = [*fuzz_formats.PARSERS, *fuzz_formats.WIRE]
    assert {name: seen[name] for name in parsers} == {name: {"ok", "error"} for name in parsers}

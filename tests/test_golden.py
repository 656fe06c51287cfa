"""Behaviour did not move when the code did (issue 11: "the library scenarios' reports and the
boot traces are byte-identical before and after, checked by a test").

The snapshots in ``tests/data/golden/`` were written by ``python tests/golden.py --write``
before the package was re-layered; a change of behaviour is made on purpose by rewriting them
and reviewing the diff in the same commit.
"""

from __future__ import annotations

import pytest
from golden import GOLDEN, snapshots


@pytest.fixture(scope="module")
def current() -> dict[str, str]:
    return snapshots()


def test_every_snapshot_is_still_produced(current: dict[str, str]) -> None:
    stored = {p.stem for p in GOLDEN.glob("*.txt")}
    assert stored, f"no snapshots in {GOLDEN}"
    assert set(current) == stored


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.txt")))
def test_snapshot_is_byte_identical(name: str, current: dict[str, str]) -> None:
    assert current[name] == (GOLDEN / f"{name}.txt").read_text()

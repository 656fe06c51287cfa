"""Where the shared sample files live, and how tests that need them skip without them.

The samples (real Cisco-format files from public repositories, see ../shared/samples/README.md)
are never copied into this repository: tests read them in place, next to the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SKIP_REASON = "../shared/samples not found"


def shared_dir() -> Path:
    """The ``shared`` folder beside the checkout: ``<repo>/../shared``.

    ``VPHONE_SHARED`` names it explicitly. Otherwise the nearest ancestor of this file that has a
    ``shared`` folder is taken, so a copy of ``tests/`` one level deeper (mutmut's
    ``<repo>/mutants/tests``, docs/mutation.md) still finds ``<repo>/../shared`` and the
    shared-data tests run there instead of skipping.
    """
    named = os.environ.get("VPHONE_SHARED")
    if named:
        return Path(named)
    here = Path(__file__).resolve()
    for ancestor in here.parents[1:]:
        if (ancestor / "shared").is_dir():
            return ancestor / "shared"
    return here.parents[2] / "shared"


def samples_dir() -> Path:
    """The shared samples folder: ``<repo>/../shared/samples``."""
    return shared_dir() / "samples"


def have_samples() -> bool:
    """True when the shared samples folder exists."""
    return samples_dir().is_dir()


needs_samples = pytest.mark.skipif(not have_samples(), reason=SKIP_REASON)
"""Mark a test (or module) that reads sample files."""


def sample_path(relative: str) -> Path:
    """The path of one sample, skipping the calling test when it is absent."""
    path = samples_dir() / relative
    if not path.is_file():
        pytest.skip(SKIP_REASON)
    return path


def sample_bytes(relative: str) -> bytes:
    """The bytes of one sample (e.g. ``itl/certutils-ITLFile.tlv``), or skip the test."""
    return sample_path(relative).read_bytes()


CERTUTILS_ITL = "itl/certutils-ITLFile.tlv"
LEGACY_LOADS = "firmware/term41.default.loads"
CONTAINER_LOADS = "firmware/sip78xx.11-0-1-11.loads"

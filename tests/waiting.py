"""Waiting for a server's state to settle, with a deadline (not a test module)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """True as soon as ``check()`` is, polling every 20 ms; after ``timeout`` seconds, whatever
    ``check()`` says then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())

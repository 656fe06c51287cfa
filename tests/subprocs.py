"""Reading a subprocess's output with a deadline (not a test module)."""

from __future__ import annotations

import os
import select
import subprocess
import time


def read_until(process: subprocess.Popen[bytes], marker: str, deadline: float) -> list[str]:
    """Read ``process``'s stdout until ``marker`` appears; return the lines read so far.

    Reads the pipe's file descriptor directly: select() on a buffered file object would miss
    lines already sitting in its buffer.

    Raises:
        AssertionError: the deadline passed or the process ended first.
    """
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if marker.encode() in data:
            return data.decode().splitlines()
    raise AssertionError(f"lab serve did not say {marker!r}: {data.decode()!r}")

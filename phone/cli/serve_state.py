"""``DIR/lab-serve.json``: where a running ``vphone lab serve DIR`` listens, for ``vphone boot
--lab-serve DIR``.

``lab serve`` writes the file into the lab folder once every server listens, rewrites it when
a reload adds or removes a port, and removes it when it stops. ``boot --lab-serve DIR`` reads
it: the TFTP URL of the cluster asked for (the first cluster by default) and the host map, so
that nobody copies printed ports by hand (issue 18 friction 7). The process id in the file
tells a file left by a server that was killed (SIGKILL, a crash) from a running one.

The file::

    {"format": "vphone-lab-serve", "version": 1, "pid": 4242, "host": "127.0.0.1",
     "tftp": {"cluster1": "tftp://127.0.0.1:40001"},
     "host_map": {"format": "vphone-host-map", "version": 1, "hosts": {...}}}
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phone.errors import UsageError

if TYPE_CHECKING:
    from phone.cluster.lab import Lab
    from phone.net.hostmap import HostMap
    from phone.net.servers import LabServer

STATE_FILE = "lab-serve.json"
_FORMAT = "vphone-lab-serve"
_VERSION = 1
# A wildcard listen address: a local client dials loopback instead.
_ANY = ("0.0.0.0", "::", "")  # noqa: S104 (compared with, never bound)


def state_path(lab_dir: Path) -> Path:
    """Where ``lab serve`` of ``lab_dir`` writes its addresses."""
    return lab_dir / STATE_FILE


def write_state(server: LabServer, lab: Lab, lab_dir: Path) -> Path:
    """Write (atomically: a reader never sees half a file) where ``server`` listens."""
    tftp: dict[str, str] = {}
    for cluster in lab.clusters:
        nodes = set(cluster.tftp_hosts)
        for entry in server.listeners:
            if entry.service == "tftp" and entry.running and entry.node in nodes:
                host = "127.0.0.1" if entry.address[0] in _ANY else entry.address[0]
                tftp[cluster.name] = f"tftp://{host}:{entry.address[1]}"
                break
    document = {
        "format": _FORMAT,
        "version": _VERSION,
        "pid": os.getpid(),
        "host": server.host,
        "tftp": tftp,
        "host_map": json.loads(server.host_map().to_json()),
    }
    path = state_path(lab_dir)
    temporary = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def remove_state(lab_dir: Path) -> None:
    """Remove the file when this process wrote it (a newer server's file is left alone)."""
    path = state_path(lab_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def read_state(lab_dir: Path, cluster: str | None) -> tuple[str, HostMap]:
    """The TFTP URL (of ``cluster``, else the first cluster served) and the host map of the
    ``lab serve`` running for ``lab_dir``.

    Raises:
        UsageError: no server is running for the folder, or it serves no such cluster.
    """
    from phone.net.hostmap import HostMap  # noqa: PLC0415 (sockets stay out of `vphone --help`)

    path = state_path(lab_dir)
    start = f"start one: vphone lab serve {lab_dir}"
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no `vphone lab serve` is running for {lab_dir} ({start})") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read ({exc}); {start}") from None
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise UsageError(f"{path} is not a vphone lab serve state file")
    pid = document.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        raise UsageError(
            f"the `vphone lab serve` that wrote {path} (pid {pid}) is not running; {start}"
        )
    urls: dict[str, str] = document.get("tftp") or {}
    if not urls:
        raise UsageError(f"the `vphone lab serve` of {lab_dir} runs no TFTP node")
    if cluster is None:
        url = next(iter(urls.values()))
    elif cluster in urls:
        url = urls[cluster]
    else:
        raise UsageError(
            f"the `vphone lab serve` of {lab_dir} serves no TFTP node of cluster {cluster!r} "
            f"(clusters: {', '.join(urls)})"
        )
    host_map = HostMap.from_json(json.dumps(document.get("host_map") or {}), source=str(path))
    return url, host_map

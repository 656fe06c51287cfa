"""``vphone lab serve DIR``: serve a lab folder to real phones and to ``vphone boot --server``.

Every running node of every cluster gets TFTP, HTTP (the "port 6970" files), TVS over TLS and
a SIP registrar on ``--host`` (127.0.0.1 by default), each on its own port
(:mod:`phone.net.servers`). Port options give the first node offering a service that port;
other nodes, and every service whose option is 0 (the default), get free ports. The command
prints where each service listens and, with ``--host-map-out FILE``, writes the host map a
``vphone boot --server ... --host-map FILE`` needs to reach TVS and the registrar by the host
names the config files use.

While serving, what the lab's servers change (registrations, the ITL hash reports of item 30,
the service log) is saved to the lab folder about once a second, under the lab's lock, so
``vphone lab itl-status`` and ``lab log`` see it. A lab folder changed by another command while
serving is not reloaded: the server says so and keeps serving (and not saving) what it loaded;
restart it to serve the change.

Ctrl-C or SIGTERM stops every server, saves, and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeAlias

from phone.cluster.model import Lab
from phone.cluster.store import load_lab, save_lab
from phone.errors import UsageError

if TYPE_CHECKING:
    from phone.net.servers import LabServer

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

SAVE_INTERVAL = 1.0  # seconds between saves of what the servers changed
log = logging.getLogger("phone.cli.serve")


def now() -> datetime:
    """The lab clock while serving: the wall clock."""
    return datetime.now(UTC)


@contextlib.contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    # The lab folder's lock protocol (phone.cluster.store): an exclusive flock on DIR/.lock
    # held from load to save by every command that changes the lab.
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stamps(path: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_mtime_ns for p in sorted((path / "clusters").glob("*/cluster.json"))
    }


class _Saver:
    """Saves the served lab when its servers changed it, unless someone else changed the folder."""

    def __init__(self, lab: Lab, path: Path) -> None:
        self.lab = lab
        self.path = path
        self.stamps = _stamps(path)
        self.diverged = False
        self.last_save = 0.0

    def dirty(self) -> bool:
        return any(c.saved_revision != c.revision for c in self.lab.clusters)

    def save(self) -> None:
        """Save what changed (called with the servers' lock held)."""
        with _folder_lock(self.path):
            if _stamps(self.path) != self.stamps:
                if not self.diverged:
                    self.diverged = True
                    log.warning(
                        "the lab folder %s was changed by another command while serving: not "
                        "saving over it; restart `vphone lab serve` to serve the change",
                        self.path,
                    )
                return
            if self.dirty():
                saved = save_lab(self.lab)
                self.stamps = _stamps(self.path)
                log.info("saved %s to %s", ", ".join(saved), self.path)


@contextlib.contextmanager
def _request_log(quiet: bool) -> Iterator[None]:
    """Log every request to stderr while serving; undone afterwards (the CLI may run in-process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    loggers = [logging.getLogger(name) for name in ("phone", "vphone")]
    tftpy = logging.getLogger("tftpy")
    saved = [(logger, logger.level) for logger in [*loggers, tftpy]]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # tftpy's own log repeats ours (and logs every not-found as an error).
    tftpy.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)


def cmd_serve(args: argparse.Namespace) -> int:
    """``lab serve``."""
    # Sockets and TLS are imported only by the commands that use them (`vphone --help` fast).
    from phone.net.servers import LabServer  # noqa: PLC0415

    path: Path = args.dir
    lab = load_lab(path)
    if not lab.clusters:
        raise UsageError(f"{path} holds no cluster to serve (add one with `vphone lab init`)")
    lab.clock = now
    saver = _Saver(lab, path)
    stop_requested: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        stop_requested.append(signum)

    ports = {
        "tftp": args.tftp_port,
        "http": args.http_port,
        "tvs": args.tvs_port,
        "sip": args.sip_port,
    }
    server = LabServer(lab, host=args.host, ports=ports, clock=now)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _request_log(args.quiet):
            _serve(
                server,
                saver,
                lab=lab,
                path=path,
                host_map_out=args.host_map_out,
                stop_requested=stop_requested,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    name = signal.Signals(stop_requested[0]).name if stop_requested else "a stop"
    print(f"stopped on {name}; every server closed", flush=True)
    return 0


def _serve(
    server: LabServer,
    saver: _Saver,
    *,
    lab: Lab,
    path: Path,
    host_map_out: Path | None,
    stop_requested: list[int],
) -> None:
    """Start, announce, save now and then until a signal arrives; always stop and save."""
    try:
        server.start()
        _announce(server, lab, path, host_map_out)
        while not stop_requested:
            time.sleep(0.1)  # signal handlers only set a flag: never interrupt a save
            if saver.dirty() and time.monotonic() - saver.last_save >= SAVE_INTERVAL:
                saver.last_save = time.monotonic()
                with server.lock:
                    saver.save()
    finally:
        server.stop()
        with server.lock:
            saver.save()


def _announce(server: LabServer, lab: Lab, path: Path, host_map_out: Path | None) -> None:
    names = ", ".join(c.name for c in lab.clusters)
    print(f"serving lab {path} (clusters: {names}) on {server.host}", flush=True)
    for line in server.describe():
        print(f"  {line}", flush=True)
    host_map = server.host_map()
    if host_map_out is not None:
        host_map_out.write_text(host_map.to_json(), encoding="utf-8")
        print(f"host map written to {host_map_out}", flush=True)
        maps = f"--host-map {host_map_out}"
    else:
        nodes = {n.hostname for c in lab.clusters for n in c.nodes}
        maps = " ".join(
            f"--host-map {line}" for line in host_map.lines() if line.split("=")[0] in nodes
        )
    first = next(
        (entry for entry in server.listeners if entry.service == "tftp" and entry.running), None
    )
    if first is not None:
        url = f"tftp://{first.address[0]}:{first.address[1]}"
        print(f"boot a phone: vphone boot --server {url} {maps}", flush=True)
    print("Ctrl-C or SIGTERM stops the servers", flush=True)


def add_parser(commands: Sub) -> None:
    """Add ``lab serve`` to the ``lab`` command group."""
    text = "serve the lab on real sockets: TFTP, HTTP 6970, TVS over TLS, SIP"
    p = commands.add_parser(
        "serve",
        help=text,
        description=f"{text}. Port options give the first node that port (0: a free port); "
        "other nodes get free ports. Runs until Ctrl-C or SIGTERM (exit 0).",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the lab folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for service, label in (
        ("tftp", "TFTP"),
        ("http", "HTTP (6970 on a real cluster)"),
        ("tvs", "TVS (2445 on a real cluster)"),
        ("sip", "SIP UDP and TCP (5060 on a real cluster)"),
    ):
        p.add_argument(
            f"--{service}-port", type=_port, default=0, metavar="PORT", help=f"{label} port"
        )
    p.add_argument(
        "--host-map-out",
        type=Path,
        metavar="FILE",
        help="write the host map (node host names -> ports) for `vphone boot --host-map`",
    )
    p.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    p.set_defaults(handler=cmd_serve)


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0 to 65535)")
    return value

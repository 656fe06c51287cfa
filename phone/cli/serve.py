"""``vphone lab serve DIR``: serve a lab folder to real phones and to ``vphone boot --server``.

Every running node of every cluster gets TFTP, HTTP (the "port 6970" files), TVS over TLS, a
SIP registrar and SCCP on TCP (and on TLS in mixed mode) on ``--host`` (127.0.0.1 by default),
each on its own port (:mod:`phone.net.servers`). Port options give the first node offering a
service that port; other nodes, and every service whose option is 0 (the default), get free
ports. The command prints where each service listens and, with ``--host-map-out FILE``, writes
the host map a ``vphone boot --server ... --host-map FILE`` needs to reach TVS and the
registrar by the host names the config files use.

**The served lab follows the folder.** About once a second the command compares the folder's
version (:func:`phone.cluster.store.lab_version`, a hash of every ``cluster.json``) with the
one it serves, and:

* if another command changed the folder (``lab regenerate``, ``lab set``, ``lab node stop``,
  ``lab add-device``, a new cluster ...), it reloads it under the lab's lock, carries over
  what its own servers changed since the last save (registrations, ITL reports, devices
  auto-registered or changed by CAPF, log lines: the rule of :func:`phone.cluster.store.
  rebase`), saves that, and switches every server to the reloaded lab on the same ports
  (:meth:`phone.net.servers.LabServer.swap`: a request sees the old lab or the new one, never
  a mix). Services of nodes that appeared, started, stopped or went away are started or
  stopped; the reload is logged with what changed, and the host map file is rewritten when a
  port was added or removed;
* otherwise, if its servers changed the lab, it saves it (under the lock), so ``vphone lab
  itl-status`` and ``lab log`` see it;
* a folder that cannot be loaded (a damaged ``cluster.json``) is reported once, and neither
  served nor saved over: the lab loaded before is served until the folder loads again.

A lab replaced by a reload is watched for :data:`RETIRE_AFTER` seconds: a CAPF session that
was in progress finishes on it, and what it records is carried into the folder too.

Ctrl-C or SIGTERM stops every server, saves (after a last reload if needed), and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeAlias

from phone.cli.serve_state import remove_state, write_state
from phone.cluster.cluster import Cluster
from phone.cluster.itl import itl_hash
from phone.cluster.lab import Lab
from phone.cluster.rebase import Baseline, Rebased, baseline, changed_since, rebase, save_changes
from phone.cluster.store import (
    LabVersion,
    is_lab,
    lab_lock,
    lab_version,
    read_lab,
    save_lab,
)
from phone.errors import NetworkError, UsageError, VphoneError

if TYPE_CHECKING:
    from phone.net.servers import LabServer

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

FOLLOW_INTERVAL = 1.0  # seconds between looks at the lab folder (save or reload)
RETIRE_AFTER = 30.0  # seconds a lab replaced by a reload is watched (module docstring)
log = logging.getLogger("phone.cli.serve")


def now() -> datetime:
    """The lab clock while serving: the wall clock."""
    return datetime.now(UTC)


@dataclass
class _Retired:
    """A lab replaced by a reload, still referenced by sessions that were in progress."""

    lab: Lab
    base: Baseline  # its state when it was replaced (and after each later carry-over)
    until: float  # time.monotonic() after which it is forgotten once unchanged


class _Follower:
    """Keeps the served lab and the lab folder in step (module docstring).

    Args:
        server: the servers, switched to each reloaded lab.
        path: the lab folder.
        lab: the lab loaded from it (served by ``server``).
        version: the folder version ``lab`` was loaded from.
        host_map_out: the host map file to rewrite when ports come or go, if any.
        clock: the lab clock given to every reloaded lab.
    """

    def __init__(
        self,
        server: LabServer,
        path: Path,
        lab: Lab,
        version: LabVersion,
        *,
        host_map_out: Path | None = None,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.server = server
        self.path = path
        self.lab = lab
        self.version: LabVersion = version
        self.base: Baseline = baseline(lab)
        self.retired: list[_Retired] = []
        self.host_map_out = host_map_out
        self.clock = clock
        self.reloads = 0
        self._unloadable: LabVersion | None = None  # a folder version that failed to load
        self._trouble: str | None = None  # the last problem logged (each is logged once)

    # --- the loop's entry point --------------------------------------------------------------

    def step(self) -> None:
        """Save what the servers changed, or reload what another command changed.

        Never raises for a folder problem (it is logged once, and retried at the next step):
        the servers keep serving whatever happens to the folder.
        """
        try:
            self._step()
        except (OSError, VphoneError) as exc:
            self._report(f"cannot follow the lab folder {self.path}: {exc}")
        else:
            self._trouble = None

    def pending(self) -> bool:
        """Whether the served lab, or a replaced one, holds changes not saved yet."""
        return changed_since(self.lab, self.base) or any(
            changed_since(r.lab, r.base) for r in self.retired
        )

    # --- internals -----------------------------------------------------------------------------

    def _step(self) -> None:
        moment = time.monotonic()
        self.retired = [r for r in self.retired if r.until > moment or changed_since(r.lab, r.base)]
        # A look without the lock first: the lock is taken only when there is work, so the
        # loop never waits for a slow command that changes nothing.
        seen = lab_version(self.path)
        if seen in (self.version, self._unloadable) and not self.pending():
            return
        with lab_lock(self.path):
            current = lab_version(self.path)
            if current == self._unloadable:
                return  # still unloadable: serve what was loaded, never save over it
            self._unloadable = None  # (the folder went back to what is served)
            if current != self.version:
                self._reload("the lab folder was changed by another command")
            elif any(changed_since(r.lab, r.base) for r in self.retired):
                # Through a fresh load too: the served lab's caches (signed files per device)
                # must never miss a change made behind their back.
                self._reload("a session that began before the last reload ended")
            elif changed_since(self.lab, self.base):
                self._save()

    def _save(self) -> None:
        """Save the served lab (the folder holds what it was loaded from; lock held)."""
        with self.server.lock:  # no request changes the lab while it is written
            saved = save_changes(self.lab, self.base)
            self.base = baseline(self.lab)
        self.version = lab_version(self.path)
        if saved:
            log.info("saved %s to %s", ", ".join(saved), self.path)

    def _reload(self, why: str) -> None:
        """Load the folder, carry what was served meanwhile into it, save, and serve it
        (lock held); ``why`` starts the log line."""
        try:
            fresh, version = read_lab(self.path)
        except VphoneError as exc:
            self._unloadable = lab_version(self.path)
            log.warning(
                "the lab folder %s changed but cannot be loaded (%s): still serving the lab "
                "loaded before, and not saving over the folder until it loads again",
                self.path,
                exc,
            )
            return
        fresh.clock = self.clock
        old = self.lab
        # The served lab, then the labs earlier reloads replaced (with their deadlines).
        until = time.monotonic() + RETIRE_AFTER
        sources = [(old, self.base, until), *((r.lab, r.base, r.until) for r in self.retired)]
        rebased = Rebased()
        saved: list[str] = []
        before = (self.server.describe(), self.server.host_map().to_json())

        def merge() -> None:
            # Under the servers' lock, at the last moment the old lab is served: nothing can
            # change it (or the replaced ones) between the carry-over and the switch.
            for lab, base, _ in sources:
                rebased.extend(rebase(lab, base, fresh))
            saved.extend(save_lab(fresh))
            # Each replaced lab is watched from what it holds now: a later change to it (a
            # CAPF session that was in progress) is carried over at the next step.
            self.retired = [_Retired(lab, baseline(lab), end) for lab, _, end in sources]
            self.lab, self.base = fresh, baseline(fresh)

        try:
            self.server.swap(fresh, merge=merge)
        except NetworkError as exc:  # a new node's port: the rest serves the new lab
            log.warning("reloaded %s, but a server could not start: %s", self.path, exc)
        self.version = lab_version(self.path) if saved else version
        self._unloadable = None
        self.reloads += 1
        # After the carry-over: what the servers did (an auto-registered phone) is in both.
        changes = describe_changes(old, fresh)
        log.info(
            "%s: reloaded %s (%s)",
            why,
            self.path,
            "; ".join(changes) or "nothing served changed",
        )
        if rebased.carried:
            log.info("kept what was served meanwhile: %s", "; ".join(rebased.carried))
        for line in rebased.dropped:
            log.warning("not kept: %s", line)
        self._listeners_changed(*before)

    def _listeners_changed(self, described: list[str], host_map: str) -> None:
        if self.server.describe() != described:
            for line in self.server.describe():
                log.info("  %s", line)
        text = self.server.host_map().to_json()
        if text != host_map:
            write_state(self.server, self.lab, self.path)  # for `vphone boot --lab-serve`
        if text != host_map and self.host_map_out is not None:
            self.host_map_out.write_text(text, encoding="utf-8")
            log.info("host map rewritten to %s", self.host_map_out)

    def _report(self, message: str) -> None:
        if message != self._trouble:
            log.warning("%s", message)
            self._trouble = message


# --- what a reload changed, for the log ------------------------------------------------------


def describe_changes(old: Lab, new: Lab) -> list[str]:
    """What changed between two loads of a lab, at a high level: clusters, nodes, certificates,
    ITLs, parameters, modes, devices (one line each)."""
    before = {c.name: c for c in old.clusters}
    after = {c.name: c for c in new.clusters}
    lines: list[str] = []
    for name, cluster in after.items():
        if name not in before:
            nodes = ", ".join(n.hostname for n in cluster.nodes)
            lines.append(f"cluster {name} added (nodes {nodes})")
    lines += [f"cluster {name} removed" for name in before if name not in after]
    for name, cluster in after.items():
        if name in before:
            lines += [f"{name}: {line}" for line in _cluster_changes(before[name], cluster)]
    return lines


def _cluster_changes(a: Cluster, b: Cluster) -> list[str]:
    lines: list[str] = []
    old_nodes = {n.hostname: n for n in a.nodes}
    new_nodes = {n.hostname: n for n in b.nodes}
    lines += [f"node {h} added" for h in new_nodes if h not in old_nodes]
    lines += [f"node {h} removed" for h in old_nodes if h not in new_nodes]
    for host, node in new_nodes.items():
        was = old_nodes.get(host)
        if was is None:
            continue
        if was.running != node.running:
            lines.append(f"node {host} {'started' if node.running else 'stopped'}")
        if was.services != node.services:
            lines.append(f"node {host} now runs {', '.join(node.services) or 'nothing'}")
        for kind in ("callmanager", "tvs", "tomcat"):
            if getattr(was, kind).certificate != getattr(node, kind).certificate:
                lines.append(f"{_CERT_NAMES[kind]} certificate of {host} replaced")
    for kind in ("itlrecovery", "capf"):
        if getattr(a, kind).certificate != getattr(b, kind).certificate:
            lines.append(f"{_CERT_NAMES[kind]} certificate replaced")
    if a.mixed_mode != b.mixed_mode:
        lines.append("mixed mode" if b.mixed_mode else "non-secure mode")
    old_parameters = dataclasses.asdict(a.parameters)
    for name, value in dataclasses.asdict(b.parameters).items():
        if old_parameters.get(name) != value:
            lines.append(f"{name} {old_parameters.get(name)} -> {value}")
    for host in b.tftp_hosts:
        old_itl, new_itl = _itl_digest(a, host), _itl_digest(b, host)
        if old_itl != new_itl:
            lines.append(f"ITL of {host} {old_itl} -> {new_itl}")
    if a.ctl_file != b.ctl_file:
        lines.append("CTL changed")
    if a.state.trust != b.state.trust:
        lines.append("trust stores changed")
    added = b.devices.keys() - a.devices.keys()
    removed = a.devices.keys() - b.devices.keys()
    changed = [m for m in b.devices.keys() & a.devices.keys() if a.devices[m] != b.devices[m]]
    for what, count in (
        ("added", len(added)),
        ("removed", len(removed)),
        ("changed", len(changed)),
    ):
        if count:
            lines.append(f"{count} device{'' if count == 1 else 's'} {what}")
    sip = ("trunk_profiles", "trunks", "application_users", "sip_realms")
    if any(getattr(a.state, f) != getattr(b.state, f) for f in sip):
        lines.append("SIP trunk settings changed")
    return lines


_CERT_NAMES = {
    "callmanager": "CallManager",
    "tvs": "TVS",
    "tomcat": "Tomcat",
    "itlrecovery": "ITLRecovery",
    "capf": "CAPF",
}


def _itl_digest(cluster: Cluster, host: str) -> str:
    """The first 12 hex digits of ``host``'s ITL hash (item 30), or "none"."""
    if cluster.find_node(host) is None:
        return "none"
    data = cluster.stored_itl(host)
    return "none" if data is None else itl_hash(data)[:12]


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
    if not is_lab(path):  # before taking the lock: it would create DIR/.lock
        raise UsageError(f"{path} is not a vphone lab folder (create one with `vphone lab init`)")
    with lab_lock(path):  # the version then describes exactly the bytes loaded
        lab, version = read_lab(path)
    if not lab.clusters:
        raise UsageError(f"{path} holds no cluster to serve (add one with `vphone lab init`)")
    lab.clock = now
    stop_requested: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        stop_requested.append(signum)

    ports = {
        "tftp": args.tftp_port,
        "http": args.http_port,
        "tvs": args.tvs_port,
        "sip": args.sip_port,
        "sccp": args.sccp_port,
        "sccps": args.sccps_port,
        "capf": args.capf_port,
    }
    server = LabServer(
        lab,
        host=args.host,
        ports=ports,
        clock=now,
        tvs_workers=args.tvs_workers,
        capf_workers=args.capf_workers,
    )
    follower = _Follower(server, path, lab, version, host_map_out=args.host_map_out)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _request_log(args.quiet):
            _serve(
                server,
                follower,
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
    follower: _Follower,
    *,
    path: Path,
    host_map_out: Path | None,
    stop_requested: list[int],
) -> None:
    """Start, announce, follow the folder until a signal arrives; always stop and save."""
    try:
        server.start()
        _announce(server, follower.lab, path, host_map_out)
        last = time.monotonic()
        while not stop_requested:
            time.sleep(0.1)  # signal handlers only set a flag: never interrupt a save
            if time.monotonic() - last >= FOLLOW_INTERVAL:
                follower.step()
                last = time.monotonic()
    finally:
        remove_state(path)  # first: a `boot --lab-serve` from now on is told nothing runs
        server.stop()
        follower.step()  # the last save, after a last reload if the folder changed


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
    state = write_state(server, lab, path)
    if first is not None:
        url = f"tftp://{first.address[0]}:{first.address[1]}"
        print(f"boot a phone: vphone boot --server {url} {maps}", flush=True)
        print(f"  or simply:  vphone boot --lab-serve {path}   (reads {state})", flush=True)
    print("Ctrl-C or SIGTERM stops the servers", flush=True)


def add_parser(commands: Sub) -> None:
    """Add ``lab serve`` to the ``lab`` command group."""
    text = "serve the lab on real sockets: TFTP, HTTP 6970, TVS and CAPF over TLS, SIP, SCCP"
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
        ("sccp", "SCCP over TCP (2000 on a real cluster)"),
        ("sccps", "SCCP over TLS, mixed mode (2443 on a real cluster)"),
        ("capf", "CAPF over TLS, on the publisher (3804 on a real cluster)"),
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
    p.add_argument(
        "--tvs-workers",
        type=_workers("--tvs-workers"),
        default=1,
        metavar="N",
        help="worker processes answering each TVS port (default 1; one per core answers TVS "
        "on every core: docs/scaling.md)",
    )
    p.add_argument(
        "--capf-workers",
        type=_workers("--capf-workers"),
        default=1,
        metavar="N",
        help="worker processes running CAPF's TLS on its port (default 1); the sessions "
        "themselves, and every change to the lab, stay in the serving process",
    )
    p.set_defaults(handler=cmd_serve)


def _workers(option: str) -> Callable[[str], int]:
    """The argparse type of ``option``: a number of worker processes, 1 to 64."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes") from None
        if not 1 <= value <= 64:
            raise argparse.ArgumentTypeError(f"{option} must be between 1 and 64, not {value}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0 to 65535)")
    return value

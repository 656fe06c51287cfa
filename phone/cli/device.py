"""``vphone boot`` and ``vphone phone show|erase-trust|factory-reset``.

``boot`` is the main job: one virtual phone against the embedded lab (created on first use in
the user's data folder), a lab folder, or real servers named by ``--server URL``
(``tftp://``, ``http://``, ``dir:``; docs/networks.md), printing every decision as it happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phone.catalog.models import DEFAULT_MODEL, MODELS
from phone.cluster.lab import Lab
from phone.cluster.records import ClusterSpec, Device
from phone.cluster.store import edit_lab, init_lab, is_lab
from phone.device.flash import DirectoryFlash, Flash, MemoryFlash
from phone.device.machine import State
from phone.device.phone import PhoneEvent, StateChanged, VirtualPhone
from phone.device.port import Backend
from phone.device.view import flash_view
from phone.errors import LabError, UsageError
from phone.net.faults import FaultyBackend, parse_fault
from phone.net.memory import MemoryBackend
from phone.pki import FreshKeys
from phone.vendor import manufacturing_cas

if TYPE_CHECKING:
    from phone.net.hostmap import HostMap

DEFAULT_MAC = "001122334455"


def now() -> datetime:
    """The wall clock: the only clock read of these commands (tests replace it)."""
    return datetime.now(UTC)


def default_lab_path() -> Path:
    """Where the embedded lab lives: ``$VPHONE_HOME`` or the XDG data folder."""
    home = os.environ.get("VPHONE_HOME")
    if home:
        return Path(home) / "default-lab"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "vphone" / "default-lab"


def ensure_default_lab(path: Path) -> bool:
    """Create the embedded default lab at ``path`` unless it exists; True if it was created."""
    if is_lab(path):
        return False
    init_lab(
        path,
        ClusterSpec(name="cluster1"),
        now=now(),
        keys=FreshKeys(),
        capf_trust=manufacturing_cas(),
    )
    # The demo phone is a configured device, so the first boot shows its own signed config
    # (other MACs still autoregister). As in a secured deployment its security profile enables
    # digest authentication (issue 6, item 40): the registrar challenges its REGISTER and the
    # phone answers with the credentials of its config (a random password per lab).
    with edit_lab(path) as lab:
        lab.cluster().add_device(
            Device(
                DEFAULT_MAC,
                digest_user=f"SEP{DEFAULT_MAC}",
                digest_password=os.urandom(9).hex(),
                digest_authentication=True,
            ),
            now=now(),
        )
    return True


def tftp_host(lab: Lab, target: str | None) -> str:
    """The TFTP host the phone's option 150 names: a cluster name or a host name."""
    if target is not None and lab.resolve(target) is not None:
        return target
    cluster = lab.cluster(target) if target is not None else lab.clusters[0]
    hosts = [h for h in cluster.tftp_hosts if lab.file_service(h) is not None]
    if not hosts:
        raise LabError(f"no TFTP node of cluster {cluster.name} is running")
    return hosts[0]


@contextmanager
def _flash(path: Path | None) -> Iterator[Flash]:
    yield DirectoryFlash(path) if path is not None else MemoryFlash()


def _line(event: PhoneEvent) -> str | None:
    if isinstance(event, StateChanged):
        return None
    where = f" {event.file}" if event.file else ""
    # 10 columns: the longest decision, "challenged" (a digest exchange, docs/sip.md).
    return f"  [{event.step:<8}] {event.decision:<10} {event.rule:<13}{where}\n      {event.reason}"


def _faulty(backend: Backend, args: argparse.Namespace) -> Backend:
    if args.fault or args.tvs_down:
        return FaultyBackend(backend, [parse_fault(f) for f in args.fault], set(args.tvs_down))
    return backend


def _watch(phone: VirtualPhone, args: argparse.Namespace, source: str) -> None:
    if args.json:
        return
    over = f", registers over {phone.protocol}" if phone.protocol != "SIP" else ""
    print(
        f"CP-{phone.model.name} SEP{phone.mac} boots from TFTP server {phone.tftp} ({source}){over}"
    )

    def show(event: PhoneEvent) -> None:
        line = _line(event)
        if line:
            print(line)

    phone.subscribe(show)


def _cluster_of_host(host: str) -> str | None:
    """The cluster of a host outside a lab (``--server`` boots): its domain's first label
    (``cucm1.new.lab`` -> ``new``), the way vphone labs name their nodes."""
    labels = host.split(".")
    return labels[1] if len(labels) > 2 else None


def _report(
    phone: VirtualPhone,
    state: State,
    args: argparse.Namespace,
    cluster_of: Callable[[str], str | None] = _cluster_of_host,
) -> int:
    registered = phone.registered_with is not None
    cluster = cluster_of(phone.registered_with) if phone.registered_with else None
    expected: str | None = args.expect_cluster
    # --expect-cluster: registered with another cluster (the old one, after a migration whose
    # ITL the phone refused) is a failure a script must see (issue 18, friction 3).
    met = None if expected is None else cluster == expected
    if args.json:
        document: dict[str, Any] = {
            "state": state.value,
            "registered_with": phone.registered_with,
            "registered_cluster": cluster,
            "expected_cluster": expected,
            "expectation_met": met,
            "status": phone.status,
            "trace": [t.as_dict() for t in phone.trace],
            "itl_hash": phone.itl_hash(),
            "load": phone.running_load,
        }
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        print("status messages:")
        for text in phone.status:
            print(f"  {text}")
        tail = f" with {phone.registered_with}" if registered else ""
        print(f"final state: {state.value}{tail}")
        if met is False:
            where = f"cluster {cluster}" if cluster else "no cluster"
            print(f"expected cluster {expected}, but the phone registered with {where}")
    return 0 if registered and met is not False else 1


def cmd_boot(args: argparse.Namespace) -> int:
    """``vphone boot``: against a lab in memory, or a server given by URL (``--server``)."""
    if args.lab_serve is not None:
        return _boot_lab_serve(args)
    if args.server is not None:
        return _boot_server(args)
    if args.host_map:
        raise UsageError("--host-map applies to --server URL boots only")
    lab_path: Path = args.lab if args.lab is not None else default_lab_path()
    if args.lab is None and ensure_default_lab(lab_path) and not args.json:
        print(f"created the embedded lab in {lab_path}")
    if not is_lab(lab_path):
        raise UsageError(
            f"{lab_path} is not a vphone lab folder (create one with `vphone lab init`)"
        )
    with edit_lab(lab_path) as lab, _flash(args.flash) as flash:
        clock = now
        lab.clock = clock
        host = tftp_host(lab, args.tftp)
        phone = VirtualPhone(
            mac=args.mac,
            model=args.model,
            backend=_faulty(MemoryBackend(lab, clock=clock), args),
            tftp=host,
            flash=flash,
            clock=clock,
            protocol=args.protocol,
        )
        phone.capf_string = args.capf_string  # typed on the keypad (docs/capf.md)
        _watch(phone, args, str(lab_path))
        state = phone.boot()

    def cluster_of(host: str) -> str | None:
        endpoint = lab.resolve(host)
        return endpoint.cluster.name if endpoint is not None else None

    return _report(phone, state, args, cluster_of)


def _boot_lab_serve(args: argparse.Namespace) -> int:
    """``vphone boot --lab-serve DIR``: ``--server`` with the TFTP URL and the host map that
    the ``vphone lab serve DIR`` running now wrote into the folder (``--tftp`` picks the
    cluster; ``--host-map`` entries still win)."""
    from phone.cli.serve_state import read_state  # noqa: PLC0415

    if args.server is not None or args.lab is not None:
        raise UsageError("--lab-serve DIR replaces --server and --lab: the folder names them")
    url, served = read_state(args.lab_serve, args.tftp)
    args.server, args.tftp = url, None
    return _boot_server(args, served)


def _boot_server(args: argparse.Namespace, served: HostMap | None = None) -> int:
    """``vphone boot --server URL``: real TFTP/HTTP servers, TVS over TLS, SIP (issue 5);
    ``served``: the host map of a ``lab serve`` (``--lab-serve``), under ``--host-map``."""
    # Sockets, TLS and tftpy are imported only when a boot uses them (`vphone --help` fast).
    from phone.net.hostmap import parse_host_maps  # noqa: PLC0415
    from phone.net.urls import open_target, parse_server_url, restrict_transports  # noqa: PLC0415

    if args.lab is not None or args.tftp is not None:
        raise UsageError("--server URL replaces --lab and --tftp: the URL names the TFTP server")
    url = parse_server_url(args.server)
    host_map = parse_host_maps(args.host_map)
    if served is not None:
        host_map = served.merged(host_map)
    target = open_target(url, host_map, timeout=args.timeout)
    try:
        with _flash(args.flash) as flash:
            phone = VirtualPhone(
                mac=args.mac,
                model=args.model,
                backend=_faulty(target.backend, args),
                tftp=target.tftp,
                flash=flash,
                clock=now,
                protocol=args.protocol,
            )
            # tftp:// fetches over TFTP only, http:// over HTTP only (item 4 otherwise).
            phone.model = restrict_transports(phone.model, target.transport)
            phone.capf_string = args.capf_string
            _watch(phone, args, target.description)
            state = phone.boot()
    finally:
        target.close()
    return _report(phone, state, args)


def _flash_dir(args: argparse.Namespace) -> DirectoryFlash:
    path: Path = args.flash
    if not path.is_dir():
        raise UsageError(f"{path} is not a phone flash folder")
    return DirectoryFlash(path)


def cmd_show(args: argparse.Namespace) -> int:
    """``vphone phone show``."""
    view = flash_view(_flash_dir(args))
    if args.json:
        json.dump(view, sys.stdout, indent=2)
        print()
        return 0
    print(f"phone SEP{view['mac']}  model {view['model']}  load {view['load']}")
    for kind in ("ctl", "itl"):
        tl = view[kind]
        if tl is None:
            print(f"{kind.upper()}: none")
            continue
        signer = tl["signer"] or {}
        print(
            f"{kind.upper()}: {tl.get('filename')}  SHA-1 {tl['sha1']}  MD5 {tl['md5']}  "
            f"signer {signer.get('name')} ({signer.get('serial')})"
        )
        for record in tl["records"]:
            print(
                f"  {record['index']:>2} {record['role']!s:<10} {record['subject']}  "
                f"serial {record['serial']}"
            )
    for kind in ("mic", "lsc"):
        cert = view[kind]
        print(
            f"{kind.upper()}: "
            + (
                "none"
                if cert is None
                else f"{cert['subject']} (issuer {cert['issuer']}, serial {cert['serial']})"
            )
        )
    return 0


def cmd_erase_trust(args: argparse.Namespace) -> int:
    """``vphone phone erase-trust`` (item 46)."""
    flash = _flash_dir(args)
    for name in ("CTLFile.tlv", "ITLFile.tlv"):
        flash.delete(name)
    print("Erasing CTL and ITL files")
    return 0


def cmd_factory_reset(args: argparse.Namespace) -> int:
    """``vphone phone factory-reset`` (item 46): keep only the image and the MIC."""
    flash = _flash_dir(args)
    keep = {"image.loads", "mic.pem", "mic.key", "settings.json"}
    for name in flash.names():
        if name not in keep:
            flash.delete(name)
    print("factory reset: trust lists, configuration and LSC erased")
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"{value} seconds is out of range (0 to 600)")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``boot`` and the ``phone`` group."""
    boot = sub.add_parser(
        "boot",
        help="boot one virtual phone and show every trust decision",
        description="Boot one virtual phone against the embedded lab (or --lab DIR) and print "
        "every trust decision and why. Exit 0 when the phone registered, 1 when it did not.",
    )
    boot.add_argument("--lab", type=Path, metavar="DIR", help="a lab folder (default: embedded)")
    boot.add_argument("--tftp", metavar="CLUSTER", help="cluster (or host) of the TFTP option")
    boot.add_argument("--mac", default=DEFAULT_MAC, help=f"MAC address (default {DEFAULT_MAC})")
    boot.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="phone model")
    boot.add_argument(
        "--protocol",
        type=str.lower,
        choices=("sip", "sccp"),
        help="register over SIP or SCCP (default: the model's; SIP where it runs both)",
    )
    boot.add_argument("--flash", type=Path, metavar="DIR", help="keep the phone's flash here")
    boot.add_argument("--json", action="store_true", help="print JSON instead of the trace")
    boot.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND:PATTERN",
        help="break files on the path: drop, timeout, truncate or tamper, e.g. "
        "tamper:SEP*.cnf.xml.sgn (repeatable)",
    )
    boot.add_argument(
        "--tvs-down", action="append", default=[], metavar="HOST", help="a TVS that does not answer"
    )
    boot.add_argument(
        "--capf-string",
        metavar="DIGITS",
        help="the CAPF authentication string, as typed on the phone for an operation set with "
        "`vphone lab capf --auth string:DIGITS`",
    )
    boot.add_argument(
        "--server",
        metavar="URL",
        help="boot over the network instead of a lab in memory: tftp://HOST[:PORT], "
        "http://HOST[:PORT] (port 6970 files) or dir:PATH (files pulled from a cluster, offline)",
    )
    boot.add_argument(
        "--lab-serve",
        type=Path,
        metavar="DIR",
        help="boot against the `vphone lab serve DIR` running now: its TFTP address and host map "
        "come from DIR/lab-serve.json (--tftp CLUSTER picks the cluster)",
    )
    boot.add_argument(
        "--host-map",
        action="append",
        default=[],
        metavar="NAME=IP[:PORT]|FILE",
        help="where config host names are reached, e.g. tvs1.lab=127.0.0.1:2445, or the file "
        "`vphone lab serve --host-map-out` wrote (repeatable; see docs/networks.md)",
    )
    boot.add_argument(
        "--timeout",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="with --server: seconds per TFTP packet, HTTP read, TVS and SIP exchange (default 2)",
    )
    boot.add_argument(
        "--expect-cluster",
        metavar="NAME",
        help="exit 1 unless the phone registered with this cluster (a phone that refused the "
        "new cluster's ITL and stayed with the old one fails); JSON: registered_cluster, "
        "expectation_met",
    )
    boot.set_defaults(handler=cmd_boot)

    phone = sub.add_parser("phone", help="a virtual phone's flash: show, erase trust lists")
    commands = phone.add_subparsers(dest="phone_command", metavar="COMMAND")
    commands.required = True
    show = commands.add_parser("show", help="Security Settings: trust lists with their hashes")
    show.add_argument("--flash", type=Path, metavar="DIR", required=True)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    erase = commands.add_parser("erase-trust", help="erase the CTL and ITL (item 46)")
    erase.add_argument("--flash", type=Path, metavar="DIR", required=True)
    erase.set_defaults(handler=cmd_erase_trust)
    reset = commands.add_parser("factory-reset", help="erase all but the image and the MIC")
    reset.add_argument("--flash", type=Path, metavar="DIR", required=True)
    reset.set_defaults(handler=cmd_factory_reset)

"""``vphone boot`` and ``vphone phone show|erase-trust|factory-reset``.

``boot`` is the main job: one virtual phone against the embedded lab (created on first use in
the user's data folder) or a lab folder, printing every decision as it happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phone.cluster.model import ClusterSpec, Device, Lab
from phone.cluster.store import edit_lab, init_lab, is_lab
from phone.device.flash import DirectoryFlash, Flash, MemoryFlash
from phone.device.models import DEFAULT_MODEL, MODELS
from phone.device.phone import PhoneEvent, StateChanged, VirtualPhone
from phone.device.view import flash_view
from phone.errors import LabError, UsageError
from phone.net.backend import Backend
from phone.net.faults import FaultyBackend, parse_fault
from phone.net.memory import MemoryBackend
from phone.pki import FreshKeys
from phone.vendor import manufacturing_cas

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
    # (other MACs still autoregister).
    with edit_lab(path) as lab:
        lab.cluster().add_device(Device(DEFAULT_MAC), now=now())
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
    return f"  [{event.step:<8}] {event.decision:<9} {event.rule:<13}{where}\n      {event.reason}"


def cmd_boot(args: argparse.Namespace) -> int:
    """``vphone boot``."""
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
        backend: Backend = MemoryBackend(lab, clock=clock)
        if args.fault or args.tvs_down:
            backend = FaultyBackend(
                backend, [parse_fault(f) for f in args.fault], set(args.tvs_down)
            )
        phone = VirtualPhone(
            mac=args.mac,
            model=args.model,
            backend=backend,
            tftp=host,
            flash=flash,
            clock=clock,
        )
        if not args.json:
            print(
                f"CP-{phone.model.name} SEP{phone.mac} boots from TFTP server {host} ({lab_path})"
            )

            def show(event: PhoneEvent) -> None:
                line = _line(event)
                if line:
                    print(line)

            phone.subscribe(show)
        state = phone.boot()
    registered = phone.registered_with is not None
    if args.json:
        document: dict[str, Any] = {
            "state": state.value,
            "registered_with": phone.registered_with,
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
    return 0 if registered else 1


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

"""``vphone lab`` certificate and ITL operations: ``regenerate``, ``export-certs``,
``import-certs`` (Bulk Certificate Management), ``itl-reset`` (item 29) and ``itl-status``
(the ITL File Status report, item 30).

The operations themselves are :mod:`phone.cluster.certops`; this module reads the PKCS#12
files and password, asks before an ITLRecovery regeneration, and writes the exported bundles.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from phone.cli import lab_edge
from phone.cli.lab_edge import chosen_cluster, emit, emit_json, iso, mutate
from phone.cluster import certops
from phone.cluster.cluster import Cluster
from phone.cluster.store import load_lab
from phone.errors import UsageError
from phone.formats.certfields import cucm_name
from phone.pki import (
    CertKind,
    cert_to_pem,
    identity_from_pkcs12,
    private_folder,
    write_private_file,
)

PASSWORD_ENV = "VPHONE_PKCS12_PASSWORD"  # noqa: S105 - the variable's name, not a password


def _password(args: argparse.Namespace) -> bytes:
    text: str | None = args.password or os.environ.get(PASSWORD_ENV)
    if not text:
        raise UsageError(f"give the PKCS#12 password with --password or ${PASSWORD_ENV}")
    return text.encode()


def _confirm(warning: str, yes: bool) -> None:
    print(warning, file=sys.stderr)
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("re-run with --yes to regenerate after reading the warning")
    answer = input("Proceed? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("not regenerated")


def cmd_cert(args: argparse.Namespace) -> int:
    """``lab cert CERT``: one certificate of the lab as PEM (never its key).

    What an independent peer needs to trust a served lab: tvsc's ``-T`` (the TVS node's
    certificate), capfc's ``-A`` (CAPF), a client's trust anchor for the CallManager.
    """
    lab = load_lab(args.dir)
    cluster = chosen_cluster(lab, args)
    kind = CertKind.from_name(args.cert)
    identity = cluster.identity(kind, args.node)
    pem = cert_to_pem(identity.certificate)
    if args.output is None:
        sys.stdout.write(pem.decode())
    else:
        args.output.write_bytes(pem)
        subject = cucm_name(identity.certificate.subject)
        emit(f"{cluster.name}: {kind} certificate ({subject}) written to {args.output}")
    return 0


def cmd_regenerate(args: argparse.Namespace) -> int:
    """``lab regenerate CERT``."""
    kind = CertKind.from_name(args.cert)
    if kind is CertKind.ITLRECOVERY:
        _confirm(certops.ITLRECOVERY_WARNING, args.yes)

    def change(cluster: Cluster, moment: datetime) -> str:
        # lab_edge.key_source, looked up at the call: tests replace it there.
        keys = lab_edge.key_source()
        result = certops.regenerate(cluster, kind, now=moment, keys=keys, host=args.node)
        return (
            f"{cluster.name}: {kind} certificate of {result.host} regenerated, serial "
            f"{result.new.serial_hex} (was {result.old.serial_hex})"
        )

    return mutate(args, change)


def cmd_export(args: argparse.Namespace) -> int:
    """``lab export-certs``: write ``TO/<cluster>/*.p12``."""
    lab = load_lab(args.dir)
    # Without --cluster, every cluster, as the scenario step exports (issue 18 item 3).
    clusters = [chosen_cluster(lab, args)] if args.cluster else list(lab.clusters)
    password = _password(args)
    exported: list[dict[str, Any]] = []
    for cluster in clusters:
        files = certops.export_certificates(cluster, password=password)
        folder: Path = private_folder(args.to / cluster.name)  # bundles of private keys
        for name, data in files.items():
            write_private_file(folder / name, data)
        exported.append({"cluster": cluster.name, "files": sorted(files), "folder": str(folder)})
    if getattr(args, "json", False):
        emit_json({"exported": exported})
        return 0
    for item in exported:
        emit(f"{item['cluster']}: exported {', '.join(item['files'])} to {item['folder']}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``lab import-certs``: import every other cluster's bundle found in ``FROM``."""
    source: Path = args.source
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder of exported certificates")
    bundles: dict[str, dict[str, bytes]] = {}
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = {
            name: (folder / name).read_bytes()
            for name in certops.BULK_FILES.values()
            if (folder / name).is_file()
        }
        if files:
            bundles[folder.name] = files
    password = _password(args)

    def change(cluster: Cluster, moment: datetime) -> str:
        if not any(name != cluster.name for name in bundles):
            raise UsageError(f"{source} holds no other cluster's export (run export-certs first)")
        result = certops.import_certificates(cluster, bundles, password=password, now=moment)
        lines = [f"{cluster.name}: {len(result.added)} trust-store entries added"]
        lines += [f"  + {store.value}: {subject}  ({src})" for store, subject, src in result.added]
        return "\n".join(lines)

    return mutate(args, change)


def cmd_itl_reset(args: argparse.Namespace) -> int:
    """``lab itl-reset localkey|remotekey``."""
    remote = None
    if args.mode == "remotekey":
        if args.pkcs12 is None:
            raise UsageError("itl-reset remotekey needs --pkcs12 FILE with the remote key")
        remote = identity_from_pkcs12(Path(args.pkcs12).read_bytes(), _password(args))

    def change(cluster: Cluster, moment: datetime) -> str:
        certops.itl_reset(cluster, args.mode, now=moment, remote=remote)
        return f"{cluster.name}: ITL re-signed on {', '.join(cluster.tftp_hosts)}"

    return mutate(args, change)


def cmd_itl_status(args: argparse.Namespace) -> int:
    """``lab itl-status``: the ITL File Status report (item 30)."""
    lab = load_lab(args.dir)
    cluster = chosen_cluster(lab, args)
    db = cluster.hashes
    mismatches = db.mismatches()
    report = {
        "cluster": cluster.name,
        "supported": cluster.profile.itl_hash_report,
        "tftp": {h: {"hash": r.hash, "updated_at": r.updated_at} for h, r in db.tftp.items()},
        "reported": len(db.devices),
        "mismatches": [
            {
                "device": f"SEP{m.device.mac}",
                "tftp_host": m.device.tftp_host,
                "reported_hash": m.device.hash,
                "timestamp": m.device.timestamp,
                "expected_hash": m.expected,
            }
            for m in mismatches
        ],
        # Every reporting phone, matching or not (issue 6: a phone that registered over
        # sockets shows up here with its hash and whether it matches).
        "devices": [
            {
                "device": f"SEP{row.mac}",
                "tftp_host": row.tftp_host,
                "reported_hash": row.hash,
                "timestamp": row.timestamp,
                "matches": db.matches(row),
            }
            for row in (db.devices[mac] for mac in sorted(db.devices))
        ],
    }
    if args.json:
        emit(json.dumps(report, indent=2))
        return 0
    if not cluster.profile.itl_hash_report:
        emit(
            f"{cluster.name}: release {cluster.profile.name} has no ITL File Status "
            "(phones report their ITL hash from 14.x on)"
        )
    for host, row in db.tftp.items():
        emit(f"{host}: ITL hash {row.hash}")
    emit(
        f"{cluster.name}: {len(mismatches)} of {len(db.devices)} reporting phones have an ITL "
        "that does not match"
    )
    for m in mismatches:
        stamp = iso(datetime.fromtimestamp(m.device.timestamp, UTC))
        expected = m.expected or "(no ITL from that host in this cluster)"
        emit(
            f"  SEP{m.device.mac}  from {m.device.tftp_host}  reported {m.device.hash}  "
            f"at {stamp}  expected {expected}"
        )
    matching = [db.devices[mac] for mac in sorted(db.devices) if db.matches(db.devices[mac])]
    if matching:
        emit(f"{cluster.name}: {len(matching)} reporting phones match")
    for entry in matching:
        stamp = iso(datetime.fromtimestamp(entry.timestamp, UTC))
        emit(
            f"  SEP{entry.mac}  from {entry.tftp_host}  reported {entry.hash}  at {stamp}  matches"
        )
    return 0

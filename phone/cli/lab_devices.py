"""``vphone lab`` phone commands: ``add-device``, ``remove-device``, ``capf`` (the CAPF
certificate operation a phone performs at its next boot, docs/capf.md), ``register`` (with the
ITL hash a 14.x phone reports, item 30) and ``unregister``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from phone.cli.lab_edge import mutate
from phone.cluster import capf
from phone.cluster.cluster import Cluster
from phone.cluster.records import Device, SecurityMode
from phone.errors import LabError, UsageError
from phone.mac import normalize_mac
from phone.pki import cert_from_pem


@dataclass(frozen=True)
class _ItlReport:
    """The ITL report of ``lab register --itl-hash`` (the phone's SIP alarm, item 30)."""

    tftp_host: str
    itl_hash: str
    timestamp: int


def cmd_add_device(args: argparse.Namespace) -> int:
    """``lab add-device MAC``."""
    if args.digest_password is not None and args.digest_user is None:
        raise UsageError("--digest-password needs --digest-user")
    certificate = None
    if args.certificate is not None:
        certificate = cert_from_pem(Path(args.certificate).read_bytes())
    device = Device(
        mac=normalize_mac(args.mac),
        model=args.model.upper().removeprefix("CP-"),
        security_mode=SecurityMode.parse(args.security_mode),
        digest_user=args.digest_user,
        digest_password=args.digest_password,
        exclude_digest_credentials=args.exclude_digest_credentials,
        digest_authentication=args.digest_auth,
        load=args.load,
        encrypt_config=args.encrypt_config,
        certificate=certificate,
    )

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_device(device, now=moment, replace=args.replace)
        notes = ""
        if args.encrypt_config and certificate is None:
            notes = " (no LSC/MIC known yet: .enc.sgn is not served until one is set)"
        return f"{cluster.name}: device {device.name} added{notes}"

    return mutate(args, change)


def cmd_remove_device(args: argparse.Namespace) -> int:
    """``lab remove-device MAC``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_device(args.mac, now=moment)
        return f"{cluster.name}: device SEP{normalize_mac(args.mac)} removed"

    return mutate(args, change)


def cmd_capf(args: argparse.Namespace) -> int:
    """``lab capf MAC``: set the certificate operation the phone performs at its next boot."""
    operation: str = args.operation

    def change(cluster: Cluster, moment: datetime) -> str:
        device = cluster.device(args.mac)
        if device is None:
            raise LabError(f"cluster {cluster.name} has no device {args.mac!r}")
        if operation == "none":
            cleared = capf.clear_pending(cluster, args.mac, now=moment)
            return f"{device.name}: " + (
                "pending CAPF operation cancelled" if cleared else "no CAPF operation was pending"
            )
        if args.auth is None:
            raise UsageError("give the authentication mode: --auth null|string:SECRET|mic|lsc")
        auth, secret = capf.CapfAuth.parse(args.auth)
        pending = capf.set_pending(
            cluster,
            args.mac,
            capf.CapfOperation(operation),
            auth,
            now=moment,
            secret=secret,
            key_type=capf.CapfKeyType.parse(args.key_type),
        )
        return (
            f"{device.name}: {pending.describe()} pending; the phone performs it at its next boot"
        )

    return mutate(args, change)


def cmd_register(args: argparse.Namespace) -> int:
    """``lab register MAC``: a phone registers (and reports its ITL hash on 14.x)."""

    def change(cluster: Cluster, moment: datetime) -> str:
        report = None
        if args.itl_hash is not None:
            host = args.tftp_host or cluster.tftp_hosts[0]
            report = _ItlReport(host, args.itl_hash.lower(), int(moment.timestamp()))
        result = cluster.register(args.mac, now=moment, model=args.model, itl_report=report)
        if not result.accepted:
            raise LabError(result.reason)
        itl = f", ITL report {result.itl.value}" if result.itl is not None else ""
        return f"{cluster.name}: SEP{normalize_mac(args.mac)} registered{itl}"

    return mutate(args, change)


def cmd_unregister(args: argparse.Namespace) -> int:
    """``lab unregister MAC``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        was = cluster.unregister(args.mac, now=moment)
        state = "unregistered" if was else "was not registered"
        return f"{cluster.name}: SEP{normalize_mac(args.mac)} {state}"

    return mutate(args, change)

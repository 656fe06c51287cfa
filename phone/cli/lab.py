"""``vphone lab ...``: create and operate an emulated Unified CM lab folder.

The edge of the cluster core: this module reads the clock (``datetime.now(UTC)``), draws
randomness (``os.urandom``), generates fresh RSA keys and reads/writes files; everything it
calls in :mod:`phone.cluster` is pure, except :mod:`phone.cluster.store`. Commands that change
the lab print the service-log lines their change produced (for example the TFTP node's
"Tftp Itl hash not changed").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from phone.cli import serve
from phone.cluster import capf, certops
from phone.cluster.cluster import Cluster
from phone.cluster.files import ClientInfo
from phone.cluster.itl import itl_hash
from phone.cluster.lab import Lab
from phone.cluster.profiles import DEFAULT_PROFILE, PROFILES
from phone.cluster.records import PARAMETERS, ClusterSpec, Device, SecurityMode, TrustStore
from phone.cluster.store import edit_lab, init_lab, load_lab
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    TrunkConfig,
    TrunkSecurityProfile,
    short_names,
)
from phone.errors import FileNotFoundOnServer, LabError, UsageError
from phone.formats.certfields import serial_bytes
from phone.formats.trustlist import parse_trust_list
from phone.mac import normalize_mac
from phone.pki import (
    CertKind,
    FreshKeys,
    KeySource,
    cert_from_pem,
    identity_from_pkcs12,
    write_private_file,
)
from phone.vendor import manufacturing_cas

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
PASSWORD_ENV = "VPHONE_PKCS12_PASSWORD"  # noqa: S105 - the variable's name, not a password
APP_PASSWORD_ENV = "VPHONE_APP_PASSWORD"  # noqa: S105 - the variable's name, not a password
REALM_PASSWORD_ENV = "VPHONE_REALM_PASSWORD"  # noqa: S105 - the variable's name, not a password


# --- the edge: clock, keys, randomness (tests replace these) ---------------------------------


def now() -> datetime:
    """The current time: the only clock read of the lab commands."""
    return datetime.now(UTC)


def key_source() -> KeySource:
    """Where new RSA keys come from (tests hand in a pool)."""
    return FreshKeys()


def capf_trust_seed() -> tuple[x509.Certificate, ...]:
    """The manufacturing CAs a new cluster's CAPF-trust store starts with."""
    return manufacturing_cas()


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ItlReport:
    """The ITL report of ``lab register --itl-hash`` (the phone's SIP alarm, item 30)."""

    tftp_host: str
    itl_hash: str
    timestamp: int


def _out(text: str = "") -> None:
    print(text)


def _cluster(lab: Lab, args: argparse.Namespace) -> Cluster:
    name: str | None = args.cluster
    return lab.cluster(name)


def _print_log(cluster: Cluster, since: int) -> None:
    for entry in cluster.log_since(since):
        _out(f"  {entry}")


def _mutate(args: argparse.Namespace, change: Callable[[Cluster, datetime], str | None]) -> int:
    """Lock, load, change one cluster, save; print the change's summary and log lines."""
    path: Path = args.dir
    with edit_lab(path) as lab:
        cluster = _cluster(lab, args)
        since = cluster.next_log_seq
        summary = change(cluster, now())
    if summary:
        _out(summary)
    _print_log(cluster, since)
    return 0


def _password(args: argparse.Namespace) -> bytes:
    text: str | None = args.password or os.environ.get(PASSWORD_ENV)
    if not text:
        raise UsageError(f"give the PKCS#12 password with --password or ${PASSWORD_ENV}")
    return text.encode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_info(kind: str, certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": certificate.subject.rfc4514_string(),
        "serial": serial_bytes(certificate.serial_number).hex(),
        "not_after": _iso(certificate.not_valid_after_utc),
        "sha1": certificate.fingerprint(hashes.SHA1()).hex(),
    }


def _file_info(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    trust_list = parse_trust_list(data)
    return {
        "sha1": itl_hash(data),
        "md5": hashlib.md5(data).hexdigest(),
        "size": len(data),
        "certificates": trust_list.certificate_count(),
        "records": [r.role_label for r in trust_list.records],
        "signer": trust_list.header.signer_name,
        "timestamp": trust_list.header.timestamp,
    }


def cluster_report(cluster: Cluster) -> dict[str, Any]:
    """Everything ``vphone lab show`` prints about a cluster, as JSON-ready data."""
    params = cluster.parameters
    itl: dict[str, Any] = {}
    for host in cluster.tftp_hosts:
        info = _file_info(cluster.stored_itl(host))
        if info is not None:
            info["served"] = cluster.itl_file(host) is not None
            info["problem"] = cluster.itl_problem(host)
        itl[host] = info
    reset = cluster.state.itl_reset
    return {
        "name": cluster.name,
        "release": cluster.profile.name,
        "mode": "mixed" if cluster.mixed_mode else "non-secure",
        "nodes": [
            {
                "hostname": n.hostname,
                "ip": n.ip,
                "services": list(n.services),
                "running": n.running,
                "certificates": [
                    _cert_info("CallManager", n.callmanager.certificate),
                    _cert_info("TVS", n.tvs.certificate),
                    _cert_info("Tomcat", n.tomcat.certificate),
                ],
            }
            for n in cluster.nodes
        ],
        "cluster_certificates": [
            _cert_info("ITLRecovery", cluster.itlrecovery.certificate),
            _cert_info("CAPF", cluster.capf.certificate),
        ],
        "parameters": {name: getattr(params, info.field) for name, info in PARAMETERS.items()},
        "itl": itl,
        "itl_reset": None if reset is None else {"mode": reset.mode, "hosts": sorted(reset.hosts)},
        "ctl": _file_info(cluster.ctl_file),
        "trust_stores": {
            store.value: [
                {
                    "subject": e.certificate.subject.rfc4514_string(),
                    "serial": serial_bytes(e.certificate.serial_number).hex(),
                    "source": e.source,
                }
                for e in cluster.trust(store)
            ]
            for store in TrustStore
        },
        "devices": [
            {
                "name": d.name,
                "model": d.model,
                "security_mode": d.security_mode.label,
                "digest_user": d.digest_user,
                "load": d.load,
                "encrypt_config": d.encrypt_config,
                "certificate": None
                if d.certificate is None
                else serial_bytes(d.certificate.serial_number).hex(),
                "autoregistered": d.autoregistered,
                "registered": d.mac in cluster.registrations,
                "capf_pending": None if d.capf is None else d.capf.describe(),
                "capf_last": None if d.capf_result is None else d.capf_result.describe(),
                "capf_certificates": []
                if d.capf_result is None
                else list(d.capf_result.certificates),
            }
            for d in sorted(cluster.devices.values(), key=lambda d: d.mac)
        ],
        **sip_report(cluster),
    }


def sip_report(cluster: Cluster) -> dict[str, Any]:
    """The SIP trunk side of ``vphone lab show`` (items 43-44), JSON-ready.

    Never a password or a digest hash: an application user shows its realm and whether that
    is still the Cluster ID (HA1 includes the realm, so changing the Cluster ID invalidates
    it); a SIP realm shows its user only.
    """
    cluster_id = cluster.parameters.cluster_id
    return {
        "trunk_profiles": [
            {
                "name": p.name,
                "allowed": short_names(p.allowed),
                "digest": p.digest,
                "application_authorization": p.application_authorization,
                "challenge": p.challenge,
                "trunks": list(cluster.trunks_using(p.name)),
            }
            for p in cluster.trunk_profiles.values()
        ],
        "trunks": [
            {"name": t.name, "addresses": sorted(t.addresses), "profile": t.profile}
            for t in cluster.trunks.values()
        ],
        "application_users": [
            {
                "name": u.name,
                "realm": u.realm,
                "credentials_valid": u.realm == cluster_id,
                "allowed": short_names(u.allowed),
            }
            for u in cluster.application_users.values()
        ],
        "sip_realms": [{"realm": r.realm, "user": r.user} for r in cluster.sip_realms.values()],
    }


def _profile_line(profile: dict[str, Any]) -> str:
    allowed = ", ".join(profile["allowed"]) or "none"
    digest = f"digest {profile['challenge']}" if profile["digest"] else "no digest"
    app = ", application-level authorization" if profile["application_authorization"] else ""
    used = f"  (trunks: {', '.join(profile['trunks'])})" if profile["trunks"] else ""
    return f"{profile['name']}  allows {allowed}; {digest}{app}{used}"


def _trunk_line(trunk: dict[str, Any]) -> str:
    return f"{trunk['name']}  {', '.join(trunk['addresses'])}  profile {trunk['profile']}"


def _user_line(user: dict[str, Any]) -> str:
    allowed = ", ".join(user["allowed"]) or "none"
    stale = (
        "" if user["credentials_valid"] else "  STALE: cluster-id changed, set the password again"
    )
    return f"{user['name']}  realm {user['realm']}  allows {allowed}{stale}"


def _realm_line(realm: dict[str, Any]) -> str:
    return f"{realm['realm']}  user {realm['user']}  (password stored, not shown)"


_SIP_SECTIONS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("trunk_profiles", "SIP trunk security profiles", _profile_line),
    ("trunks", "SIP trunks", _trunk_line),
    ("application_users", "application users", _user_line),
    ("sip_realms", "SIP realms (the cluster as UAC)", _realm_line),
)


def _print_report(report: dict[str, Any]) -> None:
    _out(f"cluster {report['name']}: release {report['release']}, {report['mode']} mode")
    _out("  nodes:")
    for node in report["nodes"]:
        state = "running" if node["running"] else "STOPPED"
        _out(f"    {node['hostname']}  {node['ip']}  {' '.join(node['services'])}  {state}")
        for cert in node["certificates"]:
            _out(
                f"      {cert['kind']:<12} {cert['subject']}  serial {cert['serial']}  "
                f"expires {cert['not_after']}"
            )
    _out("  cluster certificates (publisher):")
    for cert in report["cluster_certificates"]:
        _out(
            f"      {cert['kind']:<12} {cert['subject']}  serial {cert['serial']}  "
            f"expires {cert['not_after']}"
        )
    _out("  parameters:")
    for name, value in report["parameters"].items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        _out(f"    {name} = {text}  ({PARAMETERS[name].kind})")
    _out("  ITL files:")
    for host, info in report["itl"].items():
        if info is None:
            _out(f"    {host}: none (TFTP not active)")
            continue
        served = "" if info["served"] else f"  NOT SERVED: {info['problem']}"
        _out(
            f"    {host}: sha1 {info['sha1']}  md5 {info['md5']}  {info['size']} bytes, "
            f"{info['certificates']} certificates, records {', '.join(info['records'])}, "
            f"signed by {info['signer']}{served}"
        )
    if report["itl_reset"] is not None:
        reset = report["itl_reset"]
        _out(f"    itl reset {reset['mode']} active on: {', '.join(reset['hosts'])}")
    ctl = report["ctl"]
    if ctl is None:
        _out("  CTL file: none (non-secure mode: CTLFile.tlv is not found)")
    else:
        _out(
            f"  CTL file: sha1 {ctl['sha1']}  md5 {ctl['md5']}  {ctl['size']} bytes, records "
            f"{', '.join(ctl['records'])}, signed by {ctl['signer']}"
        )
    _out("  trust stores:")
    for store, entries in report["trust_stores"].items():
        _out(f"    {store}: {len(entries)}")
        for entry in entries:
            _out(f"      {entry['subject']}  serial {entry['serial']}  ({entry['source']})")
    _out(f"  devices: {len(report['devices'])}")
    for device in report["devices"]:
        flags = [device["security_mode"]]
        if device["encrypt_config"]:
            flags.append("encrypted config")
        if device["autoregistered"]:
            flags.append("auto-registered")
        if device["registered"]:
            flags.append("registered")
        _out(f"    {device['name']}  {device['model']}  {', '.join(flags)}")
        if device.get("capf_pending"):
            _out(f"      CAPF pending: {device['capf_pending']}")
        if device.get("capf_last"):
            _out(f"      CAPF last: {device['capf_last']}")
        for line in device.get("capf_certificates") or ():
            _out(f"        {line}")
    for key, title, line in _SIP_SECTIONS:
        if report.get(key):
            _out(f"  {title}: {len(report[key])}")
            for entry in report[key]:
                _out(f"    {line(entry)}")


# --- commands --------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    """``lab init``."""
    path: Path = args.dir
    name: str | None = args.cluster
    if name is None:
        existing = (
            {c.name for c in load_lab(path).clusters} if (path / "lab.json").exists() else set()
        )
        name = next(f"cluster{i}" for i in range(1, 1000) if f"cluster{i}" not in existing)
    spec = ClusterSpec(
        name=name,
        profile=args.version,
        tvs_nodes=args.tvs_nodes,
        tftp_nodes=args.tftp_nodes,
        mixed_mode=args.mixed_mode,
        key_size=args.key_size,
        itlrecovery_years=args.itlrecovery_years,
    )
    lab = init_lab(path, spec, now=now(), keys=key_source(), capf_trust=capf_trust_seed())
    cluster = lab.cluster(name)
    _out(f"cluster {cluster.name} (release {cluster.profile.name}) installed in {path}")
    for node in cluster.nodes:
        _out(f"  {node.hostname}  {node.ip}  {' '.join(node.services)}")
    _print_log(cluster, 0)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``lab show``."""
    lab = load_lab(args.dir)
    clusters = [lab.cluster(args.cluster)] if args.cluster else list(lab.clusters)
    reports = [cluster_report(c) for c in clusters]
    if args.json:
        _out(json.dumps({"clusters": reports}, indent=2))
    else:
        for report in reports:
            _print_report(report)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    """``lab get``: exactly what the node's TFTP service sends for a name."""
    lab = load_lab(args.dir)
    cluster = _cluster(lab, args)
    host: str | None = args.node
    if host is None:
        running = [h for h in cluster.tftp_hosts if cluster.node(h).running]
        if not running:
            raise LabError(f"no TFTP node of cluster {cluster.name} is running")
        host = running[0]
    node = cluster.node(host)
    service = lab.file_service(node.hostname)
    if service is None:
        raise LabError(f"{node.hostname} serves no files (no TFTP service, or stopped)")
    client = ClientInfo("127.0.0.1", model=args.model)
    data = service.get(args.filename, client)
    if data is None:
        raise FileNotFoundOnServer(args.filename)
    out: Path | None = args.output
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        out.write_bytes(data)
        print(f"{len(data)} bytes written to {out}", file=sys.stderr)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    """``lab set PARAM VALUE``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.set_parameter(args.param, args.value, now=moment)
        return f"{cluster.name}: {args.param} = {args.value}"

    return _mutate(args, change)


def cmd_set_mode(args: argparse.Namespace) -> int:
    """``lab set-mode mixed|non-secure``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.set_mixed_mode(args.mode == "mixed", now=moment)
        return f"{cluster.name}: {args.mode} mode"

    return _mutate(args, change)


def cmd_ctl_update(args: argparse.Namespace) -> int:
    """``lab ctl-update``."""

    def change(cluster: Cluster, moment: datetime) -> None:
        cluster.update_ctl(now=moment)

    return _mutate(args, change)


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

    return _mutate(args, change)


def cmd_remove_device(args: argparse.Namespace) -> int:
    """``lab remove-device MAC``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_device(args.mac, now=moment)
        return f"{cluster.name}: device SEP{normalize_mac(args.mac)} removed"

    return _mutate(args, change)


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

    return _mutate(args, change)


def _confirm(warning: str, yes: bool) -> None:
    print(warning, file=sys.stderr)
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("re-run with --yes to regenerate after reading the warning")
    answer = input("Proceed? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("not regenerated")


def cmd_regenerate(args: argparse.Namespace) -> int:
    """``lab regenerate CERT``."""
    kind = CertKind.from_name(args.cert)
    if kind is CertKind.ITLRECOVERY:
        _confirm(certops.ITLRECOVERY_WARNING, args.yes)

    def change(cluster: Cluster, moment: datetime) -> str:
        result = certops.regenerate(cluster, kind, now=moment, keys=key_source(), host=args.node)
        return (
            f"{cluster.name}: {kind} certificate of {result.host} regenerated, serial "
            f"{result.new.serial_hex} (was {result.old.serial_hex})"
        )

    return _mutate(args, change)


def cmd_export(args: argparse.Namespace) -> int:
    """``lab export-certs``: write ``TO/<cluster>/*.p12``."""
    lab = load_lab(args.dir)
    cluster = _cluster(lab, args)
    files = certops.export_certificates(cluster, password=_password(args))
    folder: Path = args.to / cluster.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write_private_file(folder / name, data)
    _out(f"{cluster.name}: exported {', '.join(sorted(files))} to {folder}")
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

    return _mutate(args, change)


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

    return _mutate(args, change)


def cmd_itl_status(args: argparse.Namespace) -> int:
    """``lab itl-status``: the ITL File Status report (item 30)."""
    lab = load_lab(args.dir)
    cluster = _cluster(lab, args)
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
        _out(json.dumps(report, indent=2))
        return 0
    if not cluster.profile.itl_hash_report:
        _out(
            f"{cluster.name}: release {cluster.profile.name} has no ITL File Status "
            "(phones report their ITL hash from 14.x on)"
        )
    for host, row in db.tftp.items():
        _out(f"{host}: ITL hash {row.hash}")
    _out(
        f"{cluster.name}: {len(mismatches)} of {len(db.devices)} reporting phones have an ITL "
        "that does not match"
    )
    for m in mismatches:
        stamp = _iso(datetime.fromtimestamp(m.device.timestamp, UTC))
        expected = m.expected or "(no ITL from that host in this cluster)"
        _out(
            f"  SEP{m.device.mac}  from {m.device.tftp_host}  reported {m.device.hash}  "
            f"at {stamp}  expected {expected}"
        )
    matching = [db.devices[mac] for mac in sorted(db.devices) if db.matches(db.devices[mac])]
    if matching:
        _out(f"{cluster.name}: {len(matching)} reporting phones match")
    for entry in matching:
        stamp = _iso(datetime.fromtimestamp(entry.timestamp, UTC))
        _out(
            f"  SEP{entry.mac}  from {entry.tftp_host}  reported {entry.hash}  at {stamp}  matches"
        )
    return 0


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

    return _mutate(args, change)


def cmd_unregister(args: argparse.Namespace) -> int:
    """``lab unregister MAC``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        was = cluster.unregister(args.mac, now=moment)
        state = "unregistered" if was else "was not registered"
        return f"{cluster.name}: SEP{normalize_mac(args.mac)} {state}"

    return _mutate(args, change)


def cmd_node(args: argparse.Namespace) -> int:
    """``lab node stop|start|restart HOST``."""
    path: Path = args.dir
    with edit_lab(path) as lab:
        if args.cluster is not None:
            cluster = lab.cluster(args.cluster)
            hostname = cluster.node(args.host).hostname
        else:
            endpoint = lab.resolve(args.host)
            if endpoint is None:
                raise LabError(
                    f"no node {args.host!r} in the lab (or several: use the full host name "
                    "or --cluster)"
                )
            cluster, hostname = endpoint.cluster, endpoint.node.hostname
        since = cluster.next_log_seq
        moment = now()
        if args.action in ("stop", "restart"):
            cluster.stop_node(hostname, now=moment)
        if args.action in ("start", "restart"):
            cluster.start_node(hostname, now=moment)
    _print_log(cluster, since)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """``lab log``."""
    lab = load_lab(args.dir)
    clusters = [lab.cluster(args.cluster)] if args.cluster else list(lab.clusters)
    for cluster in clusters:
        entries = cluster.log[-args.tail :] if args.tail else cluster.log
        for entry in entries:
            _out(f"{cluster.name} {entry}")
    return 0


# --- the SIP trunk side (items 43-44) ---------------------------------------------------------


def _secret(args: argparse.Namespace, env: str, what: str) -> str:
    """A password from ``--password`` or the environment variable ``env``.

    Raises:
        UsageError: neither gives one.
    """
    text: str | None = args.password or os.environ.get(env)
    if not text:
        raise UsageError(f"give the {what} password with --password or ${env}")
    return text


def _list(args: argparse.Namespace, key: str, line: Callable[[dict[str, Any]], str]) -> int:
    """``lab trunk-profile|trunk|app-user|sip-realm list``: one line each, or JSON."""
    lab = load_lab(args.dir)
    cluster = _cluster(lab, args)
    entries: list[dict[str, Any]] = sip_report(cluster)[key]
    if args.json:
        _out(json.dumps({"cluster": cluster.name, key: entries}, indent=2))
        return 0
    if not entries:
        _out(f"{cluster.name}: none")
    for entry in entries:
        _out(f"{cluster.name}: {line(entry)}")
    return 0


def cmd_trunk_profile_add(args: argparse.Namespace) -> int:
    """``lab trunk-profile add NAME``: CUCM's SIP Trunk Security Profile page."""
    profile = TrunkSecurityProfile(
        args.name,
        allowed=RequestType.parse_list(args.allow),
        digest=args.digest,
        application_authorization=args.app_auth,  # refused without --digest (item 44)
        challenge=args.challenge,
    )

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_trunk_profile(profile, now=moment, replace=args.replace)
        allowed = ", ".join(short_names(profile.allowed)) or "none"
        return f"{cluster.name}: trunk security profile {profile.name} saved (allows {allowed})"

    return _mutate(args, change)


def cmd_trunk_profile_remove(args: argparse.Namespace) -> int:
    """``lab trunk-profile remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_trunk_profile(args.name, now=moment)
        return f"{cluster.name}: trunk security profile {args.name} removed"

    return _mutate(args, change)


def cmd_trunk_add(args: argparse.Namespace) -> int:
    """``lab trunk add NAME --address IP[/PREFIX] --profile P``."""
    trunk = TrunkConfig(args.name, frozenset(args.address), args.profile)

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_trunk(trunk, now=moment, replace=args.replace)
        return f"{cluster.name}: trunk {trunk.name} saved"

    return _mutate(args, change)


def cmd_trunk_remove(args: argparse.Namespace) -> int:
    """``lab trunk remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_trunk(args.name, now=moment)
        return f"{cluster.name}: trunk {args.name} removed"

    return _mutate(args, change)


def cmd_app_user_add(args: argparse.Namespace) -> int:
    """``lab app-user add NAME``: stores HA1 for the current Cluster ID, never the password."""
    password = _secret(args, APP_PASSWORD_ENV, "application user")
    allowed = RequestType.parse_list(args.allow)

    def change(cluster: Cluster, moment: datetime) -> str:
        # Item 43: trunk challenges use realm = Cluster ID, so HA1 is computed for it.
        realm = cluster.parameters.cluster_id
        user = ApplicationUser.create(args.name, password, realm=realm, allowed=allowed)
        cluster.add_application_user(user, now=moment, replace=args.replace)
        return f"{cluster.name}: application user {user.name} saved (digest realm {realm})"

    return _mutate(args, change)


def cmd_app_user_remove(args: argparse.Namespace) -> int:
    """``lab app-user remove NAME``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_application_user(args.name, now=moment)
        return f"{cluster.name}: application user {args.name} removed"

    return _mutate(args, change)


def cmd_sip_realm_add(args: argparse.Namespace) -> int:
    """``lab sip-realm add REALM --user U``: the cluster's credentials as UAC (item 43)."""
    realm = SipRealm(args.realm, args.user, _secret(args, REALM_PASSWORD_ENV, "SIP realm"))

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.add_sip_realm(realm, now=moment, replace=args.replace)
        return f"{cluster.name}: SIP realm {realm.realm} saved (user {realm.user})"

    return _mutate(args, change)


def cmd_sip_realm_remove(args: argparse.Namespace) -> int:
    """``lab sip-realm remove REALM``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.remove_sip_realm(args.realm, now=moment)
        return f"{cluster.name}: SIP realm {args.realm} removed"

    return _mutate(args, change)


def _group(sub: Sub, name: str, text: str) -> Sub:
    """A sub-command group such as ``lab trunk`` with its own ``add``/``list``/``remove``."""
    parser = sub.add_parser(name, help=text, description=text)
    actions = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="ACTION")
    actions.required = True
    return actions


def _add_list(group: Sub, key: str, line: Callable[[dict[str, Any]], str], text: str) -> None:
    def handler(args: argparse.Namespace) -> int:
        return _list(args, key, line)

    p = _add(group, "list", handler, text)
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _register_sip(commands: Sub) -> None:
    """``lab trunk-profile``, ``lab trunk``, ``lab app-user``, ``lab sip-realm`` (items 43-44)."""
    allow_help = (
        "request types allowed: refer, notify, replaces, subscribe (comma-separated) or all"
    )
    replace_help = "overwrite an existing entry of that name"

    group = _group(commands, "trunk-profile", "SIP trunk security profiles (items 43-44)")
    p = _add(group, "add", cmd_trunk_profile_add, "add a SIP trunk security profile")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--allow", default="", metavar="LIST", help=allow_help + " (default none)")
    p.add_argument("--digest", action="store_true", help="challenge trunk requests (item 43)")
    p.add_argument(
        "--app-auth",
        action="store_true",
        help="application-level authorization after digest (needs --digest, item 44)",
    )
    p.add_argument("--challenge", type=int, default=401, choices=(401, 407))
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "trunk_profiles", _profile_line, "list the trunk security profiles")
    p = _add(group, "remove", cmd_trunk_profile_remove, "delete an unused profile")
    _common(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "trunk", "SIP trunks: peers known by their source address")
    p = _add(group, "add", cmd_trunk_add, "add a SIP trunk")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--address",
        action="append",
        required=True,
        metavar="IP[/PREFIX]",
        help="the peer's source address or network (repeat for several)",
    )
    p.add_argument("--profile", required=True, metavar="NAME", help="its security profile")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "trunks", _trunk_line, "list the SIP trunks")
    p = _add(group, "remove", cmd_trunk_remove, "delete a SIP trunk")
    _common(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "app-user", "application users trunk peers authenticate as")
    p = _add(group, "add", cmd_app_user_add, "add an application user (stores HA1 only)")
    _common(p)
    p.add_argument("name", metavar="NAME", help="also its digest user ID")
    p.add_argument("--password", metavar="P", help=f"digest password (or ${APP_PASSWORD_ENV})")
    p.add_argument("--allow", default="", metavar="LIST", help=allow_help + " (default none)")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "application_users", _user_line, "list the application users")
    p = _add(group, "remove", cmd_app_user_remove, "delete an application user")
    _common(p)
    p.add_argument("name", metavar="NAME")

    group = _group(commands, "sip-realm", "credentials the cluster answers trunk challenges with")
    p = _add(group, "add", cmd_sip_realm_add, "add the credentials for a realm (item 43)")
    _common(p)
    p.add_argument("realm", metavar="REALM")
    p.add_argument("--user", required=True, metavar="U")
    p.add_argument("--password", metavar="P", help=f"password (or ${REALM_PASSWORD_ENV})")
    p.add_argument("--replace", action="store_true", help=replace_help)
    _add_list(group, "sip_realms", _realm_line, "list the SIP realms")
    p = _add(group, "remove", cmd_sip_realm_remove, "delete the credentials for a realm")
    _common(p)
    p.add_argument("realm", metavar="REALM")


# --- registration ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, metavar="DIR", help="the lab folder")
    parser.add_argument(
        "--cluster", metavar="NAME", help="the cluster (default: the only one in the lab)"
    )


def _add(
    sub: Sub, name: str, handler: Callable[[argparse.Namespace], int], text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=text, description=text)
    parser.set_defaults(handler=handler)
    return parser


def register(sub: Sub) -> None:
    """Add the ``lab`` command group."""
    lab = sub.add_parser(
        "lab",
        help="an emulated Unified CM lab: clusters that build, sign and serve phone files",
        description="Create and operate an emulated Unified CM lab folder (docs/cluster.md).",
    )
    commands = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    commands.required = True

    p = _add(commands, "init", cmd_init, "create a lab folder, or add a cluster to one")
    _common(p)
    p.add_argument(
        "--version",
        default=DEFAULT_PROFILE,
        choices=list(PROFILES),
        help=f"release profile (default {DEFAULT_PROFILE})",
    )
    p.add_argument("--tvs-nodes", type=int, default=1, metavar="N", help="Unified CM nodes")
    p.add_argument(
        "--tftp-nodes", type=int, default=1, metavar="M", help="how many of them run TFTP"
    )
    p.add_argument("--mixed-mode", action="store_true", help="start in mixed mode (tokenless CTL)")
    p.add_argument("--key-size", type=int, default=2048, choices=(1024, 2048))
    p.add_argument(
        "--itlrecovery-years", type=int, default=5, choices=(5, 10, 15, 20), metavar="YEARS"
    )

    p = _add(commands, "show", cmd_show, "nodes, certificates, parameters, ITL/CTL, devices")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _add(commands, "get", cmd_get, "the exact bytes a TFTP node serves for a file name")
    _common(p)
    p.add_argument("filename", metavar="FILENAME")
    p.add_argument("--node", metavar="HOST", help="TFTP node (default: the first running one)")
    p.add_argument("--model", metavar="MODEL", help="the requesting phone's model")
    p.add_argument("-o", "--output", type=Path, metavar="OUT", help="write here, not stdout")

    p = _add(commands, "set", cmd_set, "set an enterprise or service parameter")
    _common(p)
    p.add_argument("param", metavar="PARAM", choices=list(PARAMETERS), help=", ".join(PARAMETERS))
    p.add_argument("value", metavar="VALUE")

    p = _add(commands, "set-mode", cmd_set_mode, "cluster security mode (mixed builds the CTL)")
    _common(p)
    p.add_argument("mode", choices=("mixed", "non-secure"))

    p = _add(commands, "ctl-update", cmd_ctl_update, "rebuild the CTL (utils ctl update CTLFile)")
    _common(p)

    p = _add(commands, "add-device", cmd_add_device, "add a phone (SEP<MAC>.cnf.xml)")
    _common(p)
    p.add_argument("mac", metavar="MAC")
    p.add_argument("--model", default="8841")
    p.add_argument(
        "--security-mode",
        default="non-secure",
        choices=[m.label for m in SecurityMode],
    )
    p.add_argument("--digest-user", metavar="U")
    p.add_argument("--digest-password", metavar="P")
    p.add_argument(
        "--exclude-digest-credentials",
        action="store_true",
        help="keep the digest password out of the config (item 42)",
    )
    p.add_argument(
        "--digest-auth",
        action="store_true",
        help="security profile enables digest authentication: REGISTER is challenged (item 40)",
    )
    p.add_argument("--load", default="", metavar="LOAD", help="loadInformation (firmware load)")
    p.add_argument("--encrypt-config", action="store_true", help="serve .cnf.xml.enc.sgn")
    p.add_argument(
        "--certificate", metavar="PEM", help="the phone's LSC/MIC (encrypted configs use it)"
    )
    p.add_argument("--replace", action="store_true", help="overwrite an existing device")

    p = _add(commands, "remove-device", cmd_remove_device, "delete a phone")
    _common(p)
    p.add_argument("mac", metavar="MAC")

    p = _add(commands, "capf", cmd_capf, "set a CAPF certificate operation (docs/capf.md)")
    _common(p)
    p.add_argument("--mac", required=True, metavar="MAC", help="the device")
    p.add_argument(
        "--operation",
        required=True,
        choices=[*(o.value for o in capf.CapfOperation), "none"],
        help="what CAPF does at the phone's next boot (none cancels)",
    )
    p.add_argument("--auth", metavar="MODE", help="null, string:SECRET (4-10 digits), mic or lsc")
    p.add_argument(
        "--key-type",
        default="rsa-2048",
        choices=[k.value for k in capf.CapfKeyType],
        help="the LSC key (EC needs an ITL with signer version 1.1)",
    )

    p = _add(commands, "regenerate", cmd_regenerate, "regenerate a certificate and its key")
    _common(p)
    p.add_argument("cert", metavar="CERT", help="callmanager, tvs, itlrecovery, capf or tomcat")
    p.add_argument("--node", metavar="HOST", help="node (per-node certificates)")
    p.add_argument("--yes", action="store_true", help="proceed after the ITLRecovery warning")

    p = _add(commands, "export-certs", cmd_export, "Bulk Certificate Management: export")
    _common(p)
    p.add_argument("--to", type=Path, required=True, metavar="FOLDER", help="shared export folder")
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")

    p = _add(commands, "import-certs", cmd_import, "Bulk Certificate Management: import")
    _common(p)
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="FOLDER",
        help="the shared export folder",
    )
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")

    p = _add(commands, "itl-reset", cmd_itl_reset, "utils itl reset localkey|remotekey (item 29)")
    _common(p)
    p.add_argument("mode", choices=("localkey", "remotekey"))
    p.add_argument("--pkcs12", metavar="FILE", help="remotekey: PKCS#12 with the key and cert")
    p.add_argument("--password", help=f"PKCS#12 password (or ${PASSWORD_ENV})")

    p = _add(commands, "itl-status", cmd_itl_status, "ITL File Status report (item 30)")
    _common(p)
    p.add_argument("--json", action="store_true")

    p = _add(commands, "register", cmd_register, "a phone registers (and reports its ITL hash)")
    _common(p)
    p.add_argument("mac", metavar="MAC")
    p.add_argument("--itl-hash", metavar="SHA1", help="hash of the ITL the phone holds")
    p.add_argument("--tftp-host", metavar="HOST", help="where that ITL came from")
    p.add_argument("--model", metavar="MODEL")

    p = _add(commands, "unregister", cmd_unregister, "a phone unregisters")
    _common(p)
    p.add_argument("mac", metavar="MAC")

    p = _add(commands, "node", cmd_node, "power a node off or on")
    p.add_argument("action", choices=("stop", "start", "restart"))
    _common(p)
    p.add_argument("host", metavar="HOST")

    p = _add(commands, "log", cmd_log, "the service log (TFTP, CallManager, CLI)")
    _common(p)
    p.add_argument("--tail", type=int, default=0, metavar="N")

    _register_sip(commands)  # `lab trunk-profile|trunk|app-user|sip-realm` (items 43-44)
    serve.add_parser(commands)  # `lab serve` (issue 5): phone/cli/serve.py

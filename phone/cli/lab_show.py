"""``vphone lab show``: the cluster report, as JSON-ready data and as text.

:func:`cluster_report` gathers everything about a cluster (nodes and their certificates,
parameters, ITL and CTL files, trust stores, devices, and the SIP trunk side from
:func:`phone.cli.lab_sip.sip_report`); ``lab show`` prints it as text or, with ``--json``,
as JSON. Reading only: nothing here changes the lab.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from phone.cli.lab_edge import emit, iso, now
from phone.cli.lab_sip import SIP_SECTIONS, sip_report
from phone.cluster.cluster import Cluster
from phone.cluster.diagram import lab_html
from phone.cluster.itl import itl_hash
from phone.cluster.records import PARAMETERS, TrustStore, unix_time
from phone.cluster.store import load_lab
from phone.errors import UsageError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.trustlist import parse_trust_list


def _cert_info(kind: str, certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": cucm_name(certificate.subject),
        "serial": serial_bytes(certificate.serial_number).hex(),
        "not_after": iso(certificate.not_valid_after_utc),
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


def throttle_report(cluster: Cluster, at: int) -> dict[str, Any]:
    """The SIP digest throttle (issue 13): its settings and every source with failures."""
    params = cluster.parameters
    on = params.sip_auth_failures > 0 and params.sip_auth_lockout > 0
    return {
        "enabled": on,
        "failures": params.sip_auth_failures,
        "lockout": params.sip_auth_lockout,
        "sources": [
            {
                **record.to_json(),
                "throttled": on and record.throttled(at),
                "retry_after": max(record.until - at, 0) if on else 0,
            }
            for record in cluster.sip_auth_sources()
        ],
    }


def _print_throttle(throttle: dict[str, Any]) -> None:
    sources = throttle["sources"]
    if not throttle["enabled"]:
        state = "off"
    else:
        state = f"{throttle['failures']} failures within {throttle['lockout']} s"
    throttled = sum(1 for s in sources if s["throttled"])
    emit(f"  SIP digest throttle: {state}; {throttled} of {len(sources)} sources throttled")
    for source in sources:
        last = iso(datetime.fromtimestamp(source["last"], UTC))
        if source["throttled"]:
            what = (
                f"THROTTLED for {source['retry_after']} s more, "
                f"{source['refused']} requests refused"
            )
        else:
            what = "not throttled"
        emit(
            f"    {source['source']}  {source['failures']} failures, last {last} "
            f"(user {source['user']!r}): {what}"
        )


def cluster_report(cluster: Cluster, at: int | None = None) -> dict[str, Any]:
    """Everything ``vphone lab show`` prints about a cluster, as JSON-ready data; ``at``
    (Unix seconds, default now) is when the SIP throttle's state is judged."""
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
                    "subject": cucm_name(e.certificate.subject),
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
        "sip_throttle": throttle_report(cluster, unix_time(now()) if at is None else at),
    }


def _print_report(report: dict[str, Any]) -> None:
    emit(f"cluster {report['name']}: release {report['release']}, {report['mode']} mode")
    emit("  nodes:")
    for node in report["nodes"]:
        state = "running" if node["running"] else "STOPPED"
        emit(f"    {node['hostname']}  {node['ip']}  {' '.join(node['services'])}  {state}")
        for cert in node["certificates"]:
            emit(
                f"      {cert['kind']:<12} {cert['subject']}  serial {cert['serial']}  "
                f"expires {cert['not_after']}"
            )
    emit("  cluster certificates (publisher):")
    for cert in report["cluster_certificates"]:
        emit(
            f"      {cert['kind']:<12} {cert['subject']}  serial {cert['serial']}  "
            f"expires {cert['not_after']}"
        )
    emit("  parameters:")
    for name, value in report["parameters"].items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        emit(f"    {name} = {text}  ({PARAMETERS[name].kind})")
    emit("  ITL files:")
    for host, info in report["itl"].items():
        if info is None:
            emit(f"    {host}: none (TFTP not active)")
            continue
        served = "" if info["served"] else f"  NOT SERVED: {info['problem']}"
        emit(
            f"    {host}: sha1 {info['sha1']}  md5 {info['md5']}  {info['size']} bytes, "
            f"{info['certificates']} certificates, records {', '.join(info['records'])}, "
            f"signed by {info['signer']}{served}"
        )
    if report["itl_reset"] is not None:
        reset = report["itl_reset"]
        emit(f"    itl reset {reset['mode']} active on: {', '.join(reset['hosts'])}")
    ctl = report["ctl"]
    if ctl is None:
        emit("  CTL file: none (non-secure mode: CTLFile.tlv is not found)")
    else:
        emit(
            f"  CTL file: sha1 {ctl['sha1']}  md5 {ctl['md5']}  {ctl['size']} bytes, records "
            f"{', '.join(ctl['records'])}, signed by {ctl['signer']}"
        )
    emit("  trust stores:")
    for store, entries in report["trust_stores"].items():
        emit(f"    {store}: {len(entries)}")
        for entry in entries:
            emit(f"      {entry['subject']}  serial {entry['serial']}  ({entry['source']})")
    emit(f"  devices: {len(report['devices'])}")
    for device in report["devices"]:
        flags = [device["security_mode"]]
        if device["encrypt_config"]:
            flags.append("encrypted config")
        if device["autoregistered"]:
            flags.append("auto-registered")
        if device["registered"]:
            flags.append("registered")
        emit(f"    {device['name']}  {device['model']}  {', '.join(flags)}")
        if device.get("capf_pending"):
            emit(f"      CAPF pending: {device['capf_pending']}")
        if device.get("capf_last"):
            emit(f"      CAPF last: {device['capf_last']}")
        for line in device.get("capf_certificates") or ():
            emit(f"        {line}")
    for key, title, line in SIP_SECTIONS:
        if report.get(key):
            emit(f"  {title}: {len(report[key])}")
            for entry in report[key]:
                emit(f"    {line(entry)}")
    _print_throttle(report["sip_throttle"])


def cmd_show(args: argparse.Namespace) -> int:
    """``lab show``."""
    lab = load_lab(args.dir)
    clusters = [lab.cluster(args.cluster)] if args.cluster else list(lab.clusters)
    reports = [cluster_report(c) for c in clusters]
    html_path = getattr(args, "html", None)
    if html_path is not None:
        try:
            html_path.write_text(lab_html(clusters, f"vphone lab {args.dir}"), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {html_path}: {exc}") from None
    if args.json:
        emit(json.dumps({"clusters": reports}, indent=2))
    else:
        for report in reports:
            _print_report(report)
    return 0

"""``vphone lab`` cluster commands: ``init`` (a new lab folder, or a cluster added to one),
``get`` (the exact bytes a TFTP node serves), ``set`` (parameters), ``set-mode`` and
``ctl-update`` (security mode and the CTL), ``node`` (power a node off or on) and ``log``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from phone.cli import lab_edge
from phone.cli.lab_edge import chosen_cluster, emit, emit_json, mutate, print_log
from phone.cluster.cluster import Cluster
from phone.cluster.files import ClientInfo
from phone.cluster.records import ClusterSpec
from phone.cluster.store import edit_lab, init_lab, load_lab
from phone.errors import FileNotFoundOnServer, LabError


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
        release=args.version,
        tvs_nodes=args.tvs_nodes,
        tftp_nodes=args.tftp_nodes,
        mixed_mode=args.mixed_mode,
        key_size=args.key_size,
        itlrecovery_years=args.itlrecovery_years,
    )
    # The edge is looked up on lab_edge at each call, where tests replace it.
    lab = init_lab(
        path,
        spec,
        now=lab_edge.now(),
        keys=lab_edge.key_source(),
        capf_trust=lab_edge.capf_trust_seed(),
    )
    cluster = lab.cluster(name)
    if getattr(args, "json", False):
        emit_json(
            {
                "cluster": cluster.name,
                "release": cluster.profile.name,
                "path": str(path),
                "nodes": [
                    {"hostname": n.hostname, "ip": n.ip, "services": list(n.services)}
                    for n in cluster.nodes
                ],
                "log": [str(entry) for entry in cluster.log_since(0)],
            }
        )
        return 0
    emit(f"cluster {cluster.name} (release {cluster.profile.name}) installed in {path}")
    for node in cluster.nodes:
        emit(f"  {node.hostname}  {node.ip}  {' '.join(node.services)}")
    print_log(cluster, 0)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    """``lab get``: exactly what the node's TFTP service sends for a name."""
    lab = load_lab(args.dir)
    cluster = chosen_cluster(lab, args)
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

    return mutate(args, change)


def cmd_set_mode(args: argparse.Namespace) -> int:
    """``lab set-mode mixed|non-secure``."""

    def change(cluster: Cluster, moment: datetime) -> str:
        cluster.set_mixed_mode(args.mode == "mixed", now=moment)
        return f"{cluster.name}: {args.mode} mode"

    return mutate(args, change)


def cmd_ctl_update(args: argparse.Namespace) -> int:
    """``lab ctl-update``."""

    def change(cluster: Cluster, moment: datetime) -> None:
        cluster.update_ctl(now=moment)

    return mutate(args, change)


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
        moment = lab_edge.now()
        if args.action in ("stop", "restart"):
            cluster.stop_node(hostname, now=moment)
        if args.action in ("start", "restart"):
            cluster.start_node(hostname, now=moment)
    print_log(cluster, since)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """``lab log``."""
    lab = load_lab(args.dir)
    clusters = [lab.cluster(args.cluster)] if args.cluster else list(lab.clusters)
    if getattr(args, "json", False):
        emit_json(
            [
                {"cluster": cluster.name, "entry": str(entry)}
                for cluster in clusters
                for entry in (cluster.log[-args.tail :] if args.tail else cluster.log)
            ]
        )
        return 0
    for cluster in clusters:
        entries = cluster.log[-args.tail :] if args.tail else cluster.log
        for entry in entries:
            emit(f"{cluster.name} {entry}")
    return 0

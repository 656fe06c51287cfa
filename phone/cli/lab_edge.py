"""The edge every ``vphone lab ...`` command goes through, and the plumbing they share.

The lab commands are the edge of the cluster core: only they read the clock
(``datetime.now(UTC)``), draw randomness (``os.urandom``), generate fresh RSA keys and
read/write files; everything they call in :mod:`phone.cluster` is pure, except
:mod:`phone.cluster.store`. This module holds the clock and key source (tests replace
:func:`now` and :func:`key_source` here, where every command looks them up), the ``DIR`` and
``--cluster`` arguments that pick the lab folder and cluster a command acts on, and
:func:`mutate`, the lock-load-change-save cycle of every command that changes the lab: it
prints the service-log lines the change produced (for example the TFTP node's "Tftp Itl hash
not changed").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

from cryptography import x509

from phone.cluster.cluster import Cluster
from phone.cluster.lab import Lab
from phone.cluster.store import edit_lab
from phone.pki import FreshKeys, KeySource
from phone.vendor import manufacturing_cas

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


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


# --- the lab and cluster a command acts on --------------------------------------------------


def lab_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``DIR`` and ``--cluster`` arguments of a command (read by :func:`chosen_cluster`)."""
    parser.add_argument("dir", type=Path, metavar="DIR", help="the lab folder")
    parser.add_argument(
        "--cluster", metavar="NAME", help="the cluster (default: the only one in the lab)"
    )


def add_command(
    sub: Sub, name: str, handler: Callable[[argparse.Namespace], int], text: str
) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` run by ``handler``, with ``text`` as its help."""
    parser = sub.add_parser(name, help=text, description=text)
    parser.set_defaults(handler=handler)
    return parser


def chosen_cluster(lab: Lab, args: argparse.Namespace) -> Cluster:
    """The cluster ``--cluster`` names, or the lab's only one."""
    name: str | None = args.cluster
    return lab.cluster(name)


def mutate(args: argparse.Namespace, change: Callable[[Cluster, datetime], str | None]) -> int:
    """Lock, load, change one cluster, save; print the change's summary and log lines."""
    path: Path = args.dir
    with edit_lab(path) as lab:
        cluster = chosen_cluster(lab, args)
        since = cluster.next_log_seq
        summary = change(cluster, now())
    if getattr(args, "json", False):  # the commands that offer --json (issue 18 item 2)
        emit_json(
            {
                "cluster": cluster.name,
                "summary": summary or "",
                "log": [str(entry) for entry in cluster.log_since(since)],
            }
        )
        return 0
    if summary:
        emit(summary)
    print_log(cluster, since)
    return 0


# --- output ----------------------------------------------------------------------------------


def emit(text: str = "") -> None:
    """Print one line of a command's output."""
    print(text)


def emit_json(document: object) -> None:
    """Print a command's ``--json`` document."""
    print(json.dumps(document, indent=2))


def print_log(cluster: Cluster, since: int) -> None:
    """Print the cluster's service-log lines from sequence number ``since`` on."""
    for entry in cluster.log_since(since):
        emit(f"  {entry}")


def iso(moment: datetime) -> str:
    """A time as the lab commands print it (UTC, ISO 8601, seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

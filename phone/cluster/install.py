"""Installing a cluster: the validated spec, its nodes, certificates and trust stores as data.

What ``vphone lab init`` does before the first commit (seed: the ITL "is automatically created
when the TFTP service is activated and the cluster is installed", which
:meth:`phone.cluster.cluster.Cluster.create` then does on the state built here).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509

from phone.cluster.profiles import get_profile
from phone.cluster.records import (
    MAX_NODES,
    NAME_RE,
    ClusterSpec,
    ClusterState,
    Node,
    Parameters,
    TrustEntry,
    TrustStore,
    der,
    unix_time,
)
from phone.errors import LabError
from phone.pki import CertKind, Identity, KeySource, node_certificate

__all__ = ["new_cluster_state"]


def new_cluster_state(
    spec: ClusterSpec,
    *,
    now: datetime,
    keys: KeySource,
    ip_prefix: str,
    capf_trust: Sequence[x509.Certificate],
) -> ClusterState:
    """The state of a cluster installed at ``now`` from ``spec`` (no ITL or CTL yet).

    Nodes are ``cucm<N>.<name>.<domain>`` at ``<ip_prefix>.0.10`` onwards; the first
    ``spec.tftp_nodes`` run TFTP. ``capf_trust`` seeds the CAPF-trust store beside the
    cluster's own CAPF certificate.

    Raises:
        LabError: bad name, node counts, profile, key size or ITLRecovery validity.
    """
    stamp = unix_time(now)
    profile = get_profile(spec.release)
    if not NAME_RE.fullmatch(spec.name):
        raise LabError(
            f"invalid cluster name {spec.name!r}: use 1 to 30 lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    if not NAME_RE.fullmatch(spec.domain):
        raise LabError(f"invalid lab domain {spec.domain!r}")
    if not 1 <= spec.tvs_nodes <= MAX_NODES:
        raise LabError(f"a cluster has 1 to {MAX_NODES} nodes, not {spec.tvs_nodes}")
    if not 1 <= spec.tftp_nodes <= spec.tvs_nodes:
        raise LabError(f"--tftp-nodes must be between 1 and the number of nodes ({spec.tvs_nodes})")
    if spec.itlrecovery_years not in profile.itlrecovery_years:
        allowed = ", ".join(map(str, profile.itlrecovery_years))
        raise LabError(f"release {profile.name} offers ITLRecovery validity {allowed} years")
    try:
        network = ipaddress.IPv4Network(f"{ip_prefix}.0.0/16")
    except ValueError:
        raise LabError(f"invalid IP prefix {ip_prefix!r}") from None
    nodes: list[Node] = []
    for index in range(spec.tvs_nodes):
        host = f"cucm{index + 1}.{spec.name}.{spec.domain}"

        def cert(kind: CertKind, host: str = host) -> Identity:
            return node_certificate(kind, host, now=now, keys=keys, key_size=spec.key_size)

        nodes.append(
            Node(
                hostname=host,
                ip=str(network.network_address + 10 + index),
                callmanager=cert(CertKind.CALLMANAGER),
                tvs=cert(CertKind.TVS),
                tomcat=cert(CertKind.TOMCAT),
                runs_tftp=index < spec.tftp_nodes,
            )
        )
    publisher = nodes[0].hostname
    itlrecovery = node_certificate(
        CertKind.ITLRECOVERY,
        publisher,
        now=now,
        keys=keys,
        key_size=spec.key_size,
        validity_years=spec.itlrecovery_years,
    )
    capf = node_certificate(CertKind.CAPF, publisher, now=now, keys=keys, key_size=spec.key_size)
    trust: dict[TrustStore, list[TrustEntry]] = {store: [] for store in TrustStore}
    trust[TrustStore.CAPF].append(TrustEntry(capf.certificate, "own CAPF"))
    for ca in capf_trust:
        if der(ca) != der(capf.certificate):
            trust[TrustStore.CAPF].append(TrustEntry(ca, "manufacturing CA"))
    state = ClusterState(
        name=spec.name,
        profile=profile.name,
        domain=spec.domain,
        nodes=nodes,
        itlrecovery=itlrecovery,
        capf=capf,
        parameters=Parameters(itl_recovery_validity_years=spec.itlrecovery_years),
        mixed_mode=spec.mixed_mode,
        trust=trust,
        created_at=stamp,
        updated_at=stamp,
        context_changed_at=stamp,
    )
    return state

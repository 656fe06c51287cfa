"""What the SIP registrar and the SCCP station service share (issue 15 item 2).

* :class:`Source`: where a request or a station connection came from (address, port,
  transport and the TLS peer's certificate);
* :class:`ItlReportValue`: a parsed ITL report (item 30), whatever protocol carried it;
* :func:`effective_mode`: a device's security mode as the cluster applies it;
* :func:`signaling_problem`: the seed's Signaling Authentication rule (item 7), one rule for
  both protocols: a device in authenticated or encrypted mode (in a mixed-mode cluster) must
  come over TLS with a certificate issued by a CAPF-trust anchor (its MIC or LSC) naming
  ``SEP<MAC>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from phone.cluster.cluster import Cluster
from phone.cluster.records import Device, SecurityMode, TrustStore
from phone.cluster.tvs import authenticate_client
from phone.formats.certfields import cucm_name

__all__ = ["ItlReportValue", "Source", "effective_mode", "signaling_problem"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a request came from: address, port, transport and the TLS peer's certificate."""

    host: str
    port: int
    transport: str  # "udp", "tcp" or "tls"
    certificate: x509.Certificate | None = None


@dataclass(frozen=True, slots=True)
class ItlReportValue:
    """A parsed ITL report (satisfies :class:`phone.cluster.records.ItlReport`)."""

    tftp_host: str
    itl_hash: str
    timestamp: int


def effective_mode(cluster: Cluster, device: Device) -> SecurityMode:
    """The device's security profile mode; non-secure whatever the profile outside mixed mode."""
    return device.security_mode if cluster.mixed_mode else SecurityMode.NON_SECURE


def signaling_problem(
    cluster: Cluster, device: Device, source: Source, now: datetime
) -> str | None:
    """Why ``device`` may not register from ``source`` (seed, Signaling Authentication), or None.

    Non-secure devices pass. A secure device must come over TLS, with a client certificate
    that chains to a CAPF-trust anchor, is valid at ``now`` and names the device.
    """
    mode = effective_mode(cluster, device)
    if mode is SecurityMode.NON_SECURE:
        return None
    if source.transport != "tls":
        return f"{device.name} is in {mode.label} mode: it must register over TLS"
    anchors = tuple(e.certificate for e in cluster.trust(TrustStore.CAPF))
    problem = authenticate_client(source.certificate, anchors, now)
    if problem is None and source.certificate is not None:
        subject = cucm_name(source.certificate.subject)
        if device.name.lower() not in subject.lower():
            problem = f"client certificate {subject} does not name {device.name}"
    return problem

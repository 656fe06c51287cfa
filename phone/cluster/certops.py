"""Certificate operations on a cluster: regenerate, bulk export/import, ITL reset, LSCs.

Pure: bytes and identities in and out; the CLI reads and writes the files. Rules:

* Regeneration (items 26-29): a new certificate and key for CallManager, TVS or Tomcat of one
  node, or for the cluster's ITLRecovery or CAPF. ITLs are regenerated at once (seed: "The ITL
  file is updated automatically if the content is modified"); the tokenless CTL is not, hence
  the seed's warning before ITLRecovery regeneration (:data:`ITLRECOVERY_WARNING`).
* Bulk Certificate Management (item 34): each cluster exports PKCS#12 trust bundles; a cluster
  imports the *other* clusters' bundles with the mapping :data:`BULK_MAPPING`. The lab's TVS
  reads its stores on every request, so the "restart TVS" step is implicit.
* ``utils itl reset localkey|remotekey`` (item 29): every TFTP node's ITL is re-signed with
  the other SAST key phones already trust (localkey) or a key from elsewhere (remotekey),
  until that node's TFTP service restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from phone.cluster.cluster import Cluster
from phone.cluster.records import ItlReset, TrustStore
from phone.errors import LabError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.mac import normalize_mac
from phone.pki import (
    CertKind,
    Identity,
    KeySource,
    PublicKey,
    certs_from_pkcs12,
    certs_to_pkcs12,
    issue,
    node_certificate,
)

__all__ = [
    "BULK_FILES",
    "BULK_MAPPING",
    "ITLRECOVERY_WARNING",
    "PER_NODE",
    "ImportResult",
    "Regenerated",
    "export_certificates",
    "import_certificates",
    "issue_lsc",
    "itl_reset",
    "regenerate",
]

ITLRECOVERY_WARNING = (
    "WARNING: you are about to regenerate the ITLRecovery certificate, a key every phone "
    "trusts as a signer of its ITL. If you use a tokenless CTL and if you regenerate the "
    "CallManager certificate, ensure that the CTL file has the updated CallManager certificate "
    "and that certificate is updated to endpoints."
)
"""Shown before ITLRecovery regeneration (seed, Certificate Management Changes for
ITLRecovery Certificate)."""

PER_NODE = (CertKind.CALLMANAGER, CertKind.TVS, CertKind.TOMCAT)
"""Kinds every node has its own of; ITLRecovery and CAPF are cluster-wide (publisher)."""

BULK_FILES: Mapping[CertKind, str] = {
    CertKind.CALLMANAGER: "CallManager.p12",
    CertKind.ITLRECOVERY: "ITLRecovery.p12",
    CertKind.CAPF: "CAPF.p12",
    CertKind.TOMCAT: "Tomcat.p12",
}
"""The PKCS#12 file each exported kind goes to."""

BULK_MAPPING: Mapping[CertKind, tuple[TrustStore, ...]] = {
    # Item 34: CallManager -> Phone-SAST-trust and CallManager-trust, ITLRecovery -> the same,
    # CAPF -> CallManager-trust, Tomcat -> tomcat-trust.
    CertKind.CALLMANAGER: (TrustStore.PHONE_SAST, TrustStore.CALLMANAGER),
    CertKind.ITLRECOVERY: (TrustStore.PHONE_SAST, TrustStore.CALLMANAGER),
    CertKind.CAPF: (TrustStore.CALLMANAGER,),
    CertKind.TOMCAT: (TrustStore.TOMCAT,),
}


@dataclass(frozen=True)
class Regenerated:
    """The outcome of :func:`regenerate`."""

    kind: CertKind
    host: str
    old: Identity
    new: Identity
    warnings: tuple[str, ...]


def _node_for(cluster: Cluster, kind: CertKind, host: str | None) -> str:
    if kind not in PER_NODE:
        if host is not None and cluster.node(host).hostname != cluster.publisher.hostname:
            raise LabError(f"the {kind} certificate belongs to the publisher, not {host}")
        return cluster.publisher.hostname
    if host is not None:
        return cluster.node(host).hostname
    if len(cluster.nodes) == 1:
        return cluster.publisher.hostname
    known = ", ".join(n.hostname for n in cluster.nodes)
    raise LabError(f"every node has its own {kind} certificate: name one with --node ({known})")


def regenerate(
    cluster: Cluster,
    kind: CertKind,
    *,
    now: datetime,
    keys: KeySource,
    host: str | None = None,
) -> Regenerated:
    """Regenerate a certificate (and key) of ``cluster``, like ``set cert regen <kind>``.

    The new key has the old one's size; ITLRecovery takes the validity in the
    ``itl-recovery-validity-years`` parameter. Returns what changed and the warnings a person
    must read (stale CTL in mixed mode; the release's consequences, items 26-29).

    Raises:
        LabError: a per-node kind without ``host`` in a multi-node cluster, or a bad host.
    """
    hostname = _node_for(cluster, kind, host)
    old = cluster.identity(kind, hostname)
    size = old.key.key_size if isinstance(old.key, rsa.RSAPrivateKey) else 2048
    years = cluster.parameters.itl_recovery_validity_years if kind is CertKind.ITLRECOVERY else 5
    new = node_certificate(kind, hostname, now=now, keys=keys, key_size=size, validity_years=years)
    warnings: list[str] = []
    profile = cluster.profile
    signs_itl = profile.itl_signer is kind
    if signs_itl:
        warnings.append(
            f"the {kind} key signs the ITL on release {profile.name}: phones accept the new ITL "
            "only if TVS vouches for the new signer (item 26) or after `itl-reset` (item 29)"
        )
    if kind is CertKind.CALLMANAGER and profile.itl_signer is CertKind.CALLMANAGER:
        warnings.append(
            "do not regenerate TVS before phones have the new ITL: CallManager and TVS "
            "regenerated together leave phones unable to trust either (item 27)"
        )
    if cluster.mixed_mode and kind in (CertKind.CALLMANAGER, CertKind.ITLRECOVERY, CertKind.CAPF):
        warnings.append(
            "the CTL file still holds the old certificate: run `vphone lab ctl-update` "
            "(utils ctl update CTLFile)"
        )
    cluster.replace_identity(kind, new, now=now, host=hostname)
    cluster.note(
        now,
        f"{kind} certificate of {hostname} regenerated: serial {new.serial_hex} "
        f"(was {old.serial_hex})",
    )
    for warning in warnings:
        cluster.note(now, "WARNING " + warning)
    return Regenerated(kind, hostname, old, new, tuple(warnings))


def export_certificates(cluster: Cluster, *, password: bytes) -> dict[str, bytes]:
    """Bulk Certificate Management export: one certificates-only PKCS#12 per kind.

    Keys never leave the cluster. Returns ``{file name: bytes}`` (:data:`BULK_FILES`).

    Raises:
        UsageError: an empty password.
    """
    certificates: dict[CertKind, list[x509.Certificate]] = {
        CertKind.CALLMANAGER: [n.callmanager.certificate for n in cluster.nodes],
        CertKind.ITLRECOVERY: [cluster.itlrecovery.certificate],
        CertKind.CAPF: [cluster.capf.certificate],
        CertKind.TOMCAT: [n.tomcat.certificate for n in cluster.nodes],
    }
    return {
        BULK_FILES[kind]: certs_to_pkcs12(certs, password) for kind, certs in certificates.items()
    }


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_certificates` added (store, subject, source) and why it skipped."""

    added: tuple[tuple[TrustStore, str, str], ...]
    already_present: int
    own_skipped: int
    warnings: tuple[str, ...]


def import_certificates(
    cluster: Cluster,
    bundles: Mapping[str, Mapping[str, bytes]],
    *,
    password: bytes,
    now: datetime,
) -> ImportResult:
    """Bulk Certificate Management import of other clusters' exports (item 34).

    ``bundles`` maps a source cluster name to its exported files (:func:`export_certificates`).
    The cluster's own export is skipped, as CUCM imports only the other clusters'
    certificates; its own certificates are never added to its stores.

    Raises:
        FormatError, DecryptionError: a bundle is not a PKCS#12 or the password is wrong.
    """
    own = {
        c.public_bytes(Encoding.DER)
        for c in (
            cluster.itlrecovery.certificate,
            cluster.capf.certificate,
            *(n.callmanager.certificate for n in cluster.nodes),
            *(n.tomcat.certificate for n in cluster.nodes),
            *(n.tvs.certificate for n in cluster.nodes),
        )
    }
    warnings: list[str] = []
    if cluster.parameters.prepare_cluster_for_rollback:
        warnings.append(
            "prerequisite not met (item 34): Prepare Cluster for Rollback to pre-8.0 is True; "
            "phones holding the empty ITL will not use TVS for the migration"
        )
    added: list[tuple[TrustStore, str, str]] = []
    already = own_skipped = 0
    for source in sorted(bundles):
        if source == cluster.name:
            continue
        files = bundles[source]
        for kind, filename in BULK_FILES.items():
            data = files.get(filename)
            if data is None:
                continue
            for certificate in certs_from_pkcs12(data, password):
                if certificate.public_bytes(Encoding.DER) in own:
                    own_skipped += 1
                    continue
                label = f"{source} {kind} (bulk import)"
                for store in BULK_MAPPING[kind]:
                    if cluster.add_trusted(store, certificate, source=label, now=now):
                        added.append((store, cucm_name(certificate.subject), label))
                    else:
                        already += 1
    cluster.note(
        now,
        f"bulk certificate import: {len(added)} trust-store entries added from "
        f"{', '.join(s for s in sorted(bundles) if s != cluster.name) or 'nothing'}; "
        "TVS uses them at once (no restart needed in the lab)",
    )
    for warning in warnings:
        cluster.note(now, "WARNING " + warning)
    return ImportResult(tuple(added), already, own_skipped, tuple(warnings))


def itl_reset(
    cluster: Cluster,
    mode: str,
    *,
    now: datetime,
    remote: Identity | None = None,
) -> ItlReset:
    """``utils itl reset localkey|remotekey`` (item 29).

    ``localkey`` re-signs each TFTP node's ITL with the release's other SAST key (12.x/14.x:
    the node's CallManager key; 8.x-11.5: ITLRecovery); ``remotekey`` with ``remote`` (for
    instance the ITLRecovery key saved before it was regenerated). Phones reset now accept the
    ITL because they already trust that key; restarting TFTP (``node restart``) restores normal
    signing, and a second reset installs it. Phones offline in between keep the stale ITL.

    Raises:
        LabError: unknown mode, or ``remotekey`` without an RSA ``remote`` identity.
    """
    if mode not in ("localkey", "remotekey"):
        raise LabError(f"itl reset takes localkey or remotekey, not {mode!r}")
    if mode == "remotekey":
        if remote is None:
            raise LabError("itl reset remotekey needs the remote key (a PKCS#12 with its key)")
        if not isinstance(remote.key, rsa.RSAPrivateKey):
            raise LabError("the remote key must be RSA: ITL signatures are RSA only")
    elif remote is not None:
        raise LabError("itl reset localkey uses the cluster's own keys; drop the remote key")
    reset = ItlReset(mode, frozenset(cluster.tftp_hosts), remote)
    cluster.begin_itl_reset(reset, now=now)
    signer = (
        remote.common_name
        if remote is not None
        else f"{cluster.profile.itl_reset_signer} key (release {cluster.profile.name})"
    )
    cluster.note(
        now,
        f"utils itl reset {mode}: ITL files re-signed with {signer}; reset the phones, then "
        "restart TFTP to restore normal signing and reset the phones again",
    )
    return reset


def issue_lsc(
    cluster: Cluster,
    mac: str,
    public_key: PublicKey,
    *,
    now: datetime,
    days: int = 1826,
) -> x509.Certificate:
    """CAPF issues a Locally Significant Certificate for phone ``mac`` (no CAPF protocol).

    If the device exists its record takes the LSC, so encrypted configs are encrypted to it.
    TVS accepts the LSC as a client certificate: the CAPF certificate is in CAPF-trust.
    """
    name = f"SEP{normalize_mac(mac)}"
    certificate = issue(
        cluster.capf,
        name,
        public_key,
        now=now,
        days=days,
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
    )
    if cluster.device(mac) is not None:
        cluster.update_device(mac, now=now, certificate=certificate)
    cluster.note(
        now, f"CAPF issued an LSC to {name}, serial {serial_bytes(certificate.serial_number).hex()}"
    )
    return certificate

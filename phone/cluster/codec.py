"""The lab folder's JSON: a cluster's state to ``cluster.json`` and back (no file I/O).

:mod:`phone.cluster.store` reads and writes the files; this module turns a
:class:`~phone.cluster.records.ClusterState` into the document and the private keys it
references, and back, refusing damaged documents with a :class:`~phone.errors.LabError` that
names the field. The layout and the rules of the folder are in the store's docstring.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from phone.cluster import capf_ops
from phone.cluster.authguard import AuthFailures
from phone.cluster.itl import DeviceHashRow, ItlHashDatabase, TftpHashRow
from phone.cluster.records import (
    ClusterState,
    Device,
    ItlReset,
    LogEntry,
    Node,
    Parameters,
    SecurityMode,
    TrustEntry,
    TrustStore,
)
from phone.cluster.trunk import (
    ApplicationUser,
    RequestType,
    SipRealm,
    TrunkConfig,
    TrunkSecurityProfile,
)
from phone.errors import LabError
from phone.pki import (
    Identity,
    PrivateKey,
    cert_from_pem,
    cert_to_pem,
    key_from_pem,
)

__all__ = [
    "CLUSTER_FILE",
    "CLUSTER_FORMAT",
    "FORMAT",
    "LAB_FILE",
    "VERSION",
    "decode_cluster",
    "encode_cluster",
    "json_bytes",
]

LAB_FILE = "lab.json"
CLUSTER_FILE = "cluster.json"
FORMAT = "vphone-lab"
CLUSTER_FORMAT = "vphone-cluster"
VERSION = 1


def json_bytes(value: object) -> bytes:
    """A document as the folder stores it (one-space indent, a final newline)."""
    return (json.dumps(value, indent=1, sort_keys=False) + "\n").encode()


# --- encoding --------------------------------------------------------------------------------


def _key_name(label: str, identity: Identity) -> str:
    return f"{label}-{identity.serial_hex}.pem"


class _Writer:
    """Collects the key files a cluster document references."""

    def __init__(self) -> None:
        self.keys: dict[str, Identity] = {}

    def identity(self, label: str, identity: Identity) -> dict[str, str]:
        name = _key_name(label, identity)
        self.keys[name] = identity
        return {"certificate": cert_to_pem(identity.certificate).decode(), "key": name}


def _cert_text(certificate: x509.Certificate | None) -> str | None:
    return None if certificate is None else cert_to_pem(certificate).decode()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _kinds(kinds: frozenset[RequestType]) -> list[str]:
    return [k.value for k in RequestType if k in kinds]


def _encode_sip(state: ClusterState) -> dict[str, Any]:
    """The SIP trunk side of a cluster document (items 43-44; module docstring)."""
    return {
        "trunk_profiles": [
            {
                "name": p.name,
                "allowed": _kinds(p.allowed),
                "digest": p.digest,
                "application_authorization": p.application_authorization,
                "challenge": p.challenge,
            }
            for p in state.trunk_profiles.values()
        ],
        "trunks": [
            {"name": t.name, "addresses": sorted(t.addresses), "profile": t.profile}
            for t in state.trunks.values()
        ],
        "application_users": [
            {"name": u.name, "realm": u.realm, "ha1": u.ha1, "allowed": _kinds(u.allowed)}
            for u in state.application_users.values()
        ],
        "sip_realms": [
            {"realm": r.realm, "user": r.user, "password": r.password}
            for r in state.sip_realms.values()
        ],
    }


def _decode_kinds(value: object) -> frozenset[RequestType]:
    if not isinstance(value, list):
        raise LabError(f"expected a list of request types, got {value!r}")
    return frozenset(RequestType.parse(str(v)) for v in value)


def _decode_sip(
    document: Mapping[str, Any],
) -> tuple[
    dict[str, TrunkSecurityProfile],
    dict[str, TrunkConfig],
    dict[str, ApplicationUser],
    dict[str, SipRealm],
]:
    """The SIP trunk side of a cluster document; absent keys (older files) mean none.

    Raises:
        LabError: an invalid entry, a name given twice, or a trunk naming a missing profile.
    """

    def unique(kind: str, names: list[str]) -> None:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise LabError(f"{kind} {', '.join(repeated)} appears more than once")

    profiles = [
        TrunkSecurityProfile(
            name=str(p["name"]),
            allowed=_decode_kinds(p["allowed"]),
            digest=bool(p["digest"]),
            application_authorization=bool(p["application_authorization"]),
            challenge=int(p["challenge"]),
        )
        for p in document.get("trunk_profiles", [])
    ]
    trunks = [
        TrunkConfig(str(t["name"]), frozenset(str(a) for a in t["addresses"]), str(t["profile"]))
        for t in document.get("trunks", [])
    ]
    users = [
        ApplicationUser(str(u["name"]), str(u["realm"]), str(u["ha1"]), _decode_kinds(u["allowed"]))
        for u in document.get("application_users", [])
    ]
    realms = [
        SipRealm(str(r["realm"]), str(r["user"]), str(r["password"]))
        for r in document.get("sip_realms", [])
    ]
    unique("trunk security profile", [p.name for p in profiles])
    unique("trunk", [t.name for t in trunks])
    unique("application user", [u.name for u in users])
    unique("SIP realm", [r.realm for r in realms])
    known = {p.name for p in profiles}
    for trunk in trunks:
        if trunk.profile not in known:
            raise LabError(f"trunk {trunk.name} names the missing profile {trunk.profile!r}")
    return (
        {p.name: p for p in profiles},
        {t.name: t for t in trunks},
        {u.name: u for u in users},
        {r.realm: r for r in realms},
    )


def encode_cluster(state: ClusterState) -> tuple[dict[str, Any], dict[str, Identity]]:
    w = _Writer()
    nodes = [
        {
            "hostname": n.hostname,
            "ip": n.ip,
            "runs_callmanager": n.runs_callmanager,
            "runs_tftp": n.runs_tftp,
            "runs_tvs": n.runs_tvs,
            "running": n.running,
            "certificates": {
                "CallManager": w.identity(f"{n.hostname}-CallManager", n.callmanager),
                "TVS": w.identity(f"{n.hostname}-TVS", n.tvs),
                "Tomcat": w.identity(f"{n.hostname}-Tomcat", n.tomcat),
            },
        }
        for n in state.nodes
    ]
    devices = [
        {
            "mac": d.mac,
            "model": d.model,
            "security_mode": d.security_mode.label,
            "digest_user": d.digest_user,
            "digest_password": d.digest_password,
            "exclude_digest_credentials": d.exclude_digest_credentials,
            "load": d.load,
            "encrypt_config": d.encrypt_config,
            "certificate": _cert_text(d.certificate),
            "autoregistered": d.autoregistered,
            "changed_at": d.changed_at,
            "digest_authentication": d.digest_authentication,
            "capf": capf_ops.pending_to_json(d.capf),
            "capf_result": capf_ops.result_to_json(d.capf_result),
        }
        for d in state.devices.values()
    ]
    reset = state.itl_reset
    document: dict[str, Any] = {
        "format": CLUSTER_FORMAT,
        "version": VERSION,
        "name": state.name,
        "profile": state.profile,
        "domain": state.domain,
        "mixed_mode": state.mixed_mode,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "context_changed_at": state.context_changed_at,
        "context_key": state.context_key,
        "next_seq": state.next_seq,
        "parameters": dataclasses.asdict(state.parameters),
        "nodes": nodes,
        "itlrecovery": w.identity("ITLRecovery", state.itlrecovery),
        "capf": w.identity("CAPF", state.capf),
        "devices": devices,
        "trust_stores": {
            store.value: [
                {"certificate": cert_to_pem(e.certificate).decode(), "source": e.source}
                for e in state.trust.get(store, [])
            ]
            for store in TrustStore
        },
        "itl_files": {host: _b64(data) for host, data in state.itl_files.items()},
        "ctl_file": _b64(state.ctl_file),
        "itl_hashes": {
            "tftp": [dataclasses.asdict(r) for r in state.hashes.tftp.values()],
            "devices": [dataclasses.asdict(r) for r in state.hashes.devices.values()],
        },
        "itl_reset": None
        if reset is None
        else {
            "mode": reset.mode,
            "hosts": sorted(reset.hosts),
            "remote": None if reset.remote is None else w.identity("itl-reset", reset.remote),
        },
        "registrations": dict(state.registrations),
        "log": [dataclasses.asdict(e) for e in state.log],
        **_encode_sip(state),
        "sip_auth_failures": [r.to_json() for r in state.auth_failures.values()],
    }
    return document, w.keys


class _Reader:
    def __init__(self, folder: Path, read_key: Callable[[str], bytes]) -> None:
        self.folder = folder  # for messages only: the store reads the files
        self.read_key = read_key

    def identity(self, value: Mapping[str, Any]) -> Identity:
        certificate = cert_from_pem(str(value["certificate"]).encode())
        name = str(value["key"])
        if "/" in name or name.startswith("."):
            raise LabError(f"{self.folder}: bad key file name {name!r}")
        return Identity(certificate, _load_key(self.read_key(name)))


def _load_key(data: bytes) -> PrivateKey:
    """Load a key the lab wrote itself.

    The RSA consistency check costs about 40 ms per key, which would dominate every CLI
    command; the key is matched against its certificate by :class:`Identity` instead, and a
    broken key can only produce signatures nobody accepts. Encrypted or foreign keys go
    through :func:`phone.pki.key_from_pem`.
    """
    if b"ENCRYPTED" in data:
        return key_from_pem(data, None)  # raises DecryptionError: the lab never encrypts
    try:
        key = serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    except (ValueError, TypeError):
        return key_from_pem(data, None)  # raises the typed error
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key_from_pem(data, None)
    return key


def _cert(value: object) -> x509.Certificate | None:
    return None if value is None else cert_from_pem(str(value).encode())


def _unb64(value: object) -> bytes | None:
    return None if value is None else base64.b64decode(str(value), validate=True)


def decode_cluster(
    folder: Path, document: object, read_key: Callable[[str], bytes]
) -> ClusterState:
    """The state in ``document`` (from ``folder``'s ``cluster.json``); ``read_key`` gives the
    bytes of a key file the document names.

    Raises:
        LabError: a damaged or foreign document, or a key that does not load.
    """
    if not isinstance(document, dict) or document.get("format") != CLUSTER_FORMAT:
        raise LabError(f"{folder / CLUSTER_FILE} is not a vphone cluster file")
    if document.get("version") != VERSION:
        raise LabError(f"{folder / CLUSTER_FILE}: unsupported version {document.get('version')!r}")
    r = _Reader(folder, read_key)
    nodes = [
        Node(
            hostname=n["hostname"],
            ip=n["ip"],
            callmanager=r.identity(n["certificates"]["CallManager"]),
            tvs=r.identity(n["certificates"]["TVS"]),
            tomcat=r.identity(n["certificates"]["Tomcat"]),
            runs_callmanager=bool(n["runs_callmanager"]),
            runs_tftp=bool(n["runs_tftp"]),
            runs_tvs=bool(n["runs_tvs"]),
            running=bool(n["running"]),
        )
        for n in document["nodes"]
    ]
    devices = {
        d["mac"]: Device(
            mac=d["mac"],
            model=d["model"],
            security_mode=SecurityMode.parse(d["security_mode"]),
            digest_user=d["digest_user"],
            digest_password=d["digest_password"],
            exclude_digest_credentials=bool(d["exclude_digest_credentials"]),
            load=d["load"],
            encrypt_config=bool(d["encrypt_config"]),
            certificate=_cert(d["certificate"]),
            autoregistered=bool(d["autoregistered"]),
            changed_at=int(d["changed_at"]),
            digest_authentication=bool(d.get("digest_authentication", False)),
            capf=capf_ops.pending_from_json(d.get("capf")),
            capf_result=capf_ops.result_from_json(d.get("capf_result")),
        )
        for d in document["devices"]
    }
    trust = {
        TrustStore.parse(name): [
            TrustEntry(cert_from_pem(str(e["certificate"]).encode()), str(e["source"]))
            for e in entries
        ]
        for name, entries in document["trust_stores"].items()
    }
    hashes = ItlHashDatabase(
        (TftpHashRow(**row) for row in document["itl_hashes"]["tftp"]),
        (DeviceHashRow(**row) for row in document["itl_hashes"]["devices"]),
    )
    reset_doc = document["itl_reset"]
    reset = (
        None
        if reset_doc is None
        else ItlReset(
            str(reset_doc["mode"]),
            frozenset(reset_doc["hosts"]),
            None if reset_doc["remote"] is None else r.identity(reset_doc["remote"]),
        )
    )
    trunk_profiles, trunks, application_users, sip_realms = _decode_sip(document)
    itl_files: dict[str, bytes] = {}
    for host, text in document["itl_files"].items():
        data = _unb64(text)
        if data is not None:
            itl_files[host] = data
    return ClusterState(
        name=str(document["name"]),
        profile=str(document["profile"]),
        domain=str(document["domain"]),
        nodes=nodes,
        itlrecovery=r.identity(document["itlrecovery"]),
        capf=r.identity(document["capf"]),
        parameters=Parameters(**document["parameters"]),
        mixed_mode=bool(document["mixed_mode"]),
        devices=devices,
        trust=trust,
        itl_files=itl_files,
        ctl_file=_unb64(document["ctl_file"]),
        hashes=hashes,
        itl_reset=reset,
        registrations={str(k): int(v) for k, v in document["registrations"].items()},
        log=[LogEntry(**e) for e in document["log"]],
        created_at=int(document["created_at"]),
        updated_at=int(document["updated_at"]),
        context_changed_at=int(document["context_changed_at"]),
        context_key=str(document["context_key"]),
        next_seq=int(document["next_seq"]),
        trunk_profiles=trunk_profiles,
        trunks=trunks,
        application_users=application_users,
        sip_realms=sip_realms,
        auth_failures={
            r.source: r
            for r in map(AuthFailures.from_json, document.get("sip_auth_failures") or [])
        },
    )

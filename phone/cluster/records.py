"""The emulated cluster's plain data: nodes, devices, trust stores, parameters, logs, specs.

Nothing here runs a service or changes a cluster: :mod:`phone.cluster.cluster` holds the
:class:`~phone.cluster.cluster.Cluster` that changes this data, the services (files, TVS, CAPF,
registrar) read it, and :mod:`phone.cluster.lab` wires them together. Every service may import
this module; this module imports no service.
"""

from __future__ import annotations

import functools
import hashlib
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from phone.cluster.authguard import AuthFailures
from phone.cluster.capf_ops import CapfPending, CapfResult
from phone.cluster.itl import (
    HashOutcome,
    ItlHashDatabase,
)
from phone.cluster.profiles import DEFAULT_PROFILE, ReleaseProfile
from phone.cluster.trunk import (
    ApplicationUser,
    SipRealm,
    TrunkConfig,
    TrunkSecurityProfile,
)
from phone.errors import LabError, UsageError
from phone.pki import Identity

__all__ = [
    "DEFAULT_MODEL",
    "PARAMETERS",
    "ClusterSpec",
    "ClusterState",
    "ConfigContext",
    "Device",
    "ItlReport",
    "ItlReset",
    "LogEntry",
    "Node",
    "ParameterInfo",
    "Parameters",
    "RandomBytes",
    "Registration",
    "SecurityMode",
    "TrustEntry",
    "TrustStore",
    "unix_time",
]

RandomBytes = Callable[[int], bytes]
"""Where randomness comes from (``os.urandom`` at the edge, a seeded source in tests)."""

DEFAULT_MODEL = "8841"
CALLMANAGER_GROUP_SIZE = 3  # a CUCM CallManager group has at most three members
LOG_LIMIT = 1000  # log entries kept per cluster
MAX_NODES = 64  # far above CUCM's 21; the 40-certificate ITL test needs 36 TVS nodes
NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?")
_MAC_HEX = re.compile(r"[0-9A-F]{12}")
MODEL_RE = re.compile(r"[A-Za-z0-9-]{1,16}")


def unix_time(now: datetime) -> int:
    """``now`` as integral Unix time.

    Raises:
        UsageError: ``now`` is naive (the core never guesses a time zone).
    """
    # A step of a simulated fleet passes the same datetime object thousands of times (four
    # times per registration alone); datetimes are immutable, so the last answer is kept
    # (one tuple, read and replaced whole: safe with the socket servers' threads).
    global _last_unix_time  # noqa: PLW0603 - a one-entry cache
    last = _last_unix_time
    if last[0] is now:
        return last[1]
    if now.tzinfo is None or now.utcoffset() is None:
        raise UsageError(f"now must be timezone-aware, got the naive {now.isoformat()}")
    stamp = int(now.timestamp())
    _last_unix_time = (now, stamp)
    return stamp


_last_unix_time: tuple[datetime | None, int] = (None, 0)  # the datetime last converted


@functools.lru_cache(maxsize=1024)
def sha256_hex(certificate: x509.Certificate) -> str:
    # Certificates are immutable and hashable; the config context asks for the same few
    # fingerprints after every change of the cluster (every registration, in a fleet).
    return certificate.fingerprint(hashes.SHA256()).hex()


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


# --- records ---------------------------------------------------------------------------------


class SecurityMode(IntEnum):
    """Device security mode, as written in ``<deviceSecurityMode>``."""

    NON_SECURE = 1
    AUTHENTICATED = 2
    ENCRYPTED = 3

    @property
    def label(self) -> str:
        """``non-secure``, ``authenticated`` or ``encrypted``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> SecurityMode:
        """Accept a label or the number.

        Raises:
            LabError: anything else.
        """
        for mode in cls:
            if text.strip().lower() in (mode.label, str(int(mode)), mode.name.lower()):
                return mode
        raise LabError(f"unknown security mode {text!r} (non-secure, authenticated, encrypted)")


class TrustStore(StrEnum):
    """The cluster's trust stores that matter to phones (item 34)."""

    CALLMANAGER = "callmanager-trust"
    PHONE_SAST = "phone-sast-trust"
    CAPF = "capf-trust"
    TOMCAT = "tomcat-trust"

    @classmethod
    def parse(cls, text: str) -> TrustStore:
        """Accept ``callmanager-trust`` or ``CallManager-trust``.

        Raises:
            LabError: no such store.
        """
        for store in cls:
            if store.value == text.strip().lower():
                return store
        raise LabError(f"unknown trust store {text!r} ({', '.join(s.value for s in cls)})")


@dataclass(frozen=True)
class TrustEntry:
    """A certificate in a trust store, with where it came from."""

    certificate: x509.Certificate
    source: str

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the DER certificate."""
        return sha256_hex(self.certificate)


@dataclass(frozen=True)
class Node:
    """One Unified CM server: its services, power state and per-node certificates.

    The cluster-wide ITLRecovery and CAPF certificates belong to the publisher (the first
    node) and live on :class:`ClusterState`.
    """

    hostname: str
    ip: str
    callmanager: Identity
    tvs: Identity
    tomcat: Identity
    runs_callmanager: bool = True
    runs_tftp: bool = False
    runs_tvs: bool = True
    running: bool = True

    @property
    def services(self) -> tuple[str, ...]:
        """Names of the services the node runs: CallManager, TFTP, TVS."""
        flags = (
            ("CallManager", self.runs_callmanager),
            ("TFTP", self.runs_tftp),
            ("TVS", self.runs_tvs),
        )
        return tuple(name for name, on in flags if on)


@dataclass(frozen=True)
class Device:
    """A phone known to the cluster (Phone Configuration plus its security profile).

    ``certificate`` is the phone's LSC (or MIC) as CAPF knows it: encrypted configs are
    encrypted to its public key (trust-file-formats.md section 8). ``changed_at`` is the Unix
    time of the record's last change and dates its signed config. ``digest_authentication`` is
    the phone security profile's "Enable Digest Authentication" (items 40-42): the registrar
    then challenges the phone's requests and needs ``digest_user`` and ``digest_password``.
    """

    mac: str
    model: str = DEFAULT_MODEL
    security_mode: SecurityMode = SecurityMode.NON_SECURE
    digest_user: str | None = None
    digest_password: str | None = None
    exclude_digest_credentials: bool = False
    load: str = ""
    encrypt_config: bool = False
    certificate: x509.Certificate | None = None
    autoregistered: bool = False
    changed_at: int = 0
    # CAPF (phone.cluster.capf): the certificate operation waiting for the phone's next boot,
    # and the outcome of the last CAPF session (``vphone lab show``).
    capf: CapfPending | None = None
    capf_result: CapfResult | None = None
    digest_authentication: bool = False

    def __post_init__(self) -> None:
        if not _MAC_HEX.fullmatch(self.mac):
            raise LabError(f"device MAC must be 12 upper-case hex digits, got {self.mac!r}")
        if not MODEL_RE.fullmatch(self.model):
            raise LabError(f"invalid phone model {self.model!r}")
        for label, text in (
            ("digest user", self.digest_user),
            ("digest password", self.digest_password),
            ("load", self.load),
        ):
            if text is not None and (text != text.strip() or not text.isprintable()):
                raise LabError(f"the {label} must be printable without surrounding spaces")

    @property
    def name(self) -> str:
        """``SEP<MAC>``."""
        return f"SEP{self.mac}"


TVS_CLIENT_CERTIFICATE = ("off", "required")
"""Values of ``tvs-client-certificate``: tvsd requests none (tvs-capf-wire.md 1.1); vphone's
former behaviour asked for a device certificate from the CAPF-trust store."""


@dataclass(frozen=True)
class Parameters:
    """Enterprise and service parameters the emulation uses (seed; items 16, 33, 40-43)."""

    prepare_cluster_for_rollback: bool = False
    itl_recovery_validity_years: int = 5
    cluster_id: str = "StandAloneCluster"
    autoregistration: bool = True
    sip_station_realm: str = "ccmsipline"
    nonce_validity: int = 600
    tvs_ttl: int = 86400
    tvs_client_certificate: str = "off"
    # The per-source SIP digest throttle (issue 13; phone.cluster.authguard); 0 = off.
    sip_auth_failures: int = 10
    sip_auth_lockout: int = 300


@dataclass(frozen=True)
class ParameterInfo:
    """A settable parameter: its CLI name, the :class:`Parameters` field, kind and meaning."""

    name: str
    field: str
    kind: str  # "enterprise", "service" or "callmanager"
    description: str


PARAMETERS: Mapping[str, ParameterInfo] = MappingProxyType(
    {
        p.name: p
        for p in (
            ParameterInfo(
                "prepare-cluster-for-rollback",
                "prepare_cluster_for_rollback",
                "enterprise",
                "Prepare Cluster for Rollback to pre-8.0: serve the empty ITL (items 16, 33)",
            ),
            ParameterInfo(
                "itl-recovery-validity-years",
                "itl_recovery_validity_years",
                "enterprise",
                "validity of a regenerated ITLRecovery certificate (5; 5/10/15/20 on 14.x)",
            ),
            ParameterInfo(
                "cluster-id",
                "cluster_id",
                "enterprise",
                "Cluster ID: the realm of SIP trunk digest challenges (item 43)",
            ),
            ParameterInfo(
                "autoregistration",
                "autoregistration",
                "callmanager",
                "unknown phones may register and get a device record (item 6)",
            ),
            ParameterInfo(
                "sip-station-realm",
                "sip_station_realm",
                "service",
                "SIP Station Realm of line-side digest challenges (item 40)",
            ),
            ParameterInfo(
                "nonce-validity",
                "nonce_validity",
                "service",
                "nonce validity time in seconds (item 41)",
            ),
            ParameterInfo(
                "tvs-ttl",
                "tvs_ttl",
                "service",
                "seconds a phone may cache a positive TVS answer (item 23)",
            ),
            ParameterInfo(
                "tvs-client-certificate",
                "tvs_client_certificate",
                "service",
                "off: TVS requests no client certificate (as tvsd); required: a device "
                "certificate from the CAPF-trust store (docs/networks.md)",
            ),
            ParameterInfo(
                "sip-auth-failures",
                "sip_auth_failures",
                "service",
                "failed SIP digest authentications from one source address that throttle it "
                "(0: no throttle; docs/sip.md)",
            ),
            ParameterInfo(
                "sip-auth-lockout",
                "sip_auth_lockout",
                "service",
                "seconds a throttled source is refused, and the window failures are counted "
                "in (0: no throttle; docs/sip.md)",
            ),
        )
    }
)
"""Every parameter ``vphone lab set`` accepts, by name."""


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise LabError(f"expected true or false, got {text!r}")


def _parse_int(text: str, *, minimum: int, maximum: int) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise LabError(f"expected a whole number, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise LabError(f"{value} is out of range ({minimum} to {maximum})")
    return value


def _parse_token(text: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise LabError(f"expected 1 to 64 letters, digits, '.', '_' or '-', got {text!r}")
    return value


def parse_parameter(name: str, text: str, profile: ReleaseProfile) -> tuple[str, bool | int | str]:
    """Validate ``text`` for parameter ``name``; return the field name and typed value.

    Raises:
        LabError: unknown parameter or invalid value.
    """
    info = PARAMETERS.get(name.strip().lower())
    if info is None:
        raise LabError(f"unknown parameter {name!r} (known: {', '.join(PARAMETERS)})")
    value: bool | int | str
    match info.field:
        case "prepare_cluster_for_rollback" | "autoregistration":
            value = _parse_bool(text)
        case "itl_recovery_validity_years":
            value = _parse_int(text, minimum=1, maximum=20)
            if value not in profile.itlrecovery_years:
                allowed = ", ".join(map(str, profile.itlrecovery_years))
                raise LabError(
                    f"release {profile.name} offers an ITLRecovery validity of {allowed} years"
                )
        case "nonce_validity":
            value = _parse_int(text, minimum=1, maximum=86400)
        case "tvs_ttl":
            value = _parse_int(text, minimum=0, maximum=10 * 86400)
        case "sip_auth_failures":
            value = _parse_int(text, minimum=0, maximum=1_000_000)
        case "sip_auth_lockout":
            value = _parse_int(text, minimum=0, maximum=86400)
        case "tvs_client_certificate":
            value = text.strip().lower()
            if value not in TVS_CLIENT_CERTIFICATE:
                raise LabError(f"expected one of {', '.join(TVS_CLIENT_CERTIFICATE)}, got {text!r}")
        case _:
            value = _parse_token(text)
    return info.field, value


@dataclass(frozen=True)
class LogEntry:
    """One line of a node's service log (TFTP, TVS, CallManager, CLI, ...)."""

    seq: int
    time: int
    host: str
    service: str
    message: str

    def __str__(self) -> str:
        stamp = datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{stamp} {self.host} {self.service}: {self.message}"


@dataclass(frozen=True)
class ItlReset:
    """``utils itl reset`` in progress (item 29).

    ``hosts`` are the TFTP nodes still serving the ITL signed by the reset key; restarting a
    node's TFTP service removes it and restores normal signing there. ``remote`` is the
    identity given to ``remotekey``; ``localkey`` uses the profile's other SAST key.
    """

    mode: str  # "localkey" or "remotekey"
    hosts: frozenset[str]
    remote: Identity | None = None


class ItlReport(Protocol):
    """What a 14.x phone reports about its ITL at registration (item 30)."""

    @property
    def tftp_host(self) -> str:
        """The TFTP server the ITL came from."""
        ...

    @property
    def itl_hash(self) -> str:
        """Lowercase hex SHA-1 of the installed ITL."""
        ...

    @property
    def timestamp(self) -> int:
        """Unix time the phone applied it."""
        ...


@dataclass(frozen=True)
class Registration:
    """The outcome of a registration attempt (what the ITL hash database did with the report)."""

    accepted: bool
    reason: str
    created: bool = False
    itl: HashOutcome | None = None


@dataclass(frozen=True)
class ConfigContext:
    """Everything a device config depends on besides the device record itself."""

    callmanagers: tuple[tuple[str, int, int], ...]
    tvs_members: tuple[tuple[str, int], ...]
    tftp_servers: tuple[str, ...]
    capf_host: str
    mixed_mode: bool
    autoregistration: bool
    signers: tuple[tuple[str, str], ...]  # (TFTP host, SHA-256 of its CallManager certificate)

    def key(self) -> str:
        """A digest that changes when (and only when) the context does."""
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True, init=False)
class ClusterSpec:
    """What ``vphone lab init`` asks for.

    ``release`` is the Unified CM release profile: ``8.x-11.5``, ``12.x``, ``14.x`` or a
    common spelling of one (``11.5``, ``12.5``, ``14``, ``15``), the word the CLI and scenario
    files use. ``tvs_nodes`` is the number of Unified CM nodes (TVS runs on every node, seed);
    the first ``tftp_nodes`` of them also run TFTP.

    ``profile=`` (API 1.0's name for ``release``) is still accepted, with a
    :class:`DeprecationWarning`, and so is reading ``spec.profile``.
    """

    name: str = "cluster1"
    release: str = DEFAULT_PROFILE
    tvs_nodes: int = 1
    tftp_nodes: int = 1
    mixed_mode: bool = False
    key_size: int = 2048
    itlrecovery_years: int = 5
    domain: str = "lab"

    def __init__(  # noqa: PLR0917 (the positional order API 1.0 callers know)
        self,
        name: str = "cluster1",
        release: str = DEFAULT_PROFILE,
        tvs_nodes: int = 1,
        tftp_nodes: int = 1,
        mixed_mode: bool = False,
        key_size: int = 2048,
        itlrecovery_years: int = 5,
        domain: str = "lab",
        *,
        profile: str | None = None,
    ) -> None:
        if profile is not None:
            warnings.warn(
                "ClusterSpec(profile=...) is now ClusterSpec(release=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            release = profile
        # A frozen dataclass sets its fields through object.__setattr__, as its own __init__ does.
        for field_name, value in (
            ("name", name),
            ("release", release),
            ("tvs_nodes", tvs_nodes),
            ("tftp_nodes", tftp_nodes),
            ("mixed_mode", mixed_mode),
            ("key_size", key_size),
            ("itlrecovery_years", itlrecovery_years),
            ("domain", domain),
        ):
            object.__setattr__(self, field_name, value)

    @property
    def profile(self) -> str:
        """Deprecated: :attr:`release`."""
        warnings.warn("ClusterSpec.profile is now ClusterSpec.release", DeprecationWarning, 2)
        return self.release


@dataclass
class ClusterState:
    """Everything about a cluster that is persisted (see :mod:`phone.cluster.store`)."""

    name: str
    profile: str
    domain: str
    nodes: list[Node]
    itlrecovery: Identity
    capf: Identity
    parameters: Parameters = field(default_factory=Parameters)
    mixed_mode: bool = False
    devices: dict[str, Device] = field(default_factory=dict)
    trust: dict[TrustStore, list[TrustEntry]] = field(default_factory=dict)
    itl_files: dict[str, bytes] = field(default_factory=dict)
    ctl_file: bytes | None = None
    hashes: ItlHashDatabase = field(default_factory=ItlHashDatabase)
    itl_reset: ItlReset | None = None
    registrations: dict[str, int] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    # SIP trunk side (items 43-44; phone.cluster.trunk), each by name (SIP realms by realm).
    trunk_profiles: dict[str, TrunkSecurityProfile] = field(default_factory=dict)
    trunks: dict[str, TrunkConfig] = field(default_factory=dict)
    application_users: dict[str, ApplicationUser] = field(default_factory=dict)
    sip_realms: dict[str, SipRealm] = field(default_factory=dict)
    # Failed SIP digest authentications by source address (phone.cluster.authguard).
    auth_failures: dict[str, AuthFailures] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0
    context_changed_at: int = 0
    context_key: str = ""
    next_seq: int = 1


# --- the cluster -----------------------------------------------------------------------------

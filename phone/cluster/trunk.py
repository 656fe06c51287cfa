"""SIP trunks of the emulated cluster: security profiles, application users, SIP realms.

Pure data and rules (items 43-44; seed, "Authentication, Integrity, and Authorization"):

* A :class:`TrunkSecurityProfile` lists the request types the trunk accepts (CUCM's "Accept
  out-of-dialog REFER", "Accept unsolicited notification", "Accept replaces header", "Accept
  presence subscription"), whether digest authentication is on (challenge realm: the Cluster
  ID enterprise parameter, item 43) and whether application-level authorization runs after it.
  As on CUCM's administration page, application-level authorization cannot be enabled without
  digest authentication (item 44): such a profile is refused when it is built.
* An :class:`ApplicationUser` is what a trunk peer authenticates as; it stores the digest hash
  HA1 = MD5(user:realm:password) (seed: the credentials are stored as a hash), never the
  password, and its own allowed request types for application-level authorization.
* A :class:`SipRealm` is what the cluster answers with when it is the UAC toward a trunk and
  the far end challenges it with 401/407 (item 43).

A cluster keeps all four in its state (:class:`phone.cluster.records.ClusterState`; a trunk is
stored as a :class:`TrunkConfig` naming its profile, as CUCM's SIP Trunk page names a SIP Trunk
Security Profile), the lab folder persists them (:mod:`phone.cluster.store`), ``vphone lab
trunk-profile|trunk|app-user|sip-realm`` configures them, and the registrar reads them from the
cluster (:class:`phone.cluster.registrar.Registrar`).

Trunk addresses are IP addresses or networks (``192.0.2.10``, ``192.0.2.0/24``): a request
whose source address is in one of them comes from that trunk's peer; when several trunks match,
the most specific address (longest prefix) wins.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from phone.errors import LabError, ProtocolError
from phone.wire.sip import (
    SipRequest,
    SipResponse,
    answer_challenge,
    digest_ha1,
    parse_challenge,
    parse_name_addr,
)


class RequestType(StrEnum):
    """The request types a trunk security profile allows or refuses (item 44)."""

    OUT_OF_DIALOG_REFER = "out-of-dialog-refer"
    UNSOLICITED_NOTIFY = "unsolicited-notify"
    REPLACES = "replaces"
    PRESENCE_SUBSCRIBE = "presence-subscribe"

    @property
    def short(self) -> str:
        """The short name the CLI takes and prints: ``refer``, ``notify``, ``replaces``,
        ``subscribe``."""
        return _SHORT[self]

    @classmethod
    def parse(cls, text: str) -> RequestType:
        """Accept a value such as ``out-of-dialog-refer`` or its short name ``refer``.

        Raises:
            LabError: anything else.
        """
        key = text.strip().lower()
        for kind in cls:
            if key in (kind.value, _SHORT[kind]):
                return kind
        names = ", ".join(_SHORT[k] for k in cls)
        raise LabError(f"unknown request type {text!r} (known: {names}, or all)")

    @classmethod
    def parse_list(cls, text: str) -> frozenset[RequestType]:
        """A comma-separated list (``refer,notify``), ``all``, or an empty text (none).

        Raises:
            LabError: an unknown name in the list.
        """
        names = [n.strip() for n in text.split(",") if n.strip()]
        if [n.lower() for n in names] == ["all"]:
            return frozenset(cls)
        return frozenset(cls.parse(n) for n in names)


_SHORT = {
    RequestType.OUT_OF_DIALOG_REFER: "refer",
    RequestType.UNSOLICITED_NOTIFY: "notify",
    RequestType.REPLACES: "replaces",
    RequestType.PRESENCE_SUBSCRIBE: "subscribe",
}


def short_names(kinds: Iterable[RequestType]) -> list[str]:
    """Short names of ``kinds`` in the order of :class:`RequestType` (for display)."""
    chosen = set(kinds)
    return [k.short for k in RequestType if k in chosen]


# --- validation ------------------------------------------------------------------------------

# Names of profiles, trunks and application users: CUCM allows letters, digits, '.', '_', '-'
# (and up to 50 characters on its pages). An application user's name is its digest user ID, so
# it must also be safe inside a quoted digest parameter.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HA1 = re.compile(r"[0-9a-f]{32}")
IpNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_name(kind: str, text: str) -> str:
    """``text`` if it is a valid name for a ``kind`` (trunk, profile, application user).

    Raises:
        LabError: empty, too long, or characters other than letters, digits, '.', '_', '-'.
    """
    if not _NAME.fullmatch(text):
        raise LabError(
            f"invalid {kind} name {text!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return text


def check_text(what: str, text: str, *, limit: int = 128) -> str:
    """``text`` if it can travel in a quoted digest parameter: printable, no quote or
    backslash, no surrounding spaces, 1 to ``limit`` characters.

    Raises:
        LabError: anything else (the message never repeats the text: it may be a password).
    """
    if (
        not text
        or len(text) > limit
        or text != text.strip()
        or not text.isprintable()
        or '"' in text
        or "\\" in text
    ):
        raise LabError(
            f"the {what} must be 1 to {limit} printable characters without quotes, "
            "backslashes or surrounding spaces"
        )
    return text


def check_password(what: str, text: str, *, limit: int = 128) -> str:
    """``text`` if it is a usable password: 1 to ``limit`` printable characters without
    surrounding spaces (the rule of device digest passwords). A password never travels in a
    header (only digests of it do), so quotes and backslashes are allowed.

    Raises:
        LabError: anything else (the message never repeats the password).
    """
    if not text or len(text) > limit or text != text.strip() or not text.isprintable():
        raise LabError(
            f"the {what} must be 1 to {limit} printable characters without surrounding spaces"
        )
    return text


def parse_address(text: str) -> str:
    """A trunk address in canonical form: ``IP`` or ``IP/PREFIX`` (a /32 or /128 is the bare IP).

    Raises:
        LabError: not an IP address or network, or host bits set after the prefix.
    """
    value = text.strip()
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        hint = ""
        try:
            network = ipaddress.ip_network(value, strict=False)
            hint = f"; did you mean {network}?"
        except ValueError:
            pass
        raise LabError(f"invalid trunk address {text!r}: {exc}{hint}") from None
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _source_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a request's source, or None if ``host`` is not one."""
    try:
        ip = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket reports ::ffff:192.0.2.10
    return ip


def request_type(request: SipRequest) -> RequestType | None:
    """Which controlled request type ``request`` is; None for an ordinary request.

    Out of dialog means no To tag (RFC 3261 12: a request inside a dialog carries the tag).
    """
    to_tag = parse_name_addr(request.header("To")).tag
    event = (request.get("Event") or "").split(";", 1)[0].strip().lower()
    if request.method == "REFER" and not to_tag:
        return RequestType.OUT_OF_DIALOG_REFER
    if request.method == "NOTIFY" and not to_tag:
        return RequestType.UNSOLICITED_NOTIFY
    if request.method == "INVITE" and request.get("Replaces") is not None:
        return RequestType.REPLACES
    if request.method == "SUBSCRIBE" and event == "presence":
        return RequestType.PRESENCE_SUBSCRIBE
    return None


@dataclass(frozen=True)
class TrunkSecurityProfile:
    """A SIP trunk security profile (items 43-44).

    ``challenge`` is the status the cluster challenges with: 401 (WWW-Authenticate) or 407
    (Proxy-Authenticate).

    Raises:
        LabError: an invalid name, application-level authorization without digest, or a bad
            challenge code.
    """

    name: str
    allowed: frozenset[RequestType] = frozenset()
    digest: bool = False
    application_authorization: bool = False
    challenge: int = 401

    def __post_init__(self) -> None:
        check_name("trunk security profile", self.name)
        object.__setattr__(self, "allowed", frozenset(self.allowed))
        # Seed, Authorization: "you must enable digest authentication in the SIP Trunk
        # Security Profile before application-level authorization can occur" (item 44).
        if self.application_authorization and not self.digest:
            raise LabError(
                f"trunk security profile {self.name}: application-level authorization requires "
                "digest authentication (item 44)"
            )
        if self.challenge not in (401, 407):
            raise LabError(f"trunk security profile {self.name}: challenge must be 401 or 407")


@dataclass(frozen=True)
class ApplicationUser:
    """An application user a trunk peer authenticates as; holds HA1, never the password.

    ``realm`` is the realm HA1 was computed for: the Cluster ID when the user was created
    (item 43). ``allowed`` are the request types of CUCM's Application User page, checked by
    application-level authorization (item 44). HA1 is left out of ``repr``.

    Raises:
        LabError: an invalid name or realm, or an HA1 that is not 32 lower-case hex digits.
    """

    name: str
    realm: str
    ha1: str = field(repr=False)
    allowed: frozenset[RequestType] = frozenset()

    def __post_init__(self) -> None:
        check_name("application user", self.name)
        check_text("realm", self.realm)
        if not _HA1.fullmatch(self.ha1):
            raise LabError(
                f"application user {self.name}: the digest hash is not an MD5 hex digest"
            )
        object.__setattr__(self, "allowed", frozenset(self.allowed))

    @classmethod
    def create(
        cls,
        name: str,
        password: str,
        *,
        realm: str,
        allowed: frozenset[RequestType] = frozenset(),
    ) -> ApplicationUser:
        """Derive the stored hash for ``realm`` (the Cluster ID) and forget the password.

        Seed, Digest Authentication: CUCM "calculates a credentials checksum that includes a
        hash of the username, password, and the realm" and stores the checksum: HA1 =
        MD5(user:realm:password). Changing the Cluster ID later invalidates it, as the realm is
        part of HA1.

        Raises:
            LabError: an invalid name, realm or password.
        """
        check_password("application user password", password)
        return cls(name, realm, digest_ha1(name, realm, password), allowed)


@dataclass(frozen=True)
class SipTrunk:
    """A SIP trunk: the source addresses that identify its peer and its security profile.

    ``addresses`` holds IP addresses or networks (``IP/PREFIX``), kept in canonical form.

    Raises:
        LabError: an invalid name, no address, or an address that is not an IP or a network.
    """

    name: str
    addresses: frozenset[str]
    profile: TrunkSecurityProfile

    def __post_init__(self) -> None:
        check_name("trunk", self.name)
        if not self.addresses:
            raise LabError(f"trunk {self.name} needs at least one address")
        object.__setattr__(self, "addresses", frozenset(parse_address(a) for a in self.addresses))

    @functools.cached_property
    def _networks(self) -> tuple[IpNetwork, ...]:
        return tuple(ipaddress.ip_network(a) for a in self.addresses)

    def match(self, host: str) -> int | None:
        """How specifically the trunk matches a request from ``host``: the prefix length of its
        longest address containing ``host`` (32 for an IPv4 address), or None."""
        ip = _source_ip(host)
        if ip is None:
            return None
        lengths = [n.prefixlen for n in self._networks if n.version == ip.version and ip in n]
        return max(lengths) if lengths else None


@dataclass(frozen=True)
class TrunkConfig:
    """A SIP trunk as the cluster stores it: its profile by name (CUCM's SIP Trunk page names a
    SIP Trunk Security Profile, so changing the profile changes every trunk using it).

    Raises:
        LabError: an invalid name, profile name or address, or no address.
    """

    name: str
    addresses: frozenset[str]
    profile: str

    def __post_init__(self) -> None:
        check_name("trunk", self.name)
        check_name("trunk security profile", self.profile)
        if not self.addresses:
            raise LabError(f"trunk {self.name} needs at least one address")
        object.__setattr__(self, "addresses", frozenset(parse_address(a) for a in self.addresses))

    def resolve(self, profile: TrunkSecurityProfile) -> SipTrunk:
        """The :class:`SipTrunk` the registrar uses, with ``profile`` (named ``self.profile``)."""
        return SipTrunk(self.name, self.addresses, profile)


@dataclass(frozen=True)
class SipRealm:
    """CUCM's SIP Realm entry: credentials the cluster answers a trunk's challenge with.

    Seed, Digest Authentication for Trunks: "Each user agent can have one set of digest
    credentials per realm", so a cluster keys them by realm. CUCM stores the password
    encrypted and decrypts it to compute the digest; the lab keeps it as it is (in
    ``cluster.json``, mode 0600). The password is left out of ``repr``.

    Raises:
        LabError: a realm, user or password that cannot travel in a digest header.
    """

    realm: str
    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        check_text("realm", self.realm)
        check_text("SIP realm user", self.user)
        check_password("SIP realm password", self.password)


def answer_as_uac(
    request: SipRequest,
    response: SipResponse,
    *,
    peer: str,
    realms: Iterable[SipRealm],
    cnonce: str,
) -> SipRequest | None:
    """The cluster as UAC: the request to resend after a 401/407, or None.

    ``peer`` is ``"line"`` or ``"trunk"``. Toward a line-side phone the cluster never answers
    a challenge (item 40); toward a trunk it answers with the :class:`SipRealm` credentials for
    the challenge's realm (item 43), and gives up (None) when it has none.
    """
    if peer == "line" or response.status not in (401, 407):
        return None
    header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    value = response.get(header)
    if value is None:
        return None
    try:
        challenge = parse_challenge(value)
    except ProtocolError:
        return None
    entry = next((r for r in realms if r.realm == challenge.realm), None)
    if entry is None:
        return None
    try:
        credentials = answer_challenge(
            challenge,
            username=entry.user,
            password=entry.password,
            method=request.method,
            uri=request.uri,
            cnonce=cnonce,
        )
    except ProtocolError:
        return None
    number, method = request.cseq
    name = "Authorization" if response.status == 401 else "Proxy-Authorization"
    return request.replace_headers(
        ("CSeq", f"{number + 1} {method}"),
        (name, credentials.render()),
        drop=("CSeq", "Authorization", "Proxy-Authorization"),
    )

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

Trunks are configured through the Python API (``SipRegistrar(..., trunks=...)``); the lab
folder does not persist them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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

    @classmethod
    def parse(cls, text: str) -> RequestType:
        """Accept a value such as ``out-of-dialog-refer``.

        Raises:
            LabError: anything else.
        """
        for kind in cls:
            if kind.value == text.strip().lower():
                return kind
        raise LabError(f"unknown request type {text!r} ({', '.join(k.value for k in cls)})")


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
        LabError: application-level authorization without digest, or a bad challenge code.
    """

    name: str
    allowed: frozenset[RequestType] = frozenset()
    digest: bool = False
    application_authorization: bool = False
    challenge: int = 401

    def __post_init__(self) -> None:
        if self.application_authorization and not self.digest:
            raise LabError(
                f"trunk security profile {self.name}: application-level authorization requires "
                "digest authentication (item 44)"
            )
        if self.challenge not in (401, 407):
            raise LabError(f"trunk security profile {self.name}: challenge must be 401 or 407")


@dataclass(frozen=True)
class ApplicationUser:
    """An application user a trunk peer authenticates as; holds HA1, never the password."""

    name: str
    realm: str
    ha1: str
    allowed: frozenset[RequestType] = frozenset()

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

        Changing the Cluster ID later invalidates it, as the realm is part of HA1.
        """
        return cls(name, realm, digest_ha1(name, realm, password), allowed)


@dataclass(frozen=True)
class SipTrunk:
    """A SIP trunk: the source addresses that identify its peer and its security profile."""

    name: str
    addresses: frozenset[str]
    profile: TrunkSecurityProfile


@dataclass(frozen=True)
class SipRealm:
    """CUCM's SIP Realm entry: credentials the cluster answers a trunk's challenge with."""

    realm: str
    user: str
    password: str


def answer_as_uac(
    request: SipRequest,
    response: SipResponse,
    *,
    peer: str,
    realms: tuple[SipRealm, ...],
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

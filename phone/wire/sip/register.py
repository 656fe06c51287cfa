"""The phone's side of a SIP registration, sans-IO, and the Cisco values a REGISTER carries.

:class:`RegisterClient` sends REGISTER, answers one 401/407 with the digest user and password
from the phone's config, and concludes with a :class:`RegisterOutcome` (phone-behaviour items
40-42).

Emulated [G]: the ITL report of item 30 travels in a ``X-Cisco-ITL-Hash`` header of the
REGISTER (:func:`format_itl_report`); a real 14.x phone sends it as a SIP alarm whose format is
not public. The phone's MAC travels as RFC 5626 ``+sip.instance`` in the Contact, in the
``urn:uuid:00000000-0000-0000-0000-<MAC>`` form Cisco phones use (:func:`instance_mac`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from phone.errors import ProtocolError
from phone.wire.sip.digest import answer_challenge, parse_challenge
from phone.wire.sip.message import SipRequest, SipResponse, warning_text
from phone.wire.sip.values import _PARSE_CACHE, _parse_params, parse_name_addr, parse_via

_HEX40 = re.compile(r"[0-9a-f]{40}")

ITL_HEADER = "X-Cisco-ITL-Hash"  # emulated [G]: see the module docstring


def format_itl_report(tftp_host: str, itl_hash: str, timestamp: int) -> str:
    """The emulated ITL report header value: ``<sha1-hex>;tftp=<host>;timestamp=<unix>``."""
    return f"{itl_hash.lower()};tftp={tftp_host};timestamp={int(timestamp)}"


def parse_itl_report(value: str) -> tuple[str, str, int]:
    """``(tftp_host, itl_hash, timestamp)`` of an ITL report header.

    Raises:
        ProtocolError: not a 40-hex-digit hash with a tftp host and a timestamp.
    """
    digest, _, rest = value.strip().partition(";")
    params = dict(_parse_params(rest, ITL_HEADER))
    host, stamp = params.get("tftp"), params.get("timestamp")
    if not _HEX40.fullmatch(digest.lower()) or not host or stamp is None or not stamp.isdigit():
        raise ProtocolError(f"bad {ITL_HEADER} {value[:80]!r}")
    return host, digest.lower(), int(stamp)


_INSTANCE = re.compile(r"<?urn:uuid:00000000-0000-0000-0000-([0-9A-Fa-f]{12})>?")


def instance_mac(contact: str) -> str | None:
    """The MAC in a Contact's ``+sip.instance="<urn:uuid:00000000-0000-0000-0000-MAC>"``."""
    # Pure: remembered per value (see values._split_list); the registrar asks twice per request.
    return _instance_mac(contact)


@functools.lru_cache(maxsize=_PARSE_CACHE)
def _instance_mac(contact: str) -> str | None:
    instance = parse_name_addr(contact).param("+sip.instance")
    if not instance:
        return None
    match = _INSTANCE.fullmatch(instance)
    return match[1].upper() if match else None


def _hex(random: Callable[[int], bytes], size: int) -> str:
    return random(size).hex()


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """How a registration ended, as the phone sees it."""

    ok: bool
    code: int
    reason: str
    expires: int | None = None
    rule: str = "item 1"  # the behaviour item a failure comes from (item 40, 41, 42 ...)
    # When a digest challenge came: every exchange, in order, as (kind, rule, text); kind is
    # "challenged" (the registrar's 401/407) or "answered" (the REGISTER with credentials and
    # the answer it got). The phone's trace shows them (issue 18 friction 7).
    exchanges: tuple[tuple[str, str, str], ...] = ()


def final_outcome(
    status: int, reason: str, why: str | None = None, *, expires: int | None = None
) -> RegisterOutcome:
    """How the phone reads a final answer other than a challenge: a success with ``expires``,
    or a refusal whose Warning text ``why`` may name the behaviour item behind it.

    Shared by :meth:`RegisterClient.receive` and the in-memory registration that skips the
    messages (:mod:`phone.cluster.registrar_direct`), so both read an answer alike."""
    if 200 <= status < 300:
        return RegisterOutcome(True, status, reason, expires)
    rule = re.search(r"\(item (\d+)\)", why or "")
    return RegisterOutcome(
        False,
        status,
        f"{reason}: {why}" if why else reason,
        rule=f"item {rule[1]}" if rule else "item 1",
    )


class RegisterClient:
    """The phone's side of a registration, sans-IO.

    ``start()`` gives the REGISTER to send; ``receive(response)`` gives the next request (the
    same REGISTER with credentials after a 401/407), None to keep waiting (1xx, a response to
    another transaction), or the :class:`RegisterOutcome`.

    The phone answers a challenge with the digest user and password of its config (item 40);
    without them the registration fails (item 42). It answers at most one challenge per
    nonce: a second non-stale challenge means the credentials were refused. A ``stale=true``
    challenge (an expired nonce, item 41) is answered again with the fresh nonce.
    """

    MAX_CHALLENGES = 3

    def __init__(
        self,
        *,
        registrar: str,
        transport: str,
        local: tuple[str, int],
        mac: str,
        model: str,
        user: str | None = None,
        password: str | None = None,
        expires: int = 3600,
        extra_headers: tuple[tuple[str, str], ...] = (),
        random: Callable[[int], bytes],
    ) -> None:
        self.registrar = registrar
        self.transport = transport.upper()
        self.local = local
        self.mac = mac.upper()
        self.model = model
        self.user = user
        self.password = password
        self.expires = expires
        self.extra_headers = extra_headers
        self._random = random
        self.call_id = f"{_hex(random, 8)}@{local[0]}"
        self.tag = _hex(random, 4)
        self.cseq = 1
        self.challenges = 0
        self.answered: str | None = None  # the nonce last answered
        self.current: SipRequest | None = None
        self._authorization: str | None = None  # the header the REGISTER in flight carries
        self.exchanges: list[tuple[str, str, str]] = []  # RegisterOutcome.exchanges

    @property
    def uri(self) -> str:
        """The Request-URI: the registrar's domain."""
        return f"sip:{self.registrar}"

    def _request(self, auth: tuple[str, str] | None) -> SipRequest:
        aor_user = self.user or f"SEP{self.mac}"
        host, port = self.local
        transport = self.transport.lower()
        headers: list[tuple[str, str]] = [
            (
                "Via",
                f"SIP/2.0/{self.transport} {host}:{port};branch=z9hG4bK{_hex(self._random, 8)}"
                ";rport",
            ),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{aor_user}@{self.registrar}>;tag={self.tag}"),
            ("To", f"<sip:{aor_user}@{self.registrar}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            (
                "Contact",
                f"<sip:{aor_user}@{host}:{port};transport={transport}>;"
                f'+sip.instance="<urn:uuid:00000000-0000-0000-0000-{self.mac}>"',
            ),
            ("User-Agent", f"Cisco-CP{self.model}/vphone"),
            ("Expires", str(self.expires)),
        ]
        if auth is not None:
            headers.append(auth)
        headers.extend(self.extra_headers)
        self.current = SipRequest("REGISTER", self.uri, tuple(headers))
        return self.current

    def start(self) -> SipRequest:
        """The first REGISTER (no credentials: the registrar challenges if it wants them)."""
        return self._request(None)

    def matches(self, response: SipResponse) -> bool:
        """Whether ``response`` answers the REGISTER in flight (Call-ID, CSeq and branch)."""
        if self.current is None:
            return False
        try:
            return (
                response.call_id == self.call_id
                and response.cseq == (self.cseq, "REGISTER")
                and parse_via(response.header("Via")).branch
                == parse_via(self.current.header("Via")).branch
            )
        except ProtocolError:
            return False

    def receive(self, response: SipResponse) -> SipRequest | RegisterOutcome | None:
        """React to a response (see the class docstring)."""
        if not self.matches(response) or response.status < 200:
            return None
        if self._authorization is not None:
            self.exchanges.append(
                (
                    "answered",
                    "item 40",
                    f"REGISTER (CSeq {self.cseq}) with {self._authorization} for digest user "
                    f"{self.user!r} -> {response.status} {response.reason}",
                )
            )
        step = self._receive(response)
        if isinstance(step, RegisterOutcome) and self.exchanges:
            return dataclasses.replace(step, exchanges=tuple(self.exchanges))
        return step

    def _receive(self, response: SipResponse) -> SipRequest | RegisterOutcome | None:
        if 200 <= response.status < 300:
            expires = response.get("Expires")
            return final_outcome(
                response.status,
                response.reason,
                expires=int(expires) if expires and expires.isdigit() else None,
            )
        if response.status not in (401, 407):
            return final_outcome(response.status, response.reason, warning_text(response))
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        value = response.get(header)
        if value is None:
            return RegisterOutcome(False, response.status, f"{response.reason} without {header}")
        try:
            challenge = parse_challenge(value)
        except ProtocolError as exc:
            return RegisterOutcome(False, response.status, f"unusable challenge: {exc}")
        if self.user is None or self.password is None:
            return RegisterOutcome(
                False,
                response.status,
                f"digest challenge from realm {challenge.realm!r} but the configuration holds "
                "no digest credentials (item 42)",
                rule="item 42",
            )
        self.challenges += 1
        self.exchanges.append(
            (
                "challenged",
                "item 41" if challenge.stale else "item 40",
                f"REGISTER (CSeq {self.cseq}) -> {response.status} {response.reason}: digest "
                f"challenge, realm {challenge.realm!r}"
                + (", stale nonce (expired: a fresh one)" if challenge.stale else ""),
            )
        )
        if self.answered is not None and not challenge.stale:
            return RegisterOutcome(
                False,
                response.status,
                f"digest credentials of {self.user!r} refused in realm {challenge.realm!r}",
                rule="item 40",
            )
        if self.challenges > self.MAX_CHALLENGES:
            return RegisterOutcome(
                False, response.status, "too many digest challenges", rule="item 40"
            )
        try:
            credentials = answer_challenge(
                challenge,
                username=self.user,
                password=self.password,
                method="REGISTER",
                uri=self.uri,
                cnonce=_hex(self._random, 8),
            )
        except ProtocolError as exc:
            return RegisterOutcome(False, response.status, str(exc))
        self.answered = challenge.nonce
        self.cseq += 1
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self._authorization = name
        return self._request((name, credentials.render()))

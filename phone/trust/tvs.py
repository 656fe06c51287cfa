"""The phone's Trust Verification Service client logic (phone-behaviour items 20-24).

Pure: the network exchange is a callable handed in by the device layer, and the clock is a
parameter. What lives here is *when* to ask, *whom* to ask, how to check the server, and the
volatile cache of positive answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from phone.errors import NetworkError
from phone.formats.certfields import cucm_name, serial_bytes
from phone.formats.trustlist import Role, TrustList

TVS_PORT = 2445  # item 21
MAX_SERVERS = 5  # item 21: up to five TVS members, by priority


@dataclass(frozen=True, slots=True)
class TvsServer:
    """A TVS member from the phone's config."""

    host: str
    port: int = TVS_PORT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TvsAnswer:
    """What one TVS server answered to a query (item 22)."""

    valid: bool
    roles: tuple[int, ...]
    ttl: int
    certificates: tuple[bytes, ...] = ()
    reason: str = ""


class TlsRefused(NetworkError):
    """The TLS handshake with a TVS (or other) server was refused by the phone's checks."""


ServerCheck = Callable[[x509.Certificate], str | None]
"""Return None when the server certificate is trusted, else the reason it is not."""


class TvsExchange(Protocol):
    """Ask ``server`` about the certificate with ``issuer`` and ``serial``.

    Implementations (the network backends) open TLS, call ``check_server`` with the server's
    certificate *before* sending anything and raise :class:`TlsRefused` when it returns a
    reason; they raise :class:`phone.errors.NetworkError` when the server cannot be reached.
    """

    def __call__(
        self, server: TvsServer, issuer: str, serial: bytes, check_server: ServerCheck
    ) -> TvsAnswer: ...


@dataclass(frozen=True, slots=True)
class TvsOutcome:
    """The phone's conclusion after asking TVS (or deciding not to)."""

    valid: bool
    roles: frozenset[int]
    certificate: x509.Certificate | None
    server: str | None
    reason: str
    rule: str
    cached: bool = False


@dataclass(slots=True)
class _Entry:
    certificate: x509.Certificate
    roles: frozenset[int]
    expires: datetime


def _no(reason: str, rule: str, server: str | None = None) -> TvsOutcome:
    return TvsOutcome(False, frozenset(), None, server, reason, rule)


def tvs_records(itl: TrustList | None) -> tuple[bytes, ...]:
    """DER certificates of the installed ITL's TVS-role records."""
    if itl is None:
        return ()
    return tuple(
        r.certificate_der for r in itl.with_role(Role.TVS) if r.certificate_der is not None
    )


@dataclass
class TvsClient:
    """The phone's TVS client; one per phone. Its cache is volatile (item 23)."""

    _cache: dict[tuple[str, bytes], _Entry] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget every cached answer (a reboot or power cycle, item 23)."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def ask(
        self,
        issuer: str,
        serial: bytes,
        *,
        itl: TrustList | None,
        servers: Sequence[TvsServer],
        exchange: TvsExchange,
        now: datetime,
    ) -> TvsOutcome:
        """Ask TVS whether the certificate ``issuer``/``serial`` is trusted, and for which roles.

        Fails closed (item 24): any doubt is an invalid outcome with the reason.
        """
        trusted_tvs = tvs_records(itl)
        if not trusted_tvs:
            # Item 20 and the 8945 log line "Not using TVS - TVS not in Trust list" [S50].
            return _no("not using TVS: the installed ITL has no TVS record", "item 20")
        key = (issuer, serial)
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            return TvsOutcome(
                True,
                entry.roles,
                entry.certificate,
                None,
                f"cached TVS answer, valid until {entry.expires:%Y-%m-%d %H:%M:%SZ}",
                "item 23",
                cached=True,
            )
        if not servers:
            return _no("no TVS server in the phone's configuration", "item 21")

        def check_server(certificate: x509.Certificate) -> str | None:
            # Item 21: the TVS server certificate must be a TVS record of the *current* ITL.
            der = certificate.public_bytes(Encoding.DER)
            if der in trusted_tvs:
                return None
            return (
                f"server certificate {cucm_name(certificate.subject)} "
                f"(serial {serial_bytes(certificate.serial_number).hex()}) "
                "is not a TVS record of the installed ITL"
            )

        failures: list[str] = []
        for server in list(servers)[:MAX_SERVERS]:
            try:
                answer = exchange(server, issuer, serial, check_server)
            except NetworkError as exc:
                failures.append(f"TVS {server}: {exc}")
                continue
            return self._conclude(answer, issuer, serial, str(server), now)
        return _no("; ".join(failures) + " (fail closed)", "item 24")

    def _conclude(
        self, answer: TvsAnswer, issuer: str, serial: bytes, server: str, now: datetime
    ) -> TvsOutcome:
        if not answer.valid:
            why = f": {answer.reason}" if answer.reason else ""
            return _no(f"TVS {server} answered invalid{why}", "item 24", server)
        certificate = _matching_certificate(answer.certificates, issuer, serial)
        if certificate is None:
            return _no(
                f"TVS {server} answered valid but returned no certificate with serial "
                f"{serial.hex()} and issuer {issuer!r}",
                "item 24",
                server,
            )
        roles = frozenset(answer.roles)
        ttl = max(0, answer.ttl)
        if ttl:
            self._cache[(issuer, serial)] = _Entry(certificate, roles, now + timedelta(seconds=ttl))
        return TvsOutcome(
            True, roles, certificate, server, f"TVS {server} vouched (TTL {ttl} s)", "item 22"
        )


def _matching_certificate(
    certificates: Sequence[bytes], issuer: str, serial: bytes
) -> x509.Certificate | None:
    for der in certificates:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if (
            serial_bytes(certificate.serial_number) == serial
            and cucm_name(certificate.issuer) == issuer
        ):
            return certificate
    return None

"""The phone's Trust Verification Service client logic (phone-behaviour items 20-24).

Pure: the network exchange is a callable handed in by the device layer, and the clock is a
parameter. What lives here is *when* to ask, *whom* to ask, *how* to ask, how to check the
server, and the volatile cache of positive answers.

How to ask (tvs-capf-wire.md 1.3; docs/networks.md "TVS"):

* the phone holds the certificate it asks about (a new ITL's or CTL's signer in that list's own
  SAST record, the CAPF server's certificate, a signer whose certificate came in a trust list):
  **VERIFY** with the DER certificate, as tvsd implements it; the answer carries no certificate,
  the one the phone sent is the one vouched for;
* it knows only issuer and serial (a ``.sgn`` signer absent from its lists): **QUERY** with
  vphone's emulated issuer/serial elements [G]. A VERIFY-only server (tvsd) closes the
  connection without answering a QUERY (1.7, ``tvs-raw-query-request``); the phone then marks
  that server verify-only until the next reboot (volatile, like the cache), asks the next
  member, and, when none answers, fails closed (item 24): the file is rejected and the old
  state kept, exactly as with TVS unreachable. Nothing else is affected: VERIFY questions still
  go to that server. A real deployment survives this because its signers that matter (TFTP,
  SAST) are in the ITL, so the phone never needs a QUERY; only a file whose signer is in no
  list is lost, which no VERIFY-only server could vouch for anyway (it needs the certificate).
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


class QueryNotAnswered(NetworkError):
    """A TVS server closed the connection on a QUERY without answering: a VERIFY-only server
    such as tvsd (tvs-capf-wire.md 1.3, 1.7)."""


ServerCheck = Callable[[x509.Certificate], str | None]
"""Return None when the server certificate is trusted, else the reason it is not."""


class TvsExchange(Protocol):
    """Ask ``server`` about the certificate with ``issuer`` and ``serial``: VERIFY with
    ``certificate`` (DER) when it is given, else QUERY (module docstring).

    Implementations (the network backends) open TLS, call ``check_server`` with the server's
    certificate *before* sending anything and raise :class:`TlsRefused` when it returns a
    reason; they raise :class:`QueryNotAnswered` when a QUERY is dropped unanswered and
    :class:`phone.errors.NetworkError` when the server cannot be reached.
    """

    def __call__(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        certificate: bytes | None,
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
    # Servers that dropped a QUERY unanswered (module docstring); volatile like the cache.
    _verify_only: set[str] = field(default_factory=set)

    def clear(self) -> None:
        """Forget every cached answer and verify-only server (a reboot or power cycle, item 23)."""
        self._cache.clear()
        self._verify_only.clear()

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
        certificate: x509.Certificate | None = None,
    ) -> TvsOutcome:
        """Ask TVS whether the certificate ``issuer``/``serial`` is trusted, and for which roles.

        With ``certificate`` (the phone holds it) the question is a VERIFY, else a QUERY
        (module docstring). Fails closed (item 24): any doubt is an invalid outcome with the
        reason.
        """
        trusted_tvs = tvs_records(itl)
        if not trusted_tvs:
            # Item 20 and the 8945 log line "Not using TVS - TVS not in Trust list" [S50].
            return _no("not using TVS: the installed ITL has no TVS record", "item 20")
        der = certificate.public_bytes(Encoding.DER) if certificate is not None else None
        # A VERIFY answer is about that certificate, a QUERY answer about issuer and serial.
        key = ("verify", der) if der is not None else (issuer, serial)
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
            if der is None and str(server) in self._verify_only:
                failures.append(f"TVS {server} answers VERIFY only (it dropped a QUERY before)")
                continue
            try:
                answer = exchange(server, issuer, serial, check_server, der)
            except QueryNotAnswered as exc:
                self._verify_only.add(str(server))
                failures.append(
                    f"TVS {server}: {exc}: it answers VERIFY only, and the phone holds no "
                    "certificate for this signer to VERIFY"
                )
                continue
            except NetworkError as exc:
                failures.append(f"TVS {server}: {exc}")
                continue
            return self._conclude(
                answer,
                key=key,
                issuer=issuer,
                serial=serial,
                held=certificate,
                server=str(server),
                now=now,
            )
        return _no("; ".join(failures) + " (fail closed)", "item 24")

    def _conclude(
        self,
        answer: TvsAnswer,
        *,
        key: tuple[str, bytes],
        issuer: str,
        serial: bytes,
        held: x509.Certificate | None,
        server: str,
        now: datetime,
    ) -> TvsOutcome:
        if not answer.valid:
            why = f": {answer.reason}" if answer.reason else ""
            return _no(f"TVS {server} answered invalid{why}", "item 24", server)
        # VERIFY vouches for the certificate sent; QUERY must return the one asked about.
        certificate = held or _matching_certificate(answer.certificates, issuer, serial)
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
            self._cache[key] = _Entry(certificate, roles, now + timedelta(seconds=ttl))
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

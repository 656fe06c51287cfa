"""Failed SIP digest authentications per source, and the throttle they lead to (issue 13).

Pure data and rules (no clock: ``now`` comes in, in Unix seconds). The cluster keeps one
:class:`AuthFailures` record per source address in its state (so ``vphone lab show`` sees it)
and writes the failures into its log (``vphone lab log``): :mod:`phone.cluster.authadmin`.
``docs/sip.md``, "Guessing digest passwords", says why it works this way and how it differs
from CUCM.

The rule, with ``threshold`` = the ``sip-auth-failures`` parameter and ``lockout`` = the
``sip-auth-lockout`` parameter (either 0: no throttle, no records; failures are still logged):

* a source is an IP address (an IPv4-mapped IPv6 address counts as its IPv4 address); the
  port and the transport do not matter, so an attacker cannot get a fresh count per port;
* a failure counts toward the threshold when it comes within ``lockout`` seconds of the
  source's previous counted failure; otherwise the count starts again at 1;
* the ``threshold``-th failure throttles the source for ``lockout`` seconds: until
  ``last + lockout`` (exclusive: at that second the source is free again, with a count of 0);
* while throttled, every request of the source but keepalives is refused without looking at
  its credentials (so guessing learns nothing, not even a right password); refusals are
  counted in the record, not logged one by one;
* a good digest authentication from the source forgets its record; a keepalive does not.

Records are bounded (:data:`SOURCE_LIMIT`): when full, records whose window has passed go
first, then the oldest that are not throttled.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

__all__ = [
    "SOURCE_LIMIT",
    "AuthFailures",
    "after_failure",
    "source_key",
]

SOURCE_LIMIT = 10_000  # sources remembered per cluster


@dataclass(frozen=True, slots=True)
class AuthFailures:
    """The failed digest authentications of one source address (module docstring)."""

    source: str  # the address (source_key)
    failures: int  # counted failures in the current window
    last: int  # Unix time of the last counted failure
    user: str = ""  # the digest user of the last failure, as sent
    until: int = 0  # throttled while now < until; 0: not throttled
    refused: int = 0  # requests refused during the current throttle

    def throttled(self, now: int) -> bool:
        """Whether the source is throttled at ``now``."""
        return now < self.until

    def to_json(self) -> dict[str, int | str]:
        """A JSON-ready dict (``cluster.json``, ``lab show --json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, object]) -> AuthFailures:
        """The record of :meth:`to_json`."""

        def number(name: str) -> int:
            item = value.get(name, 0)
            return int(item) if isinstance(item, (int, str)) else 0

        return cls(
            source=str(value["source"]),
            failures=number("failures"),
            last=number("last"),
            user=str(value.get("user", "")),
            until=number("until"),
            refused=number("refused"),
        )


def source_key(host: str) -> str:
    """The address a throttle counts by: ``host`` normalised (IPv4-mapped IPv6 as IPv4)."""
    text = host.strip().strip("[]")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def after_failure(
    record: AuthFailures | None,
    source: str,
    user: str,
    now: int,
    *,
    threshold: int,
    lockout: int,
) -> AuthFailures:
    """The record of ``source`` after one more failed authentication at ``now``.

    ``threshold`` and ``lockout`` are positive (the throttle is on). The returned record is
    throttled when this failure is the ``threshold``-th of its window.
    """
    fresh = (
        record is None
        or (record.until and now >= record.until)  # a throttle that ended starts afresh
        or now - record.last > lockout  # the window passed
    )
    failures = 1 if fresh or record is None else record.failures + 1
    until = now + lockout if failures >= threshold else 0
    return AuthFailures(source, failures, now, user, until, 0)

"""An in-memory registration that skips the SIP messages where they cannot change the outcome.

A phone registering in memory (:class:`phone.net.memory.MemoryBackend`) runs the same SIP
exchange as over sockets: REGISTER, the registrar's answer, the client's reading of it. Where
no digest is configured that exchange has one round trip whose outcome depends only on the
device record, the signaling check and :meth:`Cluster.register`; building and parsing the
messages cost about a sixth of a fleet's time (issue 17). :func:`register_direct` computes
that round trip's outcome without the messages, and declines (returns None) wherever the
full exchange could say something else:

* the device is unknown (auto-registration, 404), uses digest authentication (challenges,
  nonces), or its source is a trunk's address or has a record of failed authentications
  (throttle; its expiry is logged by the full path);
* the ITL report does not survive its header form (the full path answers 400).

Everything the full exchange changes is changed the same way: the registrar's counters, the
registrar's random source (one To tag drawn per response, so every later draw is the same),
the cluster's registration, log and counters. The only thing skipped is the registrar's
retransmission cache, which a fresh in-memory request never hits. A differential test
(tests/test_registrar_direct.py) runs both paths on the same inputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from phone.cluster.authguard import source_key
from phone.cluster.registrar import MAX_EXPIRES, Registrar
from phone.cluster.signaling import ItlReportValue, Source, signaling_problem
from phone.errors import LabError, ProtocolError
from phone.wire.sip import format_itl_report, parse_itl_report

__all__ = ["DirectAnswer", "register_direct"]

REGISTER_EXPIRES = 3600  # what the phone's REGISTER asks for (RegisterClient's default)


@dataclass(frozen=True, slots=True)
class DirectAnswer:
    """The registrar's answer as the client reads it: status, reason phrase, the Warning
    text of a refusal (None for a success) and the granted expiry of a success."""

    status: int
    phrase: str
    why: str | None = None
    expires: int | None = None


def register_direct(
    registrar: Registrar,
    *,
    mac: str,
    model: str,
    itl_report: tuple[str, str, int] | None,
    source: Source,
    now: datetime,
) -> DirectAnswer | None:
    """The answer to a phone's first REGISTER without the messages, or None: run the exchange.

    ``itl_report`` is (tftp host, ITL hash, timestamp) as the phone reports it.
    """
    cluster = registrar.cluster
    if registrar.trunk_for(source.host) is not None:
        return None
    failures = cluster.state.auth_failures
    if failures and source_key(source.host) in failures:
        return None  # the throttle may refuse or end (and log it): the full path decides
    device = cluster.device(mac.upper())
    if device is None or device.digest_authentication:
        return None
    report: ItlReportValue | None = None
    if itl_report is not None:
        report = _through_header(itl_report)
        if report is None:
            return None
    problem = signaling_problem(cluster, device, source, now)
    if problem is not None:
        return _refused(registrar, problem)
    try:
        outcome = cluster.register(
            device.mac, now=now, model=model.split("/", 1)[0] or None, itl_report=report
        )
    except LabError as exc:
        return _refused(registrar, str(exc))
    if not outcome.accepted:
        return _refused(registrar, outcome.reason)
    registrar.random(4)  # the response's To tag (Registrar._tag): the same draws as the full path
    registrar.accepted += 1
    return DirectAnswer(200, "OK", expires=min(REGISTER_EXPIRES, MAX_EXPIRES))


@functools.lru_cache(maxsize=256)
def _through_header(itl_report: tuple[str, str, int]) -> ItlReportValue | None:
    """The ITL report as the registrar reads it from its header, or None where the header
    would not parse (the full path answers 400). A pure function of the report: a fleet's
    phones report the same few (host, hash, time) values, so each is formatted and parsed once.
    """
    try:
        return ItlReportValue(*parse_itl_report(format_itl_report(*itl_report)))
    except ProtocolError:
        return None


def _refused(registrar: Registrar, why: str) -> DirectAnswer:
    registrar.random(4)  # Registrar._refuse draws a To tag
    registrar.refused += 1
    return DirectAnswer(403, "Forbidden", why)

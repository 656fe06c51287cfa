"""The cluster's side of the SIP digest throttle: a mixin of :class:`phone.cluster.cluster.Cluster`.

The rule is in :mod:`phone.cluster.authguard`; this keeps its records in the cluster's state
(``ClusterState.auth_failures``, saved in ``cluster.json``) and writes the cluster log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from phone.cluster.authguard import SOURCE_LIMIT, AuthFailures, after_failure, source_key
from phone.cluster.records import ClusterState

__all__ = ["SipAuthGuard"]


def _stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SipAuthGuard:
    """Per-source digest failures of a cluster (mixed into ``Cluster``; module docstring).

    The cluster provides ``state`` (with ``parameters`` and ``auth_failures``), ``revision``,
    ``publisher`` and ``_log``. A change of a record moves ``revision`` (so ``lab serve``
    saves it) without ``_commit``: nothing a phone downloads depends on it.
    """

    state: ClusterState
    revision: int

    if TYPE_CHECKING:  # provided by Cluster; declared for the type checker only, no stub

        def _log(self, now: datetime | int, host: str, service: str, message: str) -> object: ...

    def _throttle_settings(self) -> tuple[int, int] | None:
        params = self.state.parameters
        threshold, lockout = params.sip_auth_failures, params.sip_auth_lockout
        return (threshold, lockout) if threshold > 0 and lockout > 0 else None

    def sip_auth_sources(self) -> Sequence[AuthFailures]:
        """Every source record, most recent failure first."""
        return sorted(self.state.auth_failures.values(), key=lambda r: (-r.last, r.source))

    def sip_auth_throttled(self, host: str, now: int, *, node: str) -> AuthFailures | None:
        """The record of ``host`` if it is throttled at ``now`` (the refusal is counted), else
        None. A throttle found ended is logged once and its record forgotten."""
        key = source_key(host)
        record = self.state.auth_failures.get(key)
        if record is None or not record.until:
            return None
        if self._throttle_settings() is None:
            return None  # switched off: not enforced (the record stays visible until reset)
        if record.throttled(now):
            record = dataclasses.replace(record, refused=record.refused + 1)
            self.state.auth_failures[key] = record
            self.revision += 1
            return record
        del self.state.auth_failures[key]
        self.revision += 1
        self._log(
            now,
            node,
            "CallManager",
            f"SIP source {key} no longer throttled (it ended {_stamp(record.until)}; "
            f"{record.refused} requests refused)",
        )
        return None

    def sip_auth_failed(
        self, host: str, where: str, user: str, why: str, now: int, *, node: str
    ) -> AuthFailures | None:
        """Record a failed digest authentication from ``host`` (``where``: address:port/
        transport, for the log) for digest user ``user``; return the source's new record
        (None when the throttle is off)."""
        key = source_key(host)
        settings = self._throttle_settings()
        record: AuthFailures | None = None
        count = ""
        if settings is not None:
            threshold, lockout = settings
            record = after_failure(
                self.state.auth_failures.get(key),
                key,
                user,
                now,
                threshold=threshold,
                lockout=lockout,
            )
            self._remember(record, now, lockout)
            count = f" (failure {record.failures} of {threshold} from this source)"
        self._log(
            now,
            node,
            "CallManager",
            f"SIP digest authentication failed: source {where}, user {user!r}: {why}{count}",
        )
        if record is not None and record.until:
            self._log(
                now,
                node,
                "CallManager",
                f"SIP source {key} throttled for {record.until - now} s after "
                f"{record.failures} failed digest authentications (until {_stamp(record.until)})",
            )
        return record

    def sip_auth_succeeded(self, host: str) -> None:
        """A good digest authentication from ``host``: forget its failures."""
        if self.state.auth_failures.pop(source_key(host), None) is not None:
            self.revision += 1

    def sip_auth_reset(self, host: str | None = None) -> int:
        """Forget the record of ``host`` (every record when None); return how many went."""
        table = self.state.auth_failures
        keys = list(table) if host is None else [k for k in (source_key(host),) if k in table]
        for key in keys:
            del table[key]
        if keys:
            self.revision += 1
        return len(keys)

    def _remember(self, record: AuthFailures, now: int, lockout: int) -> None:
        table = self.state.auth_failures
        table[record.source] = record
        self.revision += 1
        if len(table) <= SOURCE_LIMIT:
            return
        for key in [k for k, r in table.items() if not r.throttled(now) and now - r.last > lockout]:
            del table[key]
        if len(table) > SOURCE_LIMIT:
            free = sorted((r.last, k) for k, r in table.items() if not r.throttled(now))
            for _last, key in free[: len(table) - SOURCE_LIMIT]:
                del table[key]

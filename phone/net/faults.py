"""A backend wrapper that breaks things on purpose: for tests and for rehearsing failures.

Wraps any backend and, per file name (a glob, case-insensitive), drops the file (the server
says "not found"), times it out, truncates it, flips one byte (a man in the middle editing a
signed file) or replaces it with other bytes; it can also take TVS servers down. Everything
else passes through untouched.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from enum import StrEnum

from phone.catalog.models import Transport
from phone.device.port import (
    Backend,
    CapfConversation,
    RegisterRequest,
    RegisterResult,
    Requester,
    SccpConversation,
)
from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout, UsageError
from phone.pki import Identity
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsServer


class FaultKind(StrEnum):
    """What a fault does to a file."""

    DROP = "drop"
    TIMEOUT = "timeout"
    TRUNCATE = "truncate"
    TAMPER = "tamper"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class Fault:
    """One rule: files matching ``pattern`` suffer ``kind``."""

    kind: FaultKind
    pattern: str
    data: bytes = b""  # the replacement bytes for REPLACE

    def matches(self, name: str) -> bool:
        """Whether the rule applies to file ``name``."""
        return fnmatch.fnmatch(name.lower().lstrip("/"), self.pattern.lower())

    def apply(self, name: str, data: bytes) -> bytes:
        """The bytes the phone receives instead of ``data``."""
        if self.kind is FaultKind.DROP:
            raise FileNotFoundOnServer(name)
        if self.kind is FaultKind.TIMEOUT:
            raise TransferTimeout(f"{name}: no answer (fault injected)")
        if self.kind is FaultKind.TRUNCATE:
            return data[: len(data) // 2]
        if self.kind is FaultKind.TAMPER:
            # The last byte is inside what every signature covers (payload or last record).
            return data[:-1] + bytes([data[-1] ^ 0x01]) if data else data
        return self.data


def parse_fault(text: str) -> Fault:
    """``KIND:PATTERN`` as typed on the command line (``tamper:SEP*.cnf.xml.sgn``)."""
    kind, sep, pattern = text.partition(":")
    if not sep or not pattern:
        raise UsageError(f"bad fault {text!r}: use KIND:PATTERN, e.g. tamper:ITLFile.tlv")
    try:
        return Fault(FaultKind(kind.lower()), pattern)
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind if k is not FaultKind.REPLACE)
        raise UsageError(f"unknown fault kind {kind!r}; use one of {kinds}") from None


@dataclass
class FaultyBackend:
    """A :class:`phone.device.port.Backend` that applies ``faults`` to what ``inner`` returns."""

    inner: Backend
    faults: list[Fault] = field(default_factory=list)
    tvs_down: set[str] = field(default_factory=set)  # TVS host names that do not answer

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """Fetch through ``inner``, then apply the first matching fault."""
        for fault in self.faults:
            if fault.matches(name) and fault.kind in (FaultKind.DROP, FaultKind.TIMEOUT):
                return fault.apply(name, b"")
        data = self.inner.fetch(server, name, transport=transport, requester=requester)
        for fault in self.faults:
            if fault.matches(name):
                return fault.apply(name, data)
        return data

    def tvs_query(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        *,
        client: Identity,
        requester: Requester,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        """Refuse servers in ``tvs_down``; otherwise ask ``inner``."""
        if server.host in self.tvs_down:
            raise NetworkError(f"connection to {server} timed out (TVS down, fault injected)")
        return self.inner.tvs_query(
            server,
            issuer,
            serial,
            check_server,
            client=client,
            requester=requester,
            certificate=certificate,
        )

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: CapfConversation,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        """Pass the CAPF session through."""
        self.inner.capf_exchange(host, port, conversation, check_server, requester=requester)

    def register(self, request: RegisterRequest) -> RegisterResult:
        """Pass registration through."""
        return self.inner.register(request)

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        """Pass the SCCP registration through."""
        self.inner.sccp_exchange(request, conversation)

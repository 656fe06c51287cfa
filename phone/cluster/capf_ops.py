"""CAPF certificate operations as data: what is pending on a device, and how the last one ended.

A device record (:class:`phone.cluster.records.Device`) carries these; :mod:`phone.cluster.capf`
runs the sessions that carry them out (seed, "Certificate Authority Proxy Function").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from phone.errors import LabError
from phone.wire.capf import AuthType

__all__ = [
    "CapfAuth",
    "CapfKeyType",
    "CapfOperation",
    "CapfPending",
    "CapfResult",
    "pending_from_json",
    "pending_to_json",
    "result_from_json",
    "result_to_json",
]

_AUTH_STRING = re.compile(r"[0-9]{4,10}")  # CUCM's authentication string: 4 to 10 digits


class CapfOperation(StrEnum):
    """A certificate operation CAPF can perform on a phone."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    DELETE = "delete"
    TROUBLESHOOT = "troubleshoot"


class CapfAuth(StrEnum):
    """How the phone proves who it is (CUCM's "Authentication Mode")."""

    NULL = "null"  # by null string
    STRING = "string"  # by authentication string
    LSC = "lsc"  # by existing certificate, precedence to LSC
    MIC = "mic"  # by existing certificate, precedence to MIC

    @property
    def code(self) -> AuthType:
        """The element 8 value (also ``capfAuthMode`` in the config [G])."""
        return {
            CapfAuth.NULL: AuthType.NO_PASSWORD,
            CapfAuth.STRING: AuthType.PASSWORD,
            CapfAuth.LSC: AuthType.LSC,
            CapfAuth.MIC: AuthType.MIC,
        }[self]

    @classmethod
    def parse(cls, text: str) -> tuple[CapfAuth, str | None]:
        """``null``, ``string:SECRET``, ``mic`` or ``lsc`` -> (mode, secret).

        Raises:
            LabError: anything else, or a secret that is not 4 to 10 digits.
        """
        word, sep, secret = text.strip().partition(":")
        try:
            auth = cls(word.lower())
        except ValueError:
            raise LabError(
                f"unknown CAPF authentication {text!r} (null, string:SECRET, mic or lsc)"
            ) from None
        if auth is CapfAuth.STRING:
            if not sep:
                raise LabError("authentication by string needs the string: string:SECRET")
            return auth, secret
        if sep:
            raise LabError(f"only string authentication takes a value, not {auth.value}")
        return auth, None


class CapfKeyType(StrEnum):
    """The key the phone generates for its LSC."""

    RSA_2048 = "rsa-2048"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"  # capfd's secp384r1 (tvs-capf-wire.md 2.5, curve 1)

    @classmethod
    def parse(cls, text: str) -> CapfKeyType:
        """``rsa``/``rsa-2048`` or ``ec``/``ec-p256``.

        Raises:
            LabError: another key type.
        """
        value = text.strip().lower()
        if value in ("rsa", "rsa-2048", "rsa2048"):
            return cls.RSA_2048
        if value in ("ec", "ec-p256", "p256", "ecdsa"):
            return cls.EC_P256
        if value in ("ec-p384", "p384"):
            return cls.EC_P384
        raise LabError(f"unknown key type {text!r} (rsa-2048, ec-p256 or ec-p384)")


@dataclass(frozen=True)
class CapfPending:
    """A certificate operation waiting for the phone's next boot.

    Raises:
        LabError: an authentication string that is not 4 to 10 digits, a string with another
            mode, or a key type on an operation that generates no key.
    """

    operation: CapfOperation
    auth: CapfAuth
    secret: str | None = None
    key_type: CapfKeyType = CapfKeyType.RSA_2048
    set_at: int = 0

    def __post_init__(self) -> None:
        if self.auth is CapfAuth.STRING:
            if self.secret is None or not _AUTH_STRING.fullmatch(self.secret):
                raise LabError("a CAPF authentication string is 4 to 10 digits")
        elif self.secret is not None:
            raise LabError(f"authentication {self.auth.value} takes no string")

    def describe(self) -> str:
        """``install (string, rsa-2048)``: never shows the secret."""
        parts = [self.auth.value]
        if self.operation in (CapfOperation.INSTALL, CapfOperation.UPGRADE):
            parts.append(self.key_type.value)
        return f"{self.operation.value} ({', '.join(parts)})"


@dataclass(frozen=True)
class CapfResult:
    """The outcome of the last CAPF session with a device."""

    operation: CapfOperation
    ok: bool
    reason: str
    at: int
    certificates: tuple[str, ...] = ()  # troubleshoot: what the phone holds, one line each

    def describe(self) -> str:
        """One line for ``vphone lab show``."""
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{self.operation.value} {'succeeded' if self.ok else 'FAILED'} {stamp}: {self.reason}"
        )


# --- in the lab folder (phone.cluster.codec) -----------------------------------------------


def pending_to_json(pending: CapfPending | None) -> dict[str, object] | None:
    """A pending operation as JSON-ready data (the lab folder keeps the string: it is a lab)."""
    if pending is None:
        return None
    return {
        "operation": pending.operation.value,
        "auth": pending.auth.value,
        "secret": pending.secret,
        "key_type": pending.key_type.value,
        "set_at": pending.set_at,
    }


def pending_from_json(value: object) -> CapfPending | None:
    """The inverse of :func:`pending_to_json`.

    Raises:
        LabError: not a pending operation.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LabError("a device's pending CAPF operation is not an object")
    try:
        secret = value.get("secret")
        return CapfPending(
            CapfOperation(str(value["operation"])),
            CapfAuth(str(value["auth"])),
            None if secret is None else str(secret),
            CapfKeyType(str(value.get("key_type", CapfKeyType.RSA_2048.value))),
            int(value.get("set_at", 0)),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(f"bad pending CAPF operation: {exc}") from None


def result_to_json(result: CapfResult | None) -> dict[str, object] | None:
    """The last CAPF outcome as JSON-ready data."""
    if result is None:
        return None
    return {
        "operation": result.operation.value,
        "ok": result.ok,
        "reason": result.reason,
        "at": result.at,
        "certificates": list(result.certificates),
    }


def result_from_json(value: object) -> CapfResult | None:
    """The inverse of :func:`result_to_json`.

    Raises:
        LabError: not a CAPF outcome.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LabError("a device's CAPF outcome is not an object")
    try:
        return CapfResult(
            CapfOperation(str(value["operation"])),
            bool(value["ok"]),
            str(value["reason"]),
            int(value["at"]),
            tuple(str(c) for c in value.get("certificates", ())),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise LabError(f"bad CAPF outcome: {exc}") from None

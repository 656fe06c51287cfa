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

__all__ = ["CapfAuth", "CapfKeyType", "CapfOperation", "CapfPending", "CapfResult"]

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

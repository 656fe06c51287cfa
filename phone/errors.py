"""The one error hierarchy of vphone.

Every error raised on purpose derives from :class:`VphoneError`. As in h11, errors caused by
*untrusted input* (a bad file, a misbehaving peer) are kept apart from errors caused by the
*caller* (bad arguments, a missing lab): the first kind is what a phone meets in the field and
turns into a status message; the second is a usage problem and exits 2 on the CLI.
"""

from __future__ import annotations


class VphoneError(Exception):
    """Base of every error vphone raises on purpose.

    ``exit_code`` is what the CLI exits with when this error ends a command.
    """

    exit_code: int = 1


# --- untrusted bytes -------------------------------------------------------------------------


class FormatError(VphoneError):
    """Bytes that do not parse as the format they claim to be.

    Carries the byte ``offset`` where the problem was found and what was ``expected`` there, so
    a person can open the file in a hex viewer and see it.
    """

    def __init__(self, problem: str, *, offset: int, expected: str) -> None:
        self.problem = problem
        self.offset = offset
        self.expected = expected
        super().__init__(f"at byte {offset}: {problem} (expected {expected})")


class TruncatedError(FormatError):
    """The input ends before an element or field it announced."""


class LengthError(FormatError):
    """A length field is zero where that is impossible, overruns its container, or lies."""


class StructureError(FormatError):
    """Elements are present but in a shape the format does not allow (missing, repeated, nested)."""


class ValueFormatError(FormatError):
    """An element has the right shape but a value the format does not allow."""


# --- cryptography ----------------------------------------------------------------------------


class CryptoError(VphoneError):
    """A cryptographic check or operation failed."""


class SignatureError(CryptoError):
    """A signature does not verify with the key it was checked against."""


class DecryptionError(CryptoError):
    """An encrypted file cannot be decrypted with the key at hand, or its digest does not match."""


# --- caller mistakes ---------------------------------------------------------------------------


class UsageError(VphoneError):
    """The caller asked for something impossible: bad arguments, a missing file or lab."""

    exit_code = 2


class LabError(VphoneError):
    """A lab operation cannot be carried out (unknown cluster, node, certificate or parameter)."""

    exit_code = 2


# --- the network -------------------------------------------------------------------------------


class NetworkError(VphoneError):
    """A transfer or a request to a server failed at the network level."""


class FileNotFoundOnServer(NetworkError):
    """The server answered that it has no file by this name (TFTP error 1, HTTP 404)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"File not found {name}")


class TransferTimeout(NetworkError):
    """The server did not answer within the phone's retry budget."""


class ProtocolError(NetworkError):
    """A peer sent a frame or message that breaks its protocol."""

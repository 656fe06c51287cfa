"""What the file commands read from the command line and the disk, and what they write.

Every ``vphone tlv|sgn|image`` command reads its files through :func:`read_input`, so a missing
or unreadable file is a usage error (exit 2), and handles their contents inside :func:`about`,
so a file that does not parse is reported as ``vphone: FILE: at byte N: ...`` with the cause's
exit code (:class:`FileInputError`). The signing commands (``tlv build``, ``sgn sign``) get
their signer, header time and header file name here; the clock and ``$VPHONE_KEY_PASSWORD`` are
read here, at the edge, never in :mod:`phone.formats`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from phone.cli.files import KEY_PASSWORD_ENV
from phone.errors import UsageError, VphoneError
from phone.formats.header import Digest
from phone.formats.signature import Signer

DIGESTS = {"sha1": Digest.SHA1, "sha512": Digest.SHA512}


class FileInputError(VphoneError):
    """An error about the contents of a file named on the command line.

    Its message is the file name followed by the cause, so the CLI prints
    ``vphone: ITLFile.tlv: at byte 312: ...``; the exit code is the cause's.
    """

    def __init__(self, path: str, cause: VphoneError) -> None:
        self.path = path
        self.cause = cause
        self.exit_code = cause.exit_code
        super().__init__(f"{path}: {cause}")


@contextlib.contextmanager
def about(path: str) -> Iterator[None]:
    """Prefix errors raised while handling ``path``'s contents with its name."""
    try:
        yield
    except (FileInputError, UsageError):
        raise
    except VphoneError as exc:
        raise FileInputError(path, exc) from exc


def read_input(path: str) -> bytes:
    """The bytes of ``path``; a file that cannot be read is a usage error."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def write_output(path: str, data: bytes) -> None:
    """Write ``data`` to ``path``; a file that cannot be written is a usage error."""
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None


def load_certificate(path: str) -> x509.Certificate:
    """The PEM certificate in ``path``."""
    data = read_input(path)
    with about(path):
        from phone.pki.store import cert_from_pem  # noqa: PLC0415 - not for `tlv show`

        return cert_from_pem(data)


def key_password(args: argparse.Namespace) -> bytes | None:
    """``--key-password``, else ``$VPHONE_KEY_PASSWORD`` (read here, at the edge)."""
    password: str | None = args.key_password
    if password is None:
        password = os.environ.get(KEY_PASSWORD_ENV)
    return None if password is None else password.encode()


def load_signer(args: argparse.Namespace) -> Signer:
    """The certificate and RSA key of ``--signer-cert`` and ``--signer-key``."""
    certificate = load_certificate(args.signer_cert)
    data = read_input(args.signer_key)
    with about(args.signer_key):
        from phone.pki.store import key_from_pem  # noqa: PLC0415 - signing commands only

        key = key_from_pem(data, key_password(args))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UsageError(
            f"{args.signer_key}: Cisco signed headers are RSA-signed; the signer key must be RSA"
        )
    try:
        return Signer(certificate, key)
    except ValueError:
        raise UsageError(
            f"{args.signer_key}: this private key does not belong to {args.signer_cert}"
        ) from None


def header_timestamp(text: str | None) -> int:
    """Unix time from ``--timestamp``; now (read here, at the edge) when absent."""
    if text is None:
        return int(time.time())
    if text.isdigit():
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UsageError(
                f"--timestamp {text!r}: use Unix seconds or ISO 8601 (2015-05-07T03:10:47Z)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = int(moment.timestamp())
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError(f"--timestamp {text!r} does not fit the header's 32-bit Unix time")
    return value


def header_filename(args: argparse.Namespace) -> str:
    """The ASCII file name for the header: ``--filename``, else the output's name."""
    name: str = args.filename if args.filename is not None else Path(args.output).name
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(f"--filename {name!r}: the header file name must be ASCII") from None
    return name

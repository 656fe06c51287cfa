"""Serialization of lab certificates and keys: PEM, DER, PKCS#12, and private files on disk.

Private keys never leave memory unencrypted unless the caller says so explicitly
(``allow_unencrypted=True``). Bytes that do not parse raise a
:class:`~phone.errors.FormatError`; bytes that parse but cannot be decrypted with the given
password raise a :class:`~phone.errors.CryptoError` (a :class:`~phone.errors.DecryptionError`).
This module is the only part of :mod:`phone.pki` that touches the file system.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from phone.errors import (
    CryptoError,
    DecryptionError,
    LengthError,
    StructureError,
    TruncatedError,
    UsageError,
    ValueFormatError,
)
from phone.pki.certs import Identity, PrivateKey

__all__ = [
    "cert_from_der",
    "cert_from_pem",
    "cert_to_der",
    "cert_to_pem",
    "certs_from_pem",
    "certs_from_pkcs12",
    "certs_to_pem",
    "certs_to_pkcs12",
    "identity_from_pkcs12",
    "identity_to_pkcs12",
    "is_temporary",
    "key_from_pem",
    "key_to_pem",
    "private_folder",
    "sweep_temporaries",
    "write_private_file",
]

_PEM_CERT = "a PEM certificate"
_PEM_KEY = "a PEM private key"
_PKCS12 = "a PKCS#12 (PFX) file"
_ENCRYPTED_MARKERS = (b"-----BEGIN ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")


# --- certificates ------------------------------------------------------------------------------


def cert_to_pem(cert: x509.Certificate) -> bytes:
    """Return ``cert`` as one PEM ``CERTIFICATE`` block."""
    return cert.public_bytes(serialization.Encoding.PEM)


def certs_to_pem(certs: Iterable[x509.Certificate]) -> bytes:
    """Return ``certs`` as consecutive PEM ``CERTIFICATE`` blocks, in order."""
    return b"".join(cert_to_pem(cert) for cert in certs)


def cert_from_pem(data: bytes) -> x509.Certificate:
    """Parse the first PEM ``CERTIFICATE`` block in ``data``.

    Raises:
        ValueFormatError: ``data`` holds no parseable PEM certificate.
    """
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ValueFormatError(
            f"not a PEM certificate ({exc})", offset=0, expected=_PEM_CERT
        ) from None


def certs_from_pem(data: bytes) -> list[x509.Certificate]:
    """Parse every PEM ``CERTIFICATE`` block in ``data``, in order (at least one).

    Raises:
        ValueFormatError: ``data`` holds no PEM certificate, or a block does not parse.
    """
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueFormatError(
            f"not a sequence of PEM certificates ({exc})", offset=0, expected=_PEM_CERT
        ) from None


def cert_to_der(cert: x509.Certificate) -> bytes:
    """Return ``cert`` DER-encoded."""
    return cert.public_bytes(serialization.Encoding.DER)


def cert_from_der(data: bytes) -> x509.Certificate:
    """Parse one DER-encoded certificate.

    Raises:
        ValueFormatError: ``data`` is not a DER certificate.
    """
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise ValueFormatError(
            f"not a DER certificate ({exc})", offset=0, expected="a DER X.509 certificate"
        ) from None


# --- private keys ------------------------------------------------------------------------------


def key_to_pem(
    key: PrivateKey, password: bytes | None, *, allow_unencrypted: bool = False
) -> bytes:
    """Return ``key`` as PEM PKCS#8, encrypted with ``password`` (best available encryption).

    Without a password the key is written in clear only when ``allow_unencrypted`` is true.

    Raises:
        UsageError: no password and ``allow_unencrypted`` is false, or the password is empty.
    """
    if password is None:
        if not allow_unencrypted:
            raise UsageError(
                "refusing to serialize a private key without a password; pass a password, "
                "or allow_unencrypted=True if the key may really be stored in clear"
            )
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        encryption = _encryption(password)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def key_from_pem(data: bytes, password: bytes | None) -> PrivateKey:
    """Parse a PEM private key (PKCS#8 or traditional), decrypting it with ``password``.

    Raises:
        DecryptionError: the key is encrypted and the password is wrong or missing, or a
            password was given for a key that is not encrypted.
        ValueFormatError: ``data`` is not a PEM private key, or not an RSA or EC one.
    """
    encrypted = any(marker in data for marker in _ENCRYPTED_MARKERS)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        if password is None:
            raise DecryptionError(
                "the private key is encrypted and no password was given"
            ) from None
        raise DecryptionError("a password was given but the private key is not encrypted") from None
    except ValueError as exc:
        if encrypted and password is not None:
            raise DecryptionError(
                "cannot decrypt the private key: wrong password, or the key is corrupt"
            ) from None
        raise ValueFormatError(
            f"not a PEM private key ({exc})", offset=0, expected=_PEM_KEY
        ) from None
    return _supported_key(key)


# --- PKCS#12 -----------------------------------------------------------------------------------


def identity_to_pkcs12(
    identity: Identity,
    name: bytes,
    password: bytes,
    *,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """Return ``identity`` (and optional ``chain`` certificates) as a password-protected PKCS#12.

    ``name`` becomes the friendly name of the key and certificate.

    Raises:
        UsageError: the password is empty.
    """
    return pkcs12.serialize_key_and_certificates(
        name, identity.key, identity.certificate, list(chain) or None, _encryption(password)
    )


def identity_from_pkcs12(data: bytes, password: bytes) -> Identity:
    """Parse a PKCS#12 holding a private key and its certificate; other certificates are ignored.

    Raises:
        FormatError: ``data`` is not a PKCS#12 (a subclass names the problem and its offset),
            or holds no key or no certificate, or a key neither RSA nor EC.
        DecryptionError: the password is wrong (or the file's integrity check fails).
        CryptoError: the key does not belong to the certificate.
    """
    key, cert, _others = _load_pkcs12(data, password)
    if key is None or cert is None:
        missing = "private key" if key is None else "certificate"
        raise StructureError(
            f"the PKCS#12 holds no {missing}",
            offset=0,
            expected="a PKCS#12 with a private key and its certificate",
        )
    private_key = _supported_key(key)
    if cert.public_key() != private_key.public_key():
        raise CryptoError("the private key in the PKCS#12 does not belong to its certificate")
    return Identity(cert, private_key)


def certs_to_pkcs12(certs: Iterable[x509.Certificate], password: bytes) -> bytes:
    """Return ``certs`` as a password-protected, certificates-only PKCS#12 trust store.

    Each certificate's friendly name is its subject common name (or its RFC 4514 subject).

    Raises:
        UsageError: no certificates, or the password is empty.
    """
    bags = [pkcs12.PKCS12Certificate(cert, _friendly_name(cert)) for cert in certs]
    if not bags:
        raise UsageError("a PKCS#12 trust store needs at least one certificate")
    return pkcs12.serialize_key_and_certificates(None, None, None, bags, _encryption(password))


def certs_from_pkcs12(data: bytes, password: bytes | None) -> list[x509.Certificate]:
    """Return every certificate in a PKCS#12, the key's own certificate first; keys are ignored.

    Raises:
        FormatError: ``data`` is not a PKCS#12 (a subclass names the problem and its offset).
        DecryptionError: the password is wrong (or the file's integrity check fails).
    """
    _key, cert, others = _load_pkcs12(data, password)
    return ([cert] if cert is not None else []) + others


# --- files -------------------------------------------------------------------------------------


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (mode 0o600).

    The bytes go to a temporary file in the same directory (created 0o600), are flushed and
    fsynced, and the file is renamed over ``path``; the directory is fsynced afterwards. On
    failure the temporary file is removed and ``path`` is left as it was.

    Raises:
        OSError: the directory does not exist or cannot be written.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(directory)


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it 0o700 whatever the umask is.

    ``mkdir(mode=0o700)`` is masked by the umask and leaves an existing folder as it was; a
    folder holding private keys must be closed to others either way (issue 13), so the mode is
    set explicitly, also on a folder that already existed wider.
    """
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of :func:`write_private_file` (or of a flash
    write): ``.<target>.<random>.tmp``. Only such names are ever swept."""
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def sweep_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files a killed write left in ``folder``; return their names.

    Call it only where no write into ``folder`` can be in progress (the writer's lock held, or
    the folder owned by this process alone): a temporary file is a write in flight until its
    rename, and nothing tells a dead writer's file from a live one's.
    """
    removed: list[str] = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        if is_temporary(entry.name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry.name)
    return removed


# --- internals ---------------------------------------------------------------------------------


def _encryption(password: bytes) -> serialization.KeySerializationEncryption:
    if not password:
        raise UsageError("the password must not be empty")
    return serialization.BestAvailableEncryption(password)


def _supported_key(key: object) -> PrivateKey:
    if isinstance(key, RSAPrivateKey | EllipticCurvePrivateKey):
        return key
    raise ValueFormatError(
        f"unsupported private key type {type(key).__name__}",
        offset=0,
        expected="an RSA or EC private key",
    )


def _friendly_name(cert: x509.Certificate) -> bytes:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value.encode() if isinstance(value, str) else value
    return cert.subject.rfc4514_string().encode()


def _load_pkcs12(
    data: bytes, password: bytes | None
) -> tuple[PrivateKeyTypes | None, x509.Certificate | None, list[x509.Certificate]]:
    _check_pfx_envelope(data)
    try:
        return pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise DecryptionError(
            "cannot open the PKCS#12: wrong password, or its contents are corrupt"
        ) from None


def _check_pfx_envelope(data: bytes) -> None:
    """Check the outer ``PFX ::= SEQUENCE { version INTEGER (3), ... }`` of a PKCS#12.

    This tells bytes that are no PKCS#12 at all (a :class:`FormatError`) apart from a PKCS#12
    that cannot be opened with the password (which the parser reports the same way).
    BER indefinite lengths are accepted, as some exporters still write them.
    """
    if not data:
        raise TruncatedError("the input is empty", offset=0, expected=_PKCS12)
    if data[0] != 0x30:
        raise ValueFormatError(
            f"tag 0x{data[0]:02x} where a PKCS#12 starts with a SEQUENCE",
            offset=0,
            expected="a DER SEQUENCE (0x30)",
        )
    length, content = _read_length(data, 1)
    if length is not None:
        end = content + length
        if end > len(data):
            raise TruncatedError(
                f"the PFX SEQUENCE announces {length} bytes but only {len(data) - content} follow",
                offset=len(data),
                expected=f"{end - len(data)} more bytes",
            )
        if end < len(data):
            raise LengthError(
                f"{len(data) - end} bytes follow the PFX SEQUENCE",
                offset=end,
                expected="the end of the PKCS#12",
            )
    if data[content : content + 3] != b"\x02\x01\x03":
        raise ValueFormatError(
            "the PFX does not start with version 3",
            offset=content,
            expected="INTEGER 3 (02 01 03)",
        )


def _read_length(data: bytes, offset: int) -> tuple[int | None, int]:
    """Read a BER length at ``offset``; return it (None when indefinite) and the content offset."""
    if offset >= len(data):
        raise TruncatedError("the input ends before a length", offset=offset, expected=_PKCS12)
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    if first == 0x80:
        return None, offset + 1
    count = first & 0x7F
    if count > 4:
        raise LengthError(
            f"a length of {count} bytes", offset=offset, expected="a length of at most 4 bytes"
        )
    if offset + 1 + count > len(data):
        raise TruncatedError(
            "the input ends inside a length", offset=len(data), expected=f"{count} length bytes"
        )
    return int.from_bytes(data[offset + 1 : offset + 1 + count], "big"), offset + 1 + count


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories; the rename is done regardless
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)

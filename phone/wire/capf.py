"""The CAPF wire protocol, sans-IO (trust-file-formats.md section 9b).

Frame: an 8-byte header with no version byte (protocol id 0x55, command, session id u32 BE
chosen by the *server*, body length u16 BE) and a body of TLV elements (tag 1 byte, length u16
BE). The framing, the command codes and the element tags are [C2] (two independent sources
agree); how the commands follow each other in one session is vphone's emulation, described in
docs/capf.md.

Parsing is strict, because a CAPF server hands out certificates: an unknown protocol id,
command or element tag, an element that overruns the body, a body over :data:`MAX_BODY`, or an
element whose value has the wrong size raises :class:`phone.errors.ProtocolError`, and the
caller drops the connection. Nothing here touches a socket: :class:`FrameReader` takes bytes as
they arrive and yields frames, :func:`encode_frame` turns a frame into bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from phone.errors import ProtocolError

__all__ = [
    "HEADER",
    "MAX_BODY",
    "PROTOCOL_ID",
    "SHA512_CODE",
    "VERSION",
    "AuthType",
    "CertType",
    "Command",
    "Curve",
    "Frame",
    "FrameReader",
    "KeyType",
    "Reason",
    "Tag",
    "certificate_element",
    "cstring_element",
    "decode_frame",
    "encode_frame",
    "sha2_signed_element",
    "u8_element",
    "u16_element",
]

PROTOCOL_ID = 0x55
VERSION = 3  # element 7: capfd sends 3, and so does a CUCM server (section 9b)
HEADER = struct.Struct(">BBIH")
# A body carries at most one certificate (a few KB) and a couple of signatures; anything larger
# is refused before it is buffered, so a peer cannot make the server hold megabytes.
MAX_BODY = 16 * 1024
SHA512_CODE = 3  # first byte of element 20: "3 = SHA-512" (section 9b, section 6)


class Command(IntEnum):
    """CAPF commands (section 9b, capfd's names)."""

    AUTH_REQ = 1
    AUTH_RESP = 2
    KEYGEN_REQ = 3
    KEYGEN_RESP = 4
    ENCRYPT_RESP = 5
    ENCRYPT_REQ = 6
    DECRYPT_REQ = 7
    DECRYPT_RESP = 8
    STORE_CERT_REQ = 9
    STORE_CERT_RESP = 10
    FETCH_CERT_REQ = 11
    FETCH_CERT_RESP = 12
    DELETE_CERT_REQ = 13
    DELETE_CERT_RESP = 14
    END_SESSION = 15
    RETRY_LATER = 16
    REQUEST_IN_PROGRESS = 17
    STATUS_REQ = 18
    STATUS_RESP = 19
    ABORT_REQ = 20
    ABORT_RESP = 21
    SIGN_CERT_REQ = 22
    SIGN_CERT_RESP = 23


class Tag(IntEnum):
    """Body element tags (section 9b)."""

    REASON = 1
    REASON_INFO = 2
    CERTIFICATE_TYPE = 3
    CERTIFICATE = 4
    CERTIFICATE_ID = 5
    SIGNED_DATA = 6
    VERSION = 7
    AUTH_TYPE = 8
    PUBLIC_KEY = 9
    KEY_SIZE = 10
    PASSWORD = 11
    RETRY_DELAY = 12
    DEVICE_NAME = 13
    SUDI_DATA = 16
    KEY_TYPE = 17
    CURVE = 18
    DIGEST_TYPE = 19
    SHA2_SIGNED_DATA = 20


class Reason(IntEnum):
    """Element 1 values (section 9b)."""

    NO_ACTION = 0
    OK = 1  # "update certificate / OK"
    INVALID = 7  # "invalid element / already issued"
    UNKNOWN_DEVICE = 9


class CertType(IntEnum):
    """Element 3 values, also the type byte inside element 4."""

    LSC = 1
    MIC = 2


class AuthType(IntEnum):
    """Element 8 values (section 9b)."""

    NONE = 0
    PASSWORD = 1  # "by authentication string"
    NO_PASSWORD = 2  # "by null string"
    LSC = 3  # "by existing certificate, precedence to LSC"
    MIC = 4  # "by existing certificate, precedence to MIC"


class KeyType(IntEnum):
    """Element 17 values."""

    RSA = 0
    EC = 1


class Curve(IntEnum):
    """Element 18 values."""

    P256 = 0
    P384 = 1
    P521 = 2


@dataclass(frozen=True, slots=True)
class Frame:
    """One CAPF message: command, session id and body elements in order.

    The typed getters return None for an absent element and raise :class:`ProtocolError` for a
    repeated one or one whose value has the wrong shape.
    """

    command: Command
    session: int
    elements: tuple[tuple[int, bytes], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.session <= 0xFFFFFFFF:
            raise ValueError(f"CAPF session id {self.session} does not fit in 32 bits")

    def tags(self) -> tuple[int, ...]:
        """The element tags, in order."""
        return tuple(tag for tag, _ in self.elements)

    def raw(self, tag: int) -> bytes | None:
        """The value of the one element with ``tag``, or None.

        Raises:
            ProtocolError: the element appears more than once.
        """
        found = [value for t, value in self.elements if t == tag]
        if len(found) > 1:
            raise ProtocolError(f"CAPF {self.command.name}: element {_tag_name(tag)} repeated")
        return found[0] if found else None

    def u8(self, tag: int) -> int | None:
        """A one-byte element."""
        value = self.raw(tag)
        if value is None:
            return None
        if len(value) != 1:
            raise ProtocolError(self._size(tag, "1 byte", len(value)))
        return value[0]

    def u16(self, tag: int) -> int | None:
        """A two-byte big-endian element."""
        value = self.raw(tag)
        if value is None:
            return None
        if len(value) != 2:
            raise ProtocolError(self._size(tag, "2 bytes", len(value)))
        return int.from_bytes(value, "big")

    def cstring(self, tag: int) -> str | None:
        """A NUL-terminated ASCII element (device name, password): the text without the NUL."""
        value = self.raw(tag)
        if value is None:
            return None
        if not value.endswith(b"\0") or b"\0" in value[:-1]:
            raise ProtocolError(
                f"CAPF {self.command.name}: element {_tag_name(tag)} is not one NUL-terminated "
                "string"
            )
        try:
            text = value[:-1].decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"CAPF {self.command.name}: element {_tag_name(tag)} is not ASCII"
            ) from None
        if not text.isprintable():
            raise ProtocolError(
                f"CAPF {self.command.name}: element {_tag_name(tag)} has control characters"
            )
        return text

    def text(self, tag: int) -> str | None:
        """A free-text element (reason info), NUL-terminated or not, decoded leniently."""
        value = self.raw(tag)
        if value is None:
            return None
        return value.rstrip(b"\0").decode("ascii", errors="replace")

    def certificate(self) -> tuple[CertType, bytes] | None:
        """Element 4: ``(certificate type, DER)``.

        Nested as tag 0x01, u16 length, 0x00, the certificate-type byte, then the DER (section
        9b: Jabber4Linux saw ``{01}[len] 00 01`` + DER). That the inner length counts the two
        bytes before the DER is our reading [G]; the parser insists on it.
        """
        value = self.raw(Tag.CERTIFICATE)
        if value is None:
            return None
        if len(value) < 5 or value[0] != 0x01 or value[3] != 0x00:
            raise ProtocolError(
                f"CAPF {self.command.name}: certificate element does not start 01 <len> 00 <type>"
            )
        inner = int.from_bytes(value[1:3], "big")
        if inner != len(value) - 3:
            raise ProtocolError(
                f"CAPF {self.command.name}: certificate element announces {inner} bytes, "
                f"holds {len(value) - 3}"
            )
        try:
            kind = CertType(value[4])
        except ValueError:
            raise ProtocolError(
                f"CAPF {self.command.name}: unknown certificate type {value[4]}"
            ) from None
        der = value[5:]
        if not der:
            raise ProtocolError(f"CAPF {self.command.name}: certificate element holds no DER")
        return kind, der

    def sha2_signed(self) -> tuple[int, bytes] | None:
        """Element 20: ``(hash algorithm code, signature)``; 3 is SHA-512 (section 9b)."""
        value = self.raw(Tag.SHA2_SIGNED_DATA)
        if value is None:
            return None
        if len(value) < 3:
            raise ProtocolError(f"CAPF {self.command.name}: SHA-2 signed data is cut off")
        length = int.from_bytes(value[1:3], "big")
        if length != len(value) - 3 or length == 0:
            raise ProtocolError(
                f"CAPF {self.command.name}: SHA-2 signed data announces {length} bytes, "
                f"holds {len(value) - 3}"
            )
        return value[0], value[3:]

    def _size(self, tag: int, expected: str, got: int) -> str:
        return f"CAPF {self.command.name}: element {_tag_name(tag)} is {got} bytes, not {expected}"


def _tag_name(tag: int) -> str:
    try:
        return Tag(tag).name
    except ValueError:
        return str(tag)


# --- element encoders --------------------------------------------------------------------------


def u8_element(tag: Tag, value: int) -> tuple[int, bytes]:
    """A one-byte element."""
    return (tag, bytes((value,)))


def u16_element(tag: Tag, value: int) -> tuple[int, bytes]:
    """A two-byte big-endian element."""
    return (tag, struct.pack(">H", value))


def cstring_element(tag: Tag, text: str) -> tuple[int, bytes]:
    """A NUL-terminated ASCII element (device name, password).

    Raises:
        ValueError: ``text`` is not printable ASCII (it would not round-trip).
    """
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"CAPF strings are printable ASCII: {text!r}")
    return (tag, text.encode("ascii") + b"\0")


def certificate_element(kind: CertType, der: bytes) -> tuple[int, bytes]:
    """Element 4, nested as :meth:`Frame.certificate` reads it."""
    return (
        Tag.CERTIFICATE,
        b"\x01" + struct.pack(">H", len(der) + 2) + b"\x00" + bytes((kind,)) + der,
    )


def sha2_signed_element(signature: bytes, algorithm: int = SHA512_CODE) -> tuple[int, bytes]:
    """Element 20: hash-algorithm byte, u16 length, signature."""
    return (
        Tag.SHA2_SIGNED_DATA,
        bytes((algorithm,)) + struct.pack(">H", len(signature)) + signature,
    )


# --- frames ------------------------------------------------------------------------------------


def encode_frame(frame: Frame) -> bytes:
    """Encode ``frame`` to bytes.

    Raises:
        ValueError: an element over 65535 bytes or a body over :data:`MAX_BODY`.
    """
    parts: list[bytes] = []
    for tag, value in frame.elements:
        if len(value) > 0xFFFF:
            raise ValueError(f"CAPF element {_tag_name(tag)} of {len(value)} bytes is too long")
        parts.append(bytes((tag,)) + struct.pack(">H", len(value)) + value)
    body = b"".join(parts)
    if len(body) > MAX_BODY:
        raise ValueError(f"CAPF body of {len(body)} bytes exceeds {MAX_BODY}")
    return HEADER.pack(PROTOCOL_ID, frame.command, frame.session, len(body)) + body


def _parse_body(command: Command, body: bytes) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        if pos + 3 > len(body):
            raise ProtocolError(f"CAPF {command.name}: element header cut off at body byte {pos}")
        tag = body[pos]
        try:
            Tag(tag)
        except ValueError:
            raise ProtocolError(
                f"CAPF {command.name}: unknown element tag {tag} at body byte {pos}"
            ) from None
        (length,) = struct.unpack_from(">H", body, pos + 1)
        end = pos + 3 + length
        if end > len(body):
            raise ProtocolError(
                f"CAPF {command.name}: element {Tag(tag).name} at body byte {pos} announces "
                f"{length} bytes, only {len(body) - pos - 3} remain"
            )
        out.append((tag, body[pos + 3 : end]))
        pos = end
    return tuple(out)


@dataclass
class FrameReader:
    """Incremental frame parser: :meth:`feed` bytes, get complete frames.

    Raises :class:`ProtocolError` on a bad protocol id, an unknown command, an oversized length
    or a malformed body; the caller drops the connection (the peer is not speaking CAPF).
    """

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add ``data`` and yield every frame it completes."""
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            proto, command, session, length = HEADER.unpack_from(self._buffer)
            if proto != PROTOCOL_ID:
                raise ProtocolError(f"not a CAPF frame: protocol id {proto:#04x}, expected 0x55")
            try:
                cmd = Command(command)
            except ValueError:
                raise ProtocolError(f"unknown CAPF command {command}") from None
            if length > MAX_BODY:
                raise ProtocolError(f"CAPF body length {length} exceeds {MAX_BODY}")
            if len(self._buffer) < HEADER.size + length:
                return
            body = bytes(self._buffer[HEADER.size : HEADER.size + length])
            del self._buffer[: HEADER.size + length]
            yield Frame(cmd, session, _parse_body(cmd, body))

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame (a cut-off frame at EOF)."""
        return len(self._buffer)


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one frame.

    Raises:
        ProtocolError: ``data`` is not exactly one well-formed frame (cut off, or trailing).
    """
    reader = FrameReader()
    frames = list(reader.feed(data))
    if len(frames) != 1 or reader.pending:
        if not frames:
            raise ProtocolError(f"CAPF frame cut off: {len(data)} bytes")
        raise ProtocolError("trailing bytes after a CAPF frame")
    return frames[0]

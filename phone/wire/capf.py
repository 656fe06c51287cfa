"""The CAPF wire protocol, sans-IO (tvs-capf-wire.md section 2, as capfd and capfc speak it).

Frame: an 8-byte header with no version byte (protocol id 0x55, command, session id u32 BE
assigned by the *server*, body length u16 BE) and a body of TLV elements (tag 1 byte, length u16
BE). Framing, command codes, element tags and element encodings are public fact, verified on
the wire (the transcripts of ``shared/interop/transcripts/capf-*.json``); the session order is
in :mod:`phone.cluster.capf` and docs/capf.md.

Parsing is strict where capfd is (an unknown element tag, an element that overruns the body,
a wrong protocol id) and liberal where capfd is: the certificate element's 5-byte wrapper is
skipped unchecked (wire 2.4). A bad frame raises :class:`phone.errors.ProtocolError`; the
server answers END_SESSION{7} and closes. Nothing here touches a socket: :class:`FrameReader`
takes bytes as they arrive and yields frames, :func:`encode_frame` turns a frame into bytes.
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
    "Sudi",
    "Tag",
    "certificate_element",
    "cstring_element",
    "decode_frame",
    "encode_frame",
    "proof_data",
    "sha2_signed_element",
    "sudi_data",
    "sudi_element",
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

        The value is a 5-byte wrapper ``01``, u16 (DER length + 2), ``00``, a type byte, then
        the DER (wire 2.4). Receivers skip the wrapper without checking it, as both public
        programs do: capfc writes type 01 even for a MIC. An unknown type byte reads as LSC.
        """
        value = self.raw(Tag.CERTIFICATE)
        if value is None:
            return None
        if len(value) <= 5:
            raise ProtocolError(f"CAPF {self.command.name}: certificate element holds no DER")
        try:
            kind = CertType(value[4])
        except ValueError:
            kind = CertType.LSC
        return kind, value[5:]

    def sudi(self) -> Sudi | None:
        """Element 16: three sub-blocks ``[type u8][len u16][bytes]`` (wire 2.4): type 0 the
        SUDI certificate, then the SHA-1 signature, then the SHA-2 one (type 3 = SHA-512)."""
        value = self.raw(Tag.SUDI_DATA)
        if value is None:
            return None
        blocks: list[tuple[int, bytes]] = []
        pos = 0
        while pos < len(value):
            if pos + 3 > len(value):
                raise ProtocolError(f"CAPF {self.command.name}: SUDI sub-block cut off")
            length = int.from_bytes(value[pos + 1 : pos + 3], "big")
            if pos + 3 + length > len(value):
                raise ProtocolError(f"CAPF {self.command.name}: SUDI sub-block overruns")
            blocks.append((value[pos], value[pos + 3 : pos + 3 + length]))
            pos += 3 + length
        if len(blocks) != 3 or blocks[0][0] != 0:
            raise ProtocolError(
                f"CAPF {self.command.name}: SUDI data is not certificate + two signatures"
            )
        return Sudi(blocks[0][1], blocks[1][1], blocks[2][0], blocks[2][1])

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


@dataclass(frozen=True, slots=True)
class Sudi:
    """The parts of element 16 (SUDI data)."""

    certificate: bytes
    sha1_signature: bytes
    sha2_algorithm: int
    sha2_signature: bytes


def proof_data(device_name: str, certificate_der: bytes) -> bytes:
    """What a phone signs to authenticate by certificate: ``device name + NUL + DER`` (2.6)."""
    return device_name.encode("ascii") + b"\0" + certificate_der


def sudi_data(session_id: int, certificate_der: bytes) -> bytes:
    """What the SUDI signatures cover: the session id as u32 *little*-endian + the DER (2.6;
    the one little-endian field of the protocol)."""
    return struct.pack("<I", session_id) + certificate_der


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


def sudi_element(
    certificate_der: bytes, sha1_signature: bytes, sha512_signature: bytes
) -> tuple[int, bytes]:
    """Element 16: (0, certificate), (1, SHA-1 signature), (3, SHA-512 signature)."""
    return (
        Tag.SUDI_DATA,
        b"".join(
            bytes((kind,)) + struct.pack(">H", len(value)) + value
            for kind, value in ((0, certificate_der), (1, sha1_signature), (3, sha512_signature))
        ),
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

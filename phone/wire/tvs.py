"""The TVS wire protocol, sans-IO (trust-file-formats.md section 9a; phone-behaviour item 22).

Frame: a 10-byte header (protocol id 0x57, version 1, command, reserved 0, session id u32 BE,
body length u16 BE) and a body of TLV elements (tag 1 byte, length u16 BE). Commands 1/2 are
verify request/response (usecallmanagernz tvsd, [C1]); 3/4 query request/response exist in CUCM
logs but no public source gives their elements, so the query elements below (tags 3 and 4 for
issuer and serial) are **emulated** [G] and documented in docs/networks.md.

Nothing here touches a socket: :class:`FrameReader` takes bytes as they arrive and yields
frames, :func:`encode_frame` turns a message into bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from phone.errors import ProtocolError

PROTOCOL_ID = 0x57
VERSION = 1
HEADER = struct.Struct(">BBBBIH")
# The largest TVS request seen in a CUCM log was 3708 bytes; a certificate chain answer is a
# few KB. Anything above this is refused before it is buffered.
MAX_BODY = 16 * 1024


class Command(IntEnum):
    """TVS commands."""

    VERIFY_REQUEST = 1
    VERIFY_RESPONSE = 2
    QUERY_REQUEST = 3
    QUERY_RESPONSE = 4


class Tag(IntEnum):
    """Body element tags."""

    DEVICE_NAME = 1
    CERTIFICATE = 2
    ISSUER_NAME = 3  # emulated [G]
    SERIAL_NUMBER = 4  # emulated [G]
    STATUS = 7
    ROLES = 8
    TTL = 9


STATUS_VALID = 0
STATUS_INVALID = 1


@dataclass(frozen=True, slots=True)
class Frame:
    """One TVS message: its command, session id and body elements in order."""

    command: Command
    session: int
    elements: tuple[tuple[int, bytes], ...] = ()

    def get(self, tag: int) -> bytes | None:
        """The first element with ``tag``."""
        for t, v in self.elements:
            if t == tag:
                return v
        return None

    def all(self, tag: int) -> list[bytes]:
        """Every element with ``tag``."""
        return [v for t, v in self.elements if t == tag]


def encode_frame(frame: Frame) -> bytes:
    """Encode ``frame`` to bytes."""
    body = b"".join(bytes((t,)) + struct.pack(">H", len(v)) + v for t, v in frame.elements)
    if len(body) > MAX_BODY:
        raise ValueError(f"TVS body of {len(body)} bytes exceeds {MAX_BODY}")
    return HEADER.pack(PROTOCOL_ID, VERSION, frame.command, 0, frame.session, len(body)) + body


def _parse_body(body: bytes) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        if pos + 3 > len(body):
            raise ProtocolError(f"TVS element header cut off at body byte {pos}")
        tag = body[pos]
        (length,) = struct.unpack_from(">H", body, pos + 1)
        end = pos + 3 + length
        if end > len(body):
            raise ProtocolError(f"TVS element {tag} at body byte {pos} overruns the body")
        out.append((tag, body[pos + 3 : end]))
        pos = end
    return tuple(out)


@dataclass
class FrameReader:
    """Incremental frame parser: ``feed`` bytes, get complete frames.

    Raises ProtocolError on a bad protocol id or version, an unknown command or an oversized
    length: the caller drops the connection (the peer is not speaking TVS).
    """

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add ``data`` and yield every frame it completes."""
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            proto, version, command, _reserved, session, length = HEADER.unpack_from(self._buffer)
            if proto != PROTOCOL_ID:
                raise ProtocolError(f"not a TVS frame: protocol id {proto:#04x}, expected 0x57")
            if version != VERSION:
                raise ProtocolError(f"TVS version {version} is not 1")
            try:
                cmd = Command(command)
            except ValueError:
                raise ProtocolError(f"unknown TVS command {command}") from None
            if length > MAX_BODY:
                raise ProtocolError(f"TVS body length {length} exceeds {MAX_BODY}")
            if len(self._buffer) < HEADER.size + length:
                return
            body = bytes(self._buffer[HEADER.size : HEADER.size + length])
            del self._buffer[: HEADER.size + length]
            yield Frame(cmd, session, _parse_body(body))

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)


# --- typed messages ---------------------------------------------------------------------------


def device_name_element(device_name: str) -> tuple[int, bytes]:
    """Tag 1: one 0x01 byte then ``CP-<model>-SEP<MAC>`` (section 9a)."""
    return (Tag.DEVICE_NAME, b"\x01" + device_name.encode("ascii"))


def query_request(session: int, device_name: str, issuer: str, serial: bytes) -> Frame:
    """A query by issuer and serial (item 22: what phones send for ``.sgn`` signers)."""
    return Frame(
        Command.QUERY_REQUEST,
        session,
        (
            device_name_element(device_name),
            (Tag.ISSUER_NAME, issuer.encode("latin-1")),
            (Tag.SERIAL_NUMBER, serial),
        ),
    )


def verify_request(session: int, device_name: str, certificate_der: bytes) -> Frame:
    """A verify request carrying a whole certificate (tvsd's form)."""
    return Frame(
        Command.VERIFY_REQUEST,
        session,
        (device_name_element(device_name), (Tag.CERTIFICATE, certificate_der)),
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded verify or query response."""

    valid: bool
    roles: tuple[int, ...]
    ttl: int
    certificates: tuple[bytes, ...]


def response(
    command: Command,
    session: int,
    *,
    valid: bool,
    roles: tuple[int, ...],
    ttl: int,
    certificates: tuple[bytes, ...] = (),
) -> Frame:
    """A verify or query response frame."""
    elements: list[tuple[int, bytes]] = [
        (Tag.STATUS, bytes((STATUS_VALID if valid else STATUS_INVALID,))),
    ]
    if valid:
        elements.append((Tag.ROLES, bytes(r & 0xFF for r in roles)))
        elements.append((Tag.TTL, struct.pack(">I", ttl)))
        elements.extend((Tag.CERTIFICATE, c) for c in certificates)
    return Frame(command, session, tuple(elements))


def decode_answer(frame: Frame) -> Answer:
    """Decode a response frame.

    Raises:
        ProtocolError: not a response, or a missing/ill-sized status or TTL.
    """
    if frame.command not in (Command.VERIFY_RESPONSE, Command.QUERY_RESPONSE):
        raise ProtocolError(f"expected a TVS response, got {frame.command.name}")
    status = frame.get(Tag.STATUS)
    if status is None or len(status) != 1:
        raise ProtocolError("TVS response without a 1-byte status")
    if status[0] != STATUS_VALID:
        return Answer(False, (), 0, ())
    ttl_raw = frame.get(Tag.TTL) or b"\0\0\0\0"
    if len(ttl_raw) != 4:
        raise ProtocolError("TVS TTL is not 4 bytes")
    return Answer(
        True,
        tuple(frame.get(Tag.ROLES) or b""),
        struct.unpack(">I", ttl_raw)[0],
        tuple(frame.all(Tag.CERTIFICATE)),
    )

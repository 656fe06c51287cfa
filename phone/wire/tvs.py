"""The TVS wire protocol, sans-IO (tvs-capf-wire.md section 1; phone-behaviour item 22).

Frame: a 10-byte header (protocol id 0x57, version 1, command, reserved 0, session id u32 BE,
body length u16 BE) and a body of TLV elements (tag 1 byte, length u16 BE). Commands 1/2 are
verify request/response exactly as usecallmanagernz tvsd/tvsc speak them (1.3-1.5: the request
carries DEVICE_NAME = one leading byte + ``CP-MMMM-SEP<MAC>`` and CERTIFICATE = DER; the answer
STATUS, ROLES, TTL, or STATUS alone for an unknown certificate). Commands 3/4 (query) exist as
constants in the public programs and in CUCM logs, but no public source gives their elements:
vphone's query elements (tags 3 and 4 for issuer and serial, certificates returned as tag 2)
are **emulated** [G] and documented in docs/networks.md.

Nothing here touches a socket: :class:`FrameReader` takes bytes as they arrive and yields
frames (a header split across reads is reassembled: vphone is liberal in what it accepts,
although tvsd is not, section 0), :func:`encode_frame` turns a message into the bytes of *one*
write (one TLS record per message, as both public servers send).
"""

from __future__ import annotations

import re
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

# 1.4: the tags each request may carry; any other tag makes tvsd drop the connection (1.7).
REQUEST_TAGS = {
    1: frozenset({1, 2}),  # VERIFY: DEVICE_NAME, CERTIFICATE
    3: frozenset({1, 3, 4}),  # QUERY (emulated [G]): DEVICE_NAME, ISSUER_NAME, SERIAL_NUMBER
}
# 1.4: after the leading byte, literally CP-, 4 decimal digits, -SEP, 12 upper-case hex digits.
_DEVICE_NAME = re.compile(r"CP-[0-9]{4}-SEP[0-9A-F]{12}")
DEVICE_NAME_LEAD = 0x01  # what tvsc sends; tvsd ignores the byte (tvs-raw-...-leading-byte-00)


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
    """Tag 1: one 0x01 byte then ``CP-<model>-SEP<MAC>`` (1.4)."""
    return (Tag.DEVICE_NAME, bytes((DEVICE_NAME_LEAD,)) + device_name.encode("ascii"))


def tvs_device_name(model: str, name: str) -> str:
    """``CP-MMMM-SEP<MAC>`` for ``model`` and device ``name`` (``SEP<MAC>``), as tvsd checks it.

    The model part must be 4 decimal digits (1.4); a model name that is not (a lab model such as
    ``"8845-3PCC"``) keeps its first 4 digits, padded with 0 (tvsc's default is ``CP-0000-``).
    """
    digits = "".join(c for c in model if c.isdigit())[:4].rjust(4, "0")
    return f"CP-{digits}-{name.upper()}"


def parse_device_name(value: bytes) -> str:
    """The device name of a DEVICE_NAME element: the leading byte dropped, the rest checked.

    Raises:
        ProtocolError: not ``CP-MMMM-SEP`` + 12 upper-case hex digits after the first byte.
    """
    text = value[1:].decode("ascii", errors="replace")
    if _DEVICE_NAME.fullmatch(text) is None:
        raise ProtocolError(f"TVS device name {text!r} is not CP-MMMM-SEP<12 upper-case hex>")
    return text


def check_request(frame: Frame) -> None:
    """Refuse a request tvsd would drop (1.7): a response command, an unknown tag, a bad device
    name, or a VERIFY without a certificate. vphone's server drops the same connections.

    Raises:
        ProtocolError: with the reason.
    """
    allowed = REQUEST_TAGS.get(frame.command)
    if allowed is None:
        raise ProtocolError(f"a client sent {frame.command.name}")
    for tag, _value in frame.elements:
        if tag not in allowed:
            raise ProtocolError(f"unknown element tag {tag} in a {frame.command.name}")
    name = frame.get(Tag.DEVICE_NAME)
    if name is None:
        raise ProtocolError("TVS request without a device name")
    parse_device_name(name)
    if frame.command is Command.VERIFY_REQUEST and not frame.get(Tag.CERTIFICATE):
        raise ProtocolError("TVS verify request without a certificate")
    if frame.command is Command.QUERY_REQUEST and (
        frame.get(Tag.ISSUER_NAME) is None or frame.get(Tag.SERIAL_NUMBER) is None
    ):
        raise ProtocolError("TVS query without issuer or serial")


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
    """A verify or query response frame echoing ``session`` (1.2).

    A VERIFY_RESPONSE is exactly STATUS, ROLES, TTL, or STATUS = 1 alone (1.4); ROLES are one
    byte each in ascending code order, as tvsctl stores them (1.5). ``certificates`` are sent
    only in a QUERY_RESPONSE (the emulated query [G]: the phone knew only issuer and serial).
    """
    elements: list[tuple[int, bytes]] = [
        (Tag.STATUS, bytes((STATUS_VALID if valid else STATUS_INVALID,))),
    ]
    if valid:
        elements.append((Tag.ROLES, bytes(sorted({r & 0xFF for r in roles}))))
        elements.append((Tag.TTL, struct.pack(">I", ttl)))
        if command is Command.QUERY_RESPONSE:
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
    unknown = [
        t for t, _v in frame.elements if t not in (Tag.STATUS, Tag.ROLES, Tag.TTL, Tag.CERTIFICATE)
    ]
    if unknown:
        raise ProtocolError(f"unknown element tag {unknown[0]} in a TVS response")
    ttl_raw = frame.get(Tag.TTL) or b"\0\0\0\0"
    if len(ttl_raw) != 4:
        raise ProtocolError("TVS TTL is not 4 bytes")
    return Answer(
        True,
        tuple(frame.get(Tag.ROLES) or b""),
        struct.unpack(">I", ttl_raw)[0],
        tuple(frame.all(Tag.CERTIFICATE)),
    )

"""SCCP framing: the 12-byte little-endian header, message ids and the stream reader."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from phone.errors import LengthError

HEADER = struct.Struct("<III")  # length, header version, message id
# The length field counts the message id (4 bytes) and the body. The largest message a phone
# meets while registering (SoftKeySetRes, 780 bytes) is far below this bound [G]; anything above
# it is refused before it is buffered.
MAX_LENGTH = 4096
MIN_LENGTH = 4

BASIC = 0  # header version "Basic" (Wireshark); what chan-sccp sends below protocol 10
HEADER_VERSIONS = {0: "Basic", 0x0A: "V10", 0x0B: "V11"} | {v: f"V{v}" for v in range(0x0F, 0x17)}


class MessageId(IntEnum):
    """Message ids, named as Wireshark's skinny dissector names them (phone -> CM < 0x80)."""

    KEEP_ALIVE = 0x0000  # KeepAliveReq
    REGISTER = 0x0001  # RegisterReq (StationRegister)
    LINE_STAT_REQ = 0x000B
    CONFIG_STAT_REQ = 0x000C
    TIME_DATE_REQ = 0x000D
    BUTTON_TEMPLATE_REQ = 0x000E
    CAPABILITIES_RES = 0x0010
    SOFT_KEY_SET_REQ = 0x0025
    UNREGISTER = 0x0027  # UnregisterReq
    SOFT_KEY_TEMPLATE_REQ = 0x0028
    REGISTER_AVAILABLE_LINES = 0x002D
    REGISTER_ACK = 0x0081
    LINE_STAT_RES = 0x0092
    CONFIG_STAT_RES = 0x0093
    DEFINE_TIME_DATE = 0x0094  # TimeDateRes
    BUTTON_TEMPLATE_RES = 0x0097
    CAPABILITIES_REQ = 0x009B
    REGISTER_REJECT = 0x009D
    RESET = 0x009F
    KEEP_ALIVE_ACK = 0x0100
    SOFT_KEY_TEMPLATE_RES = 0x0108
    SOFT_KEY_SET_RES = 0x0109
    UNREGISTER_ACK = 0x0118


# --- framing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One SCCP message as it travels: header version, message id, body bytes."""

    message_id: int
    body: bytes = b""
    header_version: int = BASIC


def encode_frame(frame: Frame) -> bytes:
    """The bytes of ``frame``: header (length = 4 + body) then body."""
    length = 4 + len(frame.body)
    if length > MAX_LENGTH:
        raise ValueError(f"SCCP message of length {length} exceeds {MAX_LENGTH}")
    return HEADER.pack(length, frame.header_version, frame.message_id) + frame.body


@dataclass
class FrameReader:
    """Incremental framing: ``feed`` bytes as they arrive, get every complete frame.

    Raises LengthError for a length field below 4 or above :data:`MAX_LENGTH` (before buffering
    the body): the caller drops the connection. Offsets count from the first byte fed.
    """

    _buffer: bytearray = field(default_factory=bytearray)
    _consumed: int = 0

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add ``data`` and yield every frame it completes."""
        self._buffer += data
        while len(self._buffer) >= 4:
            (length,) = struct.unpack_from("<I", self._buffer)
            if not MIN_LENGTH <= length <= MAX_LENGTH:
                raise LengthError(
                    f"SCCP length field {length}",
                    offset=self._consumed,
                    expected=f"4..{MAX_LENGTH} (message id and body)",
                )
            total = length + 8
            if len(self._buffer) < total:
                return
            _, version, message_id = HEADER.unpack_from(self._buffer)
            body = bytes(self._buffer[HEADER.size : total])
            del self._buffer[:total]
            self._consumed += total
            yield Frame(message_id, body, version)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet framed."""
        return self._consumed


NAMES = {m.value: "".join(w.title() for w in m.name.split("_")) for m in MessageId}


def name(message_id: int) -> str:
    """A readable name for ``message_id`` (``KeepAlive``, ``message 0x1234``)."""
    return NAMES.get(message_id, f"message {message_id:#06x}")

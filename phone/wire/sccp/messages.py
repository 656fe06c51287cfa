"""SCCP messages: typed classes with their encode and decode (fields as Wireshark names them).

Why this module is longer than 600 lines: it is a table of message classes, one per message
id, each a few lines of fields and layout; kept in one place so the id registry and every
layout can be read against Wireshark's message table side by side.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import ClassVar

from phone.errors import TruncatedError, ValueFormatError
from phone.wire.sccp.framing import (
    BASIC,
    HEADER,
    NAMES,
    Frame,
    FrameReader,
    MessageId,
    encode_frame,
)

NO_IPV4 = IPv4Address(0)
NO_IPV6 = IPv6Address(0)


# --- field helpers -----------------------------------------------------------------------------


class _Body:
    """A cursor over a body that raises TruncatedError with the absolute offset."""

    def __init__(self, frame: Frame, base: int) -> None:
        self.data = frame.body
        self.pos = 0
        self.base = base + HEADER.size
        self.name = NAMES.get(frame.message_id, f"message {frame.message_id:#06x}")

    def take(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise TruncatedError(
                f"{self.name} body ends at byte {len(self.data)}",
                offset=self.base + len(self.data),
                expected=f"{what} ({size} bytes at body byte {self.pos})",
            )
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def text(self, size: int, what: str) -> str:
        return self.take(size, what).split(b"\0", 1)[0].decode("latin-1")

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    def count(self, value: int, maximum: int, what: str) -> int:
        if value > maximum:
            raise ValueFormatError(
                f"{self.name} {what} is {value}",
                offset=self.base + self.pos - 4,
                expected=f"at most {maximum}",
            )
        return value


def _text(value: str, size: int, what: str, *, terminated: bool = True) -> bytes:
    """``value`` NUL padded to ``size`` bytes; ``terminated``: at least one NUL."""
    raw = value.encode("latin-1")
    room = size - 1 if terminated else size
    if len(raw) > room or b"\0" in raw:
        raise ValueError(f"{what} {value!r} does not fit {room} bytes without NUL")
    return raw.ljust(size, b"\0")


def _u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """Base of the typed messages. ``trailing`` keeps bytes after the known fields (newer
    protocol versions append fields) so a decoded message encodes back to the same bytes."""

    ID: ClassVar[int]
    trailing: bytes = field(default=b"", kw_only=True)

    def body(self) -> bytes:
        """The body without ``trailing``."""
        return b""

    @classmethod
    def parse(cls, body: _Body) -> Message:
        """Read the fields of this message from ``body`` (the empty messages have none)."""
        return cls()


@dataclass(frozen=True, slots=True)
class KeepAlive(Message):
    """Phone -> CM every keepalive interval."""

    ID: ClassVar[int] = MessageId.KEEP_ALIVE


@dataclass(frozen=True, slots=True)
class KeepAliveAck(Message):
    """CM -> phone, the answer to KeepAlive."""

    ID: ClassVar[int] = MessageId.KEEP_ALIVE_ACK


@dataclass(frozen=True, slots=True)
class Unregister(Message):
    """Phone -> CM: leave the CallManager."""

    ID: ClassVar[int] = MessageId.UNREGISTER


@dataclass(frozen=True, slots=True)
class UnregisterAck(Message):
    """CM -> phone; ``status`` 0 is Ok (Wireshark)."""

    ID: ClassVar[int] = MessageId.UNREGISTER_ACK
    status: int = 0

    def body(self) -> bytes:
        return _u32(self.status)

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(body.u32("status"))


@dataclass(frozen=True, slots=True)
class CapabilitiesReq(Message):
    """CM -> phone right after RegisterAck; the phone must answer CapabilitiesRes."""

    ID: ClassVar[int] = MessageId.CAPABILITIES_REQ


@dataclass(frozen=True, slots=True)
class ButtonTemplateReq(Message):
    """Phone -> CM."""

    ID: ClassVar[int] = MessageId.BUTTON_TEMPLATE_REQ


@dataclass(frozen=True, slots=True)
class SoftKeyTemplateReq(Message):
    """Phone -> CM."""

    ID: ClassVar[int] = MessageId.SOFT_KEY_TEMPLATE_REQ


@dataclass(frozen=True, slots=True)
class SoftKeySetReq(Message):
    """Phone -> CM (its answer SoftKeySetRes decodes as :class:`Unknown` here)."""

    ID: ClassVar[int] = MessageId.SOFT_KEY_SET_REQ


@dataclass(frozen=True, slots=True)
class ConfigStatReq(Message):
    """Phone -> CM."""

    ID: ClassVar[int] = MessageId.CONFIG_STAT_REQ


@dataclass(frozen=True, slots=True)
class TimeDateReq(Message):
    """Phone -> CM."""

    ID: ClassVar[int] = MessageId.TIME_DATE_REQ


@dataclass(frozen=True, slots=True)
class LineStatReq(Message):
    """Phone -> CM, once per line (``line`` counts from 1)."""

    ID: ClassVar[int] = MessageId.LINE_STAT_REQ
    line: int = 1

    def body(self) -> bytes:
        return _u32(self.line)

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(body.u32("lineNumber"))


@dataclass(frozen=True, slots=True)
class RegisterAvailableLines(Message):
    """Phone -> CM: how many lines it can show."""

    ID: ClassVar[int] = MessageId.REGISTER_AVAILABLE_LINES
    lines: int = 1

    def body(self) -> bytes:
        return _u32(self.lines)

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(body.u32("maxNumOfAvailLines"))


@dataclass(frozen=True, slots=True)
class RegisterExtension:
    """The StationRegister fields Wireshark decodes when the length field exceeds 100."""

    active_conferences: int = 0
    mac: bytes = bytes(12)  # 12-byte field; Wireshark shows its first 6 bytes as a MAC
    ipv4_scope: int = 0
    max_lines: int = 0
    ipv6: IPv6Address = NO_IPV6
    ipv6_scope: int = 0
    firmware_load: str = ""

    SIZE: ClassVar[int] = 76


@dataclass(frozen=True, slots=True)
class StationRegister(Message):
    """Phone -> CM: RegisterReq. The body grows with the protocol version, in steps:

    * 36 bytes: device name, user id, instance, IPv4 address, device type, max streams
      (``basic``; Wireshark's first group, Asterisk's chan_skinny ``register_message``);
    * 44 bytes: then active streams, the protocol version byte, a byte Wireshark calls
      "unknown (part of ProtocolVer)" and a 16-bit phone-features field
      (``max_conferences is None``; chan_skinny reads the version byte at body byte 40);
    * 48 bytes: then max conferences;
    * 124 bytes: then :class:`RegisterExtension` (``extension``).

    Wireshark decodes the fields after max streams only when the length field exceeds 52, so
    a phone that reports a protocol version should send the 124-byte form, as vphone does.
    """

    ID: ClassVar[int] = MessageId.REGISTER
    device_name: str = ""
    user_id: int = 0
    instance: int = 1
    ip: IPv4Address = NO_IPV4
    device_type: int = 0
    max_streams: int = 5
    active_streams: int = 0
    protocol_version: int = 0
    protocol_flags: int = 0
    features: int = 0
    max_conferences: int | None = 0
    extension: RegisterExtension | None = None
    basic: bool = False

    def body(self) -> bytes:
        out = _text(self.device_name, 16, "device name") + _u32(self.user_id, self.instance)
        out += self.ip.packed + _u32(self.device_type, self.max_streams)
        if self.basic:
            return out
        out += _u32(self.active_streams)
        out += struct.pack("<BBH", self.protocol_version, self.protocol_flags, self.features)
        if self.max_conferences is None:
            return out
        out += _u32(self.max_conferences)
        ext = self.extension
        if ext is not None:
            if len(ext.mac) != 12:
                raise ValueError("the MAC field is 12 bytes")
            out += _u32(ext.active_conferences) + ext.mac + _u32(ext.ipv4_scope, ext.max_lines)
            out += ext.ipv6.packed + _u32(ext.ipv6_scope)
            out += _text(ext.firmware_load, 32, "firmware load name")
        return out

    @classmethod
    def parse(cls, body: _Body) -> Message:
        basic = cls(
            device_name=body.text(16, "DeviceName"),
            user_id=body.u32("userId"),
            instance=body.u32("instance"),
            ip=IPv4Address(body.take(4, "stationIpAddr")),
            device_type=body.u32("deviceType"),
            max_streams=body.u32("maxStreams"),
            basic=True,
        )
        left = len(body.data) - body.pos
        if left < 8:
            return basic  # anything shorter than the next step stays in ``trailing``
        active = body.u32("activeStreams")
        version, flags = body.u8("protocolVer"), body.u8("protocolVer byte 2")
        features = body.u16("phoneFeatures")
        max_conferences = body.u32("maxConferences") if left >= 12 else None
        ext = None
        if left >= 12 + RegisterExtension.SIZE:
            ext = RegisterExtension(
                active_conferences=body.u32("activeConferences"),
                mac=body.take(12, "macAddress"),
                ipv4_scope=body.u32("ipV4AddressScope"),
                max_lines=body.u32("maxNumberOfLines"),
                ipv6=IPv6Address(body.take(16, "stationIpV6Addr")),
                ipv6_scope=body.u32("ipV6AddressScope"),
                firmware_load=body.text(32, "firmwareLoadName"),
            )
        return dataclasses.replace(
            basic,
            active_streams=active,
            protocol_version=version,
            protocol_flags=flags,
            features=features,
            max_conferences=max_conferences,
            extension=ext,
            basic=False,
        )


@dataclass(frozen=True, slots=True)
class RegisterAck(Message):
    """CM -> phone: keepalive interval (s), date template (e.g. ``M/D/Y``), secondary keepalive
    interval (s), the protocol version the CM speaks, a byte and a features field after it."""

    ID: ClassVar[int] = MessageId.REGISTER_ACK
    keepalive: int = 30
    date_template: str = "M/D/Y"
    secondary_keepalive: int = 60
    protocol_version: int = 0
    protocol_flags: int = 0
    features: int = 0

    def body(self) -> bytes:
        return (
            _u32(self.keepalive)
            + _text(self.date_template, 6, "date template", terminated=False)
            + b"\0\0"  # alignment padding
            + _u32(self.secondary_keepalive)
            + struct.pack("<BBH", self.protocol_version, self.protocol_flags, self.features)
        )

    @classmethod
    def parse(cls, body: _Body) -> Message:
        keepalive = body.u32("keepAliveInterval")
        template = body.text(6, "dateTemplate")
        body.take(2, "alignmentPadding")
        secondary = body.u32("secondaryKeepAliveInterval")
        version, flags = body.u8("maxProtocolVer"), body.u8("maxProtocolVer byte 2")
        return cls(keepalive, template, secondary, version, flags, body.u16("phoneFeatures"))


@dataclass(frozen=True, slots=True)
class RegisterReject(Message):
    """CM -> phone: why registration was refused (32-byte text in Wireshark; chan_skinny's
    struct has 33). The phone shows the text."""

    ID: ClassVar[int] = MessageId.REGISTER_REJECT
    text: str = ""

    def body(self) -> bytes:
        return _text(self.text, 32, "reject text")

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(body.text(32, "text"))


@dataclass(frozen=True, slots=True)
class Capability:
    """One codec the phone offers: Wireshark's payloadCapability (4 = G.711 u-law 64k, 2 =
    G.711 A-law 64k, 6 = G.722 64k, 9 = G.729 (Annex A 11, ...)), max frames per packet and 8
    bytes of codec parameters."""

    payload: int
    max_frames: int = 40
    params: bytes = bytes(8)


@dataclass(frozen=True, slots=True)
class CapabilitiesRes(Message):
    """Phone -> CM, the answer to CapabilitiesReq: up to 18 capabilities of 16 bytes."""

    ID: ClassVar[int] = MessageId.CAPABILITIES_RES
    MAX: ClassVar[int] = 18
    capabilities: tuple[Capability, ...] = ()

    def body(self) -> bytes:
        if len(self.capabilities) > self.MAX:
            raise ValueError(f"more than {self.MAX} capabilities")
        out = _u32(len(self.capabilities))
        for cap in self.capabilities:
            if len(cap.params) != 8:
                raise ValueError("capability parameters are 8 bytes")
            out += _u32(cap.payload, cap.max_frames) + cap.params
        return out

    @classmethod
    def parse(cls, body: _Body) -> Message:
        count = body.count(body.u32("capCount"), cls.MAX, "capCount")
        caps = tuple(
            Capability(
                body.u32("payloadCapability"),
                body.u32("maxFramesPerPacket"),
                body.take(8, "codec parameters"),
            )
            for _ in range(count)
        )
        return cls(caps)


@dataclass(frozen=True, slots=True)
class Button:
    """One button of a template: line or feature instance and Wireshark's buttonDefinition
    (9 = Line, 2 = SpeedDial, 0xFF = Undefined)."""

    instance: int
    definition: int


@dataclass(frozen=True, slots=True)
class ButtonTemplateRes(Message):
    """CM -> phone: offset, count and total of buttons, then 2-byte buttons.

    chan_skinny sends a fixed array of 42; Wireshark reads ``total`` entries, so a message
    carrying the whole template (offset 0, total = count) decodes everywhere. vphone reads
    ``count`` entries and keeps the rest in ``trailing``.
    """

    ID: ClassVar[int] = MessageId.BUTTON_TEMPLATE_RES
    MAX: ClassVar[int] = 42
    offset: int = 0
    total: int = 0  # all buttons/keys of the template; this message carries a slice
    buttons: tuple[Button, ...] = ()

    def body(self) -> bytes:
        out = _u32(self.offset, len(self.buttons), self.total)
        return out + b"".join(bytes((b.instance, b.definition)) for b in self.buttons)

    @classmethod
    def parse(cls, body: _Body) -> Message:
        offset, count = body.u32("buttonOffset"), body.u32("buttonCount")
        body.count(count, cls.MAX, "buttonCount")
        total = body.u32("totalButtonCount")
        buttons = tuple(
            Button(body.u8("instanceNumber"), body.u8("buttonDefinition")) for _ in range(count)
        )
        return cls(offset, total, buttons)


@dataclass(frozen=True, slots=True)
class SoftKey:
    """One soft key: its label (16 bytes) and event code."""

    label: str
    event: int


@dataclass(frozen=True, slots=True)
class SoftKeyTemplateRes(Message):
    """CM -> phone: offset, count and total of soft keys, then 20-byte keys (read as
    :class:`ButtonTemplateRes`: Wireshark sizes the array by ``total``)."""

    ID: ClassVar[int] = MessageId.SOFT_KEY_TEMPLATE_RES
    MAX: ClassVar[int] = 32
    offset: int = 0
    total: int = 0  # all buttons/keys of the template; this message carries a slice
    keys: tuple[SoftKey, ...] = ()

    def body(self) -> bytes:
        out = _u32(self.offset, len(self.keys), self.total)
        keys = (_text(k.label, 16, "soft key label") + _u32(k.event) for k in self.keys)
        return out + b"".join(keys)

    @classmethod
    def parse(cls, body: _Body) -> Message:
        offset, count = body.u32("softKeyOffset"), body.u32("softKeyCount")
        body.count(count, cls.MAX, "softKeyCount")
        total = body.u32("totalSoftKeyCount")
        keys = tuple(
            SoftKey(body.text(16, "softKeyLabel"), body.u32("softKeyEvent")) for _ in range(count)
        )
        return cls(offset, total, keys)


@dataclass(frozen=True, slots=True)
class ConfigStatRes(Message):
    """CM -> phone: the device's name, user and server names, line and speed-dial counts."""

    ID: ClassVar[int] = MessageId.CONFIG_STAT_RES
    device_name: str = ""
    user_id: int = 0
    instance: int = 1
    user_name: str = ""
    server_name: str = ""
    lines: int = 1
    speed_dials: int = 0

    def body(self) -> bytes:
        return (
            _text(self.device_name, 16, "device name")
            + _u32(self.user_id, self.instance)
            + _text(self.user_name, 40, "user name")
            + _text(self.server_name, 40, "server name")
            + _u32(self.lines, self.speed_dials)
        )

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(
            body.text(16, "DeviceName"),
            body.u32("userId"),
            body.u32("instance"),
            body.text(40, "userName"),
            body.text(40, "serverName"),
            body.u32("numberLines"),
            body.u32("numberSpeedDials"),
        )


@dataclass(frozen=True, slots=True)
class LineStatRes(Message):
    """CM -> phone: a line's number (24), display name (40), label (40) and display options."""

    ID: ClassVar[int] = MessageId.LINE_STAT_RES
    line: int = 1
    number: str = ""
    display_name: str = ""
    label: str = ""
    display_options: int = 0

    def body(self) -> bytes:
        return (
            _u32(self.line)
            + _text(self.number, 24, "line number")
            + _text(self.display_name, 40, "display name")
            + _text(self.label, 40, "line label")
            + _u32(self.display_options)
        )

    @classmethod
    def parse(cls, body: _Body) -> Message:
        return cls(
            body.u32("lineNumber"),
            body.text(24, "lineDirNumber"),
            body.text(40, "lineFullyQualifiedDisplayName"),
            body.text(40, "lineTextLabel"),
            body.u32("lineDisplayOptions"),
        )


@dataclass(frozen=True, slots=True)
class DefineTimeDate(Message):
    """CM -> phone (TimeDateRes): year, month, day of week, day, hour, minute, second,
    milliseconds, then the system time in seconds since 1970."""

    ID: ClassVar[int] = MessageId.DEFINE_TIME_DATE
    year: int = 1970
    month: int = 1
    day_of_week: int = 4
    day: int = 1
    hour: int = 0
    minute: int = 0
    second: int = 0
    milliseconds: int = 0
    system_time: int = 0

    def body(self) -> bytes:
        return _u32(
            self.year,
            self.month,
            self.day_of_week,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.milliseconds,
            self.system_time,
        )

    @classmethod
    def parse(cls, body: _Body) -> Message:
        names = ("wYear", "wMonth", "wDayOfWeek", "wDay", "wHour", "wMinute", "wSecond")
        values = [body.u32(n) for n in (*names, "wMilliseconds", "systemTime")]
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Unknown:
    """A message without a class here (SoftKeySetRes, Reset, call signalling...): kept whole."""

    message_id: int
    raw: bytes = b""


CLASSES: dict[int, type[Message]] = {
    c.ID: c
    for c in (
        KeepAlive,
        KeepAliveAck,
        StationRegister,
        RegisterAck,
        RegisterReject,
        Unregister,
        UnregisterAck,
        CapabilitiesReq,
        CapabilitiesRes,
        ButtonTemplateReq,
        ButtonTemplateRes,
        SoftKeyTemplateReq,
        SoftKeyTemplateRes,
        SoftKeySetReq,
        ConfigStatReq,
        ConfigStatRes,
        LineStatReq,
        LineStatRes,
        TimeDateReq,
        DefineTimeDate,
        RegisterAvailableLines,
    )
}


def decode(frame: Frame, offset: int = 0) -> Message | Unknown:
    """The typed message in ``frame`` (``offset``: where the frame starts in the stream).

    Raises:
        TruncatedError: the body ends before a field of the message.
        ValueFormatError: a count above the message's maximum.
    """
    cls = CLASSES.get(frame.message_id)
    if cls is None:
        return Unknown(frame.message_id, frame.body)
    body = _Body(frame, offset)
    message = cls.parse(body)
    rest = body.rest()
    return dataclasses.replace(message, trailing=rest) if rest else message


def to_frame(message: Message | Unknown, header_version: int = BASIC) -> Frame:
    """The frame carrying ``message``."""
    if isinstance(message, Unknown):
        return Frame(message.message_id, message.raw, header_version)
    return Frame(message.ID, message.body() + message.trailing, header_version)


def encode(message: Message | Unknown, header_version: int = BASIC) -> bytes:
    """The bytes of ``message`` (one write)."""
    return encode_frame(to_frame(message, header_version))


def parse_stream(data: bytes) -> list[Message | Unknown]:
    """Every message in ``data``, which must end on a frame boundary (the fuzz harness's entry).

    Raises:
        LengthError, TruncatedError, ValueFormatError: as :class:`FrameReader` and
        :func:`decode`; TruncatedError also when ``data`` ends inside a frame.
    """
    reader = FrameReader()
    out: list[Message | Unknown] = []
    start = 0
    for frame in reader.feed(data):
        out.append(decode(frame, start))
        start = reader.offset
    if reader.pending:
        need = HEADER.size
        if reader.pending >= 4:
            need = 8 + int.from_bytes(data[start : start + 4], "little")
        raise TruncatedError(
            f"SCCP stream ends {reader.pending} bytes into a frame",
            offset=len(data),
            expected=f"{need} bytes of frame from byte {start}",
        )
    return out

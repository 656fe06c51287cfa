"""SCCP message layouts pinned to literal bytes (issue 15 item 1, issue 16).

Sources: docs/sccp.md "The messages" (field order and sizes, read from Wireshark's skinny
dissector, packet-skinny.c / SkinnyProtocolOptimized.xml, and Asterisk's chan_skinny), the
framing of docs/sccp.md "Framing" (12-byte header: length = 4 + body, header version, message
id; little-endian u32; IPv4 in network order; fixed-size NUL-padded strings). Field names in
the truncation texts are Wireshark's field names. Every expected value below is written out as
bytes, never produced by vphone's encoder.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from phone.errors import TruncatedError, ValueFormatError
from phone.wire.sccp import (
    Button,
    ButtonTemplateRes,
    CapabilitiesRes,
    Capability,
    ConfigStatRes,
    DefineTimeDate,
    Frame,
    KeepAlive,
    LineStatReq,
    LineStatRes,
    Message,
    RegisterAck,
    RegisterAvailableLines,
    RegisterExtension,
    RegisterReject,
    SoftKey,
    SoftKeyTemplateRes,
    StationRegister,
    Unknown,
    UnregisterAck,
    decode,
    encode,
    parse_stream,
)
from phone.wire.sccp.devices import device_type
from phone.wire.sccp.messages import to_frame

KEEPALIVE = bytes.fromhex("04000000 00000000 00000000")  # docs/sccp.md Framing


def frame(message_id: int, body: bytes, version: int = 0) -> bytes:
    """A frame written out by hand: length (4 + body), header version, message id, body."""
    return struct.pack("<III", 4 + len(body), version, message_id) + body


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def pad(text: bytes, size: int) -> bytes:
    return text + b"\0" * (size - len(text))


# --- one literal frame per message class: encode gives it, decode reads it back ----------------

# A 124-byte StationRegister body with a different value in every field (docs/sccp.md).
REGISTER_BODY = (
    pad(b"SEP001122334455", 16)  # DeviceName char[16]
    + u32(0x11, 0x02)  # userId, instance
    + bytes((10, 1, 2, 3))  # stationIpAddr, network order
    + u32(434, 0x05)  # deviceType 434 (7942), maxStreams
    + u32(0x06)  # activeStreams
    + bytes((0x11, 0x87))  # protocolVer 17, the byte after it (top bit set)
    + bytes.fromhex("0988")  # phoneFeatures u16 0x8809
    + u32(0x0A)  # maxConferences
    + u32(0x0B)  # activeConferences
    + bytes.fromhex("001122334455")
    + bytes(6)  # macAddress (12 bytes)
    + u32(0x0C, 0x0D)  # ipV4AddressScope, maxNumberOfLines
    + bytes.fromhex("20010db8000000000000000000000001")  # stationIpV6Addr
    + u32(0x0E)  # ipV6AddressScope
    + pad(b"SCCP42.9-4-2SR3-1S", 32)  # firmwareLoadName char[32]
)
REGISTER = StationRegister(
    device_name="SEP001122334455",
    user_id=0x11,
    instance=0x02,
    ip=IPv4Address("10.1.2.3"),
    device_type=434,
    max_streams=5,
    active_streams=6,
    protocol_version=17,
    protocol_flags=0x87,
    features=0x8809,
    max_conferences=0x0A,
    extension=RegisterExtension(
        active_conferences=0x0B,
        mac=bytes.fromhex("001122334455") + bytes(6),
        ipv4_scope=0x0C,
        max_lines=0x0D,
        ipv6=IPv6Address("2001:db8::1"),
        ipv6_scope=0x0E,
        firmware_load="SCCP42.9-4-2SR3-1S",
    ),
)

LITERAL: list[tuple[Message, bytes]] = [
    (KeepAlive(), KEEPALIVE),
    (UnregisterAck(status=1), frame(0x0118, u32(1))),
    (LineStatReq(line=3), frame(0x000B, u32(3))),
    (RegisterAvailableLines(lines=6), frame(0x002D, u32(6))),
    (REGISTER, frame(0x0001, REGISTER_BODY)),
    (
        RegisterAck(
            keepalive=30,
            date_template="D.M.YA",  # six characters: the field is char[6], no NUL needed
            secondary_keepalive=60,
            protocol_version=17,
            protocol_flags=3,
            features=0x8102,  # u16: the top bit set
        ),
        frame(0x0081, u32(30) + b"D.M.YA" + b"\0\0" + u32(60) + bytes((17, 3, 0x02, 0x81))),
    ),
    (RegisterReject(text="Unknown device"), frame(0x009D, pad(b"Unknown device", 32))),
    (
        CapabilitiesRes(capabilities=(Capability(4, 40), Capability(9, 20, bytes(range(1, 9))))),
        frame(0x0010, u32(2) + u32(4, 40) + bytes(8) + u32(9, 20) + bytes(range(1, 9))),
    ),
    (
        ButtonTemplateRes(offset=1, total=5, buttons=(Button(1, 9), Button(2, 0x15))),
        frame(0x0097, u32(1, 2, 5) + bytes((1, 9, 2, 0x15))),
    ),
    (
        SoftKeyTemplateRes(offset=2, total=7, keys=(SoftKey("Redial", 1), SoftKey("NewCall", 2))),
        frame(0x0108, u32(2, 2, 7) + pad(b"Redial", 16) + u32(1) + pad(b"NewCall", 16) + u32(2)),
    ),
    (
        ConfigStatRes(
            device_name="SEP001122334455",
            user_id=7,
            instance=2,
            user_name="alice",
            server_name="cm1.example",
            lines=3,
            speed_dials=4,
        ),
        frame(
            0x0093,
            pad(b"SEP001122334455", 16)
            + u32(7, 2)
            + pad(b"alice", 40)
            + pad(b"cm1.example", 40)
            + u32(3, 4),
        ),
    ),
    (
        LineStatRes(line=2, number="1001", display_name="Alice", label="Line 1", display_options=5),
        frame(
            0x0092,
            u32(2) + pad(b"1001", 24) + pad(b"Alice", 40) + pad(b"Line 1", 40) + u32(5),
        ),
    ),
    (
        DefineTimeDate(
            # 2038-01-19 03:14:08 UTC, a Tuesday: systemTime 2**31, past the signed range
            year=2038,
            month=1,
            day_of_week=2,
            day=19,
            hour=3,
            minute=14,
            second=8,
            milliseconds=123,
            system_time=0x80000000,
        ),
        frame(0x0094, u32(2038, 1, 2, 19, 3, 14, 8, 123) + bytes.fromhex("00000080")),
    ),
]


@pytest.mark.parametrize(("message", "data"), LITERAL, ids=lambda v: type(v).__name__)
def test_every_message_encodes_to_its_documented_bytes(message: Message, data: bytes) -> None:
    assert encode(message) == data


@pytest.mark.parametrize(("message", "data"), LITERAL, ids=lambda v: type(v).__name__)
def test_every_message_decodes_from_its_documented_bytes(message: Message, data: bytes) -> None:
    assert parse_stream(data) == [message]
    decoded = decode(Frame(struct.unpack_from("<I", data, 8)[0], data[12:]))
    assert decoded == message
    assert decoded.trailing == b""


def test_header_version_is_written_and_kept() -> None:
    # docs/sccp.md Framing: bytes 4-7 are the header version (0x11 for protocol >= 17).
    data = frame(0x000B, u32(3), version=0x11)
    assert encode(LineStatReq(line=3), 0x11) == data
    assert to_frame(LineStatReq(line=3), 0x11) == Frame(0x0B, u32(3), 0x11)
    assert to_frame(Unknown(0x9F, b"\1"), 0x11) == Frame(0x9F, b"\1", 0x11)
    assert to_frame(LineStatReq(line=3)) == Frame(0x0B, u32(3), 0)
    assert to_frame(Unknown(0x9F, b"\1")) == Frame(0x9F, b"\1", 0)


def test_decode_offsets_count_from_the_frame_start_by_default() -> None:
    with pytest.raises(TruncatedError) as info:
        decode(Frame(0x000B, b""))
    assert info.value.offset == 12  # the header, then body byte 0
    with pytest.raises(TruncatedError) as info:
        parse_stream(frame(0x000B, b""))
    assert info.value.offset == 12


def test_strings_end_at_the_first_nul_and_are_latin1() -> None:
    # Fixed-size NUL-padded strings (docs/sccp.md): what follows the first NUL is not text.
    body = pad(b"caf\xe9\0junk", 32)
    assert parse_stream(frame(0x009D, body)) == [RegisterReject(text="caf\xe9")]
    assert encode(RegisterReject(text="caf\xe9")) == frame(0x009D, pad(b"caf\xe9", 32))


# --- StationRegister: the body grows in steps of 36, 44, 48 and 124 bytes ----------------------

BASIC_BODY = REGISTER_BODY[:36]
BASIC = StationRegister(
    device_name="SEP001122334455",
    user_id=0x11,
    instance=0x02,
    ip=IPv4Address("10.1.2.3"),
    device_type=434,
    max_streams=5,
    basic=True,
)


def test_register_36_byte_body_is_the_basic_form() -> None:
    assert parse_stream(frame(1, BASIC_BODY)) == [BASIC]
    assert encode(BASIC) == frame(1, BASIC_BODY)


def test_register_body_shorter_than_the_44_byte_step_keeps_the_rest_as_trailing() -> None:
    [message] = parse_stream(frame(1, REGISTER_BODY[:43]))
    assert isinstance(message, StationRegister)
    assert message.basic and message.active_streams == 0
    assert message.trailing == REGISTER_BODY[36:43]


def test_register_44_byte_body_has_no_max_conferences() -> None:
    expected = StationRegister(
        device_name="SEP001122334455",
        user_id=0x11,
        instance=0x02,
        ip=IPv4Address("10.1.2.3"),
        device_type=434,
        max_streams=5,
        active_streams=6,
        protocol_version=17,
        protocol_flags=0x87,
        features=0x8809,
        max_conferences=None,
    )
    assert parse_stream(frame(1, REGISTER_BODY[:44])) == [expected]
    assert encode(expected) == frame(1, REGISTER_BODY[:44])
    [longer] = parse_stream(frame(1, REGISTER_BODY[:47]))
    assert isinstance(longer, StationRegister)
    assert longer.max_conferences is None and longer.trailing == REGISTER_BODY[44:47]


def test_register_48_byte_body_adds_max_conferences_only() -> None:
    [message] = parse_stream(frame(1, REGISTER_BODY[:48]))
    assert isinstance(message, StationRegister)
    assert not message.basic
    assert (message.active_streams, message.protocol_version) == (6, 17)
    assert (message.protocol_flags, message.features, message.max_conferences) == (0x87, 0x8809, 10)
    assert message.extension is None and message.trailing == b""
    assert encode(message) == frame(1, REGISTER_BODY[:48])
    # One byte short of the 124-byte form: still no extension, the 75 bytes are trailing.
    [short] = parse_stream(frame(1, REGISTER_BODY[:123]))
    assert isinstance(short, StationRegister)
    assert short.extension is None and short.trailing == REGISTER_BODY[48:123]


def test_register_mac_field_is_twelve_bytes() -> None:
    ext = RegisterExtension(mac=bytes(6))
    with pytest.raises(ValueError, match=r"^the MAC field is 12 bytes$"):
        encode(StationRegister(device_name="SEP0", extension=ext))


# --- truncation: the field and its offset are named ---------------------------------------------

# (message id, name vphone shows, body before the cut, Wireshark field, field size)
CUTS: list[tuple[int, str, int, str, int]] = [
    (0x0118, "UnregisterAck", 0, "status", 4),
    (0x000B, "LineStatReq", 0, "lineNumber", 4),
    (0x002D, "RegisterAvailableLines", 0, "maxNumOfAvailLines", 4),
    (0x0001, "Register", 0, "DeviceName", 16),
    (0x0001, "Register", 16, "userId", 4),
    (0x0001, "Register", 20, "instance", 4),
    (0x0001, "Register", 24, "stationIpAddr", 4),
    (0x0001, "Register", 28, "deviceType", 4),
    (0x0001, "Register", 32, "maxStreams", 4),
    (0x0081, "RegisterAck", 0, "keepAliveInterval", 4),
    (0x0081, "RegisterAck", 4, "dateTemplate", 6),
    (0x0081, "RegisterAck", 10, "alignmentPadding", 2),
    (0x0081, "RegisterAck", 12, "secondaryKeepAliveInterval", 4),
    (0x0081, "RegisterAck", 16, "maxProtocolVer", 1),
    (0x0081, "RegisterAck", 17, "maxProtocolVer byte 2", 1),
    (0x0081, "RegisterAck", 18, "phoneFeatures", 2),
    (0x009D, "RegisterReject", 0, "text", 32),
    (0x0010, "CapabilitiesRes", 0, "capCount", 4),
    (0x0010, "CapabilitiesRes", 4, "payloadCapability", 4),
    (0x0010, "CapabilitiesRes", 8, "maxFramesPerPacket", 4),
    (0x0010, "CapabilitiesRes", 12, "codec parameters", 8),
    (0x0097, "ButtonTemplateRes", 0, "buttonOffset", 4),
    (0x0097, "ButtonTemplateRes", 4, "buttonCount", 4),
    (0x0097, "ButtonTemplateRes", 8, "totalButtonCount", 4),
    (0x0097, "ButtonTemplateRes", 12, "instanceNumber", 1),
    (0x0097, "ButtonTemplateRes", 13, "buttonDefinition", 1),
    (0x0108, "SoftKeyTemplateRes", 0, "softKeyOffset", 4),
    (0x0108, "SoftKeyTemplateRes", 4, "softKeyCount", 4),
    (0x0108, "SoftKeyTemplateRes", 8, "totalSoftKeyCount", 4),
    (0x0108, "SoftKeyTemplateRes", 12, "softKeyLabel", 16),
    (0x0108, "SoftKeyTemplateRes", 28, "softKeyEvent", 4),
    (0x0093, "ConfigStatRes", 0, "DeviceName", 16),
    (0x0093, "ConfigStatRes", 16, "userId", 4),
    (0x0093, "ConfigStatRes", 20, "instance", 4),
    (0x0093, "ConfigStatRes", 24, "userName", 40),
    (0x0093, "ConfigStatRes", 64, "serverName", 40),
    (0x0093, "ConfigStatRes", 104, "numberLines", 4),
    (0x0093, "ConfigStatRes", 108, "numberSpeedDials", 4),
    (0x0092, "LineStatRes", 0, "lineNumber", 4),
    (0x0092, "LineStatRes", 4, "lineDirNumber", 24),
    (0x0092, "LineStatRes", 28, "lineFullyQualifiedDisplayName", 40),
    (0x0092, "LineStatRes", 68, "lineTextLabel", 40),
    (0x0092, "LineStatRes", 108, "lineDisplayOptions", 4),
    *(
        (0x0094, "DefineTimeDate", 4 * i, name, 4)
        for i, name in enumerate(
            (
                "wYear",
                "wMonth",
                "wDayOfWeek",
                "wDay",
                "wHour",
                "wMinute",
                "wSecond",
                "wMilliseconds",
                "systemTime",
            )
        )
    ),
]


def _filled(message_id: int, size: int) -> bytes:
    """``size`` body bytes whose counts say "one entry" (byte 0 / byte 4 hold the count)."""
    body = bytearray(size)
    count_at = {0x0010: 0, 0x0097: 4, 0x0108: 4}.get(message_id)
    if count_at is not None and size >= count_at + 4:
        body[count_at] = 1
    return bytes(body)


@pytest.mark.parametrize(("message_id", "name", "at", "field", "size"), CUTS)
def test_truncated_body_names_the_wireshark_field_and_its_offset(
    message_id: int, name: str, at: int, field: str, size: int
) -> None:
    lead = KEEPALIVE  # a 12-byte frame before: offsets count from the stream's start
    for cut in sorted({at, at + size - 1}):
        data = lead + frame(message_id, _filled(message_id, cut))
        with pytest.raises(TruncatedError) as info:
            parse_stream(data)
        error = info.value
        assert error.problem == f"{name} body ends at byte {cut}"
        assert error.offset == 12 + 12 + cut
        assert error.expected == f"{field} ({size} bytes at body byte {at})"
    # The field itself fits exactly: no error from it.
    whole = _filled(message_id, at + size)
    try:
        parse_stream(frame(message_id, whole))
    except TruncatedError as error:
        assert error.expected != f"{field} ({size} bytes at body byte {at})"


# --- counts: the arrays have a maximum -----------------------------------------------------------


def test_capabilities_res_carries_at_most_18_capabilities() -> None:
    # docs/sccp.md: "count, then up to 18 x (payload, max frames, 8 bytes of parameters)".
    caps = tuple(Capability(i, i + 100, bytes([i]) * 8) for i in range(18))
    body = u32(18) + b"".join(u32(i, i + 100) + bytes([i]) * 8 for i in range(18))
    assert parse_stream(frame(0x10, body)) == [CapabilitiesRes(capabilities=caps)]
    assert encode(CapabilitiesRes(capabilities=caps)) == frame(0x10, body)
    with pytest.raises(ValueFormatError) as info:
        parse_stream(KEEPALIVE + frame(0x10, u32(19) + bytes(16 * 19)))
    assert info.value.problem == "CapabilitiesRes capCount is 19"
    assert info.value.expected == "at most 18"
    assert info.value.offset == 24  # the count field: after a 12-byte frame and the header
    with pytest.raises(ValueError, match=r"^more than 18 capabilities$"):
        encode(CapabilitiesRes(capabilities=(*caps, Capability(4))))
    with pytest.raises(ValueError, match=r"^capability parameters are 8 bytes$"):
        encode(CapabilitiesRes(capabilities=(Capability(4, 40, bytes(7)),)))


def test_button_template_res_carries_at_most_42_buttons() -> None:
    # chan_skinny's fixed array of 42 buttons (docs/sccp.md, ButtonTemplateRes).
    buttons = tuple(Button(i, 9) for i in range(42))
    body = u32(0, 42, 42) + b"".join(bytes((i, 9)) for i in range(42))
    assert parse_stream(frame(0x97, body)) == [ButtonTemplateRes(total=42, buttons=buttons)]
    with pytest.raises(ValueFormatError) as info:
        parse_stream(frame(0x97, u32(0, 43, 43) + bytes(86)))
    assert info.value.problem == "ButtonTemplateRes buttonCount is 43"
    assert info.value.expected == "at most 42"
    assert info.value.offset == 12 + 4  # buttonCount is body bytes 4-7


def test_soft_key_template_res_carries_at_most_32_keys() -> None:
    keys = tuple(SoftKey(f"K{i}", i) for i in range(32))
    body = u32(0, 32, 32) + b"".join(pad(f"K{i}".encode(), 16) + u32(i) for i in range(32))
    assert parse_stream(frame(0x108, body)) == [SoftKeyTemplateRes(total=32, keys=keys)]
    with pytest.raises(ValueFormatError) as info:
        parse_stream(frame(0x108, u32(0, 33, 33) + bytes(20 * 33)))
    assert info.value.problem == "SoftKeyTemplateRes softKeyCount is 33"
    assert info.value.expected == "at most 32"
    assert info.value.offset == 12 + 4


def test_template_arrays_are_read_by_count_and_the_rest_is_trailing() -> None:
    # vphone reads ``count`` entries (docs/sccp.md); total may say more.
    data = frame(0x97, u32(0, 1, 3) + bytes((1, 9)) + bytes((2, 9)))
    assert parse_stream(data) == [
        ButtonTemplateRes(offset=0, total=3, buttons=(Button(1, 9),), trailing=bytes((2, 9)))
    ]
    assert encode(parse_stream(data)[0]) == data


# --- encoding refuses strings that do not fit their field ----------------------------------------


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (StationRegister(device_name="S" * 16), "device name 'SSSSSSSSSSSSSSSS' does not fit 15"),
        (RegisterReject(text="r" * 32), "reject text '" + "r" * 32 + "' does not fit 31"),
        (RegisterReject(text="a\0b"), "reject text 'a\\x00b' does not fit 31"),
        (RegisterAck(date_template="D/M/YYY"), "date template 'D/M/YYY' does not fit 6"),
        (ConfigStatRes(user_name="u" * 40), "user name '" + "u" * 40 + "' does not fit 39"),
        (ConfigStatRes(server_name="s" * 40), "server name '" + "s" * 40 + "' does not fit 39"),
        (ConfigStatRes(device_name="d" * 16), "device name '" + "d" * 16 + "' does not fit 15"),
        (LineStatRes(number="1" * 24), "line number '" + "1" * 24 + "' does not fit 23"),
        (LineStatRes(display_name="n" * 40), "display name '" + "n" * 40 + "' does not fit 39"),
        (LineStatRes(label="l" * 40), "line label '" + "l" * 40 + "' does not fit 39"),
        (SoftKeyTemplateRes(keys=(SoftKey("k" * 16, 1),)), "soft key label '" + "k" * 16 + "'"),
        (
            StationRegister(extension=RegisterExtension(firmware_load="f" * 32)),
            "firmware load name '" + "f" * 32 + "' does not fit 31",
        ),
    ],
)
def test_strings_longer_than_their_field_are_refused(message: Message, text: str) -> None:
    with pytest.raises(ValueError) as info:
        encode(message)
    assert str(info.value).startswith(text)
    assert str(info.value).endswith(" bytes without NUL")


def test_strings_that_exactly_fill_their_field_leave_one_nul() -> None:
    # char[16] with a NUL terminator holds 15 characters; char[6] date template holds 6.
    data = encode(StationRegister(device_name="S" * 15, basic=True))
    assert data[12:28] == b"S" * 15 + b"\0"
    assert encode(LineStatRes(number="1" * 23))[16:40] == b"1" * 23 + b"\0"


# --- device types (docs/sccp.md "Device types": Wireshark's DeviceType table) -------------------


def test_every_model_has_the_dissector_device_type() -> None:
    expected = {
        "7902": 30008,
        "7905": 20000,
        "7906": 369,
        "7910": 6,
        "7911": 307,
        "7912": 30007,
        "7920": 30002,
        "7921": 365,
        "7925": 484,
        "7931": 348,
        "7935": 9,
        "7936": 30019,
        "7937": 431,
        "7940": 8,
        "7941": 115,
        "7942": 434,
        "7945": 435,
        "7960": 7,
        "7961": 30018,
        "7962": 404,
        "7965": 436,
        "7970": 30006,
        "7971": 119,
        "7975": 437,
        "7985": 302,
        "6901": 547,
        "6911": 548,
        "6921": 495,
        "6941": 496,
        "6945": 564,
        "6961": 497,
        "8941": 586,
        "8945": 585,
        "IPCommunicator": 30016,
    }
    assert {model: device_type(model) for model in expected} == expected
    with pytest.raises(KeyError):
        device_type("9971")  # a SIP-only model: no SCCP device type

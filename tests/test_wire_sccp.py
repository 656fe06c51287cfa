"""SCCP codec (issue 15 item 1): framing, typed messages, malformed input, tshark's decode."""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phone.errors import FormatError, LengthError, TruncatedError, ValueFormatError
from phone.wire.sccp import (
    CLASSES,
    DEVICE_TYPES,
    MAX_LENGTH,
    Button,
    ButtonTemplateReq,
    ButtonTemplateRes,
    CapabilitiesReq,
    CapabilitiesRes,
    Capability,
    ConfigStatReq,
    ConfigStatRes,
    DefineTimeDate,
    Frame,
    FrameReader,
    KeepAlive,
    KeepAliveAck,
    LineStatReq,
    LineStatRes,
    Message,
    RegisterAck,
    RegisterAvailableLines,
    RegisterExtension,
    RegisterReject,
    SoftKey,
    SoftKeySetReq,
    SoftKeyTemplateReq,
    SoftKeyTemplateRes,
    StationRegister,
    TimeDateReq,
    Unknown,
    Unregister,
    UnregisterAck,
    decode,
    encode,
    parse_stream,
)

REGISTER_7942 = StationRegister(
    device_name="SEP001122334455",
    ip=IPv4Address("10.0.0.2"),
    device_type=DEVICE_TYPES["7942"],
    protocol_version=17,
    features=0x10,
    extension=RegisterExtension(
        mac=bytes.fromhex("001122334455") + bytes(6),
        max_lines=2,
        firmware_load="SCCP42.9-4-2SR3-1S",
    ),
)

# A whole registration, as (direction, message): 0 phone -> CM, 1 CM -> phone.
EXCHANGE: list[tuple[int, Message | Unknown]] = [
    (0, REGISTER_7942),
    (1, RegisterAck(keepalive=30, date_template="D/M/Y", secondary_keepalive=60)),
    (1, CapabilitiesReq()),
    (0, CapabilitiesRes(capabilities=(Capability(4), Capability(9, 20)))),
    (0, ButtonTemplateReq()),
    (1, ButtonTemplateRes(buttons=(Button(1, 9), Button(2, 9)), total=2)),
    (0, SoftKeyTemplateReq()),
    (1, SoftKeyTemplateRes(keys=(SoftKey("Redial", 1), SoftKey("NewCall", 2)), total=2)),
    (0, SoftKeySetReq()),
    (0, ConfigStatReq()),
    (1, ConfigStatRes(device_name="SEP001122334455", user_name="alice", server_name="cm1")),
    (0, LineStatReq(line=1)),
    (1, LineStatRes(line=1, number="1001", display_name="Alice", label="1001")),
    (0, TimeDateReq()),
    (1, DefineTimeDate(year=2024, month=5, day_of_week=3, day=15, system_time=1715769045)),
    (0, RegisterAvailableLines(lines=2)),
    (0, KeepAlive()),
    (1, KeepAliveAck()),
    (0, Unregister()),
    (1, UnregisterAck()),
]
# Wireshark's names for the messages above (tshark -G values, skinny.messageId).
WIRESHARK_NAMES = {
    StationRegister: "RegisterReq",
    RegisterAck: "RegisterAck",
    CapabilitiesReq: "CapabilitiesReq",
    CapabilitiesRes: "CapabilitiesRes",
    ButtonTemplateReq: "ButtonTemplateReq",
    ButtonTemplateRes: "ButtonTemplateRes",
    SoftKeyTemplateReq: "SoftKeyTemplateReq",
    SoftKeyTemplateRes: "SoftKeyTemplateRes",
    SoftKeySetReq: "SoftKeySetReq",
    ConfigStatReq: "ConfigStatReq",
    ConfigStatRes: "ConfigStatRes",
    LineStatReq: "LineStatReq",
    LineStatRes: "LineStatRes",
    TimeDateReq: "TimeDateReq",
    DefineTimeDate: "TimeDateRes",
    RegisterAvailableLines: "RegisterAvailableLines",
    KeepAlive: "KeepAliveReq",
    KeepAliveAck: "KeepAliveAck",
    Unregister: "UnregisterReq",
    UnregisterAck: "UnregisterAck",
    RegisterReject: "RegisterReject",
}


# --- literal bytes ------------------------------------------------------------------------------


def test_keepalive_is_the_twelve_bytes_of_the_sources() -> None:
    # length 4 (message id, empty body), header version 0, message id 0: what chan-sccp and
    # Wireshark agree on (a peer writes length + 8 bytes).
    assert encode(KeepAlive()) == bytes.fromhex("04000000 00000000 00000000")
    assert encode(KeepAliveAck()) == bytes.fromhex("04000000 00000000 00010000")
    assert encode(Unregister()) == bytes.fromhex("04000000 00000000 27000000")
    assert encode(CapabilitiesReq()) == bytes.fromhex("04000000 00000000 9b000000")


def test_basic_station_register_layout() -> None:
    message = StationRegister(
        device_name="SEP001122334455",
        ip=IPv4Address("10.0.0.2"),
        device_type=434,
        basic=True,
    )
    data = encode(message)
    assert data == bytes.fromhex(
        "28000000 00000000 01000000"  # length 40 = 4 + 36-byte body
        "53455030 30313132 32333334 34353500"  # SEP001122334455, NUL padded to 16
        "00000000 01000000"  # user id 0, instance 1
        "0a000002"  # IPv4 in network order
        "b2010000 05000000"  # device type 434 (7942), max streams 5
    )
    assert decode(Frame(1, data[12:])) == message


def test_register_ack_and_reject_layouts() -> None:
    ack = RegisterAck(
        keepalive=30, date_template="M/D/Y", secondary_keepalive=60, protocol_version=17
    )
    assert encode(ack) == bytes.fromhex(
        "18000000 00000000 81000000 1e000000 4d2f442f 5900 0000 3c000000 11 00 0000"
    )
    reject = encode(RegisterReject(text="Unknown device"))
    assert reject[:12] == bytes.fromhex("24000000 00000000 9d000000")
    assert reject[12:] == b"Unknown device".ljust(32, b"\0")
    assert parse_stream(reject) == [RegisterReject(text="Unknown device")]


def test_register_forms_by_body_size() -> None:
    full = encode(REGISTER_7942)
    assert len(full) == 12 + 124
    short = StationRegister(device_name="SEP0", protocol_version=5, max_conferences=None)
    assert len(encode(short)) == 12 + 44  # chan_skinny's register_message
    assert parse_stream(encode(short)) == [short]
    medium = StationRegister(device_name="SEP0", protocol_version=5)
    assert len(encode(medium)) == 12 + 48
    assert parse_stream(full) == [REGISTER_7942]
    # A body between two steps keeps the extra bytes: nothing is lost, nothing is refused.
    odd = parse_stream(encode(StationRegister(device_name="SEP0", basic=True)) + b"")[0]
    assert isinstance(odd, StationRegister) and odd.basic


def test_trailing_bytes_of_newer_versions_are_kept() -> None:
    data = struct.pack("<III", 12, 0x11, 0x0B) + struct.pack("<II", 3, 7)
    [message] = parse_stream(data)
    assert message == LineStatReq(line=3, trailing=struct.pack("<I", 7))
    assert encode(message, 0x11) == data


def test_unknown_ids_are_kept() -> None:
    data = struct.pack("<III", 8, 0, 0x9F) + struct.pack("<I", 1)  # Reset
    assert parse_stream(data) == [Unknown(0x9F, b"\x01\0\0\0")]
    assert encode(Unknown(0x9F, b"\x01\0\0\0")) == data


def test_device_types_match_the_dissector_table() -> None:
    expected = {
        "7940": 8,
        "7960": 7,
        "7941": 115,
        "7961": 30018,
        "7942": 434,
        "7962": 404,
        "7945": 435,
        "7965": 436,
        "7970": 30006,
        "7971": 119,
        "7975": 437,
        "7911": 307,
        "7906": 369,
        "7931": 348,
        "6921": 495,
        "6941": 496,
        "6961": 497,
        "8941": 586,
        "8945": 585,
    }
    assert {k: DEVICE_TYPES[k] for k in expected} == expected


# --- framing and malformed input ----------------------------------------------------------------


def test_reassembly_split_at_every_byte() -> None:
    data = b"".join(encode(m) for _, m in EXCHANGE[:6])
    whole = list(FrameReader().feed(data))
    for cut in range(len(data) + 1):
        reader = FrameReader()
        frames = [*reader.feed(data[:cut]), *reader.feed(data[cut:])]
        assert frames == whole
        assert reader.pending == 0


@pytest.mark.parametrize("length", [0, 1, 3, MAX_LENGTH + 1, 0xFFFFFFFF])
def test_absurd_lengths_are_refused_before_buffering(length: int) -> None:
    reader = FrameReader()
    with pytest.raises(LengthError) as info:
        list(reader.feed(struct.pack("<I", length)))
    assert info.value.offset == 0


def test_length_error_offset_is_the_stream_offset() -> None:
    data = encode(KeepAlive()) + struct.pack("<III", 2, 0, 0)
    with pytest.raises(LengthError) as info:
        parse_stream(data)
    assert info.value.offset == 12


@pytest.mark.parametrize("cut", [1, 4, 11, 12, 20])
def test_truncated_stream(cut: int) -> None:
    data = encode(RegisterAck())
    with pytest.raises(TruncatedError):
        parse_stream(data[:cut])


def test_truncated_body_names_the_field_and_offset() -> None:
    data = struct.pack("<III", 4 + 10, 0, 0x81) + bytes(10)  # RegisterAck cut in its padding
    with pytest.raises(TruncatedError) as info:
        parse_stream(encode(KeepAlive()) + data)
    assert info.value.offset == 12 + 12 + 10
    assert "alignmentPadding" in info.value.expected


def test_counts_above_the_maximum_are_refused() -> None:
    data = struct.pack("<III", 8, 0, 0x10) + struct.pack("<I", 19)
    with pytest.raises(ValueFormatError):
        parse_stream(data)


def test_encoding_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="device name"):
        encode(StationRegister(device_name="SEP" + "0" * 13))
    with pytest.raises(ValueError, match="exceeds"):
        encode(Unknown(0x1234, bytes(MAX_LENGTH)))


# --- properties ---------------------------------------------------------------------------------

_u32 = st.integers(0, 0xFFFFFFFF)
_u8 = st.integers(0, 0xFF)


def _text(size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1)


_extension = st.builds(
    RegisterExtension,
    active_conferences=_u32,
    mac=st.binary(min_size=12, max_size=12),
    ipv4_scope=_u32,
    max_lines=_u32,
    ipv6=st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    ipv6_scope=_u32,
    firmware_load=_text(32),
)
_ipv4 = st.builds(IPv4Address, _u32)
_basic_register = st.builds(
    StationRegister,
    device_name=_text(16),
    user_id=_u32,
    instance=_u32,
    ip=_ipv4,
    device_type=_u32,
    max_streams=_u32,
    basic=st.just(True),
)
_register = st.builds(
    StationRegister,
    device_name=_text(16),
    user_id=_u32,
    instance=_u32,
    ip=_ipv4,
    device_type=_u32,
    max_streams=_u32,
    active_streams=_u32,
    protocol_version=_u8,
    protocol_flags=_u8,
    features=st.integers(0, 0xFFFF),
    max_conferences=_u32,
    extension=st.none() | _extension,
)
_short_register = st.builds(
    StationRegister, device_name=_text(16), protocol_version=_u8, max_conferences=st.none()
)
_EMPTY = [c for c in CLASSES.values() if len(dataclasses.fields(c)) == 1]
MESSAGES: st.SearchStrategy[Message] = st.one_of(
    st.sampled_from([c() for c in _EMPTY]),
    _basic_register,
    _register,
    _short_register,
    st.builds(
        RegisterAck,
        keepalive=_u32,
        date_template=_text(7),
        secondary_keepalive=_u32,
        protocol_version=_u8,
        protocol_flags=_u8,
        features=st.integers(0, 0xFFFF),
    ),
    st.builds(RegisterReject, text=_text(32)),
    st.builds(UnregisterAck, status=_u32),
    st.builds(LineStatReq, line=_u32),
    st.builds(RegisterAvailableLines, lines=_u32),
    st.builds(
        CapabilitiesRes,
        capabilities=st.lists(
            st.builds(Capability, _u32, _u32, st.binary(min_size=8, max_size=8)), max_size=18
        ).map(tuple),
    ),
    st.builds(
        ButtonTemplateRes,
        offset=_u32,
        total=_u32,
        buttons=st.lists(st.builds(Button, _u8, _u8), max_size=42).map(tuple),
    ),
    st.builds(
        SoftKeyTemplateRes,
        offset=_u32,
        total=_u32,
        keys=st.lists(st.builds(SoftKey, _text(16), _u32), max_size=32).map(tuple),
    ),
    st.builds(
        ConfigStatRes,
        device_name=_text(16),
        user_id=_u32,
        instance=_u32,
        user_name=_text(40),
        server_name=_text(40),
        lines=_u32,
        speed_dials=_u32,
    ),
    st.builds(
        LineStatRes,
        line=_u32,
        number=_text(24),
        display_name=_text(40),
        label=_text(40),
        display_options=_u32,
    ),
    st.builds(DefineTimeDate, *([_u32] * 9)),
)


def test_the_strategy_covers_every_class() -> None:
    # The strategies above: the field-less classes, then one builds() per class with fields.
    covered = set(_EMPTY) | {
        StationRegister,
        RegisterAck,
        RegisterReject,
        UnregisterAck,
        LineStatReq,
        RegisterAvailableLines,
        CapabilitiesRes,
        ButtonTemplateRes,
        SoftKeyTemplateRes,
        ConfigStatRes,
        LineStatRes,
        DefineTimeDate,
    }
    assert covered == set(CLASSES.values())


@settings(max_examples=400, deadline=None)
@given(MESSAGES, st.sampled_from([0, 0x11, 0x16]))
def test_round_trip_of_every_message_type(message: Message, version: int) -> None:
    data = encode(message, version)
    [frame] = FrameReader().feed(data)
    assert frame.header_version == version
    assert decode(frame) == message


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_format_errors(data: bytes) -> None:
    try:
        messages = parse_stream(data)
    except FormatError as exc:
        assert type(exc) in (LengthError, TruncatedError, ValueFormatError)
        assert 0 <= exc.offset <= len(data)
        assert exc.expected
        return
    assert b"".join(encode(m, v) for m, v in zip(messages, _versions(data), strict=True)) == data


def _versions(data: bytes) -> list[int]:
    return [f.header_version for f in FrameReader().feed(data)]


@settings(max_examples=300, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.data())
def test_mutated_streams_raise_only_format_errors(
    messages: list[Message], data: st.DataObject
) -> None:
    stream = bytearray(b"".join(encode(m) for m in messages))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(stream) - 1))
        stream[pos] = data.draw(_u8)
    cut = data.draw(st.integers(0, len(stream)))
    try:
        parse_stream(bytes(stream[:cut]))
    except FormatError as exc:
        assert 0 <= exc.offset <= cut


# --- Wireshark's dissector ----------------------------------------------------------------------


def _pcap(segments: list[tuple[int, bytes]]) -> bytes:
    """A classic pcap of one TCP stream (phone 10.0.0.2:51000 <-> CM 10.0.0.1:2000)."""

    def checksum(header: bytes) -> int:
        total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
        total = (total >> 16) + (total & 0xFFFF)
        return ~(total + (total >> 16)) & 0xFFFF

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    seq = {0: 1000, 1: 5000}
    hosts = {0: (bytes([10, 0, 0, 2]), 51000), 1: (bytes([10, 0, 0, 1]), 2000)}
    for i, (side, payload) in enumerate(segments):
        (src, sport), (dst, dport) = hosts[side], hosts[1 - side]
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, seq[side], seq[1 - side], 0x50, 0x18, 65535, 0, 0
        )
        seq[side] += len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), i, 0, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        packet = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(packet), len(packet)) + packet)
    return b"".join(out)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark (Debian package) not on PATH")
def test_tshark_decodes_a_whole_registration(tmp_path: Path) -> None:
    rejected = [(0, REGISTER_7942), (1, RegisterReject(text="Device not found"))]
    conversation = [*EXCHANGE, *rejected]
    segments = [(side, encode(m)) for side, m in conversation]
    # Two messages in one segment and one message across two: the dissector reassembles.
    segments[2:3] = [(1, segments[2][1] + encode(DefineTimeDate(year=2024)))]
    conversation.insert(3, (1, DefineTimeDate(year=2024)))
    register = segments[-2][1]
    segments[-2:-1] = [(0, register[:30]), (0, register[30:])]
    capture = tmp_path / "sccp.pcap"
    capture.write_bytes(_pcap(segments))
    result = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            "-d",
            "tcp.port==2000,skinny",
            "-V",
            "-o",
            "tcp.desegment_tcp_streams:TRUE",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    text = result.stdout
    assert "Malformed" not in text and "Expert Info (Error" not in text, text
    found = [
        line.split(":", 1)[1].strip().split(" (")[0]
        for line in text.splitlines()
        if line.strip().startswith("Message ID:")
    ]
    assert found == [WIRESHARK_NAMES[type(m)] for _, m in conversation]
    for fact in (
        "DeviceName: SEP001122334455",
        "Device Type: 7942 (0x000001b2)",
        "Protocol Version: 17",
        "firmwareLoadName: SCCP42.9-4-2SR3-1S",
        "keepAliveInterval: 30",
        "dateTemplate: D/M/Y",
        "text: Device not found",
        "maxNumOfAvailLines: 2",
        "lineDirNumber: 1001",
        "wYear: 2024",
    ):
        assert fact in text, fact

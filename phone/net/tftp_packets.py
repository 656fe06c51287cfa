"""TFTP packets for the lab's server: strict parsing of what a client sends, and encoding of
what the server answers (RFC 1350, options RFC 2347/2348/2349/7440).

Parsing never raises anything but :class:`PacketError`, which carries the TFTP error code and
message to answer with. Everything is bounded: a request is at most :data:`MAX_REQUEST` bytes
(RFC 2347), names and option values are checked before use, and numbers are plain decimal
(``int()`` alone would accept ``" 12"``, ``"+12"`` and ``"1_000"``).
"""

from __future__ import annotations

import dataclasses
import re
import struct

__all__ = [
    "ACK",
    "DATA",
    "ERROR",
    "MAX_REQUEST",
    "OACK",
    "RRQ",
    "WRQ",
    "Limits",
    "PacketError",
    "Request",
    "ack_block",
    "data_packet",
    "error_packet",
    "negotiate",
    "oack_packet",
    "opcode",
    "parse_request",
    "show",
]

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6

# Error codes (RFC 1350 section 5, RFC 2347 for 8).
ERR_UNDEFINED = 0
ERR_NOT_FOUND = 1
ERR_ACCESS = 2
ERR_ILLEGAL = 4
ERR_UNKNOWN_TID = 5
ERR_OPTIONS = 8

MAX_REQUEST = 512  # RFC 2347: a request, options included, must not exceed 512 octets
MODES = ("octet", "netascii")
_NUMBER = re.compile(rb"[0-9]{1,20}\Z")


class PacketError(Exception):
    """A packet that cannot be served: ``code`` and ``str(self)`` go into the ERROR packet."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class Request:
    """A parsed RRQ or WRQ."""

    opcode: int
    name: str
    mode: str  # lower case
    options: dict[str, bytes]  # lower-case names, raw values; the first of duplicates wins


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the server accepts of the options a client proposes."""

    max_blksize: int = 65464  # RFC 2348's upper bound; an IPv4 datagram still holds it
    max_window: int = 32  # RFC 7440 allows 65535; a window costs one burst of datagrams
    max_timeout: int = 10  # RFC 2349 allows 255 s; a slot held that long helps no phone


def show(value: str | bytes, limit: int = 60) -> str:
    """A bounded, printable form of a client's string for log lines."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def opcode(datagram: bytes) -> int | None:
    """The opcode of a datagram, None when it is too short to have one."""
    if len(datagram) < 2:
        return None
    return int.from_bytes(datagram[:2], "big")


def parse_request(datagram: bytes) -> Request:
    """Parse an RRQ or WRQ: ``opcode name\\0 mode\\0 [option\\0 value\\0]...``.

    Raises:
        PacketError: too long, unterminated, a name or mode that is not ASCII, an unknown mode,
            an option without a value.
    """
    code = opcode(datagram)
    if code not in (RRQ, WRQ):
        raise PacketError(ERR_ILLEGAL, "not a request")
    if len(datagram) > MAX_REQUEST:
        raise PacketError(ERR_ILLEGAL, f"request longer than {MAX_REQUEST} bytes")
    body = datagram[2:]
    if not body.endswith(b"\x00"):
        raise PacketError(ERR_ILLEGAL, "request not terminated by a NUL byte")
    fields = body[:-1].split(b"\x00")
    if len(fields) < 2:
        raise PacketError(ERR_ILLEGAL, "request without a mode")
    if len(fields) % 2:
        raise PacketError(ERR_ILLEGAL, "option without a value")
    raw_name, raw_mode = fields[0], fields[1]
    try:
        name = raw_name.decode("ascii")
        mode = raw_mode.decode("ascii").lower()
    except UnicodeDecodeError:
        raise PacketError(ERR_ILLEGAL, "file name or mode is not ASCII") from None
    if mode not in MODES:
        raise PacketError(ERR_ILLEGAL, f"transfer mode {show(mode, 20)} not served")
    options: dict[str, bytes] = {}
    for index in range(2, len(fields), 2):
        try:
            key = fields[index].decode("ascii").lower()
        except UnicodeDecodeError:
            continue  # an option we cannot name is one we do not know: ignored (RFC 2347)
        options.setdefault(key, fields[index + 1])
    return Request(code, name, mode, options)


def _number(value: bytes) -> int | None:
    return int(value) if _NUMBER.match(value) else None


def negotiate(
    options: dict[str, bytes], size: int, limits: Limits
) -> tuple[dict[str, int], list[str]]:
    """The options accepted for a read of ``size`` bytes, and why others were ignored.

    Unknown options are ignored silently (RFC 2347); a known option with a value out of range
    or not a number is left out of the OACK, so the transfer goes on with the default.
    """
    accepted: dict[str, int] = {}
    ignored: list[str] = []
    for key, bounds in (
        ("blksize", (8, 65464)),
        ("timeout", (1, 255)),
        ("windowsize", (1, 65535)),
    ):
        if key not in options:
            continue
        value = _number(options[key])
        if value is None or not bounds[0] <= value <= bounds[1]:
            ignored.append(f"{key}={show(options[key], 30)}")
            continue
        if key == "blksize":
            accepted[key] = min(value, limits.max_blksize)  # RFC 2348: may answer smaller
        elif key == "windowsize":
            accepted[key] = min(value, limits.max_window)  # RFC 7440: may answer smaller
        elif value <= limits.max_timeout:
            accepted[key] = value  # RFC 2349: the server may only accept or omit it
        else:
            ignored.append(f"timeout={value} (over {limits.max_timeout})")
    if "tsize" in options:
        if _number(options["tsize"]) is None:
            ignored.append(f"tsize={show(options['tsize'], 30)}")
        else:
            accepted["tsize"] = size  # RFC 2349: a read request asks with 0; we say the size
    return accepted, ignored


def oack_packet(options: dict[str, int]) -> bytes:
    """An OACK naming the accepted options."""
    body = b"".join(f"{key}\x00{value}\x00".encode("ascii") for key, value in options.items())
    return struct.pack("!H", OACK) + body


def data_packet(block: int, payload: bytes | memoryview) -> bytes:
    """A DATA packet; ``block`` is taken modulo 65536 (block numbers roll over to 0)."""
    return struct.pack("!HH", DATA, block & 0xFFFF) + bytes(payload)


def error_packet(code: int, message: str) -> bytes:
    """An ERROR packet (the message is ASCII, bounded)."""
    text = message.encode("ascii", "replace")[:200]
    return struct.pack("!HH", ERROR, code) + text + b"\x00"


def ack_block(datagram: bytes) -> int:
    """The block number of an ACK.

    Raises:
        PacketError: shorter than an ACK.
    """
    if len(datagram) < 4:
        raise PacketError(ERR_ILLEGAL, "ACK cut short")
    return int.from_bytes(datagram[2:4], "big")

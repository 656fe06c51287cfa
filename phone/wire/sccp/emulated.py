"""vphone's one emulated SCCP message: the ITL-hash report (issue 15 item 2) [G].

The ITL File Status report of item 30 comes from 14.x phone loads, which are SIP only; no SCCP
load is known to report its ITL and no public source describes how one would. So that SCCP
phones of the emulation still fill the ITL File Status table, the phone sends this message
right after StationRegister when it holds an ITL: message id :data:`ITL_REPORT_ID` (0x7F01),
which Wireshark's skinny message table does not name (tshark shows "0x00007F01 (Unknown)",
without a malformed-packet error), so no standard message or field carries vphone's data. Body
[G]: the TFTP server the ITL came from (char[64], NUL padded), the ITL's SHA-1 (20 bytes) and
the time the phone applied it (u32, Unix time). A peer that does not know the id ignores it.
"""

from __future__ import annotations

import struct

from phone.errors import TruncatedError, ValueFormatError
from phone.wire.sccp.messages import Unknown

__all__ = ["ITL_REPORT_ID", "itl_report_message", "read_itl_report"]

ITL_REPORT_ID = 0x7F01
_HOST = 64
_SIZE = _HOST + 20 + 4


def itl_report_message(tftp_host: str, itl_hash: str, timestamp: int) -> Unknown:
    """The emulated report: ``itl_hash`` is the ITL's SHA-1 as 40 hex digits."""
    host = tftp_host.encode("ascii")
    if len(host) >= _HOST or b"\0" in host:
        raise ValueError(f"TFTP host {tftp_host!r} does not fit {_HOST - 1} bytes")
    digest = bytes.fromhex(itl_hash)
    if len(digest) != 20:
        raise ValueError("the ITL hash is a SHA-1 (40 hex digits)")
    body = host.ljust(_HOST, b"\0") + digest + struct.pack("<I", timestamp & 0xFFFFFFFF)
    return Unknown(ITL_REPORT_ID, body)


def read_itl_report(message: Unknown) -> tuple[str, str, int]:
    """``(tftp host, ITL SHA-1 hex, timestamp)`` from an emulated report.

    Raises:
        TruncatedError: the body is shorter than 88 bytes.
        ValueFormatError: the message is not the report, or the host is not ASCII.
    """
    if message.message_id != ITL_REPORT_ID:
        raise ValueFormatError(
            f"message {message.message_id:#06x} is not the ITL report",
            offset=8,
            expected=f"message id {ITL_REPORT_ID:#06x}",
        )
    raw = message.raw
    if len(raw) < _SIZE:
        raise TruncatedError(
            f"ITL report body ends at byte {len(raw)}", offset=12 + len(raw), expected=f"{_SIZE}"
        )
    try:
        host = raw[:_HOST].split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise ValueFormatError(
            "ITL report TFTP host is not ASCII", offset=12, expected="ASCII host name"
        ) from None
    (stamp,) = struct.unpack("<I", raw[_HOST + 20 : _SIZE])
    return host, raw[_HOST : _HOST + 20].hex(), int(stamp)

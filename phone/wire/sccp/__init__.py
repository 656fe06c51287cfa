"""SCCP (Skinny) registration messages, sans-IO (issue 15 item 1; docs/sccp.md).

Framing (facts: Wireshark's ``skinny`` dissector, chan-sccp's ``sccp_session_send``): every
message is a 12-byte header of three little-endian u32 -- ``length``, ``header version``,
``message id`` -- then the body. ``length`` counts the message id and the body (4 + body), *not*
the length field nor the header-version field: a peer writes ``length + 8`` bytes, and a
KeepAlive is ``04 00 00 00 00 00 00 00 00 00 00 00``. Wireshark names header versions 0
("Basic"), 0x0A, 0x0B and 0x0F..0x16 (V10..V22); chan-sccp sends 0 on KeepAliveAck, RegisterAck
and UnregisterAck and otherwise 0 below protocol 10, the protocol version (older releases: 0x11)
from there on. Every integer field is little-endian; IPv4 addresses are in network order;
strings are fixed-size, NUL padded.

Which messages make a phone "registered" (sources in docs/sccp.md):

* the phone sends StationRegister (0x0001); the CallManager answers RegisterAck (0x0081) or
  RegisterReject (0x009D, with a text);
* right after RegisterAck the CallManager sends CapabilitiesReq (0x009B) -- chan-sccp's
  register handler sends it straight after the ack -- and the phone must answer
  CapabilitiesRes (0x0010): this is the one CallManager-initiated message a phone answers to
  count as registered;
* the phone then asks for its configuration, each answered by the CallManager:
  ButtonTemplateReq/Res, SoftKeyTemplateReq/Res, SoftKeySetReq/Res, ConfigStatReq/Res,
  LineStatReq/Res (one per line), TimeDateReq/DefineTimeDate, and announces
  RegisterAvailableLines; these make the phone *usable* (lines shown), not registered;
* it stays registered by sending KeepAlive (0x0000) every keepalive interval of the ack and
  getting KeepAliveAck (0x0100); Unregister (0x0027) / UnregisterAck (0x0118) end it.

vphone counts a phone registered after RegisterAck and its CapabilitiesRes [G: a definition for
the emulation, drawn from the chan-sccp order above; CUCM's own rule is not public].

Nothing here touches a socket: :class:`FrameReader` reassembles frames across reads and refuses
absurd lengths before buffering; :func:`decode` gives a typed message, or :class:`Unknown` for a
message id without a class here (kept, not an error); :func:`encode` is the reverse. Malformed
input raises only :class:`phone.errors.FormatError` subclasses, with the byte offset.
"""

from __future__ import annotations

from phone.wire.sccp.devices import DEVICE_TYPES, device_type
from phone.wire.sccp.framing import (
    BASIC,
    HEADER,
    HEADER_VERSIONS,
    MAX_LENGTH,
    MIN_LENGTH,
    Frame,
    FrameReader,
    MessageId,
    encode_frame,
    name,
)
from phone.wire.sccp.messages import (
    CLASSES,
    Button,
    ButtonTemplateReq,
    ButtonTemplateRes,
    CapabilitiesReq,
    CapabilitiesRes,
    Capability,
    ConfigStatReq,
    ConfigStatRes,
    DefineTimeDate,
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
    to_frame,
)

__all__ = [
    "BASIC",
    "CLASSES",
    "DEVICE_TYPES",
    "HEADER",
    "HEADER_VERSIONS",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "Button",
    "ButtonTemplateReq",
    "ButtonTemplateRes",
    "CapabilitiesReq",
    "CapabilitiesRes",
    "Capability",
    "ConfigStatReq",
    "ConfigStatRes",
    "DefineTimeDate",
    "Frame",
    "FrameReader",
    "KeepAlive",
    "KeepAliveAck",
    "LineStatReq",
    "LineStatRes",
    "Message",
    "MessageId",
    "RegisterAck",
    "RegisterAvailableLines",
    "RegisterExtension",
    "RegisterReject",
    "SoftKey",
    "SoftKeySetReq",
    "SoftKeyTemplateReq",
    "SoftKeyTemplateRes",
    "StationRegister",
    "TimeDateReq",
    "Unknown",
    "Unregister",
    "UnregisterAck",
    "decode",
    "device_type",
    "encode",
    "encode_frame",
    "name",
    "parse_stream",
    "to_frame",
]

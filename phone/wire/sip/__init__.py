"""SIP messages, sans-IO (RFC 3261), with HTTP digest authentication (RFC 2617, RFC 7616 MD5).

What the emulated registrar and the virtual phone exchange (issues 5 and 6; phone-behaviour
items 30 and 40-44). Nothing here touches a socket or a clock. One module per layer, each
importing only the ones above it in this list:

* :mod:`~phone.wire.sip.values`: header values (lists, quoted-strings, parameters, SIP URIs,
  name-addr, Via).
* :mod:`~phone.wire.sip.message`: :class:`SipRequest` and :class:`SipResponse`,
  :func:`parse_message` and :func:`encode_message`, :class:`StreamReader` (framing on TCP and
  TLS, RFC 5626 keepalives), :func:`make_response`.
* :mod:`~phone.wire.sip.digest`: :class:`Challenge`, :class:`Credentials` and the MD5 digest
  with ``qop=auth`` (RFC 2617 section 3.2.2.1).
* :mod:`~phone.wire.sip.register`: :class:`RegisterClient`, the phone's side of a
  registration, and the emulated Cisco values a REGISTER carries (the ``X-Cisco-ITL-Hash``
  report of item 30, the MAC in ``+sip.instance``).

Strictness: anything malformed raises :class:`phone.errors.ProtocolError` with a reason a
person can act on (never another exception), and a message larger than ``max_size`` (16 KiB by
default) is refused before it is parsed or buffered.

This package re-exports every public name, so ``from phone.wire.sip import ...`` keeps working.
"""

from __future__ import annotations

from phone.wire.sip.digest import (
    Challenge,
    Credentials,
    answer_challenge,
    digest_ha1,
    digest_response,
    md5_hex,
    parse_challenge,
    parse_credentials,
)
from phone.wire.sip.message import (
    COMPACT,
    MAX_HEADERS,
    MAX_MESSAGE,
    PING,
    PONG,
    SIP_VERSION,
    KeepalivePing,
    SipMessage,
    SipRequest,
    SipResponse,
    StreamReader,
    canonical_name,
    encode_message,
    make_response,
    parse_message,
    warning_text,
)
from phone.wire.sip.register import (
    ITL_HEADER,
    RegisterClient,
    RegisterOutcome,
    format_itl_report,
    instance_mac,
    parse_itl_report,
)
from phone.wire.sip.values import (
    NameAddr,
    Params,
    SipUri,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
    quote,
)

__all__ = [
    "COMPACT",
    "ITL_HEADER",
    "MAX_HEADERS",
    "MAX_MESSAGE",
    "PING",
    "PONG",
    "SIP_VERSION",
    "Challenge",
    "Credentials",
    "KeepalivePing",
    "NameAddr",
    "Params",
    "RegisterClient",
    "RegisterOutcome",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamReader",
    "Via",
    "answer_challenge",
    "canonical_name",
    "digest_ha1",
    "digest_response",
    "encode_message",
    "format_itl_report",
    "instance_mac",
    "make_response",
    "md5_hex",
    "parse_challenge",
    "parse_credentials",
    "parse_itl_report",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "quote",
    "warning_text",
]

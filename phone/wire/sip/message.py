"""SIP messages, sans-IO (RFC 3261): the model, its bytes both ways, stream framing.

* :class:`SipRequest` and :class:`SipResponse` hold the start line, the headers in order
  (canonical names, :func:`canonical_name`) and the body; header look-ups ignore case and
  expand compact forms.
* :func:`parse_message` turns one datagram (or one framed stream message) into either;
  :func:`encode_message` is the reverse and always writes ``Content-Length``.
* :class:`StreamReader` frames messages on TCP and TLS by ``Content-Length`` and reports the
  RFC 5626 double-CRLF keepalive ping (:data:`PING`).
* :func:`make_response` builds the response to a request (RFC 3261 8.2.6) and
  :func:`warning_text` reads why a request was refused.

Header values (lists, URIs, name-addr, Via) are parsed by :mod:`phone.wire.sip.values`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from phone.errors import ProtocolError
from phone.wire.sip.values import (
    _TOKEN,
    _URI,
    _split_list,
    _unquote,
    parse_name_addr,
    parse_via,
)

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE = 16 * 1024  # far above a REGISTER with digest (about 1 KB); refused beyond
MAX_HEADERS = 100

# RFC 3261 section 7.3.3 and the IANA registry: the compact forms a peer may send.
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "e": "Content-Encoding",
    "s": "Subject",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
_KNOWN = (
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Expires",
    "WWW-Authenticate",
    "Authorization",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Content-Length",
    "Content-Type",
    "Max-Forwards",
    "User-Agent",
    "Server",
    "Event",
    "Replaces",
    "Refer-To",
    "Referred-By",
    "Supported",
    "Allow",
    "Allow-Events",
    "Subscription-State",
    "Subject",
    "Content-Encoding",
    "Session-Expires",
)
_CANONICAL = {name.lower(): name for name in _KNOWN}
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards", "Expires")

_CSEQ = re.compile(r"(\d{1,10})[ \t]+(\S+)")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (compact forms expanded, known names cased)."""
    lower = name.lower()
    full = COMPACT.get(lower)
    if full is not None:
        return full
    return _CANONICAL.get(lower, name)


# Known names as spelled canonically. Their lower-case forms are pairwise distinct (they are
# the keys of _CANONICAL), so a header named by one of them matches a look-up exactly when
# it is the canonical name looked for: the look-ups below compare those without lower().
_KNOWN_SET = frozenset(_KNOWN)
_LOOKUP_LIMIT = 256
_lookups: dict[str, tuple[str, str]] = {}


def _lookup(name: str) -> tuple[str, str]:
    """``(canonical_name(name), canonical_name(name).lower())``, remembered per name."""
    found = _lookups.get(name)
    if found is None:
        canon = canonical_name(name)
        found = (canon, canon.lower())
        if len(_lookups) < _LOOKUP_LIMIT:  # names come from code; bound them all the same
            _lookups[name] = found
    return found


def _check_value(name: str, value: str) -> None:
    if _CTL.search(value):
        raise ProtocolError(f"SIP header {name} holds a control character")


class _HeaderAccess:
    """Header look-ups shared by requests and responses (names compared case-insensitively)."""

    __slots__ = ()
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any spelling, compact forms too), or None."""
        canon, key = _lookup(name)
        for n, v in self.headers:
            # The same test as n.lower() == key (see _KNOWN_SET), without the lower().
            if n == canon or (n not in _KNOWN_SET and n.lower() == key):
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, comma-separated lists split (Via, Contact ...)."""
        canon, key = _lookup(name)
        split = key in _LIST_HEADERS
        out: list[str] = []
        for n, v in self.headers:
            if n == canon or (n not in _KNOWN_SET and n.lower() == key):
                out.extend(_split_list(v) if split else (v,))
        return out

    def header(self, name: str) -> str:
        """The value of a header that must be there.

        Raises:
            ProtocolError: it is missing.
        """
        value = self.get(name)
        if value is None:
            raise ProtocolError(f"SIP message without a {canonical_name(name)} header")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.header("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        """CSeq number and method."""
        return _parse_cseq(self.header("CSeq"))


_LIST_HEADERS = {"via", "contact", "supported", "allow", "allow-events"}


@dataclass(frozen=True, slots=True)
class SipRequest(_HeaderAccess):
    """A SIP request: method, Request-URI, headers in order (canonical names), body."""

    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    def replace_headers(self, *pairs: tuple[str, str], drop: tuple[str, ...] = ()) -> SipRequest:
        """A copy with the headers named in ``drop`` removed and ``pairs`` appended."""
        gone = {canonical_name(d).lower() for d in drop}
        kept = tuple((n, v) for n, v in self.headers if n.lower() not in gone)
        return SipRequest(self.method, self.uri, kept + tuple(pairs), self.body)


@dataclass(frozen=True, slots=True)
class SipResponse(_HeaderAccess):
    """A SIP response: status code, reason phrase, headers, body."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


SipMessage = SipRequest | SipResponse


@dataclass(frozen=True, slots=True)
class KeepalivePing:
    """An RFC 5626 double-CRLF keepalive on a stream; the answer is a single CRLF (pong)."""


PING = KeepalivePing()
PONG = b"\r\n"


# --- parsing ---------------------------------------------------------------------------------


def _parse_cseq(value: str) -> tuple[int, str]:
    match = _CSEQ.fullmatch(value.strip())
    if match is None or not _TOKEN.fullmatch(match[2]):
        raise ProtocolError(f"bad CSeq {value!r}: expected a number and a method")
    number = int(match[1])
    if number >= 2**31:
        raise ProtocolError(f"CSeq number {number} is not below 2**31 (RFC 3261 8.1.1.5)")
    return number, match[2]


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            # Obsolete line folding (RFC 3261 7.3.1): a continuation of the previous value.
            if not headers:
                raise ProtocolError("SIP header section starts with a continuation line")
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(f"bad SIP header line {line[:60]!r}")
        headers.append((canonical_name(name), value.strip()))
        if len(headers) > MAX_HEADERS:
            raise ProtocolError(f"more than {MAX_HEADERS} SIP headers")
    for name, value in headers:
        _check_value(name, value)
    return headers


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    values = [v for n, v in headers if n == "Content-Length"]
    if not values:
        return None
    if len(values) > 1:
        raise ProtocolError("several Content-Length headers")
    # 1*DIGIT, ASCII only (RFC 3261 20.14): str.isdigit() alone also takes "²", which int() refuses.
    if not (values[0].isascii() and values[0].isdigit()) or len(values[0]) > 9:
        raise ProtocolError(f"bad Content-Length {values[0]!r}")
    return int(values[0])


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE, stream: bool = False) -> SipMessage:
    """Parse one SIP message.

    On a datagram (``stream`` false) a missing Content-Length means "the rest of the datagram"
    and bytes beyond it are discarded (RFC 3261 18.3); on a stream it is required.

    Raises:
        ProtocolError: the bytes are not a well-formed SIP message, or exceed ``max_size``.
    """
    if len(data) > max_size:
        raise ProtocolError(f"SIP message of {len(data)} bytes exceeds the {max_size}-byte limit")
    head_raw, blank, rest = data.partition(b"\r\n\r\n")
    if not blank:
        raise ProtocolError("SIP message without the blank line that ends its headers")
    try:
        head = head_raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"SIP header section is not UTF-8 (byte {exc.start})") from None
    lines = head.split("\r\n")
    start = lines[0]
    headers = _parse_headers(lines[1:])
    length = _content_length(headers)
    if length is None:
        if stream:
            raise ProtocolError("SIP message on a stream without Content-Length (RFC 3261 18.3)")
        body = rest
    else:
        if len(rest) < length:
            raise ProtocolError(f"SIP body is {len(rest)} bytes but Content-Length says {length}")
        body = rest[:length]
    message: SipMessage
    if start.startswith(SIP_VERSION + " "):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not re.fullmatch(r"[1-6]\d\d", parts[1]):
            raise ProtocolError(f"bad SIP status line {start[:60]!r}")
        message = SipResponse(int(parts[1]), parts[2] if len(parts) == 3 else "", (), body)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or parts[2] != SIP_VERSION:
            raise ProtocolError(f"bad SIP request line {start[:60]!r}")
        method, uri, _ = parts
        if not _TOKEN.fullmatch(method):
            raise ProtocolError(f"bad SIP method {method[:20]!r}")
        if not _URI.fullmatch(uri):
            raise ProtocolError(f"bad Request-URI {uri[:60]!r}")
        message = SipRequest(method, uri, (), body)
    _check_required(headers, message)
    if isinstance(message, SipRequest):
        return SipRequest(message.method, message.uri, tuple(headers), body)
    return SipResponse(message.status, message.reason, tuple(headers), body)


def _check_required(headers: list[tuple[str, str]], message: SipMessage) -> None:
    names = [n for n, _ in headers]
    for name in _REQUIRED:
        if name not in names:
            raise ProtocolError(f"SIP message without the mandatory {name} header")
    for name in _SINGLE:
        if names.count(name) > 1:
            raise ProtocolError(f"SIP message with several {name} headers")
    values = dict(headers)
    _, method = _parse_cseq(values["CSeq"])
    if isinstance(message, SipRequest) and method != message.method:
        raise ProtocolError(f"CSeq method {method} does not match the request method")
    for name in ("From", "To"):
        parse_name_addr(values[name])
    parse_via(values["Via"])
    expires = values.get("Expires")
    if expires is not None and not (expires.isascii() and expires.isdigit()):
        raise ProtocolError(f"bad Expires {values['Expires']!r}")


# --- encoding --------------------------------------------------------------------------------


def encode_message(message: SipMessage) -> bytes:
    """The bytes of ``message``; Content-Length is computed (any given one is replaced).

    Raises:
        ValueError: a header name or value that would break the framing (CR, LF ...).
    """
    if isinstance(message, SipRequest):
        start = f"{message.method} {message.uri} {SIP_VERSION}"
    else:
        start = f"{SIP_VERSION} {message.status} {message.reason}"
    lines = [start]
    for name, value in message.headers:
        if name.lower() == "content-length":
            continue
        if not _TOKEN.fullmatch(name) or _CTL.search(value):
            raise ValueError(f"SIP header {name!r} cannot be encoded")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(message.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + message.body


# --- stream framing --------------------------------------------------------------------------


_LENGTH_LINE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*(\d{1,9})[ \t]*(?=\r\n)", re.I)


@dataclass
class StreamReader:
    """Frame SIP messages on TCP/TLS by Content-Length (RFC 3261 18.3).

    ``feed`` yields each complete message, and :data:`PING` for a double-CRLF keepalive;
    single CRLFs between messages are ignored (RFC 3261 7.5, RFC 5626 pong).

    Raises ProtocolError (from ``feed``) on a malformed message or one larger than
    ``max_size``: the caller closes the connection, since the stream cannot be re-synchronised.
    """

    max_size: int = MAX_MESSAGE
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> Iterator[SipMessage | KeepalivePing]:
        """Add ``data`` and yield every message (or keepalive) it completes."""
        self._buffer += data
        while self._buffer:
            if self._buffer.startswith(b"\r\n\r\n"):
                del self._buffer[:4]
                yield PING
                continue
            if self._buffer.startswith(b"\r\n"):
                if len(self._buffer) < 4 and self._buffer == b"\r\n\r"[: len(self._buffer)]:
                    return  # maybe the first half of a ping
                del self._buffer[:2]
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.max_size:
                    raise ProtocolError(f"SIP header section longer than {self.max_size} bytes")
                return
            head = bytes(self._buffer[:end])
            match = _LENGTH_LINE.search(head + b"\r\n")
            if match is None:
                raise ProtocolError("SIP message on a stream without a valid Content-Length")
            total = end + 4 + int(match[1])
            if total > self.max_size:
                raise ProtocolError(
                    f"SIP message of {total} bytes exceeds the {self.max_size}-byte limit"
                )
            if len(self._buffer) < total:
                return
            chunk = bytes(self._buffer[:total])
            del self._buffer[:total]
            yield parse_message(chunk, max_size=self.max_size, stream=True)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)


# --- building messages -----------------------------------------------------------------------


def make_response(
    request: SipRequest,
    status: int,
    reason: str,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    to_tag: str | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response to ``request`` (RFC 3261 8.2.6): Via, From, To (+tag), Call-ID, CSeq copied."""
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name not in ("Via", "From", "To", "Call-ID", "CSeq"):
            continue
        tagged = name == "To" and to_tag is not None and parse_name_addr(value).tag is None
        copied.append((name, f"{value};tag={to_tag}" if tagged else value))
    return SipResponse(status, reason, tuple(copied) + headers, body)


def warning_text(response: SipResponse) -> str | None:
    """The text of a ``Warning: 399 host "text"`` header (why a request was refused)."""
    value = response.get("Warning")
    if value is None:
        return None
    match = re.fullmatch(r'\d{3}\s+\S+\s+("(?:[^"\\]|\\.)*")', value.strip())
    return _unquote(match[1]) if match else value

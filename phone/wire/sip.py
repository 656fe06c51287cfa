"""SIP messages, sans-IO (RFC 3261), with HTTP digest authentication (RFC 2617, RFC 7616 MD5).

What the emulated registrar and the virtual phone exchange (issues 5 and 6; phone-behaviour
items 30 and 40-44). Nothing here touches a socket or a clock:

* :func:`parse_message` turns one datagram (or one framed stream message) into a
  :class:`SipRequest` or :class:`SipResponse`; :func:`encode_message` is the reverse and always
  writes ``Content-Length``.
* :class:`StreamReader` frames messages on TCP and TLS by ``Content-Length`` and reports the
  RFC 5626 double-CRLF keepalive ping.
* :class:`Challenge` and :class:`Credentials` are the ``WWW-Authenticate``/``Authorization``
  (and ``Proxy-``) header values; :func:`digest_response` computes the MD5 digest with
  ``qop=auth`` (RFC 2617 section 3.2.2.1).
* :class:`RegisterClient` is the phone's side of a registration: REGISTER, answer one 401/407
  with the digest user and password from the phone's config, conclude.

Strictness: anything malformed raises :class:`phone.errors.ProtocolError` with a reason a
person can act on (never another exception), and a message larger than ``max_size`` (16 KiB by
default) is refused before it is parsed or buffered.

Emulated [G]: the ITL report of item 30 travels in a ``X-Cisco-ITL-Hash`` header of the
REGISTER (:func:`format_itl_report`); a real 14.x phone sends it as a SIP alarm whose format is
not public. The phone's MAC travels as RFC 5626 ``+sip.instance`` in the Contact, in the
``urn:uuid:00000000-0000-0000-0000-<MAC>`` form Cisco phones use.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from phone.errors import ProtocolError

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

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"]+")
_CSEQ = re.compile(r"(\d{1,10})[ \t]+(\S+)")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?")
_HEX40 = re.compile(r"[0-9a-f]{40}")


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
    if not values[0].isdigit() or len(values[0]) > 9:
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
    if "Expires" in values and not values["Expires"].isdigit():
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


# --- header values ---------------------------------------------------------------------------


# The only characters that change the state of the list scanner below.
_LIST_SPECIAL = re.compile(r'[",<>\\]')
# Distinct header values each pure parser below remembers: a transaction brings a few new
# values and asks about them again within the transaction, so a small cache keeps every hit.
_PARSE_CACHE = 128


def _split_list(value: str) -> tuple[str, ...]:
    """Split a comma-separated header value, ignoring commas in quotes and angle brackets."""
    # A pure function of an immutable string with an immutable result: the registrar and the
    # client ask for the same Contact and Via values several times per transaction, so the
    # answer is remembered (an error is not: a bad value raises again on every call).
    return _split_list_cached(value)


@functools.lru_cache(maxsize=_PARSE_CACHE)
def _split_list_cached(value: str) -> tuple[str, ...]:
    if '"' not in value and "<" not in value:
        # The common case (Via, Allow, plain parameters): nothing can hide a comma.
        return tuple(p for p in (piece.strip() for piece in value.split(",")) if p)
    # Quoted strings: a scan that visits only the characters that change its state (quote,
    # backslash, angle brackets, comma); everything between them is copied by slicing. The
    # states are those of a character-by-character scan: a backslash inside quotes escapes
    # the next character, brackets and commas inside quotes are text, a comma outside quotes
    # and brackets ends a piece.
    parts: list[str] = []
    start = 0
    quoted = angle = False
    escaped_at = -1  # the index of the character a backslash escapes
    for match in _LIST_SPECIAL.finditer(value):
        at = match.start()
        if at == escaped_at:
            continue
        ch = match[0]
        if quoted:
            if ch == "\\":
                escaped_at = at + 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            parts.append(value[start:at].strip())
            start = at + 1
    if quoted:
        raise ProtocolError(f"unterminated quoted string in {value[:60]!r}")
    parts.append(value[start:].strip())
    return tuple(p for p in parts if p)


_ESCAPED = re.compile(r"\\(.)")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner = text[1:-1]
        return _ESCAPED.sub(r"\1", inner) if "\\" in inner else inner  # no escape: no change
    return text


def quote(text: str) -> str:
    """``text`` as a SIP quoted-string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


Params = tuple[tuple[str, str | None], ...]


def _parse_params(text: str, what: str) -> Params:
    """``;a=1;b;c="x"`` -> (("a", "1"), ("b", None), ("c", "x")); names lower-cased."""
    out: list[tuple[str, str | None]] = []
    for raw in _split_outside_quotes(text, ";"):
        piece = raw.strip()
        if not piece:
            continue
        name, eq, value = piece.partition("=")
        name = name.strip()
        if not _TOKEN.fullmatch(name):
            raise ProtocolError(f"bad parameter {piece[:40]!r} in {what}")
        out.append((name.lower(), _unquote(value.strip()) if eq else None))
    return tuple(out)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)  # no quoted string can hide a separator
    # As in _split_list: visit only the quote, the backslash and the separator; a backslash
    # inside quotes escapes the next character.
    special = _SPECIAL_BY_SEP.get(sep)
    if special is None:
        special = _SPECIAL_BY_SEP[sep] = re.compile(f'["\\\\{re.escape(sep)}]')
    parts: list[str] = []
    start = 0
    quoted = False
    escaped_at = -1
    for match in special.finditer(text):
        at = match.start()
        if at == escaped_at:
            continue
        ch = match[0]
        if quoted:
            if ch == "\\":
                escaped_at = at + 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            parts.append(text[start:at])
            start = at + 1
    if quoted:
        raise ProtocolError(f"unterminated quoted string in {text[:60]!r}")
    parts.append(text[start:])
    return parts


_SPECIAL_BY_SEP: dict[str, re.Pattern[str]] = {}


def _param(params: Params, name: str) -> str | None:
    for n, v in params:
        if n == name:
            return v if v is not None else ""
    return None


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user@host:port;params`` (no headers part)."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    params: Params = ()

    def param(self, name: str) -> str | None:
        """A URI parameter's value ("" for a flag), or None."""
        return _param(self.params, name.lower())


def parse_uri(text: str) -> SipUri:
    """Parse a SIP or SIPS URI.

    Raises:
        ProtocolError: not a ``sip:``/``sips:`` URI with a host.
    """
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise ProtocolError(f"not a SIP URI: {text[:60]!r}")
    rest = rest.split("?", 1)[0]
    hostpart, _, param_text = rest.partition(";")
    user: str | None = None
    if "@" in hostpart:
        user, _, hostpart = hostpart.rpartition("@")
        user = user.split(":", 1)[0]  # a password in a URI is deprecated; never kept
    match = _HOSTPORT.fullmatch(hostpart)
    if match is None:
        raise ProtocolError(f"bad host in SIP URI {text[:60]!r}")
    port = int(match[2]) if match[2] else None
    if port is not None and not 0 < port < 65536:
        raise ProtocolError(f"bad port in SIP URI {text[:60]!r}")
    return SipUri(
        scheme.lower(), user or None, match[1].lower(), port, _parse_params(param_text, "URI")
    )


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact value: optional display name, the URI, header parameters."""

    display: str | None
    uri: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        """A header parameter's value ("" for a flag), or None."""
        return _param(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter."""
        return self.param("tag")


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``<uri>;params`` or ``uri;params``.

    Raises:
        ProtocolError: no URI, or unbalanced quotes or brackets.
    """
    # Pure, with an immutable result: remembered per value (see _split_list).
    return _parse_name_addr(text)


@functools.lru_cache(maxsize=_PARSE_CACHE)
def _parse_name_addr(text: str) -> NameAddr:
    value = text.strip()
    display: str | None = None
    if "<" in value:
        if value.startswith('"'):
            end = 1
            while end < len(value):
                if value[end] == "\\":
                    end += 2
                    continue
                if value[end] == '"':
                    break
                end += 1
            else:
                raise ProtocolError(f"unterminated display name in {text[:60]!r}")
            display = _unquote(value[: end + 1])
            value = value[end + 1 :].lstrip()
        else:
            display = value[: value.index("<")].strip() or None
            value = value[value.index("<") :]
        if not value.startswith("<") or ">" not in value:
            raise ProtocolError(f"bad name-addr {text[:60]!r}")
        close = value.index(">")
        uri, rest = value[1:close], value[close + 1 :]
    else:
        uri, semi, rest = value.partition(";")
        rest = semi + rest
    if not _URI.fullmatch(uri.strip()):
        raise ProtocolError(f"bad URI in {text[:60]!r}")
    if rest.strip() and not rest.strip().startswith(";"):
        raise ProtocolError(f"unexpected text after the URI in {text[:60]!r}")
    return NameAddr(display, uri.strip(), _parse_params(rest, "name-addr"))


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry: transport, sent-by host and port, parameters (branch, received, rport)."""

    transport: str
    host: str
    port: int | None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        """The transaction branch."""
        return _param(self.params, "branch")


def parse_via(value: str) -> Via:
    """Parse the first entry of a Via header value.

    Raises:
        ProtocolError: not ``SIP/2.0/<transport> host[:port][;params]``.
    """
    # Pure, with an immutable result: remembered per value (see _split_list). A transaction
    # parses the same Via at the registrar and twice at the client.
    return _parse_via(value)


_VIA = re.compile(r"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z]+)[ \t]+([^;]+)(.*)")


@functools.lru_cache(maxsize=_PARSE_CACHE)
def _parse_via(value: str) -> Via:
    first = _split_list(value)[0] if value.strip() else ""
    match = _VIA.fullmatch(first)
    if match is None:
        raise ProtocolError(f"bad Via {value[:60]!r}")
    hostport = _HOSTPORT.fullmatch(match[2].strip())
    if hostport is None:
        raise ProtocolError(f"bad sent-by in Via {value[:60]!r}")
    port = int(hostport[2]) if hostport[2] else None
    return Via(match[1].upper(), hostport[1], port, _parse_params(match[3], "Via"))


# --- digest authentication -------------------------------------------------------------------


def md5_hex(text: str) -> str:
    """Lower-case hex MD5 of ``text`` (UTF-8): the digest algorithm SIP phones use."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def digest_ha1(username: str, realm: str, password: str) -> str:
    """HA1 = MD5(username:realm:password): what a registrar stores instead of the password."""
    return md5_hex(f"{username}:{realm}:{password}")


def digest_response(
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The request-digest of RFC 2617 3.2.2.1 (with ``qop=auth``, or RFC 2069 without)."""
    ha2 = md5_hex(f"{method}:{uri}")
    if qop is None:
        return md5_hex(f"{ha1}:{nonce}:{ha2}")
    return md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _auth_params(value: str, what: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ProtocolError(f"{what} uses scheme {scheme[:20]!r}; only Digest is supported")
    out: dict[str, str] = {}
    for piece in _split_list(rest):
        name, eq, raw = piece.partition("=")
        name = name.strip().lower()
        if not eq or not _TOKEN.fullmatch(name):
            raise ProtocolError(f"bad {what} parameter {piece[:40]!r}")
        if name in out:
            raise ProtocolError(f"{what} repeats the {name} parameter")
        out[name] = _unquote(raw.strip())
    return out


@dataclass(frozen=True, slots=True)
class Challenge:
    """A ``WWW-Authenticate``/``Proxy-Authenticate: Digest ...`` value."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False

    def render(self) -> str:
        """The header value."""
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a digest challenge.

    Raises:
        ProtocolError: not Digest, or no realm or nonce.
    """
    params = _auth_params(value, "challenge")
    if "realm" not in params or "nonce" not in params:
        raise ProtocolError("digest challenge without realm or nonce")
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        params["realm"],
        params["nonce"],
        params.get("algorithm", "MD5"),
        qop,
        params.get("opaque"),
        params.get("stale", "").lower() == "true",
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """An ``Authorization``/``Proxy-Authorization: Digest ...`` value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    def render(self) -> str:
        """The header value (RFC 2617 quoting: nc and qop as tokens)."""
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(self.realm)}",
            f"nonce={quote(self.nonce)}",
            f"uri={quote(self.uri)}",
            f"response={quote(self.response)}",
            f"algorithm={self.algorithm}",
        ]
        if self.qop is not None:
            parts += [f"qop={self.qop}", f"nc={self.nc}", f"cnonce={quote(self.cnonce or '')}"]
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        return "Digest " + ", ".join(parts)


def parse_credentials(value: str) -> Credentials:
    """Parse digest credentials.

    Raises:
        ProtocolError: not Digest, a missing field, or ``qop`` without ``nc``/``cnonce``.
    """
    params = _auth_params(value, "authorization")
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
    if missing:
        raise ProtocolError(f"digest credentials without {', '.join(missing)}")
    qop = params.get("qop")
    if qop is not None:
        nc = params.get("nc", "")
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", nc) or not params.get("cnonce"):
            raise ProtocolError("digest credentials with qop need an 8-hex-digit nc and a cnonce")
    if not re.fullmatch(r"[0-9a-fA-F]{32}", params["response"]):
        raise ProtocolError("digest response is not 32 hex digits (MD5)")
    return Credentials(
        params["username"],
        params["realm"],
        params["nonce"],
        params["uri"],
        params["response"].lower(),
        params.get("algorithm", "MD5"),
        qop,
        params.get("nc"),
        params.get("cnonce"),
        params.get("opaque"),
    )


def answer_challenge(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
) -> Credentials:
    """The credentials that answer ``challenge`` (qop=auth when offered, RFC 2617).

    Raises:
        ProtocolError: an algorithm other than MD5 (RFC 7616's SHA-256 is not what phones use).
    """
    if challenge.algorithm.upper() != "MD5":
        raise ProtocolError(f"digest algorithm {challenge.algorithm} is not supported")
    ha1 = digest_ha1(username, challenge.realm, password)
    qop = "auth" if "auth" in challenge.qop else None
    nc_text = f"{nc:08x}" if qop else None
    response = digest_response(
        ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        nc=nc_text,
        cnonce=cnonce if qop else None,
        qop=qop,
    )
    return Credentials(
        username,
        challenge.realm,
        challenge.nonce,
        uri,
        response,
        "MD5",
        qop,
        nc_text,
        cnonce if qop else None,
        challenge.opaque,
    )


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


ITL_HEADER = "X-Cisco-ITL-Hash"  # emulated [G]: see the module docstring


def format_itl_report(tftp_host: str, itl_hash: str, timestamp: int) -> str:
    """The emulated ITL report header value: ``<sha1-hex>;tftp=<host>;timestamp=<unix>``."""
    return f"{itl_hash.lower()};tftp={tftp_host};timestamp={int(timestamp)}"


def parse_itl_report(value: str) -> tuple[str, str, int]:
    """``(tftp_host, itl_hash, timestamp)`` of an ITL report header.

    Raises:
        ProtocolError: not a 40-hex-digit hash with a tftp host and a timestamp.
    """
    digest, _, rest = value.strip().partition(";")
    params = dict(_parse_params(rest, ITL_HEADER))
    host, stamp = params.get("tftp"), params.get("timestamp")
    if not _HEX40.fullmatch(digest.lower()) or not host or stamp is None or not stamp.isdigit():
        raise ProtocolError(f"bad {ITL_HEADER} {value[:80]!r}")
    return host, digest.lower(), int(stamp)


_INSTANCE = re.compile(r"<?urn:uuid:00000000-0000-0000-0000-([0-9A-Fa-f]{12})>?")


def instance_mac(contact: str) -> str | None:
    """The MAC in a Contact's ``+sip.instance="<urn:uuid:00000000-0000-0000-0000-MAC>"``."""
    # Pure: remembered per value (see _split_list); the registrar asks twice per request.
    return _instance_mac(contact)


@functools.lru_cache(maxsize=_PARSE_CACHE)
def _instance_mac(contact: str) -> str | None:
    instance = parse_name_addr(contact).param("+sip.instance")
    if not instance:
        return None
    match = _INSTANCE.fullmatch(instance)
    return match[1].upper() if match else None


def warning_text(response: SipResponse) -> str | None:
    """The text of a ``Warning: 399 host "text"`` header (why a request was refused)."""
    value = response.get("Warning")
    if value is None:
        return None
    match = re.fullmatch(r'\d{3}\s+\S+\s+("(?:[^"\\]|\\.)*")', value.strip())
    return _unquote(match[1]) if match else value


def _hex(random: Callable[[int], bytes], size: int) -> str:
    return random(size).hex()


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """How a registration ended, as the phone sees it."""

    ok: bool
    code: int
    reason: str
    expires: int | None = None
    rule: str = "item 1"  # the behaviour item a failure comes from (item 40, 41, 42 ...)


class RegisterClient:
    """The phone's side of a registration, sans-IO.

    ``start()`` gives the REGISTER to send; ``receive(response)`` gives the next request (the
    same REGISTER with credentials after a 401/407), None to keep waiting (1xx, a response to
    another transaction), or the :class:`RegisterOutcome`.

    The phone answers a challenge with the digest user and password of its config (item 40);
    without them the registration fails (item 42). It answers at most one challenge per
    nonce: a second non-stale challenge means the credentials were refused. A ``stale=true``
    challenge (an expired nonce, item 41) is answered again with the fresh nonce.
    """

    MAX_CHALLENGES = 3

    def __init__(
        self,
        *,
        registrar: str,
        transport: str,
        local: tuple[str, int],
        mac: str,
        model: str,
        user: str | None = None,
        password: str | None = None,
        expires: int = 3600,
        extra_headers: tuple[tuple[str, str], ...] = (),
        random: Callable[[int], bytes],
    ) -> None:
        self.registrar = registrar
        self.transport = transport.upper()
        self.local = local
        self.mac = mac.upper()
        self.model = model
        self.user = user
        self.password = password
        self.expires = expires
        self.extra_headers = extra_headers
        self._random = random
        self.call_id = f"{_hex(random, 8)}@{local[0]}"
        self.tag = _hex(random, 4)
        self.cseq = 1
        self.challenges = 0
        self.answered: str | None = None  # the nonce last answered
        self.current: SipRequest | None = None

    @property
    def uri(self) -> str:
        """The Request-URI: the registrar's domain."""
        return f"sip:{self.registrar}"

    def _request(self, auth: tuple[str, str] | None) -> SipRequest:
        aor_user = self.user or f"SEP{self.mac}"
        host, port = self.local
        transport = self.transport.lower()
        headers: list[tuple[str, str]] = [
            (
                "Via",
                f"SIP/2.0/{self.transport} {host}:{port};branch=z9hG4bK{_hex(self._random, 8)}"
                ";rport",
            ),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{aor_user}@{self.registrar}>;tag={self.tag}"),
            ("To", f"<sip:{aor_user}@{self.registrar}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            (
                "Contact",
                f"<sip:{aor_user}@{host}:{port};transport={transport}>;"
                f'+sip.instance="<urn:uuid:00000000-0000-0000-0000-{self.mac}>"',
            ),
            ("User-Agent", f"Cisco-CP{self.model}/vphone"),
            ("Expires", str(self.expires)),
        ]
        if auth is not None:
            headers.append(auth)
        headers.extend(self.extra_headers)
        self.current = SipRequest("REGISTER", self.uri, tuple(headers))
        return self.current

    def start(self) -> SipRequest:
        """The first REGISTER (no credentials: the registrar challenges if it wants them)."""
        return self._request(None)

    def matches(self, response: SipResponse) -> bool:
        """Whether ``response`` answers the REGISTER in flight (Call-ID, CSeq and branch)."""
        if self.current is None:
            return False
        try:
            return (
                response.call_id == self.call_id
                and response.cseq == (self.cseq, "REGISTER")
                and parse_via(response.header("Via")).branch
                == parse_via(self.current.header("Via")).branch
            )
        except ProtocolError:
            return False

    def receive(self, response: SipResponse) -> SipRequest | RegisterOutcome | None:
        """React to a response (see the class docstring)."""
        if not self.matches(response) or response.status < 200:
            return None
        if 200 <= response.status < 300:
            expires = response.get("Expires")
            return RegisterOutcome(
                True,
                response.status,
                response.reason,
                int(expires) if expires and expires.isdigit() else None,
            )
        if response.status not in (401, 407):
            why = warning_text(response)
            rule = re.search(r"\(item (\d+)\)", why or "")
            return RegisterOutcome(
                False,
                response.status,
                f"{response.reason}: {why}" if why else response.reason,
                rule=f"item {rule[1]}" if rule else "item 1",
            )
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        value = response.get(header)
        if value is None:
            return RegisterOutcome(False, response.status, f"{response.reason} without {header}")
        try:
            challenge = parse_challenge(value)
        except ProtocolError as exc:
            return RegisterOutcome(False, response.status, f"unusable challenge: {exc}")
        if self.user is None or self.password is None:
            return RegisterOutcome(
                False,
                response.status,
                f"digest challenge from realm {challenge.realm!r} but the configuration holds "
                "no digest credentials (item 42)",
                rule="item 42",
            )
        self.challenges += 1
        if self.answered is not None and not challenge.stale:
            return RegisterOutcome(
                False,
                response.status,
                f"digest credentials of {self.user!r} refused in realm {challenge.realm!r}",
                rule="item 40",
            )
        if self.challenges > self.MAX_CHALLENGES:
            return RegisterOutcome(
                False, response.status, "too many digest challenges", rule="item 40"
            )
        try:
            credentials = answer_challenge(
                challenge,
                username=self.user,
                password=self.password,
                method="REGISTER",
                uri=self.uri,
                cnonce=_hex(self._random, 8),
            )
        except ProtocolError as exc:
            return RegisterOutcome(False, response.status, str(exc))
        self.answered = challenge.nonce
        self.cseq += 1
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        return self._request((name, credentials.render()))

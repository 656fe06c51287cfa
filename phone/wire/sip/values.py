"""SIP header values, sans-IO (RFC 3261 section 25): the grammar below the message.

What the message model, the digest code and the registration client all read inside a header
value, so it sits at the bottom of :mod:`phone.wire.sip` and imports nothing from it:

* comma-separated lists (:func:`_split_list`, quotes and angle brackets respected) and
  quoted-strings (:func:`quote`, :func:`_unquote`);
* ``;name=value`` parameters (:data:`Params`, :func:`_parse_params`);
* :class:`SipUri` (:func:`parse_uri`), :class:`NameAddr` for From/To/Contact
  (:func:`parse_name_addr`) and :class:`Via` (:func:`parse_via`).

The pure parsers remember their answers for a few distinct values (:data:`_PARSE_CACHE`): a
transaction asks about the same Via and Contact several times. Anything malformed raises
:class:`phone.errors.ProtocolError`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from phone.errors import ProtocolError

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"]+")
_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?")

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

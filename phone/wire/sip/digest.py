"""HTTP digest authentication for SIP, sans-IO (RFC 2617, RFC 7616 MD5).

:class:`Challenge` and :class:`Credentials` are the ``WWW-Authenticate``/``Authorization``
(and ``Proxy-``) header values, each with its parser and ``render``; :func:`digest_response`
computes the MD5 request-digest with ``qop=auth`` (RFC 2617 section 3.2.2.1) and
:func:`answer_challenge` is what a client sends back. Only MD5: what SIP phones use.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from phone.errors import ProtocolError
from phone.wire.sip.values import _TOKEN, _split_list, _unquote, quote


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

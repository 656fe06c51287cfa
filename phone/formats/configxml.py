"""Phone configuration files: ``SEP<MAC>.cnf.xml`` and ``XMLDefault.cnf.xml``.

Pure: :func:`render_config` turns a :class:`DeviceConfig` into bytes, :func:`parse_config` turns
untrusted bytes back into one. Element names are the real Cisco ones where public sources show
them (usecallmanager.nz ``SEP<MAC>.cnf.xml`` reference, certutils ``enccnf`` stub; see
trust-file-formats.md section 8 and phone-behaviour items 21, 36, 40-42):

* ``<device>`` (``<Default>`` for the autoregistration default file), ``<fullConfig>``;
* ``<devicePool><callManagerGroup><members><member priority="0"><callManager><name>`` with
  ``<ports><sipPort>``/``<securedSipPort>`` and ``<processNodeName>``;
* ``<TVS><members><member priority="0"><port>2445</port><address>host</address>``;
* ``<sipProfile><sipLines><line button="1"><authName>``/``<authPassword>`` (digest credentials);
* ``<loadInformation>``, ``<deviceSecurityMode>``, ``<ipAddressMode>``, ``<capfAuthMode>``,
  ``<capfList><capf><phonePort>``/``<processNodeName>``, ``<certHash>``, ``<encrConfig>``.

Three elements are lab extensions with no known Cisco counterpart, kept so that a config names
the device it was made for and the TFTP servers of its cluster: ``<macAddress>``, ``<model>`` and
``<tftpServers><server priority="0">host</server></tftpServers>``.

The parser refuses DOCTYPE declarations (and so every entity definition: no billion laughs, no
external entities) and anything that is not well-formed, with a
:class:`~phone.errors.ValueFormatError` naming the byte offset.

Why this module is near 700 lines: the renderer and the parser of one file format (every
element above, both ways) are kept together so that a field added to one cannot be missed by
the other; the round trip is what the tests check. The renderer's memo (the lines shared by a
fleet's configs) sits beside the renderer it must match, keyed by the same field list.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element, ParseError, SubElement, XMLParser
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from phone.errors import FormatError, LengthError, StructureError, ValueFormatError

__all__ = [
    "CAPF_PORT",
    "MAX_CONFIG_BYTES",
    "SCCP_PORT",
    "SCCP_TLS_PORT",
    "SIP_PORT",
    "SIP_TLS_PORT",
    "TVS_PORT",
    "DeviceConfig",
    "parse_config",
    "render_config",
]

SIP_PORT = 5060
SIP_TLS_PORT = 5061
SCCP_PORT = 2000  # SCCP (Skinny) over TCP: the config's <ethernetPhonePort> on a real cluster
SCCP_TLS_PORT = 2443  # SCCP over TLS, the secure device modes (seed, Signaling Authentication)
TVS_PORT = 2445  # item 21
CAPF_PORT = 3804  # trust-file-formats.md section 9b
MAX_CONFIG_BYTES = 1 << 20
"""Largest config :func:`parse_config` accepts; real ones are a few kilobytes."""

_MAC = re.compile(r"[0-9A-F]{12}")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class DeviceConfig:
    """What a phone reads from its configuration file.

    ``callmanagers`` is ``(host, sip_port, secure_sip_port)`` and ``tvs_members`` is
    ``(host, port)``, both in priority order (item 21). ``device_security_mode`` is 1
    (non-secure), 2 (authenticated) or 3 (encrypted). ``full_config`` is False for the stub that
    accompanies an encrypted config (section 8); ``cert_hash`` is then the lowercase hex MD5 of
    the device certificate the real config is encrypted for. ``default`` marks the
    autoregistration file ``XMLDefault.cnf.xml`` (root element ``<Default>``).
    """

    device_security_mode: int = 1
    callmanagers: tuple[tuple[str, int, int], ...] = ()
    tvs_members: tuple[tuple[str, int], ...] = ()
    tftp_servers: tuple[str, ...] = ()
    load_information: str = ""
    digest_user: str | None = None
    digest_password: str | None = None
    encrypted_config: bool = False
    full_config: bool = True
    cert_hash: str | None = None
    capf_host: str | None = None
    capf_port: int = CAPF_PORT
    capf_auth_mode: int = 0
    ip_address_mode: int = 0
    mac: str | None = None
    model: str | None = None
    default: bool = False

    def __post_init__(self) -> None:
        if self.device_security_mode not in (1, 2, 3):
            raise ValueError(f"device security mode must be 1, 2 or 3: {self.device_security_mode}")
        if self.mac is not None and not _MAC.fullmatch(self.mac):
            raise ValueError(f"MAC must be 12 upper-case hex digits: {self.mac!r}")
        for host, sip, sips in self.callmanagers:
            _check_member(host, sip, sips)
        for host, port in self.tvs_members:
            _check_member(host, port)
        _check_port(self.capf_port)
        texts = (
            self.load_information,
            self.digest_user,
            self.digest_password,
            self.cert_hash,
            self.capf_host,
            self.model,
            *self.tftp_servers,
            *(host for host, _, _ in self.callmanagers),
            *(host for host, _ in self.tvs_members),
        )
        for text in texts:
            if text is not None and (_BAD_TEXT.search(text) or text != text.strip()):
                # Rendering must round-trip: XML cannot carry control characters, and the
                # parser strips the whitespace that pretty-printing puts around values.
                raise ValueError(f"config text must be XML-safe and unpadded: {text!r}")

    @property
    def device_name(self) -> str | None:
        """``SEP<MAC>``, or None for the default config."""
        return None if self.mac is None else f"SEP{self.mac}"

    def stub(self, cert_hash: str | None) -> DeviceConfig:
        """The plain companion of an encrypted config (section 8, certutils ``enccnf``).

        It carries only what a phone needs to fetch and decrypt the real config:
        ``fullConfig`` false, ``ipAddressMode``, ``loadInformation``, ``capfAuthMode``,
        ``capfList``, ``certHash`` and ``encrConfig`` true. No digest credentials (item 42).
        """
        return DeviceConfig(
            full_config=False,
            encrypted_config=True,
            cert_hash=cert_hash,
            load_information=self.load_information,
            capf_host=self.capf_host,
            capf_port=self.capf_port,
            capf_auth_mode=self.capf_auth_mode,
            ip_address_mode=self.ip_address_mode,
        )


def _check_member(host: str, *ports: int) -> None:
    if not host:
        raise ValueError("a call manager or TVS member needs a host")
    for port in ports:
        _check_port(port)


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")


# --- rendering -------------------------------------------------------------------------------


def render_config(cfg: DeviceConfig) -> bytes:
    """The config file's bytes: UTF-8 XML, two-space indented, deterministic.

    The same :class:`DeviceConfig` always renders to the same bytes, which is what lets the
    TFTP service compare content to decide whether a file must be re-signed (seed, File
    Authentication).
    """
    if cfg.full_config:
        # A fleet's configs differ in <macAddress> and <model> only: the lines before and
        # after them are a pure function of the other fields, rendered once per value of
        # those (a bounded memo; tests/test_formats_configxml_rules.py checks it against the
        # unmemoised rendering). A stub (no <deviceProtocol>, no MAC) is rendered whole.
        head, tail = _shared_parts(_shared_key(cfg))
        middle = ""
        if cfg.mac is not None:
            middle = _leaf(1, "macAddress", cfg.mac) + "\n"
        if cfg.model is not None:
            middle += _leaf(1, "model", cfg.model) + "\n"
        return head + middle.encode() + tail
    return _render(cfg)


def _render(cfg: DeviceConfig) -> bytes:
    """:func:`render_config` without the memo: the reference rendering."""
    return "\n".join(_render_lines(cfg)).encode() + b"\n"


# Every field of DeviceConfig but ``mac`` and ``model``, in declaration order: the key of the
# lines around them. A field added to DeviceConfig must be added here (a test compares this
# with dataclasses.fields).
_SHARED_FIELDS: Final = (
    "device_security_mode",
    "callmanagers",
    "tvs_members",
    "tftp_servers",
    "load_information",
    "digest_user",
    "digest_password",
    "encrypted_config",
    "full_config",
    "cert_hash",
    "capf_host",
    "capf_port",
    "capf_auth_mode",
    "ip_address_mode",
    "default",
)
_shared_key: Final = operator.attrgetter(*_SHARED_FIELDS)


def _render_shared_parts(key: tuple[object, ...]) -> tuple[bytes, bytes]:
    """The rendered lines before ``<macAddress>`` and after ``<model>`` of a full config whose
    other fields are ``key``, as bytes (each part ends with a newline)."""
    bare = DeviceConfig(**dict(zip(_SHARED_FIELDS, key, strict=True)))  # type: ignore[arg-type]
    lines = list(_render_lines(bare))
    cut = 4  # the prolog, the root, <fullConfig>, <deviceProtocol>: then mac and model
    return (
        ("\n".join(lines[:cut]) + "\n").encode(),
        ("\n".join(lines[cut:]) + "\n").encode(),
    )


# Kept once per key, bounded (a fleet has a few: one per cluster). Wrapped here rather than
# decorated so that mutation testing, which skips decorated functions, still reaches the body.
_shared_parts: Final = functools.lru_cache(maxsize=256)(_render_shared_parts)


def _text(value: str) -> str:
    return escape(value)


def _leaf(indent: int, tag: str, value: str | int | bool) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else _text(str(value))
    return f"{'  ' * indent}<{tag}>{text}</{tag}>"


def _render_lines(cfg: DeviceConfig) -> Iterator[str]:
    root = "Default" if cfg.default else "device"
    yield '<?xml version="1.0" encoding="UTF-8"?>'
    yield f"<{root}>"
    yield _leaf(1, "fullConfig", cfg.full_config)
    if cfg.full_config:
        yield _leaf(1, "deviceProtocol", "SIP")
        if cfg.mac is not None:
            yield _leaf(1, "macAddress", cfg.mac)
        if cfg.model is not None:
            yield _leaf(1, "model", cfg.model)
        yield from _render_callmanagers(cfg.callmanagers)
        yield "  <TVS>"
        yield "    <members>"
        for priority, (host, port) in enumerate(cfg.tvs_members):
            yield f'      <member priority="{priority}">'
            yield _leaf(4, "port", port)
            yield _leaf(4, "address", host)
            yield "      </member>"
        yield "    </members>"
        yield "  </TVS>"
        yield "  <tftpServers>"
        for priority, host in enumerate(cfg.tftp_servers):
            yield f'    <server priority="{priority}">{_text(host)}</server>'
        yield "  </tftpServers>"
        yield "  <sipProfile>"
        yield "    <sipLines>"
        yield '      <line button="1">'
        if cfg.digest_user is not None:
            yield _leaf(4, "authName", cfg.digest_user)
        if cfg.digest_password is not None:
            yield _leaf(4, "authPassword", cfg.digest_password)
        yield "      </line>"
        yield "    </sipLines>"
        yield "  </sipProfile>"
    yield _leaf(1, "loadInformation", cfg.load_information)
    if cfg.full_config:
        yield _leaf(1, "deviceSecurityMode", cfg.device_security_mode)
    yield _leaf(1, "ipAddressMode", cfg.ip_address_mode)
    yield _leaf(1, "capfAuthMode", cfg.capf_auth_mode)
    yield "  <capfList>"
    if cfg.capf_host is not None:
        yield "    <capf>"
        yield _leaf(3, "phonePort", cfg.capf_port)
        yield _leaf(3, "processNodeName", cfg.capf_host)
        yield "    </capf>"
    yield "  </capfList>"
    yield _leaf(1, "certHash", cfg.cert_hash or "")
    yield _leaf(1, "encrConfig", cfg.encrypted_config)
    yield f"</{root}>"


def _render_callmanagers(members: Sequence[tuple[str, int, int]]) -> Iterator[str]:
    yield "  <devicePool>"
    yield "    <callManagerGroup>"
    yield "      <members>"
    for priority, (host, sip, sips) in enumerate(members):
        yield f"        <member priority={quoteattr(str(priority))}>"
        yield "          <callManager>"
        yield _leaf(6, "name", host)
        yield "            <ports>"
        yield _leaf(7, "sipPort", sip)
        yield _leaf(7, "securedSipPort", sips)
        yield "            </ports>"
        yield _leaf(6, "processNodeName", host)
        yield "          </callManager>"
        yield "        </member>"
    yield "      </members>"
    yield "    </callManagerGroup>"
    yield "  </devicePool>"


# --- parsing ---------------------------------------------------------------------------------
#
# One reader (_Reader) over an ElementTree, built one of two ways from the same expat:
#
# * _tree: the reference. expat callbacks build the tree, refuse DOCTYPE declarations and
#   record where each element starts, for error messages.
# * _fast_tree: ElementTree's C parser, twice as fast (no Python call per element, which was
#   most of a config parse), used only for input where both build the same tree (see
#   _fast_tree) and only when the reader accepts the result. A file it refuses, or anything
#   unusual, goes through the reference, which raises the error with its byte offset. So the
#   outcome, config or error, is always the reference's.


class _Refused(Exception):
    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.what = what
        self.offset = offset


def _tree(data: bytes) -> tuple[Element, dict[Element, int]]:
    """The reference tree and the byte offset where each element starts.

    An element's text runs are kept as ElementTree keeps them: the runs before its first child
    in ``text``, the runs after a child in that child's ``tail`` (see _value).
    """
    parser = expat.ParserCreate()
    stack: list[Element] = []
    roots: list[Element] = []
    offsets: dict[Element, int] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = Element(tag, attrs) if not stack else SubElement(stack[-1], tag, attrs)
        offsets[node] = parser.CurrentByteIndex
        if not stack:
            roots.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            node = stack[-1]
            if len(node):
                last = node[-1]
                last.tail = text if last.tail is None else last.tail + text
            else:
                node.text = text if node.text is None else node.text + text

    def doctype(*_args: object) -> None:
        # A DOCTYPE is the only way to define entities; refusing it refuses them all (expat
        # reports the DOCTYPE's start before any entity declaration in it, so no separate
        # entity handler is needed: one could never run).
        raise _Refused("DOCTYPE declarations are not allowed", parser.CurrentByteIndex)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    # Deliver each run of text in one call instead of one per line: the text of an element
    # is the join of its pieces either way, and a run is flushed before the next tag event.
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = doctype
    _check_encoding(data)
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise ValueFormatError(
            exc.what, offset=max(0, exc.offset), expected="a config without DOCTYPE or entities"
        ) from None
    except expat.ExpatError as exc:
        raise ValueFormatError(
            f"not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})",
            offset=max(0, parser.ErrorByteIndex),
            expected="a well-formed XML config file",
        ) from None
    except (LookupError, ValueError, UnicodeError) as exc:
        # pyexpat asks Python's codecs for an encoding it does not know itself; whatever they
        # raise is a refusal of the file, never an error of the caller. _check_encoding
        # refuses the names first, so this is the net under it (a BOM against the declaration).
        raise ValueFormatError(
            f"undecodable XML ({type(exc).__name__}: {exc})",
            offset=0,
            expected=f"a config in {ACCEPTED_ENCODINGS_TEXT}",
        ) from None
    finally:
        # The handlers close over the parser and the parser holds the handlers: a reference
        # cycle that would keep the parser, the handlers and the whole tree (about 100
        # objects a config) alive until the garbage collector finds it, which made the
        # collector a tenth of a fleet run. Dropping the handlers lets reference counting
        # free all of it.
        parser.StartElementHandler = None
        parser.EndElementHandler = None
        parser.CharacterDataHandler = None
        parser.StartDoctypeDeclHandler = None
    # A parse that ends without an error has one root: expat reports "no element found" first.
    return roots[0], offsets


_PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'  # what render_config writes

# The encodings a phone reads a config in: expat's own four. CUCM writes UTF-8; expat decodes
# these without Python's codecs, which would otherwise be looked up by whatever name a file
# declares (rot13, hex, x-evil ...: LookupError, ValueError, UnicodeError out of the parser).
# No public source says which encodings a phone accepts [G]: vphone takes the ones any XML 1.0
# processor must or commonly does, and refuses every other name with a FormatError.
ACCEPTED_ENCODINGS: Final = frozenset({"utf-8", "utf-16", "iso-8859-1", "us-ascii"})
ACCEPTED_ENCODINGS_TEXT: Final = "UTF-8, UTF-16, ISO-8859-1 or US-ASCII"
_DECLARED_ENCODING = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?\s*<\?xml\s[^>]*?encoding\s*=\s*(["'])(.*?)\1""", re.S
)


def _check_encoding(data: bytes) -> None:
    """Refuse a declared encoding outside :data:`ACCEPTED_ENCODINGS` (ASCII-compatible
    declarations; a UTF-16 file's declaration is checked by expat itself).

    The whole file is matched, not a first window of it: XML allows any amount of whitespace
    inside the declaration, and a window let a declaration padded past it name any encoding
    Python knows (windows-1252, utf-7 ...), which expat then decoded. The pattern is anchored
    and stops at the declaration's first ``>``, so this costs no more than a window did.
    """
    match = _DECLARED_ENCODING.match(data)
    if match is None:
        return
    name = match[2].decode("ascii", "replace")
    if name.strip().lower() not in ACCEPTED_ENCODINGS:
        raise ValueFormatError(
            f"XML declaration names the encoding {name!r}",
            offset=match.start(2),
            expected=f"a config in {ACCEPTED_ENCODINGS_TEXT}",
        )


def _fast_tree(data: bytes) -> Element | None:
    """The tree of ``data`` from ElementTree's C parser, or None to use the reference.

    Both parsers are expat with the same defaults, except that ElementTree's processes
    namespaces. Taken here only for files that start with render_config's prolog (UTF-8,
    version 1.0) and hold no ``<!`` (DOCTYPE, comment, CDATA), no other ``<?`` (processing
    instruction), no ``xmlns`` and no ``xml:``: there every name is one without a prefix
    (a prefixed name would be an error of an unbound prefix, which sends the file to the
    reference) and both parsers report the same elements, attributes and character data.
    """
    if (
        not data.startswith(_PROLOG)
        or b"<!" in data
        or data.find(b"<?", len(_PROLOG)) >= 0
        or b"xmlns" in data
        or b"xml:" in data
    ):
        return None
    # S314: ElementTree is refused for untrusted XML for its entity expansion; a file here
    # has no DOCTYPE, so it defines no entity (the checks above; the reference refuses one).
    parser = XMLParser()  # noqa: S314
    try:
        parser.feed(data)
        return parser.close()
    except ParseError:
        return None


def _value(node: Element) -> str:
    """The element's character data, stripped: its text and the tails of its children."""
    text = node.text or ""
    if len(node):
        text += "".join(child.tail or "" for child in node)
    return text.strip()


def _optional(node: Element | None) -> str | None:
    if node is None:
        return None
    return _value(node) or None


def _path(node: Element | None, *tags: str) -> Element | None:
    for tag in tags:
        if node is None:
            return None
        node = node.find(tag)  # a plain tag: the first child called so
    return node


class _Reader:
    """Reads a config out of a tree; ``offsets`` place errors (empty for a fast tree)."""

    def __init__(self, offsets: dict[Element, int]) -> None:
        self.offsets = offsets

    def at(self, node: Element) -> int:
        return self.offsets.get(node, 0)

    def integer(self, node: Element | None, what: str, default: int) -> int:
        text = "" if node is None else _value(node)
        if text == "":
            return default
        assert node is not None
        if not text.isdigit() or len(text) > 9:
            raise ValueFormatError(
                f"{what} is {text[:40]!r}",
                offset=self.at(node),
                expected=f"a decimal number for {what}",
            )
        return int(text)

    def port(self, node: Element | None, what: str, default: int) -> int:
        value = self.integer(node, what, default)
        if not 0 < value < 65536:
            raise ValueFormatError(
                f"{what} {value} is out of range",
                offset=0 if node is None else self.at(node),
                expected="a port from 1 to 65535",
            )
        return value

    def boolean(self, node: Element | None, what: str, default: bool) -> bool:
        value = "" if node is None else _value(node)
        if value == "":
            return default
        assert node is not None
        text = value.lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueFormatError(
            f"{what} is {value[:40]!r}", offset=self.at(node), expected="true or false"
        )

    def priority(self, node: Element, index: int) -> tuple[int, int]:
        text = node.get("priority", "")
        if text == "":
            return (index, index)
        if not text.isdigit() or len(text) > 9:
            raise ValueFormatError(
                f"priority is {text[:40]!r}", offset=self.at(node), expected="a decimal priority"
            )
        return (int(text), index)

    def members(self, parent: Element | None) -> list[Element]:
        if parent is None:
            return []
        members = parent.find("members")
        if members is None:
            return []
        found = members.findall("member")
        keyed = sorted((self.priority(node, i), i) for i, node in enumerate(found))
        return [found[i] for _, i in keyed]

    def config(self, root: Element) -> DeviceConfig:
        if root.tag not in ("device", "Default"):
            raise StructureError(
                f"root element <{root.tag[:40]}>",
                offset=self.at(root),
                expected="<device> or <Default>",
            )
        callmanagers: list[tuple[str, int, int]] = []
        group = _path(root, "devicePool", "callManagerGroup")
        for member in self.members(group):
            cm = member.find("callManager")
            host = _optional(_path(cm, "processNodeName")) or _optional(_path(cm, "name"))
            if host is None:
                raise StructureError(
                    "call manager member without a host",
                    offset=self.at(member),
                    expected="<processNodeName> or <name>",
                )
            ports = _path(cm, "ports")
            callmanagers.append(
                (
                    host,
                    self.port(_path(ports, "sipPort"), "sipPort", SIP_PORT),
                    self.port(_path(ports, "securedSipPort"), "securedSipPort", SIP_TLS_PORT),
                )
            )
        tvs: list[tuple[str, int]] = []
        for member in self.members(root.find("TVS")):
            host = _optional(member.find("address"))
            if host is None:
                raise StructureError(
                    "TVS member without an address", offset=self.at(member), expected="<address>"
                )
            tvs.append((host, self.port(member.find("port"), "TVS port", TVS_PORT)))
        tftp: list[str] = []
        servers = root.find("tftpServers")
        if servers is not None:
            found = servers.findall("server")
            ordered = sorted((self.priority(n, i), i) for i, n in enumerate(found))
            tftp = [text for _, i in ordered if (text := _value(found[i]))]
        line = _path(root, "sipProfile", "sipLines", "line")
        capf = _path(root, "capfList", "capf")
        mode = self.integer(root.find("deviceSecurityMode"), "deviceSecurityMode", 1)
        if mode not in (1, 2, 3):
            node = root.find("deviceSecurityMode")
            raise ValueFormatError(
                f"deviceSecurityMode {mode}",
                offset=0 if node is None else self.at(node),
                expected="1 (non-secure), 2 (authenticated) or 3 (encrypted)",
            )
        mac = _optional(root.find("macAddress"))
        if mac is not None:
            mac = mac.upper()
            if not _MAC.fullmatch(mac):
                node = root.find("macAddress")
                raise ValueFormatError(
                    f"macAddress {mac[:40]!r}",
                    offset=0 if node is None else self.at(node),
                    expected="12 hex digits",
                )
        return DeviceConfig(
            device_security_mode=mode,
            callmanagers=tuple(callmanagers),
            tvs_members=tuple(tvs),
            tftp_servers=tuple(tftp),
            load_information=(_optional(root.find("loadInformation")) or ""),
            digest_user=_optional(_path(line, "authName")),
            digest_password=_optional(_path(line, "authPassword")),
            encrypted_config=self.boolean(root.find("encrConfig"), "encrConfig", False),
            full_config=self.boolean(root.find("fullConfig"), "fullConfig", True),
            cert_hash=_optional(root.find("certHash")),
            capf_host=_optional(_path(capf, "processNodeName")),
            capf_port=self.port(_path(capf, "phonePort"), "CAPF port", CAPF_PORT),
            capf_auth_mode=self.integer(root.find("capfAuthMode"), "capfAuthMode", 0),
            ip_address_mode=self.integer(root.find("ipAddressMode"), "ipAddressMode", 0),
            mac=mac,
            model=_optional(root.find("model")),
            default=root.tag == "Default",
        )


_NO_OFFSETS = _Reader({})


def parse_config(data: bytes) -> DeviceConfig:
    """Parse an (unsigned, or stripped/decrypted) config file.

    Unknown elements are ignored, as phones ignore what they do not know. Raises a
    :class:`~phone.errors.FormatError` subclass: ``LengthError`` for oversized input,
    ``ValueFormatError`` for malformed XML, DOCTYPE/entities or bad values, ``StructureError``
    for a wrong root element or a member without a host.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise LengthError(
            f"config of {len(data)} bytes",
            offset=MAX_CONFIG_BYTES,
            expected=f"at most {MAX_CONFIG_BYTES} bytes",
        )
    fast = _fast_tree(data)
    if fast is not None:
        try:
            return _NO_OFFSETS.config(fast)
        except (FormatError, ValueError):
            pass  # refused: the reference below raises the same error, with its offset
    root, offsets = _tree(data)
    return _Reader(offsets).config(root)

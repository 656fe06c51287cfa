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
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

from phone.errors import LengthError, StructureError, ValueFormatError

__all__ = [
    "CAPF_PORT",
    "MAX_CONFIG_BYTES",
    "SIP_PORT",
    "SIP_TLS_PORT",
    "TVS_PORT",
    "DeviceConfig",
    "parse_config",
    "render_config",
]

SIP_PORT = 5060
SIP_TLS_PORT = 5061
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
    return "\n".join(_render_lines(cfg)).encode() + b"\n"


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


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    offset: int
    children: list[_Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def child(self, tag: str) -> _Node | None:
        for node in self.children:
            if node.tag == tag:
                return node
        return None

    def all(self, tag: str) -> list[_Node]:
        return [node for node in self.children if node.tag == tag]

    @property
    def value(self) -> str:
        return "".join(self.text).strip()


class _Refused(Exception):
    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.what = what
        self.offset = offset


def _tree(data: bytes) -> _Node:
    parser = expat.ParserCreate()
    stack: list[_Node] = []
    roots: list[_Node] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        node = _Node(tag, attrs, parser.CurrentByteIndex)
        if stack:
            stack[-1].children.append(node)
        else:
            roots.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(text: str) -> None:
        if stack:
            stack[-1].text.append(text)

    def doctype(*_args: object) -> None:
        # A DOCTYPE is the only way to define entities; refusing it refuses them all.
        raise _Refused("DOCTYPE declarations are not allowed", parser.CurrentByteIndex)

    def entity(*_args: object) -> None:  # pragma: no cover - needs a DOCTYPE first
        raise _Refused("entity declarations are not allowed", parser.CurrentByteIndex)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
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
    if not roots:  # pragma: no cover - expat reports "no element found" first
        raise StructureError("no root element", offset=0, expected="<device> or <Default>")
    return roots[0]


def _int(node: _Node | None, what: str, default: int) -> int:
    if node is None or node.value == "":
        return default
    text = node.value
    if not text.isdigit() or len(text) > 9:
        raise ValueFormatError(
            f"{what} is {text[:40]!r}", offset=node.offset, expected=f"a decimal number for {what}"
        )
    return int(text)


def _port(node: _Node | None, what: str, default: int) -> int:
    value = _int(node, what, default)
    if not 0 < value < 65536:
        raise ValueFormatError(
            f"{what} {value} is out of range",
            offset=0 if node is None else node.offset,
            expected="a port from 1 to 65535",
        )
    return value


def _bool(node: _Node | None, what: str, default: bool) -> bool:
    if node is None or node.value == "":
        return default
    text = node.value.lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueFormatError(
        f"{what} is {node.value[:40]!r}", offset=node.offset, expected="true or false"
    )


def _optional(node: _Node | None) -> str | None:
    if node is None or node.value == "":
        return None
    return node.value


def _priority(node: _Node, index: int) -> tuple[int, int]:
    text = node.attrs.get("priority", "")
    if text == "":
        return (index, index)
    if not text.isdigit() or len(text) > 9:
        raise ValueFormatError(
            f"priority is {text[:40]!r}", offset=node.offset, expected="a decimal priority"
        )
    return (int(text), index)


def _members(parent: _Node | None) -> list[_Node]:
    if parent is None:
        return []
    members = parent.child("members")
    if members is None:
        return []
    found = members.all("member")
    keyed = sorted((_priority(node, i), node) for i, node in enumerate(found))
    return [node for _, node in keyed]


def _path(node: _Node | None, *tags: str) -> _Node | None:
    for tag in tags:
        if node is None:
            return None
        node = node.child(tag)
    return node


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
    root = _tree(data)
    if root.tag not in ("device", "Default"):
        raise StructureError(
            f"root element <{root.tag[:40]}>", offset=root.offset, expected="<device> or <Default>"
        )
    callmanagers: list[tuple[str, int, int]] = []
    group = _path(root, "devicePool", "callManagerGroup")
    for member in _members(group):
        cm = member.child("callManager")
        host = _optional(_path(cm, "processNodeName")) or _optional(_path(cm, "name"))
        if host is None:
            raise StructureError(
                "call manager member without a host",
                offset=member.offset,
                expected="<processNodeName> or <name>",
            )
        ports = _path(cm, "ports")
        callmanagers.append(
            (
                host,
                _port(_path(ports, "sipPort"), "sipPort", SIP_PORT),
                _port(_path(ports, "securedSipPort"), "securedSipPort", SIP_TLS_PORT),
            )
        )
    tvs: list[tuple[str, int]] = []
    for member in _members(root.child("TVS")):
        host = _optional(member.child("address"))
        if host is None:
            raise StructureError(
                "TVS member without an address", offset=member.offset, expected="<address>"
            )
        tvs.append((host, _port(member.child("port"), "TVS port", TVS_PORT)))
    tftp: list[str] = []
    servers = root.child("tftpServers")
    if servers is not None:
        ordered = sorted((_priority(n, i), n) for i, n in enumerate(servers.all("server")))
        tftp = [node.value for _, node in ordered if node.value]
    line = _path(root, "sipProfile", "sipLines", "line")
    capf = _path(root, "capfList", "capf")
    mode = _int(root.child("deviceSecurityMode"), "deviceSecurityMode", 1)
    if mode not in (1, 2, 3):
        node = root.child("deviceSecurityMode")
        raise ValueFormatError(
            f"deviceSecurityMode {mode}",
            offset=0 if node is None else node.offset,
            expected="1 (non-secure), 2 (authenticated) or 3 (encrypted)",
        )
    mac = _optional(root.child("macAddress"))
    if mac is not None:
        mac = mac.upper()
        if not _MAC.fullmatch(mac):
            node = root.child("macAddress")
            raise ValueFormatError(
                f"macAddress {mac[:40]!r}",
                offset=0 if node is None else node.offset,
                expected="12 hex digits",
            )
    return DeviceConfig(
        device_security_mode=mode,
        callmanagers=tuple(callmanagers),
        tvs_members=tuple(tvs),
        tftp_servers=tuple(tftp),
        load_information=(_optional(root.child("loadInformation")) or ""),
        digest_user=_optional(_path(line, "authName")),
        digest_password=_optional(_path(line, "authPassword")),
        encrypted_config=_bool(root.child("encrConfig"), "encrConfig", False),
        full_config=_bool(root.child("fullConfig"), "fullConfig", True),
        cert_hash=_optional(root.child("certHash")),
        capf_host=_optional(_path(capf, "processNodeName")),
        capf_port=_port(_path(capf, "phonePort"), "CAPF port", CAPF_PORT),
        capf_auth_mode=_int(root.child("capfAuthMode"), "capfAuthMode", 0),
        ip_address_mode=_int(root.child("ipAddressMode"), "ipAddressMode", 0),
        mac=mac,
        model=_optional(root.child("model")),
        default=root.tag == "Default",
    )

"""The signed header shared by ITL/CTL ``.tlv``, ``.sgn``, ``.enc.sgn`` and legacy firmware.

Tag numbers, encodings and element orders: trust-file-formats.md section 2. The header runs from
byte 0 to the offset stored in tag 2 (which counts the signature and the padding); records or
the payload follow it.

Why this module is longer than 600 lines: its three value classes are written out as slotted
classes (``phone.formats.frozen``: no dataclasses on the CLI's start-up path), and the builder
types the header it lays out with the parser's own checks (``_typed_layout`` ends in
``_typed_header``), so the parser and the builder of one layout stay side by side.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from enum import IntEnum

from cryptography.hazmat.primitives import hashes

from phone.errors import LengthError, StructureError, TruncatedError, ValueFormatError
from phone.formats.frozen import Frozen
from phone.formats.tlv import (
    PADDING,
    Element,
    container,
    cstring,
    decode_cstring,
    encode_all,
    find,
    leaf,
    read_element,
    u8,
    u16,
    u32,
)


class Tag(IntEnum):
    """Header tags (section 2; 16-27 section 8)."""

    VERSION = 1
    HEADER_LENGTH = 2
    SIGNER_INFO = 3
    SIGNER_NAME = 4
    SERIAL_NUMBER = 5
    ISSUER_NAME = 6
    SIGNATURE_INFO = 7
    DIGEST_ALGORITHM = 8
    SIGNATURE_ALGORITHM_INFO = 9
    SIGNATURE_ALGORITHM = 10
    SIGNATURE_MODULUS = 11
    SIGNATURE = 12
    PADDING = 13
    FILENAME = 14
    TIMESTAMP = 15
    ENCRYPTION_INFO = 16
    IV_INFO = 17
    IV_UNKNOWN = 18
    IV = 19
    PADDING_COUNT = 20
    KEY_INFO = 21
    KEY_UNKNOWN = 22
    KEY_SIZE = 23
    KEY_ALGORITHM = 24
    ENCRYPTED_KEY = 25
    PLAINTEXT_DIGEST_ALGORITHM = 26
    PLAINTEXT_DIGEST = 27
    SIGNER_VERSION = 28


HEADER_CONTAINERS = frozenset(
    {Tag.SIGNER_INFO, Tag.SIGNATURE_INFO, Tag.SIGNATURE_ALGORITHM_INFO}
    | {Tag.ENCRYPTION_INFO, Tag.IV_INFO, Tag.KEY_INFO}
)

# Tags that may appear once at the top level of a header; a second copy is ambiguous (which
# signature is the real one?) and is refused rather than guessed.
_UNIQUE_TOP = frozenset(
    {
        Tag.VERSION,
        Tag.HEADER_LENGTH,
        Tag.SIGNER_INFO,
        Tag.SIGNATURE_INFO,
        Tag.SIGNATURE,
        Tag.FILENAME,
        Tag.TIMESTAMP,
        Tag.ENCRYPTION_INFO,
        Tag.PLAINTEXT_DIGEST_ALGORITHM,
        Tag.PLAINTEXT_DIGEST,
        Tag.SIGNER_VERSION,
    }
)

MODULUS_SIZES = (64, 128, 256, 512)  # tag 11 is an index into this table (section 2)
RSA_PKCS1 = 0  # tag 10: the only signature algorithm ever seen


class Digest(IntEnum):
    """Digest codes of tag 8 and tag 26 (section 2, section 6)."""

    SHA1 = 1
    SHA256 = 2
    SHA512 = 3

    @property
    def label(self) -> str:
        """The name phones and ``show itl`` print: "SHA-1", "SHA-256", "SHA-512"."""
        return {Digest.SHA1: "SHA-1", Digest.SHA256: "SHA-256", Digest.SHA512: "SHA-512"}[self]

    def algorithm(self) -> hashes.HashAlgorithm:
        """The cryptography hash object for this code."""
        if self is Digest.SHA1:
            return hashes.SHA1()
        if self is Digest.SHA256:
            return hashes.SHA256()
        return hashes.SHA512()

    @classmethod
    def parse(cls, label: str) -> Digest:
        """Accept "sha1", "SHA-1", "sha512", ... as typed by a person."""
        key = label.upper().replace("-", "").replace("_", "")
        for digest in cls:
            if digest.name == key:
                return digest
        raise ValueError(f"unknown digest {label!r}; use sha1, sha256 or sha512")


def digest_label(code: int) -> str:
    """Label of a digest code, or ``"unknown(N)"`` for a code no source describes."""
    try:
        return Digest(code).label
    except ValueError:
        return f"unknown({code})"


_set = object.__setattr__  # how a frozen value sets its own fields (phone.formats.frozen)


class EncryptionInfo(Frozen):
    """The ``.enc.sgn`` encryption block (section 8, [C1])."""

    _fields = (
        "iv",
        "padding_count",
        "key_bits",
        "key_algorithm",
        "encrypted_key",
        "digest_code",
        "plaintext_digest",
    )
    __slots__ = _fields
    _compare = _fields
    _repr = _fields
    iv: bytes
    padding_count: int
    key_bits: int
    key_algorithm: int
    encrypted_key: bytes
    digest_code: int
    plaintext_digest: bytes

    def __init__(  # noqa: PLR0917 - a dataclass's positional order, kept
        self,
        iv: bytes,
        padding_count: int,
        key_bits: int,
        key_algorithm: int,
        encrypted_key: bytes,
        digest_code: int,
        plaintext_digest: bytes,
    ) -> None:
        _set(self, "iv", iv)
        _set(self, "padding_count", padding_count)
        _set(self, "key_bits", key_bits)
        _set(self, "key_algorithm", key_algorithm)
        _set(self, "encrypted_key", encrypted_key)
        _set(self, "digest_code", digest_code)
        _set(self, "plaintext_digest", plaintext_digest)


class Header(Frozen):
    """A parsed or built header. ``elements`` is authoritative for encoding; the other fields
    are typed views of it."""

    _fields = (
        "elements",
        "version",
        "length",
        "signer_name",
        "signer_serial",
        "signer_issuer",
        "digest_code",
        "signature_algorithm",
        "modulus_index",
        "signature",
        "filename",
        "timestamp",
        "signer_version",
        "encryption",
        "offsets",
        "raw",
    )
    __slots__ = _fields
    _compare = _fields[:-2]  # not offsets and raw
    _repr = _compare
    elements: tuple[Element, ...]
    version: tuple[int, int]
    length: int
    signer_name: str
    signer_serial: bytes
    signer_issuer: str
    digest_code: int
    signature_algorithm: int
    modulus_index: int
    signature: bytes
    filename: str
    timestamp: int | None
    signer_version: tuple[int, int] | None
    encryption: EncryptionInfo | None
    offsets: dict[int, int]
    # The header's bytes as parsed: encoding a parsed header is then free. Parsing guarantees
    # they equal encode_all(elements) (byte-exact round trip).
    raw: bytes

    def __init__(  # noqa: PLR0917 - a dataclass's positional order, kept
        self,
        elements: tuple[Element, ...],
        version: tuple[int, int],
        length: int,
        signer_name: str,
        signer_serial: bytes,
        signer_issuer: str,
        digest_code: int,
        signature_algorithm: int,
        modulus_index: int,
        signature: bytes,
        filename: str,
        timestamp: int | None,
        signer_version: tuple[int, int] | None,
        encryption: EncryptionInfo | None = None,
        offsets: dict[int, int] | None = None,
        raw: bytes = b"",
    ) -> None:
        _set(self, "elements", elements)
        _set(self, "version", version)
        _set(self, "length", length)
        _set(self, "signer_name", signer_name)
        _set(self, "signer_serial", signer_serial)
        _set(self, "signer_issuer", signer_issuer)
        _set(self, "digest_code", digest_code)
        _set(self, "signature_algorithm", signature_algorithm)
        _set(self, "modulus_index", modulus_index)
        _set(self, "signature", signature)
        _set(self, "filename", filename)
        _set(self, "timestamp", timestamp)
        _set(self, "signer_version", signer_version)
        _set(self, "encryption", encryption)
        _set(self, "offsets", {} if offsets is None else offsets)
        _set(self, "raw", raw)

    @property
    def digest(self) -> Digest | None:
        """The digest of tag 8, or None for a code no source describes."""
        try:
            return Digest(self.digest_code)
        except ValueError:
            return None

    @property
    def version_text(self) -> str:
        """Header version as "major.minor"."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def serial_hex(self) -> str:
        """Signer serial as lowercase hex (the form ``show itl`` and the JSON output use)."""
        return self.signer_serial.hex()

    def encode(self) -> bytes:
        """The header bytes exactly as they appear in the file."""
        return self.raw or encode_all(self.elements)

    def encode_unsigned(self) -> bytes:
        """The header minus the signature element: the header's part of the signed bytes."""
        at = self.offsets.get(Tag.SIGNATURE)
        if self.raw and at is not None:
            return self.raw[:at] + self.raw[at + 3 + len(self.signature) :]
        return encode_all(e for e in self.elements if e.tag != Tag.SIGNATURE or e.single_byte)


# --- parsing ---------------------------------------------------------------------------------


_HEADER_LENGTH_TAG = int(Tag.HEADER_LENGTH)  # a plain int: compared once per element


def parse_header(data: bytes) -> Header:
    """Parse the header at the start of ``data``; the rest of ``data`` is not looked at."""
    if not data:
        raise TruncatedError("file is empty", offset=0, expected="a header version element")
    elements: list[Element] = []
    offsets: dict[int, int] = {}
    first: dict[int, Element] = {}  # the first top-level element of each tag (padding aside)
    header_end: int | None = None
    pos = 0
    size = len(data)
    while header_end is None or pos < header_end:
        if pos >= size:
            raise TruncatedError(
                "file ends before the header does", offset=pos, expected="more header elements"
            )
        if header_end is None and pos > 0xFFFF:
            # Tag 2 is a u16, so a header whose length element starts past 65535 cannot exist.
            raise StructureError(
                "no header length element in the first 65535 bytes",
                offset=pos,
                expected="tag 2 (header length) near the start",
            )
        limit = size if header_end is None else header_end
        start = pos
        element, pos = read_element(data, pos, limit, containers=HEADER_CONTAINERS, padding=True)
        elements.append(element)
        if element.single_byte:
            continue
        tag = element.tag
        if tag in offsets:
            if tag in _UNIQUE_TOP:
                raise StructureError(
                    f"tag {tag} appears twice in the header",
                    offset=start,
                    expected="each header field once",
                )
        else:
            offsets[tag] = start
            first[tag] = element
        if tag == _HEADER_LENGTH_TAG:
            header_end = _header_length(element, start, pos, size)
    return _typed_header(tuple(elements), header_end, offsets, bytes(data[:pos]), first)


def _header_length(element: Element, start: int, pos: int, size: int) -> int:
    if len(element.value) != 2:
        raise ValueFormatError(
            f"header length element holds {len(element.value)} bytes",
            offset=start,
            expected="a 2-byte header length",
        )
    length = int.from_bytes(element.value, "big")
    if length < pos:
        raise LengthError(
            f"header length {length} ends before the header length element itself",
            offset=start,
            expected=f"a header length of at least {pos}",
        )
    if length > size:
        raise TruncatedError(
            f"header length {length} is past the end of the {size}-byte file",
            offset=start,
            expected=f"a header length of at most {size}",
        )
    return length


def _require(elements: Sequence[Element], tag: Tag, offset: int, what: str) -> Element:
    element = find(elements, tag)
    if element is None:
        raise StructureError(f"no {what} (tag {int(tag)})", offset=offset, expected=what)
    return element


# Whether an element is a container is decided by its tag alone: the parser reads every element
# whose tag is in HEADER_CONTAINERS as a container and every other one as a leaf (and
# layout_header builds the same shapes). So an element found by a container tag always has
# children and one found by another tag always has a value: the typed view needs no check of
# its own for either (a container where a value belongs cannot come from any bytes).


def _children(element: Element) -> tuple[Element, ...]:
    """The children of ``element``, found by a tag of HEADER_CONTAINERS."""
    children = element.children
    assert children is not None
    return children


def _fixed(element: Element, size: int, offset: int, what: str) -> bytes:
    value = element.value
    if len(value) != size:
        raise ValueFormatError(
            f"{what} (tag {element.tag}) holds {len(value)} bytes",
            offset=offset,
            expected=f"{size} bytes",
        )
    return value


def _require_top(first: dict[int, Element], tag: Tag, what: str) -> Element:
    """:func:`_require` on the top level, from the parse loop's first-element-by-tag map
    (the same element: find() returns the first non-padding element with the tag); a missing
    top-level element is reported at byte 0, the start of the header."""
    element = first.get(tag)
    if element is None:
        raise StructureError(f"no {what} (tag {int(tag)})", offset=0, expected=what)
    return element


def _typed_header(
    elements: tuple[Element, ...],
    length: int | None,
    offsets: dict[int, int],
    raw: bytes,
    first: dict[int, Element],
) -> Header:
    assert length is not None  # the parse loop only ends once tag 2 was read
    # offsets holds the start of the first top-level element of each tag, as first does: an
    # element _require_top returned has its offset there.
    version_el = _require_top(first, Tag.VERSION, "header version")
    version = _fixed(version_el, 2, offsets[Tag.VERSION], "header version")

    signer = _children(_require_top(first, Tag.SIGNER_INFO, "signer info container"))
    signer_at = offsets[Tag.SIGNER_INFO]
    name = _require(signer, Tag.SIGNER_NAME, signer_at, "signer name").value
    serial = _require(signer, Tag.SERIAL_NUMBER, signer_at, "signer serial number").value
    issuer = _require(signer, Tag.ISSUER_NAME, signer_at, "signer CA name").value
    if not serial:
        raise ValueFormatError(
            "signer serial number is empty", offset=signer_at, expected="at least one byte"
        )

    info = _children(_require_top(first, Tag.SIGNATURE_INFO, "signature info container"))
    info_at = offsets[Tag.SIGNATURE_INFO]
    digest = _fixed(
        _require(info, Tag.DIGEST_ALGORITHM, info_at, "digest algorithm"),
        1,
        info_at,
        "digest algorithm",
    )
    alg_info = _children(
        _require(info, Tag.SIGNATURE_ALGORITHM_INFO, info_at, "signature algorithm info")
    )
    algorithm = _fixed(
        _require(alg_info, Tag.SIGNATURE_ALGORITHM, info_at, "signature algorithm"),
        1,
        info_at,
        "signature algorithm",
    )
    modulus = _fixed(
        _require(alg_info, Tag.SIGNATURE_MODULUS, info_at, "signature modulus"),
        1,
        info_at,
        "signature modulus",
    )

    signature = _require_top(first, Tag.SIGNATURE, "signature").value
    if not signature:
        raise LengthError(
            "signature element is empty", offset=offsets[Tag.SIGNATURE], expected="signature bytes"
        )

    filename = decode_cstring(_require_top(first, Tag.FILENAME, "file name").value)

    timestamp: int | None = None
    ts_el = first.get(Tag.TIMESTAMP)
    if ts_el is not None:
        timestamp = int.from_bytes(_fixed(ts_el, 4, offsets[Tag.TIMESTAMP], "timestamp"), "big")

    signer_version: tuple[int, int] | None = None
    sv_el = first.get(Tag.SIGNER_VERSION)
    if sv_el is not None:
        sv = _fixed(sv_el, 2, offsets[Tag.SIGNER_VERSION], "signer version")
        signer_version = (sv[0], sv[1])

    encryption_el = first.get(Tag.ENCRYPTION_INFO)
    return Header(
        elements=elements,
        version=(version[0], version[1]),
        length=length,
        signer_name=decode_cstring(name),
        signer_serial=serial,
        signer_issuer=decode_cstring(issuer),
        digest_code=digest[0],
        signature_algorithm=algorithm[0],
        modulus_index=modulus[0],
        signature=signature,
        filename=filename,
        timestamp=timestamp,
        signer_version=signer_version,
        encryption=(
            None if encryption_el is None else _encryption(encryption_el, elements, offsets)
        ),
        offsets=offsets,
        raw=raw,
    )


def _encryption(
    block: Element,
    elements: Sequence[Element],
    offsets: dict[int, int],
) -> EncryptionInfo:
    """The encryption block ``block`` (tag 16) and tags 26 and 27 of the top level. Every
    problem inside the block, or a missing tag 26 or 27, is reported at the block."""
    at = offsets[Tag.ENCRYPTION_INFO]
    children = _children(block)
    iv_info = _children(_require(children, Tag.IV_INFO, at, "IV info"))
    key_info = _children(_require(children, Tag.KEY_INFO, at, "key info"))
    iv = _fixed(_require(iv_info, Tag.IV, at, "IV"), 16, at, "IV")
    pad = _fixed(_require(iv_info, Tag.PADDING_COUNT, at, "padding count"), 2, at, "padding count")
    bits = _fixed(_require(key_info, Tag.KEY_SIZE, at, "key size"), 2, at, "key size")
    alg = _fixed(_require(key_info, Tag.KEY_ALGORITHM, at, "key algorithm"), 1, at, "key algorithm")
    key = _require(key_info, Tag.ENCRYPTED_KEY, at, "encrypted key").value
    dalg = _fixed(
        _require(elements, Tag.PLAINTEXT_DIGEST_ALGORITHM, at, "plaintext digest algorithm"),
        1,
        offsets[Tag.PLAINTEXT_DIGEST_ALGORITHM],
        "plaintext digest algorithm",
    )
    digest = _require(elements, Tag.PLAINTEXT_DIGEST, at, "plaintext digest").value
    return EncryptionInfo(
        iv=iv,
        padding_count=int.from_bytes(pad, "big"),
        key_bits=int.from_bytes(bits, "big"),
        key_algorithm=alg[0],
        encrypted_key=key,
        digest_code=dalg[0],
        plaintext_digest=digest,
    )


# --- building --------------------------------------------------------------------------------


class HeaderSpec(Frozen):
    """What a builder needs to lay out a header the way CUCM writes it."""

    _fields = (
        "version",
        "signer_name",
        "signer_serial",
        "signer_issuer",
        "digest",
        "modulus_bytes",
        "filename",
        "timestamp",
        "signer_version",
        "extra",
    )
    __slots__ = _fields
    _compare = _fields
    _repr = _fields
    version: tuple[int, int]
    signer_name: str
    signer_serial: bytes
    signer_issuer: str
    digest: Digest
    modulus_bytes: int
    filename: str
    timestamp: int | None
    signer_version: tuple[int, int] | None
    extra: tuple[Element, ...]  # e.g. the encryption block, placed after the timestamp

    def __init__(  # noqa: PLR0917 - a dataclass's positional order, kept
        self,
        version: tuple[int, int],
        signer_name: str,
        signer_serial: bytes,
        signer_issuer: str,
        digest: Digest,
        modulus_bytes: int,
        filename: str,
        timestamp: int | None,
        signer_version: tuple[int, int] | None = None,
        extra: tuple[Element, ...] = (),
    ) -> None:
        _set(self, "version", version)
        _set(self, "signer_name", signer_name)
        _set(self, "signer_serial", signer_serial)
        _set(self, "signer_issuer", signer_issuer)
        _set(self, "digest", digest)
        _set(self, "modulus_bytes", modulus_bytes)
        _set(self, "filename", filename)
        _set(self, "timestamp", timestamp)
        _set(self, "signer_version", signer_version)
        _set(self, "extra", extra)


def layout_header(spec: HeaderSpec, signature: bytes) -> tuple[Element, ...]:
    """Lay out header elements in CUCM order (1, 2, 3{4,5,6}, 7{8,9{10,11}}, 12, 14, 15, pad).

    The header length (tag 2) and the padding are computed here: the length counts the signature
    element and the padding, and the padding makes it a multiple of 4 (section 3, [C2]). Pass a
    zero-filled ``signature`` of the final size to get the bytes that will be signed.
    """
    if spec.modulus_bytes not in MODULUS_SIZES:
        raise ValueError(f"no modulus index for a {spec.modulus_bytes}-byte signature")
    if len(signature) != spec.modulus_bytes:
        raise ValueError("signature length does not match the signer's modulus")
    body: list[Element] = [
        _signer_info(spec.signer_name, spec.signer_serial, spec.signer_issuer),
        _signature_info(spec.digest, spec.modulus_bytes),
        leaf(Tag.SIGNATURE, signature),
        leaf(Tag.FILENAME, cstring(spec.filename)),
    ]
    if spec.timestamp is not None:
        body.append(leaf(Tag.TIMESTAMP, u32(spec.timestamp)))
    body.extend(spec.extra)
    version = leaf(Tag.VERSION, bytes(spec.version))
    lead: list[Element] = [version]
    signer_version = (
        [leaf(Tag.SIGNER_VERSION, bytes(spec.signer_version))] if spec.signer_version else []
    )
    size = 3 + 2 + 3 + 2 + sum(e.size for e in signer_version) + sum(e.size for e in body)
    padding = (-size) % 4
    lead.append(leaf(Tag.HEADER_LENGTH, u16(size + padding)))
    # certutils puts tag 28 right after tag 2; CUCM writes no tag 28 at all.
    return (*lead, *signer_version, *body, *([PADDING] * padding))


# The two containers that depend only on the signer (a TFTP node signs thousands of configs
# with one key): built once per signer. Elements are immutable, so sharing them is safe.
@functools.lru_cache(maxsize=64)
def _signer_info(name: str, serial: bytes, issuer: str) -> Element:
    return container(
        Tag.SIGNER_INFO,
        (
            leaf(Tag.SIGNER_NAME, cstring(name)),
            leaf(Tag.SERIAL_NUMBER, serial),
            leaf(Tag.ISSUER_NAME, cstring(issuer)),
        ),
    )


@functools.lru_cache(maxsize=64)
def _signature_info(digest: Digest, modulus_bytes: int) -> Element:
    return container(
        Tag.SIGNATURE_INFO,
        (
            leaf(Tag.DIGEST_ALGORITHM, u8(digest)),
            container(
                Tag.SIGNATURE_ALGORITHM_INFO,
                (
                    leaf(Tag.SIGNATURE_ALGORITHM, u8(RSA_PKCS1)),
                    leaf(Tag.SIGNATURE_MODULUS, u8(MODULUS_SIZES.index(modulus_bytes))),
                ),
            ),
        ),
    )


def sign_header(spec: HeaderSpec, body: bytes, sign: Callable[[bytes], bytes]) -> Header:
    """Lay out ``spec``, sign it together with ``body`` (records or payload), return the header.

    The signature covers the header minus the signature element, then ``body`` (section 3);
    ``sign`` maps those bytes to the raw signature of ``spec.modulus_bytes`` bytes.
    """
    placeholder = layout_header(spec, bytes(spec.modulus_bytes))
    # layout_header writes one top-level signature element (the callers' extra elements are
    # the .enc.sgn encryption block, which holds none). The placeholder is encoded once: its
    # encoding with the signature element cut out is what gets signed, and with the real
    # signature element spliced in it is the header. That header is typed as parse_header
    # would type it (see _typed_layout), or by parse_header itself.
    at = next(i for i, e in enumerate(placeholder) if e.tag == Tag.SIGNATURE and not e.single_byte)
    raw = encode_all(placeholder)
    start = sum(e.size for e in placeholder[:at])
    end = start + placeholder[at].size
    signature = sign(raw[:start] + raw[end:] + body)
    element = leaf(Tag.SIGNATURE, signature)
    signed = raw[:start] + element.encode() + raw[end:]
    if spec.extra:
        # Elements from the caller (the .enc.sgn encryption block): typed by parsing.
        return parse_header(signed)
    return _typed_layout((*placeholder[:at], element, *placeholder[at + 1 :]), signed)


def _typed_layout(elements: tuple[Element, ...], raw: bytes) -> Header:
    """The header ``parse_header(raw)`` returns, for ``elements`` laid out by layout_header
    without extra elements and ``raw`` their encoding, without reading the bytes back.

    Such a header holds only what layout_header writes: leaves whose tags are no container
    tags, the signer info and signature info containers, padding bytes, no tag twice, and a
    header length (tag 2) equal to the length of the encoding. Parsing ``raw`` therefore reads
    back ``elements`` themselves, each starting where the sizes before it end; so the offsets
    are those running sizes, and the typed view comes from _typed_header, where the parser
    ends too (with all of its checks). Should the length not add up (a signature of another
    size than the placeholder), the parser decides after all.
    """
    offsets: dict[int, int] = {}
    first: dict[int, Element] = {}
    pos = 0
    for element in elements:
        if not element.single_byte and element.tag not in offsets:
            offsets[element.tag] = pos
            first[element.tag] = element
        pos += element.size
    length = first.get(Tag.HEADER_LENGTH)
    if length is None or pos != len(raw) or int.from_bytes(length.value, "big") != pos:
        return parse_header(raw)
    return _typed_header(elements, pos, offsets, raw, first)

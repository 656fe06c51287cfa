"""The generic element codec every Cisco trust file is made of.

Layout (trust-file-formats.md section 1, [C2]): each element is ``tag (1 byte) + length (u16 BE)
+ value``, except the header padding tag 13, which is a single byte with no length. Some header
tags are *containers*: their length is the byte size of the elements nested right after them.

The codec keeps every element, known or not, in the order found, so that parsing and encoding
reproduce a file byte for byte (foreign element orders, unknown tags and padding included).
A container's length is never stored: it is recomputed from its children, and the parser only
accepts a container whose children fill its announced length exactly, so the two agree.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from phone.errors import LengthError, StructureError, TruncatedError
from phone.formats.frozen import Frozen

PADDING_TAG = 13
MAX_VALUE_LENGTH = 0xFFFF
# Containers nest at most three deep in any known file (tag 16 > 17 > 18); anything deeper is a
# lie in the length fields, not a real file, and refusing it bounds recursion.
MAX_DEPTH = 4

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TAG_LENGTH = struct.Struct(">BH")  # an element's tag and length
_TAG_BYTE = tuple(bytes((tag,)) for tag in range(256))
_new = object.__new__
_set = object.__setattr__  # how a frozen value sets its own fields (phone.formats.frozen)


class Element(Frozen):
    """One TLV element.

    ``children`` is set for containers (their ``value`` is empty); ``single_byte`` marks the header
    padding byte, which has neither length nor value.
    """

    _fields = ("tag", "value", "children", "single_byte", "size")
    __slots__ = _fields
    _compare = ("tag", "value", "children", "single_byte")
    _repr = _compare
    _derived = ("size",)
    tag: int
    value: bytes
    children: tuple[Element, ...] | None
    single_byte: bool
    # The encoded size, computed once: builders and encoders ask for it again and again, and a
    # recursive sum over containers every time was a large part of signing a file.
    size: int

    def __init__(
        self,
        tag: int,
        value: bytes = b"",
        children: tuple[Element, ...] | None = None,
        single_byte: bool = False,
    ) -> None:
        _set(self, "tag", tag)
        _set(self, "value", value)
        _set(self, "children", children)
        _set(self, "single_byte", single_byte)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 0xFF:
            raise ValueError(f"tag {self.tag} does not fit in one byte")
        children = self.children
        if self.single_byte:
            size = 1  # the padding byte: no length, no value
        elif children is None:
            length = len(self.value)
            if length > MAX_VALUE_LENGTH:
                raise ValueError(f"tag {self.tag}: value of {length} bytes exceeds 65535")
            size = 3 + length
        else:
            size = 3 + sum(child.size for child in children)
        _set(self, "size", size)

    def encode(self) -> bytes:
        """Encode this element (and its children) to bytes."""
        pieces: list[bytes] = []
        _encode_into(self, pieces)
        return b"".join(pieces)


PADDING = Element(PADDING_TAG, single_byte=True)


def _parsed_leaf(tag: int, value: bytes) -> Element:
    """``Element(tag, value)`` for the parser, without the checks ``__post_init__`` makes: a
    parsed tag is one byte and a parsed value was announced by a u16, so both always hold.
    Parsing creates every element of every file a phone reads, one call each."""
    element: Element = _new(Element)
    _set(element, "tag", tag)
    _set(element, "value", value)
    _set(element, "children", None)
    _set(element, "single_byte", False)
    _set(element, "size", 3 + len(value))
    return element


def leaf(tag: int, value: bytes) -> Element:
    """A plain element holding ``value``."""
    return Element(tag, value)


def container(tag: int, children: Iterable[Element]) -> Element:
    """A container element holding ``children``."""
    return Element(tag, children=tuple(children))


def encode_all(elements: Iterable[Element]) -> bytes:
    """Encode a sequence of elements back to back."""
    pieces: list[bytes] = []
    for element in elements:
        _encode_into(element, pieces)
    return b"".join(pieces)


def _encode_into(element: Element, pieces: list[bytes]) -> None:
    """Append the encoded pieces of ``element`` (and its children) to ``pieces``, without a
    generator per element: the lab encodes a header of about twenty elements for every file it
    signs. A container holding more than 65535 bytes is refused (its length is a u16)."""
    if element.single_byte:
        pieces.append(_TAG_BYTE[element.tag])
        return
    children = element.children
    if children is not None:
        inner = element.size - 3
        if inner > MAX_VALUE_LENGTH:
            raise ValueError(f"container {element.tag} holds {inner} bytes, more than 65535")
        pieces.append(_TAG_LENGTH.pack(element.tag, inner))
        for child in children:
            _encode_into(child, pieces)
        return
    pieces.append(_TAG_LENGTH.pack(element.tag, len(element.value)))
    pieces.append(element.value)


def find(elements: Iterable[Element], tag: int) -> Element | None:
    """The first element with ``tag`` in ``elements``, or None."""
    for element in elements:
        if element.tag == tag and not element.single_byte:
            return element
    return None


def read_element(
    data: bytes,
    pos: int,
    end: int,
    *,
    containers: frozenset[int],
    padding: bool,
    depth: int = 0,
) -> tuple[Element, int]:
    """Read one element starting at ``pos`` that must end by ``end``; return it and the next pos.

    ``end`` is the end of the enclosing region (the file, the header, a record or a container).
    """
    tag = data[pos]
    if padding and tag == PADDING_TAG:
        return PADDING, pos + 1
    if pos + 3 > end:
        _overrun(data, pos, end, "a 3-byte tag and length", tag)
    (length,) = _U16.unpack_from(data, pos + 1)
    start = pos + 3
    stop = start + length
    if stop > end:
        _overrun(data, pos, end, f"{length} value bytes for tag {tag}", tag)
    if tag in containers:
        if depth >= MAX_DEPTH:
            raise StructureError(
                f"containers nested more than {MAX_DEPTH} deep",
                offset=pos,
                expected="at most 4 levels of containers",
            )
        key = (tag, bytes(data[start:stop]), depth, containers, padding)
        element = _CONTAINERS.get(key)
        if element is None:
            children = parse_elements(
                data, start, stop, containers=containers, padding=padding, depth=depth + 1
            )
            element = Element(tag, children=children)
            if len(_CONTAINERS) >= _MAX_CONTAINERS:
                _CONTAINERS.clear()
            _CONTAINERS[key] = element
        return element, stop
    return _parsed_leaf(tag, bytes(data[start:stop])), stop


# Containers parsed, by (tag, bytes, depth, container tags, padding): a header's signer-info and
# signature-info containers are the same bytes in every file one key signs (a fleet's phones
# read thousands), and parsing them is a pure function of those: a parsed element holds no
# offset and is immutable, and only a container that parsed is kept (an error is raised again,
# with its offset, by parsing again). So each is parsed once.
_MAX_CONTAINERS = 256
_CONTAINERS: dict[tuple[int, bytes, int, frozenset[int], bool], Element] = {}


def parse_elements(
    data: bytes,
    start: int,
    end: int,
    *,
    containers: frozenset[int] = frozenset(),
    padding: bool = False,
    depth: int = 0,
) -> tuple[Element, ...]:
    """Parse every element in ``data[start:end]``; they must fill the region exactly."""
    out: list[Element] = []
    pos = start
    while pos < end:
        element, pos = read_element(
            data, pos, end, containers=containers, padding=padding, depth=depth
        )
        out.append(element)
    return tuple(out)


def _overrun(data: bytes, pos: int, end: int, expected: str, tag: int) -> None:
    # Running past the end of the *file* is a truncation; running past the end of an enclosing
    # element while the file goes on means a length field lies.
    if end >= len(data):
        raise TruncatedError(
            f"file ends inside element with tag {tag}", offset=pos, expected=expected
        )
    raise LengthError(
        f"element with tag {tag} runs past the end of its enclosing region at byte {end}",
        offset=pos,
        expected=expected,
    )


# --- value helpers ---------------------------------------------------------------------------


def u8(value: int) -> bytes:
    """Encode one unsigned byte."""
    return bytes((value,))


def u16(value: int) -> bytes:
    """Encode an unsigned big-endian 16-bit integer."""
    return _U16.pack(value)


def u32(value: int) -> bytes:
    """Encode an unsigned big-endian 32-bit integer."""
    return _U32.pack(value)


def cstring(text: str) -> bytes:
    """Encode ``text`` as the NUL-terminated ASCII the files use."""
    return text.encode("ascii") + b"\0"


def decode_cstring(value: bytes) -> str:
    """Decode a NUL-terminated string; tolerate a missing NUL and non-ASCII bytes.

    Real files always end the string with one NUL; hand-made ones sometimes do not. Decoding as
    latin-1 never fails, so an odd byte shows up in the output instead of hiding the whole file.
    """
    if value.endswith(b"\0"):
        value = value[:-1]
    return value.decode("latin-1")

"""The codecs' value classes behave as the frozen dataclasses they were (issue 17 item 4).

``Element``, ``EncryptionInfo``, ``Header``, ``HeaderSpec``, ``Signer``, ``Record``,
``TrustList`` and ``SelfCheck`` are plain slotted classes over
:class:`phone.formats.frozen.Frozen`, so that ``vphone tlv show`` does not import
:mod:`dataclasses`. The texts and values below are what the ``@dataclass(frozen=True)``
versions gave (printed by the tree before the change), word for word.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from phone.formats.frozen import Frozen, FrozenInstanceError
from phone.formats.header import Digest, EncryptionInfo, Header, HeaderSpec
from phone.formats.tlv import PADDING, Element
from phone.formats.trustlist import Record, SelfCheck, TrustList

LEAF = Element(4, b"CN=a\x00")


@pytest.fixture(autouse=True)
def _no_dataclass_fields_yet() -> None:
    """Start each test as a fresh process does: no class has made its ``__dataclass_fields__``
    yet (they are kept on the class once made; mutation testing forks its workers from a
    process that ran every test once)."""
    todo = list(Frozen.__subclasses__())
    while todo:
        klass = todo.pop()
        todo += klass.__subclasses__()
        if "__dataclass_fields__" in vars(klass):
            type.__delattr__(klass, "__dataclass_fields__")


LEAF_TEXT = "Element(tag=4, value=b'CN=a\\x00', children=None, single_byte=False)"


def _header(**changes: object) -> Header:
    fields: dict[str, object] = {
        "elements": (LEAF,),
        "version": (1, 2),
        "length": 8,
        "signer_name": "CN=s",
        "signer_serial": b"\x01",
        "signer_issuer": "CN=i",
        "digest_code": 1,
        "signature_algorithm": 0,
        "modulus_index": 2,
        "signature": b"sig",
        "filename": "ITLFile.tlv",
        "timestamp": None,
        "signer_version": (1, 0),
        "offsets": {1: 0},
        "raw": b"x",
    }
    return Header(**{**fields, **changes})  # type: ignore[arg-type]


def _record(**changes: object) -> Record:
    fields: dict[str, object] = {
        "elements": (LEAF,),
        "role": 0,
        "dns_name": "h",
        "subject": "CN=s",
        "issuer": "CN=i",
        "serial": b"\x01",
        "public_key": b"pk",
        "certificate_der": b"der",
        "ip": b"\x0a\x00\x00\x01",
        "offset": 388,
        "raw": b"raw",
    }
    return Record(**{**fields, **changes})  # type: ignore[arg-type]


HEADER_TEXT = (
    f"Header(elements=({LEAF_TEXT},), version=(1, 2), length=8, signer_name='CN=s', "
    "signer_serial=b'\\x01', signer_issuer='CN=i', digest_code=1, signature_algorithm=0, "
    "modulus_index=2, signature=b'sig', filename='ITLFile.tlv', timestamp=None, "
    "signer_version=(1, 0), encryption=None)"
)
RECORD_TEXT = (
    f"Record(elements=({LEAF_TEXT},), role=0, dns_name='h', subject='CN=s', issuer='CN=i', "
    "serial=b'\\x01', public_key=b'pk', certificate_der=b'der', ip=b'\\n\\x00\\x00\\x01', "
    "offset=388)"
)


# --- repr: the dataclass's text, without the fields it hid ------------------------------------


def test_repr_is_the_dataclass_text() -> None:
    assert repr(LEAF) == LEAF_TEXT
    assert repr(Element(3, children=(LEAF,))) == (
        f"Element(tag=3, value=b'', children=({LEAF_TEXT},), single_byte=False)"
    )
    assert repr(PADDING) == "Element(tag=13, value=b'', children=None, single_byte=True)"
    assert repr(EncryptionInfo(b"\x00\x00", 4, 128, 1, b"k", 2, b"d")) == (
        "EncryptionInfo(iv=b'\\x00\\x00', padding_count=4, key_bits=128, key_algorithm=1, "
        "encrypted_key=b'k', digest_code=2, plaintext_digest=b'd')"
    )
    spec = HeaderSpec((1, 2), "CN=s", b"\x01", "CN=i", Digest.SHA1, 128, "ITLFile.tlv", 1700000000)
    assert repr(spec) == (
        "HeaderSpec(version=(1, 2), signer_name='CN=s', signer_serial=b'\\x01', "
        "signer_issuer='CN=i', digest=<Digest.SHA1: 1>, modulus_bytes=128, "
        "filename='ITLFile.tlv', timestamp=1700000000, signer_version=None, extra=())"
    )
    assert repr(_header()) == HEADER_TEXT  # no offsets, no raw
    assert repr(_record()) == RECORD_TEXT  # the offset, not the raw bytes
    assert repr(SelfCheck(None, None, "no")) == "SelfCheck(valid=None, record=None, reason='no')"
    both = TrustList(_header(), (_record(),))
    assert repr(both) == f"TrustList(header={HEADER_TEXT}, records=({RECORD_TEXT},))"


# --- equality and hash: the compared fields only ------------------------------------------------


def test_equal_values_are_equal_and_hash_alike() -> None:
    assert Element(4, b"CN=a\x00") == LEAF
    assert hash(Element(4, b"CN=a\x00")) == hash(LEAF)
    # The hash is that of the compared fields' tuple, as a frozen dataclass's.
    assert hash(LEAF) == hash((4, b"CN=a\x00", None, False))
    assert hash(SelfCheck(True, None, "ok")) == hash((True, None, "ok"))
    assert len({LEAF, Element(4, b"CN=a\x00"), PADDING}) == 2


@pytest.mark.parametrize(
    "other",
    [
        Element(5, b"CN=a\x00"),
        Element(4, b"CN=b\x00"),
        Element(4, b"", children=(LEAF,)),
        Element(4, b"CN=a\x00", single_byte=True),
    ],
)
def test_each_compared_field_of_an_element_counts(other: Element) -> None:
    assert other != LEAF
    assert not other == LEAF  # noqa: SIM201 - __eq__ itself, not __ne__


def test_defaults_are_the_dataclass_defaults() -> None:
    header = Header((LEAF,), (1, 2), 8, "CN=s", b"\x01", "CN=i", 1, 0, 2, b"sig", "I", None, None)
    assert (header.encryption, header.offsets, header.raw) == (None, {}, b"")
    assert header.encode() == b"\x04\x00\x05CN=a\x00"
    other = Header((LEAF,), (1, 2), 8, "CN=s", b"\x01", "CN=i", 1, 0, 2, b"sig", "I", None, None)
    assert other.offsets is not header.offsets  # a dict each, as default_factory=dict made
    record = Record((LEAF,), 0, None, None, None, None, None, None, None)
    assert (record.offset, record.raw) == (0, b"")
    assert Element(4) == Element(4, b"", None, False)
    spec = HeaderSpec((1, 2), "CN=s", b"\x01", "CN=i", Digest.SHA1, 128, "I", None)
    assert (spec.signer_version, spec.extra) == (None, ())


def test_offsets_and_raw_bytes_are_not_compared() -> None:
    assert _header(offsets={}, raw=b"") == _header()
    assert hash(_header(offsets={}, raw=b"")) == hash(_header())
    assert _record(offset=0, raw=b"") == _record()
    assert _header(filename="CTLFile.tlv") != _header()
    assert _record(ip=None) != _record()
    assert TrustList(_header(), ()) != TrustList(_header(), (_record(),))
    assert SelfCheck(True, None, "ok") != SelfCheck(False, None, "ok")


def test_another_class_is_never_equal() -> None:
    assert LEAF.__eq__((4, b"CN=a\x00", None, False, 8)) is NotImplemented
    assert LEAF != (4, b"CN=a\x00", None, False)
    assert SelfCheck(True, None, "ok") != TrustList(_header(), ())

    class Other(SelfCheck):
        __slots__ = ()

    assert SelfCheck(True, None, "ok").__eq__(Other(True, None, "ok")) is NotImplemented
    assert Other(True, None, "ok") != SelfCheck(True, None, "ok")


# --- frozen -------------------------------------------------------------------------------------


def test_fields_cannot_be_assigned_or_deleted() -> None:
    with pytest.raises(FrozenInstanceError) as assigned:
        LEAF.tag = 5  # type: ignore[misc]
    assert str(assigned.value) == "cannot assign to field 'tag'"
    assert isinstance(assigned.value, AttributeError)
    with pytest.raises(FrozenInstanceError) as deleted:
        del _record().raw
    assert str(deleted.value) == "cannot delete field 'raw'"
    with pytest.raises(AttributeError):
        _header().anything = 1  # type: ignore[attr-defined]
    assert LEAF.tag == 4


def test_values_have_no_instance_dict() -> None:
    for value in (LEAF, _header(), _record(), SelfCheck(None, None, "no")):
        assert not hasattr(value, "__dict__")


# --- pickle and copy ------------------------------------------------------------------------------


def _pickled(value: object) -> object:
    return pickle.loads(pickle.dumps(value))


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, _pickled])
def test_copies_and_pickles_keep_every_field(clone: Callable[[object], Any]) -> None:
    element = clone(Element(3, children=(LEAF,)))
    assert element == Element(3, children=(LEAF,))
    assert element.size == 3 + 8
    header = clone(_header())
    assert header == _header()
    assert header.offsets == {1: 0}
    assert header.raw == b"x"
    record = clone(_record())
    assert (record.offset, record.raw) == (388, b"raw")
    with pytest.raises(FrozenInstanceError):
        record.role = 1


def test_a_pickled_state_of_another_length_is_refused() -> None:
    element = copy.copy(LEAF)
    with pytest.raises(ValueError, match="zip"):
        element.__setstate__((4, b""))


# --- the dataclasses functions ------------------------------------------------------------------


def test_dataclasses_functions_work_on_the_values() -> None:
    assert dataclasses.is_dataclass(LEAF)
    assert dataclasses.is_dataclass(Header)
    assert [f.name for f in dataclasses.fields(Element)] == [
        "tag",
        "value",
        "children",
        "single_byte",
        "size",
    ]
    size = dataclasses.fields(Element)[-1]
    assert (size.init, size.repr, size.compare) == (False, False, False)
    assert [f.type for f in dataclasses.fields(SelfCheck)] == [
        "bool | None",
        "Record | None",
        "str",
    ]
    flags = {f.name: (f.init, f.repr, f.compare) for f in dataclasses.fields(Record)}
    assert flags["offset"] == (True, True, False)
    assert flags["raw"] == (True, False, False)
    assert flags["role"] == (True, True, True)
    assert len(dataclasses.fields(Header)) == 16
    assert "__dataclass_fields__" in vars(Header)  # made once, then kept on the class
    assert dataclasses.fields(Header) == dataclasses.fields(Header)
    assert dataclasses.astuple(LEAF) == (4, b"CN=a\x00", None, False, 8)
    assert dataclasses.asdict(Element(3, children=(LEAF,))) == {
        "tag": 3,
        "value": b"",
        "children": (
            {"tag": 4, "value": b"CN=a\x00", "children": None, "single_byte": False, "size": 8},
        ),
        "single_byte": False,
        "size": 11,
    }


def test_dataclasses_replace_makes_a_new_value_through_init() -> None:
    longer = dataclasses.replace(LEAF, value=b"CN=ab\x00")
    assert longer == Element(4, b"CN=ab\x00")
    assert longer.size == 9  # computed again by __init__
    assert dataclasses.replace(_header(), raw=b"", offsets={}).raw == b""
    with pytest.raises(ValueError, match="field size is declared with init=False"):
        dataclasses.replace(LEAF, size=1)
    with pytest.raises(ValueError, match="tag 256 does not fit in one byte"):
        dataclasses.replace(LEAF, tag=256)


def test_a_subclass_with_a_dict_still_works() -> None:
    class Cached(SelfCheck):
        """As phone.cluster.cluster.CachedSigner: a subclass that caches in its __dict__."""

    value = Cached(True, None, "ok")
    value.__dict__["note"] = 1
    assert value != SelfCheck(True, None, "ok")
    assert repr(value).startswith("test_a_subclass_with_a_dict_still_works.<locals>.Cached(")
    assert dataclasses.is_dataclass(value)
    assert issubclass(Cached, Frozen)

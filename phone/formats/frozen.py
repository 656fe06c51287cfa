"""Immutable value classes for the codecs, without :mod:`dataclasses`.

``vphone tlv show`` should start within 1.5x of ``python -c "import cryptography.x509"`` (issue
17 item 4). Importing :mod:`dataclasses` (which imports ``inspect``, ``ast``, ``dis`` and
``tokenize``) and generating the methods of the eight classes a trust list is made of was about
a quarter of what the command spends beyond that import. The classes on that path (the element,
header, record, trust list, signer and their small companions) are therefore plain slotted
classes over :class:`Frozen`, which gives them what ``@dataclass(frozen=True)`` generated:

* equality over the fields named in ``_compare`` (``NotImplemented`` for another class, as a
  dataclass does) and a hash of the same fields (the tuple a dataclass hashes);
* a repr of the fields named in ``_repr``, in the dataclass's form ``Name(a=1, b=b'')``;
* assignment and deletion refused with :class:`FrozenInstanceError` (an ``AttributeError``,
  with the message a dataclass gives);
* pickling and :mod:`copy` through the fields;
* the functions of :mod:`dataclasses` (``replace``, ``fields``, ``asdict``, ``astuple``,
  ``is_dataclass``): the first time one asks for a class's ``__dataclass_fields__``, they are
  made with :func:`dataclasses.make_dataclass` from the class's fields (without defaults), so
  only a program that uses dataclasses pays for importing it.

A subclass names its fields in ``_fields`` (in the dataclass's field order), which are its
``__slots__``, and declares their types as annotations; it names at least two of them in
``_compare``, those its ``__init__`` computes rather than takes in ``_derived``, and writes its
own ``__init__``, setting each field with ``object.__setattr__`` as a frozen dataclass's
``__init__`` does.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, dataclass_transform

_set = object.__setattr__


class FrozenInstanceError(AttributeError):
    """Assignment to (or deletion of) a field of a frozen value."""


class _DataclassFields:
    """A class's ``__dataclass_fields__``, made when first asked for (see the module)."""

    def __get__(self, instance: object, owner: type[Frozen]) -> dict[str, Any]:
        import dataclasses  # noqa: PLC0415 - whoever asks uses dataclasses: it is imported
        import inspect  # noqa: PLC0415 - and dataclasses imports inspect

        types: dict[str, Any] = {}
        for klass in reversed(owner.__mro__):
            types.update(inspect.get_annotations(klass))
        specs = [
            (
                name,
                types[name],
                dataclasses.field(
                    init=name not in owner._derived,
                    repr=name in owner._repr,
                    compare=name in owner._compare,
                ),
            )
            for name in owner._fields
        ]
        made = dataclasses.make_dataclass(owner.__name__, specs)  # for its fields only
        fields: dict[str, Any] = vars(made)["__dataclass_fields__"]
        type.__setattr__(owner, "__dataclass_fields__", fields)  # made once per class
        return fields


# For the type checker, a subclass is a frozen dataclass with the __init__ it writes (mypy then
# refuses an assignment to a field, or to a name that is no field, as it did for the dataclass).
@dataclass_transform(frozen_default=True)
class Frozen:
    """Base of an immutable value class: see the module's description."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[Any] = _DataclassFields()
    _fields: ClassVar[tuple[str, ...]]
    """The fields, in the order of the dataclass's (and of ``__init__``'s arguments)."""
    _compare: ClassVar[tuple[str, ...]]
    """The fields equality and the hash use (two or more), as a dataclass's ``compare=True``."""
    _repr: ClassVar[tuple[str, ...]]
    """The fields the repr shows, as a dataclass's ``repr=True``."""
    _derived: ClassVar[tuple[str, ...]] = ()
    """The fields ``__init__`` computes instead of taking, as a dataclass's ``init=False``."""
    _key: ClassVar[attrgetter[tuple[object, ...]]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._key = attrgetter(*cls._compare)

    if not TYPE_CHECKING:  # (a __setattr__ would let mypy accept any attribute name)

        def __setattr__(self, name: str, value: object) -> NoReturn:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> NoReturn:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key(self) == self._key(other)

    def __hash__(self) -> int:
        return hash(self._key(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr)
        return f"{self.__class__.__qualname__}({shown})"

    def __getstate__(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self._fields, state, strict=True):
            _set(self, name, value)

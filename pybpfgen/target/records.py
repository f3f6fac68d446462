"""Record classes (:class:`Record`): ``@dataclass`` without its start-up cost.

Part of the small base both packages import (``pybpfgen.target``: import-free BPF facts and these records):
the loader (its parsed objects, plans, results and kernel info structs) and the compiler (the typed IR's node
and type classes, via ``pybpfgen.ir._records``). Such classes declare their fields as annotations and derive from
:class:`Record`, which gives them what ``@dataclass`` would (an ``__init__`` taking the fields in order, a
``__repr__``; value equality; for ``frozen=True`` records immutability and hashing) without
``dataclasses``, which builds each method with ``exec`` and imports ``inspect`` (with ``ast``, ``dis`` and
``tokenize``): ~30 ms at every start of the compiler and ~15 ms of every ``pybpfgen load``.
"""
from __future__ import annotations

TYPE_CHECKING = False  # (typing itself is not imported at run time: the loader's start-up does without it)
if TYPE_CHECKING:
    from typing import Any


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen (immutable, hashable) record."""


_setattr = object.__setattr__


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


# Field defaults: sentinels that Record replaces with a fresh list, dict or set per instance. Typed Any so that a
# field declares its real type (``relocs: list[Relocation] = LIST``).
LIST: Any = object()  # field default: a fresh list per instance
DICT: Any = object()  # field default: a fresh dict per instance
SET: Any = object()  # field default: a fresh set per instance


class Record:
    """Base of record classes: the fields are the class annotations (base classes' first), and a
    class attribute of the same name is the field's default (``LIST``/``DICT``: a fresh one per instance).
    ``frozen=True`` records are immutable and compare and hash by value; ``eq=True`` records compare by value
    and are unhashable (``@dataclass``'s default); the others compare by identity.
    Like ``@dataclass``, without its cost at import time."""

    # (names with a leading underscore are not fields)
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, object]
    _frozen = False

    def __init_subclass__(cls, frozen: bool | None = None, eq: bool | None = None, **kw):
        super().__init_subclass__(**kw)
        if frozen is not None:
            cls._frozen = frozen
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", ()):
                if name not in names and not name.startswith("_"):
                    names.append(name)
        defaults = {}
        for name in names:
            for klass in cls.__mro__:
                if name in klass.__dict__:
                    if not isinstance(klass.__dict__[name], property):
                        defaults[name] = klass.__dict__[name]
                    break
        cls._fields, cls._defaults = tuple(names), defaults
        # the methods are chosen per class, as @dataclass does (set with setattr: to the checker a class's methods
        # are its own definitions)
        methods: dict[str, object] = {}
        if eq and not cls._frozen:
            methods = {"__eq__": _value_eq, "__hash__": None}
        if cls._frozen:
            methods = {"__setattr__": _frozen_setattr, "__delattr__": _frozen_delattr,
                       "__eq__": _value_eq, "__hash__": _value_hash}
        for attr, method in methods.items():
            setattr(cls, attr, method)

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes at most {len(fields)} arguments")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated argument {name!r}")
            values[name] = value
        for name in fields:
            if name in values:
                value = values[name]
            elif name in self._defaults:
                value = self._defaults[name]
                value = [] if value is LIST else {} if value is DICT else set() if value is SET else value
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            _setattr(self, name, value)

    def __repr__(self):
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{self.__class__.__qualname__}({body})"


def _value_eq(self, other):
    if other.__class__ is self.__class__:
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)
    return NotImplemented


def _value_hash(self):
    return hash(tuple(getattr(self, n) for n in self._fields))

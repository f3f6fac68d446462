"""Support for the typed IR's record classes.

The IR's node and type classes are plain classes whose ``__init__``/``__repr__``/``__eq__``/``__hash__``
are written out (with the semantics ``@dataclass`` would generate: value equality and hashing for the
frozen ones, identity for ``eq=False`` ones). Creating ~60 dataclasses cost ~30 ms at every start of
the compiler (``dataclasses`` builds each method with ``exec``); plain classes cost nothing extra.
"""


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen (immutable, hashable) record."""


_FACTORY = object()  # default of a field whose default is a fresh list/dict per instance
_setattr = object.__setattr__


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")

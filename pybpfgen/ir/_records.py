"""The typed IR's record classes derive from :class:`kernel_loader._records.Record` (shared with the loader,
which must not import the compiler)."""
from kernel_loader._records import (  # noqa: F401
    _FACTORY, DICT, LIST, SET, FrozenInstanceError, Record, _frozen_delattr, _frozen_setattr, _setattr)

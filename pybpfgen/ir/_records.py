"""The typed IR's record classes derive from :class:`kernel_loader._records.Record` (shared with the loader,
which must not import the compiler)."""
from typing import Any

from kernel_loader._records import DICT as _DICT, LIST as _LIST, SET as _SET
from kernel_loader._records import FrozenInstanceError, Record  # noqa: F401

# Field defaults: sentinels that Record replaces with a fresh list, dict or set per instance. Typed Any so that a
# field declares its real type (``locals: list[Var] = LIST``).
LIST: Any = _LIST
DICT: Any = _DICT
SET: Any = _SET

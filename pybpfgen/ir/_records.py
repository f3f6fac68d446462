"""The typed IR's record classes derive from :class:`pybpfgen.target.records.Record` (the shared base: the loader
uses it too, and imports nothing of the compiler but ``pybpfgen.target``)."""
from typing import Any

from ..target.records import DICT as _DICT, LIST as _LIST, SET as _SET
from ..target.records import FrozenInstanceError, Record  # noqa: F401

# Field defaults: sentinels that Record replaces with a fresh list, dict or set per instance. Typed Any so that a
# field declares its real type (``locals: list[Var] = LIST``).
LIST: Any = _LIST
DICT: Any = _DICT
SET: Any = _SET

"""The typed IR's record classes derive from :class:`kernel_loader._records.Record` (shared with the loader,
which must not import the compiler)."""
from kernel_loader._records import DICT, LIST, SET, FrozenInstanceError, Record  # noqa: F401

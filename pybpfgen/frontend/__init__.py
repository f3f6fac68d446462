"""Frontend: Python ``ast`` → typed IR (:mod:`pybpfgen.ir`), with located diagnostics."""
from .module import parse_module

__all__ = ["parse_module"]

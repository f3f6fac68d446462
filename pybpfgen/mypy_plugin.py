"""A mypy plugin for pybpfgen DSL modules: ``[mypy] plugins = pybpfgen.mypy_plugin``.

In the DSL, ``u32`` and friends are C integer types with implicit conversions, and ``u32[4]`` is a fixed-size
array, of integers or of structs (``Published[2]``). For a type checker the plugin reads an integer annotation as
``int`` and ``T[N]`` as ``list[T]``, so a DSL module type-checks like the Python it is; the exact widths, ranges and conversions are checked by
``pybpfgen compile``.
"""
from __future__ import annotations

from typing import Callable

from mypy.nodes import TypeInfo
from mypy.plugin import AnalyzeTypeContext, Plugin
from mypy.types import Type

INT_TYPES = frozenset(f"pybpfgen.lang.{n}" for n in ("u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"))


def _int_or_array(ctx: AnalyzeTypeContext) -> Type:
    int_t = ctx.api.named_type("builtins.int", [])
    if ctx.type.args:  # u32[4]
        return ctx.api.named_type("builtins.list", [int_t])
    return int_t


def _struct_or_array(fullname: str) -> Callable[[AnalyzeTypeContext], Type]:
    def analyze(ctx: AnalyzeTypeContext) -> Type:
        struct_t = ctx.api.named_type(fullname, [])
        if ctx.type.args:  # Published[2]
            return ctx.api.named_type("builtins.list", [struct_t])
        return struct_t
    return analyze


class PybpfgenPlugin(Plugin):
    def get_type_analyze_hook(self, fullname: str) -> Callable[[AnalyzeTypeContext], Type] | None:
        if fullname in INT_TYPES:
            return _int_or_array
        sym = self.lookup_fully_qualified(fullname)
        if sym is not None and isinstance(sym.node, TypeInfo) and sym.node.has_base("pybpfgen.lang.Struct"):
            return _struct_or_array(fullname)
        return None


def plugin(version: str) -> type[Plugin]:
    return PybpfgenPlugin

"""What the mixins of :class:`~.codegen.FunctionLowering` share, for the type checker.

:class:`~.memory.Memory` and :class:`~.helper_calls.HelperCalls` derive from :class:`LoweringBase` only while
type checking (``if TYPE_CHECKING: from .base import LoweringBase`` / ``else: LoweringBase = object``), so mypy
checks their use of the state and of each other's and ``FunctionLowering``'s methods against these
declarations, their definitions against them, and ``FunctionLowering`` for implementing every method (they
are abstract here). At run time the mixins derive from ``object`` and this module is never imported.
A plain class rather than a ``Protocol``, as :mod:`pybpfgen.frontend.base` explains.
"""
from __future__ import annotations

from abc import abstractmethod

import llvmlite.ir as ir

from ..ir import nodes as N
from ..ir import types as T


class LoweringBase:
    # ------------------------------------------------------------ state (codegen.FunctionLowering.__init__)
    symbols: dict[int, ir.GlobalValue]  # id() of a map, global or function declaration -> its LLVM symbol
    b: ir.IRBuilder  # the builder of the code
    alloca_b: ir.IRBuilder  # the builder of the entry block's allocas
    slots: dict[N.Var, ir.Value]  # locals -> their stack slots
    params: dict[N.Var, ir.Value]  # parameters -> their LLVM arguments
    loop_vars: set[N.Var]  # loop variables (passed to helpers through a copy)
    passthrough_seq: int  # the last llvm.bpf.passthrough sequence number

    # ------------------------------------------------------------ codegen.FunctionLowering
    @abstractmethod
    def alloca(self, t: T.Type, name: str = "") -> ir.Value: ...

    @abstractmethod
    def ctx_arg(self, var: N.Var) -> ir.Value: ...

    @abstractmethod
    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function: ...

    @abstractmethod
    def ctx_memory_base(self, var: N.Var) -> ir.Value: ...

    @abstractmethod
    def ctx_load(self, ctx: N.Var, f: N.CtxField, index: int | None = None) -> ir.Value: ...

    @abstractmethod
    def field_load(self, base: ir.Value, f: N.CtxField, index: int | None = None) -> ir.Value: ...

    @abstractmethod
    def call(self, e: N.Call, sret: ir.Value | None = None) -> ir.Value: ...

    @abstractmethod
    def value(self, e: N.Expr) -> ir.Value: ...

    # ------------------------------------------------------------ memory.Memory
    @abstractmethod
    def store_at(self, ptr: ir.Value, v: N.Expr) -> None: ...

    @abstractmethod
    def pointer_to(self, e: N.Expr) -> ir.Value: ...

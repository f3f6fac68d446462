"""LLVM types of the typed IR's types."""
from __future__ import annotations

import llvmlite.ir as ir

from ..diagnostics import InternalCompilerError
from ..ir import types as T

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()


def llvm_type(t: T.Type) -> ir.Type:
    if isinstance(t, T.IntT):
        return ir.IntType(t.bits)
    if isinstance(t, T.BoolT):
        return I1
    if isinstance(t, (T.RefT, T.OptRefT, T.CtxT, T.SockT, T.OptSockT)):
        return PTR
    if isinstance(t, (T.StructT, T.ArrayT)):
        return ir.ArrayType(I8, t.size)
    raise InternalCompilerError(f"no LLVM type for {t}")

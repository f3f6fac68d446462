"""Debug metadata, so that LLVM's BPF backend emits ``.BTF`` and ``.BTF.ext``.

BTF is made by LLVM from DWARF-style metadata: map definitions become the libbpf
convention (an anonymous struct of ``type``/``key``/``value``/``max_entries``
pointer members), functions get ``func_info``, and every statement's
``DILocation`` becomes a ``line_info`` record carrying the Python source line
(the source text is embedded in the ``DIFile``).
"""
from __future__ import annotations

import os

import llvmlite.ir as ir

from ..ir import types as T
from ..ir.nodes import MapDecl, Module, Program

TOK = ir.DIToken


def _ident(op):
    """An operand as part of a cache key: metadata nodes by identity (they are hash-consed, so identity
    is value equality), everything else as itself."""
    return ("#", id(op)) if isinstance(op, (ir.values.DIValue, ir.values.MDValue)) else op


class _Nodes:
    """``Module.add_debug_info`` / ``Module.add_metadata`` with the same results (the same nodes, numbered
    in the same order, deduplicated under the same equality), but keyed by the identity of the operand
    nodes: llvmlite hashes operands recursively and does not cache the hashes, which made every node
    cost a walk of everything it refers to (a third of the lowering time)."""

    def __init__(self, m: ir.Module):
        self.m = m
        self.cache: dict = {}

    def metadata(self, operands) -> ir.values.MDValue:
        ops = self.m._fix_metadata_operands(operands)
        key = ("md", tuple(_ident(o) for o in ops))
        md = self.cache.get(key)
        if md is None:
            md = self.cache[key] = ir.values.MDValue(self.m, ops, name=str(len(self.m.metadata)))
        return md

    def debug_info(self, kind: str, operands: dict, is_distinct: bool = False) -> ir.values.DIValue:
        ops = tuple(sorted((k, self.metadata(v) if isinstance(v, (list, tuple)) else v)
                           for k, v in operands.items()))
        # as in llvmlite: an ``encoding`` token by its value, other tokens by identity
        key = (kind, tuple((k, v.value if k == "encoding" and isinstance(v, TOK) else _ident(v)) for k, v in ops),
               is_distinct)
        di = self.cache.get(key)
        if di is None:
            di = self.cache[key] = ir.values.DIValue(self.m, is_distinct, kind, ops, name=str(len(self.m.metadata)))
        return di


class DebugInfo:
    def __init__(self, m: ir.Module, module: Module):
        self.m = m
        nodes = _Nodes(m)
        self.add_debug_info, self.add_metadata = nodes.debug_info, nodes.metadata
        path = module.path
        self.file = self.add_debug_info("DIFile", {"filename": os.path.basename(path),
                                                "directory": os.path.dirname(path),
                                                "source": module.source})
        self.cu = self.add_debug_info("DICompileUnit", {
            "language": TOK("DW_LANG_C99"), "file": self.file, "producer": "pybpfgen",
            "isOptimized": True, "runtimeVersion": 0, "emissionKind": TOK("FullDebug"),
            "nameTableKind": TOK("None")}, is_distinct=True)
        m.add_named_metadata("llvm.dbg.cu", self.cu)
        i32 = ir.IntType(32)
        m.add_named_metadata("llvm.module.flags", m.add_metadata([i32(7), "Dwarf Version", i32(5)]))
        m.add_named_metadata("llvm.module.flags", m.add_metadata([i32(2), "Debug Info Version", i32(3)]))
        self._types: dict[tuple[str, object], ir.Value] = {}  # (kind, type or name) -> its DI node
        self.c_int = self.basic("int", 32, "DW_ATE_signed")
        self.globals: list = []
        self._cycles: list = []

    # ------------------------------------------------------------ types
    def basic(self, name: str, bits: int, enc: str):
        key = ("basic", name)
        if key not in self._types:
            self._types[key] = self.add_debug_info("DIBasicType", {"name": name, "size": bits, "encoding": TOK(enc)})
        return self._types[key]

    def pointer(self, target):
        return self.add_debug_info("DIDerivedType", {"tag": TOK("DW_TAG_pointer_type"), "baseType": target, "size": 64})

    def type(self, t: T.Type):
        key: tuple[str, object]
        if isinstance(t, T.IntT):
            key = ("int", t)
            if key not in self._types:
                cname = {8: "char", 16: "short", 32: "int", 64: "long long"}[t.bits]
                base = self.basic(("" if t.signed else "unsigned ") + cname if t.bits != 8 else
                                  ("signed char" if t.signed else "unsigned char"), t.bits,
                                  "DW_ATE_signed" if t.signed else "DW_ATE_unsigned")
                self._types[key] = self.add_debug_info("DIDerivedType", {
                    "tag": TOK("DW_TAG_typedef"), "name": t.c_name, "baseType": base, "file": self.file, "line": 0})
            return self._types[key]
        if isinstance(t, T.BoolT):
            return self.basic("_Bool", 8, "DW_ATE_boolean")
        if isinstance(t, T.ArrayT):
            key = ("array", t)
            if key not in self._types:
                sub = self.add_debug_info("DISubrange", {"count": t.n})
                self._types[key] = self.add_debug_info("DICompositeType", {
                    "tag": TOK("DW_TAG_array_type"), "baseType": self.type(t.elem), "size": t.size * 8,
                    "elements": self.add_metadata([sub])})
            return self._types[key]
        if isinstance(t, T.StructT):
            key = ("struct", id(t))
            if key not in self._types:
                members = [self.member(f.name, self.type(f.type), f.offset * 8, f.type.size * 8,
                                       t.loc.line if t.loc else 0) for f in t.fields]
                self._types[key] = self.add_debug_info("DICompositeType", {
                    "tag": TOK("DW_TAG_structure_type"), "name": t.name, "file": self.file,
                    "line": t.loc.line if t.loc else 0, "size": t.size * 8, "align": t.align * 8,
                    "elements": self.add_metadata(members)})
            return self._types[key]
        raise TypeError(f"no debug type for {t}")

    def member(self, name: str, typ, offset_bits: int, size_bits: int, line: int = 0):
        return self.add_debug_info("DIDerivedType", {
            "tag": TOK("DW_TAG_member"), "name": name, "baseType": typ, "size": size_bits,
            "offset": offset_bits, "file": self.file, "line": line})

    def int_array_ptr(self, n: int, elem: T.Type | None = None):
        """``int (*)[n]``: how libbpf's ``__uint(name, n)`` encodes an integer in a map definition. libbpf and
        the loader read only the array's length: a RingBuf's ``type`` is ``struct Event (*)[27]`` when it
        declares its records' type (``elem``), which is how user space finds it (docs/loader.md, "Events")."""
        sub = self.add_debug_info("DISubrange", {"count": n})
        base, size = (self.c_int, 32) if elem is None else (self.type(elem), elem.size * 8)
        arr = self.add_debug_info("DICompositeType", {"tag": TOK("DW_TAG_array_type"), "baseType": base,
                                                        "size": size * n, "elements": self.add_metadata([sub])})
        return self.pointer(arr)

    # ------------------------------------------------------------ globals and functions
    def map_variable(self, gv: ir.GlobalVariable, decl: MapDecl) -> None:
        event = decl.value if decl.kind == "ringbuf" and not isinstance(decl.value, T.VoidT) else None
        member_type = {
            "type": lambda: self.int_array_ptr(decl.map_type, event),
            "key": lambda: self.pointer(self.type(decl.key)),
            "value": lambda: self.pointer(self.type(decl.value)),
            "max_entries": lambda: self.int_array_ptr(decl.max_entries),
            "map_flags": lambda: self.int_array_ptr(decl.flags),
        }
        fields = [(name, member_type[name]()) for name in decl.definition_fields]
        members = [self.member(name, t, 64 * i, 64, decl.loc.line) for i, (name, t) in enumerate(fields)]
        st = self.add_debug_info("DICompositeType", {
            "tag": TOK("DW_TAG_structure_type"), "file": self.file, "line": decl.loc.line,
            "size": 64 * len(members), "elements": self.add_metadata(members)})
        var = self.add_debug_info("DIGlobalVariable", {
            "name": decl.name, "scope": self.cu, "file": self.file, "line": decl.loc.line, "type": st,
            "isLocal": False, "isDefinition": True})
        gve = self.add_debug_info("DIGlobalVariableExpression", {"var": var, "expr": self.add_debug_info("DIExpression", {})})
        gv.set_metadata("dbg", gve)
        self.globals.append(gve)

    def global_variable(self, gv: ir.GlobalVariable, g) -> None:
        t = self.type(g.type)
        if g.readonly:
            t = self.add_debug_info("DIDerivedType", {"tag": TOK("DW_TAG_volatile_type"), "baseType": t})
            t = self.add_debug_info("DIDerivedType", {"tag": TOK("DW_TAG_const_type"), "baseType": t})
        var = self.add_debug_info("DIGlobalVariable", {
            "name": g.name, "scope": self.cu, "file": self.file, "line": g.loc.line, "type": t,
            "isLocal": False, "isDefinition": True})
        gve = self.add_debug_info("DIGlobalVariableExpression", {"var": var, "expr": self.add_debug_info("DIExpression", {})})
        gv.set_metadata("dbg", gve)

    def function(self, fn: ir.Function, func):
        """Debug info of a DSL function (inlined; its lines still show in line_info)."""
        types = [self.type(func.ret) if not isinstance(func.ret, T.VoidT) else None]
        types += [self.pointer(self.c_int) if isinstance(p.type, (T.CtxT, T.StructT, T.ArrayT, T.SockT))
                  else self.type(p.type)
                  for p in func.params]
        sty = self.add_debug_info("DISubroutineType", {"types": self.add_metadata(types)})
        sp = self.add_debug_info("DISubprogram", {
            "name": func.name, "scope": self.file, "file": self.file, "line": func.loc.line, "type": sty,
            "scopeLine": func.loc.line, "flags": TOK("DIFlagPrototyped"),
            "spFlags": TOK("DISPFlagLocalToUnit | DISPFlagDefinition | DISPFlagOptimized"), "unit": self.cu},
            is_distinct=True)
        fn.set_metadata("dbg", sp)
        return sp

    def subprogram(self, fn: ir.Function, prog: Program, c_struct: str):
        if prog.ctx_type.struct_t is not None:  # syscall programs: the user's struct itself
            ctx = self.type(prog.ctx_type.struct_t)
        else:
            ctx = self.add_debug_info("DICompositeType", {"tag": TOK("DW_TAG_structure_type"), "name": c_struct,
                                                            "file": self.file, "line": 0,
                                                            "flags": TOK("DIFlagFwdDecl")})
        ctx_ptr = self.pointer(ctx)
        sty = self.add_debug_info("DISubroutineType", {"types": self.add_metadata([self.c_int, ctx_ptr])})
        # The parameter must be named in BTF (the kernel rejects anonymous FUNC_PROTO
        # arguments); LLVM takes the name from a DILocalVariable in retainedNodes.
        # A distinct placeholder breaks the subprogram <-> variable cycle.
        retained = ir.values.MDValue(self.m, [], name=str(len(self.m.metadata)))  # uncached: mutated below
        sp = self.add_debug_info("DISubprogram", {
            "name": prog.name, "scope": self.file, "file": self.file, "line": prog.loc.line, "type": sty,
            "scopeLine": prog.loc.line, "flags": TOK("DIFlagPrototyped"),
            "spFlags": TOK("DISPFlagDefinition | DISPFlagOptimized"), "unit": self.cu,
            "retainedNodes": retained}, is_distinct=True)
        param = self.add_debug_info("DILocalVariable", {
            "name": prog.ctx.name, "arg": 1, "scope": sp, "file": self.file, "line": prog.ctx.loc.line,
            "type": ctx_ptr})
        # Filled in by finish(): llvmlite hashes operands recursively, so the cycle must
        # not exist while further nodes that refer to this subprogram are created.
        self._cycles.append((retained, param))
        fn.set_metadata("dbg", sp)
        return sp

    def finish(self) -> None:
        for retained, param in self._cycles:
            retained.operands = (param,)

    def location(self, scope, line: int, col: int):
        return self.add_debug_info("DILocation", {"line": line, "column": col + 1, "scope": scope})

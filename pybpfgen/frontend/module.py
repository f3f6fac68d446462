"""Module-level declarations: imports, constants, structs, maps and programs."""
from __future__ import annotations

import ast
import os
import warnings
from typing import Any

from .. import lang
from ..diagnostics import Diagnostics, Loc, UserError
from ..ir import types as T
from ..ir.nodes import Function, GlobalDecl, MapDecl, Module, Program, Var
from ..target.progtypes import PROG_TYPES
from . import constructs
from . import symbols as S
from .constfold import ConstEvaluator


class Sym:
    """A module-level name: kind is one of const, type, map, lang, langmod, program."""

    kind: str
    value: Any
    loc: Loc | None = None

    def __init__(self, kind, value, loc=None):
        self.kind = kind
        self.value = value
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(kind={self.kind!r}, value={self.value!r}, loc={self.loc!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.kind, self.value, self.loc) == (other.kind, other.value, other.loc)
        return NotImplemented

    # mutable and compared by value: unhashable (typeshed's idiom; object.__hash__ is a method, hence the ignore)
    __hash__ = None  # type: ignore[assignment]



class ModuleScope:
    def __init__(self, path: str):
        self.path = path
        self.names: dict[str, Sym] = {}

    def lookup(self, name: str) -> Sym | None:
        return self.names.get(name)


def is_dsl_source(source: str) -> bool:
    """True when a file imports pybpfgen.lang, i.e. is meant for the compiler."""
    return "pybpfgen" in source and ("pybpfgen.lang" in source or "from pybpfgen import lang" in source)


def parse_module(path: str, source: str | None = None, diags: Diagnostics | None = None) -> Module:
    """Parse and type-check one DSL module. Raises CompileError on user errors."""
    if source is None:
        with open(path, encoding="utf-8") as f:
            source = f.read()
    diags = diags if diags is not None else Diagnostics()
    name = os.path.splitext(os.path.basename(path))[0]
    module = Module(name=name, path=os.path.abspath(path), source=source)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SyntaxWarning)
            tree = ast.parse(source, filename=path)
        for w in caught:
            diags.warning(Loc(path, w.lineno or 1), str(w.message))
    except SyntaxError as e:
        loc = Loc(path, e.lineno or 1, max((e.offset or 1) - 1, 0))
        diags.error(loc, f"invalid Python syntax: {e.msg}")
        diags.raise_if_errors()
        raise AssertionError("unreachable") from None
    ModuleBuilder(path, module, diags).run(tree)
    diags.raise_if_errors()
    return module


class ModuleBuilder:
    def __init__(self, path: str, module: Module, diags: Diagnostics):
        self.path = path
        self.module = module
        self.diags = diags
        self.scope = ModuleScope(path)
        self.consts = ConstEvaluator(self)
        self.pending: list[tuple[ast.FunctionDef, Program | Function]] = []

    def loc(self, node: ast.AST) -> Loc:
        return Loc.of(self.path, node)

    # -------------------------------------------------------------- driver
    def run(self, tree: ast.Module) -> None:
        from .body import BodyChecker  # late import: body uses this module's types

        for i, stmt in enumerate(tree.body):
            try:
                self.declare(stmt, first=(i == 0))
            except UserError as e:
                self.diags.add(e.diag)
        for fn, func in self.pending:
            if self.diags.too_many():
                break
            BodyChecker(self, func).check_function(fn)
        if not self.diags.errors:
            self.check_call_graph()
        if not self.module.programs and not self.diags.errors:
            self.diags.warning(Loc(self.path, 1), "module declares no BPF programs; no object is produced",
                               "decorate a function with @sock_ops or @sk_msg(map)")

    def check_call_graph(self) -> None:
        """No recursion (functions are inlined), and every helper a program reaches through its
        functions must be allowed for that program's type."""
        def visit(f, stack):
            for g in f.calls:
                if g in stack:
                    raise UserError(g.loc, f"function `{g.name}` calls itself (directly or through others)",
                                    "BPF programs cannot recurse; write a bounded loop instead")
                yield from visit(g, stack + [g])
            yield f

        for prog in self.module.programs:
            try:
                reached = list(visit(prog, [prog]))
            except UserError as e:
                self.diags.add(e.diag)
                return
            for f in reached:
                for h, loc, what in f.helper_uses:
                    if h.progtypes is not None and prog.progtype not in h.progtypes:
                        via = "" if f is prog else f" (through `{f.name}`, called from program `{prog.name}`)"
                        self.diags.error(loc, f"{what} (bpf_{h.name}) cannot be called from a {prog.progtype} program{via}",
                                         f"it is available in: {', '.join(sorted(h.progtypes))} programs")

    # -------------------------------------------------------------- resolution helpers
    def resolve(self, node: ast.expr) -> Sym | None:
        """Resolve a Name or module attribute (``lang.u32``) to a module-level symbol."""
        if isinstance(node, ast.Name):
            return self.scope.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is not None and base.kind == "enum":
                members = base.value[1]
                if node.attr not in members:
                    raise UserError(self.loc(node), f"enum `{ast.unparse(node.value)}` has no member `{node.attr}`",
                                    f"members: {', '.join(members)}")
                return Sym("const", members[node.attr])
            if base is not None and base.kind == "langmod":
                if not hasattr(base.value, node.attr) or node.attr.startswith("_"):
                    raise UserError(self.loc(node), f"pybpfgen.lang has no name `{node.attr}`")
                return self.lang_sym(getattr(base.value, node.attr))
        return None

    def lang_sym(self, obj: Any) -> Sym:
        if S.is_lang_constant(obj):
            return Sym("const", int(obj))
        if obj is lang:
            return Sym("langmod", obj)
        return Sym("lang", obj)

    def resolve_type(self, node: ast.expr, what: str = "type") -> T.Type:
        if isinstance(node, ast.Subscript):
            elem = self.resolve_type(node.value, what)
            if T.is_sock(elem):
                raise UserError(self.loc(node), "an array of sockets is not possible: the verifier does not let a "
                                "program keep a socket pointer in memory")
            n = self.consts.eval(node.slice)
            if not 0 < n <= 4096:
                raise UserError(self.loc(node.slice), f"array length must be between 1 and 4096, not {n}")
            return T.ArrayT(elem, n)
        if isinstance(node, ast.Name) and node.id == "bool" and self.scope.lookup("bool") is None:
            return T.BOOL
        sym = self.resolve(node)
        if sym is not None:
            if sym.kind == "type":
                return sym.value
            if sym.kind == "enum":
                return sym.value[0]
            if sym.kind == "lang" and sym.value in S.INT_TYPES:
                return S.INT_TYPES[sym.value]
            if sym.kind == "lang" and sym.value is lang.Sock:
                if what in ("parameter type", "local type"):
                    return T.SOCK
                where = {"field type": "a struct field", "value type": "a map value", "key type": "a map key",
                         "type": "a global", "return type": "a function's result"}.get(what, f"a {what}")
                raise UserError(self.loc(node), f"a socket cannot be {where}: the verifier does not let a program "
                                "keep a socket pointer in memory (a map, a struct, a global)",
                                "keep per-socket state in an SkStorage map, or identify a socket by its cookie; "
                                "sockets can be function parameters and local variables")
        if isinstance(node, ast.Name) and node.id == "int":
            raise UserError(self.loc(node), f"`{node.id}` has no fixed width in BPF",
                            "use a fixed-width integer type such as u32 or u64")
        shown = ast.unparse(node)
        raise UserError(self.loc(node), f"`{shown}` is not a {what}",
                        "use u8..u64, i8..i64, bool, a Struct or IntEnum subclass, or an array such as u32[4]")

    # -------------------------------------------------------------- declarations
    def declare(self, stmt: ast.stmt, first: bool) -> None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
            return  # docstring
        if isinstance(stmt, ast.ImportFrom):
            return self.declare_import_from(stmt)
        if isinstance(stmt, ast.Import):
            return self.declare_import(stmt)
        if isinstance(stmt, ast.ClassDef):
            return self.declare_struct(stmt)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            return self.declare_assign(stmt)
        if isinstance(stmt, ast.FunctionDef):
            return self.declare_function(stmt)
        raise UserError(self.loc(stmt), f"{constructs.statement(stmt)[0]} are not allowed at module level in a BPF module",
                        "a BPF module contains imports, constants, Struct classes, map declarations and programs")

    def declare_import_from(self, stmt: ast.ImportFrom) -> None:
        if stmt.module == "__future__":
            return
        if stmt.module == "pybpfgen.lang" and stmt.level == 0:
            exports = S.lang_exports()
            for alias in stmt.names:
                if alias.name == "*":
                    for n, obj in exports.items():
                        self.bind(n, self.lang_sym(obj), None)
                    continue
                if alias.name not in exports:
                    raise UserError(self.loc(stmt), f"pybpfgen.lang has no name `{alias.name}`")
                self.bind(alias.asname or alias.name, self.lang_sym(exports[alias.name]), self.loc(stmt))
            return
        if stmt.module == "pybpfgen" and stmt.level == 0 and all(a.name == "lang" for a in stmt.names):
            for alias in stmt.names:
                self.bind(alias.asname or "lang", Sym("langmod", lang), self.loc(stmt))
            return
        raise UserError(self.loc(stmt), f"cannot import from `{'.' * stmt.level}{stmt.module or ''}` in a BPF module",
                        "BPF modules may import only from pybpfgen.lang")

    def declare_import(self, stmt: ast.Import) -> None:
        for alias in stmt.names:
            if alias.name == "pybpfgen.lang" and alias.asname:
                self.bind(alias.asname, Sym("langmod", lang), self.loc(stmt))
            else:
                raise UserError(self.loc(stmt), f"cannot import `{alias.name}` in a BPF module",
                                "write `from pybpfgen.lang import *` or `import pybpfgen.lang as bpf`")

    def bind(self, name: str, sym: Sym, loc: Loc | None) -> None:
        old = self.scope.names.get(name)
        if old is not None and old.kind in ("map", "type", "program", "function") and loc is not None:
            raise UserError(loc, f"`{name}` is already defined at line {old.loc.line if old.loc else '?'}")
        sym.loc = sym.loc or loc
        self.scope.names[name] = sym

    def declare_struct(self, cls: ast.ClassDef) -> None:
        loc = self.loc(cls)
        bases = [self.resolve(b) for b in cls.bases]
        if len(cls.bases) == 1 and bases[0] is not None and bases[0].value is lang.IntEnum:
            return self.declare_enum(cls)
        if len(cls.bases) != 1 or bases[0] is None or bases[0].value is not lang.Struct:
            raise UserError(loc, f"class `{cls.name}` must derive from Struct", "write `class Name(Struct):` with annotated fields")
        if cls.decorator_list or cls.keywords:
            raise UserError(loc, "Struct classes take no decorators or keywords")
        check_c_identifier(cls.name, loc)
        members: list[tuple[str, T.Type]] = []
        seen: set[str] = set()
        for item in cls.body:
            if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str):
                continue
            if isinstance(item, ast.Pass):
                continue
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is None:
                fname = item.target.id
                floc = self.loc(item)
                check_c_identifier(fname, floc)
                if fname in seen:
                    raise UserError(floc, f"field `{fname}` is declared twice")
                seen.add(fname)
                ftype = self.resolve_type(item.annotation, "field type")
                members.append((fname, ftype))
                continue
            raise UserError(self.loc(item), "a Struct body holds only annotated fields such as `port: u32`",
                            "field defaults and methods are not supported")
        if not members:
            raise UserError(loc, f"Struct `{cls.name}` has no fields")
        st = T.StructT.layout(cls.name, members, loc)
        self.module.structs.append(st)
        self.bind(cls.name, Sym("type", st), loc)

    def declare_enum(self, cls: ast.ClassDef) -> None:
        """``class Verdict(IntEnum): PASS = 1`` — named integer constants; the class is a u32/i32/u64 type."""
        members: dict[str, int] = {}
        for item in cls.body:
            if isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant) and isinstance(item.value.value, str):
                continue
            if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(item.targets[0], ast.Name):
                name = item.targets[0].id
                if name in members:
                    raise UserError(self.loc(item), f"enum member `{name}` is defined twice")
                members[name] = self.consts.eval(item.value)
                continue
            raise UserError(self.loc(item), "an IntEnum body holds only `NAME = integer` members")
        if not members:
            raise UserError(self.loc(cls), f"IntEnum `{cls.name}` has no members")
        lo, hi = min(members.values()), max(members.values())
        base = next((t for t in (T.U32, T.I32, T.U64, T.I64) if t.contains(lo) and t.contains(hi)), None)
        if base is None:
            raise UserError(self.loc(cls), f"the members of `{cls.name}` do not fit in 64 bits")
        self.module.constants.update({f"{cls.name}.{k}": v for k, v in members.items()})
        self.bind(cls.name, Sym("enum", (base, members)), self.loc(cls))

    def declare_assign(self, stmt: ast.Assign | ast.AnnAssign) -> None:
        loc = self.loc(stmt)
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise UserError(loc, "module-level assignments must bind one name")
            target, value = stmt.targets[0], stmt.value
        else:
            if not isinstance(stmt.target, ast.Name) or stmt.value is None:
                raise UserError(loc, "module-level annotated names need a value")
            target, value = stmt.target, stmt.value
        name = target.id
        if name == "LICENSE":
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                raise UserError(loc, "LICENSE must be a string such as \"GPL\"")
            self.module.license = value.value
            return
        if isinstance(value, ast.Call):
            sym = self.resolve(value.func)
            if sym is not None and sym.kind == "lang" and sym.value in S.MAP_KINDS:
                decl = self.declare_map(name, value, S.MAP_KINDS[sym.value], loc)
                self.bind(name, Sym("map", decl), loc)
                return
            if sym is not None and sym.kind == "lang" and sym.value in S.GLOBAL_KINDS:
                g = self.declare_global(name, value, S.GLOBAL_KINDS[sym.value], loc)
                self.bind(name, Sym("global", g), loc)
                return
        const = self.consts.eval(value)
        self.module.constants[name] = const
        self.bind(name, Sym("const", const), loc)

    def declare_global(self, name: str, call: ast.Call, kind: str, loc: Loc) -> GlobalDecl:
        check_c_identifier(name, loc)
        what = "Global" if kind == "global" else "Config"
        if call.keywords or not 1 <= len(call.args) <= 2:
            raise UserError(loc, f"write `{name} = {what}(TYPE)` or `{name} = {what}(TYPE, initial_value)`")
        typ = self.resolve_type(call.args[0], "type")
        init = None
        if len(call.args) == 2:
            init = self.consts.eval(call.args[1])
            if not isinstance(typ, T.IntT):
                raise UserError(self.loc(call.args[1]), f"only integer {what}s take an initial value")
            if not typ.contains(init):
                raise UserError(self.loc(call.args[1]), f"initial value {init} does not fit in {typ}")
        elif not isinstance(typ, (T.IntT, T.StructT, T.ArrayT, T.BoolT)):
            raise UserError(self.loc(call.args[0]), f"{what} of type {typ} is not supported")
        if kind == "config":
            section = ".rodata"
        else:
            section = ".data" if init else ".bss"
        g = GlobalDecl(name, typ, init, section, loc)
        self.module.globals.append(g)
        return g

    def declare_map(self, name: str, call: ast.Call, kind: S.MapKind, loc: Loc) -> MapDecl:
        check_c_identifier(name, loc)
        if call.args:
            raise UserError(self.loc(call.args[0]), "map parameters are keyword arguments",
                            f"write e.g. `{ast.unparse(call.func)}(key=u32, value=u64, max_entries=1024)`")
        allowed = kind.params
        kw: dict[str, ast.expr] = {}
        for k in call.keywords:
            if kind.key == "sock" and k.arg in ("key", "max_entries"):
                raise UserError(self.loc(k.value), f"an {kind.dsl_class} has no `{k.arg}`: it holds one value per "
                                "socket, stored with the socket and freed with it",
                                f"write `{name} = {ast.unparse(call.func)}(value=T)`")
            if k.arg is None or k.arg not in allowed:  # None: a **mapping, never allowed
                raise UserError(self.loc(k.value), f"unknown map parameter `{k.arg}`",
                                f"{ast.unparse(call.func)} takes: {', '.join(sorted(allowed))}")
            kw[k.arg] = k.value
        if kind.key == "sock":  # local storage: BTF key `int` (a socket fd for user space), max_entries 0
            if "value" not in kw:
                raise UserError(loc, f"map `{name}` needs a value type", f"e.g. `{name} = {kind.dsl_class}(value=u64)`")
            value = self.resolve_type(kw["value"], "value type")
            flags = (self.consts.eval(kw["flags"]) if "flags" in kw else 0) | 1  # BPF_F_NO_PREALLOC: required
            decl = MapDecl(name, kind.kind, kind.map_type, T.I32, value, 0, flags, loc)
            self.module.maps.append(decl)
            return decl
        if "max_entries" not in kw:
            raise UserError(loc, f"map `{name}` needs max_entries")
        max_entries = self.consts.eval(kw["max_entries"])
        if not (0 < max_entries <= 0xFFFFFFFF):
            raise UserError(self.loc(kw["max_entries"]), f"max_entries must be between 1 and 2**32-1, not {max_entries}")
        flags = self.consts.eval(kw["flags"]) if "flags" in kw else 0
        if kind.value == "none":  # RingBuf: max_entries is its size in bytes
            if max_entries & (max_entries - 1) or max_entries % 4096:
                raise UserError(self.loc(kw["max_entries"]), "a RingBuf size must be a power of 2 and a multiple of 4096")
            event: T.Type = T.VOID  # the type of its records, when declared: checked and recorded in its BTF
            if "event" in kw:
                event = self.resolve_type(kw["event"], "event type")
                if not isinstance(event, (T.StructT, T.IntT, T.ArrayT)):
                    raise UserError(self.loc(kw["event"]), f"a RingBuf event is a Struct, an integer or an array, "
                                    f"not {event}")
                if event.size + 8 > max_entries:
                    raise UserError(self.loc(kw["event"]), f"a {event} record ({event.size} bytes and an 8-byte "
                                    f"header) does not fit in a RingBuf of {max_entries} bytes")
            decl = MapDecl(name, kind.kind, kind.map_type, T.VOID, event, max_entries, 0, loc)
            self.module.maps.append(decl)
            return decl
        if kind.has_key:
            if "key" not in kw:
                raise UserError(loc, f"map `{name}` needs a key type")
            key = self.resolve_type(kw["key"], "key type")
        else:
            key = T.U32
        if kind.value == "socket":
            value = self.resolve_type(kw["value"], "value type") if "value" in kw else T.U32
            if value not in (T.U32, T.U64):
                raise UserError(self.loc(kw["value"]), "a SockHash value must be u32 or u64 (it holds a socket)")
        else:
            if "value" not in kw:
                raise UserError(loc, f"map `{name}` needs a value type")
            value = self.resolve_type(kw["value"], "value type")
        if kind.key == "lpm":
            if not (isinstance(key, T.StructT) and key.fields[0].name == "prefixlen" and key.fields[0].type == T.U32
                    and len(key.fields) > 1):
                raise UserError(self.loc(kw["key"]), "an LPMTrie key is a Struct whose first field is `prefixlen: u32`, "
                                "followed by the address (e.g. `addr: u32` or `addr: u32[4]`)")
            flags |= 1  # BPF_F_NO_PREALLOC: required by the kernel for LPM tries
        for what, t in (("key", key), ("value", value)):
            if t.size > 512 and not kind.large_values:
                raise UserError(loc, f"the {what} of map `{name}` is {t.size} bytes")
        decl = MapDecl(name, kind.kind, kind.map_type, key, value, max_entries, flags, loc)
        self.module.maps.append(decl)
        return decl

    def declare_helper_function(self, fn: ast.FunctionDef) -> None:
        """An undecorated function: a helper called from programs (inlined into them)."""
        loc = self.loc(fn)
        check_c_identifier(fn.name, loc)
        a = fn.args
        if a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or a.defaults:
            raise UserError(loc, f"function `{fn.name}` may only have plain positional parameters")
        params = []
        for p in a.args:
            if p.annotation is None:
                raise UserError(self.loc(p), f"annotate parameter `{p.arg}` with its type", f"e.g. `{p.arg}: u32`")
            psym = self.resolve(p.annotation)
            if psym is not None and psym.kind == "lang" and psym.value in S.CTX_CLASSES:
                # a context shared by several program types (SkBuff) means its first one here
                ptype: T.Type = T.CtxT(min(S.CTX_CLASSES[psym.value], key=list(PROG_TYPES).index))
            else:
                ptype = self.resolve_type(p.annotation, "parameter type")
            params.append(Var(p.arg, ptype, self.loc(p), is_param=True))
        if fn.returns is None or (isinstance(fn.returns, ast.Constant) and fn.returns.value is None):
            ret: T.Type = T.VOID
        elif isinstance(fn.returns, ast.Name) and fn.returns.id == "int":
            ret = T.I32
        else:
            ret = self.resolve_type(fn.returns, "return type")
            if not isinstance(ret, (T.IntT, T.BoolT, T.StructT, T.ArrayT)):
                raise UserError(self.loc(fn.returns), "functions return an integer, a bool, a struct, an array or None")
        func = Function(fn.name, params, ret, [], loc)
        self.module.functions.append(func)
        self.bind(fn.name, Sym("function", func), loc)
        self.pending.append((fn, func))

    def declare_function(self, fn: ast.FunctionDef) -> None:
        loc = self.loc(fn)
        if not fn.decorator_list:
            return self.declare_helper_function(fn)
        if len(fn.decorator_list) != 1:
            raise UserError(loc, f"program `{fn.name}` has more than one decorator")
        deco = fn.decorator_list[0]
        dloc = self.loc(deco)
        call_args: list[ast.expr] = []
        if isinstance(deco, ast.Call):
            call_args = list(deco.args)
            if deco.keywords:
                raise UserError(dloc, "program decorators take no keyword arguments")
            deco = deco.func
        sym = self.resolve(deco)
        if sym is None or sym.kind != "lang" or sym.value not in S.PROG_DECORATORS:
            raise UserError(dloc, f"`@{ast.unparse(deco)}` is not a program decorator",
                            "use " + ", ".join(f"@{p.name}(map)" if p.needs_map else f"@{p.name}"
                                               for p in PROG_TYPES.values()))
        progtype = S.PROG_DECORATORS[sym.value]
        pt = PROG_TYPES[progtype]
        attach_map = None
        if pt.needs_map:
            if len(call_args) != 1:
                raise UserError(dloc, f"@{progtype} needs the sock map (a SockHash or SockMap) it attaches to",
                                f"write `@{progtype}(socks)`")
            msym = self.resolve(call_args[0])
            if msym is None or msym.kind != "map" or msym.value.kind not in ("sockhash", "sockmap"):
                raise UserError(self.loc(call_args[0]), f"@{progtype} must name a SockHash or SockMap declared above")
            attach_map = msym.value
        elif call_args or isinstance(fn.decorator_list[0], ast.Call):
            raise UserError(dloc, f"@{progtype} takes no arguments", f"write `@{progtype}` on its own")
        check_c_identifier(fn.name, loc)
        a = fn.args
        if a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or a.defaults or len(a.args) != 1:
            raise UserError(loc, f"a {progtype} program takes exactly one parameter, its context",
                            f"write `def {fn.name}(ctx: {pt.ctx_class}) -> int:`")
        param = a.args[0]
        if progtype == "syscall":
            if param.annotation is None:
                raise UserError(self.loc(param), "annotate the context of a syscall program with a Struct type")
            st = self.resolve_type(param.annotation, "Struct type")
            if not isinstance(st, T.StructT):
                raise UserError(self.loc(param.annotation), "the context of a syscall program is a Struct")
            ctx_t = T.CtxT(progtype, st)
        else:
            if param.annotation is None:
                raise UserError(self.loc(param), f"annotate the context parameter: `{param.arg}: {pt.ctx_class}`")
            psym = self.resolve(param.annotation)
            if psym is None or psym.kind != "lang" or progtype not in S.CTX_CLASSES.get(psym.value, ()):
                raise UserError(self.loc(param.annotation), f"the context of a {progtype} program is {pt.ctx_class}",
                                f"write `{param.arg}: {pt.ctx_class}`")
            ctx_t = T.CtxT(progtype)
        if fn.returns is not None and not (isinstance(fn.returns, ast.Name) and fn.returns.id == "int"):
            raise UserError(self.loc(fn.returns), "BPF programs return `int`")
        ctx = Var(param.arg, ctx_t, self.loc(param), is_param=True)
        prog = Program(fn.name, progtype, ctx, [], loc, attach_map)
        self.module.programs.append(prog)
        self.bind(fn.name, Sym("program", prog), loc)
        self.pending.append((fn, prog))


def check_c_identifier(name: str, loc: Loc) -> None:
    if not name.isascii():
        raise UserError(loc, f"`{name}` is not an ASCII identifier; BTF names must be C identifiers")

"""The compiler driver: find DSL modules, run frontend → lowering → object, write ``<module>.bpf.o``."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .diagnostics import CompileError, Diagnostic, Diagnostics, InternalCompilerError, Loc
from .frontend.module import is_dsl_source, parse_module
from .ir.nodes import Module
from .target.progtypes import PROG_TYPES

OBJECT_SUFFIX = ".bpf.o"


@dataclass
class Result:
    source: str
    output: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    skipped: str | None = None  # why no object was written


def find_sources(paths: list[str]) -> list[str]:
    """Python files named on the command line, and DSL modules found in named directories."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
                for f in sorted(files):
                    if f.endswith(".py"):
                        full = os.path.join(root, f)
                        with open(full, encoding="utf-8", errors="replace") as fh:
                            if is_dsl_source(fh.read()):
                                out.append(full)
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise FileNotFoundError(p)
    return out


def metadata(module: Module) -> dict:
    """What the loader needs beyond libbpf conventions (stored in the ``.pybpfgen`` section)."""
    progs = {}
    for p in module.programs:
        d = {"type": p.progtype, "section": PROG_TYPES[p.progtype].section, "line": p.loc.line}
        if p.attach_map is not None:
            d["attach_map"] = p.attach_map.name
        progs[p.name] = d
    return {"format": 1, "module": module.name, "source": os.path.basename(module.path), "programs": progs}


def build_ir(module: Module):
    from .lowering.codegen import lower_module
    return lower_module(module, metadata(module))


def compile_file(path: str, outdir: str, opt: int = 2) -> Result:
    diags = Diagnostics()
    res = Result(path)
    try:
        module = parse_module(path, diags=diags)
    except CompileError:
        res.diagnostics = diags.items
        return res
    res.diagnostics = diags.items
    if not module.programs:
        res.skipped = "no programs"
        return res
    from .lowering.object import BackendError, emit_object_guarded
    try:
        obj = emit_object_guarded(build_ir(module), opt=opt)
    except BackendError as e:
        res.diagnostics.append(backend_diagnostic(e.message, path))
        return res
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, module.name + OBJECT_SUFFIX)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(obj)
    os.replace(tmp, out)
    res.output = out
    return res


_LLVM_LOC = re.compile(r"^(?:error: )?(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): in function (?P<fn>\S+)[^:]*: (?P<msg>.*)$", re.M)


def backend_diagnostic(message: str, path: str) -> Diagnostic:
    """Turn an error reported by LLVM's BPF backend into a located diagnostic."""
    if message.startswith("internal:"):
        raise InternalCompilerError(f"LLVM failed on valid IR: {message}")
    m = _LLVM_LOC.search(message)
    if m is None:
        return Diagnostic("error", Loc(path, 1), f"the BPF backend rejected the program: {message}")
    msg = m.group("msg").strip()
    hint = None
    if "stack limit" in msg:
        msg = "the program needs more than the 512 bytes of stack BPF allows"
        hint = "keep large structs in a PerCPUArray map (look it up and work through `.value`) instead of locals"
    loc = Loc(path, int(m.group("line")), max(int(m.group("col")) - 1, 0))
    return Diagnostic("error", loc, f"in program `{m.group('fn')}`: {msg}", hint)


def read_sources(results: list[Result]) -> dict[str, str]:
    srcs: dict[str, str] = {}
    for r in results:
        for d in r.diagnostics:
            if d.loc and d.loc.path not in srcs:
                try:
                    with open(d.loc.path, encoding="utf-8") as f:
                        srcs[d.loc.path] = f.read()
                except OSError:
                    pass
    return srcs


__all__ = ["compile_file", "find_sources", "Result", "Loc"]

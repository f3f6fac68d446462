"""The compiler driver: find DSL modules, run frontend → lowering → object, write ``<module>.bpf.o``."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .diagnostics import CompileError, Diagnostic, Diagnostics, Loc
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
    from .lowering.object import emit_object
    obj = emit_object(build_ir(module), opt=opt)
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, module.name + OBJECT_SUFFIX)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(obj)
    os.replace(tmp, out)
    res.output = out
    return res


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

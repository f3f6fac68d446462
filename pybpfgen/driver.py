"""The compiler driver: find DSL modules, run frontend → lowering → object, write ``<module>.bpf.o``.

Builds are deterministic (the same source, options and compiler give a byte-identical object) and
incremental: :class:`~pybpfgen.buildcache.BuildCache` keeps ``<outdir>/.pybpfgen-cache.json`` with, per
source, a key (hash of the source, the options and the compiler itself: every ``pybpfgen`` source file,
llvmlite's version and the Python version), the files the module depends on and the outputs written. A
module whose key, dependencies and outputs all match is not recompiled. LLVM runs in a child process
(:mod:`pybpfgen.lowering.worker`).

This module imports nothing heavy at import time: a no-op rebuild never imports the frontend,
llvmlite or the loader.
"""
from __future__ import annotations

import os
import time

from .buildcache import BuildCache, build_key, compiler_fingerprint, compiler_stat, module_dependencies
from .lowering.worker import LLVMWorker, compile_ir

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of every command)

OBJECT_SUFFIX = ".bpf.o"
LLVM_IR_SUFFIX = ".ll"


class Result:
    """The outcome of compiling (or checking) one module. (A plain class: ``dataclasses`` costs
    ~10 ms of import time, which matters for a no-op rebuild.)"""

    def __init__(self, source: str):
        self.source = source
        self.output: str | None = None  # the object written (or up to date)
        self.diagnostics: list = []  # pybpfgen.diagnostics.Diagnostic
        self.skipped: str | None = None  # why no object was written
        self.llvm_ir: str | None = None  # the .ll written with emit_llvm
        self.up_to_date = False  # nothing was recompiled: the outputs of a previous run are current
        self.timings: dict[str, float] = {}  # phase -> seconds

    def __repr__(self) -> str:
        return (f"Result(source={self.source!r}, output={self.output!r}, up_to_date={self.up_to_date}, "
                f"diagnostics={self.diagnostics!r})")

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


# ------------------------------------------------------------------ finding modules
def is_dsl_source(source: str) -> bool:
    """True when a file imports pybpfgen.lang, i.e. is meant for the compiler.

    The same test as :func:`pybpfgen.frontend.module.is_dsl_source`, repeated here so that finding
    modules (and a no-op rebuild) does not import the frontend.
    """
    return "pybpfgen" in source and ("pybpfgen.lang" in source or "from pybpfgen import lang" in source)


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


# ------------------------------------------------------------------ compiling
def metadata(module) -> dict:
    """What the loader needs beyond libbpf conventions (stored in the ``.pybpfgen`` section)."""
    from .ir.nodes import computed_returns
    from .target.progtypes import PROG_TYPES

    progs = {}
    for p in module.programs:
        d = {"type": p.progtype, "section": PROG_TYPES[p.progtype].section, "line": p.loc.line}
        if PROG_TYPES[p.progtype].returns is not None:
            # the lines of the returns whose value the verifier checks (when it rejects one, the loader says
            # which lines may have returned it; with one, the object's line info already points at it)
            computed = [r.loc.line for r in computed_returns(p.body)]
            if len(computed) > 1:
                d["computed_returns"] = computed
        if p.attach_map is not None:
            d["attach_map"] = p.attach_map.name
        progs[p.name] = d
    return {"format": 1, "module": module.name, "source": os.path.basename(module.path), "programs": progs}


def build_ir(module):
    from .lowering.codegen import lower_module
    return lower_module(module, metadata(module))


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def check_file(path: str) -> Result:
    """Parse and type-check only (``pybpfgen compile --check``): no lowering, nothing written."""
    from .diagnostics import CompileError, Diagnostics
    from .frontend.module import parse_module

    diags = Diagnostics()
    res = Result(path)
    try:
        parse_module(path, diags=diags)
    except CompileError:
        pass
    res.diagnostics = diags.items
    return res


def compile_file(path: str, outdir: str, opt: int = 2, *, emit_llvm: bool = False,
                 cache: BuildCache | None = None, force: bool = False, worker: LLVMWorker | None = None,
                 object_name: str | None = None) -> Result:
    """Compile one module to ``outdir/<module>.bpf.o`` (``outdir/<object_name>`` if given; and ``<module>.ll``
    with ``emit_llvm``).

    With a ``cache``, a module whose source, dependencies, options, compiler and outputs are unchanged
    is not recompiled (``Result.up_to_date``) unless ``force``. With a ``worker``, LLVM runs in it
    (started here, before the frontend is imported); otherwise in a worker of its own.
    """
    t0 = time.perf_counter()
    res = Result(path)
    with open(path, "rb") as f:
        raw = f.read()
    options: dict = {"opt": opt, "emit_llvm": bool(emit_llvm)}
    if object_name is not None:
        options["object"] = object_name
    if cache is not None:
        current = (compiler_stat(), compiler_fingerprint(cache.known_compiler))
        if cache.known_compiler != current:  # record it, so that the next run need not hash the compiler
            cache.known_compiler, cache.dirty = current, True
    src_hash = cache.source_hash(path, raw) if cache is not None else ""
    key = build_key(src_hash, options) if cache is not None else ""
    if cache is not None and not force:
        entry = cache.is_current(path, key)
        if entry is not None:
            res.up_to_date = True
            # the output names as seen from here (the cache may have been written from another directory)
            res.output = os.path.join(outdir, entry["object"]) if entry.get("object") else None
            res.llvm_ir = os.path.join(outdir, entry["llvm_ir"]) if entry.get("llvm_ir") else None
            res.skipped = entry.get("skipped")
            res.timings["cache"] = time.perf_counter() - t0
            return res

    if worker is not None:
        worker.start()  # LLVM loads in the child while the frontend works here

    from .diagnostics import CompileError, Diagnostics

    t1 = time.perf_counter()
    from .frontend.module import parse_module
    res.timings["import frontend"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    diags = Diagnostics()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        from .diagnostics import Diagnostic, Loc
        res.diagnostics = [Diagnostic("error", Loc(path, 1), f"the file is not UTF-8 text ({e.reason})")]
        return res
    try:
        module = parse_module(path, source=source, diags=diags)
    except CompileError:
        res.diagnostics = diags.items
        if cache is not None:
            cache.forget(path)
        return res
    res.diagnostics = diags.items
    res.timings["frontend"] = time.perf_counter() - t1
    deps = module_dependencies(path, source, module) if cache is not None else []
    if not module.programs:
        res.skipped = "no programs"
        if cache is not None:
            cache.record(path, key, deps, [], {"skipped": res.skipped}, source_hash=src_hash)
        return res

    t1 = time.perf_counter()
    from .lowering import codegen  # noqa: F401 - timed apart from building the IR
    res.timings["import lowering"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    ir_module = build_ir(module)
    ll_text = None
    res.timings["lowering"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    if worker is not None:
        obj, ll_text, err = worker.compile(str(ir_module), opt, emit_llvm)
    else:
        obj, ll_text, err = compile_ir(str(ir_module), opt, emit_llvm)
    res.timings["llvm (worker)"] = time.perf_counter() - t1
    if obj is None:
        res.diagnostics.append(backend_diagnostic(err or "LLVM code generation failed", path))
        if cache is not None:
            cache.forget(path)
        return res

    t1 = time.perf_counter()
    if outdir:
        os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, object_name or module.name + OBJECT_SUFFIX)
    _write(out, obj)
    res.output = out
    outputs = [out]
    if emit_llvm:
        ll = os.path.join(outdir, module.name + LLVM_IR_SUFFIX)
        _write(ll, (ll_text or "").encode())
        res.llvm_ir = ll
        outputs.append(ll)
    if cache is not None:
        cache.record(path, key, deps, outputs, source_hash=src_hash, extra={"object": os.path.basename(out),
                                                "llvm_ir": os.path.basename(res.llvm_ir) if res.llvm_ir else None})
    res.timings["write"] = time.perf_counter() - t1
    return res


_LLVM_LOC = r"^(?:error: )?(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): in function (?P<fn>\S+)[^:]*: (?P<msg>.*)$"


def backend_diagnostic(message: str, path: str):
    """Turn an error reported by LLVM's BPF backend into a located diagnostic."""
    import re

    from .diagnostics import Diagnostic, InternalCompilerError, Loc

    if message.startswith("internal:"):
        raise InternalCompilerError(f"LLVM failed on valid IR: {message}")
    m = re.search(_LLVM_LOC, message, re.M)
    if m is None:
        return Diagnostic("error", Loc(path, 1), f"the BPF backend rejected the program: {message}")
    msg = m.group("msg").strip()
    hint = None
    if "stack limit" in msg:
        msg = "the program needs more than the 512 bytes of stack BPF allows"
        hint = "keep large structs in a PerCPUArray map (look it up and work through `.value`) instead of locals"
    loc = Loc(path, int(m.group("line")), max(int(m.group("col")) - 1, 0))
    return Diagnostic("error", loc, f"in `{m.group('fn')}`: {msg}", hint)


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


__all__ = ["compile_file", "check_file", "find_sources", "Result", "BuildCache", "LLVMWorker", "module_dependencies"]

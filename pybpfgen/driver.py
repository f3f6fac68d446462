# Over 500 lines: one module so that a no-op rebuild imports a single file of the compiler (see the docstring's last paragraph).
"""The compiler driver: find DSL modules, run frontend → lowering → object, write ``<module>.bpf.o``.

Builds are deterministic (the same source, options and compiler give a byte-identical object) and
incremental: :class:`BuildCache` keeps ``<outdir>/.pybpfgen-cache.json`` with, per source, a key (hash
of the source, the options and the compiler itself: every ``pybpfgen`` source file, llvmlite's
version and the Python version), the hashes of the files the module depends on, and the hashes of
the outputs written. A module whose key, dependencies and outputs all match is not recompiled.

This module imports nothing heavy at import time: a no-op rebuild never imports the frontend,
llvmlite or the loader.
"""
from __future__ import annotations

import json
import os
import sys
import time

from . import __version__

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of every command)

OBJECT_SUFFIX = ".bpf.o"
LLVM_IR_SUFFIX = ".ll"
CACHE_FILE = ".pybpfgen-cache.json"
CACHE_FORMAT = 1
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


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


# ------------------------------------------------------------------ incremental builds
if TYPE_CHECKING:  # the private modules have no stubs; they have hashlib's sha256
    from hashlib import sha256 as _sha256_new
else:
    try:  # the builtin module: hashlib would load OpenSSL (~5 ms), which a no-op rebuild does not need
        from _sha256 import sha256 as _sha256_new  # CPython 3.11
    except ImportError:  # pragma: no cover - other versions / implementations
        try:
            from _sha2 import sha256 as _sha256_new  # CPython 3.12+
        except ImportError:
            from hashlib import sha256 as _sha256_new


def _sha256(data: bytes) -> str:
    return _sha256_new(data).hexdigest()


def file_hash(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return _sha256(f.read())
    except OSError:
        return None


_fingerprint: str | None = None
_fingerprint_stat: str | None = None


def _compiler_files() -> list[str]:
    files = []
    for root, dirs, names in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        files += [os.path.join(root, n) for n in names if n.endswith(".py")]
    return sorted(files)


def compiler_stat() -> str:
    """A cheap signature of the compiler's files (names, sizes, mtimes, inodes) and versions: when it
    matches the one recorded with a fingerprint, that fingerprint is reused without reading the
    ~400 KB of sources again (about a sixth of a no-op rebuild)."""
    global _fingerprint_stat
    if _fingerprint_stat is None:
        parts = [f"pybpfgen {__version__} python {sys.version_info[:2]}", _llvmlite_version()]
        for path in _compiler_files():
            st = os.stat(path)
            parts.append(f"{os.path.relpath(path, PACKAGE_DIR)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}")
        _fingerprint_stat = _sha256("\n".join(parts).encode())
    return _fingerprint_stat


def compiler_fingerprint(known: tuple[str, str] | None = None) -> str:
    """A hash of the compiler: pybpfgen's version and every source file of the package (so any change
    to the compiler invalidates cached builds), llvmlite's version file and the Python version.

    ``known``: a (:func:`compiler_stat`, fingerprint) pair recorded earlier; the fingerprint is reused
    when the files' signature still matches."""
    global _fingerprint
    if _fingerprint is None:
        stat = compiler_stat()  # before reading the files: a change while reading shows next time
        if known is not None and known[0] == stat and known[1]:
            _fingerprint = known[1]
    if _fingerprint is None:
        h = _sha256_new(f"pybpfgen {__version__} python {sys.version_info[:2]}\n".encode())
        for path in _compiler_files():
            with open(path, "rb") as f:
                h.update(os.path.relpath(path, PACKAGE_DIR).encode() + b"\0" + f.read() + b"\0")
        h.update(_llvmlite_version().encode())
        _fingerprint = h.hexdigest()
    return _fingerprint


def _llvmlite_version() -> str:
    """A hash of llvmlite's version file, found on sys.path without importing llvmlite (~40 ms)."""
    for entry in sys.path:
        try:
            with open(os.path.join(entry or ".", "llvmlite", "_version.py"), "rb") as f:
                return "llvmlite " + _sha256(f.read())
        except OSError:
            continue
    return "llvmlite ?"


def build_key(source_hash: str, options: dict) -> str:
    """The cache key of one module: its source, the options that change the outputs, the compiler."""
    blob = json.dumps({"source": source_hash, "options": options, "compiler": compiler_fingerprint()},
                      sort_keys=True)
    return _sha256(blob.encode())


class BuildCache:
    """``<outdir>/.pybpfgen-cache.json``::

        {"format": 1, "modules": {"/abs/src.py": {"key": "...", "deps": {"/abs/dep.py": "<sha256>"},
                                                  "outputs": {"/abs/out.bpf.o": "<sha256>"}}}}

    ``deps`` holds every file the module imports (other than pybpfgen itself, which the key covers),
    recorded when it was compiled: a module is rebuilt when one of them changes or disappears.
    """

    def __init__(self, outdir: str):
        self.path = os.path.join(outdir, CACHE_FILE)
        self.modules: dict[str, dict] = {}
        self.dirty = False
        self.known_compiler: tuple[str, str] | None = None  # (compiler_stat(), compiler_fingerprint())
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict) and data.get("format") == CACHE_FORMAT and isinstance(data.get("modules"), dict):
                self.modules = data["modules"]
                cs, cf = data.get("compiler_stat"), data.get("compiler_fingerprint")
                if isinstance(cs, str) and isinstance(cf, str):
                    self.known_compiler = (cs, cf)
        except (OSError, ValueError):
            pass  # no cache, or a damaged one: rebuild everything

    def is_current(self, source: str, key: str) -> dict | None:
        """The entry of ``source`` if its key matches and its dependencies and outputs are unchanged."""
        e = self.modules.get(os.path.abspath(source))
        if not isinstance(e, dict) or e.get("key") != key:
            return None
        for path, digest in list(e.get("deps", {}).items()) + list(e.get("outputs", {}).items()):
            if file_hash(path) != digest:
                return None
        return e

    def record(self, source: str, key: str, deps: list[str], outputs: list[str], extra: dict | None = None) -> None:
        entry = {"key": key,
                 "deps": {os.path.abspath(d): file_hash(d) for d in sorted(set(deps))},
                 "outputs": {os.path.abspath(o): file_hash(o) for o in sorted(set(outputs))}}
        entry.update(extra or {})
        self.modules[os.path.abspath(source)] = entry
        self.dirty = True

    def forget(self, source: str) -> None:
        if self.modules.pop(os.path.abspath(source), None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": CACHE_FORMAT, "compiler": __version__, "compiler_stat": compiler_stat(),
                       "compiler_fingerprint": compiler_fingerprint(), "modules": self.modules}, f,
                      indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)
        self.dirty = False


def module_dependencies(path: str, source: str, module=None) -> list[str]:
    """Files whose change must rebuild the module at ``path``: the DSL modules it imports, transitively.

    Uses ``module.dependencies`` (a list of paths) when the frontend provides it; otherwise finds the
    module's imports in its source: relative imports, and absolute ones that name a ``.py`` file (or
    package) next to it. ``pybpfgen`` itself is not a dependency: the compiler fingerprint covers it.
    """
    deps = getattr(module, "dependencies", None) if module is not None else None
    if deps is not None:
        return sorted({os.path.abspath(d) for d in deps})
    imports = [ln for ln in source.splitlines() if ln.lstrip().startswith(("import ", "from "))]
    if all("pybpfgen" in ln for ln in imports):
        return []  # the common case, decided without parsing the module a second time
    import ast

    seen: set[str] = set()
    todo = [(os.path.abspath(path), source)]
    while todo:
        cur, text = todo.pop()
        try:
            tree = ast.parse(text, cur)
        except (SyntaxError, ValueError):
            continue  # the frontend reports it
        base = os.path.dirname(cur)
        for node in ast.walk(tree):
            names: list[tuple[int, str]] = []
            if isinstance(node, ast.Import):
                names = [(0, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = [(node.level, mod)] + [(node.level, f"{mod}.{a.name}" if mod else a.name) for a in node.names]
            for level, name in names:
                if not name or name.split(".")[0] == "pybpfgen" and level == 0:
                    continue
                d = base
                for _ in range(max(level - 1, 0)):
                    d = os.path.dirname(d)
                rel = os.path.join(d, *name.split("."))
                for cand in (rel + ".py", os.path.join(rel, "__init__.py")):
                    if os.path.isfile(cand) and os.path.abspath(cand) not in seen and os.path.abspath(cand) != os.path.abspath(path):
                        cand = os.path.abspath(cand)
                        seen.add(cand)
                        try:
                            with open(cand, encoding="utf-8") as f:
                                todo.append((cand, f.read()))
                        except (OSError, UnicodeDecodeError):
                            pass
    return sorted(seen)


# ------------------------------------------------------------------ the LLVM worker
class LLVMWorker:
    """LLVM in a forked child process, started *before* the frontend is imported.

    The child imports llvmlite's LLVM binding and initialises the BPF target (~40-60 ms) while the
    parent imports the frontend, checks the module and builds the IR text, so the two overlap; the
    parent itself never loads LLVM. Requests (IR text, optimisation level) and replies (the object, and
    the optimised IR with ``emit_llvm``) travel over pipes, length-prefixed. As with
    :func:`pybpfgen.lowering.object.emit_object_guarded`, an LLVM fatal error (the BPF backend calls
    ``exit(1)``, e.g. for an exceeded stack limit) only ends the child: its stderr becomes the error
    message, and the next request starts a new child.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.to_child = self.from_child = -1
        self.err_path: str | None = None

    def start(self) -> None:
        if self.pid is not None:
            return
        import tempfile

        fd, self.err_path = tempfile.mkstemp(prefix="pybpfgen-llvm-", suffix=".err")
        os.close(fd)
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                efd = os.open(self.err_path, os.O_WRONLY | os.O_TRUNC)
                os.dup2(efd, 2)
                os.close(efd)
                _serve(req_r, rep_w)
            except BaseException as e:  # noqa: BLE001 - reported through stderr
                os.write(2, f"internal: {type(e).__name__}: {e}\n".encode())
                code = 1
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.pid, self.to_child, self.from_child = pid, req_w, rep_r

    def compile(self, ir_text: str, opt: int, emit_llvm: bool) -> tuple[bytes | None, str | None, str | None]:
        """(object, optimised IR or None, error message or None)."""
        self.start()
        try:
            _send(self.to_child, json.dumps({"opt": opt, "ll": emit_llvm}).encode())
            _send(self.to_child, ir_text.encode())
            status = _recv(self.from_child)
            if status is not None:
                obj = _recv(self.from_child)
                ll = _recv(self.from_child) if emit_llvm else None
                if status == b"ok" and obj is not None:
                    return obj, (ll.decode() if ll is not None else None), None
                return None, None, (obj or b"").decode(errors="replace") or "LLVM code generation failed"
        except (BrokenPipeError, OSError):
            pass
        # the child died (an LLVM fatal error): its stderr says why
        self.close()
        try:
            with open(self.err_path or "", errors="replace") as f:
                err = f.read().strip()
        except OSError:
            err = ""
        self._unlink()
        return None, None, err or "LLVM code generation failed (the LLVM process ended)"

    def close(self) -> None:
        if self.pid is None:
            return
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None

    def _unlink(self) -> None:
        if self.err_path:
            try:
                os.unlink(self.err_path)
            except OSError:
                pass
            self.err_path = None

    def shutdown(self) -> None:
        self.close()
        self._unlink()


def _send(fd: int, data: bytes) -> None:
    msg = len(data).to_bytes(8, "little") + data
    view = memoryview(msg)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _recv(fd: int) -> bytes | None:
    head = _read_exact(fd, 8)
    if head is None:
        return None
    return _read_exact(fd, int.from_bytes(head, "little"))


def _serve(req: int, rep: int) -> None:
    """The worker's loop: load LLVM now (overlapping the parent's frontend), then serve requests."""
    from .lowering import object as llvm_object

    llvm_object._initialised()
    llvm_object.target_machine(llvm_object.DEFAULT_CPU, 2)
    while True:
        head = _recv(req)
        if head is None:
            return
        text = _recv(req)
        if text is None:
            return
        opts = json.loads(head)
        try:
            obj = llvm_object.emit_object(text.decode(), opt=opts["opt"])
            ll = llvm_object.optimised_ir(text.decode(), opt=opts["opt"]) if opts["ll"] else None
        except Exception as e:  # noqa: BLE001 - e.g. invalid IR: a pybpfgen bug, reported as internal
            _send(rep, b"err")
            _send(rep, f"internal: {type(e).__name__}: {e}".encode())
            if opts["ll"]:
                _send(rep, b"")
            continue
        _send(rep, b"ok")
        _send(rep, obj)
        if opts["ll"]:
            _send(rep, (ll or "").encode())


# ------------------------------------------------------------------ compiling
def metadata(module) -> dict:
    """What the loader needs beyond libbpf conventions (stored in the ``.pybpfgen`` section)."""
    from .target.progtypes import PROG_TYPES

    progs = {}
    for p in module.programs:
        d = {"type": p.progtype, "section": PROG_TYPES[p.progtype].section, "line": p.loc.line}
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
    (started here, before the frontend is imported); otherwise in a child forked per module.
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
    key = build_key(_sha256(raw), options) if cache is not None else ""
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
            cache.record(path, key, deps, [], {"skipped": res.skipped})
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
        res.timings["llvm (worker)"] = time.perf_counter() - t1
    else:
        from .lowering.object import BackendError, emit_object_guarded
        err = None
        try:
            obj = emit_object_guarded(ir_module, opt=opt)
        except BackendError as e:
            obj, err = None, e.message
        if obj is not None and emit_llvm:
            from .lowering.object import optimised_ir
            ll_text = optimised_ir(ir_module, opt=opt)
        res.timings["llvm (forked)"] = time.perf_counter() - t1
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
        cache.record(path, key, deps, outputs, {"object": os.path.basename(out),
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

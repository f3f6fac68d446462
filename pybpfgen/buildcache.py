"""Incremental builds: the build cache ``<outdir>/.pybpfgen-cache.json`` and what a module depends on.

Imports nothing heavy: a no-op rebuild reads the cache, compares stat signatures and returns.
"""
from __future__ import annotations

import json
import os
import sys
import time

from . import __version__

CACHE_FILE = ".pybpfgen-cache.json"
CACHE_FORMAT = 2
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

# A file is checked the way git's index checks the work tree: its stat signature (size, mtime, inode) first,
# its content hash only when the signature changed. A no-op rebuild therefore hashes nothing, and hashlib
# (which loads OpenSSL, ~2-5 ms) is imported only when something did change.


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


RACY_SECONDS = 2.0


def file_sig(path: str, for_record: bool = False) -> str | None:
    """The stat signature of a file (size, mtime and ctime in ns, inode), or None when it does not exist.
    (ctime too: a write that restores the old mtime still changes it.)

    ``for_record``: the signature to remember, "" for a file modified in the last :data:`RACY_SECONDS`
    (git's "racily clean" rule: a second write within the file system's timestamp granularity could keep
    size and mtime, so such a file is hashed again next time)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if for_record and time.time() - max(st.st_mtime, st.st_ctime) < RACY_SECONDS:
        return ""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


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
    ~400 KB of sources again (about a sixth of a no-op rebuild). Plain text, compared as is."""
    global _fingerprint_stat
    if _fingerprint_stat is None:
        parts = [f"pybpfgen {__version__} python {sys.version_info[:2]}", _llvmlite_version()]
        for path in _compiler_files():
            parts.append(f"{os.path.relpath(path, PACKAGE_DIR)} {file_sig(path)}")
        _fingerprint_stat = "\n".join(parts)
    return _fingerprint_stat


def compiler_fingerprint(known: tuple[str, str] | None = None) -> str:
    """A hash of the compiler: pybpfgen's version and every source file of the package (so any change
    to the compiler invalidates cached builds), llvmlite's version and the Python version.

    ``known``: a (:func:`compiler_stat`, fingerprint) pair recorded earlier; the fingerprint is reused
    when the files' signature still matches."""
    global _fingerprint
    if _fingerprint is None:
        stat = compiler_stat()  # before reading the files: a change while reading shows next time
        if known is not None and known[0] == stat and known[1]:
            _fingerprint = known[1]
    if _fingerprint is None:
        import hashlib

        h = hashlib.sha256(f"pybpfgen {__version__} python {sys.version_info[:2]}\n".encode())
        for path in _compiler_files():
            with open(path, "rb") as f:
                h.update(os.path.relpath(path, PACKAGE_DIR).encode() + b"\0" + f.read() + b"\0")
        h.update(_llvmlite_version().encode())
        _fingerprint = h.hexdigest()
    return _fingerprint


def _llvmlite_version() -> str:
    """llvmlite's version, read from its version file on sys.path without importing llvmlite (~40 ms)."""
    for entry in sys.path:
        try:
            with open(os.path.join(entry or ".", "llvmlite", "_version.py"), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        found = [ln.split("=", 1)[1].strip().strip("\"'") for ln in text.splitlines()
                 if ln.startswith(("version_version", "version_full"))]
        if not found:
            import zlib

            found = [f"{len(text)} bytes crc32 {zlib.crc32(text.encode()):08x}"]
        return "llvmlite " + " ".join(found)
    return "llvmlite ?"


def build_key(source_hash: str, options: dict) -> str:
    """The cache key of one module: its source, the options that change the outputs, the compiler (text,
    compared as is: hashing it again would buy nothing)."""
    return json.dumps({"source": source_hash, "options": options, "compiler": compiler_fingerprint()},
                      sort_keys=True)


class BuildCache:
    """``<outdir>/.pybpfgen-cache.json``::

        {"format": 2, "modules": {"/abs/src.py": {"key": "...", "source": ["<stat>", "<sha256>"],
                                                  "deps": {"/abs/dep.py": ["<stat>", "<sha256>"]},
                                                  "outputs": {"/abs/out.bpf.o": ["<stat>", "<sha256>"]}}}}

    ``deps`` holds every file the module imports (other than pybpfgen itself, which the key covers),
    recorded when it was compiled: a module is rebuilt when one of them changes or disappears. Each file
    is recorded with its stat signature and content hash; the hash is computed again only when the stat
    signature differs (a ``touch`` costs one hash, not a rebuild).
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

    def _unchanged(self, path: str, rec) -> bool:
        """Whether ``path`` still has the content recorded as ``[stat, sha256]`` (refreshing the stat)."""
        if not (isinstance(rec, list) and len(rec) == 2):
            return False
        sig = file_sig(path)
        if sig is None:
            return False
        if rec[0] and sig == rec[0]:
            return True
        if file_hash(path) != rec[1]:
            return False
        new = file_sig(path, for_record=True)  # same content, new stat (touched, copied): remember it
        if new != rec[0]:
            rec[0], self.dirty = new, True
        return True

    def source_hash(self, source: str, raw: bytes) -> str:
        """The content hash of ``source`` (whose bytes are ``raw``): the recorded one if its stat is unchanged
        (a changed stat with the same content is remembered, so that the next run need not hash it)."""
        e = self.modules.get(os.path.abspath(source))
        rec = e.get("source") if isinstance(e, dict) else None
        if isinstance(rec, list) and len(rec) == 2 and isinstance(rec[1], str):
            if rec[0] and rec[0] == file_sig(source):
                return rec[1]
            digest = _sha256(raw)
            if digest == rec[1]:
                new = file_sig(source, for_record=True)
                if new != rec[0]:
                    rec[0], self.dirty = new, True
            return digest
        return _sha256(raw)

    def is_current(self, source: str, key: str) -> dict | None:
        """The entry of ``source`` if its key matches and its dependencies and outputs are unchanged."""
        e = self.modules.get(os.path.abspath(source))
        if not isinstance(e, dict) or e.get("key") != key:
            return None
        for path, rec in list(e.get("deps", {}).items()) + list(e.get("outputs", {}).items()):
            if not self._unchanged(path, rec):
                return None
        return e

    def record(self, source: str, key: str, deps: list[str], outputs: list[str], extra: dict | None = None,
               source_hash: str | None = None) -> None:
        def rec(p: str) -> list:
            return [file_sig(p, for_record=True), file_hash(p)]

        entry: dict = {"key": key,
                       "deps": {os.path.abspath(d): rec(d) for d in sorted(set(deps))},
                       "outputs": {os.path.abspath(o): rec(o) for o in sorted(set(outputs))}}
        if source_hash is not None:
            entry["source"] = [file_sig(source, for_record=True), source_hash]
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

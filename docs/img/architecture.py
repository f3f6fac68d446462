#!/usr/bin/env python3
"""Draws docs/img/architecture.png (matplotlib): .venv/bin/python docs/img/architecture.py (from the repo root)."""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

fig, ax = plt.subplots(figsize=(11, 3.4))
ax.set_xlim(0, 11); ax.set_ylim(0, 3.4); ax.axis("off")
def box(x, y, w, h, title, sub, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04,rounding_size=0.08", fc=color, ec="#333333", lw=1))
    ax.text(x + w / 2, y + h - 0.22, title, ha="center", va="top", fontsize=9, weight="bold")
    ax.text(x + w / 2, y + h - 0.52, sub, ha="center", va="top", fontsize=7, linespacing=1.3)
def arrow(x0, y0, x1, y1, label=""):
    ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.2, color="#333333"))
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, label, ha="center", va="bottom", fontsize=6.5, color="#444444")
C, L, K = "#dbe9f6", "#e6f2dc", "#f7e3cf"
ax.text(3.3, 3.25, "pybpfgen compile (no root)", ha="center", fontsize=9, color="#1f4e79")
ax.text(9.0, 3.25, "pybpfgen load (root)", ha="center", fontsize=9, color="#38761d")
box(0.1, 1.5, 1.5, 1.4, "DSL module", "restricted Python\nimports pybpfgen.lang", "#eeeeee")
box(2.0, 1.5, 1.7, 1.4, "frontend", "ast → declarations\n+ type checker\nlocated diagnostics", C)
box(4.1, 1.5, 1.5, 1.4, "typed IR", "dataclasses,\na Loc on every node", C)
box(6.0, 1.5, 1.6, 1.4, "lowering", "llvmlite.ir + debug info\nLLVM O2 + emit_object\n(forked worker)", C)
box(8.1, 1.5, 1.6, 1.4, "<module>.bpf.o", "ELF, .BTF, .BTF.ext,\n.maps, .pybpfgen", "#eeeeee")
box(8.1, 0.05, 2.8, 1.15, "kernel_loader", "ELF/BTF parse → maps → relocation → PROG_LOAD\n→ links + pins (bpffs) → journal", L)
box(2.0, 0.05, 3.6, 1.15, "pybpfgen.testing", "runs the typed IR in Python with kernel\nsemantics: unit tests without root", C)
box(6.0, 0.05, 1.6, 1.15, "kernel", "verifier, JIT,\ncgroup + sockhash", K)
arrow(1.6, 2.2, 2.0, 2.2); arrow(3.7, 2.2, 4.1, 2.2); arrow(5.6, 2.2, 6.0, 2.2); arrow(7.6, 2.2, 8.1, 2.2)
arrow(9.1, 1.5, 9.1, 1.2, ""); arrow(8.1, 0.6, 7.6, 0.6, "bpf(2)")
arrow(4.85, 1.5, 4.0, 1.2, "")
fig.tight_layout()
fig.savefig("docs/img/architecture.png", dpi=110)

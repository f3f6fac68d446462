"""Every example of examples/gallery/ has a C twin, a kernel test, a README line, and is at most 1.0x its twin's
ELF instructions (clang-19 -O2 -mcpu=v3, as bench/insn_count.py --gallery reports)."""
import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import insn_count  # noqa: E402

PAIRS = insn_count.gallery_pairs()
MIN_EXAMPLES = 8  # raised as the gallery grows (issue: at least eight)


def test_gallery_size():
    assert len(PAIRS) >= MIN_EXAMPLES, [p[0] for p in PAIRS]


def test_every_example_has_twin_test_and_readme_line():
    readme = open(os.path.join(insn_count.GALLERY, "README.md")).read()
    for name, _py, c in PAIRS:
        assert os.path.exists(c), f"examples/gallery/{name}.py has no C twin {name}.bpf.c"
        test = os.path.join(ROOT, "tests", "examples", f"test_{name}.py")
        assert os.path.exists(test), f"examples/gallery/{name}.py has no kernel test tests/examples/test_{name}.py"
        assert f"`{name}`" in readme, f"examples/gallery/README.md does not list `{name}`"


def test_every_example_at_most_its_c_twin():
    if not shutil.which("clang-19"):
        pytest.skip("clang-19 not installed (apt-get install clang-19)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = insn_count.gallery_comparison(tmp)
    for row in rows:
        assert row["clang_total"], f"{row['name']}.bpf.c compiled to no program section"
        assert set(row["pybpfgen"]) == set(row["clang"]), (row["name"], row["pybpfgen"], row["clang"])
        assert row["ratio"] <= 1.0, f"{row['name']}: pybpfgen {row['pybpfgen']} vs clang {row['clang']}"

"""docs/tutorial.md is executable: every block it shows is run here (see tutorial_runner.py for the markup).

* Without root: the files are written, the compile error and the fix are checked, the unit tests run.
* As root (``kernel``): the whole tutorial, with the kernel half in a private bpffs + network namespace and
  a private child cgroup standing in for ``/sys/fs/cgroup/unified/shop``.
"""
from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tutorial_runner as tr  # noqa: E402

SHOP = "/sys/fs/cgroup/unified/shop"


@pytest.fixture(scope="module")
def blocks():
    return tr.parse()


def test_every_block_is_marked(blocks):
    bad = tr.unmarked(blocks)
    assert not bad, "blocks neither run nor marked {no-test: why}: " + ", ".join(b.where() for b in bad)
    assert any(b.kernel for b in blocks) and any("test" in b.attrs and not b.kernel for b in blocks)


def test_output_matching():
    assert tr.check_output("a ... c\n...\nlast", "x\na b c\ny\nlast") is None
    assert tr.check_output("b\na", "a\nb") == "a"  # order matters
    assert tr.check_output("exact", "exactly") == "exact"


def test_final_module_is_the_example(blocks, tmp_path):
    """Writing the files and applying the fix gives examples/webapp_redis.py, byte for byte."""
    for b in blocks:
        if "file" in b.attrs:
            (tmp_path / b.attrs["file"]).write_text(b.body)
        elif "patch" in b.attrs:
            tr.apply_patch(tmp_path / b.attrs["patch"], b.body)
    assert (tmp_path / "webapp_redis.py").read_text() == (tr.REPO / "examples" / "webapp_redis.py").read_text()


def test_tutorial_without_root(blocks, tmp_path):
    runner = tr.Runner(tmp_path, tr.base_env(tmp_path))
    runner.run(blocks, kernel=False)
    assert (tmp_path / "build" / "webapp_redis.bpf.o").is_file()


@pytest.mark.kernel
def test_tutorial_on_the_kernel(blocks, tmp_path):
    import kharness

    for tool in ("unshare", "nsenter", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (scripts/setup.sh installs it)")
    env = tr.PrivateKernelEnv()
    try:
        cg = kharness.cgroup2_root() / f"pybpfgen-tutorial-{secrets.token_hex(4)}"
        cg.mkdir()
        try:
            runner = tr.Runner(tmp_path, tr.base_env(tmp_path), substitute={SHOP: str(cg)},
                               wrap=lambda argv: env.wrap(argv, cwd=tmp_path))
            seen = {}

            def after(b, r):
                if "pingpong.py" in b.body and "policy remove" not in b.body:
                    st = runner.run_block(tr.Block("sh", {"test": "", "kernel": ""},
                                                   "pybpfgen status --json webapp_redis", b.line))
                    acc = json.loads(st.stdout)["objects"][0]["accelerator"]
                    seen["accelerated"] = acc
                if "pybpfgen unload" in b.body:
                    seen["unloaded"] = True

            try:
                runner.run(blocks, kernel=True, after=after)
            except AssertionError:
                print("\n".join(runner.log))
                raise
            assert seen["accelerated"]["policy_ports"] == [6379]
            assert seen["accelerated"]["redirected"] == 40000 and seen["accelerated"]["missed"] == 0
            assert seen.get("unloaded")
            assert not Path(cg).exists(), "the tutorial's clean-up removes the cgroup"
        finally:
            destroy_tree(cg)
    finally:
        env.close()


def destroy_tree(cg: Path) -> None:
    """Kill every process in the subtree and remove it (the tutorial's clean-up does this when it gets there)."""
    import kharness

    if not cg.exists():
        return
    kill = cg / "cgroup.kill"
    if kill.exists():
        kill.write_text("1")
    for child in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        kharness.destroy_cgroup(child)
    kharness.destroy_cgroup(cg)

"""DSL modules type-check with mypy and the pybpfgen plugin (editors and type checkers understand them)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytest.importorskip("mypy", reason="mypy is in the test extra (pip install -e '.[test]')")


def mypy(*paths, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--config-file",
                           os.path.join(ROOT, "pyproject.toml"), *paths], capture_output=True, text=True, cwd=cwd)


def test_every_dsl_module_of_the_repo_type_checks():
    paths = ["programs/accel.py", "bench/twin/accel_twin.py", "bench/twin/sockhash_floor.py"] + \
        [os.path.join("examples", f) for f in sorted(os.listdir(os.path.join(ROOT, "examples"))) if f.endswith(".py")]
    r = mypy(*paths)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_catches_mistakes_in_a_policy(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pybpfgen.lang import *\n\n"
                   "@sock_ops\n"
                   "def p(ctx: SockOps) -> int:\n"
                   "    x: u32 = ctx.local_prot\n"
                   "    bpf_get_netns_cooky(ctx)\n"
                   "    return x\n")
    r = mypy(str(bad))
    assert r.returncode == 1
    assert '"SockOps" has no attribute "local_prot"' in r.stdout
    assert 'Name "bpf_get_netns_cooky" is not defined' in r.stdout


def test_arrays_of_structs_type_check_as_lists_of_the_struct(tmp_path):
    src = tmp_path / "structs.py"
    src.write_text("from pybpfgen.lang import *\n\n"
                   "class Side(Struct):\n"
                   "    sent: u64\n\n"
                   "class Link(Struct):\n"
                   "    pub: Side[2]\n\n"
                   "@sock_ops\n"
                   "def p(ctx: SockOps) -> int:\n"
                   "    k = Link()\n"
                   "    k.pub[1].sent = 7\n"
                   "    k.pub[0].sant = 1\n"
                   "    return k.pub[1].sent\n")
    r = mypy(str(src))
    assert r.returncode == 1
    assert r.stdout.count("error:") == 1 and '"Side" has no attribute "sant"' in r.stdout, r.stdout

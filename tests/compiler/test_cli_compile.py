"""`pybpfgen compile`: options, exit codes, deterministic and incremental builds."""
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from pybpfgen import buildcache, cli, driver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCEL = os.path.join(ROOT, "programs", "accel.py")

SMALL = textwrap.dedent("""\
    from pybpfgen.lang import *

    counts = Hash(key=u32, value=u64, max_entries=16)


    @sock_ops
    def count(ctx: SockOps) -> int:
        c = counts.lookup(ctx.op)
        if c is None:
            counts.update(ctx.op, 1)
        else:
            c.value += 1
        return 1
    """)


def run(*argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small(tmp_path):
    src = tmp_path / "small.py"
    src.write_text(SMALL)
    return src


def test_compile_then_up_to_date_then_force(small, tmp_path, capsys):
    out = tmp_path / "out"
    code, o, e = run("compile", small, "-o", out, capsys=capsys)
    assert code == 0, e
    assert o.strip() == f"compiled {small} -> {out}/small.bpf.o"
    first = (out / "small.bpf.o").read_bytes()
    assert (out / buildcache.CACHE_FILE).exists()

    code, o, e = run("compile", small, "-o", out, capsys=capsys)
    assert code == 0 and o.strip() == f"up to date: {out}/small.bpf.o"

    code, o, e = run("compile", small, "-o", out, "--force", capsys=capsys)
    assert code == 0 and o.startswith("compiled ")
    assert (out / "small.bpf.o").read_bytes() == first  # deterministic


def test_output_is_byte_identical_across_runs_and_directories(tmp_path, capsys):
    objs = []
    for i in range(3):
        out = tmp_path / f"o{i}"
        assert run("compile", ACCEL, "-o", out, capsys=capsys)[0] == 0
        objs.append((out / "accel.bpf.o").read_bytes())
    assert objs[0] == objs[1] == objs[2]
    # and the same as the in-process path (no worker) used by the library API
    r = driver.compile_file(ACCEL, str(tmp_path / "lib"))
    assert open(r.output, "rb").read() == objs[0]


def test_same_object_in_a_fresh_interpreter(tmp_path, capsys):
    """Across processes too (hash randomisation, dict order, ids must not leak into the object)."""
    assert run("compile", ACCEL, "-o", tmp_path / "a", capsys=capsys)[0] == 0
    env = dict(os.environ, PYTHONHASHSEED="12345")
    p = subprocess.run([sys.executable, "-m", "pybpfgen", "compile", "-q", ACCEL, "-o", str(tmp_path / "b")],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "a" / "accel.bpf.o").read_bytes() == (tmp_path / "b" / "accel.bpf.o").read_bytes()


def test_rebuilds_when_source_changes_but_not_when_only_touched(small, tmp_path, capsys):
    out = tmp_path / "out"
    run("compile", small, "-o", out, capsys=capsys)
    os.utime(small, None)  # same content: still up to date (keyed by hashes, not times)
    assert run("compile", small, "-o", out, capsys=capsys)[1].startswith("up to date")
    small.write_text(SMALL.replace("max_entries=16", "max_entries=32"))
    code, o, _ = run("compile", small, "-o", out, capsys=capsys)
    assert code == 0 and o.startswith("compiled")


def test_rebuilds_when_output_is_missing_or_modified(small, tmp_path, capsys):
    out = tmp_path / "out"
    run("compile", small, "-o", out, capsys=capsys)
    obj = out / "small.bpf.o"
    good = obj.read_bytes()
    obj.write_bytes(good[:-1])
    assert run("compile", small, "-o", out, capsys=capsys)[1].startswith("compiled")
    assert obj.read_bytes() == good
    obj.unlink()
    assert run("compile", small, "-o", out, capsys=capsys)[1].startswith("compiled")


def test_rebuilds_when_options_or_compiler_change(small, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    run("compile", small, "-o", out, capsys=capsys)
    assert run("compile", small, "-o", out, "-O0", capsys=capsys)[1].startswith("compiled")
    assert run("compile", small, "-o", out, "-O0", capsys=capsys)[1].startswith("up to date")
    monkeypatch.setattr(buildcache, "_fingerprint", "a different compiler")
    assert run("compile", small, "-o", out, "-O0", capsys=capsys)[1].startswith("compiled")


def test_compiler_fingerprint_covers_the_package_sources():
    fp = buildcache.compiler_fingerprint()
    assert len(fp) == 64 and fp == buildcache.compiler_fingerprint()
    v = buildcache._llvmlite_version()
    import llvmlite
    assert v.startswith("llvmlite ") and llvmlite.__version__ in v, v


def test_a_noop_rebuild_hashes_nothing_and_a_touch_rebuilds_nothing(small, tmp_path):
    """Stat signatures first (git's index rule): a no-op rebuild imports neither hashlib nor the frontend;
    a file touched without a change is hashed once, not recompiled; a same-size edit is seen."""
    out = tmp_path / "out"
    code = ("import sys; from pybpfgen import cli; rc = cli.main(['compile', '-q', sys.argv[1], '-o', sys.argv[2]]);"
            "print(sorted(m for m in ('hashlib', 'pybpfgen.frontend', 'llvmlite') if m in sys.modules)); sys.exit(rc)")
    first = subprocess.run([sys.executable, "-c", code, small, str(out)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "hashlib" in first.stdout  # a build hashes its source, dependencies and outputs
    cache = buildcache.BuildCache(str(out))
    (entry,) = cache.modules.values()
    assert entry["source"][0] == ""  # recorded within the racy window: hashed again next time
    time.sleep(buildcache.RACY_SECONDS + 0.1)
    second = subprocess.run([sys.executable, "-c", code, small, str(out)], capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout.strip() == "['hashlib']", second.stdout  # re-hashed, refreshed
    third = subprocess.run([sys.executable, "-c", code, small, str(out)], capture_output=True, text=True)
    assert third.returncode == 0 and third.stdout.strip() == "[]", third.stdout  # nothing hashed
    st = os.stat(small)
    text = open(small).read()
    edited = text.replace("return 1", "return 0") if "return 1" in text else text.replace("return 0", "return 1")
    assert edited != text and len(edited) == len(text)
    with open(small, "w") as f:
        f.write(edited)
    os.utime(small, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime as before: the ctime tells
    fourth = subprocess.run([sys.executable, "-m", "pybpfgen", "compile", small, "-o", str(out)],
                            capture_output=True, text=True)
    assert fourth.returncode == 0 and "compiled" in fourth.stdout, fourth.stdout


def test_a_changed_dependency_invalidates_the_cache(tmp_path):
    """DSL modules may only import pybpfgen.lang today; the cache already records imported files."""
    (tmp_path / "shared.py").write_text("PORT = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from . import inner\n")
    (tmp_path / "pkg" / "inner.py").write_text("X = 2\n")
    src = tmp_path / "mod.py"
    text = "from pybpfgen.lang import *\nfrom shared import PORT\nimport pkg\nimport os\n"
    src.write_text(text)
    deps = buildcache.module_dependencies(str(src), text)
    assert deps == sorted(str(tmp_path / p) for p in ("shared.py", "pkg/__init__.py", "pkg/inner.py"))

    out = tmp_path / "out"
    out.mkdir()
    obj = out / "mod.bpf.o"
    obj.write_bytes(b"object")
    cache = buildcache.BuildCache(str(out))
    cache.record(str(src), "k", deps, [str(obj)])
    cache.save()
    cache = buildcache.BuildCache(str(out))
    assert cache.is_current(str(src), "k") is not None
    assert cache.is_current(str(src), "other key") is None
    (tmp_path / "pkg" / "inner.py").write_text("X = 3\n")  # a transitive import changed
    assert cache.is_current(str(src), "k") is None


def test_frontend_provided_dependencies_are_used():
    class M:
        dependencies = ["/x/b.py", "/x/a.py", "/x/a.py"]
    assert buildcache.module_dependencies("/x/m.py", "", M()) == ["/x/a.py", "/x/b.py"]


def test_damaged_cache_means_rebuild(small, tmp_path, capsys):
    out = tmp_path / "out"
    run("compile", small, "-o", out, capsys=capsys)
    (out / buildcache.CACHE_FILE).write_text("{not json")
    code, o, _ = run("compile", small, "-o", out, capsys=capsys)
    assert code == 0 and o.startswith("compiled")


def test_emit_llvm_writes_optimised_ir_next_to_the_object(small, tmp_path, capsys):
    out = tmp_path / "out"
    code, o, e = run("compile", small, "-o", out, "--emit-llvm", capsys=capsys)
    assert code == 0, e
    assert o.strip() == f"compiled {small} -> {out}/small.bpf.o (+ {out}/small.ll)"
    ll = (out / "small.ll").read_text()
    assert 'target triple = "bpf' in ll and "define" in ll and 'section "sockops"' in ll
    o0 = tmp_path / "o0"
    assert run("compile", small, "-o", o0, "--emit-llvm", "-O0", capsys=capsys)[0] == 0
    # optimised: mem2reg/SROA removed the locals that are not passed to helpers by address
    assert ll.count(" alloca ") < (o0 / "small.ll").read_text().count(" alloca ")
    # up to date with the .ll; a build without --emit-llvm is a different configuration
    assert run("compile", small, "-o", out, "--emit-llvm", capsys=capsys)[1].startswith("up to date")
    (out / "small.ll").unlink()
    assert run("compile", small, "-o", out, "--emit-llvm", capsys=capsys)[1].startswith("compiled")


TWIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "bench", "twin", "accel_twin.py")


@pytest.mark.parametrize("level", ["-O0", "-O1", "-O2", "-O3"])
def test_optimisation_levels(tmp_path, capsys, level):
    from kernel_loader.elf import parse_object
    code, _, e = run("compile", TWIN, "-o", tmp_path, level, capsys=capsys)
    assert code == 0, e
    obj = parse_object(str(tmp_path / "accel_twin.bpf.o"))
    n = sum(p.insn_count for p in obj.programs)
    assert (n > 80) == (level == "-O0"), n  # -O0 keeps every local on the stack
    if level != "-O0":  # the accelerator itself needs the optimiser to fit BPF's 512-byte stack
        assert run("compile", ACCEL, "-o", tmp_path, level, capsys=capsys)[0] == 0


def test_O0_stack_overflow_is_a_located_error(tmp_path, capsys):
    code, _, e = run("compile", ACCEL, "-o", tmp_path, "-O0", capsys=capsys)
    if code == 0:
        return  # fits: nothing to report
    assert code == 1 and "512 bytes of stack" in e and "accel.py:" in e and "Traceback" not in e


def test_check_only_writes_nothing(small, tmp_path, capsys):
    out = tmp_path / "out"
    code, o, e = run("compile", small, "-o", out, "--check", capsys=capsys)
    assert code == 0 and o.strip() == f"checked {small}" and not out.exists()
    bad = tmp_path / "bad.py"
    bad.write_text(SMALL.replace("ctx.op)", "ctx.opp)", 1))
    code, o, e = run("compile", bad, "-o", out, "--check", capsys=capsys)
    assert code == 1 and "bad.py:8:" in e and "SockOps has no field `opp`" in e
    assert "bad.py:9:" not in e  # `c` is not "used before it is assigned": a follow-on error is not reported
    assert "Traceback" not in e and "failed to check" in e and not out.exists()


def test_user_errors_exit_1_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(SMALL.replace("return 1\n", "return x\n"))
    code, _, e = run("compile", bad, "-o", tmp_path / "out", capsys=capsys)
    assert code == 1 and "error:" in e and "Traceback" not in e
    # a failed module is not recorded as up to date: the error is reported again
    code, _, e2 = run("compile", bad, "-o", tmp_path / "out", capsys=capsys)
    assert code == 1 and e2 == e
    code, _, e = run("compile", tmp_path / "missing.py", capsys=capsys)
    assert code == 1 and "no such file" in e


def test_backend_error_through_the_worker_is_located(tmp_path, capsys):
    fields = "\n".join(f"    f{i}: u64" for i in range(80))
    src = tmp_path / "big.py"
    src.write_text(f"from pybpfgen.lang import *\n\nclass Big(Struct):\n{fields}\n\n"
                   "m = Hash(key=Big, value=u32, max_entries=4)\n\n\n@sock_ops\ndef p(ctx: SockOps) -> int:\n"
                   "    m.update(Big(ctx.op), 1)\n    return 1\n")
    code, _, e = run("compile", src, "-o", tmp_path / "out", capsys=capsys)
    assert code == 1 and "512 bytes of stack" in e and "big.py:" in e and "Traceback" not in e
    # the worker died with LLVM; the next module gets a new one
    ok = tmp_path / "ok.py"
    ok.write_text(SMALL)
    code, o, e = run("compile", src, ok, "-o", tmp_path / "out", capsys=capsys)
    assert code == 1 and f"compiled {ok}" in o


def test_usage_errors_exit_2(capsys):
    for argv in (["compile"], ["compile", "x.py", "-O5"], ["frobnicate"]):
        with pytest.raises(SystemExit) as ei:
            cli.main(argv)
        assert ei.value.code == 2
    capsys.readouterr()
    assert cli.main([]) == 2


def test_internal_error_exits_70(small, tmp_path, capsys, monkeypatch):
    def boom(module):
        raise RuntimeError("simulated compiler bug")
    monkeypatch.setattr(driver, "build_ir", boom)
    code, _, e = run("compile", small, "-o", tmp_path / "out", capsys=capsys)
    assert code == 70 and "internal error" in e and "simulated compiler bug" in e


def test_directory_of_modules_and_quiet(tmp_path, capsys):
    d = tmp_path / "progs"
    d.mkdir()
    (d / "a.py").write_text(SMALL)
    (d / "b.py").write_text(SMALL.replace("count", "count_b"))
    (d / "not_dsl.py").write_text("print('hello')\n")
    code, o, e = run("compile", d, "-o", tmp_path / "out", "-q", capsys=capsys)
    assert code == 0 and o == "" and e == ""
    assert sorted(os.listdir(tmp_path / "out")) == [buildcache.CACHE_FILE, "a.bpf.o", "b.bpf.o"]
    code, o, _ = run("compile", d, "-o", tmp_path / "out", capsys=capsys)
    assert o.count("up to date: ") == 2


def _imports_after(argv, tmp_path):
    code = ("import sys, runpy\nsys.argv = ['pybpfgen'] + %r\n"
            "try:\n    from pybpfgen.cli import main; rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('llvmlite', 'kernel_loader') "
            "or m.startswith('pybpfgen.frontend') or m.startswith('pybpfgen.lowering')))\nprint(rc)\n") % (argv,)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    *_, mods, rc = p.stdout.strip().splitlines()
    return eval(mods), int(rc), p  # noqa: S307 - our own output


def test_noop_rebuild_imports_neither_frontend_nor_llvm(tmp_path):
    shutil.copy(ACCEL, tmp_path / "accel.py")
    mods, rc, p = _imports_after(["compile", "accel.py", "-o", "out"], tmp_path)
    assert rc == 0 and "llvmlite.binding" not in mods, p.stderr  # LLVM runs in the worker only
    mods, rc, p = _imports_after(["compile", "accel.py", "-o", "out"], tmp_path)
    assert rc == 0 and "up to date" in p.stdout
    # the LLVM worker's client (pybpfgen/lowering/worker.py: os and json only) is imported, never started
    assert [m for m in mods if m not in ("pybpfgen.lowering", "pybpfgen.lowering.worker")] == [], mods


def test_load_does_not_import_llvmlite(tmp_path):
    mods, rc, p = _imports_after(["load", "--help"], tmp_path)
    assert rc == 0 and not [m for m in mods if m.startswith("llvmlite")], mods
    assert "kernel_loader.cli" in mods


@pytest.mark.parametrize("argv", [
    ["compile", "a.py"],
    ["compile", "a.py", "b", "-o", "out", "-O0", "--emit-llvm", "-S", "--force", "-q"],
    ["compile", "--check", "a.py", "--output", "x"],
    ["compile", "-O3", "a.py", "--output=y", "--quiet"],
])
def test_fast_argument_parsing_agrees_with_argparse(argv):
    fast = cli.fast_compile_args(argv)
    assert fast is not None
    slow = cli.build_parser(loader=False).parse_args(argv)
    for k in ("paths", "output", "opt", "emit_llvm", "asm", "check", "force", "quiet", "timings"):
        assert getattr(fast, k) == getattr(slow, k), k


@pytest.mark.parametrize("argv", [["compile"], ["compile", "-h"], ["compile", "a.py", "-O5"], ["compile", "a.py", "-o"],
                                  ["compile", "a.py", "--bogus"], ["compile", "a.py", "--force=1"], ["load", "x"]])
def test_fast_argument_parsing_leaves_the_rest_to_argparse(argv):
    assert cli.fast_compile_args(argv) is None


def test_fast_argument_parsing_is_argparse_on_random_command_lines():
    """Both parsers come from one option table; on any command line the fast path accepts, it gives what
    argparse gives (and every option of the table is reachable through it)."""
    import contextlib
    import io

    from hypothesis import given, settings, strategies as st

    words = [f for flags, *_ in cli._COMPILE_OPTIONS for f in flags] + [
        "a.py", "dir", "-O0", "-O3", "-O9", "-oout", "--output=o2", "--output=", "-", "0", "2", "-h", "--bogus"]

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(words), max_size=7))
    def check(rest):
        argv = ["compile", *rest]
        fast = cli.fast_compile_args(argv)
        if fast is None:
            return
        with contextlib.redirect_stderr(io.StringIO()):
            slow = cli.build_parser(loader=False).parse_args(argv)  # SystemExit here: fast accepted junk
        for _flags, dest, *_ in cli._COMPILE_OPTIONS:
            assert getattr(fast, dest) == getattr(slow, dest), (argv, dest)
        assert fast.paths == slow.paths, argv

    check()
    for flags, dest, kind, _default, _text in cli._COMPILE_OPTIONS:  # each option alone, every spelling
        for f in flags:
            argv = ["compile", "a.py", f] + ({"flag": [], "level": ["3"], "value": ["out"]}[kind])
            fast = cli.fast_compile_args(argv)
            assert fast is not None, argv
            assert getattr(fast, dest) == getattr(cli.build_parser(loader=False).parse_args(argv), dest), argv


@pytest.mark.kernel
@pytest.mark.parametrize("level", ["-O0", "-O1", "-O3"])
def test_every_optimisation_level_loads_into_the_kernel(tmp_path, capsys, child_cgroup, pin_root, level):
    """-O2 is covered by the kernel e2e tests; the verifier must accept the other levels too."""
    import kernel_loader as kl
    src, name = (TWIN, "accel_twin") if level == "-O0" else (ACCEL, "accel")  # see test_optimisation_levels
    assert run("compile", src, "-o", tmp_path, level, capsys=capsys)[0] == 0
    try:
        kl.load(str(tmp_path / f"{name}.bpf.o"), cgroup=child_cgroup, pin_root=pin_root)
        assert os.path.isdir(os.path.join(pin_root, name))
    finally:
        kl.unload(pin_root=pin_root)


def test_output_file_name_writes_that_file(small, tmp_path, capsys, monkeypatch):
    """`-o b.bpf.o` writes the object under that name, not a directory called b.bpf.o (issue 14)."""
    target = tmp_path / "out" / "b.bpf.o"
    code, o, e = run("compile", small, "-o", target, capsys=capsys)
    assert code == 0, e
    assert target.is_file() and target.read_bytes()[:4] == b"\x7fELF"
    assert o.strip() == f"compiled {small} -> {target}"
    assert sorted(os.listdir(target.parent)) == ["b.bpf.o"]  # no build cache next to a named file
    monkeypatch.chdir(tmp_path)  # a bare file name: the current directory
    code, o, e = run("compile", small, "-o", "here.o", capsys=capsys)
    assert code == 0 and (tmp_path / "here.o").is_file() and o.strip() == f"compiled {small} -> here.o", e
    # the fast argument path and argparse agree
    code, o, e = run("compile", small, "--output=there.o", "-q", capsys=capsys)
    assert code == 0 and (tmp_path / "there.o").is_file()


def test_output_file_name_with_several_modules_is_an_error(small, tmp_path, capsys):
    other = tmp_path / "other.py"
    other.write_text(SMALL)
    code, o, e = run("compile", small, other, "-o", tmp_path / "x.bpf.o", capsys=capsys)
    assert code == 1 and not (tmp_path / "x.bpf.o").exists()
    assert e.splitlines()[0] == (f"pybpfgen: error: -o {tmp_path / 'x.bpf.o'} names one object file, but 2 BPF "
                                 f"modules were found in {small} {other}")
    assert "hint: give an output directory" in e and "Traceback" not in e


def test_output_directory_ending_in_o_stays_a_directory(small, tmp_path, capsys):
    d = tmp_path / "objs.o"
    d.mkdir()
    code, o, e = run("compile", small, "-o", d, capsys=capsys)
    assert code == 0 and (d / "small.bpf.o").is_file(), e

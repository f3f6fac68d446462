"""Every user error is one located message with the source line, never a traceback."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROG = """
counts = Hash(key=u32, value=u64, max_entries=16)

@sock_ops
def p(ctx: SockOps) -> int:
{body}
"""


def body(code: str) -> str:
    return PROG.format(body="\n".join("    " + line for line in code.strip().splitlines()))


def one_error(c, line=None):
    assert len(c.errors) == 1, [d.format() for d in c.result.diagnostics]
    d = c.errors[0]
    if line is not None:
        assert d.loc.line == line, d.format()
    assert c.result.output is None
    return d


def test_lookup_without_none_check_is_a_compile_error(compile_src):
    c = compile_src(body("v = counts.lookup(1)\nv.value += 1\nreturn 1"))
    d = one_error(c, line=8)
    assert "may be None" in d.message
    assert "is not None" in d.hint


@pytest.mark.parametrize("check", [
    "if v is not None:\n    v.value += 1\nreturn 1",
    "if v is None:\n    return 1\nv.value += 1\nreturn 1",
    "if v:\n    v.value += 1\nreturn 1",
    "if not v:\n    return 1\nv.value += 1\nreturn 1",
    "if v is not None and v.value > 3:\n    v.value = 0\nreturn 1",
    "if v is None or v.value == 0:\n    return 1\nv.value -= 1\nreturn 1",
])
def test_none_checks_narrow_the_lookup(compile_src, check):
    c = compile_src(body("v = counts.lookup(1)\n" + check))
    assert not c.errors, [d.format() for d in c.errors]
    assert c.result.output


def test_narrowing_ends_when_the_variable_is_reassigned(compile_src):
    c = compile_src(body("v = counts.lookup(1)\nif v is None:\n    return 1\nv = counts.lookup(2)\nv.value = 1\nreturn 1"))
    one_error(c, line=11)


def test_narrowing_does_not_leak_out_of_the_branch(compile_src):
    c = compile_src(body("v = counts.lookup(1)\nif v is not None:\n    v.value = 2\nv.value = 1\nreturn 1"))
    one_error(c, line=10)


def test_missing_return(compile_src):
    c = compile_src(body("x = 1"))
    d = one_error(c)
    assert "without returning" in d.message and "return 1" in d.hint


def test_use_before_assignment_on_some_path(compile_src):
    c = compile_src(body("if ctx.op == 4:\n    x = 1\nreturn x"))
    d = one_error(c, line=9)
    assert "before it is assigned" in d.message


def test_implicit_narrowing_needs_a_cast(compile_src):
    c = compile_src(body("x: u64 = ctx.bytes_acked\ny: u32 = x\nreturn 1"))
    d = one_error(c, line=8)
    assert "u64 to u32" in d.message and "u32(x)" in d.hint
    assert not compile_src(body("x: u64 = ctx.bytes_acked\ny: u32 = u32(x)\nreturn 1")).errors


def test_constant_out_of_range(compile_src):
    d = one_error(compile_src(body("x: u8 = 256\nreturn 1")), line=7)
    assert "does not fit in u8" in d.message


def test_division_by_constant_zero(compile_src):
    d = one_error(compile_src(body("x: u32 = ctx.op\nx = x // 0\nreturn 1")), line=8)
    assert "division by zero" in d.message


def test_shift_out_of_range(compile_src):
    d = one_error(compile_src(body("x: u32 = ctx.op\nx = x << 32\nreturn 1")), line=8)
    assert "shift count" in d.message


def test_unknown_context_field_lists_the_fields(compile_src):
    d = one_error(compile_src(body("return ctx.nope")), line=7)
    assert "SockOps has no field `nope`" in d.message and "local_port" in d.hint


def test_readonly_context_field(compile_src):
    d = one_error(compile_src(body("ctx.family = 2\nreturn 1")), line=7)
    assert "read-only" in d.message


def test_writable_reply(compile_src):
    assert not compile_src(body("ctx.reply = 5\nreturn 1")).errors


def test_helper_not_allowed_in_program_type(compile_src):
    c = compile_src("""
        class K(Struct):
            a: u32
        socks = SockHash(key=K, max_entries=8)

        @sock_ops
        def p(ctx: SockOps) -> int:
            socks.redirect(ctx, K(1), BPF_F_INGRESS)
            return 1
    """)
    d = one_error(c, line=9)
    assert "msg_redirect_hash" in d.message and "sock_ops" in d.message and "sk_msg" in d.hint


def test_loops_are_rejected_with_advice(compile_src):
    d = one_error(compile_src(body("while True:\n    pass\nreturn 1")), line=7)
    assert "loops" in d.message and "range" in d.hint


def test_several_errors_in_one_run(compile_src):
    c = compile_src(body("a: u8 = 1000\nb = nosuch\nc = ctx.nope\nreturn 1"))
    assert [d.loc.line for d in c.errors] == [7, 8, 9]


def test_struct_errors(compile_src):
    c = compile_src("""
        class K(Struct):
            a: u32
            b: int
    """)
    d = one_error(c, line=5)
    assert "no fixed width" in d.message


def test_map_declaration_errors(compile_src):
    d = one_error(compile_src("m = Hash(key=u32, max_entries=4)\n"), line=2)
    assert "needs a value type" in d.message
    d = one_error(compile_src("m = Hash(u32, u32, 4)\n"), line=2)
    assert "keyword" in d.message


def test_sk_msg_must_name_a_sockhash(compile_src):
    c = compile_src("""
        m = Hash(key=u32, value=u32, max_entries=4)
        @sk_msg(m)
        def r(msg: SkMsg) -> int:
            return SK_PASS
    """)
    d = one_error(c, line=4)
    assert "SockHash" in d.message


def test_wrong_context_annotation(compile_src):
    c = compile_src("""
        @sock_ops
        def r(msg: SkMsg) -> int:
            return 1
    """)
    d = one_error(c, line=4)
    assert "SockOps" in d.message


def test_syntax_error_is_located(compile_src):
    d = one_error(compile_src("def (:\n"), line=2)
    assert "syntax" in d.message


def test_import_of_other_modules_is_rejected(compile_src):
    d = one_error(compile_src("import os\n"), line=2)
    assert "pybpfgen.lang" in d.hint


def test_formatted_diagnostic_shows_source_and_caret(compile_src):
    c = compile_src(body("x: u8 = 256\nreturn 1"))
    text = c.errors[0].format({c.path: open(c.path).read()})
    lines = text.splitlines()
    assert lines[0].startswith(f"{c.path}:7:13: error: constant 256 does not fit in u8")
    assert lines[1].endswith("    x: u8 = 256")
    assert lines[2].strip().startswith("|") and "^" in lines[2]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pybpfgen", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_user_error_exit_code_and_no_traceback(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("from pybpfgen.lang import *\n\n@sock_ops\ndef p(ctx: SockOps) -> int:\n    return ctx.nope\n")
    r = run_cli("compile", str(src), "-o", str(tmp_path / "out"))
    assert r.returncode == 1
    assert f"{src}:5:12: error: SockOps has no field `nope`" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "bad.bpf.o").exists()


def test_cli_missing_path(tmp_path):
    r = run_cli("compile", str(tmp_path / "nope"))
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_cli_directory_without_modules(tmp_path):
    (tmp_path / "x.py").write_text("print(1)\n")
    r = run_cli("compile", str(tmp_path))
    assert r.returncode == 1 and "no BPF modules" in r.stderr


def test_cli_compiles_programs_directory(tmp_path):
    r = run_cli("compile", os.path.join(ROOT, "programs"), "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "accel.bpf.o").exists()


def test_cli_usage_error():
    r = run_cli("compile")
    assert r.returncode == 2


def test_stack_limit_is_a_located_error_not_an_exit(compile_src):
    fields = "\n".join(f"    f{i}: u64" for i in range(80))
    c = compile_src(f"""
class Big(Struct):
{fields}
m = Hash(key=Big, value=u32, max_entries=4)

@sock_ops
def p(ctx: SockOps) -> int:
    m.update(Big(ctx.op), 1)
    return 1
""")
    d = one_error(c)
    assert "512 bytes of stack" in d.message and "PerCPUArray" in d.hint
    assert d.loc.line == 88 and d.loc.path == c.path


def test_a_function_defined_twice_is_located(compile_src):
    """Python lets a later `def` replace an earlier one; in a BPF module that is a mistake (found by the
    frontend fuzzer, which used to crash in lowering on the duplicate name)."""
    src = "def helper(x: u32) -> u32:\n    return x + 1\n\n\ndef helper(x: u32) -> u32:\n    return x + 2\n" + \
        body("return i32(helper(1))")
    c = compile_src(src)
    d = one_error(c, line=6)  # (the test header is line 1)
    assert "`helper` is already defined at line 2" in d.message

"""The verifier's complexity limits come with advice located at the loop (kernel_loader/complexity.py), and a
computed return value outside the program type's range is reported on its `return` line (issue 14)."""
from __future__ import annotations

import re
import struct

import textwrap
from types import SimpleNamespace

import pytest

import kernel_loader as kl
from kernel_loader import complexity
from kernel_loader.btf import LineInfo
from kernel_loader.verifier import VerifierError

from conftest import compile_dsl

LOOP = textwrap.dedent("""\
    from pybpfgen.lang import *

    h = Hash(key=u32, value=u64, max_entries=16)
    hits = Global(u64)

    @sock_ops
    def scan(ctx: SockOps) -> int:
        for i in range(BOUND):
            if h.lookup(i) is not None:
                hits.value += 1
        return 1
    """)


def _insn(code: int, off: int = 0, imm: int = 0, regs: int = 0) -> bytes:
    return struct.pack("<BBhi", code, regs, off, imm)


def _linked(insns: bytes, lines: list[tuple[int, int, str]]):
    """What the loader links (kernel_loader.program.LinkedProgram): the code and its line info."""
    infos = [LineInfo(i, 0, 0, line << 10, "prog.py", text) for i, line, text in lines]
    return SimpleNamespace(insns=bytearray(insns), line_info=infos,
                           source_at=lambda i: max((li for li in infos if li.insn_off <= i),
                                                   key=lambda li: li.insn_off, default=None))


# a loop: 0: w1 = 0; 1: call; 2: if r0 != 0 goto +0 ... the shape pybpfgen emits for `for` with a lookup
PROG = b"".join([
    _insn(0xB4),                       # 0: w7 = 0
    _insn(0x85, imm=1),                # 1: call (the body)
    _insn(0x55, off=1),                # 2: if r0 != 0 goto 4   (a data-dependent branch inside the iteration)
    _insn(0xB4),                       # 3: w1 = 0
    _insn(0x04, imm=1),                # 4: w7 += 1
    _insn(0x56, off=-6, imm=100),      # 5: if w7 != 100 goto 0  (the back edge; falls out of the loop)
    _insn(0x95),                       # 6: exit
])


def test_complexity_messages_are_recognised():
    assert complexity.kind_of("The sequence of 8193 jumps is too complex.") == "jumps"
    assert complexity.kind_of("BPF program is too large. Processed 1000001 insn") == "insns"
    assert complexity.kind_of("infinite loop detected at insn 3") == "infinite"
    assert complexity.kind_of("back-edge from insn 7 to 2") == "back-edge"
    assert complexity.kind_of("invalid mem access 'scalar'") is None


def test_advice_names_the_loop_and_a_bound_that_fits():
    linked = _linked(PROG, [(0, 8, "for i in range(20000):"), (1, 9, "if h.lookup(i) is not None:")])
    text, file, line = complexity.advice("The sequence of 8193 jumps is too complex.", 2, linked)
    assert (file, line) == ("prog.py", 8)
    assert "`for i in range(20000):`" in text and "runs 20000 times" in text
    assert "1 branch to come back to" in text and "at most about 7300 iterations" in text
    text, _f, _l = complexity.advice("BPF program is too large. Processed 1000001 insn", 4, linked)
    assert "6 instructions each" in text and "can double the paths" in text
    text, file, line = complexity.advice("back-edge from insn 5 to 0", 5, linked)
    assert "CAP_BPF" in text and line is None
    assert complexity.advice("R1 invalid mem access 'scalar'", 2, linked) is None


def test_advice_reads_c_loops_too():
    linked = _linked(PROG, [(0, 12, "for (__u32 i = 0; i < 50000; i++) {")])
    text, _f, line = complexity.advice("The sequence of 8193 jumps is too complex.", 2, linked)
    assert line == 12 and "runs 50000 times" in text


def test_verifier_error_carries_the_advice_at_the_loop():
    linked = _linked(PROG, [(0, 8, "for i in range(20000):"), (2, 9, "if h.lookup(i) is not None:")])
    log = "2: (55) if r0 != 0x0 goto pc+1\nThe sequence of 8193 jumps is too complex.\n"
    e = VerifierError("scan", OSError(7, "E2BIG"), log, linked, "prog.bpf.o")
    assert e.source_line == 8 and e.advice and "at most about" in e.advice
    first = str(e).splitlines()[0]
    assert "at prog.py:8" in first and "bound the loop to at most about 7300 iterations" in first


def _load(tmp_path, source: str, name: str, pin_root: str, cgroup: str):
    src = tmp_path / f"{name}.py"
    src.write_text(source)
    obj = compile_dsl(src, tmp_path / f"out-{name}")
    return kl.load(str(obj), cgroup=cgroup, pin_root=pin_root)


@pytest.mark.kernel
def test_too_complex_loop_gets_a_bound_that_the_kernel_accepts(tmp_path, pin_root, test_cgroup):
    with pytest.raises(VerifierError) as ei:
        _load(tmp_path, LOOP.replace("BOUND", "20000"), "scan", pin_root, test_cgroup)
    e = ei.value
    assert "The sequence of 8193 jumps is too complex" in str(e)
    assert e.source_file.endswith("scan.py") and e.source_line == 8, str(e)
    m = re.search(r"bound the loop to at most about (\d+) iterations", str(e))
    assert m, str(e)
    bound = int(m.group(1))
    assert 1000 < bound < 20000
    _load(tmp_path, LOOP.replace("BOUND", str(bound)), "scan2", pin_root, test_cgroup)  # the advice works
    kl.unload(None, pin_root=pin_root)


@pytest.mark.kernel
def test_computed_return_out_of_range_is_reported_on_its_return_line(tmp_path, pin_root, test_cgroup):
    source = textwrap.dedent("""\
        from pybpfgen.lang import *

        @sock_ops
        def tune(ctx: SockOps) -> int:
            x: u32 = 1
            if ctx.op == BPF_SOCK_OPS_TCP_CONNECT_CB:
                x = ctx.op
            bpf_printk("op %u", ctx.op)
            return x
        """)
    with pytest.raises(VerifierError) as ei:
        _load(tmp_path, source, "tune", pin_root, test_cgroup)
    e = ei.value
    assert "should have been in [0, 1]" in str(e)
    assert e.source_line == 9 and e.source_text.strip() == "return x", str(e)





@pytest.mark.kernel
def test_out_of_range_return_among_several_computed_ones_names_them(tmp_path, pin_root, test_cgroup):
    source = textwrap.dedent("""\
        from pybpfgen.lang import *

        @sock_ops
        def tune(ctx: SockOps) -> int:
            if ctx.op == BPF_SOCK_OPS_TCP_CONNECT_CB:
                return ctx.op
            x: u32 = ctx.op & 1
            bpf_printk("op %u", ctx.op)
            return x
        """)
    with pytest.raises(VerifierError) as ei:
        _load(tmp_path, source, "tune2", pin_root, test_cgroup)
    e = ei.value
    assert "should have been in [0, 1]" in str(e)
    assert e.source_line == 6 and e.source_text.strip() == "return ctx.op", str(e)
    assert "one of the returns at lines 6, 9" in str(e).splitlines()[0]

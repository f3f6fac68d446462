"""Null checks the compiler accepts load on the kernel: two pointers checked in one condition (`a is None and
b is None`, nested ifs, `or`) of ring buffer reservations and map lookups. LLVM folds such checks into
`(a | b) == 0`, which the verifier refuses ("pointer |= pointer prohibited"); the lowering keeps each check
opaque (llvm.bpf.passthrough). And a reservation's own field as the flags of its submit."""
import textwrap

import pytest

import kernel_loader as kl
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel

HEAD = """
from pybpfgen.lang import *

class Args(Struct):
    n: u32
    m: u32

class Rec(Struct):
    seq: u64
    tag: u32

rb = RingBuf(event=Rec, max_entries=4096)
rb2 = RingBuf(event=Rec, max_entries=4096)
arr = Array(value=u64, max_entries=4)
h = Hash(key=u32, value=u64, max_entries=4)
"""

PROGRAMS = {
    "reservations_and": """
        a = rb.reserve()
        b = rb2.reserve()
        if a is None and b is None:
            return 0
        if a is not None:
            rb.submit(a)
        if b is not None:
            rb2.submit(b)
        return 1
    """,
    "reservations_nested": """
        a = rb.reserve()
        b = rb2.reserve()
        if a is None:
            if b is None:
                return 0
        if a is not None:
            rb.submit(a)
        if b is not None:
            rb2.submit(b)
        return 1
    """,
    "lookups_and": """
        a = arr.lookup(0)
        b = arr.lookup(1)
        if a is None and b is None:
            return 0
        if a is not None:
            a.value = 1
        if b is not None:
            b.value = 2
        return 1
    """,
    "lookups_or": """
        a = h.lookup(args.n)
        b = h.lookup(args.m)
        if a is not None or b is not None:
            return 1
        return 0
    """,
    "submit_flags_from_the_record": """
        a = rb.reserve()
        if a is None:
            return 0
        a.tag = BPF_RB_NO_WAKEUP
        rb.submit(a, a.tag)
        return 1
    """,
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_the_kernel_accepts_what_the_compiler_accepts(name, tmp_path, pin_root):
    body = textwrap.indent(textwrap.dedent(PROGRAMS[name]).strip(), "    ")
    src = tmp_path / f"{name}.py"
    src.write_text(HEAD + f"\n@syscall\ndef prog(args: Args) -> int:\n{body}\n")
    r = compile_file(str(src), str(tmp_path))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, pin_root=str(pin_root))   # raised VerifierError before the fix
    kl.unload(res.name, pin_root=str(pin_root))

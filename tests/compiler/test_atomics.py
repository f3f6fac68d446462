"""Atomic operations on shared memory: atomic_add, atomic_fetch_add, atomic_xchg, atomic_cmpxchg.

The checker's errors (message, line, column), the BPF_ATOMIC instructions in the object (u32 and u64), the
interpreter's results, and, as root, the kernel's verifier accepting them and BPF_PROG_TEST_RUN agreeing with
pybpfgen.testing.
"""
import os
import re
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader.elf import parse_object
from kernel_loader.syscall import Syscall
from pybpfgen import cli, disasm, testing
from pybpfgen.driver import compile_file
from pybpfgen.frontend.module import parse_module

# ==================================================================== diagnostics
MODULE = """
class V(Struct):
    flag: u8
    half: u16
    hits: u32
    total: u64
    lo: i32
    arr: u64[4]

m = Hash(key=u32, value=V, max_entries=8)
g = Global(u64)
limit = Config(u32, 3)

@sock_ops
def p(ctx: SockOps) -> int:
    r = m.lookup(1)
    if r is None:
        return 1
{body}
    return 1
"""
BODY_LINE = 2 + MODULE.split("{body}")[0].count("\n")  # line 1 is the `from pybpfgen.lang import *` header


def module(body: str) -> str:
    return MODULE.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    "))


def only_error(c):
    assert len(c.errors) == 1, [d.format() for d in c.result.diagnostics]
    assert c.result.output is None
    return c.errors[0]


LOCAL = " is a local variable: atomics act on memory shared between CPUs (a map value field or a Global); " \
        "a local variable needs none"
CTX = " is in the program context: atomics act on memory shared between CPUs (a map value field or a Global)"
# (body: the error is on its last line, the text the caret points at, message, hint)
MISUSES = {
    "local variable": ("x: u64 = 0\natomic_add(x, 1)", "x", "`x`" + LOCAL, "`x += 1`"),
    "field of a local": ("k = V(hits=1)\natomic_fetch_add(k.hits, 1)", "k.hits", "`k.hits`" + LOCAL, "`k.hits += 1`"),
    "u8 field": ("atomic_add(r.value.flag, 1)", "r.value.flag",
                 "BPF has no 8-bit atomic operations: `r.value.flag` is a u8", "u32, u64, i32 or i64"),
    "u16 field": ("atomic_xchg(r.value.half, 1)", "r.value.half",
                  "BPF has no 16-bit atomic operations: `r.value.half` is a u16", "u32, u64, i32 or i64"),
    "struct value": ("atomic_add(r.value, 1)", "r.value",
                     "atomic_add() acts on a u32, u64, i32 or i64, and `r.value` is a V", "one integer field"),
    "array field": ("atomic_add(r.value.arr, 1)", "r.value.arr",
                    "atomic_add() acts on a u32, u64, i32 or i64, and `r.value.arr` is a u64[4]", "element"),
    "Config": ("atomic_add(limit.value, 1)", "limit.value",
               "`limit` is a Config: programs can only read it", "Global(...)"),
    "writable context field": ("atomic_add(ctx.reply, 1)", "ctx.reply", "`ctx.reply`" + CTX,
                               "verifier rejects atomic operations"),
    "context field": ("n = atomic_fetch_add(ctx.op, 1)", "ctx.op", "`ctx.op`" + CTX,
                      "verifier rejects atomic operations"),
    "lookup result without .value": ("atomic_add(r, 1)", "r",
                                     "`r` is a reference: atomics act on the integer it points to", "`r.value`"),
    "Global without .value": ("atomic_xchg(g, 1)", "g",
                              "`g` is a reference: atomics act on the integer it points to", "`g.value`"),
    "constant": ("atomic_add(5, 1)", "5",
                 "atomic_add() acts on an integer in memory shared between CPUs, not on `5`", "r.value.hits"),
    "unchecked lookup": ("q = m.lookup(2)\natomic_add(q.value.hits, 1)", "q.value",
                         "`q` may be None here: a map lookup finds nothing when the key is absent",
                         "`if q is not None:`"),
    "unbounded index": ("atomic_add(r.value.arr[ctx.op], 1)", "ctx.op",
                        "the index of `r.value.arr` must provably be below 4", "`i & 3`"),
    "too few arguments": ("atomic_cmpxchg(r.value.hits, 1)", "atomic_cmpxchg",
                          "`atomic_cmpxchg()` is missing argument `new`", None),
    "too many arguments": ("atomic_add(r.value.hits, 1, 2)", "atomic_add",
                           "`atomic_add()` takes at most 2 arguments (place, value)", None),
    "unknown keyword": ("atomic_xchg(r.value.hits, val=3)", "3",
                        "`atomic_xchg()` has no parameter `val`", "place, value"),
    "value wider than the place": ("atomic_add(r.value.hits, ctx.bytes_acked)", "ctx.bytes_acked",
                                   "cannot implicitly convert u64 to u32: values may be lost", "u32(ctx.bytes_acked)"),
    "constant that does not fit": ("atomic_fetch_add(r.value.hits, -1)", "-1",
                                   "constant -1 does not fit in u32", "u32(-1)"),
    "expected of another signedness": ("atomic_cmpxchg(r.value.lo, 0, ctx.op)", "ctx.op",
                                       "cannot implicitly convert u32 to i32: values may be lost", "i32(ctx.op)"),
    "result of atomic_add": ("y = atomic_add(r.value.hits, 1)", "atomic_add",
                             "this call returns nothing", "atomic_fetch_add() returns the old value"),
}


@pytest.mark.parametrize("case", sorted(MISUSES))
def test_misuse_is_a_located_error(compile_src, case):
    body, caret, message, hint = MISUSES[case]
    c = compile_src(module(body))
    d = only_error(c)
    last = body.splitlines()[-1]
    line = BODY_LINE + len(body.splitlines()) - 1
    col = 4 + re.search(rf"(?<![\w.]){re.escape(caret)}", last).start() + 1  # 1-based, as printed; indented by 4
    assert d.message == message
    assert d.format().startswith(f"{c.path}:{line}:{col}: error: {message}"), d.format()
    if hint is None:
        assert d.hint is None
    else:
        assert hint in d.hint, d.hint


def test_atomics_on_the_context_of_a_syscall_program_are_errors(compile_src):
    c = compile_src("""
        class Args(Struct):
            out: u64

        @syscall
        def s(ctx: Args) -> int:
            atomic_add(ctx.out, 1)
            return 0
    """)
    d = only_error(c)
    assert (d.loc.line, d.loc.col) == (8, 15)
    assert d.message == "`ctx.out`" + CTX


def test_allowed_places_and_operands(compile_src):
    c = compile_src(module("""
        atomic_add(r.value.hits, 1)
        atomic_add(r.value.total, ctx.op)        # u32 widened to u64
        atomic_add(r.value.lo, -1)               # i32: a negative constant fits
        atomic_add(r.value.arr[ctx.op & 3], 2)   # an element with a proven index
        atomic_add(g.value, 1)
        old = atomic_fetch_add(r.value.hits, u32(-1))
        atomic_xchg(r.value.total, 0)            # the old value may be discarded
        if atomic_cmpxchg(r.value.lo, 0, 1) == 0:
            ctx.reply = old
        """) + textwrap.dedent("""
        gs = Global(V)

        def bump(ctx: SockOps) -> u64:
            return atomic_fetch_add(gs.value.total, ctx.op)   # in a function, on a Global struct's field
        """))
    assert not c.errors and not c.warnings, [d.format() for d in c.result.diagnostics]
    assert c.result.output


# ==================================================================== the instructions
# BPF_STX | BPF_ATOMIC | size; the imm selects the operation (RFC 9669 5.3)
STX_ATOMIC_W, STX_ATOMIC_DW = 0xC3, 0xDB
ADD, FETCH_ADD, XCHG, CMPXCHG = 0x00, 0x01, 0xE1, 0xF1

WIDTHS = """
class V(Struct):
    pad: u8
    a: {t}
    b: {t}
    c: {t}
    d: {t}

vals = Array(value=V, max_entries=1)

@socket_filter
def prog(ctx: SkBuff) -> int:
    r = vals.lookup(0)
    if r is None:
        return 0
    atomic_add(r.value.a, {t}(ctx.len))
    n = atomic_fetch_add(r.value.b, {t}(ctx.len))
    n += atomic_xchg(r.value.c, {t}(ctx.mark))
    n += atomic_cmpxchg(r.value.d, {t}(ctx.len), {t}(ctx.mark))
    return i32(n)
"""


@pytest.mark.parametrize("t, code, reg, size", [("u32", STX_ATOMIC_W, "w", 4), ("i32", STX_ATOMIC_W, "w", 4),
                                                  ("u64", STX_ATOMIC_DW, "r", 8), ("i64", STX_ATOMIC_DW, "r", 8)])
def test_each_operation_is_one_atomic_instruction(compile_src, t, code, reg, size):
    c = compile_src(WIDTHS.format(t=t))
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    (f,) = obj.functions
    insns = disasm.decode(obj.sections[f.section].data[f.offset:f.end])
    atomics = [i for i in insns if i.code & 0xE7 == disasm.STX | disasm.MODE_ATOMIC]
    # a, b, c, d follow the u8 at their natural alignment
    a, b, c_, d = (size * k for k in range(1, 5))
    assert [(i.code, i.imm, i.off) for i in atomics] == [(code, ADD, a), (code, FETCH_ADD, b), (code, XCHG, c_),
                                                          (code, CMPXCHG, d)]
    text = [disasm.format_insn(i) for i in atomics]
    bits = size * 8
    assert re.fullmatch(rf"lock \*\(u{bits} \*\)\(r\d \+ {a}\) \+= r\d", text[0]), text
    assert re.fullmatch(rf"{reg}(\d) = atomic_fetch_add\(\(u{bits} \*\)\(r\d \+ {b}\), {reg}\1\)", text[1]), text
    xchg = "xchg_64" if bits == 64 else "xchg32_32"
    assert re.fullmatch(rf"{reg}(\d) = {xchg}\(r\d \+ {c_}, {reg}\1\)", text[2]), text
    cmpxchg = "cmpxchg_64" if bits == 64 else "cmpxchg32_32"
    assert re.fullmatch(rf"{reg}0 = {cmpxchg}\(r\d \+ {d}, {reg}0, {reg}\d\)", text[3]), text


def test_the_listing_shows_each_atomic_under_its_line(compile_src, capsys):
    c = compile_src(WIDTHS.format(t="u64"))
    assert cli.main(["disasm", "--no-raw", c.result.output]) == 0
    out = capsys.readouterr().out
    blocks: dict[str, str] = {}
    for line, insns in re.findall(r"^; \d+: (.*)\n((?:\s+\d+:  .*\n)+)", out, re.M):
        blocks[line] = blocks.get(line, "") + insns
    assert "lock *(u64 *)" in blocks["atomic_add(r.value.a, u64(ctx.len))"]
    assert "= atomic_fetch_add((u64 *)" in blocks["n = atomic_fetch_add(r.value.b, u64(ctx.len))"]
    assert "= xchg_64(" in blocks["n += atomic_xchg(r.value.c, u64(ctx.mark))"]
    assert "r0 = cmpxchg_64(" in blocks["n += atomic_cmpxchg(r.value.d, u64(ctx.len), u64(ctx.mark))"]


# ==================================================================== semantics: interpreter and kernel
OPS = """
from pybpfgen.lang import *

class V(Struct):
    hits: u32
    total: u64
    lo: i32
    big: i64
    last: u64
    slots: u32[4]

class Args(Struct):
    key: u32
    d32: u32
    d64: u64
    exp32: i32
    new32: i32
    exp64: i64
    new64: i64
    add32: u32
    add64: u64
    xchg32: u32
    xchg64: u64
    cas32: i32
    cas64: i64
    ticket: u64

vals = Array(value=V, max_entries=4)
tickets = Global(u64)

def take_ticket() -> u64:
    return atomic_fetch_add(tickets.value, 1)

@syscall
def ops(ctx: Args) -> int:
    k = ctx.key
    r = vals.lookup(k)
    if r is None:
        return 1
    atomic_add(r.value.hits, ctx.d32)
    atomic_add(r.value.total, ctx.d64)
    atomic_add(r.value.lo, ctx.new32)
    ctx.add32 = atomic_fetch_add(r.value.hits, ctx.d32)
    ctx.add64 = atomic_fetch_add(r.value.total, ctx.d64)
    ctx.xchg32 = atomic_xchg(r.value.slots[k & 3], ctx.d32)
    ctx.xchg64 = atomic_xchg(r.value.last, ctx.d64)
    ctx.cas32 = atomic_cmpxchg(r.value.lo, ctx.exp32, ctx.new32)
    ctx.cas64 = atomic_cmpxchg(r.value.big, ctx.exp64, ctx.new64)
    ctx.ticket = take_ticket()
    if ctx.cas32 == ctx.exp32:
        return 2      # the 32-bit compare-and-exchange stored
    return 0
"""
M32, M64 = 0xFFFFFFFF, (1 << 64) - 1
# (inputs, expected return value, expected outputs, expected map value after the run)
RUNS = [
    # u32 wraps; lo: 0 + -7 = -7, then cmpxchg(-7 -> -7) stores; big: cmpxchg(1 -> 9) fails on 0
    (dict(key=1, d32=M32, d64=5, exp32=-7, new32=-7, exp64=1, new64=9), 2,
     dict(add32=M32, add64=5, xchg32=0, xchg64=0, cas32=-7, cas64=0, ticket=0),
     dict(hits=M32 - 1, total=10, lo=-7, big=0, last=5, slots=[0, M32, 0, 0])),
    # hits wraps to 0 (0xFFFFFFFE + 2), total too (adding 2**64-1 subtracts one); lo: -7 + 3 = -4, so
    # cmpxchg(0 -> 3) fails; big: cmpxchg(0 -> -5) stores
    (dict(key=1, d32=2, d64=M64, exp32=0, new32=3, exp64=0, new64=-5), 0,
     dict(add32=0, add64=9, xchg32=M32, xchg64=5, cas32=-4, cas64=0, ticket=1),
     dict(hits=2, total=8, lo=-4, big=-5, last=M64, slots=[0, 2, 0, 0])),
    # signed comparisons: big = -5 matches, lo: -4 + -100 = -104 does not match -4
    (dict(key=1, d32=0, d64=0, exp32=-4, new32=-100, exp64=-5, new64=-(1 << 63)), 0,
     dict(add32=2, add64=8, xchg32=2, xchg64=M64, cas32=-104, cas64=-5, ticket=2),
     dict(hits=2, total=8, lo=-104, big=-(1 << 63), last=0, slots=[0, 0, 0, 0])),
    # another map value; then a key outside the array: nothing happens
    (dict(key=3, d32=7, d64=1 << 40, exp32=7, new32=7, exp64=0, new64=1), 2,
     dict(add32=7, add64=1 << 40, xchg32=0, xchg64=0, cas32=7, cas64=0, ticket=3),
     dict(hits=14, total=2 << 40, lo=7, big=1, last=1 << 40, slots=[0, 0, 0, 7])),
    (dict(key=4, d32=1, d64=1, exp32=0, new32=0, exp64=0, new64=0), 1, dict(), None),
]


@pytest.fixture
def ops_module(tmp_path):
    path = tmp_path / "atomics.py"
    path.write_text(OPS)
    return str(path)


def expected_ctx(inputs, outputs):
    return {**{f: 0 for f in ("add32", "add64", "xchg32", "xchg64", "cas32", "cas64", "ticket")}, **inputs, **outputs}


def test_the_interpreter_runs_the_four_operations(ops_module):
    sim = testing.load(ops_module)
    for inputs, rv, outputs, value in RUNS:
        assert sim.run("ops", inputs) == rv, inputs
        assert sim.last_ctx() == expected_ctx(inputs, outputs), inputs
        if value is not None:
            assert sim.map("vals").lookup(inputs["key"]) == value, inputs
    assert sim.global_value("tickets") == 4
    value_t = sim.map("vals").decl.value
    assert sim.map("vals").lookup(0) == sim.map("vals").lookup(2) == testing.decode(value_t, bytes(value_t.size))


@pytest.mark.kernel
def test_the_kernel_accepts_them_and_agrees_with_the_interpreter(ops_module, tmp_path, pin_root):
    res = compile_file(ops_module, str(tmp_path / "out"))
    assert res.output, [d.format() for d in res.diagnostics]
    kl.load(res.output, pin_root=pin_root)  # the verifier accepts 32- and 64-bit fetch, xchg and cmpxchg
    try:
        sc = Syscall()
        fd = sc.obj_get(os.path.join(pin_root, "atomics", "progs", "ops"))
        try:
            ir = parse_module(ops_module)
            sim = testing.Module(ir)
            args_t = next(s for s in ir.structs if s.name == "Args")
            obj = kl.open_pinned("atomics", pin_root=pin_root)
            kvals, kbss = obj.map("vals"), obj.map("bss")
            for inputs, rv, outputs, _ in RUNS:
                ctx = testing.encode(args_t, inputs)
                k_rv, k_out = sc.prog_test_run(fd, ctx=ctx)
                assert (k_rv, testing.decode(args_t, k_out)) == (rv, expected_ctx(inputs, outputs)), inputs
                assert (sim.run("ops", ctx), bytes(sim.last_context.mem)) == (k_rv, k_out), inputs
                for key in range(4):
                    kb = key.to_bytes(4, "little")
                    assert bytes(kvals.lookup(kb)) == bytes(sim.map("vals").data[kb]), (inputs, key)
                assert bytes(kbss.lookup(bytes(4))) == bytes(sim.globals["tickets"]), inputs
            assert int.from_bytes(kbss.lookup(bytes(4)), "little") == 4
        finally:
            os.close(fd)
    finally:
        kl.unload("atomics", pin_root=pin_root)

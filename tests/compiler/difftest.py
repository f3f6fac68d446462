"""Random well-typed DSL programs for differential testing (kernel vs pybpfgen.testing).

Each generated module has one syscall program per expression set. The program reads
typed input fields from its context struct, evaluates random expressions (every
integer width and signedness, casts, arithmetic, bitwise, shifts, unsigned division,
comparisons, and/or/not), branches on random conditions, runs a bounded loop over
an array, updates a hash map and reads the value back (plainly or with one of the atomic operations), and writes
results back into the context.
"""
from __future__ import annotations

from hypothesis import strategies as st

INPUTS = [("a", "u8"), ("b", "i8"), ("c", "u16"), ("d", "i16"), ("e", "u32"), ("f", "i32"), ("g", "u64"), ("h", "i64")]
TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64"]
BITS = {t: int(t[1:]) for t in TYPES}
N_OUT = 4
ARR = 6

HEADER = f"""from pybpfgen.lang import *

class Args(Struct):
{chr(10).join(f"    {n}: {t}" for n, t in INPUTS)}
    arr: u32[{ARR}]
    r: u64[{N_OUT}]

m = Hash(key=u32, value=u64, max_entries=16)
"""


@st.composite
def int_expr(draw, depth=0):
    leaf = depth >= 3 or draw(st.integers(0, 3)) == 0
    if leaf:
        choice = draw(st.integers(0, 2))
        if choice == 0:
            n, _ = draw(st.sampled_from(INPUTS))
            return f"ctx.{n}"
        if choice == 1:
            return str(draw(st.one_of(st.integers(0, 300), st.integers(-5, 5), st.sampled_from([255, 65535, 0x7FFFFFFF, 0xFFFFFFFF, -1]))))
        return f"ctx.arr[{draw(st.integers(0, ARR - 1))}]"
    kind = draw(st.integers(0, 6))
    a = draw(int_expr(depth + 1))
    if kind == 0:
        return f"{draw(st.sampled_from(TYPES))}({a})"
    if kind == 1:
        return f"({draw(st.sampled_from(['-', '~']))}{a})"
    b = draw(int_expr(depth + 1))
    if kind == 2:
        op = draw(st.sampled_from(["+", "-", "*", "&", "|", "^"]))
        return f"({a} {op} {b})"
    if kind == 3:
        t = draw(st.sampled_from(["u32", "u64"]))
        op = draw(st.sampled_from(["//", "%"]))
        return f"({t}({a}) {op} {t}({b}))"
    if kind == 4:
        op = draw(st.sampled_from(["<<", ">>"]))
        return f"({a} {op} ({b} & 31))"
    if kind == 5:
        return f"({a} {draw(st.sampled_from(['<<', '>>']))} {draw(st.integers(0, 31))})"
    return f"u64({a})"


@st.composite
def cond_expr(draw, depth=0):
    kind = draw(st.integers(0, 3 if depth < 2 else 0))
    if kind == 0:
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return f"({draw(int_expr(2))} {op} {draw(int_expr(2))})"
    if kind == 1:
        return f"(not {draw(cond_expr(depth + 1))})"
    op = draw(st.sampled_from(["and", "or"]))
    return f"({draw(cond_expr(depth + 1))} {op} {draw(cond_expr(depth + 1))})"


@st.composite
def program(draw, name: str):
    e = [draw(int_expr()) for _ in range(4)]
    c1, c2 = draw(cond_expr()), draw(cond_expr())
    lop = draw(st.sampled_from(["+", "^", "|", "*"]))
    read = draw(st.sampled_from([
        "ctx.r[3] = v.value",
        "atomic_add(v.value, x)\n        ctx.r[3] = v.value",
        "ctx.r[3] = atomic_fetch_add(v.value, u64(ctx.h))",
        "ctx.r[3] = atomic_xchg(v.value, x + 1)",
        "ctx.r[3] = atomic_cmpxchg(v.value, x, u64(ctx.d))",  # stores when the key read is the one just written
    ]))
    body = f"""
@syscall
def {name}(ctx: Args) -> int:
    x = u64({e[0]})
    ctx.r[0] = x
    if {c1}:
        ctx.r[1] = u64({e[1]})
    elif {c2}:
        ctx.r[1] = u64({e[2]}) + 1
    else:
        ctx.r[1] = 7
    acc: u64 = 0
    arr = ctx.arr
    for i in range({ARR}):
        if u64(arr[i]) == x:
            continue
        acc = acc {lop} u64(arr[i])
        if acc > u64({e[3]}):
            break
    ctx.r[2] = acc
    m.update(u32(ctx.e & 7), x)
    v = m.lookup(u32(ctx.a & 7))
    if v is not None:
        {read}
    return i32({e[3]})
"""
    return body


inputs = st.fixed_dictionaries({
    **{n: st.integers(-(1 << (BITS[t] - 1)) if t[0] == "i" else 0,
                      (1 << (BITS[t] - 1)) - 1 if t[0] == "i" else (1 << BITS[t]) - 1) for n, t in INPUTS},
    "arr": st.lists(st.integers(0, 0xFFFFFFFF), min_size=ARR, max_size=ARR),
})

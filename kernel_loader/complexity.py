"""Advice for the verifier's complexity limits: which loop made it give up, and what bound would fit.

The verifier checks a bounded loop by following every iteration. It gives up when the branches it still has to
come back to exceed 8192 ("The sequence of 8193 jumps is too complex"), when it has followed a million
instructions ("BPF program is too large. Processed 1000001 insn"), when it cannot see a loop make progress
("infinite loop detected"), or when the loader may not use loops at all ("back-edge from insn ..."). Each message
names an instruction, not a loop: :func:`advice` finds the innermost loop (a backward jump) around that
instruction in the program's code, its source line from the line info (a pybpfgen ``for i in range(N):`` or a C
``for (...; i < N; ...)``), and estimates how many iterations fit.
"""
from __future__ import annotations

import re
import struct

JMP_SEQ_LIMIT = 8192          # BPF_COMPLEXITY_LIMIT_JMP_SEQ: pending branches on one path
INSN_LIMIT = 1_000_000        # BPF_COMPLEXITY_LIMIT_INSNS: instructions followed in total

_PY_RANGE = re.compile(r"^\s*for\s+\w+\s+in\s+range\(([^)]*)\)")
_C_FOR = re.compile(r"for\s*\([^;]*;\s*\w+\s*<=?\s*(\d+)\s*;")


def kind_of(message: str) -> str | None:
    """Which complexity limit a verifier message reports (None: another rejection)."""
    if re.search(r"The sequence of \d+ jumps is too complex", message):
        return "jumps"
    if "BPF program is too large" in message:
        return "insns"
    if "infinite loop detected" in message:
        return "infinite"
    if re.search(r"back-edge from insn", message):
        return "back-edge"
    return None


def loops(insns: bytes) -> list[tuple[int, int]]:
    """(first, last) instruction of every loop: the target and the source of each backward jump."""
    out = []
    n = len(insns) // 8
    i = 0
    while i < n:
        code, _regs, off, _imm = struct.unpack_from("<BBhi", insns, i * 8)
        cls, op = code & 0x07, code & 0xF0
        if code == 0x18:  # ld_imm64 takes two slots
            i += 2
            continue
        if cls in (0x05, 0x06) and op not in (0x80, 0x90):  # a jump, not call / exit
            target = i + 1 + off
            if target <= i:
                out.append((target, i))
        i += 1
    return out


def _successors(insns: bytes, i: int) -> list[int]:
    code, _regs, off, _imm = struct.unpack_from("<BBhi", insns, i * 8)
    cls, op = code & 0x07, code & 0xF0
    if code == 0x18:
        return [i + 2]
    if cls in (0x05, 0x06):
        if op == 0x90:  # exit
            return []
        if op == 0x80:  # call
            return [i + 1]
        if op == 0x00:  # ja
            return [i + 1 + off]
        return [i + 1, i + 1 + off]
    return [i + 1]


def loop_body(insns: bytes, first: int, last: int) -> set[int]:
    """The natural loop of the back edge ``last -> first``: what ``first`` reaches that reaches ``last``."""
    n = len(insns) // 8
    succ = {i: [s for s in _successors(insns, i) if 0 <= s < n] for i in range(n)}
    pred: dict[int, list[int]] = {}
    for i, ss in succ.items():
        for s in ss:
            pred.setdefault(s, []).append(i)
    body, todo = {last, first}, [last]
    while todo:  # backwards from the back edge, stopping at the head
        i = todo.pop()
        if i == first:
            continue
        for p in pred.get(i, []):
            if p not in body:
                body.add(p)
                todo.append(p)
    return body


def _branches(insns: bytes, body: set[int]) -> int:
    """Conditional jumps inside one iteration (both ways stay in the loop): the states the verifier keeps."""
    count = 0
    for i in body:
        ss = _successors(insns, i)
        if len(ss) == 2 and ss[0] != ss[1] and all(s in body for s in ss):
            count += 1
    return count


def _trip_count(text: str) -> int | None:
    m = _PY_RANGE.match(text)
    if m:
        try:
            args = [int(a.strip().replace("_", ""), 0) for a in m.group(1).split(",")]
        except ValueError:
            return None
        start, stop, step = (0, args[0], 1) if len(args) == 1 else (args + [1])[:3]
        return max(0, (stop - start + step - 1) // step) if step > 0 else None
    m = _C_FOR.search(text)
    return int(m.group(1)) if m else None


def _round(n: int) -> int:
    """Down to two significant digits: an estimate, not a promise."""
    if n < 100:
        return max(n, 1)
    scale = 10 ** (len(str(n)) - 2)
    return n // scale * scale


def advice(message: str, insn_index: int | None, linked) -> tuple[str, str | None, int | None] | None:
    """(advice, source file, source line of the loop) for a complexity rejection, or None.

    ``linked``: the program as loaded (``insns`` and ``line_info`` with file, line and text), or None."""
    kind = kind_of(message)
    if kind is None:
        return None
    if kind == "back-edge":
        return ("this kernel or these privileges allow no loops (bounded loops need Linux >= 5.3 and CAP_BPF): "
                "load as root or with CAP_BPF, or unroll the loop", None, None)
    if linked is None or insn_index is None:
        return None
    insns = bytes(linked.insns)
    around = [(f, last) for f, last in loops(insns) if f <= insn_index <= last]
    if not around:
        around = loops(insns)
    if not around:
        return None
    first, last = min(around, key=lambda fl: fl[1] - fl[0])
    header = None
    for li in sorted(linked.line_info, key=lambda li: li.insn_off):
        if first - 8 <= li.insn_off <= last and (_PY_RANGE.match(li.text or "") or _C_FOR.search(li.text or "")):
            header = li
            break
    where = f"the loop at {header.file}:{header.line} (`{header.text.strip()}`)" if header else \
        f"the loop at instructions {first}..{last}"
    trips = _trip_count(header.text) if header else None
    runs = f" runs {trips} times;" if trips is not None else ""
    loop: set[int] = set()
    for head, src in loops(insns):  # every back edge to this head: one loop
        if head == first:
            loop |= loop_body(insns, head, src)
    last = max(loop)
    body = len(loop)
    data_branches = _branches(insns, loop)
    branches = max(1, data_branches)
    file, line = (header.file, header.line) if header else (None, None)
    each = f"{branches} branch{'es' if branches > 1 else ''}"
    if kind == "jumps":
        fit = _round(JMP_SEQ_LIMIT // branches * 9 // 10)  # a margin for the branches outside the loop
        text = (f"{where}{runs} the verifier follows every iteration, and each one leaves {each} to come back to "
                f"(at most {JMP_SEQ_LIMIT} pending): bound the loop to at most about {fit} iterations (or split "
                "the work across runs, keeping the position in a map)")
    elif kind == "insns":
        fit = _round((INSN_LIMIT - len(insns) // 8) // body * 9 // 10)
        text = (f"{where}{runs} the verifier follows every iteration ({body} instructions each) and stops after "
                f"{INSN_LIMIT} instructions: bound the loop to at most about {fit} iterations, or make its body "
                "smaller")
        if data_branches:
            text += (f"; each iteration's {each} can double the paths it follows unless both sides leave the same "
                     "state (a local updated on one side only, such as a counter, keeps them apart: keep it in a "
                     "map or a Global), so the bound may need to be far lower")
    else:  # infinite
        text = (f"{where}: the verifier cannot see the loop make progress (its counter is not a register it "
                "follows): count with the `for` variable itself, compare it with a constant bound")
    return text, file, line

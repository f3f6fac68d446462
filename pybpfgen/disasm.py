"""A BPF disassembler with the source lines interleaved (``pybpfgen compile -S``, ``pybpfgen disasm``).

Every instruction class of the BPF ISA (RFC 9669, including cpu v4: sign-extending moves and loads,
signed division, ``bswap``, ``gotol``) is decoded. ``ld_imm64`` with a relocation is shown by the map (or
data section) it refers to, helper calls by the helper's kernel name (from the helper table), and the
source line of each group of instructions is printed before it from the object's ``.BTF.ext`` line
info (pybpfgen embeds the Python source text there; clang embeds the C source text)::

    accel_sockops:  (section sockops, 41 insns)
    ; 41: op = ctx.op
           0:  61 12 00 00 00 00 00 00  r2 = *(u32 *)(r1 + 0)
    ; 42: if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and ...
           1:  15 02 01 00 04 00 00 00  if r2 == 4 goto +1 <3>

Reading the object needs no root (:func:`kernel_loader.elf.parse_object`).
"""
from __future__ import annotations


from .target.insn import (ALU, ALU64, JMP, JMP32, LD, LDX, PSEUDO_BTF_ID, PSEUDO_CALL, PSEUDO_FUNC,  # noqa: F401
                          PSEUDO_KFUNC_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE, PSEUDO_MAP_VALUE, ST,
                          STX, Insn, decode)

SIZES = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
SSIZES = {0x00: "s32", 0x08: "s16", 0x10: "s8", 0x18: "s64"}
ALU_OPS = {0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=", 0x70: ">>=",
           0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>="}
JMP_OPS = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
           0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
ATOMIC_OPS = {0x00: "+=", 0x40: "|=", 0x50: "&=", 0xA0: "^="}
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0


def _imm(v: int) -> str:
    return str(v) if -4096 < v < 4096 else (f"-{-v:#x}" if v < 0 else f"{v:#x}")


def _mem(reg: int, off: int) -> str:
    return f"r{reg} + {off}" if off >= 0 else f"r{reg} - {-off}"


def format_insn(insn: Insn, reloc: str | None = None, helper_names: dict[int, str] | None = None) -> str:
    """One instruction in the C-like syntax of the kernel verifier and llvm-objdump.

    ``reloc``: the symbol a relocation at this instruction points to (a map, a data section, a function).
    """
    c, cls = insn.code, insn.cls
    d, s, off, imm = insn.dst, insn.src, insn.off, insn.imm
    if cls in (ALU, ALU64):
        r = "r" if cls == ALU64 else "w"
        op = c & 0xF0
        use_reg = c & 0x08
        if op == 0x80:  # neg
            return f"{r}{d} = -{r}{d}"
        if op == 0xD0:  # byte swap
            bits = imm
            if cls == ALU64:
                return f"r{d} = bswap{bits} r{d}"
            return f"r{d} = {'be' if use_reg else 'le'}{bits} r{d}"
        if op == 0xB0 and off in (8, 16, 32) and use_reg:  # movsx (cpu v4)
            return f"{r}{d} = (s{off}){r}{s}"
        sym: str | None  # the operator (None: an invalid opcode), here and in the jump and atomic cases below
        if op in (0x30, 0x90) and off == 1:  # sdiv / smod (cpu v4)
            sym = "s/=" if op == 0x30 else "s%="
        else:
            sym = ALU_OPS.get(op)
            if sym is None:
                return f"<invalid alu op {c:#04x}>"
        if op == 0xB0:
            sym = "="
        rhs = f"{r}{s}" if use_reg else _imm(imm)
        return f"{r}{d} {sym} {rhs}"
    if cls in (JMP, JMP32):
        op = c & 0xF0
        use_reg = c & 0x08
        if cls == JMP and op == 0x80:  # call
            if s == PSEUDO_CALL:
                target = reloc or f"pc{'+' if imm >= 0 else ''}{imm}"
                return f"call {target}" if reloc else f"call {target} <{insn.index + imm + 1}>"
            if s == PSEUDO_KFUNC_CALL:
                return f"call kfunc {reloc or imm}"
            name = (helper_names or {}).get(imm)
            return f"call bpf_{name}#{imm}" if name else f"call #{imm}"
        if op == 0x90:
            return "exit"
        if op == 0x00:  # ja
            if cls == JMP32:  # gotol (cpu v4): 32-bit offset in imm
                return f"gotol {'+' if imm >= 0 else ''}{imm} <{insn.index + imm + 1}>"
            return f"goto {'+' if off >= 0 else ''}{off} <{insn.index + off + 1}>"
        sym = JMP_OPS.get(op)
        if sym is None:
            return f"<invalid jmp op {c:#04x}>"
        r = "r" if cls == JMP else "w"
        rhs = f"{r}{s}" if use_reg else _imm(imm)
        return f"if {r}{d} {sym} {rhs} goto {'+' if off >= 0 else ''}{off} <{insn.index + off + 1}>"
    size = c & 0x18
    mode = c & 0xE0
    if cls == LD:
        if c == 0x18:
            v = insn.imm64 or 0
            if reloc:  # "map[name]" for a map, a section or variable name for data (+ the addend in imm)
                return f"r{d} = {reloc}" + (f" + {imm}" if imm and not reloc.startswith("map[") else "")
            if s in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX):
                return f"r{d} = map[fd {imm}]" if s == PSEUDO_MAP_FD else f"r{d} = map[idx {imm}]"
            if s in (PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE):
                return f"r{d} = map_value[{imm}] + {(v >> 32) & 0xFFFFFFFF}"
            if s == PSEUDO_BTF_ID:
                return f"r{d} = btf_id {imm}"
            if s == PSEUDO_FUNC:
                return f"r{d} = func pc{imm:+d}"
            return f"r{d} = {_imm(v if v < 1 << 63 else v - (1 << 64))} ll"
        if mode == MODE_ABS:
            return f"r0 = *({SIZES[size]} *)skb[{imm}]"
        if mode == MODE_IND:
            return f"r0 = *({SIZES[size]} *)skb[r{s}]" if imm == 0 else f"r0 = *({SIZES[size]} *)skb[r{s} + {imm}]"
        return f"<invalid ld {c:#04x}>"
    if cls == LDX:
        t = SSIZES[size] if mode == MODE_MEMSX else SIZES[size]
        if mode not in (MODE_MEM, MODE_MEMSX):
            return f"<invalid ldx {c:#04x}>"
        return f"r{d} = *({t} *)({_mem(s, off)})"
    if cls == ST:
        if mode != MODE_MEM:
            return f"<invalid st {c:#04x}>"
        return f"*({SIZES[size]} *)({_mem(d, off)}) = {_imm(imm)}"
    # STX
    if mode == MODE_MEM:
        return f"*({SIZES[size]} *)({_mem(d, off)}) = r{s}"
    if mode == MODE_ATOMIC:  # the syntax llvm-mc accepts
        if size not in (0x00, 0x18):
            return f"<invalid atomic size {c:#04x}>"
        t = SIZES[size]
        wide = size == 0x18
        r = "r" if wide else "w"
        fetch = imm & 0x01
        aop = imm & ~0x01
        if aop == 0xE0 and fetch:  # xchg
            return f"{r}{s} = xchg_64({_mem(d, off)}, r{s})" if wide else f"w{s} = xchg32_32({_mem(d, off)}, w{s})"
        if aop == 0xF0 and fetch:  # cmpxchg: compares with r0, old value in r0
            return (f"r0 = cmpxchg_64({_mem(d, off)}, r0, r{s})" if wide
                    else f"w0 = cmpxchg32_32({_mem(d, off)}, w0, w{s})")
        sym = ATOMIC_OPS.get(aop)
        if sym is None:
            return f"<invalid atomic {imm:#x}>"
        if fetch:
            name = {"+=": "add", "|=": "or", "&=": "and", "^=": "xor"}[sym]
            return f"{r}{s} = atomic_fetch_{name}(({t} *)({_mem(d, off)}), {r}{s})"
        return f"lock *({t} *)({_mem(d, off)}) {sym} r{s}"
    return f"<invalid stx {c:#04x}>"


def _hex(raw: bytes) -> str:
    return " ".join(f"{b:02x}" for b in raw[:8])


def disassemble_object(path: str, source_lines: bool = True, raw: bool = True) -> str:
    """The whole object: every function of every executable section, with source lines."""
    from kernel_loader.elf import parse_object

    from .target.helpers import NAMES_BY_ID

    obj = parse_object(path)
    line_info = (obj.btf_ext.line_info if obj.btf_ext is not None else {}) if source_lines else {}
    progs = {(p.section, p.offset): p for p in obj.programs}
    out: list[str] = [f"{obj.path}:  file format elf64-bpf", ""]
    for f in obj.functions:
        sec = obj.sections[f.section]
        code = sec.data[f.offset:f.end]
        relocs = {}
        for r in sec.relocations:
            if f.offset <= r.offset < f.end:
                target = obj.sections_by_index.get(r.symbol.shndx)
                name = r.symbol.name or (target.name if target is not None else "?")  # section symbols
                if target is not None and target.name == ".maps":
                    name = f"map[{name}]"
                relocs[(r.offset - f.offset) // 8] = name
        lines = sorted(((li.insn_off - f.offset) // 8, li) for li in line_info.get(f.section, [])
                       if f.offset <= li.insn_off < f.end)
        p = progs.get((f.section, f.offset))
        kind = f"{p.kind} program" if p is not None else "function"
        out.append(f"{f.name}:  ({kind}, section {f.section}, {f.size // 8} insns)")
        out.extend(format_function(code, relocs, lines, NAMES_BY_ID, raw=raw))
        out.append("")
    return "\n".join(out)


def format_function(code: bytes, relocs: dict[int, str], lines: list, helper_names: dict[int, str],
                    raw: bool = True) -> list[str]:
    """``lines``: sorted (insn index, LineInfo) pairs; a line is printed when it changes."""
    out: list[str] = []
    li = 0
    last = None
    for insn in decode(code):
        while li < len(lines) and lines[li][0] <= insn.index:
            rec = lines[li][1]
            key = (rec.file, rec.line)
            if key != last:
                text = rec.text.strip() if rec.text else ""
                out.append(f"; {rec.line}: {text}" if text else f"; {rec.file}:{rec.line}")
                last = key
            li += 1
        text = format_insn(insn, relocs.get(insn.index), helper_names)
        if raw:
            out.append(f"{insn.index:8d}:  {_hex(insn.raw)}  {text}")
            if insn.slots == 2:
                out.append(f"{insn.index + 1:8d}:  {_hex(insn.raw[8:])}")
        else:
            out.append(f"{insn.index:8d}:  {text}")
    return out

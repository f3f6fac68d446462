"""`pybpfgen disasm` and `pybpfgen compile -S`: our BPF disassembler, checked against llvm-objdump-19."""
import os
import re
import shutil
import subprocess

import pytest

from pybpfgen import cli
from pybpfgen.disasm import decode, format_insn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCEL = os.path.join(ROOT, "programs", "accel.py")
C_TWIN = os.path.join(ROOT, "bench", "twin", "accel_twin.bpf.c")
LLVM_MC = shutil.which("llvm-mc-19")
OBJDUMP = shutil.which("llvm-objdump-19")
CLANG = shutil.which("clang-19")

# one instruction of every class and mode (cpu v4), in llvm-mc syntax
ALL_INSNS = """
	r1 = 5
	r1 = r2
	w1 = w2
	w1 = 7
	r1 += r2
	r1 -= 3
	r1 *= r2
	r1 /= 3
	r1 |= r2
	r1 &= 3
	r1 <<= r2
	r1 >>= 3
	r1 %= r2
	r1 ^= 3
	r1 s>>= r2
	r1 = -r1
	w1 += w2
	w1 -= 3
	w1 s>>= 2
	w1 = -w1
	r1 = be16 r1
	r1 = be32 r1
	r1 = be64 r1
	r1 = le16 r1
	r1 = bswap16 r1
	r1 = bswap64 r1
	r1 s/= r2
	r1 s%= 3
	w1 s/= w2
	r1 = (s8)r2
	r1 = (s16)r2
	r1 = (s32)r2
	w1 = (s8)w2
	r1 = 0x1122334455667788 ll
	r0 = *(u8 *)skb[4]
	r0 = *(u16 *)skb[r3]
	r0 = *(u32 *)skb[8]
	r1 = *(u8 *)(r2 + 1)
	r1 = *(u16 *)(r2 - 2)
	r1 = *(u32 *)(r2 + 4)
	r1 = *(u64 *)(r2 + 8)
	r1 = *(s8 *)(r2 + 1)
	r1 = *(s16 *)(r2 + 2)
	r1 = *(s32 *)(r2 + 4)
	*(u8 *)(r10 - 1) = 3
	*(u16 *)(r10 - 2) = 3
	*(u32 *)(r10 - 4) = 3
	*(u64 *)(r10 - 8) = 3
	*(u8 *)(r10 - 1) = r1
	*(u64 *)(r10 - 8) = r1
	lock *(u64 *)(r10 - 8) += r1
	lock *(u32 *)(r10 - 8) += w1
	lock *(u64 *)(r10 - 8) |= r1
	lock *(u64 *)(r10 - 8) &= r1
	lock *(u64 *)(r10 - 8) ^= r1
	r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)
	w1 = atomic_fetch_add((u32 *)(r10 - 8), w1)
	w1 = atomic_fetch_or((u32 *)(r10 - 8), w1)
	r1 = xchg_64(r10 - 8, r1)
	w1 = xchg32_32(r10 - 8, w1)
	r0 = cmpxchg_64(r10 - 8, r0, r1)
	w0 = cmpxchg32_32(r10 - 8, w0, w1)
	goto +1
	gotol +1
	if r1 == r2 goto +1
	if r1 != 3 goto +1
	if r1 > r2 goto +1
	if r1 >= 3 goto +1
	if r1 < r2 goto +1
	if r1 <= 3 goto +1
	if r1 s> r2 goto +1
	if r1 s>= 3 goto +1
	if r1 s< r2 goto +1
	if r1 s<= -3 goto +1
	if r1 & r2 goto +1
	if w1 == w2 goto +1
	if w1 s< 5 goto -2
	call 1
	exit
"""


def normalise(text: str) -> str:
    """llvm-objdump and we differ in number base and jump-target notation only."""
    text = re.sub(r"-0x([0-9a-f]+)", lambda m: str(-int(m.group(1), 16)), text)
    text = re.sub(r"0x([0-9a-f]+)", lambda m: str(int(m.group(1), 16)), text)
    text = re.sub(r" <[^>]*>$", "", text)
    text = re.sub(r"call (?:bpf_\w+)?#(\d+)", r"call \1", text)
    return text.strip()


def objdump_misprints(insn) -> bool:
    """llvm-objdump-19 cannot print BPF's 32-bit fetching atomics (BPF_STX | BPF_W | BPF_ATOMIC with BPF_FETCH:
    atomic_fetch_*, xchg, cmpxchg): it shows `<unknown>`, or the non-fetching `lock +=` for atomic_fetch_add.
    llvm-mc assembles them; test_every_instruction_class_matches_llvm_objdump checks ours by a round trip."""
    return insn.code == 0xC3 and bool(insn.imm & 0x01)


def objdump(path: str) -> dict[str, list[tuple[int, str]]]:
    """function -> [(insn index, text)] from llvm-objdump -d."""
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", path], capture_output=True, text=True, check=True).stdout
    funcs: dict[str, list] = {}
    cur = None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\w+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s+(\d+):\s+(.*)$", line)
        if m and cur is not None:
            cur.append((int(m.group(1)), m.group(2)))
    return funcs


def ours(code: bytes) -> list[tuple[int, str]]:
    return [(i.index, format_insn(i)) for i in decode(code)]


@pytest.mark.skipif(not (LLVM_MC and OBJDUMP), reason="llvm-mc-19 / llvm-objdump-19 not installed")
def test_every_instruction_class_matches_llvm_objdump(tmp_path):
    src = tmp_path / "all.s"
    src.write_text("\t.text\n\t.globl f\n\t.type f,@function\nf:\n" + ALL_INSNS)
    obj = tmp_path / "all.o"
    subprocess.run([LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj", str(src), "-o", str(obj)], check=True)
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as f:
        code = ELFFile(f).get_section_by_name(".text").data()
    want = objdump(str(obj))["f"]
    got = ours(code)
    assert [i for i, _ in got] == [i for i, _ in want]
    insns = {insn.index: insn for insn in decode(code)}
    compared = 0
    for (i, g), (_, w) in zip(got, want):
        if objdump_misprints(insns[i]):
            assert re.match(r"w\d = \w+(32_32)?\(", g), g
            continue
        assert normalise(g) == normalise(w), (i, g, w)
        compared += 1
    assert compared >= 70
    # and what we print is what llvm-mc assembles (round trip, including the 32-bit atomics)
    text = "\n".join("\t" + re.sub(r"call (?:bpf_\w+)?#", "call ", re.sub(r" <\d+>$", "", g)) for _, g in got)
    src2 = tmp_path / "again.s"
    src2.write_text("\t.text\n\t.globl f\n\t.type f,@function\nf:\n" + text + "\n")
    obj2 = tmp_path / "again.o"
    subprocess.run([LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj", str(src2), "-o", str(obj2)], check=True)
    with open(obj2, "rb") as f:
        assert ELFFile(f).get_section_by_name(".text").data() == code


@pytest.mark.skipif(not OBJDUMP, reason="llvm-objdump-19 not installed")
def test_compiled_objects_match_llvm_objdump(accel_object, tmp_path):
    objs = [accel_object]
    if CLANG:
        c_obj = tmp_path / "twin.o"
        r = subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", C_TWIN,
                            "-o", str(c_obj)], capture_output=True, text=True)
        if r.returncode == 0:
            objs.append(str(c_obj))
    from kernel_loader.elf import parse_object
    for path in objs:
        obj = parse_object(path)
        want = objdump(path)
        for f in obj.functions:
            code = obj.sections[f.section].data[f.offset:f.end]
            got = ours(code)
            insns = {insn.index: insn for insn in decode(code)}
            assert len(got) == len(want[f.name])
            for (i, g), (_, w) in zip(got, want[f.name]):
                if w.endswith(" ll"):  # ld_imm64 of a map: llvm shows the unrelocated 0, we show nothing else
                    continue
                if objdump_misprints(insns[i]):
                    continue
                assert normalise(g) == normalise(w), (path, f.name, i, g, w)


def source_line_numbers(listing: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^; (\d+): ", listing, re.M)]


def test_disasm_interleaves_python_source_lines(accel_object, capsys):
    assert cli.main(["disasm", accel_object]) == 0
    out = capsys.readouterr().out
    src = open(ACCEL).read().splitlines()
    lines = source_line_numbers(out)
    assert len(lines) > 10
    for m in re.finditer(r"^; (\d+): (.*)$", out, re.M):
        assert src[int(m.group(1)) - 1].strip() == m.group(2), m.group(0)
    assert "accel_sockops:  (sock_ops program, section sockops" in out
    assert "accel_redirect:  (sk_msg program, section sk_msg" in out
    assert "call bpf_msg_redirect_hash#71" in out and "call bpf_sock_hash_update#70" in out
    assert "call bpf_map_lookup_elem#1" in out
    assert re.search(r"r2 = map\[socks\]", out) and "map[policy_ports]" in out and "map[stats]" in out
    # the line of `socks.redirect(...)` comes before its helper call
    redirect_line = next(i + 1 for i, s in enumerate(src) if "socks.redirect(" in s)
    block = out.split(f"; {redirect_line}: ", 1)[1]
    assert block.index("call bpf_msg_redirect_hash#71") < block.index("; ")


def test_disasm_options(accel_object, capsys):
    assert cli.main(["disasm", "--no-source", "--no-raw", accel_object]) == 0
    out = capsys.readouterr().out
    assert not source_line_numbers(out)
    assert re.search(r"^\s+0:  r6 = r1$", out, re.M)  # accel_redirect keeps its context in r6
    assert re.search(r"^\s+\d+:  call bpf_msg_redirect_hash#71$", out, re.M)


def test_compile_S_prints_the_same_listing(tmp_path, capsys):
    assert cli.main(["compile", "-S", "-q", ACCEL, "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert cli.main(["disasm", str(tmp_path / "accel.bpf.o")]) == 0
    assert capsys.readouterr().out == out
    # an up-to-date module is listed too
    assert cli.main(["compile", "-S", ACCEL, "-o", str(tmp_path)]) == 0
    again = capsys.readouterr().out
    assert again.startswith("up to date: ") and again.split("\n", 1)[1] == out


@pytest.mark.skipif(not CLANG, reason="clang-19 not installed (apt-get install clang-19, or bash scripts/setup.sh)")
def test_disasm_of_a_clang_object_shows_c_lines(tmp_path, capsys):
    obj = tmp_path / "twin.o"
    r = subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", C_TWIN,
                        "-o", str(obj)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip("libbpf headers missing (apt-get install libbpf-dev, or bash scripts/setup.sh): " + r.stderr[-200:])
    assert cli.main(["disasm", str(obj)]) == 0
    out = capsys.readouterr().out
    assert "; " in out and "call bpf_msg_redirect_hash#71" in out and "map[" in out


def test_disasm_errors_are_user_errors(tmp_path, capsys):
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an elf")
    assert cli.main(["disasm", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert cli.main(["disasm", str(tmp_path / "missing.o")]) == 1


def test_unknown_and_invalid_opcodes_do_not_crash():
    import struct
    code = b"".join(struct.pack("<BBhi", op, 0x21, 0, 0) for op in range(256))
    for insn in decode(code):
        assert isinstance(format_insn(insn), str)

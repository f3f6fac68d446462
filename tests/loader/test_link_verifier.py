"""Relocation/linking results and verifier-log summaries (no root)."""
import struct

import pytest

from kernel_loader.btf import LineInfo
from kernel_loader.elf import parse_object
from kernel_loader.program import LinkedProgram, link_program
from kernel_loader.verifier import VerifierError, summarize_log


def insn(buf, i):
    code, regs, off, imm = struct.unpack_from("<BBhi", buf, i * 8)
    return code, regs & 0xF, regs >> 4, off, imm


@pytest.fixture(scope="module")
def twin(twin_object):
    return parse_object(twin_object)


@pytest.fixture(scope="module")
def feat(features_object):
    return parse_object(features_object)


def test_map_fd_relocations(twin):
    fds = {"sock_hash": 41, "accel_ports": 42}
    lp = link_program(twin, twin.program("accel_redirect"), fds)
    assert lp.map_refs == [(13, "sock_hash")]
    code, _dst, src, _off, imm = insn(lp.insns, 13)
    assert (code, src, imm) == (0x18, 1, 41)
    assert lp.func_info == [(0, lp.func_info[0][1])] and not lp.subprograms
    assert all(li.insn_off < len(lp.insns) // 8 for li in lp.line_info)
    lp2 = link_program(twin, twin.program("accel_sockops"), fds)
    assert [n for _i, n in lp2.map_refs] == ["accel_ports", "accel_ports", "sock_hash"]
    for i, n in lp2.map_refs:
        assert insn(lp2.insns, i)[2] == 1 and insn(lp2.insns, i)[4] == fds[n]
    # the object's own bytes are untouched
    assert twin.program("accel_sockops").insns != bytes(lp2.insns)


def test_subprogram_calls_and_infos(feat):
    fds = {n: 10 + i for i, n in enumerate(feat.maps)}
    prog = feat.program("feat_run")
    lp = link_program(feat, prog, fds)
    assert sorted(lp.subprograms) == ["bump", "count_hit"]        # each appended once
    n_entry = prog.insn_count
    starts = {0}
    funcs = {f.name: f for f in feat.functions}
    base = n_entry
    for name in lp.subprograms:
        starts.add(base)
        base += funcs[name].size // 8
    assert base == len(lp.insns) // 8
    # every pseudo call lands on a function start
    for i in range(len(lp.insns) // 8):
        code, _d, src, _o, imm = insn(lp.insns, i)
        if code == 0x85 and src == 1:
            assert i + 1 + imm in starts
    # one func_info per function, at its start, sorted; line_info rebased and sorted
    assert [i for i, _t in lp.func_info] == sorted(starts)
    names = [feat.btf[t].name for _i, t in lp.func_info]
    assert names[0] == "feat_run" and sorted(names[1:]) == ["bump", "count_hit"]
    offs = [li.insn_off for li in lp.line_info]
    assert offs == sorted(offs) and offs[-1] < len(lp.insns) // 8
    # .rodata / .bss: ld_imm64 with BPF_PSEUDO_MAP_VALUE and the value offset in insn[1]
    refs = dict((n, i) for i, n in lp.map_refs)
    for sec in (".rodata", ".bss"):
        i = refs[sec]
        code, _d, src, _o, imm = insn(lp.insns, i)
        assert (code, src, imm) == (0x18, 2, fds[sec])
        assert insn(lp.insns, i + 1)[4] == 0
    assert insn(lp.insns, refs["stats"])[2] == 1


CAPTURED_LOG = """\
0: R1=ctx() R10=fp0
; int bad_prog(struct __sk_buff *skb) @ bad.bpf.c:13
0: (b7) r1 = 0                        ; R1=0
; __u32 key = 0; @ bad.bpf.c:15
1: (63) *(u32 *)(r10 -4) = r1         ; R1=0 R10=fp0 fp-8=0000????
2: (bf) r2 = r10                      ; R2=fp0 R10=fp0
3: (07) r2 += -4                      ; R2=fp-4
; __u64 *v = bpf_map_lookup_elem(&counter, &key); @ bad.bpf.c:16
4: (18) r1 = 0xffff888149470800       ; R1=map_ptr(map=counter,ks=4,vs=8)
6: (85) call bpf_map_lookup_elem#1    ; R0=map_value_or_null(id=1,map=counter,ks=4,vs=8)
; *v += 1; @ bad.bpf.c:17
7: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0

"""


def test_summarize_log():
    s = summarize_log(CAPTURED_LOG)
    assert s.message == ["R0 invalid mem access 'map_value_or_null'"]
    assert s.insn_index == 7 and s.insn_line.startswith("7: (79)")
    assert (s.source_text, s.source_file, s.source_line) == ("*v += 1;", "bad.bpf.c", 17)
    assert s.decisive_lines() == ["; *v += 1; @ bad.bpf.c:17", "7: (79) r1 = *(u64 *)(r0 +0)",
                                  "R0 invalid mem access 'map_value_or_null'"]


def test_summarize_log_without_insns():
    s = summarize_log("func_info BTF section doesn't match subprog layout in BTF\n")
    assert s.message == ["func_info BTF section doesn't match subprog layout in BTF"]
    assert s.insn_index is None


def test_verifier_error_maps_to_python_source():
    lp = LinkedProgram(None, bytearray(8 * 8))
    lp.line_info = [LineInfo(0, 0, 0, 10 << 10, "/abs/programs/accel.py", "def f(ctx):"),
                    LineInfo(6, 0, 0, 42 << 10, "/abs/programs/accel.py", "v[0] += 1")]
    err = OSError(13, "Permission denied")
    e = VerifierError("accel_sockops", err, CAPTURED_LOG, lp, "x.bpf.o")
    msg = str(e)
    first = msg.splitlines()[0]
    assert "accel_sockops" in first and "EACCES" in first and "/abs/programs/accel.py:42" in first
    assert "invalid mem access" in first and "-v" in first
    assert len(msg.splitlines()) <= 6                  # not the whole log
    assert "processed 7 insns" not in msg and "processed 7 insns" in e.full()
    assert (e.source_file, e.source_line) == ("/abs/programs/accel.py", 42)

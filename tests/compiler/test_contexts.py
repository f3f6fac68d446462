"""Context structs: pybpfgen/target/contexts.py is the one table of their fields.

The DSL's context classes (pybpfgen.lang) declare exactly the table's fields, every field compiles to a load
at its offset, and the offsets and sizes are the running kernel's (its BTF, /sys/kernel/btf/vmlinux).
"""
import os

import pytest

from kernel_loader.elf import parse_object
from pybpfgen import disasm, lang, testing
from pybpfgen.target import contexts
from pybpfgen.target.progtypes import PROG_TYPES

ANNOTATION = {"u32": "u32", "u64": "u64", "u32[4]": "list[u32]"}
SIZE = {"u32": 4, "u64": 8, "u32[4]": 16}
PROGTYPE = {pt.ctx_class: pt.name for pt in PROG_TYPES.values() if pt.ctx_class}
VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.mark.parametrize("name", sorted(contexts.CONTEXTS))
def test_dsl_class_declares_exactly_the_table_fields(name):
    ctx = contexts.CONTEXTS[name]
    cls = getattr(lang, name)
    assert cls.__ctx__ is ctx
    declared = dict(cls.__annotations__)
    assert list(declared) == [f.name for f in ctx.fields], "pybpfgen.lang and target/contexts.py disagree"
    assert {f.name: ANNOTATION[f.type] for f in ctx.fields} == declared


def test_every_context_class_is_a_program_type():
    assert set(PROGTYPE) == set(contexts.CONTEXTS)
    for cls_name, progtype in PROGTYPE.items():
        assert PROG_TYPES[progtype].context is contexts.CONTEXTS[cls_name]
        assert set(PROG_TYPES[progtype].fields) == {f.name for f in contexts.CONTEXTS[cls_name].fields}


def _reads_every_field(ctx: contexts.Context) -> str:
    decorator = {"SockOps": "@sock_ops", "SkMsg": "@sk_msg(socks)", "SkBuff": "@socket_filter"}[ctx.dsl_class]
    lines = ["socks = SockHash(key=u32, max_entries=4)", "", "", decorator, f"def p(ctx: {ctx.dsl_class}) -> int:",
             "    x: u64 = 0"]
    for f in ctx.fields:
        if f.type == "u32[4]":
            lines += [f"    x += u64(ctx.{f.name}[{i}])" for i in range(4)]
        else:
            lines.append(f"    x += u64(ctx.{f.name})")
    lines.append("    return i32(x)")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(contexts.CONTEXTS))
def test_every_field_compiles_to_a_load_at_its_offset(compile_src, name):
    ctx = contexts.CONTEXTS[name]
    c = compile_src(_reads_every_field(ctx))
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    (f,) = obj.functions
    insns = disasm.decode(obj.sections[f.section].data[f.offset:f.end])
    width = {0x00: 4, 0x18: 8}  # BPF_W, BPF_DW
    loads = {(i.off, width[i.code & 0x18]) for i in insns if i.cls == disasm.LDX and i.code & 0x18 in width}
    for fld in ctx.fields:
        if fld.type == "u32[4]":
            want = {(fld.offset + 4 * i, 4) for i in range(4)}
        else:
            want = {(fld.offset, SIZE[fld.type])}
        assert want <= loads, f"{name}.{fld.name}: no load at {sorted(want)}"


SOCKET_FILTER = """
@socket_filter
def only_local_redis(ctx: SkBuff) -> int:
    if ctx.family != AF_INET:
        return 0
    if ctx.remote_port != 6379 and ctx.local_port != 6379:
        return 0
    if ctx.remote_ip4 != ctx.local_ip4:
        return 0
    return i32(ctx.len)
"""


def test_socket_filter_reads_socket_fields(compile_src, tmp_path):
    c = compile_src(SOCKET_FILTER)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    mod = testing.load(c.path)
    lo = 0x0100007F
    assert mod.run("only_local_redis", testing.skb(len=100, family=2, remote_ip4=lo, local_ip4=lo,
                                                   remote_port=6379, local_port=40000)) == 100
    assert mod.run("only_local_redis", testing.skb(len=100, family=10, remote_port=6379)) == 0
    assert mod.run("only_local_redis", testing.skb(len=100, family=2, remote_ip4=lo, local_ip4=lo,
                                                   remote_port=80, local_port=40000)) == 0
    # remote_port is in network byte order in the upper 16 bits of the kernel's u32
    ctx = testing.skb(remote_port=6379)
    off = contexts.SK_BUFF.fields[[f.name for f in contexts.SK_BUFF.fields].index("remote_port")].offset
    assert ctx.mem[off:off + 4] == bytes([0, 0]) + (6379).to_bytes(2, "big")


# ==================================================================== the kernel's BTF
@pytest.fixture(scope="module")
def vmlinux():
    if not os.path.exists(VMLINUX):
        pytest.skip(f"{VMLINUX} is absent (a kernel without CONFIG_DEBUG_INFO_BTF)")
    from kernel_loader.btf import Btf  # read-only use of the loader's BTF parser
    with open(VMLINUX, "rb") as f:
        return Btf.parse(f.read())


def _members(btf, type_id: int, base: int = 0) -> dict:
    """name -> (byte offset, type id), looking into anonymous unions and structs."""
    from kernel_loader.btf import STRUCT, UNION
    out = {}
    for m in btf.members(type_id):
        if m.name:
            out[m.name] = (base + m.bit_offset // 8, m.type_id)
        elif btf[btf.resolve(m.type_id)].kind in (STRUCT, UNION):
            out.update(_members(btf, m.type_id, base + m.bit_offset // 8))
    return out


@pytest.mark.parametrize("name", sorted(contexts.CONTEXTS))
def test_offsets_match_the_kernel_btf(vmlinux, name):
    from kernel_loader.btf import ARRAY, STRUCT
    ctx = contexts.CONTEXTS[name]
    st = vmlinux.find(ctx.c_struct, STRUCT)
    assert st is not None, f"struct {ctx.c_struct} is not in the kernel's BTF"
    assert vmlinux.size_of(st.id) == ctx.size
    members = _members(vmlinux, st.id)
    for f in ctx.fields:
        c_name, index = f.c_name or f.name, None
        if "[" in c_name:
            c_name, index = c_name[:-1].split("[")
        assert c_name in members, f"{ctx.c_struct} has no member {c_name} ({name}.{f.name})"
        off, tid = members[c_name]
        size = vmlinux.size_of(tid)
        if index is not None:
            arr = vmlinux[vmlinux.resolve(tid)]
            assert arr.kind == ARRAY
            size = vmlinux.size_of(arr.extra[0])
            off += int(index) * size
        assert (off, size) == (f.offset, SIZE[f.type]), f"{name}.{f.name}: kernel {off}/{size}"

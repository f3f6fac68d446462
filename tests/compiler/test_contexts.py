"""Context structs: pybpfgen/target/contexts.py is the one table of their fields.

The DSL's context classes (pybpfgen.lang) declare exactly the table's fields; every field a program type may
read compiles to a load at its offset, and reading one it may not is a located error; the offsets and sizes
are the running kernel's (its BTF, /sys/kernel/btf/vmlinux), and so is which program type may read and write
which field (as root: one load and one store per field and program type through the verifier).
"""
import os
import struct

import pytest

from kernel_loader.elf import parse_object
from pybpfgen import disasm, lang
from pybpfgen.target import contexts
from pybpfgen.target.progtypes import BY_CTX_CLASS, PROG_TYPES

ANNOTATION = {"u32": "u32", "i32": "i32", "u64": "u64", "u32[4]": "list[u32]", "sock": "Sock",
              "sock?": "Optional[Sock]"}
SIZE = {"u32": 4, "i32": 4, "u64": 8, "u32[4]": 16, "sock": 8, "sock?": 8}
PROGTYPE = {cls: pts[0].name for cls, pts in BY_CTX_CLASS.items()}  # the first program type of each context
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
    for pt in PROG_TYPES.values():
        if pt.context is None:
            continue
        # the compiler's integer fields: every readable field but the packet pointers (packet access reads those)
        assert set(pt.fields) == {f.name for f in pt.context.fields if pt.name not in f.unreadable_in and not f.packet}
        assert {n for n, f in pt.fields.items() if f.writable} == \
            {f.name for f in pt.context.fields if f.name in pt.fields and f.writable_in(pt.name)}


def _readable(ctx: contexts.Context):
    return [f for f in ctx.fields if PROGTYPE[ctx.dsl_class] not in f.unreadable_in and not f.packet]


def _reads_every_field(ctx: contexts.Context) -> str:
    decorator = {"SockOps": "@sock_ops", "SkMsg": "@sk_msg(socks)", "SkBuff": "@socket_filter",
                 "XdpMd": "@xdp", "SockAddr": f"@{PROGTYPE['SockAddr']}",
                 "SockOpt": f"@{PROGTYPE['SockOpt']}"}[ctx.dsl_class]
    lines = ["socks = SockHash(key=u32, max_entries=4)", "", "", decorator, f"def p(ctx: {ctx.dsl_class}) -> int:",
             "    x: u64 = 0"]
    for f in _readable(ctx):
        if f.type == "u32[4]":
            lines += [f"    x += u64(ctx.{f.name}[{i}])" for i in range(4)]
        elif f.type.startswith("sock"):  # a socket pointer: no arithmetic, but a test against None
            lines += [f"    if ctx.{f.name} is not None:", "        x += 1"]
        else:
            lines.append(f"    x += u64(ctx.{f.name})")
    lines.append("    return i32(x & 1)")
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
    for fld in _readable(ctx):
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


def test_a_socket_filter_cannot_read_the_socket_fields(compile_src):
    """SkBuff declares the packet's socket fields (family .. local_port), but the verifier refuses them to socket
    filters (invalid bpf_context access off=88): a located error, not an object the kernel rejects."""
    c = compile_src(SOCKET_FILTER)
    assert not c.result.output
    got = [(d.loc.line, d.loc.col, d.message) for d in c.errors]
    why = next(f for f in contexts.SK_BUFF.fields if f.name == "family").unreadable_in["socket_filter"]
    assert got == [(5, 7, f"a socket_filter program cannot read `SkBuff.family`: {why}"),
                   (7, 7, f"a socket_filter program cannot read `SkBuff.remote_port`: {why}"),
                   (9, 7, f"a socket_filter program cannot read `SkBuff.remote_ip4`: {why}")]
    assert c.errors[0].hint.startswith("fields it can read: gso_segs, gso_size, hash, ifindex,")
    assert "family" not in c.errors[0].hint


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


# ==================================================================== the kernel's verifier
def _probe(pt, offset: int, width: int, write: bool = False) -> str | None:
    """Load ``r2 = *(u<width> *)(r1 + offset); r0 = ret; exit`` (``write``: ``*(u<width> *)(r1 + offset) = 0``)
    as a ``pt`` program, ``ret`` a return value it accepts: None, or the verifier log."""
    from kernel_loader.errors import BpfSyscallError
    from kernel_loader.syscall import Syscall

    size = {4: 0x00, 8: 0x18}[width]
    if write:
        insns = struct.pack("<BBhi", 0x62 | size, 1, offset, 0)  # ST MEM
    else:
        insns = struct.pack("<BBhi", 0x61 | size, (1 << 4) | 2, offset, 0)  # LDX MEM
    ret = 0 if pt.returns is None else pt.returns[1]
    insns += struct.pack("<BBhi", 0xB7, 0, 0, ret) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = ret; exit
    sc = Syscall()
    try:
        fd = sc.prog_load(pt.prog_type, insns, "GPL", "ctxprobe", pt.attach_type, log_level=1, log_size=1 << 16)
    except BpfSyscallError as e:
        return e.log or str(e)
    sc.close(fd)
    return None


@pytest.mark.kernel
@pytest.mark.parametrize("progtype", [p.name for p in PROG_TYPES.values() if p.context is not None])
def test_the_kernel_lets_each_program_type_read_exactly_its_fields(progtype):
    pt = PROG_TYPES[progtype]
    name = pt.ctx_class
    assert pt.context is not None
    for f in pt.context.fields:
        width = SIZE[f.type] if f.type != "u32[4]" else 4
        log = _probe(pt, f.offset, width)
        if pt.name in f.unreadable_in:
            assert log is not None and "invalid bpf_context access" in log, f"{name}.{f.name} is readable now"
        else:
            assert log is None, f"{name}.{f.name}: {log}"
        log = _probe(pt, f.offset, width, write=True)
        if any(g.offset == f.offset and g.writable_in(pt.name) for g in pt.context.fields):  # a union (reply, args[0])
            continue
        if f.writable_in(pt.name) and pt.name not in f.unreadable_in:
            assert log is None, f"{pt.name}: {name}.{f.name} is not writable: {log}"
        else:
            assert log is not None, f"{pt.name}: {name}.{f.name} is writable now"


@pytest.mark.kernel
@pytest.mark.parametrize("progtype", [p.name for p in PROG_TYPES.values() if p.context is not None])
def test_the_kernel_lets_each_program_type_write_exactly_its_writable_fields(progtype):
    """Every word of every field: a field the compiler lets a program type assign takes a full-width store in the
    verifier (each word of an IPv6 address: ``ctx.user_ip6[3] = ...``); every other field refuses one."""
    pt = PROG_TYPES[progtype]
    assert pt.context is not None
    writable_at = {f.offset for f in pt.fields.values() if f.writable}
    for f in pt.context.fields:
        if not (f.name in pt.fields and pt.fields[f.name].writable) and f.offset in writable_at:
            continue  # another name of a writable field (SockOps.args0 is reply's union member)
        words = range(4) if f.type == "u32[4]" else [0]
        for i in words:
            log = _probe(pt, f.offset + 4 * i, SIZE[f.type] if f.type != "u32[4]" else 4, write=True)
            if f.name in pt.fields and pt.fields[f.name].writable:
                assert log is None, f"{pt.ctx_class}.{f.name} in {progtype}: {log}"
            else:
                assert log is not None and "invalid bpf_context access" in log, \
                    f"{pt.ctx_class}.{f.name} is writable in {progtype} now"


# ==================================================================== struct bpf_sock, through a socket pointer
def test_the_sock_class_declares_exactly_the_bpf_sock_fields():
    ctx = contexts.SOCK
    assert lang.Sock.__ctx__ is ctx
    declared = {k: v for k, v in lang.Sock.__annotations__.items()}
    assert list(declared) == [f.name for f in ctx.fields]
    assert {f.name: ANNOTATION[f.type] for f in ctx.fields} == declared


def test_offsets_of_bpf_sock_match_the_kernel_btf(vmlinux):
    from kernel_loader.btf import STRUCT
    st = vmlinux.find("bpf_sock", STRUCT)
    assert st is not None and vmlinux.size_of(st.id) == contexts.SOCK.size
    members = _members(vmlinux, st.id)
    for f in contexts.SOCK.fields:
        off, tid = members[f.name]
        size = vmlinux.size_of(tid) if f.name != "dst_port" else 4  # __be16 and 16 bits of zero padding
        assert (off, size) == (f.offset, SIZE[f.type]), f"bpf_sock.{f.name}: kernel {off}/{size}"


@pytest.mark.kernel
def test_the_kernel_lets_sk_msg_read_every_bpf_sock_field_through_msg_sk():
    """``r2 = msg->sk; r0 = *(u32 *)(r2 + off); exit`` for each field (each word of the arrays)."""
    from kernel_loader.errors import BpfSyscallError
    from kernel_loader.syscall import Syscall

    pt = PROG_TYPES["sk_msg"]
    sk_off = next(f.offset for f in contexts.SK_MSG.fields if f.name == "sk")
    sc = Syscall()
    for f in contexts.SOCK.fields:
        for word in range(4 if f.type == "u32[4]" else 1):
            insns = struct.pack("<BBhi", 0x79, (1 << 4) | 2, sk_off, 0)  # r2 = *(u64 *)(r1 + sk)
            insns += struct.pack("<BBhi", 0x61, (2 << 4) | 0, f.offset + 4 * word, 0)  # r0 = *(u32 *)(r2 + off)
            insns += struct.pack("<BBhi", 0x95, 0, 0, 0)
            try:
                sc.close(sc.prog_load(pt.prog_type, insns, "GPL", "skprobe", pt.attach_type, log_level=1,
                                      log_size=1 << 16))
            except BpfSyscallError as e:
                pytest.fail(f"bpf_sock.{f.name}[{word}]: {e.log or e}")


def test_every_bpf_sock_field_compiles_to_a_load_at_its_offset(compile_src):
    lines = ["socks = SockHash(key=u32, max_entries=4)", "", "", "@sk_msg(socks)", "def p(msg: SkMsg) -> int:",
             "    x: u64 = 0"]
    for f in contexts.SOCK.fields:
        if f.type == "u32[4]":
            lines += [f"    x += u64(msg.sk.{f.name}[{i}])" for i in range(4)]
        else:
            lines.append(f"    x += u64(msg.sk.{f.name})")
    lines.append("    return i32(x)")
    c = compile_src("\n".join(lines) + "\n")
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    (fn,) = obj.functions
    insns = disasm.decode(obj.sections[fn.section].data[fn.offset:fn.end])
    loads = {i.off for i in insns if i.cls == disasm.LDX and i.code & 0x18 == 0x00}
    want = {f.offset + 4 * w for f in contexts.SOCK.fields for w in range(4 if f.type == "u32[4]" else 1)}
    assert want <= loads

"""The object the compiler emits: ELF layout, BTF, func/line info and verifier-friendly code."""
import ast
import json
import os
import struct

from elftools.elf.elffile import ELFFile

from kernel_loader.elf import parse_object
from pybpfgen.driver import compile_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ACCEL_PY = os.path.join(ROOT, "programs", "accel.py")
KNOWN_HELPERS = {1, 2, 3, 46, 59, 61, 70, 71, 107, 122}


def sections(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: (s["sh_type"], s["sh_flags"], s.data()) for s in elf.iter_sections()}, elf.header


def insns(code: bytes):
    for i in range(0, len(code), 8):
        op, regs, off, imm = struct.unpack_from("<BBhi", code, i)
        yield i // 8, op, regs & 0xF, regs >> 4, off, imm


def test_elf_header_and_sections(accel_object):
    secs, hdr = sections(accel_object)
    assert hdr["e_machine"] == "EM_BPF" and hdr["e_type"] == "ET_REL"
    for name in ("sockops", "sk_msg", ".maps", "license", ".BTF", ".BTF.ext", ".pybpfgen"):
        assert name in secs, name
    assert ".eh_frame" not in secs
    assert secs["license"][2] == b"GPL\0"


def test_metadata_names_the_attach_map(accel_object):
    secs, _ = sections(accel_object)
    meta = json.loads(secs[".pybpfgen"][2])
    assert meta["module"] == "accel"
    redirect = dict(meta["programs"]["accel_redirect"])
    # the lines of its returns of a computed value (several: the loader names them for a rejected return value)
    returns = redirect.pop("computed_returns")
    src = open(os.path.join(ROOT, "programs", "accel.py")).read().splitlines()
    assert len(returns) > 1 and all(src[n - 1].strip().startswith("return ") for n in returns), returns
    assert redirect == {"type": "sk_msg", "section": "sk_msg", "attach_map": "socks", "line": redirect["line"]}
    assert meta["programs"]["accel_sockops"]["type"] == "sock_ops"


def test_maps_are_btf_defined_with_real_types(accel_object):
    obj = parse_object(accel_object)
    socks, ports, stats = obj.maps["socks"], obj.maps["policy_ports"], obj.maps["stats"]
    assert (socks.type, socks.key_size, socks.value_size, socks.max_entries) == (18, 8, 8, 65536)  # cookies
    assert (ports.type, ports.key_size, ports.value_size, ports.max_entries) == (1, 4, 4, 1024)
    assert (stats.type, stats.key_size, stats.value_size, stats.max_entries) == (6, 4, 48, 1)
    st, links = obj.maps["sk_state"], obj.maps["links"]
    assert (st.type, st.key_size, st.max_entries, st.map_flags & 1) == (24, 4, 0, 1)  # SK_STORAGE, NO_PREALLOC
    assert (links.type, links.value_size, links.max_entries) == (2, 192, 32768)
    btf = obj.btf
    link = btf.find("Link")
    # each side's published count in a cache line of its own (one side writes it per message)
    assert [(m.name, m.bit_offset) for m in btf.members(link.id)] == [
        ("owner", 0), ("client", 64), ("server", 128), ("inbox", 192), ("pad", 256), ("pub", 512)]
    assert btf.type_name(socks.key_type_id) == "__u64"
    assert [m.name for m in btf.members(btf.find("AccelStats").id)][:2] == ["redirected", "missed"]


def statement_lines(path, func):
    """Lines of the statements of ``func`` that produce code of their own: a statement that only calls a
    function of the module is inlined, and its instructions carry the callee's lines."""
    tree = ast.parse(open(path).read())
    local_funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.decorator_list}
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func)

    def only_calls_a_function(n):
        v = getattr(n, "value", None)
        return (isinstance(n, (ast.Expr, ast.Assign)) and isinstance(v, ast.Call)
                and isinstance(v.func, ast.Name) and v.func.id in local_funcs)

    return {n.lineno for n in ast.walk(fn) if isinstance(n, ast.stmt) and n is not fn and not only_calls_a_function(n)}


TWIN_PY = os.path.join(ROOT, "bench", "twin", "accel_twin.py")


def test_func_info_and_line_info_carry_python_lines(accel_object, tmp_path):
    """Every statement that produces code has a line record (returns merged into shared exits may not).
    Statements that only call a DSL function are inlined: their code carries the callee's lines. In the
    accelerator some statements compile to no instruction at all (constants folded into a later compare or
    select), so at least 80% of its statement lines must have a record; the straight-line twin needs all."""
    twin = compile_file(TWIN_PY, str(tmp_path)).output
    for path, obj_path, need in ((TWIN_PY, twin, 1.0), (ACCEL_PY, accel_object, 0.8)):
        obj = parse_object(obj_path)
        ext = obj.btf_ext
        src = open(path).read().splitlines()
        for prog, sec in (("accel_sockops", "sockops"), ("accel_redirect", "sk_msg")):
            assert len(ext.func_info[sec]) == 1
            fi_off, type_id = ext.func_info[sec][0]
            assert fi_off == 0 and obj.btf.type_name(type_id) == prog
            recs = ext.line_info[sec]
            assert all(r.file.endswith(os.path.basename(path)) for r in recs)
            got = {r.line for r in recs}
            want = {ln for ln in statement_lines(path, prog) if not src[ln - 1].strip().startswith("return")}
            assert len(want & got) >= need * len(want), (path, prog, sorted(want - got))
            for r in recs:
                assert r.text.strip() == src[r.line - 1].strip()


def test_code_is_verifier_friendly(accel_object):
    obj = parse_object(accel_object)
    for p in obj.programs:
        for _, op, dst, src, off, imm in insns(p.insns):
            assert op != 0x8D, "callx: helpers must be called directly"
            if op == 0x85:
                assert src == 0 and imm in KNOWN_HELPERS, imm
            # no narrow loads anywhere in these programs (ctx fields need full 32-bit loads)
            assert op not in (0x71, 0x69), f"narrow load in {p.name}"


def test_output_is_deterministic(tmp_path):
    a = compile_file(ACCEL_PY, str(tmp_path / "a")).output
    b = compile_file(ACCEL_PY, str(tmp_path / "b")).output
    assert open(a, "rb").read() == open(b, "rb").read()


def test_struct_padding_is_zeroed(compile_src):
    c = compile_src("""
        class K(Struct):
            a: u8
            b: u32
        m = Hash(key=K, value=u32, max_entries=4)

        @sock_ops
        def p(ctx: SockOps) -> int:
            m.update(K(1, ctx.op), 1)
            return 1
    """)
    assert c.result.output, c.errors
    obj = parse_object(c.result.output)
    assert obj.maps["m"].key_size == 8
    code = obj.program("p").insns
    # the padding bytes (1..3) of the 8-byte key on the stack are written before the call
    stores = [(op, off) for _, op, dst, src, off, imm in insns(code) if dst == 10 and op in (0x62, 0x63, 0x6A, 0x72, 0x7A, 0x7B, 0x6B, 0x73)]
    assert stores, "the key is built on the stack"


def test_ports_are_converted_to_host_order(compile_src):
    c = compile_src("""
        m = Hash(key=u32, value=u32, max_entries=4)

        @sk_msg_target
        def p(ctx: SockOps) -> int:
            return 1
    """)
    assert c.errors  # unknown decorator is an error
    c = compile_src("""
        m = Hash(key=u32, value=u32, max_entries=4)

        @sock_ops
        def p(ctx: SockOps) -> int:
            m.update(ctx.remote_port, ctx.local_port)
            return 1
    """)
    code = list(insns(parse_object(c.result.output).program("p").insns))
    loads = [(i, off) for i, op, dst, src, off, imm in code if op == 0x61 and src == 1]
    assert {off for _, off in loads} == {64, 68}
    remote = next(i for i, off in loads if off == 64)
    # remote_port is byte-swapped (be32) after its full 32-bit load; local_port is not
    assert any(op == 0xDC and imm == 32 for i, op, dst, src, off, imm in code if i > remote)


def test_a_scalar_parameter_can_be_a_map_key(compile_src, tmp_path):
    """A function's integer parameter passed as a map key needs an address: a stack copy (it was an internal error:
    "Type of #2 arg mismatch: ptr != i32"); pybpfgen.testing agrees."""
    from pybpfgen import testing
    src = """
        ports = Array(value=u32, max_entries=2)


        def port_of(i: u32) -> u32:
            p = ports.lookup(i)
            if p is None:
                return u32(0)
            return p.value


        @sock_ops
        def prog(ctx: SockOps) -> int:
            if port_of(u32(1)) == 7:
                return 1
            return 0
    """
    c = compile_src(src)
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    code = list(insns(parse_object(c.result.output).program("prog").insns))
    assert any(op == 0x85 and imm == 1 for _i, op, _d, _s, _o, imm in code)  # bpf_map_lookup_elem
    mod = testing.load(c.path)
    assert mod.run("prog", testing.sock_ops()) == 0
    mod.map("ports").update(1, 7)
    assert mod.run("prog", testing.sock_ops()) == 1

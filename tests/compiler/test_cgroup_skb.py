"""cgroup_skb programs (ingress and egress): one entry of target/progtypes.py, its decorators, the compile-time
check of its return values, its object sections and pybpfgen.testing. The kernel test is
tests/loader/test_cgroup_skb_kernel.py."""
import os

import pytest

from kernel_loader.elf import parse_object
from pybpfgen import lang, testing
from pybpfgen.target.progtypes import PROG_TYPES, by_name, by_section

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# the gallery's cgroup_skb examples (their kernel tests: tests/examples/test_<name>.py)
FIREWALL = os.path.join(ROOT, "examples", "gallery", "egress_firewall.py")
BYTES = os.path.join(ROOT, "examples", "gallery", "cgroup_bytes.py")

BOTH = """
    seen = Hash(key=u32, value=u64, max_entries=8)


    @cgroup_skb_ingress
    def rx(skb: SkBuff) -> int:
        seen.update(u32(0), u64(skb.len))
        return 1


    @cgroup_skb_egress
    def tx(skb: SkBuff) -> int:
        if skb.remote_port == 22:
            return 0
        return 1
    """


def test_the_table_entries():
    for direction, attach_type in (("ingress", 0), ("egress", 1)):
        pt = PROG_TYPES[f"cgroup_skb_{direction}"]
        assert (pt.section, pt.prog_type, pt.attach_type, pt.attach) == (f"cgroup_skb/{direction}", 8, attach_type,
                                                                        "cgroup")
        assert pt.returns == (0, 1) and pt.ctx_class == "SkBuff" and pt.c_struct == "__sk_buff"
        assert by_section(pt.section) is pt and by_name(pt.name) is pt
        assert getattr(lang, pt.name).__name__ == pt.name
    # the packet's socket is readable in cgroup_skb programs, unlike socket filters
    assert "remote_port" in PROG_TYPES["cgroup_skb_egress"].fields
    assert "remote_port" not in PROG_TYPES["socket_filter"].fields


def test_ingress_and_egress_compile_to_their_sections(compile_src):
    c = compile_src(BOTH, name="both")
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    got = {p.name: (p.section, p.kind, p.prog_type, p.expected_attach_type) for p in obj.programs}
    assert got == {"rx": ("cgroup_skb/ingress", "cgroup_skb_ingress", 8, 0),
                   "tx": ("cgroup_skb/egress", "cgroup_skb_egress", 8, 1)}


@pytest.mark.parametrize("value", ["2", "-1", "SK_PASS + 1", "TOO_MANY"])
def test_a_constant_return_value_outside_0_1_is_a_located_error(compile_src, value):
    c = compile_src(f"""
        TOO_MANY = 7


        @cgroup_skb_egress
        def tx(skb: SkBuff) -> int:
            if skb.len > 100:
                return 1
            return {value}
        """)
    assert len(c.errors) == 1, [d.format() for d in c.result.diagnostics]
    d = c.errors[0]
    assert d.message.startswith("a cgroup_skb_egress program returns 0 or 1, not "), d.format()
    assert d.loc.line == 10 and d.loc.col == 11, d.format()  # 0-based: shown as 10:12
    assert "0 to drop" in (d.hint or "")


def test_other_program_types_keep_their_return_values(compile_src):
    c = compile_src("""
        @socket_filter
        def f(skb: SkBuff) -> int:
            return 65535
        """)
    assert not c.errors, [d.format() for d in c.result.diagnostics]


def test_the_context_is_skbuff(compile_src):
    c = compile_src("""
        @cgroup_skb_ingress
        def rx(skb: SockOps) -> int:
            return 1
        """)
    assert c.messages == ["the context of a cgroup_skb_ingress program is SkBuff"]


def test_the_examples_run_in_pybpfgen_testing():
    mod = testing.load(FIREWALL)
    mod.map("blocked").update(40999, 0)
    assert mod.run("firewall", testing.cgroup_skb(remote_port=40999, len=128)) == 0
    assert mod.run("firewall", testing.cgroup_skb("egress", remote_port=80, len=128)) == 1
    assert mod.map("blocked").lookup(40999) == 1
    mod = testing.load(BYTES)
    for n in (128, 60):
        assert mod.run("count_egress", testing.cgroup_skb(len=n, cgroup_id=7)) == 1
    assert mod.run("count_egress", testing.cgroup_skb(len=40, cgroup_id=9)) == 1
    t = mod.map("traffic")
    assert {k: (t.lookup(k)["tx_bytes"], t.lookup(k)["tx_packets"]) for k in t.keys()} == {7: (188, 2), 9: (40, 1)}
    with pytest.raises(ValueError):
        testing.cgroup_skb("sideways")

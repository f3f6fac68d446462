"""Map kinds: pybpfgen/target/maps.py is the one table of them, and LRUPerCPUHash was added through it alone.

The DSL's map classes agree with the table, every method names a helper of the right shape, and an
LRUPerCPUHash (BPF_MAP_TYPE_LRU_PERCPU_HASH = 10) compiles, is emitted with its type, runs in pybpfgen.testing
with LRU eviction, and (as root) loads.
"""
import os

import pytest

import kernel_loader as kl
from kernel_loader.elf import parse_object
from kernel_loader.syscall import Syscall
from pybpfgen import lang, testing
from pybpfgen.frontend import symbols
from pybpfgen.target import maps
from pybpfgen.target.helpers import HELPERS, OPTIONAL_FLAGS


def _lang_map_classes():
    return {n for n in lang.__all__ if isinstance(getattr(lang, n), type) and hasattr(getattr(lang, n), "map_type")}


def test_lang_map_classes_are_the_table():
    assert _lang_map_classes() == {k.dsl_class for k in maps.KINDS}
    for k in maps.KINDS:
        cls = getattr(lang, k.dsl_class)
        assert cls.map_type == k.map_type, k.dsl_class
        assert symbols.MAP_KINDS[cls] is k
        for m in k.methods:
            assert callable(getattr(cls, m.name, None)), f"{k.dsl_class} has no Python method {m.name}"
    assert len({k.kind for k in maps.KINDS}) == len({k.map_type for k in maps.KINDS}) == len(maps.KINDS)


@pytest.mark.parametrize("kind", maps.KINDS, ids=lambda k: k.kind)
def test_methods_name_helpers_of_their_shape(kind):
    for m in kind.methods:
        if m.helper in maps.RESERVATION_HELPERS:  # typed by frontend/ringbuf.py: tests/compiler/test_ringbuf.py
            continue
        h = HELPERS[m.helper]
        assert h.params.count("map") == 1, m
        # the DSL arguments are the helper's, minus the map and what the method supplies itself
        assert len(h.params) - 1 == len(m.params) + len(m.fixed), m
        assert 1 <= m.required <= len(m.params)
        if m.required < len(m.params):
            assert h.params[-1] == "u64", m  # only trailing flags may be left out
    assert kind.has_key == (kind.key in ("type", "lpm"))
    assert all(set(m.fixed) <= {"value", "flags"} for m in kind.methods)
    assert ("key" in kind.params) == kind.has_key


def test_flags_a_method_may_omit_may_be_omitted_in_raw_calls():
    omittable = {m.helper for k in maps.KINDS for m in k.methods if m.required < len(m.params)} \
        - maps.RESERVATION_HELPERS
    assert omittable <= OPTIONAL_FLAGS
    for name in OPTIONAL_FLAGS:
        assert HELPERS[name].params[-1] == "u64", name


def test_raw_helpers_accept_the_kinds_whose_methods_call_them():
    assert maps.MAP_KINDS_FOR["map_lookup_elem"] == tuple(k.kind for k in maps.KINDS if k.lookup)
    assert maps.MAP_KINDS_FOR["sock_hash_update"] == ("sockhash",)
    assert "map_delete_elem" not in maps.MAP_KINDS_FOR  # every map type has a delete operation


LRU_PERCPU = """
hits = LRUPerCPUHash(key=u32, value=u64, max_entries=2)


class Args(Struct):
    key: u32
    found: u32


@syscall
def bump(ctx: Args) -> int:
    r = hits.lookup(ctx.key)  # a key in the context: copied to the stack for the helper
    if r is None:
        hits.update(ctx.key, 1)
        ctx.found = 0
    else:
        r.value += 1
        ctx.found = 1
    if 99 in hits:
        hits.delete(99)
    return 0
"""


def test_lru_percpu_hash_compiles_with_its_map_type(compile_src):
    c = compile_src(LRU_PERCPU, name="lrupc")
    assert c.result.output and not c.errors, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    (m,) = [m for m in obj.maps.values() if m.name == "hits"]
    assert (m.type, m.key_size, m.value_size, m.max_entries) == (10, 4, 8, 2)
    assert m.type_name == "lru_percpu_hash"


def test_lru_percpu_hash_runs_in_the_interpreter_with_lru_eviction(compile_src):
    c = compile_src(LRU_PERCPU, name="lrupc")
    mod = testing.load(c.path)
    for key, found in ((1, 0), (1, 1), (2, 0), (1, 1), (3, 0), (2, 0)):
        mod.run("bump", {"key": key})
        assert mod.last_ctx()["found"] == found, key
    # 2 was evicted when 3 came in (1 had been used more recently), then 1 for 2
    assert sorted(mod.map("hits").keys()) == [2, 3]


def test_lru_percpu_hash_methods_are_checked(compile_src):
    c = compile_src("""
        h = LRUPerCPUHash(key=u32, value=u64, max_entries=4)

        @sock_ops
        def p(ctx: SockOps) -> int:
            h.redirect(ctx, 1)
            return 1
        """)
    assert c.messages == ["map `h` has no method `redirect`"]


@pytest.mark.kernel
def test_the_kernel_loads_an_lru_percpu_hash(compile_src, tmp_path, pin_root):
    c = compile_src(LRU_PERCPU, name="lrupc")
    assert c.result.output
    kl.load(c.result.output, pin_root=pin_root)
    try:
        sc = Syscall()
        fd = sc.obj_get(os.path.join(pin_root, "lrupc", "progs", "bump"))
        try:
            sim = testing.load(c.path)
            args_t = next(s for s in sim.ir.structs if s.name == "Args")
            for key in (1, 1, 2):
                ctx = testing.encode(args_t, {"key": key})
                k_rv, k_out = sc.prog_test_run(fd, ctx=ctx)
                assert (k_rv, k_out) == (sim.run("bump", ctx), bytes(sim.last_context.mem)), key
        finally:
            os.close(fd)
        kinds = {m["name"]: m["type"] for m in kl.status(pin_root=pin_root)["objects"][0]["maps"]}
        assert kinds["hits"] == "lru_percpu_hash"
    finally:
        kl.unload("lrupc", pin_root=pin_root)

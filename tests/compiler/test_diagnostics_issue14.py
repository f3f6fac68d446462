"""Diagnostics of issue 14: return values checked against the program type, helper-argument errors that name
the helper and the parameter, and no follow-on errors from one root cause."""
from __future__ import annotations

import pytest

from pybpfgen.frontend.helper_calls import param_names
from pybpfgen.target.helpers import HELPERS
from pybpfgen.target.progtypes import PROG_TYPES

SOCKS = "socks = SockHash(key=u32, max_entries=16)\n"


def _prog(progtype: str, body: str) -> str:
    pt = PROG_TYPES[progtype]
    deco = f"@{progtype}(socks)" if pt.needs_map else f"@{progtype}"
    ctx = pt.ctx_class or "Args"
    return f"""{SOCKS}
class Args(Struct):
    a: u32

{deco}
def prog(ctx: {ctx}) -> int:
{body}
"""


@pytest.mark.parametrize("progtype", sorted(n for n, p in PROG_TYPES.items() if p.returns is not None))
def test_constant_return_outside_the_program_types_values_is_an_error(progtype, compile_src):
    lo, hi = PROG_TYPES[progtype].returns
    c = compile_src(_prog(progtype, f"    if bpf_get_prandom_u32() == 0:\n        return {lo}\n    return {hi + 1}"))
    assert len(c.errors) == 1, c.messages
    e = c.errors[0]
    assert e.message.startswith(f"a {progtype} program returns ") and e.message.endswith(f", not {hi + 1}")
    assert e.loc.line == 11  # the return line (the compile_src header is line 1)
    c = compile_src(_prog(progtype, f"    return {hi}"))
    assert not c.errors, c.messages
    c = compile_src(_prog(progtype, f"    return {hi} + 1"))  # folded: still a constant
    allowed = str(lo) if lo == hi else " or ".join(map(str, range(lo, hi + 1))) if hi - lo < 2 else f"{lo}..{hi}"
    assert c.messages == [f"a {progtype} program returns {allowed}, not {hi + 1}"], c.messages


def test_sock_ops_and_sk_msg_return_0_or_1(compile_src):
    """The issue's two cases: sock_ops `return 2` (the verifier's complaint) and sk_msg `return 2` (silently a
    drop in the kernel) are compile errors at the return."""
    c = compile_src(_prog("sock_ops", "    if ctx.op == 4:\n        return 2\n    return 1"))
    assert c.messages == ["a sock_ops program returns 0 or 1, not 2"] and c.errors[0].loc.line == 10
    assert "ctx.reply" in c.errors[0].hint
    c = compile_src(_prog("sk_msg", "    return 2"))
    assert c.messages == ["a sk_msg program returns 0 or 1, not 2"]
    assert "SK_PASS" in c.errors[0].hint


@pytest.mark.parametrize("value,always", [("ctx.op | 2", "2..4294967295"), ("(ctx.op & 1) + 2", "2..3"),
                                          ("ctx.op % 8 + 5", "5..12")])
def test_computed_return_provably_out_of_range_is_an_error(value, always, compile_src):
    c = compile_src(_prog("sock_ops", f"    return {value}"))
    assert c.messages == [f"a sock_ops program returns 0 or 1, but this value is always {always}"], c.messages


@pytest.mark.parametrize("value", ["ctx.op", "ctx.op & 1", "ctx.op % 2", "u32(ctx.op == 4)", "ctx.op | 0"])
def test_computed_return_that_may_fit_is_left_to_the_verifier(value, compile_src):
    c = compile_src(_prog("sock_ops", f"    return {value}"))
    assert not c.errors, c.messages


def test_struct_passed_for_an_integer_names_helper_and_parameter(compile_src):
    c = compile_src(f"""{SOCKS}
class Key(Struct):
    a: u32

@sk_msg(socks)
def prog(msg: SkMsg) -> int:
    bpf_msg_apply_bytes(msg, Key(1))
    bpf_msg_apply_bytes(Key(1), 3)
    socks.redirect(msg, Key(1), BPF_F_INGRESS)
    return SK_PASS
""")
    assert c.messages == [
        "argument `bytes` of `bpf_msg_apply_bytes()` is an integer, not the struct Key",
        "argument `msg` of `bpf_msg_apply_bytes()` is the program's context, not Key",
        "argument `key` of `socks.redirect()`: expected a value of type u32, got Key",
    ], c.messages
    assert [e.loc.col for e in c.errors] == [29, 24, 24]  # at the argument


def test_helper_parameters_are_named_as_in_pybpfgen_lang():
    import inspect

    import pybpfgen.lang_helpers as generated
    for name, h in HELPERS.items():
        fn = getattr(generated, f"bpf_{name}", None)
        if fn is not None:
            assert param_names(h) == list(inspect.signature(fn).parameters), name


def test_helper_arguments_by_keyword_use_those_names(compile_src):
    c = compile_src(f"""{SOCKS}
@sk_msg(socks)
def prog(msg: SkMsg) -> int:
    bpf_msg_apply_bytes(msg, bytes=100)
    bpf_msg_pull_data(msg, start=0, end=4, flags=0)
    return SK_PASS
""")
    assert not c.errors, c.messages
    c = compile_src(f"""{SOCKS}
@sk_msg(socks)
def prog(msg: SkMsg) -> int:
    bpf_msg_apply_bytes(msg, nbytes=100)
    return SK_PASS
""")
    assert c.messages == ["`bpf_msg_apply_bytes()` has no parameter `nbytes`"]
    assert c.errors[0].hint == "parameters: msg, bytes"


def test_raw_trace_printk_is_bpf_printk(compile_src):
    c = compile_src(_prog("sock_ops", '    bpf_trace_printk("op %u", ctx.op)\n    return 1'))
    assert not c.errors, c.messages


def test_out_of_range_constant_has_no_follow_on_error(compile_src):
    """The issue's case: `threshold: u8 = 300` then a use of `threshold`: one error, at the constant."""
    c = compile_src(_prog("sock_ops", "    threshold: u8 = 300\n    if ctx.op > threshold:\n        return 0\n"
                                      "    return 1"))
    assert c.messages == ["constant 300 does not fit in u8"], c.messages


@pytest.mark.parametrize("assignment", ["y = ctx.nosuchfield", "y = [i for i in range(3)]", "y = 1.5",
                                        "y: u8 = 1 / 2", "y = undefined_name"])
def test_failed_assignment_reports_only_its_own_error(assignment, compile_src):
    c = compile_src(_prog("sock_ops", f"    {assignment}\n    z = y + 1\n    y += 2\n    if y > z:\n        return 0\n"
                                      "    return 1"))
    assert len(c.errors) == 1, c.messages
    assert c.errors[0].loc.line == 9


def test_an_unrelated_later_error_is_still_reported(compile_src):
    c = compile_src(_prog("sock_ops", "    y: u8 = 300\n    z = w + y\n    return 1"))
    assert c.messages == ["constant 300 does not fit in u8", "name `w` is not defined"], c.messages

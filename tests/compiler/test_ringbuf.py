"""Ring buffers: RingBuf(event=T), output() checked against T, reserve / submit / discard with the verifier's
rules as compile errors (frontend/ringbuf.py), the event type recorded in the map definition's BTF, and the
records collected by pybpfgen.testing."""
from __future__ import annotations

import pytest

from kernel_loader.btf import Btf
from kernel_loader.elfread import ElfFile
from pybpfgen import testing
from pybpfgen.frontend.ringbuf import reservation_helper
from pybpfgen.target import maps

PRELUDE = """
class Event(Struct):
    cookie: u64
    srtt: u32
    port: u32

class Other(Struct):
    x: u64

events = RingBuf(event=Event, max_entries=4096)
others = RingBuf(max_entries=4096)
counts = Hash(key=u32, value=Event, max_entries=4)
"""

GOOD = PRELUDE + """
@sock_ops
def rtt(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    ev.cookie = bpf_get_socket_cookie(ctx)
    ev.srtt = ctx.srtt_us
    if ctx.local_port == 9:
        events.discard(ev)
        return 1
    ev.port = ctx.local_port
    events.submit(ev)
    return 1

@sock_ops
def copy(ctx: SockOps) -> int:
    events.output(Event(7, ctx.srtt_us, ctx.remote_port))
    return 1
"""


def _section(path: str, name: str) -> bytes:
    with open(path, "rb") as f:
        elf = ElfFile(f.read())
    return next(s.data() for s in elf.sections if s.name == name)


def _errors(compile_src, body: str):
    c = compile_src(PRELUDE + body)
    assert c.errors, "expected a compile error"
    return c.errors


def test_reservation_helpers_are_the_kernels():
    assert {m.helper for m in maps.BY_KIND["ringbuf"].methods} == {"ringbuf_output"} | maps.RESERVATION_HELPERS
    assert [reservation_helper(n).id for n in ("ringbuf_reserve", "ringbuf_submit", "ringbuf_discard")] == \
        [131, 132, 133]


def test_reserve_submit_compiles_and_records_the_event_type_in_btf(compile_src):
    c = compile_src(GOOD)
    assert not c.errors, c.errors
    btf = Btf.parse(_section(c.result.output, ".BTF"))
    d = btf.map_definition("events")
    assert d["type"] == 27 and d["max_entries"] == 4096 and d["key_size"] == d["value_size"] == 0
    assert btf.type_name(d["event_type_id"]) == "struct Event"
    assert btf.describe(d["event_type_id"]).startswith('{"cookie": u64')
    assert "event_type_id" not in btf.map_definition("others")


def test_testing_collects_submitted_and_output_records(compile_src):
    c = compile_src(GOOD)
    mod = testing.load(c.path)
    assert mod.run("rtt", testing.sock_ops(srtt_us=80, local_port=40000, cookie=5)) == 1
    assert mod.run("rtt", testing.sock_ops(srtt_us=81, local_port=9, cookie=6)) == 1  # discarded
    assert mod.run("copy", testing.sock_ops(srtt_us=82, remote_port=443)) == 1
    ev = mod.map("events")
    assert ev.events() == [{"cookie": 5, "srtt": 80, "port": 40000}, {"cookie": 7, "srtt": 82, "port": 443}]
    assert ev.events() == [] and not ev.reserved


def test_testing_reserve_fails_when_the_buffer_is_full(compile_src):
    c = compile_src(GOOD)
    mod = testing.load(c.path)
    for _ in range(4096 // 24 + 3):
        mod.run("rtt", testing.sock_ops(srtt_us=1, local_port=1))
    assert len(mod.map("events").events()) == 4096 // 24  # each record: 16 bytes + an 8-byte header
    mod.run("rtt", testing.sock_ops(srtt_us=1, local_port=1))
    assert len(mod.map("events").events()) == 1  # reading made room again


@pytest.mark.parametrize("body, message, line", [
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    ev.srtt = 1
    events.submit(ev)
    return 1
""", "`ev` may be None here: reserving fails when the ring buffer is full", 18),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve()
    events.submit(ev)
    return 1
""", "`ev` may be None here", 18),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    ev.srtt = 1
    return 1
""", "`ev` (reserved from `events` at line 17) is neither submitted nor discarded on the path that reaches "
     "this return (line 21)", 21),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is not None:
        if ctx.srtt_us > 10:
            events.submit(ev)
    return 1
""", "neither submitted nor discarded on the path that reaches this return (line 21)", 21),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    if ctx.srtt_us > 10:
        events.submit(ev)
    events.discard(ev)
    return 1
""", "`ev` (reserved at line 17) may already have been submitted or discarded (line 21)", 22),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        events.discard(ev)
        return 1
    events.submit(ev)
    return 1
""", "`ev` is None here: the reservation failed and there is nothing to discard", 19),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    events.submit(ev)
    ev.srtt = 2
    return 1
""", "`ev` is used after it was submitted or discarded (line 20)", 21),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    other = ev
    if ev is None:
        return 1
    events.submit(ev)
    return 1
""", "a reservation of `events` cannot be copied into another variable", 18),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    counts.update(1, ev)
    events.submit(ev)
    return 1
""", "a reservation of `events` cannot be stored, passed or returned", 20),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    if events.reserve(Event) is None:
        return 1
    return 1
""", "the result of `events.reserve()` must be assigned to a local name", 17),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    events.output(Other(1))
    return 1
""", "`events` carries Event records (RingBuf(event=Event) at line 11), not Other", 17),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Other)
    return 1
""", "`events` carries Event records (RingBuf(event=Event) at line 11), not Other", 17),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = others.reserve()
    return 1
""", "`others.reserve()` needs the type of the record to reserve", 17),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    for i in range(4):
        ev = events.reserve(Event)
        if ev is None:
            continue
        ev.port = i
    return 1
""", "is neither submitted nor discarded on the path that reaches this end of the loop body (line 21)", 21),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    for i in range(2):
        events.submit(ev)
    return 1
""", "`ev` was reserved (line 17) before this loop: releasing it inside the loop could release it twice", 21),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    ev = events.reserve(Event)
    return 1
""", "`ev` still holds the reservation of line 17", 18),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    others.submit(ev)
    return 1
""", "`ev` is a reservation of `events`, not of `others`", 20),
    ("""
@sock_ops
def p(ctx: SockOps) -> int:
    x = 1
    events.submit(x)
    return 1
""", "`events.submit()` takes a reservation made by `events.reserve()`", 18),
    ("""
def port_of(e: Event) -> u32:
    return e.port

@sock_ops
def p(ctx: SockOps) -> int:
    ev = events.reserve(Event)
    if ev is None:
        return 1
    x = port_of(ev)
    events.submit(ev)
    return 1
""", "a reservation of `events` cannot be stored, passed or returned", 23),
    ("""
def make() -> None:
    ev = events.reserve(Event)
    if ev is None:
        return
    ev.port = 1

@sock_ops
def p(ctx: SockOps) -> int:
    make()
    return 1
""", "`ev` (reserved from `events` at line 16) is neither submitted nor discarded on the path that reaches this end "
     "of the function (line 19)", 19),
])
def test_each_rule_is_a_located_compile_error(compile_src, body, message, line):
    errors = _errors(compile_src, body)
    found = [(e.loc.line, e.message) for e in errors if message in e.message]
    assert found and found[0][0] == line, [(e.loc.line, e.message) for e in errors]
    assert len(errors) == 1, [(e.loc.line, e.message) for e in errors]  # no follow-on errors


@pytest.mark.parametrize("helper", ["bpf_ringbuf_reserve(events, 16, 0)", "bpf_ringbuf_submit(x, 0)",
                                    "bpf_ringbuf_discard(x, 0)"])
def test_raw_reservation_helpers_point_to_the_methods(compile_src, helper):
    errors = _errors(compile_src, f"""
@sock_ops
def p(ctx: SockOps) -> int:
    x = 1
    {helper}
    return 1
""")
    assert [e.loc.line for e in errors] == [18]
    assert "is called through the RingBuf's methods" in errors[0].message and "events." in errors[0].hint


@pytest.mark.parametrize("decl, message", [
    ("bad = RingBuf(event=Event, max_entries=4000)", "a RingBuf size must be a power of 2"),
    ("class Big(Struct):\n    b: u8[4096]\nbad = RingBuf(event=Big, max_entries=4096)",
     "a Big record (4096 bytes and an 8-byte header) does not fit in a RingBuf of 4096 bytes"),
    ("bad = RingBuf(event=Event, max_entries=4096, value=u32)", "unknown map parameter `value`"),
    ("bad = RingBuf(event=bool, max_entries=4096)", "a RingBuf event is a Struct, an integer or an array, not bool"),
])
def test_declaration_errors(compile_src, decl, message):
    c = compile_src(PRELUDE + decl + "\n")
    assert any(message in m for m in c.messages), c.messages


def test_a_reservation_released_on_every_path_compiles(compile_src):
    c = compile_src(PRELUDE + """
@sock_ops
def p(ctx: SockOps) -> int:
    for i in range(3):
        ev = events.reserve()
        if not ev:
            break
        ev.port = i
        if i == 1:
            events.discard(ev)
            continue
        events.submit(ev, 0)
    ev2 = events.reserve(Event)
    if ev2 is not None and ctx.srtt_us > 1:
        ev2.value = Event(1, 2, 3)
        events.submit(ev2)
    elif ev2 is not None:
        events.discard(ev2)
    return 1
""")
    assert not c.errors, [(e.loc.line, e.message) for e in c.errors]
    mod = testing.load(c.path)
    mod.run("p", testing.sock_ops(srtt_us=5))
    assert [e["port"] for e in mod.map("events").events()] == [0, 2, 3]


def test_type_checkers_see_a_reservation_as_its_event(tmp_path):
    """RingBuf(event=E).reserve() is Optional[E] for mypy (and editors): a misspelt field is reported."""
    pytest.importorskip("mypy", reason="mypy is in the test extra (pip install -e '.[test]')")
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    example = os.path.join(root, "examples", "gallery", "rtt_events.py")
    bad = tmp_path / "rtt_bad.py"
    bad.write_text(open(example).read().replace("ev.snd_cwnd = ctx.snd_cwnd", "ev.snd_cwd = ctx.snd_cwnd"))
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--config-file",
                        os.path.join(root, "pyproject.toml"), example, str(bad)], capture_output=True, text=True,
                       cwd=root)
    assert r.returncode == 1 and r.stdout.count("error:") == 1, r.stdout + r.stderr
    assert '"RttEvent" has no attribute "snd_cwd"' in r.stdout

"""kernel_loader.events / `pybpfgen events` on the real kernel: the ring buffer's pages read by a syscall
program's records (BPF_PROG_TEST_RUN, no traffic needed), typed and untyped records, discarded records skipped,
the consumer position handed back, and the errors: not a ring buffer, no such object or map."""
import json
import os
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import events
from kernel_loader.errors import LoaderError
from kernel_loader.syscall import Syscall
from pybpfgen import testing
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel

SRC = textwrap.dedent("""
    from pybpfgen.lang import *

    class Args(Struct):
        n: u32
        discard_odd: u32

    class Rec(Struct):
        seq: u64
        tag: u32[2]

    typed = RingBuf(event=Rec, max_entries=4096)
    raw = RingBuf(max_entries=4096)
    counts = Array(value=u64, max_entries=1)

    @syscall
    def emit(args: Args) -> int:
        for i in range(64):
            if i >= args.n:
                break
            ev = typed.reserve()
            if ev is None:
                break
            ev.seq = i
            ev.tag[1] = 7
            if args.discard_odd != 0 and i % 2 == 1:
                typed.discard(ev)
                continue
            typed.submit(ev)
        raw.output(u32(0xAABBCCDD))
        return 0
""")


@pytest.fixture
def loaded(tmp_path, pin_root):
    src = tmp_path / "rbtest.py"
    src.write_text(SRC)
    r = compile_file(str(src), str(tmp_path))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, pin_root=str(pin_root))
    yield res.name, str(pin_root), str(src)
    kl.unload(res.name, pin_root=str(pin_root))


def _run(name: str, pin_root: str, n: int, discard_odd: int = 0) -> None:
    sc = Syscall()
    fd = sc.obj_get(os.path.join(pin_root, name, "progs", "emit"))
    try:
        rv, _ = sc.prog_test_run(fd, ctx=n.to_bytes(4, "little") + discard_odd.to_bytes(4, "little"))
    finally:
        os.close(fd)
    assert rv == 0


def test_typed_and_raw_records_in_order_and_discards_skipped(loaded):
    name, pin_root, _ = loaded
    with events.open_events(name, "typed", pin_root) as r, events.open_events(name, "raw", pin_root) as raw:
        assert r.event_type == "struct Rec" and raw.event_type is None
        assert r.consume() == [] and r.poll(timeout=0.1) == []
        _run(name, pin_root, 5, discard_odd=1)
        assert r.pending() == 5 * 24                       # 16-byte records, 8-byte headers
        assert [x["seq"] for x in r.read(count=3, timeout=10)] == [0, 2, 4]
        assert r.pending() == 0 and r.consumer_pos == 5 * 24
        assert raw.poll(timeout=10) == [bytes.fromhex("ddccbbaa")]
        # the room comes back: 4096 bytes hold 170 records, written and read three times over
        for _ in range(3):
            _run(name, pin_root, 60)
            got = r.poll(timeout=10)
            assert [x["seq"] for x in got] == list(range(60)) and got[0]["tag"] == [0, 7]


@pytest.mark.parametrize("n, discard_odd", [(0, 0), (3, 0), (7, 1), (64, 1)])
def test_pybpfgen_testing_collects_what_the_kernel_gives_user_space(loaded, n, discard_odd):
    name, pin_root, src = loaded
    _run(name, pin_root, n, discard_odd)
    with events.open_events(name, "typed", pin_root) as r, events.open_events(name, "raw", pin_root) as raw:
        kernel = (r.poll(timeout=10), raw.poll(timeout=10))
    mod = testing.load(src)
    assert mod.run("emit", {"n": n, "discard_odd": discard_odd}) == 0
    assert (mod.map("typed").events(), mod.map("raw").events()) == kernel


def test_the_command_prints_json_lines_and_hex(loaded, pybpfgen_cli):
    name, pin_root, _ = loaded
    _run(name, pin_root, 2)
    out = pybpfgen_cli.run("events", name, "typed", "--json", "--count", "2", "--timeout", "10")
    assert [json.loads(x) for x in out.stdout.splitlines()] == [{"seq": 0, "tag": [0, 7]}, {"seq": 1, "tag": [0, 7]}]
    out = pybpfgen_cli.run("events", name, "raw", "--count", "1", "--timeout", "10")
    assert out.stdout.split() == ["ddccbbaa"] and "untyped" in out.stderr
    # `map show` says what a ring buffer carries
    shown = pybpfgen_cli.run("map", "show", name, "--pin-root", pin_root, pin=False).stdout
    assert "typed            ringbuf        event struct Rec  entries -/4096" in shown, shown
    assert "raw              ringbuf        event - (bytes)" in shown, shown
    one = pybpfgen_cli.run("map", "show", name, "typed", "--pin-root", pin_root, pin=False).stdout
    assert 'event: struct Rec {"seq": u64, "tag": [u32 x 2]}' in one, one
    js = json.loads(pybpfgen_cli.run("map", "show", name, "--json", "--pin-root", pin_root, pin=False).stdout)
    kinds = {m["name"]: m for m in js["objects"][0]["maps"]}
    assert (kinds["typed"]["event_type"], kinds["raw"]["event_type"]) == ("struct Rec", None)
    assert "event_type" not in kinds["counts"]


def test_errors_are_one_line(loaded, pybpfgen_cli):
    name, pin_root, _ = loaded
    with pytest.raises(LoaderError, match=r"rbtest/counts is a array, not a ring buffer"):
        events.open_events(name, "counts", pin_root)
    for args, message in ((("events", name, "nope"), "has no map 'nope'"),
                          (("events", "nosuch", "typed"), "object 'nosuch' is not loaded"),
                          (("events", name, "counts"), "not a ring buffer")):
        r = pybpfgen_cli.run(*args, check=False)
        assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = pybpfgen_cli.run("events", name, "typed", "--count", "0", check=False)
    assert r.returncode == 2 and "positive number of records" in r.stderr
    assert os.path.isdir(pin_root)


def test_a_reader_that_stops_early_leaves_the_rest_in_the_buffer(loaded):
    """The consumer position moves past a record only when it is handed over: a caller leaving the iteration
    (break, an exception, `pybpfgen events ... | head -1`) leaves the records it did not take for the next
    reader. (Before, read() consumed every record available at once and lost those not yet yielded.)"""
    name, pin_root, _ = loaded
    _run(name, pin_root, 5)
    with events.open_events(name, "typed", pin_root) as r:
        first = next(iter(r.read(timeout=10)))
        assert first["seq"] == 0 and r.pending() == 4 * 24
    assert [x["seq"] for x in events.read_events(name, "typed", pin_root, count=4, timeout=10)] == [1, 2, 3, 4]


def test_one_reader_at_a_time(loaded, pybpfgen_cli):
    """A ring buffer has one consumer position: a second reader would read the same records and write the position
    back over the first's. Before, a second reader opened without a word; now it is refused in one line, and the
    map can be read again once the first reader is closed."""
    name, pin_root, _ = loaded
    _run(name, pin_root, 2)
    with events.open_events(name, "typed", pin_root):
        with pytest.raises(LoaderError, match=r"rbtest/typed is being read by another reader"):
            events.open_events(name, "typed", pin_root)
        r = pybpfgen_cli.run("events", name, "typed", "--count", "1", "--timeout", "5", check=False)
        assert r.returncode != 0 and "being read by another reader" in r.stderr and "Traceback" not in r.stderr
        with events.open_events(name, "raw", pin_root):   # another map: its own reader
            pass
    assert [x["seq"] for x in events.read_events(name, "typed", pin_root, count=2, timeout=10)] == [0, 1]


@pytest.mark.parametrize("where", ["inside a header", "past the producer"])
def test_a_consumer_position_that_is_not_at_a_record_is_reported_and_the_buffer_given_back(loaded, where):
    """Another consumer (or anything writing the consumer page) can leave the position where no record starts.
    Before, the reader decoded bytes as headers and records (garbage), or, with the position past the producer's,
    returned nothing while every reservation failed for good. Now it says so, skips to the producer position,
    and the buffer works again."""
    name, pin_root, _ = loaded
    _run(name, pin_root, 3)
    with events.open_events(name, "typed", pin_root) as r:
        prod = r.producer_pos
        bad = r.consumer_pos + 4 if where == "inside a header" else prod + 4096
        r._consumer[:8] = bad.to_bytes(8, "little")     # what a second consumer's stale write looks like
        with pytest.raises(LoaderError, match=r"does not point at a record .* the records in between are lost"):
            r.consume()
        assert r.consumer_pos == r.producer_pos == prod
        _run(name, pin_root, 2)
        assert [x["seq"] for x in r.poll(timeout=10)] == [0, 1]


BIG = textwrap.dedent("""
    from pybpfgen.lang import *

    class Args(Struct):
        n: u32

    class Big(Struct):
        seq: u64
        data: u64[600]

    big = RingBuf(event=Big, max_entries=8192)

    @syscall
    def emit_big(args: Args) -> int:
        for i in range(2):
            ev = big.reserve()
            if ev is None:
                return i
            ev.seq = args.n
            ev.data[0] = args.n + 1
            ev.data[599] = args.n + 2
            big.submit(ev)
        return 2
""")


def test_records_larger_than_a_page_wrap_around_the_end_and_a_full_buffer_refuses(tmp_path, pin_root):
    """4816-byte records (8-byte header) in an 8192-byte buffer: one fits at a time (the second reservation of a
    run fails: the buffer is full until the reader consumes), and every other one wraps around the end of the data
    area (the second, at 4816..9632, ends with data[599] past the end), read whole through its second mapping."""
    src = tmp_path / "bigrb.py"
    src.write_text(BIG)
    r = compile_file(str(src), str(tmp_path))
    assert r.output, [d.format() for d in r.diagnostics]
    [res] = kl.load(r.output, pin_root=str(pin_root))
    sc = Syscall()
    fd = sc.obj_get(os.path.join(str(pin_root), res.name, "progs", "emit_big"))
    try:
        with events.open_events(res.name, "big", str(pin_root)) as rd:
            for k in range(5):
                before = rd.consumer_pos
                rv, _ = sc.prog_test_run(fd, ctx=(100 * k).to_bytes(4, "little"))
                assert rv == 1                                     # the second reservation found the buffer full
                [rec] = rd.poll(timeout=10)
                assert (rec["seq"], rec["data"][0], rec["data"][599]) == (100 * k, 100 * k + 1, 100 * k + 2)
                assert rd.consumer_pos - before == 4816
    finally:
        os.close(fd)
        kl.unload(res.name, pin_root=str(pin_root))

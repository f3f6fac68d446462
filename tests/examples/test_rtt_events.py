"""examples/gallery/rtt_events.py on the real kernel: loaded into a private child cgroup and pin root, it streams
RTT records of the loopback TCP connections a process in the cgroup makes; the test reads them with the Python
API (kernel_loader.events) and once with `pybpfgen events`, and checks them against the connections it made."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import events
from pybpfgen import testing
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "gallery", "rtt_events.py")

# joins the cgroup, makes N loopback TCP connections (both ends in the cgroup), exchanges ROUNDS request /
# response pairs on each, and prints each connection's ends: socket cookies and ports
TRAFFIC = textwrap.dedent("""
    import json, os, socket, sys
    cg, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    SO_COOKIE = 57
    def cookie(s):
        return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(n)
    conns = []
    for i in range(n):
        c = socket.create_connection(ls.getsockname(), timeout=30)
        s, _ = ls.accept()
        s.settimeout(30)
        for r in range(rounds):
            c.sendall(b"q" * 100)
            got = b""
            while len(got) < 100:
                got += s.recv(100 - len(got))
            s.sendall(b"a" * 1000)
            got = b""
            while len(got) < 1000:
                got += c.recv(1000 - len(got))
        conns.append({"client": {"cookie": cookie(c), "local_port": c.getsockname()[1],
                                 "remote_port": c.getpeername()[1]},
                      "server": {"cookie": cookie(s), "local_port": s.getsockname()[1],
                                 "remote_port": s.getpeername()[1]}})
        c.close()
        s.close()
    print(json.dumps(conns))
""")


def _traffic(cgroup, n: int, rounds: int = 5) -> list[dict]:
    r = subprocess.run([sys.executable, "-c", TRAFFIC, str(cgroup), str(n), str(rounds)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _check(records: list[dict], conns: list[dict]) -> None:
    ends = {e["cookie"]: e for c in conns for e in (c["client"], c["server"])}
    got = {}
    for rec in records:
        assert set(rec) == {"cookie", "bytes_acked", "srtt_us", "rtt_min_us", "snd_cwnd", "local_port",
                            "remote_port"}, rec
        end = ends.get(rec["cookie"])
        assert end is not None, (rec, ends)      # only sockets of the cgroup's process, only these connections
        assert (rec["local_port"], rec["remote_port"]) == (end["local_port"], end["remote_port"]), (rec, end)
        assert 0 <= rec["srtt_us"] < 10_000_000 and rec["rtt_min_us"] < 10_000_000 and rec["snd_cwnd"] > 0, rec
        got.setdefault(rec["cookie"], []).append(rec)
    # every end of every connection sent data and had it acknowledged: each has RTT samples
    assert set(got) == set(ends), (sorted(got), sorted(ends))
    for recs in got.values():
        acked = [r["bytes_acked"] for r in recs]
        assert acked == sorted(acked) and acked[-1] > 0, acked   # one socket's samples come in order, after data


def test_rtt_events_in_pybpfgen_testing():
    mod = testing.load(EXAMPLE)
    ctx = testing.sock_ops(op=4, cb_flags=0)
    assert mod.run("rtt_events", ctx) == 1 and ctx.cb_flags == 8   # established: RTT callbacks on
    assert mod.map("events").events() == []
    assert mod.run("rtt_events", testing.sock_ops(op=12, srtt_us=80 << 3, rtt_min=70, snd_cwnd=10, bytes_acked=5,
                                                   local_port=40000, remote_port=6379, cookie=42)) == 1
    assert mod.map("events").events() == [{"cookie": 42, "bytes_acked": 5, "srtt_us": 80, "rtt_min_us": 70,
                                           "snd_cwnd": 10, "local_port": 40000, "remote_port": 6379}]


def test_rtt_events_streams_the_connections_rtt(tmp_path, pin_root, child_cgroup, pybpfgen_cli):
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    assert obj, "rtt_events.py did not compile"
    [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=str(pin_root))
    try:
        with events.open_events(res.name, "events", pin_root=str(pin_root)) as reader:
            assert reader.event_type == "struct RttEvent"
            assert reader.consume() == []            # nothing yet: no socket of the cgroup has done anything
            conns = _traffic(child_cgroup, 3)
            ends = {e["cookie"] for c in conns for e in (c["client"], c["server"])}
            records: list = []
            for rec in reader.read(timeout=30):
                records.append(rec)
                if {r["cookie"] for r in records} >= ends:
                    break
            records += reader.poll(timeout=1)        # the closes' ACKs may still bring samples
            _check(records, conns)
            assert reader.pending() == 0 or reader.consume() is not None

        # the command, on new connections: JSON lines until the timeout
        conns = _traffic(child_cgroup, 1)
        r = pybpfgen_cli.run("events", res.name, "events", "--json", "--timeout", "3")
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert "struct RttEvent" in r.stderr
        _check(lines, conns)
        r = pybpfgen_cli.run("events", res.name, "events", "--count", "1", "--timeout", "1", check=False)
        assert r.returncode == 1 and "0 of 1 records in 1 s" in r.stderr, (r.stdout, r.stderr)
    finally:
        kl.unload(res.name, pin_root=str(pin_root))


def test_libbpf_loads_the_object_with_its_recorded_event_type(tmp_path, pin_root):
    """The record type in the ring buffer's definition (`struct RttEvent (*type)[27]`) does not disturb libbpf:
    bpftool loads the object and creates the ring buffer (key and value sizes 0)."""
    import shutil
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (scripts/setup.sh installs it)")
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    r = subprocess.run([bpftool, "prog", "loadall", obj, str(pin_root / "libbpf"), "pinmaps", str(pin_root / "maps")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bpftool, "-j", "map", "show", "pinned", str(pin_root / "maps" / "events")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert (m["type"], m["bytes_key"], m["bytes_value"], m["max_entries"]) == ("ringbuf", 0, 0, 1 << 16), m

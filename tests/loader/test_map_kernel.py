"""`pybpfgen map` on the real kernel: the DSL-compiled accelerator in a private child cgroup and pin root; a port
set with `map set` accelerates a loopback connection, whose sockets and counters `map dump` / `map get` show."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import pybpfgen_accel as accel
import kernel_loader as kl
from kernel_loader.errors import LoaderError
from kernel_loader.maps import possible_cpus

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAIR = textwrap.dedent("""
    import socket, sys
    port = int(sys.argv[1])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = srv.accept()
    for i in range(20):                      # ping-pong: every message answered, so all of them redirect
        c.sendall(b"ping %d" % i)
        assert s.recv(100) == b"ping %d" % i
        s.sendall(b"pong %d" % i)
        assert c.recv(100) == b"pong %d" % i
    print("ready", c.getsockname()[1], flush=True)
    sys.stdin.readline()
""")


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "kernel_loader", "map", *args], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"map {args} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_cgroup(cgroup: str):
    def enter():
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return enter


def test_map_commands_on_the_accelerator(accel_object, test_cgroup, pin_root):
    kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    pr = ("--pin-root", pin_root)
    show = json.loads(cli("show", "--json", *pr).stdout)
    maps = {m["name"]: m for m in show["objects"][0]["maps"]}
    assert maps["policy_cidrs"]["key_type"] == "struct Prefix" and maps["policy_cidrs"]["btf"] == "kernel"
    assert maps["socks"]["key_type"] == "__u64" and maps["socks"]["btf"] == "object"  # socket cookies
    assert maps["stats"]["entries"] == 1 and maps["policy_ports"]["entries"] == 0

    port = free_port()
    assert cli("set", "accel", "policy_ports", str(port), "1", *pr).stdout.strip() == \
        f"accel/policy_ports[{port}] = 1"
    assert accel.policy_list(pin_root=pin_root) == [port]                 # what `policy` reads: the same bytes
    assert cli("get", "accel", "policy_ports", str(port), *pr).stdout.strip() == "1"
    accel.policy_add_cidr("10.0.0.0/8", pin_root=pin_root)
    assert json.loads(cli("dump", "accel", "policy_cidrs", "--json", *pr).stdout) == [
        {"key": {"prefixlen": 104, "addr": [0, 0, 0xFFFF0000, 10]}, "value": 3}]
    cli("delete", "accel", "policy_cidrs", '{"prefixlen": 104, "addr": [0, 0, 4294901760, 10]}', *pr)
    assert accel.policy_list_cidrs(pin_root=pin_root) == []

    before = kl.map_get("accel", "stats", 0, pin_root=pin_root)
    assert len(before) == possible_cpus()
    p = subprocess.Popen([sys.executable, "-c", PAIR, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, preexec_fn=in_cgroup(test_cgroup))
    try:
        line = p.stdout.readline().split()
        assert line and line[0] == "ready", line
        client_port = int(line[1])
        socks = json.loads(cli("dump", "accel", "socks", "--json", *pr).stdout)
        assert client_port and len(socks) == 2
        # the key is the socket's cookie, and the kernel shows a sockhash value as the socket's cookie too
        assert all(isinstance(e["value"], int) and e["key"] == e["value"] for e in socks), socks
        after = json.loads(cli("get", "accel", "stats", "0", *pr).stdout)
        red = sum(c["redirected"] for c in after) - sum(c["redirected"] for c in before)
        assert red >= 40 and sum(c["paired"] for c in after) >= 1
    finally:
        p.stdin.close()
        p.wait(timeout=30)

    # settings through the generic API; the policy layer reads the same value
    cli("set", "accel", "settings", "0", '{"max_unanswered_kib": 64}', *pr)
    assert accel.policy_settings(pin_root=pin_root)["max_unanswered_kib"] == 64
    cli("set", "accel", "stats", "0", json.dumps([{"missed": i} for i in range(possible_cpus())]), *pr)
    assert [c["missed"] for c in kl.map_get("accel", "stats", 0, pin_root=pin_root)] == list(range(possible_cpus()))
    # errors: one line, exit 1
    r = cli("set", "accel", "settings", "1", "{}", *pr, check=False)
    assert r.returncode == 1 and r.stderr.strip() == ("pybpfgen: error: accel/settings: cannot set 1: index 1 is out "
                                                      "of range (an array of 1: 0..0)")
    r = cli("set", "accel", "policy_tuples", '{"local_port": "x"}', "1", *pr, check=False)
    assert r.returncode == 1 and "local_port: expected an integer" in r.stderr and len(r.stderr.splitlines()) == 1
    r = cli("set", "accel", "socks", "{}", "1", *pr, check=False)
    assert r.returncode == 1 and "values are sockets" in r.stderr
    with pytest.raises(LoaderError, match="has no map 'nope'"):
        kl.open_map("accel", "nope", pin_root=pin_root)
    assert cli("delete", "accel", "policy_ports", str(port), *pr).stdout.startswith("deleted")
    assert accel.policy_list(pin_root=pin_root) == []


GLOBALS = textwrap.dedent("""
    from pybpfgen.lang import *

    LIMIT = Config(u32, 7)
    counter = Global(u64)

    @sock_ops
    def p(ctx: SockOps) -> int:
        counter.value += LIMIT.value
        return 1
""")


def test_global_data_maps_are_typed_from_the_object(tmp_path, test_cgroup, pin_root):
    from pybpfgen.driver import compile_file
    src = tmp_path / "globs.py"
    src.write_text(GLOBALS)
    kl.load(compile_file(str(src), str(tmp_path)).output, cgroup=test_cgroup, pin_root=pin_root)
    pr = ("--pin-root", pin_root)
    assert cli("dump", "globs", "rodata", *pr).stdout == '0: {"LIMIT": 7}\n'
    cli("set", "globs", "bss", "0", '{"counter": 5}', *pr)
    assert json.loads(cli("get", "globs", "bss", "0", *pr).stdout) == {"counter": 5}
    m = kl.map_show("globs", "bss", pin_root=pin_root)["objects"][0]["maps"][0]
    assert (m["key_type"], m["value"], m["btf"]) == ("unsigned int", '{"counter": u64}', "object")
    r = cli("set", "globs", "rodata", "0", '{"LIMIT": 5}', *pr, check=False)
    assert r.returncode == 1 and "read-only" in r.stderr and "load --set" in r.stderr

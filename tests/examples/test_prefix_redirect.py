"""examples/gallery/prefix_redirect.py on the kernel: loaded into a private child cgroup and pin root with the
front and priority services' ports set (its Configs), a client in the cgroup sends requests to the front service
over loopback TCP; those that start with ``PRIO`` arrive at the priority service's socket instead (redirected by the
sk_msg program, which read the message's first bytes through a checked view), those that start with ``DROP`` fail
in the client's ``send()``, and the rest (short ones included) arrive at the front service; ``stats`` counts each
outcome. Also: the same cases in pybpfgen.testing."""
import json
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.elf import parse_object
from pybpfgen import testing
from pybpfgen.driver import compile_file

REPO = __file__.rsplit("/tests/", 1)[0]
EXAMPLE = f"{REPO}/examples/gallery/prefix_redirect.py"

# the client's messages, one send() each, and where each must arrive
# (last: the kernel keeps an sk_msg SK_DROP verdict for the socket's later sends: they fail too, unseen by the program)
MESSAGES = [
    (b"GET /index.html\n", "front"),
    (b"PRIO job-1\n", "prio"),
    (b"hi", "front"),  # shorter than 4 bytes: no view, the normal path
    (b"PRIORITY job-2\n", "prio"),
    (b"GET /prio\n", "front"),
    (b"DROP table\n", "refused"),
]

# in the cgroup: a front service and a priority service on loopback, a priority worker connected to the latter, a
# client connected to the former; prints the two ports, waits for "go" (the programs are loaded then), sends the
# messages, and prints what each service received and which sends failed
SCRIPT = textwrap.dedent("""
    import json, os, socket, sys, threading, time
    with open(os.path.join(sys.argv[1], "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    want_prio = int(sys.argv[2])
    messages = [bytes.fromhex(m) for m in sys.argv[3:]]
    front, prio = socket.socket(), socket.socket()
    for ls in (front, prio):
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
    print(front.getsockname()[1], prio.getsockname()[1], flush=True)
    assert sys.stdin.readline().strip() == "go"
    got = {"front": b"", "prio": b""}

    def drain(ls, name, until):
        c, _ = ls.accept()
        c.settimeout(20)
        try:
            while len(got[name]) < until:
                chunk = c.recv(4096)
                if not chunk:
                    break
                got[name] += chunk
        except socket.timeout:
            pass

    t_prio = threading.Thread(target=drain, args=(prio, "prio", want_prio))
    t_front = threading.Thread(target=drain, args=(front, "front", 1 << 20))
    t_prio.start()
    t_front.start()
    worker = socket.create_connection(prio.getsockname())  # its server side is where PRIO requests go
    time.sleep(0.2)
    client = socket.create_connection(front.getsockname())
    refused = []
    for i, m in enumerate(messages):
        try:
            client.send(m)
        except OSError as e:
            refused.append([i, e.errno])
        time.sleep(0.05)
    t_prio.join(30)
    client.close()
    t_front.join(30)
    worker.close()
    print(json.dumps({"front": got["front"].decode(), "prio": got["prio"].decode(), "refused": refused}),
          flush=True)
""")


def _compile(tmp_path) -> str:
    res = compile_file(EXAMPLE, str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    return res.output


def test_sections(tmp_path):
    obj = parse_object(_compile(tmp_path))
    assert {p.name: (p.section, p.attach_map) for p in obj.programs} == {
        "track": ("sockops", None), "by_prefix": ("sk_msg", "socks")}


def test_in_pybpfgen_testing():
    mod = testing.load(EXAMPLE)
    mod.set_config("front_port", 8080)
    mod.set_config("prio_port", 8081)
    lo = 0x0100007F
    worker_side, client = testing.Socket(), testing.Socket()
    mod.run("track", testing.sock_ops(op=5, local_ip4=lo, local_port=8081, remote_port=40000, socket=worker_side))
    mod.run("track", testing.sock_ops(op=4, local_ip4=lo, local_port=40001, remote_port=8080, socket=client))
    assert len(mod.map("socks")) == 2
    for data, where in MESSAGES:
        msg = testing.sk_msg(data=data, local_port=40001, remote_port=8080, socket=client)
        rv = mod.run("by_prefix", msg)
        assert (rv, msg.redirect is not None) == {"front": (1, False), "prio": (1, True), "refused": (0, False)}[where]
    assert [mod.map("stats").lookup(i) for i in range(3)] == [2, 1, 3]
    # the priority service's own messages are not looked at
    assert mod.run("by_prefix", testing.sk_msg(data=b"DROP", local_port=8081, remote_port=40000)) == 1


@pytest.mark.kernel
def test_requests_arrive_where_their_first_bytes_say(tmp_path, pin_root, child_cgroup):
    obj = _compile(tmp_path)
    want_prio = sum(len(m) for m, where in MESSAGES if where == "prio")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(child_cgroup), str(want_prio),
                             *(m.hex() for m, _ in MESSAGES)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        front_port, prio_port = (int(x) for x in proc.stdout.readline().split())
        [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=pin_root,
                        config={"front_port": front_port, "prio_port": prio_port})
        assert res.programs["by_prefix"].attach_target == "map:socks"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert out["prio"] == "".join(m.decode() for m, where in MESSAGES if where == "prio")
    assert out["front"] == "".join(m.decode() for m, where in MESSAGES if where == "front")
    assert [i for i, _ in out["refused"]] == [i for i, (_, where) in enumerate(MESSAGES) if where == "refused"]
    stats = [mapapi.map_get(res.name, "stats", i, pin_root=pin_root) for i in range(3)]
    assert stats == [2, 1, 3]  # redirected, dropped, passed
    assert kl.unload(res.name, pin_root=pin_root) == [res.name]

"""Real-kernel tests: private cgroup + private pin root, always cleaned up."""
import errno
import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import pybpfgen_accel as accel
import kernel_loader as kl
from kernel_loader import syscall as S
from kernel_loader.errors import BpfSyscallError

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "kernel_loader", *args], capture_output=True, text=True, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError(f"cli {args} failed: {r.stdout}{r.stderr}")
    return r


def prog_query(path, attach_type):
    fd = os.open(path, os.O_RDONLY) if os.path.isdir(path) else None
    try:
        return S.default.prog_query(fd, attach_type)
    finally:
        os.close(fd)


def test_load_status_unload(twin_object, test_cgroup, pin_root):
    sc = S.get_default()
    (o,) = kl.load(twin_object, cgroup=test_cgroup, pin_root=pin_root)
    so_id = o.programs["accel_sockops"].id
    sm_id = o.programs["accel_redirect"].id
    # the cgroup has our sock_ops program, through a link
    q = prog_query(test_cgroup, 3)
    assert q["prog_ids"] == [so_id]
    lfd = sc.obj_get(o.programs["accel_sockops"].link_pin)
    try:
        ltype, lid, lprog = struct.unpack_from("<III", sc.link_info(lfd), 0)
    finally:
        os.close(lfd)
    assert (ltype, lid, lprog) == (3, o.programs["accel_sockops"].link_id, so_id)
    # the sockhash has the sk_msg program
    mfd = sc.obj_get(o.maps["sock_hash"]["pin"])
    try:
        assert sc.prog_query(mfd, 7)["prog_ids"] == [sm_id]
    finally:
        os.close(mfd)
    st = kl.status(pin_root=pin_root)
    (so,) = st["objects"]
    progs = {p["name"]: p for p in so["programs"]}
    assert progs["accel_sockops"]["id"] == so_id and progs["accel_sockops"]["type"] == "sock_ops"
    assert progs["accel_sockops"]["verified_insns"] > 0 and progs["accel_redirect"]["verified_insns"] > 0
    links = {ln["name"]: ln for ln in so["links"]}
    assert links["accel_sockops"]["type"] == "cgroup"
    assert links["accel_sockops"]["target"]["path"] == test_cgroup
    assert links["accel_redirect"]["type"] == "sockmap" and links["accel_redirect"]["attach_type"] == "sk_msg_verdict"
    assert links["accel_redirect"]["target"]["map_name"] == "sock_hash"
    maps = {m["pin_name"]: m for m in so["maps"]}
    assert maps["sock_hash"]["type"] == "sockhash" and maps["sock_hash"]["entries"] == 0
    assert (maps["accel_ports"]["key_size"], maps["accel_ports"]["max_entries"]) == (4, 1024)
    # loading again upgrades in place: same links and maps, new programs
    (o2,) = kl.load(twin_object, cgroup=test_cgroup, pin_root=pin_root)
    assert o2.upgraded and sorted(o2.reused_maps) == ["accel_ports", "sock_hash"]
    assert o2.programs["accel_sockops"].link_id == o.programs["accel_sockops"].link_id
    so_id, sm_id = o2.programs["accel_sockops"].id, o2.programs["accel_redirect"].id
    assert prog_query(test_cgroup, 3)["prog_ids"] == [so_id]
    # unload leaves nothing
    assert kl.unload("accel", pin_root=pin_root) == ["accel"]
    assert not os.path.exists(os.path.join(pin_root, "accel"))
    assert prog_query(test_cgroup, 3)["prog_ids"] == []
    for pid in (so_id, sm_id):
        deadline = time.time() + 5
        while True:   # programs are freed asynchronously (RCU)
            try:
                os.close(sc.prog_get_fd_by_id(pid))
            except BpfSyscallError as e:
                assert e.errno == errno.ENOENT
                break
            assert time.time() < deadline, f"prog {pid} still exists"
            time.sleep(0.05)
    assert kl.unload("accel", pin_root=pin_root) == []


PAIR = textwrap.dedent("""
    import socket, sys
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0)); l.listen(1)
    print(l.getsockname()[1], flush=True); sys.stdin.readline()    # parent adds the port policy
    c = socket.create_connection(("127.0.0.1", l.getsockname()[1])); s, _ = l.accept()
    print("CONNECTED", flush=True); sys.stdin.readline()          # parent counts sockhash entries
    got = []
    for i in range(5):
        c.sendall(b"ping%d" % i); got.append(s.recv(100).decode())
        s.sendall(b"pong%d" % i); got.append(c.recv(100).decode())
    print(" ".join(got), flush=True)
""")


def test_end_to_end_redirect(twin_object, test_cgroup, pin_root, tmp_path):
    sc = S.get_default()
    kl.load(twin_object, cgroup=test_cgroup, pin_root=pin_root)
    stats_fd = sc.enable_stats(0)
    script = tmp_path / "pair.py"
    script.write_text(PAIR)
    p = subprocess.Popen(["sh", "-c", f'echo $$ > {test_cgroup}/cgroup.procs; exec "{sys.executable}" {script}'],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        accel.policy_add(port, pin_root=pin_root)
        assert accel.policy_list(pin_root=pin_root) == [port]
        p.stdin.write("\n"); p.stdin.flush()
        assert p.stdout.readline().strip() == "CONNECTED"
        with kl.open_pinned("accel", pin_root=pin_root) as o:
            assert len(list(o.map("sock_hash").keys())) == 2
        p.stdin.write("\n"); p.stdin.flush()
        line = p.stdout.readline().split()
        assert line == [x for i in range(5) for x in (f"ping{i}", f"pong{i}")]
        p.wait(timeout=10)
        st = kl.status(pin_root=pin_root)["objects"][0]
        progs = {x["name"]: x for x in st["programs"]}
        assert progs["accel_redirect"]["run_cnt"] >= 10       # every send went through sk_msg
        assert progs["accel_sockops"]["run_cnt"] >= 2
        assert accel.policy_remove(port, pin_root=pin_root) is True
    finally:
        os.close(stats_fd)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_features_object(features_object, pin_root):
    sc = S.get_default()
    (o,) = kl.load(features_object, pin_root=pin_root)
    fd = sc.obj_get(o.programs["feat_run"].pin)
    try:
        for _ in range(2):
            retval, _ctx = sc.prog_test_run(fd, ctx=bytes(8))
            assert retval == 2
    finally:
        os.close(fd)
    st = kl.status(pin_root=pin_root)["objects"][0]
    maps = {m["pin_name"]: m for m in st["maps"]}
    # bump(0, step=3 from .rodata) + bump(0, 1), twice
    assert maps["stats"]["values"] == [{"redirected": 8, "missed": 0}]
    assert maps["hits"]["type"] == "percpu_array" and maps["hits"]["values"] == [0, 2]   # summed over CPUs
    assert {ln["name"] for ln in st["links"]} == {"feat_msg"}
    with kl.open_pinned("features", pin_root=pin_root) as po:
        bss = po.map("bss")
        assert struct.unpack("<I", bss.lookup(struct.pack("<I", 0))) == (2,)
        hits = po.map("hits")
        assert sum(struct.unpack("<Q", v)[0] for v in hits.lookup_percpu(struct.pack("<I", 1))) == 2
        ro = po.map("rodata")
        with pytest.raises(BpfSyscallError):
            ro.update(struct.pack("<I", 0), struct.pack("<I", 9))     # frozen
    assert kl.unload(pin_root=pin_root) == ["features"]


def test_verifier_error_rolls_back(bad_object, pin_root):
    with pytest.raises(kl.VerifierError) as ei:
        kl.load(bad_object, pin_root=pin_root)
    e = ei.value
    assert e.source_line == 17 and e.source_file.endswith("bad.bpf.c")
    assert "invalid mem access" in str(e).splitlines()[0]
    assert "processed" in e.log
    assert not os.path.exists(os.path.join(pin_root, "bad"))


def test_cli_and_no_llvmlite(twin_object, test_cgroup, pin_root):
    code = textwrap.dedent(f"""
        import sys, kernel_loader
        kernel_loader.load({twin_object!r}, cgroup={test_cgroup!r}, pin_root={pin_root!r})
        assert "llvmlite" not in sys.modules, "llvmlite imported by the load path"
        print("OK")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
    r = cli("status", "--json", "--pin-root", pin_root)
    st = json.loads(r.stdout)
    assert [o["name"] for o in st["objects"]] == ["accel"]
    r = cli("status", "--pin-root", pin_root)
    assert "accel_sockops" in r.stdout and "sockhash" in r.stdout
    cli("policy", "add", "--port", "4242", "--pin-root", pin_root)
    assert cli("policy", "list", "--pin-root", pin_root).stdout.split() == ["4242"]
    cli("policy", "remove", "--port", "4242", "--pin-root", pin_root)
    r = cli("load", twin_object, "--cgroup", test_cgroup, "--pin-root", pin_root)
    assert "upgraded accel" in r.stdout
    r = cli("load", twin_object + ".missing", "--pin-root", pin_root, check=False)
    assert r.returncode == 1 and r.stderr.startswith("pybpfgen: error:") and "no such file" in r.stderr
    assert "unloaded accel" in cli("unload", "--pin-root", pin_root).stdout
    assert "nothing to unload" in cli("unload", "--pin-root", pin_root).stdout
    assert prog_query(test_cgroup, 3)["prog_ids"] == []

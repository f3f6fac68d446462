"""Real-kernel tests of upgrade in place, crash safety, the legacy sk_msg
fallback, unload after hand-removed pins, status --stats and preflight errors.

Everything runs in a private child cgroup and a private pin root, both removed
afterwards (fixtures in conftest.py); processes started here are killed.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pybpfgen_accel as accel
import kernel_loader as kl
from kernel_loader.elf import parse_object
from kernel_loader import lifecycle, state
from kernel_loader import syscall as S
from kernel_loader.errors import BpfSyscallError

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STREAMER = textwrap.dedent(r"""
    import hashlib, json, socket, sys, threading, time
    port, duration = int(sys.argv[1]), float(sys.argv[2])
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(1)
    c = socket.create_connection(("127.0.0.1", port)); s, _ = l.accept()
    print(json.dumps({"event": "ready"}), flush=True)
    sys.stdin.readline()
    sent = hashlib.sha256(); got = hashlib.sha256(); n_sent = [0]; n_got = [0]
    def sender():
        i = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            chunk = (b"%08d" % i) * (1 + i % 512)       # 8 B .. 4 KiB, distinct content
            c.sendall(chunk); sent.update(chunk); n_sent[0] += len(chunk); i += 1
            if i % 64 == 0:
                time.sleep(0.001)
        c.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=sender); t.start()
    s.settimeout(30)
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        got.update(b); n_got[0] += len(b)
    t.join()
    print(json.dumps({"event": "done", "sent": n_sent[0], "received": n_got[0],
                      "sha_sent": sent.hexdigest(), "sha_received": got.hexdigest()}), flush=True)
""")


def cli(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([sys.executable, "-m", "kernel_loader", *args], capture_output=True, text=True, cwd=REPO,
                       env=e, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"cli {args} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


def cgroup_progs(cg, attach_type=3):
    fd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return S.default.prog_query(fd, attach_type)["prog_ids"]
    finally:
        os.close(fd)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def accel_counters(pin_root):
    with kl.open_pinned("accel", pin_root=pin_root) as o:
        raw = o.map("stats").lookup_percpu(struct.pack("<I", 0))
        sockets = o.map("socks").count()
    red = sum(struct.unpack_from("<Q", r, 0)[0] for r in raw)
    miss = sum(struct.unpack_from("<Q", r, 8)[0] for r in raw)
    return red, miss, sockets


def prog_exists(pid):
    try:
        os.close(S.default.prog_get_fd_by_id(pid))
        return True
    except BpfSyscallError:
        return False


def wait_progs_gone(ids, timeout=10):
    deadline = time.time() + timeout
    left = [i for i in ids if prog_exists(i)]
    while left and time.time() < deadline:
        time.sleep(0.05)
        left = [i for i in left if prog_exists(i)]
    return left


def assert_nothing_left(pin_root, cg, seen_prog_ids=()):
    assert not os.path.exists(os.path.join(pin_root, "accel")), os.listdir(pin_root)
    assert state.read(pin_root, "accel") is None
    assert cgroup_progs(cg) == []
    assert wait_progs_gone(seen_prog_ids) == []


def start_streamer(tmp_path, cg, port, duration):
    script = tmp_path / "streamer.py"
    script.write_text(STREAMER)
    return subprocess.Popen(["sh", "-c", f'echo $$ > {cg}/cgroup.procs; exec "{sys.executable}" {script} {port} {duration}'],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def kill(p):
    if p.poll() is None:
        p.kill()
    p.wait()


# --------------------------------------------------------------------- upgrade
def lift_budget(pin_root):
    """A one-way stream would be moved to the TCP path after 256 unanswered messages (and from then on the
    program no longer runs for it): these tests need it redirected all along."""
    with kl.open_pinned("accel", pin_root=pin_root) as o:
        o.map("settings").set(0, {"max_unanswered_msgs": 0xFFFFFFFF, "max_unanswered_kib": 0xFFFFFFFF})


def test_upgrade_keeps_accelerated_stream_flowing(accel_object, test_cgroup, pin_root, tmp_path):
    (o1,) = kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    port = free_port()
    accel.policy_add(port, pin_root=pin_root)
    lift_budget(pin_root)
    p = start_streamer(tmp_path, test_cgroup, port, duration=8.0)  # outlasts three upgrades on a loaded 2-CPU machine
    attached_seen = []
    stop = threading.Event()

    def watch():          # "never two copies, never none": sample the cgroup while upgrading
        while not stop.is_set():
            attached_seen.append(len(cgroup_progs(test_cgroup)))
    try:
        assert json.loads(p.stdout.readline())["event"] == "ready"
        assert accel_counters(pin_root)[2] == 2                      # both ends in the sockhash
        p.stdin.write("go\n")
        p.stdin.flush()
        time.sleep(0.3)
        watcher = threading.Thread(target=watch)
        watcher.start()
        ids = [(o1.programs["accel_sockops"].id, o1.programs["accel_redirect"].id)]
        reds = [accel_counters(pin_root)[0]]
        for _ in range(3):
            r = cli("load", accel_object, "--pin-root", pin_root)     # no --cgroup: stays where it is
            assert r.stdout.startswith("upgraded accel") and "kept maps" in r.stdout
            time.sleep(0.3)
            reds.append(accel_counters(pin_root)[0])
            st = kl.status(pin_root=pin_root)["objects"][0]
            progs = {x["name"]: x["id"] for x in st["programs"]}
            ids.append((progs["accel_sockops"], progs["accel_redirect"]))
            links = {x["name"]: x for x in st["links"]}
            assert links["accel_sockops"]["id"] == o1.programs["accel_sockops"].link_id      # same link, new prog
            assert links["accel_redirect"]["id"] == o1.programs["accel_redirect"].link_id
            assert links["accel_sockops"]["prog_id"] == progs["accel_sockops"]
            assert links["accel_sockops"]["target"]["path"] == test_cgroup
        stop.set()
        watcher.join()
        done = json.loads(p.stdout.readline())
        assert p.wait(timeout=30) == 0
    finally:
        stop.set()
        kill(p)
    assert done["event"] == "done" and done["sent"] > 100_000
    assert done["received"] == done["sent"] and done["sha_received"] == done["sha_sent"]     # zero bytes lost
    assert all(b > a for a, b in zip(reds, reds[1:])), reds                                 # kept redirecting
    assert len(set(ids)) == 4                                                               # new programs each time
    assert set(attached_seen) == {1}, set(attached_seen)                                    # exactly one, always
    red, miss, _ = accel_counters(pin_root)
    assert red > 0 and miss <= 2, (red, miss)
    assert accel.policy_list(pin_root=pin_root) == [port]                                       # policy map kept


def test_incompatible_map_needs_replace_maps(accel_object, accel_variant_object, test_cgroup, pin_root):
    (o1,) = kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    accel.policy_add(4242, pin_root=pin_root)
    with pytest.raises(kl.LoaderError) as ei:
        kl.load(accel_variant_object, cgroup=test_cgroup, pin_root=pin_root)
    msg = str(ei.value)
    assert "policy_ports" in msg and "max_entries 1024 -> 2048" in msg and "--replace-maps" in msg
    st = kl.status(pin_root=pin_root)["objects"][0]          # untouched
    assert {x["name"]: x["id"] for x in st["programs"]} == {n: p.id for n, p in o1.programs.items()}
    assert cgroup_progs(test_cgroup) == [o1.programs["accel_sockops"].id]
    r = cli("load", accel_variant_object, "--pin-root", pin_root, check=False)
    assert r.returncode == 1 and r.stderr.startswith("pybpfgen: error: map policy_ports")
    (o2,) = kl.load(accel_variant_object, cgroup=test_cgroup, pin_root=pin_root, replace_maps=True)
    assert o2.replaced_maps == ["policy_ports"]
    assert set(o2.reused_maps) == set(parse_object(accel_object).maps) - {"policy_ports"}
    maps = {m["pin_name"]: m for m in kl.status(pin_root=pin_root)["objects"][0]["maps"]}
    assert maps["policy_ports"]["max_entries"] == 2048 and accel.policy_list(pin_root=pin_root) == []
    assert cgroup_progs(test_cgroup) == [o2.programs["accel_sockops"].id]
    assert kl.unload("accel", pin_root=pin_root) == ["accel"]
    assert_nothing_left(pin_root, test_cgroup, [p.id for p in [*o1.programs.values(), *o2.programs.values()]])


# ----------------------------------------------------------------- crash safety
CRASH_PHASES = [*lifecycle.PHASES[:lifecycle.PHASES.index("attach")], "attach:accel_redirect",
                "attach:accel_sockops", "attach", "commit"]


@pytest.mark.parametrize("phase", CRASH_PHASES)
def test_sigkill_after_every_phase(phase, accel_object, test_cgroup, pin_root):
    crash = {lifecycle.CRASH_ENV: phase}
    args = ("load", accel_object, "--cgroup", test_cgroup, "--pin-root", pin_root)
    seen: set[int] = set()

    def remember():
        j = state.read(pin_root, "accel")
        if j:
            seen.update(j["prog_ids"])

    # 1. fresh load killed, then load finishes the job, then unload cleans up
    r = cli(*args, env=crash, check=False)
    assert r.returncode == -signal.SIGKILL, r.stderr
    remember()
    cli(*args)
    remember()
    st = kl.status(pin_root=pin_root)["objects"][0]
    assert st["state"] == "loaded" and {x["name"] for x in st["links"]} == {"accel_sockops", "accel_redirect"}
    assert all(x["attached"] for x in st["links"])
    assert cgroup_progs(test_cgroup) == [next(x["id"] for x in st["programs"] if x["name"] == "accel_sockops")]
    # 2. upgrade killed: exactly one program stays attached; load again, then unload
    r = cli(*args, env=crash, check=False)
    assert r.returncode == -signal.SIGKILL
    remember()
    assert len(cgroup_progs(test_cgroup)) == 1
    cli(*args)
    remember()
    assert len(cgroup_progs(test_cgroup)) == 1
    assert "unloaded accel" in cli("unload", "accel", "--pin-root", pin_root).stdout
    assert_nothing_left(pin_root, test_cgroup, seen)
    # 3. fresh load killed, then unload directly
    r = cli(*args, env=crash, check=False)
    assert r.returncode == -signal.SIGKILL
    remember()
    cli("unload", "--pin-root", pin_root)
    assert_nothing_left(pin_root, test_cgroup, seen)
    assert "nothing to unload" in cli("unload", "accel", "--pin-root", pin_root).stdout


# ------------------------------------------------------------- legacy sk_msg
def test_legacy_sk_msg_fallback(accel_object, test_cgroup, pin_root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYBPFGEN_LOADER_DISABLE", "sk_msg_link")
    env = {"PYBPFGEN_LOADER_DISABLE": "sk_msg_link"}
    r = cli("load", accel_object, "--cgroup", test_cgroup, "--pin-root", pin_root, "-v", env=env)
    assert "PROG_ATTACH" in r.stderr
    sc = S.default
    st = kl.status(pin_root=pin_root)["objects"][0]
    links = {x["name"]: x for x in st["links"]}
    progs = {x["name"]: x["id"] for x in st["programs"]}
    assert links["accel_redirect"]["type"] == "legacy" and links["accel_redirect"]["prog_id"] == progs["accel_redirect"]
    assert links["accel_sockops"]["type"] == "cgroup"
    assert not os.path.exists(os.path.join(pin_root, "accel", "links", "accel_redirect"))
    mfd = sc.obj_get(os.path.join(pin_root, "accel", "maps", "socks"))
    try:
        assert sc.prog_query(mfd, 7)["prog_ids"] == [progs["accel_redirect"]]
        # traffic is redirected through the legacy attachment
        port = free_port()
        accel.policy_add(port, pin_root=pin_root)
        p = start_streamer(tmp_path, test_cgroup, port, duration=0.5)
        try:
            assert json.loads(p.stdout.readline())["event"] == "ready"
            p.stdin.write("go\n")
            p.stdin.flush()
            done = json.loads(p.stdout.readline())
        finally:
            kill(p)
        assert done["sha_received"] == done["sha_sent"] and accel_counters(pin_root)[0] > 0
        # upgrade: PROG_ATTACH replaces the map's program (one at a time)
        cli("load", accel_object, "--pin-root", pin_root, env=env)
        st = kl.status(pin_root=pin_root)["objects"][0]
        new_id = next(x["id"] for x in st["programs"] if x["name"] == "accel_redirect")
        assert new_id != progs["accel_redirect"] and sc.prog_query(mfd, 7)["prog_ids"] == [new_id]
        # unload detaches it from the map (which we still hold open here)
        cli("unload", "accel", "--pin-root", pin_root)
        assert sc.prog_query(mfd, 7)["prog_ids"] == []
    finally:
        os.close(mfd)
    assert_nothing_left(pin_root, test_cgroup, progs.values())


# ------------------------------------------------- unload with pins removed by hand
def test_unload_finds_links_when_pins_were_removed(accel_object, test_cgroup, pin_root):
    sc = S.default
    (o,) = kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    # someone keeps an fd to the cgroup link, and the pins are deleted by hand
    held = sc.obj_get(o.programs["accel_sockops"].link_pin)
    try:
        for dirpath, _d, files in os.walk(o.pin_dir, topdown=False):
            for f in files:
                os.unlink(os.path.join(dirpath, f))
            os.rmdir(dirpath)
        assert cgroup_progs(test_cgroup) == [o.programs["accel_sockops"].id]     # still attached via the fd
        assert kl.unload(pin_root=pin_root) == ["accel"]                         # found by journal + scan
        assert cgroup_progs(test_cgroup) == []
        assert kl.unload(pin_root=pin_root) == []
    finally:
        os.close(held)
    # partial removal: the maps and progs pins deleted, links left
    (o,) = kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    for sub in ("maps", "progs"):
        for f in os.listdir(os.path.join(o.pin_dir, sub)):
            os.unlink(os.path.join(o.pin_dir, sub, f))
    assert kl.unload("accel", pin_root=pin_root) == ["accel"]
    assert_nothing_left(pin_root, test_cgroup, [p.id for p in o.programs.values()])


# ---------------------------------------------------------------- status --stats
def test_status_stats_measures_only_meanwhile(accel_object, test_cgroup, pin_root, tmp_path):
    kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    port = free_port()
    accel.policy_add(port, pin_root=pin_root)
    lift_budget(pin_root)  # keep the one-way stream redirected, so the program runs on every write
    p = start_streamer(tmp_path, test_cgroup, port, duration=6.0)  # outlasts two status calls on a loaded machine
    try:
        assert json.loads(p.stdout.readline())["event"] == "ready"
        p.stdin.write("go\n")
        p.stdin.flush()
        time.sleep(0.2)
        r = cli("status", "--json", "--stats", "--interval", "0.5", "--pin-root", pin_root)
        st = json.loads(r.stdout)["objects"][0]
        red = {x["name"]: x for x in st["programs"]}["accel_redirect"]
        assert red["stats"]["run_cnt"] > 0 and red["stats"]["avg_ns"] > 0 and 0.4 < red["stats"]["interval_s"] < 2
        acc = st["accelerator"]
        assert acc["sockets"] == 2 and acc["policy_ports"] == [port] and acc["redirected"] > 0
        text = cli("status", "--stats", "--interval", "0.2", "--pin-root", pin_root).stdout
        assert "ns avg" in text and "accelerator: 2 sockets" in text
        # stats are off again: the cumulative counter no longer moves while traffic flows
        if open("/proc/sys/kernel/bpf_stats_enabled").read().strip() == "0":
            c1 = {x["name"]: x["run_cnt"] for x in kl.status(pin_root=pin_root)["objects"][0]["programs"]}
            time.sleep(0.3)
            c2 = {x["name"]: x["run_cnt"] for x in kl.status(pin_root=pin_root)["objects"][0]["programs"]}
            assert c1 == c2
        p.stdin.close()
        p.wait(timeout=30)
    finally:
        kill(p)


# ------------------------------------------------------------------ preflight
def _world_readable_import_root(dst: str) -> str:
    """Copy what ``python -m kernel_loader`` imports (the loader, pybpfgen's shared tables, and cffi with its backend) into ``dst``, readable
    by any user: the checkout and its .venv may sit where another user cannot read (a clone under /root, mode
    0700)."""
    import importlib.util
    import shutil
    for name in ("kernel_loader", "cffi", "_cffi_backend", "pycparser"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            assert name == "pycparser", f"{name} is not importable"  # pycparser: only older cffi needs it
            continue
        if spec.submodule_search_locations:
            shutil.copytree(os.path.dirname(spec.origin), os.path.join(dst, name),
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(spec.origin, dst)
    # and the tables of BPF facts it shares with the compiler (pybpfgen/target: import-free)
    import pybpfgen
    src = os.path.dirname(pybpfgen.__file__)
    os.makedirs(os.path.join(dst, "pybpfgen"))
    shutil.copy(os.path.join(src, "__init__.py"), os.path.join(dst, "pybpfgen"))
    shutil.copytree(os.path.join(src, "target"), os.path.join(dst, "pybpfgen", "target"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, _dirs, files in os.walk(dst):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return dst


def test_not_root_is_one_clear_line(accel_object, pin_root):
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="pybpfgen-test-")
    try:
        os.chmod(d, 0o755)
        obj = shutil.copy(accel_object, os.path.join(d, "accel.bpf.o"))
        os.chmod(obj, 0o644)
        lib = _world_readable_import_root(os.path.join(d, "lib"))
        # the interpreter itself: the base one (a venv's python may sit in an unreadable checkout)
        python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                            python, "-I", "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                            "from kernel_loader.__main__ import main; sys.exit(main())", lib,
                            "load", obj, "--pin-root", pin_root],
                           capture_output=True, text=True, cwd="/", env={"PATH": os.environ.get("PATH", "")})
    finally:
        shutil.rmtree(d)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pybpfgen: error: not permitted"), r.stderr
    assert "CAP_BPF" in lines[0] and "CAP_NET_ADMIN" in lines[0] and "sudo" in lines[0]


def test_pin_paths_owned_by_something_else(accel_object, test_cgroup, pin_root):
    sc = S.default
    os.makedirs(os.path.join(pin_root, "accel", "mine"))
    with pytest.raises(kl.LoaderError, match=r"owned by something else \(it holds mine"):
        kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    with pytest.raises(kl.LoaderError, match="owned by something else"):
        kl.unload("accel", pin_root=pin_root)
    os.rmdir(os.path.join(pin_root, "accel", "mine"))
    # a program pinned where our map goes
    os.makedirs(os.path.join(pin_root, "accel", "maps"))
    prog = sc.prog_load(prog_type=1, insns=bytes.fromhex("b7000000000000009500000000000000"), name="other")
    try:
        sc.obj_pin(prog, os.path.join(pin_root, "accel", "maps", "socks"))
    finally:
        os.close(prog)
    with pytest.raises(kl.LoaderError, match=r"maps/socks is owned by something else \(a prog, expected a map\)"):
        kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    assert cgroup_progs(test_cgroup) == []


def test_typed_map_api(accel_object, test_cgroup, pin_root):
    kl.load(accel_object, cgroup=test_cgroup, pin_root=pin_root)
    with kl.open_pinned("accel", pin_root=pin_root) as o:
        pol = o.map("policy_ports")
        pol.set(8080, 1)
        assert pol.get(8080) == 1 and pol.get(9090) is None
        assert dict(pol.items()) == {8080: 1}
        stats = o.map("stats")
        stats.set(0, {"redirected": 5})
        per_cpu = stats.get(0)
        assert all(v["redirected"] == 5 and v["missed"] == 0 for v in per_cpu)
        with pytest.raises(ValueError, match="no member 'bogus'"):
            stats.set(0, {"bogus": 1})
    assert accel.policy_list(pin_root=pin_root) == [8080]

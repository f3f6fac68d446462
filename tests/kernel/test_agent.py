"""`pybpfgen agent` and `pybpfgen apply` on the real kernel (private cgroup, private pin root, loopback).

* the agent loads the accelerator, serves /metrics that urllib scrapes, and its values are what
  `pybpfgen status --json` says;
* a configuration change (a port added, one removed, the budget changed) is reconciled WHILE a ping-pong
  transfer runs between two processes in the cgroup: no byte lost (SHA-256), the connection stays
  accelerated (its two sockets stay in the sockhash, `redirected` keeps growing, `missed` does not), and every
  add is made before any removal; then the same through SIGHUP;
* a SIGKILLed agent, restarted, adopts what is pinned (no load: program ids unchanged) and applies a change
  made while it was down;
* SIGTERM honours `on_exit` (keep: still attached; unload: nothing left);
* a bad file leaves the running state untouched and says why (file:line: key), in the agent's log, on
  /readyz and from `pybpfgen apply` (exit 2);
* `apply --dry-run` prints the diff without applying it; `apply` applies it; generic map entries.

Kernel-side facts (what is attached to the cgroup, the sockhash, the counters) come from kharness's own
bpf(2) helpers where it matters, not from the code under test.
"""
from __future__ import annotations

import pybpfgen_accel as accel
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel

ECHO_PY = Path(__file__).resolve().parent / "echo_peer.py"
BIG = 1 << 30     # a budget the ping-pong never reaches (every message is answered anyway)


@pytest.fixture(scope="module")
def accel_obj(tmp_path_factory) -> Path:
    """``pybpfgen compile programs -o <tmp>`` once for this module."""
    return kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", tmp_path_factory.mktemp("build"))


def write_config(path: Path, obj: Path, cgroup, pin_root, *, ports=(), cidrs=(), budget=(BIG, BIG), on_exit="keep",
                 poll=0.2, extra="") -> None:
    cidr_items = ", ".join(f'"{c}"' if isinstance(c, str) else f'{{ cidr = "{c[0]}", side = "{c[1]}" }}'
                           for c in cidrs)
    text = f"""\
[agent]
on_exit = "{on_exit}"
poll_interval = {poll}
retry_interval = 1
pin_root = "{pin_root}"

[objects.accel]
path = "{obj}"
cgroup = "{cgroup}"

[objects.accel.policy]
ports = [{", ".join(map(str, ports))}]
cidrs = [{cidr_items}]

[objects.accel.settings]
max_unanswered_msgs = {budget[0]}
max_unanswered_kib = {budget[1]}
{extra}"""
    atomic_write(path, text)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)          # what editors and ConfigMap updates do: the watcher sees a new inode


class AgentProc:
    """`pybpfgen agent` in a child process; its JSON log lines collected by a thread."""

    def __init__(self, config: Path, metrics_port: int | None = None, extra: tuple = (), env: dict | None = None):
        argv = [*kh.pybpfgen_argv(), "agent", "--config", str(config), *extra]
        if metrics_port:
            argv += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
        self.port = metrics_port
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, cwd=kh.REPO_ROOT,
                                     env=None if env is None else {**os.environ, **env})
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "non-json", "line": line}
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def wait_event(self, pred, timeout: float = 60.0, start: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(f"no such agent event; log so far: {self.events}; "
                                         f"stderr: {self.stderr() if self.proc.poll() is not None else ''}")
                self.cond.wait(min(left, 0.5))

    def mark(self) -> int:
        with self.cond:
            return len(self.events)

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"agent exited rc={self.proc.returncode}: {self.events} {self.stderr()}"
            try:
                last = self.get("/readyz")
                if last[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"agent not ready: {last}; log: {self.events}")

    def signal(self, sig) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout)
        self.reader.join(10)
        return rc

    def kill(self) -> None:
        kh.kill_proc(self.proc)


@pytest.fixture
def agents():
    started: list[AgentProc] = []

    def start(*a, **kw) -> AgentProc:
        p = AgentProc(*a, **kw)
        started.append(p)
        return p
    yield start
    for p in started:
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait(10)


@pytest.fixture
def env(accel_obj, child_cgroup, pin_root, tmp_path):
    cli = kh.PybpfgenCLI(pin_root=pin_root)
    yield {"obj": accel_obj, "cg": child_cgroup, "pins": pin_root, "cfg": tmp_path / "agent.toml", "cli": cli}
    cli.unload("accel", check=False)
    import kernel_loader.agent.reconcile as R
    R.remove_record(str(pin_root), "accel")


def policy(pin_root) -> dict:
    return accel.policy_show("accel", pin_root=str(pin_root))


def stats_and_socks(cg) -> tuple[dict, list[bytes]]:
    snap = kh.snapshot_accel(cg)
    return kh.read_stats(snap.map_ids["stats"]), sorted(kh.sockhash_keys(snap.map_ids["socks"]))


# ------------------------------------------------------------------ a ping-pong transfer across changes
class PingPong:
    def __init__(self, cgroup, port: int):
        args = ["--host", "127.0.0.1", "--port", str(port), "--timeout", "60"]
        self.server = kh.run_python([str(ECHO_PY), "server", *args], cgroup=cgroup, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._expect(self.server, "listening")
        self.client = kh.run_python([str(ECHO_PY), "client", *args], cgroup=cgroup, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self._expect(self.client, "established")
        self._expect(self.server, "established")
        self.client.stdin.write("go\n")
        self.client.stdin.flush()

    @staticmethod
    def _expect(p, event: str) -> dict:
        while True:
            line = p.stdout.readline()
            assert line, f"peer exited before {event!r}: rc={p.wait()} {p.stderr.read()}"
            msg = json.loads(line)
            assert msg["event"] != "error", msg
            if msg["event"] == event:
                return msg

    def rounds(self) -> int:
        self.client.stdin.write("mark\n")
        self.client.stdin.flush()
        return self._expect(self.client, "mark")["rounds"]

    def advance(self, n: int = 200) -> int:
        """Wait until the transfer has made ``n`` more round trips (it is running, whatever the clock says)."""
        start = self.rounds()
        while (now := self.rounds()) < start + n:
            time.sleep(0.02)
        return now

    def stop(self) -> tuple[dict, dict]:
        self.client.stdin.write("stop\n")
        self.client.stdin.flush()
        c = self._expect(self.client, "done")
        s = self._expect(self.server, "done")
        assert self.client.wait(30) == 0 and self.server.wait(30) == 0
        return c, s

    def kill(self):
        for p in (self.client, self.server):
            kh.kill_proc(p)


def test_metrics_match_status(env, agents, tmp_path):
    import socket
    port = kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port])
    # systemd's notify socket (Type=notify, WatchdogSec=): READY=1 once loaded and reconciled, WATCHDOG=1
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    a = agents(env["cfg"], metrics_port=kh.free_port(), extra=("--enable-stats",),
               env={"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"})
    got: list[str] = []
    while "READY=1" not in got or "WATCHDOG=1" not in got:
        got.append(notify.recv(4096).decode())
    notify.close()
    assert got.index("READY=1") < len(got)
    a.wait_ready()
    assert a.get("/healthz") == (200, "ok\n")
    load = a.wait_event(lambda e: e["event"] == "load")
    assert load["object"] == "accel" and set(load["program_ids"]) == {"accel_redirect", "accel_sockops"}
    # traffic, so that the counters are not all zero
    pp = PingPong(env["cg"], port)
    try:
        pp.advance(100)
        c, s = pp.stop()
    finally:
        pp.kill()
    assert c["sha256_sent"] == c["sha256_received"] == s["sha256_received"]
    # the connection is closed: nothing moves any more; scrape until two scrapes agree, then compare
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict:
        code, text = a.get("/metrics")
        assert code == 200
        out = {}
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
        return out
    prev, cur = None, scrape()
    for _ in range(50):
        if cur == prev:
            break
        prev, cur = cur, scrape()
        time.sleep(0.1)
    assert cur == prev, "the metrics did not settle"
    st = env["cli"].status_json()
    (obj,) = st["objects"]
    o = (("object", "accel"),)
    stats = next(m for m in obj["maps"] if m["pin_name"] == "stats")["values"][0]
    assert stats["redirected"] > 0 and stats["paired"] >= 1
    names = {"redirected": "pybpfgen_accel_redirected_messages_total", "missed": "pybpfgen_accel_tcp_path_verdicts_total",
             "paired": "pybpfgen_accel_paired_connections_total", "refused": "pybpfgen_accel_refused_pairings_total",
             "demoted": "pybpfgen_accel_demoted_connections_total", "released": "pybpfgen_accel_released_sockets_total"}
    for field, metric in names.items():
        assert cur[(metric, o)] == stats[field], field
        assert cur[("pybpfgen_map_counter_total", (("field", field), ("index", "0"), ("map", "stats"),
                                                   ("object", "accel")))] == stats[field]
    # the independent oracle agrees too
    assert kh.read_stats(kh.snapshot_accel(env["cg"]).map_ids["stats"])["redirected"] == stats["redirected"]
    for m in obj["maps"]:
        lab = (("map", m["pin_name"]), ("object", "accel"), ("type", m["type"]))
        assert cur[("pybpfgen_map_max_entries", lab)] == m["max_entries"]
        if m["entries"] is not None:
            assert cur[("pybpfgen_map_entries", lab)] == m["entries"], m["pin_name"]
    for p in obj["programs"]:
        lab = (("object", "accel"), ("program", p["name"]))
        assert cur[("pybpfgen_program_runs_total", lab)] == p["run_cnt"]
        assert cur[("pybpfgen_program_run_time_seconds_total", lab)] == pytest.approx(p["run_time_ns"] / 1e9)
        assert cur[("pybpfgen_program_info", (("id", str(p["id"])), ("object", "accel"), ("program", p["name"]),
                                              ("tag", p["tag"]), ("type", p["type"])))] == 1
    # --enable-stats: the programs' run counts moved with the traffic
    assert all(p["run_cnt"] > 0 for p in obj["programs"]), obj["programs"]
    assert cur[("pybpfgen_accel_policy_entries", (("kind", "ports"), ("object", "accel")))] == 1
    assert cur[("pybpfgen_agent_reconciles_total", (("result", "ok"),))] >= 1
    assert cur[("pybpfgen_agent_ready", ())] == 1 and cur[("pybpfgen_agent_stats_enabled", ())] == 1


def test_reconcile_during_a_transfer(env, agents):
    port, q, r = kh.free_port(), kh.free_port(), kh.free_port()
    while r == q:
        r = kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port, q], cidrs=["203.0.113.0/24"],
                 budget=(BIG, BIG))
    a = agents(env["cfg"], metrics_port=kh.free_port())
    a.wait_ready()
    assert policy(env["pins"])["ports"] == sorted([port, q])
    pp = PingPong(env["cg"], port)
    try:
        pp.advance(100)
        before, socks = stats_and_socks(env["cg"])
        assert len(socks) == 2 and before["redirected"] > 0, (before, socks)

        # 1. the file changes (watched): port r added, q removed, a CIDR's side changed, the budget changed
        n = a.mark()
        write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port, r],
                     cidrs=[("203.0.113.0/24", "local")], budget=(BIG - 1, BIG - 2), poll=0)
        done = a.wait_event(lambda e: e["event"] == "reconciled", start=n)
        assert done["reason"] == "file changed" and done["changes"] == {"add": 1, "update": 2, "remove": 1}
        changes = [e for e in a.events[n:] if e["event"] == "change"]
        assert [(c["op"], c["map"], c["entry"]) for c in changes] == [
            ("add", "policy_ports", str(r)),
            ("update", "policy_cidrs", "203.0.113.0/24 local"),
            ("update", "settings", f"max_unanswered_msgs={BIG - 1} max_unanswered_kib={BIG - 2}"),
            ("remove", "policy_ports", str(q))]                              # every add before any removal
        pol = policy(env["pins"])
        assert pol["ports"] == sorted([port, r])
        assert pol["cidrs"] == [{"cidr": "203.0.113.0/24", "side": "local", "flags": 1}]
        assert (pol["settings"]["max_unanswered_msgs"], pol["settings"]["max_unanswered_kib"]) == (BIG - 1, BIG - 2)
        pp.advance(200)
        mid, socks2 = stats_and_socks(env["cg"])
        assert socks2 == socks, "the connection's sockets left the sockhash"
        assert mid["redirected"] > before["redirected"] and mid["missed"] == before["missed"], (before, mid)

        # 2. SIGHUP (poll_interval is 0 now: only the signal reloads): the budget back, port r removed
        write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port], budget=(BIG, BIG), poll=0)
        n = a.mark()
        a.signal(signal.SIGHUP)
        done = a.wait_event(lambda e: e["event"] == "reconciled", start=n)
        assert done["reason"] == "sighup"
        ops = [(e["op"], e["map"]) for e in a.events[n:] if e["event"] == "change"]
        assert ops == [("update", "settings"), ("remove", "policy_ports"), ("remove", "policy_cidrs")]
        assert policy(env["pins"])["ports"] == [port] and policy(env["pins"])["cidrs"] == []
        pp.advance(200)
        after, socks3 = stats_and_socks(env["cg"])
        assert socks3 == socks and after["redirected"] > mid["redirected"] and after["missed"] == before["missed"]
        c, s = pp.stop()
    finally:
        pp.kill()
    assert c["bytes_sent"] == c["bytes_received"] == s["bytes_received"] > 0
    assert c["sha256_sent"] == c["sha256_received"] == s["sha256_received"], "bytes lost or corrupted"
    assert not [e for e in a.events if e.get("level") == "error"], a.events


def test_sigkill_and_restart_adopts(env, agents):
    port, p2 = kh.free_port(), kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port])
    a = agents(env["cfg"], metrics_port=kh.free_port())
    a.wait_ready()
    ids = {p["name"]: p["id"] for p in env["cli"].status_json()["objects"][0]["programs"]}
    cg_progs = kh.cgroup_prog_ids(env["cg"])
    os.killpg(a.proc.pid, signal.SIGKILL)
    assert a.wait() == -signal.SIGKILL
    # while it is down: the programs stay attached, and the file changes
    assert kh.cgroup_prog_ids(env["cg"]) == cg_progs
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port, p2])
    b = agents(env["cfg"], metrics_port=kh.free_port())
    b.wait_ready()
    adopt = b.wait_event(lambda e: e["event"] == "adopt")
    assert adopt["program_ids"] == ids
    assert not [e for e in b.events if e["event"] in ("load", "upgrade")], b.events
    assert {p["name"]: p["id"] for p in env["cli"].status_json()["objects"][0]["programs"]} == ids
    assert kh.cgroup_prog_ids(env["cg"]) == cg_progs
    assert policy(env["pins"])["ports"] == sorted([port, p2])
    # a new version of the object file: upgraded in place (new program ids, same links), not adopted
    links = {ln["name"]: ln["id"] for ln in env["cli"].status_json()["objects"][0]["links"]}
    os.killpg(b.proc.pid, signal.SIGKILL)
    b.wait()
    v2 = env["cfg"].parent / "v2" / "accel.bpf.o"
    v2.parent.mkdir()
    v2.write_bytes(env["obj"].read_bytes() + bytes(8))       # other bytes (trailing padding), same programs
    write_config(env["cfg"], v2, env["cg"], env["pins"], ports=[port, p2])
    c = agents(env["cfg"], metrics_port=kh.free_port())
    c.wait_ready()
    ev = c.wait_event(lambda e: e["event"] in ("adopt", "upgrade", "load"))
    assert ev["event"] == "upgrade" and "changed" in ev["reason"], ev
    st = env["cli"].status_json()["objects"][0]
    new_ids = {p["name"]: p["id"] for p in st["programs"]}
    assert new_ids == ev["program_ids"] and set(new_ids.values()).isdisjoint(ids.values())
    assert {ln["name"]: ln["id"] for ln in st["links"]} == links         # replaced through the same links
    assert policy(env["pins"])["ports"] == sorted([port, p2])          # the maps were kept


@pytest.mark.parametrize("on_exit", ["keep", "unload"])
def test_sigterm_honours_on_exit(env, agents, on_exit):
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[kh.free_port()], on_exit=on_exit)
    a = agents(env["cfg"], metrics_port=kh.free_port())
    a.wait_ready()
    assert len(kh.cgroup_prog_ids(env["cg"])) == 1
    a.signal(signal.SIGTERM)
    assert a.wait() == 0
    ex = a.wait_event(lambda e: e["event"] == "exit")
    assert ex["on_exit"] == on_exit and ex["signal"] == "SIGTERM"
    objs = env["cli"].status_json()["objects"]
    if on_exit == "keep":
        assert len(kh.cgroup_prog_ids(env["cg"])) == 1
        assert [o["name"] for o in objs] == ["accel"] and all(ln["attached"] for ln in objs[0]["links"])
    else:
        assert kh.cgroup_prog_ids(env["cg"]) == [] and objs == []
        assert a.wait_event(lambda e: e["event"] == "unload")["object"] == "accel"


def test_bad_file_leaves_the_running_state_untouched(env, agents):
    port = kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port], cidrs=["10.0.0.0/8"])
    a = agents(env["cfg"], metrics_port=kh.free_port())
    a.wait_ready()
    before = policy(env["pins"])
    ids = [p["id"] for p in env["cli"].status_json()["objects"][0]["programs"]]
    good = env["cfg"].read_text()
    n0 = a.mark()
    cases = [
        (good.replace(f"ports = [{port}]", f"ports = [{port}, 70000]"), 12, "objects.accel.policy.ports[1]",
         "invalid port 70000"),
        (good.replace('"10.0.0.0/8"', '"10.0.0.1/8"'), 13, "objects.accel.policy.cidrs[0]", "did you mean 10.0.0.0/8"),
        (good.replace("max_unanswered_kib", "max_unanswered_kb"), 17, "objects.accel.settings.max_unanswered_kb",
         "unknown key"),
        (good.replace("[objects.accel.policy]", "[objects.accel.policy"), 11, None, "invalid TOML"),
    ]
    for text, line, key, msg in cases:
        n = a.mark()
        atomic_write(env["cfg"], text)
        ev = a.wait_event(lambda e: e["event"] == "config_error", start=n)
        assert ev["level"] == "error" and ev["line"] == line and ev["file"] == str(env["cfg"]) and msg in ev["error"]
        if key:
            assert ev["key"] == key and f"{env['cfg']}:{line}: {key}: " in ev["error"]
        code, body = a.get("/readyz")
        assert code == 503 and msg in body
        assert policy(env["pins"]) == before
        assert [p["id"] for p in env["cli"].status_json()["objects"][0]["programs"]] == ids
        # apply says the same, exits 2, and changes nothing either
        r = subprocess.run([*kh.pybpfgen_argv(), "apply", str(env["cfg"])], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and f"{env['cfg']}:{line}" in r.stderr and msg in r.stderr, r.stderr
        assert policy(env["pins"]) == before
    assert [e for e in a.events[n0:] if e["event"] in ("change", "load", "upgrade")] == [], "a bad file changed something"
    # fixed: applied, ready again
    n = a.mark()
    # written in place (truncate, then write): the agent waits for the file to settle, then applies it
    env["cfg"].write_text(good.replace(f"ports = [{port}]", f"ports = [{port}, 4242]"))
    a.wait_event(lambda e: e["event"] == "reconciled", start=n)
    a.wait_ready()
    assert policy(env["pins"])["ports"] == sorted([port, 4242])


def test_apply_dry_run_and_generic_entries(env):
    port = kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port], cidrs=[("198.18.0.0/15", "any")])
    pbg = kh.pybpfgen_argv()

    def apply(*args) -> subprocess.CompletedProcess:
        return subprocess.run([*pbg, "apply", *args, str(env["cfg"])], capture_output=True, text=True, timeout=120)
    r = apply("--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:3] == ["would load accel (not loaded)", f"+ accel/policy_ports: {port}",
                                         "+ accel/policy_cidrs: 198.18.0.0/15 any"]
    assert env["cli"].status_json()["objects"] == []          # nothing loaded by a dry run
    r = apply()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("loaded accel") and f"+ accel/policy_ports: {port}" in r.stdout
    assert len(kh.cgroup_prog_ids(env["cg"])) == 1
    r = apply()
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "no map changes", r.stdout
    # generic entries of a map no [policy] manages: typed through the map's BTF; the policy maps untouched
    text = env["cfg"].read_text()
    text = text[:text.index("[objects.accel.policy]")] + (
        "[objects.accel.maps.policy_ports]\nentries = [{ key = 7001, value = 1 }, { key = 7002, value = 1 }]\n")
    env["cfg"].write_text(text)
    r = apply("--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    diff = json.loads(r.stdout)
    assert [(c["op"], c["entry"]) for c in diff["changes"]] == [("add", "7001 = 1"), ("add", "7002 = 1"),
                                                                 ("remove", f"{port} = 1")]
    assert policy(env["pins"])["ports"] == [port]
    r = apply()
    assert r.returncode == 0, r.stderr
    assert policy(env["pins"])["ports"] == [7001, 7002]
    assert policy(env["pins"])["cidrs"] == [{"cidr": "198.18.0.0/15", "side": "any", "flags": 3}]  # not managed now
    # an entry that does not fit the map: exit 2, file:line: key, nothing changed
    env["cfg"].write_text(text.replace("value = 1 }, {", 'value = "x" }, {'))
    r = apply()
    assert r.returncode == 2 and f"{env['cfg']}:" in r.stderr and "objects.accel.maps.policy_ports.entries[0]" in r.stderr
    assert policy(env["pins"])["ports"] == [7001, 7002]
    # an object file that is not there: a bad file (exit 2); a load that fails (not a cgroup v2 dir): exit 1
    env["cfg"].write_text(text.replace(f'path = "{env["obj"]}"', 'path = "/nonexistent/accel.bpf.o"'))
    r = apply()
    assert r.returncode == 2 and "no such file" in r.stderr, r.stderr
    bad_cg = text.replace(f'cgroup = "{env["cg"]}"', 'cgroup = "/tmp"')
    env["cfg"].write_text(bad_cg)
    r = apply()
    assert r.returncode == 1 and "pybpfgen: error:" in r.stderr, (r.stdout, r.stderr)
    assert len(kh.cgroup_prog_ids(env["cg"])) == 1 and policy(env["pins"])["ports"] == [7001, 7002]


def test_resync_undoes_drift(env, agents):
    """resync_interval: a policy added by hand is removed again, an object unloaded by hand is loaded again
    (not ready meanwhile)."""
    port = kh.free_port()
    write_config(env["cfg"], env["obj"], env["cg"], env["pins"], ports=[port])
    env["cfg"].write_text(env["cfg"].read_text().replace("retry_interval = 1\n", "retry_interval = 1\nresync_interval = 0.2\n"))
    a = agents(env["cfg"], metrics_port=kh.free_port())
    a.wait_ready()
    n = a.mark()
    env["cli"].run("policy", "add", "--port", "4343")
    ev = a.wait_event(lambda e: e["event"] == "change" and e["op"] == "remove", start=n)
    assert (ev["map"], ev["entry"]) == ("policy_ports", "4343")
    assert a.wait_event(lambda e: e["event"] == "reconciled", start=n)["reason"] == "resync"
    assert policy(env["pins"])["ports"] == [port]
    n = a.mark()
    env["cli"].unload("accel")
    assert a.wait_event(lambda e: e["event"] in ("load", "upgrade", "adopt"), start=n)["event"] == "load"
    a.wait_ready()
    assert len(kh.cgroup_prog_ids(env["cg"])) == 1 and policy(env["pins"])["ports"] == [port]

"""The agent's configuration parser, diff logic, metrics collector and HTTP endpoint, without root or bpf(2).
(The agent on the real kernel: tests/kernel/test_agent.py.)"""
from __future__ import annotations

import struct
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pybpfgen_accel import agent as A
from kernel_loader.errors import LoaderError
from kernel_loader.agent import config as C
from kernel_loader.agent import metrics as M
from kernel_loader.agent import reconcile as R

GOOD = """\
# the accelerator on one host
[agent]
on_exit = "unload"
poll_interval = 0.5
metrics_address = "127.0.0.1:9473"

[objects.accel]
path = "build/accel.bpf.o"
cgroup = "/sys/fs/cgroup/shop.slice"
config = { max_conns = 10 }

[objects.accel.policy]
ports = [6379, 8080]
cidrs = [
  "10.0.0.0/8",
  { cidr = "198.18.0.0/15", side = "local" },
  { cidr = "198.18.0.0/15", side = "remote" },
]
tuples = ["10.0.0.1:40000-10.0.0.2:80"]

[objects.accel.settings]
max_unanswered_msgs = 512
"""


def parse(text: str, file: str = "/etc/pybpfgen/agent.toml") -> C.AgentConfig:
    return C.parse_text(text, file)


def err(text: str) -> C.ConfigError:
    with pytest.raises(C.ConfigError) as ei:
        parse(text)
    return ei.value


# ------------------------------------------------------------------ parsing
def test_good_config():
    cfg = parse(GOOD)
    assert cfg.on_exit == "unload" and cfg.poll_interval == 0.5 and cfg.metrics_address == "127.0.0.1:9473"
    (o,) = cfg.objects
    assert o.name == "accel" and o.path == "/etc/pybpfgen/build/accel.bpf.o"    # relative to the file
    assert o.cgroup == "/sys/fs/cgroup/shop.slice" and o.pin_root == "/sys/fs/bpf/pybpfgen"
    assert o.config_dict == {"max_conns": 10}
    # [objects.accel.policy] / [objects.accel.settings]: the accelerator plugin's sections (pybpfgen_accel.agent)
    assert o.section("policy").ports == (6379, 8080)
    # two sides of one CIDR form a set, as `policy add --side`
    assert [(str(c), f) for c, f in o.section("policy").cidrs] == [("10.0.0.0/8", 3), ("198.18.0.0/15", 3)]
    assert [str(t) for t in o.section("policy").tuples] == ["10.0.0.1:40000-10.0.0.2:80"]
    assert o.section("settings") == A.Settings(512, 0)          # a key left out: 0 (the default)
    assert o.maps == () and o.where == "/etc/pybpfgen/agent.toml:8: objects.accel.path"
    assert len(cfg.sha256) == 64


def test_defaults_and_generic_maps():
    cfg = parse('[objects.filter]\npath = "/o/filter.bpf.o"\n[objects.filter.maps.allow]\n'
                'entries = [{ key = 1, value = { a = 2 } }, { key = 2, value = 3 }]\n')
    assert cfg.on_exit == "keep" and cfg.metrics_address is None and cfg.enable_stats is False
    (o,) = cfg.objects
    assert o.sections == () and o.section("policy") is None and o.cgroup is None
    (m,) = o.maps
    assert m.name == "allow" and [(e.key, e.value) for e in m.entries] == [(1, {"a": 2}), (2, 3)]
    assert m.entries[1].where == "/etc/pybpfgen/agent.toml:4: objects.filter.maps.allow.entries[1]"


@pytest.mark.parametrize("text, line, key, msg", [
    (GOOD.replace("8080]", "70000]"), 13, "objects.accel.policy.ports[1]", "invalid port 70000"),
    (GOOD.replace('side = "local"', 'side = "up"'), 16, "objects.accel.policy.cidrs[1].side", "invalid side 'up'"),
    (GOOD.replace('"10.0.0.0/8"', '"10.0.0.1/8"'), 15, "objects.accel.policy.cidrs[0]", "did you mean 10.0.0.0/8"),
    (GOOD.replace("10.0.0.2:80", "10.0.0.2"), 19, "objects.accel.policy.tuples[0]", "invalid tuple"),
    (GOOD.replace("cgroup =", "cgrup ="), 9, "objects.accel.cgrup", "unknown key"),
    (GOOD.replace('"unload"', '"detach"'), 3, "agent.on_exit", 'expected "keep" or "unload"'),
    (GOOD.replace("512", "-1"), 22, "objects.accel.settings.max_unanswered_msgs", "invalid max_unanswered_msgs -1"),
    (GOOD.replace("512", '"512"'), 22, "objects.accel.settings.max_unanswered_msgs", "expected an integer"),
    (GOOD.replace("6379, 8080", "6379, 6379"), 13, "objects.accel.policy.ports[1]", "listed twice"),
    (GOOD.replace("[objects.accel]", "[objects.acc]").replace("objects.accel.", "objects.acc."), 8,
     "objects.acc.path", "pinned as 'accel', not 'acc'"),
    (GOOD.replace("0.5", "-2"), 4, "agent.poll_interval", "out of range"),
    (GOOD.replace('"127.0.0.1:9473"', '"localhost"'), 5, "agent.metrics_address", "expected HOST:PORT"),
    (GOOD.replace("max_conns = 10", "max_conns = true"), 10, "objects.accel.config.max_conns",
     "expected an integer"),
    (GOOD + "[objects.accel.maps.policy_ports]\nentries = []\n", 23, "objects.accel.maps.policy_ports",
     "already managed by [objects.accel.policy]"),
    ('[objects.x]\ncgroup = "/c"\n', 1, "objects.x", 'missing key "path"'),
    ("[agent]\n", None, "objects", "no objects"),      # a key that is not there: no line
])
def test_schema_errors_name_file_line_and_key(text, line, key, msg):
    e = err(text)
    assert (e.file, e.line, e.key) == ("/etc/pybpfgen/agent.toml", line, key), str(e)
    assert msg in e.msg
    assert str(e).startswith(f"/etc/pybpfgen/agent.toml{'' if line is None else f':{line}'}: {key}: ")


def test_syntax_errors_carry_line_and_column():
    e = err('[agent]\non_exit = "keep\n')
    assert e.line == 2 and e.col and str(e).startswith("/etc/pybpfgen/agent.toml:2:") and "invalid TOML" in str(e)
    e = err("[objects.accel]\npath = [1,\n")
    assert e.line == 2 and "invalid TOML" in str(e)


def test_load_file_errors(tmp_path):
    with pytest.raises(C.ConfigError, match="cannot read the configuration"):
        C.load_file(str(tmp_path / "missing.toml"))
    p = tmp_path / "bad.toml"
    p.write_bytes(b"[agent]\n\xff\n")
    with pytest.raises(C.ConfigError, match=r"bad.toml:2: not UTF-8"):
        C.load_file(str(p))


def test_key_locator_finds_dotted_keys_and_array_elements():
    text = 'a.b = 1\n[t]\nx = [\n  1, # one\n  2,\n  "3,4",\n  5]\n[[arr]]\nk = 1\n[[arr]]\nk = 2\n'
    loc = C.KeyLocator(text)
    assert loc.line(("a", "b")) == 1 and loc.line(("t", "x")) == 3
    assert [loc.line(("t", "x", i)) for i in range(4)] == [4, 5, 6, 7]
    assert loc.line(("arr", 1, "k")) == 11 and loc.line(("arr", 0, "k")) == 9
    assert loc.line(("nowhere",)) is None


def test_parse_address():
    assert C.parse_address("127.0.0.1:9473") == ("127.0.0.1", 9473)
    assert C.parse_address("[::1]:9473") == ("::1", 9473)
    assert C.parse_address(":9473") == ("", 9473)
    for bad in ("9473", "::1:9473", "h:0", "h:x"):
        with pytest.raises(LoaderError, match="invalid address"):
            C.parse_address(bad)


# ------------------------------------------------------------------ diff
def test_diff_adds_updates_and_removes():
    live = {b"a": b"1", b"b": b"2", b"c": b"3"}
    desired = {b"a": (b"1", "A"), b"b": (b"9", "B9"), b"d": (b"4", "D")}
    ch = R.diff_map("o", "m", desired, live, describe=lambda k, v: f"{k.decode()}{v.decode()}")
    assert [(c.op, c.key) for c in ch] == [("update", b"b"), ("add", b"d"), ("remove", b"c")]
    assert [c.text() for c in ch] == ["~ o/m: b2 -> B9", "+ o/m: D", "- o/m: c3"]
    # an array: what is not listed stays
    assert [c.op for c in R.diff_map("o", "m", desired, live, removable=False)] == ["update", "add"]
    assert R.diff_map("o", "m", {b"a": (b"1", "A")}, {b"a": b"1"}) == []


def test_adds_come_before_removals_across_maps():
    ch = (R.diff_map("o", "m1", {}, {b"x": b"1"}) + R.diff_map("o", "m2", {b"y": (b"1", "y")}, {})
          + R.diff_map("o", "m3", {b"z": (b"2", "z")}, {b"z": b"1", b"w": b"0"}))
    assert [(c.op, c.map) for c in R.ordered(ch)] == [("add", "m2"), ("update", "m3"), ("remove", "m1"),
                                                        ("remove", "m3")]


def section_desired(o, obj_file: str) -> dict:
    """{map: {key bytes: (value bytes, text)}} of the object's plugin sections, encoded with the BTF of
    ``obj_file`` (as `apply --dry-run` does for an object that is not loaded; a loaded map's BTF is the same)."""
    return {m: d[0] for m, d in R._section_desired(o, R._elf_maps(obj_file)).items()}


def test_desired_accel_entries(accel_object):
    """The accelerator's sections, typed by the plugin and encoded with the program's BTF: these bytes."""
    one = struct.pack("<I", 1)
    (o,) = parse(GOOD.replace("build/accel.bpf.o", accel_object)).objects
    d = section_desired(o, accel_object)
    assert list(d) == ["policy_ports", "policy_cidrs", "policy_tuples", "settings"]
    assert d["policy_ports"] == {struct.pack("<I", 6379): (one, "6379"), struct.pack("<I", 8080): (one, "8080")}
    k = struct.pack("<I", 96 + 15) + bytes(10) + b"\xff\xff" + bytes([198, 18, 0, 0])   # v4-mapped, len + 96
    assert d["policy_cidrs"] == {k: (struct.pack("<I", 3), "198.18.0.0/15 any"),
                                 struct.pack("<I", 104) + bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 0]):
                                 (struct.pack("<I", 3), "10.0.0.0/8 any")}
    (t,) = d["policy_tuples"]
    assert t == (bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1]) + bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 2])
                 + struct.pack("<II", 40000, 80))
    assert d["settings"] == {struct.pack("<I", 0): (struct.pack("<II", 512, 0),
                                                     "max_unanswered_msgs=512 max_unanswered_kib=0")}
    # no [policy] / [settings]: those maps are not managed at all
    (o2,) = parse(f'[objects.accel]\npath = "{accel_object}"\n').objects
    assert section_desired(o2, accel_object) == {}
    # [policy] present with a kind left out: that kind is empty
    (o3,) = parse(f'[objects.accel]\npath = "{accel_object}"\n[objects.accel.policy]\nports = [1]\n').objects
    d3 = section_desired(o3, accel_object)
    assert d3["policy_cidrs"] == {} and d3["policy_tuples"] == {} and "settings" not in d3


def test_describe_live_entries_round_trips(accel_object):
    """A live entry (decoded with the map's BTF) is named as the file writes it."""
    text = GOOD.replace("build/accel.bpf.o", accel_object)
    text = text[:text.index("cidrs = [")] + (
        'cidrs = ["10.0.0.0/8", { cidr = "2001:db8::/32", side = "remote" }, { cidr = "198.18.0.1/32", '
        'side = "local" }]\ntuples = ["[::1]:1-[::1]:2", "10.0.0.1:40000-10.0.0.2:80"]\n'
        "[objects.accel.settings]\nmax_unanswered_msgs = 5\nmax_unanswered_kib = 6\n")
    (o,) = parse(text).objects
    d = R._section_desired(o, R._elf_maps(accel_object))
    named = {m: sorted(describe(k, v) for k, (v, _) in desired.items()) for m, (desired, _, describe, *_) in d.items()}
    assert named == {"policy_ports": ["6379", "8080"],
                     "policy_cidrs": ["10.0.0.0/8 any", "198.18.0.1/32 local", "2001:db8::/32 remote"],
                     "policy_tuples": ["10.0.0.1:40000-10.0.0.2:80", "[::1]:1-[::1]:2"],
                     "settings": ["max_unanswered_msgs=5 max_unanswered_kib=6"]}
    assert all(describe(k, v) == t for desired, _, describe, *_ in d.values() for k, (v, t) in desired.items())


def test_accel_sections_are_the_plugins():
    """kernel_loader knows no section of its own: [objects.X.policy] / [settings] come from the plugin."""
    from kernel_loader import plugins
    secs = plugins.agent_sections()
    assert secs["policy"] is A.AGENT_SECTIONS["policy"] and secs["settings"].maps == ("settings",)
    fams = plugins.agent_metric_families()
    assert fams["pybpfgen_accel_redirected_messages"][0] == "counter"


def test_config_error_at_a_kept_location():
    e = C.ConfigError.at("/f.toml:7: objects.x.maps.m.entries[0]", "does not fit")
    assert (e.file, e.line, e.key) == ("/f.toml", 7, "objects.x.maps.m.entries[0]")
    assert str(e) == "/f.toml:7: objects.x.maps.m.entries[0]: does not fit"


# ------------------------------------------------------------------ metrics
STATUS = {"pin_root": "/sys/fs/bpf/pybpfgen", "objects": [{
    "name": "accel", "pin_dir": "/sys/fs/bpf/pybpfgen/accel", "state": "loaded", "cgroup": "/sys/fs/cgroup",
    "programs": [{"name": "accel_redirect", "id": 7, "type": "sk_msg", "tag": "ab", "verified_insns": 300,
                  "run_cnt": 10, "run_time_ns": 2_000_000_000}],
    "links": [{"name": "accel_redirect", "attached": True, "target": {"kind": "map", "map_name": "socks"}}],
    "maps": [{"pin_name": "stats", "type": "percpu_array", "entries": 1, "max_entries": 1,
              "values": [{"redirected": 12, "missed": 1, "paired": 2, "refused": 0, "demoted": 3, "released": 4}]},
             {"pin_name": "policy_ports", "type": "hash", "entries": 2, "max_entries": 1024, "values": None},
             {"pin_name": "settings", "type": "array", "entries": 1, "max_entries": 1,
              "values": [{"max_unanswered_msgs": 0, "max_unanswered_kib": 64}]},
             {"pin_name": "events", "type": "ringbuf", "entries": None, "max_entries": 4096, "values": None}],
    "accelerator": {"sockets": 2}}]}


def scrape_text(agent=None) -> str:
    from prometheus_client import generate_latest
    col = M.StatusCollector(lambda: (["/sys/fs/bpf/pybpfgen"], None, agent), status=lambda pr: STATUS)
    return generate_latest(M.registry_for(col)).decode()


def samples(text: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_collector_families_and_values():
    text = scrape_text({"reconciles_ok": 3, "changes_add": 5, "ready": 1, "config_sha256": "ff", "config_file": "f"})
    s = samples(text)
    o = (("object", "accel"),)
    assert s[("pybpfgen_accel_redirected_messages_total", o)] == 12
    assert s[("pybpfgen_accel_tcp_path_verdicts_total", o)] == 1
    assert s[("pybpfgen_accel_paired_connections_total", o)] == 2
    assert s[("pybpfgen_accel_demoted_connections_total", o)] == 3
    assert s[("pybpfgen_accel_released_sockets_total", o)] == 4
    assert s[("pybpfgen_accel_sockets", o)] == 2
    assert s[("pybpfgen_map_counter_total", (("field", "redirected"), ("index", "0"), ("map", "stats"),
                                             ("object", "accel")))] == 12
    assert s[("pybpfgen_map_entries", (("map", "policy_ports"), ("object", "accel"), ("type", "hash")))] == 2
    assert s[("pybpfgen_map_max_entries", (("map", "events"), ("object", "accel"), ("type", "ringbuf")))] == 4096
    assert ("pybpfgen_map_entries", (("map", "events"), ("object", "accel"), ("type", "ringbuf"))) not in s
    assert s[("pybpfgen_program_runs_total", (("object", "accel"), ("program", "accel_redirect")))] == 10
    assert s[("pybpfgen_program_run_time_seconds_total", (("object", "accel"), ("program", "accel_redirect")))] == 2.0
    assert s[("pybpfgen_accel_budget", (("limit", "max_unanswered_msgs"), ("object", "accel")))] == 256  # default
    assert s[("pybpfgen_accel_budget", (("limit", "max_unanswered_kib"), ("object", "accel")))] == 64
    assert s[("pybpfgen_agent_reconciles_total", (("result", "ok"),))] == 3
    assert s[("pybpfgen_agent_changes_total", (("op", "add"),))] == 5
    assert s[("pybpfgen_agent_ready", ())] == 1
    # every family has a HELP text
    for fam in text_string_to_metric_families(text):
        assert fam.documentation, fam.name


def test_collector_survives_a_failing_status():
    from prometheus_client import generate_latest

    def boom(pr):
        raise RuntimeError("gone")
    col = M.StatusCollector(lambda: (["/x"], None, None), status=boom)
    s = samples(generate_latest(M.registry_for(col)).decode())
    assert s[("pybpfgen_status_ok", ())] == 0 and s[("pybpfgen_status_errors_total", ())] == 1


def test_http_endpoints():
    col = M.StatusCollector(lambda: (["/p"], None, None), status=lambda pr: STATUS)
    state = {"ready": (False, "not loaded: accel")}
    srv, t = M.serve("127.0.0.1", 0, M.registry_for(col), lambda: (True, "ok"), lambda: state["ready"])
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            assert "pybpfgen_accel_redirected_messages_total" in r.read().decode()
        with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
            assert r.read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(base + "/readyz", timeout=10)
        assert ei.value.code == 503 and b"not loaded: accel" in ei.value.read()
        state["ready"] = (True, "ready")
        with urllib.request.urlopen(base + "/readyz", timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(base + "/nope", timeout=10)
        assert ei.value.code == 404
    finally:
        srv.shutdown()
        srv.server_close()


# ------------------------------------------------------------------ CLI (no root needed for a bad file)
def test_apply_bad_file_exits_2(tmp_path, capsys):
    from pybpfgen.cli import main
    p = tmp_path / "agent.toml"
    p.write_text(GOOD.replace("8080]", "80800]"))
    assert main(["apply", str(p)]) == 2
    err_ = capsys.readouterr().err
    assert f"{p}:13: objects.accel.policy.ports[1]: invalid port 80800" in err_
    p.write_text("[agent\n")
    assert main(["apply", "--dry-run", str(p)]) == 2
    assert f"{p}:1:" in capsys.readouterr().err


def test_agent_bad_file_exits_2(tmp_path, capsys):
    from pybpfgen.cli import main
    p = tmp_path / "agent.toml"
    p.write_text('[objects.accel]\npath = "accel.bpf.o"\non_exit = "keep"\n')
    assert main(["agent", "--config", str(p)]) == 2
    out = capsys.readouterr().out
    assert '"event": "config_error"' in out and f"{p}:3: objects.accel.on_exit: unknown key" in out


def test_collector_sockets_without_the_accelerator_summary():
    from prometheus_client import generate_latest
    st = {"objects": [{**STATUS["objects"][0], "accelerator": None,
                       "maps": STATUS["objects"][0]["maps"] + [{"pin_name": "socks", "type": "sockhash", "entries": 4,
                                                                "max_entries": 8, "values": None}]}]}
    col = M.StatusCollector(lambda: (["/p"], None, None), status=lambda pr: st)
    assert samples(generate_latest(M.registry_for(col)).decode())[("pybpfgen_accel_sockets", (("object", "accel"),))] == 4


# ------------------------------------------------------------------ the plugin hooks, with a plugin of our own
class _AllowSection:
    maps = ("allow",)
    hint = "; is it filter.bpf.o?"

    @staticmethod
    def parse(t, c, path):
        c.table(t, path, {"ports"})
        ports = c.typed(t, path, "ports", list, "an array of ports", [])
        for i, p in enumerate(ports):
            if not isinstance(p, int) or isinstance(p, bool):
                raise c.error(path + ("ports", i), f"expected a port, got {c.tname(p)}")
        return tuple(ports)

    @staticmethod
    def desired(ports):
        return {"allow": [(p, 1, str(p)) for p in ports]}

    @staticmethod
    def describe(map_name, key, value):
        return str(key)


@pytest.fixture
def myplugin(monkeypatch):
    import types

    from kernel_loader import plugins
    mod = types.ModuleType("myapp_plugin")
    mod.AGENT_SECTIONS = {"allow": _AllowSection(), "maps": _AllowSection()}     # "maps" is the agent's own
    mod.AGENT_METRICS = {"myapp_allowed": ("gauge", "Ports the filter allows.", ("object",))}
    mod.agent_metrics = lambda o: [("myapp_allowed", [o["name"]], 7), ("undeclared", [], 1)]
    monkeypatch.setattr(plugins, "_loaded", {"myapp": mod})
    return mod


def test_a_plugin_section(myplugin):
    base = '[objects.filter]\npath = "/o/filter.bpf.o"\n'
    (o,) = parse(base + "[objects.filter.allow]\nports = [80, 443]\n").objects
    assert o.sections == (("allow", (80, 443)),) and o.section("allow") == (80, 443)
    e = err(base + '[objects.filter.allow]\nports = [\n  80,\n  "x",\n]\n')
    assert (e.line, e.key) == (6, "objects.filter.allow.ports[1]") and "expected a port, got a string" in e.msg
    e = err(base + "[objects.filter.allow]\n[objects.filter.maps.allow]\nentries = []\n")
    assert (e.line, e.key) == (4, "objects.filter.maps.allow") and "already managed by [objects.filter.allow]" in e.msg
    # a plugin cannot take the agent's own keys: maps stays generic
    (o,) = parse(base + "[objects.filter.maps.other]\nentries = [{ key = 1, value = 2 }]\n").objects
    assert [m.name for m in o.maps] == ["other"] and o.sections == ()
    # the accelerator's tables are not the agent's: without its plugin, an unknown key
    e = err(GOOD)
    assert e.key == "objects.accel.policy" and e.msg == ("unknown key (expected one of: allow, cgroup, config, maps, "
                                                         "path, pin_root)")


def test_a_plugin_metrics(myplugin):
    s = samples(scrape_text())
    assert s[("myapp_allowed", (("object", "accel"),))] == 7
    assert not any(name.startswith("pybpfgen_accel_") for name, _ in s)       # the accelerator's: its plugin's
    assert not any(name == "undeclared" for name, _ in s)

"""CLI wiring and import hygiene (no root)."""
import argparse
import json
import subprocess
import sys
import textwrap

import pytest

from pybpfgen_accel import cli as accel_cli
from kernel_loader import cli


def parser():
    p = argparse.ArgumentParser(prog="pybpfgen")
    sub = p.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return p


def test_register_and_defaults():
    p = parser()
    a = p.parse_args(["load"])
    assert a.object == "build" and a.cgroup is None and a.func is cli.cmd_load and not a.verbose
    a = p.parse_args(["load", "x.bpf.o", "--cgroup", "/cg", "-v"])
    assert (a.object, a.cgroup, a.verbose) == ("x.bpf.o", "/cg", True)
    a = p.parse_args(["unload"])
    assert a.name is None and a.func is cli.cmd_unload
    a = p.parse_args(["status", "--json"])
    assert a.json and a.func is cli.cmd_status
    a = p.parse_args(["policy", "add", "--port", "8080"])
    assert (a.policy_cmd, a.port, a.object, a.func) == ("add", 8080, "accel", accel_cli.cmd_policy)
    a = p.parse_args(["policy", "list", "--object", "other"])
    assert a.object == "other"


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http"])
def test_port_validation(port, capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(["policy", "add", "--port", port])
    assert ei.value.code == 2
    assert "1 to 65535" in capsys.readouterr().err


def test_status_nothing_loaded(tmp_path, capsys):
    a = parser().parse_args(["status", "--pin-root", str(tmp_path / "none")])
    assert a.func(a) == 0
    assert "nothing loaded" in capsys.readouterr().out
    a = parser().parse_args(["status", "--json", "--pin-root", str(tmp_path / "none")])
    assert a.func(a) == 0
    assert json.loads(capsys.readouterr().out) == {"pin_root": str(tmp_path / "none"), "objects": []}


def test_format_status():
    st = {"pin_root": "/r", "objects": [{
        "name": "accel", "pin_dir": "/r/accel",
        "programs": [{"name": "p", "id": 1, "type": "sk_msg", "verified_insns": 19}],
        "links": [{"name": "p", "id": 2, "type": "sockmap", "prog_id": 1,
                   "target": {"kind": "map", "map_id": 3, "map_name": "socks"}, "attached": True}],
        "maps": [{"pin_name": "stats", "id": 3, "type": "array", "key_size": 4, "value_size": 16,
                  "max_entries": 1, "entries": 1, "values": [{"redirected": 12, "missed": 0}]}]}]}
    out = cli.format_status(st)
    assert "verified_insns 19" in out and "map socks (id 3)" in out
    assert '{"redirected": 12, "missed": 0}' in out


def test_main_reports_loader_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "kernel_loader", "load", str(tmp_path / "missing.bpf.o")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("pybpfgen: error: ") and "no such file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_loader_never_imports_llvmlite(twin_object):
    code = textwrap.dedent(f"""
        import sys
        import kernel_loader, kernel_loader.cli, kernel_loader.__main__
        from kernel_loader.elf import parse_object
        from kernel_loader.program import link_program
        o = parse_object({twin_object!r})
        for p in o.programs:
            link_program(o, p, {{m: 3 for m in o.maps}})
        # the loader reads the shared tables of BPF facts (import-free), never the compiler
        shared = {{"pybpfgen", "pybpfgen.target", "pybpfgen.target.maps", "pybpfgen.target.contexts",
                  "pybpfgen.target.progtypes", "pybpfgen.target.records", "pybpfgen.target.kinfo_layout",
                  "pybpfgen.target.insn"}}
        bad = [m for m in sys.modules if m.split(".")[0] in ("llvmlite", "pybpfgen") and m not in shared]
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_load_path_stays_light():
    """`pybpfgen load/unload` start-up: no dataclasses (which imports inspect, ast, dis, tokenize), and the
    parser holds only the subcommand being run (bench/load_bench.py measures what this saves)."""
    code = textwrap.dedent("""
        import sys
        import kernel_loader.cli, kernel_loader.manager, kernel_loader.lifecycle
        from pybpfgen.cli import build_parser
        heavy = [m for m in ("dataclasses", "inspect", "ast", "llvmlite", "elftools") if m in sys.modules]
        assert not heavy, heavy
        p = build_parser(only="unload")
        choices = p._subparsers._group_actions[0].choices
        assert list(choices) == ["unload"], list(choices)
        full = build_parser(only="bogus")._subparsers._group_actions[0].choices
        assert {"compile", "disasm", "load", "unload", "status", "doctor", "policy"} <= set(full), list(full)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_new_options():
    p = parser()
    a = p.parse_args(["load", "x.bpf.o", "--replace-maps"])
    assert a.replace_maps
    a = p.parse_args(["status", "accel", "--stats", "--interval", "0.5"])
    assert (a.name, a.stats, a.interval) == ("accel", True, 0.5)
    a = p.parse_args(["doctor", "--conformance", "--cases", "x, y", "--object", "o.bpf.o"])
    assert (a.conformance, a.cases, a.object) == (True, ["x", "y"], "o.bpf.o")
    a = p.parse_args(["unload", "-v"])
    assert a.verbose


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "99999"])
def test_interval_validation(bad, capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(["status", "--stats", "--interval", bad])
    assert ei.value.code == 2

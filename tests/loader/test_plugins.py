"""The extension point (kernel_loader/plugins.py): a policy author's plugin adds a command, a status summary and
doctor checks exactly as the accelerator's does; a broken plugin is one clear line; no built-in can be shadowed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernel_loader import plugins

REPO = Path(__file__).resolve().parents[2]

PLUGIN = textwrap.dedent('''
    def _add_hello(sub):
        p = sub.add_parser("hello", help="say hello from myapp")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    def _add_load(sub):      # tries to shadow a built-in command: ignored
        raise AssertionError("a plugin must not replace `load`")

    COMMANDS = {"hello": _add_hello, "load": _add_load}
    STATUS_KEY = "myapp"

    def status_summary(obj, sc):
        return {"maps": len(obj["maps"])} if obj["name"] == "mine" else None

    def format_summary(summary):
        return f"  myapp: {summary['maps']} maps"

    def doctor_checks(report):
        return [{"name": "hazard:myapp", "status": "info", "detail": "myapp on Linux %s" % report["kernel"]["release"],
                 "fix": "nothing"}]
''')


def _env(tmp_path: Path, spec: str) -> dict:
    (tmp_path / "myapp_plugin.py").write_text(PLUGIN)
    pp = os.pathsep.join([str(tmp_path), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return {**os.environ, "PYTHONPATH": pp, plugins.ENV: spec}


def _pbg(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfgen", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_plugin_adds_a_command(tmp_path):
    env = _env(tmp_path, "myapp=myapp_plugin")
    r = _pbg(["hello", "--name", "policy author"], env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello policy author\n", "")
    r = _pbg(["--help"], env)
    assert "hello" in r.stdout and "say hello from myapp" in r.stdout and "policy" in r.stdout, r.stdout
    r = _pbg(["load", "--help"], env)        # the built-in, not the plugin's
    assert r.returncode == 0 and "OBJECT_OR_DIR" in r.stdout, r.stdout + r.stderr


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    for spec, what in (("broken=no_such_module_here", "plugin 'broken' (no_such_module_here) cannot be imported"),
                       ("nonsense", "PYBPFGEN_PLUGINS: expected NAME=MODULE")):
        r = _pbg(["hello"], _env(tmp_path, spec))
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and what in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_summaries_and_checks_come_from_every_plugin(tmp_path, monkeypatch):
    (tmp_path / "myapp_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV, "myapp=myapp_plugin")
    plugins.reset()
    try:
        mine = {"name": "mine", "maps": [{"pin_name": "a", "type_id": 1}, {"pin_name": "b", "type_id": 2}]}
        got = plugins.status_summaries(mine, sc=None)
        assert got["myapp"] == {"maps": 2}
        assert "accelerator" in got          # the accelerator's plugin (installed) is asked too: not its object
        assert got["accelerator"] is None
        assert plugins.format_summaries({**mine, **got}) == ["  myapp: 2 maps"]
        checks = plugins.doctor_checks({"kernel": {"release": "6.18.0", "version": [6, 18]}})
        names = [c["name"] for c in checks]
        assert "hazard:myapp" in names and "hazard:blocking-recv-eagain" in names
        assert list(plugins.commands({"load": None})) == ["hello", "policy"]   # PYBPFGEN_PLUGINS first, no shadowing
    finally:
        plugins.reset()


@pytest.mark.kernel
def test_doctor_shows_a_plugins_checks(tmp_path):
    r = _pbg(["doctor", "--json", "--pin-root", str(tmp_path / "pins")], _env(tmp_path, "myapp=myapp_plugin"))
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["hazard:myapp"]["detail"].startswith("myapp on Linux "), r.stdout

"""Prometheus metrics of the loaded objects and of the agent, read at scrape time, and the HTTP endpoint.

:class:`StatusCollector` is a ``prometheus_client`` custom collector: each scrape calls
``kernel_loader.status()`` for the agent's pin roots and turns it into metric families (names and HELP texts:
docs/cli.md, "Metrics"); plugins add families of their programs (:mod:`kernel_loader.plugins`, ``AGENT_METRICS``). Nothing is cached: the values are the kernel's at scrape time, the same numbers
``pybpfgen status --json`` prints.

:func:`serve` runs a small threaded HTTP server: ``/metrics`` (Prometheus text format), ``/healthz``
(liveness: the agent's main loop is turning) and ``/readyz`` (readiness: every configured object is loaded
and the last reconcile of the current file succeeded).
"""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily


def _int_fields(v, prefix: str = "") -> Iterable[tuple[str, int]]:
    """(field, value) of an integer or a struct of integers (nested structs: ``a.b``); nothing otherwise."""
    if isinstance(v, bool):
        return
    if isinstance(v, int):
        yield (prefix or "value"), v
    elif isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (int, dict)) and not isinstance(x, bool):
                yield from _int_fields(x, f"{prefix}.{k}" if prefix else str(k))


class StatusCollector:
    """``source()`` -> (pin roots, object names or None for all, agent counters dict or None)."""

    def __init__(self, source: Callable[[], tuple[list[str], set | None, dict | None]],
                 status: Callable[..., dict] | None = None, lock: threading.RLock | threading.Lock | None = None):
        self.source = source
        self._status = status
        self.lock = lock or threading.Lock()
        self.scrape_errors = 0

    def status(self, pin_root: str) -> dict:
        if self._status is not None:
            return self._status(pin_root)
        import kernel_loader as kl
        return kl.status(pin_root)

    def collect(self):
        pin_roots, names, agent = self.source()
        objs: list[dict] = []
        ok = 1
        with self.lock:
            for pr in pin_roots:
                try:
                    st = self.status(pr)
                except Exception:  # noqa: BLE001 - a scrape reports, it never fails the endpoint
                    ok = 0
                    self.scrape_errors += 1
                    continue
                objs += [o for o in st["objects"] if names is None or o["name"] in names]
        yield from self.object_families(objs)
        g = GaugeMetricFamily("pybpfgen_status_ok", "1 when the last scrape read every pin root, 0 when reading "
                                                    "the loaded objects failed.")
        g.add_metric([], ok)
        yield g
        c = CounterMetricFamily("pybpfgen_status_errors", "Scrapes that failed to read the loaded objects.")
        c.add_metric([], self.scrape_errors)
        yield c
        if agent is not None:
            yield from agent_families(agent)

    def object_families(self, objs: list[dict]):
        obj_info = GaugeMetricFamily("pybpfgen_object_info", "A loaded object (always 1); its load state and "
                                     "cgroup as labels.", labels=["object", "state", "cgroup", "pin_dir"])
        prog_info = GaugeMetricFamily("pybpfgen_program_info", "A loaded program (always 1): kernel id, type "
                                      "and tag.", labels=["object", "program", "id", "type", "tag"])
        runs = CounterMetricFamily("pybpfgen_program_runs", "Times the program ran (cumulative; moves only while "
                                   "BPF run-time statistics are enabled: agent --enable-stats).",
                                   labels=["object", "program"])
        run_time = CounterMetricFamily("pybpfgen_program_run_time_seconds", "Time spent running the program "
                                       "(cumulative; moves only while BPF run-time statistics are enabled).",
                                       labels=["object", "program"])
        insns = GaugeMetricFamily("pybpfgen_program_verified_instructions", "Instructions the verifier processed "
                                  "for the program.", labels=["object", "program"])
        link = GaugeMetricFamily("pybpfgen_link_attached", "1 when the program's link is attached to its target "
                                 "(cgroup or sockhash), 0 when the target is gone.",
                                 labels=["object", "link", "target"])
        entries = GaugeMetricFamily("pybpfgen_map_entries", "Entries in the map (arrays: max_entries; sockhash / "
                                    "sockmap: sockets).", labels=["object", "map", "type"])
        cap = GaugeMetricFamily("pybpfgen_map_max_entries", "Capacity of the map (max_entries).",
                                labels=["object", "map", "type"])
        counters = CounterMetricFamily("pybpfgen_map_counter", "Counters of the object: every field of every "
                                       "per-CPU array of integers or integer structs, summed over CPUs (field "
                                       "names from BTF).", labels=["object", "map", "index", "field"])
        from .. import plugins as _plugins
        kinds = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
        extra = {n: kinds[t](n, h, labels=list(labels))
                 for n, (t, h, labels) in _plugins.agent_metric_families().items()}
        for o in objs:
            name = o["name"]
            obj_info.add_metric([name, str(o.get("state")), str(o.get("cgroup") or ""), o.get("pin_dir", "")], 1)
            for p in o.get("programs", []):
                prog_info.add_metric([name, p["name"], str(p["id"]), str(p["type"]), p.get("tag", "")], 1)
                runs.add_metric([name, p["name"]], p.get("run_cnt") or 0)
                run_time.add_metric([name, p["name"]], (p.get("run_time_ns") or 0) / 1e9)
                insns.add_metric([name, p["name"]], p.get("verified_insns") or 0)
            for ln in o.get("links", []):
                t = ln.get("target") or {}
                tgt = (t.get("path") or f"cgroup#{t.get('cgroup_id')}") if t.get("kind") == "cgroup" else \
                    (f"map:{t.get('map_name') or t.get('map_id')}" if t.get("kind") == "map" else "")
                link.add_metric([name, ln["name"], tgt], 1 if ln.get("attached", True) else 0)
            for m in o.get("maps", []):
                labels = [name, m["pin_name"], str(m["type"])]
                if m.get("entries") is not None:
                    entries.add_metric(labels, m["entries"])
                cap.add_metric(labels, m["max_entries"])
                vals = m.get("values")
                if not vals:
                    continue
                if m["type"] == "percpu_array":
                    for i, v in enumerate(vals):
                        for fld, x in _int_fields(v):
                            counters.add_metric([name, m["pin_name"], str(i), fld], x)
            for fam_name, labels, value in _plugins.agent_metrics(o):    # what plugins say of their programs
                if fam_name in extra:
                    extra[fam_name].add_metric(list(labels), value)
        yield from (obj_info, prog_info, runs, run_time, insns, link, entries, cap, counters, *extra.values())


def agent_families(a: dict):
    """The agent's own metrics from its counters (see Agent.metrics_state)."""
    r = CounterMetricFamily("pybpfgen_agent_reconciles", "Reconcile passes, by result.", labels=["result"])
    for res in ("ok", "error"):
        r.add_metric([res], a.get(f"reconciles_{res}", 0))
    yield r
    ch = CounterMetricFamily("pybpfgen_agent_changes", "Map entries the agent added, updated or removed.",
                             labels=["op"])
    for op in ("add", "update", "remove"):
        ch.add_metric([op], a.get(f"changes_{op}", 0))
    yield ch
    e = CounterMetricFamily("pybpfgen_agent_errors", "Errors: a bad configuration file (config), a failed "
                            "reconcile (apply), a failed unload on exit (exit).", labels=["kind"])
    for k in ("config", "apply", "exit"):
        e.add_metric([k], a.get(f"errors_{k}", 0))
    yield e
    lo = CounterMetricFamily("pybpfgen_agent_loads", "Objects the agent loaded, upgraded in place or adopted.",
                             labels=["action"])
    for k in ("load", "upgrade", "adopt"):
        lo.add_metric([k], a.get(f"loads_{k}", 0))
    yield lo
    for name, key, helptext in (
            ("pybpfgen_agent_ready", "ready", "1 when every configured object is loaded and the last reconcile of "
                                              "the current configuration file succeeded (what /readyz says)."),
            ("pybpfgen_agent_config_ok", "config_ok", "1 when the configuration file on disk is valid (a bad "
                                                      "file is not applied; the previous one stays in force)."),
            ("pybpfgen_agent_last_reconcile_success", "last_success", "1 when the last reconcile succeeded."),
            ("pybpfgen_agent_last_reconcile_timestamp_seconds", "last_reconcile", "Unix time of the last "
                                                                                  "reconcile pass."),
            ("pybpfgen_agent_stats_enabled", "stats_enabled", "1 while the agent holds BPF run-time statistics "
                                                              "enabled (--enable-stats).")):
        g = GaugeMetricFamily(name, helptext)
        g.add_metric([], float(a.get(key, 0) or 0))
        yield g
    g = GaugeMetricFamily("pybpfgen_agent_config_info", "The configuration in force (always 1): file and "
                          "SHA-256 of its text.", labels=["file", "sha256"])
    if a.get("config_sha256"):
        g.add_metric([a.get("config_file", ""), a["config_sha256"]], 1)
    yield g


def registry_for(collector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


class _Handler(BaseHTTPRequestHandler):
    server_version = "pybpfgen-agent"
    registry: CollectorRegistry
    health: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                body, ctype, code = generate_latest(self.registry), CONTENT_TYPE_LATEST, 200
            except Exception as e:  # noqa: BLE001
                body, ctype, code = f"scrape failed: {e}\n".encode(), "text/plain; charset=utf-8", 500
        elif path in ("/healthz", "/readyz"):
            ok, why = (self.health if path == "/healthz" else self.ready)()
            body, ctype, code = (why.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8", 200 if ok else 503
        elif path == "/":
            body, ctype, code = b"pybpfgen agent: /metrics /healthz /readyz\n", "text/plain; charset=utf-8", 200
        else:
            body, ctype, code = b"not found\n", "text/plain; charset=utf-8", 404
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format, *args):  # noqa: A002 - quiet: the agent's log is its JSON lines
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(host: str, port: int, registry: CollectorRegistry, health, ready) -> tuple[_Server, threading.Thread]:
    """Start the endpoint in a daemon thread; returns (server, thread); ``server.shutdown()`` stops it."""
    handler = type("Handler", (_Handler,), {"registry": registry, "health": staticmethod(health),
                                            "ready": staticmethod(ready)})
    cls = type("Server", (_Server,), {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
    srv = cls((host or "0.0.0.0", port), handler)
    t = threading.Thread(target=srv.serve_forever, name="metrics", daemon=True)
    t.start()
    return srv, t


def now() -> float:
    return time.time()

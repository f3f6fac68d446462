"""``pybpfgen agent --config FILE``: load (or adopt) the configured objects, keep their maps equal to the file,
serve metrics, and on SIGTERM keep the programs attached or unload them (``[agent] on_exit``).

* **Reconcile** (:func:`.reconcile.reconcile`) at start, on SIGHUP, when the file changes (its stat - inode,
  size, mtime - is polled every ``poll_interval`` seconds and its text compared by SHA-256: a ConfigMap's
  symlink swap is seen too), after a failure every ``retry_interval`` seconds, and (``resync_interval``,
  default off) periodically, which undoes drift (a policy added by hand, an object unloaded by hand).
* **A bad file** (syntax, schema, an entry that does not fit its map) is logged with file:line: key and not
  applied: the running state stays what the previous file made it; /readyz says not ready until it is fixed.
* **Adoption**: a restarted agent (crashed, SIGKILLed, a new pod of the same image) finds its objects pinned,
  running the programs it loaded from the same file: it adopts them (no load, program ids unchanged).
* **systemd** (``Type=notify``): ``READY=1`` once every object is loaded and reconciled, ``STATUS=`` with what
  /readyz says, ``WATCHDOG=1`` every half ``WatchdogSec=`` while the main loop turns (liveness).
* **Logs**: one JSON object per line on stdout, for every change it makes and every error:
  ``{"ts": "2026-12-05T19:02:03.123Z", "level": "info", "event": "change", "op": "add", "object": "filter",
  "map": "allow", "entry": "8080 = 1", ...}``.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from ..errors import LoaderError
from . import config as _config
from . import reconcile as _rec

TYPE_CHECKING = False
if TYPE_CHECKING:   # prometheus_client is imported only when metrics are served
    from .metrics import _Server as _ServerT

HEALTH_STALE_S = 120.0      # /healthz fails when the main loop has not turned for this long
TICK_MAX_S = 5.0            # the main loop turns at least this often (heartbeat), whatever poll_interval is


def sd_notify(message: str) -> bool:
    """Tell systemd (``Type=notify``; ``$NOTIFY_SOCKET``) ``READY=1``, ``WATCHDOG=1``, ``STATUS=...``.
    False when not run by systemd (no socket) or when the message could not be sent."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    import socket
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), addr)
        return True
    except OSError:
        return False


class Agent:
    def __init__(self, config_path: str, *, metrics_address: str | None = None, enable_stats: bool | None = None,
                 out=None):
        self.config_path = config_path
        self.cli_metrics_address = metrics_address
        self.cli_enable_stats = enable_stats
        self.out = out or sys.stdout
        self.cfg: _config.AgentConfig | None = None        # the configuration in force (the target)
        self.applied: _config.AgentConfig | None = None    # the last one fully applied
        self.adopted: set[tuple[str, str]] = set()
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self.hup = False
        self.stopping: int | None = None
        self.heartbeat = time.monotonic()
        self.file_sig = None
        self.bad_sha: str | None = None
        self.config_error: str | None = None
        self.last_ok = False
        self.last_error: str | None = None
        self.next_retry: float | None = None
        self.last_pass = time.monotonic()
        self.counters: dict[str, float] = {}
        self.stats_fd: int | None = None
        self.server: _ServerT | None = None   # the metrics server once --metrics-address serves
        self._log_lock = threading.Lock()
        self._sd_ready = False
        self._sd_status: str | None = None

    # -------------------------------------------------------------- logging
    def log(self, event: str, level: str = "info", **kw) -> None:
        t = time.time()
        rec = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z",
               "level": level, "event": event, **kw}
        line = json.dumps(rec, sort_keys=False, default=str)
        with self._log_lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass

    def _count(self, key: str, n: float = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # -------------------------------------------------------------- probes and metrics
    def health(self) -> tuple[bool, str]:
        age = time.monotonic() - self.heartbeat
        if self.stopping is None and age > HEALTH_STALE_S:
            return False, f"main loop stalled for {age:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.cfg is None:
            return False, f"no valid configuration: {self.config_error or 'not read yet'}"
        if self.config_error:
            return False, f"configuration file is invalid (previous one in force): {self.config_error}"
        if not self.last_ok:
            return False, f"last reconcile failed: {self.last_error or 'not run yet'}"
        missing = [o.name for o in self.cfg.objects if (o.pin_root, o.name) not in self.adopted
                   or not os.path.isdir(os.path.join(o.pin_root, o.name, "progs"))]   # unloaded behind our back
        if missing:
            return False, f"not loaded: {', '.join(missing)}"
        return True, "ready"

    def metrics_source(self):
        cfg = self.cfg
        if cfg is None:
            return [], set(), self.metrics_state()
        roots = sorted({o.pin_root for o in cfg.objects})
        return roots, None, self.metrics_state()

    def metrics_state(self) -> dict:
        d: dict[str, object] = dict(self.counters)
        d["ready"] = 1 if self.ready()[0] else 0
        d["config_ok"] = 0 if self.config_error else 1
        d["last_success"] = 1 if self.last_ok else 0
        d["stats_enabled"] = 1 if self.stats_fd is not None else 0
        if self.cfg is not None:
            d["config_sha256"], d["config_file"] = self.cfg.sha256, self.cfg.file
        return d

    # -------------------------------------------------------------- configuration
    def _stat_sig(self):
        try:
            st = os.stat(self.config_path)
            return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return None

    def _settle(self, step: float = 0.05, limit: float = 1.0) -> None:
        """Wait (at most ``limit`` s) until the file's stat stops changing: a writer that truncates and then
        writes is not read half-way (an editor's rename and a ConfigMap's symlink swap are atomic anyway)."""
        sig, waited = self._stat_sig(), 0.0
        while waited < limit and self.stopping is None:
            time.sleep(step)
            waited += step
            now = self._stat_sig()
            if now == sig:
                return
            sig = now

    def read_config(self) -> _config.AgentConfig | None:
        """The file parsed, or None (logged) when it is bad or unchanged since a bad version."""
        self.file_sig = self._stat_sig()
        try:
            cfg = _config.load_file(self.config_path)
        except _config.ConfigError as e:
            try:
                with open(self.config_path, "rb") as f:
                    import hashlib
                    sha = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                sha = None
            repeated = sha is not None and sha == self.bad_sha
            self.bad_sha = sha
            self.config_error = str(e)          # state first, then the log line (tests and probes see both)
            if not repeated:
                self._count("errors_config")
                self.log("config_error", level="error", error=str(e), file=e.file, line=e.line, key=e.key,
                         detail=e.msg, applied=False)
            return None
        self.bad_sha = None
        self.config_error = None
        return cfg

    # -------------------------------------------------------------- reconcile
    def reconcile(self, cfg: _config.AgentConfig, reason: str) -> bool:
        t0 = self.last_pass = time.monotonic()
        try:
            with self.lock:
                res = _rec.reconcile(cfg, adopted=self.adopted, log=self._change_log)
                self.cfg = cfg
                if self.applied is not None:
                    self._drop_removed(self.applied, cfg)
                self.applied = cfg
        except _config.ConfigError as e:
            # an entry that does not fit its map: found before anything changed
            self._count("errors_config")
            self._count("reconciles_error")
            self.config_error = str(e)
            self.bad_sha = cfg.sha256
            self.log("config_error", level="error", error=str(e), file=e.file, line=e.line, key=e.key,
                     detail=e.msg, applied=False)
            return False
        except LoaderError as e:
            self.cfg = cfg          # a valid file: the target, retried until it is reached
            self.last_ok, self.last_error = False, str(e)
            self._count("errors_apply")
            self._count("reconciles_error")
            self.next_retry = time.monotonic() + cfg.retry_interval
            self.log("apply_error", level="error", error=str(e), reason=reason,
                     retry_in_s=cfg.retry_interval)
            return False
        self.last_ok, self.last_error, self.next_retry = True, None, None
        self.counters["last_reconcile"] = time.time()
        self._count("reconciles_ok")
        counts = {op: sum(1 for c in res.changes if c.op == op) for op in ("add", "update", "remove")}
        if reason == "resync" and not res.changes and all(o.action == "keep" for o in res.objects):
            return True         # nothing drifted: no log line every resync_interval
        self.log("reconciled", reason=reason, config_sha256=cfg.sha256, changes=counts,
                 objects={o.name: o.action for o in res.objects}, seconds=round(time.monotonic() - t0, 3))
        return True

    def _change_log(self, event: str, **kw) -> None:
        if event == "change":
            self._count(f"changes_{kw['op']}")
        elif event in ("load", "upgrade", "adopt"):
            self._count(f"loads_{event}")
        self.log(event, **kw)

    def _drop_removed(self, old: _config.AgentConfig, new: _config.AgentConfig) -> None:
        """Objects the previous file had and this one does not: unloaded (the file says they are gone)."""
        import kernel_loader as kl
        keep = {(o.pin_root, o.name) for o in new.objects}
        for o in old.objects:
            if (o.pin_root, o.name) in keep:
                continue
            kl.unload(o.name, o.pin_root)
            _rec.remove_record(o.pin_root, o.name)
            self.adopted.discard((o.pin_root, o.name))
            self.log("unload", object=o.name, pin_root=o.pin_root, reason="no longer in the configuration")

    # -------------------------------------------------------------- run
    def _signal(self, signum, frame) -> None:
        if signum == signal.SIGHUP:
            self.hup = True
        else:
            self.stopping = signum
        self.wake.set()

    def _start_metrics(self, address: str) -> None:
        from . import metrics as _m
        host, port = _config.parse_address(address)
        collector = _m.StatusCollector(self.metrics_source, lock=self.lock)
        self.server, _ = _m.serve(host, port, _m.registry_for(collector), self.health, self.ready)
        self.log("metrics", address=f"{host}:{port}", paths=["/metrics", "/healthz", "/readyz"])

    def _enable_stats(self) -> None:
        from .. import syscall as _syscall
        try:
            self.stats_fd = _syscall.get_default().enable_stats(0)
            self.log("stats_enabled", detail="BPF_ENABLE_STATS held: program run counts and run time accumulate")
        except Exception as e:  # noqa: BLE001
            self.log("stats_error", level="error", error=f"cannot enable BPF run-time statistics: {e}")

    def run(self) -> int:
        for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._signal)
        self.log("start", pid=os.getpid(), config=os.path.abspath(self.config_path))
        cfg = self.read_config()
        if cfg is None:
            return 2
        address = self.cli_metrics_address if self.cli_metrics_address is not None else cfg.metrics_address
        try:
            if address:
                self._start_metrics(address)
        except (LoaderError, OSError) as e:
            self.log("metrics_error", level="error", error=f"cannot serve metrics on {address}: {e}")
            return 1
        if self.cli_enable_stats or (self.cli_enable_stats is None and cfg.enable_stats):
            self._enable_stats()
        self.reconcile(cfg, "start")
        watchdog_s = int(os.environ.get("WATCHDOG_USEC", "0") or 0) / 2e6     # systemd's WatchdogSec= / 2
        try:
            while self.stopping is None:
                self.heartbeat = time.monotonic()
                self._notify_state()
                if watchdog_s > 0:
                    sd_notify("WATCHDOG=1")
                cur = self.cfg or cfg
                timeout = min(TICK_MAX_S, watchdog_s) if watchdog_s > 0 else TICK_MAX_S
                if cur.poll_interval > 0:
                    timeout = min(timeout, cur.poll_interval)
                if self.next_retry is not None:
                    timeout = max(0.0, min(timeout, self.next_retry - time.monotonic()))
                if cur.resync_interval > 0:
                    timeout = max(0.0, min(timeout, self.last_pass + cur.resync_interval - time.monotonic()))
                self.wake.wait(timeout)
                self.wake.clear()
                self.heartbeat = time.monotonic()
                if self.stopping is not None:
                    break
                if self.hup:
                    self.hup = False
                    self._reload("sighup")
                elif cur.poll_interval > 0 and self._stat_sig() != self.file_sig:
                    self._settle()
                    self._reload("file changed")
                elif self.next_retry is not None and time.monotonic() >= self.next_retry:
                    self.reconcile(self.cfg or cfg, "retry")
                elif (self.last_ok and cur.resync_interval > 0
                      and time.monotonic() - self.last_pass >= cur.resync_interval):
                    self.reconcile(cur, "resync")
            return self.shutdown()
        finally:
            if self.server is not None:
                self.server.shutdown()
                self.server.server_close()
            if self.stats_fd is not None:
                os.close(self.stats_fd)

    def _notify_state(self) -> None:
        """systemd: READY=1 the first time every object is loaded and reconciled; STATUS= when it changes."""
        ok, why = self.ready()
        if ok and not self._sd_ready:
            self._sd_ready = sd_notify("READY=1") or True
        if why != self._sd_status:
            self._sd_status = why
            sd_notify(f"STATUS={why}")

    def _reload(self, reason: str) -> None:
        new = self.read_config()
        if new is None:
            return
        if self.cfg is not None and new.sha256 == self.cfg.sha256 and self.last_ok and reason != "sighup":
            return          # touched, not changed
        self.log("reload", reason=reason, config_sha256=new.sha256)
        self.reconcile(new, reason)

    def shutdown(self) -> int:
        import kernel_loader as kl
        cfg = self.cfg
        sig = signal.Signals(self.stopping).name if self.stopping else "?"
        sd_notify("STOPPING=1")
        on_exit = cfg.on_exit if cfg else "keep"
        if on_exit == "keep" or cfg is None:
            self.log("exit", signal=sig, on_exit="keep",
                     detail="programs stay attached and pinned; a new agent adopts them")
            return 0
        rc = 0
        with self.lock:
            for o in cfg.objects:
                try:
                    done = kl.unload(o.name, o.pin_root)
                    _rec.remove_record(o.pin_root, o.name)
                    self.log("unload", object=o.name, pin_root=o.pin_root, unloaded=bool(done), reason="on_exit")
                except LoaderError as e:
                    rc = 1
                    self._count("errors_exit")
                    self.log("unload_error", level="error", object=o.name, error=str(e))
        self.log("exit", signal=sig, on_exit="unload")
        return rc


def main(config_path: str, metrics_address: str | None = None, enable_stats: bool | None = None) -> int:
    return Agent(config_path, metrics_address=metrics_address, enable_stats=enable_stats).run()

"""``pybpfgen doctor``: is this machine ready for ``pybpfgen load``?

Every check is ``{"name", "status", "detail", "fix"}`` with status ``ok``,
``info``, ``warn`` (works, but know this) or ``fail`` (``load`` will stop
here).  ``doctor`` exits 1 when any check fails.

``doctor --conformance`` runs the accelerator conformance suite instead
(``kernel_loader.conformance.run_conformance``) on a private pin root and exits
1 when a case fails.
"""
from __future__ import annotations

import json
import os
import sys
import uuid

from . import features as _features
from . import pins as _pins
from . import syscall as _syscall
from .errors import LoaderError

DEFAULT_CONFORMANCE_OBJECT = os.path.join("build", "accel.bpf.o")
MIN_KERNEL = (5, 7)          # cgroup bpf_link
SK_MSG_LINK_KERNEL = (6, 10)

# Hazards measured on the running kernel line; (first affected, last affected or None), text, what to do.
HAZARDS = [
    {"name": "splice-reader", "kernels": ((4, 14), None),
     "detail": "a splice(2) reader on an accelerated socket receives nothing, or bytes out of order: the "
               "sockmap ingress queue is invisible to splice (measured on 6.18: 0 of 1 048 576 bytes; after a "
               "demotion the newer TCP-path bytes came before the older redirected ones)",
     "fix": "keep applications that splice (e.g. splicing proxies) out of the policy (`pybpfgen policy remove "
            "--port N`) or out of the cgroup (`pybpfgen load --cgroup DIR`); see docs/hazards.md"},
    {"name": "msg-waitall", "kernels": ((4, 14), None),
     "detail": "recv(n, MSG_WAITALL) on an accelerated socket returns as soon as redirected bytes are there, not "
               "when n bytes are: tcp_bpf_recvmsg ignores MSG_WAITALL (measured on 6.18 with records written in "
               "parts: 16 of 16 reads short, e.g. 1 of 2 B, 100 of 200 B, 262144 of 1048576 B; after a demotion "
               "recv(19200) returned the 16384 redirected bytes; the kernel path returned every read in full; no "
               "byte lost or reordered). Applications that read fixed-size records with MSG_WAITALL and do not "
               "check the length misparse",
     "fix": "keep applications that rely on MSG_WAITALL out of the policy (`pybpfgen policy remove --port N`) or "
            "out of the cgroup (`pybpfgen load --cgroup DIR`), or make them loop until the record is complete; "
            "see docs/hazards.md"},
    {"name": "msg-oob", "kernels": ((4, 14), None),
     "detail": "TCP urgent data (MSG_OOB) is not urgent on an accelerated socket: an sk_msg program cannot see "
               "MSG_OOB, the sender's urgent byte is redirected into the peer's sockmap queue as ordinary data (no "
               "urgent pointer: no POLLPRI, SIOCATMARK never true, hence no SIGURG either), and recv(1, MSG_OOB) reads that "
               "queue like a plain recv (tcp_bpf_recvmsg/sk_msg_recvmsg look only at MSG_PEEK). Measured on 6.18: "
               "'abc', urgent '!', 'def' -> recv(1, MSG_OOB) returned 'a' and the inline stream was 'bc!def' "
               "(kernel path: '!' and 'abcdef'); with SO_OOBINLINE the bytes are right ('abc!def') but the mark "
               "is gone; 4 of 4 rounds wrong, both directions, no byte lost",
     "fix": "keep applications that use TCP urgent data (telnet, rlogin, FTP ABOR, ...) out of the policy "
            "(`pybpfgen policy remove --port N`) or out of the cgroup (`pybpfgen load --cgroup DIR`); see "
            "docs/hazards.md"},
    {"name": "socket-options", "kernels": ((4, 14), None),
     "detail": "the sockmap paths ignore some socket options and flags (measured on 6.18, "
               "tests/kernel/test_socket_options_hazards.py): SO_PEEK_OFF (every MSG_PEEK starts at the head of "
               "the queue: '0123' twice instead of '0123', '4567'), SO_RCVLOWAT (poll wakes and recv returns 50 B "
               "with a low-water mark of 100), MSG_ZEROCOPY (the data arrives, but the sender never gets the "
               "completion notifications it must wait for before reusing its buffers: 0 vs 2)",
     "fix": "keep applications that use SO_PEEK_OFF, SO_RCVLOWAT or MSG_ZEROCOPY out of the policy or the cgroup "
            "(`pybpfgen policy remove --port N`, `pybpfgen load --cgroup DIR`); see docs/hazards.md"},
    {"name": "blocking-recv-eagain", "kernels": ((4, 20), None),
     "detail": "a blocking recv() on a socket in the sockhash can fail with EAGAIN: tcp_bpf_recvmsg sleeps once and "
               "returns -EAGAIN when that wakeup brought no data, and the write-space wakeup of the same socket's "
               "writer (sending on the TCP path, waiting for send space) wakes it. The accelerator leaves such "
               "sockets behind when the budget demotes a connection: the receiver of a demoted stream (and both ends "
               "of a demoted full-duplex connection) stays inserted, as it may hold redirected bytes; a bulk answer "
               "written while another thread waits in recv() triggers it (deterministic: "
               "tests/kernel/test_blocking_recv_eagain.py). Measured on 6.18 (bench/duplex_stress.py, 16 MiB each way, "
               "blocking reader and writer threads, 2 CPU hogs): 9 of 1000 rounds with the default budget (issue 11: "
               "4 of 60), 24 of 500 with budget 8, 0 of 500 on the kernel path; no byte lost. An application that "
               "takes EAGAIN on a blocking socket for an error stops reading and its peer blocks",
     "fix": "keep applications that read and write one socket from two threads with blocking calls out "
            "of the policy or the cgroup (`pybpfgen policy remove --port N`, `pybpfgen load --cgroup DIR`), make "
            "them retry EAGAIN, or raise the budget (`pybpfgen policy set --max-unanswered-msgs N "
            "--max-unanswered-kib N`) at the cost of the memory bound; the kernel fix is in "
            "docs/upstream-tcp_bpf_recvmsg.md; see docs/hazards.md"},
    # limits of the current accelerator (programs/accel.py), measured on 6.18 (docs/benchmarks.md, tests/kernel)
    {"name": "bulk-streams-slower", "kernels": ((4, 17), None),
     "detail": "a socket in the sockhash sends through the sockmap (tcp_bpf) path even on the TCP path; a stream "
               "demoted by the unanswered budget leaves the sockhash only when its peer never redirected (one-way "
               "streams: iperf3 0.90-1.08x the kernel path's throughput on 6.18, 2 vCPUs); a stream whose peer sent "
               "first (a request, then a bulk response) stays inserted: 0.75-0.91x; kernel memory stays flat",
     "fix": "keep bulk-transfer ports out of the policy; accelerate request/response traffic (docs/benchmarks.md)"},
    {"name": "unpaired-end", "kernels": ((4, 17), None), "status": "info",
     "detail": "a selected socket whose peer is not accelerated (peer outside the cgroup or the policy, or on "
               "another host) is inserted and waits for its peer; its first write misses, and once its data is "
               "acknowledged it leaves the sockhash (measured: redirected 0, missed 1, released 1, data intact)",
     "fix": "nothing to do for correctness; to accelerate such connections, load into a cgroup holding both ends "
            "and use policies that select both ends (e.g. `policy add --cidr NET --side any`)"},
    {"name": "mptcp", "kernels": ((5, 6), None), "status": "info",
     "detail": "MPTCP connections are never accelerated: the sockhash refuses their subflows, and the program "
               "then leaves them unpaired (measured: 0 inserted, 0 paired, 0 redirected, 4 MiB each way intact)",
     "fix": "nothing to do; use TCP for connections that should be accelerated"},
    {"name": "tcp-counters", "kernels": ((4, 14), None), "status": "info",
     "detail": "redirected bytes bypass TCP, so TCP_INFO byte counters (ss -ti, monitoring agents) do not count "
               "them (measured on 6.18: 100 001 B exchanged, tcpi_bytes_acked 1 and tcpi_bytes_received 0 "
               "accelerated, 100 002 / 100 001 on the kernel path)",
     "fix": "count accelerated traffic with `pybpfgen status` (redirected messages) or at the application"},
    {"name": "reset-socket-stays", "kernels": ((4, 17), None), "status": "info",
     "detail": "a socket reset by its peer stays in the sockhash until its owner closes it (no unhash hook; "
               "measured: 1 entry after RST, 0 after close)",
     "fix": "applications should close sockets after errors (they usually do)"},
]


def _check(name: str, status: str, detail: str, fix: str = "") -> dict:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def run_checks(pin_root: str = _pins.DEFAULT_PIN_ROOT, cgroup: str | None = None, object_path: str | None = None,
               *, sc=None) -> dict:
    from .lifecycle import CGROUP2_SUPER_MAGIC, find_cgroup2_mount
    sc = sc or _syscall.get_default()
    checks: list[dict] = []
    release = _features.kernel_release()
    ver = _features.kernel_version(release)
    kernel = {"release": release, "version": list(ver), "machine": os.uname().machine}

    # kernel version
    if ver < MIN_KERNEL:
        checks.append(_check("kernel", "fail", f"Linux {release}: cgroup bpf_links need Linux 5.7 or newer",
                             "upgrade the kernel"))
    else:
        checks.append(_check("kernel", "ok", f"Linux {release} ({kernel['machine']})"))

    # privileges
    caps = sc.effective_caps()
    missing = _features.missing_caps(caps)
    who = f"uid {os.geteuid()}"
    if missing:
        checks.append(_check("privileges", "fail", f"{who} lacks {' and '.join(missing)}",
                             "run pybpfgen as root (sudo) or grant CAP_BPF and CAP_NET_ADMIN"))
    else:
        capnote = "" if caps is None else f", CapEff {caps:#x}"
        checks.append(_check("privileges", "ok", f"{who}{capnote}: CAP_BPF and CAP_NET_ADMIN available"))

    # bpf(2) and features
    feats = {"bpf": False, "btf": False, "cgroup_link": False, "sk_msg_link": False, "enable_stats": False}
    if not missing:
        feats = _features.probe_all(sc)
    if not feats["bpf"]:
        checks.append(_check("bpf-syscall", "fail", "bpf(2) does not work for this process",
                             "run as root; check kernel.unprivileged_bpf_disabled, lockdown and seccomp"))
    else:
        checks.append(_check("bpf-syscall", "ok", "bpf(2) creates maps"))
        checks.append(_check("btf", "ok" if feats["btf"] else "fail",
                             "the kernel accepts BTF" if feats["btf"] else "the kernel refuses BTF (BTF_LOAD)",
                             "" if feats["btf"] else "enable CONFIG_DEBUG_INFO_BTF or use a newer kernel"))
        checks.append(_check("cgroup-link", "ok" if feats["cgroup_link"] else "fail",
                             "cgroup bpf_links (sock_ops)" if feats["cgroup_link"] else "no cgroup bpf_links",
                             "" if feats["cgroup_link"] else "Linux 5.7 or newer is needed"))
        if feats["sk_msg_link"]:
            checks.append(_check("sk_msg-link", "ok", "sk_msg bpf_links to a sockhash (Linux 6.10+): upgrades "
                                                      "replace the verdict program through the link"))
        else:
            checks.append(_check("sk_msg-link", "warn", "no sk_msg bpf_links (before Linux 6.10): load falls back "
                                                        "to PROG_ATTACH on the sockhash",
                                 "nothing to do; unload detaches it the same way"))
        checks.append(_check("run-time-stats", "ok" if feats["enable_stats"] else "warn",
                             "BPF_ENABLE_STATS works (status --stats)" if feats["enable_stats"]
                             else "BPF_ENABLE_STATS refused: `status --stats` will not work",
                             "" if feats["enable_stats"] else "run as root on Linux 5.8+"))
    vmlinux = os.path.exists("/sys/kernel/btf/vmlinux")
    checks.append(_check("vmlinux-btf", "ok" if vmlinux else "info",
                         "/sys/kernel/btf/vmlinux present" if vmlinux else "no /sys/kernel/btf/vmlinux (not needed "
                                                                           "by pybpfgen objects)"))
    jit = _read("/proc/sys/net/core/bpf_jit_enable")
    if jit is not None:
        checks.append(_check("jit", "ok" if jit != "0" else "warn",
                             f"net.core.bpf_jit_enable = {jit}",
                             "" if jit != "0" else "sysctl -w net.core.bpf_jit_enable=1 (interpreted BPF is slow)"))
    stats_sysctl = _read("/proc/sys/kernel/bpf_stats_enabled")
    if stats_sysctl == "1":
        checks.append(_check("stats-sysctl", "info", "kernel.bpf_stats_enabled = 1: every BPF program pays for "
                                                     "run-time accounting",
                             "sysctl -w kernel.bpf_stats_enabled=0 unless you need it (`status --stats` "
                             "enables it only while it measures)"))

    # bpffs
    pin_root = os.path.abspath(pin_root)
    if _pins.is_bpffs(_pins.BPFFS, sc):
        checks.append(_check("bpffs", "ok", f"bpffs mounted at {_pins.BPFFS}"))
    elif not missing:
        checks.append(_check("bpffs", "warn", f"bpffs is not mounted at {_pins.BPFFS}; load will mount it",
                             f"or mount it yourself: mount -t bpf bpf {_pins.BPFFS}"))
    else:
        checks.append(_check("bpffs", "fail", f"bpffs is not mounted at {_pins.BPFFS} and cannot be mounted "
                                              "without privileges", f"mount -t bpf bpf {_pins.BPFFS} as root"))
    anc = pin_root
    while not os.path.exists(anc) and os.path.dirname(anc) != anc:
        anc = os.path.dirname(anc)
    if not _pins.is_bpffs(anc, sc) and not (pin_root.startswith(_pins.BPFFS + "/") and not missing):
        checks.append(_check("pin-root", "fail", f"pin root {pin_root} is not on a BPF filesystem",
                             f"choose a --pin-root under {_pins.BPFFS}"))
    elif os.path.lexists(pin_root) and not os.path.isdir(pin_root):
        checks.append(_check("pin-root", "fail", f"pin root {pin_root} is owned by something else (a pinned "
                                                 "object, not a directory)", "choose another --pin-root"))
    else:
        checks.append(_check("pin-root", "ok", f"pin root {pin_root}"
                                               f"{'' if os.path.isdir(pin_root) else ' (created by load)'}"))

    # cgroup v2
    cg_root = find_cgroup2_mount()
    if cg_root is None:
        checks.append(_check("cgroup2", "fail", "no cgroup v2 mount in /proc/mounts",
                             "mount -t cgroup2 none /sys/fs/cgroup (or pass --cgroup to a cgroup2 directory)"))
    else:
        checks.append(_check("cgroup2", "ok", f"cgroup v2 mounted at {cg_root}"))
    if cgroup:
        cgroup = os.path.abspath(cgroup)
        magic = None
        try:
            magic = sc.statfs_type(cgroup)
        except OSError:
            pass
        if not os.path.isdir(cgroup):
            checks.append(_check("cgroup", "fail", f"{cgroup} does not exist", "create it or pass another --cgroup"))
        elif magic is not None and magic != CGROUP2_SUPER_MAGIC:
            checks.append(_check("cgroup", "fail", f"{cgroup} is not a cgroup v2 directory",
                                 f"pass a directory under {cg_root or 'a cgroup2 mount'}"))
        else:
            checks.append(_check("cgroup", "ok", f"{cgroup} is a cgroup v2 directory"))

    # the object
    obj_path = object_path or DEFAULT_CONFORMANCE_OBJECT
    if os.path.exists(obj_path):
        from .elf import parse_object
        try:
            o = parse_object(obj_path)
            checks.append(_check("object", "ok", f"{obj_path}: {len(o.programs)} programs "
                                                 f"({', '.join(p.name for p in o.programs)}), {len(o.maps)} maps"))
        except LoaderError as e:
            checks.append(_check("object", "fail", str(e), "rebuild it with `pybpfgen compile programs/ -o build/`"))
    elif object_path:
        checks.append(_check("object", "fail", f"{obj_path}: no such file",
                             "build it with `pybpfgen compile programs/ -o build/`"))
    else:
        checks.append(_check("object", "info", f"{obj_path} not built yet",
                             "build it with `pybpfgen compile programs/ -o build/`"))

    # what is loaded
    loaded = []
    if not missing and feats["bpf"]:
        from .manager import status
        try:
            st = status(pin_root, sc=sc)
        except LoaderError as e:
            st = {"objects": []}
            checks.append(_check("loaded", "warn", f"cannot read {pin_root}: {e}"))
        for o in st["objects"]:
            entry = {"name": o["name"], "state": o.get("state"), "cgroup": o.get("cgroup"),
                     "programs": [p["name"] for p in o["programs"]],
                     "links": [{"name": ln["name"], "type": ln["type"], "attached": ln["attached"]} for ln in o["links"]]}
            loaded.append(entry)
            detached = [ln["name"] for ln in o["links"] if not ln["attached"]]
            if o.get("state") == "interrupted":
                checks.append(_check(f"loaded:{o['name']}", "warn", f"{o['name']}: a load was interrupted",
                                     f"run `pybpfgen load` again to finish it or `pybpfgen unload {o['name']}`"))
            elif detached:
                checks.append(_check(f"loaded:{o['name']}", "warn",
                                     f"{o['name']}: links {', '.join(detached)} are detached (target removed)",
                                     f"`pybpfgen unload {o['name']}` and load it again"))
            else:
                acc = o.get("accelerator")
                extra = f", {acc['sockets']} sockets, ports {acc['policy_ports']}" if acc else ""
                checks.append(_check(f"loaded:{o['name']}", "ok",
                                     f"{o['name']}: {len(o['programs'])} programs, {len(o['links'])} links{extra}"))
        if not st["objects"]:
            checks.append(_check("loaded", "info", f"nothing loaded under {pin_root}"))

    # known hazards of the running kernel
    for hz in HAZARDS:
        first, last = hz["kernels"]
        if ver >= first and (last is None or ver <= last):
            checks.append(_check(f"hazard:{hz['name']}", hz.get("status", "warn"), hz["detail"], hz["fix"]))

    ok = not any(c["status"] == "fail" for c in checks)
    return {"kernel": kernel, "features": feats, "pin_root": pin_root, "checks": checks, "loaded": loaded, "ok": ok}


ICONS = {"ok": "ok  ", "info": "info", "warn": "WARN", "fail": "FAIL"}


def format_checks(report: dict) -> str:
    out = [f"pybpfgen doctor: Linux {report['kernel']['release']}"]
    for c in report["checks"]:
        out.append(f"  [{ICONS.get(c['status'], c['status'])}] {c['name']:<20} {c['detail']}")
        if c["fix"] and c["status"] in ("warn", "fail", "info"):
            out.append(f"         {'':<20} -> {c['fix']}")
    out.append("ready: `pybpfgen load` should work" if report["ok"] else
               "NOT READY: fix the FAIL lines above before `pybpfgen load`")
    return "\n".join(out)


# ------------------------------------------------------------------ conformance
def _import_conformance():
    try:
        from .conformance import run_conformance
    except ModuleNotFoundError as e:
        if e.name in ("kernel_loader.conformance", __package__ + ".conformance"):
            raise LoaderError("the conformance suite is not available (kernel_loader.conformance is not "
                              "installed in this build); update pybpfgen, or run `pybpfgen doctor` without "
                              "--conformance") from None
        raise
    except ImportError as e:
        raise LoaderError(f"the conformance suite cannot be imported ({e}); update pybpfgen") from None
    return run_conformance


def run_conformance_suite(object_path: str, cases: list[str] | None, progress, pin_parent: str = _pins.BPFFS,
                          sc=None) -> dict:
    from .lifecycle import check_privileges, unload
    sc = sc or _syscall.get_default()
    run = _import_conformance()
    if not os.path.exists(object_path):
        raise LoaderError(f"{object_path}: no such file; build it with `pybpfgen compile programs/ -o build/` "
                          "or pass --object PATH")
    check_privileges(sc)
    pin_root = os.path.join(pin_parent, f"pybpfgen-conformance-{uuid.uuid4().hex[:8]}")
    _pins.ensure_bpffs(pin_root, sc)
    try:
        results = run(os.path.abspath(object_path), cases, progress, pin_root)
    finally:
        try:
            unload(None, pin_root=pin_root, sc=sc)
        finally:
            if os.path.isdir(pin_root):
                for dirpath, _d, files in os.walk(pin_root, topdown=False):
                    for f in files:
                        os.unlink(os.path.join(dirpath, f))
                    os.rmdir(dirpath)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    return {"object": os.path.abspath(object_path), "cases": list(results), "counts": counts,
            "ok": not any(r.get("status") == "fail" for r in results)}


def format_conformance(rep: dict) -> str:
    rows = [(r.get("name", "?"), r.get("status", "?"), str(r.get("detail", "")).replace("\n", " ")) for r in rep["cases"]]
    w = max([len("case")] + [len(r[0]) for r in rows])
    out = [f"conformance of {rep['object']}", f"  {'case':<{w}}  {'status':<14} detail"]
    for name, status, detail in rows:
        out.append(f"  {name:<{w}}  {status:<14} {detail}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(rep["counts"].items())) or "no cases"
    out.append(("PASS" if rep["ok"] else "FAIL") + f": {summary}")
    return "\n".join(out)


def main(args) -> int:
    if args.cases and not args.conformance:
        raise LoaderError("--cases needs --conformance")
    if args.conformance:
        progress = lambda msg: print(f"pybpfgen: {msg}", file=sys.stderr, flush=True)   # noqa: E731
        rep = run_conformance_suite(args.object or DEFAULT_CONFORMANCE_OBJECT, args.cases, progress)
        print(json.dumps(rep, indent=2, sort_keys=True) if args.json else format_conformance(rep))
        return 0 if rep["ok"] else 1
    report = run_checks(args.pin_root, cgroup=args.cgroup, object_path=args.object)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_checks(report))
    return 0 if report["ok"] else 1

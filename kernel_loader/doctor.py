"""``pybpfgen doctor``: is this machine ready for ``pybpfgen load``?

Every check is ``{"name", "status", "detail", "fix"}`` with status ``ok``,
``info``, ``warn`` (works, but know this) or ``fail`` (``load`` will stop
here).  ``doctor`` exits 1 when any check fails.

Plugins (:mod:`kernel_loader.plugins`) add checks (e.g. the known hazards
of their program on this kernel) and modes of their own (e.g. a program's
conformance suite).
"""
from __future__ import annotations

import json
import os

from . import features as _features
from . import pins as _pins
from . import syscall as _syscall
from .errors import LoaderError

MIN_KERNEL = (5, 7)          # cgroup bpf_link
SK_MSG_LINK_KERNEL = (6, 10)

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
    feats = {"bpf": False, "btf": False, "cgroup_link": False, "sockmap": False, "sk_msg_link": False,
             "enable_stats": False}
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
        checks.append(_check("sockmap", "ok" if feats["sockmap"] else "fail",
                             "sockhash maps and sk_msg programs" if feats["sockmap"]
                             else "the kernel refuses sockhash maps or sk_msg programs",
                             "" if feats["sockmap"] else "a kernel with CONFIG_BPF_STREAM_PARSER (sockmap) is needed"))
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

    # the objects: OBJECT, else every *.bpf.o in build/ (what `pybpfgen load` loads by default)
    if object_path:
        paths = [object_path]
    else:
        build = "build"
        paths = sorted(os.path.join(build, f) for f in (os.listdir(build) if os.path.isdir(build) else [])
                       if f.endswith(".bpf.o"))
        if not paths:
            checks.append(_check("object", "info", f"no objects built yet in {build}/",
                                 "build them with `pybpfgen compile programs/ -o build/`"))
    for obj_path in paths:
        name = f"object:{os.path.basename(obj_path)}" if not object_path else "object"
        if not os.path.exists(obj_path):
            checks.append(_check(name, "fail", f"{obj_path}: no such file",
                                 "build it with `pybpfgen compile programs/ -o build/`"))
            continue
        from .elf import parse_object
        try:
            o = parse_object(obj_path)
            checks.append(_check(name, "ok", f"{obj_path}: {len(o.programs)} programs "
                                             f"({', '.join(p.name for p in o.programs)}), {len(o.maps)} maps"))
        except LoaderError as e:
            checks.append(_check(name, "fail", str(e), "rebuild it with `pybpfgen compile programs/ -o build/`"))

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
                checks.append(_check(f"loaded:{o['name']}", "ok",
                                     f"{o['name']}: {len(o['programs'])} programs, {len(o['links'])} links"))
        if not st["objects"]:
            checks.append(_check("loaded", "info", f"nothing loaded under {pin_root}"))

    # what plugins add (e.g. the known hazards of this kernel for their programs)
    report = {"kernel": kernel, "features": feats, "pin_root": pin_root, "checks": checks, "loaded": loaded}
    from . import plugins
    checks.extend(plugins.doctor_checks(report))
    report["ok"] = not any(c["status"] == "fail" for c in checks)
    return report


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


def main(args) -> int:
    from . import plugins
    rc = plugins.run_doctor(args)   # a plugin's own doctor mode (e.g. a conformance suite)
    if rc is not None:
        return rc
    report = run_checks(args.pin_root, cgroup=args.cgroup, object_path=args.object)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_checks(report))
    return 0 if report["ok"] else 1

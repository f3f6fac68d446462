"""Upgrade, rollback, preflight and legacy-attach paths through the fake syscall layer (no root)."""
import errno
import os
import signal

import pytest

from kernel_loader import features, lifecycle, manager, state
from kernel_loader.errors import LoaderError
from loader_fakes import FakeSyscall


@pytest.fixture
def env(tmp_path):
    bpffs, cg = tmp_path / "bpffs", tmp_path / "cgroup"
    bpffs.mkdir()
    cg.mkdir()
    sc = FakeSyscall(str(bpffs), str(cg))
    return sc, str(bpffs / "pybpfgen"), str(cg)


def pins(root):
    out = set()
    for d, _s, files in os.walk(root):
        out |= {os.path.relpath(os.path.join(d, f), root) for f in files}
    return out


def link_progs(sc):
    return sorted((ln["attach_type"], ln["prog_id"]) for ln in sc.live_links())


def test_missing_capabilities_is_one_clear_line(env, twin_object):
    sc, root, cg = env
    sc.caps = 1 << 12          # CAP_NET_ADMIN only
    with pytest.raises(LoaderError) as ei:
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    msg = str(ei.value)
    assert msg.startswith("not permitted: loading BPF programs needs CAP_BPF") and "sudo" in msg
    assert "\n" not in msg and sc.calls_of("map_create") == []


def test_e2big_and_eagain(env, twin_object):
    sc, root, cg = env
    sc.fail_next("prog_load", errno.EAGAIN, times=2)           # retried
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    manager.unload(pin_root=root, sc=sc)
    sc.fail_next("prog_load", errno.E2BIG, times=2)
    with pytest.raises(LoaderError, match=r"E2BIG \(\d+ instructions\): the program is too large"):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert not os.path.exists(os.path.join(root, "accel")) and sc.open_fds == []


def test_failed_upgrade_keeps_the_old_version_running(env, twin_object):
    sc, root, cg = env
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    before_links, before_pins = link_progs(sc), pins(root)
    before_journal = state.read(root, "accel")
    # the second LINK_UPDATE fails: the first one must be rolled back
    sc.fail_next("link_update", errno.EINVAL, when=lambda kw: len(sc.calls_of("link_update")) == 2)
    with pytest.raises(LoaderError, match="previous version keeps running"):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert link_progs(sc) == before_links and pins(root) == before_pins
    assert state.read(root, "accel") == before_journal
    # a verifier failure during the upgrade changes nothing either
    sc.fail_next("prog_load", errno.EACCES, log="0: (b7) r0 = 1\nR1 invalid mem access 'scalar'\n", times=2)
    with pytest.raises(LoaderError):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert link_progs(sc) == before_links and pins(root) == before_pins
    assert sc.open_fds == []


def test_upgrade_to_another_cgroup_moves_the_link(env, twin_object, tmp_path):
    sc, root, cg = env
    (o1,) = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    cg2 = os.path.join(cg, "child")
    os.mkdir(cg2)
    (o2,) = manager.load(twin_object, cgroup=cg2, pin_root=root, sc=sc)
    assert o2.programs["accel_sockops"].link_id != o1.programs["accel_sockops"].link_id
    assert o2.programs["accel_redirect"].link_id == o1.programs["accel_redirect"].link_id   # map link updated
    so = [ln for ln in sc.live_links() if ln["attach_type"] == 3]
    assert len(so) == 1 and so[0]["target_id"] == os.stat(cg2).st_ino
    assert not any(p.endswith(lifecycle.STAGE) for p in pins(root))
    assert state.read(root, "accel")["cgroup"] == cg2
    # without --cgroup the next upgrade stays in cg2
    (o3,) = manager.load(twin_object, pin_root=root, sc=sc)
    assert o3.cgroup == cg2


def test_legacy_sk_msg_attach_and_detach(env, twin_object):
    sc, root, cg = env
    sc.sk_msg_links = False
    (o,) = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert o.programs["accel_redirect"].attach_mode == "legacy"
    assert [kw["attach_type"] for kw in sc.calls_of("prog_attach")] == [7]
    assert "links/accel_redirect" not in pins(os.path.join(root, "accel"))
    st = manager.status(pin_root=root, sc=sc)["objects"][0]
    assert {ln["name"]: ln["type"] for ln in st["links"]} == {"accel_sockops": "cgroup", "accel_redirect": "legacy"}
    (o2,) = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)       # PROG_ATTACH replaces
    assert list(sc.attached.values()) == [[o2.programs["accel_redirect"].id]]
    assert manager.unload(pin_root=root, sc=sc) == ["accel"]
    assert list(sc.attached.values()) == [[]] and sc.live_links() == []


# ----------------------------------------------------------------- the crash hook (PYBPFGEN_LOADER_CRASH_AFTER)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Killed(BaseException):
    """What the crash hook's SIGKILL becomes in these tests."""


def _spy_crash_points(monkeypatch) -> list[str]:
    """Record every crash point the real lifecycle code passes, in order; the real hook still runs."""
    seen: list[str] = []
    real = lifecycle.crash_point

    def spy(phase):
        seen.append(phase)
        real(phase)
    monkeypatch.setattr(lifecycle, "crash_point", spy)
    return seen


def _documented(names: list[str]) -> list[str]:
    """Phase names as the docs write them: ``attach:<program>`` for every per-program attach, repeats folded."""
    out: list[str] = []
    for n in names:
        n = "attach:<program>" if n.startswith("attach:") else n
        if not out or out[-1] != n:
            out.append(n)
    return out


def _lifecycle_docstring_phases() -> list[str]:
    doc = lifecycle.__doc__
    block = doc[doc.index("Phases"):doc.index("Why any prefix")]
    names = [ln.split()[0] for ln in block.splitlines() if ln.startswith("    ") and not ln.startswith("     ")]
    return ["attach:<program>" if n == "attach:<p>" else n for n in names]     # the docstring says <p>


def _cli_md_phases() -> list[str]:
    import re
    with open(os.path.join(REPO, "docs", "cli.md")) as f:
        row = next(ln for ln in f if ln.startswith(f"| `{lifecycle.CRASH_ENV}=<phase>`"))
    return re.findall(r"`([a-z:<>]+)`", row.split("right after `<phase>`:")[1])


SCENARIOS = {   # name -> (sk_msg links available, loads): each scenario's last load is the one observed
    "fresh load": (True, 1), "upgrade in place (LINK_UPDATE)": (True, 2),
    "legacy sk_msg attach (PROG_ATTACH)": (False, 1), "legacy upgrade": (False, 2),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_crash_hook_fires_for_every_phase_in_order(scenario, env, twin_object, monkeypatch):
    """Drive the real load with the fake syscall layer: the crash points it passes are lifecycle.PHASES, in
    order, with one ``attach:<program>`` per attached program (sk_msg first) before ``attach``; and they are
    the list that lifecycle's docstring and docs/cli.md document."""
    sc, root, cg = env
    sc.sk_msg_links, loads = SCENARIOS[scenario]
    for _ in range(loads - 1):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    seen = _spy_crash_points(monkeypatch)
    (o,) = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    progs = sorted(o.programs.values(), key=lambda p: p.type != "sk_msg")   # sk_msg first
    assert [p.type for p in progs] == ["sk_msg", "sock_ops"]
    modes = {p.name: p.attach_mode for p in progs}
    assert modes == {"fresh load": {"accel_redirect": "link", "accel_sockops": "link"},
                     "upgrade in place (LINK_UPDATE)": {"accel_redirect": "link-update",
                                                        "accel_sockops": "link-update"},
                     "legacy sk_msg attach (PROG_ATTACH)": {"accel_redirect": "legacy", "accel_sockops": "link"},
                     "legacy upgrade": {"accel_redirect": "legacy", "accel_sockops": "link-update"}}[scenario]
    i = lifecycle.PHASES.index("attach")
    assert seen == [*lifecycle.PHASES[:i], *(f"attach:{p.name}" for p in progs), *lifecycle.PHASES[i:]]
    assert _documented(seen) == _lifecycle_docstring_phases() == _cli_md_phases()


def test_crash_hook_kills_right_after_the_named_phase_only(env, twin_object, monkeypatch, tmp_path):
    """With PYBPFGEN_LOADER_CRASH_AFTER=<phase> the real hook SIGKILLs the loader right after that phase and
    at no other; a name that is no phase never fires."""
    sc, root, cg = env
    every = _spy_crash_points(monkeypatch)
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)      # the phases this load passes
    every = list(every)
    kills: list[tuple[int, int]] = []

    def kill(pid, sig):
        kills.append((pid, sig))
        raise _Killed(pid, sig)
    monkeypatch.setattr(os, "kill", kill)
    for phase in [*every, "no-such-phase", "attach:no_such_program"]:
        d = tmp_path / phase.replace(":", "_")
        (d / "bpffs").mkdir(parents=True)
        (d / "cg").mkdir()
        sc = FakeSyscall(str(d / "bpffs"), str(d / "cg"))
        seen = _spy_crash_points(monkeypatch)
        monkeypatch.setenv(lifecycle.CRASH_ENV, phase)
        kills.clear()
        if phase in every:
            with pytest.raises(_Killed):
                manager.load(twin_object, cgroup=str(d / "cg"), pin_root=str(d / "bpffs" / "pybpfgen"), sc=sc)
            assert kills == [(os.getpid(), signal.SIGKILL)], phase
            assert seen == every[:every.index(phase) + 1], phase
        else:
            manager.load(twin_object, cgroup=str(d / "cg"), pin_root=str(d / "bpffs" / "pybpfgen"), sc=sc)
            assert kills == [] and seen == every, phase


def test_unload_of_journal_only_object(env, twin_object):
    sc, root, cg = env
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    held = sc.obj_get(os.path.join(root, "accel", "links", "accel_sockops"))   # someone holds the link
    import shutil
    shutil.rmtree(os.path.join(root, "accel"))                                  # pins removed by hand
    for p in list(sc.pins):
        if "/accel/" in p:
            del sc.pins[p]
    assert manager.unload(pin_root=root, sc=sc) == ["accel"]                    # journal + link scan
    assert sc.fds[held]["detached"] and state.read(root, "accel") is None
    assert manager.unload(pin_root=root, sc=sc) == []


def test_feature_probes_are_cached_per_run(env, monkeypatch):
    sc, _root, _cg = env
    features.has(sc, "sk_msg_link")
    n = len(sc.calls_of("link_create"))
    features.has(sc, "sk_msg_link")
    assert len(sc.calls_of("link_create")) == n
    monkeypatch.setenv("PYBPFGEN_LOADER_DISABLE", "sk_msg_link")
    sc2 = FakeSyscall(sc.bpffs_root)
    assert features.has(sc2, "sk_msg_link") is False

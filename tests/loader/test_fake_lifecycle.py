"""Upgrade, rollback, preflight and legacy-attach paths through the fake syscall layer (no root)."""
import errno
import os

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


def test_crash_hook_names_every_phase():
    assert lifecycle.PHASES[0] == "parse" and lifecycle.PHASES[-1] == "commit"
    assert set(lifecycle.PHASES) >= {"btf", "maps", "progs", "journal", "pin", "attach"}


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

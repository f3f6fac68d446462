"""Manager / program-load error paths through a fake syscall layer (no root)."""
import errno
import os
import struct

import pytest

import pybpfgen_accel as accel
from kernel_loader import features, manager, pins
from kernel_loader.elf import parse_object
from kernel_loader.errors import BtfLoadError, LoaderError
from kernel_loader.program import LOG_START, link_program, load_program
from kernel_loader.verifier import VerifierError
from loader_fakes import FakeSyscall


@pytest.fixture
def env(tmp_path):
    bpffs = tmp_path / "bpffs"
    cg = tmp_path / "cgroup"
    bpffs.mkdir()
    cg.mkdir()
    sc = FakeSyscall(str(bpffs), str(cg))
    features.has(sc, "sk_msg_link")       # probe now, so that `calls` holds only the load's own calls
    sc.calls.clear()
    return sc, str(bpffs / "pybpfgen"), str(cg)


def no_sleep(_s):
    pass


def test_load_pins_everything(env, twin_object):
    sc, root, cg = env
    objs = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    (o,) = objs
    assert o.name == "accel" and o.pin_dir == os.path.join(root, "accel")
    for sub, names in (("maps", {"sock_hash", "accel_ports"}), ("progs", {"accel_sockops", "accel_redirect"}),
                       ("links", {"accel_sockops", "accel_redirect"})):
        assert set(os.listdir(os.path.join(o.pin_dir, sub))) == names
    # sockhash without BTF ids; the hash with them
    mc = {kw["name"]: kw for kw in sc.calls_of("map_create")}
    assert "btf_key_type_id" not in mc["sock_hash"]
    assert mc["accel_ports"]["btf_key_type_id"] and mc["accel_ports"]["btf_fd"]
    # sk_msg attached before sock_ops, with the right attach types
    assert [kw["attach_type"] for kw in sc.calls_of("link_create")] == [7, 3]
    # first load attempt without a verifier log
    assert all(kw["log_level"] == 0 for kw in sc.calls_of("prog_load"))
    assert sc.calls_of("prog_load")[0]["func_info_cnt"] == 1
    assert sc.open_fds == []                          # everything closed; pins hold the objects
    # loading again upgrades in place: same maps and links, new programs through LINK_UPDATE
    (o2,) = manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert o2.upgraded and sorted(o2.reused_maps) == ["accel_ports", "sock_hash"]
    assert {n: p.link_id for n, p in o2.programs.items()} == {n: p.link_id for n, p in o.programs.items()}
    assert len(sc.calls_of("link_update")) == 2 and len(sc.calls_of("link_create")) == 2
    assert {n: p.id for n, p in o2.programs.items()} != {n: p.id for n, p in o.programs.items()}
    assert sc.open_fds == []
    st = manager.status(pin_root=root, sc=sc)
    (so,) = st["objects"]
    assert {p["name"]: p["type"] for p in so["programs"]} == {"accel_sockops": "sock_ops",
                                                              "accel_redirect": "sk_msg"}
    assert {ln["name"]: ln["target"]["kind"] for ln in so["links"]} == {"accel_sockops": "cgroup",
                                                                        "accel_redirect": "map"}
    assert manager.unload("accel", pin_root=root, sc=sc) == ["accel"]
    assert len(sc.calls_of("link_detach")) == 2
    assert not os.path.exists(root)
    assert manager.unload("accel", pin_root=root, sc=sc) == []        # idempotent
    assert manager.unload(pin_root=root, sc=sc) == []


def test_rollback_on_failure(env, twin_object):
    sc, root, cg = env
    sc.fail_next("link_create", errno.EINVAL, when=lambda kw: kw["attach_type"] == 3)
    with pytest.raises(LoaderError, match="sock_ops"):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert not os.path.exists(root)
    assert sc.open_fds == []
    assert len(sc.calls_of("link_detach")) == 1       # the sk_msg link made before the failure


def test_rollback_when_second_program_fails(env, twin_object):
    sc, root, cg = env
    sc.fail_next("prog_load", errno.EACCES, when=lambda kw: kw["name"] == "accel_sockops", times=2,
                 log="0: (b7) r0 = 0\nR1 !read_ok\n")
    with pytest.raises(VerifierError, match="accel_sockops"):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert sc.open_fds == [] and not os.path.exists(root)


def test_eperm_is_a_user_error(env, twin_object):
    sc, root, cg = env
    sc.fail_next("map_create", errno.EPERM, times=4)
    with pytest.raises(LoaderError, match="root"):
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    assert sc.open_fds == []


def test_prog_load_eperm_without_log(twin_object):
    obj = parse_object(twin_object)
    lp = link_program(obj, obj.program("accel_redirect"), {"sock_hash": 3, "accel_ports": 4})
    sc = FakeSyscall("/nonexistent")
    sc.fail_next("prog_load", errno.EPERM, times=2)
    with pytest.raises(LoaderError, match="permission denied") as ei:
        load_program(sc, obj, lp, 5, sleep=no_sleep)
    assert not isinstance(ei.value, VerifierError)


def test_log_grows_on_enospc(twin_object):
    obj = parse_object(twin_object)
    lp = link_program(obj, obj.program("accel_redirect"), {"sock_hash": 3, "accel_ports": 4})
    sc = FakeSyscall("/nonexistent")
    sc.fail_next("prog_load", errno.EACCES)                                         # level 0
    sc.fail_next("prog_load", errno.ENOSPC, log_true_size=300_000)                  # 64 KiB too small
    sc.fail_next("prog_load", errno.ENOSPC, log_true_size=0)                        # no hint: double
    fd = load_program(sc, obj, lp, 5, sleep=no_sleep)
    sizes = [(kw["log_level"], kw["log_size"]) for kw in sc.calls_of("prog_load")]
    assert sizes == [(0, 0), (1, LOG_START), (1, 300_000), (1, 600_000)]
    assert fd in sc.fds


def test_eagain_is_retried(twin_object):
    obj = parse_object(twin_object)
    lp = link_program(obj, obj.program("accel_redirect"), {"sock_hash": 3, "accel_ports": 4})
    sc = FakeSyscall("/nonexistent")
    sc.fail_next("prog_load", errno.EAGAIN, times=3)
    load_program(sc, obj, lp, 5, sleep=no_sleep)
    assert len(sc.calls_of("prog_load")) == 4
    sc2 = FakeSyscall("/nonexistent")
    sc2.fail_next("prog_load", errno.EAGAIN, times=20)
    with pytest.raises(VerifierError, match="EAGAIN"):
        load_program(sc2, obj, lp, 5, sleep=no_sleep)


def test_e2big_surfaces(twin_object):
    obj = parse_object(twin_object)
    lp = link_program(obj, obj.program("accel_redirect"), {"sock_hash": 3, "accel_ports": 4})
    sc = FakeSyscall("/nonexistent")
    sc.fail_next("prog_load", errno.E2BIG, times=2, log="")
    with pytest.raises(LoaderError, match=r"program accel_redirect: the kernel says E2BIG \(19 instructions\)"):
        load_program(sc, obj, lp, 5, sleep=no_sleep)
    # E2BIG with a verifier log ("BPF program is too large") is a verifier rejection
    sc.fail_next("prog_load", errno.E2BIG, times=2, log="BPF program is too large. Processed 1000001 insn\n")
    with pytest.raises(VerifierError) as ei:
        load_program(sc, obj, lp, 5, sleep=no_sleep)
    assert ei.value.errno_name == "E2BIG" and "too large" in str(ei.value)


def test_map_create_retries_without_btf(env, twin_object):
    sc, root, cg = env
    sc.fail_next("map_create", errno.EINVAL, when=lambda kw: "btf_fd" in kw)
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    ports = [kw for kw in sc.calls_of("map_create") if kw["name"] == "accel_ports"]
    assert len(ports) == 2 and "btf_fd" in ports[0] and "btf_fd" not in ports[1]


def test_btf_rejected_is_an_error_with_the_kernel_log(env, twin_object):
    sc, root, cg = env
    log = "magic: 0xeb9f\n[7] STRUCT sock_key size=16 vlen=4\n\tsip4 type_id=3 bits_offset=0 Invalid member\n"
    sc.fail_next("btf_load", errno.EINVAL)                              # first try, no log
    sc.fail_next("btf_load", errno.ENOSPC, log_true_size=200000)        # log buffer too small: grow it
    sc.fail_next("btf_load", errno.EINVAL, log=log)
    with pytest.raises(BtfLoadError) as ei:
        manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    msg = str(ei.value)
    assert "rejected the object's BTF (EINVAL): sip4 type_id=3 bits_offset=0 Invalid member" in msg
    assert "-v" in msg and len(msg.splitlines()) == 1
    assert ei.value.log == log
    sizes = [kw["size"] for kw in sc.calls_of("btf_load")]
    assert len(sizes) == 3
    assert sc.open_fds == [] and not os.path.exists(os.path.join(root, "accel"))


def test_bad_inputs(env, twin_object, tmp_path):
    sc, root, cg = env
    with pytest.raises(LoaderError, match="no such file"):
        manager.load(str(tmp_path / "nope.bpf.o"), cgroup=cg, pin_root=root, sc=sc)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoaderError, match=r"no \*\.bpf\.o"):
        manager.load(str(empty), cgroup=cg, pin_root=root, sc=sc)
    with pytest.raises(LoaderError, match="does not exist"):
        manager.load(twin_object, cgroup=str(tmp_path / "nocg"), pin_root=root, sc=sc)
    with pytest.raises(LoaderError, match="not a cgroup v2"):
        manager.load(twin_object, cgroup=str(empty), pin_root=root, sc=sc)
    with pytest.raises(LoaderError, match="not on a BPF filesystem"):
        manager.load(twin_object, cgroup=cg, pin_root=str(tmp_path / "elsewhere"), sc=sc)


def test_load_directory(env, twin_object, tmp_path):
    sc, root, cg = env
    d = tmp_path / "build"
    d.mkdir()
    (d / "accel.bpf.o").write_bytes(open(twin_object, "rb").read())
    (d / "other.bpf.o").write_bytes(open(twin_object, "rb").read())
    objs = manager.load(str(d), cgroup=cg, pin_root=root, sc=sc)
    assert [o.name for o in objs] == ["accel", "other"]
    assert sorted(manager.unload(pin_root=root, sc=sc)) == ["accel", "other"]


def test_policy(env, twin_object):
    sc, root, cg = env
    manager.load(twin_object, cgroup=cg, pin_root=root, sc=sc)
    accel.policy_add(8080, pin_root=root, sc=sc)
    accel.policy_add(443, pin_root=root, sc=sc)
    assert accel.policy_list(pin_root=root, sc=sc) == [443, 8080]
    assert accel.policy_remove(443, pin_root=root, sc=sc) is True
    assert accel.policy_remove(443, pin_root=root, sc=sc) is False
    with pytest.raises(LoaderError, match="1 to 65535"):
        accel.policy_add(70000, pin_root=root, sc=sc)
    with pytest.raises(LoaderError, match="1 to 65535"):
        accel.policy_add(0, pin_root=root, sc=sc)
    with pytest.raises(LoaderError, match="not loaded"):
        accel.policy_list(object="nope", pin_root=root, sc=sc)
    with manager.open_pinned("accel", pin_root=root, sc=sc) as o:
        m = o.map("accel_ports")
        assert list(m.keys()) == [struct.pack("<I", 8080)]
        assert m.lookup(struct.pack("<I", 8080)) == struct.pack("<I", 1)
        with pytest.raises(LoaderError, match="no map"):
            o.map("nope")


def test_bpffs_mounted_when_missing(tmp_path):
    sc = FakeSyscall("/sys/fs/bpf", mounted=False)
    pins.ensure_bpffs("/sys/fs/bpf/pybpfgen-x", sc)
    assert sc.mounts == ["/sys/fs/bpf"]
    sc2 = FakeSyscall("/sys/fs/bpf", mounted=True)
    pins.ensure_bpffs("/sys/fs/bpf/pybpfgen-x", sc2)
    assert sc2.mounts == []


def test_pin_names():
    with pytest.raises(LoaderError):
        pins.check_component("a.b")
    assert pins.pin_path("/r", "accel", "maps", "sock_hash") == "/r/accel/maps/sock_hash"

"""`pybpfgen map show|dump|get|set|delete` and kernel_loader.mapapi through the fake syscall layer (no root):
BTF encoding / decoding, and every error path as one line with exit code 1 (or 2 for a malformed argument)."""
import errno
import json
import struct

import pytest

import pybpfgen_accel as accel
import kernel_loader as kl
from kernel_loader import features, manager, mapapi, syscall
from kernel_loader.errors import LoaderError
from kernel_loader.maps import possible_cpus
from loader_fakes import FakeSyscall
from pybpfgen import cli as pcli


@pytest.fixture
def loaded(tmp_path, accel_object):
    bpffs = tmp_path / "bpffs"
    cg = tmp_path / "cgroup"
    bpffs.mkdir()
    cg.mkdir()
    sc = FakeSyscall(str(bpffs), str(cg))
    sc.report_btf = True
    features.has(sc, "sk_msg_link")
    root = str(bpffs / "pybpfgen")
    manager.load(accel_object, cgroup=str(cg), pin_root=root, sc=sc)
    return sc, root


@pytest.fixture
def cli(loaded, capsys):
    sc, root = loaded
    old = syscall.get_default()
    syscall.set_default(sc)

    def run(*argv):
        try:
            rc = pcli.main(["map", *argv, "--pin-root", root])
        except SystemExit as e:      # argparse: a bad command line
            rc = e.code
        return rc, capsys.readouterr()
    yield run
    syscall.set_default(old)


def test_show_types_from_btf(loaded):
    sc, root = loaded
    st = kl.map_show(pin_root=root, sc=sc)
    (o,) = st["objects"]
    maps = {m["name"]: m for m in o["maps"]}
    assert set(maps) == {"links", "pending", "policy_cidrs", "policy_ports", "policy_tuples", "settings", "sk_state",
                         "socks", "stats"}
    c = maps["policy_cidrs"]
    assert (c["type"], c["key_type"], c["key"], c["max_entries"], c["entries"], c["btf"]) == \
        ("lpm_trie", "struct Prefix", '{"prefixlen": u32, "addr": [u32 x 4]}', 1024, 0, "kernel")
    assert maps["stats"]["percpu"] and maps["stats"]["value_type"] == "struct AccelStats"
    # the sockhash is created without BTF: its types come from the BTF its object's programs were loaded with
    assert (maps["socks"]["key_type"], maps["socks"]["btf"]) == ("__u64", "object")
    one = kl.map_show("accel", "settings", pin_root=root, sc=sc)["objects"][0]["maps"]
    assert [m["name"] for m in one] == ["settings"] and one[0]["value"].startswith('{"max_unanswered_msgs": u32')
    assert sc.open_fds == []


def test_set_get_dump_delete(loaded):
    sc, root = loaded
    kw = dict(pin_root=root, sc=sc)
    kl.map_set("accel", "policy_ports", 8080, 1, **kw)
    assert kl.map_get("accel", "policy_ports", 8080, **kw) == 1
    assert kl.map_get("accel", "policy_ports", 8081, **kw) is None
    prefix = {"prefixlen": 104, "addr": [0, 0, 0xFFFF0000, 10]}
    kl.map_set("accel", "policy_cidrs", prefix, 3, **kw)
    with kl.open_map("accel", "policy_cidrs", **kw) as m:       # the same bytes `policy add --cidr` writes
        (k,) = list(m.keys())
        assert k == struct.pack("<5I", 104, 0, 0, 0xFFFF0000, 10)
    assert kl.map_dump("accel", "policy_cidrs", **kw) == [{"key": prefix, "value": 3}]
    kl.map_set("accel", "settings", 0, {"max_unanswered_kib": 64}, **kw)
    assert accel.policy_settings(**kw)["max_unanswered_kib"] == 64
    n = possible_cpus()
    kl.map_set("accel", "stats", 0, [{"redirected": i} for i in range(n)], **kw)   # one value per CPU
    per_cpu = kl.map_get("accel", "stats", 0, **kw)
    assert [v["redirected"] for v in per_cpu] == list(range(n)) and per_cpu[0]["missed"] == 0
    kl.map_set("accel", "stats", 0, {"missed": 7}, **kw)                            # the same on every CPU
    assert [v["missed"] for v in kl.map_get("accel", "stats", 0, **kw)] == [7] * n
    assert kl.map_delete("accel", "policy_ports", 8080, **kw) is True
    assert kl.map_delete("accel", "policy_ports", 8080, **kw) is False
    assert kl.map_dump("accel", "policy_ports", **kw) == []
    assert sc.open_fds == []


@pytest.mark.parametrize("call, msg", [
    (lambda kw: kl.map_get("nosuch", "x", 1, **kw), r"object .nosuch. is not loaded under .* \(loaded: accel\)"),
    (lambda kw: kl.map_dump("accel", "nosuch", **kw),
     r"object accel has no map 'nosuch' \(it has: links, pending, policy_cidrs, policy_ports, policy_tuples, "
     r"settings, sk_state, socks, stats\)"),
    (lambda kw: kl.map_get("accel", "policy_ports", "x", **kw),
     r'accel/policy_ports: key "x" does not fit u32: expected an integer'),
    (lambda kw: kl.map_set("accel", "policy_ports", 1 << 40, 1, **kw),
     r"key 1099511627776 does not fit u32: 1099511627776 does not fit in unsigned int \(0..4294967295\)"),
    (lambda kw: kl.map_set("accel", "policy_cidrs", 5, 1, **kw),
     r'key 5 does not fit struct Prefix \{"prefixlen": u32, "addr": \[u32 x 4\]\}: expected an object'),
    (lambda kw: kl.map_set("accel", "policy_cidrs", {"prefixlen": 1, "addr": [1, "a"]}, 1, **kw),
     r"addr\[1\]: expected an integer"),
    (lambda kw: kl.map_set("accel", "policy_cidrs", {"plen": 1}, 1, **kw),
     r"struct Prefix has no member 'plen' \(members: prefixlen, addr\)"),
    (lambda kw: kl.map_set("accel", "settings", 0, {"max_unanswered_msgs": -1}, **kw),
     r"value \{\"max_unanswered_msgs\": -1\} does not fit struct Settings"),
    (lambda kw: kl.map_set("accel", "socks", {}, 1, **kw), "is a sockhash: its values are sockets"),
    (lambda kw: kl.map_delete("accel", "settings", 0, **kw), "entries cannot be deleted"),
])
def test_errors_are_one_line(loaded, call, msg):
    sc, root = loaded
    with pytest.raises(LoaderError, match=msg) as ei:
        call(dict(pin_root=root, sc=sc))
    assert "\n" not in str(ei.value)
    assert sc.open_fds == []


@pytest.mark.parametrize("err, map_, key, msg", [
    (errno.E2BIG, "settings", 3, r"index 3 is out of range \(an array of 1: 0..0\)"),
    (errno.E2BIG, "policy_ports", 1, r"the map is full \(max_entries 1024, E2BIG\)"),
    (errno.EEXIST, "policy_ports", 1, "key 1 exists"),
    (errno.EPERM, "policy_ports", 1, "permission denied"),
])
def test_kernel_refusals(loaded, err, map_, key, msg):
    sc, root = loaded
    sc.fail_next("map_update", err)
    with pytest.raises(LoaderError, match=msg):
        kl.map_set("accel", map_, key, {} if map_ == "settings" else 1, pin_root=root, sc=sc)


def test_cli(cli):
    rc, out = cli("set", "accel", "policy_ports", "8080", "1")
    assert rc == 0 and out.out == "accel/policy_ports[8080] = 1\n"
    assert cli("get", "accel", "policy_ports", "8080")[1].out == "1\n"
    assert json.loads(cli("get", "accel", "policy_ports", "8080", "--json")[1].out)["value"] == 1
    rc, out = cli("set", "accel", "policy_cidrs", '{"prefixlen": 104, "addr": [0, 0, 4294901760, 10]}', "3")
    assert rc == 0
    assert cli("dump", "accel", "policy_cidrs")[1].out == '{"prefixlen": 104, "addr": [0, 0, 4294901760, 10]}: 3\n'
    assert json.loads(cli("dump", "accel", "policy_ports", "--json")[1].out) == [{"key": 8080, "value": 1}]
    rc, out = cli("show")
    assert rc == 0 and "policy_cidrs" in out.out and "key struct Prefix" in out.out
    rc, out = cli("show", "accel", "stats", "--json")
    assert json.loads(out.out)["objects"][0]["maps"][0]["value_type"] == "struct AccelStats"
    rc, out = cli("show", "accel", "stats")
    assert 'value: {"redirected": u64' in out.out
    assert cli("delete", "accel", "policy_ports", "8080")[1].out == "deleted accel/policy_ports[8080]\n"
    rc, out = cli("delete", "accel", "policy_ports", "8080")
    assert rc == 0 and "was not in accel/policy_ports" in out.out
    assert cli("dump", "accel", "policy_ports")[1].out == "accel/policy_ports: no entries\n"
    assert cli("set", "accel", "settings", "0", "{\"max_unanswered_msgs\": 0x10}")[0] == 2     # not JSON


@pytest.mark.parametrize("argv, rc, msg", [
    (("get", "accel", "policy_ports", "8080"), 1, "pybpfgen: error: accel/policy_ports has no entry for key 8080"),
    (("get", "nope", "m", "1"), 1, "pybpfgen: error: object 'nope' is not loaded"),
    (("dump", "accel", "nope"), 1, "pybpfgen: error: object accel has no map 'nope' (it has: links, pending,"),
    (("set", "accel", "policy_ports", "[1]", "1"), 1, 'key [1] does not fit u32: expected an integer'),
    (("get", "accel", "policy_ports", "{bad"), 2, "argument KEY: invalid KEY '{bad': expected JSON"),
    (("set", "accel", "policy_ports", "1"), 2, "the following arguments are required: VALUE"),
    (("delete", "accel", "stats", "0"), 1, "accel/stats is an percpu_array"),
    (("dump", "accel"), 2, "required: MAP"),
])
def test_cli_errors(cli, argv, rc, msg):
    got, out = cli(*argv)
    assert got == rc and msg in out.err, out.err
    lines = out.err.strip().splitlines()
    assert "Traceback" not in out.err and msg in lines[-1] and (rc == 2 or len(lines) == 1)   # rc 2: usage first


def test_hex_and_bare_word_arguments():
    from kernel_loader.cli import _json_arg
    assert _json_arg("0x1f", "KEY") == 31 and _json_arg("MODE_KERNEL", "VALUE") == "MODE_KERNEL"
    assert _json_arg('{"a": [1, 2]}', "KEY") == {"a": [1, 2]}


def test_no_btf_falls_back_to_integers(tmp_path, accel_object):
    """Without BTF from the kernel (report_btf off) keys and values are integers of the map's sizes."""
    bpffs = tmp_path / "bpffs"
    (tmp_path / "cg").mkdir()
    bpffs.mkdir()
    sc = FakeSyscall(str(bpffs), str(tmp_path / "cg"))
    root = str(bpffs / "pybpfgen")
    manager.load(accel_object, cgroup=str(tmp_path / "cg"), pin_root=root, sc=sc)
    kl.map_set("accel", "policy_ports", 22, 1, pin_root=root, sc=sc)
    assert kl.map_dump("accel", "policy_ports", pin_root=root, sc=sc) == [{"key": 22, "value": 1}]
    with pytest.raises(LoaderError, match=r"key \{\} does not fit a 20-byte|does not fit 20 bytes"):
        kl.map_get("accel", "policy_cidrs", {}, pin_root=root, sc=sc)
    m = mapapi.map_show("accel", "policy_ports", pin_root=root, sc=sc)["objects"][0]["maps"][0]
    assert (m["key_type"], m["btf"]) == ("4 bytes", None)

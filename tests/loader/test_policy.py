"""Policy parsing, key encoding and the policy API / CLI through the fake syscall layer (no root).

policyspec gives typed keys; the accelerator's BTF lays them out. The bytes checked here are those of
programs/accel.py: Prefix {u32 prefixlen; u32 addr[4]} (IPv4 v4-mapped, prefixlen + 96), Tuple {u32
local_ip[4]; u32 remote_ip[4]; u32 local_port; u32 remote_port} (the client's view), Settings {u32
max_unanswered_msgs; u32 max_unanswered_kib}.
"""
import argparse
import json
import struct

import pytest

import pybpfgen_accel as accel
from kernel_loader import cli, features, manager, syscall
from pybpfgen_accel import cli as accel_cli, policyspec as ps, spec as accelspec
from kernel_loader.btf import STRUCT, Btf
from kernel_loader.elf import parse_object
from kernel_loader.errors import LoaderError
from loader_fakes import FakeSyscall

MAPPED = bytes(10) + b"\xff\xff"


@pytest.fixture(scope="module")
def accel_btf(accel_object):
    return Btf.parse(parse_object(accel_object).btf_raw)


def encode(btf, struct_name, value) -> bytes:
    return btf.encode(btf.find(struct_name, STRUCT).id, value)


def decode(btf, struct_name, raw: bytes):
    return btf.decode(btf.find(struct_name, STRUCT).id, raw)


# ------------------------------------------------------------------ CIDRs
@pytest.mark.parametrize("text, key", [
    ("10.0.0.0/8", struct.pack("<I", 104) + MAPPED + bytes([10, 0, 0, 0])),
    ("198.18.0.1", struct.pack("<I", 128) + MAPPED + bytes([198, 18, 0, 1])),
    ("0.0.0.0/0", struct.pack("<I", 96) + MAPPED + bytes(4)),
    ("::ffff:10.0.0.0/104", struct.pack("<I", 104) + MAPPED + bytes([10, 0, 0, 0])),
    ("2001:db8::/32", struct.pack("<I", 32) + bytes.fromhex("20010db8") + bytes(12)),
    ("::1", struct.pack("<I", 128) + bytes(15) + b"\x01"),
    ("::/0", bytes(20)),
])
def test_cidr_key_bytes(text, key, accel_btf):
    c = ps.parse_cidr(text)
    assert encode(accel_btf, "Prefix", c.key) == key and len(key) == 20
    assert ps.decode_prefix(decode(accel_btf, "Prefix", key)) == c.network


@pytest.mark.parametrize("text, msg", [
    ("10.0.0.1/8", "host bits are set (did you mean 10.0.0.0/8?)"),
    ("10.0.0.0/33", "longer than 32"),
    ("2001:db8::/129", "longer than 128"),
    ("10.0.0.0/x", "prefix length must be a number"),
    ("::ffff:10.0.0.0/80", "v4-mapped prefix needs a length from 96 to 128"),
    ("example.com/8", "expected an IPv4 address"),
    ("fe80::1%eth0/64", "zone ids"),
    ("", "expected NET/LEN"),
])
def test_cidr_errors(text, msg):
    with pytest.raises(LoaderError, match="invalid CIDR") as ei:
        ps.parse_cidr(text)
    assert msg in str(ei.value) and "\n" not in str(ei.value)


def test_side_values():
    assert (ps.parse_side("local"), ps.parse_side("remote"), ps.parse_side("any")) == (1, 2, 3)
    assert (ps.side_name(1), ps.side_name(2), ps.side_name(3)) == ("local", "remote", "any")
    with pytest.raises(LoaderError, match="expected local, remote or any"):
        ps.parse_side("both")


# ------------------------------------------------------------------ tuples
def test_tuple_key_bytes_v4(accel_btf):
    t = ps.parse_tuple("198.18.0.2:40000-198.18.0.1:8080")
    key = (MAPPED + bytes([198, 18, 0, 2]) + MAPPED + bytes([198, 18, 0, 1]) + struct.pack("<II", 40000, 8080))
    assert encode(accel_btf, "Tuple", t.key) == key and len(key) == 40
    assert ps.decode_tuple(decode(accel_btf, "Tuple", key)) == t and str(t) == "198.18.0.2:40000-198.18.0.1:8080"


def test_tuple_key_bytes_v6_and_mapped(accel_btf):
    t = ps.parse_tuple("[::1]:40000-[2001:2::1]:80")
    key = bytes(15) + b"\x01" + bytes.fromhex("20010002") + bytes(11) + b"\x01" + struct.pack("<II", 40000, 80)
    assert encode(accel_btf, "Tuple", t.key) == key and str(t) == "[::1]:40000-[2001:2::1]:80"
    assert ps.decode_tuple(decode(accel_btf, "Tuple", key)) == t
    # a v4-mapped address is the IPv4 address, as the program sees it
    assert ps.parse_tuple("[::ffff:127.0.0.1]:5-127.0.0.1:6") == ps.parse_tuple("127.0.0.1:5-127.0.0.1:6")


@pytest.mark.parametrize("text, msg", [
    ("127.0.0.1:5", "expected CLIENT_IP:PORT-SERVER_IP:PORT"),
    ("127.0.0.1:5-127.0.0.1:6-7", "expected CLIENT_IP:PORT-SERVER_IP:PORT"),
    ("127.0.0.1-127.0.0.1:6", "should be IP:PORT"),
    ("::1:5-::1:6", "put IPv6 addresses in brackets"),
    ("[::1]5-[::1]:6", "should be [IPV6]:PORT"),
    ("[::1]:5-127.0.0.1:6", "the client is IPv6 and the server IPv4"),
    ("127.0.0.1:0-127.0.0.1:6", "1 to 65535"),
    ("127.0.0.1:5-127.0.0.1:65536", "1 to 65535"),
    ("127.0.0.1:5-127.0.0.1:http", "1 to 65535"),
    ("localhost:5-127.0.0.1:6", "expected an IPv4 address"),
])
def test_tuple_errors(text, msg):
    with pytest.raises(LoaderError) as ei:
        ps.parse_tuple(text)
    assert msg in str(ei.value) and "\n" not in str(ei.value)


# ------------------------------------------------------------------ settings
def test_settings_encoding(accel_btf):
    assert encode(accel_btf, "Settings", {"max_unanswered_msgs": 0, "max_unanswered_kib": 64}) == \
        struct.pack("<II", 0, 64)
    d = ps.decode_settings(decode(accel_btf, "Settings", struct.pack("<II", 0, 64)))
    assert d == {"max_unanswered_msgs": 0, "max_unanswered_kib": 64, "effective_max_unanswered_msgs": 256,
                 "effective_max_unanswered_kib": 64}
    for bad in (-1, 1 << 32, "x"):
        with pytest.raises(LoaderError, match="0 \\(default\\) to 4294967295"):
            ps.check_u32(bad, "--max-unanswered-msgs")


def test_defaults_are_the_programs():
    """accelspec.DEFAULTS repeats programs/accel.py's compile-time constants (in neither BTF nor .rodata)."""
    import ast
    import pathlib
    src = pathlib.Path(__file__).resolve().parents[2] / "programs" / "accel.py"
    consts = {n.targets[0].id: n.value.value for n in ast.parse(src.read_text()).body
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
              and isinstance(n.value, ast.Constant)}
    assert accelspec.DEFAULTS == {"max_unanswered_msgs": consts["DEFAULT_MAX_UNANSWERED_MSGS"],
                                  "max_unanswered_kib": consts["DEFAULT_MAX_UNANSWERED_KIB"]}


# ------------------------------------------------------------------ CLI parsing
def parser():
    p = argparse.ArgumentParser(prog="pybpfgen")
    sub = p.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return p


def test_cli_parses_every_kind():
    p = parser()
    a = p.parse_args(["policy", "add", "--port", "8080"])
    assert (a.port, a.cidr, a.conn, a.side) == (8080, None, None, None)
    a = p.parse_args(["policy", "add", "--cidr", "10.0.0.0/8", "--side", "local"])
    assert str(a.cidr) == "10.0.0.0/8" and a.side == "local" and a.port is None
    a = p.parse_args(["policy", "remove", "--tuple", "[::1]:1-[::1]:2"])
    assert str(a.conn) == "[::1]:1-[::1]:2"
    a = p.parse_args(["policy", "list", "--json"])
    assert a.json and a.func is accel_cli.cmd_policy
    a = p.parse_args(["policy", "set", "--max-unanswered-msgs", "0", "--max-unanswered-kib", "64"])
    assert (a.max_unanswered_msgs, a.max_unanswered_kib) == (0, 64)


@pytest.mark.parametrize("argv, msg", [
    (["policy", "add"], "one of the arguments --port --cidr --tuple is required"),
    (["policy", "add", "--port", "1", "--cidr", "10.0.0.0/8"], "not allowed with argument"),
    (["policy", "add", "--cidr", "10.0.0.1/8"], "host bits are set"),
    (["policy", "add", "--cidr", "10.0.0.0/8", "--side", "both"], "expected local, remote or any"),
    (["policy", "add", "--tuple", "::1:5-::1:6"], "put IPv6 addresses in brackets"),
    (["policy", "set", "--max-unanswered-kib", "-1"], "0 (default) to 4294967295"),
])
def test_cli_errors(argv, msg, capsys):
    with pytest.raises(SystemExit) as ei:
        parser().parse_args(argv)
    assert ei.value.code == 2
    assert msg in capsys.readouterr().err


# ------------------------------------------------------------------ API through the fake syscall layer
@pytest.fixture
def loaded(tmp_path, accel_object):
    bpffs = tmp_path / "bpffs"
    cg = tmp_path / "cgroup"
    bpffs.mkdir()
    cg.mkdir()
    sc = FakeSyscall(str(bpffs), str(cg))
    sc.report_btf = True      # the maps' BTF, as the kernel reports it: policy keys are encoded with it
    features.has(sc, "sk_msg_link")
    root = str(bpffs / "pybpfgen")
    manager.load(accel_object, cgroup=str(cg), pin_root=root, sc=sc)
    return sc, root


def _raw(sc, root, name):
    with manager.open_pinned("accel", pin_root=root, sc=sc) as o:
        m = o.map(name)
        return {bytes(k): m.lookup(bytes(k)) for k in m.keys()}


def test_api_cidrs(loaded):
    sc, root = loaded
    kw = dict(pin_root=root, sc=sc)
    assert accel.policy_add_cidr("198.18.0.0/15", "local", **kw) == "local"
    assert accel.policy_add_cidr("198.18.0.0/15", "remote", **kw) == "any"      # union of sides
    assert accel.policy_add_cidr("2001:2::/48", **kw) == "any"
    key = struct.pack("<I", 111) + MAPPED + bytes([198, 18, 0, 0])
    assert _raw(sc, root, "policy_cidrs")[key] == struct.pack("<I", 3)
    assert accel.policy_list_cidrs(**kw) == [
        {"cidr": "198.18.0.0/15", "side": "any", "flags": 3}, {"cidr": "2001:2::/48", "side": "any", "flags": 3}]
    assert accel.policy_remove_cidr("198.18.0.0/15", "local", **kw) is True     # leaves remote
    assert _raw(sc, root, "policy_cidrs")[key] == struct.pack("<I", 2)
    assert accel.policy_remove_cidr("198.18.0.0/15", "local", **kw) is False
    assert accel.policy_remove_cidr("198.18.0.0/16", **kw) is False             # not an exact entry
    assert accel.policy_remove_cidr("198.18.0.0/15", **kw) is True
    assert [e["cidr"] for e in accel.policy_list_cidrs(**kw)] == ["2001:2::/48"]
    with pytest.raises(LoaderError, match="host bits"):
        accel.policy_add_cidr("198.18.0.1/15", **kw)


def test_api_tuples_settings_show(loaded):
    sc, root = loaded
    kw = dict(pin_root=root, sc=sc)
    assert accel.policy_add_tuple("127.0.0.1:40000-127.0.0.1:8080", **kw) == "127.0.0.1:40000-127.0.0.1:8080"
    accel.policy_add_tuple(ps.parse_tuple("[::1]:40000-[::1]:8080"), **kw)
    raw = _raw(sc, root, "policy_tuples")
    key = MAPPED + bytes([127, 0, 0, 1]) + MAPPED + bytes([127, 0, 0, 1]) + struct.pack("<II", 40000, 8080)
    assert raw[key] == struct.pack("<I", 1) and len(raw) == 2
    assert accel.policy_list_tuples(**kw) == ["127.0.0.1:40000-127.0.0.1:8080", "[::1]:40000-[::1]:8080"]
    assert accel.policy_remove_tuple("[::1]:40000-[::1]:8080", **kw) is True
    assert accel.policy_remove_tuple("[::1]:40000-[::1]:8080", **kw) is False
    st = accel.policy_set(max_unanswered_kib=64, **kw)
    assert (st["max_unanswered_msgs"], st["max_unanswered_kib"], st["effective_max_unanswered_msgs"]) == (0, 64, 256)
    st = accel.policy_set(max_unanswered_msgs=10, **kw)                     # keeps the KiB
    assert (st["max_unanswered_msgs"], st["max_unanswered_kib"]) == (10, 64)
    assert _raw(sc, root, "settings")[struct.pack("<I", 0)] == struct.pack("<II", 10, 64)
    with pytest.raises(LoaderError, match="nothing to set"):
        accel.policy_set(**kw)
    accel.policy_add(6379, **kw)
    show = accel.policy_show(**kw)
    assert show["ports"] == [6379] and show["cidrs"] == [] and show["tuples"] == ["127.0.0.1:40000-127.0.0.1:8080"]
    assert show["settings"]["max_unanswered_msgs"] == 10


def test_twin_has_ports_only(tmp_path, twin_object):
    bpffs = tmp_path / "bpffs"
    cg = tmp_path / "cgroup"
    bpffs.mkdir()
    cg.mkdir()
    sc = FakeSyscall(str(bpffs), str(cg))
    sc.report_btf = True
    root = str(bpffs / "pybpfgen")
    manager.load(twin_object, cgroup=str(cg), pin_root=root, sc=sc)
    show = accel.policy_show(pin_root=root, sc=sc)
    assert show["cidrs"] is None and show["tuples"] is None and show["ports"] == []
    with pytest.raises(LoaderError, match="has no CIDR policy map"):
        accel.policy_add_cidr("10.0.0.0/8", pin_root=root, sc=sc)


def test_cli_commands(loaded, capsys):
    sc, root = loaded
    old = syscall.get_default()
    syscall.set_default(sc)
    try:
        def run(*argv):
            a = parser().parse_args(["policy", *argv, "--pin-root", root])
            rc = a.func(a)
            return rc, capsys.readouterr()
        rc, out = run("list")
        assert rc == 0 and "no policy: nothing is accelerated" in out.out
        assert run("add", "--port", "8080")[1].out.startswith("accelerating port 8080")
        assert "local address is in 10.0.0.0/8" in run("add", "--cidr", "10.0.0.0/8", "--side", "local")[1].out
        assert "accelerating connection [::1]:1-[::1]:2" in run("add", "--tuple", "[::1]:1-[::1]:2")[1].out
        rc, out = run("add", "--port", "1", "--side", "local")
        assert rc == 2 and "--side only goes with --cidr" in out.err
        rc, out = run("set")
        assert rc == 2 and "nothing to set" in out.err
        assert "16 KiB" in run("set", "--max-unanswered-kib", "16")[1].out
        assert run("list")[1].out.split("\n")[:3] == ["8080", "10.0.0.0/8 local", "[::1]:1-[::1]:2"]
        pol = json.loads(run("list", "--json")[1].out)
        assert pol["ports"] == [8080] and pol["cidrs"][0]["side"] == "local" and pol["tuples"] == ["[::1]:1-[::1]:2"]
        assert pol["settings"]["max_unanswered_kib"] == 16
        assert "removed" in run("remove", "--cidr", "10.0.0.0/8")[1].out
        assert "was not in the policy" in run("remove", "--tuple", "[::1]:9-[::1]:2")[1].out
    finally:
        syscall.set_default(old)


def test_doctor_lists_accelerator_limits(tmp_path):
    from kernel_loader import doctor
    sc = FakeSyscall(str(tmp_path / "bpffs"))
    (tmp_path / "bpffs").mkdir()
    rep = doctor.run_checks(str(tmp_path / "bpffs" / "pybpfgen"), object_path=str(tmp_path / "none.bpf.o"), sc=sc)
    by = {c["name"]: c for c in rep["checks"]}
    if rep["kernel"]["version"] < [5, 6]:
        pytest.skip("the limits are listed for Linux >= 5.6")
    assert by["hazard:bulk-streams-slower"]["status"] == "warn" and "0.75-0.91x" in by["hazard:bulk-streams-slower"]["detail"]
    assert by["hazard:mptcp"]["status"] == "info" and "never accelerated" in by["hazard:mptcp"]["detail"]
    assert by["hazard:unpaired-end"]["fix"] and by["hazard:reset-socket-stays"]["status"] == "info"
    assert by["hazard:msg-waitall"]["status"] == "warn" and "tcp_bpf_recvmsg" in by["hazard:msg-waitall"]["detail"]
    assert by["hazard:msg-oob"]["status"] == "warn" and "SIOCATMARK" in by["hazard:msg-oob"]["detail"]

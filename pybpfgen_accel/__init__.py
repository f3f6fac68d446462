"""The sockmap accelerator's control plane, an application of the pybpfgen toolchain: its program is
``programs/accel.py`` (compiled with ``pybpfgen compile``, loaded with ``pybpfgen load``); this package knows its
maps and structs (:mod:`.spec`), parses policies (:mod:`.policyspec`), adds the ``policy`` command, a status line,
its hazards, its conformance suite (:mod:`.conformance`) and its agent tables and metrics (:mod:`.agent`) to
``pybpfgen`` through the plugin
(:mod:`.plugin`, entry point ``pybpfgen.plugins: accel``).

Python API (a thin layer over the loader's generic, BTF-typed map API)::

    import pybpfgen_accel as accel
    accel.policy_add(6379, pin_root="/sys/fs/bpf/pybpfgen")
"""
from .policyspec import Cidr, ConnTuple, check_port  # noqa: F401
from .spec import (policy_add, policy_add_cidr, policy_add_tuple, policy_list, policy_list_cidrs,  # noqa: F401
                   policy_list_tuples, policy_remove, policy_remove_cidr, policy_remove_tuple, policy_set,
                   policy_settings, policy_show)

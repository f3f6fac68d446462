"""pybpfgen: a compiler from a restricted Python DSL to eBPF objects.

Write programs with :mod:`pybpfgen.lang`, compile them with ``pybpfgen compile``,
load them with :mod:`kernel_loader` (``pybpfgen load``).
"""
__version__ = "0.1.0"

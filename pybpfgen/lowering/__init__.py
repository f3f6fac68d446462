"""Lowering: typed IR → ``llvmlite.ir`` (with debug info) → BPF ELF object."""

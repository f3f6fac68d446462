"""Defaults shared by the loader and its CLI (kept import-free so the CLI can register cheaply)."""
DEFAULT_PIN_ROOT = "/sys/fs/bpf/pybpfgen"

"""The load journal: what ``load`` created, kept outside bpffs so that
``unload`` can find our attachments even when pins were removed by hand (and
legacy PROG_ATTACH attachments, which no pin holds).

One JSON file per object: ``$PYBPFGEN_STATE_DIR`` (default ``/run/pybpfgen``)
``/<pin root with '/' as '%'>/<object>.json``, written atomically (temp file
+ rename) before anything is attached and rewritten at commit.  /run is a
tmpfs, so like bpffs it starts empty after a reboot.
"""
from __future__ import annotations

import json
import os

DEFAULT_STATE_DIR = "/run/pybpfgen"
FORMAT = 1


def state_dir() -> str:
    return os.environ.get("PYBPFGEN_STATE_DIR") or DEFAULT_STATE_DIR


def journal_dir(pin_root: str) -> str:
    key = os.path.abspath(pin_root).strip("/").replace("/", "%") or "%"
    return os.path.join(state_dir(), key)


def journal_path(pin_root: str, name: str) -> str:
    return os.path.join(journal_dir(pin_root), name + ".json")


def read(pin_root: str, name: str) -> dict | None:
    try:
        with open(journal_path(pin_root, name)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write(pin_root: str, name: str, data: dict) -> None:
    d = journal_dir(pin_root)
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = journal_path(pin_root, name)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, **data}, f, sort_keys=True)
    os.replace(tmp, path)


def remove(pin_root: str, name: str) -> None:
    d = journal_dir(pin_root)
    for path in (journal_path(pin_root, name),):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        for e in os.listdir(d):          # temp files of killed writers
            if e.startswith(name + ".json.tmp"):
                os.unlink(os.path.join(d, e))
        os.rmdir(d)                      # only when empty
    except OSError:
        pass


def names(pin_root: str) -> list[str]:
    try:
        return sorted(e[:-5] for e in os.listdir(journal_dir(pin_root)) if e.endswith(".json"))
    except OSError:
        return []

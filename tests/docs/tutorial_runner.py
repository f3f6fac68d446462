"""Extract and run the marked blocks of docs/tutorial.md.

Markup (the first word of a fence's info string is the language, as GitHub renders it; the braces carry what
the test does with the block):

    ```python {file=NAME}      write the block to NAME in the work directory
    ```diff {patch=NAME}       apply a one-hunk diff (lines "-old", "+new", " context") to NAME
    ```sh {test}               run with bash -euo pipefail in the work directory (no root needed)
    ```sh {test kernel}        the same, as root, in the private kernel environment (see PrivateKernelEnv)
    ```sh {test exit=N}        the block must exit with N (default 0)
    ```text {output}           lines the preceding test block must print (stdout + stderr), in order; "..." in
                               a line matches anything, a line that is only "..." matches any lines
    ```sh {no-test: REASON}    shown only, with the reason why it is not run

Every sh, python and diff block must carry one of these, so nothing in the tutorial escapes the test.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TUTORIAL = REPO / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w*)[ \t]*(?:\{([^}]*)\})?[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
CHECKED_LANGS = {"sh", "bash", "shell", "console", "python", "py", "diff"}


@dataclass
class Block:
    lang: str
    attrs: dict[str, str]
    body: str
    line: int  # 1-based line of the opening fence
    expected: "Block | None" = None

    @property
    def kernel(self) -> bool:
        return "kernel" in self.attrs

    def where(self) -> str:
        return f"docs/tutorial.md:{self.line}"


def parse_attrs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    if text.strip().startswith("no-test"):
        return {"no-test": text.split(":", 1)[1].strip() if ":" in text else ""}
    out = {}
    for tok in shlex.split(text):
        k, _, v = tok.partition("=")
        out[k] = v
    return out


def parse(md: str | None = None) -> list[Block]:
    md = TUTORIAL.read_text() if md is None else md
    blocks: list[Block] = []
    for m in FENCE.finditer(md):
        line = md.count("\n", 0, m.start()) + 1
        blocks.append(Block(m.group(1), parse_attrs(m.group(2)), m.group(3), line))
    # attach each output block to the test block before it
    last_test = None
    for b in blocks:
        if "test" in b.attrs:
            last_test = b
        elif "output" in b.attrs:
            if last_test is None or last_test.expected is not None:
                raise ValueError(f"{b.where()}: an output block must follow a test block")
            last_test.expected = b
    return blocks


def unmarked(blocks: list[Block]) -> list[Block]:
    keys = {"file", "patch", "test", "output", "no-test"}
    return [b for b in blocks if b.lang in CHECKED_LANGS and not keys & set(b.attrs)]


def apply_patch(path: Path, diff: str) -> None:
    old, new = [], []
    for ln in diff.splitlines():
        tag, rest = (ln[:1], ln[1:]) if ln else (" ", "")
        if tag in (" ", "-"):
            old.append(rest)
        if tag in (" ", "+"):
            new.append(rest)
    text = path.read_text()
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    if text.count(before) != 1:
        raise AssertionError(f"patch does not apply to {path.name}: {before!r} found {text.count(before)} times")
    path.write_text(text.replace(before, after))


def line_regex(expected_line: str) -> re.Pattern:
    """``...`` matches anything; a run of two or more spaces matches any run of spaces (column padding depends
    on the width of the ids that ``...`` stands for)."""
    def part(text: str) -> str:
        return " +".join(re.escape(x) for x in re.split(r" {2,}", text))
    parts = [part(p) for p in expected_line.rstrip().split("...")]
    return re.compile("^" + ".*".join(parts) + r"\s*$")


def check_output(expected: str, actual: str) -> str | None:
    """None if every expected line matches a line of `actual`, in order; else what did not match."""
    lines = actual.splitlines()
    i = 0
    for exp in expected.splitlines():
        if exp.strip() in ("", "..."):
            continue
        rx = line_regex(exp)
        while i < len(lines) and not rx.match(lines[i]):
            i += 1
        if i == len(lines):
            return exp
        i += 1
    return None


@dataclass
class Runner:
    """Runs blocks in `workdir`. `substitute` maps tutorial paths to private ones (commands and expected output);
    `wrap` turns a bash argv into the argv that runs it in the kernel environment."""

    workdir: Path
    env: dict[str, str]
    substitute: dict[str, str] = field(default_factory=dict)
    wrap: "callable | None" = None
    log: list[str] = field(default_factory=list)

    def subst(self, text: str) -> str:
        for a, b in self.substitute.items():
            text = text.replace(a, b)
        return text

    def run_block(self, b: Block, timeout: float = 300) -> subprocess.CompletedProcess:
        script = self.subst(b.body)
        argv = ["bash", "-euo", "pipefail", "-c", script]
        if b.kernel:
            assert self.wrap is not None, f"{b.where()}: kernel block without a kernel environment"
            argv = self.wrap(argv)
        t0 = time.monotonic()
        r = subprocess.run(argv, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout)
        self.log.append(f"--- {b.where()} ({time.monotonic() - t0:.1f}s, rc {r.returncode})\n$ {script}\n{r.stdout}")
        want = int(b.attrs.get("exit") or 0)
        assert r.returncode == want, (f"{b.where()}: exit status {r.returncode}, expected {want}\n$ {script}\n"
                                      f"{r.stdout}")
        if b.expected is not None:
            miss = check_output(self.subst(b.expected.body), r.stdout)
            assert miss is None, (f"{b.where()}: output does not match {b.expected.where()}: no line matches "
                                  f"{miss!r}\n$ {script}\n{r.stdout}")
        return r

    def run(self, blocks: list[Block], kernel: bool, after=None) -> None:
        """Run file/patch/test steps in order; kernel blocks only when `kernel`. `after(block, result)` is called
        after each test block (for extra assertions)."""
        for b in blocks:
            if "file" in b.attrs:
                (self.workdir / b.attrs["file"]).write_text(b.body)
            elif "patch" in b.attrs:
                apply_patch(self.workdir / b.attrs["patch"], b.body)
            elif "test" in b.attrs:
                if b.kernel and not kernel:
                    continue
                r = self.run_block(b)
                if after is not None:
                    after(b, r)


class PrivateKernelEnv:
    """A process holding a private mount namespace (with its own bpffs instance on /sys/fs/bpf, so the
    tutorial's default pin root /sys/fs/bpf/pybpfgen is private and vanishes with it) and a private network
    namespace (loopback up; nothing can reach the host's network). Blocks run in it through nsenter.
    Cgroups are shared with the host: the test substitutes a private child cgroup."""

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--net", "sh", "-c",
             "mount -t bpf bpf /sys/fs/bpf && ip link set lo up && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.close()
            raise RuntimeError(f"cannot create the private namespaces: {line!r} {err}")

    def wrap(self, argv: list[str], cwd: Path | None = None) -> list[str]:
        pre = ["nsenter", "-t", str(self.proc.pid), "--mount", "--net"]
        if cwd is not None:
            pre.append(f"--wd={cwd}")
        return pre + argv

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def base_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    env["PYBPFGEN_STATE_DIR"] = str(workdir / ".state")  # the load journal, private too
    return env

"""README.md: the two commands come first, its example policy compiles, and every link points at a file."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_two_commands_first():
    first = re.search(r"```sh\n(.*?)```", README.read_text(), re.S).group(1).splitlines()
    assert [ln.split("#")[0].strip() for ln in first] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


def test_example_policy_compiles(tmp_path):
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "pybpfgen.lang" in b]
    assert len(block.strip().splitlines()) <= 12
    (tmp_path / "policy.py").write_text(block)
    r = subprocess.run([sys.executable, "-m", "pybpfgen", "compile", "--check", str(tmp_path / "policy.py")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_links_resolve():
    for md in [README, *sorted((REPO / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            assert (md.parent / target).exists(), f"{md.relative_to(REPO)} links to missing {target}"
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", README.read_text()))
    for doc in (REPO / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in linked, f"README does not link docs/{doc.name}"

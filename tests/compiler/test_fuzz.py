"""A bounded run of the frontend fuzzer: mutated sources only compile or fail with located errors."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "fuzz"))

import fuzz_frontend  # noqa: E402


def test_bounded_frontend_fuzz(tmp_path, capsys):
    rc = fuzz_frontend.main(["--seconds", "60", "--max-cases", "400", "--seed", "20261126", "--json",
                             "--crash-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert '"cases": 400' in out

"""Every ```python block of the repository's README.md runs as written.

Each block runs alone in a fresh interpreter (this one, ``sys.executable``), in an empty working
directory and without the ``ORCHARD_*`` variables of the caller's shell, so a block passes only
if it is self-contained. A failure shows the block's line in README.md and its stderr. The test
lives here because the blocks use all three packages; it skips where README.md is not beside the
packages (tests run from an installed copy).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent / ".." / ".." / ".." / "README.md").resolve()
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TIMEOUT_S = 600


def _blocks() -> list[tuple[int, str]]:
    """(line in README.md of the block's first code line, code) for every ```python block."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def _params() -> list:
    if not README.is_file():
        reason = f"README.md not found at {README} (tests run outside the repository)"
        return [pytest.param(0, "", marks=pytest.mark.skip(reason=reason), id="no-readme")]
    return [pytest.param(line, code, id=f"line-{line}") for line, code in _blocks()]


def test_readme_has_python_blocks():
    if not README.is_file():
        pytest.skip(f"README.md not found at {README} (tests run outside the repository)")
    assert _blocks(), f"no ```python block found in {README}"


@pytest.mark.parametrize(("line", "code"), _params())
def test_readme_block_runs(line, code, tmp_path):
    script = tmp_path / f"readme_line_{line}.py"
    script.write_text(code, encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCHARD_")}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"README.md's python block at line {line} failed (exit code {result.returncode}):\n"
            f"{result.stderr}",
            pytrace=False,
        )

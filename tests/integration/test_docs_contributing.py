"""CONTRIBUTING.md as written: the paths of its layout table exist, and the commands of its bash
block run (make targets the Makefile has, each pytest command collects tests and passes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # its pytest commands start a real Triton

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "CONTRIBUTING.md").read_text()


def test_the_layout_table_names_paths_that_exist():
    paths = re.findall(r"^\| `([^`<]+)/", DOC, flags=re.M)
    assert len(paths) >= 6, paths
    for path in paths:
        assert (ROOT / path).is_dir(), path


def test_the_commands_run():
    (block,) = re.findall(r"```bash\n(.*?)```", DOC, flags=re.S)
    commands = [line.split() for line in block.strip().splitlines()]
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    ran = 0
    for words in commands:
        if words[0] == "make":
            assert words[1] in targets, words  # make lint runs in `make test` itself
            continue
        assert words[:4] == [".venv/bin/python", "-m", "pytest", words[3]], words
        done = subprocess.run([sys.executable, *words[1:], "-p", "no:cacheprovider"], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, (words, done.stdout[-2000:], done.stderr[-2000:])
        assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]
        ran += 1
    assert ran == 2

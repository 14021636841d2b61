"""Every fenced code block of README.md and of the pages under docs/ runs as written, or says why not.

A block is one test named after its file and the line of its opening fence (``README.md:93``), so
``pytest tests/test_doc_blocks.py -k README`` runs the README's blocks alone. By the fence's language:

- ``python``: written to a file in a fresh temporary folder and run there with this interpreter, the
  repository first on ``PYTHONPATH``.
- ``bash``, ``sh``: run through ``bash -e -o pipefail``; ``console``: its ``$ `` lines, the rest being output.
  They run in a temporary folder holding links to the repository's top-level entries, so relative paths
  (``benchmarks/...``, ``examples/...``) work as from the repository root while what the commands write stays
  out of the repository; this interpreter's folder comes first on ``PATH`` (``python``, ``read-env``).
- ``text`` and the languages of file contents (``bibtex``, ``yaml``, ...): not run.

A block that cannot run on a CPU-only machine in reasonable time carries ``<!-- not-run: REASON -->`` on the
line right before its fence; it is reported as a skip with its reason (``pytest -rs`` lists them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUN = {"python", "bash", "sh", "console"}
NOT_RUN = {"text", "bibtex", "yaml", "toml", "json", "markdown", "md", "csv"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it opens, its language, its code and the reason it is not run (if any)."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order; ``ValueError`` for an unclosed fence or a misplaced marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        opening = FENCE.match(lines[i])
        if marker and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            raise ValueError(f"{path.relative_to(REPO)}:{i + 1}: a not-run marker must stand on the line right before a fence")
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        if end is None:
            raise ValueError(f"{path.relative_to(REPO)}:{i + 1}: the fence is never closed")
        code = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1 : end]) + "\n"
        previous = MARKER.match(lines[i - 1]) if i > 0 else None
        language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
        blocks.append(Block(path, i + 1, language, code, previous["reason"].strip() if previous else None))
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
RUNNABLE = [block for block in BLOCKS if block.language in RUN]


def test_every_block_names_a_known_language():
    """An unlabelled fence would silently escape this test: output is ``text``, commands ``bash``."""
    unknown = [f"{b.name} ({b.language or 'no language'})" for b in BLOCKS if b.language not in RUN | NOT_RUN]
    assert not unknown, f"fenced blocks without a known language (run: {sorted(RUN)}, not run: {sorted(NOT_RUN)}): {unknown}"


def test_not_run_markers_give_a_reason_and_mark_runnable_blocks():
    problems = [f"{b.name}: {'empty reason' if not b.not_run else 'marks a ' + b.language + ' block, which is never run'}"
                for b in BLOCKS if b.not_run is not None and (not b.not_run or b.language not in RUN)]
    assert not problems, problems


def console_commands(code: str) -> str:
    """The commands of a console block: its ``$ `` lines without the prompt."""
    return "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"


def workspace(tmp_path: Path) -> Path:
    """A folder that looks like the repository root (links to its top-level entries) but is written to apart."""
    root = tmp_path / "repo"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in {".git", ".venv", "runs", "site"}:
            (root / entry.name).symlink_to(entry)
    return root


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_block_runs_as_written(block: Block, tmp_path: Path):
    if block.not_run:
        pytest.skip(f"{block.name} not run: {block.not_run}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    if block.language == "python":
        cwd = tmp_path
        script = tmp_path / "block.py"
        script.write_text(block.code)
        command = [sys.executable, str(script)]
    else:
        cwd = workspace(tmp_path)
        code = console_commands(block.code) if block.language == "console" else block.code
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    output = (result.stdout + result.stderr)[-4000:]
    failure = f"{block.name} ({block.language}) exited with {result.returncode}"
    assert result.returncode == 0, f"{failure}:\n{block.code}\n--- end of its output ---\n{output}"

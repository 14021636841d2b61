"""Every fenced code block of README.md and of the pages under docs/ runs: as written, in a short form, or says why not.

A block is one test named after its file and the line of its opening fence (``README.md:93``), so
``pytest tests/test_doc_blocks.py -k README`` runs the README's blocks alone. By the fence's language:

- ``python``: written to a file and run with this interpreter, the repository first on ``PYTHONPATH``.
- ``bash``, ``sh``: run through ``bash -e -o pipefail``; ``console``: its ``$ `` lines, the rest being output.
- ``text`` and the languages of file contents (``bibtex``, ``yaml``, ...): not run.

The blocks of one page run in page order in the page's own temporary folder, which holds links to the
repository's top-level entries (not ``.git``, ``.venv``, ``runs``, ``site``): relative paths (``benchmarks/...``,
``docs/results/...``) work as from the repository root, and a block can read what an earlier block of its page
wrote (a block selected alone with ``-k`` runs the earlier blocks of its page first). What a block writes must
stay out of the repository: ``runs/``, ``data/`` or ``world.json`` land in the temporary folder, but writing
into ``docs/...`` or ``read_env/...`` goes through the links, and a block that changes what ``git status``
reports fails. The blocks see this interpreter's folder first on ``PATH`` (``python``, ``read-env``),
``READ_ENV_MINI_CACHE`` set to a temporary folder (ReAD-Mini's students are built there, the user's cache is
neither read nor written), and, for short forms, ``TINY_STUDENT`` (the JSON options of a one-layer student
pre-trained on 20k tokens, built in seconds: ``tests/test_mini.py``'s) and ``TINY_MINI`` (``--env-kwarg``
options giving ReAD-Mini that student and 5 probe and evaluation items per capability).

The line right before a fence may carry one marker:

- ``<!-- short: OLD => NEW; OLD2 => NEW2 -->``: the block runs after these textual replacements, in order, each
  of every occurrence (fewer seeds, tasks, timesteps or workers, a smaller budget, ``$TINY_MINI``, an output
  moved from a committed file to the temporary folder). An OLD text that is not in the block fails the test,
  so a marker cannot outlive the command it shortens. OLD and NEW hold no ``;`` and no ``=>``.
- ``<!-- not-run: REASON -->``: no short form fits on a CPU-only, offline machine (installing packages, a GPU or a
  GPU server, a run too long even when shortened); reported as a skip with its reason (``pytest -rs`` lists them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.test_mini import TINY_STUDENT

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUN = {"python", "bash", "sh", "console"}
NOT_RUN = {"text", "bibtex", "yaml", "toml", "json", "markdown", "md", "csv"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|short):(?P<text>.*?)-->\s*$")
NOT_LINKED = {".git", ".venv", "runs", "site"}
TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it opens, its language, its code, and its marker (a short form or a reason not to run)."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None = None
    short: tuple[tuple[str, str], ...] = ()  # (OLD, NEW) replacements

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"

    def code_to_run(self) -> str:
        """The code to run: the block with its short form's replacements; ``ValueError`` for an OLD text not in it."""
        code = self.code
        for old, new in self.short:
            if old not in code:
                raise ValueError(f"{self.name}: the short marker replaces {old!r}, which is not in the block")
            code = code.replace(old, new)
        return console_commands(code) if self.language == "console" else code


def short_form(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """The (OLD, NEW) pairs of a short marker's ``OLD => NEW; OLD2 => NEW2``."""
    pairs = []
    for part in text.split(";"):
        old, arrow, new = part.partition("=>")
        if not arrow or "=>" in new or not old.strip():
            raise ValueError(f"{where}: the short marker's part {part.strip()!r} is not 'OLD => NEW' (OLD and NEW hold no ';' and no '=>')")
        pairs.append((old.strip(), new.strip()))
    return tuple(pairs)


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order; ``ValueError`` for an unclosed fence or a misplaced or malformed marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        opening = FENCE.match(lines[i])
        if marker and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
            raise ValueError(f"{path.relative_to(REPO)}:{i + 1}: a {marker['kind']} marker must stand on the line right before a fence")
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        if end is None:
            raise ValueError(f"{path.relative_to(REPO)}:{i + 1}: the fence is never closed")
        code = "\n".join(line[indent:] if line[:indent].strip() == "" else line for line in lines[i + 1 : end]) + "\n"
        language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
        previous = MARKER.match(lines[i - 1]) if i > 0 else None
        kind, text = (previous["kind"], previous["text"]) if previous else (None, "")
        where = f"{path.relative_to(REPO).as_posix()}:{i + 1}"
        blocks.append(Block(path, i + 1, language, code, not_run=text.strip() if kind == "not-run" else None,
                            short=short_form(text, where) if kind == "short" else ()))
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]
RUNNABLE = [block for block in BLOCKS if block.language in RUN]


def test_every_block_names_a_known_language():
    """An unlabelled fence would silently escape this test: output is ``text``, commands ``bash``."""
    unknown = [f"{b.name} ({b.language or 'no language'})" for b in BLOCKS if b.language not in RUN | NOT_RUN]
    assert not unknown, f"fenced blocks without a known language (run: {sorted(RUN)}, not run: {sorted(NOT_RUN)}): {unknown}"


def test_markers_give_a_reason_and_mark_runnable_blocks():
    problems = [f"{b.name}: {'empty reason' if b.not_run == '' else 'marks a ' + b.language + ' block, which is never run'}"
                for b in BLOCKS if (b.not_run is not None or b.short) and (b.not_run == "" or b.language not in RUN)]
    assert not problems, problems


def test_short_markers_replace_text_of_their_blocks():
    """Checked apart from running the blocks, so a stale marker fails even where the blocks are deselected."""
    problems = []
    for block in BLOCKS:
        try:
            block.code_to_run()
        except ValueError as error:
            problems.append(str(error))
    assert not problems, problems


def test_a_short_form_replaces_every_occurrence_in_order_and_fails_on_text_not_in_the_block():
    twice = short_form(" --seeds 10 => --seeds 1; --seeds 1 => --seeds 2", "x")
    block = Block(REPO / "README.md", 1, "bash", "a --seeds 10\nb --seeds 10\n", short=twice)
    assert block.code_to_run() == "a --seeds 2\nb --seeds 2\n"
    stale = Block(REPO / "README.md", 1, "bash", "a --seeds 5\n", short=short_form("--seeds 10 => --seeds 1", "x"))
    with pytest.raises(ValueError, match="which is not in the block"):
        stale.code_to_run()
    with pytest.raises(ValueError, match="is not 'OLD => NEW'"):
        short_form("--seeds 10 -> --seeds 1", "x")


def console_commands(code: str) -> str:
    """The commands of a console block: its ``$ `` lines without the prompt."""
    return "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"


def repository_state() -> dict[str, str]:
    """Each path ``git status`` reports (changed or untracked) with a hash of its content; empty outside a git checkout."""
    if not (REPO / ".git").exists():
        return {}
    listing = subprocess.run(["git", "status", "--porcelain", "-z", "--untracked-files=all"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split("\0")
    state, entries = {}, iter(filter(None, listing))
    for entry in entries:
        status, path = entry[:2], REPO / entry[3:]
        if "R" in status or "C" in status:
            next(entries)  # the path it was renamed or copied from
        state[entry[3:]] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else status
    return state


@dataclass
class Pages:
    """The pages' temporary folders and the environment the blocks run in; which blocks have run."""

    root: Path
    env: dict[str, str]
    folders: dict[Path, Path] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)

    def folder(self, page: Path) -> Path:
        """The page's folder: links to the repository's top-level entries, made on first use."""
        if page not in self.folders:
            folder = self.root / page.relative_to(REPO).as_posix().replace("/", "--")
            folder.mkdir()
            for entry in REPO.iterdir():
                if entry.name not in NOT_LINKED:
                    (folder / entry.name).symlink_to(entry)
            self.folders[page] = folder
        return self.folders[page]

    def run(self, block: Block) -> None:
        """Run ``block`` in its page's folder; fail if it exits non-zero or changes the repository."""
        self.ran.add(block.name)
        code, cwd = block.code_to_run(), self.folder(block.path)
        if block.language == "python":
            script = self.root / f"{block.name.replace('/', '--').replace(':', '-')}.py"
            script.write_text(code)
            command = [sys.executable, str(script)]
        else:
            command = ["bash", "-e", "-o", "pipefail", "-c", code]
        before = repository_state()
        result = subprocess.run(command, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S)
        after = repository_state()
        output = (result.stdout + result.stderr)[-4000:]
        failure = f"{block.name} ({block.language}{', short form' if block.short else ''}) exited with {result.returncode}"
        assert result.returncode == 0, f"{failure}:\n{code}\n--- end of its output ---\n{output}"
        changed = sorted(path for path in {*before, *after} if before.get(path) != after.get(path))
        assert not changed, f"{block.name} wrote into the repository (give it an output in its temporary folder): {changed}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Pages:
    root = tmp_path_factory.mktemp("doc-blocks")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    env["READ_ENV_MINI_CACHE"] = str(root / "mini-cache")
    env["TINY_STUDENT"] = json.dumps(TINY_STUDENT, separators=(",", ":"))
    env["TINY_MINI"] = f"--env-kwarg student={env['TINY_STUDENT']} --env-kwarg probe_items=5 --env-kwarg eval_items=5"
    return Pages(root, env)


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_block_runs_as_written_or_short(block: Block, pages: Pages):
    if block.not_run:
        pytest.skip(f"{block.name} not run: {block.not_run}")
    for earlier in RUNNABLE:  # what -k left out above it on its page, which it may read from
        if earlier.path == block.path and earlier.line < block.line and not earlier.not_run and earlier.name not in pages.ran:
            pages.run(earlier)
    pages.run(block)

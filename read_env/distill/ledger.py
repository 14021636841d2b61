"""Exact token budget: splitting rules and an append-only, reloadable ledger.

The budget rule (one place, enforced everywhere in the backend):

* A step receives an allotment of ``T_c`` tokens per capability ``c`` (integers, ``T = sum_c T_c``),
  plus the carried-over remainder of earlier steps (below).
* Each ``T_c`` is split into a teacher-**generation** cap ``G_c = round(share * T_c)`` (default
  share 0.4, as the paper's public code; :func:`split_generation_training`) and a student-
  **training** part ``R_c = T_c - generated_c``: training receives at least ``T_c - G_c`` (the
  paper's 0.6) plus whatever generation did not use, so ``generated_c + trained_c <= T_c``.
* Generated tokens are the tokens the teacher actually produced: from the first new token up to
  and including its end-of-sequence token; padding and prompt tokens never count.
* Training tokens are the student's prompt + answer tokens fed to the student once; padding never
  counts; teacher forward passes for logit KD, probes and evaluation are not budget tokens.
* A step never spends more than its allotment: each teacher answer's ``max_new_tokens`` is capped
  by what is left (an answer token costs one generation and one training token), and the last
  training example is truncated, so spending is exact or under.
* Unspent tokens ``T + carry_in - spent`` become ``carry_out``; the next step adds the carry to its
  allotment, split over capabilities in proportion to the new allotment (largest remainder). Over
  any prefix of steps: ``sum spent + carry_out == sum allotted`` (nothing lost or counted twice).
* The episode's last step pools what its capabilities leave and spends it under the same rule on
  more answers (:meth:`read_env.distill.distiller.Distiller.distill` with ``final=True``).

:class:`TokenLedger` stores one JSON object per completed step in an append-only JSON-lines file
(:mod:`read_env.distill.safe_files`: a line is written whole or not at all, even on a full disk);
reloading it reproduces the totals exactly, and :meth:`TokenLedger.replace` rolls back to the
entries stored in a checkpoint (a truncation, which needs no free space) so that a resumed run never
counts a step twice. A broken invariant raises :class:`LedgerError` (never an ``assert``, which
``python -O`` removes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .safe_files import append_line, keep_lines, read_lines, replace_file


def largest_remainder_split(total: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Split the integer ``total`` >= 0 proportionally to ``weights`` (>= 0) into integers.

    Returns int64 array [K] summing exactly to ``total``: floors of the exact quotas, then one
    extra unit to the largest fractional remainders (ties to the lower index). All-zero weights
    split ``total`` evenly.
    """
    total = int(total)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    if w.size == 0:
        if total:
            raise ValueError("cannot split a positive total over zero weights")
        return np.zeros(0, dtype=np.int64)
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite and >= 0, got {w}")
    if w.sum() <= 0:
        w = np.ones_like(w)
    quotas = total * w / w.sum()
    base = np.floor(quotas).astype(np.int64)
    short = total - int(base.sum())
    order = np.lexsort((np.arange(w.size), -(quotas - base)))  # largest remainder, lower index first
    base[order[:short]] += 1
    return base


def split_generation_training(tokens: int, generation_share: float = 0.4) -> tuple[int, int]:
    """(generation, training) integer parts of ``tokens`` with the given generation share."""
    if not 0.0 <= generation_share <= 1.0:
        raise ValueError(f"generation_share must be in [0, 1], got {generation_share}")
    g, r = largest_remainder_split(tokens, [generation_share, 1.0 - generation_share])
    return int(g), int(r)


class LedgerError(ValueError):
    """A token count breaks the budget rule (overspending, a negative carry, a step out of order)."""


@dataclass
class LedgerEntry:
    """One completed step. Vectors are per capability (length K), all in tokens."""

    step: int
    allotted: list[int]  # fresh allotment of this step
    carry_in: int  # carried remainder added to this step
    generated: list[int]  # teacher tokens produced
    trained: list[int]  # student prompt+answer tokens trained on
    carry_out: int  # unspent remainder passed on
    extra: dict = field(default_factory=dict)

    @property
    def spent(self) -> int:
        return int(sum(self.generated) + sum(self.trained))


class TokenLedger:
    """Append-only JSON-lines token ledger at ``path`` (created, or reloaded if it exists).

    Totals are always recomputed from the entries, so a reloaded ledger equals the original. The file always
    holds exactly ``entries``: a torn last line (a run killed mid-write) is cut off on load, and a failed
    append leaves the file as it was (:class:`~read_env.distill.safe_files.WriteError`). The file's folder is
    created on the first write.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: list[LedgerEntry] = []
        lines = read_lines(self.path)
        for line in lines:
            try:
                self.entries.append(LedgerEntry(**line))
            except TypeError:
                break
        if self.path.is_file():
            keep_lines(self.path, len(self.entries))

    def append(self, entry: LedgerEntry) -> None:
        """Record a completed step (checks the conservation rule) and fsync it to disk."""
        if entry.step != len(self.entries):
            raise LedgerError(f"expected step {len(self.entries)}, got {entry.step}")
        if entry.carry_in != self.carry:
            raise LedgerError(f"carry_in {entry.carry_in} != ledger carry {self.carry}")
        if sum(entry.allotted) + entry.carry_in != entry.spent + entry.carry_out or entry.carry_out < 0:
            raise LedgerError(f"step {entry.step} violates allotted + carry_in == spent + carry_out >= 0: "
                              f"{sum(entry.allotted)} + {entry.carry_in} vs {entry.spent} + {entry.carry_out}")
        append_line(self.path, asdict(entry))
        self.entries.append(entry)

    def replace(self, entries: Sequence[LedgerEntry]) -> None:
        """Make ``entries`` (a checkpoint's) the whole ledger, in memory and on disk: a truncation of the file
        when they are its first entries (no free space needed), else an atomic rewrite."""
        entries = list(entries)
        if entries == self.entries[:len(entries)]:
            if self.path.is_file():
                keep_lines(self.path, len(entries))
        else:
            replace_file(self.path, "".join(json.dumps(asdict(e)) + "\n" for e in entries).encode())
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def carry(self) -> int:
        """Unspent tokens carried into the next step."""
        return self.entries[-1].carry_out if self.entries else 0

    @property
    def total_allotted(self) -> int:
        return int(sum(sum(e.allotted) for e in self.entries))

    @property
    def total_generated(self) -> int:
        return int(sum(sum(e.generated) for e in self.entries))

    @property
    def total_trained(self) -> int:
        return int(sum(sum(e.trained) for e in self.entries))

    @property
    def total_spent(self) -> int:
        return self.total_generated + self.total_trained

    def totals(self) -> dict[str, int]:
        """Allotted / generated / trained / spent / carry, all in tokens."""
        return {"allotted": self.total_allotted, "generated": self.total_generated,
                "trained": self.total_trained, "spent": self.total_spent, "carry": self.carry}

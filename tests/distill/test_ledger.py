import json

import numpy as np
import pytest

from read_env.distill.ledger import (LedgerEntry, LedgerError, TokenLedger, largest_remainder_split,
                                     split_generation_training)


def test_largest_remainder_known_values():
    assert largest_remainder_split(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert largest_remainder_split(7, [0.5, 0.25, 0.25]).tolist() == [3, 2, 2]  # quotas 3.5, 1.75, 1.75
    assert largest_remainder_split(5, [0, 0]).tolist() == [3, 2]
    assert largest_remainder_split(0, [1, 2]).tolist() == [0, 0]


def test_largest_remainder_sums_exactly_and_is_within_one_of_quota():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(1, 9))
        w = rng.random(k) * (rng.random(k) > 0.3)
        total = int(rng.integers(0, 10**7))
        split = largest_remainder_split(total, w)
        assert split.sum() == total and (split >= 0).all()
        quota = total * (w / w.sum() if w.sum() > 0 else np.ones(k) / k)
        assert np.all(np.abs(split - quota) < 1.0)


def test_largest_remainder_rejects_negative():
    with pytest.raises(ValueError):
        largest_remainder_split(5, [1, -1])


def test_generation_training_split():
    assert split_generation_training(1000) == (400, 600)
    g, r = split_generation_training(7, 0.4)
    assert g + r == 7


def _entry(step, carry_in, allotted, gen, tr):
    return LedgerEntry(step, allotted, carry_in, gen, tr, sum(allotted) + carry_in - sum(gen) - sum(tr))


def test_ledger_reload_gives_same_totals(tmp_path):
    led = TokenLedger(tmp_path / "l.jsonl")
    led.append(_entry(0, 0, [100, 50], [30, 10], [60, 35]))
    led.append(_entry(1, led.carry, [10, 10], [5, 0], [10, 0]))
    again = TokenLedger(tmp_path / "l.jsonl")
    assert again.totals() == led.totals()
    assert again.totals() == {"allotted": 170, "generated": 45, "trained": 105, "spent": 150, "carry": 20}


def test_ledger_rejects_inconsistent_entries(tmp_path):
    led = TokenLedger(tmp_path / "l.jsonl")
    with pytest.raises(LedgerError):  # spends more than allotted
        led.append(LedgerEntry(0, [10], 0, [6], [6], 0))
    with pytest.raises(LedgerError):  # wrong carry_in
        led.append(LedgerEntry(0, [10], 3, [5], [5], 3))
    led.append(_entry(0, 0, [10], [4], [4]))
    with pytest.raises(LedgerError):  # step out of order
        led.append(_entry(5, led.carry, [10], [4], [4]))


def test_ledger_drops_torn_last_line_and_is_replaced_by_a_checkpoints_entries(tmp_path):
    path = tmp_path / "l.jsonl"
    led = TokenLedger(path)
    led.append(_entry(0, 0, [10], [4], [4]))
    led.append(_entry(1, led.carry, [10], [4], [4]))
    with open(path, "a") as fh:
        fh.write('{"step": 2, "allo')
    again = TokenLedger(path)
    assert len(again) == 2 and again.totals() == led.totals()
    again.replace(led.entries[:1])
    assert len(TokenLedger(path)) == 1
    assert json.loads(path.read_text().splitlines()[0])["step"] == 0

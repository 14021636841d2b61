import torch

from read_env.distill.assets import load_model, load_tokenizer
from read_env.distill.engines.hf import HFEngine
from read_env.distill.generation import SamplingConfig, chat_text, generate_batch, generate_budgeted
from read_env.distill.prompts import PromptSampler


class _ScriptedModel(torch.nn.Module):
    """Stands in for a causal LM: returns fixed continuations (2 = EOS = pad)."""

    def __init__(self, rows):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.rows = rows
        self.generation_config = type("G", (), {"eos_token_id": 2})()

    def generate(self, input_ids, attention_mask, generation_config, stopping_criteria):
        return torch.cat([input_ids, torch.tensor(self.rows)], dim=1)


def test_generated_count_stops_at_eos_and_cap_never_padding(tiny_models):
    tok = load_tokenizer(tiny_models["teacher"])
    assert tok.eos_token_id == 2 == tok.pad_token_id
    rows = [[5, 6, 2, 2, 2, 2], [7, 8, 9, 10, 11, 12], [2, 2, 2, 2, 2, 2]]
    out = generate_batch(_ScriptedModel(rows), tok, ["a", "bb", "ccc"], [6, 4, 6], SamplingConfig())
    assert out == [([5, 6, 2], True), ([7, 8, 9, 10], False), ([2], True)]


def test_per_row_caps_with_real_generate(tiny_models):
    tok, model = load_tokenizer(tiny_models["teacher"]), load_model(tiny_models["teacher"])
    texts = [chat_text(tok, t) for t in ["What is 1 + 1?", "Describe the moon in capital letters please."]]
    out = generate_batch(model, tok, texts, [3, 9], SamplingConfig(temperature=0.0))
    for (toks, fin), cap in zip(out, [3, 9]):
        assert 1 <= len(toks) <= cap and (fin or len(toks) == cap)


def test_budgeted_generation_never_exceeds_budgets(tiny_models):
    tok, model = load_tokenizer(tiny_models["teacher"]), load_model(tiny_models["teacher"])
    sampler = PromptSampler(["math"], seed=0)
    plen = lambda p: len(tok(chat_text(tok, p.text), add_special_tokens=False)["input_ids"])
    for g, t in [(50, 400), (200, 300), (7, 500)]:
        res = generate_budgeted(HFEngine(model, tok), lambda: sampler.sample_one("math", 0.5), g, t, plen,
                                SamplingConfig(max_new_tokens=16, batch_size=4), min_new_tokens=4)
        assert res.generated == sum(c.n_generated for c in res.completions) <= g
        assert res.generated + res.planned_training <= t
        assert all(c.n_generated <= 16 for c in res.completions)
    assert res.completions and res.generated == 7  # the last answer was capped to what was left

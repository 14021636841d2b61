import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from read_env.distill.assets import load_model, load_tokenizer
from read_env.distill.generation import chat_text
from read_env.distill.training import (TrainExample, Trainer, TrainStats, VocabularyMismatchError, apply_lora,
                                       check_same_vocab, fit_budget, length_batches, pack_rows, pack_steps)


def _examples(tok, n=6):
    out = []
    for i in range(n):
        prompt = tok(chat_text(tok, f"What is {i} + {i + 2}? Give the final number."), add_special_tokens=False)["input_ids"]
        answer = tok(f"The answer is {2 * i + 2}.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        out.append(TrainExample(prompt + answer, len(prompt), capability=i % 2))
    return out


def test_prompt_tokens_are_masked(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    model = load_model(tiny_models["student"])
    ex = _examples(tok, 1)[0]
    assert ex.labels()[:ex.n_prompt] == [-100] * ex.n_prompt and ex.labels()[ex.n_prompt:] == ex.input_ids[ex.n_prompt:]
    trainer = Trainer(model, pad_id=tok.pad_token_id)
    n_ans = len(ex) - ex.n_prompt
    loss, _ = trainer._micro_loss([ex], denom=n_ans)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ex.input_ids])).logits[0]
    manual = F.cross_entropy(logits[ex.n_prompt - 1:-1], torch.tensor(ex.input_ids[ex.n_prompt:]))
    full = F.cross_entropy(logits[:-1], torch.tensor(ex.input_ids[1:]))
    assert torch.allclose(loss, manual, atol=1e-5)
    assert not torch.allclose(loss, full, atol=1e-3)


def test_fit_budget_is_exact_and_truncates_last():
    exs = [TrainExample(list(range(10)), 4), TrainExample(list(range(12)), 5), TrainExample(list(range(8)), 3)]
    kept, used = fit_budget(exs, 17)
    assert used == 17 and sum(map(len, kept)) == 17 and len(kept[-1]) == 7 and kept[-1].n_prompt == 5
    kept, used = fit_budget(exs, 15)  # 5 left < prompt 5 + 1 answer token: dropped
    assert used == 10 and len(kept) == 1
    assert fit_budget(exs, 1000)[1] == 30


def test_length_batches_cover_all_and_are_bucketed():
    exs = [TrainExample([1] * n, 1) for n in [5, 50, 6, 51, 7, 52]]
    batches = length_batches(exs, 3, np.random.default_rng(0))
    assert sorted(len(e) for b in batches for e in b) == sorted(map(len, exs))
    assert sorted(sorted(len(e) for e in b) for b in batches) == [[5, 6, 7], [50, 51, 52]]


@pytest.mark.parametrize("lora,objective", [(False, "sft"), (True, "sft"), (False, "kd"), (True, "kd")])
def test_loss_decreases_on_fixed_batch(tiny_models, lora, objective):
    tok = load_tokenizer(tiny_models["student"])
    student = load_model(tiny_models["student"])
    teacher = load_model(tiny_models["teacher"])
    if lora:
        torch.manual_seed(0)
        student = apply_lora(student, r=8, alpha=16)
        assert all("lora_" in n for n, p in student.named_parameters() if p.requires_grad)
    trainer = Trainer(student, pad_id=tok.pad_token_id, lr=1e-2 if lora else 3e-3, objective=objective,
                      teacher=teacher, batch_size=6, micro_batch=3)
    exs = _examples(tok)
    losses = [trainer.train(exs, np.random.default_rng(0)).loss for _ in range(10)]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses


def test_kd_vocab_mismatch_raises(tiny_models):
    t, s = load_model(tiny_models["teacher"]), load_model(tiny_models["other"])
    with pytest.raises(VocabularyMismatchError):
        check_same_vocab(t, load_tokenizer(tiny_models["teacher"]), s, load_tokenizer(tiny_models["other"]))
    check_same_vocab(t, load_tokenizer(tiny_models["teacher"]), load_model(tiny_models["student"]),
                     load_tokenizer(tiny_models["student"]))  # same vocabulary: no error


def test_simulated_oom_halves_micro_batch_without_double_counting(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    exs = _examples(tok, 8)
    calls = []

    def hook(n):
        calls.append(n)
        if n > 2:
            raise torch.OutOfMemoryError("simulated CUDA out of memory")

    base = load_model(tiny_models["student"])
    ref_model = copy.deepcopy(base)
    faulty = Trainer(base, pad_id=tok.pad_token_id, lr=1e-3, batch_size=8, micro_batch=8, fault_hook=hook)
    stats = faulty.train(exs, np.random.default_rng(0))
    assert stats.micro_batch == 2 and stats.oom_retries == 2 and calls[:2] == [8, 4]
    assert stats.tokens == sum(map(len, exs))  # each example counted once
    ref = Trainer(ref_model, pad_id=tok.pad_token_id, lr=1e-3, batch_size=8, micro_batch=2)
    ref_stats = ref.train(exs, np.random.default_rng(0))
    assert ref_stats.tokens == stats.tokens and abs(ref_stats.loss - stats.loss) < 1e-6
    for (n, a), (_, b) in zip(base.named_parameters(), ref_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), n  # retried work did not add extra gradient

    def always(n):
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        Trainer(load_model(tiny_models["student"]), pad_id=tok.pad_token_id, batch_size=4, micro_batch=4,
                fault_hook=always).train(exs, np.random.default_rng(0))


def _varied(tok, n=7):
    """Examples of several prompt and answer lengths (capabilities 0..2)."""
    out = []
    for i in range(n):
        prompt = tok(chat_text(tok, "Add the numbers " + " and ".join(str(3 * j + i) for j in range(1 + i % 4)) + "."),
                     add_special_tokens=False)["input_ids"]
        answer = tok(" ".join(f"step {j}: {j * i}" for j in range(1 + (5 * i) % 7)), add_special_tokens=False)["input_ids"]
        out.append(TrainExample(prompt + answer + [tok.eos_token_id], len(prompt), capability=i % 3))
    return out


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [False, True])
def test_packed_and_padded_losses_and_gradients_agree(tiny_models, lora):
    tok = load_tokenizer(tiny_models["student"])
    model = load_model(tiny_models["student"])
    if lora:
        torch.manual_seed(0)
        model = apply_lora(model, r=4, alpha=8)
    exs = _varied(tok)
    padded = Trainer(model, pad_id=tok.pad_token_id, batch_size=len(exs), micro_batch=3)
    mean_padded = padded._run_batch(exs, TrainStats())
    grads_padded = _grads(model)
    packed = Trainer(model, pad_id=tok.pad_token_id, packed=True, micro_tokens=3 * max(map(len, exs)) // 2, ce_chunk=5, bf16="off")
    assert len(pack_rows(exs, packed.micro_tokens)) > 1  # several forward passes, several loss chunks each
    mean_packed = packed.accumulate(exs, TrainStats()).item()
    grads_packed = _grads(model)
    assert mean_packed == pytest.approx(mean_padded, abs=1e-5)
    assert grads_packed.keys() == grads_padded.keys() and grads_padded
    for name, grad in grads_padded.items():
        torch.testing.assert_close(grads_packed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_packed_rows_do_not_attend_across_examples(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    trainer = Trainer(load_model(tiny_models["student"]), pad_id=tok.pad_token_id, packed=True, bf16="off")
    a, b = _varied(tok, 2)
    other = TrainExample([t + 1 for t in a.input_ids], a.n_prompt)  # every token of the first example changed
    with torch.no_grad():
        alone = trainer._row_loss([b]).item()
        after_a = trainer._row_loss([a, b]).item() - trainer._row_loss([a]).item()
        after_other = trainer._row_loss([other, b]).item() - trainer._row_loss([other]).item()
        glued = TrainExample(a.input_ids + b.input_ids, a.n_prompt)  # one sequence: b sees a
        glued_b = trainer._row_loss([glued]).item() - trainer._row_loss([TrainExample(a.input_ids, a.n_prompt)]).item()
    assert after_a == pytest.approx(alone, abs=1e-4) and after_other == pytest.approx(alone, abs=1e-4)
    assert abs(glued_b - alone) > 1e-3  # the check can fail: attending to a changes b's loss


def test_packed_training_counts_the_same_tokens(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    exs = _varied(tok, 9)
    steps = pack_steps(exs, 120, np.random.default_rng(0))
    assert sorted(map(id, (e for s in steps for e in s))) == sorted(map(id, exs))
    assert all(sum(map(len, s)) <= 120 or len(s) == 1 for s in steps) and len(steps) > 1
    counted = []
    for packed in (False, True):
        trainer = Trainer(load_model(tiny_models["student"]), pad_id=tok.pad_token_id, lr=1e-3, batch_size=3, micro_batch=3,
                          packed=packed, tokens_per_step=120, micro_tokens=60)
        stats = trainer.train(exs, np.random.default_rng(0))
        counted.append((stats.tokens, stats.label_tokens, stats.tokens_per_capability))
        assert np.isfinite(stats.loss) and stats.steps == (len(steps) if packed else 3)
    assert counted[0] == counted[1] == (sum(map(len, exs)), sum(len(e) - e.n_prompt for e in exs),
                                        {c: sum(len(e) for e in exs if e.capability == c) for c in range(3)})


def test_bf16_autocast_loss_is_close_to_fp32(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    model = load_model(tiny_models["student"])
    exs = _varied(tok)
    trainer = Trainer(model, pad_id=tok.pad_token_id, packed=True, bf16="off")
    fp32 = trainer.accumulate(exs, TrainStats()).item()
    trainer.bf16 = True  # forced: "auto" turns it on only where the device has native bf16
    bf16 = trainer.accumulate(exs, TrainStats()).item()
    assert bf16 == pytest.approx(fp32, rel=2e-2) and bf16 != fp32


def test_packed_oom_halves_micro_tokens_without_double_counting(tiny_models):
    tok = load_tokenizer(tiny_models["student"])
    exs = _varied(tok, 6)
    limit = 2 * max(map(len, exs))
    calls = []

    def hook(n):
        calls.append(n)
        if n > limit:
            raise torch.OutOfMemoryError("simulated CUDA out of memory")

    model, ref_model = load_model(tiny_models["student"]), load_model(tiny_models["student"])
    faulty = Trainer(model, pad_id=tok.pad_token_id, lr=1e-3, packed=True, micro_tokens=8 * limit, fault_hook=hook)
    stats = faulty.train(exs, np.random.default_rng(0))
    assert stats.oom_retries >= 1 and stats.micro_batch == 8 * limit // 2 ** stats.oom_retries
    assert calls[0] == sum(map(len, exs)) > limit
    assert stats.tokens == sum(map(len, exs))  # each example counted once
    ref = Trainer(ref_model, pad_id=tok.pad_token_id, lr=1e-3, packed=True, micro_tokens=stats.micro_batch)
    ref = ref.train(exs, np.random.default_rng(0))
    assert ref.tokens == stats.tokens and ref.loss == pytest.approx(stats.loss, abs=1e-6)
    for (n, a), (_, b) in zip(model.named_parameters(), ref_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), n  # retried work did not add extra gradient

    def always(n):
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        doomed = Trainer(load_model(tiny_models["student"]), pad_id=tok.pad_token_id, packed=True, fault_hook=always)
        doomed.train(exs, np.random.default_rng(0))


def test_packed_needs_sft_and_bf16_a_known_mode(tiny_models):
    model = load_model(tiny_models["student"])
    with pytest.raises(ValueError, match="packed=True trains objective='sft' only"):
        Trainer(model, pad_id=0, packed=True, objective="kd", teacher=model)
    with pytest.raises(ValueError, match="bf16 must be one of"):
        Trainer(model, pad_id=0, bf16="always")

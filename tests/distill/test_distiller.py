import numpy as np
import pytest
import torch

from read_env.distill.ledger import TokenLedger
from read_env.distill.probes import ProbeSuite
from read_env.distill.prompts import Prompt
from read_env.distill.training import VocabularyMismatchError


@pytest.mark.parametrize("lora,objective", [(False, "sft"), (True, "kd")])
def test_distill_step_spends_exactly_within_allotment(make_distiller, lora, objective):
    d = make_distiller(lora=lora, objective=objective)
    given = 0
    for step, tokens in enumerate([[300, 200, 101], [0, 500, 0], [7, 3, 0], [400, 400, 400]]):
        carry_in = d.ledger.carry
        r = d.distill(np.array(tokens), progress=step / 4)
        given += sum(tokens)
        assert r.tokens_spent <= sum(tokens) + carry_in
        assert r.tokens_spent + r.carry_out == sum(tokens) + carry_in
        assert r.tokens_generated == r.generated.sum() and r.tokens_trained == r.trained.sum()
        assert r.tokens_generated <= round(0.4 * (sum(tokens) + carry_in)) + len(tokens)
        assert d.ledger.total_spent + d.ledger.carry == given
        if sum(tokens) > 100:
            assert r.examples > 0 and np.isfinite(r.loss)
    assert d.ledger.total_spent <= given
    reloaded = TokenLedger(d.run_dir / "ledger.jsonl")
    assert reloaded.totals() == d.ledger.totals()


@pytest.mark.parametrize("tokens", [[40, 30, 31], [300, 200, 101], [3000, 10, 0]])
def test_final_step_leaves_less_than_the_shortest_next_prompt(make_distiller, tmp_path, tokens):
    """Alone, each capability leaves up to its next prompt and ``2 * min_new_tokens``; pooled, the final step
    leaves less than the shortest of the prompts it drew last (which did not fit) plus two tokens."""
    left = {}
    for final in (False, True):
        d = make_distiller(run_dir=tmp_path / str(final))
        drawn, sample = {}, d.sampler.sample_one
        d.sampler.sample_one = lambda capability, progress: drawn.setdefault(capability, []).append(sample(capability, progress)) or drawn[capability][-1]
        left[final] = d.distill(np.array(tokens), 0.5, final=final).carry_out
    assert left[True] < min(len(d._student_prompt_ids(prompts[-1])) for prompts in drawn.values()) + 2
    assert left[True] <= left[False]


def test_distill_rejects_bad_tokens(make_distiller):
    d = make_distiller()
    with pytest.raises(ValueError):
        d.distill(np.array([1, 2]), 0.0)
    with pytest.raises(ValueError):
        d.distill(np.array([-1, 2, 3]), 0.0)


def test_probe_scores_in_unit_interval_with_stderr(make_distiller):
    d = make_distiller(caps=("math", "tool_use", "long_context", "multilingual"))
    res = d.probe()
    assert res.profile.shape == (4,) and res.stderr.shape == (4,)
    assert np.all((res.profile >= 0) & (res.profile <= 1)) and np.all(res.stderr >= 0)
    assert np.all(np.isfinite(res.stderr)) and res.seconds > 0
    again = d.probe()
    assert np.allclose(res.profile, again.profile)  # deterministic, no sampling noise


def test_probe_improves_when_distilling_on_teacher(make_distiller):
    d = make_distiller(caps=("math",), lr=3e-3, max_new_tokens=6, probe_max_new_tokens=6)
    before = d.probe().profile[0]
    for i in range(4):
        d.distill(np.array([2500]), progress=i / 4)
    assert d.probe().profile[0] > before


def test_multiple_choice_probe_is_normalized_over_options(make_distiller, tiny_models):
    d = make_distiller(caps=("general_knowledge",))
    suite = ProbeSuite(["general_knowledge"], n_items=1, use_banks=False)
    base = dict(capability="general_knowledge", template="t", difficulty=0.5, check="mc",
                text="Which is a fruit?\nA. car\nB. apple\nC. rock\nD. cloud\nAnswer with the letter.",
                choices=["car", "apple", "rock", "cloud"])
    total = 0.0
    for g in range(4):
        suite.items = {"general_knowledge": [Prompt(**base, gold=g)]}
        suite._cache.clear()
        s = suite.run(d.student, d.student_tok).profile[0]
        assert 0 < s < 1
        total += s
    assert abs(total - 1.0) < 1e-6


def test_utility_in_unit_interval(make_distiller):
    d = make_distiller()
    u = d.utility(np.array([0.5, 0.3, 0.2]))
    assert 0.0 <= u <= 1.0
    with pytest.raises(ValueError):
        d.utility(np.array([1.0]))


def test_kd_with_different_vocabulary_raises(tiny_models, tmp_path):
    from read_env.distill.config import DistillerConfig
    from read_env.distill.distiller import Distiller

    with pytest.raises(VocabularyMismatchError):
        Distiller(["math"], DistillerConfig(teacher=tiny_models["teacher"], student=tiny_models["other"], objective="kd",
                                            use_banks=False, probe_items=2), tmp_path, device="cpu")


def test_sft_with_different_vocabulary_works(tiny_models, tmp_path):
    from read_env.distill.config import DistillerConfig
    from read_env.distill.distiller import Distiller

    d = Distiller(["math"], DistillerConfig(teacher=tiny_models["teacher"], student=tiny_models["other"], use_banks=False,
                                            probe_items=2, probe_max_new_tokens=4, max_new_tokens=8, lr=1e-3), tmp_path, device="cpu")
    r = d.distill(np.array([600]), 0.0)
    assert 0 < r.tokens_spent <= 600 and r.examples > 0


@pytest.mark.parametrize("lora, streams", [(False, False), (True, False), (False, True)])
def test_checkpoint_round_trip_gives_identical_next_step(make_distiller, tmp_path, lora, streams):
    run = tmp_path / f"run{lora}"
    a = make_distiller(run_dir=run, lora=lora, objective="kd" if lora else "sft", prompt_streams=streams)
    a.distill(np.array([300, 200, 100]), 0.0)
    a.save_checkpoint(tmp_path / "ck")
    r_a = a.distill(np.array([250, 250, 250]), 0.5)  # the step a killed run would redo
    w_a = {n: p.detach().clone() for n, p in a.student.named_parameters()}
    totals_a = a.ledger.totals()

    b = make_distiller(run_dir=run, lora=lora, objective="kd" if lora else "sft", prompt_streams=streams)
    b.load_checkpoint(tmp_path / "ck")
    assert len(b.ledger) == 1  # the step after the checkpoint is not counted twice
    r_b = b.distill(np.array([250, 250, 250]), 0.5)
    assert r_b.loss == r_a.loss and r_b.generated.tolist() == r_a.generated.tolist()
    assert r_b.trained.tolist() == r_a.trained.tolist() and r_b.carry_in == r_a.carry_in
    for n, p in b.student.named_parameters():
        assert torch.equal(p, w_a[n]), n
    assert b.ledger.totals() == totals_a == TokenLedger(run / "ledger.jsonl").totals()


def test_distiller_oom_injection_reports_halved_micro_batch(make_distiller):
    def hook(n):
        if n > 1:
            raise torch.OutOfMemoryError("simulated")

    d = make_distiller(micro_batch=4, batch_size=4, fault_hook=hook)
    r = d.distill(np.array([400, 400, 400]), 0.0)
    assert r.micro_batch == 1 and r.oom_retries == 2
    assert r.tokens_trained == d.ledger.total_trained and r.tokens_spent <= 1200


def test_packed_training_books_the_same_ledger(make_distiller, tmp_path):
    """The packed loop trains the same prompt + answer tokens as the padded one: every ledger count is equal."""
    entries = {}
    for packed in (False, True):
        d = make_distiller(run_dir=tmp_path / f"packed{packed}", packed=packed, tokens_per_step=200, micro_tokens=100)
        reports = [d.distill(np.array(tokens), progress=step / 2) for step, tokens in enumerate([[300, 200, 101], [250, 0, 400]])]
        assert all(r.examples > 0 and np.isfinite(r.loss) for r in reports)
        entries[packed] = [{k: v for k, v in vars(e).items() if k != "extra"} for e in d.ledger.entries]
    assert entries[True] == entries[False] and sum(sum(e["trained"]) for e in entries[True]) > 0


def test_warmup_cosine_runs_over_the_episode_budget(make_distiller):
    from read_env.distill.training import warmup_cosine

    with pytest.raises(ValueError, match="pass budget_tokens >= 1"):
        make_distiller(lr_schedule="warmup_cosine")
    d = make_distiller(lr_schedule="warmup_cosine", budget_tokens=2000, batch_size=2, micro_batch=2)
    lr_at = d._lr_at(0.5, 500)
    assert lr_at(0.0) == pytest.approx(1e-3 * warmup_cosine(0.5)) and lr_at(1.0) == pytest.approx(1e-3 * warmup_cosine(0.75))
    d.distill(np.array([300, 300, 300]), progress=0.5)
    last = d.trainer.optimizer.param_groups[0]["lr"]
    assert 1e-3 * warmup_cosine(0.95) < last < 1e-3 * warmup_cosine(0.5)  # decayed within the step's share of the budget
    assert make_distiller()._lr_at(0.5, 500) is None  # constant: the configured lr


def test_answers_that_ended_train_their_eos(make_distiller):
    d = make_distiller()
    eos = d.student_tok.eos_token_id
    assert d._answer_ids(None, "The answer is 4.", finished=True)[-1] == eos  # text from a server: EOS appended
    assert eos not in d._answer_ids(None, "The answer is 4.", finished=False)
    assert d._answer_ids([5, 6, eos], "ignored", finished=True) == [5, 6, eos]  # the engine's tokens end with its EOS


@pytest.mark.parametrize("options,match", [({"packed": True, "objective": "kd"}, "packed=True trains objective='sft' only"),
                                           ({"bf16": "always"}, "unknown bf16 'always'"),
                                           ({"lr_schedule": "step"}, "unknown lr_schedule 'step'"),
                                           ({"tokens_per_step": 0}, "tokens_per_step must be >= 1"),
                                           ({"warmup_share": 1.0}, r"warmup_share must be in \[0, 1\), got 1.0")])
def test_bad_training_options_name_the_option(options, match):
    from read_env.distill.config import DistillerConfig

    with pytest.raises(ValueError, match=match):
        DistillerConfig(**options)

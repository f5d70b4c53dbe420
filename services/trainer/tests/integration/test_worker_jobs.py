"""Real DeepSpeed jobs on the shipped SmolLM2-135M: LoRA on ZeRO-2 with two processes, a full
fine-tune on ZeRO-1, SIGTERM as a clean cancel. Tiny jobs: 16 records, 64 tokens, micro batch 2.

The first DeepSpeed run on a machine compiles its shared-memory comm op (~70 s, cached under
~/.cache/torch_extensions or $TORCH_EXTENSIONS_DIR), hence the generous timeouts.
"""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest

from llmops_trainer.worker import progress
from llmops_trainer.worker.testing import base_model_dir, kill_group, start, tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
JOB_TIMEOUT = 900.0


def _done(events: list[dict]) -> bool:
    return any(e["type"] in ("done", "error", "cancelled") for e in events)


@pytest.fixture(scope="module")
def base_model() -> Path:
    return base_model_dir()


def _run(job_dir: Path, world_size: int) -> list[dict]:
    proc = start(job_dir, world_size)
    events = wait_for(job_dir, _done, proc, JOB_TIMEOUT)
    assert proc.wait(timeout=120) == 0, (job_dir / "launcher.log").read_text()[-3000:]
    assert events[-1]["type"] == "done", events[-3:]
    return events


def test_lora_on_zero2_with_two_processes(tmp_path: Path, base_model: Path) -> None:
    job = tmp_path / "job-z2"
    tiny_job(job, base_model, zero_stage=2, world_size=2, max_steps=4, eval_interval_steps=2,
             checkpoint_interval_steps=2)
    events = _run(job, 2)
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert all(e["total_steps"] == 4 and e["epoch"] == 1 for e in steps)
    assert all(math.isfinite(e["loss"]) and e["tokens_per_s"] > 0 for e in steps)
    assert [e["learning_rate"] for e in steps] == pytest.approx([1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3])
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4]
    assert all(e["perplexity"] == pytest.approx(math.exp(e["val_loss"])) for e in evals)
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2]
    done = events[-1]
    best = min(evals, key=lambda e: e["val_loss"])
    assert done["best_step"] == best["step"] and done["best_val_loss"] == pytest.approx(best["val_loss"])
    assert done["output_format"] == "peft-lora" and done["early_stopped"] is False
    output = Path(done["output_dir"])
    assert output == job / "output"
    assert (output / "adapter_config.json").is_file() and (output / "adapter_model.safetensors").is_file()
    summary = json.loads((output / "training_summary.json").read_text())
    assert summary["metrics"]["best_step"] == best["step"]
    assert summary["config"]["zero_stage"] == 2 and summary["config"]["world_size"] == 2
    assert summary["code_version"].startswith(("git:", "llmops-trainer=="))
    assert [p["step"] for p in summary["metrics"]["evaluations"]] == [2, 4]

    from safetensors.torch import load_file

    weights = load_file(output / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(float(t.abs().max()) > 0 for t in lora_b)  # trained (B starts at zero)


def test_full_fine_tune_on_zero1_exports_an_hf_folder(tmp_path: Path, base_model: Path) -> None:
    job = tmp_path / "job-full"
    tiny_job(job, base_model, zero_stage=1, lora=False, learning_rate=1e-5, max_steps=2,
             eval_interval_steps=2, checkpoint_interval_steps=100)
    events = _run(job, 1)
    done = events[-1]
    assert done["output_format"] == "hf" and done["best_step"] == 2
    output = Path(done["output_dir"])
    assert (output / "config.json").is_file() and (output / "tokenizer.json").is_file()

    import torch
    from transformers import AutoModelForCausalLM

    tuned = AutoModelForCausalLM.from_pretrained(output, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    name = "model.layers.0.self_attn.q_proj.weight"
    tuned_w, base_w = tuned.state_dict()[name], base.state_dict()[name]
    assert tuned_w.shape == base_w.shape and not torch.equal(tuned_w, base_w)
    assert float((tuned_w - base_w).abs().max()) < 0.05  # a fine-tune, not a different model


def test_sigterm_cancels_cleanly(tmp_path: Path, base_model: Path) -> None:
    job = tmp_path / "job-cancel"
    tiny_job(job, base_model, max_steps=0, epochs=50, eval_interval_steps=1000,
             checkpoint_interval_steps=1000)
    proc = start(job, 1)
    wait_for(job, lambda ev: any(e["type"] == "step" for e in ev), proc, JOB_TIMEOUT)
    kill_group(proc, signal.SIGTERM)
    proc.wait(timeout=120)
    events = progress.read(job)
    assert events[-1]["type"] == "cancelled"
    last_step = max(e["step"] for e in events if e["type"] == "step")
    assert events[-1]["step"] == last_step < 400
    assert not any(e["type"] == "done" for e in events)
    assert not (job / "output").exists()


def test_invalid_job_reports_an_error_line(tmp_path: Path, base_model: Path) -> None:
    job = tmp_path / "job-bad"
    tiny_job(job, base_model, zero_stage=7)
    proc = start(job, 1)
    events = wait_for(job, _done, proc, 300)
    assert events[-1]["type"] == "error"
    assert "zero_stage must be between 1 and 3" in events[-1]["message"]
    assert proc.wait(timeout=60) != 0

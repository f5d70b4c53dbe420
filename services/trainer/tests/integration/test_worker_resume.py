"""SIGKILL mid-job, then the same command again on the same JOB_DIR: the job resumes from the
last complete checkpoint, for LoRA on ZeRO-2 and on ZeRO-3 (whose checkpoints hold partitioned
parameters under PEFT's names). The step sequence continues: the resumed run trains exactly
the steps after the checkpoint (none twice in the final model, none skipped), replays them on
the same batches with the same RNG (the first replayed loss equals the killed run's), and ends
with a finite loss.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from llmops_trainer.worker import checkpoint, progress
from llmops_trainer.worker.testing import base_model_dir, kill_group, start, tiny_job, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TIMEOUT = 900.0


@pytest.fixture(scope="module")
def base_model() -> Path:
    return base_model_dir()


def _checkpoint_then_one_more_step(events: list[dict]) -> bool:
    ckpts = [e["step"] for e in events if e["type"] == "checkpoint"]
    return bool(ckpts) and any(e["type"] == "step" and e["step"] == ckpts[0] + 1 for e in events)


@pytest.mark.parametrize(("zero_stage", "world_size"), [(2, 1), (3, 2)])
def test_sigkill_then_resume(tmp_path: Path, base_model: Path, zero_stage: int, world_size: int) -> None:
    job = tmp_path / f"job-z{zero_stage}"
    # Two epochs: 16 records give 4 steps per epoch with two processes; max_steps caps at 6.
    tiny_job(job, base_model, zero_stage=zero_stage, world_size=world_size, epochs=2, max_steps=6,
             eval_interval_steps=3, checkpoint_interval_steps=2)
    first = start(job, world_size)
    wait_for(job, _checkpoint_then_one_more_step, first, TIMEOUT)
    kill_group(first)
    first.wait(timeout=60)
    killed = progress.read(job)
    time.sleep(5)  # the workers die with the launcher (they run in sessions of their own)
    assert progress.read(job) == killed and not any(e["type"] == "done" for e in killed)
    # The kill lands after step 3 at the earliest; the job may have got further.
    ckpt = checkpoint.latest_complete(job / "checkpoints")
    first_steps = {e["step"]: e for e in killed if e["type"] == "step"}
    assert ckpt in (2, 4) and list(first_steps) == list(range(1, len(first_steps) + 1))
    assert len(first_steps) > ckpt

    second = start(job, world_size)
    events = wait_for(job, lambda ev: ev[-1]["type"] in ("done", "error"), second, TIMEOUT)
    assert second.wait(timeout=120) == 0
    after = events[len(killed):]
    assert after[0] == {"type": "resumed", "step": ckpt}
    resumed_steps = [e for e in after if e["type"] == "step"]
    assert [e["step"] for e in resumed_steps] == list(range(ckpt + 1, 7))
    # Same batch, same weights, same RNG: the replayed step has the killed run's loss.
    assert resumed_steps[0]["loss"] == pytest.approx(first_steps[ckpt + 1]["loss"], rel=1e-3)
    assert resumed_steps[0]["learning_rate"] == pytest.approx(first_steps[ckpt + 1]["learning_rate"])
    assert math.isfinite(resumed_steps[-1]["loss"])
    assert [e["step"] for e in after if e["type"] == "eval"] == [s for s in (3, 6) if s > ckpt]
    assert after[-1]["type"] == "done" and after[-1]["output_format"] == "peft-lora"
    assert (job / "output" / "adapter_model.safetensors").is_file()

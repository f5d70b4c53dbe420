"""A stand-in for the training worker (interface 2 of issue 9): same job.json in, same
progress.jsonl lines, checkpoints and output out, no model. Tests of the service run it in
place of `llmops_trainer.worker` (settings `worker_command`).

    python standin_worker.py --job-dir JOB_DIR

Behaviour from the environment: STANDIN_STEPS (default max_steps or 4), STANDIN_STEP_SECONDS
(default 0.05), STANDIN_FAIL_AT (a step at which it writes an error line and exits 1).
SIGTERM writes a "cancelled" line and exits 0. Started again on the same folder it resumes
after its last checkpoint ("resumed" line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-dir", required=True, type=Path)
    job_dir: Path = parser.parse_args().job_dir
    spec = json.loads((job_dir / "job.json").read_text())
    total = int(os.environ.get("STANDIN_STEPS") or spec.get("max_steps") or 4)
    pause = float(os.environ.get("STANDIN_STEP_SECONDS", "0.05"))
    fail_at = int(os.environ.get("STANDIN_FAIL_AT", "0"))
    progress = (job_dir / "progress.jsonl").open("a")
    step = 0

    def emit(line: dict[str, Any]) -> None:
        progress.write(json.dumps(line) + "\n")
        progress.flush()

    def on_term(*_: Any) -> None:
        emit({"type": "cancelled", "step": step})
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    checkpoints = job_dir / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    saved = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("step-*"))
    if saved:
        step = saved[-1]
        emit({"type": "resumed", "step": step})
    best = (0, 99.0)
    while step < total:
        time.sleep(pause)
        step += 1
        if step == fail_at:
            emit({"type": "error", "message": f"stand-in failure at step {step}"})
            return 1
        loss = 2.0 / step
        emit({"type": "step", "step": step, "total_steps": total, "epoch": step / total,
              "loss": loss, "learning_rate": spec["learning_rate"], "tokens_per_s": 100.0 + step,
              "ts": time.time()})
        if step % int(spec["eval_interval_steps"]) == 0 or step == total:
            val = 2.5 / step
            emit({"type": "eval", "step": step, "val_loss": val, "perplexity": 2.718 ** val,
                  "overfitting": False})
            if val < best[1]:
                best = (step, val)
        if step % int(spec["checkpoint_interval_steps"]) == 0:
            (checkpoints / f"step-{step}").mkdir(exist_ok=True)
            emit({"type": "checkpoint", "step": step})
    output = job_dir / "output"
    output.mkdir(exist_ok=True)
    fmt = "peft-lora" if spec["lora"] else "hf"
    (output / ("adapter_config.json" if spec["lora"] else "config.json")).write_text("{}")
    emit({"type": "done", "best_step": best[0], "best_val_loss": best[1], "early_stopped": False,
          "output_dir": str(output), "output_format": fmt})
    return 0


if __name__ == "__main__":
    sys.exit(main())

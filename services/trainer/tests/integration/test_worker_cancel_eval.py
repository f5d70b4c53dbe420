"""SIGTERM while the real worker evaluates: the pass stops at its next batch (not at the next
step boundary after a whole evaluation) and the job ends with a "cancelled" line that says so.

A tiny job (SmolLM2-135M, LoRA, ZeRO-2, 64 tokens) whose validation set is large enough for
its evaluation to take seconds: the signal is sent as soon as step 1 (an evaluation step) is
written, so it lands during the evaluation that follows.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from llmops_trainer.worker import progress
from llmops_trainer.worker.testing import (
    base_model_dir,
    chat_records,
    kill_group,
    start,
    tiny_job,
    wait_for,
    write_jsonl,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
VALIDATION_RECORDS = 400  # 200 forward passes at micro batch 2: seconds on a CPU core


def test_sigterm_during_evaluation_stops_the_pass(tmp_path: Path) -> None:
    job = tmp_path / "job-cancel-eval"
    spec = tiny_job(job, base_model_dir(), max_steps=3, eval_interval_steps=1,
                    checkpoint_interval_steps=1000)
    validation = write_jsonl(tmp_path / "big-validation.jsonl",
                             chat_records(VALIDATION_RECORDS, offset=16))
    (job / "job.json").write_text(json.dumps(spec | {"validation_path": str(validation)}))
    proc = start(job, 1, {"OMP_NUM_THREADS": "1"})
    wait_for(job, lambda ev: any(e["type"] == "step" for e in ev), proc, 600)
    signalled = time.monotonic()
    kill_group(proc, signal.SIGTERM)
    ended = wait_for(job, lambda ev: any(e["type"] in ("cancelled", "done", "error")
                                         for e in ev), proc, 300)
    stopped_after = time.monotonic() - signalled
    proc.wait(timeout=120)

    events = progress.read(job)
    assert [e["type"] for e in ended if e["type"] != "step"] == ["cancelled"], events[-3:]
    assert events[-1] == {"type": "cancelled", "step": 1, "phase": "eval"}
    # Step 1 was trained, its evaluation started and never reported; nothing came after it.
    assert [e["step"] for e in events if e["type"] == "step"] == [1]
    assert not any(e["type"] == "eval" for e in events)
    assert not (job / "output").exists() and not (job / "best").exists()
    # At most one forward pass after the signal (plus the process exit), not a whole pass.
    assert stopped_after < 60, stopped_after
    print(f"SIGTERM -> cancelled line: {stopped_after:.2f}s")
